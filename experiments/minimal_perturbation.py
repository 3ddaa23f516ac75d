"""Minimal perturbations (cnn_vis.techniques.minimal_perturbation): DeepFool (Moosavi-Dezfooli
et al. 2016) or Szegedy et al. 2014's box-constrained L-BFGS, on an image folder or a dataset.

config.method: deepfool (untargeted: away from the clean prediction; candidates, overshoot,
max_iter, boundary_rounds) | lbfgs (towards config.target: random, least_likely or a class index; c_values,
c_rounds, steps, box). Per image the continuous perturbation r is the method's result; the saved
8-bit image is x + t r rounded, t the first factor of a ladder from 1 at which the rounded image
still fools (minimal_perturbation.round_adversarial), and adversarial.jsonl's linf, l2 and rho
are measured on that file; `l2_continuous`, `rho_continuous` (and DeepFool's `iterations`,
`fooled_at_r`, `fooled_at_0.95r`, L-BFGS's `c`) give the method's own r.

Summary: clean_accuracy, adversarial_accuracy, success_rate, mean_linf, mean_l2, mean_rho (saved
files), success_rate_continuous, mean_l2_continuous, mean_rho_continuous (DeepFool's Table 1
rho_adv = mean ||r||_2 / ||x||_2), for DeepFool boundary_flip (fraction flipped at r) and
boundary_back (fraction back to the clean class at 0.95 r); with config.compare_fgsm the FGSM
column of Table 1 (fgsm_mean_rho: rho of the smallest fooling FGSM eps per image, over the images
it fools within fgsm_eps_max); with config.reference = "foolbox" foolbox 3's L2DeepFoolAttack on
the same weights and images (foolbox_mean_l2, l2_ratio = ours / foolbox). Writes
W/adversarial/<stem>.png, W/adversarial.jsonl, examples.png (Szegedy et al.'s Fig. 5 layout:
image | perturbation magnified | adversarial, with both labels) and report.html.
"""
import dataclasses

import numpy as np

from cnn_vis import models, report, runs
from cnn_vis.errors import check, choose, whole_number
from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import classify, foolbox_reference
from cnn_vis.techniques import minimal_perturbation as M

from experiments import _adversarial as X

METHODS = ("deepfool", "lbfgs")


@dataclasses.dataclass
class Request:
  method: str
  inputs: X.Inputs
  model: tuple | None   # (apply_fn, variables, spec), or None when the run trains it first


def parse(config) -> Request:
  """Everything checked and the inputs read; nothing written."""
  choose("method", config.method, METHODS)
  spec = models.get_spec(config.model)
  whole_number("candidates", config.candidates)
  whole_number("max_iter", config.max_iter)
  check(np.isfinite(config.overshoot) and config.overshoot >= 0,
        f"overshoot must be a finite number >= 0, got {config.overshoot}")
  whole_number("boundary_rounds", config.boundary_rounds, least=0)
  whole_number("steps", config.steps)
  choose("box constraint", config.box, M.BOXES)
  target = str(config.target)
  check(target in ("random", "least_likely") or target.lstrip("-").isdigit(),
        f"unknown target {target!r}; allowed: random, least_likely or a class index")
  check(config.batch_size >= 1, f"batch_size must be >= 1, got {config.batch_size}")
  choose("reference", config.reference, ("", "foolbox"))
  check(not config.reference or config.method == "deepfool",
        "reference foolbox compares DeepFool only; set method=deepfool")
  A.check_eps(config.fgsm_eps_max)
  X.check_transfer_model(config.transfer_model, spec)
  inputs = X.read_inputs(config, spec)
  A.check_inputs(inputs.images)
  return Request(config.method, inputs, X.model_for(config, inputs.images))


def in_batches(fn, arrays, batch_size: int):
  """fn(*batch) -> MinimalResult over fixed-size batches of the arrays (the last one padded)."""
  n = len(arrays[0])
  size = min(batch_size, n)
  parts = []
  for start in range(0, n, size):
    stop = min(start + size, n)
    batch = [np.resize(a[start:stop], (size,) + a.shape[1:]) for a in arrays]
    result = fn(*batch)
    parts.append(M.MinimalResult(*(v[:stop - start] for v in result[:5]),
                                 {k: v[:stop - start] for k, v in result.extras.items()}))
  return M.MinimalResult(*(np.concatenate([p[i] for p in parts]) for i in range(5)),
                         {k: np.concatenate([p.extras[k] for p in parts])
                          for k in parts[0].extras})


def continuous_figures(images, perturbations) -> dict:
  flat = perturbations.reshape(len(images), -1)
  l2 = np.linalg.norm(flat, axis=1)
  return {"l2_continuous": l2, "linf_continuous": np.abs(flat).max(axis=1),
          "rho_continuous": l2 / np.linalg.norm(images.reshape(len(images), -1), axis=1)}


