"""The image-optimisation core behind every "optimise the input" technique.

Class models (Simonyan et al. 2014, §2), activation maximisation (Yosinski et al. 2015, §3;
Olah et al. 2017), feature inversion (Mahendran & Vedaldi 2015), DeepDream, fooling images and
style transfer are all

    image* = argmax_params  objective(net(transform(to_image(params))), image, setting)

with projections of the image after every optimiser step. Each piece is a composable value:
- the objective (cnn_vis.techniques.objectives): units, class scores, feature distances, Gram
  matrices, image priors, added and scaled;
- a parameterisation `Param` (plain pixels; a Fourier spectrum with 1/f scaling; decorrelated
  colour; optional sigmoid), with its inverse `from_image`;
- transforms the network sees each step (`Jitter`, `Pad`, `Scale`, `Rotate`), drawn from a key;
- projections after each step (`Decay`, `Blur`, `ZeroSmallNorm`, `ZeroSmallContribution`,
  `Clip`), applied in the order given (Yosinski's code applies them in that order);
- an `Optimizer`: any optax optimiser by name, optax's L-BFGS with its zoom line search
  (`lbfgs`: the objective and its value go to the update), Yosinski's `progress` learning-rate
  policy and DeepDream's step normalised by mean |g|; learning-rate phases restart the
  optimiser state, as Mahendran & Vedaldi's code resets momentum when the rate changes.

`render` runs one optimisation per *setting*: the settings are any pytree of arrays with a
leading axis S (units, classes, images, hyperparameter values...), read by the objective and the
pieces through `Setting(key)` values, so all S optimisations are ONE compiled, vmapped program.
Each setting optimises a batch of `Recipe.batch` images together (the diversity objective
compares them). With loop="scan" the whole optimisation is one compiled call (vmap of lax.scan);
on CPU the default (loop="dispatch") calls the one compiled, vmapped step from Python once per
step with no host round-trip: XLA:CPU runs convolutions inside while loops several times slower
than outside (jax-ml/jax#12868); both loops give the same images. Images are NHWC float32 in the
models' pixel space [0, 1]; `center` (the model's mean pixel) is the zero of the mean-subtracted
space in which the papers define their priors and projections.
"""
import dataclasses
import functools
from typing import Any, ClassVar, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_vis import runs
from cnn_vis.errors import UserError, check, choose
from cnn_vis.techniques.objectives import Context, Objective, Setting, resolve

# Olah et al. 2017 ("Feature Visualization", Distill; lucid optvis/param/color.py): square root of
# the ImageNet colour covariance, so that independent parameters give natural colour statistics.
COLOR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02],
                                   [0.27, 0.00, -0.05],
                                   [0.27, -0.09, 0.03]], np.float32)
_COLOR = COLOR_CORRELATION_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))


class DivergedError(UserError):
  """An optimisation whose objective or image became non-finite."""


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


def init_params(param: Param, key, height: int, width: int, center=0.0, batch: int = 1):
  """Random start of a batch: plain pixels center + init_std * N(0,1); others N(0, init_std)
  params; shape (batch, *param_shape)."""
  noise = param.init_std * jax.random.normal(key, (batch,) + param_shape(param, height, width))
  return noise + jnp.asarray(center, jnp.float32) if param.is_plain else noise


# ---------------------------------------------------------------------------------------------
# Transforms: (key, HxWx3 image) -> image, differentiable in the image
# ---------------------------------------------------------------------------------------------

class Transform:
  """Base class of the transforms the network sees; subclasses are frozen dataclasses with
  `__call__(key, image)`. Each registers under its lower-case class name, so configs can write
  them as (name, value) pairs (`from_pairs`)."""
  known: ClassVar[dict] = {}

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    Transform.known[cls.__name__.lower()] = cls


def _whole_pixels(name: str, value) -> int:
  check(float(value) == int(value) and int(value) >= 0,
        f"transform {name} needs a whole number of pixels >= 0, got {value!r}")
  return int(value)


@dataclasses.dataclass(frozen=True)
class Jitter(Transform):
  """Rolls by integers dy, dx uniform in [-pixels, pixels] (DeepDream, CS231n)."""
  pixels: int

  def __post_init__(self):
    object.__setattr__(self, "pixels", _whole_pixels("jitter", self.pixels))

  def __call__(self, key, image):
    dy, dx = jax.random.randint(key, (2,), -self.pixels, self.pixels + 1)
    return jnp.roll(image, (dy, dx), axis=(0, 1))


