"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2, Fig. 7) for every image of config.images.

cnn_vis.techniques.occlusion slides the grey square and measures; this experiment draws Fig. 7's
panels for each image: (b) the total activation of the strongest feature map of
config.feature_layer ("" = the model's last conv layer, "none" = skip), (d) the probability of the
correct class (config.target: predicted, class:N, or label = from the ImageNet file name), (e)
the most probable label (one colour per label, the legend beside it naming every label that
appears and how often), and the drop in the class probability as a per-pixel map blended over
the image. Maps (b), (d) and the drop carry colour bars with their ranges.

Writes maps/<i>_<name>_{prob,feature,label,legend}.png, overlays/<i>_<name>.png,
panels/<i>_<name>.png (input | feature | probability | label + legend | overlay; the report
shows its tiles, tiles/panels/..., with their labels as text), summary.png,
occlusion.npz (every map), metrics.jsonl (per image: class, probabilities and their range, the
feature map, label fractions) and report.html.
"""
import time

import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.errors import UserError, check
from cnn_vis.models import classes as class_lib
from cnn_vis.report import images as pictures
from cnn_vis.techniques import occlusion as O


def target_classes(target: str, table: models.LayerTable, names, dataset: str) -> np.ndarray:
  """config.target (predicted | label | class:N | class:NAME) -> (N,) class indices, -1 =
  predicted on the unoccluded image."""
  unit = models.parse_unit(target, table)
  check(unit.layer == table.logits and unit.y is None,
        f"occlusion target {target!r} must be predicted, label, class:N or class:NAME")
  if unit.label:
    return np.asarray(class_lib.image_labels(names, dataset), np.int32)
  return np.full(len(names), -1 if unit.channel is None else unit.channel, np.int32)


def fill_value(fill) -> np.ndarray:
  """A grey level in [0, 1] or three comma-separated RGB values."""
  try:
    values = np.asarray([float(v) for v in str(fill).split(",")], np.float32)
  except ValueError:
    raise UserError(f"cannot parse fill {fill!r}; give a grey level in [0, 1] or r,g,b") from None
  check(values.size in (1, 3) and bool(np.all((values >= 0) & (values <= 1))),
        f"fill {fill!r} must be one grey level or three r,g,b values, each in [0, 1]")
  return values


def feature_layer_of(text: str, spec: models.ModelSpec) -> str | None:
  """config.feature_layer: a layer, "" = the model's last conv feature map (Zeiler & Fergus's
  "layer 5"), or "none"."""
  text = str(text or "")
  if text == "none":
    return None
  return text or spec.last_conv or None


def upsample(grid, height: int, width: int) -> np.ndarray:
  """A small map shown at the image's size, each window position a flat block."""
  return pictures.resize_map(grid, height, width, nearest=True)


def label_picture(labels, height: int, width: int, class_names):
  """Fig. 7(e): (the label map in colours at the image's size, its legend picture naming every
  label that appears with the fraction of positions where it is on top, [(name, fraction)])."""
  colors, entries = pictures.categorical_picture(labels)
  names = [f"{class_names[label]} {fraction:.0%}" for label, _, fraction in entries]
  legend = pictures.legend([color for _, color, _ in entries], names)
  picture = np.stack([upsample(colors[..., c], height, width) for c in range(3)], axis=-1)
  return picture, legend, [(class_names[label], fraction) for label, _, fraction in entries]


def map_picture(grid, height: int, width: int, colormap: str = "inferno"):
  """A map over window positions at the image's size in its own min..max range, with its colour
  bar (the range printed beside it)."""
  scale = pictures.range_scale(grid, colormap)
  return pictures.with_colorbar(scale.colors(upsample(grid, height, width)), scale), scale


