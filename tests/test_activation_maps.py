"""Activation maps: one colour scale per image, the strongest channels ranked by their peak, the
grid as an image map linking each tile to a top-patches run's unit page, and bad input."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from cnn_vis import main
from cnn_vis.errors import UserError
from cnn_vis.report import draw
from cnn_vis.techniques import activation_maps
from configs import yosinski15_activations


def test_scale_ranking_and_grid():
  maps = np.zeros((5, 4, 4), np.float32)
  maps[3, 1, 2], maps[1, 0, 0], maps[4] = 9.0, 5.0, 2.0
  assert activation_maps.shared_scale(maps) == (0.0, 9.0)
  assert activation_maps.strongest(maps, 3).tolist() == [3, 1, 4]
  assert activation_maps.shared_scale(maps - 20)[0] == -20.0
  grid, rects = draw.heatmap_grid(maps, 0.0, 9.0, ncols=3, tile=8, marked={3: 1})
  assert len(rects) == 5 and grid.shape == (2 * 14, 3 * 14, 3)
  left, top, right, bottom = rects[4]
  assert (grid[top:bottom, left:right] == grid[top, left]).all()      # one colour: 2/9
  assert not np.allclose(grid[top, left], grid[rects[0][1], rects[0][0]])    # 0 is darker


def fake_patches_run(root, model="alexnet_cifar", layer="conv3"):
  """What the activation maps read of a top-patches run: summary, jsonl, unit pages."""
  root.mkdir(parents=True)
  (root / "summary.json").write_text(json.dumps({"model": model, "layers": [layer]}))
  (root / "top_patches.jsonl").write_text("")
  (root / "units").mkdir()
  return root


def test_grid_tiles_link_to_the_units_top_patches(tmp_path):
  patches_run = fake_patches_run(tmp_path / "patches")
  config = yosinski15_activations.get_config("smoke")
  config.patches_run = str(patches_run)
  summary = main.run(config, str(tmp_path / "run"))
  workdir = tmp_path / "run"
  assert summary["channels"] == 48 and summary["images"] == 2 and summary["map_size"] == [8, 8]
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["image"] for r in records] == ["astronaut", "chelsea"]
  for record in records:
    peaks = [p for _, p in record["strongest"]]
    assert len(peaks) == 3 and peaks == sorted(peaks, reverse=True)
    assert record["high"] == pytest.approx(peaks[0]) and record["low"] <= 0.0
  page = (workdir / "activations_000_astronaut.html").read_text()
  links = [part.split('"')[0] for part in page.split('href="')[1:]]
  assert len(links) == 48
  for c, link in enumerate(links):
    assert os.path.normpath(workdir / link) == os.path.normpath(
        patches_run / "units" / f"conv3_{c}.png")
  grid = np.asarray(Image.open(workdir / "activations_000_astronaut.png"))
  assert grid.shape[0] == grid.shape[1] == 7 * (16 + 6)      # 48 channels: 7 x 7 tiles
  report = (workdir / "report.html").read_text()
  best = records[0]["strongest"][0][0]
  assert f"#1 conv3:{best}" in report


@pytest.mark.parametrize("setup,match", [
    (lambda p: fake_patches_run(p, layer="conv5"), "has top patches of conv5, not conv3"),
    (lambda p: fake_patches_run(p, model="alexnet"), "is a run of model alexnet"),
    (lambda p: p.mkdir(), "is not a top-patches run"),
])
def test_a_patches_run_of_something_else_is_refused(setup, match, tmp_path):
  setup(tmp_path / "patches")
  config = yosinski15_activations.get_config("smoke")
  config.patches_run = str(tmp_path / "patches")
  with pytest.raises(UserError, match=match):
    main.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
