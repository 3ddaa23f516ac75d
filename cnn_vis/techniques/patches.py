"""Top-k patches per unit over a whole dataset, with their receptive fields (Girshick et al. 2014,
§3.1 and Fig. 4: docs/papers.md §11; Zeiler & Fergus 2014, Fig. 2: §2; the deep-visualization
toolbox's top 9: §5; receptive fields: §25).

For EVERY unit of a layer at once, the pass keeps the k strongest activations seen so far
(value, example id, position) on the device; each batch is merged in with one `lax.top_k` over
the k kept and the batch's candidates of each unit, so nothing is ever sorted on the host and
memory is fixed by (units x k), whatever the size of the dataset. The state comes first in the
merge and `lax.top_k` prefers the lower index among equal values, so ties keep the earlier
example: the result equals a stable sort of all candidates in stream order (tests check this).

A unit is a channel of the layer (its activation: the channel's spatial maximum, the default,
as the toolbox does) or a channel at one position (`conv5:17@6,6`; R-CNN's pool5 units are the
6 x 6 x 256 positions). Per image, a unit offers `per_image` candidates: 1 (R-CNN: at most one
patch per image per unit) or the strongest positions left by greedy non-maximum suppression at
IoU `overlap` of their receptive fields (the R-CNN code's per-image NMS at 0.1).

Receptive fields are analytic (cnn_vis.models.geometry, from each layer's kernel, stride and
padding): position (y, x) sees the model-input box [top, left, bottom, right) clipped to the
image; fc layers see the whole image.
"""
import dataclasses
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.errors import check
from cnn_vis.models.geometry import ReceptiveField
from cnn_vis.techniques import attribution
from cnn_vis.techniques import dataset_pass
from cnn_vis.techniques import gradients as G


class TopK(NamedTuple):
  """The running top-k of U units, strongest first: (U, k) arrays; empty slots have value -inf
  and id -1."""
  values: jax.Array
  ids: jax.Array
  y: jax.Array
  x: jax.Array


def empty(num_units: int, k: int) -> TopK:
  return TopK(np.full((num_units, k), -np.inf, np.float32), np.full((num_units, k), -1, np.int32),
              np.zeros((num_units, k), np.int32), np.zeros((num_units, k), np.int32))


def merge(state: TopK, values, ids, y, x) -> TopK:
  """The top-k of the kept entries and candidates (U, M) per unit (dataset_pass.merge_top_k)."""
  return TopK(*dataset_pass.merge_top_k(tuple(state), (values, ids, y, x)))


@dataclasses.dataclass(frozen=True)
class Selection:
  """How many candidates one image offers per unit: its strongest position (per_image 1) or the
  strongest positions whose receptive fields overlap each kept one by IoU <= overlap."""
  k: int = 9                 # the toolbox's top 9 (R-CNN's Fig. 4 shows 16)
  per_image: int = 1         # R-CNN: at most one patch per image per unit
  overlap: float = 0.1       # the R-CNN code's per-image NMS threshold (per_image > 1)

  def __post_init__(self):
    check(isinstance(self.k, int) and self.k >= 1, f"k must be an integer >= 1, got {self.k!r}")
    check(isinstance(self.per_image, int) and 1 <= self.per_image <= self.k,
          f"per_image must be an integer in 1..k ({self.k}), got {self.per_image!r}")
    check(0.0 <= self.overlap <= 1.0, f"overlap must be in [0, 1], got {self.overlap}")


def position_boxes(field: ReceptiveField, image_size: int) -> np.ndarray:
  """(H * W, 4) int32 boxes [top, left, bottom, right) of every position of the layer, in
  row-major order, clipped to a square image_size input."""
  return np.array([field.box(y, x, image_size, image_size) for y in range(field.height)
                   for x in range(field.width)], np.int32).reshape(-1, 4)


def _iou(chosen, boxes):
  """IoU of chosen boxes (B, U, 4) with every position's box (P, 4): (B, P, U)."""
  c = chosen[:, None].astype(jnp.float32)          # (B, 1, U, 4)
  b = boxes[None, :, None].astype(jnp.float32)     # (1, P, 1, 4)
  height = jnp.maximum(jnp.minimum(c[..., 2], b[..., 2]) - jnp.maximum(c[..., 0], b[..., 0]), 0)
  width = jnp.maximum(jnp.minimum(c[..., 3], b[..., 3]) - jnp.maximum(c[..., 1], b[..., 1]), 0)
  inter = height * width
  area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])
  return inter / jnp.maximum(area(c) + area(b) - inter, 1.0)


def unit_maps(acts, units: G.Units):
  """The units' activation maps (B, P, U) of a layer output (B, H, W, C) or (B, C), P = H * W;
  a unit with a position keeps only that position (-inf elsewhere)."""
  if acts.ndim == 2:
    acts = acts[:, None, None, :]
  _, height, width, _ = acts.shape
  maps = jnp.take(acts, units.channel, axis=-1).astype(jnp.float32)      # (B, H, W, U)
  rows, cols = jnp.arange(height)[:, None, None], jnp.arange(width)[None, :, None]
  keep = (units.y < 0) | ((rows == units.y) & (cols == units.x))          # (H, W, U)
  return jnp.where(keep[None], maps, -jnp.inf).reshape(maps.shape[0], height * width, -1)


