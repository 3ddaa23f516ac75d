"""Every channel of a layer for each image, as heat maps on one colour scale (Yosinski et al. 2015,
§2, the deep-visualization toolbox's main view: docs/papers.md §5), the strongest channels
marked and, when config.patches_run names a top-patches run of the same model and layer, each
tile linking to that unit's top patches (cnn_vis.techniques.activation_maps).

Reads config.images or config.dataset / config.split (at most max_images of them). Writes, per
image i: activations_<i>_<name>.png (the grid: channel c at row c // ncols, column c % ncols),
activations_<i>_<name>_colorbar.png (the same grid with its colour bar and range, as the report
shows it), activations_<i>_<name>.html (the grid as an image map: each tile links to the unit's
row of top patches), metrics.jsonl (the strongest channels and their peaks), summary.json and
report.html.
"""
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from cnn_vis import models, report, runs
from cnn_vis.data import stream as stream_lib
from cnn_vis.errors import check
from cnn_vis.report import draw, linked
from cnn_vis.report import images as pictures
from cnn_vis.techniques import activation_maps

from experiments import _dataset


@dataclasses.dataclass(frozen=True)
class Request:
  apply_fn: models.ModelFn
  variables: Any
  spec: models.ModelSpec
  stream: stream_lib.Stream
  layer: str
  count: int
  patches_run: Path | None


def check_patches_run(path: str, model: str, layer: str) -> Path:
  """The top-patches workdir whose unit pages the tiles link to; it must be a finished run of
  the same model that kept top patches of `layer` with unit pages."""
  run = Path(path)
  check((run / "top_patches.jsonl").is_file() and (run / "summary.json").is_file(),
        f"patches_run {path!r} is not a top-patches run (no top_patches.jsonl and summary.json); "
        "give the workdir of configs/girshick14_top_patches.py")
  summary = json.loads((run / "summary.json").read_text())
  check(summary.get("model") == model, f"patches_run {path!r} is a run of model "
                                       f"{summary.get('model')}, not {model}")
  check(layer in summary.get("layers", []), f"patches_run {path!r} has top patches of "
                                            f"{', '.join(summary.get('layers', []))}, not {layer}")
  check((run / "units").is_dir(), f"patches_run {path!r} has no unit pages (units/); rerun it "
                                  "with unit_pages=True")
  return run


def parse(config) -> Request:
  check(isinstance(config.mark, int) and config.mark >= 0,
        f"mark must be an integer >= 0, got {config.mark!r}")
  check(isinstance(config.max_images, int) and config.max_images >= 1,
        f"max_images must be an integer >= 1, got {config.max_images!r}")
  check(isinstance(config.tile, int) and config.tile >= 4,
        f"tile must be an integer >= 4, got {config.tile!r}")
  stream, (apply_fn, variables, spec, table) = _dataset.stream_and_network(config)
  layer = models.check_layer(config.layer or spec.default("activations"), table)
  patches_run = (check_patches_run(config.patches_run, config.model, layer)
                 if config.patches_run else None)
  count = min(stream.num_examples, config.max_images)
  return Request(apply_fn, variables, spec, stream, layer, count, patches_run)


def with_scale(grid, low: float, high: float) -> np.ndarray:
  """The grid of maps with the colour bar of its one scale (low .. high, inferno) beside it."""
  return pictures.with_colorbar(grid, pictures.Scale(low, high, "inferno"))


def run(config, workdir):
  request = parse(config)
  final = Path(workdir).resolve()
  with runs.Run(config, workdir) as run:
    out = run.dir
    images = request.stream.fetch(np.arange(request.count))
    names = request.stream.names(np.arange(request.count))
    maps = activation_maps.channel_maps(request.apply_fn, request.variables, images,
                                        request.layer)
    channels = maps.shape[1]
    ncols = math.ceil(math.sqrt(channels))
    tile = max(config.tile, maps.shape[2])
    sections = []
    for i, (name, image, image_maps) in enumerate(zip(names, images, maps)):
      low, high = activation_maps.shared_scale(image_maps)
      top = activation_maps.strongest(image_maps, config.mark)
      marked = {int(c): rank + 1 for rank, c in enumerate(top)}
      grid, rects = draw.heatmap_grid(image_maps, low, high, ncols=ncols, tile=tile,
                                      marked=marked)
      stem = f"activations_{i:03d}_{runs.safe_name(name)}"
      report.save_image(out / f"{stem}.png", grid)
      report.save_image(out / f"{stem}_colorbar.png", with_scale(grid, low, high))
      report.save_image(out / f"{stem}_input.png", image)
      peaks = image_maps.reshape(channels, -1).max(axis=1)
      strongest = [[int(c), float(peaks[c])] for c in top]
      runs.append_metrics(out, {"image": name, "layer": request.layer, "low": low, "high": high,
                                "strongest": strongest})
      scale = (f"one colour scale for all {channels} channels: {low:.3g} (dark) to "
               f"{high:.3g} (bright), inferno")
      items = [(f"{name}: input", f"{stem}_input.png", None),
               (f"{name}: {request.layer}, channel c at row c // {ncols}, column c % {ncols}; "
                f"{scale}; the {len(top)} strongest channels outlined in red with their rank",
                f"{stem}_colorbar.png", None)]
      if request.patches_run is not None:
        unit = lambda c: os.path.relpath(request.patches_run.resolve() / "units" / (
            f"{runs.safe_name(f'{request.layer}:{c}')}.png"), final)
        links = [(rect, unit(c), f"{request.layer}:{c}") for c, rect in enumerate(rects)]
        linked.image_map_page(out / f"{stem}.html", f"{name}: {request.layer}", f"{stem}.png",
                              links, note=f"{scale}; click a tile for that unit's top patches")
        items.append((f"{name}: the same grid, each tile linking to its unit's top patches",
                      None, f"open {stem}.html"))
        items += [(f"#{rank} {request.layer}:{c} (peak {peaks[c]:.3g}): its top patches",
                   unit(c), None) for c, rank in marked.items()]
      sections.append((f"{name}", items))
    run.summary.update({"model": config.model, "weights": _dataset.weights(config),
                        "layer": request.layer, "channels": channels, "images": request.count,
                        "map_size": list(maps.shape[2:]),
                        "patches_run": str(request.patches_run or "")})
    report.write_report(out, f"activations: {config.model} {request.layer}", config, sections,
                        summary=run.summary)
  return run.summary
