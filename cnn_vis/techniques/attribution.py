"""Attribution methods by name: one signature for all, an open registry.

    method = attribution.get("guided_backprop")
    maps = method.fn(apply_fn, variables, images, target, method.options())

Every method is `fn(apply_fn, variables, images, target, options) -> Maps`: `target` says which
units of which layer (`Target`), `options` is the method's own frozen dataclass of settings (its
defaults are the papers'; invalid values are one-line UserErrors when it is built). A method is
registered with `@register(name, options=..., display=...)`; `display` names how its maps are
shown (cnn_vis.report.attribution_picture). Adding a method is adding a function: nothing
dispatches on names but `get`. SmoothGrad wraps any registered method (as Captum's NoiseTunnel
wraps any attribution), Guided Grad-CAM is a method of its own.

Methods and papers:
- gradient / saliency: dS/dx; saliency shows max_c |dS/dx| (Simonyan, Vedaldi & Zisserman 2014,
  §3.1).
- deconvnet: the gradient through ReLUs that rectify the signal going down (Zeiler & Fergus 2014,
  §2.1); guided_backprop: both masks (Springenberg et al. 2015, §3.4).
- smoothgrad: a method's maps averaged over noisy copies, noise std sigma = noise (x_max - x_min)
  (Smilkov et al. 2017, §3, eq. 3).
- integrated_gradients: (x - x') int_0^1 dS(x' + a (x - x'))/dx da (Sundararajan, Taly & Yan 2017,
  §3, eq. 3). Completeness (the attributions sum to S(x) - S(x')) is the check §5 asks for: the
  step count doubles (reusing the points already computed where the rule nests) until every
  map's gap is within `target_gap` (5%) or `max_steps` is reached; extras report the gap, the
  steps used and Captum's convergence delta.
- grad_cam: ReLU(sum_k alpha_k A^k), alpha_k = mean_ij dS/dA^k_ij (Selvaraju et al. 2017, §3,
  eqs. 1-2); guided_grad_cam: guided backprop times the upsampled Grad-CAM map (§3.1).
"""
import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis import models
from cnn_vis.errors import UserError, check, choose
from cnn_vis.techniques import gradients as G

DISPLAYS = ("signed", "max_abs", "sum_abs", "heatmap")


@dataclasses.dataclass(frozen=True)
class Target:
  """U units of one layer (None: the logits) and how positionless conv units are read."""
  layer: str | None
  units: G.Units
  spatial: str = "center"
  unit_chunk: int | None = None

  def __post_init__(self):
    choose("spatial reduction", self.spatial, G.SPATIAL)
    check(self.unit_chunk is None or self.unit_chunk >= 1,
          f"unit_chunk must be >= 1, got {self.unit_chunk}")


class Maps(NamedTuple):
  values: jax.Array   # (U, N, H, W, C) pixel attributions, or (U, N, H, W) maps (Grad-CAM)
  scores: jax.Array   # (U, N) the unit's value on each image
  units: G.Units      # (U, N) the resolved unit (class, channel, position) of each map
  extras: dict        # method-specific (U, N) figures (e.g. IG's completeness)


@dataclasses.dataclass(frozen=True)
class Options:
  """A method's settings; `from_config` reads each field from a config key of the same name."""

  @classmethod
  def from_config(cls, config, spec=None) -> "Options":
    del spec
    values = {f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config}
    return cls(**values)

  def check(self, table) -> None:
    """Validates the options against the model's layers (a cnn_vis.models.LayerTable)."""
    del table


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  fn: Callable
  options: type
  display: str
  doc: str


_METHODS: dict[str, Method] = {}


def register(name: str, options: type = Options, display: str = "signed"):
  """Decorator: registers fn(apply_fn, variables, images, target, options) -> Maps as `name`."""
  choose("display", display, DISPLAYS)

  def add(fn):
    _METHODS[name] = Method(name, fn, options, display, (fn.__doc__ or "").strip().split("\n")[0])
    return fn
  return add


def names() -> list[str]:
  return sorted(_METHODS)


def get(name: str) -> Method:
  choose("method", name, names())
  return _METHODS[name]


# ------------------------------------------------------------------------------------------------
# Plain gradients under the three ReLU rules.

def _gradient_maps(apply_fn, variables, images, target: Target) -> Maps:
  result = G.gradients(apply_fn, variables, images, target.units, target.layer, target.spatial,
                       target.unit_chunk)
  return Maps(result.values, result.scores, result.units, {})


@register("gradient")
def gradient(apply_fn, variables, images, target: Target, options: Options) -> Maps:
  """d(unit)/d(image), shown signed (grey is zero)."""
  del options
  return _gradient_maps(apply_fn, variables, images, target)


