"""Codes, t-SNE pictures and retrieval: the grid assignment (every image exactly one cell, optimal
when exact), the quality figures, streaming nearest neighbours against brute force, and the
embedding experiment end to end on photos and on an image-folder split (output contract)."""
import dataclasses
import itertools
import json

import numpy as np
import pytest
from PIL import Image
from sklearn import manifold

from cnn_vis import main
from cnn_vis.errors import UserError
from cnn_vis.techniques import embedding
from configs import karpathy14_tsne, krizhevsky12_neighbours
from conftest import batches_of


@pytest.mark.parametrize("count,exact_limit", [(7, 100), (50, 100), (50, 10), (300, 10)])
def test_grid_assignment_gives_every_point_one_cell(count, exact_limit):
  points = np.random.default_rng(count).normal(size=(count, 2))
  rows, cols = embedding.grid_shape(count)
  assert rows * cols >= count and (rows - 1) * cols < count
  cells = embedding.grid_assignment(points, rows, cols, exact_limit)
  assert cells.shape == (count,) and len(set(cells.tolist())) == count
  assert cells.min() >= 0 and cells.max() < rows * cols


def _cost(points, cells, rows, cols) -> float:
  unit = embedding._unit_square(points)
  centres = np.stack([(cells % cols + 0.5) / cols, (cells // cols + 0.5) / rows], axis=1)
  return float(((unit - centres) ** 2).sum())


def test_exact_assignment_is_optimal_and_beats_the_fallback():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(6, 2))
  cells = embedding.grid_assignment(points, 2, 3)
  best = min(_cost(points, np.array(p), 2, 3) for p in itertools.permutations(range(6)))
  assert _cost(points, cells, 2, 3) == pytest.approx(best)
  points = rng.normal(size=(100, 2))
  exact = embedding.grid_assignment(points, 10, 10, exact_limit=1000)
  rows_sorted = embedding.grid_assignment(points, 10, 10, exact_limit=10)
  assert _cost(points, exact, 10, 10) <= _cost(points, rows_sorted, 10, 10)


def test_quality_figures():
  rng = np.random.default_rng(0)
  labels = np.repeat([0, 1, 2], 30)
  codes = rng.normal(size=(90, 20)) + 10 * labels[:, None]
  assert embedding.knn_accuracy(codes, labels, 10) == 1.0
  assert embedding.knn_accuracy(rng.normal(size=(90, 2)), labels, 10) < 0.7
  assert np.isnan(embedding.knn_accuracy(codes[:5], labels[:5], 10))
  assert embedding.knn_accuracy(codes, np.where(labels == 2, -1, labels), 10) == 1.0
  assert embedding.trustworthiness(codes, codes, 10) == pytest.approx(1.0)
  points = codes[:, :2]
  assert embedding.trustworthiness(codes, points, 5) == pytest.approx(
      manifold.trustworthiness(codes, points, n_neighbors=5))
  reduced = embedding.reduce(codes, 5)
  assert reduced.shape == (90, 5) and embedding.reduce(codes, 50).shape == (90, 20)


@dataclasses.dataclass(frozen=True)
class Linear:
  """codes = images flattened times a fixed matrix."""
  logits_name = "codes"

  def __call__(self, variables, images):
    codes = images.reshape(images.shape[0], -1) @ variables["w"]
    return codes, {"codes": codes}


@pytest.mark.parametrize("batch_size", [1, 7])
def test_streaming_neighbours_equal_brute_force(batch_size):
  rng = np.random.default_rng(1)
  images = rng.random((30, 4, 4, 3)).astype(np.float32)
  variables = {"w": rng.normal(size=(48, 5)).astype(np.float32)}
  codes = images.reshape(30, -1) @ variables["w"]
  queries = rng.normal(size=(4, 5)).astype(np.float32) + codes[[3, 9, 9, 20]]
  seen = []
  found, result = embedding.codes_pass(
      Linear(), variables, batches_of(images, batch_size), "codes", queries=queries, k=6,
      thumb=8, collect=lambda outputs, mask: seen.append((outputs, mask)))
  assert result.images == 30
  distances = np.linalg.norm(queries[:, None] - codes[None], axis=-1)
  order = np.argsort(distances, axis=1, kind="stable")[:, :6]
  np.testing.assert_array_equal(found.ids, order)
  np.testing.assert_allclose(found.distances, np.take_along_axis(distances, order, 1),
                             rtol=1e-4, atol=1e-4)
  got = np.concatenate([o["codes"][m] for o, m in seen])
  np.testing.assert_allclose(got, codes, rtol=1e-5, atol=1e-5)      # every code, in order
  assert np.concatenate([o["id"][m] for o, m in seen]).tolist() == list(range(30))
  assert seen[0][0]["thumb"].shape == (batch_size, 8, 8, 3) and seen[0][0]["thumb"].dtype == \
      np.uint8


def test_too_large_a_perplexity_is_refused():
  with pytest.raises(UserError, match="perplexity 30.0 needs more than 91 images"):
    embedding.TSNESettings(perplexity=30.0).check(50)


# ------------------------------------------------------------------------------------------------
# The experiment.

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """split/class/*.png: 2 classes x 20 images; class 1 bright, class 0 dark."""
  root = tmp_path_factory.mktemp("classes")
  rng = np.random.default_rng(0)
  for c in range(2):
    for i in range(20):
      path = root / "test" / f"class{c}" / f"{i:02d}.png"
      path.parent.mkdir(parents=True, exist_ok=True)
      pixels = np.clip(rng.normal(60 + 140 * c, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(path)
  return root


def test_tsne_run_writes_the_contract(tmp_path, folder):
  config = karpathy14_tsne.get_config("smoke")
  config.update(images="", dataset="image_folder", split="test", manual_dir=str(folder),
                perplexity=5.0, metric_neighbours=5, grid_points=0, batch_size=8)
  summary = main.run(config, str(tmp_path / "run"))
  workdir = tmp_path / "run"
  codes, points = np.load(workdir / "codes.npy"), np.load(workdir / "embedding.npy")
  labels, sources = np.load(workdir / "labels.npy"), json.loads(
      (workdir / "sources.json").read_text())
  assert codes.shape == (40, 32) and codes.dtype == np.float32 and points.shape == (40, 2)
  assert sorted(labels.tolist()) == [0] * 20 + [1] * 20
  assert sources == [f"test:{i}" for i in range(40)]
  assert 0.0 <= summary["trustworthiness"] <= 1.0
  assert summary["knn5_accuracy_codes"] > 0.9          # the classes differ in brightness
  for name in ("tsne_scatter.png", "tsne_images.png", "tsne_grid.png"):
    assert np.asarray(Image.open(workdir / name)).std() > 0, name
  grid = np.asarray(Image.open(workdir / "tsne_grid.png"))
  assert grid.shape[:2] == (6 * 16, 7 * 16)            # 40 images: 6 rows of 7 cells, 16 px
  saved = json.loads((workdir / "summary.json").read_text())
  assert saved["images"] == 40 and saved["layer"] == "fc7"


def test_neighbours_run_and_photos(tmp_path):
  config = krizhevsky12_neighbours.get_config("smoke")
  summary = main.run(config, str(tmp_path / "run"))
  workdir = tmp_path / "run"
  lines = [json.loads(line) for line in (workdir / "neighbours.jsonl").read_text().splitlines()]
  assert [line["query"] for line in lines] == ["chelsea", "coffee"]
  for line in lines:   # the queries are among the photos: each finds itself first
    assert line["neighbours"][0][0] == line["query"] and line["neighbours"][0][1] < 1e-3
    distances = [d for _, d in line["neighbours"]]
    assert len(distances) == 3 and distances == sorted(distances)
  codes = np.load(workdir / "codes.npy")
  assert codes.shape == (7, 32) and (np.load(workdir / "labels.npy") == -1).all()
  assert summary["queries"] == 2 and (workdir / "neighbours.png").is_file()
  assert not (workdir / "embedding.npy").exists()


def test_bad_input_writes_nothing(tmp_path):
  for overrides, match in (({"perplexity": 30.0}, "perplexity 30.0 needs more than 91 images"),
                           ({"layer": "fc9"}, "unknown layer 'fc9'"),
                           ({"neighbours": 0, "queries": "skimage:chelsea"},
                            r"neighbours \(k\) must be an integer >= 1, got 0")):
    config = karpathy14_tsne.get_config("smoke")
    config.update(overrides)
    with pytest.raises(UserError, match=match) as info:
      main.run(config, str(tmp_path / "run"))
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()
