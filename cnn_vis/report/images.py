"""Arrays to pictures: PNG files, labelled grids, heat maps, overlays, colour bars and legends
(plain numpy and PIL, no JAX).

Every map becomes a picture together with its `Scale`, the values at the two ends of its colour
map, so that a colour bar (`with_colorbar`) can print the range the picture shows:
- magnitudes (saliency max_c |g|, Simonyan et al. 2014 §3.1; SmoothGrad; IG's sum_c |a|) run from
  black at 0 to white at the map's 99th percentile, larger values clipped, as Smilkov et al. cap
  their maps (docs/papers.md §13): otherwise a few outlying pixels make the rest of the map black;
- signed reconstructions (gradients, guided backprop, deconvnet projections) are shown as RGB
  images, each map on its own symmetric scale: grey is 0 and +-the 99th percentile of |v| over
  the map's support (its non-zero entries) are the ends. The papers show every reconstruction
  on its own scale (Zeiler & Fergus 2014, Fig. 2; Springenberg et al. 2015, Fig. 3) without
  stating how (docs/papers.md §2, §3); taking the percentile over the support keeps a projection
  confined to a small receptive field from being scaled by the zeros around it;
- heat maps (Grad-CAM, occlusion) span the map's own min..max (or a given range).
Optimised images (class models, activation maximisation) are pictures already; their display
modes are in `optimized_picture`.
"""
import dataclasses
import functools
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnn_vis.errors import check, choose

# Smilkov et al. 2017 (docs/papers.md §13): maps capped at their 99th percentile.
CLIP_PERCENTILE = 99.0
OPTIMIZED_DISPLAYS = ("raw", "stretch", "minmax")


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


# ------------------------------------------------------------------------------------------------
# Values -> colours, with the scale that says which values the colours stand for.

@dataclasses.dataclass(frozen=True)
class Scale:
  """Values lo..hi map to the ends of `colormap` (a matplotlib name); values outside are
  clipped. A signed RGB picture uses "gray" from -s (black) to +s (white), grey = 0."""
  lo: float
  hi: float
  colormap: str = "gray"

  def __post_init__(self):
    choose("colour map", self.colormap, sorted(matplotlib.colormaps))

  def normalize(self, values) -> np.ndarray:
    """values -> [0, 1] positions along the colour map."""
    values = np.nan_to_num(np.asarray(values, np.float32))
    return np.clip((values - self.lo) / max(self.hi - self.lo, 1e-30), 0.0, 1.0)

  def colors(self, values) -> np.ndarray:
    """(...,) values -> (..., 3) RGB in [0, 1]."""
    return matplotlib.colormaps[self.colormap](self.normalize(values))[..., :3]

  def ticks(self) -> tuple[float, ...]:
    """The values a colour bar labels: the ends, and 0 between them if the range spans it."""
    return (self.lo, 0.0, self.hi) if self.lo < 0 < self.hi else (self.lo, self.hi)


def clip_value(values, percentile: float = CLIP_PERCENTILE) -> float:
  """The `percentile` of |values| over the non-zero entries (0 for an all-zero map)."""
  magnitude = np.abs(np.nan_to_num(np.asarray(values, np.float32))).ravel()
  support = magnitude[magnitude > 0]
  return float(np.percentile(support, percentile)) if support.size else 0.0


def magnitude_scale(values, percentile: float = CLIP_PERCENTILE,
                    colormap: str = "gray") -> Scale:
  """0 .. the percentile of a non-negative map (Smilkov et al.'s cap)."""
  return Scale(0.0, clip_value(values, percentile), colormap)


def signed_scale(values, percentile: float = CLIP_PERCENTILE) -> Scale:
  """-s .. s, s the percentile of |values| over the map's support: grey is 0."""
  s = clip_value(values, percentile)
  return Scale(-s, s, "gray")


def range_scale(values, colormap: str = "inferno", lo=None, hi=None) -> Scale:
  """The map's own min..max (or the given ends)."""
  values = np.nan_to_num(np.asarray(values, np.float32))
  return Scale(float(values.min()) if lo is None else float(lo),
               float(values.max()) if hi is None else float(hi), colormap)


def signed_rgb(values, scale: Scale) -> np.ndarray:
  """An HxWx3 signed map as an RGB picture, each channel grey + its value (scale.lo .. hi)."""
  return scale.normalize(values)


def normalize_for_display(array, percentile: float = 99.5) -> np.ndarray:
  """Maps any real array to [0, 1]: symmetric around 0 if it has both signs, else min-max."""
  a = np.nan_to_num(np.asarray(array, np.float32))
  if a.min() < 0 < a.max():
    scale = np.percentile(np.abs(a), percentile) + 1e-12
    return np.clip(0.5 + 0.5 * a / scale, 0, 1)
  lo, hi = a.min(), np.percentile(a, percentile)
  return np.clip((a - lo) / (hi - lo + 1e-12), 0, 1)


