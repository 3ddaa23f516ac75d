"""What every experiment does first and last: read its inputs, run in its workdir without ever
mixing with or losing an earlier run, record config, metrics, summary and run facts.

    with runs.origin(command="...", config_file="configs/x.py", overrides=("steps=5",)):
      with runs.Run(config, workdir) as run:    # validated, staged; committed only on success
        with run.stage("render"): ...
        run.summary.update(accuracy=0.9)        # -> summary.json and the report's summary

`origin` says how a run was asked for (main.py, a sweep job or a tour stage sets it); `Run`
records it in run.json with the git commit, versions, device and the time of every stage.
"""
import contextlib
import contextvars
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import tqdm

from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError, check


def config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") \
      else dict(config)


def _flat(tree, prefix: str = "") -> dict:
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, f"{prefix}{key}."))
  return {k.rstrip("."): v for k, v in out.items()}


# Keys that do not change what a run computes, ignored when a rerun is compared with config.json.
NOT_RESULTS = ("overwrite", "slurm")


def config_differences(old: dict, new: dict) -> list[str]:
  """Dotted keys whose values differ between two config dicts (ignoring NOT_RESULTS)."""
  old, new = _flat(old), _flat(new)
  keys = sorted((set(old) | set(new)) - set(NOT_RESULTS))
  return [k for k in keys if old.get(k, "<missing>") != new.get(k, "<missing>")]


def write_json(path, record) -> Path:
  """Writes JSON atomically (a temporary file renamed over the target)."""
  return write_text(path, json.dumps(record, indent=2, sort_keys=True, default=_json_default))


def read_json(path, default=None):
  """A JSON file's content, or `default` if it is missing or unreadable."""
  try:
    return json.loads(Path(path).read_text())
  except (OSError, ValueError):
    return default


def _json_default(value):
  if isinstance(value, (np.integer, np.floating, np.bool_)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def writable(path: Path) -> bool:
  """path (or, if it does not exist yet, its nearest existing parent) is a folder a file can be
  created in. Tried for real: root passes every permission check, not a read-only mount."""
  while not path.exists():
    path = path.parent
  if not path.is_dir():
    return False
  try:
    with tempfile.TemporaryFile(dir=path):
      return True
  except OSError:
    return False


def _git_state() -> dict:
  """{"commit", "dirty"} of the repository holding this code, if it is one."""
  repo = Path(__file__).resolve().parents[1]
  try:
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                            text=True, timeout=10, check=True).stdout.strip()
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=10, check=True).stdout
    return {"commit": commit, "dirty": bool(status.strip())}
  except (OSError, subprocess.SubprocessError):
    return {"commit": None, "dirty": None}


VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "ml-collections", "cnn_vis")


def _versions() -> dict:
  out = {"python": platform.python_version()}
  for package in VERSIONED_PACKAGES:
    try:
      out[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def initialize_distributed() -> None:
  """jax.distributed.initialize() when this process is one of several: several Slurm tasks
  (JAX reads the coordinator, process count and id from Slurm's environment) or
  JAX_COORDINATOR_ADDRESS set by hand (with JAX_NUM_PROCESSES and JAX_PROCESS_ID). Call it
  before anything touches a device."""
  slurm_tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or 1)
  if os.environ.get("JAX_COORDINATOR_ADDRESS") or ("SLURM_JOB_ID" in os.environ and
                                                   slurm_tasks > 1):
    jax.distributed.initialize()


def _slurm_job() -> str | None:
  """The Slurm job (array job_task) this process runs in, if any."""
  env = os.environ
  if env.get("SLURM_ARRAY_JOB_ID"):
    return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
  return env.get("SLURM_JOB_ID")


@dataclasses.dataclass(frozen=True)
class Origin:
  """How a run was asked for, as run.json and the report show it.

  command: the command line (or, for a tour's stage, what started the tour);
  config_file, config_arg: `configs/X.py` and the `:arg` given to its get_config;
  overrides: ("key=value", ...) applied on top, in order; note: anything else worth saying (a
  tour stage says what it reduced); started: time.time() when the request was read, so the time
  spent before the run (config, model, validation) is the `prepare` stage.
  """
  command: str = ""
  config_file: str = ""
  config_arg: str = ""
  overrides: tuple = ()
  note: str = ""
  started: float | None = None


_ORIGIN: contextvars.ContextVar = contextvars.ContextVar("cnn_vis_origin", default=None)
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("cnn_vis_run", default=None)


@contextlib.contextmanager
def origin(**fields):
  """Every Run started inside records these Origin fields (default command: sys.argv)."""
  token = _ORIGIN.set(Origin(**{"command": " ".join(sys.argv), **fields}))
  try:
    yield
  finally:
    _ORIGIN.reset(token)


def current_origin() -> Origin:
  return _ORIGIN.get() or Origin(command=" ".join(sys.argv))


