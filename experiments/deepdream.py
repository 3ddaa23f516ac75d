"""DeepDream (google/deepdream dream.ipynb): ascend 1/2 ||a||^2 of config.layer on each image of
config.images at its own size (shrunk to fit config.max_size), over octaves.

Images of one size (x every swept step size) are dreamed in one vmapped call per octave. Writes
deepdream.png (original, then one dream per step size), dream_<i>.png at full size, metrics.jsonl
(||a||^2 before and after each octave) and report.html.
"""
import jax
import numpy as np
from PIL import Image

from cnn_vis import loader, report, runs
from cnn_vis.data import images as image_io
from cnn_vis.errors import check, choose
from cnn_vis.techniques import deepdream

from experiments import _optimize


def load_images(config) -> list[tuple[str, np.ndarray]]:
  """(name, HxWx3 image) at its own size, the longer side shrunk to config.max_size if larger."""
  out = []
  for source in runs.image_sources(config.images):
    if source.startswith("skimage:"):
      name, image = source.split(":", 1)[1], image_io.skimage_image(source.split(":", 1)[1])
    else:
      name, image = source.rsplit("/", 1)[-1], image_io.load_image(source)
    height, width = image.shape[:2]
    scale = min(1.0, config.max_size / max(height, width)) if config.max_size else 1.0
    if scale < 1.0:
      pil = Image.fromarray(np.round(image * 255).astype(np.uint8))
      size = (max(round(width * scale), 1), max(round(height * scale), 1))
      pil = pil.resize(size, Image.BILINEAR)
      image = np.asarray(pil, np.float32) / 255.0
    out.append((name, image))
  return out


def run(config, workdir):
  fn, variables, _ = loader.from_config(config)
  loaded = load_images(config)
  step_sizes = _optimize.values(config, "step_size", 1.5)
  check(all(s > 0 for s in step_sizes), f"step_size must be > 0, got {step_sizes}")
  height, width = loaded[0][1].shape[:2]
  _, acts = jax.eval_shape(fn, variables, jax.ShapeDtypeStruct((1, height, width, 3), np.float32))
  choose("layer", config.layer, acts)       # before writing anything
  _optimize.loop(config)
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    by_shape = {}
    for i, (_, image) in enumerate(loaded):
      by_shape.setdefault(image.shape, []).append(i)
    grid_images, grid_labels, items = [], [], []
    for shape, members in by_shape.items():
      index, sweep, labels = _optimize.product(members, {"step_size": step_sizes})
      batch = np.stack([loaded[i][1] for i in index])
      dreams, records = deepdream.deepdream(
          fn, variables, batch, config.layer, key=_optimize.key(config), iter_n=config.iter_n,
          octave_n=config.octave_n, octave_scale=config.octave_scale,
          step_size=np.asarray(sweep["step_size"], np.float32) / 255.0, jitter=config.jitter,
          loop=_optimize.loop(config))
      dreams = np.asarray(dreams)
      for j, i in enumerate(index):
        name = loaded[i][0]
        for record in records:
          runs.append_metrics(workdir, {
              "image": name, "setting": labels[j], "octave": record["octave"],
              "size": [record["height"], record["width"]],
              "energy_before": record["energy_before"][j], "energy_after": record["energy_after"][j]})
        rel = f"dream_{len(items):02d}.png"
        report.save_image(workdir / rel, dreams[j])
        increases = all(r["energy_after"][j] > r["energy_before"][j] for r in records)
        items.append((f"{name} {labels[j]} ({shape[0]}x{shape[1]}); ||a||^2 rises in every octave: "
                      f"{increases}", rel, "\n".join(
                          f"octave {r['octave']} {r['height']}x{r['width']}: ||a||^2 "
                          f"{r['energy_before'][j]:.4g} -> {r['energy_after'][j]:.4g}"
                          for r in records)))
        if j % len(step_sizes) == 0:
          grid_images.append(loaded[i][1])
          grid_labels.append(name[:12])
        grid_images.append(dreams[j])
        grid_labels.append(f"{config.layer} {labels[j]}".strip())
    # tiles of different sizes: pad into a common grid cell
    grid = _optimize.save_grid(workdir, "deepdream", _pad_to_common(grid_images), grid_labels,
                               ncols=len(step_sizes) + 1)
    summary = {"model": config.model, "layer": config.layer, "images": len(loaded),
               "octave_n": config.octave_n, "iter_n": config.iter_n}
    report.write_report(workdir, f"DeepDream: {config.model} {config.layer}", config,
                        [("Originals and dreams", [("original, then each step size", grid, None)]),
                         ("Full-size dreams", items)], summary=summary)
    run.summary.update(summary)
  return summary


def _pad_to_common(images):
  height = max(im.shape[0] for im in images)
  width = max(im.shape[1] for im in images)
  return np.stack([np.pad(im, ((0, height - im.shape[0]), (0, width - im.shape[1]), (0, 0)),
                          constant_values=1.0) for im in images])
