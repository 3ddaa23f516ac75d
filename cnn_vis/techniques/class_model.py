"""Class model visualisation (Simonyan, Vedaldi & Zisserman 2014, §2, eq. 1).

    I* = argmax_I  S_c(I) - lambda ||I||^2

S_c is the unnormalised (pre-softmax) class score and I the mean-subtracted image: the search
starts from the zero image of that space, which in our [0, 1] pixel space is the model's mean
pixel (`optimize.model_mean`); the mean is "added back" simply by displaying I in pixel space.

The paper states neither lambda, nor the step rule, nor the number of iterations
(docs/papers.md §4: not stated). PRESETS, each a dict of `class_models` settings (`preset`):
- `paper`: eq. 1 as the paper states it, from the zero image, with no transformation and no
  clipping; our choices for what it leaves open, in [0, 1] pixel space: Adam, lr 0.02 (about
  5/255 per step), 100 iterations (plain gradient ascent, sgd lr 1, reaches the same
  probabilities but oscillates at higher rates), lambda 0.01 (0.01 / 255^2 = 1.5e-7 in the
  paper's 0..255 units: at the end of a 224 px run S_c and lambda ||I||^2 are of one size).
  These images are adversarial patterns rather than pictures: classified as their class with
  p = 1.00, but alignment-specific (on EfficientNet-Lite0 only 4-5 of 10 stay top-1 after a
  random shift of up to 8 pixels).
- `jitter`: `paper` plus jitter 16 (as CS231n) and clipping to [0, 1]: shift-robust, still
  high-frequency patterns (the experiment's default before it was chosen by measurement).
- `cs231n`, `lucid`: the recipes of cnn_vis.techniques.recipes (CS231n's L2 + blur + jitter;
  Olah et al.'s Fourier + decorrelated colour + transformation robustness).
Which recipe gives recognisable images is measured by classifying each class model with a
network it was not rendered on (benchmarks/recognisability.py; configs/simonyan14_class_models.py
states the figures and the default chosen).
"""
import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis import models
from cnn_vis.errors import check, choose
from cnn_vis.techniques import optimize, recipes
from cnn_vis.techniques.objectives import L2, ClassLogit, Setting

PRESETS = {
    "paper": dict(l2=0.01, lr=0.02, steps=100, optimizer="adam"),
    "jitter": dict(l2=0.01, lr=0.02, steps=100, optimizer="adam", transforms=(("jitter", 16),),
                   clip=True),
    "cs231n": recipes.CS231N,
    "lucid": recipes.LUCID,
}
DEFAULTS = PRESETS["paper"]
SETTINGS = ("l2", "lr", "steps", "optimizer", "transforms", "clip", "blur_width", "blur_every",
            "init_std", "param")

# Eq. 1: maximise S_c(I) - lambda ||I||^2, lambda per setting (a sweep runs in one call).
OBJECTIVE = ClassLogit() - Setting("l2") * L2()


def preset(name: str = "paper", **overrides) -> dict:
  """A preset's settings with overrides (None: keep the preset's); one-line errors for unknown
  names."""
  choose("class model preset", str(name), PRESETS)
  unknown = sorted(set(overrides) - set(SETTINGS))
  check(not unknown, f"unknown class model settings {unknown}; allowed: {list(SETTINGS)}")
  cfg = {"l2": 0.0, "transforms": (), "clip": False, **PRESETS[str(name)]}
  cfg.update({k: v for k, v in overrides.items() if v is not None})
  return cfg


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


def class_models(apply_fn, variables, classes, *, size: int, center, key, preset_name="paper",
                 chunk: int | None = None, loop: str = "auto", **overrides) -> optimize.Result:
  """One class model per entry of `classes` (S,), all vmapped in one render (optimize.render).

  preset_name: a PRESETS entry; overrides: any of SETTINGS (l2 and lr may be (S,) arrays: a
  lambda sweep is `classes` repeated with l2 varying). center: the model's mean pixel (3,) in
  [0, 1], the zero image of the paper, where plain-pixel presets without init_std start.
  Result.images: (S, 1, H, W, 3); Result.terms["class score"]: S_c at each step.
  """
  classes = check_classes(apply_fn, variables, classes, size)
  cfg = preset(preset_name, **overrides)
  values = dict(class_index=classes.astype(np.int32), l2=cfg["l2"], lr=cfg["lr"], center=center)
  param = cfg.get("param", optimize.Param(init_std=cfg.get("init_std", 0.01)))
  if param.is_plain and "init_std" not in cfg:
    values["init"] = jnp.broadcast_to(jnp.asarray(center, jnp.float32), (size, size, 3))
  projections = (optimize.Clip(),) if cfg["clip"] else ()
  if cfg.get("blur_every"):
    values.update(blur_width=cfg["blur_width"], blur_every=cfg["blur_every"])
    projections += (optimize.Blur(optimize.max_blur_radius(cfg["blur_width"])),)
  recipe = optimize.Recipe(size, size, phases=((int(cfg["steps"]), 1.0),), param=param,
                           optimizer=optimize.Optimizer(cfg["optimizer"]),
                           transforms=cfg["transforms"], projections=projections)
  settings = optimize.stack_settings(len(classes), **values)
  return optimize.render(apply_fn, variables, OBJECTIVE, settings, key, recipe, chunk=chunk,
                         loop=loop)


def top_k_hits(apply_fn, variables, images, classes, size: int, k: int = 5):
  """Does an independent network (apply_fn, e.g. another pretrained model) put each image's class
  among its top k? images (S, H, W, 3) are resized bilinearly to its input size first.
  Returns (hits (S,) bool, rank (S,) int: 0 = top-1)."""
  images = jnp.asarray(images, jnp.float32)
  if images.shape[1:3] != (size, size):
    images = jax.image.resize(images, (images.shape[0], size, size, 3), "linear")
  logits = np.asarray(jax.jit(apply_fn)(variables, jnp.clip(images, 0, 1))[0])
  classes = np.asarray(classes)
  rank = (logits > logits[np.arange(len(classes)), classes][:, None]).sum(axis=1)
  return rank < k, rank


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
