"""The CS231n lecture's example of fooling a linear classifier (Goodfellow et al. 2015, §3's
linear explanation; docs/papers.md §8).

  python -m cnn_vis.main --config=configs/lecture_linear_fooling.py --workdir=runs/linear

x = (2, -1, 3, -2, 2, 2, 1, -4, 5, 1), w = (-1, -1, 1, -1, 1, -1, 1, 1, -1, 1), b = 0: the class-1
score is -3, P(class 1) = sigmoid(-3) = 0.0474; x + 0.5 sign(w) = (1.5, -1.5, 3.5, -2.5, 2.5, 1.5,
1.5, -3.5, 4.5, 1.5) scores -3 + 0.5 * 10 = 2, P = 0.88 (tests/test_adversarial.py checks these
numbers). No model or weights are loaded.
"""
import ml_collections

from configs import common


def get_config(arg=None):
  common.check_arg(arg, "smoke")
  config = ml_collections.ConfigDict()
  config.experiment = "linear_fooling"
  config.x = (2.0, -1.0, 3.0, -2.0, 2.0, 2.0, 1.0, -4.0, 5.0, 1.0)   # the slide's input
  config.w = (-1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0)  # the slide's weights
  config.b = 0.0
  config.eps = 0.5
  config.dimensions = (10, 100, 1000, 10_000, 100_000)   # the general point's input sizes
  config.seed = 0
  if arg == "smoke":
    config.dimensions = (10, 1000)
  return config


def get_sweep():
  """Larger steps, and the point in growing dimension at a tiny eps."""
  return [{"eps": e} for e in (0.1, 0.25, 0.5, 1.0)]
