"""Train an AlexNet-family network (Krizhevsky et al. 2012) or an ensemble of them.

    python -m cnn_vis.main --config=configs/alexnet_cifar10.py --workdir=runs/cifar10

The loop is cnn_vis.train.loop.train_and_evaluate (config.json, checkpoints/ resumed on a rerun,
metrics.jsonl, tensorboard/, results.json); this experiment adds report.html: the curves, the
learning rate and the error of every member, their mean and the ensemble.
"""
from pathlib import Path

import jax

from cnn_vis import report, runs
from cnn_vis.train import loop


def run(config, workdir):
  """Trains (or resumes), evaluates and writes the report; returns the results dict."""
  setup = loop.prepare(config, workdir)
  with runs.Run(config, workdir, resume=True) as run:
    results = loop.train_and_evaluate(setup, run.dir)
    if jax.process_index() == 0:
      run.summary.update(write_train_report(run.dir, config, results))
  return results


def error_table(results: dict) -> str:
  """Top-1/top-5 test error of every member, their mean and the ensemble, per crop mode."""
  lines = []
  for crops, result in results["test"].items():
    lines.append(f"{crops} crop{'s' if crops == 'ten' else ''}    top-1 err   top-5 err")
    for i, m in enumerate(result["members"]):
      lines.append(f"  member {i:<8d} {1 - m['accuracy']:9.2%}   {1 - m['top5']:9.2%}")
    mean, ens = result["mean"], result["ensemble"]
    if len(result["members"]) > 1:
      lines.append(f"  single (mean) {1 - mean['accuracy']:9.2%}   {1 - mean['top5']:9.2%}")
      lines.append(f"  ensemble      {1 - ens['accuracy']:9.2%}   {1 - ens['top5']:9.2%}")
      reduction = 1 - (1 - ens["accuracy"]) / max(1 - mean["accuracy"], 1e-12)
      lines.append(f"  ensemble reduces top-1 error by {reduction:.1%} relative to a single member")
  return "\n".join(lines)


def metric_series(records: list[dict], key: str) -> tuple[list, list]:
  """(steps, values) of one metric; a resumed run repeats steps, the last value counts."""
  by_step = {r["step"]: r[key] for r in records if key in r}
  return sorted(by_step), [by_step[s] for s in sorted(by_step)]


def plot_curves(workdir: Path, records: list[dict]) -> str:
  """curves.png: losses, accuracies and the learning rate against step; returns its name."""
  series = lambda keys: {k: metric_series(records, k) for k in keys}
  report.line_plots(workdir / "curves.png", [
      ("loss", "step", series(("train/loss", "eval/loss")), False),
      ("accuracy", "step", series(("train/accuracy", "eval/accuracy", "eval/ensemble_accuracy")),
       False),
      ("learning rate", "step", series(("lr",)), True)])
  return "curves.png"


def write_train_report(workdir: Path, config, results: dict) -> dict:
  """report.html (curves, error table); returns its summary of headline figures."""
  records = runs.read_metrics(workdir)
  curves = plot_curves(workdir, records)
  main = results["test"].get("center") or next(iter(results["test"].values()))
  summary = {"model": results["model"], "dataset": results["dataset"], "steps": results["steps"],
             "epochs": round(results["epochs"], 2), "members": results["members"],
             "test accuracy (single)": main["mean"]["accuracy"],
             "test top-5 (single)": main["mean"]["top5"],
             "train+eval seconds": round(results["wall_seconds"], 1)}
  if results["members"] > 1:
    summary["test accuracy (ensemble)"] = main["ensemble"]["accuracy"]
  report.write_report(workdir, f"train: {config.model} on {config.dataset}", config, [
      ("Training curves", [("loss, accuracy and learning rate (log scale) by step", curves, None)]),
      ("Final test error", [(f"split {results['test_split']}", None, error_table(results))]),
  ], summary=summary)
  return summary
