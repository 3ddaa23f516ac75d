"""Which pixels matter: any registered attribution method (cnn_vis.techniques.attribution: gradient,
saliency, deconvnet, guided backprop, SmoothGrad, Integrated Gradients, Grad-CAM, Guided Grad-CAM)
for every image of config.images and every unit of config.targets.

config.method names the method; its options are the config fields of the same names (e.g.
steps, baseline for integrated_gradients; base, noise, samples for smoothgrad; layer for
grad_cam). config.targets uses the unit grammar of cnn_vis.models.units (`predicted`, `label`,
`class:N`, `class:NAME`, `max:LAYER`, `LAYER:C[@y,x]`, separated by ';'); the targets of one
layer share one compiled call.

Writes into the workdir, for image i and target t: maps/<i>_<name>_<t>.png (the map),
overlays/... (its heatmap blended over the image), panels/... (input | map | overlay),
summary.png (every panel), attributions.npz (the raw maps), metrics.jsonl (score of each target
on each image, and the method's own figures such as IG's completeness gap) and report.html.
"""
import dataclasses
import time
from typing import Any

import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.models import classes
from cnn_vis.models.units import split_units
from cnn_vis.techniques import attribution
from cnn_vis.techniques import gradients as G


@dataclasses.dataclass(frozen=True)
class Request:
  """A parsed and validated attribution run: the method, its options, the model, the images and
  one (Target, target texts) per layer."""
  method: attribution.Method
  options: Any
  apply_fn: models.ModelFn
  variables: Any
  spec: models.ModelSpec
  names: list
  images: np.ndarray
  targets: list


def targets_by_layer(units, table: models.LayerTable, labels, spatial: str,
                     unit_chunk: int) -> list[tuple[attribution.Target, tuple[str, ...]]]:
  """Units grouped by layer (None: the logits) in first-seen order, as Targets with Units per
  image (U, N); `label` becomes each image's class (labels: one per image)."""
  by_layer: dict = {}
  n = len(labels)
  for unit in units:
    layer = None if unit.layer == table.logits else unit.layer
    if unit.label:
      unit_codes = (list(labels), [-1] * n, [-1] * n)
    else:
      code = lambda v: -1 if v is None else v
      unit_codes = ([code(unit.channel)] * n, [code(unit.y)] * n, [code(unit.x)] * n)
    by_layer.setdefault(layer, []).append((unit_codes, str(unit)))
  return [(attribution.Target(layer, G.Units(*(np.asarray(v, np.int32)
                                                 for v in zip(*[u for u, _ in items]))),
                              spatial, unit_chunk), tuple(t for _, t in items))
          for layer, items in by_layer.items()]


def parse(config) -> Request:
  """Everything the run needs, validated; nothing is written."""
  method = attribution.get(config.method)
  spec = models.get_spec(config.model)
  options = method.options.from_config(config, spec)
  names, images = runs.images_from_config(config, spec, skip_unreadable=True)
  labels = classes.image_labels(names, spec.dataset) if "label" in split_units(config.targets) \
      else [-1] * len(names)
  apply_fn, variables, spec = loader.from_config(config)
  table = models.layer_table(apply_fn, variables, images.shape, spec.class_names)
  units = models.parse_units(config.targets, table)
  options.check(table)
  targets = targets_by_layer(units, table, labels, config.spatial, int(config.unit_chunk))
  return Request(method, options, apply_fn, variables, spec, names, images, targets)


def describe(layer, units: G.Units, u: int, n: int, spec) -> str:
  """What map (u, n) is of, e.g. 'class 281 tabby' or 'conv5:17@6,6'."""
  channel, y, x = (int(np.asarray(v)[u, n]) for v in units)
  if layer is None:
    return f"class {channel} {spec.class_names[channel]}"
  return f"{layer}:{channel}" + (f"@{y},{x}" if y >= 0 else "")


def save_outputs(workdir, stem: str, image, picture, values_2d, alpha: float):
  """maps/, overlays/, panels/ PNGs of one map; returns (panel array, relative panel path)."""
  blended = report.overlay(image, values_2d, alpha)
  report.save_image(workdir / "maps" / f"{stem}.png", picture)
  report.save_image(workdir / "overlays" / f"{stem}.png", blended)
  tiles = report.image_grid([image, picture, blended], ncols=3, labels=["input", "map", "overlay"])
  rel = f"panels/{stem}.png"
  report.save_image(workdir / rel, tiles)
  return tiles, rel


def run(config, workdir):
  request = parse(config)
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    method, spec = request.method, request.spec
    start = time.perf_counter()
    sections, panels, arrays = [], [], {}
    for target, texts in request.targets:
      maps = method.fn(request.apply_fn, request.variables, request.images, target, request.options)
      values, scores = np.asarray(maps.values), np.asarray(maps.scores)
      extras = {k: np.asarray(v) for k, v in maps.extras.items()}
      for u, text in enumerate(texts):
        arrays[runs.safe_name(text)] = values[u]
        items = []
        for n, (name, image) in enumerate(zip(request.names, request.images)):
          what = describe(target.layer, maps.units, u, n, spec)
          picture, values_2d = report.attribution_picture(values[u, n], method.display)
          stem = f"{n:03d}_{runs.safe_name(name)}_{runs.safe_name(text)}"
          tiles, rel = save_outputs(workdir, stem, image, picture, values_2d, config.overlay_alpha)
          panels.append(tiles)
          record = {"image": name, "target": text, "unit": what, "score": float(scores[u, n]),
                    **{k: float(v[u, n]) for k, v in extras.items()}}
          caption = f"{name}: {method.name} of {what} (score {scores[u, n]:.3g})"
          if not np.any(values_2d):
            caption += "; all-zero map: the unit is inactive or saturated (e.g. a ReLU6 at 6)"
          if "completeness_gap" in record:
            caption += (f"; sum of attributions {record['attribution_sum']:.3g} vs S(x)-S(x') "
                        f"{record['score'] - record['baseline_score']:.3g}")
          runs.append_metrics(workdir, record)
          items.append((caption, rel, None))
        sections.append((f"{method.name}: {text}", items))
    seconds = time.perf_counter() - start
    np.savez_compressed(workdir / "attributions.npz", **arrays)
    report.save_image(workdir / "summary.png", report.image_grid(panels, ncols=1))
    run.summary.update({"method": method.name, "model": config.model,
                        "images": len(request.names), "targets": str(config.targets),
                        "seconds": round(seconds, 2)})
    report.write_report(workdir, f"{method.name}: {config.model}", config, sections,
                        summary=run.summary)
  return run.summary
