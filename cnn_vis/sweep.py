"""A config's `get_sweep()` as jobs: one run per override dict, each in its own process, through
submitit (https://github.com/facebookincubator/submitit) on this machine or a Slurm cluster.

  python -m cnn_vis.sweep --config=configs/X.py[:arg] --workdir=ROOT            # local
  python -m cnn_vis.sweep --config=configs/X.py --workdir=ROOT --executor=slurm \
      --partition=gpu --nodes=2 --gpus_per_node=4 --time=600

Every setting is built and checked before anything is submitted (an unknown key or a bad value
is one line `error: ...`, exit status 2). ROOT/sweep.json lists the settings and their run names;
setting NAME runs in ROOT/NAME/ (its report, summary.json, status.json), submitit's logs go to
ROOT/.submitit/. `local` (the default) runs `--parallel` settings at a time and waits; `slurm`
submits one array job (by default one task per node; with several tasks per run each calls
jax.distributed.initialize(), which reads the cluster from Slurm's environment, and process 0
writes the outputs) and returns unless --wait. The Slurm options come from the flags, else from
the config's `slurm` fields (partition, nodes, gpus_per_node, tasks_per_node, time,
cpus_per_task, account), else SLURM_DEFAULTS. At
the end ROOT/index.html compares the settings' summary figures (also `launch.sh report ROOT`).

Settings a technique can batch (e.g. a list of lambdas) are better expressed inside one config,
where they run vmapped in one compiled call.
"""
import shlex
import sys
import time
from pathlib import Path

import submitit
from absl import app, flags

import experiments
from cnn_vis import configuration, runs
from cnn_vis.errors import UserError, check, choose
from cnn_vis.report import write_index

# The sweep's own flags (cnn_vis.main defines --config and --workdir too; both modules may be
# imported in one process, e.g. by the tests).
FLAGS = flags.FlagValues()
_CONFIG = flags.DEFINE_string("config", None, "configs/X.py[:arg]", flag_values=FLAGS)
_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory; one subdirectory per run.",
                               flag_values=FLAGS)
_EXECUTOR = flags.DEFINE_enum("executor", "local", ["local", "slurm"], "Where the runs go.",
                              flag_values=FLAGS)
_PARALLEL = flags.DEFINE_integer("parallel", 1, "local: settings running at once.",
                                 flag_values=FLAGS)
_WAIT = flags.DEFINE_bool("wait", None, "Wait for every run (default: local yes, slurm no).",
                          flag_values=FLAGS)
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Only list the settings.", flag_values=FLAGS)
_PARTITION = flags.DEFINE_string("partition", None, "slurm: partition.", flag_values=FLAGS)
_NODES = flags.DEFINE_integer("nodes", None, "slurm: nodes per run (multi-host JAX if > 1).",
                              flag_values=FLAGS)
_GPUS = flags.DEFINE_integer("gpus_per_node", None, "slurm: GPUs per node.", flag_values=FLAGS)
_TASKS = flags.DEFINE_integer("tasks_per_node", None, "slurm: processes per node (default 1: "
                              "one JAX process drives every device of its node).",
                              flag_values=FLAGS)
_TIME = flags.DEFINE_integer("time", None, "Time limit per run, minutes.", flag_values=FLAGS)
_CPUS = flags.DEFINE_integer("cpus_per_task", None, "slurm: CPUs per task.", flag_values=FLAGS)
_ACCOUNT = flags.DEFINE_string("account", None, "slurm: account.", flag_values=FLAGS)

SLURM_FIELDS = ("partition", "nodes", "gpus_per_node", "tasks_per_node", "time", "cpus_per_task",
                "account")
SLURM_DEFAULTS = {"partition": None, "nodes": 1, "gpus_per_node": 0, "tasks_per_node": 1,
                  "time": 240, "cpus_per_task": None, "account": None}


def load_sweep(config_arg: str) -> list[dict]:
  """The list of override dicts of a config file's get_sweep()."""
  path = config_arg.split(":", 1)[0]
  module = configuration.load_module(path)
  check(hasattr(module, "get_sweep"), f"{path} has no get_sweep(); nothing to sweep")
  sweep = list(module.get_sweep())
  check(bool(sweep) and all(isinstance(s, dict) for s in sweep),
        f"{path}: get_sweep() must return a non-empty list of dicts")
  return sweep


