"""Expands a config's `get_sweep()` into runs: one workdir per override dict.

  python -m cnn_vis.sweep --config=configs/X.py[:arg] --workdir=ROOT [--dry_run]

Each run is `python -m cnn_vis.main --config=... --config.key=value ... --workdir=ROOT/<name>`,
in its own process so one failing setting does not stop the others; an index.html of the runs is
written under ROOT at the end. Settings that a technique can batch (e.g. a list of lambdas) are
better expressed inside one config, where they run vmapped in one compiled call.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

from absl import app, flags

from cnn_vis.errors import UserError, check
from cnn_vis.report import write_index

_CONFIG = flags.DEFINE_string("config", None, "configs/X.py[:arg]")
_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory; one subdirectory per run.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Only print the commands.")


def load_sweep(config_arg: str) -> list[dict]:
  """The list of override dicts of a config file's get_sweep()."""
  path = Path(config_arg.split(":", 1)[0])
  check(path.is_file(), f"config file {str(path)!r} does not exist")
  spec = importlib.util.spec_from_file_location(f"_sweep_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  check(hasattr(module, "get_sweep"), f"{path} has no get_sweep(); nothing to sweep")
  sweep = list(module.get_sweep())
  check(bool(sweep) and all(isinstance(s, dict) for s in sweep),
        f"{path}: get_sweep() must return a non-empty list of dicts")
  return sweep


def run_name(overrides: dict) -> str:
  text = ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(overrides.items()))
  return "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in text) or "default"


def commands(config_arg: str, root: str) -> list[list[str]]:
  return [[sys.executable, "-m", "cnn_vis.main", f"--config={config_arg}",
           *(f"--config.{k}={v}" for k, v in overrides.items()),
           f"--workdir={Path(root) / run_name(overrides)}"] for overrides in load_sweep(config_arg)]


def main(argv):
  del argv
  try:
    check(bool(_CONFIG.value) and bool(_WORKDIR.value), "give --config=configs/X.py and --workdir=ROOT")
    todo = commands(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  failed = 0
  for i, command in enumerate(todo, start=1):
    print(f"[{i}/{len(todo)}] {' '.join(command[2:])}", flush=True)
    if not _DRY_RUN.value:
      failed += subprocess.run(command, check=False).returncode != 0
  if not _DRY_RUN.value:
    print(f"index: {write_index(_WORKDIR.value)}")
  if failed:
    print(f"error: {failed} of {len(todo)} runs failed", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
