"""Guided backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller 2015, §3.4, Figs. 1-3).

  python -m cnn_vis.main --config=configs/springenberg15_guided_backprop.py --workdir=runs/guided

Backward through every ReLU: R_l = 1[f_l > 0] * 1[R_l+1 > 0] * R_l+1 (docs/papers.md §3): the
model is built with relu_mode="guided" and differentiated. The reconstruction is shown as an
image (grey = 0, each map on its own symmetric scale, +-its 99th percentile;
cnn_vis/report/images.py), as in
the paper's figures, with a colour bar. The paper visualises units of its All-CNN nets and of an
ImageNet net; neither has public weights here, so the default is the pretrained SqueezeNet 1.1,
a ReLU + max-pool net like the paper's ImageNet model, and the predicted class; `max:LAYER` or
`LAYER:C[@y,x]` targets reconstruct single units (see get_sweep; their maps are also shown
cropped to the unit's receptive field). On --config.model=efficientnet_lite0 use the block
outputs (linear, no ReLU6 after the projection): the strongest activation of a ReLU6 layer such
as `head` is usually clipped at 6, where the forward mask makes the gradient zero.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "guided_backprop", arg)
  config.targets = "predicted"
  return config


def get_sweep():
  """The strongest activation of successively higher layers (Fig. 3's layer-by-layer view), and
the predicted class on EfficientNet-Lite0."""
  return [{"targets": f"max:{layer}"} for layer in ("conv1", "fire3", "fire5", "fire7",
                                                     "fire9")] + [{"model": "efficientnet_lite0"}]
