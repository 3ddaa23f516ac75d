"""Objectives for image optimisation: composable values to MAXIMISE, as lucid's objectives are.

    objective = channel("block8", 3) - 1e2 * diversity("block8")
    objective = class_logit() - Setting("l2") * l2()        # Simonyan et al. 2014, eq. 1

An objective is a frozen dataclass (hashable, so a jit-static argument) called on a `Context`:
the optimised image batch (B, H, W, 3) in [0, 1] pixel space (before the transforms the network
sees), the network's logits and named activations of the transformed batch, and the current
setting (one entry of the settings pytree that `optimize.render` vmaps over). Objectives add,
subtract, negate and scale (by a number or by a per-setting value `Setting(key)`); the sum keeps
its terms apart, so the optimiser records each term's value at every step (`Result.terms`).

Image priors (Simonyan's L2, Mahendran & Vedaldi's alpha-norm and total variation) are
objectives too, written positive and subtracted. Any technique may define its own objective
(style.py's Gram matrices) by subclassing `Objective`: nothing here needs to know about it.
"""
import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Context(NamedTuple):
  image: jax.Array        # (B, H, W, 3) the optimised images, pixel space, before transforms
  logits: jax.Array       # (B, classes) of the transformed images
  acts: dict              # layer name -> (B, ...) activations of the transformed images
  setting: Any            # this optimisation's entry of the settings pytree


_REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class Setting:
  """A per-setting value read from the settings pytree at run time (e.g. a swept lambda);
  `default` when the settings have no such key (if given)."""
  key: str
  default: Any = _REQUIRED

  def __call__(self, setting):
    if self.default is not _REQUIRED and self.key not in setting:
      return self.default
    return setting[self.key]


def resolve(value, setting):
  """A constant, or the setting's value of a Setting."""
  return value(setting) if isinstance(value, Setting) else value


class Objective:
  """Base class: subclasses are frozen dataclasses with `value(ctx) -> scalar` (to maximise)."""

  def value(self, ctx: Context) -> jax.Array:
    raise NotImplementedError

  @property
  def label(self) -> str:
    return type(self).__name__

  def terms(self, ctx: Context) -> dict[str, jax.Array]:
    """{label: weighted value} of each term; the objective is their sum."""
    return {self.label: self.value(ctx)}

  def __call__(self, ctx: Context) -> jax.Array:
    return self.value(ctx)

  def __add__(self, other):
    return Sum(_terms(self) + _terms(_objective(other)))

  def __radd__(self, other):
    return _objective(other) + self

  def __sub__(self, other):
    return self + (-1.0) * _objective(other)

  def __rsub__(self, other):
    return _objective(other) + (-1.0) * self

  def __neg__(self):
    return (-1.0) * self

  def __mul__(self, weight):
    return Scaled(weight, self)

  __rmul__ = __mul__


def _objective(other) -> Objective:
  if isinstance(other, Objective):
    return other
  if isinstance(other, (int, float)):
    return Constant(float(other))
  raise TypeError(f"cannot combine an objective with {type(other).__name__}")


def _terms(objective: Objective) -> tuple:
  return objective.parts if isinstance(objective, Sum) else (objective,)


@dataclasses.dataclass(frozen=True)
class Sum(Objective):
  parts: tuple

  def value(self, ctx):
    return sum(part.value(ctx) for part in self.parts)

  def terms(self, ctx):
    out = {}
    for part in self.parts:
      for label, value in part.terms(ctx).items():
        while label in out:
          label += "'"
        out[label] = value
    return out

  @property
  def label(self):
    return " + ".join(part.label for part in self.parts)


@dataclasses.dataclass(frozen=True)
class Scaled(Objective):
  weight: Any          # a number or a Setting
  term: Objective

  def value(self, ctx):
    return resolve(self.weight, ctx.setting) * self.term.value(ctx)

  def terms(self, ctx):
    weight = resolve(self.weight, ctx.setting)
    return {label: weight * value for label, value in self.term.terms(ctx).items()}

  @property
  def label(self):
    return self.term.label


@dataclasses.dataclass(frozen=True)
class Constant(Objective):
  constant: float

  def value(self, ctx):
    return jnp.asarray(self.constant, jnp.float32)


# ------------------------------------------------------------------------------------------------
# What the network computes.

@dataclasses.dataclass(frozen=True)
class Channel(Objective):
  """A unit: channel `channel` of `layer` at (y, x), or its spatial mean with spatial="mean",
  summed over the batch. channel, y, x: ints or Settings (a vmapped sweep over units)."""
  layer: str
  channel: Any = Setting("channel")
  y: Any = Setting("y")
  x: Any = Setting("x")
  spatial: str = "center"

  def value(self, ctx):
    a = ctx.acts[self.layer]
    c = resolve(self.channel, ctx.setting)
    if a.ndim == 2:
      return jnp.sum(a[:, c])
    if self.spatial == "mean":
      return jnp.sum(jnp.mean(a[..., c], axis=(1, 2)))
    return jnp.sum(a[:, resolve(self.y, ctx.setting), resolve(self.x, ctx.setting), c])

  @property
  def label(self):
    return f"channel {self.layer}"


