"""VGG-16 and VGG-19 (Simonyan & Zisserman 2015, configurations D and E) in torchvision's layout.

Named layers: conv{block}_{i} (after ReLU), pool1..pool5, fc6, fc7 (after ReLU), fc8 (logits).
`pooling="avg"` swaps max for average pooling, as Gatys et al. 2016 (§2) do for style transfer.
"""
from typing import Sequence

import flax.linen as nn

from cnn_vis.models import layers
from cnn_vis.models.geometry import Layer, Window
from cnn_vis.models.relu import relu

VGG16_BLOCKS = ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3)
VGG19_BLOCKS = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


class VGG(nn.Module):
  """VGG network; __call__(images NHWC in [0,1]) -> (logits, acts)."""
  blocks: Sequence[Sequence[int]] = VGG16_BLOCKS
  num_classes: int = 1000
  pooling: str = "max"
  dropout_rate: float = 0.5
  fc_width: int = 4096          # fc6, fc7 (4096 in the paper; small for quick tests)
  mean: Sequence[float] = layers.IMAGENET_MEAN
  std: Sequence[float] = layers.IMAGENET_STD
  relu_mode: str = "standard"

  logits_name = "fc8"

  def geometry(self) -> tuple[Layer, ...]:
    """Named layers in forward order (logits excluded) with their windows."""
    out = []
    for b, widths in enumerate(self.blocks, start=1):
      out += [Layer(f"conv{b}_{i}", (Window(3, 1, 1),)) for i in range(1, len(widths) + 1)]
      out.append(Layer(f"pool{b}", (Window(2, 2),)))
    return tuple(out) + (Layer("fc6", spatial=False), Layer("fc7", spatial=False))

  @nn.compact
  def __call__(self, images, train: bool = False):
    acts = {}
    x = layers.normalize(images, self.mean, self.std)
    pool = layers.max_pool if self.pooling == "max" else layers.avg_pool
    for b, widths in enumerate(self.blocks, start=1):
      for i, width in enumerate(widths, start=1):
        name = f"conv{b}_{i}"
        x = acts[name] = relu(nn.Conv(width, (3, 3), padding=[(1, 1)] * 2, name=name)(x),
                              self.relu_mode)
      x = acts[f"pool{b}"] = pool(x, 2, 2)
    x = layers.flatten_chw(layers.adaptive_avg_pool(x, 7))
    for name in ("fc6", "fc7"):
      x = acts[name] = relu(nn.Dense(self.fc_width, name=name)(x), self.relu_mode)
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = acts["fc8"] = nn.Dense(self.num_classes, name="fc8")(x)
    return logits, acts


def vgg16(**kwargs) -> VGG:
  return VGG(blocks=VGG16_BLOCKS, **kwargs)


def vgg19(**kwargs) -> VGG:
  return VGG(blocks=VGG19_BLOCKS, **kwargs)
