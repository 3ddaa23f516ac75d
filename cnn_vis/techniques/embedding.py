"""CNN codes of a dataset, their t-SNE map and nearest-neighbour retrieval.

- Codes: the activations of one named layer per image, flattened (default the last hidden layer,
  fc7 on AlexNet), streamed out of one pass (cnn_vis.techniques.dataset_pass).
- t-SNE (van der Maaten & Hinton 2008, docs/papers.md §19) with openTSNE: PCA to 50 dimensions
  first (the author's tsne.py), PCA initialisation, perplexity and seed given; as Karpathy's
  cnnembed pictures (docs/papers.md §10) the images go at their embedded positions and, snapped
  to a full grid, one per cell by a linear assignment of points to cells (scipy's
  linear_sum_assignment; above `exact_limit` points a sort into rows, then along each row).
- Quality: trustworthiness (sklearn.manifold.trustworthiness: how many of a point's neighbours in
  the map are strangers in the code space) and leave-one-out k-NN label accuracy, in the map and
  on the codes themselves.
- Retrieval (Krizhevsky et al. 2012, §6.1 and Fig. 4 right: docs/papers.md §1): for each query,
  the k database images whose codes are nearest in Euclidean distance, kept as a running top-k
  on the device while the database streams past (no database codes need to be kept).
"""
import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import openTSNE
import scipy.optimize
import scipy.spatial.distance
from sklearn import decomposition, manifold, neighbors

from cnn_vis.errors import check
from cnn_vis.techniques import dataset_pass


def flat_codes(acts):
  """(B, ...) layer output -> (B, D) float32 codes."""
  return acts.reshape(acts.shape[0], -1).astype(jnp.float32)


class Neighbours(NamedTuple):
  """Each query's k nearest database examples, nearest first: (Q, k) negated squared distances
  (-inf: empty) and example ids (-1: empty)."""
  scores: jax.Array
  ids: jax.Array

  @property
  def distances(self) -> np.ndarray:
    return np.sqrt(np.maximum(-np.asarray(self.scores), 0.0))


def no_neighbours(num_queries: int, k: int) -> Neighbours:
  return Neighbours(np.full((num_queries, k), -np.inf, np.float32),
                    np.full((num_queries, k), -1, np.int32))


def nearest(state: Neighbours, queries, codes, ids, mask) -> Neighbours:
  """Merges a batch of database codes (B, D) into each query's running k nearest."""
  squared = (jnp.sum(queries ** 2, axis=1)[:, None] - 2.0 * queries @ codes.T
             + jnp.sum(codes ** 2, axis=1)[None, :])
  scores = jnp.where(mask[None, :], -jnp.maximum(squared, 0.0), -jnp.inf)
  ids = jnp.broadcast_to(ids[None, :], scores.shape)
  return Neighbours(*dataset_pass.merge_top_k(tuple(state), (scores, ids)))


def thumbnails(images, size: int):
  """(B, size, size, 3) uint8 copies of a batch (antialiased), for pictures of a whole dataset."""
  small = jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]), "linear")
  return jnp.round(jnp.clip(small, 0.0, 1.0) * 255).astype(jnp.uint8)


@dataclasses.dataclass(frozen=True)
class _CodesStep:
  """One batch: its codes (and thumbnails) out; with queries in the state, each query's
  running nearest neighbours updated."""
  forward: dataset_pass.Features
  layer: str
  thumb: int

  def __call__(self, state, variables, batch):
    codes = flat_codes(self.forward(variables, batch["image"])[self.layer])
    if state:
      found = nearest(Neighbours(*state["found"]), state["queries"], codes, batch["id"],
                      batch["mask"])
      state = {"found": found, "queries": state["queries"]}
    outputs = {"codes": codes, "id": batch["id"], "label": batch["label"]}
    if self.thumb:
      outputs["thumb"] = thumbnails(batch["image"], self.thumb)
    return state, outputs


def codes_pass(apply_fn, variables, batches, layer: str, *, collect, queries=None, k: int = 0,
               thumb: int = 0, total: int | None = None, mesh=None, desc: str = "codes"):
  """One pass: every batch's codes, ids and labels (and thumb x thumb uint8 thumbnails if
  thumb > 0) go to collect(outputs, mask) on the host; with `queries` (Q, D), also each query's
  k nearest examples. Returns (Neighbours or None, the pass)."""
  forward = dataset_pass.features(apply_fn, (layer,))
  state = {}
  if queries is not None:
    check(isinstance(k, int) and k >= 1, f"k must be an integer >= 1, got {k!r}")
    queries = np.asarray(queries, np.float32)
    state = {"found": no_neighbours(len(queries), k), "queries": queries}
  step = _CodesStep(forward, layer, int(thumb))
  result = dataset_pass.stream_pass(batches, step, state, variables, total=total, mesh=mesh,
                                    desc=desc, collect=collect)
  found = Neighbours(*result.state["found"]) if queries is not None else None
  return found, result


