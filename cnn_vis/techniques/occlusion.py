"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2 and Fig. 7).

A square of constant `fill` slides over the image, `size` pixels wide, `stride` pixels apart; at
each position the network classifies the occluded copy and we record, as in Fig. 7:
- (b) the total activation of one feature map of `feature_layer`: the map with the strongest
  total activation on the unoccluded image;
- (d) the probability (and the pre-softmax score) of the correct class;
- (e) the most probable label and its probability.
The paper states neither the size, the stride nor the grey level (docs/papers.md §2: not
stated); the experiment's config documents the defaults we chose.

Window positions cover the whole image: starts 0, stride, 2 stride, ... and a last one flush
with the far edge when the stride does not divide (length - size). `to_pixels` turns any map
over positions into a per-pixel map, the mean over the windows covering each pixel (Captum's
`Occlusion` convention for attributions, e.g. of score(x) - score(occluded)).

All N * P occluded copies are evaluated by `lax.map` over the P positions with
`batch_size = chunk // N`: each step is one vmapped forward pass of that many positions of every
image, so memory is bounded by `chunk` images whatever the number of positions.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.errors import check, choose


class OcclusionMaps(NamedTuple):
  starts_y: jax.Array        # (Py,) top row of each window position
  starts_x: jax.Array        # (Px,) left column
  classes: jax.Array         # (N,) the class whose probability is mapped (e.g. the correct one)
  prob: jax.Array            # (N, Py, Px) its probability with the window at each position
  score: jax.Array           # (N, Py, Px) its pre-softmax score
  label: jax.Array           # (N, Py, Px) the most probable label
  label_prob: jax.Array      # (N, Py, Px) that label's probability
  feature: jax.Array | None  # (N, Py, Px) total activation of the strongest feature map
  feature_channel: jax.Array | None  # (N,) which map (chosen on the unoccluded image)
  base_prob: jax.Array       # (N,) unoccluded values of prob, score and feature
  base_score: jax.Array
  base_feature: jax.Array | None


def window_starts(length: int, size: int, stride: int) -> np.ndarray:
  """First pixel of every window along an axis of `length` pixels (last one flush with the edge)."""
  check(size >= 1, f"occlusion window size must be >= 1, got {size}")
  check(stride >= 1, f"occlusion stride must be >= 1, got {stride}")
  check(size <= length, f"occlusion window {size} is larger than the image ({length} pixels)")
  count = -(-(length - size) // stride) + 1
  return np.minimum(np.arange(count) * stride, length - size).astype(np.int32)


def _window_masks(starts, size: int, length: int):
  """(P, length) 0/1 masks of the windows starting at `starts`."""
  pixels = jnp.arange(length)
  starts = jnp.asarray(starts)[:, None]
  return ((pixels >= starts) & (pixels < starts + size)).astype(jnp.float32)


def to_pixels(grid, starts_y, starts_x, size: int, height: int, width: int):
  """(..., Py, Px) values per window position -> (..., H, W): each pixel's mean over the windows
  that cover it (the masks are separable, so this is two small matrix products)."""
  rows = _window_masks(starts_y, size, height)   # (Py, H)
  cols = _window_masks(starts_x, size, width)    # (Px, W)
  total = jnp.einsum("...ab,ah,bw->...hw", grid, rows, cols)
  return total / jnp.maximum(jnp.einsum("ah,bw->hw", rows, cols), 1.0)


def _take(values, index):
  return jnp.take_along_axis(values, index[:, None], axis=1)[:, 0]


@functools.partial(jax.jit,
                   static_argnames=("apply_fn", "size", "stride", "feature_layer", "chunk"))
def occlusion(apply_fn, variables, images, classes=-1, fill=0.5, *, size: int, stride: int,
              feature_layer: str | None = None, chunk: int = 64) -> OcclusionMaps:
  """Maps of class probability, score, top label and strongest feature map over window positions.

  images (N, H, W, C) in [0, 1]; classes: (N,) or scalar class index, -1 = the class predicted on
  the unoccluded image; fill: grey level (scalar) or per-channel (C,) value in [0, 1];
  chunk: occluded images per forward pass.
  """
  n, height, width, channels = images.shape
  starts_y, starts_x = window_starts(height, size, stride), window_starts(width, size, stride)
  check(chunk >= 1, f"chunk must be >= 1, got {chunk}")
  logits, acts = apply_fn(variables, images)
  classes = jnp.broadcast_to(jnp.asarray(classes, jnp.int32), (n,))
  classes = jnp.where(classes < 0, jnp.argmax(logits, axis=-1), classes)
  channel = None
  if feature_layer is not None:
    choose("layer", feature_layer, acts)
    check(acts[feature_layer].ndim == 4, f"layer {feature_layer} has no feature maps (shape "
                                         f"{tuple(acts[feature_layer].shape)}); pick a conv layer")
    channel = jnp.argmax(acts[feature_layer].sum(axis=(1, 2)), axis=-1)
  fill = jnp.broadcast_to(jnp.asarray(fill, images.dtype), (channels,))
  rows = _window_masks(starts_y, size, height)
  cols = _window_masks(starts_x, size, width)

  def measure(logits, acts):
    probs = jax.nn.softmax(logits.astype(jnp.float32))
    out = dict(prob=_take(probs, classes), score=_take(logits, classes),
               label=jnp.argmax(probs, axis=-1), label_prob=probs.max(axis=-1))
    if feature_layer is not None:
      out["feature"] = _take(acts[feature_layer].sum(axis=(1, 2)), channel)
    return out

  def at_position(index):
    mask = (rows[index[0]][:, None] * cols[index[1]][None, :])[None, :, :, None] > 0
    return measure(*apply_fn(variables, jnp.where(mask, fill, images)))

  grid = jnp.stack(jnp.meshgrid(jnp.arange(len(starts_y)), jnp.arange(len(starts_x)),
                                indexing="ij"), axis=-1).reshape(-1, 2)
  per_position = jax.lax.map(at_position, grid, batch_size=max(1, min(chunk // n, len(grid))))
  maps = {k: jnp.moveaxis(v, 0, -1).reshape(n, len(starts_y), len(starts_x))
          for k, v in per_position.items()}
  base = measure(logits, acts)
  return OcclusionMaps(jnp.asarray(starts_y), jnp.asarray(starts_x), classes, maps["prob"],
                       maps["score"], maps["label"], maps["label_prob"], maps.get("feature"),
                       channel, base["prob"], base["score"], base.get("feature"))
