"""The predict experiment end to end, and its handling of bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_vis import main
from cnn_vis.errors import UserError
from configs import predict

REPO = Path(__file__).resolve().parents[1]


def _smoke(**overrides):
  config = predict.get_config("smoke")
  config.update(overrides)
  return config


@pytest.fixture
def image_dir(tmp_path):
  rng = np.random.default_rng(0)
  folder = tmp_path / "images"
  folder.mkdir()
  Image.fromarray(rng.integers(0, 255, (40, 50, 3), np.uint8)).save(folder / "a_rgb.jpg")
  Image.fromarray(rng.integers(0, 255, (40, 50), np.uint8)).save(folder / "b_gray.png")
  Image.fromarray(rng.integers(0, 255, (40, 50, 4), np.uint8)).save(folder / "c_rgba.png")
  good = (folder / "a_rgb.jpg").read_bytes()
  (folder / "d_corrupt.jpg").write_bytes(good[: len(good) // 3])  # truncated JPEG
  (folder / "e_garbage.jpg").write_bytes(b"not an image at all")
  return folder


def test_predicts_every_readable_image_and_skips_corrupt_ones(image_dir, tmp_path, capsys):
  workdir = tmp_path / "run"
  records = main.run(_smoke(images=str(image_dir)), str(workdir))
  lines = [json.loads(line) for line in (workdir / "predictions.jsonl").read_text().splitlines()]
  assert [r["file"] for r in lines] == ["a_rgb.jpg", "b_gray.png", "c_rgba.png"] == \
      [r["file"] for r in records]
  for record in lines:
    probs = [p for _, _, p in record["top5"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-5
  err = capsys.readouterr().err
  assert "skipped" in err and "d_corrupt.jpg" in err and "e_garbage.jpg" in err
  assert "mode L; converted to RGB" in err and "mode RGBA; converted to RGB" in err
  report = (workdir / "report.html").read_text()
  assert "a_rgb.jpg" in report and (workdir / "images" / "0000.png").exists()


def test_missing_image_dir_is_an_error_and_keeps_earlier_outputs(tmp_path):
  workdir = tmp_path / "run"
  main.run(_smoke(), str(workdir))
  before = (workdir / "predictions.jsonl").read_text()
  with pytest.raises(UserError, match="neither an image directory"):
    main.run(_smoke(images=str(tmp_path / "missing")), str(workdir))
  assert (workdir / "predictions.jsonl").read_text() == before


def test_unknown_model_exits_2_with_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run(
      [sys.executable, "-m", "cnn_vis.main", f"--config={REPO}/configs/predict.py:smoke",
       "--config.model=resnet9000", f"--workdir={tmp_path / 'w'}"],
      capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: unknown model 'resnet9000'; allowed:")
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "w").exists()


def test_unknown_experiment_and_bad_values(tmp_path):
  with pytest.raises(UserError, match="unknown experiment 'nope'; allowed: .*predict"):
    main.run(_smoke(experiment="nope"), str(tmp_path))
  with pytest.raises(UserError, match="top_k must be >= 1"):
    main.run(_smoke(top_k=0), str(tmp_path))
