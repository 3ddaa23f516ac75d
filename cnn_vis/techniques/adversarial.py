"""Adversarial examples by gradient steps: the lecture's linear example, FGSM, BIM and PGD.

- The linear example (CS231n lecture; Goodfellow, Shlens & Szegedy 2015, §3; docs/papers.md §8):
  for a score w.x + b, the step eta = eps sign(w) changes no input by more than eps yet moves the
  score by eps ||w||_1, which grows with the dimension. It is FGSM on a logistic regression, and
  is computed here by the same `attack` as everything else (`linear_example`).
- FGSM (Goodfellow et al. 2015, eq. 3): x' = x + eps sign(grad_x J(theta, x, y)).
- BIM / iterative FGSM (Kurakin, Goodfellow & Bengio 2017; docs/papers.md §21): steps of
  alpha = 1/255, each clipped to the eps-ball around x and to the pixel range, for
  min(255 eps + 4, 1.25 * 255 eps) iterations (`bim_steps`); with a target, the same steps
  *descend* the target's loss (the paper's iterative least-likely-class method).
- PGD with random start (Madry et al. 2018; docs/papers.md §22): the same projected steps from a
  uniform random point of the eps-ball; the default step 2.5 eps / steps is the CIFAR-10
  challenge's (eps 8/255, 10 steps of 2/255).

All are `attack`: `steps` projected steepest-ascent steps on the cross-entropy J, for L-inf
(direction sign(g), projection = clipping to [x - eps, x + eps]) or L2 (direction g / ||g||_2,
projection = rescaling onto the ball), untargeted (ascend J(x, label)) or targeted (descend
J(x, target)), pixels kept in `bounds` ([0, 1] pixel space; None for unbounded inputs).

Settings (eps, step size, number of steps) are per-setting arrays (S,): a whole epsilon sweep is
ONE compiled program, the step vmapped over settings and the images batched inside each. Without
a random start every setting begins at x, so the first step is vmapped with x unbatched and its
gradient is computed once for all settings (an FGSM sweep costs one backward pass). A setting
with fewer steps than the longest stops updating (a BIM sweep has eps-dependent step counts).
Loops (optimize.loop_mode): on CPU a Python loop dispatches one compiled, vmapped step per step
(XLA:CPU runs convolutions inside while loops several times slower, jax-ml/jax#12868); on
accelerators (loop="scan") the whole attack is one compiled call. Both give the same images.
The dispatch loop shows its steps on a tqdm bar on a terminal (cnn_vis.runs.progress; when shown,
each step is waited for before it counts); the scan has no host loop to count.

`quantize` rounds results to the 8-bit grid of saved PNGs while staying inside the eps-ball (the
clean images, read from 8-bit files, are on that grid, and so are x +- eps for eps = k/255).
"""
import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis import runs
from cnn_vis.errors import check, choose
from cnn_vis.techniques import optimize

