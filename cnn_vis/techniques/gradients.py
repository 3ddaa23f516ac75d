"""Attribution by gradients: which pixels (or which positions of a conv layer) matter for a unit.

- `gradients`: d(unit)/d(image) with the model's ReLU backward rule, a module attribute:
  `standard` (backprop), `deconvnet` (Zeiler & Fergus 2014, §2.1: rectify the signal going down)
  or `guided` (Springenberg et al. 2015, §3.4: both masks). These functions only differentiate.
- `saliency`: M_ij = max_c |dS/dI_ijc| (Simonyan, Vedaldi & Zisserman 2014, §3.1).
- `integrated_gradients`: (x - x') * int_0^1 dS(x' + a (x - x'))/dx da by a quadrature rule
  (Sundararajan, Taly & Yan 2017, §3 and eq. 3; rule names as Captum's).
- `grad_cam`: ReLU(sum_k alpha_k A^k) with alpha_k the spatial mean of dS/dA^k at a conv layer
  (Selvaraju et al. 2017, §3, eqs. 1-2), bilinearly upsampled to the image.

Units. A batch of U units of ONE layer (`layer`; None = the logits, i.e. class scores before the
softmax) is a `Units` of int arrays `channel`, `y`, `x`, each (U,) (the same unit for every
image) or (U, N) (a unit per image). y = x = -1 on a conv layer means "no position": `spatial`
decides (center, mean, sum, or max = the channel's strongest position). channel = -1 means the
strongest: the predicted class on the logits, the strongest channel at (y, x), or, with no
position, the strongest activation of the whole layer (Zeiler & Fergus's projections of "the
strongest activation"). These choices are resolved on the input images once (`resolve_units`),
so SmoothGrad's noisy copies and the IG path keep the unit chosen on the image. `Units.of` builds
them from the validated units of cnn_vis.models.units.

Every function takes `apply_fn` static and `variables` traced, returns (U, N, ...) arrays, and
runs one forward pass per batch of images and one backward pass per unit (`jax.vjp`, the
pull-back vmapped over the units, or `unit_chunk` at a time). `gradients` and `grad_cam` are one
compiled call. IG path points (and SmoothGrad's samples, cnn_vis.techniques.attribution) run
`chunk` at a time (of every image) into a running sum on the device (`chunked_sum`), so memory
grows with the chunk, never with the number of steps or samples. The named attribution methods,
one signature each, are in cnn_vis.techniques.attribution.
"""
import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from cnn_vis.errors import check, choose
from cnn_vis.models.units import Unit

SPATIAL = ("center", "mean", "sum", "max")
# Captum's names for the IG quadrature rules; Sundararajan et al.'s eq. 3 is `riemann_right`.
RULES = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")


class Units(NamedTuple):
  """U units of one layer; int32 arrays (U,) or (U, N). -1 = chosen per image (module docstring)."""
  channel: jax.Array
  y: jax.Array
  x: jax.Array

  @classmethod
  def make(cls, channel, y=-1, x=-1) -> "Units":
    channel = np.asarray(channel, np.int32)
    return cls(channel, *(np.broadcast_to(np.asarray(v, np.int32), channel.shape) for v in (y, x)))

  @classmethod
  def of(cls, units: Sequence[Unit]) -> "Units":
    """From units of one layer (cnn_vis.models.units.Unit); None (strongest / no position) is -1."""
    code = lambda v: -1 if v is None else v
    return cls.make([code(u.channel) for u in units], [code(u.y) for u in units],
                    [code(u.x) for u in units])


class Attribution(NamedTuple):
  values: jax.Array          # (U, N, H, W, C): gradients, mean gradients or attributions
  scores: jax.Array          # (U, N): the unit's value on each image
  units: Units               # (U, N): the resolved unit (class, channel, position) of each map


class IGResult(NamedTuple):
  values: jax.Array          # (U, N, H, W, C) attributions
  scores: jax.Array          # (U, N) S(x)
  units: Units
  baseline_scores: jax.Array  # (U, N) S(x'); completeness: values sum to S(x) - S(x')


class GradCamResult(NamedTuple):
  values: jax.Array          # (U, N, H, W) maps upsampled to the image, >= 0
  scores: jax.Array          # (U, N)
  units: Units
  coarse: jax.Array          # (U, N, h, w) maps at the conv layer's resolution


