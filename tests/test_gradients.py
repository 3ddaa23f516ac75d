"""Gradient attributions against independent oracles.

Oracles: jax.grad of a separately written scalar function; central finite differences in float64;
the backward passes of a 2-layer net derived by hand for each ReLU rule; completeness of
Integrated Gradients; the Gaussian-smoothed step function for SmoothGrad; CAM's closed form for
Grad-CAM on a global-average-pooling network (Selvaraju et al. 2017, §3.1).
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from cnn_vis import models
from cnn_vis.errors import UserError
from cnn_vis.models.relu import relu, relu6
from cnn_vis.techniques import attribution
from cnn_vis.techniques import gradients as G


def _apply(module):
  return functools.partial(module.apply, train=False)


@pytest.fixture(scope="module")
def alexnet():
  module = models.build("alexnet_cifar", width=0.125, fc_width=32)
  return _apply(module), models.init_variables("alexnet_cifar", module)


class GapNet(nn.Module):
  """conv -> ReLU6 -> batch norm -> conv -> ReLU -> global average pool -> linear (a CAM net)."""

  @nn.compact
  def __call__(self, images, train=False):
    h = relu6(nn.Conv(8, (3, 3), strides=2, name="conv1")(images))
    h = nn.BatchNorm(use_running_average=True, name="bn")(h)
    h = relu(nn.Conv(16, (3, 3), name="conv2")(h))
    logits = nn.Dense(5, name="fc")(h.mean(axis=(1, 2)))
    return logits, {"conv2": h, "fc": logits}


@pytest.fixture(scope="module")
def gapnet():
  module = GapNet()
  variables = jax.jit(module.init)(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
  variables["batch_stats"] = jax.tree_util.tree_map(lambda v: v + 0.5, variables["batch_stats"])
  return _apply(module), variables


def _images(n=2, size=32, seed=0):
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, size, size, 3))


@functools.lru_cache(maxsize=None)
def _reference(apply_fn, layer, spatial="mean"):
  """Jitted (value, d value / d image) of one unit of one image, written independently of the
  technique; y < 0 means the channel's spatial mean (or sum)."""
  def value(variables, image, channel, y, x):
    logits, acts = apply_fn(variables, image[None])
    a = (logits if layer is None else acts[layer])[0]
    if a.ndim == 1:
      return a[channel]
    reduced = (jnp.sum if spatial == "sum" else jnp.mean)(a[..., channel])
    return jnp.where(y >= 0, a[jnp.maximum(y, 0), jnp.maximum(x, 0), channel], reduced)
  return jax.jit(jax.value_and_grad(value, argnums=1))


def _check_against_reference(apply_fn, variables, images, layer, result, spatial="mean", rtol=1e-4):
  reference = _reference(apply_fn, layer, "sum" if spatial == "sum" else "mean")
  for u in range(result.values.shape[0]):
    for n in range(len(images)):
      channel, y, x = (int(v[u, n]) for v in result.units)
      value, grad = reference(variables, images[n], channel, y, x)
      np.testing.assert_allclose(result.values[u, n], grad, rtol=rtol,
                                 atol=1e-5 * float(jnp.abs(grad).max()) + 1e-12)
      np.testing.assert_allclose(result.scores[u, n], value, rtol=1e-5, atol=1e-6)


def test_standard_mode_equals_jax_grad(alexnet):
  apply_fn, variables = alexnet
  images = _images(2)
  table = models.layer_table(apply_fn, variables, images.shape)
  logits, acts = jax.jit(apply_fn)(variables, images)
  parsed = models.parse_units("predicted;class:3;max:conv3;conv3:2@1,5;conv3:7", table)
  groups = [(None, G.Units.of(parsed[:2])), ("conv3", G.Units.of(parsed[2:]))]
  for layer, units in groups:
    result = G.gradients(apply_fn, variables, images, units, layer=layer)
    assert result.values.shape == (len(units.channel),) + images.shape
    _check_against_reference(apply_fn, variables, images, layer, result)
  # How units were resolved, checked on the activations themselves.
  conv3 = np.asarray(acts["conv3"])
  assert [int(c) for c in groups[0][1].channel] == [-1, 3]
  resolved = G.gradients(apply_fn, variables, images, groups[1][1], layer="conv3").units
  for n in range(2):
    c, y, x = (int(v[0, n]) for v in resolved)
    assert conv3[n, y, x, c] == conv3[n].max()                        # max:conv3
    assert [int(v[1, n]) for v in resolved] == [2, 1, 5]              # conv3:2@1,5
    assert [int(v[2, n]) for v in resolved] == [7, 4, 4]              # conv3:7 -> centre of 8x8
  predicted = G.gradients(apply_fn, variables, images, groups[0][1]).units.channel[0]
  np.testing.assert_array_equal(predicted, np.argmax(np.asarray(logits), axis=-1))