NORMS = ("linf", "l2")
PIXEL_BOUNDS = (0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Attack:
  """What stays fixed across the settings of one attack (hashable: a jit-static argument).

  norm: "linf" (sign steps, box projection) or "l2" (normalised-gradient steps, ball projection).
  targeted: descend the cross-entropy of the given classes instead of ascending it.
  random_start: begin at a uniform random point of the eps-ball (PGD), else at x (FGSM, BIM).
  bounds: the valid input range (pixels: [0, 1]); None leaves inputs unbounded.
  """
  norm: str = "linf"
  targeted: bool = False
  random_start: bool = False
  bounds: tuple | None = PIXEL_BOUNDS

  def __post_init__(self):
    choose("norm", self.norm, NORMS)
    if self.bounds is not None:
      object.__setattr__(self, "bounds", tuple(float(b) for b in self.bounds))


class AttackResult(NamedTuple):
  images: jax.Array      # (S, N, ...) adversarial inputs (continuous, before 8-bit rounding)
  eps: np.ndarray        # (S,) ball radius of each setting
  step_size: np.ndarray  # (S,)
  steps: np.ndarray      # (S,) steps each setting took


# ---------------------------------------------------------------------------------------------
# Per-image geometry of the two norms
# ---------------------------------------------------------------------------------------------

def _flat(x):
  return x.reshape(x.shape[0], -1)


def _per_image(values, like):
  """(N,) values shaped to broadcast against a batch `like` (N, ...)."""
  return values.reshape((-1,) + (1,) * (like.ndim - 1))


def norms(delta, norm: str):
  """||delta_n|| of each entry of a batch (N, ...) -> (N,)."""
  flat = _flat(delta)
  if norm == "linf":
    return jnp.max(jnp.abs(flat), axis=1)
  return jnp.sqrt(jnp.sum(flat * flat, axis=1))


def steepest_direction(grad, norm: str):
  """The unit-norm direction of steepest ascent: sign(g) (L-inf) or g / ||g||_2 (L2)."""
  if norm == "linf":
    return jnp.sign(grad)
  return grad / _per_image(jnp.maximum(norms(grad, "l2"), 1e-12), grad)


def project(x, origin, eps, norm: str, bounds):
  """x moved into the eps-ball around origin (per image), then into the valid range."""
  delta = x - origin
  if norm == "linf":
    delta = jnp.clip(delta, -eps, eps)
  else:
    length = norms(delta, "l2")
    delta = delta * _per_image(jnp.minimum(1.0, eps / jnp.maximum(length, 1e-12)), delta)
  out = origin + delta
  return out if bounds is None else jnp.clip(out, *bounds)


def random_start(key, origin, eps, norm: str, bounds):
  """A uniform random point of each image's eps-ball (Madry et al.'s random start), in bounds."""
  if norm == "linf":
    delta = jax.random.uniform(key, origin.shape, origin.dtype, -eps, eps)
  else:
    direction_key, radius_key = jax.random.split(key)
    direction = jax.random.normal(direction_key, origin.shape, origin.dtype)
    direction = direction / _per_image(norms(direction, "l2"), direction)
    dims = math.prod(origin.shape[1:])
    radius = eps * jax.random.uniform(radius_key, (origin.shape[0],)) ** (1.0 / dims)
    delta = direction * _per_image(radius, direction)
  return project(origin + delta, origin, eps, norm, bounds)


# ---------------------------------------------------------------------------------------------
# The loss and one step
# ---------------------------------------------------------------------------------------------

def cross_entropy(logits, labels):
  """-log softmax(logits)[label] per example (N,)."""
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32))
  return -jnp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]


def attack_loss(apply_fn, variables, x, labels, targeted: bool):
  """The objective the steps ascend, summed over the batch (each image's gradient is its own):
  J(x, label), or -J(x, target) when targeted."""
  loss = cross_entropy(apply_fn(variables, x)[0], labels)
  return -jnp.sum(loss) if targeted else jnp.sum(loss)


def _step_one(apply_fn, spec: Attack, variables, origin, labels, x, eps, step_size, active):
  """One projected steepest-ascent step of one setting (x: (N, ...)); a no-op unless active."""
  grad = jax.grad(attack_loss, argnums=2)(apply_fn, variables, x, labels, spec.targeted)
  moved = project(x + step_size * steepest_direction(grad, spec.norm), origin, eps, spec.norm,
                  spec.bounds)
  return jnp.where(active, moved, x)


def _vmapped_step(apply_fn, spec, variables, origin, labels, shared: bool):
  """The step of every setting: x (S, N, ...), or x (N, ...) shared by all when `shared`."""
  one = functools.partial(_step_one, apply_fn, spec, variables, origin, labels)
  return jax.vmap(one, in_axes=(None if shared else 0, 0, 0, 0))


@functools.partial(jax.jit, static_argnames=("apply_fn", "spec", "shared"))
def step_jit(apply_fn, spec, variables, origin, labels, x, eps, step_size, active, shared=False):
  """One step of every setting, compiled once for all steps (the CPU dispatch loop)."""
  return _vmapped_step(apply_fn, spec, variables, origin, labels, shared)(x, eps, step_size, active)


