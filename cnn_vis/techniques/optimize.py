"""The image-optimisation core behind every "optimise the input" technique.

Class models (Simonyan et al. 2014, §2), activation maximisation (Yosinski et al. 2015, §3;
Olah et al. 2017), feature inversion (Mahendran & Vedaldi 2015) and DeepDream are all

    image* = argmin_params  loss(net(transform(to_image(params))), setting) + penalties(image)

followed, after every optimiser step, by projections of the image. This module provides those
pieces as small pure functions and one compiled driver, `render`:

- a parameterisation `Param` (plain pixels; a Fourier spectrum with 1/f scaling; decorrelated
  colour; optional sigmoid), with `init`, `to_image` and its inverse `from_image`;
- transforms applied to the image each step (jitter, pad, scale, rotate), drawn from a PRNG key;
- penalties added to the loss: L2 (Simonyan), alpha-norm and total variation TV^beta (Mahendran);
- projections applied after each step, in the order of Yosinski's `gradient_optimizer.py`:
  decay, Gaussian blur every N steps, zero pixels of small norm, zero pixels of small
  contribution, then clip to the valid range;
- any optax optimiser by name (plus Yosinski's `progress` learning-rate policy and DeepDream's
  step normalised by mean |g|), with piecewise-constant learning-rate phases that restart the
  optimiser state, as Mahendran & Vedaldi's reference code resets momentum when the rate changes.

`render` runs one optimisation per *setting*: a dict of arrays with a leading axis S (units,
classes, images, hyperparameter values...). Everything a sweep may vary is a traced array in the
settings, so all S renders are ONE compiled, vmapped `lax.scan` (loop="scan"). On CPU the default
(loop="dispatch") instead calls the one compiled, vmapped step from Python once per step, with no
host round-trip: XLA:CPU runs convolutions inside while loops several times slower than outside
(jax-ml/jax#12868), and both loops give the same images. A regulariser is switched on by
putting its weight in the settings (e.g. `tv`, `decay`); keys read by the core are listed in
`SETTING_KEYS`. Images are NHWC float32 in the models' pixel space [0, 1]; `center` (the model's
mean pixel) is the zero of the mean-subtracted space in which the papers define their penalties.
"""
import dataclasses
import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_vis.errors import UserError, check, choose

# Setting keys read by the core (anything else is for the objective). A penalty or projection is
# active when its key is present.
SETTING_KEYS = {
    "lr": "learning rate (or DeepDream step size)",
    "center": "(3,) mean pixel: the zero of the mean-subtracted space penalties are defined in",
    "init": "(H, W, 3) start image (default: center + init_std * N(0, 1))",
    "l2": "weight of sum (x - center)^2 (Simonyan et al. 2014, eq. 1)",
    "alpha_norm": "weight of sum |x - center|^alpha (Mahendran & Vedaldi 2015, R_alpha)",
    "alpha": "exponent of the alpha-norm (default 6)",
    "tv": "weight of sum ((dx)^2 + (dy)^2)^(beta/2) (Mahendran & Vedaldi 2015, R_V^beta)",
    "tv_beta": "exponent beta of the TV penalty (default 2)",
    "decay": "Yosinski theta_decay: x - center *= (1 - decay) after each step",
    "blur_width": "Yosinski theta_b_width: Gaussian blur sigma in pixels",
    "blur_every": "Yosinski theta_b_every: blur every this many steps (0: never)",
    "norm_pct": "Yosinski theta_n_pct: zero pixels whose norm is below this percentile",
    "contrib_pct": "Yosinski theta_c_pct: zero pixels of |contribution| below this percentile",
    "max_lr": "`progress` policy: largest learning rate",
    "desired_prog": "`progress` policy: desired objective change per step",
}

# Olah et al. 2017 ("Feature Visualization", Distill; lucid optvis/param/color.py): square root of
# the ImageNet colour covariance, so that independent parameters give natural colour statistics.
COLOR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02],
                                   [0.27, 0.00, -0.05],
                                   [0.27, -0.09, 0.03]], np.float32)
