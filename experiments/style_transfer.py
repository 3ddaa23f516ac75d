"""Neural style transfer (Gatys et al. 2016; docs/papers.md §9, §12, §24): every setting of
config (content image x style-layer weights x content / style / TV weights) rendered by
cnn_vis.techniques.style, the settings of one output size in one vmapped call; optionally the
same problem again with a second optimiser for as many objective evaluations (config.compare).

Writes into the workdir: stylized.png (several settings: stylized_<i>.png in setting order, and
grid.png, a labelled grid with one row per content image and style-layer row), progress/<it>.png
(the image - or the grid of settings - every config.save_every iterations, from 0), strip.png
(them side by side), loss.png (total loss against objective evaluations for both optimisers; each
term against iterations), inputs.png, metrics.jsonl (one line per setting: its weights and the
weighted terms at the start and end), summary.json ("start" and "end": content_loss, style_loss,
tv_loss, total_loss - lists in setting order when there are several settings -, "iterations",
"seconds", "optimizer", "evaluations", "compare") and report.html.

Images: config.content and config.styles are comma-separated sources: image files,
`skimage:NAME` (scikit-image's photos and its textures brick, grass, gravel) or
`generated:composition[:SEED]` (an abstract painting drawn here, in the manner of the
Kandinsky composition CS231n uses; no artwork is shipped).
"""
import dataclasses
import itertools
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image, ImageDraw

from cnn_vis import loader, models, report, runs
from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError, check, choose
from cnn_vis.models.units import split_units
from cnn_vis.techniques import style

