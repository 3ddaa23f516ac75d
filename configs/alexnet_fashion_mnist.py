"""AlexNet's recipe on Fashion-MNIST (Xiao et al. 2017), on a 2-core CPU.

    python -m cnn_vis.main --config=configs/alexnet_fashion_mnist.py --workdir=runs/fashion

Data: Debian's dataset-fashion-mnist files (/usr/share/datasets/fashion-mnist, prepared once as
the tfds `fashion_mnist` dataset), 28x28 grey images zero-padded to 32x32 and repeated to RGB;
60,000 training and 10,000 test images. Model: `alexnet_fashion_mnist` (alexnet_cifar with
Fashion-MNIST's pixel mean/std).

The recipe is configs/alexnet_cifar10.py's (itself the paper's, scaled to a CPU; see there for
each change and why), with fewer epochs: the task is easier. PCA lighting on grey images reduces
to a brightness jitter along (1, 1, 1), which is what the training-set PCA finds.

RESULTS (2-core AMD EPYC CPU, XLA CPU, 1 device, 12 epochs, 2026-11-24, machine shared with
other jobs): 91.16% test accuracy (centre crop), 91.41% with image + mirror averaging.
"""
from configs import alexnet_cifar10


def get_config(arg=None):
  config = alexnet_cifar10.get_config(arg)
  config.model = "alexnet_fashion_mnist"
  if arg != "smoke":
    config.dataset = "fashion_mnist"
    config.epochs = 12
  return config


def get_sweep():
  return [{"epochs": e} for e in (8, 12, 20)]
