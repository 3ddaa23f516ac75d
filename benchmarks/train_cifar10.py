"""Trains configs/alexnet_cifar10.py on the shared CIFAR-10 JPEGs on this machine and prints the
wall time and test accuracy (target: >= 75% in <= 20 minutes on a 2-core CPU).

  .venv/bin/python benchmarks/train_cifar10.py [--workdir=DIR] [--epochs=N]

Runs experiments.train.run in this process on a fresh workdir (default: a new temporary
directory), so nothing is resumed. Wall time covers everything run() does: preparing the data
(once per machine, cached under $CNN_VIS_CACHE), compiling, training, per-epoch evaluation and the
final test evaluation (centre crop and image + mirror). The reference is the target itself:
accuracy_ratio = accuracy / 0.75 and time_ratio = 1200 s / wall time, both > 1 when met.
Last line: one JSON object.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from configs import alexnet_cifar10  # noqa: E402  pylint: disable=wrong-import-position
from experiments import train  # noqa: E402  pylint: disable=wrong-import-position

TARGET_ACCURACY = 0.75
BUDGET_SECONDS = 20 * 60


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="")
  parser.add_argument("--epochs", type=int, default=0, help="override the config's epochs")
  args = parser.parse_args()
  workdir = Path(args.workdir or tempfile.mkdtemp(prefix="train_cifar10_"))
  if workdir.exists() and any(workdir.iterdir()):
    sys.exit(f"error: workdir {workdir} is not empty; the benchmark needs a fresh run")
  config = alexnet_cifar10.get_config()
  if args.epochs:
    config.epochs = args.epochs
  load_at_start = os.getloadavg()[0]  # other processes on the machine slow the run down
  start = time.perf_counter()
  results = train.run(config, str(workdir))
  wall = time.perf_counter() - start
  centre = results["test"]["center"]["mean"]
  mirror = results["test"].get("ten", {}).get("mean", {})
  print(json.dumps({
      "workdir": str(workdir), "model_kwargs": results["model_kwargs"],
      "epochs": results["epochs"], "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "cpu_count": os.cpu_count(), "load_average_at_start": load_at_start,
      "load_average_at_end": os.getloadavg()[0], "train_seconds": round(results["train_seconds"], 1),
      "test_accuracy_mirror": mirror.get("accuracy"),
      "accuracy_ratio": centre["accuracy"] / TARGET_ACCURACY,
      "time_ratio": BUDGET_SECONDS / wall,
      "wall_seconds": round(wall, 1), "test_accuracy": centre["accuracy"]}))


if __name__ == "__main__":
  main()
