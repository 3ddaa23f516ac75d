"""Shared fixtures. torch/torchvision are imported first: importing TensorFlow before torchvision
crashes the interpreter (seen with tensorflow-cpu 2.21 and torchvision 0.29)."""
try:
  import torch  # noqa: F401  pylint: disable=unused-import
  import torchvision  # noqa: F401  pylint: disable=unused-import
except ImportError:
  pass

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
  """The read-only shared/ folder beside the repository (as laid out for sessions and CI)."""
  assert SHARED.is_dir(), f"shared data folder missing: expected {SHARED} beside the repository"
  return SHARED


@pytest.fixture(scope="session")
def imagenet_samples(shared_dir) -> Path:
  return shared_dir / "data" / "imagenet-samples"


def imagenet_files_and_labels(folder: Path):
  """The 100 shared ImageNet samples (sorted file paths) and their class indices, read from
  classes.tsv (the row is the index; the wnid starts each file name)."""
  files = sorted(folder.glob("*.JPEG"))
  assert len(files) == 100, f"expected the 100 ImageNet samples in {folder}, found {len(files)}"
  rows = (folder / "classes.tsv").read_text().splitlines()[1:]
  index = {row.split("\t")[1]: i for i, row in enumerate(rows)}
  return files, np.array([index[f.name.split("_")[0]] for f in files])


def batches_of(images, batch_size: int):
  """Padded batches of images with ids (as a stream yields them)."""
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    pad = batch_size - len(chunk)
    yield {"image": np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.float32)]),
           "mask": np.arange(batch_size) < len(chunk),
           "id": np.concatenate([np.arange(start, start + len(chunk)), np.full(pad, -1)]
                                ).astype(np.int32),
           "label": np.full(batch_size, -1, np.int32)}
