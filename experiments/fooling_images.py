"""High-confidence fooling images (Nguyen, Yosinski & Clune 2015; cnn_vis.techniques.fooling):
from noise by gradient ascent (config.method = "gradient"), or as CPPN patterns evolved by an
evolution strategy ("cppn"), one image per class of config.classes.

Writes W/fooling/<class index>.png (8-bit, the model's input size) and W/fooling.jsonl, one line
per class: {"class", "name", "prob"} with prob measured on the saved PNG (and top1; with
config.transfer_model the second network's transfer_prob and transfer_top1 on the same file,
resized to its input size). Several gradient settings (a tuple of decay values) write one
W/fooling/<setting label>/ folder each with its own fooling.jsonl. Also fooling.png (the images
with their probabilities), progress.png (the class's log-probability per step or generation),
summary.json (classes, confident: how many reach Nguyen et al.'s 99.6%, min_prob, mean_prob,
transfer figures) and report.html.
"""
import dataclasses

import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.errors import check, choose
from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import fooling

from experiments import _adversarial as X
from experiments import _optimize
from experiments import class_model as class_model_experiment

METHODS = ("gradient", "cppn")


@dataclasses.dataclass
class Request:
  method: str
  classes: list
  decay: tuple
  labels: list        # one per setting, None for a single setting
  size: int


def cppn_settings(config) -> dict:
  """fooling.evolve's CPPN and strategy keywords from the config."""
  return dict(strategy=config.strategy, population=config.population, std=config.es_std,
              lr=config.es_lr, hidden=tuple(config.cppn_hidden),
              weight_std=config.cppn_weight_std, scale=config.cppn_scale)


def parse(config, apply_fn, variables, spec) -> Request:
  choose("method", config.method, METHODS)
  size = spec.input_size
  decay = _optimize.values(config, "decay", 0.0)
  check(config.method == "gradient" or len(decay) == 1,
        "decay sweeps are for method gradient; the cppn method has no decay")
  check(all(0 <= d < 1 for d in decay), f"decay must be in [0, 1), got {decay}")
  check(config.steps >= 1, f"steps must be >= 1, got {config.steps}")
  if config.method == "cppn":
    fooling.check_evolution(config.strategy, config.population, config.generations,
                            config.es_std, config.es_lr, config.cppn_hidden)
  X.check_transfer_model(config.transfer_model, spec)
  if str(config.classes) == "screen":   # last: it evolves for minutes
    classes = [int(c) for c in fooling.screen_classes(
        apply_fn, variables, size=size, key=X.key(config), count=config.screen_count,
        generations=config.screen_generations, **cppn_settings(config))]
  else:
    table = models.layer_table(apply_fn, variables, (1, size, size, 3), spec.class_names)
    classes = class_model_experiment.parse_classes(config.classes, table)
  labels = None if len(decay) == 1 else [runs.safe_name(f"decay{d:g}") for d in decay]
  return Request(config.method, classes, decay, labels, size)


def run_gradient(config, request: Request, apply_fn, variables):
  """(images (S, C, H, W, 3), log p per step (S, C, steps)) for every decay setting."""
  items, sweep, _ = _optimize.product(request.classes, {"decay": request.decay})  # class-major
  result = fooling.gradient_ascent(
      apply_fn, variables, np.array(items), size=request.size, center=apply_fn.mean_pixel,
      key=X.key(config), decay=sweep["decay"], steps=config.steps, lr=config.lr,
      optimizer=config.optimizer, init_std=config.init_std, chunk=_optimize.chunk(config),
      loop=config.loop)
  shape = (len(request.classes), len(request.decay))
  images = np.asarray(result.images[:, 0]).reshape(shape + result.images.shape[2:])
  values = np.asarray(result.values).reshape(shape + (-1,))
  return images.swapaxes(0, 1), values.swapaxes(0, 1)


def run_cppn(config, request: Request, apply_fn, variables):
  evolution = fooling.evolve(
      apply_fn, variables, np.array(request.classes), size=request.size, key=X.key(config),
      generations=config.generations, **cppn_settings(config))
  return np.asarray(evolution.images)[None], np.asarray(evolution.best_log_prob)[None]


def run(config, workdir):
  apply_fn, variables, spec = loader.from_config(config)
  request = parse(config, apply_fn, variables, spec)
  with runs.Run(config, workdir) as run:
    out = run.dir
    with run.stage(request.method):
      runner = run_gradient if request.method == "gradient" else run_cppn
      images, progress = runner(config, request, apply_fn, variables)
    classes = np.asarray(request.classes)
    per_setting, items = [], []
    for s in range(len(images)):
      label = None if request.labels is None else request.labels[s]
      folder, jsonl = X.output_paths(out, "fooling", label)
      paths = X.save_images(folder, [str(c) for c in classes], A.quantize(images[s]))
      top1, prob = X.class_probabilities(apply_fn, variables, X.read_saved(paths), classes,
                                         int(config.batch_size))
      records = [{"class": int(c), "name": spec.class_names[c], "prob": float(p),
                  "top1": int(t)} for c, p, t in zip(classes, prob, top1)]
      summary = {"confident": int(np.sum(prob >= fooling.CONFIDENCE)),
                 "min_prob": float(prob.min()), "mean_prob": float(prob.mean())}
      if config.transfer_model:
        other = X.transfer(config.transfer_model, paths, classes, int(config.batch_size))
        for record, p, t in zip(records, other["prob"], other["top1"]):
          record.update(transfer_prob=float(p), transfer_top1=int(t))
        summary.update(transfer_mean_prob=float(np.mean(other["prob"])),
                       transfer_top1=int(np.sum(other["top1"] == classes)))
      X.write_jsonl(jsonl, records)
      per_setting.append(summary)
      name = "fooling" if label is None else f"fooling_{label}"
      tiles = [f"{spec.class_names[c][:14]} {p:.4f}" for c, p in zip(classes, prob)]
      grid = _optimize.save_grid(out, name, X.read_saved(paths), tiles, ncols=5)
      items.append((f"{'' if label is None else label + ': '}each image with the probability of "
                    f"its class on the saved PNG ({summary['confident']} of {len(classes)} >= "
                    f"{fooling.CONFIDENCE:.1%})", grid, None))
    steps = np.arange(1, progress.shape[-1] + 1)
    series = {f"{spec.class_names[c][:16]}{'' if request.labels is None else ' ' + l}":
              (steps, np.exp(progress[s, i])) for s, l in enumerate(request.labels or [""])
              for i, c in enumerate(classes)}
    axis = "step" if request.method == "gradient" else "generation (best so far)"
    report.line_plots(out / "progress.png", [("p(class)", axis, series, False)], width=7.0)
    items.append((f"the class probability per {axis}", "progress.png", None))
    run.summary.update({"model": config.model, "method": request.method,
                        "classes": [int(c) for c in classes],
                        **X.combine(per_setting, request.labels or [])})
    report.write_report(out, f"fooling images ({request.method}): {config.model}", config,
                        [("Fooling images (Nguyen et al. 2015)", items)], summary=run.summary)
  return run.summary