def run(config, workdir):
  request = parse(config)
  inputs = request.inputs
  with runs.Run(config, workdir) as run:
    out = run.dir
    apply_fn, variables, spec, _ = X.model_or_trained(config, request.model, run)
    batch = int(config.batch_size)
    clean_top1, _ = X.predictions(apply_fn, variables, inputs.images, batch)
    targeted = request.method == "lbfgs"
    with run.stage(request.method):
      if targeted:
        targets = X.resolve_targets(str(config.target), apply_fn, variables,
                                    inputs.images, clean_top1, int(config.seed), batch)
        result = in_batches(lambda x, t: M.lbfgs_attack(
            apply_fn, variables, x, t, c_values=tuple(config.c_values), rounds=config.c_rounds,
            steps=config.steps, box=config.box, loop=config.loop), (inputs.images, targets), batch)
        goal = targets
      else:
        result = in_batches(lambda x: M.deepfool(
            apply_fn, variables, x, candidates=config.candidates, overshoot=config.overshoot,
            max_iter=config.max_iter, boundary_rounds=int(config.boundary_rounds),
            loop=config.loop), (inputs.images,), batch)
        goal = result.clean
    extras = {**continuous_figures(inputs.images, result.perturbations), **result.extras}
    summary = {}
    if not targeted:
      flipped, flipped_back = [], []
      for start in range(0, len(inputs.images), batch):
        part = slice(start, start + batch)
        at_r, at_shorter = M.boundary_check(apply_fn, variables, inputs.images[part],
                                            result.perturbations[part], result.clean[part])
        flipped.append(at_r)
        flipped_back.append(~at_shorter)
      extras["fooled_at_r"], extras["back_at_0.95r"] = np.concatenate(flipped), np.concatenate(
          flipped_back)
      summary.update(boundary_flip=float(extras["fooled_at_r"].mean()),
                     boundary_back=float(extras["back_at_0.95r"].mean()))
    saved, scale = M.round_adversarial(apply_fn, variables, inputs.images, result.perturbations,
                                       goal, targeted=targeted)
    extras["rounding_scale"] = scale
    if targeted:
      extras["target"] = targets
    paths = X.save_images(out / "adversarial", [X.stem(n) for n in inputs.names], saved)
    records = X.measure_saved(apply_fn, variables, paths, inputs.images, inputs.names,
                              inputs.labels, clean_top1, batch, extras)
    X.write_jsonl(out / "adversarial.jsonl", records)
    summary.update(X.attack_summary(records, targets if targeted else None))
    fooled = result.fooled
    summary.update(success_rate_continuous=float(fooled.mean()),
                   mean_l2_continuous=float(extras["l2_continuous"][fooled].mean()),
                   mean_rho_continuous=float(extras["rho_continuous"][fooled].mean()))
    if config.compare_fgsm:
      with run.stage("fgsm"):
        eps, fgsm_images = [], []
        size = min(batch, len(inputs.images))
        for i, (x, n_valid) in enumerate(classify.padded_batches(inputs.images, size)):
          y = np.resize(clean_top1[i * size:i * size + n_valid], len(x))
          e, adv = M.fgsm_minimal_eps(apply_fn, variables, x, y, eps_max=config.fgsm_eps_max)
          eps.append(e[:n_valid])
          fgsm_images.append(adv[:n_valid])
        eps, fgsm_images = np.concatenate(eps), np.concatenate(fgsm_images)
      ok = np.isfinite(eps)
      fgsm_rho = continuous_figures(inputs.images, fgsm_images - inputs.images)["rho_continuous"]
      summary.update(fgsm_success_rate=float(ok.mean()),
                     fgsm_mean_rho=float(fgsm_rho[ok].mean()) if ok.any() else float("nan"),
                     fgsm_mean_eps=float(eps[ok].mean()) if ok.any() else float("nan"))
    if config.reference == "foolbox":
      with run.stage("foolbox"):
        theirs = np.concatenate([foolbox_reference.deepfool(
            apply_fn, variables, inputs.images[i:i + batch], candidates=config.candidates,
            overshoot=config.overshoot, max_iter=config.max_iter)
            for i in range(0, len(inputs.images), batch)])
      their_l2 = np.linalg.norm(theirs.reshape(len(theirs), -1), axis=1)
      summary.update(foolbox_mean_l2=float(their_l2.mean()),
                     l2_ratio=float(extras["l2_continuous"].mean() / their_l2.mean()))
    if config.transfer_model:
      other = X.transfer(config.transfer_model, paths, clean_top1, batch)
      summary["transfer_success_rate"] = float(np.mean(other["top1"] != clean_top1))
    run.summary.update({"model": config.model, "method": request.method,
                        "images": len(inputs.names), "labels": inputs.label_source, **summary})
    items = []
    grid = X.panels(out, "examples", inputs.images, X.read_saved(paths[:8]), records,
                    spec.class_names, 8)
    if grid:
      items.append(("image | perturbation (magnified; the saved 8-bit one) | adversarial, with "
                    "the labels before and after (Szegedy et al. 2014, Fig. 5 layout)", grid, None))
    lines = [f"{r['source']}: {spec.class_names[r['clean_top1']]} -> "
             f"{spec.class_names[r['adv_top1']]} ({r['adv_prob']:.2f}); ||r||_2 {r['l2']:.4g} "
             f"(continuous {r['l2_continuous']:.4g}), rho {r['rho']:.3g} "
             f"(continuous {r['rho_continuous']:.3g}), ||r||_inf {r['linf']:.4g}"
             for r in records]
    items.append(("per image (the saved file; in brackets the method's continuous r)", None,
                  "\n".join(lines)))
    report.write_report(out, f"{request.method}: {config.model}", config,
                        [("Minimal perturbations", items)], summary=run.summary)
  return run.summary