# ------------------------------------------------------------------------------------------------
# Units -> cotangents of the layer output.

def _layer_output(logits, acts, layer: str | None):
  if layer is None:
    return logits
  choose("layer", layer, acts)
  return acts[layer]


def _resolve_one(a, channel, y, x, spatial: str):
  """Makes one image's unit explicit: channel >= 0 and, for point units, y, x >= 0."""
  if a.ndim == 1:
    return jnp.where(channel < 0, jnp.argmax(a), channel), y, x
  height, width, _ = a.shape
  best_y, best_x, best_c = jnp.unravel_index(jnp.argmax(a), a.shape)
  has_position = y >= 0
  strongest = (channel < 0) & ~has_position  # Zeiler & Fergus: the layer's strongest activation
  at_position = jnp.argmax(a[jnp.maximum(y, 0), jnp.maximum(x, 0)])
  channel = jnp.where(channel >= 0, channel, jnp.where(has_position, at_position, best_c))
  if spatial == "center":
    rule_y, rule_x = height // 2, width // 2
  elif spatial == "max":
    rule_y, rule_x = jnp.unravel_index(jnp.argmax(a[..., channel]), (height, width))
  else:  # mean / sum: no single position
    rule_y = rule_x = -1
  y = jnp.where(has_position, y, jnp.where(strongest, best_y, rule_y))
  x = jnp.where(has_position, x, jnp.where(strongest, best_x, rule_x))
  return channel, y, x


def resolve(out, units: Units, spatial: str) -> Units:
  """Units (U,) or (U, N) -> explicit Units (U, N) on the layer output `out` (N, ...)."""
  n = out.shape[0]
  units = [jnp.asarray(v, jnp.int32) for v in units]
  units = [jnp.broadcast_to(v.reshape((v.shape[0], -1)), (v.shape[0], n)) for v in units]
  per_image = jax.vmap(functools.partial(_resolve_one, spatial=spatial))
  resolved = jax.vmap(per_image, in_axes=(None, 0, 0, 0))(out, *units)
  return Units(*(v.astype(jnp.int32) for v in resolved))


def _cotangent_one(a, channel, y, x, spatial: str):
  """d(unit)/d(a) for one image's layer output a ((C,) or (H, W, C)) and a resolved unit."""
  pick = jax.nn.one_hot(channel, a.shape[-1], dtype=a.dtype)
  if a.ndim == 1:
    return pick
  height, width, _ = a.shape
  point = (jax.nn.one_hot(y, height, dtype=a.dtype)[:, None]
           * jax.nn.one_hot(x, width, dtype=a.dtype)[None, :])
  spread = jnp.full((height, width), 1.0 / (height * width) if spatial == "mean" else 1.0, a.dtype)
  return jnp.where(y >= 0, point, spread)[..., None] * pick


def _pullback_units(fn: Callable, primal, units: Units, spatial: str, unit_chunk: int | None):
  """fn(primal) -> (layer output (N, ...), aux). Returns (grads (U, *primal.shape), scores (U, N),
  aux, resolved units): one forward pass, one backward pass per unit."""
  out, pullback, aux = jax.vjp(fn, primal, has_aux=True)
  units = resolve(jax.lax.stop_gradient(out), units, spatial)

  def one_unit(unit):
    cot = jax.vmap(functools.partial(_cotangent_one, spatial=spatial))(out, *unit)
    return pullback(cot)[0], jnp.sum(cot * out, axis=tuple(range(1, out.ndim)))

  if unit_chunk is None or unit_chunk >= units.channel.shape[0]:
    grads, scores = jax.vmap(one_unit)(units)
  else:
    grads, scores = jax.lax.map(one_unit, units, batch_size=unit_chunk)
  return grads, scores, aux, units


def _check_spatial(spatial: str) -> None:
  choose("spatial reduction", spatial, SPATIAL)


def _image_fn(apply_fn, variables, layer):
  return lambda images: (_layer_output(*apply_fn(variables, images), layer), None)


_STATIC = ("apply_fn", "layer", "spatial", "unit_chunk")