@dataclasses.dataclass(frozen=True)
class Pad(Transform):
  """Pads with a constant grey border (lucid's transform.pad)."""
  pixels: int
  value: float = 0.5

  def __post_init__(self):
    object.__setattr__(self, "pixels", _whole_pixels("pad", self.pixels))

  def __call__(self, key, image):
    del key
    width = self.pixels
    return jnp.pad(image, ((width, width), (width, width), (0, 0)), constant_values=self.value)


def _values(name: str, values) -> tuple[float, ...]:
  values = tuple(float(v) for v in np.atleast_1d(values))
  check(len(values) > 0, f"transform {name} needs at least one value")
  return values


@dataclasses.dataclass(frozen=True)
class Scale(Transform):
  """Resamples about the centre by a factor drawn from `factors`, keeping the shape."""
  factors: tuple

  def __post_init__(self):
    factors = _values("scale", self.factors)
    check(all(v > 0 for v in factors), f"scale factors must be > 0, got {factors}")
    object.__setattr__(self, "factors", factors)

  def __call__(self, key, image):
    s = jax.random.choice(key, jnp.asarray(self.factors, jnp.float32))
    height, width = image.shape[:2]
    translation = jnp.stack([(1 - s) * height / 2, (1 - s) * width / 2])
    return jax.image.scale_and_translate(image, image.shape, (0, 1), jnp.stack([s, s]),
                                         translation, "linear", antialias=False)


@dataclasses.dataclass(frozen=True)
class Rotate(Transform):
  """Rotates about the centre by an angle drawn from `degrees` (bilinear, edges extended)."""
  degrees: tuple

  def __post_init__(self):
    object.__setattr__(self, "degrees", _values("rotate", self.degrees))

  def __call__(self, key, image):
    angle = jnp.deg2rad(jax.random.choice(key, jnp.asarray(self.degrees, jnp.float32)))
    height, width = image.shape[:2]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    yy, xx = jnp.meshgrid(jnp.arange(height) - cy, jnp.arange(width) - cx, indexing="ij")
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    coords = [cos * yy - sin * xx + cy, sin * yy + cos * xx + cx]   # inverse map of the rotation
    sample = lambda c: jax.scipy.ndimage.map_coordinates(c, coords, order=1, mode="nearest")
    return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def from_pairs(pairs) -> tuple[Transform, ...]:
  """Transforms from config pairs ((name, value), ...), e.g. (("jitter", 8), ("scale", (0.9, 1)));
  Transform objects pass through."""
  out = []
  for item in pairs:
    if isinstance(item, Transform):
      out.append(item)
      continue
    check(isinstance(item, (tuple, list)) and len(item) == 2,
          f"transform {item!r} must be a (name, value) pair, e.g. ('jitter', 8)")
    name, value = item
    choose("transform", name, sorted(Transform.known))
    out.append(Transform.known[name](value))
  return tuple(out)


def apply_transforms(transforms: Sequence[Transform], key, image):
  """Applies the transforms in order; the result is centre-cropped back to the input's size, so
  fixed-size networks accept it (pad then only supplies a neutral border that the other
  transforms bring into view)."""
  height, width = image.shape[:2]
  keys = jax.random.split(key, max(len(transforms), 1))
  for k, transform in zip(keys, transforms):
    image = transform(k, image)
  top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
  return image[top:top + height, left:left + width]


# ---------------------------------------------------------------------------------------------
# Projections: (image, objective gradient, step, setting) -> image, after each optimiser step
# ---------------------------------------------------------------------------------------------

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


class Projection:
  """Base class of the per-step projections of plain-pixel images; subclasses are frozen
  dataclasses with `__call__(image HxWx3, grad HxWx3 of the objective, step, setting)`."""


@dataclasses.dataclass(frozen=True)
class Decay(Projection):
  """Yosinski's theta_decay: x - center *= (1 - rate)."""
  rate: Any = Setting("decay")
  center: Any = Setting("center", 0.0)

  def __call__(self, image, grad, step, setting):
    center = resolve(self.center, setting)
    return center + (image - center) * (1 - resolve(self.rate, setting))


