"""Fooling images (Nguyen et al. 2015): gradient ascent from noise reaching 99.6% on the saved PNG
for several classes in one render, plain and regularised; the CPPN; the evolution strategy as
one compiled loop that improves the class probability; the experiment's outputs; bad input."""
import dataclasses
import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import loader, main
from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError
from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import fooling
from cnn_vis.techniques import minimal_perturbation as M


@pytest.fixture(scope="module")
def linear():
  """A random softmax regression on 32x32 images: its classes can be pushed to p ~ 1."""
  fn, variables, _ = loader.load("softmax_regression", seed=0)
  return fn, variables


def test_gradient_ascent_reaches_996_on_the_8bit_image_for_every_class(linear):
  fn, variables = linear
  classes = np.array([0, 3, 7, 0, 3, 7])
  decay = np.array([0.0, 0.0, 0.0, 0.01, 0.01, 0.01])      # plain and regularised, one render
  result = fooling.gradient_ascent(fn, variables, classes, size=32, center=fn.mean_pixel,
                                   key=jax.random.PRNGKey(0), decay=decay, steps=40, lr=0.05)
  images = A.quantize(np.asarray(result.images[:, 0]))
  _, probs = M.predictions(fn, variables, images)
  probs = np.asarray(probs)[np.arange(len(classes)), classes]
  assert np.all(probs >= fooling.CONFIDENCE), probs
  # from noise: the start is the mean image plus 1/255 noise, nowhere near the class
  assert np.all(np.exp(np.asarray(result.values[:, 0])) < 0.5)
  # the regularised images stay closer to the mean image
  distance = np.abs(images - np.asarray(fn.mean_pixel)).mean(axis=(1, 2, 3))
  assert np.all(distance[3:] < distance[:3])


def test_the_cppn_maps_coordinates_to_a_patterned_image():
  cppn = fooling.CPPN((8, 8))
  coords = fooling.coordinates(16)
  assert coords.shape == (256, 3)
  np.testing.assert_allclose(coords[0], [-1, -1, np.sqrt(2)], rtol=1e-6)
  params = cppn.init(jax.random.PRNGKey(0), coords)["params"]
  image = np.asarray(fooling.cppn_image(cppn, params, 16))
  assert image.shape == (16, 16, 3) and image.min() >= 0 and image.max() <= 1
  assert image.std() > 0.01                                 # not a flat colour


@dataclasses.dataclass(frozen=True)
class CountingTraces:
  """A model whose forward pass counts how often it is traced (hashable: a static argument)."""
  inner: object
  traces: list = dataclasses.field(default_factory=list, compare=False, hash=False)

  def __call__(self, variables, images):
    self.traces.append(images.shape)
    return self.inner(variables, images)


def test_the_evolution_is_one_compiled_loop_that_improves(linear):
  fn, variables = linear
  counted = CountingTraces(fn)
  runs = {}
  for generations in (2, 8):
    before = len(counted.traces)
    runs[generations] = fooling.evolve(counted, variables, [2, 5], size=32,
                                       key=jax.random.PRNGKey(0), population=6,
                                       generations=generations, hidden=(6,))
    runs[generations] = (runs[generations], len(counted.traces) - before)
  assert runs[2][1] == runs[8][1] <= 3   # traced once per compile, not once per generation
  evolution = runs[8][0]
  history = np.asarray(evolution.best_log_prob)
  assert history.shape == (2, 8)
  assert np.all(np.diff(history, axis=1) >= 0) and np.all(history[:, -1] > history[:, 0])
  _, probs = M.predictions(fn, variables, evolution.images)
  np.testing.assert_allclose(np.log(np.asarray(probs)[[0, 1], [2, 5]]), history[:, -1],
                             rtol=1e-4, atol=1e-5)


def test_openai_es_runs_too(linear):
  fn, variables = linear
  evolution = fooling.evolve(fn, variables, [1], size=32, key=jax.random.PRNGKey(1),
                             strategy="open_es", population=4, generations=2, hidden=(4,))
  assert np.all(np.isfinite(np.asarray(evolution.best_log_prob)))


