"""Classification with a model: softmax top-k, and averaging over crops or ensemble members."""
import functools

import jax
import jax.numpy as jnp
import numpy as np


def probabilities(apply_fn, variables, images):
  """Softmax probabilities (N, classes) of a batch of images."""
  logits, _ = apply_fn(variables, images)
  return jax.nn.softmax(logits.astype(jnp.float32))


@functools.partial(jax.jit, static_argnums=(0, 3))
def top_k(apply_fn, variables, images, k: int = 5):
  """(probabilities, class indices), each (N, k), of the softmax over the logits."""
  return jax.lax.top_k(probabilities(apply_fn, variables, images), k)


def padded_batches(images: np.ndarray, batch_size: int):
  """Yields (batch, n_valid) with every batch padded to batch_size, so one compiled shape serves."""
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    n_valid = len(batch)
    if n_valid < batch_size:
      batch = np.concatenate([batch, np.zeros((batch_size - n_valid,) + batch.shape[1:], batch.dtype)])
    yield batch, n_valid


def batched_top_k(apply_fn, variables, images: np.ndarray, k: int = 5, batch_size: int = 32):
  """top_k over any number of images in fixed-size batches; numpy (probs, indices)."""
  batch_size = min(batch_size, len(images))
  probs, indices = [], []
  for batch, n_valid in padded_batches(images, batch_size):
    p, i = top_k(apply_fn, variables, batch, k)
    probs.append(np.asarray(p)[:n_valid])
    indices.append(np.asarray(i)[:n_valid])
  return np.concatenate(probs), np.concatenate(indices)