@dataclasses.dataclass(frozen=True)
class Blur(Projection):
  """Yosinski's theta_b_width / theta_b_every: a Gaussian blur of `width` pixels every `every`
  steps (every 0: never); `radius` is the static kernel radius covering every width swept."""
  radius: int
  width: Any = Setting("blur_width")
  every: Any = Setting("blur_every")

  def __call__(self, image, grad, step, setting):
    every = resolve(self.every, setting)
    due = (every > 0) & (step % jnp.maximum(every, 1) == 0)
    return jnp.where(due, gaussian_blur(image, resolve(self.width, setting), self.radius), image)


@dataclasses.dataclass(frozen=True)
class ZeroSmallNorm(Projection):
  """Yosinski's theta_n_pct."""
  pct: Any = Setting("norm_pct")
  center: Any = Setting("center", 0.0)

  def __call__(self, image, grad, step, setting):
    return zero_small_norm(image, resolve(self.pct, setting), resolve(self.center, setting))


@dataclasses.dataclass(frozen=True)
class ZeroSmallContribution(Projection):
  """Yosinski's theta_c_pct (contribution: the objective's gradient times the pixel)."""
  pct: Any = Setting("contrib_pct")
  center: Any = Setting("center", 0.0)

  def __call__(self, image, grad, step, setting):
    return zero_small_contribution(image, -grad, resolve(self.pct, setting),
                                   resolve(self.center, setting))


@dataclasses.dataclass(frozen=True)
class Clip(Projection):
  """Keeps pixels in [low, high] (the valid range [0, 1] by default)."""
  low: float = 0.0
  high: float = 1.0

  def __call__(self, image, grad, step, setting):
    return jnp.clip(image, self.low, self.high)


def max_blur_radius(widths) -> int:
  """Static blur radius covering every blur width of a sweep."""
  widths = np.atleast_1d(np.asarray(widths, np.float64))
  return blur_radius(widths.max()) if widths.size else 0


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


def rms_step(step_size) -> optax.GradientTransformation:
  """x -= step_size * g / rms(g): a step of root-mean-square step_size per pixel entry, whatever
  the gradient's scale (CS231n's normalised step dX = lr g / ||g||_2, docs/papers.md §12, with
  lr = step_size sqrt(number of entries))."""
  def f(updates, params=None):
    del params
    leaves = jax.tree_util.tree_leaves(updates)
    rms = jnp.sqrt(sum(jnp.sum(u * u) for u in leaves) / sum(u.size for u in leaves))
    return jax.tree_util.tree_map(lambda u: -step_size * u / jnp.maximum(rms, 1e-30), updates)
  return optax.stateless(f)