_COLOR = COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))

TRANSFORMS = ("jitter", "pad", "scale", "rotate")
SPECIAL_OPTIMIZERS = ("progress", "mean_abs")


class DivergedError(UserError):
  """An optimisation whose loss or image became non-finite."""


# ---------------------------------------------------------------------------------------------
# Parameterisations
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Param:
  """How the optimised variables become an image.

  kind: "pixels" (params are an HxWx3 image) or "fourier" (params are the real and imaginary
    parts of its 2-D real FFT, scaled by 1/f^decay_power so that all frequencies learn at the
    same rate; Olah et al. 2017, "preconditioning").
  decorrelate: params live in a decorrelated colour basis (Olah et al. 2017).
  sigmoid: squash to (0, 1) with a sigmoid; otherwise pixels are offset by 0.5 (Fourier and
    decorrelated) or taken as they are (plain pixels).
  """
  kind: str = "pixels"
  decorrelate: bool = False
  sigmoid: bool = False
  init_std: float = 0.01
  decay_power: float = 1.0

  @property
  def is_plain(self) -> bool:
    """Params are the image itself, so pixel-space projections apply to them."""
    return self.kind == "pixels" and not self.decorrelate and not self.sigmoid


def _fourier_scale(height: int, width: int, decay_power: float):
  """1 / max(f, 1/max(H, W))^decay_power * sqrt(H W) for the rfft2 grid (lucid's fft_image)."""
  fy = np.fft.fftfreq(height)[:, None]
  fx = np.fft.rfftfreq(width)[None, :]
  freqs = np.sqrt(fx * fx + fy * fy)
  scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
  return jnp.asarray(scale * np.sqrt(height * width), jnp.float32)


