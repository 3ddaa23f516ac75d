"""Minimal adversarial perturbations: Szegedy et al.'s box-constrained L-BFGS and DeepFool.

- Szegedy et al. 2014, §4.1 (docs/papers.md §23): minimise c |r| + loss_f(x + r, l) subject to
  x + r in [0, 1]^m, for a target label l, and search c for the smallest perturbation that still
  reaches l. Here |r| is ||r||_2^2 (smooth, as Carlini & Wagner 2017 restate the method) and
  loss_f the cross-entropy, i.e. `render` MAXIMISES log p_l(x + r) - c ||r||^2 with optax's
  L-BFGS and its zoom line search (`optimize.Optimizer("lbfgs")`). The box constraint is a
  parameterisation by default, x + r = sigmoid(z) (`optimize.Param(sigmoid=True)`), so L-BFGS
  runs unconstrained on z; box="clip" is the projected variant (plain pixels, clipped to [0, 1]
  after every L-BFGS step, which the curvature pairs do not know about). The paper says "the
  minimum c" but c weighs |r|: the smallest perturbation comes from the LARGEST c whose minimiser
  still reaches l. So every c of a geometric grid runs in one vmapped render (settings = c x
  images), then `rounds` of bisection in log c between each image's largest fooling and smallest
  failing c (one render of all images per round). The paper publishes no L-BFGS settings.
- DeepFool (Moosavi-Dezfooli, Fawzi & Frossard 2016, Algorithm 2; docs/papers.md §20), as the
  reference code LTS4/DeepFool runs it: the candidates are the clean image's top `candidates`
  (10) classes; at x_i, for each candidate k != k0, w_k = grad f_k - grad f_k0 and
  f_k = f_k(x_i) - f_k0(x_i) on the pre-softmax scores; l = argmin |f_k| / ||w_k||_2; the step
  r_i = (|f_l| / ||w_l|| + 1e-4) w_l / ||w_l|| accumulates into r_tot and
  x_{i+1} = clip(x + (1 + overshoot) r_tot) (overshoot 0.02), until the label changes or 50
  iterations. The candidates' gradients come from the gradient core (one forward pass and one
  backward pass per candidate, `gradients.gradients`); images that flipped stop moving.
  Ours, after the paper's loop: its last linearised step can land well past a curved boundary
  (the first flipping iterate is x + (1 + overshoot) r_tot, whatever the step's error), so
  `boundary_rounds` (12) of bisection along that perturbation find the smallest fooling scale t
  in (0, 1] (to within 2^-12; one forward pass a round) and return min(1, (1 + overshoot) t)
  times it: the overshoot past the boundary the paper intends, never longer than the paper's r.
  boundary_rounds=0 keeps the paper's r as it is (LTS4/DeepFool and foolbox stop there).
- `fgsm_minimal_eps`: DeepFool's Table 1 FGSM column, the smallest eps at which FGSM fools each
  image, by bisection on eps (FGSM needs one gradient; each round is one forward pass). FGSM's
  success need not be monotone in eps: the bisection returns an eps where it fools with a failing
  eps within the tolerance below.
- Saved PNGs are 8-bit, and a DeepFool perturbation (rms ~1e-3 per pixel on ImageNet, a quarter
  of a level; on an image right at the boundary far less) mostly rounds away. `round_adversarial`
  therefore scales r up by the first factor of a ladder (1, 2^(1/8), ..., 4096) whose rounded
  image x + t r is still adversarial; the continuous r is what the papers report, the rounded one
  what the files hold (on the 100 ImageNet samples 8 of DeepFool's r need t > 8: their
  ||r||_inf is 3e-5 to 5e-4, below half a level).

DeepFool's dispatch loop and the FGSM bisection show their iterations on a tqdm bar on a terminal
(cnn_vis.runs.progress; DeepFool's with the count of images fooled so far); L-BFGS shows
`render`'s own.
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis import runs
from cnn_vis.errors import check, choose, whole_number
from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import gradients as G
from cnn_vis.techniques import optimize
from cnn_vis.techniques.objectives import L2, ClassLogProbability, Setting

BOXES = ("sigmoid", "clip")
# 1 to 4096 in steps of 2^(1/8): an image at the boundary may need r far past one 8-bit level
ROUNDING_SCALES = tuple(float(2 ** (k / 8)) for k in range(97))


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def predictions(apply_fn, variables, images):
  """(argmax class (N,), softmax probabilities (N, classes))."""
  logits = apply_fn(variables, images)[0].astype(jnp.float32)
  return jnp.argmax(logits, -1), jax.nn.softmax(logits)


@functools.partial(jax.jit, static_argnames=("apply_fn", "k"))
def top_classes(apply_fn, variables, images, k: int):
  """The k highest-scoring classes of each image, best first (N, k)."""
  return jax.lax.top_k(apply_fn(variables, images)[0], k)[1].astype(jnp.int32)


def is_adversarial(predicted, labels, targeted: bool):
  """Untargeted: the prediction left `labels`; targeted: it reached them."""
  return predicted == labels if targeted else predicted != labels


def smallest_fooling_scale(fooled_at, high, rounds: int, desc: str) -> np.ndarray:
  """Per image the bisected smallest t in (0, high] (N,) at which fooled_at(t) holds, to within
  high / 2^rounds (fooled_at(high) is assumed; fooled_at(0) is not)."""
  low = np.zeros_like(high)
  for _ in runs.progress(range(rounds), desc=desc, unit="round"):
    middle = (low + high) / 2
    fooled = fooled_at(middle)
    high, low = np.where(fooled, middle, high), np.where(fooled, low, middle)
  return high


@functools.partial(jax.jit, static_argnames=("apply_fn", "bounds"))
def _fooled_at(apply_fn, variables, images, direction, eps, labels, bounds):
  """Whether the label of clip(images + eps direction) differs from `labels` (N,)."""
  x = images + A._per_image(eps, images) * direction
  x = x if bounds is None else jnp.clip(x, *bounds)
  return jnp.argmax(apply_fn(variables, x)[0], axis=-1) != labels


# ---------------------------------------------------------------------------------------------
# DeepFool
# ---------------------------------------------------------------------------------------------

class DeepFoolState(NamedTuple):
  x: jax.Array           # (N, ...) current iterate clip(x0 + (1 + overshoot) r_tot)
  r_total: jax.Array     # (N, ...) accumulated r_i
  done: jax.Array        # (N,) the label of x differs from the clean label
  iterations: jax.Array  # (N,) steps taken


class MinimalResult(NamedTuple):
  images: np.ndarray        # (N, ...) adversarial inputs (continuous)
  perturbations: np.ndarray  # (N, ...) images - originals
  clean: np.ndarray         # (N,) the clean prediction (DeepFool) or target (L-BFGS)
  adversarial: np.ndarray   # (N,) the prediction on `images`
  fooled: np.ndarray        # (N,) success
  extras: dict              # per-image figures of the method (iterations, c, ...)


def _deepfool_update(apply_fn, variables, origin, candidates, overshoot, bounds, unit_chunk,
                     state):
  """One DeepFool iteration for the images not yet fooled (Algorithm 2, lines 3-8)."""
  units = G.Units(candidates.T, -jnp.ones_like(candidates.T), -jnp.ones_like(candidates.T))
  attribution = G.gradients(apply_fn, variables, state.x, units, unit_chunk=unit_chunk)
  grads, scores = attribution.values, attribution.scores      # (K, N, ...), (K, N)
  w = grads[1:] - grads[:1]
  f = scores[1:] - scores[:1]
  w_norm = jnp.sqrt(jnp.sum(w.reshape(w.shape[:2] + (-1,)) ** 2, axis=-1))   # (K - 1, N)
  distance = jnp.abs(f) / (w_norm + 1e-8)
  best = jnp.argmin(distance, axis=0)
  pick = lambda a: jnp.take_along_axis(a, best[None], axis=0)[0]
  w_best = jnp.take_along_axis(w, best.reshape((1, -1) + (1,) * (w.ndim - 2)), axis=0)[0]
  step = A._per_image((pick(distance) + 1e-4) / (pick(w_norm) + 1e-8), w_best) * w_best
  active = A._per_image(~state.done, step)
  r_total = state.r_total + jnp.where(active, step, 0.0)
  x = origin + (1.0 + overshoot) * r_total
  x = jnp.where(active, x if bounds is None else jnp.clip(x, *bounds), state.x)
  predicted = jnp.argmax(apply_fn(variables, x)[0], axis=-1)
  return DeepFoolState(x, r_total, predicted != candidates[:, 0],
                       state.iterations + (~state.done).astype(jnp.int32))


@functools.partial(jax.jit, static_argnames=("apply_fn", "bounds", "unit_chunk"))
def deepfool_step(apply_fn, variables, origin, candidates, overshoot, state, bounds=None,
                  unit_chunk=None):
  """One iteration, compiled once (the CPU dispatch loop)."""
  return _deepfool_update(apply_fn, variables, origin, candidates, overshoot, bounds, unit_chunk,
                          state)


@functools.partial(jax.jit, static_argnames=("apply_fn", "bounds", "max_iter", "unit_chunk"))
def deepfool_scan(apply_fn, variables, origin, candidates, overshoot, state, bounds, max_iter,
                  unit_chunk=None):
  """Every iteration in ONE compiled call (lax.while_loop until all flipped or max_iter)."""
  cond = lambda s: (jnp.max(s.iterations) < max_iter) & ~jnp.all(s.done)
  update = functools.partial(_deepfool_update, apply_fn, variables, origin, candidates, overshoot,
                             bounds, unit_chunk)
  return jax.lax.while_loop(cond, update, state)


def deepfool(apply_fn, variables, images, *, candidates: int = 10, overshoot: float = 0.02,
             max_iter: int = 50, boundary_rounds: int = 12, bounds=A.PIXEL_BOUNDS,
             loop: str = "auto") -> MinimalResult:
  """DeepFool's L2 perturbation of each image (N, ...); extras: iterations (N,) and
  boundary_scale (N,), the factor the boundary search shortened r by (1: kept; see the module
  docstring; boundary_rounds 0 keeps the paper's r as it is)."""
  images = A.check_inputs(images)
  max_iter = whole_number("max_iter", max_iter)
  boundary_rounds = whole_number("boundary_rounds", boundary_rounds, least=0)
  check(np.isfinite(overshoot) and overshoot >= 0, f"overshoot must be >= 0, got {overshoot}")
  count = A.num_classes(apply_fn, variables, images.shape)
  candidates = whole_number("candidates", candidates)
  check(2 <= candidates, f"candidates must be >= 2 (the clean class and another), got {candidates}")
  origin = jnp.asarray(images)
  top = top_classes(apply_fn, variables, origin, min(candidates, count))
  state = DeepFoolState(origin, jnp.zeros_like(origin), jnp.zeros(len(images), bool),
                        jnp.zeros(len(images), jnp.int32))
  bounds = None if bounds is None else tuple(float(b) for b in bounds)
  overshoot = jnp.float32(overshoot)
  # the candidates' backward passes: one at a time on CPU (2.4x faster there than vmapped,
  # measured on EfficientNet-Lite0), all at once on accelerators
  unit_chunk = 1 if jax.default_backend() == "cpu" else None
  if optimize.loop_mode(loop) == "scan":
    state = deepfool_scan(apply_fn, variables, origin, top, overshoot, state, bounds, max_iter,
                          unit_chunk)
  else:
    with runs.progress(total=max_iter, desc=f"DeepFool {len(images)} images",
                       unit="iter") as bar:
      for _ in range(max_iter):
        state = deepfool_step(apply_fn, variables, origin, top, overshoot, state, bounds=bounds,
                              unit_chunk=unit_chunk)
        done = np.asarray(state.done)    # the loop's own stopping test reads it anyway
        bar.set_postfix(fooled=f"{int(done.sum())}/{len(done)}", refresh=False)
        bar.update(1)
        if done.all():
          break
  clean = top[:, 0]
  perturbation = state.x - origin
  scale = np.ones(len(images), np.float32)
  if boundary_rounds:
    fooled_at = lambda t: np.asarray(_fooled_at(apply_fn, variables, origin, perturbation,
                                                jnp.asarray(t), clean, bounds))
    boundary = smallest_fooling_scale(fooled_at, scale, boundary_rounds, "DeepFool boundary")
    scale = np.where(np.asarray(state.done), np.minimum(1.0, (1 + float(overshoot)) * boundary),
                     1.0).astype(np.float32)
  x = origin + A._per_image(jnp.asarray(scale), origin) * perturbation
  adversarial = np.asarray(predictions(apply_fn, variables, x)[0])
  clean = np.asarray(clean)
  return MinimalResult(np.asarray(x), np.asarray(x - origin), clean, adversarial,
                       adversarial != clean, {"iterations": np.asarray(state.iterations),
                                              "boundary_scale": scale})


def boundary_check(apply_fn, variables, origin, perturbation, clean, factor: float = 0.95,
                   bounds=A.PIXEL_BOUNDS):
  """(fooled at r, fooled at factor * r) per image: a perturbation at most 1/factor past the
  decision boundary flips the class and flips back when shortened to factor r."""
  origin, perturbation = jnp.asarray(origin), jnp.asarray(perturbation)
  out = []
  for scale in (1.0, factor):
    x = origin + scale * perturbation
    x = x if bounds is None else jnp.clip(x, *bounds)
    out.append(np.asarray(predictions(apply_fn, variables, x)[0]) != np.asarray(clean))
  return tuple(out)


# ---------------------------------------------------------------------------------------------
# The smallest FGSM step that fools (DeepFool's Table 1 comparison)
# ---------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("apply_fn", "norm"))
def _fgsm_direction(apply_fn, variables, images, labels, norm: str):
  grad = jax.grad(A.attack_loss, argnums=2)(apply_fn, variables, images, labels, False)
  return A.steepest_direction(grad, norm)


def fgsm_minimal_eps(apply_fn, variables, images, labels, *, eps_max: float = 32 / 255,
                     rounds: int = 12, norm: str = "linf", bounds=A.PIXEL_BOUNDS):
  """(eps (N,), adversarial images (N, ...)): per image the bisected smallest FGSM eps in
  (0, eps_max] that changes the label from `labels` (NaN where eps_max does not)."""
  images = A.check_inputs(images)
  labels = A.check_classes(apply_fn, variables, images, labels)
  choose("norm", norm, A.NORMS)
  eps_max = float(A.check_eps(eps_max)[0])
  rounds = whole_number("rounds", rounds)
  bounds = None if bounds is None else tuple(float(b) for b in bounds)
  x, y = jnp.asarray(images), jnp.asarray(labels)
  direction = _fgsm_direction(apply_fn, variables, x, y, norm)
  fooled_at = lambda eps: np.asarray(_fooled_at(apply_fn, variables, x, direction,
                                                jnp.asarray(eps, jnp.float32), y, bounds))
  high = np.full(len(images), eps_max, np.float32)
  reachable = fooled_at(high)
  high = smallest_fooling_scale(fooled_at, high, rounds, "FGSM eps bisection")
  adversarial = images + high.reshape((-1,) + (1,) * (images.ndim - 1)) * np.asarray(direction)
  if bounds is not None:
    adversarial = np.clip(adversarial, *bounds)
  return np.where(reachable, high, np.nan).astype(np.float32), adversarial.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Szegedy et al.'s box-constrained L-BFGS
# ---------------------------------------------------------------------------------------------

# Maximised by render: log p_target(x + r) - c ||r||^2 (the origin is the clean image).
SZEGEDY_OBJECTIVE = ClassLogProbability(Setting("target")) - Setting("c") * L2(Setting("origin"))


def _lbfgs_render(apply_fn, variables, images, targets, c, steps, box, memory, loop, chunk):
  """One L-BFGS minimisation per (image, c) pair given as flat arrays (S,): images (S, H, W, 3)."""
  height, width = images.shape[1:3]
  settings = optimize.stack_settings(len(c), target=targets, c=c, origin=images, init=images)
  recipe = optimize.Recipe(
      height, width, phases=((steps, 1.0),), param=optimize.Param(sigmoid=box == "sigmoid"),
      projections=(optimize.Clip(),) if box == "clip" else (),
      optimizer=optimize.Optimizer("lbfgs", (("memory_size", memory),)))
  result = optimize.render(apply_fn, variables, SZEGEDY_OBJECTIVE, settings, jax.random.PRNGKey(0),
                           recipe, chunk=chunk, loop=loop)
  adversarial = np.asarray(result.images[:, 0])
  return adversarial, np.asarray(predictions(apply_fn, variables, adversarial)[0]) == targets


def lbfgs_attack(apply_fn, variables, images, targets, *, c_values=(0.1, 1.0, 10.0, 100.0),
                 rounds: int = 2, steps: int = 20, box: str = "sigmoid", memory: int = 10,
                 loop: str = "auto", chunk: int | None = None) -> MinimalResult:
  """Szegedy et al.'s targeted minimal perturbation of each image (N, H, W, 3) towards targets
  (N,): per image the fooling minimiser of the largest c found (extras: c (N,), NaN if none)."""
  images = optimize.check_image(images)
  targets = A.check_classes(apply_fn, variables, images, targets, "target")
  choose("box constraint", box, BOXES)
  steps = whole_number("steps", steps)
  rounds = int(rounds)
  check(rounds >= 0, f"rounds must be >= 0, got {rounds}")
  grid = np.sort(np.asarray(c_values, np.float32).ravel())
  check(grid.size > 0 and bool(np.all(np.isfinite(grid) & (grid > 0))),
        f"c_values must be numbers > 0, got {list(np.atleast_1d(c_values))}")
  n = len(images)
  run = lambda x, t, c: _lbfgs_render(apply_fn, variables, x, t, c, steps, box, memory, loop,
                                      chunk)
  candidates, fooled = run(np.tile(images, (len(grid), 1, 1, 1)), np.tile(targets, len(grid)),
                           np.repeat(grid, n))
  candidates = candidates.reshape((len(grid), n) + images.shape[1:])
  fooled = fooled.reshape(len(grid), n)
  # per image: the largest fooling c (and its minimiser), the smallest failing c above it
  best = np.where(fooled.any(0), len(grid) - 1 - np.argmax(fooled[::-1], axis=0), -1)
  chosen = np.where(best[:, None, None, None] >= 0, candidates[np.maximum(best, 0), np.arange(n)],
                    images)
  low = np.where(best >= 0, grid[np.maximum(best, 0)], np.nan)
  high = np.where(best + 1 < len(grid), grid[np.minimum(best + 1, len(grid) - 1)], np.nan)
  for _ in range(rounds):  # every image each round: one compiled shape (the others' is unused)
    refine = np.isfinite(low) & np.isfinite(high)
    if not refine.any():
      break
    c = np.where(refine, np.sqrt(low * high), grid[-1]).astype(np.float32)
    found, ok = run(images, targets, c)
    better, worse = refine & ok, refine & ~ok
    chosen[better] = found[better]
    low[better], high[worse] = c[better], c[worse]
  adversarial = np.asarray(predictions(apply_fn, variables, chosen)[0])
  success = adversarial == targets
  return MinimalResult(chosen, chosen - images, targets, adversarial, success,
                       {"c": np.where(success, low, np.nan).astype(np.float32)})


# ---------------------------------------------------------------------------------------------
# Rounding minimal perturbations to 8-bit images
# ---------------------------------------------------------------------------------------------

def round_adversarial(apply_fn, variables, origin, perturbation, labels, *, targeted: bool = False,
                      scales=ROUNDING_SCALES):
  """(8-bit images (N, ...), scale t (N,)): quantize(origin + t r) for the first t of `scales` at
  which the rounded image is still adversarial (untargeted: not `labels`; targeted: `labels`);
  NaN scale (and t = the last scale) where none is."""
  origin = np.asarray(origin, np.float32)
  perturbation = np.asarray(perturbation, np.float32)
  labels = np.asarray(labels)
  out = A.quantize(origin + scales[-1] * perturbation)
  found = np.full(len(origin), np.nan)
  for scale in scales:  # all images each time: one compiled batch shape
    rounded = A.quantize(origin + scale * perturbation)
    predicted = np.asarray(predictions(apply_fn, variables, rounded)[0])
    new = np.isnan(found) & is_adversarial(predicted, labels, targeted)
    out[new], found[new] = rounded[new], scale
    if not np.isnan(found).any():
      break
  return out, found
