"""Class model visualisation (Simonyan, Vedaldi & Zisserman 2014, §2, eq. 1).

    I* = argmax_I  S_c(I) - lambda ||I||^2

S_c is the unnormalised (pre-softmax) class score and I the mean-subtracted image: the search
starts from the zero image of that space, which in our [0, 1] pixel space is the model's mean
pixel (`optimize.model_mean`); the mean is "added back" simply by displaying I in pixel space.

The paper states neither lambda, nor the step rule, nor the number of iterations
(docs/papers.md §4: not stated). Our choices, in [0, 1] pixel space, tuned on EfficientNet-Lite0:
- Adam, lr 0.02 (about 5/255 per step), 100 iterations. Plain gradient ascent (sgd, lr 1)
  reaches the same probabilities but oscillates at higher rates; Adam is rate-robust across classes.
- lambda 0.01: in the paper's 0..255 pixel units lambda_255 = 0.01 / 255^2 = 1.5e-7. At the end
  of the default run (224 px, 100 steps, 10 classes) S_c is 25-39 and lambda ||I||^2 25-38:
  the penalty balances the score rather than dominating it.
- no transformation and no clipping, as in the paper. Without them the images are
  alignment-specific: on EfficientNet-Lite0 (160 px, 50 sgd steps) all 10 test classes reach
  p = 1.0, but only 4-5 of 10 stay top-1 after a random shift of up to 8 pixels. The experiment
  config (configs/simonyan14_class_models.py) therefore adds jitter 16 (as CS231n's class
  visualisation does) and clipping to [0, 1]; with them all 10 reach p > 0.9999 and stay top-1
  after the shift (configs/simonyan14_class_models.py at 224 px; tests/test_class_model.py at
  160 px, 60 steps).
"""
import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis import models
from cnn_vis.errors import check
from cnn_vis.techniques import optimize
from cnn_vis.techniques.objectives import L2, ClassLogit, Setting

DEFAULTS = dict(l2=0.01, lr=0.02, steps=100, optimizer="adam")

# Eq. 1: maximise S_c(I) - lambda ||I||^2, lambda per setting (a sweep runs in one call).
OBJECTIVE = ClassLogit() - Setting("l2") * L2()


def check_classes(apply_fn, variables, classes, size: int) -> np.ndarray:
  """classes as a non-empty int array of the model's class indices, or a one-line UserError."""
  classes = np.atleast_1d(np.asarray(classes))
  check(classes.ndim == 1 and classes.size > 0 and np.issubdtype(classes.dtype, np.integer),
        f"classes must be a non-empty list of class indices, got {classes!r}")
  n = models.output_shapes(apply_fn, variables, (1, size, size, 3))[None][-1]
  bad = [int(c) for c in classes if not 0 <= c < n]
  check(not bad, f"class index {bad[0] if bad else ''} out of range; the model has classes "
                 f"0..{n - 1}")
  return classes


def class_models(apply_fn, variables, classes, *, size: int, center, key, l2=DEFAULTS["l2"],
                 lr=DEFAULTS["lr"], steps: int = DEFAULTS["steps"],
                 optimizer: str = DEFAULTS["optimizer"], transforms=(), clip: bool = False,
                 chunk: int | None = None, loop: str = "auto") -> optimize.Result:
  """One class model per entry of `classes` (S,), all vmapped in one render (optimize.render).

  l2 and lr: scalars or (S,) arrays (a lambda sweep is `classes` repeated with l2 varying).
  center: the model's mean pixel (3,) in [0, 1], the zero image of the paper.
  Result.images: (S, 1, H, W, 3); Result.terms["class score"]: S_c at each step.
  """
  classes = check_classes(apply_fn, variables, classes, size)
  zero_image = jnp.broadcast_to(jnp.asarray(center, jnp.float32), (size, size, 3))
  settings = optimize.stack_settings(len(classes), class_index=classes.astype(np.int32), l2=l2,
                                     lr=lr, center=center, init=zero_image)
  recipe = optimize.Recipe(size, size, phases=((int(steps), 1.0),),
                           optimizer=optimize.Optimizer(optimizer), transforms=transforms,
                           projections=(optimize.Clip(),) if clip else ())
  return optimize.render(apply_fn, variables, OBJECTIVE, settings, key, recipe, chunk=chunk,
                         loop=loop)


def shift(images, dy, dx, max_shift: int):
  """Translates each image by its own integer (dy, dx) (|d| <= max_shift), filling the gap by
  edge replication (not wrapping around, unlike the jitter used while optimising)."""
  _, height, width, _ = images.shape

  def shift_one(image, sy, sx):
    padded = jnp.pad(image, ((max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")
    return jax.lax.dynamic_slice(padded, (max_shift - sy, max_shift - sx, 0), (height, width, 3))
  return jax.vmap(shift_one)(images, jnp.asarray(dy), jnp.asarray(dx))


def shifted(images, key, max_shift: int = 8):
  """Each image shifted by an independent random (dy, dx) in [-max_shift, max_shift]^2, never
  (0, 0); returns (images, shifts (N, 2))."""
  n = images.shape[0]
  ky, kx, kflip = jax.random.split(key, 3)
  dy = jax.random.randint(ky, (n,), -max_shift, max_shift + 1)
  dx = jax.random.randint(kx, (n,), -max_shift, max_shift + 1)
  dx = jnp.where((dy == 0) & (dx == 0), jnp.where(jax.random.bernoulli(kflip, shape=(n,)),
                                                  max_shift, -max_shift), dx)
  return shift(images, dy, dx, max_shift), jnp.stack([dy, dx], axis=1)