def param_shape(param: Param, height: int, width: int) -> tuple:
  choose("parameterisation", param.kind, ("pixels", "fourier"))
  return (height, width, 3) if param.kind == "pixels" else (2, 3, height, width // 2 + 1)


def _spatial_to_image(param: Param, params, height: int, width: int):
  """Params -> HxWx3 array in the (possibly decorrelated) colour basis, before the squashing."""
  if param.kind == "pixels":
    return params
  spectrum = (params[0] + 1j * params[1]) * _fourier_scale(height, width, param.decay_power)
  # lucid divides by 4 so that the initial spectrum gives a moderate pixel range.
  return jnp.fft.irfft2(spectrum, s=(height, width)).transpose(1, 2, 0) / 4.0


def to_image(param: Param, params, height: int, width: int):
  """Params -> HxWx3 image in [0, 1] pixel space (unclipped for plain pixels)."""
  x = _spatial_to_image(param, params, height, width)
  if param.decorrelate:
    x = x @ jnp.asarray(_COLOR.T)
  if param.sigmoid:
    return jax.nn.sigmoid(x)
  return x if param.is_plain else x + 0.5


def from_image(param: Param, image, eps: float = 1e-4):
  """The inverse of to_image: params whose image is `image` (clipped into (0, 1) for sigmoid)."""
  height, width = image.shape[:2]
  x = image
  if param.sigmoid:
    x = jax.scipy.special.logit(jnp.clip(x, eps, 1 - eps))
  elif not param.is_plain:
    x = x - 0.5
  if param.decorrelate:
    x = x @ jnp.asarray(np.linalg.inv(_COLOR.T))
  if param.kind == "pixels":
    return x
  spectrum = jnp.fft.rfft2(4.0 * x.transpose(2, 0, 1)) / _fourier_scale(height, width,
                                                                         param.decay_power)
  return jnp.stack([spectrum.real, spectrum.imag]).astype(jnp.float32)


def init_params(param: Param, key, height: int, width: int, center=0.0):
  """Random start: plain pixels center + init_std * N(0,1); others N(0, init_std) params."""
  noise = param.init_std * jax.random.normal(key, param_shape(param, height, width))
  return noise + jnp.asarray(center, jnp.float32) if param.is_plain else noise


# ---------------------------------------------------------------------------------------------
# Transforms (key, HxWx3 image) -> image, differentiable in the image
# ---------------------------------------------------------------------------------------------

def jitter(key, image, max_shift: int):
  """Rolls by integers dy, dx uniform in [-max_shift, max_shift] (DeepDream, CS231n)."""
  dy, dx = jax.random.randint(key, (2,), -max_shift, max_shift + 1)
  return jnp.roll(image, (dy, dx), axis=(0, 1))


def pad(image, width: int, value: float = 0.5):
  """Pads with a constant grey border (lucid's transform.pad)."""
  return jnp.pad(image, ((width, width), (width, width), (0, 0)), constant_values=value)


def scale(key, image, factors: Sequence[float]):
  """Resamples about the centre by a factor drawn from `factors`, keeping the shape."""
  s = jax.random.choice(key, jnp.asarray(factors, jnp.float32))
  height, width = image.shape[:2]
  translation = jnp.stack([(1 - s) * height / 2, (1 - s) * width / 2])
  return jax.image.scale_and_translate(image, image.shape, (0, 1), jnp.stack([s, s]), translation,
                                       "linear", antialias=False)


def rotate(key, image, degrees: Sequence[float]):
  """Rotates about the centre by an angle drawn from `degrees` (bilinear, edges extended)."""
  angle = jnp.deg2rad(jax.random.choice(key, jnp.asarray(degrees, jnp.float32)))
  height, width = image.shape[:2]
  cy, cx = (height - 1) / 2, (width - 1) / 2
  yy, xx = jnp.meshgrid(jnp.arange(height) - cy, jnp.arange(width) - cx, indexing="ij")
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  coords = [cos * yy - sin * xx + cy, sin * yy + cos * xx + cx]   # inverse map of the rotation
  sample = lambda c: jax.scipy.ndimage.map_coordinates(c, coords, order=1, mode="nearest")
  return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def check_transforms(transforms) -> tuple:
  """Validates ((name, value), ...) and returns it as a hashable tuple."""
  out = []
  for item in transforms:
    check(isinstance(item, (tuple, list)) and len(item) == 2,
          f"transform {item!r} must be a (name, value) pair, e.g. ('jitter', 8)")
    name, value = item
    choose("transform", name, TRANSFORMS)
    if name in ("scale", "rotate"):
      value = tuple(float(v) for v in np.atleast_1d(value))
      check(len(value) > 0, f"transform {name} needs at least one value")
      if name == "scale":
        check(all(v > 0 for v in value), f"scale factors must be > 0, got {value}")
    else:
      check(float(value) == int(value) and int(value) >= 0,
            f"transform {name} needs a whole number of pixels >= 0, got {value!r}")
      value = int(value)
    out.append((name, value))
  return tuple(out)


def apply_transforms(transforms, key, image):
  """Applies the transforms in order; the result is centre-cropped back to the input's size, so
  fixed-size networks accept it (pad then only supplies a neutral border that the other
  transforms bring into view)."""
  height, width = image.shape[:2]
  keys = jax.random.split(key, max(len(transforms), 1))
  for k, (name, value) in zip(keys, transforms):
    if name == "jitter":
      image = jitter(k, image, value)
    elif name == "pad":
      image = pad(image, value)
    elif name == "scale":
      image = scale(k, image, value)
    else:
      image = rotate(k, image, value)
  top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
  return image[top:top + height, left:left + width]


# ---------------------------------------------------------------------------------------------
# Penalties (image -> scalar) and projections (image -> image)
# ---------------------------------------------------------------------------------------------

def _safe_power(v, p):
  """v^p for v >= 0 with a finite gradient at v = 0 (where it is 0 for p > 0)."""
  positive = v > 0
  return jnp.where(positive, jnp.where(positive, v, 1.0) ** p, 0.0)


def l2_penalty(image, center=0.0):
  """||x - center||^2 (Simonyan et al. 2014: lambda ||I||^2 on the mean-subtracted image)."""
  return jnp.sum((image - center) ** 2)


def alpha_norm(image, alpha, center=0.0):
  """sum |x - center|^alpha (Mahendran & Vedaldi 2015, §3.2 R_alpha; alpha = 6 for CNNs)."""
  return jnp.sum(_safe_power(jnp.abs(image - center), alpha))


def total_variation(image, beta):
  """sum_ij ((x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2)^(beta/2) over pixels and channels
  (Mahendran & Vedaldi 2015, R_V^beta); as in their code the last row/column is replicated, so
  differences beyond the border are zero."""
  dx = jnp.concatenate([image[:, 1:] - image[:, :-1], jnp.zeros_like(image[:, :1])], axis=1)
  dy = jnp.concatenate([image[1:] - image[:-1], jnp.zeros_like(image[:1])], axis=0)
  return jnp.sum(_safe_power(dx * dx + dy * dy, beta / 2))


def blur_radius(width: float, truncate: float = 4.0) -> int:
  """scipy.ndimage.gaussian_filter's kernel radius for sigma `width`."""
  return int(truncate * float(width) + 0.5)


def gaussian_blur(image, sigma, radius: int, truncate: float = 4.0):
  """Per-channel Gaussian blur equal to scipy.ndimage.gaussian_filter(x, sigma) (mode 'reflect',
  truncate 4) for any traced sigma whose scipy radius is <= the static `radius`; sigma 0 is the
  identity (Yosinski's blur, step 4)."""
  if radius == 0:
    return image
  taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  inside = jnp.abs(taps) <= jnp.floor(truncate * sigma + 0.5)
  weights = jnp.where(inside, jnp.exp(-0.5 * taps ** 2 / jnp.maximum(sigma, 1e-6) ** 2), 0.0)
  weights = jnp.where(sigma > 0, weights / weights.sum(), (taps == 0).astype(jnp.float32))
  height, width = image.shape[:2]
  check(radius <= min(height, width),
        f"blur radius {radius} exceeds the image size {height}x{width}")
  # numpy's 'symmetric' padding is scipy's 'reflect' (d c b a | a b c d | d c b a).
  padded = jnp.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="symmetric")
  image = sum(w * padded[k:k + height] for k, w in enumerate(weights))
  padded = jnp.pad(image, ((0, 0), (radius, radius), (0, 0)), mode="symmetric")
  return sum(w * padded[:, k:k + width] for k, w in enumerate(weights))


