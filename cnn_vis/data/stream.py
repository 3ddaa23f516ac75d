"""A dataset as numbered batches for one pass in order: a tfds split or a list of image files.

    stream = stream.from_split("cifar10_jpeg", "test", image_size=32)
    stream = stream.from_files(["a.jpg", "skimage:chelsea"], image_size=227, resize=256)
    for batch in stream.batches(batch_size=128):   # this host's part of each global batch
      batch["image"], batch["mask"], batch["id"], batch["label"]
    stream.names(ids)     # "test:17" (tfds) or the image file name, per example id
    stream.fetch(ids)     # the preprocessed images of those examples again, in that order

Every example has a stable id, its position in the split or the file list, so a pass can keep
only ids (a top-k, a nearest-neighbour list) and read the few images it shows afterwards. Batches
are padded to the full batch (mask False, id -1, label -1) and every host yields as many as the
largest shard needs, so multi-host passes stay in lockstep (as cnn_vis.data.load does). Images
are float32 NHWC in [0, 1], preprocessed as the model's reference does: shorter side to `resize`
(None: to image_size) and the central image_size crop. Memory: one batch (and one prefetched).
"""
import concurrent.futures
import dataclasses
import math
import sys
from pathlib import Path
from typing import Iterator, Sequence

import jax
import numpy as np

from cnn_vis import data
from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError, check


def host_shard(count: int, process_index: int, process_count: int) -> tuple[int, int]:
  """[start, stop) of this host's contiguous part of `count` examples; parts differ by <= 1
  (tfds.even_splits' arithmetic)."""
  base, extra = divmod(count, process_count)
  start = process_index * base + min(process_index, extra)
  return start, start + base + (process_index < extra)


def _hosts(process_index, process_count) -> tuple[int, int]:
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  check(0 <= index < count, f"process_index {index} out of range for process_count {count}")
  return index, count


def _host_batch(batch_size: int, count: int) -> int:
  check(batch_size > 0 and batch_size % count == 0,
        f"batch_size {batch_size} must be a positive multiple of the process count {count}")
  return batch_size // count


@dataclasses.dataclass(frozen=True)
class SplitStream:
  """A tfds split of a dataset cnn_vis.data reads; names are "split:index"."""
  dataset: str
  split: str
  image_size: int
  resize: int | None = None
  data_dir: str | None = None
  manual_dir: str | None = None

  def __post_init__(self):
    # Reading the size prepares the dataset if needed: a missing dataset or a bad split is a
    # one-line UserError here, before any run starts.
    object.__setattr__(self, "num_examples", data.num_examples(
        self.dataset, self.split, data_dir=self.data_dir, manual_dir=self.manual_dir))
    check(self.num_examples > 0, f"split {self.split!r} of dataset {self.dataset} is empty")

  @property
  def description(self) -> str:
    return f"{self.dataset} {self.split}"

  @property
  def class_names(self) -> tuple[str, ...]:
    """The names of the dataset's labels (not the model's classes: CIFAR-10 through an
    ImageNet net is still airplane .. truck)."""
    return data.info(self.dataset, data_dir=self.data_dir, manual_dir=self.manual_dir).class_names

  def batches(self, batch_size: int, process_index=None, process_count=None) -> Iterator[dict]:
    for batch in data.load(self.dataset, self.split, batch_size=batch_size, train=False,
                           data_dir=self.data_dir, manual_dir=self.manual_dir,
                           image_size=self.image_size, resize=self.resize, with_ids=True,
                           process_index=process_index, process_count=process_count):
      yield {"image": batch["image"], "mask": batch["mask"],
             "id": batch["id"].astype(np.int32),
             "label": np.where(batch["mask"], batch["label"], -1).astype(np.int32)}

  def names(self, ids) -> list[str]:
    return data.source_names(self.dataset, self.split, ids, data_dir=self.data_dir,
                             manual_dir=self.manual_dir)

  def fetch(self, ids) -> np.ndarray:
    return data.examples(self.dataset, self.split, ids, data_dir=self.data_dir,
                         manual_dir=self.manual_dir, image_size=self.image_size,
                         resize=self.resize)["image"]


def source_name(source: str) -> str:
  """What an image source is called in outputs: its file name, or NAME for skimage:NAME."""
  text = str(source)
  return text.split(":", 1)[1] if text.startswith("skimage:") else Path(text).name


@dataclasses.dataclass(frozen=True)
class FileStream:
  """Image files (and skimage:NAME photos) in the given order; names are the file names.

  Unreadable files are reported on stderr and masked out of the pass (their ids are skipped);
  labels are -1 (unknown).
  """
  sources: tuple[str, ...]
  image_size: int
  resize: int | None = None

  def __post_init__(self):
    check(len(self.sources) > 0, "no image files given")
    object.__setattr__(self, "sources", tuple(str(s) for s in self.sources))

  @property
  def num_examples(self) -> int:
    return len(self.sources)

  # Files carry no label names: labels read from ImageNet file names are the model's classes.
  class_names = ()

  @property
  def description(self) -> str:
    folders = {str(Path(s).parent) for s in self.sources if not s.startswith("skimage:")}
    where = f" in {folders.pop()}" if len(folders) == 1 else ""
    return f"{len(self.sources)} images{where}"

  def _load(self, index: int) -> np.ndarray | None:
    try:
      return image_io.model_input(self.sources[index], self.image_size, self.resize)[1]
    except UserError as e:
      print(f"warning: skipped {self.sources[index]}: {e}", file=sys.stderr)
      return None

  def _batch(self, ids: Sequence[int], host_batch: int) -> dict:
    size = self.image_size
    batch = {"image": np.zeros((host_batch, size, size, 3), np.float32),
             "mask": np.zeros(host_batch, bool), "id": np.full(host_batch, -1, np.int32),
             "label": np.full(host_batch, -1, np.int32)}
    for row, index in enumerate(ids):
      image = self._load(index)
      if image is not None:
        batch["image"][row], batch["mask"][row], batch["id"][row] = image, True, index
    return batch

  def batches(self, batch_size: int, process_index=None, process_count=None) -> Iterator[dict]:
    index, count = _hosts(process_index, process_count)
    host_batch = _host_batch(batch_size, count)
    start, stop = host_shard(self.num_examples, index, count)
    num_batches = math.ceil(math.ceil(self.num_examples / count) / host_batch)
    chunks = [range(min(start + b * host_batch, stop), min(start + (b + 1) * host_batch, stop))
              for b in range(num_batches)]
    # Decode the next batch while the device works on this one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
      pending = pool.submit(self._batch, chunks[0], host_batch)
      for chunk in chunks[1:] + [None]:
        batch = pending.result()
        if chunk is not None:
          pending = pool.submit(self._batch, chunk, host_batch)
        yield batch

  def names(self, ids) -> list[str]:
    return [source_name(self.sources[int(i)]) for i in np.asarray(ids).reshape(-1)]

  def fetch(self, ids) -> np.ndarray:
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    if not ids:
      return np.zeros((0, self.image_size, self.image_size, 3), np.float32)
    return np.stack([image_io.model_input(self.sources[i], self.image_size, self.resize)[1]
                     for i in ids])


Stream = SplitStream | FileStream


def from_split(dataset: str, split: str, *, image_size: int, resize: int | None = None,
               data_dir=None, manual_dir=None) -> SplitStream:
  return SplitStream(dataset, split, image_size, resize, str(data_dir) if data_dir else None,
                     str(manual_dir) if manual_dir else None)


def from_files(sources: Sequence[str], *, image_size: int, resize: int | None = None
               ) -> FileStream:
  return FileStream(tuple(sources), image_size, resize)
