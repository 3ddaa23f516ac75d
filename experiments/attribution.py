"""Which pixels matter: any registered attribution method (cnn_vis.techniques.attribution: gradient,
saliency, deconvnet, guided backprop, SmoothGrad, Integrated Gradients, Grad-CAM, Guided Grad-CAM)
for every image of config.images and every unit of config.targets.

config.method names the method; its options are the config fields of the same names (e.g.
steps, target_gap, max_steps, baseline for integrated_gradients; base, noise, samples for
smoothgrad; layer for grad_cam). config.targets uses the unit grammar of cnn_vis.models.units
(`predicted`, `label`, `class:N`, `class:NAME`, `max:LAYER`, `LAYER:C[@y,x]`, separated by ';'),
"" = the model's default for the method (models.get_spec(name).defaults); the targets of one
layer share one compiled call.

Maps are shown as their method's `display` says (cnn_vis.report.images: magnitudes clipped at
the 99th percentile, signed reconstructions on their own symmetric scale, heat maps), each with a
colour bar stating its range; a conv unit's map is also cropped to the unit's receptive field
beside the image patch, as Zeiler & Fergus (Fig. 2) show projections.

Writes into the workdir, for image i and target t: maps/<i>_<name>_<t>.png (the map, pixel for
pixel), overlays/... (its magnitude blended over the image), panels/... (input | map | overlay,
with colour bars [| receptive field crops]; the report shows its tiles, tiles/panels/..., with
their labels as text), summary.png (every panel), attributions.npz (the raw
maps), metrics.jsonl (score of each target on each image, the colour range, and the method's own
figures such as IG's completeness gap and steps) and report.html; summary.json has the largest
completeness gap and step count.
"""
import dataclasses
import time
from typing import Any

import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.models import classes
from cnn_vis.models.units import split_units
from cnn_vis.report import images as pictures
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
  targets = config.targets or spec.default(config.method)  # "": the model's default units
  names, images = runs.images_from_config(config, spec, skip_unreadable=True)
  labels = classes.image_labels(names, spec.dataset) if "label" in split_units(targets) \
      else [-1] * len(names)
  apply_fn, variables, spec = loader.from_config(config)
  table = models.layer_table(apply_fn, variables, images.shape, spec.class_names)
  units = models.parse_units(targets, table)
  options.check(table)
  by_layer = targets_by_layer(units, table, labels, config.spatial, int(config.unit_chunk))
  return Request(method, options, apply_fn, variables, spec, names, images, by_layer)


def describe(layer, units: G.Units, u: int, n: int, spec) -> str:
  """What map (u, n) is of, e.g. 'class 281 tabby' or 'conv5:17@6,6'."""
  channel, y, x = (int(np.asarray(v)[u, n]) for v in units)
  if layer is None:
    return f"class {channel} {spec.class_names[channel]}"
  return f"{layer}:{channel}" + (f"@{y},{x}" if y >= 0 else "")


def receptive_field_crop(spec_fn, layer, units: G.Units, u: int, n: int, size: int):
  """(top, left, bottom, right) of the input a conv unit (u, n) sees, or None (logits, or a unit
  without one position)."""
  if layer is None or not isinstance(spec_fn, models.ModelFn):
    return None
  y, x = int(np.asarray(units.y)[u, n]), int(np.asarray(units.x)[u, n])
  if y < 0 or layer not in spec_fn.layer_names:
    return None
  return spec_fn.receptive_fields(size)[layer].box(y, x, size, size)


def panel(image, picture: pictures.Picture, display: str, alpha: float, box=None):
  """(the tiles: input | map with its colour bar | overlay with its colour bar [| the unit's
  receptive field: projection, image patch], their labels, the overlay alone): Fig. 2 of Zeiler
  & Fergus shows each projection beside the image patch it came from, both cropped to the unit's
  receptive field."""
  colormap = "jet" if display == "heatmap" else "inferno"
  overlay_scale = (picture.scale if display != "signed" else
                   pictures.magnitude_scale(picture.values))
  overlay_scale = dataclasses.replace(overlay_scale, colormap=colormap)
  blended = pictures.overlay(image, picture.values, alpha, colormap, overlay_scale)
  tiles = [image, pictures.with_colorbar(picture.image, picture.scale),
           pictures.with_colorbar(blended, overlay_scale)]
  labels = ["input", "map", "overlay"]
  if box is not None:
    top, left, bottom, right = box
    height = image.shape[0]                        # the crops enlarged to the image's height
    width = max(round(height * (right - left) / (bottom - top)), 1)
    zoom = lambda a: np.stack([pictures.resize_map(a[..., c], height, width, nearest=True)
                               for c in range(3)], axis=-1)
    tiles += [zoom(picture.image[top:bottom, left:right]), zoom(image[top:bottom, left:right])]
    labels += [f"field {bottom - top}x{right - left} px", "image patch"]
  return tiles, labels, blended


