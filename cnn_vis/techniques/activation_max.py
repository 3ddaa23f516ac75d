"""Activation maximisation with regularisers (Yosinski, Clune, Nguyen, Fuchs & Lipson 2015, §3).

    x* = argmax_x a_i(x) + projections r_theta after every step

for any unit a_i of any layer (a conv unit without a position means its centre position, as in
the paper and the deep visualization toolbox). The four regularisers are the toolbox's
projections, applied in its order (optimize.project): decay theta_decay, Gaussian blur of width
theta_b_width every theta_b_every steps, zeroing pixels of small norm (theta_n_pct) and of small
contribution (theta_c_pct), then clipping to the valid range.

PRESETS 1-4 are Table 1 of the paper in its order (docs/papers.md §5; yosinski/deep-visualization-
toolbox `doc/running-optimize-image.md`); preset 3 made most of the paper's images. Start:
mean + N(0, 10) on 0..255 pixels. Conversion to our [0, 1] space (x01 = x255 / 255): decay, blur
widths (pixels) and percentiles are unit-free; a constant rate lr_255 on 0..255 pixels is
lr_255 / 255^2 here (the gradient scales by 255 and the step by 1/255), exact for networks fed
0..255 mean-subtracted pixels (our `alexnet`); the `progress` policy's desired_prog is in
objective units (unchanged) and its max_lr converts like lr. The paper's last-iteration skip of
the update is not reproduced (one extra step of 500-1000).

`olah17` is the later "feature visualization" recipe (Olah, Mordvintsev & Schubert 2017, Distill;
lucid's `render_vis` defaults) and `cs231n` CS231n's class-visualisation recipe (L2, blur, jitter),
both from cnn_vis.techniques.recipes: on the class units (logits) they are the class models of
cnn_vis.techniques.class_model's `lucid` and `cs231n` presets, whose recognisability by a second
network benchmarks/recognisability.py measures.
"""
import jax.numpy as jnp
import numpy as np

from cnn_vis import models
from cnn_vis.errors import check, choose
from cnn_vis.models.units import check_unit
from cnn_vis.techniques import optimize, recipes
from cnn_vis.techniques.objectives import L2, Channel, Setting

_LR = 1.0 / 255 ** 2   # one unit of lr_255 in [0, 1] pixel space

PRESETS = {
    # Table 1 row 1: decay 0, blur 0.5 every 4, norm pct 50, contribution pct 0, 500 iterations,
    # progress policy max_lr 100, desired_prog 2.
    "1": dict(decay=0.0, blur_width=0.5, blur_every=4, norm_pct=50.0, contrib_pct=0.0, steps=500,
              optimizer="progress", max_lr=100 * _LR, desired_prog=2.0),
    # row 2: decay 0.3, no blur, norm pct 20, 750 iterations, constant lr 100.
    "2": dict(decay=0.3, blur_width=0.0, blur_every=0, norm_pct=20.0, contrib_pct=0.0, steps=750,
              optimizer="sgd", lr=100 * _LR),
    # row 3 (most of the paper's images): decay 1e-4, blur 1.0 every 4, 1000 iterations, lr 100.
    "3": dict(decay=1e-4, blur_width=1.0, blur_every=4, norm_pct=0.0, contrib_pct=0.0, steps=1000,
              optimizer="sgd", lr=100 * _LR),
    # row 4: blur 0.5 every 4, contribution pct 90, 1000 iterations, progress max_lr 1e8, prog 2.
    "4": dict(decay=0.0, blur_width=0.5, blur_every=4, norm_pct=0.0, contrib_pct=90.0, steps=1000,
              optimizer="progress", max_lr=1e8 * _LR, desired_prog=2.0),
    "olah17": recipes.LUCID,
    "cs231n": recipes.CS231N,
}
YOSINSKI_INIT_STD = 10.0 / 255   # gradient_optimizer.py `mean_plus_rand`: N(0, 10) on 0..255
PROJECTION_KEYS = ("decay", "blur_width", "blur_every", "norm_pct", "contrib_pct")
SETTING_KEYS = ("lr", "max_lr", "desired_prog", "l2") + PROJECTION_KEYS