def test_screening_ranks_random_cppn_draws_then_short_evolutions(linear):
  fn, variables = linear
  key, cppn = jax.random.PRNGKey(3), fooling.CPPN((6,))
  drawn = fooling.screen_classes(fn, variables, size=32, key=key, count=10, samples=8,
                                 generations=0, hidden=(6,))
  images = jnp.stack([fooling.cppn_image(cppn, cppn.init(k, fooling.coordinates(2))["params"], 32)
                      for k in jax.random.split(key, 8)])
  best = np.asarray(M.predictions(fn, variables, images)[1]).max(axis=0)   # per class
  np.testing.assert_array_equal(drawn, np.argsort(-best, kind="stable"))
  chosen = fooling.screen_classes(fn, variables, size=32, key=key, count=2, samples=8, pool=4,
                                  generations=3, hidden=(6,), population=4)
  evolution = fooling.evolve(fn, variables, drawn[:4], size=32, key=jax.random.fold_in(key, 1),
                             generations=3, hidden=(6,), population=4)
  reached = np.asarray(evolution.best_log_prob[:, -1])
  np.testing.assert_array_equal(chosen, drawn[:4][np.argsort(-reached)[:2]])
  with pytest.raises(UserError, match="screen pool must be a whole number >= 1, got 0"):
    fooling.screen_classes(fn, variables, size=32, key=key, pool=0)


def _config(arg="smoke", **overrides):
  config = importlib.import_module("configs.nguyen15_fooling").get_config(arg)
  config.update(overrides)
  return config


@pytest.mark.parametrize("method", ["gradient", "cppn"])
def test_the_experiment_writes_one_png_per_class_measured_on_the_file(method, tmp_path):
  summary = main.run(_config(method=method), str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / "fooling.jsonl").read_text().splitlines()]
  assert [r["class"] for r in records] == [0, 1, 3]       # "0;1;cat" on CIFAR-10
  assert [r["name"] for r in records] == ["airplane", "automobile", "cat"]
  fn, variables, _ = loader.from_config(_config())
  for record in records:
    image = image_io.load_image(tmp_path / "fooling" / f"{record['class']}.png")
    assert image.shape == (32, 32, 3)
    p = float(M.predictions(fn, variables, jnp.asarray(image[None]))[1][0, record["class"]])
    assert record["prob"] == pytest.approx(p, rel=1e-5)
  assert summary["confident"] == sum(r["prob"] >= 0.996 for r in records)
  assert (tmp_path / "progress.png").is_file() and (tmp_path / "fooling.png").is_file()


def test_the_experiment_screens_its_classes_when_asked(tmp_path):
  summary = main.run(_config(method="cppn", classes="screen", screen_count=3,
                             screen_generations=2), str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / "fooling.jsonl").read_text().splitlines()]
  assert len({r["class"] for r in records}) == 3 == len(summary["classes"])
  assert sorted(p.name for p in (tmp_path / "fooling").iterdir()) == sorted(
      f"{r['class']}.png" for r in records)


@pytest.mark.parametrize("overrides,match", [
    ({"classes": "10"}, "class 10 out of range"),
    ({"classes": "zebra"}, "unknown class 'zebra'"),
    ({"method": "cppn", "strategy": "ga"}, "unknown evolution strategy 'ga'"),
    ({"method": "cppn", "strategy": "open_es", "population": 5}, "even population"),
    ({"method": "cppn", "generations": 0}, "generations must be a whole number >= 1"),
    ({"classes": "screen", "screen_generations": -1}, "screen generations must be a whole"),
    ({"method": "dream"}, "unknown method 'dream'"),
    ({"transfer_model": "alexnet_cifar"}, "has no pretrained weights")])
def test_bad_input_is_a_one_line_error_and_writes_nothing(overrides, match, tmp_path):
  with pytest.raises(UserError, match=match) as error:
    main.run(_config(**overrides), str(tmp_path / "run"))
  assert "\n" not in str(error.value)
  assert not (tmp_path / "run").exists()
