"""Activation maps: every channel of a layer for one image, on one colour scale (Yosinski et al.
2015, §2 and Fig. 1, the deep-visualization toolbox's main view; docs/papers.md §5), the
strongest channels marked, each tile linking to its unit's top patches.

  python -m cnn_vis.main --config=configs/girshick14_top_patches.py --config.layers=fire5 \
      --workdir=runs/top_patches_fire5
  python -m cnn_vis.main --config=configs/yosinski15_activations.py \
      --config.patches_run=runs/top_patches_fire5 --workdir=runs/activations
  python -m cnn_vis.main --config=configs/yosinski15_activations.py:cifar \
      --config.checkpoint=runs/alexnet_cifar10 --workdir=runs/activations_cifar

The toolbox shows CaffeNet's conv5 (13x13x256) for the webcam frame. Default: SqueezeNet v1.1
(Caffe ImageNet weights) at fire5 (28x28x256 at 227 px) for the first 4 ImageNet samples;
`:cifar`: alexnet_cifar's conv5 (8x8) for 4 CIFAR-10 test images. The tiles link to
`<patches_run>/units/<layer>_<channel>.png`, which a top-patches run of the same model and layer
writes (unit_pages=True).
"""
from configs import _views


def get_config(arg=None):
  config = _views.view_config("activation_maps", arg, model="squeezenet1_1")
  config.layer = ""          # "": the model's default (fire5, conv5, block5)
  config.max_images = 4      # the first images of config.images / the split
  config.mark = 9            # strongest channels outlined (by their spatial maximum)
  config.tile = 48           # pixels per channel tile
  config.patches_run = ""    # a top-patches workdir of the same model and layer: tiles link there
  if arg == "cifar":
    config.split = "test[:4]"
  elif arg == "smoke":
    config.layer = "conv3"
    config.max_images = 2
    config.mark = 3
    config.tile = 16
  return config


def get_sweep():
  """SqueezeNet's stages, low to high."""
  return [{"layer": layer} for layer in ("fire3", "fire5", "fire7", "fire9")]
