"""Class model visualisation (Simonyan, Vedaldi & Zisserman 2014, §2, eq. 1, Fig. 1).

  python -m cnn_vis.main --config=configs/simonyan14_class_models.py --workdir=runs/class_models
  python -m cnn_vis.main --config=configs/simonyan14_class_models.py:paper --workdir=runs/cm_paper
  python -m cnn_vis.main --config=configs/simonyan14_class_models.py \
      --config.l2="(0.0, 0.001, 0.01, 0.1)" --workdir=runs/cm_lambda   # lambda sweep, one call

argmax_I S_c(I) - lambda ||I||^2 on the pre-softmax score (the paper's eq. 1 is `:paper`). The
paper's net has no public weights; the default is the pretrained SqueezeNet 1.1, a ReLU + max-pool
net like the paper's, with the `lucid` preset (cnn_vis/techniques/recipes.py), chosen by
measurement: benchmarks/recognisability.py renders these ten classes with each preset on one
pretrained net and counts how many the OTHER net puts in its top 5 (each preset's own steps):

  preset   rendered on squeezenet1_1,     rendered on efficientnet_lite0,
           judged by efficientnet_lite0   judged by squeezenet1_1
  paper    1/10                           0/10
  jitter   1/10                           0/10
  cs231n   6/10                           0/10
  lucid    6/10                           not measured (stopped for time)

Every preset is top-1 on its own net (9-10 of 10): images rendered on EfficientNet-Lite0 are
patterns that only it recognises, hence the SqueezeNet default. lambda, the step rule and the
iteration count are not in the paper (docs/papers.md §4): each preset's are in
cnn_vis/techniques/class_model.py. `:paper` is eq. 1 as stated (no jitter, no clipping).
Tuples (l2, lr) are swept as one vmapped compiled call: one tile per class and setting.
"""
from configs import common

# Ten easily named ImageNet classes: goldfish, ostrich, tarantula, flamingo, jellyfish, pineapple,
# strawberry, volcano, daisy, pizza.
CLASSES = "1;9;76;130;107;953;949;980;985;963"
DEFAULT_PRESET = "lucid"


def get_config(arg=None):
  common.check_arg(arg, "paper", "smoke")
  config = common.base_config("class_model", arg, model="squeezenet1_1")
  config.classes = CLASSES          # indices or class names, separated by ";"
  config.image_size = 0             # 0: the model's input size
  # paper | jitter | cs231n | lucid (cnn_vis/techniques/class_model.py PRESETS), chosen by
  # measurement (see the docstring); `:paper` is Simonyan et al.'s eq. 1 as stated.
  config.preset = DEFAULT_PRESET
  # Empty / 0 / -1: the preset's value. A tuple of l2 or lr values renders one tile per value.
  config.l2 = ()                    # lambda in [0, 1] pixel units (paper: not stated)
  config.lr = ()                    # the optimiser's step (paper: not stated)
  config.steps = 0                  # paper: not stated
  config.optimizer = ""             # any optax optimiser name, or `progress` / `mean_abs`
  config.jitter = -1                # N >= 0: replace the preset's transforms by a roll of <= N px
  config.shift_check = 8            # classify again after a random shift of up to 8 px (0: off)
  # A second pretrained net classifies every class model: is the class in its top 5? "auto":
  # squeezenet1_1 for efficientnet_lite0 and the other way round; "": no second net.
  config.judge = "auto"
  config.chunk = 0                  # settings per vmapped chunk (0: all at once)
  # scan: each render is ONE compiled call; dispatch: one compiled vmapped step called per step
  # (same images, several times faster on CPU); auto: dispatch on CPU, scan on accelerators.
  config.loop = "auto"
  if arg == "paper":
    config.preset = "paper"
  elif arg == "smoke":  # base_config made the model a small random alexnet_cifar
    config.classes = "0;1;cat"
    config.preset = "paper"
    config.l2 = (0.0, 0.01)
    config.steps = 5
    config.shift_check = 2
    config.judge = ""
  return config


def get_sweep():
  """Every preset (separate runs: their optimisers and step counts differ) and a lambda sweep of
  the paper's eq. 1 (one run, all lambdas in one compiled call)."""
  return [{"preset": name} for name in ("paper", "jitter", "cs231n", "lucid")] + [
      {"preset": "paper", "l2": (0.0, 0.001, 0.01, 0.1)}]
