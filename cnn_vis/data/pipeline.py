"""tf.data input pipelines over the tfds sources: host sharding, decoding, batching.

The pipeline only decodes, pads grayscale to RGB and resizes; random crops, flips and PCA
lighting (Krizhevsky et al. 2012 §4.1) run on device in the train step (cnn_vis/data/augment.py).
Images are shuffled while still encoded (small buffers) and decoded afterwards, as the flax and
big_vision ImageNet pipelines do.
"""
import functools
import math
from typing import Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from cnn_vis.data import sources
from cnn_vis.data.info import DatasetInfo
from cnn_vis.errors import UserError, check

# JAX owns the accelerators; TensorFlow only reads files (a no-op with tensorflow-cpu).
try:
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TensorFlow was initialised already
  pass


def info(name: str, *, data_dir=None, manual_dir=None, image_size=None) -> DatasetInfo:
  source = sources.get(name, data_dir, manual_dir)
  label = source.builder.info.features["label"]
  return DatasetInfo(
      num_classes=label.num_classes,
      num_examples={k: v.num_examples for k, v in source.builder.info.splits.items()},
      image_size=image_size or source.image_size,
      class_names=tuple(label.names))


def num_examples(name: str, split: str, *, data_dir=None, manual_dir=None) -> int:
  source = sources.get(name, data_dir, manual_dir)
  return _split_size(name, source, split)


def load(name: str, split: str, *, batch_size: int, train: bool, seed: int = 0, data_dir=None,
         manual_dir=None, image_size=None, process_index=None, process_count=None,
         resize=None, with_ids: bool = False) -> Iterator[dict]:
  source = sources.get(name, data_dir, manual_dir)
  check(not (train and with_ids), "with_ids needs train=False (one pass in order)")
  index, count = _host(process_index, process_count)
  check(batch_size > 0 and batch_size % count == 0,
        f"batch_size {batch_size} must be a positive multiple of the process count {count}")
  host_batch = batch_size // count
  check(image_size is None or (isinstance(image_size, int) and image_size > 0),
        f"image_size {image_size!r} must be a positive integer or None (the dataset's own size)")
  _check_split(name, source, split)
  # Each host reads its own contiguous, disjoint part; the sizes differ by at most one.
  host_splits = tfds.even_splits(split, n=count)
  host_split = host_splits[index]
  ds, num_examples = _read(source, host_split, shuffle_files=train, seed=seed)
  size = image_size or source.image_size
  decode = functools.partial(_decode, source=source, size=size, resize=_resize(resize, size))
  if with_ids:  # the example's position in `split`: this host's shard starts after the others'
    offset = sum(_num_examples(source, s) for s in host_splits[:index])
    ds = ds.enumerate(start=offset).map(lambda i, ex: {**ex, "id": i})
  if train:
    check(num_examples >= host_batch, f"split {split!r} of {name} has {num_examples} examples per "
                                      f"host, fewer than the per-host batch {host_batch}")
    ds = ds.shuffle(min(num_examples, source.shuffle_buffer), seed=seed,
                    reshuffle_each_iteration=True).repeat()
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(host_batch, drop_remainder=True)
  else:
    # Every host yields as many batches as the largest shard needs, so multi-host eval steps
    # stay in lockstep; padding examples have mask False.
    num_batches = math.ceil(math.ceil(_num_examples(source, split) / count) / host_batch)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda ex: {**ex, "mask": tf.constant(True)})
    padding = {"image": tf.zeros((size, size, 3), tf.float32), "label": tf.constant(0, tf.int32),
               "mask": tf.constant(False)}
    if with_ids:
      padding["id"] = tf.constant(-1, tf.int64)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat(
        num_batches * host_batch - num_examples))
    ds = ds.batch(host_batch, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def examples(name: str, split: str, ids, *, data_dir=None, manual_dir=None, image_size=None,
             resize=None) -> dict:
  """{"image", "label", "id"} numpy arrays of the examples at positions `ids` of `split` (the
  ids `load(..., with_ids=True)` yields), in the order given. Reads the split on this host up to
  the largest id and decodes only the wanted examples."""
  source = sources.get(name, data_dir, manual_dir)
  _check_split(name, source, split)
  ids = np.asarray(ids, np.int64).reshape(-1)
  size = image_size or source.image_size
  if ids.size == 0:
    return {"image": np.zeros((0, size, size, 3), np.float32), "label": np.zeros(0, np.int32),
            "id": ids}
  total = _num_examples(source, split)
  check(0 <= ids.min() and ids.max() < total, f"example ids must be in 0..{total - 1} for split "
                                              f"{split!r} of {name}")
  wanted = np.unique(ids)
  table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
      tf.constant(wanted), tf.ones(len(wanted), tf.int32)), default_value=0)
  ds, _ = _read(source, tfds.even_splits(split, n=1)[0], shuffle_files=False, seed=0)
  ds = ds.take(int(wanted[-1]) + 1).enumerate().map(lambda i, ex: {**ex, "id": i})
  ds = ds.filter(lambda ex: table.lookup(ex["id"]) > 0)
  ds = ds.map(functools.partial(_decode, source=source, size=size, resize=_resize(resize, size)))
  found = {int(ex["id"]): ex for ex in ds.as_numpy_iterator()}
  rows = [found[int(i)] for i in ids]
  return {"image": np.stack([r["image"] for r in rows]),
          "label": np.array([r["label"] for r in rows], np.int32), "id": ids}


