"""Deconvnet projections of the strongest activation (Zeiler & Fergus 2014, §2.1, Figs. 2 and 4).

  python -m cnn_vis.main --config=configs/zeiler14_deconvnet.py --workdir=runs/deconvnet

"To examine a given convnet activation, we set all other activations in the layer to zero" and
project down: unpooling with the max switches (= the gradient of max pooling), rectification of
the signal going down (R_l = max(R_l+1, 0), docs/papers.md §2) and transposed filters (= the
gradient of a convolution). So the projection is the gradient of that one activation through a
model built with relu_mode="deconvnet". Target `max:LAYER`: the strongest activation of LAYER in each image;
empty targets take the model's default (models.get_spec(name).defaults["deconvnet"]). ZFNet has
no public weights; the default is the pretrained SqueezeNet 1.1, a ReLU + max-pool net like the
paper's, at `fire5` (28x28 at 227 px, before the third pool: the paper's layer 2-3 scale). Each
projection is shown on its own symmetric scale with a colour bar and cropped to the unit's
receptive field beside the image patch, as Fig. 2 shows them; get_sweep walks the layers as
Fig. 2 does. On --config.model=efficientnet_lite0 (default max:block5) the projections from
block8 up turn into an image-independent checkerboard: that net has no max pooling, so there are
no switches to carry the image into the reconstruction, and deconvnet's rectification ignores
the forward pass (the weakness Springenberg et al. 2015, §3.4, address with guided backprop).
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "deconvnet", arg)
  config.targets = ""             # the model's default: max:fire5 (max:conv5 on AlexNets)
  return config


def get_sweep():
  """One projection per stage, low to high (Fig. 2 shows layers 1-5), and the checkerboard of
EfficientNet-Lite0 at its default layer."""
  return [{"targets": f"max:{layer}"} for layer in ("conv1", "fire2", "fire3", "fire5", "fire7",
                                                     "fire9")] + [{"model": "efficientnet_lite0"}]
