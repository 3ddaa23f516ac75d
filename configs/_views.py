"""The fields the dataset-view configs share (top patches, filters, embedding, activation maps):
the model (configs/common.py) and the data they read, for each variant:

- default: a pretrained net on the 100 ImageNet samples (../shared/data/imagenet-samples);
- `cifar`: alexnet_cifar on the CIFAR-10 test set (dataset cifar10_jpeg), meant for a trained
  --config.checkpoint=W (configs/alexnet_cifar10.py; random weights without one);
- `imagenet`: the paper's AlexNet over ILSVRC-2012 validation (dataset imagenet2012; give
  --config.checkpoint=W of configs/alexnet_imagenet.py), for accelerators;
- `smoke`: a tiny random alexnet_cifar on scikit-image's photos (tests).
"""
from pathlib import Path

import ml_collections

from cnn_vis.errors import UserError
from configs import common

VARIANTS = ("cifar", "imagenet", "smoke")
IMAGENET_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples"
# scikit-image's photos that ship with it (no download)
SKIMAGE_PHOTOS = ",".join(f"skimage:{name}" for name in (
    "astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field",
    "immunohistochemistry"))


def view_config(experiment: str, arg, *, model: str) -> ml_collections.ConfigDict:
  """base_config with the data fields; `model` is the pretrained default."""
  if arg is not None and arg not in VARIANTS:
    raise UserError(f"unknown config argument {arg!r}; allowed: {', '.join(VARIANTS)}")
  config = common.base_config(experiment, arg if arg == "smoke" else None)
  config.images = ""                  # a folder, image paths or skimage:NAME (overrides dataset)
  config.dataset = ""                 # a tfds dataset of cnn_vis.data (cifar10_jpeg, ...)
  config.split = ""                   # its split, tfds syntax (test, test[:1000], train+test)
  config.data_dir = ""                # tfds data_dir ("" = $CNN_VIS_CACHE/tfds)
  config.manual_dir = ""              # where a dataset's source files are (image_folder, ...)
  config.batch_size = 32              # global batch (a multiple of the device count)
  if arg is None:
    config.model = model
    config.images = str(IMAGENET_SAMPLES)
  elif arg == "cifar":
    config.model = "alexnet_cifar"
    config.pretrained = False         # --config.checkpoint=W brings the trained weights
    config.dataset, config.split = "cifar10_jpeg", "test"
    config.batch_size = 256
  elif arg == "imagenet":
    config.model = "alexnet"          # the paper's two-group net; needs --config.checkpoint=W
    config.pretrained = False
    # settable on the command line (--config.model_kwargs.groups=1: one-stream AlexNet)
    config.model_kwargs = ml_collections.ConfigDict({"groups": 2})
    config.dataset, config.split = "imagenet2012", "validation"
    config.batch_size = 256
  else:
    config.images = SKIMAGE_PHOTOS
    config.batch_size = 4
  return config
