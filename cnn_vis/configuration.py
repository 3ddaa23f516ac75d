"""Reading configs and checking what is asked of them, for every entry point (cnn_vis.main,
cnn_vis.sweep, the tour): one-line cnn_vis.errors.UserError messages naming the bad value and
what is allowed, before anything is written.

    config = configuration.load_config("configs/tour.py:smoke")
    configuration.set_fields(config, {"steps": 5, "model_kwargs.width": 0.5}, "configs/x.py")
    configuration.check_values(config)            # nan / inf anywhere, unreadable tuples
"""
import difflib
import importlib.util
import math
import re
from pathlib import Path

from ml_collections import config_dict

from cnn_vis.errors import UserError, check

# Keys every config accepts although none defines them: `overwrite` (cnn_vis.runs.Run reads it;
# it never changes results) and the model's options under model_kwargs.
OVERWRITE = "overwrite"
OPEN_FIELDS = ("model_kwargs",)


def _closest_files(path: Path) -> list[str]:
  folder = path.parent if path.parent.is_dir() else Path("configs")
  names = [p.name for p in folder.glob("*.py") if not p.name.startswith("_")] \
      if folder.is_dir() else []
  return [str(folder / n) for n in difflib.get_close_matches(path.name, names, n=3, cutoff=0.4)]


def load_module(path_text: str):
  """The Python module of a config file, or a one-line UserError naming the closest files."""
  path = Path(path_text)
  if not path.is_file():
    closest = _closest_files(path)
    raise UserError(f"config file {path_text!r} does not exist" +
                    (f"; closest: {', '.join(closest)}" if closest else
                     "; give a file such as configs/tour.py"))
  spec = importlib.util.spec_from_file_location(f"_cnn_vis_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(config_arg: str) -> config_dict.ConfigDict:
  """`configs/X.py[:arg]` -> the module's get_config(arg) (unlocked), or a one-line UserError."""
  path_text, _, arg = config_arg.partition(":")
  module = load_module(path_text)
  check(callable(getattr(module, "get_config", None)),
        f"config file {path_text!r} defines no get_config(arg=None)")
  config = module.get_config(arg) if arg else module.get_config()
  check(isinstance(config, config_dict.ConfigDict),
        f"{path_text}: get_config() must return an ml_collections.ConfigDict, got "
        f"{type(config).__name__}")
  return config


def config_keys(config, prefix: str = "") -> list[str]:
  """Every dotted key of a config, nested ConfigDicts and their fields alike."""
  out = []
  for key, value in config.items():
    out.append(prefix + key)
    if isinstance(value, config_dict.ConfigDict):
      out.extend(config_keys(value, f"{prefix}{key}."))
  return out


def check_key(config, key: str, what: str, config_arg: str) -> None:
  """One-line UserError unless dotted `key` (indices like phases[0] allowed) names a field."""
  keys = config_keys(config)
  if re.sub(r"\[\d+\]", "", key) in keys:
    return
  closest = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
  hint = f"; did you mean {closest[0]!r}?" if closest else ""
  raise UserError(f"unknown config key {key!r} ({what}){hint} keys of {config_arg}: "
                  f"{', '.join(keys)}")


_NON_FINITE = re.compile(r"(?:^|[\s,;()\[\]])[+-]?(nan|inf|infinity)(?=$|[\s,;()\[\]])",
                         re.IGNORECASE)


def _leaves(value):
  if isinstance(value, (tuple, list)):
    for item in value:
      yield from _leaves(item)
  else:
    yield value


def check_values(config, prefix: str = "config.") -> None:
  """One-line UserError for a value that is not finite (nan, inf; also text such as '(nan,)'
  that a tuple field kept as a string because Python could not read it) or a tuple field holding
  text that did not parse."""
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, config_dict.ConfigDict):
      check_values(value, name + ".")
      continue
    in_tuple = isinstance(value, (tuple, list))
    for item in _leaves(value):
      if isinstance(item, float):
        check(math.isfinite(item), f"{name} = {value!r}: every number must be finite (no nan "
                                   "or inf)")
      elif isinstance(item, str):
        check(not _NON_FINITE.search(item), f"{name} = {item if in_tuple else value!r}: every "
                                            "number must be finite (no nan or inf)")
        check(not (in_tuple and item.lstrip().startswith(("(", "["))),
              f"{name} = {value!r}: could not read {item!r} as a Python tuple, e.g. (0.1, 0.2)")


def is_open_key(config, key: str) -> bool:
  """key may be set although the config lacks it (OVERWRITE, or below an OPEN_FIELDS dict)."""
  head = key.split(".")[0]
  return key == OVERWRITE or (head in OPEN_FIELDS and head in config and "." in key)


def set_fields(config, values: dict, config_arg: str = "the config") -> config_dict.ConfigDict:
  """Sets dotted keys of config (in place; unlocked for the open keys) to Python values, with a
  one-line UserError for an unknown key or a value of the wrong type; returns config."""
  for key, value in values.items():
    if not is_open_key(config, key):
      check_key(config, key, f"{key}={value!r}", config_arg)
    *parents, leaf = key.split(".")
    holder = config
    for part in parents:
      if part not in holder:
        with holder.unlocked():
          holder[part] = config_dict.ConfigDict()
      holder = holder[part]
    try:
      with holder.unlocked():
        holder[leaf] = value
    except TypeError as e:
      raise UserError(f"config.{key} = {value!r}: {str(e).splitlines()[0]}") from None
  return config


def _flat(config, prefix: str = "") -> dict:
  out = {}
  for key, value in config.items():
    if isinstance(value, config_dict.ConfigDict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def changes(before, after) -> dict:
  """{dotted key: (value before, value after)} of every field that differs."""
  old, new = _flat(before), _flat(after)
  missing = "<not set>"
  return {k: (old.get(k, missing), new.get(k, missing)) for k in list(old) + [
      k for k in new if k not in old] if old.get(k, missing) != new.get(k, missing)}
