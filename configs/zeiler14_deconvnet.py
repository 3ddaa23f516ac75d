"""Deconvnet projections of the strongest activation (Zeiler & Fergus 2014, §2.1, Figs. 2 and 4).

  python -m cnn_vis.main --config=configs/zeiler14_deconvnet.py --workdir=runs/deconvnet

"To examine a given convnet activation, we set all other activations in the layer to zero" and
project down: unpooling with the max switches (= the gradient of max pooling), rectification of
the signal going down (R_l = max(R_l+1, 0), docs/papers.md §2) and transposed filters (= the gradient
of a convolution). So the projection is the gradient of that one activation through a model built
with relu_mode="deconvnet". Target `max:LAYER`: the strongest activation of LAYER in each image.
ZFNet has no public weights; the default is the pretrained EfficientNet-Lite0 at `block5` (28x28,
the end of its third stage), whose projections are image patches as in the paper's layer 2-3
panels; get_sweep walks the stages as Fig. 2 walks layers. From block8 up the projections turn
into an image-independent checkerboard: EfficientNet has no max pooling, so there are no switches
to carry the image into the reconstruction, and deconvnet's rectification ignores the forward
pass (the weakness Springenberg et al. 2015, §3.4, address with guided backprop). A net with max
pooling shows the paper's behaviour: --config.model=alexnet_torchvision (torchvision's checkpoint
on disk) or a trained --config.checkpoint, with targets max:conv1 .. max:conv5.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "deconvnet", arg)
  config.targets = "max:conv5" if arg == "smoke" else "max:block5"
  return config


def get_sweep():
  """One projection per stage, low to high (Fig. 2 shows layers 1-5)."""
  return [{"targets": f"max:{layer}"} for layer in ("stem", "block3", "block5", "block8",
                                                     "block11", "block15", "head")]
