"""Class model visualisation (Simonyan et al. 2014, §2): one image per class (x lambda x lr), all
vmapped in one render; each is classified by the same model as it is and after a random shift.

Writes class_models.png (one labelled tile per class/setting), class_models.npy, metrics.jsonl
(one line per tile: class, probability, top-1, top-1 after the shift) and report.html.
"""
import jax
import numpy as np

from cnn_vis import report, runs
from cnn_vis.errors import UserError, check
from cnn_vis.techniques import class_model, classify, optimize

from experiments import _optimize


def parse_classes(text, class_names) -> list[int]:
  """'1,130' or 'flamingo,goldfish' (names as the model's class list spells them) -> indices."""
  out = []
  for item in [s.strip() for s in str(text).split(",") if s.strip()]:
    if item.lstrip("-").isdigit():
      out.append(int(item))
    elif item in class_names:
      out.append(class_names.index(item))
    else:
      raise UserError(f"unknown class {item!r}; give an index 0..{len(class_names) - 1} or a name "
                      f"such as {', '.join(class_names[:3])}")
  check(bool(out), "config.classes is empty; give class indices or names, e.g. '130,1'")
  return out


def run(config, workdir):
  fn, variables, module, spec = _optimize.load(config)
  classes = parse_classes(config.classes, list(spec.class_names))
  size = int(config.image_size or spec.input_size)
  check(size >= 8, f"image_size must be >= 8, got {size}")
  class_model.check_classes(fn, variables, classes, size)
  items, sweep, labels = _optimize.product(classes, {
      "l2": _optimize.values(config, "l2", class_model.DEFAULTS["l2"]),
      "lr": _optimize.values(config, "lr", class_model.DEFAULTS["lr"])})
  transforms = (("jitter", int(config.jitter)),) if config.jitter else ()
  _optimize.loop(config)
  workdir = runs.start_run(config, workdir)
  result = class_model.class_models(
      fn, variables, np.array(items), size=size, center=optimize.model_mean(module),
      key=_optimize.key(config), l2=sweep["l2"], lr=sweep["lr"], steps=config.steps,
      optimizer=config.optimizer, transforms=transforms, clip=config.clip,
      chunk=_optimize.chunk(config), loop=_optimize.loop(config))
  images = np.asarray(result.images)
  probs = np.asarray(classify.probabilities(fn, variables, result.images))
  shift = int(config.shift_check)
  if shift:
    moved, shifts = class_model.shifted(result.images, jax.random.PRNGKey(config.seed + 1), shift)
    shifted_top1 = np.asarray(classify.probabilities(fn, variables, moved)).argmax(-1)
  rows, tile_labels = [], []
  for i, c in enumerate(items):
    row = {"class": int(c), "name": spec.class_names[c], "setting": labels[i],
           "probability": float(probs[i, c]), "top1": bool(probs[i].argmax() == c),
           "score": float(-result.losses[i, -1])}
    if shift:
      row.update(shift=[int(s) for s in np.asarray(shifts[i])],
                 top1_after_shift=bool(shifted_top1[i] == c))
    rows.append(row)
    report.append_metrics(workdir, row)
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
  return summary
