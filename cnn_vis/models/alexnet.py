"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) and its torchvision and CIFAR-sized variants.

One module, `AlexNet`, described by data: the conv stack (features, kernel, stride, padding,
groups), where local response norm and overlapping 3x3/2 max pooling follow, and the fc widths.
- `paper`: §3 and Fig. 2 of the paper on 227x227 inputs: 96-256-384-384-256 filters, 11x11/4
  first conv, LRN (k=2, n=5, alpha=1e-4, beta=0.75) after the ReLUs of conv1 and conv2, pooling
  after norm1, norm2 and conv5, fc 4096-4096-1000, dropout 0.5 after fc6 and fc7. `groups=2`
  splits conv2, conv4 and conv5 as the two-GPU net does; `groups=1` is the one-stream version.
- `torchvision`: torchvision's layout (64-192-384-256-256, no LRN, adaptive 6x6 average pool,
  dropout before fc6 and fc7) so its checkpoints load exactly.
- `cifar`: the paper's structure scaled to 32x32 inputs, width configurable.
Named layers (returned in `acts`): conv1..conv5 (after ReLU), norm1, norm2 (where LRN is used),
pool1, pool2, pool5, fc6, fc7 (after ReLU) and fc8 (the logits, before softmax).
"""
import dataclasses
from typing import Sequence

import flax.linen as nn

from cnn_vis.models import layers
from cnn_vis.models.geometry import Layer, Window
from cnn_vis.models.relu import relu


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  groups: int = 1


class AlexNet(nn.Module):
  """AlexNet-family network; __call__(images NHWC in [0,1]) -> (logits, acts)."""
  convs: Sequence[ConvSpec]
  fc_widths: Sequence[int] = (4096, 4096)
  num_classes: int = 1000
  lrn_after: Sequence[int] = (1, 2)            # conv indices followed by LRN
  pool_after: Sequence[int] = (1, 2, 5)        # conv indices followed by 3x3/2 max pooling
  pool_padding: str = "VALID"
  adaptive_pool: int | None = None             # torchvision's AdaptiveAvgPool2d size
  dropout_before_fc: bool = False              # torchvision: Dropout -> Linear; paper: Linear -> ReLU -> Dropout
  dropout_rate: float = 0.5
  mean: Sequence[float] = layers.IMAGENET_MEAN
  std: Sequence[float] = layers.IMAGENET_STD
  relu_mode: str = "standard"
  weight_std: float | None = None              # paper init: N(0, 0.01) weights; None: Flax defaults
  bias_one: Sequence[str] = ()                 # paper init: bias 1 in conv2, conv4, conv5, fc6, fc7

  @property
  def logits_name(self) -> str:
    return f"fc{6 + len(self.fc_widths)}"

  def geometry(self) -> tuple[Layer, ...]:
    """Named layers in forward order (logits excluded) with their windows."""
    pool = Window(3, 2, "same" if self.pool_padding == "SAME" else 0)
    out = []
    for i, spec in enumerate(self.convs, start=1):
      out.append(Layer(f"conv{i}", (Window(spec.kernel, spec.stride, spec.padding),)))
      if i in self.lrn_after:
        out.append(Layer(f"norm{i}"))
      if i in self.pool_after:
        out.append(Layer(f"pool{i}", (pool,)))
    out += [Layer(f"fc{j}", spatial=False) for j in range(6, 6 + len(self.fc_widths))]
    return tuple(out)

  def _init(self, name: str):
    kernel = (nn.initializers.normal(self.weight_std) if self.weight_std
              else nn.initializers.lecun_normal())
    bias = nn.initializers.ones if name in self.bias_one else nn.initializers.zeros
    return dict(kernel_init=kernel, bias_init=bias, name=name)

  @nn.compact
  def __call__(self, images, train: bool = False):
    acts = {}
    x = layers.normalize(images, self.mean, self.std)
    for i, spec in enumerate(self.convs, start=1):
      x = nn.Conv(spec.features, (spec.kernel, spec.kernel), (spec.stride, spec.stride),
                  padding=[(spec.padding, spec.padding)] * 2, feature_group_count=spec.groups,
                  conv_general_dilated=layers.strided_conv, **self._init(f"conv{i}"))(x)
      x = acts[f"conv{i}"] = relu(x, self.relu_mode)
      if i in self.lrn_after:
        x = acts[f"norm{i}"] = layers.local_response_norm(x)
      if i in self.pool_after:
        x = acts[f"pool{i}"] = layers.max_pool(x, 3, 2, self.pool_padding)
    if self.adaptive_pool:
      x = layers.adaptive_avg_pool(x, self.adaptive_pool)
    x = layers.flatten_chw(x)
    for j, width in enumerate(self.fc_widths, start=6):
      if self.dropout_before_fc:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = acts[f"fc{j}"] = relu(nn.Dense(width, **self._init(f"fc{j}"))(x), self.relu_mode)
      if not self.dropout_before_fc:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = acts[self.logits_name] = nn.Dense(self.num_classes, **self._init(self.logits_name))(x)
    return logits, acts


def paper_convs(groups: int = 2) -> tuple[ConvSpec, ...]:
  """Krizhevsky et al. 2012, §3.5 and Fig. 2."""
  return (ConvSpec(96, 11, 4), ConvSpec(256, 5, 1, 2, groups), ConvSpec(384, 3, 1, 1),
          ConvSpec(384, 3, 1, 1, groups), ConvSpec(256, 3, 1, 1, groups))


TORCHVISION_CONVS = (ConvSpec(64, 11, 4, 2), ConvSpec(192, 5, 1, 2), ConvSpec(384, 3, 1, 1),
                     ConvSpec(256, 3, 1, 1), ConvSpec(256, 3, 1, 1))

# CIFAR-10 and Fashion-MNIST training-set statistics of [0, 1] RGB pixels.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
FASHION_MNIST_MEAN = (0.286,) * 3
FASHION_MNIST_STD = (0.353,) * 3

PAPER_INIT = dict(weight_std=0.01, bias_one=("conv2", "conv4", "conv5", "fc6", "fc7"))


def alexnet(groups: int = 2, paper_init: bool = False, **kwargs) -> AlexNet:
  """The paper's network on 227x227 inputs (mean-subtracted 0..255 pixels, as the paper feeds)."""
  init = PAPER_INIT if paper_init else {}
  return AlexNet(convs=paper_convs(groups), std=(1 / 255,) * 3, **init, **kwargs)


