"""Understanding deep image representations by inverting them (Mahendran & Vedaldi 2015, §3-4,
Figs. 6 and 8): reconstruct an image from its features at each layer.

  python -m cnn_vis.main --config=configs/mahendran15_inversion.py --workdir=runs/inversion
  python -m cnn_vis.main --config=configs/mahendran15_inversion.py:paper --workdir=runs/inv_paper
  python -m cnn_vis.main --config=configs/mahendran15_inversion.py --config.layers=fire9 \
      --config.tv="(1.0, 10.0, 100.0)" --workdir=runs/inv_tv            # lambda_TV sweep, one call

Loss ||Phi(x) - Phi0||^2 / ||Phi0||^2 + alpha-norm (alpha 6, lambda 8e-10 on 0..255 pixels) +
TV^beta (beta 2, lambda_TV 1 / 10 / 100 for the first / middle / last third of the layers), the
reference code's constants (docs/papers.md §6; conversions in cnn_vis/techniques/inversion.py).
The paper inverts caffe-ref AlexNet; of the nets with published weights here the default is
SqueezeNet 1.1, a ReLU + max-pool net fed Caffe's 0..255 BGR mean-subtracted pixels like it
(--config.model=efficientnet_lite0 with layers stem;block3;block8;block15;head also works), at
conv1, fire3, fire5, fire7 and fire9 (lambda_TV 1, 1, 10, 100, 100 by relative depth). The
reference optimiser (SGD, momentum 0.9, lr 0.004 x [1, 0.1, 0.01] over 100/200/100 iterations,
`:paper`) diverges on both nets: within 5 steps on EfficientNet-Lite0, at step 55 on SqueezeNet's
fire9 (repo measurements), so the default is Adam, lr 0.02 for 200 then 0.002 for 100
iterations. SqueezeNet's last conv layer (fire9, 14x14x512) of skimage's coffee is then
reconstructed to normalised error 0.128 with the reference lambda_TV 100, keeping the top-1 class
(espresso). On EfficientNet-Lite0, `head` (7x7x1280) reached 0.075 with lambda_TV 100, 0.076 with
10 and 0.053 with 1, each keeping espresso; larger lambda_TV gives smoother images (the lambda_TV
sweep command above).
"""
from configs import common


def get_config(arg=None):
  common.check_arg(arg, "paper", "smoke")
  config = common.base_config("inversion", arg, images="skimage:coffee",
                              model=common.RELU_MAXPOOL_MODEL)
  config.layers = "conv1;fire3;fire5;fire7;fire9"
  config.tv = ()                     # empty: reference lambda_TV by depth; a tuple sweeps (1 call)
  config.tv_beta = 2.0               # experiment_cnn.m: TVbeta = 2
  config.alpha = 6.0                 # experiment_cnn.m: beta = 6 (the alpha-norm's exponent)
  config.alpha_norm = 8e-10          # experiment_cnn.m: lambdaL2, on 0..255 pixels
  config.optimizer = "adam"          # reference: sgd with momentum 0.9 (see `:paper`)
  config.momentum = 0.9              # used by sgd
  config.lr = 0.02
  config.phases = ((200, 1.0), (100, 0.1))   # (steps, lr factor); each phase restarts the optimiser
  config.init_scale = 1.0            # start: noise of norm init_scale * x0_sigma (reference: 1)
  config.chunk = 0
  # scan: each render is ONE compiled call; dispatch: one compiled vmapped step called per step
  # (same images, several times faster on CPU); auto: dispatch on CPU, scan on accelerators.
  config.loop = "auto"
  if arg == "paper":
    config.optimizer = "sgd"
    config.lr = 0.004
    config.phases = ((100, 1.0), (200, 0.1), (100, 0.01))
  elif arg == "smoke":  # base_config made the model a small random alexnet_cifar
    config.images = "skimage:chelsea"
    config.layers = "conv5"
    config.tv = (1.0, 10.0)
    config.phases = ((3, 1.0), (2, 0.1))
  return config


def get_sweep():
  """lambda_TV sweep of the last conv layer (one call), and the reference optimiser."""
  return [{"layers": "fire9", "tv": (1.0, 10.0, 100.0)}, {"optimizer": "sgd", "lr": 0.004,
          "phases": ((100, 1.0), (200, 0.1), (100, 0.01))}]
