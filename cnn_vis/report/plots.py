"""Line plots for reports (training curves, loss curves, accuracy against epsilon), as PNGs."""
import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

# A panel: (title, x label, {series label: (xs, ys)}, log-scale y).
Panel = tuple[str, str, Mapping[str, tuple[Sequence[float], Sequence[float]]], bool]


def line_plots(path, panels: Sequence[Panel], width: float = 5.0) -> Path:
  """Writes one row of line-plot panels to `path` (PNG, atomically); returns the path."""
  path = Path(path)
  fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 4), squeeze=False)
  for ax, (title, xlabel, series, log_y) in zip(axes[0], panels):
    for label, (xs, ys) in series.items():
      if len(xs):
        ax.plot(xs, ys, label=label, marker="." if len(xs) < 30 else None)
    if log_y:
      ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if series:
      ax.legend()
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.stem}.tmp.png")
  fig.savefig(tmp)
  plt.close(fig)
  os.replace(tmp, path)
  return path
