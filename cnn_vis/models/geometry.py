"""Layer geometry: how each named layer's positions map onto the input, without running the net.

Each model declares its named layers in forward order (`module.geometry()`), each as the windows
(kernel, stride, padding) that lead to it from the previous named layer, along the path with the
largest receptive field (a fire module's 3x3 expand branch, an MBConv block's main branch). From
these, `receptive_fields` computes for every layer the classic three numbers (Araujo et al. 2019,
"Computing receptive fields of convolutional neural networks", Distill, eqs. 2-3):
- size:   r_L = 1 + sum_l (k_l - 1) prod_{i<l} s_i
- stride: S_L = prod_l s_l
- offset: u_L = -sum_l p_l prod_{i<l} s_i, where p_l is the padding before the first input pixel
so position y of layer L sees input rows [u_L + y S_L, u_L + y S_L + r_L), before clipping to the
image (borders: the window partly covers padding there, so the clipped box is smaller).
Layers after a global reduction (fc layers, global pooling) see the whole input (`spatial=False`).
"""
import dataclasses
import math
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class Window:
  """A sliding-window op (conv or pool): kernel k, stride s, padding before the first pixel.

  padding: an int (pixels added before the first pixel; after it as well unless `ceil` adds
    more), or "same" (TensorFlow: total max((ceil(n / s) - 1) s + k - n, 0), the smaller half
    first). ceil: the output size rounds up, as torch's ceil_mode and Caffe's pooling do.
  """
  kernel: int
  stride: int = 1
  padding: int | str = 0
  ceil: bool = False

  def pad_before(self, size: int) -> int:
    if self.padding == "same":
      return self._same_total(size) // 2
    return int(self.padding)

  def _same_total(self, size: int) -> int:
    return max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)

  def output_size(self, size: int) -> int:
    if self.padding == "same":
      return math.ceil(size / self.stride)
    span = size + 2 * int(self.padding) - self.kernel
    steps = -(-span // self.stride) if self.ceil else span // self.stride
    if self.ceil and steps * self.stride >= size + int(self.padding):
      steps -= 1  # torch: the last window must start inside the input or its left padding
    return steps + 1


@dataclasses.dataclass(frozen=True)
class Layer:
  """A named layer: the windows from the previous named layer (or the input) to it.

  spatial=False: a layer after a global reduction (fc, global pooling); it sees the whole input.
  """
  name: str
  windows: tuple[Window, ...] = ()
  spatial: bool = True


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
  """Position (y, x) of `layer` sees input rows [offset + y stride, offset + y stride + size)
  (columns alike); `height` x `width` is the layer's map size at the given input size."""
  layer: str
  size: int
  stride: int
  offset: int
  height: int
  width: int

  def box(self, y: int, x: int, height: int, width: int) -> tuple[int, int, int, int]:
    """[top, left, bottom, right) of position (y, x) clipped to a height x width input
    (bottom and right exclusive)."""
    top, left = self.offset + y * self.stride, self.offset + x * self.stride
    return (max(top, 0), max(left, 0), min(top + self.size, height), min(left + self.size, width))

  def as_dict(self) -> dict:
    return {"layer": self.layer, "size": self.size, "stride": self.stride, "offset": self.offset}


def receptive_fields(layers: Sequence[Layer], input_size: int) -> dict[str, ReceptiveField]:
  """{layer name: ReceptiveField} of every layer, in forward order, for square inputs."""
  size, stride, offset, extent = 1, 1, 0, input_size
  out = {}
  for layer in layers:
    if not layer.spatial:
      size, stride, offset, extent = input_size, input_size, 0, 1
    for window in layer.windows:
      offset -= window.pad_before(extent) * stride
      size += (window.kernel - 1) * stride
      stride *= window.stride
      extent = window.output_size(extent)
    out[layer.name] = ReceptiveField(layer.name, size, stride, offset, extent, extent)
  return out