def run_name(overrides: dict) -> str:
  text = ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(overrides.items()))
  return "".join(c if c.isalnum() or c in "=,.-_" else "_" for c in text) or "default"


def plan(config_arg: str) -> list[tuple[str, dict]]:
  """(run name, overrides) of every setting, each applied to the config and checked."""
  settings = [(run_name(overrides), overrides) for overrides in load_sweep(config_arg)]
  for _, overrides in settings:
    config = configuration.load_config(config_arg)
    configuration.set_fields(config, overrides, config_arg)
    configuration.check_values(config)
  names = [name for name, _ in settings]
  check(len(set(names)) == len(names), f"get_sweep() of {config_arg} gives settings with the "
                                       f"same run name: {sorted(n for n in names if names.count(n) > 1)}")
  return settings


def run_setting(config_arg: str, overrides: dict, workdir: str, command: str, note: str) -> dict:
  """One setting (a submitit job, in its own process): {"status", "error", "seconds"}."""
  start = time.time()
  runs.initialize_distributed()
  path, _, arg = config_arg.partition(":")
  try:
    config = configuration.set_fields(configuration.load_config(config_arg), overrides,
                                      config_arg)
    config.lock()
    with runs.origin(command=command, config_file=path, config_arg=arg, started=start,
                     overrides=tuple(f"{k}={v}" for k, v in overrides.items()), note=note):
      experiments.run(config, workdir)
  except UserError as e:
    return {"status": "failed", "error": str(e).splitlines()[0], "seconds": time.time() - start}
  return {"status": "ok", "error": "", "seconds": time.time() - start}


def slurm_options(config, given: dict) -> dict:
  """The Slurm options: given (the flags; None: not given), else the config's `slurm` fields,
  else SLURM_DEFAULTS."""
  from_config = config.get("slurm") or {}
  options = {k: given[k] if given.get(k) is not None else from_config.get(k, SLURM_DEFAULTS[k])
             for k in SLURM_FIELDS}
  for key in ("nodes", "tasks_per_node"):
    check(int(options[key]) >= 1, f"--{key} must be >= 1, got {options[key]}")
  check(int(options["gpus_per_node"]) >= 0, f"--gpus_per_node must be >= 0, got "
                                            f"{options['gpus_per_node']}")
  check(int(options["time"]) >= 1, f"--time must be >= 1 minute, got {options['time']}")
  return options


def executor(kind: str, root: Path, options: dict, count: int):
  """A submitit executor writing its files to root/.submitit."""
  choose("executor", kind, ("local", "slurm"))
  folder = root / ".submitit" / "%j"
  if kind == "local":
    local = submitit.LocalExecutor(folder=folder)
    local.update_parameters(timeout_min=int(options["time"]), tasks_per_node=1)
    return local
  slurm = submitit.SlurmExecutor(folder=folder)
  parameters = {"job_name": f"cnn_vis:{root.name}", "time": int(options["time"]),
                "nodes": int(options["nodes"]), "ntasks_per_node": int(options["tasks_per_node"]),
                "array_parallelism": count}
  if int(options["gpus_per_node"]):
    parameters["gpus_per_node"] = int(options["gpus_per_node"])
  for key in ("partition", "cpus_per_task", "account"):
    if options[key]:
      parameters[key] = options[key]
  slurm.update_parameters(**parameters)
  return slurm


def _outcome(job) -> dict:
  try:
    return job.result()
  except Exception as e:   # pylint: disable=broad-except - a crashed job is reported, not raised
    last = [line for line in str(e).splitlines() if line.strip()]
    return {"status": "failed", "error": f"{last[-1] if last else type(e).__name__} "
                                         f"(log: {job.paths.stderr})", "seconds": None}


def _report_line(i: int, count: int, name: str, outcome: dict, root: Path) -> str:
  seconds = outcome.get("seconds")
  line = f"[{i}/{count}] {name:<28s} {outcome['status']:<6s} " + \
      (f"{seconds:7.1f} s  " if seconds is not None else "") + str(root / name / "report.html")
  return line + (f"  ({outcome['error']})" if outcome.get("error") else "")


