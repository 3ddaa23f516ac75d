"""Class model visualisation (Simonyan, Vedaldi & Zisserman 2014, §2, eq. 1, Fig. 1).

  python -m cnn_vis.main --config=configs/simonyan14_class_models.py --workdir=runs/class_models
  python -m cnn_vis.main --config=configs/simonyan14_class_models.py:paper --workdir=runs/cm_paper
  python -m cnn_vis.main --config=configs/simonyan14_class_models.py \
      --config.l2="(0.0, 0.001, 0.01, 0.1)" --workdir=runs/cm_lambda   # lambda sweep, one call

argmax_I S_c(I) - lambda ||I||^2 on the pre-softmax score, from the zero image of the
mean-subtracted space (the model's mean pixel). The paper's net has no public weights, so the
default is the pretrained EfficientNet-Lite0. lambda, the step rule and the iteration count are
not in the paper (docs/papers.md §4): ours are in cnn_vis/techniques/class_model.py. Default: 10
classes at 224 px, 100 Adam steps; every image is classified as its class with p >= 0.9 and is
still top-1 after a random shift of up to 8 pixels (metrics.jsonl; tests/test_class_model.py
checks the same at 160 px with 60 steps). `:paper` drops the two additions that make the images
shift-robust (jitter 16, clipping to [0, 1]), which the paper does not have.
Tuples (l2, lr) are swept as one vmapped compiled call: one tile per class and setting.
"""
from configs import common

# Ten easily named ImageNet classes: goldfish, ostrich, tarantula, flamingo, jellyfish, pineapple,
# strawberry, volcano, daisy, pizza.
CLASSES = "1;9;76;130;107;953;949;980;985;963"


def get_config(arg=None):
  config = common.base_config("class_model", arg)
  config.classes = CLASSES          # indices or class names, separated by ";"
  config.image_size = 0             # 0: the model's input size (224)
  config.l2 = (0.01,)               # lambda in [0, 1] pixel units (paper: not stated); tuple sweeps
  config.lr = (0.02,)               # Adam step (paper: not stated); tuple sweeps
  config.steps = 100                # paper: not stated
  config.optimizer = "adam"         # any optax optimiser name, or `progress` / `mean_abs`
  config.jitter = 16                # not in the paper: random roll of up to 16 px per step
  config.clip = True                # not in the paper: keep pixels in [0, 1]
  config.shift_check = 8            # classify again after a random shift of up to 8 px (0: off)
  config.chunk = 0                  # settings per vmapped chunk (0: all at once)
  # scan: each render is ONE compiled call; dispatch: one compiled vmapped step called per step
  # (same images, several times faster on CPU); auto: dispatch on CPU, scan on accelerators.
  config.loop = "auto"
  if arg == "paper":
    config.jitter = 0
    config.clip = False
  elif arg == "smoke":  # base_config made the model a small random alexnet_cifar
    config.classes = "0;1;cat"
    config.l2 = (0.0, 0.01)
    config.steps = 5
    config.shift_check = 2
  return config


def get_sweep():
  """A lambda sweep (one run, all lambdas in one compiled call) and the paper-literal variant."""
  return [{"l2": (0.0, 0.001, 0.01, 0.1)}, {"jitter": 0, "clip": False}]
