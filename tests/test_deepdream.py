"""DeepDream: octave sizes, any input size returned, ||a||^2 rising in every octave (a random
two-layer conv net and the pretrained EfficientNet-Lite0), the notebook's normalised step."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import loader, models
from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError
from cnn_vis.techniques import deepdream


def test_octave_shapes():
  assert deepdream.octave_shapes(224, 300, 4, 1.4) == [(224, 300), (160, 214), (114, 153),
                                                       (81, 109)]
  assert deepdream.octave_shapes(50, 40, 1, 1.4) == [(50, 40)]


class TwoConvs(nn.Module):
  """conv 3x3 -> ReLU -> conv 3x3 / 2 -> ReLU, any input size; acts c1, c2."""

  @nn.compact
  def __call__(self, images, train: bool = False):
    del train
    c1 = nn.relu(nn.Conv(8, (3, 3), name="c1")(images - 0.5))
    c2 = nn.relu(nn.Conv(8, (3, 3), (2, 2), name="c2")(c1))
    return jnp.mean(c2, axis=(1, 2)), {"c1": c1, "c2": c2}


@pytest.fixture(scope="module")
def tiny():
  module = TwoConvs()
  variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
  return models.ModelFn(module), variables


def test_dream_any_size_and_energy_rises_each_octave(tiny):
  fn, variables = tiny
  images = np.random.RandomState(0).rand(2, 45, 37, 3).astype(np.float32)
  dreams, records = deepdream.deepdream(fn, variables, images, "c2",
                                        key=jax.random.PRNGKey(0), iter_n=3, octave_n=3,
                                        octave_scale=1.4, jitter=4)
  assert dreams.shape == images.shape
  assert float(dreams.min()) >= 0 and float(dreams.max()) <= 1
  assert [(r["height"], r["width"]) for r in records] == [(23, 19), (32, 26), (45, 37)]
  for r in records:
    assert all(a > b for a, b in zip(r["energy_after"], r["energy_before"])), r


def test_one_step_is_the_notebook_update(tiny):
  # x1 = clip(x0 + step * g / mean|g|), g = d(1/2 ||a||^2)/dx, without jitter
  fn, variables = tiny
  x0 = np.random.RandomState(1).rand(1, 20, 20, 3).astype(np.float32) * 0.5 + 0.25
  step = 0.01
  dream, _ = deepdream.deepdream(fn, variables, x0, "c2", key=jax.random.PRNGKey(0),
                                 iter_n=1, octave_n=1, step_size=step, jitter=0)
  g = jax.grad(lambda x: 0.5 * jnp.sum(fn(variables, x)[1]["c2"] ** 2))(jnp.asarray(x0))
  expected = np.clip(x0 + step * np.asarray(g) / np.abs(np.asarray(g)).mean(), 0, 1)
  np.testing.assert_allclose(np.asarray(dream), expected, atol=1e-5)


def test_bad_inputs(tiny):
  fn, variables = tiny
  good = np.full((1, 16, 16, 3), 0.5, np.float32)
  with pytest.raises(UserError, match="unknown layer 'nope'"):
    deepdream.deepdream(fn, variables, good, "nope", key=jax.random.PRNGKey(0))
  with pytest.raises(UserError, match="non-finite"):
    deepdream.deepdream(fn, variables, np.full((1, 16, 16, 3), np.nan, np.float32), "c1",
                        key=jax.random.PRNGKey(0))
  with pytest.raises(UserError, match="octave_scale"):
    deepdream.deepdream(fn, variables, good, "c1", key=jax.random.PRNGKey(0), octave_scale=0.5)


@pytest.mark.slow
def test_pretrained_dream_with_notebook_settings():
  fn, variables, _ = loader.load("efficientnet_lite0", pretrained=True)
  image = image_io.skimage_image("chelsea")[::3, ::3]           # 100 x 151, not square
  dreams, records = deepdream.deepdream(fn, variables, image[None],
                                        "block11", key=jax.random.PRNGKey(0))  # notebook defaults
  assert dreams.shape == (1,) + image.shape
  assert len(records) == deepdream.OCTAVE_N
  for r in records:
    assert r["energy_after"][0] > r["energy_before"][0], r
  # the dream changed the image visibly but kept it an image
  assert float(jnp.abs(dreams[0] - image).mean()) > 0.01
