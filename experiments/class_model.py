"""Class model visualisation (Simonyan et al. 2014, §2): one image per class (x lambda x lr), all
vmapped in one render; each is classified by the same model as it is and after a random shift.

Writes class_models.png (one labelled tile per class/setting), class_models.npy, metrics.jsonl
(one line per tile: class, probability, top-1, top-1 after the shift) and report.html.
"""
import jax
import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.errors import check
from cnn_vis.models.units import split_units
from cnn_vis.techniques import class_model, classify

from experiments import _optimize


def parse_classes(text, table: models.LayerTable) -> list[int]:
  """'1;130', 'flamingo;goldfish' or a tuple of indices and names (as the model's class list
  spells them) -> class indices."""
  items = split_units(text)
  check(bool(items), "config.classes is empty; give class indices or names, e.g. '130;goldfish'")
  return [models.class_index(item, table) for item in items]


def run(config, workdir):
  fn, variables, spec = loader.from_config(config)
  size = int(config.image_size or spec.input_size)
  check(size >= 8, f"image_size must be >= 8, got {size}")
  classes = parse_classes(config.classes, models.layer_table(fn, variables, (1, size, size, 3),
                                                             spec.class_names))
  items, sweep, labels = _optimize.product(classes, {
      "l2": _optimize.values(config, "l2", class_model.DEFAULTS["l2"]),
      "lr": _optimize.values(config, "lr", class_model.DEFAULTS["lr"])})
  transforms = (("jitter", int(config.jitter)),) if config.jitter else ()
  _optimize.loop(config)
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    result = class_model.class_models(
        fn, variables, np.array(items), size=size, center=fn.mean_pixel,
        key=_optimize.key(config), l2=sweep["l2"], lr=sweep["lr"], steps=config.steps,
        optimizer=config.optimizer, transforms=transforms, clip=config.clip,
        chunk=_optimize.chunk(config), loop=_optimize.loop(config))
    images = np.asarray(result.images[:, 0])
    probs = np.asarray(classify.probabilities(fn, variables, images))
    shift = int(config.shift_check)
    if shift:
      moved, shifts = class_model.shifted(images, jax.random.PRNGKey(config.seed + 1), shift)
      shifted_top1 = np.asarray(classify.probabilities(fn, variables, moved)).argmax(-1)
    rows, tile_labels = [], []
    for i, c in enumerate(items):
      row = {"class": int(c), "name": spec.class_names[c], "setting": labels[i],
             "probability": float(probs[i, c]), "top1": bool(probs[i].argmax() == c),
             "score": float(result.terms["class score"][i, -1])}
      if shift:
        row.update(shift=[int(s) for s in np.asarray(shifts[i])],
                   top1_after_shift=bool(shifted_top1[i] == c))
      rows.append(row)
      runs.append_metrics(workdir, row)
      tile_labels.append(f"{spec.class_names[c][:14]} p={probs[i, c]:.2f} {labels[i]}".strip())
    np.save(workdir / "class_models.npy", images)
    per_class = len(items) // len(classes)
    grid = _optimize.save_grid(workdir, "class_models", images, tile_labels,
                               ncols=per_class if per_class > 1 else None)
    summary = {"model": config.model, "classes": len(classes), "settings": len(items),
               "image_size": size, "steps": config.steps,
               "mean_probability": float(np.mean([r["probability"] for r in rows])),
               "top1": sum(r["top1"] for r in rows)}
    if shift:
      summary["top1_after_shift"] = sum(r["top1_after_shift"] for r in rows)
    text = "\n".join(f"{r['name']:>24s} {r['setting']:>16s}  p={r['probability']:.3f}  "
                     f"top1={r['top1']}"
                     + (f"  shifted {r['shift']} top1={r['top1_after_shift']}" if shift else "")
                     for r in rows)
    report.write_report(workdir, f"class models: {config.model}", config,
                        [("Class models (Simonyan et al. 2014, §2)",
                          [("one tile per class and setting (a row per class when sweeping)",
                            grid, text)])], summary=summary)
    run.summary.update(summary)
  return summary
