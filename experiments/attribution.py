"""Which pixels matter: gradient, saliency, deconvnet, guided backprop, SmoothGrad, Integrated
Gradients and Grad-CAM maps for every image of config.images and every target of config.targets.

config.method picks the technique (cnn_vis.techniques.gradients has the papers and the math);
deconvnet and guided backprop are the gradient of a model built with that ReLU backward rule.
Targets: `predicted`, `class:N`, `label` (the class named by an ImageNet file name
`<wnid>_*.JPEG`), `max:LAYER` (the layer's strongest activation) or a unit `LAYER:C[@y,x]`;
comma-separated; the targets of one layer share one compiled call (one per chunk for IG and
SmoothGrad).

Writes into the workdir, for image i and target t: maps/<i>_<name>_<t>.png (the map),
overlays/... (its heatmap blended over the image), panels/... (input | map | overlay, plus guided
Grad-CAM for grad_cam), summary.png (every panel), attributions.npz (the raw maps),
metrics.jsonl (score of each target on each image, IG's completeness gap) and report.html.
"""
import importlib.resources
import os
import re
import time

import jax
import numpy as np

from cnn_vis import models, report, runs
from cnn_vis.errors import UserError, check, choose
from cnn_vis.techniques import gradients as G

METHODS = ("gradient", "saliency", "deconvnet", "guided_backprop", "smoothgrad",
           "integrated_gradients", "grad_cam")
# The ReLU backward rule each method needs; the others use config.relu_mode (default standard).
RELU_MODE = {"deconvnet": "deconvnet", "guided_backprop": "guided", "integrated_gradients":
             "standard", "grad_cam": "standard"}
# Grad-CAM's layer when config.layer is empty: each registered model's last conv feature map.
LAST_CONV = {"efficientnet_lite0": "head", "alexnet": "conv5", "alexnet_torchvision": "conv5",
             "alexnet_cifar": "conv5", "alexnet_fashion_mnist": "conv5", "vgg16": "conv5_3",
             "vgg19": "conv5_4"}


# ------------------------------------------------------------------------------------------------
# Model and targets.

def imagenet_labels(names, spec) -> np.ndarray:
  """Class index of each image from its ImageNet file name `<wnid>_...` (target `label`)."""
  check(spec.dataset == "imagenet", f"target label needs an ImageNet model; {spec.name} is "
                                    f"trained on {spec.dataset}")
  text = importlib.resources.files("cnn_vis").joinpath("assets/imagenet_classes.tsv").read_text()
  index = {row.split("\t")[1]: int(row.split("\t")[0]) for row in text.splitlines()[1:] if row}
  labels = []
  for name in names:
    match = re.match(r"(n\d{8})", name)
    check(bool(match) and match[1] in index, f"target label: image {name!r} does not start with "
                                             "an ImageNet wnid (n01440764_...)")
    labels.append(index[match[1]])
  return np.asarray(labels, np.int32)


def target_groups(targets: str, shapes: dict, names, spec):
  """[(layer, Units, target strings)] with `label` turned into per-image classes."""
  texts = G.split_targets(str(targets))
  groups = G.parse_targets([t for t in texts if t != "label"], shapes) \
      if any(t != "label" for t in texts) else []
  if "label" in texts:
    labels = imagenet_labels(names, spec)[None]
    groups.append((None, G.Units.make(labels), ["label"]))
  return groups


def describe(layer, units: G.Units, u: int, n: int, spec) -> str:
  """What map (u, n) is of, e.g. 'class 281 tabby' or 'conv5:17@6,6'."""
  channel, y, x = (int(np.asarray(v)[u, n]) for v in units)
  if layer is None:
    return f"class {channel} {spec.class_names[channel]}"
  return f"{layer}:{channel}" + (f"@{y},{x}" if y >= 0 else "")