SPECIAL_OPTIMIZERS = ("lbfgs", "progress", "mean_abs", "rms")


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """An optimiser by name: any optax optimiser taking learning_rate (adam, sgd, rmsprop...),
  `lbfgs` (optax.lbfgs with its zoom line search; learning_rate unused unless lr is given in
  kwargs), `progress` (Yosinski), `mean_abs` (DeepDream) or `rms` (CS231n's normalised step).
  The rate is the setting's `lr`
  times the phase's factor; kwargs: static (key, value) pairs for the optax constructor.
  `lbfgs` with kwargs (("linesearch", None), ("learning_rate", 1.0)) takes fixed steps along
  the L-BFGS direction instead (torch.optim.LBFGS's default and neural-style's): one objective
  evaluation per step, none of them inside a while loop (see the dispatch loop below)."""
  name: str = "adam"
  kwargs: tuple = ()

  def __post_init__(self):
    object.__setattr__(self, "kwargs", tuple(tuple(kv) for kv in self.kwargs))
    factory = getattr(optax, str(self.name), None)
    if self.name not in SPECIAL_OPTIMIZERS and (not callable(factory) or self.name.startswith("_")
                                                or self.name[0].isupper()):
      raise UserError(f"unknown optimizer {self.name!r}; allowed: an optax optimiser taking "
                      f"learning_rate (e.g. adam, sgd, rmsprop) or {', '.join(SPECIAL_OPTIMIZERS)}")

  @property
  def uses_line_search(self) -> bool:
    """The update takes the objective (value_fn) and keeps the value and gradient it found."""
    return self.name == "lbfgs" and dict(self.kwargs).get("linesearch", "zoom") is not None

  def build(self, setting, factor=1.0) -> optax.GradientTransformationExtraArgs:
    lr = setting.get("lr", 0.05) * factor
    if self.name == "lbfgs":
      return optax.lbfgs(**dict(self.kwargs))
    if self.name == "progress":
      return optax.with_extra_args_support(
          progress_policy(setting["max_lr"] * factor, setting["desired_prog"]))
    if self.name == "mean_abs":
      return optax.with_extra_args_support(mean_abs_step(lr))
    if self.name == "rms":
      return optax.with_extra_args_support(rms_step(lr))
    return optax.with_extra_args_support(getattr(optax, self.name)(learning_rate=lr,
                                                                    **dict(self.kwargs)))


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Recipe:
  """Everything static about an optimisation (its shape and structure); hashable for jit.

  batch: images optimised together per setting (1 unless an objective compares them).
  phases: ((steps, lr factor), ...) run in order, each with a fresh optimiser state.
  projections: applied after each step, in order (plain pixels only).
  snapshot_every: keep the images after every `snapshot_every` steps (Result.snapshots; 0: no).
  """
  height: int
  width: int
  phases: tuple = ((100, 1.0),)
  param: Param = Param()
  transforms: tuple = ()
  projections: tuple = ()
  optimizer: Optimizer = Optimizer()
  batch: int = 1
  snapshot_every: int = 0

  def __post_init__(self):
    object.__setattr__(self, "transforms", from_pairs(self.transforms))
    object.__setattr__(self, "phases", tuple((int(n), float(f)) for n, f in self.phases))
    check(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
    check(self.snapshot_every >= 0, f"snapshot_every must be >= 0, got {self.snapshot_every}")
    check(self.param.is_plain or not self.projections,
          f"projections {[type(p).__name__ for p in self.projections]} need the plain pixel "
          f"parameterisation, not {self.param}")

  @property
  def steps(self) -> int:
    return sum(n for n, _ in self.phases)

  @property
  def snapshot_steps(self) -> tuple[int, ...]:
    """The step counts after which Result.snapshots holds the images (every-th, 2 every-th...)."""
    every = self.snapshot_every
    return tuple(range(every, self.steps + 1, every)) if every else ()


class Result(NamedTuple):
  images: jnp.ndarray      # (S, B, H, W, 3) final images (B = recipe.batch)
  values: jnp.ndarray      # (S, steps) the objective at each step's starting point
  terms: dict              # label -> (S, steps): each term of the objective, weighted
  evaluations: jnp.ndarray  # (S, steps) objective evaluations per step (line searches: > 1)
  snapshots: Any = None    # (S, K, B, H, W, 3) images after recipe.snapshot_steps, or None


# One optimisation, as three pure per-setting functions (vmapped over settings by the drivers):
# start -> (params, key); opt_start -> optimiser state (at each phase start); step.

def _images(param: Param, params, height: int, width: int):
  return jax.vmap(lambda p: to_image(param, p, height, width))(params)


def _start(recipe: Recipe, setting, key):
  init_key, key = jax.random.split(key)
  if "init" in setting:
    init = setting["init"]
    init = jnp.broadcast_to(init, (recipe.batch,) + init.shape[-3:])
    return jax.vmap(lambda image: from_image(recipe.param, image))(init), key
  center = setting.get("center", 0.0)
  return init_params(recipe.param, init_key, recipe.height, recipe.width, center,
                     recipe.batch), key


def _opt_start(apply_fn, objective, recipe: Recipe, variables, setting, params, key, factor):
  """The optimiser's state at a phase start. A line search keeps the value and gradient at the
  point it accepts, which the next step reuses; here they are seeded at the start point (optax's
  value_and_grad_from_state would decide that with a lax.cond, which vmap turns into a select
  that evaluates the objective and its gradient at every step)."""
  state = recipe.optimizer.build(setting, factor).init(params)
  if recipe.optimizer.uses_line_search:
    sub = jax.random.split(key)[1]   # the draw of the phase's first step
    loss = _loss_fn(apply_fn, objective, recipe, variables, setting, sub)
    value, grad = jax.value_and_grad(lambda p: loss(p)[0])(params)
    state = optax.tree.set(state, value=value, grad=grad)
  # strongly typed leaves: the state a step returns has no weak types, and a state that differs
  # in them would compile the dispatch loop's step a second time
  return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.asarray(leaf).dtype), state)


