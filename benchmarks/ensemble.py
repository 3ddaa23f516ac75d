"""Ensemble of 5 AlexNets on CIFAR-10: test error of the averaged softmax vs the mean single
member (Krizhevsky et al. 2012, Table 2: 5 nets bring ILSVRC-2012 top-5 error from 18.2% to 16.4%,
a 10% relative reduction; target here: >= 8%).

  .venv/bin/python benchmarks/ensemble.py [--members=5] [--epochs=5] [--workdir=DIR]

Trains configs/alexnet_cifar10.py with ensemble.members = --members in one run (members differ by
seed: init, dropout, crops, flips, lighting; they share the batches), all members in one compiled
step (--mode: unroll, the config's CPU setting, or vmap / map; see cnn_vis/train/ensemble.py).
Reports every member's, the mean member's and the ensemble's top-1 test error (centre crop). error_reduction_ratio = (relative error reduction) / 0.08, > 1 when the target is met.
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

TARGET_REDUCTION = 0.08


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--members", type=int, default=5)
  parser.add_argument("--epochs", type=int, default=5)
  parser.add_argument("--mode", default="unroll", choices=("unroll", "vmap", "map"))
  parser.add_argument("--workdir", default="")
  args = parser.parse_args()
  workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ensemble_"))
  config = alexnet_cifar10.get_config()
  config.ensemble.members = args.members
  config.ensemble.mode = args.mode
  config.epochs = args.epochs
  config.test_crops = ("center",)
  start = time.perf_counter()
  results = train.run(config, str(workdir))
  test = results["test"]["center"]
  member_errors = [1 - m["accuracy"] for m in test["members"]]
  single = sum(member_errors) / len(member_errors)
  ensemble = 1 - test["ensemble"]["accuracy"]
  reduction = 1 - ensemble / single
  print(train.error_table(results))
  print(json.dumps({
      "workdir": str(workdir), "members": args.members, "epochs": args.epochs,
      "mode": args.mode, "wall_seconds": round(time.perf_counter() - start, 1),
      "member_errors": member_errors, "single_error_mean": single, "ensemble_error": ensemble,
      "single_top5_error_mean": 1 - test["mean"]["top5"],
      "ensemble_top5_error": 1 - test["ensemble"]["top5"],
      "relative_error_reduction": reduction,
      "error_reduction_ratio": reduction / TARGET_REDUCTION}))


if __name__ == "__main__":
  main()
