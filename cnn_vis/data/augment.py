"""The AlexNet paper's data augmentation, as pure JAX functions (Krizhevsky et al. 2012, §4.1).

Training: random crops (224 of the 256x256 ImageNet images; 32 of 4-pixel zero-padded CIFAR-sized
images, the usual CIFAR variant) with horizontal flips, and PCA colour lighting: every image gets
    [p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T,   a_i ~ N(0, 0.1) drawn per image each time it is used,
where p_i, l_i are the eigenvectors and eigenvalues of the 3x3 covariance of RGB pixel values.
Evaluation (§4.1): the centre crop, or the ten crops (4 corners + centre, and their horizontal
flips) whose softmax outputs are averaged.

Why JAX and not tf.data ops: the train step applies these inside jit to the batch already on the
accelerator, so they cost no host CPU (2 cores here) and no extra transfers, they are
deterministic given the PRNG key (fold the step into the train state's key), they vmap over
images, and the evaluator and tests use the very same functions.

Images are NHWC float32 in [0, 1]; shapes and crop sizes are static (Python ints).
"""
import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.errors import check

# PCA of ImageNet RGB pixel values in [0, 1], as published with fb.resnet.torch
# (facebook/fb.resnet.torch: datasets/imagenet.lua, "Computed from random subset of ImageNet
# training images") and reused by the AlexNet-era Torch/PyTorch ImageNet codebases; the paper
# itself does not print its values. Eigenvalues descending; the COLUMNS of IMAGENET_EIGVEC are
# the eigenvectors (rows R, G, B), as fb.resnet.torch's transforms.Lighting uses them.
IMAGENET_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
IMAGENET_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                            [-0.5808, -0.0045, -0.8140],
                            [-0.5836, -0.6948, 0.4203]], np.float32)
LIGHTING_STD = 0.1  # paper §4.1: a_i ~ N(0, 0.1)


def random_crop_flip(key: jax.Array, images: jax.Array, crop: int, pad: int = 0) -> jax.Array:
  """A random crop x crop window of each image (zero-padded by `pad` first), flipped
  left-right with probability 1/2; (N, H, W, C) -> (N, crop, crop, C)."""
  if pad:
    images = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  n, height, width, channels = images.shape
  check(crop <= min(height, width), f"crop {crop} larger than the {height}x{width} images "
                                    f"(after padding {pad})")
  key_y, key_x, key_flip = jax.random.split(key, 3)
  tops = jax.random.randint(key_y, (n,), 0, height - crop + 1)
  lefts = jax.random.randint(key_x, (n,), 0, width - crop + 1)
  flips = jax.random.bernoulli(key_flip, 0.5, (n,))

  def one(image, top, left, flip):
    window = jax.lax.dynamic_slice(image, (top, left, 0), (crop, crop, channels))
    return jnp.where(flip, window[:, ::-1], window)

  return jax.vmap(one)(images, tops, lefts, flips)


def pca_lighting(key: jax.Array, images: jax.Array, eigval, eigvec,
                 std: float = LIGHTING_STD) -> jax.Array:
  """Adds eigvec @ (a * eigval), a ~ N(0, std^2) per image, to every pixel (paper §4.1).

  eigvec's columns are the eigenvectors. Values are not clipped, as in the paper and
  fb.resnet.torch.
  """
  alpha = std * jax.random.normal(key, (images.shape[0], 3), images.dtype)
  offsets = (alpha * jnp.asarray(eigval, images.dtype)) @ jnp.asarray(eigvec, images.dtype).T
  return images + offsets[:, None, None, :]


def pca_lighting_basis(images) -> tuple[jax.Array, jax.Array]:
  """(eigval descending, eigvec with eigenvectors as columns) of the RGB covariance of images.

  images: (..., 3), e.g. a sample of training images NHWC in [0, 1]. Eigenvector signs are
  arbitrary; lighting does not depend on them (a_i is symmetric).
  """
  pixels = jnp.asarray(images, jnp.float32).reshape(-1, 3)
  centred = pixels - pixels.mean(axis=0)
  covariance = centred.T @ centred / (pixels.shape[0] - 1)
  eigval, eigvec = jnp.linalg.eigh(covariance)  # ascending
  return eigval[::-1], eigvec[:, ::-1]


def center_crop(images: jax.Array, crop: int) -> jax.Array:
  """The central crop x crop window of each image (top/left rounded down)."""
  _, height, width, _ = images.shape
  check(crop <= min(height, width), f"crop {crop} larger than the {height}x{width} images")
  top, left = (height - crop) // 2, (width - crop) // 2
  return images[:, top:top + crop, left:left + crop]


def ten_crops(images: jax.Array, crop: int) -> jax.Array:
  """The paper's ten test crops, (10, N, crop, crop, C): top-left, top-right, bottom-left,
  bottom-right, centre, then the same five flipped left-right."""
  _, height, width, _ = images.shape
  check(crop <= min(height, width), f"crop {crop} larger than the {height}x{width} images")
  bottom, right = height - crop, width - crop
  corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
  crops = [images[:, top:top + crop, left:left + crop] for top, left in corners]
  return jnp.stack(crops + [c[:, :, ::-1] for c in crops])