def source_names(name: str, split: str, ids, *, data_dir=None, manual_dir=None) -> list[str]:
  """"splitname:index" of each position in `split` (e.g. position 0 of "test[100:]" is
  "test:100"; "train+test" continues into "test:0" after the last training example)."""
  source = sources.get(name, data_dir, manual_dir)
  parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(source.builder.info.splits)
  names, starts, ends = [], [], [0]
  for part in parts:
    start = part.from_ or 0
    stop = _num_examples(source, part.splitname) if part.to is None else part.to
    names.append(part.splitname)
    starts.append(start)
    ends.append(ends[-1] + stop - start)
  ids = np.asarray(ids, np.int64).reshape(-1)
  check(ids.size == 0 or (ids.min() >= 0 and ids.max() < ends[-1]),
        f"example ids must be in 0..{ends[-1] - 1} for split {split!r} of {name}")
  which = np.searchsorted(np.asarray(ends[1:]), ids, side="right")
  return [f"{names[w]}:{starts[w] + int(i) - ends[w]}" for w, i in zip(which, ids)]


def _host(index, count) -> tuple[int, int]:
  if index is None or count is None:
    index = jax.process_index() if index is None else index
    count = jax.process_count() if count is None else count
  check(0 <= index < count, f"process_index {index} out of range for process_count {count}")
  return index, count


def _num_examples(source: sources.Source, split) -> int:
  return source.builder.info.splits[split].num_examples


def _split_size(name: str, source: sources.Source, split: str) -> int:
  """_num_examples, with a bad split (unknown name, bad slice) as a UserError naming the splits."""
  try:
    return _num_examples(source, split)
  except (KeyError, ValueError, AssertionError) as e:
    raise UserError(f"bad split {split!r} for dataset {name}: {e}".splitlines()[0] +
                    f"; splits: {', '.join(source.builder.info.splits)}") from None


def _check_split(name: str, source: sources.Source, split: str) -> None:
  check(_split_size(name, source, split) > 0, f"split {split!r} of dataset {name} is empty")


def _read(source: sources.Source, split, *, shuffle_files: bool, seed: int):
  """({"image": encoded bytes, "label"} of split, its number of examples)."""
  skip = {"image": tfds.decode.SkipDecoding()}
  builder = source.builder
  if source.folder:
    # ImageFolder reads whole splits only (and shuffles them unseeded): slice them here, in its
    # deterministic file order, with tfds's own split arithmetic.
    parts = []
    for part in split.to_absolute(builder.info.splits):  # None: from the start, to the end
      start = part.from_ or 0
      stop = builder.info.splits[part.splitname].num_examples if part.to is None else part.to
      parts.append(builder.as_dataset(split=part.splitname, decoders=skip).skip(start)
                   .take(stop - start))
    ds = functools.reduce(tf.data.Dataset.concatenate, parts)
  else:
    ds = builder.as_dataset(split=split, decoders=skip, shuffle_files=shuffle_files,
                            read_config=tfds.ReadConfig(shuffle_seed=seed))
  ds = ds.map(lambda ex: {"image": ex["image"], "label": ex["label"]})
  return ds, _num_examples(source, split)


def _resize(resize, size: int) -> int:
  check(resize is None or (isinstance(resize, int) and resize >= size),
        f"resize {resize!r} must be None or an integer >= the image size {size}")
  return resize or size


def _decode(example: dict, *, source: sources.Source, size: int, resize: int | None = None) -> dict:
  """Encoded image -> float32 size x size x 3 in [0, 1] (shorter side to `resize`, default
  size, then the centre crop); label -> int32; other fields (an "id") pass through."""
  encoded = example["image"]
  image = tf.cond(
      tf.io.is_jpeg(encoded),
      # The accurate integer IDCT gives the same pixels as PIL (cnn_vis.data.images); TF's
      # default fast one is off by up to 5/255.
      lambda: tf.io.decode_jpeg(encoded, channels=source.channels, dct_method="INTEGER_ACCURATE"),
      lambda: tf.io.decode_image(encoded, channels=source.channels, expand_animations=False))
  if source.pad:
    image = tf.pad(image, [[source.pad, source.pad], [source.pad, source.pad], [0, 0]])
  if source.channels == 1:
    image = tf.repeat(image, 3, axis=-1)
  image = tf.image.convert_image_dtype(image, tf.float32)
  image = _resize_shorter_and_center_crop(image, size, resize or size)
  rest = {k: v for k, v in example.items() if k not in ("image", "label")}
  return {**rest, "image": image, "label": tf.cast(example["label"], tf.int32)}


def _resize_shorter_and_center_crop(image: tf.Tensor, size: int,
                                    shorter: int | None = None) -> tf.Tensor:
  """Shorter side to `shorter` (default size; bilinear, antialiased), then the central
  size x size (paper §2: 256 then 224 crops).

  Matches cnn_vis.data.images.resize_shorter_and_center_crop; the resize is skipped on
  shorter x shorter images.
  """
  shorter = shorter or size
  shape = tf.shape(image)
  height, width = shape[0], shape[1]

  def resize():
    scale = shorter / tf.cast(tf.minimum(height, width), tf.float32)
    new_h = tf.maximum(shorter, tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
    new_w = tf.maximum(shorter, tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
    resized = tf.image.resize(image, [new_h, new_w], method="bilinear", antialias=True)
    return tf.clip_by_value(resized, 0.0, 1.0)

  image = tf.cond(tf.logical_and(tf.equal(height, shorter), tf.equal(width, shorter)),
                  lambda: image, resize)
  shape = tf.shape(image)
  top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
  return tf.ensure_shape(image[top:top + size, left:left + size], (size, size, 3))
