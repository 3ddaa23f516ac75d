"""What every experiment does first and last: prepare the workdir, record the config, report."""
import functools
import json
import os
import sys
from pathlib import Path

from cnn_vis.errors import UserError, check


def config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") \
      else dict(config)


def start_run(config, workdir) -> Path:
  """Creates workdir (keeping whatever it holds) and writes config.json atomically."""
  check(bool(workdir), "no --workdir given; pass --workdir=DIR")
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  tmp = workdir / ".config.json.tmp"
  tmp.write_text(json.dumps(config_dict(config), indent=2, sort_keys=True))
  os.replace(tmp, workdir / "config.json")
  return workdir


def model_from_config(config, relu_mode: str = "standard"):
  """(module, variables, spec) from the common config fields model, pretrained, checkpoint,
  model_kwargs and seed."""
  from cnn_vis import models  # pylint: disable=import-outside-toplevel
  overrides = dict(config.get("model_kwargs") or {})
  return models.load_model(config.model, checkpoint=config.get("checkpoint") or None,
                           pretrained=bool(config.get("pretrained", False)),
                           relu_mode=relu_mode, seed=config.get("seed", 0), **overrides)


def cached_model_from_config(config, relu_mode: str = "standard"):
  """model_from_config keeping the variables of the last two (model, pretrained, seed,
  model_kwargs): they do not depend on the ReLU rule, so a sweep, a notebook or a test session
  running several configs or methods on one model initialises or imports it once. A checkpoint
  is read every time (it may have changed between runs)."""
  if config.get("checkpoint"):
    return model_from_config(config, relu_mode)
  from cnn_vis import models  # pylint: disable=import-outside-toplevel
  kwargs = config.get("model_kwargs") or {}
  kwargs = kwargs.to_dict() if hasattr(kwargs, "to_dict") else dict(kwargs)
  fields = (config.model, bool(config.get("pretrained", False)), int(config.get("seed", 0)),
            json.dumps(kwargs, sort_keys=True, default=str))
  variables, spec = _cached_variables(fields)
  return models.build(config.model, relu_mode, **kwargs), variables, spec


@functools.lru_cache(maxsize=2)
def _cached_variables(fields):
  model, pretrained, seed, kwargs = fields
  import ml_collections  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict({"model": model, "pretrained": pretrained, "seed": seed,
                                      "checkpoint": "", "model_kwargs": json.loads(kwargs)})
  _, variables, spec = model_from_config(config)
  return variables, spec


def image_sources(images) -> list[str]:
  """config.images -> sources: a directory's images, or comma-separated paths / skimage:NAME."""
  from cnn_vis.data import images as image_io  # pylint: disable=import-outside-toplevel
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
  import numpy as np  # pylint: disable=import-outside-toplevel
  from cnn_vis.data import images as image_io  # pylint: disable=import-outside-toplevel
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