@functools.partial(jax.jit, static_argnames=("spec",))
def random_starts(spec, key, origin, eps):
  """(S, N, ...) random starts, one independent draw per setting."""
  keys = jax.random.split(key, eps.shape[0])
  return jax.vmap(lambda k, e: random_start(k, origin, e, spec.norm, spec.bounds))(keys, eps)


@functools.partial(jax.jit, static_argnames=("apply_fn", "spec", "max_steps"))
def attack_scan(apply_fn, spec, variables, origin, labels, key, eps, step_size, steps,
                max_steps: int):
  """The whole attack of every setting as ONE compiled call (lax.fori_loop over the steps)."""
  if spec.random_start:
    x = random_starts(spec, key, origin, eps)
    first = 0
  else:  # the first step from the shared clean images: one gradient for every setting
    x = _vmapped_step(apply_fn, spec, variables, origin, labels, True)(origin, eps, step_size,
                                                                     steps > 0)
    first = 1
  body = lambda i, x: _vmapped_step(apply_fn, spec, variables, origin, labels, False)(
      x, eps, step_size, i < steps)
  return jax.lax.fori_loop(first, max_steps, body, x)


def attack_dispatch(apply_fn, spec, variables, origin, labels, key, eps, step_size, steps,
                    max_steps: int):
  """attack_scan's result, dispatching one compiled step per step from Python."""
  if spec.random_start:
    x, first = random_starts(spec, key, origin, eps), 0
  else:
    x = step_jit(apply_fn, spec, variables, origin, labels, origin, eps, step_size, steps > 0,
                 shared=True)
    first = 1
  with runs.progress(total=max_steps, desc=f"attack {max_steps} steps", unit="step") as bar:
    bar.update(first)
    for i in range(first, max_steps):
      x = step_jit(apply_fn, spec, variables, origin, labels, x, eps, step_size, i < steps)
      if not bar.disable:   # count work done, not work queued
        jax.block_until_ready(x)
        bar.update(1)
  return x


# ---------------------------------------------------------------------------------------------
# Checks and the public functions
# ---------------------------------------------------------------------------------------------

def check_eps(eps) -> np.ndarray:
  """eps as a non-empty float array (S,) of finite values in [0, 1], or a one-line UserError."""
  eps = np.atleast_1d(np.asarray(eps, np.float64))
  check(eps.ndim == 1 and eps.size > 0, f"eps must be a number or a list of numbers, got {eps}")
  bad = [float(e) for e in eps if not (np.isfinite(e) and 0.0 <= e <= 1.0)]
  check(not bad, f"eps {bad[0] if bad else ''} out of range; allowed: 0 <= eps <= 1 (pixel "
                 "units, e.g. 2/255)")
  return eps.astype(np.float32)


def check_steps(steps, n: int) -> np.ndarray:
  steps = np.broadcast_to(np.atleast_1d(np.asarray(steps)), (n,))
  bad = [s for s in steps.tolist() if not (float(s) == int(s) and int(s) >= 1)]
  check(not bad, f"steps must be whole numbers >= 1, got {bad[0] if bad else ''}")
  return steps.astype(np.int32)


def check_inputs(images, name: str = "images") -> np.ndarray:
  """A non-empty float batch (N, ...) of finite values, or a one-line UserError."""
  images = np.asarray(images, np.float32)
  check(images.ndim >= 2 and images.shape[0] > 0,
        f"{name} must be a non-empty batch (N, ...), got shape {images.shape}")
  check(bool(np.isfinite(images).all()), f"{name} has non-finite values (NaN or inf)")
  return images


def num_classes(apply_fn, variables, input_shape) -> int:
  """The number of logits the model gives for inputs of input_shape (nothing is computed)."""
  logits, _ = jax.eval_shape(apply_fn, variables, jax.ShapeDtypeStruct(input_shape, jnp.float32))
  return int(logits.shape[-1])


