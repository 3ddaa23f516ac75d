"""Projected gradient descent with a random start (Madry et al. 2018, §2-§3; docs/papers.md §22).

  python -m cnn_vis.main --config=configs/madry18_pgd.py --workdir=runs/pgd
  python -m cnn_vis.main --config=configs/madry18_pgd.py --config.reference=foolbox \
      --workdir=runs/pgd_foolbox      # foolbox 3's LinfPGD on the same weights, side by side

From a uniform random point of the L-inf ball, 10 projected steps of sign(grad J), each of
2.5 eps / 10 (the CIFAR-10 challenge's 8/255 in 10 steps of 2/255 keeps this ratio), clipped to
the ball and to [0, 1]. Default eps 2/255 on the pretrained EfficientNet-Lite0 and the 100
ImageNet samples (the paper attacks its own MNIST and CIFAR-10 models, whose weights are not
here; `--config.checkpoint=...` attacks a trained one). `--config.norm=l2` runs L2 PGD.
"""
from configs import _adversarial


def get_config(arg=None):
  config = _adversarial.attack_config("pgd", arg)
  config.eps = (2 / 255,)
  config.steps = 10              # cifar10_challenge config.json: 10 steps (MNIST: 40 of 0.01)
  if arg == "smoke":
    config.eps = (8 / 255,)
    config.steps = 3
  return config


def get_sweep():
  """An eps curve (one compiled call), L2 PGD, and more steps."""
  return [{"eps": (1 / 255, 2 / 255, 4 / 255, 8 / 255)}, {"norm": "l2", "eps": (0.25, 0.5, 1.0)},
          {"steps": 40}]
