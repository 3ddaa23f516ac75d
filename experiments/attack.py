"""FGSM, BIM and PGD (cnn_vis.techniques.adversarial) over an image folder or a dataset split,
every epsilon of config.eps in one compiled call, and the accuracy-versus-epsilon curve.

config.method: fgsm | bim | pgd; config.norm: linf | l2; config.eps: one value or a tuple in
[0, 1] pixel units; config.steps (FGSM: 1; BIM: 0 = Kurakin et al.'s min(255 eps + 4,
1.25 * 255 eps)); config.step_size: 0 = the method's paper default (FGSM eps; BIM 1/255; PGD
2.5 eps / steps, from a random start); config.target: "" (untargeted, away from the label),
"least_likely" (Kurakin et al.'s iterative least-likely class), "random", or a class index.
With config.train set (and no checkpoint), the model is first trained in the run by the
project's training loop (W/train: its checkpoints, metrics and results.json), as
configs/goodfellow15_fgsm.py:fashion_mnist does for Goodfellow et al.'s softmax regression.

Writes W/adversarial/<stem>.png (8-bit, the model's input size) and W/adversarial.jsonl (one
line per image, measured on the saved file; see experiments/_adversarial.py) for one setting, or
one W/adversarial/<eps label>/ folder with its own adversarial.jsonl per setting;
accuracy_vs_eps.png, examples.png (Szegedy et al.'s Fig. 5 layout), summary.json (clean_accuracy,
adversarial_accuracy, success_rate, mean_linf, mean_l2, mean_rho; lists over `settings` for a
sweep) and report.html. config.reference = "foolbox" also runs foolbox 3's implementation of the
same attack on the same weights and images (summary: foolbox_adversarial_accuracy);
config.transfer_model classifies the saved images with a second network.
"""
import dataclasses

import jax
import numpy as np

from cnn_vis import models, report, runs
from cnn_vis.errors import check, choose
from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import classify, foolbox_reference

from experiments import _adversarial as X

METHODS = ("fgsm", "bim", "pgd")


@dataclasses.dataclass
class Request:
  method: str
  spec: A.Attack
  eps: np.ndarray
  steps: np.ndarray
  step_size: np.ndarray
  labels: list          # one label per setting (None for a single setting)
  inputs: X.Inputs
  model: tuple | None   # (apply_fn, variables, spec), or None when the run trains it first


def eps_label(eps: float) -> str:
  """A setting's folder name: eps2_255 for eps = 2/255, eps0.25 otherwise."""
  levels = float(eps) * 255
  if abs(levels - round(levels)) < 1e-3:
    return f"eps{int(round(levels))}_255"
  return runs.safe_name(f"eps{float(eps):g}")


def steps_of(method: str, eps, steps) -> np.ndarray:
  """(S,) steps: config.steps for every eps; for BIM, 0 is Kurakin et al.'s rule."""
  check(float(steps) == int(steps) and (int(steps) >= 1 or (method == "bim" and int(steps) == 0)),
        f"steps must be a whole number >= 1 (bim: 0 for Kurakin's rule), got {steps}")
  check(method != "fgsm" or int(steps) == 1, f"fgsm takes exactly 1 step, got steps={steps}")
  if method == "bim" and int(steps) == 0:
    return A.bim_steps(eps)
  return A.check_steps(int(steps), len(eps))


def default_step_size(method: str, eps, steps, step_size: float) -> np.ndarray:
  if step_size:
    check(step_size > 0, f"step_size must be > 0 (0: the method's default), got {step_size}")
    return np.full(len(eps), step_size, np.float32)
  return {"fgsm": eps, "bim": np.full(len(eps), 1 / 255, np.float32),
          "pgd": 2.5 * eps / steps}[method].astype(np.float32)


def parse(config) -> Request:
  """Everything checked and the inputs read; nothing written, no model trained yet."""
  choose("method", config.method, METHODS)
  spec = models.get_spec(config.model)
  attack_spec = A.Attack(config.norm, targeted=bool(str(config.target)),
                         random_start=config.method == "pgd")
  eps = A.check_eps(config.eps)
  steps = steps_of(config.method, eps, config.steps)
  step_size = default_step_size(config.method, eps, steps, float(config.step_size))
  target = str(config.target)
  check(target in X.TARGETS or target.lstrip("-").isdigit(),
        f"unknown target {target!r}; allowed: '' (untargeted), least_likely, random or a class "
        "index")
  check(config.batch_size >= 1, f"batch_size must be >= 1, got {config.batch_size}")
  choose("reference", config.reference, ("", "foolbox"))
  X.check_transfer_model(config.transfer_model, spec)
  inputs = X.read_inputs(config, spec)
  A.check_inputs(inputs.images)
  model = X.model_for(config, inputs.images)
  labels = None if len(eps) == 1 else [eps_label(e) for e in eps]
  return Request(config.method, attack_spec, eps, steps, step_size, labels, inputs, model)