@pytest.mark.parametrize("spatial", ["mean", "sum", "max"])
def test_spatial_rules_equal_jax_grad(gapnet, spatial):
  apply_fn, variables = gapnet
  images = _images(2, size=16)
  result = G.gradients(apply_fn, variables, images, G.Units.make([7, 11]), layer="conv2",
                       spatial=spatial)
  if spatial == "max":
    conv2 = np.asarray(jax.jit(apply_fn)(variables, images)[1]["conv2"])
    for n in range(2):
      c, y, x = (int(v[0, n]) for v in result.units)
      assert conv2[n, y, x, c] == conv2[n, ..., c].max()
  _check_against_reference(apply_fn, variables, images, "conv2", result, spatial)


def test_gradients_equal_central_finite_differences(alexnet):
  apply_fn, variables = alexnet
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    variables64 = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), variables)
    images = jnp.asarray(_images(2), jnp.float64)
    eps = 1e-5
    for layer, units in ((None, G.Units.make([4])),):
      result = G.gradients(apply_fn, variables64, images, units, layer=layer)
      reference = _reference(apply_fn, layer)
      for n in range(len(images)):
        unit = [int(v[0, n]) for v in result.units]
        value = lambda image: reference(variables64, image, *unit)[0]
        for _ in range(3):  # random directions
          direction = jnp.asarray(rng.normal(size=images.shape[1:]))
          numeric = (value(images[n] + eps * direction)
                     - value(images[n] - eps * direction)) / (2 * eps)
          analytic = jnp.vdot(result.values[0, n], direction)
          assert abs(numeric - analytic) <= 1e-6 * (abs(numeric) + 1e-3), (layer, numeric, analytic)
        for _ in range(3):  # single pixels
          pixel = tuple(int(rng.integers(0, s)) for s in images.shape[1:])
          bump = jnp.zeros(images.shape[1:], jnp.float64).at[pixel].set(eps)
          numeric = (value(images[n] + bump) - value(images[n] - bump)) / (2 * eps)
          assert abs(numeric - result.values[0, n][pixel]) <= 1e-6 * (abs(numeric) + 1e-3)


class TwoLayer(nn.Module):
  """x -> h = relu(W1 x + b1) -> y = W2 h, with a selectable ReLU backward rule."""
  hidden: int = 16
  classes: int = 5
  relu_mode: str = "standard"

  @nn.compact
  def __call__(self, images, train=False):
    z = nn.Dense(self.hidden, bias_init=nn.initializers.normal(0.5), name="fc1")(
        images.reshape(images.shape[0], -1))
    h = relu(z, self.relu_mode)
    logits = nn.Dense(self.classes, name="fc2")(h)
    return logits, {"fc1": h, "fc2": logits}


def _two_layer(seed=0, size=4, hidden=16, mode="standard"):
  images = _images(3, size=size, seed=seed + 3)
  module = TwoLayer(hidden=hidden, relu_mode=mode)
  variables = module.init(jax.random.PRNGKey(seed), images)
  params = {k: np.asarray(v, np.float64) for k, v in (
      ("w1", variables["params"]["fc1"]["kernel"]), ("b1", variables["params"]["fc1"]["bias"]),
      ("w2", variables["params"]["fc2"]["kernel"]))}
  return _apply(module), variables, images, params