def heatmap(values, colormap: str = "inferno", scale: Scale | None = None) -> np.ndarray:
  """HxW map -> HxWx3 float RGB in [0, 1]: by `scale` if given, else min-max normalised."""
  if scale is not None:
    return dataclasses.replace(scale, colormap=colormap).colors(values)
  return matplotlib.colormaps[colormap](normalize_for_display(values))[..., :3]


def resize_map(values, height: int, width: int, nearest: bool = False) -> np.ndarray:
  """A 2-D float map resized to height x width (bilinear, or nearest: one flat block per cell)."""
  method = Image.NEAREST if nearest else Image.BILINEAR
  return np.asarray(Image.fromarray(np.asarray(values, np.float32)).resize((width, height),
                                                                          method))


def overlay(image, values, alpha: float = 0.5, colormap: str = "inferno",
            scale: Scale | None = None) -> np.ndarray:
  """Blends a heatmap of `values` (resized to the image) over an HxWx3 image in [0, 1]."""
  image = np.asarray(image, np.float32)
  resized = resize_map(values, *image.shape[:2])
  return (1 - alpha) * image + alpha * heatmap(resized, colormap, scale)


class Picture(NamedTuple):
  image: np.ndarray    # HxWx3 in [0, 1]
  values: np.ndarray   # HxW: the 2-D map shown (for RGB pictures, its magnitude max_c |v|)
  scale: Scale         # the values at the ends of the colour map


def attribution_picture(values, display: str, percentile: float = CLIP_PERCENTILE) -> Picture:
  """One attribution as its method shows it (cnn_vis.techniques.attribution DISPLAYS):
  signed: the (H, W, C) map as an RGB image on its own symmetric scale (guided backprop,
  deconvnet); max_abs: max_c |v| in grey (Simonyan et al.'s saliency maps); sum_abs: sum_c |v| in
  grey (as Sundararajan et al. show IG); both clipped at `percentile`; heatmap: a 2-D map from 0
  to its maximum in jet colours (Grad-CAM)."""
  values = np.asarray(values, np.float32)
  if display == "heatmap":
    scale = range_scale(values, "jet", lo=min(0.0, float(values.min())))
    return Picture(scale.colors(values), values, scale)
  magnitude = np.abs(values).sum(-1) if display == "sum_abs" else np.abs(values).max(-1)
  if display == "signed":
    scale = signed_scale(values, percentile)
    return Picture(signed_rgb(values, scale), magnitude, scale)
  scale = magnitude_scale(magnitude, percentile)
  return Picture(scale.colors(magnitude), magnitude, scale)


def total_variation(values, percentile: float = CLIP_PERCENTILE) -> float:
  """Roughness of a non-negative map as it is displayed (0 .. its `percentile`, clipped, so maps
  of any scale compare): the mean absolute difference between vertical plus horizontal
  neighbours; 0 for a flat map, 2 for a black-and-white checkerboard."""
  shown = magnitude_scale(values, percentile).normalize(values)
  return float(np.abs(np.diff(shown, axis=0)).mean() + np.abs(np.diff(shown, axis=1)).mean())


def high_frequency_energy(values, cutoff: float = 0.25,
                          percentile: float = CLIP_PERCENTILE) -> float:
  """The share of a displayed map's energy (its mean removed) at spatial frequencies above
  `cutoff` cycles per pixel; 0.25 is half the Nyquist frequency."""
  shown = magnitude_scale(values, percentile).normalize(values)
  power = np.abs(np.fft.fft2(shown - shown.mean())) ** 2
  fy, fx = np.meshgrid(np.fft.fftfreq(shown.shape[0]), np.fft.fftfreq(shown.shape[1]),
                       indexing="ij")
  return float(power[np.hypot(fy, fx) > cutoff].sum() / max(power.sum(), 1e-30))


def optimized_picture(images, mode: str = "raw", center=None) -> np.ndarray:
  """Optimised images (N, H, W, 3) for display.
  raw: the pixels as optimised, clipped to [0, 1] (lucid shows its sigmoid-squashed images so);
  stretch: the deep visualization toolbox's `best_X.jpg`: the image minus `center` (the model's
  mean pixel; each image's own mean pixel if None) scaled so that its largest deviation reaches
  0 or 1, zero at mid grey (`saveimagescc(x, 0)`, docs/papers.md §5);
  minmax: the toolbox's `best_Xpm.jpg`: each image min-max stretched (`saveimagesc`)."""
  choose("display", mode, OPTIMIZED_DISPLAYS)
  images = np.asarray(images, np.float32)
  if mode == "raw":
    return np.clip(images, 0, 1)
  if mode == "minmax":
    lo = images.min(axis=(1, 2, 3), keepdims=True)
    hi = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - lo) / np.maximum(hi - lo, 1e-12)
  center = images.mean(axis=(1, 2), keepdims=True) if center is None else \
      np.asarray(center, np.float32).reshape(1, 1, 1, 3)
  dev = images - center
  scale = np.abs(dev).max(axis=(1, 2, 3), keepdims=True)
  return 0.5 + 0.5 * dev / np.maximum(scale, 1e-12)


