"""Building blocks shared by the models: input normalisation, local response norm, pooling."""
import jax
import jax.numpy as jnp
import numpy as np

# torchvision / ImageNet statistics of [0, 1] RGB pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images, mean, std):
  """(images - mean) / std per channel; images NHWC in [0, 1]."""
  return (images - jnp.asarray(mean, images.dtype)) / jnp.asarray(std, images.dtype)


def local_response_norm(x, size: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75):
  """Krizhevsky et al. 2012, §3.3: b = a / (k + alpha * sum_{size adjacent maps} a^2)^beta.

  alpha multiplies the plain sum (the paper's formula), not the mean that Caffe and torch use.
  """
  half = size // 2
  sums = jax.lax.reduce_window(x * x, 0.0, jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                               ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))
  return x / (k + alpha * sums) ** beta


def max_pool(x, window: int = 3, stride: int = 2, padding="VALID"):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1),
                               (1, stride, stride, 1), padding)


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
