"""Converted weights cached as one safetensors file per converter, written atomically.

safetensors holds only named arrays plus string metadata, so reading a cache file can never run
code. The metadata records what the file was converted from; a mismatch makes the caller convert
again. Writes go to a temporary file in the same folder, renamed over the old one, so a crash
never leaves a half-written cache behind.
"""
import os
import sys
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.numpy import save_file

SEPARATOR = "/"


def cache_dir() -> Path:
  """$CNN_VIS_CACHE/pretrained (default ~/.cache/cnn_vis/pretrained)."""
  return Path(os.environ.get("CNN_VIS_CACHE", "~/.cache/cnn_vis")).expanduser() / "pretrained"


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flatten(value, name + SEPARATOR))
    else:
      flat[name] = np.ascontiguousarray(value)
  return flat


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
  tree: dict = {}
  for name, value in flat.items():
    *parents, leaf = name.split(SEPARATOR)
    node = tree
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = value
  return tree


def write(path: Path, variables: Mapping, metadata: Mapping[str, str]) -> bool:
  """Atomically writes variables to path; on an OS error warns and returns False."""
  tmp = None
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    save_file(_flatten(variables), tmp, metadata=dict(metadata))
    os.replace(tmp, path)
    return True
  except OSError as e:
    print(f"warning: cannot cache converted weights at {path} ({e}); they will be converted "
          "again next time", file=sys.stderr)
    return False
  finally:
    if tmp is not None and os.path.exists(tmp):
      os.unlink(tmp)


def read(path: Path) -> tuple[dict, dict[str, str]] | None:
  """(variables, metadata) from a cache file, or None if it is missing or unreadable."""
  if not path.is_file():
    return None
  try:
    with safe_open(str(path), framework="numpy") as f:
      metadata = dict(f.metadata() or {})
      flat = {name: f.get_tensor(name) for name in f.keys()}
  except (SafetensorError, OSError, ValueError) as e:
    print(f"warning: ignoring unreadable cache file {path} ({e}); converting again",
          file=sys.stderr)
    return None
  return _unflatten(flat), metadata