def alexnet_torchvision(**kwargs) -> AlexNet:
  """torchvision.models.alexnet ("one weird trick" layout)."""
  return AlexNet(convs=TORCHVISION_CONVS, lrn_after=(), adaptive_pool=6, dropout_before_fc=True,
                 **kwargs)


def alexnet_cifar(width: float = 1.0, fc_width: int = 1024, num_classes: int = 10, lrn: bool = True,
                  groups: int = 1, paper_init: bool = False, **kwargs) -> AlexNet:
  """AlexNet scaled to 32x32: 5x5 then 3x3 convs at stride 1, 'SAME' 3x3/2 pools (32->16->8->4)."""
  w = lambda n: groups * max(int(round(n * width / groups)), 1)
  convs = (ConvSpec(w(64), 5, 1, 2), ConvSpec(w(192), 5, 1, 2, groups), ConvSpec(w(384), 3, 1, 1),
           ConvSpec(w(256), 3, 1, 1, groups), ConvSpec(w(256), 3, 1, 1, groups))
  init = PAPER_INIT if paper_init else {}
  kwargs = {"mean": CIFAR_MEAN, "std": CIFAR_STD, **kwargs}
  return AlexNet(convs=convs, fc_widths=(fc_width, fc_width), num_classes=num_classes,
                 lrn_after=(1, 2) if lrn else (), pool_padding="SAME", **init, **kwargs)


def alexnet_fashion_mnist(**kwargs) -> AlexNet:
  """alexnet_cifar with Fashion-MNIST's pixel statistics (28x28 grey images padded to 32x32x3)."""
  return alexnet_cifar(**{"mean": FASHION_MNIST_MEAN, "std": FASHION_MNIST_STD, **kwargs})
