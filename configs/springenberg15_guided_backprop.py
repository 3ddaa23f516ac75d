"""Guided backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller 2015, §3.4, Figs. 1-3).

  python -m cnn_vis.main --config=configs/springenberg15_guided_backprop.py --workdir=runs/guided

Backward through every ReLU: R_l = 1[f_l > 0] * 1[R_l+1 > 0] * R_l+1 (docs/papers.md §3): the model is
built with relu_mode="guided" and differentiated. The reconstruction is shown as an image (grey =
0, per-image symmetric scale), as in the paper's figures. The paper visualises units of its
All-CNN nets and of an ImageNet net; neither has public weights here, so the default is the
pretrained EfficientNet-Lite0 and the predicted class; `max:LAYER` or `LAYER:C[@y,x]` targets
reconstruct single units (see get_sweep). The block outputs are linear (no ReLU6 after the
projection), so their strongest activation has a gradient; the strongest activation of a ReLU6
layer such as `head` is usually clipped at 6, where the forward mask makes the gradient zero.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "guided_backprop", arg)
  config.targets = "predicted"
  return config


def get_sweep():
  """The strongest activation of successively higher layers (Fig. 3's layer-by-layer view)."""
  return [{"targets": f"max:{layer}"} for layer in ("block3", "block5", "block8", "block11",
                                                     "block15", "block16")]