def run(config, workdir):
  # First what needs no weights (every image is resized to the model's input size).
  size = models.get_spec(config.model).input_size
  O.window_starts(size, config.size, config.stride)
  check(config.chunk >= 1, f"chunk must be >= 1, got {config.chunk}")
  fill = fill_value(config.fill)
  names, images = runs.images_from_config(config, models.get_spec(config.model),
                                          skip_unreadable=True)
  apply_fn, variables, spec = loader.from_config(config)
  _, height, width, _ = images.shape
  table = models.layer_table(apply_fn, variables, images.shape, spec.class_names)
  classes = target_classes(str(config.target), table, names, spec.dataset)
  feature_layer = feature_layer_of(config.feature_layer, spec)
  if feature_layer:
    models.check_layer(feature_layer, table)
  with runs.Run(config, workdir) as run:
    workdir = run.dir

    start = time.perf_counter()
    result = O.occlusion(apply_fn, variables, images, classes, fill, size=config.size,
                         stride=config.stride, feature_layer=feature_layer, chunk=config.chunk)
    maps = {k: np.asarray(v) for k, v in result._asdict().items() if v is not None}
    seconds = time.perf_counter() - start
    drop = np.asarray(O.to_pixels(maps["base_prob"][:, None, None] - maps["prob"], result.starts_y,
                                  result.starts_x, config.size, height, width))
    np.savez_compressed(workdir / "occlusion.npz", prob_drop_pixels=drop, **maps)

    items, panels = [], []
    for n, (name, image) in enumerate(zip(names, images)):
      stem = f"{n:03d}_{runs.safe_name(name)}"
      cls = int(maps["classes"][n])
      prob, prob_scale = map_picture(maps["prob"][n], height, width)
      labels, legend, fractions = label_picture(maps["label"][n], height, width, spec.class_names)
      drop_scale = pictures.range_scale(drop[n], "inferno", lo=min(0.0, float(drop[n].min())))
      blended = pictures.with_colorbar(
          pictures.overlay(image, drop[n], config.overlay_alpha, scale=drop_scale), drop_scale)
      columns, titles = [], []
      if feature_layer:
        feature, _ = map_picture(maps["feature"][n], height, width)
        report.save_image(workdir / "maps" / f"{stem}_feature.png", feature)
        columns.append(feature)
        titles.append(f"(b) {feature_layer}:{int(maps['feature_channel'][n])} total")
      labelled = pictures.beside(labels, legend)
      for suffix, picture in (("prob", prob), ("label", labelled), ("legend", legend)):
        report.save_image(workdir / "maps" / f"{stem}_{suffix}.png", picture)
      report.save_image(workdir / "overlays" / f"{stem}.png", blended)
      columns += [prob, labelled, blended]
      titles += [f"(d) p({spec.class_names[cls]})", "(e) top label", "p drop"]
      tiles, grid = report.labelled_grid(workdir, f"panels/{stem}.png", [image, *columns],
                                         ["input", *titles], 1 + len(columns))
      panels.append(tiles)
      record = {"image": name, "class": cls, "class_name": spec.class_names[cls],
                "prob": float(maps["base_prob"][n]), "min_prob": float(maps["prob"][n].min()),
                "prob_range": [prob_scale.lo, prob_scale.hi],
                "top_labels": {k: round(float(v), 4) for k, v in fractions[:5]}}
      if feature_layer:
        record.update(feature_channel=int(maps["feature_channel"][n]),
                      feature=float(maps["base_feature"][n]))
      runs.append_metrics(workdir, record)
      text = "\n".join(f"{label} {fraction:.0%}" for label, fraction in fractions[:8])
      items.append((f"{name}: class {cls} {spec.class_names[cls]}, p = {record['prob']:.3f} "
                    f"unoccluded, {record['min_prob']:.3f} at worst; {len(fractions)} labels on "
                    "top under the occluder (legend beside the label map)", grid, text))
    report.save_image(workdir / "summary.png", report.image_grid(panels, ncols=1))
    run.summary.update({"model": config.model, "images": len(names), "size": config.size,
                        "stride": config.stride, "positions": int(maps["prob"][0].size),
                        "mean_min_prob": float(np.mean(maps["prob"].min(axis=(1, 2)))),
                        "seconds": round(seconds, 2)})
    report.write_report(workdir, f"occlusion: {config.model}", config,
                        [("Occlusion (Fig. 7)", items)], summary=run.summary)
  return run.summary