def run_attack(request: Request, apply_fn, variables, images, classes, key, batch_size: int,
               loop: str) -> np.ndarray:
  """(S, N, H, W, 3) adversarial images, in fixed-size batches of images (all settings in each
  batch's one compiled program)."""
  out = []
  batches = classify.padded_batches(images, min(batch_size, len(images)))
  for i, (batch, n_valid) in enumerate(batches):
    start = i * min(batch_size, len(images))
    batch_classes = np.resize(classes[start:start + n_valid], len(batch))
    result = A.attack(apply_fn, variables, batch, batch_classes, request.eps, spec=request.spec,
                      steps=request.steps, step_size=request.step_size,
                      key=jax.random.fold_in(key, i), loop=loop)
    out.append(np.asarray(result.images)[:, :n_valid])
  return np.concatenate(out, axis=1)


def accuracy_plot(workdir, eps, summaries, reference=None) -> str:
  xs = [float(e) * 255 for e in eps]
  series = {"clean": (xs, [summaries[0]["clean_accuracy"]] * len(xs)),
            "adversarial": (xs, [s["adversarial_accuracy"] for s in summaries])}
  if reference is not None:
    series["foolbox"] = (xs, reference)
  report.line_plots(workdir / "accuracy_vs_eps.png",
                    [("top-1 accuracy against eps", "eps (1/255 units)", series, False)])
  return "accuracy_vs_eps.png"


def run(config, workdir):
  request = parse(config)
  inputs = request.inputs
  with runs.Run(config, workdir) as run:
    out = run.dir
    apply_fn, variables, spec, train_results = X.model_or_trained(config, request.model, run)
    batch = int(config.batch_size)
    clean_top1, _ = X.predictions(apply_fn, variables, inputs.images, batch)
    labels = np.where(inputs.labels >= 0, inputs.labels, clean_top1).astype(np.int32)
    targets = None
    if request.spec.targeted:
      targets = X.resolve_targets(str(config.target), apply_fn, variables, inputs.images, labels,
                                int(config.seed), batch)
    with run.stage("attack"):
      adversarial = run_attack(request, apply_fn, variables, inputs.images,
                               labels if targets is None else targets, X.key(config), batch,
                               config.loop)
    stems = [X.stem(n) for n in inputs.names]
    summaries, all_records, all_paths, reference = [], [], [], None
    for s, eps in enumerate(request.eps):
      label = None if request.labels is None else request.labels[s]
      folder, jsonl = X.output_paths(out, "adversarial", label)
      saved = A.quantize(adversarial[s], inputs.images, eps, request.spec.norm)
      paths = X.save_images(folder, stems, saved)
      all_paths.append(paths)
      extras = {"target": targets} if targets is not None else None
      records = X.measure_saved(apply_fn, variables, paths, inputs.images, inputs.names,
                                inputs.labels, clean_top1, batch, extras)
      X.write_jsonl(jsonl, records)
      summary = X.attack_summary(records, targets)
      if config.transfer_model:
        other = X.transfer(config.transfer_model, paths, labels, batch)
        summary["transfer_accuracy"] = float(np.mean(other["top1"] == labels))
      summaries.append(summary)
      all_records.append(records)
    if config.reference == "foolbox":
      with run.stage("foolbox"):
        reference = foolbox_reference.accuracies(
            apply_fn, variables, inputs.images, labels, request.method, request.eps,
            request.steps, request.step_size, request.spec, targets, batch)
    headline = X.combine(summaries, request.labels or [])
    if reference is not None:
      headline["foolbox_adversarial_accuracy"] = reference if len(reference) > 1 else reference[0]
    run.summary.update({"model": config.model, "method": request.method, "norm": config.norm,
                        "targeted": request.spec.targeted, "images": len(inputs.names),
                        "labels": inputs.label_source,
                        "eps": [float(e) for e in request.eps],
                        "steps": request.steps.tolist(), **headline})
    if train_results is not None:
      run.summary["train_test_accuracy"] = train_results["test"]["center"]["mean"]["accuracy"]
    items = []
    if len(request.eps) > 1:
      items.append(("top-1 accuracy on the saved 8-bit images against eps",
                    accuracy_plot(out, request.eps, summaries, reference), None))
    last = int(np.argmax(request.eps))
    grid = X.panels(out, "examples", inputs.images, X.read_saved(all_paths[last][:8]),
                    all_records[last], spec.class_names, 8)
    if grid:
      items.append((f"image | perturbation (magnified) | adversarial at eps {request.eps[last]:.4g}"
                    " (Szegedy et al. 2014, Fig. 5 layout)", grid, None))
    table = "\n".join(f"eps {e:.5g} ({e * 255:.3g}/255), {n} steps: accuracy "
                      f"{s['clean_accuracy']:.1%} -> {s['adversarial_accuracy']:.1%}, success "
                      f"{s['success_rate']:.1%}, mean linf {s['mean_linf']:.4g}, l2 "
                      f"{s['mean_l2']:.4g}" for e, n, s in zip(request.eps, request.steps,
                                                              summaries))
    items.append(("figures per setting (measured on the saved PNGs)", None, table))
    report.write_report(out, f"{request.method} ({config.norm}): {config.model}", config,
                        [("Attack", items)], summary=run.summary)
  return run.summary
