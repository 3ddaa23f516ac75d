"""Activation maximisation with regularisers (Yosinski et al. 2015, "Understanding neural networks
through deep visualization", §3, Table 1, Figs. 3-4), and Olah et al. 2017's Fourier variant.

  python -m cnn_vis.main --config=configs/yosinski15_deepvis.py --workdir=runs/deepvis
  python -m cnn_vis.main --config=configs/yosinski15_deepvis.py --config.preset=olah17 \
      --workdir=runs/deepvis_olah
  python -m cnn_vis.main --config=configs/yosinski15_deepvis.py:conv --workdir=runs/deepvis_conv
  python -m cnn_vis.main --config=configs/yosinski15_deepvis.py \
      --config.decay="(0.0, 0.0001, 0.001, 0.01)" --workdir=runs/deepvis_decay   # one call

Presets 1-4 are Table 1's rows (docs/papers.md §5), with lr converted to [0, 1] pixels (see
cnn_vis/techniques/activation_max.py); preset 3 made most of the paper's images. The paper's
CaffeNet has no public weights here, so the default is the pretrained EfficientNet-Lite0 and its
class units (`logits`, the pre-softmax scores, the paper's fc8); the toolbox's demo unit is fc8
130 (flamingo). `:conv` renders 64 units of a middle layer (block8, centre position), all
vmapped together (`--config.loop=scan`: in one compiled call).
"""
from configs import common

DEFAULT_PRESET = "olah17"


def get_config(arg=None):
  common.check_arg(arg, "conv", "paper", "smoke")
  config = common.base_config("activation_max", arg)
  # flamingo (the toolbox demo), goldfish, tarantula, pineapple, volcano, school bus
  config.units = "logits:130;logits:1;logits:76;logits:953;logits:980;logits:779"
  # 1 | 2 | 3 | 4 (Table 1) | olah17 (lucid) | cs231n; the default chosen by measurement (see
  # the docstring); `:paper` is preset 3, which made most of the paper's images.
  config.preset = DEFAULT_PRESET
  config.image_size = 0             # 0: the model's input size
  config.steps = 0                  # 0: the preset's (500 / 750 / 1000 / 1000 / 512 / 100)
  config.spatial = "center"         # conv units without @y,x: centre position (paper) | mean
  # Empty: the preset's value; a tuple renders one tile per value for every unit, in one call.
  config.lr = ()
  config.decay = ()
  config.blur_width = ()
  config.blur_every = ()
  config.norm_pct = ()
  config.contrib_pct = ()
  config.max_lr = ()
  config.desired_prog = ()
  # stretch: the image minus the mean pixel, scaled to fill [0, 1] (the toolbox's best_X.jpg);
  # minmax: min-max per tile (the toolbox's best_Xpm.jpg, CS231n's deprocess); raw: the pixels as
  # optimised (the .npy files always are); auto: raw for olah17, minmax for cs231n, else stretch.
  config.display = "auto"
  config.chunk = 0                  # settings per vmapped chunk (0: all at once)
  # scan: each render is ONE compiled call; dispatch: one compiled vmapped step called per step
  # (same images, several times faster on CPU); auto: dispatch on CPU, scan on accelerators.
  config.loop = "auto"
  if arg == "paper":
    config.preset = "3"
  elif arg == "conv":
    config.units = "block8:0-63"
    config.image_size = 128
  elif arg == "smoke":  # base_config made the model a small random alexnet_cifar
    config.preset = "3"
    config.units = "conv2:0-2;fc8:1"
    config.steps = 4
    config.decay = (0.0, 0.01)
  return config


def get_sweep():
  """Each Table 1 preset, olah17 and cs231n (separate runs: their optimisers and step counts
  differ), and a decay sweep of preset 3 in one vmapped call."""
  return [{"preset": p} for p in ("1", "2", "3", "4", "olah17", "cs231n")] + [
      {"preset": "3", "decay": (0.0, 0.0001, 0.001, 0.01)}]