@functools.partial(jax.jit, static_argnames=_STATIC)
def gradients(apply_fn, variables, images, units: Units, layer: str | None = None,
              spatial: str = "center", unit_chunk: int | None = None) -> Attribution:
  """Each unit's gradient w.r.t. each image, values (U, N, H, W, C)."""
  _check_spatial(spatial)
  grads, scores, _, units = _pullback_units(_image_fn(apply_fn, variables, layer), images, units,
                                            spatial, unit_chunk)
  return Attribution(grads, scores, units)


def saliency(grads):
  """Simonyan et al. 2014, §3.1: M_ij = max_c |w_ijc| ((..., H, W, C) -> (..., H, W))."""
  return jnp.max(jnp.abs(grads), axis=-1)


def padded(values: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
  """values (S,) padded to a multiple of chunk, reshaped (S / chunk, chunk); and a 0/1 mask."""
  pad = -len(values) % chunk
  valid = np.concatenate([np.ones(len(values)), np.zeros(pad)]).astype(np.float32)
  values = np.concatenate([values, np.repeat(values[-1:], pad)])
  return values.reshape(-1, chunk), valid.reshape(-1, chunk)


def path_images(images, baseline, alpha):
  """IG: the points x' + alpha (x - x') of the straight path, (chunk, N, H, W, C)."""
  return baseline[None] + alpha[:, None, None, None, None] * (images - baseline)[None]


@functools.partial(jax.jit, static_argnames=("make_inputs",))
def _chunk_inputs(make_inputs, images, extras, params):
  """make_inputs(images, extras, params) (chunk, N, ...) as one batch (chunk * N, ...),
  chunk-major."""
  return make_inputs(images, extras, params).reshape((-1,) + images.shape[1:])


@functools.partial(jax.jit, static_argnames=("n",))
def _weighted(values, weights, n: int):
  """sum_k weights[k] * values[:, k], values (U, chunk * N, ...) viewed as (U, chunk, N, ...)."""
  values = values.reshape((values.shape[0], weights.shape[0], n) + values.shape[2:])
  return jnp.einsum("k,uk...->u...", weights, values)


@functools.partial(jax.jit, static_argnames=("n",), donate_argnames=("total",))
def _accumulate(total, values, weights, n: int):
  return total + _weighted(values, weights, n)


def chunked_sum(fn: Callable, make_inputs: Callable, images, extras, params, weights):
  """sum_s weights[s] * fn(inputs_s), inputs_s = make_inputs(images, extras, params[s]) for one s.

  params, weights: (S / chunk, chunk) numpy; fn(batch (chunk * N, ...)) -> values (U, chunk * N,
  ...), e.g. the gradients of U units (tiled over the chunk). The chunks run from a Python loop
  over compiled functions, dispatched asynchronously, the running sum staying on the device:
  XLA:CPU runs backward passes inside a while loop (lax.scan / lax.map) 1.6x (EfficientNet-Lite0)
  to 3x (AlexNet) slower than the same pass outside one (measured here), and unrolling the loop
  would make compile time grow with the number of chunks. Memory grows with the chunk only.
  """
  n, total = images.shape[0], None
  for chunk_params, chunk_weights in zip(params, weights):
    values = fn(_chunk_inputs(make_inputs, images, extras, jnp.asarray(chunk_params)))
    chunk_weights = jnp.asarray(chunk_weights)
    total = _weighted(values, chunk_weights, n) if total is None else \
        _accumulate(total, values, chunk_weights, n)
  return total


def tile(units: Units, chunk: int) -> Units:
  """Resolved units (U, N) repeated for a chunk-major batch of chunk * N images."""
  return Units(*(jnp.tile(jnp.asarray(v), (1, chunk)) for v in units))


@functools.partial(jax.jit, static_argnames=("apply_fn", "layer", "spatial"))
def resolve_units(apply_fn, variables, images, units: Units, layer: str | None, spatial: str):
  """(resolved Units (U, N), scores (U, N)) of the units on the images themselves: what
  SmoothGrad's noisy copies and the IG path keep fixed."""
  out = _layer_output(*apply_fn(variables, images), layer)
  units = resolve(out, units, spatial)
  cot = jax.vmap(jax.vmap(functools.partial(_cotangent_one, spatial=spatial)),
                 in_axes=(None, 0, 0, 0))(out, *units)
  return units, jnp.sum(cot * out[None], axis=tuple(range(2, out.ndim + 1)))


def quadrature(steps: int, rule: str = "riemann_right") -> tuple[np.ndarray, np.ndarray]:
  """(alphas, weights) with sum_k w_k g(alpha_k) ~ int_0^1 g(a) da (Captum's rule names)."""
  choose("integration rule", rule, RULES)
  check(steps >= 1, f"integrated gradients steps must be >= 1, got {steps}")
  k = np.arange(steps, dtype=np.float64)
  if rule == "gausslegendre":
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return ((nodes + 1) / 2).astype(np.float32), (weights / 2).astype(np.float32)
  if rule == "riemann_trapezoid":
    check(steps >= 2, f"riemann_trapezoid needs steps >= 2, got {steps}")
    weights = np.full(steps, 1 / (steps - 1))
    weights[[0, -1]] /= 2
    return (k / (steps - 1)).astype(np.float32), weights.astype(np.float32)
  offset = {"riemann_right": 1.0, "riemann_left": 0.0, "riemann_middle": 0.5}[rule]
  return ((k + offset) / steps).astype(np.float32), np.full(steps, 1 / steps, np.float32)


def integrated_gradients(apply_fn, variables, images, units: Units, baseline=0.0, steps: int = 50,
                         rule: str = "riemann_right", chunk: int = 10, layer: str | None = None,
                         spatial: str = "center", unit_chunk: int | None = None) -> IGResult:
  """Sundararajan et al. 2017: (x - x') * sum_k w_k dS(x' + alpha_k (x - x'))/dx.

  baseline x': broadcastable to images (e.g. 0.0 = black, or a (N, H, W, C) batch).
  `chunk` path points (of every image) per forward/backward pass.
  """
  _check_spatial(spatial)
  check(chunk >= 1, f"chunk must be >= 1, got {chunk}")
  alphas, weights = quadrature(steps, rule)
  images = jnp.asarray(images)
  baseline = jnp.broadcast_to(jnp.asarray(baseline, images.dtype), images.shape)
  units, scores = resolve_units(apply_fn, variables, images, units, layer, spatial)
  _, baseline_scores = resolve_units(apply_fn, variables, baseline, units, layer, spatial)
  total = path_gradients(apply_fn, variables, images, baseline, units, alphas, weights,
                         min(chunk, steps), layer, spatial, unit_chunk)
  return IGResult((images - baseline)[None] * total, scores, units, baseline_scores)


def path_gradients(apply_fn, variables, images, baseline, units: Units, alphas, weights,
                   chunk: int = 10, layer: str | None = None, spatial: str = "center",
                   unit_chunk: int | None = None):
  """sum_k weights_k dS(x' + alphas_k (x - x'))/dx (U, N, H, W, C) for resolved units (U, N),
  exactly `chunk` path points (of every image) per forward/backward pass (the last chunk padded
  with zero weights), so calls with any number of points share one compiled pass."""
  alphas, valid = padded(np.asarray(alphas, np.float32), chunk)
  weights, _ = padded(np.asarray(weights, np.float32), chunk)
  tiled = tile(units, alphas.shape[1])
  grads = lambda batch: gradients(apply_fn, variables, batch, tiled, layer, spatial,
                                  unit_chunk).values
  return chunked_sum(grads, path_images, images, baseline, alphas, weights * valid)


def refinement(steps: int, rule: str = "riemann_right"):
  """The next, finer quadrature of `rule` after `steps`: (next steps, alphas, weights, keep) with
  sum_next w g = keep * sum_steps w g + sum_k weights_k g(alphas_k).

  The Riemann rules riemann_right and riemann_left double the number of intervals and their
  points nest (the new ones are the old intervals' midpoints, weight 1 / (2 steps), keep 1/2);
  riemann_trapezoid doubles its intervals too (2 steps - 1 points, keep 1/2); riemann_middle and
  gausslegendre do not nest, so their next rule (twice the points) is computed afresh (keep 0).
  """
  quadrature(steps, rule)  # checks the rule and the step count
  if rule in ("riemann_right", "riemann_left"):
    midpoints = (np.arange(steps) + 0.5) / steps
    return 2 * steps, midpoints.astype(np.float32), np.full(steps, 0.5 / steps, np.float32), 0.5
  if rule == "riemann_trapezoid":
    intervals = steps - 1
    midpoints = (np.arange(intervals) + 0.5) / intervals
    return (2 * intervals + 1, midpoints.astype(np.float32),
            np.full(intervals, 0.5 / intervals, np.float32), 0.5)
  return (2 * steps, *quadrature(2 * steps, rule), 0.0)


# ------------------------------------------------------------------------------------------------
# Gradients w.r.t. an intermediate activation (Grad-CAM).

def _output_index(out_shape, layer: str) -> int:
  """Index, among the flattened (logits, acts) outputs, of acts[layer]."""
  paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(out_shape)[0]]
  for i, path in enumerate(paths):
    if len(path) == 2 and path[0].idx == 1 and getattr(path[1], "key", None) == layer:
      return i
  choose("layer", layer, out_shape[1])
  raise AssertionError(layer)


