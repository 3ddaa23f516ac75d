"""Box-constrained L-BFGS adversarial examples (Szegedy et al. 2014, §4.1, Fig. 5;
docs/papers.md §23).

  python -m cnn_vis.main --config=configs/szegedy14_intriguing.py --workdir=runs/szegedy
  python -m cnn_vis.main --config=configs/szegedy14_intriguing.py --config.box=clip \
      --workdir=runs/szegedy_clip       # the projected variant

Minimise c ||r||^2 + loss_f(x + r, l), x + r in [0, 1], towards a random other class l, with
optax's L-BFGS (zoom line search), the box as a sigmoid parameterisation (`box=clip`: plain
pixels clipped after each step), for each c of a grid in one vmapped render and then two
bisection rounds in log c; per image the result of the largest c that still reaches l (the
smallest perturbation). The paper publishes neither its L-BFGS settings nor its c schedule: 20
iterations, c in {0.1, 1, 10, 100} are ours. The report shows image | perturbation (magnified) |
adversarial with both labels, as Fig. 5 does. Default: the pretrained EfficientNet-Lite0 on the
first 10 ImageNet samples (each (image, c) pair is a full L-BFGS run).
"""
from configs import _adversarial


def get_config(arg=None):
  config = _adversarial.minimal_config("lbfgs", arg)
  if arg != "smoke":
    config.max_images = 10
    config.batch_size = 10
  return config


def get_sweep():
  return [{"box": "sigmoid"}, {"box": "clip"}, {"model": "squeezenet1_1"}]
