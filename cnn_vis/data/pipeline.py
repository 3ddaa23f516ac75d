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
         manual_dir=None, image_size=None, process_index=None,
         process_count=None) -> Iterator[dict]:
  source = sources.get(name, data_dir, manual_dir)
  index, count = _host(process_index, process_count)
  check(batch_size > 0 and batch_size % count == 0,
        f"batch_size {batch_size} must be a positive multiple of the process count {count}")
  host_batch = batch_size // count
  check(image_size is None or (isinstance(image_size, int) and image_size > 0),
        f"image_size {image_size!r} must be a positive integer or None (the dataset's own size)")
  _check_split(name, source, split)
  # Each host reads its own contiguous, disjoint part; the sizes differ by at most one.
  host_split = tfds.even_splits(split, n=count)[index]
  ds, num_examples = _read(source, host_split, shuffle_files=train, seed=seed)
  size = image_size or source.image_size
  decode = functools.partial(_decode, source=source, size=size)
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
    ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat(
        num_batches * host_batch - num_examples))
    ds = ds.batch(host_batch, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


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


def _decode(example: dict, *, source: sources.Source, size: int) -> dict:
  """Encoded image -> float32 size x size x 3 in [0, 1]; label -> int32."""
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
  image = _resize_shorter_and_center_crop(image, size)
  return {"image": image, "label": tf.cast(example["label"], tf.int32)}


def _resize_shorter_and_center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """Shorter side to size (bilinear, antialiased), then the central size x size (paper §2).

  Matches cnn_vis.data.images.resize_shorter_and_center_crop; a no-op on size x size images.
  """
  shape = tf.shape(image)
  height, width = shape[0], shape[1]

  def resize():
    scale = size / tf.cast(tf.minimum(height, width), tf.float32)
    new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
    new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
    resized = tf.image.resize(image, [new_h, new_w], method="bilinear", antialias=True)
    return tf.clip_by_value(resized, 0.0, 1.0)

  image = tf.cond(tf.logical_and(tf.equal(height, size), tf.equal(width, size)), lambda: image,
                  resize)
  shape = tf.shape(image)
  top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
  return tf.ensure_shape(image[top:top + size, left:left + size], (size, size, 3))
