"""FGSM (Goodfellow, Shlens & Szegedy 2015, eq. 3; docs/papers.md §8): x' = x + eps sign(grad J).

  python -m cnn_vis.main --config=configs/goodfellow15_fgsm.py --workdir=runs/fgsm
  python -m cnn_vis.main --config=configs/goodfellow15_fgsm.py:fashion_mnist --workdir=runs/fgsm_fm
  python -m cnn_vis.main --config=configs/goodfellow15_fgsm.py:fashion_mnist \
      --config.model=small_convnet --workdir=runs/fgsm_fm_convnet

Default: the pretrained EfficientNet-Lite0 on the 100 ImageNet samples (../shared/data/
imagenet-samples, labels from the file names), an accuracy-versus-eps curve in one compiled call
(one gradient for every eps). The paper's ImageNet example uses eps = 0.007 (GoogLeNet); the eps
here are whole 8-bit levels, so the saved PNGs hold exactly x +- eps.

`:fashion_mnist` is the paper's linearity argument (§4: a shallow softmax regression at
eps 0.25 has 99.9% error on MNIST, mean confidence 79.3%) on Fashion-MNIST: the run first trains
the softmax regression (or `--config.model=small_convnet`, a small ReLU conv net standing in for
the paper's maxout nets) with the project's training loop (configs/_adversarial.py:
fashion_mnist_training; W/train), then attacks the 10,000 test images. The images are the
32x32x3 zero-padded copies cnn_vis.data yields, and the attack may perturb the three (equal)
channels and the padding independently, which the paper's 28x28 grey images do not allow.
"""
import ml_collections

from configs import _adversarial


def get_config(arg=None):
  config = _adversarial.attack_config("fgsm", arg, extra_args=("fashion_mnist",))
  # Whole 8-bit levels; eps 0 gives the clean accuracy of the same pipeline.
  config.eps = (0.0, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
  if arg == "fashion_mnist":
    config.model = "softmax_regression"
    config.pretrained = False
    config.model_kwargs = ml_collections.ConfigDict()
    config.dataset = "fashion_mnist"
    config.split = "test"
    config.max_images = 10_000
    config.eps = (0.05, 0.1, 0.25)    # §4: eps 0.25 (MNIST, [0, 1] pixels)
    config.batch_size = 500
    config.train = _adversarial.fashion_mnist_training("softmax_regression")
  elif arg == "smoke":
    config.eps = (0.0, 2 / 255, 8 / 255)
  return config


def get_sweep():
  """Both ImageNet models with weights, and the L2 fast gradient method."""
  return [{"model": "efficientnet_lite0"}, {"model": "squeezenet1_1"},
          {"norm": "l2", "eps": (0.1, 0.3, 1.0)}]
