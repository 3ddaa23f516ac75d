"""Top-k patches of every unit of one or more layers over a dataset, with receptive fields and
deconvnet (or guided-backprop) projections (cnn_vis.techniques.patches; docs/papers.md §11, §2,
§5, §25).

Reads config.images (a folder, paths, skimage:NAME) or config.dataset / config.split. Writes:
- top_patches.jsonl: one line per unit, {"unit": "layer:channel", "patches": [{"source", "y",
  "x", "activation", "box": [top, left, bottom, right]}, ...]} strongest first; source is the
  image file name or "split:index"; (y, x) the position in the layer's map; box the receptive
  field in model-input pixels, clipped to the image (bottom and right exclusive);
- top_patches_<layer>.png: the first show_units units, a row each: every patch (its box drawn,
  with context) beside its projection restricted to the same box (with the colour bar of its
  symmetric range), activation under each (the report shows the tiles,
  tiles/top_patches_<layer>/, with the activations as text);
- units/<layer>_<channel>.png: the same row for every unit (config.unit_pages);
- summary.json ("receptive_field": size, stride, offset per layer; images, images/s, ...) and
  report.html.
"""
import dataclasses
import json
from typing import Any

import numpy as np

from cnn_vis import models, report, runs
from cnn_vis.data import stream as stream_lib
from cnn_vis.errors import check, choose
from cnn_vis.models.geometry import ReceptiveField
from cnn_vis.models.units import split_units
from cnn_vis.report import draw
from cnn_vis.report import images as pictures
from cnn_vis.techniques import attribution, patches
from cnn_vis.techniques import gradients as G

from experiments import _dataset

CACHE_BYTES = 512 * 2 ** 20   # images read back for the pictures kept in host memory


@dataclasses.dataclass(frozen=True)
class Request:
  apply_fn: models.ModelFn
  variables: Any
  spec: models.ModelSpec
  stream: stream_lib.Stream
  layers: tuple[patches.LayerUnits, ...]
  selection: patches.Selection
  projection: str
  batch_size: int


def field_of(layer: str, fields: dict, size: int) -> ReceptiveField:
  """The layer's receptive field; the logits (not in the geometry) see the whole image."""
  return fields.get(layer) or ReceptiveField(layer, size, size, 0, 1, 1)


def layer_units(config, table: models.LayerTable, spec) -> list[tuple[str, G.Units]]:
  """(layer, Units (U,)) in first-seen order: config.units, else every channel of config.layers
  (default: the model's "patches" layer)."""
  if config.units:
    by_layer: dict = {}
    for unit in models.parse_units(config.units, table):
      check(unit.channel is not None and not unit.label,
            f"top patches need units with a channel (LAYER:C, LAYER:A-B, LAYER:C@y,x), not {unit}")
      by_layer.setdefault(unit.layer, []).append(unit)
    return [(layer, G.Units.of(units)) for layer, units in by_layer.items()]
  layers = split_units(config.layers) or split_units(spec.default("patches"))
  out = []
  for layer in layers:
    models.check_layer(layer, table)
    out.append((layer, G.Units.make(np.arange(table.shapes[layer][-1]))))
  return out


def parse(config) -> Request:
  """Everything the run needs, validated; nothing is written."""
  selection = patches.Selection(k=config.k, per_image=config.per_image,
                                overlap=float(config.overlap))
  batch_size = _dataset.check_batch_size(config)
  if config.projection:
    choose("projection", config.projection, attribution.names())
  check(isinstance(config.show_units, int) and config.show_units >= 0,
        f"show_units must be an integer >= 0, got {config.show_units!r}")
  check(isinstance(config.tile, int) and config.tile >= 8, f"tile must be >= 8 px, got "
                                                           f"{config.tile!r}")
  check(config.context >= 0, f"context must be >= 0, got {config.context}")
  stream, (apply_fn, variables, spec, table) = _dataset.stream_and_network(config)
  size = spec.input_size
  fields = apply_fn.receptive_fields(size)
  layers = tuple(patches.LayerUnits(layer, units, field_of(layer, fields, size), size)
                 for layer, units in layer_units(config, table, spec))
  return Request(apply_fn, variables, spec, stream, layers, selection, config.projection,
                 batch_size)


class ImageCache:
  """The stream's images by id, read back (all missing ones of a request at once) and kept
  up to `budget` bytes, the oldest dropped first: each image is decoded about once when the
  patches' images fit (the 100 samples: 62 MB at 227 px; CIFAR-10: 12 KB each)."""

  def __init__(self, stream, budget: int = CACHE_BYTES):
    self.stream, self.budget, self.images = stream, budget, {}

  def get(self, ids) -> dict[int, np.ndarray]:
    wanted = list(dict.fromkeys(int(i) for i in ids))
    missing = sorted(set(wanted) - set(self.images))
    if missing:
      self.images.update(zip(missing, self.stream.fetch(missing)))
    out = {i: self.images[i] for i in wanted}
    size = sum(image.nbytes for image in self.images.values())
    for i in list(self.images):            # oldest first (dicts keep insertion order)
      if size <= self.budget:
        break
      if i not in out:
        size -= self.images.pop(i).nbytes
    return out


def projection_tile(crop, tile: int) -> np.ndarray:
  """A projection crop as deconvnet shows it (grey = 0, draw.signed_picture) at tile x tile px,
  with the colour bar of its symmetric range beside it."""
  s = draw.signed_range(crop)
  return pictures.with_colorbar(draw.resize(draw.signed_picture(crop), tile, tile),
                                pictures.Scale(-s, s, "gray"))