def _loss_fn(apply_fn, objective: Objective, recipe: Recipe, variables, setting, key):
  """params -> (minus the objective, its terms) at the transforms drawn from `key`."""
  def loss(params):
    image = _images(recipe.param, params, recipe.height, recipe.width)
    # one draw of the transforms for the whole batch, as lucid transforms its batch tensor
    seen = jax.vmap(lambda im: apply_transforms(recipe.transforms, key, im))(image)
    logits, acts = apply_fn(variables, seen)
    terms = objective.terms(Context(image, logits, acts, setting))
    return -sum(terms.values()), terms
  return loss


def _num_evaluations(opt_state):
  steps = optax.tree.get(opt_state, "num_linesearch_steps")
  return jnp.asarray(1 if steps is None else steps, jnp.int32)


def _step(apply_fn, objective, recipe: Recipe, variables, setting, state, i, factor):
  """One step: the objective's gradient through the transforms, the optimiser's update (with the
  objective itself for line searches), then the projections. Returns (state, (objective, terms,
  evaluations)) at the step's starting point."""
  params, opt_state, key = state
  key, sub = jax.random.split(key)
  loss = _loss_fn(apply_fn, objective, recipe, variables, setting, sub)
  optimizer = recipe.optimizer.build(setting, factor)
  if recipe.optimizer.uses_line_search:
    value_fn = lambda p: loss(p)[0]
    value, grad = optax.tree.get(opt_state, "value"), optax.tree.get(opt_state, "grad")
    terms = loss(params)[1]
    updates, opt_state = optimizer.update(grad, opt_state, params, value=value, grad=grad,
                                          value_fn=value_fn)
  else:
    (value, terms), grad = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = optimizer.update(grad, opt_state, params)
  params = optax.apply_updates(params, updates)
  for projection in recipe.projections:
    params = jax.vmap(lambda im, g: projection(im, -g, i, setting))(params, grad)
  return (params, opt_state, key), (-value, terms, _num_evaluations(opt_state))


