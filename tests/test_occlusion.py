"""Occlusion maps against closed forms and brute force.

Oracle: a model whose logits are a known linear function of the pixels, so the score with the
square at any position is S(x) - sum_{window} w (x - fill); probabilities, labels and the feature
map follow in closed form, and the per-pixel map is checked against a loop over windows.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis.errors import UserError
from cnn_vis.techniques import occlusion as O

H, W, K = 12, 10, 4


@pytest.fixture(scope="module")
def linear():
  """logits = sum_hwc x w_k + b; acts["lin"] = x * v (a conv-shaped layer, linear too)."""
  rng = np.random.default_rng(0)
  weights = {"w": rng.normal(size=(H, W, 3, K)).astype(np.float32),
             "b": rng.normal(size=K).astype(np.float32),
             "v": rng.normal(size=(H, W, 3, 2)).astype(np.float32)}

  def apply_fn(variables, images):
    logits = jnp.einsum("nhwc,hwck->nk", images, variables["w"]) + variables["b"]
    return logits, {"lin": jnp.einsum("nhwc,hwck->nhwk", images, variables["v"]), "fc": logits}

  images = rng.uniform(size=(2, H, W, 3)).astype(np.float32)
  return apply_fn, weights, images


def _occluded(image, y0, x0, size, fill):
  out = image.copy()
  out[y0:y0 + size, x0:x0 + size] = fill
  return out


@pytest.mark.parametrize("size,stride,fill,chunk", [(4, 3, 0.3, 5), (5, 5, (0.1, 0.5, 0.9), 1000),
                                                    (10, 2, 0.5, 1)])
def test_linear_model_gives_the_closed_form_maps(linear, size, stride, fill, chunk):
  apply_fn, weights, images = linear
  classes = np.array([1, -1], np.int32)  # image 1: the predicted class
  result = O.occlusion(apply_fn, weights, images, classes, np.asarray(fill, np.float32), size=size,
                       stride=stride, feature_layer="lin", chunk=chunk)
  w, b, v = (np.asarray(weights[k], np.float64) for k in "wbv")
  x = images.astype(np.float64)
  base = np.einsum("nhwc,hwck->nk", x, w) + b
  np.testing.assert_array_equal(result.classes, [1, int(np.argmax(base[1]))])
  starts_y, starts_x = np.asarray(result.starts_y), np.asarray(result.starts_x)
  assert starts_y[0] == 0 and starts_y[-1] == H - size and starts_x[-1] == W - size
  assert np.all(np.diff(starts_y) <= stride) and np.all(np.diff(starts_x) <= stride)
  strongest = np.argmax(np.einsum("nhwc,hwck->nk", x, v), axis=1)  # on the unoccluded images
  np.testing.assert_array_equal(result.feature_channel, strongest)
  for n in range(2):
    c = int(result.classes[n])
    for i, y0 in enumerate(starts_y):
      for j, x0 in enumerate(starts_x):
        window = np.s_[y0:y0 + size, x0:x0 + size]
        removed = np.einsum("hwc,hwck->k", x[n][window] - np.asarray(fill), w[window])
        logits = base[n] - removed                    # closed form: S(x) - sum w (x - fill)
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(result.score[n, i, j], logits[c], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(result.prob[n, i, j], probs[c], rtol=1e-4, atol=1e-6)
        assert result.label[n, i, j] == np.argmax(logits)
        np.testing.assert_allclose(result.label_prob[n, i, j], probs.max(), rtol=1e-4)
        occluded = _occluded(x[n], y0, x0, size, fill)
        feature = np.einsum("hwc,hwc->", occluded, v[..., strongest[n]])
        np.testing.assert_allclose(result.feature[n, i, j], feature, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(result.base_score, base[[0, 1], result.classes], rtol=1e-5)


def test_pixel_map_is_the_mean_over_covering_windows(linear):
  apply_fn, weights, images = linear
  size, stride = 4, 3
  result = O.occlusion(apply_fn, weights, images, 2, 0.5, size=size, stride=stride, chunk=7)
  drop = np.asarray(result.base_score)[:, None, None] - np.asarray(result.score)
  pixels = np.asarray(O.to_pixels(drop, result.starts_y, result.starts_x, size, H, W))
  total, count = np.zeros((2, H, W)), np.zeros((H, W))
  for i, y0 in enumerate(np.asarray(result.starts_y)):
    for j, x0 in enumerate(np.asarray(result.starts_x)):
      total[:, y0:y0 + size, x0:x0 + size] += drop[:, i, j, None, None]
      count[y0:y0 + size, x0:x0 + size] += 1
  assert count.min() >= 1  # every pixel is covered by some window
  np.testing.assert_allclose(pixels, total / count, rtol=1e-5, atol=1e-6)
  # Captum's convention: with windows tiling the image, the map of a linear model is the
  # per-pixel contribution w (x - fill) summed over each window, spread over its pixels.
  tiled = O.occlusion(apply_fn, weights, images, 2, 0.5, size=2, stride=2, chunk=64)
  drop = np.asarray(tiled.base_score)[:, None, None] - np.asarray(tiled.score)
  pixels = np.asarray(O.to_pixels(drop, tiled.starts_y, tiled.starts_x, 2, H, W))
  contribution = np.einsum("nhwc,hwc->nhw", images - 0.5, weights["w"][..., 2])
  block_sums = contribution.reshape(2, H // 2, 2, W // 2, 2).sum(axis=(2, 4))
  np.testing.assert_allclose(pixels, np.repeat(np.repeat(block_sums, 2, 1), 2, 2), rtol=1e-4,
                             atol=1e-5)


def test_window_positions_and_bad_input(linear):
  assert O.window_starts(10, 4, 3).tolist() == [0, 3, 6]
  assert O.window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]  # last window flush with the edge
  assert O.window_starts(4, 4, 2).tolist() == [0]
  apply_fn, weights, images = linear
  for kwargs, match in ((dict(size=13, stride=2), "window 13 is larger than the image"),
                        (dict(size=4, stride=0), "stride must be >= 1"),
                        (dict(size=0, stride=1), "window size must be >= 1"),
                        (dict(size=4, stride=2, feature_layer="conv9"), "unknown layer 'conv9'"),
                        (dict(size=4, stride=2, feature_layer="fc"), "has no feature maps"),
                        (dict(size=4, stride=2, chunk=0), "chunk must be >= 1")):
    with pytest.raises(UserError, match=match) as info:
      O.occlusion(apply_fn, weights, images, -1, 0.5, **kwargs)
    assert "\n" not in str(info.value)


def test_vmapped_chunks_do_not_change_the_maps(linear):
  apply_fn, weights, images = linear
  results = [O.occlusion(apply_fn, weights, images, -1, 0.5, size=3, stride=2, chunk=chunk,
                         feature_layer="lin") for chunk in (1, 6, 10_000)]
  for other in results[1:]:
    for a, b in zip(results[0], other):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  assert jax.tree_util.tree_structure(results[0]) == jax.tree_util.tree_structure(results[1])
