"""The fields every config that loads a model shares, with their meaning, in one place.

    config = common.base_config("predict", arg, images="skimage:chelsea")

The training configs (alexnet_*.py) start from configs/alexnet_imagenet.py's `paper_recipe()`
instead: they train a model rather than load one.
"""
import ml_collections

from cnn_vis.errors import UserError


def check_arg(arg, *allowed: str) -> None:
  """A config's argument (`configs/X.py:arg`) must be empty or one of `allowed`: an unknown one
  is a one-line error (cnn_vis.main prints it), never silently the default config."""
  if arg and arg not in allowed:
    raise UserError(f"unknown config argument {arg!r}; allowed: {', '.join(allowed) or 'none'}")


# The papers' ImageNet nets (AlexNet, ZFNet, CaffeNet) are ReLU + max-pool networks; of the
# models with published weights here, SqueezeNet 1.1 (docs/papers.md §17; CS231n's model, §12) is
# one: its max-pool switches carry the image into deconvnet projections and its plain ReLUs give
# guided backprop its masks. EfficientNet-Lite0 (ReLU6, strided depthwise convs, no max pooling)
# stays available with --config.model=efficientnet_lite0.
RELU_MAXPOOL_MODEL = "squeezenet1_1"


def base_config(experiment: str, arg=None, *, images: str | None = None,
                model: str = "efficientnet_lite0") -> ml_collections.ConfigDict:
  """experiment, the model and its weights, seed and (if given) images; `arg == "smoke"` swaps in
  a CIFAR-sized AlexNet with few channels and random weights, quick to build in tests."""
  config = ml_collections.ConfigDict()
  config.experiment = experiment      # runs experiments.<experiment>.run(config, workdir)
  config.model = model                # a registered model with ImageNet weights (see README)
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
  """base_config plus the fields every attribution and occlusion config shares; the model is the
  ReLU + max-pool SqueezeNet 1.1 (RELU_MAXPOOL_MODEL)."""
  check_arg(arg, "smoke")
  config = base_config(experiment, arg, images="skimage:chelsea,skimage:coffee",
                       model=RELU_MAXPOOL_MODEL)
  if method is not None:
    config.method = method            # experiments/attribution.py METHODS
  # units (cnn_vis/models/units.py) separated by ";"; "" = the model's default for the method
  config.targets = "predicted"
  config.spatial = "center"           # conv units without @y,x: center | mean | sum | max
  config.unit_chunk = 8               # targets back-propagated at once (memory bound)
  config.overlay_alpha = 0.5
  return config