def unit_row(unit_patches, images, projections, tile: int, context: float, k: int,
             channel: int):
  """(tiles, labels) of one unit: each patch, beside its projection when `projections` is a
  list (blank where it has none), then blank tiles up to k."""
  tiles, labels = [], []
  blank = np.ones((tile, tile, 3), np.float32)
  for j in range(k):
    if j < len(unit_patches):
      patch = unit_patches[j]
      tiles.append(draw.patch_tile(images[patch["id"]], patch["box"], tile, context))
      value = f"{patch['activation']:.3g}"
      labels.append(f"{channel}: {value}" if j == 0 else value)
    else:
      tiles.append(blank)
      labels.append("")
    if projections is not None:
      if j < len(projections):
        crop = draw.crop_with_context(projections[j], unit_patches[j]["box"], context,
                                      fill=0.0)[0]
        tiles.append(projection_tile(crop, tile))
      else:
        tiles.append(blank)
      labels.append("")
  return tiles, labels


def _projections(request: Request, layer: patches.LayerUnits, lists, shown, cache) -> dict:
  """{unit index: (k, H, W, 3) projections of its patches} for the shown units."""
  jobs = [(u, p) for u in shown for p in lists[u]]
  if not request.projection or not jobs:
    return {}
  images = cache.get([p["id"] for _, p in jobs])
  channels = [int(np.asarray(layer.units.channel)[u]) for u, _ in jobs]
  ys, xs = [p["y"] for _, p in jobs], [p["x"] for _, p in jobs]  # fc layers ignore them
  values = patches.projections(request.apply_fn, request.variables,
                               np.stack([images[p["id"]] for _, p in jobs]), layer.layer,
                               channels, ys, xs, request.projection)
  out: dict = {}
  for (u, _), value in zip(jobs, values):
    out.setdefault(u, []).append(value)
  return out


def _pictures(config, request: Request, layer: patches.LayerUnits, lists, out):
  """Writes the layer grid (first show_units units) and, with unit_pages, one row per unit;
  returns the layer grid's Grid (labels as text; report.labelled_grid) or None."""
  k, tile, context = request.selection.k, config.tile, float(config.context)
  names = layer.names()
  channels = np.asarray(layer.units.channel)
  shown = list(range(min(config.show_units, layer.num_units)))
  cache = ImageCache(request.stream)
  projected = _projections(request, layer, lists, shown, cache)
  rows = list(range(layer.num_units)) if config.unit_pages else shown
  grid_tiles, grid_labels = [], []
  per_read = 64   # units whose images are asked for at once
  for start in range(0, len(rows), per_read):
    group = rows[start:start + per_read]
    images = cache.get([p["id"] for u in group for p in lists[u]])
    for u in group:
      # units beyond show_units are not projected: blank tiles keep the layout
      proj = projected.get(u, []) if request.projection else None
      tiles, labels = unit_row(lists[u], images, proj, tile, context, k, int(channels[u]))
      if config.unit_pages:
        report.save_image(out / "units" / f"{runs.safe_name(names[u])}.png",
                          report.image_grid(tiles, ncols=len(tiles), labels=labels))
      if u in shown:
        grid_tiles += tiles
        grid_labels += labels
  if not grid_tiles:
    return None
  rel = f"top_patches_{runs.safe_name(layer.layer)}.png"
  per_row = k * (2 if request.projection else 1)
  return report.labelled_grid(out, rel, grid_tiles, grid_labels, per_row)[1]


def run(config, workdir):
  request = parse(config)
  with runs.Run(config, workdir) as run:
    out = run.dir
    with run.stage("pass"):
      tops, result = patches.top_patches(
          request.apply_fn, request.variables, request.stream.batches(request.batch_size),
          request.layers, request.selection, total=request.stream.num_examples)
    lists = {r.layer: patches.patch_lists(tops[r.layer], r) for r in request.layers}
    ids = sorted({p["id"] for per_layer in lists.values() for unit in per_layer for p in unit})
    sources = dict(zip(ids, request.stream.names(ids)))
    lines = []
    for r in request.layers:
      for name, unit in zip(r.names(), lists[r.layer]):
        lines.append(json.dumps({"unit": name, "patches": [
            {"source": sources[p["id"]], "y": p["y"], "x": p["x"],
             "activation": p["activation"], "box": p["box"]} for p in unit]}))
    runs.write_text(out / "top_patches.jsonl", "".join(line + "\n" for line in lines))
    sections = []
    with run.stage("pictures"):
      for r in request.layers:
        grid = _pictures(config, request, r, lists[r.layer], out)
        field = r.field
        caption = (f"{r.layer}: the first {min(config.show_units, r.num_units)} of "
                   f"{r.num_units} units, top {request.selection.k} each over "
                   f"{result.images} images (activation under each patch); receptive field "
                   f"{field.size} px, stride {field.stride}, offset {field.offset}, boxes "
                   f"clipped to the {r.image_size} px input and drawn in red with "
                   f"{config.context:g} x their size as context"
                   + (f"; beside each patch its {request.projection} projection in that box"
                      if request.projection else ""))
        if grid:
          sections.append((f"Top patches: {r.layer}", [(caption, grid, None)]))
    fields = [r.field.as_dict() for r in request.layers]
    run.summary.update({
        "model": config.model, "weights": _dataset.weights(config),
        "data": request.stream.description, "images": result.images,
        "layers": [r.layer for r in request.layers],
        "units": sum(r.num_units for r in request.layers), "k": request.selection.k,
        "per_image": request.selection.per_image,
        "receptive_field": fields[0] if len(fields) == 1 else fields,
        "pass_seconds": round(result.seconds, 2),
        "images_per_second": round(result.images_per_second, 1)})
    report.write_report(out, f"top patches: {config.model}", config, sections,
                        summary={k: v for k, v in run.summary.items() if k != "receptive_field"})
  return run.summary
