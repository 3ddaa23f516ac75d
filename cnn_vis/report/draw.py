"""Pictures of dataset views: boxes on patches, heat-map grids on one colour scale, images placed
at embedded positions or snapped to a grid, scatter plots by label (numpy, PIL, matplotlib)."""
import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from cnn_vis.report.images import to_uint8  # noqa: E402

RED = (1.0, 0.15, 0.1)


def resize(image, height: int, width: int, nearest: bool = False) -> np.ndarray:
  """HxWx3 [0, 1] image resized (bilinear, or nearest for maps and filters)."""
  method = Image.NEAREST if nearest else Image.BILINEAR
  return np.asarray(Image.fromarray(to_uint8(image)).resize((width, height), method),
                    np.float32) / 255.0


def draw_box(image, box: Sequence[float], colour=RED, width: int = 1) -> np.ndarray:
  """A copy of the HxWx3 image with the outline of box [top, left, bottom, right) drawn."""
  canvas = Image.fromarray(to_uint8(image))
  top, left, bottom, right = box
  ImageDraw.Draw(canvas).rectangle([left, top, right - 1, bottom - 1],
                                   outline=tuple(int(255 * c) for c in colour), width=width)
  return np.asarray(canvas, np.float32) / 255.0


def crop_with_context(image, box: Sequence[int], context: float = 0.0, fill: float = 0.5
                      ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
  """(crop, box within the crop): box [top, left, bottom, right) widened by `context` times
  its size on every side, the parts outside the image filled with `fill`."""
  image = np.asarray(image, np.float32)
  top, left, bottom, right = (int(b) for b in box)
  margin_y = int(round(context * (bottom - top)))
  margin_x = int(round(context * (right - left)))
  y0, y1, x0, x1 = top - margin_y, bottom + margin_y, left - margin_x, right + margin_x
  crop = np.full((y1 - y0, x1 - x0) + image.shape[2:], fill, np.float32)
  sy0, sy1 = max(y0, 0), min(y1, image.shape[0])
  sx0, sx1 = max(x0, 0), min(x1, image.shape[1])
  crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
  return crop, (margin_y, margin_x, margin_y + bottom - top, margin_x + right - left)


def patch_tile(image, box: Sequence[int], size: int, context: float = 0.0,
               outline: bool = True) -> np.ndarray:
  """The box's crop (with context) of an image, resized to size x size, the box drawn on it."""
  crop, inner = crop_with_context(image, box, context)
  scale_y, scale_x = size / crop.shape[0], size / crop.shape[1]
  tile = resize(crop, size, size, nearest=max(crop.shape[:2]) < size / 2)
  if outline and context > 0:
    top, left, bottom, right = inner
    tile = draw_box(tile, (round(top * scale_y), round(left * scale_x),
                           round(bottom * scale_y), round(right * scale_x)))
  return tile


def signed_range(values, percentile: float = 99.5) -> float:
  """The |value| signed_picture shows as black or white: the percentile of |values|."""
  values = np.nan_to_num(np.asarray(values, np.float32))
  return float(np.percentile(np.abs(values), percentile)) + 1e-12


def signed_picture(values, percentile: float = 99.5) -> np.ndarray:
  """A signed HxWxC map as an image: grey is 0, the scale symmetric (|v| at the percentile ->
  black or white; signed_range), as deconvnet and guided-backprop projections are shown."""
  values = np.nan_to_num(np.asarray(values, np.float32))
  return np.clip(0.5 + 0.5 * values / signed_range(values, percentile), 0.0, 1.0)


def colour_map(values, low: float, high: float, colormap: str = "inferno") -> np.ndarray:
  """HxW values -> HxWx3 on the fixed scale [low, high] (one scale for many maps)."""
  scaled = (np.asarray(values, np.float32) - low) / max(high - low, 1e-12)
  return matplotlib.colormaps[colormap](np.clip(scaled, 0.0, 1.0))[..., :3]


def heatmap_grid(maps, low: float, high: float, *, ncols: int, tile: int, marked: Mapping[int,
                 int] = (), colormap: str = "inferno", pad: int = 3
                 ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
  """(grid picture, [left, top, right, bottom] of each tile) of maps (C, H, W) on one colour
  scale; `marked` {channel: rank}: outlined in red with their rank (1 = strongest)."""
  maps = np.asarray(maps, np.float32)
  count = len(maps)
  rows = -(-count // ncols)
  cell = tile + 2 * pad
  canvas = Image.new("RGB", (ncols * cell, rows * cell), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  rects = []
  for c in range(count):
    left, top = (c % ncols) * cell + pad, (c // ncols) * cell + pad
    picture = resize(colour_map(maps[c], low, high, colormap), tile, tile, nearest=True)
    canvas.paste(Image.fromarray(to_uint8(picture)), (left, top))
    rects.append((left, top, left + tile, top + tile))
    if c in marked:
      draw.rectangle([left - pad, top - pad, left + tile + pad - 1, top + tile + pad - 1],
                     outline=(255, 40, 25), width=pad)
      draw.text((left + 2, top + 1), str(marked[c]), fill=(255, 255, 255))
  return np.asarray(canvas, np.float32) / 255.0, rects


def place_images(points, thumbs, size: int, background: float = 1.0) -> np.ndarray:
  """Karpathy's cnnembed picture: each thumbnail (N, t, t, 3) pasted with its centre at its
  point (N, 2) (x, y), the map scaled into a size x size canvas; later images on top."""
  thumbs = np.asarray(thumbs)
  t = thumbs.shape[1]
  points = np.asarray(points, np.float64)
  lo, hi = points.min(axis=0), points.max(axis=0)
  unit = (points - lo) / np.where(hi > lo, hi - lo, 1.0)
  canvas = Image.new("RGB", (size, size), (int(255 * background),) * 3)
  for (x, y), thumb in zip(unit, thumbs):
    canvas.paste(Image.fromarray(to_uint8(thumb)), (int(x * (size - t)), int(y * (size - t))))
  return np.asarray(canvas, np.float32) / 255.0


def grid_images(cells, thumbs, rows: int, cols: int, background: float = 1.0) -> np.ndarray:
  """Thumbnails (N, t, t, 3) at their grid cells (N,) (row * cols + col); empty cells blank."""
  thumbs = np.asarray(thumbs)
  t = thumbs.shape[1]
  canvas = np.full((rows * t, cols * t, 3), background, np.float32)
  for cell, thumb in zip(np.asarray(cells), thumbs):
    r, c = divmod(int(cell), cols)
    canvas[r * t:(r + 1) * t, c * t:(c + 1) * t] = to_uint8(thumb) / 255.0
  return canvas


def scatter_plot(path, points, labels, class_names: Sequence[str] = (), title: str = "",
                 size: float = 7.0) -> Path:
  """A PNG scatter of points (N, 2) coloured by label (-1: unknown, grey), with a legend."""
  path = Path(path)
  points, labels = np.asarray(points), np.asarray(labels)
  fig, ax = plt.subplots(figsize=(size, size))
  known = sorted(set(labels[labels >= 0].tolist()))
  colours = plt.get_cmap("tab10" if len(known) <= 10 else "tab20")
  if np.any(labels < 0):
    ax.scatter(*points[labels < 0].T, s=6, c="0.6", label="unknown", linewidths=0)
  for i, label in enumerate(known):
    name = class_names[label] if label < len(class_names) else str(label)
    ax.scatter(*points[labels == label].T, s=6, color=colours(i % colours.N), label=name,
               linewidths=0)
  if len(known) <= 20:
    ax.legend(markerscale=3, fontsize=8, loc="best")
  ax.invert_yaxis()   # y down, as the placed-images and grid pictures
  ax.set_title(title)
  ax.set_xticks([])
  ax.set_yticks([])
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.stem}.tmp.png")
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def tile_blocks(blocks, ncols: int, pad: int = 1, gap: int = 8, background: float = 1.0
                ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
  """(picture, [left, top, right, bottom] of each image in order) of image blocks (each
  (N, h, w, C), C = 1 or 3) laid out `ncols` per row, each block below the previous one with a
  `gap` between them (AlexNet's two GPUs' filters, Krizhevsky et al. 2012 Fig. 3)."""
  blocks = [np.asarray(b) for b in blocks]
  h, w = blocks[0].shape[1:3]
  cell_h, cell_w = h + pad, w + pad
  heights = [-(-len(b) // ncols) * cell_h + pad for b in blocks]
  width = ncols * cell_w + pad
  canvas = np.full((sum(heights) + gap * (len(blocks) - 1), width, 3), background, np.float32)
  rects, top0 = [], 0
  for block, height in zip(blocks, heights):
    for i, image in enumerate(block):
      top, left = top0 + pad + (i // ncols) * cell_h, pad + (i % ncols) * cell_w
      canvas[top:top + h, left:left + w] = to_uint8(image) / 255.0
      rects.append((left, top, left + w, top + h))
    top0 += height + gap
  return canvas, rects