def save_outputs(workdir, stem: str, image, picture: pictures.Picture, display: str,
                 alpha: float, box=None):
  """maps/ (the picture alone, pixel for pixel), overlays/, panels/ PNGs of one map (and the
  panel's tiles under tiles/panels/); returns (panel array, the Grid the report shows)."""
  tiles, labels, blended = panel(image, picture, display, alpha, box)
  report.save_image(workdir / "maps" / f"{stem}.png", picture.image)
  report.save_image(workdir / "overlays" / f"{stem}.png", blended)
  return report.labelled_grid(workdir, f"panels/{stem}.png", tiles, labels, len(tiles))


def caption(name: str, method: str, what: str, record: dict, picture: pictures.Picture) -> str:
  """What a panel shows, its colour range, and the method's own figures (IG's completeness)."""
  text = (f"{name}: {method} of {what} (score {record['score']:.3g}); colours span "
          f"{pictures.format_value(picture.scale.lo)} .. {pictures.format_value(picture.scale.hi)}")
  if not np.any(picture.values):
    text += "; all-zero map: the unit is inactive or saturated (e.g. a ReLU6 at 6)"
  if "completeness_gap" in record:
    text += (f"; {record['steps']:.0f} steps: sum of attributions {record['attribution_sum']:.3g}"
             f" vs S(x)-S(x') {record['score'] - record['baseline_score']:.3g} (gap "
             f"{record['completeness_gap']:.1%})")
  return text


# Method figures summarised over all maps in summary.json (their maximum), and their names there.
SUMMARISED_EXTRAS = {"completeness_gap": "max_completeness_gap", "steps": "steps_used"}


def run(config, workdir):
  request = parse(config)
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    method, spec = request.method, request.spec
    start = time.perf_counter()
    sections, panels, arrays, worst = [], [], {}, {}
    for target, texts in request.targets:
      maps = method.fn(request.apply_fn, request.variables, request.images, target, request.options)
      values, scores = np.asarray(maps.values), np.asarray(maps.scores)
      extras = {k: np.asarray(v) for k, v in maps.extras.items()}
      for k, name in SUMMARISED_EXTRAS.items():
        if k in extras:
          worst[name] = max(worst.get(name, -np.inf), float(extras[k].max()))
      for u, text in enumerate(texts):
        arrays[runs.safe_name(text)] = values[u]
        items = []
        for n, (name, image) in enumerate(zip(request.names, request.images)):
          what = describe(target.layer, maps.units, u, n, spec)
          picture = pictures.attribution_picture(values[u, n], method.display)
          stem = f"{n:03d}_{runs.safe_name(name)}_{runs.safe_name(text)}"
          box = receptive_field_crop(request.apply_fn, target.layer, maps.units, u, n,
                                     image.shape[0])
          tiles, grid = save_outputs(workdir, stem, image, picture, method.display,
                                     config.overlay_alpha, box)
          panels.append(tiles)
          record = {"image": name, "target": text, "unit": what, "score": float(scores[u, n]),
                    "color_range": [picture.scale.lo, picture.scale.hi],
                    **{k: float(v[u, n]) for k, v in extras.items()}}
          runs.append_metrics(workdir, record)
          items.append((caption(name, method.name, what, record, picture), grid, None))
        sections.append((f"{method.name}: {text}", items))
    seconds = time.perf_counter() - start
    np.savez_compressed(workdir / "attributions.npz", **arrays)
    report.save_image(workdir / "summary.png", report.image_grid(panels, ncols=1))
    run.summary.update({"method": method.name, "model": config.model,
                        "images": len(request.names),
                        "targets": str(config.targets or spec.default(config.method)),
                        "seconds": round(seconds, 2),
                        **worst})
    report.write_report(workdir, f"{method.name}: {config.model}", config, sections,
                        summary=run.summary)
  return run.summary