def zero_small_norm(image, pct, center=0.0):
  """Sets to `center` the pixels whose colour norm (mean-subtracted) is below the pct-th
  percentile (Yosinski's theta_n_pct, `small_norm_percentile`)."""
  x = image - center
  norms = jnp.linalg.norm(x, axis=-1)
  small = norms < jnp.percentile(norms, pct)
  return center + jnp.where(small[..., None], 0.0, x)


def zero_small_contribution(image, grad_loss, pct, center=0.0):
  """Sets to `center` the pixels whose |contribution| |sum_c g_c * (-x_c)| is below the pct-th
  percentile, g the gradient of the *objective* (= -grad_loss), x mean-subtracted (Yosinski's
  theta_c_pct, `px_abs_benefit_percentile`): the predicted objective change of zeroing the pixel."""
  x = image - center
  contribution = jnp.abs(jnp.sum(grad_loss * x, axis=-1))
  small = contribution < jnp.percentile(contribution, pct)
  return center + jnp.where(small[..., None], 0.0, x)


def penalties(image, setting):
  """Sum of the penalties whose weights are in the setting."""
  center = setting.get("center", 0.0)
  total = jnp.zeros((), jnp.float32)
  if "l2" in setting:
    total += setting["l2"] * l2_penalty(image, center)
  if "alpha_norm" in setting:
    total += setting["alpha_norm"] * alpha_norm(image, setting.get("alpha", 6.0), center)
  if "tv" in setting:
    total += setting["tv"] * total_variation(image, setting.get("tv_beta", 2.0))
  return total