@dataclasses.dataclass(frozen=True)
class TSNESettings:
  """openTSNE's defaults but for PCA to 50 dimensions first and the PCA initialisation."""
  perplexity: float = 30.0          # the author's tsne.py (docs/papers.md §19)
  pca_dims: int = 50                # the author's tsne.py: PCA to 50 dimensions first
  seed: int = 0
  n_iter: int = 500                 # openTSNE: 250 early-exaggeration + n_iter iterations
  n_jobs: int = 1

  def check(self, count: int) -> None:
    check(self.perplexity > 0, f"perplexity must be > 0, got {self.perplexity}")
    check(3 * self.perplexity < count - 1, f"perplexity {self.perplexity} needs more than "
                                           f"{int(3 * self.perplexity) + 1} images (3 x perplexity"
                                           f" + 1); the dataset has {count}")
    check(self.pca_dims >= 2, f"pca_dims must be >= 2, got {self.pca_dims}")
    check(self.n_iter >= 1, f"n_iter must be >= 1, got {self.n_iter}")


def reduce(codes, dims: int, seed: int = 0) -> np.ndarray:
  """codes (N, D) projected on their first `dims` principal components (as they are if
  D <= dims)."""
  codes = np.asarray(codes, np.float32)
  dims = min(dims, codes.shape[0])
  if codes.shape[1] <= dims:
    return codes
  return decomposition.PCA(n_components=dims, random_state=seed).fit_transform(codes)


def tsne(codes, settings: TSNESettings) -> np.ndarray:
  """(N, 2) t-SNE map of the codes (N, D)."""
  settings.check(len(codes))
  reduced = reduce(codes, settings.pca_dims, settings.seed)
  model = openTSNE.TSNE(n_components=2, perplexity=settings.perplexity, initialization="pca",
                        metric="euclidean", n_iter=settings.n_iter, n_jobs=settings.n_jobs,
                        random_state=settings.seed, verbose=False)
  return np.asarray(model.fit(reduced), np.float32)


def trustworthiness(codes, points, k: int = 10) -> float:
  """sklearn.manifold.trustworthiness (memory ~3 N^2 x 8 bytes: 2.4 GB at N = 10,000)."""
  return float(manifold.trustworthiness(np.asarray(codes, np.float32),
                                        np.asarray(points, np.float32), n_neighbors=k))


def knn_accuracy(points, labels, k: int = 10) -> float:
  """Leave-one-out accuracy of a k-NN majority vote (ties: the smallest label) over the examples
  with a label (>= 0); NaN if fewer than k + 1 have one."""
  labels = np.asarray(labels)
  known = labels >= 0
  points, labels = np.asarray(points, np.float32)[known], labels[known]
  if len(labels) <= k:
    return float("nan")
  index = neighbors.NearestNeighbors(n_neighbors=k).fit(points).kneighbors(
      return_distance=False)  # each point's k nearest others
  votes = np.apply_along_axis(np.bincount, 1, labels[index], minlength=labels.max() + 1)
  return float(np.mean(votes.argmax(axis=1) == labels))


def grid_shape(count: int) -> tuple[int, int]:
  """(rows, cols) of the smallest near-square grid with at least `count` cells."""
  cols = int(np.ceil(np.sqrt(count)))
  return int(np.ceil(count / cols)), cols


def _unit_square(points) -> np.ndarray:
  points = np.asarray(points, np.float64)
  lo, hi = points.min(axis=0), points.max(axis=0)
  return (points - lo) / np.where(hi > lo, hi - lo, 1.0)


def grid_assignment(points, rows: int, cols: int, exact_limit: int = 4096) -> np.ndarray:
  """The grid cell (row * cols + col) of each point (N, 2) (x, y): every point gets exactly one
  cell. Up to exact_limit points: the assignment minimising the total squared distance of the
  points (scaled to the unit square) to their cells' centres; above it, the points sorted by y
  into rows of `cols`, each row sorted by x."""
  points = _unit_square(points)
  count = len(points)
  check(count <= rows * cols, f"{count} points do not fit a {rows}x{cols} grid")
  if count <= exact_limit:
    r, c = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols,
                       indexing="ij")
    centres = np.stack([c.ravel(), r.ravel()], axis=1)
    cost = scipy.spatial.distance.cdist(points, centres, "sqeuclidean")
    point, cell = scipy.optimize.linear_sum_assignment(cost)
    cells = np.empty(count, np.int64)
    cells[point] = cell
    return cells
  cells = np.empty(count, np.int64)
  by_y = np.argsort(points[:, 1], kind="stable")
  for row in range(rows):
    members = by_y[row * cols:(row + 1) * cols]
    cells[members[np.argsort(points[members, 0], kind="stable")]] = row * cols + np.arange(
        len(members))
  return cells