def image_candidates(maps, boxes, selection: Selection):
  """(values, positions) (B, per_image, U) of each image's candidates, strongest first: greedy
  NMS over positions (P) by the IoU of their boxes (P, 4)."""
  values, positions = [], []
  for _ in range(selection.per_image):
    best = jnp.argmax(maps, axis=1)                                        # (B, U), first max
    values.append(jnp.take_along_axis(maps, best[:, None], axis=1)[:, 0])
    positions.append(best)
    if selection.per_image > 1:
      suppress = _iou(jnp.asarray(boxes)[best], boxes) > selection.overlap
      suppress |= jnp.arange(maps.shape[1])[None, :, None] == best[:, None]
      maps = jnp.where(suppress, -jnp.inf, maps)
  return jnp.stack(values, axis=1), jnp.stack(positions, axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class LayerUnits:
  """The units of one layer whose top patches a pass keeps, and that layer's geometry.
  Hashable by value (the pass's compiled step is reused for equal requests)."""
  layer: str
  units: G.Units                 # (U,) channel, y, x; y = x = -1: the channel's best position
  field: ReceptiveField
  image_size: int

  def _key(self):
    return (self.layer, tuple(tuple(np.asarray(v).tolist()) for v in self.units), self.field,
            self.image_size)

  def __hash__(self):
    return hash(self._key())

  def __eq__(self, other):
    return isinstance(other, LayerUnits) and self._key() == other._key()

  @property
  def num_units(self) -> int:
    return int(np.asarray(self.units.channel).shape[0])

  def names(self) -> list[str]:
    out = []
    for c, y, x in zip(*(np.asarray(v).tolist() for v in self.units)):
      out.append(f"{self.layer}:{c}" + (f"@{y},{x}" if y >= 0 else ""))
    return out


def update(state: TopK, acts, batch: dict, request: LayerUnits, selection: Selection) -> TopK:
  """Merges one batch's candidates of one layer into its running top-k."""
  maps = dataset_pass.masked(unit_maps(acts, request.units), batch["mask"])
  values, positions = image_candidates(maps, position_boxes(request.field, request.image_size),
                                       selection)
  width = max(request.field.width, 1)
  flat = lambda a: a.reshape(-1, a.shape[-1]).T                            # (U, B * per_image)
  ids = jnp.broadcast_to(batch["id"][:, None, None], values.shape)
  return merge(state, flat(values), flat(ids), flat(positions // width), flat(positions % width))


@dataclasses.dataclass(frozen=True)
class _Step:
  """One batch of the pass: every layer's candidates merged into its running top-k."""
  forward: dataset_pass.Features
  requests: tuple[LayerUnits, ...]
  selection: Selection

  def __call__(self, state, variables, batch):
    acts = self.forward(variables, batch["image"])
    new = {r.layer: update(TopK(*state[r.layer]), acts[r.layer], batch, r, self.selection)
           for r in self.requests}
    return new, dataset_pass.no_outputs()


def top_patches(apply_fn, variables, batches, requests: Sequence[LayerUnits],
                selection: Selection, *, total: int | None = None, mesh=None
                ) -> tuple[dict, dataset_pass.PassResult]:
  """({layer: TopK (numpy)}, the pass) of the requested units (one LayerUnits per layer) over
  every batch."""
  layers = [r.layer for r in requests]
  check(len(set(layers)) == len(layers), f"each layer once, with all its units: got "
                                         f"{', '.join(layers)}")
  forward = dataset_pass.features(apply_fn, [r.layer for r in requests])
  state = {r.layer: empty(r.num_units, selection.k) for r in requests}
  step = _Step(forward, tuple(requests), selection)
  result = dataset_pass.stream_pass(batches, step, state, variables, total=total, mesh=mesh,
                                    desc="top patches")
  return {layer: TopK(*top) for layer, top in result.state.items()}, result


def patch_lists(top: TopK, request: LayerUnits) -> list[list[dict]]:
  """Per unit, its patches strongest first: {"id", "y", "x", "activation", "box"} (empty slots,
  where the dataset had fewer than k candidates, dropped)."""
  out = []
  for u in range(request.num_units):
    patches = []
    for j in range(top.values.shape[1]):
      value = float(top.values[u, j])
      if not np.isfinite(value):
        continue
      y, x = int(top.y[u, j]), int(top.x[u, j])
      box = request.field.box(y, x, request.image_size, request.image_size)
      patches.append({"id": int(top.ids[u, j]), "y": y, "x": x, "activation": value,
                      "box": [int(b) for b in box]})
    out.append(patches)
  return out


def projections(apply_fn, variables, images, layer: str, channels, ys, xs, method: str,
                chunk: int = 8) -> np.ndarray:
  """The registered attribution `method` (deconvnet, guided_backprop, ...) of one unit per
  image: image n's unit is channel[n] of `layer` at (ys[n], xs[n]) (-1: a layer without
  positions). (M, H, W, C), computed `chunk` images at a time (one compilation)."""
  fn = attribution.get(method)
  options = fn.options()
  images = np.asarray(images, np.float32)
  count = len(images)
  if count == 0:
    return np.zeros_like(images)
  pad = -count % chunk
  take = np.concatenate([np.arange(count), np.full(pad, count - 1)])
  codes = [np.asarray(v, np.int32)[take] for v in (channels, ys, xs)]
  out = []
  for start in range(0, len(take), chunk):
    part = slice(start, start + chunk)
    units = G.Units(*(jnp.asarray(v[part])[None] for v in codes))
    target = attribution.Target(layer, units)
    out.append(np.asarray(fn.fn(apply_fn, variables, jnp.asarray(images[take[part]]), target,
                                options).values[0]))
  return np.concatenate(out)[:count]
