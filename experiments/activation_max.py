"""Activation maximisation (Yosinski et al. 2015, §3; Olah et al. 2017): one image per unit (x
every swept hyperparameter), all units of a layer vmapped together.

config.units: units in the grammar of cnn_vis.models.units, e.g. 'conv1:0-95',
'logits:130;logits:flamingo', 'block8:3@7,7' (several layers: one call each). config.preset:
1-4 (Table 1 of the paper), olah17 (lucid's recipe) or cs231n. Hyperparameter fields left empty
take the preset's value; a tuple of values renders one tile per value (x unit), in the same call.
Writes units_<layer>.png (one labelled tile per unit/setting, displayed as the preset's authors
show theirs: DISPLAY), units_<layer>.npy (raw pixels), metrics.jsonl (activation reached per
tile) and report.html.
"""
import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.errors import check, choose
from cnn_vis.report import images as pictures
from cnn_vis.techniques import activation_max as am

from experiments import _optimize

# How each preset's authors show their images (cnn_vis.report.images.optimized_picture): lucid
# its raw sigmoid pixels, CS231n min-max stretched (its `deprocess`), the deep visualization
# toolbox the image minus the mean pixel, zero at mid grey (`best_X.jpg`; the default).
DISPLAY = {"olah17": "raw", "cs231n": "minmax"}
SWEEPABLE = ("lr", "decay", "blur_width", "blur_every", "norm_pct", "contrib_pct", "max_lr",
             "desired_prog")


def run(config, workdir):
  fn, variables, spec = loader.from_config(config)
  size = int(config.image_size or spec.input_size)
  check(size >= 8, f"image_size must be >= 8, got {size}")
  table = models.layer_table(fn, variables, (1, size, size, 3), spec.class_names)
  units = models.parse_units(config.units, table)
  check(all(u.channel is not None and not u.label for u in units),
        f"config.units {config.units!r}: activation maximisation needs units LAYER:C (no max:, "
        "predicted or label)")
  base = am.preset(config.preset)      # unknown preset: one-line error before any work
  display = config.display if config.display != "auto" else DISPLAY.get(config.preset, "stretch")
  choose("display", display, pictures.OPTIMIZED_DISPLAYS)
  sweeps = {name: _optimize.values(config, name, base[name]) for name in SWEEPABLE
            if name in base or config.get(name)}
  steps = int(config.steps or base["steps"])
  check(steps > 0, f"steps must be > 0, got {steps}")
  _optimize.loop(config)
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    sections, summary = [], {"model": config.model, "preset": config.preset, "units": len(units),
                             "image_size": size, "steps": steps}
    for layer in dict.fromkeys(u.layer for u in units):
      layer_units = [u for u in units if u.layer == layer]
      items, values, labels = _optimize.product(layer_units, sweeps)
      result = am.maximize(fn, variables, items, size=size, center=fn.mean_pixel,
                           key=_optimize.key(config), preset_name=config.preset,
                           spatial=config.spatial, chunk=_optimize.chunk(config),
                           loop=_optimize.loop(config), steps=steps, **values)
      images = result.images[:, 0]
      reached = np.asarray(am.unit_values(fn, variables, images, items, config.spatial))
      tiles = []
      for unit, label, value in zip(items, labels, reached):
        runs.append_metrics(workdir, {"unit": str(unit), "setting": label,
                                        "activation": float(value)})
        tiles.append(f"{unit.channel}" + (f" {label}" if label else ""))
      np.save(workdir / f"units_{layer}.npy", np.asarray(images))
      per_unit = len(items) // len(layer_units)
      shown = pictures.optimized_picture(images, display, fn.mean_pixel)
      grid = _optimize.save_grid(workdir, f"units_{layer}", shown, tiles,
                                 ncols=per_unit if per_unit > 1 else None)
      text = "\n".join(f"{str(u):>18s} {lab:>22s}  activation {v:9.3f}"
                       for u, lab, v in zip(items, labels, reached))
      sections.append((f"Layer {layer}", [(f"{len(items)} renders, preset {config.preset}", grid,
                                           text)]))
      summary[f"mean_activation_{layer}"] = float(reached.mean())
    report.write_report(workdir, f"activation maximisation: {config.model}", config, sections,
                        summary=summary)
    run.summary.update(summary)
  return summary
