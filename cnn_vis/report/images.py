"""Arrays to pictures: PNG files, labelled grids, heatmaps and overlays (no JAX, plain numpy)."""
import os
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from cnn_vis.errors import check


def to_uint8(image) -> np.ndarray:
  """[0, 1] float (or uint8) HxW, HxWx1 or HxWx3 -> HxWx3 uint8."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255).astype(np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def save_image(path, image) -> Path:
  """Writes a PNG atomically (temporary file, then rename) and returns its path."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp")
  Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
  os.replace(tmp, path)
  return path


def normalize_for_display(array, percentile: float = 99.5) -> np.ndarray:
  """Maps any real array to [0, 1]: symmetric around 0 if it has both signs, else min-max."""
  a = np.nan_to_num(np.asarray(array, np.float32))
  if a.min() < 0 < a.max():
    scale = np.percentile(np.abs(a), percentile) + 1e-12
    return np.clip(0.5 + 0.5 * a / scale, 0, 1)
  lo, hi = a.min(), np.percentile(a, percentile)
  return np.clip((a - lo) / (hi - lo + 1e-12), 0, 1)


def heatmap(values, colormap: str = "inferno") -> np.ndarray:
  """HxW map -> HxWx3 float RGB in [0, 1] (values min-max normalised)."""
  return matplotlib.colormaps[colormap](normalize_for_display(values))[..., :3]


def overlay(image, values, alpha: float = 0.5, colormap: str = "inferno") -> np.ndarray:
  """Blends a heatmap of `values` (resized to the image) over an HxWx3 image in [0, 1]."""
  image = np.asarray(image, np.float32)
  height, width = image.shape[:2]
  resized = np.asarray(Image.fromarray(np.asarray(values, np.float32)).resize(
      (width, height), Image.BILINEAR))
  return (1 - alpha) * image + alpha * heatmap(resized, colormap)


def image_grid(images, ncols: int | None = None, labels=None, pad: int = 2,
               background: float = 1.0) -> np.ndarray:
  """N images (NHWC or NHW, [0,1]) -> one HxWx3 float grid, optional label under each tile."""
  tiles = [to_uint8(im) for im in images]
  check(len(tiles) > 0, "image_grid needs at least one image")
  ncols = ncols or int(np.ceil(np.sqrt(len(tiles))))
  nrows = -(-len(tiles) // ncols)
  tile_h = max(t.shape[0] for t in tiles)
  tile_w = max(t.shape[1] for t in tiles)
  label_h = 12 if labels is not None else 0
  cell_h, cell_w = tile_h + label_h + pad, tile_w + pad
  canvas = Image.new("RGB", (ncols * cell_w + pad, nrows * cell_h + pad),
                     (int(background * 255),) * 3)
  draw = ImageDraw.Draw(canvas)
  for i, tile in enumerate(tiles):
    top, left = pad + (i // ncols) * cell_h, pad + (i % ncols) * cell_w
    canvas.paste(Image.fromarray(tile), (left, top))
    if labels is not None:
      draw.text((left, top + tile_h), str(labels[i])[: max(tile_w // 6, 1)], fill=(0, 0, 0))
  return np.asarray(canvas, np.float32) / 255.0


def attribution_picture(values, display: str) -> tuple[np.ndarray, np.ndarray]:
  """(picture HxWx3 in [0, 1], 2-D map HxW) of one attribution as its method shows it:
  signed: the attribution as an image (grey = 0, symmetric scale), mapped by max_c |v|;
  max_abs: max_c |v| in grey (Simonyan et al.'s saliency maps); sum_abs: sum_c |v| in grey (as
  Sundararajan et al. show IG); heatmap: a 2-D map in the jet colour map (Grad-CAM)."""
  values = np.asarray(values, np.float32)
  if display == "heatmap":
    return heatmap(values, "jet"), values
  if display == "sum_abs":
    magnitude = np.abs(values).sum(-1)
  else:
    magnitude = np.abs(values).max(-1)
  if display == "signed":
    return normalize_for_display(values), magnitude
  return heatmap(magnitude, "gray"), magnitude
