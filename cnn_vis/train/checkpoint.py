"""Orbax checkpoints of the train state: saved every N steps and at the end, resumed from the
latest, loaded by path into any technique.

Layout: <workdir>/checkpoints/<step>/ (orbax CheckpointManager) plus
<workdir>/checkpoints/model.json naming the model, its keyword arguments and the number of
ensemble members, so a checkpoint directory describes itself wherever it is copied.

Atomicity: orbax writes each step into `<step>.orbax-checkpoint-tmp-*` and renames it when
complete; a run killed while saving leaves only such a temporary folder, which orbax does not list
as a step. A finalised-looking step that still cannot be read (a truncated copy, a disk error) is
skipped with a warning and renamed `<step>.unreadable` (kept, not deleted), and the next older
step is used instead.
"""
import dataclasses
import json
import os
import sys
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from cnn_vis import models
from cnn_vis.errors import UserError, check

CHECKPOINTS = "checkpoints"
MODEL_JSON = "model.json"


def _write_json_atomic(path: Path, record: dict) -> None:
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
  os.replace(tmp, path)


def check_same_model(directory, model: dict) -> None:
  """UserError unless checkpoints already in `directory` (if any) are of the same network(s):
  resuming another model's checkpoints would fail, and starting over would discard them."""
  path = Path(directory) / MODEL_JSON
  if not path.exists():
    return
  saved = json.loads(path.read_text())
  keys = ("model", "model_kwargs", "members")
  old = {k: saved.get(k) for k in keys}
  new = json.loads(json.dumps({k: model.get(k) for k in keys}))  # tuples -> lists, as saved
  check(old == new, f"{directory} holds checkpoints of {old}, not {new}; use another --workdir "
                    f"(or the original settings to resume)")


class Checkpointer:
  """Saves and restores the TrainState under `directory` with an orbax CheckpointManager."""

  def __init__(self, directory, *, every: int, keep: int = 2, model: dict | None = None,
               asynchronous: bool = True):
    self.directory = Path(directory).resolve()
    self.directory.mkdir(parents=True, exist_ok=True)
    if model is not None:
      check_same_model(self.directory, model)
      if jax.process_index() == 0:
        _write_json_atomic(self.directory / MODEL_JSON, model)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            save_interval_steps=every,
            preservation_policy=ocp.checkpoint_managers.LatestN(keep),
            enable_async_checkpointing=asynchronous))

  def save(self, step: int, state, force: bool = False) -> bool:
    """Saves at multiples of `every` (or any step with force); False if skipped."""
    return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore_latest(self, target):
    """(state, step) of the newest readable checkpoint, restored with target's structure and
    shardings; (None, None) when there is none."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract)), step
      except Exception as e:  # pylint: disable=broad-except  # any unreadable step: use an older one
        print(f"warning: checkpoint step {step} in {self.directory} is unreadable "
              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
              f"kept as {step}.unreadable, trying an older one", file=sys.stderr)
        self._set_aside(step)
    return None, None

  def _set_aside(self, step: int) -> None:
    if jax.process_index() == 0:
      path = self.directory / str(step)
      if path.exists():
        path.rename(path.with_name(f"{step}.unreadable"))
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _checkpoint_root(path: Path) -> tuple[Path, int | None]:
  """(the CheckpointManager directory, a specific step or None) for a workdir, a checkpoints
  directory or one step's directory."""
  if (path / CHECKPOINTS).is_dir():
    return path / CHECKPOINTS, None
  if (path / MODEL_JSON).is_file():
    return path, None
  if path.name.isdigit() and (path.parent / MODEL_JSON).is_file():
    return path.parent, int(path.name)
  raise UserError(f"checkpoint {str(path)!r} is not a training workdir, its {CHECKPOINTS}/ "
                  f"directory or one step in it (no {MODEL_JSON} found)")


def read_model_info(path) -> dict:
  """model.json of a workdir / checkpoint directory: {"model", "model_kwargs", "members"}."""
  root, _ = _checkpoint_root(Path(path).expanduser())
  return json.loads((root / MODEL_JSON).read_text())


def _module_fields(module) -> dict:
  """A module's hyperparameters (dataclass fields), without the ReLU backward rule and Flax's
  bookkeeping, which do not change what the weights mean."""
  skip = {"parent", "name", "relu_mode"}
  return {f.name: getattr(module, f.name) for f in dataclasses.fields(module) if f.name not in skip}


def check_model(info: dict, model: str, model_kwargs: dict | None, path) -> None:
  """UserError unless model (with model_kwargs) is the network the checkpoint was trained as."""
  saved_kwargs = dict(info.get("model_kwargs") or {})
  given = dict(model_kwargs or {})
  check(info["model"] == model,
        f"checkpoint {path} holds model {info['model']} (model_kwargs {saved_kwargs}), not "
        f"{model}; pass --config.model={info['model']}")
  if _module_fields(models.build(model, **given)) != _module_fields(models.build(model, **saved_kwargs)):
    differ = {k: v for k, v in given.items() if saved_kwargs.get(k, v) != v or k not in saved_kwargs}
    raise UserError(f"checkpoint {path} was trained as {model} with model_kwargs {saved_kwargs}; "
                    f"model_kwargs {differ} describe a different network (leave them out)")


def model_kwargs(path, model: str, given: dict | None = None) -> dict:
  """The model_kwargs a checkpoint was trained with, updated by `given`; UserError if the model
  differs or `given` describes another network (cnn_vis.models.load_model uses this, so
  `--config.model=alexnet_cifar --config.checkpoint=W` needs no other option)."""
  path = Path(path).expanduser()
  check(path.exists(), f"checkpoint {str(path)!r} does not exist")
  info = read_model_info(path)
  kwargs = {**(info.get("model_kwargs") or {}), **(given or {})}
  check_model(info, model, kwargs, path)
  return kwargs


def load_variables(path, *, member: int = 0, model: str | None = None,
                   model_kwargs: dict | None = None) -> dict:
  """The model variables {"params"[, "batch_stats"]} of ensemble member `member` of the newest
  readable checkpoint under path (a workdir, its checkpoints/ directory or one step directory).

  With `model` (and model_kwargs), first checks that they build the network that was trained.
  """
  path = Path(path).expanduser()
  check(path.exists(), f"checkpoint {str(path)!r} does not exist")
  root, step = _checkpoint_root(path)
  info = json.loads((root / MODEL_JSON).read_text())
  if model is not None:
    check_model(info, model, model_kwargs, path)
  members = int(info.get("members", 1))
  check(0 <= member < members, f"member {member} out of range: checkpoint {path} has {members} "
                               f"ensemble member(s)")
  manager = ocp.CheckpointManager(root, options=ocp.CheckpointManagerOptions(read_only=True))
  steps = [step] if step is not None else sorted(manager.all_steps(), reverse=True)
  check(bool(steps), f"checkpoint directory {root} holds no finished checkpoint")
  for candidate in steps:
    try:
      restored = ocp.StandardCheckpointer().restore(root / str(candidate) / "default")
      break
    except Exception as e:  # pylint: disable=broad-except  # fall back to an older step
      if step is not None or candidate == steps[-1]:
        raise UserError(f"checkpoint {root / str(candidate)} is unreadable: "
                        f"{type(e).__name__}") from None
      print(f"warning: checkpoint step {candidate} in {root} is unreadable; trying an older one",
            file=sys.stderr)
  pick = lambda tree: jax.tree.map(lambda x: x[member], tree)
  variables = {"params": pick(restored["params"])}
  if restored.get("batch_stats"):
    variables["batch_stats"] = pick(restored["batch_stats"])
  return variables
