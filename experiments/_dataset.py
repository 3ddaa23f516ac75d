"""What the dataset-view experiments (top patches, embedding, activation maps) read: the images of
config.images (a folder, image paths, skimage:NAME), else a tfds split (config.dataset,
config.split), as a numbered stream preprocessed for the model (cnn_vis.data.stream)."""
from typing import Any, NamedTuple

from cnn_vis import data, loader, models, runs
from cnn_vis.data import stream as stream_lib
from cnn_vis.errors import check, choose
from cnn_vis.models import classes


def stream_from(config, spec, images: str = "images", split: str = "split"
                ) -> stream_lib.Stream:
  """The stream named by config[images] (if set) or config.dataset / config[split]; a missing
  dataset, a bad split or an empty folder is a one-line UserError."""
  size = spec.input_size
  if config.get(images):
    return stream_lib.from_files(runs.image_sources(config[images]), image_size=size,
                                 resize=spec.resize)
  check(bool(config.get("dataset")) and bool(config.get(split)),
        f"give config.{images} (a folder, image paths or skimage:NAME) or config.dataset and "
        f"config.{split} (a tfds split)")
  choose("dataset", config.dataset, data.DATASETS)
  return stream_lib.from_split(config.dataset, config[split], image_size=size,
                               resize=spec.resize, data_dir=config.get("data_dir") or None,
                               manual_dir=config.get("manual_dir") or None)


class Network(NamedTuple):
  """The model a dataset view reads the stream through, with its layer table at input size."""
  apply_fn: models.ModelFn
  variables: Any
  spec: models.ModelSpec
  table: models.LayerTable


def stream_and_network(config) -> tuple[stream_lib.Stream, Network]:
  """config's image stream, then its model (data errors come first, before the model loads)."""
  stream = stream_from(config, models.get_spec(config.model))
  apply_fn, variables, spec = loader.from_config(config)
  size = spec.input_size
  table = models.layer_table(apply_fn, variables, (1, size, size, 3), spec.class_names)
  return stream, Network(apply_fn, variables, spec, table)


def check_batch_size(config) -> int:
  batch_size = config.batch_size
  check(isinstance(batch_size, int) and batch_size >= 1,
        f"batch_size must be an integer >= 1, got {batch_size!r}")
  return batch_size


def file_labels(names, spec) -> list[int]:
  """Labels of image files named after their ImageNet wnid (n01440764_tench.JPEG) for an
  ImageNet model; -1 where unknown."""
  if spec.dataset != "imagenet":
    return [-1] * len(names)
  out = []
  for name in names:
    try:
      out.append(classes.imagenet_label(name))
    except ValueError:
      out.append(-1)
  return out


def weights(config) -> str:
  """Where the weights came from, for summaries: a checkpoint, a pretrained import, or random."""
  if config.get("checkpoint"):
    return f"checkpoint {config.checkpoint}"
  if config.get("pretrained") or config.get("weights"):
    return f"pretrained {config.get('weights') or ''}".strip()
  return f"random (seed {config.get('seed', 0)})"