def project(image, grad_loss, step, setting, radius: int, clip: bool):
  """Yosinski et al.'s per-step regularisers in their code's order, then the clip to [0, 1]."""
  center = setting.get("center", 0.0)
  if "decay" in setting:
    image = center + (image - center) * (1 - setting["decay"])
  if "blur_width" in setting and radius > 0:
    every = setting.get("blur_every", 1)
    due = (every > 0) & (step % jnp.maximum(every, 1) == 0)
    image = jnp.where(due, gaussian_blur(image, setting["blur_width"], radius), image)
  if "norm_pct" in setting:
    image = zero_small_norm(image, setting["norm_pct"], center)
  if "contrib_pct" in setting:
    image = zero_small_contribution(image, grad_loss, setting["contrib_pct"], center)
  return jnp.clip(image, 0.0, 1.0) if clip else image


# ---------------------------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------------------------

def progress_policy(max_lr, desired_prog) -> optax.GradientTransformation:
  """Yosinski's `progress` policy: step -lr g with lr = min(max_lr, desired_prog / ||g||^2), so
  the predicted objective change lr ||g||^2 is desired_prog unless capped."""
  def f(updates, params=None):
    del params
    sq = sum(jnp.sum(u * u) for u in jax.tree_util.tree_leaves(updates))
    lr = jnp.minimum(max_lr, desired_prog / jnp.maximum(sq, 1e-30))
    return jax.tree_util.tree_map(lambda u: -lr * u, updates)
  return optax.stateless(f)


def mean_abs_step(step_size) -> optax.GradientTransformation:
  """DeepDream's update x -= step_size * g / mean(|g|) (google/deepdream `make_step`)."""
  def f(updates, params=None):
    del params
    leaves = jax.tree_util.tree_leaves(updates)
    mean_abs = sum(jnp.sum(jnp.abs(u)) for u in leaves) / sum(u.size for u in leaves)
    return jax.tree_util.tree_map(lambda u: -step_size * u / jnp.maximum(mean_abs, 1e-30), updates)
  return optax.stateless(f)


def make_optimizer(name: str, kwargs: tuple, setting, factor=1.0) -> optax.GradientTransformation:
  """`name` is any optax optimiser taking learning_rate (adam, sgd, rmsprop, ...) or one of
  SPECIAL_OPTIMIZERS; the rate is setting['lr'] * factor; kwargs: static (key, value) pairs."""
  lr = setting.get("lr", 0.05) * factor
  if name == "progress":
    return progress_policy(setting["max_lr"] * factor, setting["desired_prog"])
  if name == "mean_abs":
    return mean_abs_step(lr)
  return getattr(optax, name)(learning_rate=lr, **dict(kwargs))


def check_optimizer(name: str) -> None:
  factory = getattr(optax, str(name), None)
  if name in SPECIAL_OPTIMIZERS:
    return
  if not callable(factory) or name.startswith("_") or name[0].isupper():
    raise UserError(f"unknown optimizer {name!r}; allowed: an optax optimiser taking "
                    f"learning_rate (e.g. adam, sgd, rmsprop) or {', '.join(SPECIAL_OPTIMIZERS)}")


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Recipe:
  """Everything static about an optimisation (its shape and structure); hashable for jit.

  phases: ((steps, lr factor), ...) run in order, each with a fresh optimiser state.
  clip: clip the image to [0, 1] after each step (plain pixels only).
  blur_radius: static kernel radius for the largest blur_width of the settings.
  """
  height: int
  width: int
  phases: tuple = ((100, 1.0),)
  param: Param = Param()
  transforms: tuple = ()
  optimizer: str = "adam"
  optimizer_kwargs: tuple = ()
  clip: bool = False
  blur_radius: int = 0

  @property
  def steps(self) -> int:
    return sum(n for n, _ in self.phases)


