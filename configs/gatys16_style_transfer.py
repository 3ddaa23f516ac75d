"""Image style transfer with CNNs (Gatys, Ecker & Bethge 2016, §2-3; arXiv 2015; docs/papers.md
§9) on VGG-19, every field of the style-transfer experiment with the paper's value.

  python -m cnn_vis.main --config=configs/gatys16_style_transfer.py \
      --config.weights=/path/to/vgg19-dcbb9e9d.pth --workdir=runs/style_gatys
  CNN_VIS_TORCHVISION_DIR=/folder/of/vgg19-dcbb9e9d.pth \
      bash launch.sh sweep configs/gatys16_style_transfer.py runs/style_gatys_sweep  # Fig. 3

VGG-19 weights cannot be downloaded on these machines: give torchvision's `vgg19` state dict
(read safely, without torch) with --config.weights=PATH, or put it in torchvision's cache folder.
The paper's net is VGG-19 with average pooling and "normalised" weights (every filter's mean
activation 1, which changes nothing but the scale of the terms); torchvision's weights are not
normalised, so the alpha/beta ratios below carry over only up to that scale.

Paper values: content conv4_2; style conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 with w_l = 1/5;
alpha/beta = 1e-3 (Fig. 2 B; the others 8e-4, 5e-3, 5e-4); L-BFGS from white noise; the
"gatys" normalisation (content 1/2 sum (F - P)^2, E_l = sum (G - A)^2 / (4 N^2 M^2)); no TV term.
Not stated, ours: 512 px (longest side), 500 iterations, U(0, 1) noise, optax's zoom line
search, pixels clipped to [0, 1]. On XLA:CPU the line search's evaluations run inside a while
loop, several times slower than at top level (VGG-19 at 128 px, loaded 2-core machine: 4.0x;
DESIGN notes, jax-ml/jax#12868): on CPU prefer --config.line_search=False (fixed unit steps,
as neural-style and torch.optim.LBFGS take).

Fig. 3 of the arXiv paper [R] is a grid: rows match the style at conv1_1, then conv1_1-conv2_1,
... up to conv1_1-conv5_1 (equal weights); columns alpha/beta = 1e-5, 1e-4, 1e-3, 1e-2.
get_sweep()[0] renders all 20 settings in one vmapped call (zero weights switch layers off).
"""
import ml_collections

from configs import common
from cnn_vis.errors import UserError

STYLE_LAYERS = 5
FIG3_ROWS = tuple(tuple(1.0 / k if i < k else 0.0 for i in range(STYLE_LAYERS))
                  for k in range(1, STYLE_LAYERS + 1))
FIG3_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)      # alpha / beta, the columns


def get_config(arg=None):
  if arg and arg != "smoke":
    raise UserError(f"unknown config argument {arg!r}; allowed: smoke")
  config = common.base_config("style_transfer", arg)
  config.model = "vgg19"               # the paper's network
  config.model_kwargs = ml_collections.ConfigDict({"pooling": "avg"})   # §2: average pooling
  config.pretrained = True             # torchvision's vgg19 weights (from a file, see above)
  config.weights = ""                  # path to torchvision's vgg19 state dict
  config.content = "skimage:chelsea"   # comma-separated: image files, skimage:NAME, generated:
  config.styles = "generated:composition"   # comma-separated style images (no artwork ships)
  config.blend = ()                    # one weight per style image (empty: equal; neural-style)
  config.image_size = 512              # longest side of the output (not stated)
  config.scales = ()                   # longest sides of coarser scales optimised first
  config.iterations = 500              # per scale (not stated)
  config.content_layer = ""            # "": the model's default (VGG: conv4_2)
  config.style_layers = ""             # "": conv1_1, conv2_1, conv3_1, conv4_1, conv5_1
  config.normalization = "gatys"       # gatys | neural_style | cs231n (techniques/style.py)
  config.content_weight = (1.0,)       # alpha; several values sweep
  config.style_weight = (1e3,)         # beta: alpha/beta = 1e-3 (Fig. 2 B); several sweep
  config.layer_weights = ()            # w_l: () = 1/5 each; a tuple of rows sweeps (Fig. 3)
  config.tv_weight = (0.0,)            # not in the paper; several values sweep
  config.optimizer = "lbfgs"           # §3: "Here we use L-BFGS"; or adam
  config.line_search = True            # optax's zoom line search; False: fixed unit steps
  config.memory = 10                   # L-BFGS history (optax's default; neural-style: 100)
  config.lr = 0.02                     # Adam's rate in [0, 1] pixel units (L-BFGS: unused)
  config.lr_steps = ()                 # ((iteration, factor), ...) rate changes (Adam)
  config.compare = ""                  # also run this optimiser for as many evaluations
  config.compare_lr = 10.0 / 256       # its rate if Adam: neural-style's 10 (0..256 pixels)
  config.init = "noise"                # white noise (the paper); content; mean (neural-style)
  config.init_std = 0.0                # init "mean": std of the noise around the mean pixel
  config.pixels = "clip"               # clip | sigmoid | free (kept in [0, 1] how)
  config.style_scale = 1.0             # style image's longest side / the output's
  config.original_colors = False       # keep the content's colours (Gatys et al. 2016b)
  config.color_method = "luminance"    # luminance-only transfer | postprocess (neural-style)
  config.save_every = 100              # progress image every N iterations (0: off)
  config.loop = "auto"                 # scan: one compiled call per scale; dispatch (CPU)
  config.chunk = 0                     # settings per vmapped chunk (0: all at once)
  if arg == "smoke":
    vgg_smoke(config)
  return config


def vgg_smoke(config) -> None:
  """Random VGG-19 weights with 8-wide fc layers (the layout, quickly), 32 px, 3 iterations."""
  config.pretrained = False
  config.model_kwargs.fc_width = 8
  config.image_size = 32
  config.iterations = 3
  config.save_every = 1


def get_sweep():
  """Fig. 3: growing sets of style layers x alpha/beta, 20 settings in one run and one call."""
  return [{"layer_weights": FIG3_ROWS, "style_weight": tuple(1.0 / r for r in FIG3_RATIOS)},
          {"optimizer": "adam", "lr": 0.02, "compare": "lbfgs"}]