def preset(name: str, **overrides) -> dict:
  """A named preset's settings with overrides (unknown names are a one-line error)."""
  choose("preset", str(name), PRESETS)
  out = dict(PRESETS[str(name)])
  allowed = set(out) | {"lr", "steps", "optimizer", "max_lr", "desired_prog"}
  unknown = set(overrides) - allowed
  check(not unknown, f"unknown preset overrides {sorted(unknown)}; allowed: {sorted(allowed)}")
  out.update({k: v for k, v in overrides.items() if v is not None})
  return out


def projections(cfg: dict) -> tuple:
  """Yosinski's per-step regularisers that the preset switches on, in his code's order (decay,
  blur, small norm, small contribution), then the clip to [0, 1]; none for other
  parameterisations."""
  if "param" in cfg:
    return ()
  radius = optimize.max_blur_radius(cfg.get("blur_width", 0.0))
  chosen = [optimize.Decay() if "decay" in cfg else None,
            optimize.Blur(radius) if "blur_width" in cfg and radius > 0 else None,
            optimize.ZeroSmallNorm() if "norm_pct" in cfg else None,
            optimize.ZeroSmallContribution() if "contrib_pct" in cfg else None,
            optimize.Clip()]
  return tuple(p for p in chosen if p is not None)


def unit_positions(units, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(channel, y, x) arrays of units on one layer; positionless conv units get the centre."""
  channel = np.array([u.channel for u in units], np.int32)
  if len(shape) == 2:
    return channel, np.zeros_like(channel), np.zeros_like(channel)
  height, width = shape[1:3]
  y = np.array([height // 2 if u.y is None else u.y for u in units], np.int32)
  x = np.array([width // 2 if u.x is None else u.x for u in units], np.int32)
  return channel, y, x


def maximize(apply_fn, variables, units, *, size: int, center, key, preset_name: str = "3",
             spatial: str = "center", chunk: int | None = None, loop: str = "auto",
             **overrides) -> optimize.Result:
  """Renders every unit (all on one layer) with a preset, all vmapped in one render.

  units: cnn_vis.models.units.Unit values of one layer; overrides: any preset value;
  hyperparameters (lr, decay, blur_width, blur_every, norm_pct, contrib_pct, max_lr,
  desired_prog) may be (S,) arrays, one per unit, for sweeps. Result.images: (S, 1, H, W, 3).
  """
  choose("spatial reduction", spatial, ("center", "mean"))
  check(len(units) > 0, "no units to render")
  table = models.layer_table(apply_fn, variables, (1, size, size, 3))
  units = [check_unit(u, table) for u in units]
  layers = sorted({u.layer for u in units})
  check(len(layers) == 1, f"units of one call must share a layer, got {', '.join(layers)}")
  check(all(u.channel is not None for u in units), "activation maximisation needs a channel per "
                                                   "unit (LAYER:C, not max:LAYER)")
  cfg = preset(preset_name, **overrides)
  channel, y, x = unit_positions(units, (1,) + table.shapes[layers[0]])
  values = dict(channel=channel, y=y, x=x, center=center)
  values.update({k: cfg[k] for k in SETTING_KEYS if k in cfg})
  settings = optimize.stack_settings(len(units), **values)
  param = cfg.get("param", optimize.Param(init_std=cfg.get("init_std", YOSINSKI_INIT_STD)))
  objective = Channel(layers[0], spatial=spatial)
  if "l2" in cfg:   # CS231n's image prior (Simonyan et al.'s), around the mean pixel
    objective = objective - Setting("l2") * L2()
  recipe = optimize.Recipe(size, size, phases=((int(cfg["steps"]), 1.0),), param=param,
                           transforms=cfg.get("transforms", ()), projections=projections(cfg),
                           optimizer=optimize.Optimizer(cfg["optimizer"]))
  try:
    return optimize.render(apply_fn, variables, objective, settings, key, recipe, chunk=chunk,
                           loop=loop)
  except optimize.DivergedError as e:
    raise optimize.DivergedError(f"{e} (units {', '.join(map(str, units[:4]))}...)") from None


def unit_values(apply_fn, variables, images, units, spatial: str = "center"):
  """Each unit's activation on its own image (S,): the objective reached."""
  _, acts = apply_fn(variables, images)
  a = acts[units[0].layer]
  channel, y, x = unit_positions(units, (1,) + a.shape[1:])
  idx = jnp.arange(len(units))
  if a.ndim == 2:
    return a[idx, channel]
  if spatial == "mean":
    return jnp.mean(a, axis=(1, 2))[idx, channel]
  return a[idx, y, x, channel]