def current_run() -> "Run | None":
  """The innermost Run being executed (the report asks it for the run's facts)."""
  return _CURRENT.get()


class Run:
  """One run of an experiment in its workdir.

      request = parse(config)                     # everything validated; nothing written yet
      with runs.Run(config, workdir) as run:      # the workdir is checked; outputs go to run.dir
        ... write images, metrics into run.dir ...
        run.summary.update(accuracy=0.9)          # the headline figures -> summary.json
      # success: run.dir's files replace the workdir's outputs in one step (a rerun never mixes
      # with the previous run and never duplicates metrics); failure: the workdir keeps what it
      # had, and status.json says why.

  A workdir that already holds a run of a different config is refused (the differing keys are
  named) unless config.overwrite is true. resume=True (training): outputs are written into the
  workdir itself, so checkpoints and logs continue where they stopped.
  Every run writes config.json, summary.json, run.json (command line, config file, git commit,
  versions, device, wall time of each stage, the picture that stands for the run) and
  status.json ("running", then "ok" or "failed"). Runs nest: a run started inside another's
  run.dir (a tour's stages) is committed with it.
  """

  def __init__(self, config, workdir, resume: bool = False):
    check(bool(workdir), "no --workdir given; pass --workdir=DIR")
    self.config = config_dict(config)
    self.workdir = Path(workdir)
    self.resume = resume
    check(writable(self.workdir), f"workdir {str(self.workdir)!r} is not writable; choose "
                                   "another --workdir")
    previous = self.workdir / "config.json"
    foreign = [p.name for p in self.workdir.iterdir() if not p.name.startswith(".")] \
        if self.workdir.is_dir() and not previous.is_file() else []
    check(not set(foreign) - {"status.json"},
          f"workdir {str(self.workdir)!r} is not empty and holds no cnn_vis run (it has "
          f"{', '.join(sorted(foreign)[:3])}...); choose a new or empty --workdir")
    if previous.is_file() and not self.config.get("overwrite", False):
      differ = config_differences(read_json(previous, {}), self.config)
      check(not differ, f"workdir {str(self.workdir)!r} holds a run of another config (differing "
                        f"keys: {', '.join(differ[:8])}{' ...' if len(differ) > 8 else ''}); use "
                        "another --workdir or --config.overwrite=True")
    self.summary: dict = {}
    self.stages: dict = {}
    self.thumbnail: str | None = None   # relative path of the picture that stands for the run
    self.title: str | None = None
    self.origin = current_origin()
    self.dir = self.workdir
    self.main = jax.process_index() == 0   # multi-host: only process 0 writes the outputs
    self._finishers: list[Callable[[dict], None]] = []
    self._token = None

  def __enter__(self) -> "Run":
    self.started = time.time()
    if self.origin.started is not None:
      self.stages["prepare"] = round(self.started - self.origin.started, 3)
    self._token = _CURRENT.set(self)
    if not self.main:   # other hosts compute along; what they write is discarded
      self.dir = Path(tempfile.mkdtemp(prefix="cnn_vis-host-"))
      return self
    self.workdir.mkdir(parents=True, exist_ok=True)
    self._status("running")
    if not self.resume:
      self.dir = Path(tempfile.mkdtemp(dir=self.workdir, prefix=".staging-"))
    write_json(self.dir / "config.json", self.config)
    return self

  def __exit__(self, kind, error, traceback) -> bool:
    _CURRENT.reset(self._token)
    seconds = time.time() - self.started
    if not self.main:
      shutil.rmtree(self.dir, ignore_errors=True)
      return False
    if error is None:
      try:
        info = self.info(seconds)
        for finish in self._finishers:   # e.g. the report, re-rendered with the final facts
          finish(info)
        write_json(self.dir / "summary.json", self.summary)
        outputs = sorted(p.name for p in self.dir.iterdir() if not p.name.startswith("."))
        write_json(self.dir / "run.json", {**info, "outputs": outputs + ["run.json"]})
        if not self.resume:
          self._commit()
      except BaseException as e:   # recorded in status.json, then raised
        self._fail(e, seconds)
        raise
      self._status("ok", seconds=round(seconds, 3))
      return False
    self._fail(error, seconds)
    return False

  def _fail(self, error: BaseException, seconds: float) -> None:
    if not self.resume:
      shutil.rmtree(self.dir, ignore_errors=True)
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    self._status("failed", error=f"{type(error).__name__}: {message}", seconds=round(seconds, 3))

  @contextlib.contextmanager
  def stage(self, name: str):
    """Times a stage of the run (reported in run.json and the report)."""
    start = time.perf_counter()
    yield
    self.stages[name] = round(time.perf_counter() - start, 3)

  def on_success(self, finish: Callable[[dict], None]) -> None:
    """Calls finish(run facts) when the run has succeeded, before its outputs are committed
    (write_report re-renders the report with the final wall time)."""
    self._finishers.append(finish)

  def info(self, seconds: float | None = None) -> dict:
    """The facts of this run: command and config, git, versions, device, stage times."""
    seconds = time.time() - self.started if seconds is None else seconds
    devices = jax.devices()
    origin = self.origin
    return {"command": origin.command, "config_file": origin.config_file,
            "config_arg": origin.config_arg, "overrides": list(origin.overrides),
            "note": origin.note, "title": self.title, "thumbnail": self.thumbnail,
            "started": datetime.datetime.fromtimestamp(self.started).isoformat(
                timespec="seconds"),
            "seconds": round(seconds, 3), "stages": dict(self.stages), "git": _git_state(),
            "versions": _versions(), "host": platform.node(), "pid": os.getpid(),
            "slurm_job": _slurm_job(),
            "devices": {"platform": devices[0].platform, "count": len(devices),
                        "kind": devices[0].device_kind,
                        "processes": jax.process_count()}}

  def _status(self, status: str, **fields) -> None:
    write_json(self.workdir / "status.json",
               {"status": status, "pid": os.getpid(), "host": platform.node(), **fields,
                "time": datetime.datetime.now().isoformat(timespec="seconds")})

  def _previous_outputs(self) -> set[str]:
    """What the previous run in the workdir wrote (its run.json says), and what this one writes."""
    names = {p.name for p in self.dir.iterdir()}
    try:
      names |= set(json.loads((self.workdir / "run.json").read_text())["outputs"])
    except (OSError, ValueError, KeyError, TypeError):
      pass
    return names

  def _commit(self) -> None:
    """Moves the previous run's outputs aside, the staged ones in, then deletes the previous
    ones; anything else in the workdir (a sweep's runs, other files) is left alone."""
    previous = Path(tempfile.mkdtemp(dir=self.workdir, prefix=".previous-"))
    for name in self._previous_outputs():
      if (self.workdir / name).exists() and name != "status.json" and "/" not in name:
        os.replace(self.workdir / name, previous / name)
    for entry in self.dir.iterdir():
      os.replace(entry, self.workdir / entry.name)
    self.dir.rmdir()
    shutil.rmtree(previous, ignore_errors=True)
    self.dir = self.workdir


