"""Small Fashion-MNIST classifiers for Goodfellow, Shlens & Szegedy's linearity argument
(2015, §4 and §6; docs/papers.md §8): a shallow softmax regression and a small conv net, both on
the 32x32x3 images cnn_vis.data yields for Fashion-MNIST (28x28 grey, zero-padded, repeated to RGB).

- `softmax_regression`: logits = W vec(x) + b on the normalised pixels, the "shallow softmax"
  whose 99.9% error at eps 0.25 on MNIST the paper reports. It has no hidden layer; its only named
  spatial map is its (normalised) input, `pixels`.
- `small_convnet`: conv1 5x5 (32) + ReLU, 2x2/2 max-pool, conv2 5x5 (64) + ReLU, 2x2/2 max-pool,
  fc3 (128) + ReLU, fc4 = the logits. A ReLU stand-in for the paper's maxout networks: a deeper,
  still piecewise-linear model.
Both normalise with Fashion-MNIST's training-set pixel statistics, as alexnet_fashion_mnist does.
"""
from typing import Sequence

import flax.linen as nn

from cnn_vis.models import layers
from cnn_vis.models.alexnet import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from cnn_vis.models.geometry import Layer, Window
from cnn_vis.models.relu import relu


class SoftmaxRegression(nn.Module):
  """logits = Dense(num_classes)(vec((x - mean) / std)); __call__ -> (logits, acts)."""
  num_classes: int = 10
  mean: Sequence[float] = FASHION_MNIST_MEAN
  std: Sequence[float] = FASHION_MNIST_STD
  relu_mode: str = "standard"   # no ReLU; kept so every model takes the same options

  @property
  def logits_name(self) -> str:
    return "logits"

  def geometry(self) -> tuple[Layer, ...]:
    return (Layer("pixels"),)

  @nn.compact
  def __call__(self, images, train: bool = False):
    x = layers.normalize(images, self.mean, self.std)
    logits = nn.Dense(self.num_classes, name="logits")(layers.flatten_chw(x))
    return logits, {"pixels": x, "logits": logits}


class SmallConvNet(nn.Module):
  """Two 5x5 conv + 2x2 max-pool stages and two fc layers; __call__ -> (logits, acts)."""
  features: Sequence[int] = (32, 64)
  fc_width: int = 128
  num_classes: int = 10
  mean: Sequence[float] = FASHION_MNIST_MEAN
  std: Sequence[float] = FASHION_MNIST_STD
  relu_mode: str = "standard"

  @property
  def logits_name(self) -> str:
    return f"fc{len(self.features) + 2}"

  def geometry(self) -> tuple[Layer, ...]:
    out = []
    for i in range(1, len(self.features) + 1):
      out += [Layer(f"conv{i}", (Window(5, 1, 2),)), Layer(f"pool{i}", (Window(2, 2, 0),))]
    return tuple(out) + (Layer(f"fc{len(self.features) + 1}", spatial=False),)

  @nn.compact
  def __call__(self, images, train: bool = False):
    acts = {}
    x = layers.normalize(images, self.mean, self.std)
    for i, features in enumerate(self.features, start=1):
      x = nn.Conv(features, (5, 5), padding=[(2, 2), (2, 2)], name=f"conv{i}")(x)
      x = acts[f"conv{i}"] = relu(x, self.relu_mode)
      x = acts[f"pool{i}"] = layers.max_pool(x, 2, 2)
    hidden = f"fc{len(self.features) + 1}"
    x = nn.Dense(self.fc_width, name=hidden)(layers.flatten_chw(x))
    x = acts[hidden] = relu(x, self.relu_mode)
    logits = acts[self.logits_name] = nn.Dense(self.num_classes, name=self.logits_name)(x)
    return logits, acts


def softmax_regression(**kwargs) -> SoftmaxRegression:
  return SoftmaxRegression(**kwargs)


def small_convnet(**kwargs) -> SmallConvNet:
  return SmallConvNet(**kwargs)