def safe_name(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


# ------------------------------------------------------------------------------------------------
# Pictures.

def signed_image(values) -> np.ndarray:
  """A gradient-like (H, W, C) array shown as an image: 0 is grey, per-image symmetric scale."""
  return report.normalize_for_display(values)


def panel(image, columns, labels) -> np.ndarray:
  return report.image_grid([image, *columns], ncols=1 + len(columns), labels=["input", *labels])


def save_outputs(workdir, stem: str, image, picture, values_2d, alpha: float, extra=()):
  """maps/, overlays/, panels/ PNGs of one map; returns (panel array, relative panel path)."""
  blended = report.overlay(image, values_2d, alpha)
  report.save_image(workdir / "maps" / f"{stem}.png", picture)
  report.save_image(workdir / "overlays" / f"{stem}.png", blended)
  columns = [picture, blended, *[p for _, p in extra]]
  labels = ["map", "overlay", *[name for name, _ in extra]]
  tiles = panel(image, columns, labels)
  rel = f"panels/{stem}.png"
  report.save_image(workdir / rel, tiles)
  return tiles, rel


def write_arrays(workdir, arrays: dict) -> None:
  """attributions.npz, written atomically."""
  tmp = workdir / ".attributions.npz.tmp"
  with open(tmp, "wb") as f:
    np.savez_compressed(f, **arrays)
  os.replace(tmp, workdir / "attributions.npz")


# ------------------------------------------------------------------------------------------------
# The experiment.

def check_settings(config, method: str) -> None:
  """Validates the method's settings before anything is written."""
  choose("spatial reduction", config.spatial, G.SPATIAL)
  check(config.unit_chunk >= 1, f"unit_chunk must be >= 1, got {config.unit_chunk}")
  if method == "smoothgrad":
    check(config.samples >= 1, f"smoothgrad samples must be >= 1, got {config.samples}")
    check(config.noise >= 0, f"smoothgrad noise must be >= 0, got {config.noise}")
  if method in ("smoothgrad", "integrated_gradients"):
    check(config.chunk >= 1, f"chunk must be >= 1, got {config.chunk}")
  if method == "integrated_gradients":
    G.quadrature(config.steps, config.rule)
    baseline_value(config.baseline)


BASELINES = {"black": 0.0, "white": 1.0, "grey": 0.5}


def baseline_value(name) -> float:
  """IG baseline: black | white | grey | a number in [0, 1]."""
  if isinstance(name, (int, float)):
    return float(name)
  if str(name) in BASELINES:
    return BASELINES[str(name)]
  try:
    return float(name)
  except ValueError:
    raise UserError(f"unknown baseline {name!r}; allowed: {', '.join(BASELINES)} or a number "
                    "in [0, 1]") from None


def cam_layer(config) -> str:
  """config.layer, or the model's last conv layer when empty."""
  layer = config.layer or LAST_CONV.get(config.model)
  check(bool(layer), f"model {config.model}: set config.layer to a conv layer for Grad-CAM")
  return layer


def compute(config, method, module, variables, images, layer, units):
  """The method's jitted call for one layer's targets -> (result, 2-D maps (U, N, H, W),
  pictures (U, N, H, W, 3), extra pictures {name: (U, N, H, W, 3)})."""
  apply_fn = models.ModelFn(module)
  common = dict(layer=layer, spatial=config.spatial, unit_chunk=config.unit_chunk)
  extra = {}
  if method in ("gradient", "saliency", "deconvnet", "guided_backprop"):
    result = G.gradients(apply_fn, variables, images, units, **common)
  elif method == "smoothgrad":
    result = G.smoothgrad(apply_fn, variables, images, units, jax.random.PRNGKey(config.seed),
                          noise=config.noise, samples=config.samples, chunk=config.chunk, **common)
  elif method == "integrated_gradients":
    result = G.integrated_gradients(apply_fn, variables, images, units,
                                    baseline=baseline_value(config.baseline), steps=config.steps,
                                    rule=config.rule, chunk=config.chunk, **common)
  else:
    result = G.grad_cam(apply_fn, variables, images, units, cam_layer(config), **common)
    maps = np.asarray(result.values)
    pictures = np.stack([[report.heatmap(m, "jet") for m in row] for row in maps])
    if config.guided_grad_cam:
      # Selvaraju et al. 2017, §3.1: guided backprop times the upsampled Grad-CAM map.
      guided = G.gradients(models.ModelFn(module.clone(relu_mode="guided")), variables, images,
                           result.units, **common)
      extra["guided Grad-CAM"] = np.stack([[signed_image(g * m[..., None]) for g, m in zip(*row)]
                                           for row in zip(np.asarray(guided.values), maps)])
    return result, maps, pictures, extra
  values = np.asarray(result.values)
  if method in ("gradient", "deconvnet", "guided_backprop"):
    maps = np.asarray(G.saliency(values))
    pictures = np.stack([[signed_image(v) for v in row] for row in values])
  else:
    # Saliency and SmoothGrad as Simonyan et al. show them (max_c |g|); IG as Sundararajan et al.
    # show attributions: their magnitude, summed over colour channels.
    maps = np.abs(values).sum(-1) if method == "integrated_gradients" else \
        np.asarray(G.saliency(values))
    pictures = np.stack([[report.heatmap(m, "gray") for m in row] for row in maps])
  return result, maps, pictures, extra


def run(config, workdir):
  method = config.method
  choose("method", method, METHODS)
  check_settings(config, method)  # first what needs no weights
  names, images = runs.images_from_config(config, models.get_spec(config.model),
                                          skip_unreadable=True)
  if "label" in G.split_targets(str(config.targets)):
    imagenet_labels(names, models.get_spec(config.model))
  module, variables, spec = runs.cached_model_from_config(
      config, RELU_MODE.get(method, config.get("relu_mode", "standard")))
  shapes = models.output_shapes(models.ModelFn(module), variables, images.shape)
  groups = target_groups(config.targets, shapes, names, spec)
  if method == "grad_cam":
    conv_layer = cam_layer(config)
    choose("layer", conv_layer, [k for k in shapes if k is not None])
    check(len(shapes[conv_layer]) == 4, f"layer {conv_layer} has no spatial positions (shape "
                                        f"{shapes[conv_layer]}); Grad-CAM needs a conv layer")
  workdir = runs.start_run(config, workdir)  # bad input above writes nothing

  start = time.perf_counter()
  sections, panels, arrays = [], [], {}
  for layer, units, texts in groups:
    result, maps, pictures, extra = compute(config, method, module, variables, images, layer, units)
    scores = np.asarray(result.scores)
    for u, text in enumerate(texts):
      arrays[safe_name(text)] = np.asarray(result.values)[u]
      items = []
      for n, (name, image) in enumerate(zip(names, images)):
        what = describe(layer, result.units, u, n, spec)
        stem = f"{n:03d}_{safe_name(name)}_{safe_name(text)}"
        tiles, rel = save_outputs(workdir, stem, image, pictures[u, n], maps[u, n],
                                  config.overlay_alpha,
                                  [(k, v[u, n]) for k, v in extra.items()])
        panels.append(tiles)
        record = {"image": name, "target": text, "unit": what, "score": float(scores[u, n])}
        caption = f"{name}: {method} of {what} (score {scores[u, n]:.3g})"
        if not np.any(maps[u, n]):
          caption += "; all-zero map: the unit is inactive or saturated (e.g. a ReLU6 at 6)"
        if method == "integrated_gradients":
          total = float(np.asarray(result.values)[u, n].sum())
          delta = float(scores[u, n] - np.asarray(result.baseline_scores)[u, n])
          record.update(attribution_sum=total, score_minus_baseline=delta,
                        completeness_gap=abs(total - delta) / max(abs(delta), 1e-12))
          caption += f"; sum of attributions {total:.3g} vs S(x)-S(x') {delta:.3g}"
        report.append_metrics(workdir, record)
        items.append((caption, rel, None))
      sections.append((f"{method}: {text}", items))
  seconds = time.perf_counter() - start
  write_arrays(workdir, arrays)
  report.save_image(workdir / "summary.png", report.image_grid(panels, ncols=1))
  report.write_report(workdir, f"{method}: {config.model}", config, sections,
                      summary={"method": method, "model": config.model, "images": len(names),
                               "targets": str(config.targets),
                               "seconds (incl. compile)": round(seconds, 2)})
  return {"seconds": seconds, "panels": len(panels)}
