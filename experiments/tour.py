"""The tour (configs/tour.py): every stage is a run of its own experiment and config in
W/<stage>/, one after another in this process (the model is loaded once), then a gallery,
W/report.html, links each stage's report with its picture, time, headline figure and what the
tour changed in its config. One line per stage is printed as it ends.

Every stage's config is built and checked before anything is written; the stages run inside the
tour's own run, so a rerun replaces the whole tour at once and an interrupted tour leaves the
previous one as it was. A stage that fails is marked failed in the gallery (status, error) and
the tour goes on; the tour then ends with a one-line error naming the failed stages.
"""
import dataclasses
import importlib
import sys
import time
import traceback
from pathlib import Path

import ml_collections

import experiments
from cnn_vis import configuration, models, report, runs
from cnn_vis.errors import UserError, check, choose
from cnn_vis.models.units import split_units
from cnn_vis.report.html import Link, Table, Tile, headline, seconds_text

# The fields every stage gets from the tour (unless it runs its own `:smoke` config).
SHARED_FIELDS = ("model", "pretrained", "seed")


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage, ready to run: its name, where its config comes from, the config itself and the
  fields the tour changed ({key: (config's default, tour's value)})."""
  name: str
  config_file: str
  arg: str
  config: ml_collections.ConfigDict
  changed: dict


def model_default(spec: models.ModelSpec, key: str) -> str:
  """A model's registered default for a technique ("last_conv": its last conv layer), as config
  text (several layers joined by ';')."""
  if key == "last_conv":
    check(bool(spec.last_conv), f"model {spec.name} has no registered last_conv layer")
    return spec.last_conv
  value = spec.default(key)
  return ";".join(value) if isinstance(value, (tuple, list)) else str(value)


def stage(tour, name: str) -> Stage:
  """The config of stage `name`: configs/<module>.py's get_config(arg), then (unless smoke) the
  tour's model fields, the model's defaults for `from_model` fields and the overrides."""
  entry = tour.stage[name]
  config_file = f"configs/{entry.config}.py"
  check((Path(__file__).resolve().parents[1] / config_file).is_file(),
        f"tour stage {name}: config {config_file} does not exist")
  module = importlib.import_module(f"configs.{entry.config}")
  arg = tour.stage_arg or entry.arg
  default = module.get_config(arg) if arg else module.get_config()
  config = ml_collections.ConfigDict(default.to_dict())
  if tour.stage_arg != "smoke":
    values = {field: tour[field] for field in SHARED_FIELDS if field in config}
    spec = models.get_spec(tour.model)
    values.update({field: model_default(spec, key) for field, key in entry.from_model.items()})
    values.update(entry.overrides.to_dict())
    configuration.set_fields(config, values, f"{config_file} (tour stage {name})")
  configuration.check_values(config, f"config.stage.{name}: ")
  return Stage(name, config_file, arg, config, configuration.changes(default, config))


def plan(tour) -> list[Stage]:
  """Every stage config.stages names, built and checked (nothing is written)."""
  names = split_units(tour.stages)
  check(bool(names), f"config.stages is empty; give some of: {', '.join(tour.stage)}")
  for name in names:
    choose("tour stage", name, list(tour.stage))
  check(len(set(names)) == len(names), f"config.stages names a stage twice: {tour.stages!r}")
  return [stage(tour, name) for name in names]


def _change_text(changed: dict) -> str:
  return "; ".join(f"{k}: {_short(old)} -> {_short(new)}" for k, (old, new) in changed.items())


def _short(value, width: int = 40) -> str:
  text = str(value)
  return text if len(text) <= width else text[:width - 3] + "..."


def run_stage(item: Stage, workdir: Path, where: str, index: int, count: int) -> dict:
  """Runs one stage in workdir (its own Run); returns what the gallery shows of it."""
  start = time.time()
  status, error = "ok", ""
  with runs.origin(command=runs.current_origin().command, config_file=item.config_file,
                   config_arg=item.arg, started=start,
                   overrides=tuple(f"{k}={new}" for k, (_, new) in item.changed.items()),
                   note=f"stage {index} of {count} of the tour in {where}"):
    try:
      experiments.run(item.config, workdir)
    except UserError as e:
      status, error = "failed", str(e).splitlines()[0]
    except Exception as e:   # pylint: disable=broad-except - shown in the gallery; tour goes on
      traceback.print_exc(file=sys.stderr)
      status, error = "failed", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
  return {"name": item.name, "status": status, "error": error,
          "seconds": round(time.time() - start, 2)}


def _gallery_row(item: Stage, result: dict, workdir: Path) -> dict:
  info = runs.read_json(workdir / item.name / "run.json", {}) or {}
  summary = runs.read_json(workdir / item.name / "summary.json", {}) or {}
  report_path = f"{item.name}/report.html"
  picture = Tile(f"{item.name}/{info['thumbnail']}", item.name, href=report_path) \
      if result["status"] == "ok" and info.get("thumbnail") else "-"
  key, value = headline(summary)
  return {"": picture,
          "stage": Link(item.name, report_path) if result["status"] == "ok" else item.name,
          "what": info.get("title") or item.config.experiment,
          "config": item.config_file + (f":{item.arg}" if item.arg else ""),
          "status": result["status"] + (f": {result['error']}" if result["error"] else ""),
          "time": seconds_text(result["seconds"]), "headline": f"{key} {value}".strip(),
          "changed from the config's defaults": _change_text(item.changed) or "nothing"}


def run(config, workdir):
  stages = plan(config)
  with runs.Run(config, workdir) as run:
    out = run.dir
    results = []
    for i, item in enumerate(stages, start=1):
      result = run_stage(item, out / item.name, str(workdir), i, len(stages))
      results.append(result)
      run.stages[item.name] = result["seconds"]
      line = f"[{i}/{len(stages)}] {item.name:<22s} {result['status']:<6s} " \
             f"{result['seconds']:7.1f} s  {Path(workdir) / item.name / 'report.html'}"
      print(line + (f"  ({result['error']})" if result["error"] else ""), flush=True)
    failed = [r["name"] for r in results if r["status"] != "ok"]
    rows = [_gallery_row(item, result, out) for item, result in zip(stages, results)]
    run.summary.update({"model": config.model if config.stage_arg != "smoke" else "smoke configs",
                        "stages": len(stages), "ok": len(stages) - len(failed),
                        "failed": len(failed),
                        "stage_seconds": round(sum(r["seconds"] for r in results), 1)})
    note = ("Each stage is its own run (click its picture or name for its report). The tour "
            "shrinks the slowest stages to fit its time budget; the last column lists every "
            "value it changed in the stage's config, whose defaults are the papers' settings.")
    report.write_report(out, f"A tour of understanding CNNs: {run.summary['model']}", config,
                        [("Stages", [Table(rows, caption=note)])], summary=run.summary)
  check(not failed, f"{len(failed)} of {len(stages)} tour stages failed ({', '.join(failed)}); "
                    f"{Path(workdir) / 'report.html'} says why")
  return run.summary