def _render_one(apply_fn, objective, recipe: Recipe, variables, setting, key, progress=0):
  """The whole optimisation of one setting as lax.scans (one per phase). Snapshots go into a
  buffer carried by the scans (one slot per snapshot and a spare slot the other steps write)."""
  params, key = _start(recipe, setting, key)
  images = lambda p: _images(recipe.param, p, recipe.height, recipe.width)
  every, count = recipe.snapshot_every, len(recipe.snapshot_steps)
  snaps = jnp.zeros((count + 1,) + images(params).shape) if every else None
  outputs, start = [], 0
  for n, factor in recipe.phases:
    state = (params, _opt_start(apply_fn, objective, recipe, variables, setting, params, key,
                                factor), key)

    def body(carry, i, factor=factor):
      state, snaps = carry
      state, out = _step(apply_fn, objective, recipe, variables, setting, state, i, factor)
      if progress:   # the step of `progress` vmapped settings, to the host's progress bar
        jax.debug.callback(functools.partial(_tick, progress), i)
      if every:
        slot = jnp.where((i + 1) % every == 0, (i + 1) // every - 1, count)
        snaps = snaps.at[slot].set(images(state[0]))
      return (state, snaps), out
    ((params, _, key), snaps), out = jax.lax.scan(body, (state, snaps),
                                                  jnp.arange(start, start + n))
    outputs.append(out)
    start += n
  values, terms, evaluations = jax.tree.map(lambda *xs: jnp.concatenate(xs), *outputs)
  return images(params), values, terms, evaluations, snaps[:count] if every else None


def chunked_vmap(fn, chunk: int | None):
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


@functools.partial(jax.jit, static_argnames=("apply_fn", "objective", "recipe", "chunk",
                                             "progress"))
def render_jit(apply_fn, objective, recipe, variables, settings, keys, chunk=None,
               progress=False):
  """Every setting's whole optimisation in ONE compiled call (vmap of lax.scan), without
  `render`'s checks (keys: (S, 2)). progress: tick the bar `render` shows from inside the
  program (jax.debug.callback; compiled in only then)."""
  per_call = (min(chunk, keys.shape[0]) if chunk else keys.shape[0]) if progress else 0
  one = lambda setting, key: _render_one(apply_fn, objective, recipe, variables, setting, key,
                                         per_call)
  return Result(*chunked_vmap(one, chunk)(settings, keys))


# Progress: `render` shows a tqdm bar of setting-steps on a terminal (cnn_vis.runs.progress; none
# otherwise, and then nothing below runs). The dispatch loop waits for each step before counting
# it (the bar shows work done, not work queued); the scan loop ticks through a host callback.
_BARS: list = []


def _tick(count: int, step):
  """Called from the compiled scan once per step of a vmapped batch of `count` settings (the
  step number is not batched, so the callback runs once per batch)."""
  del step
  if _BARS:
    _BARS[-1].update(count)


# The "dispatch" loop: the same vmapped step, compiled once and called from Python once per step.
# Nothing returns to the host until the end (JAX dispatches asynchronously); it exists because
# XLA:CPU runs convolutions inside while loops (lax.scan / fori_loop) several times slower than
# at top level (jax-ml/jax#12868; benchmarks/optimize.py, 16 AlexNet conv5 units vmapped, quiet
# 2-core machine: 4.3x), which accelerators do not.

@functools.partial(jax.jit, static_argnames=("recipe",))
def _start_all(recipe, settings, keys):
  return jax.vmap(lambda s, k: _start(recipe, s, k))(settings, keys)


@functools.partial(jax.jit, static_argnames=("apply_fn", "objective", "recipe"))
def _opt_start_all(apply_fn, objective, recipe, variables, settings, params, keys, factor):
  one = lambda s, p, k: _opt_start(apply_fn, objective, recipe, variables, s, p, k, factor)
  return jax.vmap(one)(settings, params, keys)


@functools.partial(jax.jit, static_argnames=("apply_fn", "objective", "recipe"))
def step_jit(apply_fn, objective, recipe, variables, settings, state, i, factor):
  """One step of every setting (vmapped), compiled once for all steps and phases."""
  one = lambda s, st: _step(apply_fn, objective, recipe, variables, s, st, i, factor)
  return jax.vmap(one)(settings, state)


@functools.partial(jax.jit, static_argnames=("recipe",))
def _images_all(recipe, params):
  return jax.vmap(lambda p: _images(recipe.param, p, recipe.height, recipe.width))(params)


def _slice(tree, start: int, stop: int):
  return jax.tree.map(lambda v: v[start:stop], tree)


def render_dispatch(apply_fn, objective, recipe, variables, settings, keys, chunk=None,
                    progress=False) -> Result:
  """Same result as render_jit, running step_jit once per step (chunks one after another);
  progress: count each finished step on the bar `render` shows."""
  n = keys.shape[0]
  if chunk and n > chunk:
    parts = [render_dispatch(apply_fn, objective, recipe, variables,
                             _slice(settings, i, i + chunk), keys[i:i + chunk], None, progress)
             for i in range(0, n, chunk)]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
  # one compiled step for any schedule and snapshot rate
  step_recipe = dataclasses.replace(recipe, phases=(), snapshot_every=0)
  params, keys = _start_all(step_recipe, settings, keys)
  outputs, snaps, start = [], [], 0
  for steps, factor in recipe.phases:
    state = (params, _opt_start_all(apply_fn, objective, step_recipe, variables, settings, params,
                                    keys, factor), keys)
    for i in range(start, start + steps):
      state, out = step_jit(apply_fn, objective, step_recipe, variables, settings, state, i,
                            factor)
      outputs.append(out)
      if progress and _BARS:
        jax.block_until_ready(state[0])
        _BARS[-1].update(n)
      if i + 1 in recipe.snapshot_steps:
        snaps.append(_images_all(step_recipe, state[0]))
    params, _, keys = state
    start += steps
  values, terms, evaluations = jax.tree.map(lambda *xs: jnp.stack(xs, axis=1), *outputs)
  return Result(_images_all(step_recipe, params), values, terms, evaluations,
                jnp.stack(snaps, axis=1) if snaps else None)


LOOPS = ("auto", "scan", "dispatch")


def loop_mode(loop: str = "auto") -> str:
  """auto: `dispatch` on CPU (see above), `scan` (one compiled call) on accelerators."""
  choose("loop", loop, LOOPS)
  if loop == "auto":
    return "dispatch" if jax.default_backend() == "cpu" else "scan"
  return loop


def num_settings(settings) -> int:
  """The common leading axis S of every leaf of the settings pytree."""
  leaves = jax.tree_util.tree_leaves_with_path(settings)
  sizes = {np.shape(v)[0] if np.ndim(v) else None for _, v in leaves}
  check(bool(leaves) and None not in sizes and len(sizes) == 1,
        "every setting needs the same leading axis; got shapes "
        f"{ {jax.tree_util.keystr(k): np.shape(v) for k, v in leaves} }")
  return sizes.pop()


# Per-setting values given once and broadcast to every setting by stack_settings, by their
# number of dimensions when given once.
SINGLE_NDIM = {"center": 1, "init": 3}


def stack_settings(n: int, **values) -> dict:
  """Settings dict with each value broadcast to a leading axis of n (scalars and per-setting
  arrays alike); `center` (3,) and `init` (H, W, 3) are broadcast when given once."""
  out = {}
  for key, value in values.items():
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.integer):
      value = value.astype(jnp.float32)
    if value.ndim == SINGLE_NDIM.get(key, 0):
      value = jnp.broadcast_to(value, (n,) + value.shape)
    check(value.shape[0] == n, f"setting {key} has {value.shape[0]} values, expected {n}")
    out[key] = value
  return out


