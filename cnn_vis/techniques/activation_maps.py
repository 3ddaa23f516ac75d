"""Every channel of a layer for one image (Yosinski et al. 2015, §2 and the deep-visualization
toolbox's main view: docs/papers.md §5; the lecture's "Visualizing Activations").

`channel_maps` returns a layer's activations of each image as (N, C, H, W) maps; `shared_scale`
gives the one colour scale all channels of an image are shown on (so a bright tile is a strong
channel, not a stretched weak one); `strongest` ranks channels by their spatial maximum, the
activation that also ranks an image in that unit's top patches (cnn_vis.techniques.patches).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.techniques import dataset_pass


@functools.partial(jax.jit, static_argnames=("forward", "layer"))
def _maps(forward, layer: str, variables, images):
  acts = forward(variables, images)[layer]
  if acts.ndim == 2:                      # an fc layer: one value per channel
    acts = acts[:, None, None, :]
  return jnp.transpose(acts, (0, 3, 1, 2))


def channel_maps(apply_fn, variables, images, layer: str) -> np.ndarray:
  """(N, C, H, W) activations of `layer` for images (N, H, W, 3); fc layers give 1 x 1 maps."""
  forward = dataset_pass.features(apply_fn, (layer,))
  return np.asarray(_maps(forward, layer, variables, jnp.asarray(images, jnp.float32)))


def shared_scale(maps) -> tuple[float, float]:
  """(low, high) of one image's maps (C, H, W): one colour scale for every channel; low is 0 for
  rectified layers (no negative value), else the minimum."""
  maps = np.asarray(maps, np.float32)
  low = min(float(maps.min()), 0.0)
  high = float(maps.max())
  return low, high if high > low else low + 1.0


def strongest(maps, count: int) -> np.ndarray:
  """The `count` channels of one image's maps (C, H, W) with the largest spatial maximum,
  strongest first (ties: the lower channel)."""
  peaks = np.asarray(maps, np.float32).reshape(len(maps), -1).max(axis=1)
  return np.argsort(-peaks, kind="stable")[:max(int(count), 0)]