# ------------------------------------------------------------------------------------------------
# Text, colour bars, legends and grids.

@functools.lru_cache(maxsize=4)
def _font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
    return ImageFont.load_default()


def _text_width(text: str, size: int) -> int:
  box = _font(size).getbbox(text)
  return int(box[2] - box[0])


def format_value(value: float) -> str:
  """Colour-bar labels: 3 significant digits, 0 as 0."""
  return "0" if value == 0 else f"{value:.3g}"


def colorbar(scale: Scale, height: int, bar_width: int = 10, font_size: int = 10) -> np.ndarray:
  """A vertical colour bar (hi at the top, lo at the bottom) with its tick values beside it,
  HxWx3 float on white."""
  height = max(int(height), 2 * font_size + 4)
  positions = np.linspace(1.0, 0.0, height)[:, None]
  values = scale.lo + positions * (scale.hi - scale.lo)
  bar = np.broadcast_to(scale.colors(values), (height, bar_width, 3))
  labels = [format_value(v) for v in scale.ticks()]
  text_width = max(_text_width(t, font_size) for t in labels) + 4
  canvas = Image.new("RGB", (bar_width + 1 + text_width, height), (255, 255, 255))
  canvas.paste(Image.fromarray(to_uint8(bar)), (0, 0))
  draw = ImageDraw.Draw(canvas)
  span = max(scale.hi - scale.lo, 1e-30)
  for value, text in zip(scale.ticks(), labels):
    y = (scale.hi - value) / span * (height - 1)
    top = int(np.clip(y - font_size / 2, 0, height - font_size - 2))
    draw.line([(bar_width - 3, int(y)), (bar_width, int(y))], fill=(0, 0, 0))
    draw.text((bar_width + 3, top), text, fill=(0, 0, 0), font=_font(font_size))
  return np.asarray(canvas, np.float32) / 255.0


def beside(*pictures, gap: int = 3, background: float = 1.0) -> np.ndarray:
  """HxWx3 pictures side by side, top-aligned, on a `background` canvas."""
  pictures = [np.asarray(to_uint8(p), np.float32) / 255.0 for p in pictures]
  height = max(p.shape[0] for p in pictures)
  width = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
  canvas = np.full((height, width, 3), background, np.float32)
  left = 0
  for p in pictures:
    canvas[:p.shape[0], left:left + p.shape[1]] = p
    left += p.shape[1] + gap
  return canvas


def with_colorbar(picture, scale: Scale) -> np.ndarray:
  """The picture with its colour bar (and range) to the right."""
  return beside(picture, colorbar(scale, np.asarray(picture).shape[0]))


def legend(colors, names: Sequence[str], swatch: int = 12, font_size: int = 10) -> np.ndarray:
  """One row per entry: a colour swatch and its name; HxWx3 float on white."""
  check(len(colors) == len(names) and len(names) > 0,
        f"a legend needs one colour per name, got {len(colors)} colours for {len(names)} names")
  row = swatch + 3
  width = swatch + 6 + max(_text_width(str(n), font_size) for n in names) + 2
  canvas = Image.new("RGB", (width, row * len(names) + 1), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for i, (color, name) in enumerate(zip(colors, names)):
    top = 1 + i * row
    fill = tuple(int(round(255 * float(c))) for c in np.asarray(color)[:3])
    draw.rectangle([1, top, swatch, top + swatch - 1], fill=fill, outline=(0, 0, 0))
    draw.text((swatch + 5, top), str(name), fill=(0, 0, 0), font=_font(font_size))
  return np.asarray(canvas, np.float32) / 255.0


def categorical_colors(count: int) -> np.ndarray:
  """`count` distinct RGB colours (tab10, then tab20b and tab20c: up to 50, then repeating)."""
  table = np.concatenate([matplotlib.colormaps[name](np.arange(n))[:, :3]
                          for name, n in (("tab10", 10), ("tab20b", 20), ("tab20c", 20))])
  return table[np.arange(count) % len(table)]


def categorical_picture(labels):
  """A map of integer labels as colours, the most frequent label first in the palette.
  Returns (HxWx3 picture, [(label, colour, fraction of the map)] most frequent first)."""
  labels = np.asarray(labels)
  values, counts = np.unique(labels, return_counts=True)
  order = np.argsort(-counts, kind="stable")
  values, counts = values[order], counts[order]
  colors = categorical_colors(len(values))
  lookup = np.argsort(values, kind="stable")        # sorted label k is values[lookup[k]]
  index = lookup[np.searchsorted(values[lookup], labels)]
  entries = [(int(v), colors[i], float(c / counts.sum()))
             for i, (v, c) in enumerate(zip(values, counts))]
  return colors[index], entries


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