def with_perturbation(apply_fn, layer: str):
  """apply_fn with `delta` added to acts[layer]: fn(variables, images, delta) -> (logits, acts).

  Everything computed from that activation sees A + delta, so the gradient w.r.t. delta at 0 is
  dS/dA. The model needs no hook: its forward pass is traced to a jaxpr and re-evaluated
  equation by equation, adding delta where the equation producing acts[layer] writes its output
  (the idea of flax's `Module.perturb`, applied from outside the module).
  """
  def fn(variables, images, delta):
    closed, out_shape = jax.make_jaxpr(apply_fn, return_shape=True)(variables, images)
    jaxpr = closed.jaxpr
    target = jaxpr.outvars[_output_index(out_shape, layer)]
    env = {}
    read = lambda v: v.val if isinstance(v, jax_core.Literal) else env[v]

    def write(var, value):
      env[var] = value + delta if var is target else value

    for var, value in zip(jaxpr.constvars, closed.consts):
      write(var, value)
    for var, value in zip(jaxpr.invars, jax.tree_util.tree_leaves((variables, images))):
      write(var, value)
    for eqn in jaxpr.eqns:
      outs = eqn.primitive.bind(*map(read, eqn.invars), **eqn.primitive.get_bind_params(eqn.params))
      for var, value in zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs]):
        write(var, value)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape),
                                        [read(v) for v in jaxpr.outvars])
  return fn


