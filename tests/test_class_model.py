"""Class model visualisation (Simonyan et al. 2014): the closed-form optimum of a linear score,
input checks, the shift used to test robustness, and on pretrained EfficientNet-Lite0 ten class
models classified as their class with p >= 0.9, still top-1 after random 8-pixel shifts."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import loader
from cnn_vis.errors import UserError
from cnn_vis.techniques import class_model, classify


@dataclasses.dataclass(frozen=True)
class LinearScores:
  """logits = flatten(x) @ w: S_c is linear, so argmax S_c - lam ||I - m||^2 = m + w_c / 2 lam."""

  def __call__(self, variables, images):
    logits = images.reshape(images.shape[0], -1) @ variables["w"]
    return logits, {}


def test_linear_class_model_reaches_closed_form():
  size, classes = 4, 5
  variables = {"w": jax.random.normal(jax.random.PRNGKey(0), (size * size * 3, classes))}
  mean = jnp.array([0.4, 0.5, 0.6])
  lam = np.array([1.0, 3.0], np.float32)
  result = class_model.class_models(LinearScores(), variables, [2, 4], size=size, center=mean,
                                    key=jax.random.PRNGKey(1), l2=lam, lr=0.05, steps=200,
                                    optimizer="sgd")
  w = np.asarray(variables["w"])
  for i, c in enumerate([2, 4]):
    expected = np.asarray(mean) + w[:, c].reshape(size, size, 3) / (2 * lam[i])
    np.testing.assert_allclose(np.asarray(result.images[i, 0]), expected, atol=1e-4)
  # the start is the zero image of the mean-subtracted space: the first score is S_c(mean)
  first = float(result.terms["class score"][0, 0])
  zero_image = np.broadcast_to(np.asarray(mean), (size, size, 3)).reshape(-1)
  assert first == pytest.approx(float(zero_image @ w[:, 2]), rel=1e-5)


@pytest.mark.parametrize("classes,match", [([5], "out of range"), ([-1], "out of range"),
                                           ([], "non-empty"), ([0.5], "class indices")])
def test_bad_classes_are_one_line_errors(classes, match):
  variables = {"w": jnp.zeros((4 * 4 * 3, 5))}
  with pytest.raises(UserError, match=match) as e:
    class_model.class_models(LinearScores(), variables, classes, size=4, center=jnp.zeros(3),
                             key=jax.random.PRNGKey(0), steps=1)
  assert "\n" not in str(e.value)


def test_presets_and_their_overrides():
  cfg = class_model.preset("cs231n", steps=7, lr=None)
  assert cfg["steps"] == 7 and cfg["lr"] == class_model.PRESETS["cs231n"]["lr"]
  assert cfg["blur_every"] == 10 and cfg["clip"] and dict(cfg["transforms"])["jitter"] == 16
  assert class_model.preset("paper")["transforms"] == () and not class_model.preset("paper")["clip"]
  with pytest.raises(UserError, match="unknown class model preset 'deepdream'"):
    class_model.preset("deepdream")
  with pytest.raises(UserError, match="unknown class model settings \\['decay'\\]"):
    class_model.preset("paper", decay=0.1)


def test_presets_render_on_a_small_net():
  # every preset's pieces (Fourier + sigmoid, blur, clip, random start) fit together; pixels of the
  # clipped and sigmoid presets stay in [0, 1]
  for name in class_model.PRESETS:
    result = class_model.class_models(LinearScores(), {"w": jnp.ones((8 * 8 * 3, 3))}, [0, 2],
                                      size=8, center=jnp.full(3, 0.5), key=jax.random.PRNGKey(0),
                                      preset_name=name, steps=3)
    images = np.asarray(result.images)
    assert images.shape == (2, 1, 8, 8, 3) and np.isfinite(images).all(), name
    if name != "paper":
      assert images.min() >= 0 and images.max() <= 1, name


def test_cs231n_step_is_the_normalised_gradient_step():
  # dX = lr g / ||g||_2 with lr = step * sqrt(entries): on a linear score (no L2, no jitter, no
  # blur, no clip) each step adds step * w_c / rms(w_c), from the given start.
  size, step = 4, 0.01
  w = jax.random.normal(jax.random.PRNGKey(5), (size * size * 3, 3))
  result = class_model.class_models(LinearScores(), {"w": w}, [1], size=size, center=jnp.zeros(3),
                                    key=jax.random.PRNGKey(0), preset_name="paper",
                                    optimizer="rms", lr=step, l2=0.0, steps=3)
  g = np.asarray(w[:, 1]).reshape(size, size, 3)
  expected = 3 * step * g / np.sqrt(np.mean(g ** 2))
  np.testing.assert_allclose(np.asarray(result.images[0, 0]), expected, rtol=1e-5, atol=1e-7)


def test_top_k_hits_rank_classes_by_the_judge_logits():
  # judge logits = flatten(x) @ w on images resized to the judge's size: ranks by brute force
  w = jax.random.normal(jax.random.PRNGKey(3), (6 * 6 * 3, 8))
  images = jax.random.uniform(jax.random.PRNGKey(4), (4, 12, 12, 3))
  classes = np.array([0, 3, 5, 7])
  hits, rank = class_model.top_k_hits(LinearScores(), {"w": w}, images, classes, 6, k=3)
  resized = jax.image.resize(images, (4, 6, 6, 3), "linear")
  logits = np.asarray(resized.reshape(4, -1) @ w)
  expected = [int(np.where(np.argsort(-row) == c)[0][0]) for row, c in zip(logits, classes)]
  np.testing.assert_array_equal(rank, expected)
  np.testing.assert_array_equal(hits, np.asarray(expected) < 3)


def test_shift_translates_with_edge_fill():
  images = jnp.asarray(np.random.RandomState(0).rand(2, 10, 12, 3), jnp.float32)
  out = np.asarray(class_model.shift(images, jnp.array([3, -2]), jnp.array([-4, 0]), 4))
  x = np.asarray(images)
  np.testing.assert_array_equal(out[0, 3:, :8], x[0, :7, 4:])        # moved down 3, left 4
  np.testing.assert_array_equal(out[0, :3, :8], np.repeat(x[0, :1, 4:], 3, axis=0))  # edge rows
  np.testing.assert_array_equal(out[1, :8], x[1, 2:])                # moved up 2
  moved, shifts = class_model.shifted(images, jax.random.PRNGKey(0), 8)
  assert moved.shape == images.shape
  assert np.all(np.abs(np.asarray(shifts)) <= 8) and np.all(np.abs(np.asarray(shifts)).sum(1) > 0)


# Five of configs/simonyan14_class_models.py's ten classes: goldfish, tarantula, flamingo,
# pineapple, volcano.
CLASSES = [1, 76, 130, 953, 980]


@pytest.mark.slow
def test_pretrained_class_models_are_classified_and_shift_robust():
  fn, variables, _ = loader.load("efficientnet_lite0", pretrained=True)
  # Five of the ten classes, 160 px (the net still classifies natural images there) and 60 steps
  # keep this test under a minute on 2 CPU cores.
  result = class_model.class_models(
      fn, variables, CLASSES, size=160, center=fn.mean_pixel,
      key=jax.random.PRNGKey(0), l2=0.01, lr=0.02, steps=60, optimizer="adam",
      transforms=(("jitter", 16),), clip=True)
  images = result.images[:, 0]
  probs = np.asarray(classify.probabilities(fn, variables, images))
  index = np.arange(len(CLASSES))
  assert np.all(probs[index, CLASSES] >= 0.9), probs[index, CLASSES]
  # random shifts of up to 8 px, and random-sign diagonal shifts of exactly 8 px
  rng = np.random.RandomState(0)
  for trial in range(2):
    moved, _ = class_model.shifted(images, jax.random.PRNGKey(100 + trial), 8)
    top1 = np.asarray(classify.probabilities(fn, variables, moved)).argmax(-1)
    np.testing.assert_array_equal(top1, CLASSES)
  signs = 8 * rng.choice([-1, 1], (2, len(CLASSES)))
  corner = class_model.shift(images, signs[0], signs[1], 8)
  np.testing.assert_array_equal(np.asarray(classify.probabilities(fn, variables, corner)).argmax(-1),
                                CLASSES)