@pytest.mark.parametrize("mode", ["standard", "deconvnet", "guided"])
def test_relu_rules_equal_hand_derived_backward_passes(mode):
  apply_fn, variables, images, p = _two_layer(mode=mode)
  result = G.gradients(apply_fn, variables, images, G.Units.make([0, 1, 2, 3, 4]))
  x = np.asarray(images, np.float64).reshape(3, -1)
  forward = (x @ p["w1"] + p["b1"]) > 0                    # (N, hidden): 1[f > 0]
  assert 0 < forward.mean() < 1                            # both sides of the ReLU are exercised
  for c in range(5):
    upstream = np.broadcast_to(p["w2"][:, c], forward.shape)  # dS_c/dh
    rectified = {"standard": upstream * forward,           # backprop: forward mask only
                 "deconvnet": np.maximum(upstream, 0),     # Zeiler & Fergus: sign of the signal
                 "guided": upstream * forward * (upstream > 0)}[mode]  # Springenberg: both
    expected = (rectified @ p["w1"].T).reshape(images.shape)
    np.testing.assert_allclose(result.values[c], expected, rtol=1e-4, atol=1e-6)
  if mode != "standard":  # the rule changes the backward pass only
    standard = G.gradients(_apply(TwoLayer()), variables, images, G.Units.make([0]))
    np.testing.assert_allclose(result.scores[0], standard.scores[0], rtol=1e-6)


