"""A model's first-layer filters as an image grid (Krizhevsky et al. 2012, Fig. 3; docs/papers.md
§1), split into the groups of a two-stream AlexNet, and a deeper layer's filters as their mean
over input channels (cnn_vis.techniques.filters).

Writes filters.png (the first layer; with groups=2 the first half of the filters above the
second), filters_<layer>.png (the deeper layer, labelled as a mean over its inputs), filters.npz
(the raw kernels, HWIO), summary.json and report.html. Needs no data.
"""
import dataclasses

import numpy as np

from cnn_vis import loader, report, runs
from cnn_vis.errors import UserError, check, choose
from cnn_vis.report import draw
from cnn_vis.techniques import filters

from experiments import _dataset


@dataclasses.dataclass(frozen=True)
class Layer:
  name: str           # the layer as the model names it
  path: str           # its kernel in the parameter tree
  kernel: np.ndarray  # HWIO


def auto_groups(apply_fn) -> int:
  """The two-GPU split of AlexNet-family models: the groups of conv2, the layer reading conv1's
  maps (Krizhevsky et al. §3.2: "the kernels of layer 2 ... connect only to those kernel maps in
  layer 1 which reside on the same GPU"); 1 for every other model."""
  convs = getattr(apply_fn.module, "convs", None)
  return int(convs[1].groups) if convs and len(convs) > 1 else 1


def _kernel(params, layer: str):
  path, kernel = filters.find_kernel(params, layer.replace(".", "/"))
  return Layer(layer, path, kernel)


def deeper_layer(params, layer_names, first: str, name: str):
  """The deeper layer whose mean filters are shown: `name`, or with "auto" the first layer
  after `first` holding a spatial (k > 1) kernel; "" = none."""
  if not name:
    return None
  if name != "auto":
    return _kernel(params, name)
  for candidate in layer_names[layer_names.index(first) + 1:]:
    try:
      layer = _kernel(params, candidate)
    except UserError:
      continue  # pooling and norm layers hold no kernel
    if layer.kernel.shape[0] > 1:
      return layer
  return None


@dataclasses.dataclass(frozen=True)
class Request:
  first: Layer
  deeper: Layer | None
  bgr: bool            # the first layer reads BGR pixels (Caffe weights)
  groups: int
  normalization: str
  zoom: int
  ncols: int


def parse(config) -> Request:
  choose("normalization", config.normalization, filters.NORMALIZATIONS)
  check(isinstance(config.zoom, int) and config.zoom >= 0, f"zoom must be an integer >= 0 "
                                                           f"(0: auto), got {config.zoom!r}")
  check(isinstance(config.ncols, int) and config.ncols >= 1, f"ncols must be an integer >= 1, "
                                                             f"got {config.ncols!r}")
  apply_fn, variables, _ = loader.from_config(config)
  params, names = variables["params"], apply_fn.layer_names
  first_name = config.layer or names[0]
  if config.layer:
    choose("layer", config.layer, names)
  first = _kernel(params, first_name)
  groups = config.groups or auto_groups(apply_fn)
  filters.group_blocks(np.zeros(first.kernel.shape[-1]), groups)  # groups must divide them
  deeper = deeper_layer(params, names, first_name, config.deeper_layer)
  bgr = bool(getattr(apply_fn.module, "bgr", False))
  return Request(first, deeper, bgr, groups, config.normalization, config.zoom, config.ncols)


def _zoom(request: Request, kernel) -> int:
  return request.zoom or max(1, round(40 / kernel.shape[0]))


def run(config, workdir):
  request = parse(config)
  with runs.Run(config, workdir) as run:
    out = run.dir
    first = request.first
    images = filters.normalize(filters.filter_images(first.kernel, bgr=request.bgr),
                               request.normalization)
    blocks = filters.group_blocks(filters.upscale(images, _zoom(request, first.kernel)),
                                  request.groups)
    picture, _ = draw.tile_blocks(blocks, request.ncols)
    report.save_image(out / "filters.png", picture)
    k, _, inputs, count = first.kernel.shape
    size = count // request.groups
    halves = "; ".join(f"block {g + 1}: filters {g * size}-{(g + 1) * size - 1}"
                       for g in range(request.groups))
    items = [(f"{first.name} ({first.path}): {count} filters {k}x{k}x{inputs}, "
              f"{request.normalization} contrast normalisation"
              + ("; the net reads BGR pixels, shown as RGB" if request.bgr else "")
              + (f"; split as the {request.groups} groups of the next layer, top to bottom "
                 f"({halves}), as the paper's two GPUs" if request.groups > 1 else ""),
              "filters.png", None)]
    arrays = {runs.safe_name(first.path): first.kernel}
    summary = {"model": config.model, "weights": _dataset.weights(config), "layer": first.name,
               "filters": count, "kernel": list(first.kernel.shape), "groups": request.groups,
               "normalization": request.normalization}
    if request.deeper is not None:
      deeper = request.deeper
      dk, _, d_inputs, d_count = deeper.kernel.shape
      mean = filters.normalize(filters.filter_images(deeper.kernel, mean_over_inputs=True),
                               request.normalization)
      rel = f"filters_{runs.safe_name(deeper.name)}.png"
      grid, _ = draw.tile_blocks([filters.upscale(mean, _zoom(request, deeper.kernel))],
                                 request.ncols)
      report.save_image(out / rel, grid)
      items.append((f"{deeper.name} ({deeper.path}): the MEAN over its {d_inputs} input "
                    f"channels of each of its {d_count} {dk}x{dk} filters (where in the window "
                    f"a filter looks, not what it looks for), {request.normalization} contrast "
                    "normalisation", rel, None))
      arrays[runs.safe_name(deeper.path)] = deeper.kernel
      summary.update(deeper_layer=deeper.name, deeper_kernel=list(deeper.kernel.shape))
    np.savez_compressed(out / "filters.npz", **arrays)
    run.summary.update(summary)
    report.write_report(out, f"filters: {config.model}", config,
                        [("Filters (Krizhevsky et al. 2012, Fig. 3)", items)],
                        summary=run.summary)
  return run.summary