def check_classes(apply_fn, variables, images, classes, what: str = "label") -> np.ndarray:
  """One class index per image, each in the model's range, or a one-line UserError."""
  classes = np.atleast_1d(np.asarray(classes))
  check(classes.shape == (len(images),) and np.issubdtype(classes.dtype, np.integer),
        f"{what}s must be one class index per image ({len(images)}), got {classes!r}")
  count = num_classes(apply_fn, variables, images.shape)
  bad = [int(c) for c in classes if not 0 <= c < count]
  check(not bad, f"{what} class {bad[0] if bad else ''} out of range; the model has classes "
                 f"0..{count - 1}")
  return classes.astype(np.int32)


def attack(apply_fn, variables, images, labels, eps, *, spec: Attack = Attack(), steps=1,
           step_size=None, key=None, loop: str = "auto") -> AttackResult:
  """Projected gradient attacks, every setting of eps (S,) in one compiled program.

  images (N, ...) and labels (N,): the inputs and the classes to move away from (or, targeted,
  towards). steps, step_size: per setting (S,) or one value; step_size defaults to eps (FGSM).
  key: the random starts (PGD). Returns AttackResult with images (S, N, ...).
  """
  images = check_inputs(images)
  eps = check_eps(eps)
  steps = check_steps(steps, len(eps))
  step_size = eps if step_size is None else np.broadcast_to(
      np.asarray(step_size, np.float32), eps.shape)
  check(bool(np.all(np.isfinite(step_size)) and np.all(step_size >= 0)),
        f"step_size must be finite and >= 0, got {step_size.tolist()}")
  labels = check_classes(apply_fn, variables, images, labels,
                         "target" if spec.targeted else "label")
  if spec.bounds is not None:
    low, high = spec.bounds
    check(bool(images.min() >= low and images.max() <= high),
          f"images must lie in the bounds [{low}, {high}], got [{images.min()}, {images.max()}]")
  run = attack_scan if optimize.loop_mode(loop) == "scan" else attack_dispatch
  key = jax.random.PRNGKey(0) if key is None else key
  adversarial = run(apply_fn, spec, variables, jnp.asarray(images), jnp.asarray(labels), key,
                    jnp.asarray(eps), jnp.asarray(step_size), jnp.asarray(steps),
                    max_steps=int(steps.max()))
  return AttackResult(adversarial, eps, np.asarray(step_size), steps)


def fgsm(apply_fn, variables, images, labels, eps, *, norm: str = "linf", targeted: bool = False,
         bounds=PIXEL_BOUNDS, loop: str = "auto") -> AttackResult:
  """Goodfellow et al. 2015, eq. 3: one step of size eps (norm "l2": the fast gradient method)."""
  return attack(apply_fn, variables, images, labels, eps,
                spec=Attack(norm, targeted, False, bounds), steps=1, loop=loop)


def bim_steps(eps) -> np.ndarray:
  """Kurakin et al. 2017: min(e + 4, 1.25 e) iterations for eps = e/255, rounded down (the paper
  does not say how), at least 1."""
  e = np.atleast_1d(np.asarray(eps, np.float64)) * 255.0
  return np.maximum(np.floor(np.minimum(e + 4.0, 1.25 * e) + 1e-6), 1).astype(np.int32)


def bim(apply_fn, variables, images, labels, eps, *, steps=None, step_size=1 / 255,
        norm: str = "linf", targeted: bool = False, loop: str = "auto") -> AttackResult:
  """Kurakin et al. 2017: steps of 1/255 (step_size) from x, bim_steps(eps) of them by default."""
  eps = check_eps(eps)
  steps = bim_steps(eps) if steps is None else steps
  return attack(apply_fn, variables, images, labels, eps, spec=Attack(norm, targeted, False),
                steps=steps, step_size=step_size, loop=loop)