def test_batches_of_units_and_images_equal_single_calls(gapnet):
  apply_fn, variables = gapnet
  images = _images(2, size=16)
  units = G.Units.make([-1, 2, 4])
  batched = G.gradients(apply_fn, variables, images, units, unit_chunk=2)  # chunks of 2 units
  _check_against_reference(apply_fn, variables, images, None, batched)
  # One unit per image: (U, N) channels.
  per_image = G.gradients(apply_fn, variables, images, G.Units.make([[4, 2]]))
  np.testing.assert_allclose(per_image.values[0, 0], batched.values[2, 0], rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(per_image.values[0, 1], batched.values[1, 1], rtol=1e-5, atol=1e-8)


class SmoothNet(nn.Module):
  """A small conv net with smooth activations: the IG integrand is smooth along the path."""

  @nn.compact
  def __call__(self, images, train=False):
    h = nn.softplus(nn.Conv(8, (3, 3), name="conv1")(images - 0.5))
    h = jnp.tanh(nn.Conv(16, (3, 3), strides=2, name="conv2")(h))
    logits = nn.Dense(5, name="fc")(h.mean(axis=(1, 2)))
    return logits, {"conv2": h, "fc": logits}


@pytest.mark.parametrize("rule", G.RULES)
def test_quadrature_rules(rule):
  alphas, weights = G.quadrature(64, rule)
  assert np.all((alphas >= 0) & (alphas <= 1)) and abs(weights.sum() - 1) < 1e-6
  order = {"riemann_right": 1, "riemann_left": 1}.get(rule, 2)  # error ~ 1/m or 1/m^2
  for power in (1, 2, 3):
    error = abs(np.sum(weights * alphas.astype(np.float64) ** power) - 1 / (power + 1))
    assert error < (0.6 / 64 if order == 1 else 0.3 / 64 ** 2) + 1e-6, (power, error)
  assert {"riemann_right": alphas[-1] == 1, "riemann_left": alphas[0] == 0,
          "riemann_trapezoid": alphas[0] == 0 and alphas[-1] == 1}.get(rule, True)


@pytest.fixture(scope="module")
def smoothnet():
  module = SmoothNet()
  variables = jax.jit(module.init)(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
  return _apply(module), jax.tree_util.tree_map(lambda v: 2 * v, variables)


@pytest.mark.parametrize("rule,steps", [("riemann_trapezoid", 64), ("gausslegendre", 64),
                                        ("riemann_right", 2048)])
def test_integrated_gradients_completeness(smoothnet, rule, steps):
  # Sum of attributions = S(x) - S(x') within 1%. Left/right Riemann sums are first order
  # (error ~ (g(1) - g(0)) / 2m), so they need more steps than the second-order rules.
  apply_fn, variables = smoothnet
  images = _images(2, size=16)
  result = G.integrated_gradients(apply_fn, variables, images, G.Units.make([-1, 2]),
                                  baseline=0.0, steps=steps, rule=rule, chunk=64)
  total = np.asarray(result.values.sum(axis=(2, 3, 4)))
  delta = np.asarray(result.scores - result.baseline_scores)
  assert np.abs(delta).min() > 0.05, delta  # a non-trivial difference to account for
  np.testing.assert_allclose(total, delta, rtol=0.01)
  forward = jax.jit(apply_fn)
  logits = forward(variables, images)[0]
  np.testing.assert_allclose(result.scores[1], logits[:, 2], rtol=1e-5)
  np.testing.assert_allclose(result.baseline_scores[1], forward(variables, 0 * images)[0][:, 2],
                             rtol=1e-5)


@pytest.mark.parametrize("rule", G.RULES)
def test_refinement_is_the_next_quadrature_reusing_nested_points(rule):
  # keep * Q_m(g) + sum_new w g must equal the finer rule Q_next(g) itself, for any integrand.
  g = lambda a: np.exp(3 * a) * np.sin(7 * a) + 1 / (0.05 + a)
  for steps in (4, 7):
    next_steps, alphas, weights, keep = G.refinement(steps, rule)
    assert next_steps == (2 * steps - 1 if rule == "riemann_trapezoid" else 2 * steps)
    coarse, fine = G.quadrature(steps, rule), G.quadrature(next_steps, rule)
    refined = keep * np.sum(coarse[1] * g(coarse[0])) + np.sum(weights * g(alphas))
    np.testing.assert_allclose(refined, np.sum(fine[1] * g(fine[0])), rtol=1e-6)
    # nesting rules add only the new points
    assert len(alphas) == (next_steps if keep == 0 else next_steps - steps)


def _adaptive_ig(apply_fn, variables, images, units, **options):
  return attribution.integrated_gradients(apply_fn, variables, images,
                                          attribution.Target(None, units),
                                          attribution.IGOptions(**options))


def test_integrated_gradients_double_their_steps_until_complete(smoothnet):
  # Sundararajan et al. §5: the steps should bring the attributions within 5% (here 1%) of
  # S(x) - S(x'). The adaptive result must be the fixed-step IG at the step count it reports,
  # that count the first refinement of `steps` whose gap is within the target. The trapezoid
  # rule (4 -> 7 -> 13 points) keeps this fast; the refinement test above covers every rule.
  # chunk 4 everywhere: one compiled pass for all calls.
  apply_fn, variables = smoothnet
  images, units = _images(2, size=16), G.Units.make([-1, 2])
  rule = "riemann_trapezoid"
  maps = _adaptive_ig(apply_fn, variables, images, units, steps=4, target_gap=0.01,
                      max_steps=4096, chunk=4, rule=rule)
  steps = int(np.asarray(maps.extras["steps"]).max())
  assert np.all(np.asarray(maps.extras["steps"]) == steps) and steps > 4
  fixed = G.integrated_gradients(apply_fn, variables, images, units, steps=steps, chunk=4,
                                 rule=rule)
  np.testing.assert_allclose(maps.values, fixed.values, rtol=1e-4,
                             atol=1e-6 * float(jnp.abs(fixed.values).max()))
  gap = np.asarray(maps.extras["completeness_gap"])
  assert gap.max() <= 0.01, gap
  delta = np.asarray(fixed.scores - fixed.baseline_scores)
  np.testing.assert_allclose(maps.extras["convergence_delta"],
                             np.asarray(fixed.values.sum(axis=(2, 3, 4))) - delta, rtol=1e-4,
                             atol=1e-5)
  half = G.integrated_gradients(apply_fn, variables, images, units, steps=(steps + 1) // 2,
                                chunk=4, rule=rule)
  half_gap = np.abs(np.asarray(half.values.sum(axis=(2, 3, 4))) - delta) / np.abs(delta)
  assert half_gap.max() > 0.01, half_gap
  # the cap: an unreachable target stops at max_steps and reports the gap left
  capped = _adaptive_ig(apply_fn, variables, images, units, steps=4, target_gap=1e-9,
                        max_steps=16, chunk=4)
  assert int(np.asarray(capped.extras["steps"]).max()) == 16
  assert float(np.asarray(capped.extras["completeness_gap"]).max()) > 1e-9
  exact = _adaptive_ig(apply_fn, variables, images, units, steps=4, target_gap=0.0, chunk=4)
  assert int(np.asarray(exact.extras["steps"]).max()) == 4


def test_integrated_gradients_equal_the_exact_path_integral_of_a_relu_net():
  # On the segment x' + a (x - x') every pre-activation z_j(a) = z_j(0) + a dz_j is linear, so
  # IG_i = (x_i - x'_i) sum_j W1[i, j] W2[j, c] * |{a in [0, 1]: z_j(a) > 0}|, in closed form.
  apply_fn, variables, images, p = _two_layer(seed=1, size=8, hidden=64)
  baseline = 0.5
  x = np.asarray(images, np.float64).reshape(3, -1)
  z0 = baseline * p["w1"].sum(0) + p["b1"]
  dz = (x - baseline) @ p["w1"]
  crossing = np.clip(-z0 / np.where(dz == 0, 1e-300, dz), 0, 1)
  active = np.where(dz > 0, 1 - crossing, np.where(dz < 0, crossing, (z0 > 0) * 1.0))
  assert 0 < active.mean() < 1 and np.any((active > 0) & (active < 1))  # kinks on the path
  for steps in (64, 4096):
    result = G.integrated_gradients(apply_fn, variables, images, G.Units.make([1, 3]),
                                    baseline=baseline, steps=steps, rule="riemann_middle",
                                    chunk=512)
    for u, c in enumerate((1, 3)):
      exact = ((x - baseline) * ((active * p["w2"][:, c]) @ p["w1"].T)).reshape(images.shape)
      error = np.abs(np.asarray(result.values[u]) - exact).max() / np.abs(exact).max()
      assert error < (0.05 if steps == 64 else 0.002), (steps, c, error)
      np.testing.assert_allclose(exact.sum(axis=(1, 2, 3)), result.scores[u] -
                                 result.baseline_scores[u], rtol=1e-4, atol=1e-6)


def test_integrated_gradients_is_exact_for_a_linear_model_and_chunking_is_invisible():
  w = jax.random.normal(jax.random.PRNGKey(0), (8, 8, 3, 4))
  apply_fn = lambda v, x: (jnp.einsum("nhwc,hwck->nk", x, v), {})
  images, baseline = _images(2, size=8), 0.3
  units = G.Units.make([1, 2])
  expected = (images - baseline)[None] * jnp.moveaxis(w[..., [1, 2]], -1, 0)[:, None]
  for chunk in (3, 50):  # 7 steps: padded to 9 (weights 0), and all at once
    values = G.integrated_gradients(apply_fn, w, images, units, baseline=baseline, steps=7,
                                    chunk=chunk).values
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)


def _smoothgrad(apply_fn, variables, images, units, layer=None, **options):
  target = attribution.Target(layer, units)
  return attribution.smoothgrad(apply_fn, variables, images, target,
                                attribution.SmoothGradOptions(**options))


def test_smoothgrad_is_the_gaussian_smoothed_gradient():
  # f = sum relu(x - 0.5): dS/dx = 1[x > 0.5]; averaged over x + N(0, s^2) it is Phi((x - 0.5) / s),
  # with s = noise * (max - min of the image) (Smilkov et al. 2017, §3).
  apply_fn = lambda v, x: (jnp.sum(jax.nn.relu(x - 0.5), axis=(1, 2, 3))[:, None], {})
  images = jnp.stack([jnp.linspace(0.2, 0.8, 16 * 16 * 3).reshape(16, 16, 3),
                      jnp.linspace(0.4, 0.6, 16 * 16 * 3).reshape(16, 16, 3)])
  noise, samples = 0.2, 400
  result = _smoothgrad(apply_fn, {}, images, G.Units.make([0]), noise=noise, samples=samples,
                       chunk=64)
  sigma = noise * np.array([0.6, 0.2])
  expected = stats.norm.cdf((np.asarray(images) - 0.5) / sigma[:, None, None, None])
  error = np.abs(np.asarray(result.values[0]) - expected)
  # 400 samples: each pixel's estimate has std <= 0.025; a wrong sigma (x2) errs by ~0.1 on average.
  assert error.mean() < 0.02 and error.max() < 0.125, (error.mean(), error.max())


def test_smoothgrad_chunks_and_zero_noise(gapnet):
  apply_fn, variables = gapnet
  images, units = _images(2, size=16), G.Units.make([-1, 3])
  runs = [_smoothgrad(apply_fn, variables, images, units, noise=0.1, samples=4, chunk=c, seed=7)
          for c in (3, 4)]  # 4 samples: padded to 6 (weights 0), and all at once
  np.testing.assert_allclose(runs[1].values, runs[0].values, rtol=1e-4, atol=1e-7)
  plain = G.gradients(apply_fn, variables, images, units)
  zero = _smoothgrad(apply_fn, variables, images, units, noise=0.0, samples=4, chunk=3)
  np.testing.assert_allclose(zero.values, plain.values, rtol=1e-5, atol=1e-8)
  assert not np.allclose(runs[0].values, plain.values)


def test_grad_cam_equals_cam_on_a_global_average_pooling_net(gapnet):
  # logits = W^T mean_ij A_ij + b, so dS_c/dA^k_ij = W[k, c] / (h w) and Grad-CAM at the last
  # conv layer is ReLU(sum_k W[k, c] A^k) / (h w): the class activation map of Zhou et al. 2016.
  apply_fn, variables = gapnet
  images = _images(2, size=16, seed=9)
  result = G.grad_cam(apply_fn, variables, images, G.Units.make([-1, 4]), "conv2")
  _, acts = jax.jit(apply_fn)(variables, images)
  head = np.asarray(acts["conv2"])
  kernel = np.asarray(variables["params"]["fc"]["kernel"])
  for u in range(2):
    for n in range(2):
      c = int(result.units.channel[u, n])
      expected = np.maximum(head[n] @ kernel[:, c], 0) / (head.shape[1] * head.shape[2])
      assert expected.max() > 0
      np.testing.assert_allclose(result.coarse[u, n], expected, rtol=1e-4, atol=1e-7)
  assert result.values.shape == (2, 2, 16, 16) and float(result.values.min()) >= 0


def test_activation_gradients_equal_finite_differences(alexnet):
  # conv3 of AlexNet: the perturbed forward pass goes on through conv4, conv5, max pooling, fcs.
  apply_fn, variables = alexnet
  with jax.enable_x64(True):
    variables64 = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), variables)
    images = jnp.asarray(_images(2), jnp.float64)
    grads, activation = G.activation_gradients(apply_fn, variables64, images, G.Units.make([6]),
                                               "conv3")
    _, acts = jax.jit(apply_fn)(variables64, images)
    np.testing.assert_allclose(activation, acts["conv3"], rtol=1e-10, atol=1e-12)
    perturbed = jax.jit(G.with_perturbation(apply_fn, "conv3"))
    zero = jnp.zeros_like(acts["conv3"])
    logits0, acts0 = perturbed(variables64, images, zero)
    np.testing.assert_allclose(logits0, jax.jit(apply_fn)(variables64, images)[0], rtol=1e-10,
                               atol=1e-12)
    direction = jnp.asarray(np.random.default_rng(1).normal(size=zero.shape))
    eps = 1e-5
    shifted = perturbed(variables64, images, eps * direction)[1]["conv3"]
    np.testing.assert_allclose(shifted, acts0["conv3"] + eps * direction, rtol=1e-10, atol=1e-12)
    score = lambda d: perturbed(variables64, images, d)[0][:, 6]
    numeric = (score(eps * direction) - score(-eps * direction)) / (2 * eps)
    analytic = jnp.sum(grads.values[0] * direction, axis=(1, 2, 3))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def _one_line_error(match, fn, *args, **kwargs):
  with pytest.raises(UserError, match=match) as info:
    fn(*args, **kwargs)
  assert "\n" not in str(info.value)


def test_bad_input_is_a_one_line_error(alexnet):
  apply_fn, variables = alexnet
  images = _images(1)
  units = G.Units.make([0])
  _one_line_error("steps must be >= 1, got 0", G.integrated_gradients, apply_fn, variables, images,
                  units, steps=0)
  _one_line_error("unknown integration rule", G.integrated_gradients, apply_fn, variables, images,
                  units, rule="simpson")
  _one_line_error("target_gap must be a finite number >= 0", attribution.IGOptions,
                  target_gap=-0.1)
  _one_line_error("max_steps \\(10\\) must be >= steps \\(50\\)", attribution.IGOptions,
                  max_steps=10)
  _one_line_error("samples must be >= 1", attribution.SmoothGradOptions, samples=0)
  _one_line_error("smoothgrad base 'smoothgrad' must be one of", attribution.SmoothGradOptions,
                  base="smoothgrad")
  _one_line_error("unknown spatial reduction", G.gradients, apply_fn, variables, images, units,
                  spatial="median")
  _one_line_error("unknown layer 'nope'", G.gradients, apply_fn, variables, images, units,
                  layer="nope")
  _one_line_error("Grad-CAM needs a conv layer", G.grad_cam, apply_fn, variables, images, units,
                  "fc7")