def progress(iterable=None, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool | None = None):
  """A tqdm progress bar (rate and ETA) on a terminal, silent otherwise (enabled: force)."""
  on = sys.stderr.isatty() if enabled is None else enabled
  return tqdm.tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False,
                   disable=not on)


def append_metrics(workdir, record: dict) -> None:
  """Appends one JSON line to workdir/metrics.jsonl."""
  with open(Path(workdir) / "metrics.jsonl", "a") as f:
    f.write(json.dumps(record, default=float) + "\n")


def truncate_metrics(workdir, step: int) -> None:
  """Drops the metrics.jsonl lines of steps after `step` (a run resumed from that checkpoint logs
  them again)."""
  path = Path(workdir) / "metrics.jsonl"
  if path.exists():
    kept = [line for line in path.read_text().splitlines()
            if line and json.loads(line).get("step", 0) <= step]
    write_text(path, "".join(line + "\n" for line in kept))


def write_text(path, text: str) -> Path:
  """Writes text atomically (a temporary file renamed over the target)."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)
  return path


def read_metrics(workdir) -> list[dict]:
  path = Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def image_sources(images) -> list[str]:
  """config.images -> sources: a directory's images, or comma-separated paths / skimage:NAME."""
  text = str(images or "")
  if Path(text).is_dir():
    return [str(p) for p in image_io.list_images(text)]
  sources = [s.strip() for s in text.split(",") if s.strip()]
  check(bool(sources), "config.images is empty; give a directory, image paths or skimage:NAME")
  if len(sources) == 1 and not sources[0].startswith("skimage:"):
    check(Path(sources[0]).exists(), f"config.images {sources[0]!r} is neither an image directory, "
                                     "an image file nor skimage:NAME")
  return sources


def images_from_config(config, spec, skip_unreadable: bool = False):
  """(names, float32 NHWC batch) from config.images, preprocessed as the model's reference does.

  skip_unreadable: report unreadable images on stderr and go on with the others.
  """
  names, images = [], []
  for source in image_sources(config.images):
    try:
      name, image = image_io.model_input(source, spec.input_size, spec.resize)
    except UserError as e:
      if not skip_unreadable:
        raise
      print(f"warning: skipped {source}: {e}", file=sys.stderr)
      continue
    names.append(name if source.startswith("skimage:") else Path(source).name)
    images.append(image)
  check(bool(images), f"no readable image in config.images {config.images!r}")
  return names, np.stack(images)


def safe_name(text: str) -> str:
  """text as a file-name stem: runs of other characters become '_'."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")