SKIMAGE_TEXTURES = ("brick", "grass", "gravel")   # greyscale textures of skimage.data
GENERATED = ("composition",)


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def composition(seed: int = 0, size: int = 512) -> np.ndarray:
  """An abstract painting of bold circles, bars, triangles and lines on a warm ground (drawn,
  seeded): a copyright-free stand-in for the Kandinsky composition of CS231n's first preset."""
  rng = np.random.default_rng(seed)
  palette = [(200, 30, 40), (240, 190, 20), (20, 60, 160), (10, 10, 10), (40, 140, 70),
             (230, 110, 30), (120, 40, 130), (245, 240, 225)]
  yy, xx = np.mgrid[0:size, 0:size] / size
  ground = np.stack([235 - 40 * yy, 225 - 30 * xx, 195 - 50 * yy * xx], axis=-1)
  ground += rng.normal(0, 6, ground.shape)
  canvas = Image.fromarray(np.clip(ground, 0, 255).astype(np.uint8))
  draw = ImageDraw.Draw(canvas)
  pick = lambda: palette[rng.integers(len(palette))]
  for _ in range(14):                                    # concentric circles
    cx, cy, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(size // 30, size // 6))]
    for k in range(int(rng.integers(1, 4))):
      rk = r * (1 - k / 3)
      draw.ellipse([cx - rk, cy - rk, cx + rk, cy + rk], fill=pick())
  for _ in range(10):                                    # triangles
    draw.polygon([tuple(rng.integers(0, size, 2).tolist()) for _ in range(3)], fill=pick())
  for _ in range(30):                                    # lines and bars
    start, end = rng.integers(0, size, 2).tolist(), rng.integers(0, size, 2).tolist()
    draw.line([tuple(start), tuple(end)], fill=pick(), width=int(rng.integers(1, size // 40)))
  return np.asarray(canvas, np.float32) / 255.0


def load_source(source: str) -> tuple[str, np.ndarray]:
  """(name, HxWx3 float image in [0, 1], full size) of one image source."""
  source = source.strip()
  if source.startswith("generated:"):
    name, _, seed = source.split(":", 1)[1].partition(":")
    choose("generated image", name, GENERATED)
    check(seed == "" or seed.isdigit(), f"generated image seed {seed!r} must be a whole number")
    return f"{name}{seed}", composition(int(seed or 0))
  if source.startswith("skimage:") and source.split(":", 1)[1] in SKIMAGE_TEXTURES:
    import skimage.data  # lazy: scikit-image takes ~1 s to import and only its images need it
    name = source.split(":", 1)[1]
    grey = np.asarray(getattr(skimage.data, name)(), np.float32) / 255.0
    return name, np.repeat(grey[..., None], 3, axis=-1)
  if source.startswith("skimage:"):
    name = source.split(":", 1)[1]
    try:
      return name, image_io.skimage_image(name)
    except UserError as e:
      raise UserError(f"{e}, or a texture: {', '.join(SKIMAGE_TEXTURES)}") from None
  return Path(source).stem, image_io.load_image(source)


def load_sources(text, what: str) -> tuple[list[str], list[np.ndarray]]:
  sources = [s for s in str(text or "").split(",") if s.strip()]
  check(bool(sources), f"config.{what} is empty; give image files, skimage:NAME or "
                       "generated:composition, separated by commas")
  names, images = zip(*(load_source(s) for s in sources))
  return list(names), list(images)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

def as_tuple(value) -> tuple:
  if value is None:
    return ()
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def layer_weight_rows(value, num_layers: int) -> list[tuple[float, ...]]:
  """config.layer_weights: () -> one row of 1/L; (w1, ..., wL) -> that row; ((...), (...)) ->
  several rows (settings), e.g. Fig. 3's growing subsets of layers."""
  value = as_tuple(value)
  if not value:
    return [(1.0 / num_layers,) * num_layers]
  rows = [tuple(float(v) for v in row) for row in value] \
      if isinstance(value[0], (tuple, list)) else [tuple(float(v) for v in value)]
  bad = [row for row in rows if len(row) != num_layers]
  check(not bad, f"layer_weights {bad[0] if bad else ''} has {len(bad[0]) if bad else 0} "
                 f"value(s) for {num_layers} style layer(s)")
  return rows


def blend_weights(value, num_styles: int) -> tuple[float, ...]:
  value = tuple(float(v) for v in as_tuple(value))
  if not value:
    return (1.0,) * num_styles
  check(len(value) == num_styles, f"blend weights {value} do not match the {num_styles} style "
                                  f"image(s); give one weight per style image")
  return value


@dataclasses.dataclass(frozen=True)
class Setting:
  content: int
  layer_weights: tuple
  content_weight: float
  style_weight: float
  tv_weight: float
  label: str


def settings_grid(num_contents: int, rows, content_weights, style_weights, tv_weights
                  ) -> tuple[list[Setting], int]:
  """Every combination, in order content, layer-weight row, content, style, TV weight; and the
  number of columns of the grid image (the combinations of the weights per row)."""
  axes = {"row": range(len(rows)), "alpha": content_weights, "beta": style_weights,
          "tv": tv_weights}
  varying = [name for name, values in axes.items() if len(values) > 1]
  out = []
  for c in range(num_contents):
    for r, a, b, t in itertools.product(*axes.values()):
      picked = {"row": r, "alpha": a, "beta": b, "tv": t}
      label = " ".join(f"row {r}" if name == "row" else f"{name}={picked[name]:g}"
                       for name in varying)
      out.append(Setting(c, rows[r], float(a), float(b), float(t), label))
  return out, len(content_weights) * len(style_weights) * len(tv_weights)


# ---------------------------------------------------------------------------------------------
# Parse
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Request:
  apply_fn: models.ModelFn
  variables: object
  spec: models.ModelSpec
  content_names: list
  contents: list
  style_names: list
  styles: list
  blend: tuple
  settings: list
  columns: int
  plans: dict          # content index -> style.Plan (its output sizes)
  compare: str         # the optimiser run again for as many evaluations ("": none)
  compare_lr: float


def _layers(config, spec) -> style.Layers:
  content = str(config.content_layer or "") or spec.default("style_content")
  layers = split_units(config.style_layers) if config.style_layers else spec.default("style")
  return style.Layers(content, tuple(layers), config.normalization)


def _sizes(image_shape, config) -> tuple:
  """Output (h, w) of each scale: config.scales (longest sides, coarse to fine) then
  config.image_size, each with the content image's aspect ratio."""
  longest = [int(s) for s in as_tuple(config.scales)] + [int(config.image_size)]
  small = [s for s in longest if s < style.MIN_SIZE]
  check(not small, f"image size {small[0] if small else ''} is too small; image_size and scales "
                   f"must be >= {style.MIN_SIZE}")
  return tuple(style.fit(image_shape, s) for s in longest)


def _plan(config, layers, sizes) -> style.Plan:
  iterations = as_tuple(config.iterations)
  return style.Plan(
      layers, sizes=sizes, iterations=iterations, optimizer=config.optimizer,
      line_search=bool(config.line_search), memory=int(config.get("memory", 10)),
      lr=float(config.lr),
      lr_steps=tuple(tuple(p) for p in config.lr_steps), init=config.init,
      init_std=float(config.init_std), pixels=config.pixels, style_scale=float(config.style_scale),
      original_colors=config.color_method if config.original_colors else "",
      snapshot_every=int(config.save_every), loop=config.loop,
      chunk=int(config.chunk or 0) or None)


def parse(config) -> Request:
  """Everything the run needs, validated; nothing is written."""
  spec = models.get_spec(config.model)
  layers = _layers(config, spec)
  content_names, contents = load_sources(config.content, "content")
  style_names, styles = load_sources(config.styles, "styles")
  plans = {i: _plan(config, layers, _sizes(c.shape, config)) for i, c in enumerate(contents)}
  apply_fn, variables, spec = loader.from_config(config)
  for plan in plans.values():
    style.check_layers(layers, style.layer_table(apply_fn, variables, plan.sizes[0]))
  blend = blend_weights(config.blend, len(styles))
  rows = layer_weight_rows(config.layer_weights, len(layers.style))
  settings, columns = settings_grid(len(contents), rows, as_tuple(config.content_weight),
                                    as_tuple(config.style_weight), as_tuple(config.tv_weight))
  choose("compare optimizer", config.compare or "", ("", "adam", "lbfgs", "sgd"))
  style.check_weights(_weights(settings, blend), len(contents), len(styles), len(layers.style))
  compare_lr = float(config.compare_lr)
  check(np.isfinite(compare_lr) and compare_lr > 0, f"compare_lr must be > 0, got {compare_lr}")
  return Request(apply_fn, variables, spec, content_names, contents, style_names, styles, blend,
                 settings, columns, plans, str(config.compare or ""), compare_lr)


def _weights(settings, blend, content_index=None) -> style.Weights:
  content = [s.content if content_index is None else content_index[s.content] for s in settings]
  return style.make_weights(
      len(settings), content=content, blend=blend,
      layer_weights=[s.layer_weights for s in settings],
      content_weight=[s.content_weight for s in settings],
      style_weight=[s.style_weight for s in settings],
      tv_weight=[s.tv_weight for s in settings])


# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------

def _groups(request: Request) -> list[tuple[tuple, list[int]]]:
  """Settings whose outputs have the same sizes (one vmapped call each): (sizes, indices)."""
  groups: dict = {}
  for i, setting in enumerate(request.settings):
    groups.setdefault(request.plans[setting.content].sizes, []).append(i)
  return list(groups.items())


def _run_group(request: Request, indices, plan: style.Plan, key):
  """One transfer of the settings `indices` (they share their sizes)."""
  settings = [request.settings[i] for i in indices]
  used = sorted({s.content for s in settings})
  weights = _weights(settings, request.blend, {c: j for j, c in enumerate(used)})
  return style.transfer(request.apply_fn, request.variables, [request.contents[c] for c in used],
                        request.styles, weights, plan, key, center=request.apply_fn.mean_pixel)


def _evaluations(transfer: style.Transfer) -> list[int]:
  """Objective evaluations of each scale (the most any setting used)."""
  return [int(np.asarray(stage.result.evaluations).sum(axis=1).max()) for stage in transfer.stages]


def _curve(transfer: style.Transfer, s: int):
  """(cumulative evaluations, total loss) of setting s over all scales, the end point included."""
  xs, ys, done = [], [], 0
  for stage in transfer.stages:
    evaluations = np.asarray(stage.result.evaluations[s])
    xs += list(done + np.concatenate([[0], np.cumsum(evaluations)[:-1]]))
    ys += list(-np.asarray(stage.result.values[s]))
    done += int(evaluations.sum())
  return xs + [done], ys + [float(transfer.end["total_loss"][s])]


def _per_setting(values: dict, s: int) -> dict:
  return {k: float(v[s]) for k, v in values.items()}


def _grid(images, labels, columns: int) -> np.ndarray:
  """One labelled grid of images of any sizes (groups of other output sizes included)."""
  return report.image_grid([np.clip(image, 0, 1) for image in images],
                           ncols=min(columns, len(images)), labels=labels)


def _report_grid(out: Path, rel: str, images, labels, columns: int):
  """Writes out/rel (as _grid) and its tiles; the Grid a report shows (labels as text)."""
  return report.labelled_grid(out, rel, [np.clip(image, 0, 1) for image in images], labels,
                              min(columns, len(images)))[1]


def _combine(parts, count: int) -> list:
  """Per-setting values of several groups ((indices, values), ...) back in setting order."""
  out = [None] * count
  for indices, values in parts:
    for j, i in enumerate(indices):
      out[i] = values[j]
  return out


def run(config, workdir):
  request = parse(config)
  count = len(request.settings)
  with runs.Run(config, workdir) as run:
    out = run.dir
    key = jax.random.PRNGKey(int(config.seed))
    results, compared, seconds, compare_seconds = [], [], 0.0, 0.0
    for sizes, indices in _groups(request):
      plan = request.plans[request.settings[indices[0]].content]
      start = time.perf_counter()
      with run.stage(f"transfer {sizes[-1][0]}x{sizes[-1][1]}"):
        transfer = _run_group(request, indices, plan, key)
      seconds += time.perf_counter() - start
      results.append((indices, transfer))
      if request.compare:
        other = dataclasses.replace(plan, optimizer=request.compare, lr=request.compare_lr,
                                    lr_steps=(), iterations=tuple(_evaluations(transfer)),
                                    snapshot_every=0)
        start = time.perf_counter()
        with run.stage(f"compare {request.compare}"):
          compared.append((indices, _run_group(request, indices, other, key)))
        compare_seconds += time.perf_counter() - start
    summary, grids = _outputs(out, config, request, results, compared, count)
    summary.update(seconds=round(seconds, 2), model=config.model)
    if request.compare:
      summary["compare"]["seconds"] = round(compare_seconds, 2)
    run.summary.update(summary)
    _write_report(out, config, request, summary, grids)
  return run.summary


def _outputs(out: Path, config, request: Request, results, compared,
             count: int) -> tuple[dict, dict]:
  """Images, progress, curves and metrics; returns (the summary, {"result": Grid or None,
  "progress": Grid or None}: the labelled grids the report shows)."""
  images = _combine([(i, t.images) for i, t in results], count)
  labels = [f"{request.content_names[s.content]} {s.label}".strip() for s in request.settings]
  grids = {"result": None}
  if count == 1:
    report.save_image(out / "stylized.png", images[0])
  else:
    for i, image in enumerate(images):
      report.save_image(out / f"stylized_{i}.png", image)
    grids["result"] = _report_grid(out, "grid.png", images, labels, request.columns)
  grids["progress"] = _save_progress(out, request, results, count)
  starts = _combine([(i, [_per_setting(t.start, j) for j in range(len(i))]) for i, t in results],
                    count)
  ends = _combine([(i, [_per_setting(t.end, j) for j in range(len(i))]) for i, t in results],
                  count)
  evaluations = _combine([(i, [sum(int(np.asarray(st.result.evaluations[j]).sum())
                                   for st in t.stages) for j in range(len(i))])
                          for i, t in results], count)
  curves = _combine([(i, [_curve(t, j) for j in range(len(i))]) for i, t in results], count)
  other_curves = _combine([(i, [_curve(t, j) for j in range(len(i))]) for i, t in compared],
                          count) if compared else None
  for i, setting in enumerate(request.settings):
    record = {"setting": i, "label": labels[i], "content": request.content_names[setting.content],
              "content_weight": setting.content_weight, "style_weight": setting.style_weight,
              "tv_weight": setting.tv_weight, "layer_weights": list(setting.layer_weights),
              "evaluations": evaluations[i], "start": starts[i], "end": ends[i]}
    if other_curves:
      record[f"{request.compare}_end_total_loss"] = other_curves[i][1][-1]
    runs.append_metrics(out, record)
  _save_curves(out, config, request, results, curves, other_curves)
  pick = lambda rows: rows[0] if count == 1 else {k: [r[k] for r in rows] for k in rows[0]}
  first_plan = request.plans[request.settings[0].content]
  summary = {"start": pick(starts), "end": pick(ends), "optimizer": config.optimizer,
             "iterations": int(sum(first_plan.iterations)),
             "evaluations": evaluations[0] if count == 1 else evaluations,
             "settings": count, "normalization": config.normalization,
             "sizes": [list(s) for s in first_plan.sizes]}
  ratio = [e["total_loss"] / s["total_loss"] for s, e in zip(starts, ends)]
  summary["end_over_start"] = ratio[0] if count == 1 else ratio
  if other_curves:
    other_end = [c[1][-1] for c in other_curves]
    summary["compare"] = {"optimizer": request.compare,
                          "end_total_loss": other_end[0] if count == 1 else other_end,
                          "evaluations": [c[0][-1] for c in other_curves][0] if count == 1
                          else [c[0][-1] for c in other_curves],
                          f"{config.optimizer}_lower": all(e["total_loss"] < o for e, o in
                                                           zip(ends, other_end))}
  return summary, grids


def _save_progress(out: Path, request: Request, results, count: int):
  """progress/<iteration>.png from iteration 0 (the start) every save_every iterations, and
  strip.png of them all (setting 0 when there are several); returns the strip's Grid or None."""
  by_iteration: dict = {}
  for indices, transfer in results:
    for iteration, images in transfer.snapshots:
      by_iteration.setdefault(iteration, []).append((indices, images))
  labels = [s.label for s in request.settings]
  strip, captions = [], []
  for iteration in sorted(by_iteration):
    parts = by_iteration[iteration]
    if sum(len(i) for i, _ in parts) != count:
      continue                                   # groups of other lengths: not every setting
    images = _combine([(i, list(x)) for i, x in parts], count)
    picture = images[0] if count == 1 else _grid(images, labels, request.columns)
    report.save_image(out / "progress" / f"{iteration}.png", picture)
    strip.append(images[0])
    captions.append(f"it {iteration}")
  return _report_grid(out, "strip.png", strip, captions, len(strip)) if strip else None


def _save_curves(out: Path, config, request: Request, results, curves, other_curves) -> None:
  series = {f"{config.optimizer}": curves[0]}
  if other_curves:
    series[request.compare] = other_curves[0]
  transfer = results[0][1]
  terms = {}
  for label, name in style.TERMS.items():
    ys = np.concatenate([-np.asarray(stage.result.terms[label][0]) for stage in transfer.stages]) \
        if label in transfer.stages[0].result.terms else np.array([])
    if ys.size and np.any(ys > 0):
      terms[name] = (list(range(len(ys))), list(ys))
  report.line_plots(out / "loss.png", [
      ("total loss (setting 0)", "objective evaluations", series, True),
      ("weighted terms (setting 0)", "iteration", terms, True)])


def _write_report(out: Path, config, request: Request, summary: dict, grids: dict) -> None:
  """report.html: inputs, result, progress and loss; labelled grids with their labels as text."""
  tiles = [np.asarray(Image.fromarray(report.to_uint8(im)).resize(
      style.fit(im.shape, 256)[::-1], Image.BILINEAR), np.float32) / 255
           for im in request.contents + request.styles]
  names = [f"content {n}" for n in request.content_names] + \
      [f"style {n} ({w:g})" for n, w in zip(request.style_names, request.blend)]
  inputs = _report_grid(out, "inputs.png", tiles, names, len(tiles))
  result = grids["result"] or "stylized.png"
  totals = f"total loss {_fmt(summary['start']['total_loss'])} -> " \
           f"{_fmt(summary['end']['total_loss'])}"
  sections = [("Inputs", [("content and style images (blend weights)", inputs, None)]),
              ("Result", [(f"{config.optimizer}, {summary['iterations']} iterations; {totals}",
                           result, None)])]
  if grids["progress"]:
    sections.append(("Progress", [(f"every {config.save_every} iterations (progress/)",
                                   grids["progress"], None)]))
  caption = "total loss against objective evaluations"
  if "compare" in summary:
    caption += f" ({config.optimizer} and {request.compare} for as many evaluations)"
  sections.append(("Loss", [(caption, "loss.png", None)]))
  report.write_report(out, f"style transfer: {config.model}", config, sections, summary=summary)


def _fmt(value) -> str:
  return f"{value:.4g}" if isinstance(value, float) else str(value)
