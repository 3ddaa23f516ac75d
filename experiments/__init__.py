"""One module per experiment, each with `run(config, workdir)`: read the config, call techniques,
write images, metrics.jsonl and report.html. No math lives here.

`experiments.run(config, workdir)` runs the experiment `config.experiment` names (what
cnn_vis.main, the sweep jobs and the tour's stages call)."""
import importlib
import pkgutil

from cnn_vis.errors import UserError, choose


def available() -> list[str]:
  """The experiment modules (every module here not starting with '_')."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def run(config, workdir):
  """Runs experiments.<config.experiment>.run(config, workdir); returns what it returns."""
  name = config.get("experiment")
  choose("experiment", name, available())
  if not workdir:
    raise UserError("no --workdir given; pass --workdir=DIR")
  return importlib.import_module(f"experiments.{name}").run(config, workdir)