@register("saliency", display="max_abs")
def saliency(apply_fn, variables, images, target: Target, options: Options) -> Maps:
  """Simonyan et al. 2014 §3.1: the gradient, shown as max over channels of its magnitude."""
  del options
  return _gradient_maps(apply_fn, variables, images, target)


@register("deconvnet")
def deconvnet(apply_fn, variables, images, target: Target, options: Options) -> Maps:
  """Zeiler & Fergus 2014 §2.1: the projection through rectifying ReLUs and max-pool switches."""
  del options
  return _gradient_maps(models.with_relu(apply_fn, "deconvnet"), variables, images, target)


@register("guided_backprop")
def guided_backprop(apply_fn, variables, images, target: Target, options: Options) -> Maps:
  """Springenberg et al. 2015 §3.4: backprop masked by the forward and the backward sign."""
  del options
  return _gradient_maps(models.with_relu(apply_fn, "guided"), variables, images, target)


# ------------------------------------------------------------------------------------------------
# Integrated Gradients.

BASELINES = {"black": 0.0, "white": 1.0, "grey": 0.5}


def baseline_value(name) -> float:
  """IG baseline: black | white | grey | a number in [0, 1]."""
  if str(name) in BASELINES:
    return BASELINES[str(name)]
  try:
    value = float(name)
  except (TypeError, ValueError):
    raise UserError(f"unknown baseline {name!r}; allowed: {', '.join(BASELINES)} or a number "
                    "in [0, 1]") from None
  check(0.0 <= value <= 1.0, f"baseline {name!r} must be in [0, 1]")
  return value


@dataclasses.dataclass(frozen=True)
class IGOptions(Options):
  steps: int = 50                  # the first try; §5: 20 to 300 steps (reference code: 50)
  target_gap: float = 0.05         # §5: within 5% of S(x) - S(x'); 0: exactly `steps` steps
  max_steps: int = 1600            # where the doubling stops (ours)
  baseline: str = "black"          # §3: the black image
  rule: str = "riemann_right"      # §5's Riemann sum; Captum's other rules
  chunk: int = 10                  # path points per forward/backward pass (memory bound)

  def __post_init__(self):
    G.quadrature(int(self.steps), self.rule)
    check(np.isfinite(self.target_gap) and self.target_gap >= 0,
          f"target_gap must be a finite number >= 0, got {self.target_gap}")
    check(int(self.max_steps) >= int(self.steps),
          f"max_steps ({self.max_steps}) must be >= steps ({self.steps})")
    baseline_value(self.baseline)
    check(int(self.chunk) >= 1, f"chunk must be >= 1, got {self.chunk}")


def completeness_gap(values, delta):
  """|sum of the attributions - (S(x) - S(x'))| / |S(x) - S(x')| per map (U, N)."""
  total = values.sum(axis=tuple(range(2, values.ndim)))
  return total, jnp.abs(total - delta) / jnp.maximum(jnp.abs(delta), 1e-12)


@register("integrated_gradients", IGOptions, display="sum_abs")
def integrated_gradients(apply_fn, variables, images, target: Target, options: IGOptions) -> Maps:
  """Sundararajan et al. 2017 §3: path-integrated gradients from a baseline image, the steps
  doubled until every map is complete to within target_gap (§5) or max_steps is reached."""
  images = jnp.asarray(images)
  baseline = jnp.full_like(images, baseline_value(options.baseline))
  units, scores = G.resolve_units(apply_fn, variables, images, target.units, target.layer,
                                  target.spatial)
  _, baseline_scores = G.resolve_units(apply_fn, variables, baseline, units, target.layer,
                                       target.spatial)
  delta = scores - baseline_scores
  steps = int(options.steps)
  # one chunk size for every refinement: one compiled forward/backward pass
  path = functools.partial(G.path_gradients, apply_fn, variables, images, baseline, units,
                           chunk=min(int(options.chunk), steps), layer=target.layer,
                           spatial=target.spatial, unit_chunk=target.unit_chunk)
  total = path(*G.quadrature(steps, options.rule))
  while True:
    values = (images - baseline)[None] * total
    attribution_sum, gap = completeness_gap(values, delta)
    if options.target_gap == 0 or float(gap.max()) <= options.target_gap:
      break
    next_steps, alphas, weights, keep = G.refinement(steps, options.rule)
    if next_steps > int(options.max_steps):
      break
    total = keep * total + path(alphas, weights)
    steps = next_steps
  # Captum's convergence delta is attribution_sum - delta, signed.
  return Maps(values, scores, units,
              {"baseline_score": baseline_scores, "attribution_sum": attribution_sum,
               "convergence_delta": attribution_sum - delta, "completeness_gap": gap,
               "steps": jnp.full(gap.shape, steps, jnp.int32)})