class Result(NamedTuple):
  images: jnp.ndarray      # (S, H, W, 3) final images
  losses: jnp.ndarray      # (S, steps) objective part of the loss at each step (before it)
  totals: jnp.ndarray      # (S, steps) loss including penalties


# One optimisation, as three pure per-setting functions (vmapped over settings by the drivers):
# start -> (params, key); opt_start -> optimiser state (at each phase start); step.

def _start(recipe: Recipe, setting, key):
  init_key, key = jax.random.split(key)
  if "init" in setting:
    return from_image(recipe.param, setting["init"]), key
  return init_params(recipe.param, init_key, recipe.height, recipe.width,
                     setting.get("center", 0.0)), key


def _opt_start(recipe: Recipe, setting, params, factor):
  return make_optimizer(recipe.optimizer, recipe.optimizer_kwargs, setting, factor).init(params)


def _step(apply_fn, objective, recipe: Recipe, variables, setting, state, i, factor):
  """One step: gradient of loss + penalties through the transforms, optimiser update, then the
  projections. Returns (state, (objective loss, total loss)) of the step's starting point."""
  params, opt_state, key = state
  h, w, param = recipe.height, recipe.width, recipe.param
  key, sub = jax.random.split(key)

  def loss_fn(params):
    image = to_image(param, params, h, w)
    seen = apply_transforms(recipe.transforms, sub, image)
    logits, acts = apply_fn(variables, seen[None])
    objective_loss = objective(logits, acts, setting)
    return objective_loss + penalties(image, setting), objective_loss

  (total, objective_loss), grad = jax.value_and_grad(loss_fn, has_aux=True)(params)
  optimizer = make_optimizer(recipe.optimizer, recipe.optimizer_kwargs, setting, factor)
  updates, opt_state = optimizer.update(grad, opt_state, params)
  params = optax.apply_updates(params, updates)
  if param.is_plain:
    params = project(params, grad, i, setting, recipe.blur_radius, recipe.clip)
  return (params, opt_state, key), (objective_loss, total)


def _render_one(apply_fn, objective, recipe: Recipe, variables, setting, key):
  """The whole optimisation of one setting as lax.scans (one per phase)."""
  params, key = _start(recipe, setting, key)
  objective_losses, totals, start = [], [], 0
  for n, factor in recipe.phases:
    state = (params, _opt_start(recipe, setting, params, factor), key)
    body = lambda state, i, factor=factor: _step(apply_fn, objective, recipe, variables, setting,
                                                 state, i, factor)
    (params, _, key), (obj, tot) = jax.lax.scan(body, state, jnp.arange(start, start + n))
    objective_losses.append(obj)
    totals.append(tot)
    start += n
  image = to_image(recipe.param, params, recipe.height, recipe.width)
  return image, jnp.concatenate(objective_losses), jnp.concatenate(totals)


