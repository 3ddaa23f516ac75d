"""jcjohnson/neural-style's defaults (`neural_style.lua`, README; docs/papers.md §9) on VGG-19.

  python -m cnn_vis.main --config=configs/johnson_neural_style.py \
      --config.weights=/path/to/vgg19-dcbb9e9d.pth --workdir=runs/neural_style
  ... --config.styles=a.jpg,b.jpg --config.blend="(3, 1)"      # -style_blend_weights 3,1
  ... --config.original_colors=True                            # -original_colors 1
  ... --config.scales="(256,)" --config.image_size=1024        # its multiscale recipe, by hand

Defaults [V]: content_weight 5, style_weight 100, tv_weight 1e-3; 1000 iterations of L-BFGS
(optim.lbfgs without a line search: fixed unit steps); -init random = randn * 0.001 around the
mean pixel; image_size 512; relu4_2 content, relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 style,
each style layer at the full style_weight; max pooling; style_scale 1; save_iter 100; Adam's
learning_rate 10; the "neural_style" normalisation (MSE of features and of Grams over C H W;
TV as its gradient-only TVLoss). Our conv*_* layers are after their ReLU, i.e. its relu*_*.

Unit conversions: neural-style feeds Caffe's VGG-19 BGR pixels x 256 minus the mean; torchvision's
weights see (x - mean) / std, s = 57.6 times smaller (style.CAFFE_PER_TORCHVISION; 255 for 256),
so its weights become content 5 s^2 and style 100 s^4 (MSE of features ~ s^2, of Grams ~ s^4).
TV acts on its x 256 image, ours on [0, 1] pixels: 1e-3 * 256^2; Adam's rate 10 -> 10 / 256;
the init noise 0.001 -> 0.001 / 256. -original_colors 1 recolours the result at save time
(color_method "postprocess"); "luminance" is Gatys et al. 2016b's luminance-only transfer.
"""
from configs import gatys16_style_transfer
from cnn_vis.errors import UserError
from cnn_vis.techniques import style

S = style.CAFFE_PER_TORCHVISION
PIXEL = 256.0          # neural-style's image scale (preprocess: x 256)


def get_config(arg=None):
  if arg and arg != "smoke":
    raise UserError(f"unknown config argument {arg!r}; allowed: smoke")
  config = gatys16_style_transfer.get_config()      # every field, then neural-style's values
  config.model_kwargs.pooling = "max"  # -pooling max
  config.normalization = "neural_style"
  config.content_weight = (5.0 * S ** 2,)  # -content_weight 5
  config.style_weight = (100.0 * S ** 4,)  # -style_weight 100, at every style layer
  config.layer_weights = (1.0,) * gatys16_style_transfer.STYLE_LAYERS
  config.tv_weight = (1e-3 * PIXEL ** 2,)  # -tv_weight 1e-3
  config.iterations = 1000                 # -num_iterations 1000
  config.line_search = False               # optim.lbfgs without lineSearch
  config.lr = 10.0 / PIXEL                 # -learning_rate 10 (Adam)
  config.init = "mean"                     # -init random: randn * 0.001
  config.init_std = 0.001 / PIXEL
  config.color_method = "postprocess"      # -original_colors 1
  config.save_every = 100                  # -save_iter 100
  if arg == "smoke":
    gatys16_style_transfer.vgg_smoke(config)
    config.styles = "generated:composition,skimage:gravel"
    config.blend = (1.0, 1.0)
    config.original_colors = True
  return config


def get_sweep():
  """The content/style ratio: style_weight x 0.1, 1, 10 in one run and one compiled call."""
  return [{"style_weight": tuple(100.0 * S ** 4 * f for f in (0.1, 1.0, 10.0))},
          {"optimizer": "adam"}]
