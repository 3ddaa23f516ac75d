"""Command-line entry point: `python -m cnn_vis.main --config=configs/X.py[:arg] --workdir=DIR`.

Overrides go as `--config.key=value` (`--config.overwrite=True` lets a different config replace
the run in a used workdir). Dispatches to `experiments.<config.experiment>.run` and ends with one
line naming the report (`report: DIR/report.html`).

Every mistake in what was asked for is one line `error: ...` on stderr and exit status 2, with
no traceback and nothing written: a config file that does not exist (the closest existing ones
are named), an unknown `:arg` (the config's get_config raises it), a `--config.key` the config
does not have (its keys are listed, the closest first), a value that does not parse or is not
finite (nan or inf anywhere, also inside a tuple given as text), an unwritable workdir, and every
cnn_vis.errors.UserError an experiment raises.

Multi-host: under Slurm with several tasks (srun, or `launch.sh sweep --executor=slurm
--nodes=N`) every process calls jax.distributed.initialize(), which reads the coordinator,
process count and id from Slurm's environment; elsewhere set JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID on every host.
"""
import re
import shlex
import sys
import time
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

import experiments
from cnn_vis import configuration, runs
from cnn_vis.errors import UserError, check

# New attributes are accepted here only where preflight() lets them through: `overwrite` and
# model options (--config.model_kwargs.width=0.5); every other unknown key is refused there.
# parse_flags locks the config once it is read.
_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file[:arg].",
                                          lock_config=False, accept_new_attributes=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this run's outputs.")


def available_experiments() -> list[str]:
  return experiments.available()


def run(config, workdir: str):
  """Runs the experiment a config names; returns what its run() returns."""
  return experiments.run(config, workdir)


# ------------------------------------------------------------------------------------------------
# What the command line asks of a config.

_OVERRIDE = re.compile(r"^--?(no)?config\.([^=\s]+)(?:=(.*))?$", re.DOTALL)


def override_key(arg: str) -> str | None:
  """KEY of a --config.KEY[=VALUE] or --noconfig.KEY argument, else None."""
  match = _OVERRIDE.match(arg)
  return match.group(2) if match else None


def config_argument(argv) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith(("--config=", "-config=")):
      return arg.partition("=")[2]
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
  return None


def preflight(argv) -> None:
  """Checks the config file, its :arg and every --config.KEY before absl parses them."""
  config_arg = config_argument(argv[1:])
  check(config_arg is not None, "no --config given; pass --config=configs/NAME.py[:arg]")
  config = configuration.load_config(config_arg)
  for arg in argv[1:]:
    key = override_key(arg)
    if key is not None and not configuration.is_open_key(config, key):
      configuration.check_key(config, key, arg, config_arg)


def _fail(message) -> None:
  print(f"error: {str(message).strip().splitlines()[0] if str(message).strip() else message}",
        file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl's flag parsing, with every config-level mistake as one line and exit status 2."""
  try:
    preflight(argv)
    rest = flags.FLAGS(argv)
    config = _CONFIG.value
    configuration.check_values(config)
    overwrite = config.get(configuration.OVERWRITE, False)
    check(isinstance(overwrite, bool), f"--config.overwrite must be True or False, got "
                                       f"{overwrite!r}")
    config.lock()
    return rest
  except UserError as e:
    _fail(e)
  except (flags.Error, OSError, SyntaxError, ImportError) as e:   # a config that does not load
    _fail(" ".join(f"{type(e).__name__ if not isinstance(e, flags.Error) else ''} {e}".split()))


# ------------------------------------------------------------------------------------------------

def main(argv):
  started = time.time()
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}; overrides go as --config.key=value")
  runs.initialize_distributed()
  config_arg = config_argument(sys.argv) or ""
  path, _, arg = config_arg.partition(":")
  overrides = tuple(a.lstrip("-") for a in sys.argv[1:] if override_key(a))
  try:
    with runs.origin(command=shlex.join(["python", "-m", "cnn_vis.main", *sys.argv[1:]]),
                     config_file=path, config_arg=arg,
                     overrides=overrides, started=started):
      run(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    _fail(e)
  except KeyboardInterrupt:
    print("error: interrupted; outputs of finished runs are kept", file=sys.stderr)
    sys.exit(130)
  print(f"report: {Path(_WORKDIR.value) / 'report.html'}")


def entry():
  logging.set_verbosity(logging.WARNING)
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  entry()