def chunked_vmap(fn: Callable, chunk: int | None):
  """vmap over the leading axis, in lax.map'ed chunks of `chunk` (memory bound) if given."""
  vfn = jax.vmap(fn)
  if not chunk:
    return vfn

  def run(*args):
    n = jax.tree_util.tree_leaves(args)[0].shape[0]
    if n <= chunk:
      return vfn(*args)
    padded = -(-n // chunk) * chunk
    def split(a):
      a = jnp.concatenate([a, jnp.repeat(a[-1:], padded - n, axis=0)])
      return a.reshape((padded // chunk, chunk) + a.shape[1:])
    out = jax.lax.map(lambda xs: vfn(*xs), jax.tree_util.tree_map(split, args))
    return jax.tree_util.tree_map(lambda a: a.reshape((padded,) + a.shape[2:])[:n], out)
  return run


@functools.partial(jax.jit, static_argnames=("apply_fn", "objective", "recipe", "chunk"))
def render_jit(apply_fn, objective, recipe, variables, settings, keys, chunk=None):
  """Every setting's whole optimisation in ONE compiled call (vmap of lax.scan), without
  `render`'s checks (keys: (S, 2))."""
  one = lambda setting, key: _render_one(apply_fn, objective, recipe, variables, setting, key)
  return Result(*chunked_vmap(one, chunk)(settings, keys))


# The "dispatch" loop: the same vmapped step, compiled once and called from Python once per step.
# Nothing returns to the host until the end (JAX dispatches asynchronously); it exists because
# XLA:CPU runs convolutions inside while loops (lax.scan / fori_loop) several times slower than
# at top level (jax-ml/jax#12868; benchmarks/optimize.py, 16 AlexNet conv5 units vmapped, quiet
# 2-core machine: 4.3x), which accelerators do not.

@functools.partial(jax.jit, static_argnames=("recipe",))
def _start_all(recipe, settings, keys):
  return jax.vmap(lambda s, k: _start(recipe, s, k))(settings, keys)


@functools.partial(jax.jit, static_argnames=("recipe",))
def _opt_start_all(recipe, settings, params, factor):
  return jax.vmap(lambda s, p: _opt_start(recipe, s, p, factor))(settings, params)


@functools.partial(jax.jit, static_argnames=("apply_fn", "objective", "recipe"))
def step_jit(apply_fn, objective, recipe, variables, settings, state, i, factor):
  """One step of every setting (vmapped), compiled once for all steps and phases."""
  one = lambda s, st: _step(apply_fn, objective, recipe, variables, s, st, i, factor)
  return jax.vmap(one)(settings, state)


@functools.partial(jax.jit, static_argnames=("recipe",))
def _images_all(recipe, params):
  return jax.vmap(lambda p: to_image(recipe.param, p, recipe.height, recipe.width))(params)


def render_dispatch(apply_fn, objective, recipe, variables, settings, keys, chunk=None) -> Result:
  """Same result as render_jit, running step_jit once per step (chunks one after another)."""
  n = keys.shape[0]
  if chunk and n > chunk:
    parts = [render_dispatch(apply_fn, objective, recipe, variables,
                             {k: v[i:i + chunk] for k, v in settings.items()}, keys[i:i + chunk])
             for i in range(0, n, chunk)]
    return Result(*(jnp.concatenate(field) for field in zip(*parts)))
  step_recipe = dataclasses.replace(recipe, phases=())   # one compiled step for any schedule
  params, keys = _start_all(step_recipe, settings, keys)
  objective_losses, totals, start = [], [], 0
  for steps, factor in recipe.phases:
    state = (params, _opt_start_all(step_recipe, settings, params, factor), keys)
    for i in range(start, start + steps):
      state, (obj, tot) = step_jit(apply_fn, objective, step_recipe, variables, settings, state,
                                   i, factor)
      objective_losses.append(obj)
      totals.append(tot)
    params, _, keys = state
    start += steps
  return Result(_images_all(step_recipe, params), jnp.stack(objective_losses, axis=1),
                jnp.stack(totals, axis=1))


LOOPS = ("auto", "scan", "dispatch")


def loop_mode(loop: str = "auto") -> str:
  """auto: `dispatch` on CPU (see above), `scan` (one compiled call) on accelerators."""
  choose("loop", loop, LOOPS)
  if loop == "auto":
    return "dispatch" if jax.default_backend() == "cpu" else "scan"
  return loop


def num_settings(settings) -> int:
  sizes = {np.shape(v)[0] if np.ndim(v) else None for v in settings.values()}
  check(None not in sizes and len(sizes) == 1,
        f"every setting needs the same leading axis; got shapes "
        f"{ {k: np.shape(v) for k, v in settings.items()} }")
  return sizes.pop()


def stack_settings(n: int, **values) -> dict:
  """Settings dict with each value broadcast to a leading axis of n (scalars and per-setting
  arrays alike); `center` (3,) and `init` (H, W, 3) are broadcast when given once."""
  out = {}
  for key, value in values.items():
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.integer):
      value = value.astype(jnp.float32)
    single_ndim = {"center": 1, "init": 3}.get(key, 0)
    if value.ndim == single_ndim:
      value = jnp.broadcast_to(value, (n,) + value.shape)
    check(value.shape[0] == n, f"setting {key} has {value.shape[0]} values, expected {n}")
    out[key] = value
  return out


def render(apply_fn, variables, objective, settings: dict, key, recipe: Recipe,
           chunk: int | None = None, loop: str = "auto") -> Result:
  """Runs one optimisation per setting, all settings vmapped together.

  apply_fn: (variables, images NHWC) -> (logits, acts); hashable (static for jit).
  objective: (logits (1, C), acts, setting) -> scalar loss to MINIMISE; hashable (e.g. a frozen
    dataclass), reading any per-setting values (unit, class, target...) from `setting`.
  settings: dict of arrays with a common leading axis S (see SETTING_KEYS and stack_settings).
  loop: `scan` runs the whole optimisation as ONE compiled call; `dispatch` calls one compiled
    vmapped step per step (faster on CPU, same result); `auto` picks by backend (loop_mode).
  Raises DivergedError if any loss or final image is non-finite.
  """
  check(recipe.steps > 0, f"steps must be > 0, got {recipe.steps}")
  check_optimizer(recipe.optimizer)
  n = num_settings(settings)
  if recipe.optimizer == "progress":
    check({"max_lr", "desired_prog"} <= set(settings),
          "the progress policy needs settings max_lr and desired_prog")
  blur_keys = {"decay", "blur_width", "norm_pct", "contrib_pct"} & set(settings)
  check(recipe.param.is_plain or not blur_keys,
        f"projections {sorted(blur_keys)} need the plain pixel parameterisation, "
        f"not {recipe.param}")
  run = render_jit if loop_mode(loop) == "scan" else render_dispatch
  result = run(apply_fn, objective, recipe, variables, settings, jax.random.split(key, n),
               chunk=chunk)
  check_finite(result)
  return result


def check_finite(result: Result, what: str = "setting") -> None:
  """Raises DivergedError naming the first setting and step whose loss went non-finite."""
  finite = np.isfinite(np.asarray(result.totals))
  image_ok = np.isfinite(np.asarray(result.images)).reshape(len(finite), -1).all(axis=1)
  bad = np.flatnonzero(~(finite.all(axis=1) & image_ok))
  if bad.size:
    i = int(bad[0])
    step = int(np.argmin(finite[i])) if not finite[i].all() else finite.shape[1]
    raise DivergedError(f"optimisation diverged: {what} {i} became non-finite at step {step} "
                        f"({bad.size} of {len(finite)} affected); lower the learning rate or "
                        f"strengthen the regularisers")


def max_blur_radius(widths) -> int:
  """Static blur radius covering every blur width of a sweep."""
  widths = np.atleast_1d(np.asarray(widths, np.float64))
  return blur_radius(widths.max()) if widths.size else 0


def model_mean(module) -> jnp.ndarray:
  """The model's mean pixel in [0, 1] (the zero of its mean-subtracted input space)."""
  mean = getattr(module, "mean", None)
  if mean is None:
    from cnn_vis.models.layers import IMAGENET_MEAN  # pylint: disable=import-outside-toplevel
    mean = IMAGENET_MEAN
  return jnp.asarray(mean, jnp.float32)


def check_image(image, name: str = "image") -> np.ndarray:
  """A finite HxWx3 (or NHWC) float array, or a one-line UserError."""
  image = np.asarray(image, np.float32)
  check(image.ndim in (3, 4) and image.shape[-1] == 3,
        f"{name} must be HxWx3 or NxHxWx3 RGB, got shape {image.shape}")
  check(bool(np.isfinite(image).all()), f"{name} has non-finite values (NaN or inf)")
  return image
