"""What the image-optimisation experiments share: model loading, sweep products, grids, reports."""
import itertools

import jax
import numpy as np

from cnn_vis import report
from cnn_vis.errors import check, choose
from cnn_vis.techniques import optimize


def values(config, name: str, default) -> tuple:
  """A sweepable config field as a tuple of values; empty/None -> (default,)."""
  value = config.get(name)
  if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
    return (default,)
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def product(items: list, sweeps: dict) -> tuple[list, dict, list[str]]:
  """Cartesian product of items (units, classes, images...) with every swept hyperparameter.

  sweeps: name -> tuple of values. Returns (items per setting, name -> np.array per setting,
  label suffix per setting naming the swept values that vary)."""
  names = list(sweeps)
  combos = list(itertools.product(range(len(items)), *(range(len(sweeps[n])) for n in names)))
  varying = [n for n in names if len(sweeps[n]) > 1]
  per_item = [items[c[0]] for c in combos]
  arrays = {n: np.array([sweeps[n][c[1 + j]] for c in combos]) for j, n in enumerate(names)}
  labels = [" ".join(f"{n}={sweeps[n][c[1 + names.index(n)]]:g}" for n in varying) for c in combos]
  return per_item, arrays, labels


def save_grid(workdir, name: str, images, labels, ncols: int | None = None):
  """Writes workdir/<name>.png (one labelled tile per image) and the tiles at full resolution
  (tiles/<name>/); returns the Grid a report shows them in, labels as text
  (report.labelled_grid)."""
  images = np.clip(np.asarray(images, np.float32), 0, 1)
  check(len(images) > 0, "nothing to show")
  return report.labelled_grid(workdir, f"{name}.png", images, labels, ncols)[1]


def key(config):
  return jax.random.PRNGKey(int(config.get("seed", 0)))


def chunk(config):
  return int(config.get("chunk", 0) or 0) or None


def loop(config) -> str:
  """config.loop: scan (one compiled call per render) | dispatch | auto (by backend)."""
  mode = config.get("loop", "auto") or "auto"
  choose("loop", mode, optimize.LOOPS)
  return mode
