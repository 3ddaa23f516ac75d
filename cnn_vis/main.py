"""Command-line entry point: `python -m cnn_vis.main --config=configs/X.py[:arg] --workdir=DIR`.

Overrides go as `--config.key=value`. Dispatches to `experiments.<config.experiment>.run`.
A user mistake (cnn_vis.errors.UserError) prints `error: <message>` and exits with status 2.
"""
import importlib
import os
import pkgutil
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

import experiments
from cnn_vis.errors import UserError, choose

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this run's outputs.")


def available_experiments() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if not m.name.startswith("_"))


def run(config, workdir: str):
  """Runs the experiment a config names; returns what its run() returns."""
  name = config.get("experiment")
  choose("experiment", name, available_experiments())
  if not workdir:
    raise UserError("no --workdir given; pass --workdir=DIR")
  return importlib.import_module(f"experiments.{name}").run(config, workdir)


def _maybe_initialize_distributed():
  """Multi-host runs: every host sets JAX_COORDINATOR_ADDRESS (launch.sh documents the rest)."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    jax.distributed.initialize()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None:
    print("error: no --config given; pass --config=configs/NAME.py", file=sys.stderr)
    sys.exit(2)
  _maybe_initialize_distributed()
  try:
    run(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def entry():
  logging.set_verbosity(logging.WARNING)
  app.run(main)


if __name__ == "__main__":
  entry()