@dataclasses.dataclass(frozen=True)
class ClassLogit(Objective):
  """The pre-softmax score S_c of class `index` (Simonyan et al. 2014, §2), summed over the batch."""
  index: Any = Setting("class_index")

  def value(self, ctx):
    return jnp.sum(ctx.logits[:, resolve(self.index, ctx.setting)])

  @property
  def label(self):
    return "class score"


@dataclasses.dataclass(frozen=True)
class ClassLogProbability(Objective):
  """log softmax of class `index` (Nguyen et al. 2015 push the softmax output), batch-summed."""
  index: Any = Setting("class_index")

  def value(self, ctx):
    return jnp.sum(jax.nn.log_softmax(ctx.logits.astype(jnp.float32))[:, resolve(self.index,
                                                                                 ctx.setting)])

  @property
  def label(self):
    return "class log-probability"


@dataclasses.dataclass(frozen=True)
class LayerL2(Objective):
  """1/2 ||a||^2 of a layer (DeepDream's objective_L2)."""
  layer: str

  def value(self, ctx):
    return 0.5 * jnp.sum(ctx.acts[self.layer] ** 2)

  @property
  def label(self):
    return f"||{self.layer}||^2 / 2"


@dataclasses.dataclass(frozen=True)
class FeatureDistance(Objective):
  """||Phi(x) - Phi0||^2 / norm at `layer` (written positive: subtract it), Phi0 = the setting's
  `target` (per image of the batch), norm the setting's `target_sq` (Mahendran & Vedaldi 2015)."""
  layer: str
  target: Any = Setting("target")
  norm: Any = Setting("target_sq")

  def value(self, ctx):
    diff = ctx.acts[self.layer] - resolve(self.target, ctx.setting)
    return jnp.sum(diff * diff) / resolve(self.norm, ctx.setting)

  @property
  def label(self):
    return f"feature distance {self.layer}"


@dataclasses.dataclass(frozen=True)
class Diversity(Objective):
  """Olah, Mordvintsev & Schubert 2017 ("Feature Visualization", §Diversity; lucid's
  `diversity`): the mean over the batch of each image's summed cosine similarity to the others,
  between their Gram matrices at `layer` (written positive: subtract it to diversify)."""
  layer: str

  def value(self, ctx):
    a = ctx.acts[self.layer]
    flat = a.reshape(a.shape[0], -1, a.shape[-1])
    grams = jnp.einsum("bpc,bpd->bcd", flat, flat).reshape(a.shape[0], -1)
    grams = grams / jnp.maximum(jnp.linalg.norm(grams, axis=1, keepdims=True), 1e-10)
    similarity = grams @ grams.T
    return (jnp.sum(similarity) - jnp.trace(similarity)) / a.shape[0]

  @property
  def label(self):
    return f"diversity {self.layer}"


# ------------------------------------------------------------------------------------------------
# Image priors (written positive; subtract them), in the mean-subtracted space around `center`.

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
  """sum_ij ((x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2)^(beta/2) over pixels, channels and the
  batch (Mahendran & Vedaldi 2015, R_V^beta); as in their code the last row/column is
  replicated, so differences beyond the border are zero."""
  dx = jnp.concatenate([image[..., 1:, :] - image[..., :-1, :],
                        jnp.zeros_like(image[..., :1, :])], axis=-2)
  dy = jnp.concatenate([image[..., 1:, :, :] - image[..., :-1, :, :],
                        jnp.zeros_like(image[..., :1, :, :])], axis=-3)
  return jnp.sum(_safe_power(dx * dx + dy * dy, beta / 2))


@dataclasses.dataclass(frozen=True)
class L2(Objective):
  """||x - center||^2; center: the model's mean pixel (the setting's `center`)."""
  center: Any = Setting("center", 0.0)

  def value(self, ctx):
    return l2_penalty(ctx.image, resolve(self.center, ctx.setting))

  @property
  def label(self):
    return "L2"


@dataclasses.dataclass(frozen=True)
class AlphaNorm(Objective):
  """sum |x - center|^alpha."""
  alpha: Any = 6.0
  center: Any = Setting("center", 0.0)

  def value(self, ctx):
    return alpha_norm(ctx.image, resolve(self.alpha, ctx.setting),
                      resolve(self.center, ctx.setting))

  @property
  def label(self):
    return "alpha-norm"


@dataclasses.dataclass(frozen=True)
class TotalVariation(Objective):
  """TV^beta of the image batch."""
  beta: Any = 2.0

  def value(self, ctx):
    return total_variation(ctx.image, resolve(self.beta, ctx.setting))

  @property
  def label(self):
    return "total variation"

