"""Training and evaluation data: tensorflow-datasets pipelines that work offline.

    batches = cnn_vis.data.load("cifar10_jpeg", "train", batch_size=128, train=True, seed=0)
    batch = next(batches)   # {"image": float32 (B, 32, 32, 3) in [0, 1], "label": int32 (B,)}

Datasets (`DATASETS`): `imagenet2012` (tfds, from the ILSVRC2012 tars in a manual dir),
`cifar10` (tfds, when already prepared or its archive is in the manual dir), `cifar10_jpeg`
(the shared CIFAR-10 JPEG archive, converted once by a small tfds builder straight from the
tar.gz into TFRecords, the JPEG bytes stored as they are; nothing is extracted), `fashion_mnist`
(tfds, from Debian's dataset-fashion-mnist files, padded to 32x32x3) and `image_folder` (any
split/class/*.jpg folder, given as manual_dir and read in place). The others are prepared once
under $CNN_VIS_CACHE (default ~/.cache/cnn_vis); see cnn_vis/data/sources.py.

TensorFlow is imported only inside `load`, `info` and `num_examples`: importing it before
torchvision crashes the interpreter, so importing this package must stay free of it.
Augmentation runs on device, in JAX: cnn_vis/data/augment.py.
"""
from typing import Iterator

from cnn_vis.data.info import DATASETS, DatasetInfo
from cnn_vis.errors import choose

__all__ = ["DATASETS", "DatasetInfo", "examples", "info", "load", "num_examples", "source_names"]


def info(name: str, *, data_dir=None, manual_dir=None, image_size=None) -> DatasetInfo:
  """Classes, split sizes and image size of dataset `name`, preparing it first if needed."""
  choose("dataset", name, DATASETS)
  from cnn_vis.data import pipeline  # lazy: imports TensorFlow, which must not load before torch
  return pipeline.info(name, data_dir=data_dir, manual_dir=manual_dir, image_size=image_size)


def num_examples(name: str, split: str, *, data_dir=None, manual_dir=None) -> int:
  """Number of examples of `split` of dataset `name`, in tfds split syntax (e.g. "train[:90%]");
  a bad split is a UserError naming the dataset's splits."""
  choose("dataset", name, DATASETS)
  from cnn_vis.data import pipeline  # lazy: imports TensorFlow, which must not load before torch
  return pipeline.num_examples(name, split, data_dir=data_dir, manual_dir=manual_dir)


def load(name: str, split: str, *, batch_size: int, train: bool, seed: int = 0, data_dir=None,
         manual_dir=None, image_size=None, process_index=None, process_count=None,
         resize=None, with_ids: bool = False) -> Iterator[dict]:
  """Numpy batches of this host's shard of `split` (tfds split syntax, e.g. "train[:90%]").

  batch_size is the GLOBAL batch; each of the jax.process_count() hosts gets batch_size /
  process_count examples of its own disjoint shard. train=True: shuffled (deterministic given
  seed), repeated forever, last partial batch dropped; yields {"image", "label"}. train=False:
  one pass in order over the whole shard, the last batch padded and {"mask"} marking real
  examples, so every example counts exactly once. Images are float32 NHWC in [0, 1], resized
  (shorter side, to `resize` if given, else image_size) and centre-cropped to image_size when
  given; labels int32. with_ids (train=False): also {"id"}, int64, each example's position in
  `split` (-1 on padding), the same on any number of hosts; `examples` reads examples back by
  it and `source_names` names them.
  process_index/process_count override jax's (for tests and tools).
  """
  choose("dataset", name, DATASETS)
  from cnn_vis.data import pipeline  # lazy: imports TensorFlow, which must not load before torch
  return pipeline.load(name, split, batch_size=batch_size, train=train, seed=seed,
                       data_dir=data_dir, manual_dir=manual_dir, image_size=image_size,
                       process_index=process_index, process_count=process_count,
                       resize=resize, with_ids=with_ids)


def examples(name: str, split: str, ids, *, data_dir=None, manual_dir=None, image_size=None,
             resize=None) -> dict:
  """{"image", "label", "id"} numpy arrays of the examples at positions `ids` of `split` (as
  `load(..., with_ids=True)` numbers them), in the order given, preprocessed as `load` does."""
  choose("dataset", name, DATASETS)
  from cnn_vis.data import pipeline  # lazy: imports TensorFlow, which must not load before torch
  return pipeline.examples(name, split, ids, data_dir=data_dir, manual_dir=manual_dir,
                           image_size=image_size, resize=resize)


def source_names(name: str, split: str, ids, *, data_dir=None, manual_dir=None) -> list[str]:
  """"splitname:index" of each example position of `split` (its index in the whole named split,
  e.g. position 0 of "test[100:]" is "test:100")."""
  choose("dataset", name, DATASETS)
  from cnn_vis.data import pipeline  # lazy: imports TensorFlow, which must not load before torch
  return pipeline.source_names(name, split, ids, data_dir=data_dir, manual_dir=manual_dir)
