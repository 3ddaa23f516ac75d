"""Filters as pictures: the two-group layout of AlexNet's conv1 on known weights (Krizhevsky et
al. 2012, Fig. 3), kernels found in nested parameter trees, contrast normalisations, BGR input
shown as RGB, and the experiment end to end."""
import json

import jax
import numpy as np
import pytest
from PIL import Image

from cnn_vis import main, models
from cnn_vis.errors import UserError
from cnn_vis.report import draw
from cnn_vis.techniques import filters
from configs import krizhevsky12_filters
from experiments import filters as filters_experiment


def known_conv1() -> np.ndarray:
  """An 11x11x3x96 kernel whose filter i is 0 except 1 at pixel (i // 11, i % 11)."""
  kernel = np.zeros((11, 11, 3, 96), np.float32)
  for i in range(96):
    kernel[i // 11, i % 11, :, i] = 1.0
  return kernel


def decode(picture, rect) -> int:
  """The filter index a tile of known_conv1 shows: where its bright pixel is."""
  left, top, right, bottom = rect
  tile = picture[top:bottom, left:right, 0]
  y, x = np.unravel_index(np.argmax(tile), tile.shape)
  zoom = (bottom - top) // 11
  return int(y // zoom * 11 + x // zoom)


def test_two_group_alexnet_puts_each_gpus_filters_in_its_own_half():
  apply_fn = models.ModelFn(models.build("alexnet", groups=2))
  assert filters_experiment.auto_groups(apply_fn) == 2
  assert filters_experiment.auto_groups(models.ModelFn(models.build("alexnet", groups=1))) == 1
  assert filters_experiment.auto_groups(models.ModelFn(models.build("squeezenet1_1"))) == 1
  images = filters.normalize(filters.filter_images(known_conv1()))
  blocks = filters.group_blocks(filters.upscale(images, 4), 2)
  picture, rects = draw.tile_blocks(blocks, ncols=16, gap=10)
  assert [decode(picture, r) for r in rects] == list(range(96))   # tiles in filter order
  height = picture.shape[0]
  first, second = rects[:48], rects[48:]
  assert max(r[3] for r in first) < height / 2 < min(r[1] for r in second)
  gap = picture[max(r[3] for r in first):min(r[1] for r in second)]
  assert gap.shape[0] >= 10 and (gap == 1.0).all()                 # a white band between
  assert len({r[1] for r in first}) == 3 and len({r[1] for r in second}) == 3  # 3 rows of 16


def zero_params(name: str) -> dict:
  module = models.build(name)
  shapes = jax.eval_shape(lambda: models.init_variables(name, module))["params"]
  return jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes)


def test_find_kernel_in_nested_parameters():
  params = zero_params("squeezenet1_1")
  assert filters.find_kernel(params, "conv1")[0] == "conv1"
  path, kernel = filters.find_kernel(params, "fire2")      # the 3x3 expand branch
  assert path == "fire2/expand3x3" and kernel.shape == (3, 3, 16, 64)
  assert filters.find_kernel(params, "fire2/squeeze")[1].shape == (1, 1, 64, 16)
  with pytest.raises(UserError, match="no parameters named 'pool1'"):
    filters.find_kernel(params, "pool1")
  params = zero_params("efficientnet_lite0")
  assert filters.find_kernel(params, "stem")[0] == "stem/conv"
  assert filters.find_kernel(params, "block2")[0] == "block2/depthwise/conv"


def test_normalisations():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(5, 3, 3, 3)) * np.arange(1, 6)[:, None, None, None]
  per = filters.normalize(f, "per_filter")
  assert np.allclose(per.min(axis=(1, 2, 3)), 0) and np.allclose(per.max(axis=(1, 2, 3)), 1)
  both = filters.normalize(f, "global")
  assert np.isclose(both.min(), 0) and np.isclose(both.max(), 1)
  assert both[0].max() - both[0].min() < both[4].max() - both[4].min()   # scales kept
  sym = filters.normalize(f, "symmetric")
  assert np.allclose(sym[f == 0], 0.5) if (f == 0).any() else np.all((sym >= 0) & (sym <= 1))
  assert np.allclose(np.abs(sym - 0.5).max(axis=(1, 2, 3)), 0.5)
  with pytest.raises(UserError, match="unknown filter normalisation 'minmax'"):
    filters.normalize(f, "minmax")
  kernel = np.zeros((1, 1, 3, 2), np.float32)
  kernel[0, 0, 0] = 1.0                                   # the net's channel 0 = blue in BGR
  assert filters.filter_images(kernel, bgr=True)[0, 0, 0].tolist() == [0.0, 0.0, 1.0]
  assert filters.filter_images(np.ones((5, 5, 48, 7)))[0].shape == (5, 5, 1)  # mean over inputs
  with pytest.raises(UserError, match="groups 5 must be a positive integer dividing the 96"):
    filters.group_blocks(np.zeros((96, 1)), 5)


def test_experiment_writes_both_grids(tmp_path):
  config = krizhevsky12_filters.get_config("smoke")
  summary = main.run(config, str(tmp_path / "run"))
  workdir = tmp_path / "run"
  assert summary["layer"] == "conv1" and summary["filters"] == 8     # width 0.125: 64 -> 8
  assert summary["deeper_layer"] == "conv2" and summary["deeper_kernel"] == [5, 5, 8, 24]
  picture = np.asarray(Image.open(workdir / "filters.png"))
  assert picture.shape[1] == 4 * (5 * 8 + 1) + 1          # ncols 4, 5x5 filters at zoom 8
  assert np.asarray(Image.open(workdir / "filters_conv2.png")).std() > 0
  kernels = np.load(workdir / "filters.npz")
  assert kernels["conv1"].shape == (5, 5, 3, 8)
  assert "MEAN over its 8 input channels" in (workdir / "report.html").read_text()
  assert json.loads((workdir / "summary.json").read_text())["normalization"] == "per_filter"
  for key, value, match in (("normalization", "minmax", "unknown normalization 'minmax'"),
                            ("layer", "conv9", "unknown layer 'conv9'"),
                            ("deeper_layer", "pool1", "no parameters named 'pool1'"),
                            ("groups", 3, "groups 3 must be a positive integer dividing the 8")):
    bad = krizhevsky12_filters.get_config("smoke")
    bad[key] = value
    with pytest.raises(UserError, match=match):
      main.run(bad, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
