"""DeepDream (Mordvintsev, Olah & Tyka 2015; google/deepdream `dream.ipynb`, docs/papers.md §7).

Gradient ascent on the L2 objective 1/2 ||a||^2 of one layer's activations (the notebook's
`objective_L2`: dst.diff = dst.data), on an image pyramid:
- octaves: octave_n scales of the input, each octave_scale smaller (nd.zoom, order 1 -> bilinear);
  starting from the smallest, the "detail" (dreamed image minus octave base) is carried up and
  added to the next octave's base;
- per octave iter_n steps of `make_step`: roll the image by a random (ox, oy) in
  [-jitter, jitter], ascend, roll back (here: the jitter transform, whose gradient unrolls), step
  x += step_size / mean(|g|) * g, clip to the valid pixel range.
Notebook values: step_size 1.5 in 0..255 pixels, i.e. 1.5 / 255 in our [0, 1] space (the
mean(|g|)-normalised step is in pixel units, so only the pixel scale converts); jitter 32,
iter_n 10, octave_n 4, octave_scale 1.4. Any image size works: one compiled function per octave
shape, each octave of all images in one vmapped call.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.errors import check, choose
from cnn_vis.techniques import optimize
from cnn_vis.techniques.objectives import LayerL2

STEP_SIZE = 1.5 / 255   # dream.ipynb make_step(step_size=1.5) on 0..255 pixels
JITTER = 32             # make_step(jitter=32)
ITER_N = 10             # deepdream(iter_n=10)
OCTAVE_N = 4            # deepdream(octave_n=4)
OCTAVE_SCALE = 1.4      # deepdream(octave_scale=1.4)


@functools.partial(jax.jit, static_argnums=(0, 3))
def layer_energy(apply_fn, variables, images, layer: str):
  """||a||^2 at `layer` per image (N,)."""
  a = apply_fn(variables, images)[1][layer]
  return jnp.sum(a.reshape(a.shape[0], -1) ** 2, axis=1)


def octave_shapes(height: int, width: int, octave_n: int, octave_scale: float):
  """(H, W) of each octave, largest first, each `octave_scale` smaller than the previous."""
  shapes = [(height, width)]
  for _ in range(octave_n - 1):
    h, w = shapes[-1]
    shapes.append((max(int(round(h / octave_scale)), 1), max(int(round(w / octave_scale)), 1)))
  return shapes


def resize(images, shape):
  """Bilinear resize of NHWC images to (H, W)."""
  return jax.image.resize(images, images.shape[:1] + tuple(shape) + images.shape[3:], "linear")


def deepdream(apply_fn, variables, images, layer: str, *, key, iter_n: int = ITER_N,
              octave_n: int = OCTAVE_N, octave_scale: float = OCTAVE_SCALE,
              step_size=STEP_SIZE, jitter: int = JITTER, loop: str = "auto"):
  """Dreams every image of (N, H, W, 3) at `layer`; returns (images (N, H, W, 3), records), one
  record per octave (smallest first) with its shape and ||a||^2 before and after its steps."""
  images = optimize.check_image(images, "image to dream")
  check(images.ndim == 4, f"images must be NxHxWx3, got {images.shape}")
  check(iter_n >= 1 and octave_n >= 1,
        f"iter_n and octave_n must be >= 1, got {iter_n}, {octave_n}")
  check(octave_scale >= 1, f"octave_scale must be >= 1, got {octave_scale}")
  check(int(jitter) >= 0, f"jitter must be >= 0, got {jitter}")
  n, height, width, _ = images.shape
  _, acts = jax.eval_shape(apply_fn, variables, jax.ShapeDtypeStruct((1, height, width, 3),
                                                                     jnp.float32))
  choose("layer", layer, acts)
  shapes = octave_shapes(height, width, octave_n, octave_scale)
  base = jnp.asarray(images)
  octaves = [base] + [resize(base, s) for s in shapes[1:]]
  detail = jnp.zeros_like(octaves[-1])
  records = []
  for i, octave in enumerate(reversed(octaves)):
    oh, ow = octave.shape[1:3]
    if detail.shape != octave.shape:
      detail = resize(detail, (oh, ow))
    start = jnp.clip(octave + detail, 0.0, 1.0)
    settings = optimize.stack_settings(n, lr=step_size, init=start)
    recipe = optimize.Recipe(oh, ow, phases=((int(iter_n), 1.0),),
                             optimizer=optimize.Optimizer("mean_abs"),
                             transforms=(optimize.Jitter(int(jitter)),) if jitter else (),
                             projections=(optimize.Clip(),))
    result = optimize.render(apply_fn, variables, LayerL2(layer), settings,
                             jax.random.fold_in(key, i), recipe, loop=loop)
    dreamed = result.images[:, 0]
    before = layer_energy(apply_fn, variables, start, layer)
    after = layer_energy(apply_fn, variables, dreamed, layer)
    records.append({"octave": i, "height": oh, "width": ow,
                    "energy_before": np.asarray(before).tolist(),
                    "energy_after": np.asarray(after).tolist()})
    detail = dreamed - octave
  return dreamed, records