# ------------------------------------------------------------------------------------------------
# SmoothGrad: any method, averaged over noisy copies of the images.

@dataclasses.dataclass(frozen=True)
class SmoothGradOptions(Options):
  base: str = "saliency"           # the method whose maps are smoothed
  noise: float = 0.15              # §3: sigma / (x_max - x_min), 10% to 20%
  samples: int = 50                # §3: ~50 samples, diminishing returns beyond
  chunk: int = 10                  # noisy copies per forward/backward pass (memory bound)
  seed: int = 0

  def __post_init__(self):
    others = ", ".join(n for n in names() if n != "smoothgrad")
    check(self.base != "smoothgrad" and self.base in _METHODS,
          f"smoothgrad base {self.base!r} must be one of {others}")
    check(np.isfinite(self.noise) and self.noise >= 0,
          f"smoothgrad noise must be a finite number >= 0, got {self.noise}")
    check(int(self.samples) >= 1, f"smoothgrad samples must be >= 1, got {self.samples}")
    check(int(self.chunk) >= 1, f"chunk must be >= 1, got {self.chunk}")


def noisy_images(images, extras, index):
  """x + sigma N(0, 1), one noise draw per sample index, (chunk, N, H, W, C)."""
  key, sigma = extras
  eps = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), images.shape))(index)
  return images[None] + sigma[None, :, None, None, None] * eps


@register("smoothgrad", SmoothGradOptions, display="max_abs")
def smoothgrad(apply_fn, variables, images, target: Target, options: SmoothGradOptions) -> Maps:
  """Smilkov et al. 2017 §3: the base method's maps averaged over noisy copies of each image."""
  base = get(options.base)
  images = jnp.asarray(images)
  units, scores = G.resolve_units(apply_fn, variables, images, target.units, target.layer,
                                  target.spatial)
  samples, chunk = int(options.samples), min(int(options.chunk), int(options.samples))
  indices, valid = G.padded(np.arange(samples), chunk)
  sigma = options.noise * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))
  tiled = dataclasses.replace(target, units=G.tile(units, chunk))
  base_options = base.options()
  maps = lambda batch: base.fn(apply_fn, variables, batch, tiled, base_options).values
  total = G.chunked_sum(maps, noisy_images, images,
                        (jax.random.PRNGKey(int(options.seed)), sigma), indices, valid / samples)
  return Maps(total, scores, units, {})


# ------------------------------------------------------------------------------------------------
# Grad-CAM and Guided Grad-CAM.

@dataclasses.dataclass(frozen=True)
class GradCamOptions(Options):
  layer: str = ""                  # the conv layer; "" = the model's last conv feature map

  @classmethod
  def from_config(cls, config, spec=None) -> "GradCamOptions":
    layer = config.get("layer") or (spec.last_conv if spec is not None else "")
    check(bool(layer), "Grad-CAM needs config.layer (a conv layer)")
    return cls(layer=layer)

  def check(self, table) -> None:
    choose("layer", self.layer, table.layers())
    check(len(table.shapes[self.layer]) == 3, f"layer {self.layer} has no spatial positions "
                                              f"(shape {table.shapes[self.layer]}); Grad-CAM "
                                              "needs a conv layer")


@register("grad_cam", GradCamOptions, display="heatmap")
def grad_cam(apply_fn, variables, images, target: Target, options: GradCamOptions) -> Maps:
  """Selvaraju et al. 2017 §3: gradient-weighted class activation maps at a conv layer."""
  check(bool(options.layer), "Grad-CAM needs a conv layer (options.layer)")
  result = G.grad_cam(apply_fn, variables, images, target.units, options.layer, target.layer,
                      target.spatial, target.unit_chunk)
  return Maps(result.values, result.scores, result.units, {})


@register("guided_grad_cam", GradCamOptions)
def guided_grad_cam(apply_fn, variables, images, target: Target, options: GradCamOptions) -> Maps:
  """Selvaraju et al. 2017 §3.1: guided backprop times the upsampled Grad-CAM map."""
  cam = grad_cam(apply_fn, variables, images, target, options)
  resolved = dataclasses.replace(target, units=cam.units)
  guided = guided_backprop(apply_fn, variables, images, resolved, options)
  return Maps(_times_map(guided.values, cam.values), cam.scores, cam.units, {})


@jax.jit
def _times_map(values, maps):
  return values * maps[..., None]


__all__ = ["BASELINES", "DISPLAYS", "IGOptions", "GradCamOptions", "Maps", "Method", "Options",
           "SmoothGradOptions", "Target", "baseline_value", "get", "names", "register"]