def run_all(settings, submit, parallel: int, root: Path) -> list[dict]:
  """Submits the settings `parallel` at a time (local) and waits for each; prints a line as
  each ends."""
  pending, running, outcomes = list(settings), {}, []
  while pending or running:
    while pending and len(running) < parallel:
      name, overrides = pending.pop(0)
      running[name] = submit(name, overrides)
    for name, job in list(running.items()):
      if job.done():
        del running[name]
        outcomes.append(_outcome(job))
        print(_report_line(len(outcomes), len(settings), name, outcomes[-1], root), flush=True)
    time.sleep(0.2)
  return outcomes


def main(argv):
  del argv
  try:
    check(bool(_CONFIG.value) and bool(_WORKDIR.value),
          "give --config=configs/X.py[:arg] and --workdir=ROOT")
    check(_PARALLEL.value >= 1, f"--parallel must be >= 1, got {_PARALLEL.value}")
    path, _, arg = _CONFIG.value.partition(":")
    config_arg = str(Path(path).resolve()) + (f":{arg}" if arg else "")
    configuration.load_module(path)   # a missing file is named as given
    settings = plan(config_arg)
    options = slurm_options(configuration.load_config(config_arg), {
        "partition": _PARTITION.value, "nodes": _NODES.value, "gpus_per_node": _GPUS.value,
        "tasks_per_node": _TASKS.value, "time": _TIME.value, "cpus_per_task": _CPUS.value,
        "account": _ACCOUNT.value})
    root = Path(_WORKDIR.value)
    check(runs.writable(root), f"sweep root {str(root)!r} is not writable; choose another --workdir")
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  for i, (name, overrides) in enumerate(settings, start=1):
    print(f"[{i}/{len(settings)}] {name}: {overrides}", flush=True)
  if _DRY_RUN.value:
    return
  root.mkdir(parents=True, exist_ok=True)
  command = shlex.join(["python", "-m", "cnn_vis.sweep", *sys.argv[1:]])
  record = {"config": _CONFIG.value, "executor": _EXECUTOR.value, "options": options,
            "runs": [{"name": n, "overrides": o} for n, o in settings]}
  runs.write_json(root / "sweep.json", record)
  jobs_executor = executor(_EXECUTOR.value, root, options, len(settings))

  def submit(name, overrides):
    return jobs_executor.submit(run_setting, config_arg, overrides, str(root / name), command,
                                f"setting {name} of the sweep in {root}")

  wait = _WAIT.value if _WAIT.value is not None else _EXECUTOR.value == "local"
  if _EXECUTOR.value == "slurm":
    with jobs_executor.batch():   # one array job
      jobs = [submit(name, overrides) for name, overrides in settings]
    for entry, job in zip(record["runs"], jobs):
      entry["job_id"] = job.job_id
    runs.write_json(root / "sweep.json", record)
    kind = "array job" if len(jobs) > 1 else "job"
    print(f"submitted Slurm {kind} {jobs[0].job_id.split('_')[0]} ({len(jobs)} runs); logs in "
          f"{root / '.submitit'}", flush=True)
    if not wait:
      print(f"follow with: bash launch.sh report {root}")
      return
    outcomes = []
    for job in submitit.helpers.as_completed(jobs, poll_frequency=2):
      name = settings[jobs.index(job)][0]
      outcomes.append(_outcome(job))
      print(_report_line(len(outcomes), len(settings), name, outcomes[-1], root), flush=True)
  else:
    outcomes = run_all(settings, submit, _PARALLEL.value, root)
  print(f"index: {write_index(root)}")
  failed = sum(o["status"] != "ok" for o in outcomes)
  if failed:
    print(f"error: {failed} of {len(settings)} runs failed", file=sys.stderr)
    sys.exit(1)


def parse_flags(argv):
  """absl's flag parsing, a mistake as one line `error: ...` and status 2."""
  try:
    rest = FLAGS(argv)
    flags.FLAGS(argv[:1])   # absl's app reads its own flags from the global set
    return rest
  except flags.Error as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
