"""Shared fixtures. torch/torchvision are imported first: importing TensorFlow before torchvision
crashes the interpreter (seen with tensorflow-cpu 2.21 and torchvision 0.29)."""
try:
  import torch  # noqa: F401  pylint: disable=unused-import
  import torchvision  # noqa: F401  pylint: disable=unused-import
except ImportError:
  pass

from pathlib import Path

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
