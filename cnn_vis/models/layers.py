"""Building blocks shared by the models: input normalisation, local response norm, pooling."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.models.geometry import Window

# torchvision / ImageNet statistics of [0, 1] RGB pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images, mean, std, bgr: bool = False):
  """(images - mean) / std per channel; images NHWC RGB in [0, 1], mean and std in RGB order.

  bgr=True then reverses the channel axis (RGB -> BGR), for Caffe-trained weights: with mean the
  Caffe mean pixel / 255 in RGB order and std 1/255, channel c of the result is
  255 * pixel_bgr[c] - mean_bgr[c], the Caffe input.
  """
  x = (images - jnp.asarray(mean, images.dtype)) / jnp.asarray(std, images.dtype)
  return x[..., ::-1] if bgr else x


def local_response_norm(x, size: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75):
  """Krizhevsky et al. 2012, §3.3: b = a / (k + alpha * sum_{size adjacent maps} a^2)^beta.

  alpha multiplies the plain sum (the paper's formula), not the mean that Caffe and torch use.
  """
  half = size // 2
  sums = jax.lax.reduce_window(x * x, 0.0, jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                               ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))
  return x / (k + alpha * sums) ** beta


NHWC = ("NHWC", "HWIO", "NHWC")


def _space_to_depth_conv(x, kernel, stride: int, pads):
  """A k x k conv at stride s written as a stride-1 conv of ceil(k/s)^2 taps over s x s blocks
  (space-to-depth); pads ((top, bottom), (left, right)). Same output as the strided conv."""
  n, height, width, channels = x.shape
  k, features = kernel.shape[0], kernel.shape[-1]
  taps = -(-k // stride)
  (top, bottom), (left, right) = pads
  out_h = (height + top + bottom - k) // stride + 1
  out_w = (width + left + right - k) // stride + 1
  size_h, size_w = stride * (out_h + taps - 1), stride * (out_w + taps - 1)
  # lax.pad crops with negative padding: rows past the last window are never read
  x = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (top, size_h - height - top, 0),
                                              (left, size_w - width - left, 0), (0, 0, 0)))
  x = x.reshape(n, size_h // stride, stride, size_w // stride, stride, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5).reshape(n, size_h // stride, size_w // stride, -1)
  kernel = jnp.pad(kernel, ((0, taps * stride - k), (0, taps * stride - k), (0, 0), (0, 0)))
  kernel = kernel.reshape(taps, stride, taps, stride, channels, features)
  kernel = kernel.transpose(0, 2, 1, 3, 4, 5).reshape(taps, taps, -1, features)
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x, kernel, stride: int, pads):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads, dimension_numbers=NHWC)


def _strided_conv_fwd(x, kernel, stride, pads):
  return _strided_conv(x, kernel, stride, pads), (x, kernel)


def _strided_conv_bwd(stride, pads, residuals, g):
  """Both gradients as transposes of the space-to-depth form: stride-1 convs, where XLA:CPU's
  transposed strided conv multiplies stride^2 - 1 inserted zeros for each real input."""
  x, kernel = residuals
  (dx,) = jax.linear_transpose(lambda x: _space_to_depth_conv(x, kernel, stride, pads), x)(g)
  (dk,) = jax.linear_transpose(lambda k: _space_to_depth_conv(x, k, stride, pads), kernel)(g)
  return dx, dk


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def strided_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None):
  """lax.conv_general_dilated (the signature flax.linen.Conv calls) whose backward pass, for a
  plain NHWC conv with equal strides > 1, runs as stride-1 convs (`_strided_conv_bwd`): AlexNet's
  11x11/4 conv1 input gradient becomes ~4x faster on XLA:CPU. Other convs go to lax unchanged."""
  plain = (len(set(window_strides)) == 1 and window_strides[0] > 1 and feature_group_count == 1
           and not isinstance(padding, str)
           and all(d in (None, 1) or set(d) == {1} for d in (lhs_dilation, rhs_dilation))
           and jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC) == dimension_numbers)
  if not plain:
    return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                        rhs_dilation, dimension_numbers, feature_group_count,
                                        precision=precision)
  return _strided_conv(lhs, rhs, window_strides[0], tuple(tuple(p) for p in padding))


def window_slices(x, window: int, stride: int) -> list:
  """The window*window strided views x[:, dy::stride, dx::stride] that a VALID window op (a pool,
  a depthwise conv) combines, in row-major window order (dy, dx)."""
  n, height, width, channels = x.shape
  out_h, out_w = (height - window) // stride + 1, (width - window) // stride + 1
  return [jax.lax.slice(x, (0, dy, dx, 0), (n, dy + stride * (out_h - 1) + 1,
                                            dx + stride * (out_w - 1) + 1, channels),
                        (1, stride, stride, 1))
          for dy in range(window) for dx in range(window)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool_valid(x, window: int, stride: int):
  return functools.reduce(jnp.maximum, window_slices(x, window, stride))


def _max_pool_fwd(x, window, stride):
  out = _max_pool_valid(x, window, stride)
  return out, (x, out)


def _max_pool_bwd(window, stride, residuals, g):
  """Each window's gradient goes to its first maximum in row-major order (torch's and cuDNN's
  switches; Zeiler & Fergus's unpooling)."""
  x, out = residuals
  height, width = x.shape[1:3]
  out_h, out_w = out.shape[1:3]
  grad = jnp.zeros_like(x)
  claimed = jnp.zeros(out.shape, bool)
  for k, view in enumerate(window_slices(x, window, stride)):
    dy, dx = divmod(k, window)
    first = (view == out) & ~claimed
    claimed = claimed | first
    # put the view's gradient back where it came from: interior padding undoes the stride
    grad += jax.lax.pad(jnp.where(first, g, 0.0).astype(x.dtype), jnp.zeros((), x.dtype), (
        (0, 0, 0), (dy, height - dy - stride * (out_h - 1) - 1, stride - 1),
        (dx, width - dx - stride * (out_w - 1) - 1, stride - 1), (0, 0, 0)))
  return (grad,)


_max_pool_valid.defvjp(_max_pool_fwd, _max_pool_bwd)


def ceil_pads(size: int, window: int, stride: int) -> tuple[int, int]:
  """(0, extra) padding after a map of `size` that makes a VALID pool give torch's ceil_mode size
  (Caffe's pooling; cnn_vis.models.geometry.Window.output_size has the rule)."""
  out = Window(window, stride, 0, ceil=True).output_size(size)
  return (0, max((out - 1) * stride + window - size, 0))


def max_pool(x, window: int = 3, stride: int = 2, padding: str = "VALID"):
  """Max pooling of NHWC maps; padding "VALID", "SAME" (TensorFlow's) or "CEIL" (torch's
  ceil_mode=True, Caffe's rounding: extra rows/columns at the bottom/right), padded with -inf.

  Computed as the maximum of window*window strided slices, with a gradient that routes each
  window's gradient to its first maximum: the same values and switches as lax.reduce_window and
  torch, but 10x (forward) and 5x (backward) faster than reduce_window / select_and_scatter on
  XLA:CPU, and plain elementwise work on accelerators.
  """
  if padding == "CEIL":
    pads = [ceil_pads(size, window, stride) for size in x.shape[1:3]]
  else:
    pads = jax.lax.padtype_to_pads(x.shape[1:3], (window, window), (stride, stride), padding)
  if any(p for pair in pads for p in pair):
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
  if min(x.shape[1:3]) < window:  # no complete window: an empty map, as reduce_window gives
    out = [max((size - window) // stride + 1, 0) for size in x.shape[1:3]]
    return jnp.zeros((x.shape[0], *out, x.shape[3]), x.dtype)
  return _max_pool_valid(x, window, stride)


def avg_pool(x, window: int = 2, stride: int = 2):
  sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, window, window, 1), (1, stride, stride, 1),
                               "VALID")
  return sums / (window * window)


def _bins(size: int, out: int):
  """torch.nn.AdaptiveAvgPool bins: [floor(i*size/out), ceil((i+1)*size/out))."""
  return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_avg_pool(x, out: int):
  """torch.nn.AdaptiveAvgPool2d((out, out)) on NHWC; identity when the map already has that size."""
  height, width = x.shape[1:3]
  if (height, width) == (out, out):
    return x
  rows = [x[:, a:b].mean(axis=1, keepdims=True) for a, b in _bins(height, out)]
  x = jnp.concatenate(rows, axis=1)
  cols = [x[:, :, a:b].mean(axis=2, keepdims=True) for a, b in _bins(width, out)]
  return jnp.concatenate(cols, axis=2)


def flatten_chw(x):
  """Flattens NHWC as torch flattens NCHW, so torch fc weights load without permutation."""
  return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def count_params(tree) -> int:
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree)))
