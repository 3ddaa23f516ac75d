"""Feature inversion (Mahendran & Vedaldi 2015): reconstruct each image of config.images from its
own features at each layer of config.layers (x every swept lambda_TV), one vmapped render per
layer, and report the normalised reconstruction error ||Phi(x) - Phi0||^2 / ||Phi0||^2 and
whether the reconstruction keeps the original's top-1 class.

Writes inversion.png (a row per image/setting: original, then one tile per layer),
inversion_<layer>.npy, metrics.jsonl (one line per image, layer and setting) and report.html.
"""
import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.errors import check
from cnn_vis.models.units import split_units
from cnn_vis.techniques import classify, inversion, optimize

from experiments import _optimize


def run(config, workdir):
  fn, variables, spec = loader.from_config(config)
  names, images = runs.images_from_config(config, spec)
  images = optimize.check_image(images, "config.images")
  layers = split_units(config.layers)
  check(bool(layers), "config.layers is empty; give layer names, e.g. 'block8;head'")
  table = models.layer_table(fn, variables, images[:1].shape, spec.class_names)
  for layer in layers:
    models.check_layer(layer, table)
  phases = tuple((int(n), float(f)) for n, f in config.phases)
  check(len(phases) > 0 and all(n > 0 for n, _ in phases),
        f"config.phases must be (steps, lr factor) pairs with steps > 0, got {config.phases}")
  optimizer_kwargs = (("momentum", float(config.momentum)),) if config.optimizer == "sgd" \
      and config.momentum else ()
  _optimize.loop(config)
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    original_top1 = np.asarray(classify.probabilities(fn, variables, images)).argmax(-1)
    rows, tiles, columns = [], {}, []
    for layer in layers:
      tvs = _optimize.values(config, "tv", inversion.lambda_tv(layer, fn.layer_names))
      index, sweep, labels = _optimize.product(list(range(len(images))), {"tv": tvs})
      result, targets = inversion.invert(
          fn, variables, images[index], layer, center=fn.mean_pixel,
          key=_optimize.key(config), tv=sweep["tv"], alpha_norm=config.alpha_norm,
          alpha=config.alpha, tv_beta=config.tv_beta, lr=config.lr, phases=phases,
          optimizer=config.optimizer, optimizer_kwargs=optimizer_kwargs,
          init_scale=config.init_scale, chunk=_optimize.chunk(config),
          loop=_optimize.loop(config))
      reconstructions = result.images[:, 0]
      errors = np.asarray(inversion.normalized_error(fn, variables, reconstructions, targets, layer))
      top1 = np.asarray(classify.probabilities(fn, variables,
                                               np.clip(reconstructions, 0, 1))).argmax(-1)
      np.save(workdir / f"inversion_{layer}.npy", np.asarray(reconstructions))
      columns.append(layer)
      for j, (i, label) in enumerate(zip(index, labels)):
        row = {"image": names[i], "layer": layer, "setting": label or f"tv={tvs[0]:g}",
               "normalized_error": float(errors[j]),
               "top1_kept": bool(top1[j] == original_top1[i]),
               "top1": spec.class_names[int(top1[j])]}
        rows.append(row)
        runs.append_metrics(workdir, row)
        tiles.setdefault((i, label), []).append((np.asarray(reconstructions[j]),
                                                 f"{layer} e={errors[j]:.2f}"))
    grid_images, grid_labels = [], []
    for (i, label), row_tiles in tiles.items():
      grid_images.append(images[i])
      grid_labels.append(f"{names[i][:10]} {label}".strip())
      for image, text in row_tiles:
        grid_images.append(image)
        grid_labels.append(text)
    grid = _optimize.save_grid(workdir, "inversion", grid_images, grid_labels, ncols=len(layers) + 1)
    text = "\n".join(f"{r['image']:>14s} {r['layer']:>8s} {r['setting']:>10s}  error "
                     f"{r['normalized_error']:.3f}  top-1 kept {r['top1_kept']}" for r in rows)
    summary = {"model": config.model, "images": len(images), "layers": ",".join(layers),
               "optimizer": config.optimizer, "steps": sum(n for n, _ in phases)}
    for layer in layers:
      errs = [r["normalized_error"] for r in rows if r["layer"] == layer]
      summary[f"error_{layer}"] = float(np.mean(errs))
    report.write_report(workdir, f"feature inversion: {config.model}", config,
                        [("Reconstructions (Mahendran & Vedaldi 2015): original, then each layer",
                          [("normalised feature error e per tile", grid, text)])], summary=summary)
    run.summary.update(summary)
  return summary