def render(apply_fn, variables, objective: Objective, settings, key, recipe: Recipe,
           chunk: int | None = None, loop: str = "auto") -> Result:
  """Runs one optimisation per setting, all settings vmapped together.

  apply_fn: (variables, images NHWC) -> (logits, acts); hashable (static for jit).
  objective: an Objective (cnn_vis.techniques.objectives) to maximise; hashable.
  settings: a pytree of arrays with a common leading axis S (see stack_settings), read through
    Setting(key) by the objective, projections and optimiser (`lr`, `init`, `center`...).
  loop: `scan` runs the whole optimisation as ONE compiled call; `dispatch` calls one compiled
    vmapped step per step (faster on CPU, same result); `auto` picks by backend (loop_mode).
  Raises DivergedError if any objective value or final image is non-finite.
  """
  check(recipe.steps > 0, f"steps must be > 0, got {recipe.steps}")
  check(isinstance(objective, Objective), f"objective must be an Objective, got {objective!r}")
  n = num_settings(settings)
  if recipe.optimizer.name == "progress":
    check({"max_lr", "desired_prog"} <= set(settings),
          "the progress policy needs settings max_lr and desired_prog")
  scan = loop_mode(loop) == "scan"
  run = render_jit if scan else render_dispatch
  # setting-steps: the scan's chunks of `chunk` settings pad the last one (its steps tick too)
  ticked = -(-n // chunk) * chunk if scan and chunk and n > chunk else n
  with runs.progress(total=ticked * recipe.steps, desc=f"optimise {n} x {recipe.steps} steps",
                     unit="step") as bar:
    _BARS.append(bar)
    try:
      result = run(apply_fn, objective, recipe, variables, settings, jax.random.split(key, n),
                   chunk=chunk, progress=not bar.disable)
      jax.block_until_ready(result.images)
    finally:
      _BARS.pop()
  check_finite(result)
  return result


def check_finite(result: Result, what: str = "setting") -> None:
  """Raises DivergedError naming the first setting and step whose objective went non-finite."""
  finite = np.isfinite(np.asarray(result.values))
  image_ok = np.isfinite(np.asarray(result.images)).reshape(len(finite), -1).all(axis=1)
  bad = np.flatnonzero(~(finite.all(axis=1) & image_ok))
  if bad.size:
    i = int(bad[0])
    step = int(np.argmin(finite[i])) if not finite[i].all() else finite.shape[1]
    raise DivergedError(f"optimisation diverged: {what} {i} became non-finite at step {step} "
                        f"({bad.size} of {len(finite)} affected); lower the learning rate or "
                        f"strengthen the regularisers")


def check_image(image, name: str = "image") -> np.ndarray:
  """A finite HxWx3 (or NHWC) float array, or a one-line UserError."""
  image = np.asarray(image, np.float32)
  check(image.ndim in (3, 4) and image.shape[-1] == 3,
        f"{name} must be HxWx3 or NxHxWx3 RGB, got shape {image.shape}")
  check(bool(np.isfinite(image).all()), f"{name} has non-finite values (NaN or inf)")
  return image