@functools.partial(jax.jit, static_argnames=_STATIC + ("conv_layer",))
def activation_gradients(apply_fn, variables, images, units: Units, conv_layer: str,
                         layer: str | None = None, spatial: str = "center",
                         unit_chunk: int | None = None):
  """(Attribution with values dS/dA (U, N, h, w, K), A (N, h, w, K)) at A = acts[conv_layer]."""
  _check_spatial(spatial)
  _, acts = jax.eval_shape(apply_fn, variables, images)
  choose("layer", conv_layer, acts)
  check(acts[conv_layer].ndim == 4,
        f"layer {conv_layer} has no spatial positions (shape {tuple(acts[conv_layer].shape)}); "
        "Grad-CAM needs a conv layer")
  perturbed = with_perturbation(apply_fn, conv_layer)

  def fn(delta):
    logits, acts = perturbed(variables, images, delta)
    return _layer_output(logits, acts, layer), acts[conv_layer]

  zeros = jnp.zeros(acts[conv_layer].shape, acts[conv_layer].dtype)
  grads, scores, activation, units = _pullback_units(fn, zeros, units, spatial, unit_chunk)
  return Attribution(grads, scores, units), activation


@functools.partial(jax.jit, static_argnames=_STATIC + ("conv_layer",))
def grad_cam(apply_fn, variables, images, units: Units, conv_layer: str, layer: str | None = None,
             spatial: str = "center", unit_chunk: int | None = None) -> GradCamResult:
  """Selvaraju et al. 2017, §3: alpha_k = mean_ij dS/dA^k_ij (eq. 1), map = ReLU(sum_k alpha_k A^k)
  (eq. 2), upsampled bilinearly to the image size."""
  grads, activation = activation_gradients(apply_fn, variables, images, units, conv_layer, layer,
                                           spatial, unit_chunk)
  alpha = grads.values.mean(axis=(2, 3))
  coarse = jax.nn.relu(jnp.einsum("unk,nhwk->unhw", alpha, activation))
  maps = jax.image.resize(coarse, coarse.shape[:2] + images.shape[1:3], "bilinear")
  return GradCamResult(jnp.maximum(maps, 0), grads.scores, grads.units, coarse)