def pgd(apply_fn, variables, images, labels, eps, *, key, steps=10, step_size=None,
        norm: str = "linf", targeted: bool = False, loop: str = "auto") -> AttackResult:
  """Madry et al. 2018: random start in the ball, `steps` projected steps of 2.5 eps / steps."""
  eps = check_eps(eps)
  steps = check_steps(steps, len(eps))
  return attack(apply_fn, variables, images, labels, eps,
                spec=Attack(norm, targeted, True), steps=steps,
                step_size=2.5 * eps / steps if step_size is None else step_size, key=key, loop=loop)


# ---------------------------------------------------------------------------------------------
# The lecture's linear example
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Logistic:
  """A binary logistic regression as a two-class softmax: logits (0, w.x + b), so that
  P(class 1) = sigmoid(w.x + b). Hashable: an apply_fn."""

  def __call__(self, variables, x):
    score = x @ variables["w"] + variables["b"]
    return jnp.stack([jnp.zeros_like(score), score], axis=-1), {"score": score}


class LinearExample(NamedTuple):
  score: float          # w.x + b
  p: float              # P(class 1 | x) = sigmoid(score)
  x_adv: np.ndarray     # x + eps sign(w)
  score_adv: float
  p_adv: float
  score_change: float   # eps ||w||_1, the linear argument's prediction


def linear_example(x, w, b: float = 0.0, eps: float = 0.5) -> LinearExample:
  """FGSM against class 0 of the logistic regression P(1|x) = sigmoid(w.x + b): the
  gradient of -log P(0|x) is P(1|x) w, so the step is exactly x + eps sign(w)."""
  x = check_inputs(np.asarray(x, np.float32)[None], "x")
  w = np.asarray(w, np.float32)
  check(w.shape == x.shape[1:], f"w must have the shape of x {x.shape[1:]}, got {w.shape}")
  variables = {"w": jnp.asarray(w), "b": jnp.asarray(b, jnp.float32)}
  model = Logistic()
  x_adv = np.asarray(fgsm(model, variables, x, [0], eps, bounds=None).images[0])
  score = lambda v: float(model(variables, jnp.asarray(v))[1]["score"][0])
  sigmoid = lambda s: float(1.0 / (1.0 + np.exp(-s)))
  return LinearExample(score(x), sigmoid(score(x)), x_adv[0], score(x_adv), sigmoid(score(x_adv)),
                       float(check_eps(eps)[0] * np.abs(w).sum()))


# ---------------------------------------------------------------------------------------------
# 8-bit images
# ---------------------------------------------------------------------------------------------

def quantize(images, origin=None, eps=None, norm: str = "linf") -> np.ndarray:
  """Images rounded to the 8-bit grid (k / 255) of a saved PNG, in [0, 1].

  With origin (N, ...) and eps (one value or (N,)), each stays within its eps-ball around
  origin (itself on the grid): L-inf pixels that rounded past x +- eps step back one level;
  L2 images whose rounded perturbation outgrew eps are rounded towards the origin instead.
  """
  images = np.asarray(images, np.float32)
  levels = np.round(np.clip(images, 0.0, 1.0) * 255.0)
  if origin is not None and eps is not None:
    origin_levels = np.round(np.asarray(origin, np.float32) * 255.0)
    radius = np.broadcast_to(np.asarray(eps, np.float64), (len(images),)).reshape(
        (-1,) + (1,) * (images.ndim - 1)) * 255.0
    delta = levels - origin_levels
    if norm == "linf":
      delta = np.where(np.abs(delta) > radius + 1e-3, delta - np.sign(delta), delta)
    else:
      too_long = np.sqrt((delta ** 2).reshape(len(images), -1).sum(1)) > radius.ravel() + 1e-3
      toward = np.trunc((np.clip(images, 0, 1) * 255.0 - origin_levels) + 1e-4 * np.sign(
          images - origin))
      delta = np.where(too_long.reshape(radius.shape), toward, delta)
    levels = np.clip(origin_levels + delta, 0, 255)
  return (levels / 255.0).astype(np.float32)
