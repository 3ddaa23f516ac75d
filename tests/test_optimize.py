"""The image-optimisation core: objectives and priors against their definitions on hand-checked
arrays and scipy, their algebra, the Fourier/decorrelated parameterisation round trip,
transforms, projections, optimisers (L-BFGS with its line search among them), the vmapped
driver against sequential calls and closed-form optima, NaN handling."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.ndimage

from cnn_vis.errors import UserError
from cnn_vis.techniques import objectives as O
from cnn_vis.techniques import optimize as opt


# A linear "network" with a hashable apply_fn: logits = flatten(x - 0.5) @ w, acts = {"x": x}.
@dataclasses.dataclass(frozen=True)
class LinearNet:
  def __call__(self, variables, images):
    logits = (images - 0.5).reshape(images.shape[0], -1) @ variables["w"]
    return logits, {"x": images, "logits": logits}


# Simonyan's objective with a per-setting lambda and TV weight.
SCORE = O.ClassLogit() - O.Setting("l2") * O.L2()
SCORE_TV = SCORE - O.Setting("tv") * O.TotalVariation()


def _linear(height=6, width=5, classes=3, seed=0):
  w = jax.random.normal(jax.random.PRNGKey(seed), (height * width * 3, classes))
  return LinearNet(), {"w": w}


# ---------------------------------------------------------------- penalties, hand-checked values

def test_l2_and_alpha_norm_equal_their_definitions():
  x = jnp.array([[[1.0, -2.0, 0.5]]])            # one pixel, three channels
  assert float(O.l2_penalty(x)) == pytest.approx(1 + 4 + 0.25)
  assert float(O.l2_penalty(x, center=jnp.array([1.0, -2.0, 0.0]))) == pytest.approx(0.25)
  assert float(O.alpha_norm(x, 6.0)) == pytest.approx(1 + 64 + 0.5 ** 6)
  assert float(O.alpha_norm(x, 1.0)) == pytest.approx(3.5)
  # finite gradient at exact zeros (alpha-norm and TV use a safe power)
  g = jax.grad(lambda y: O.alpha_norm(y, 6.0) + O.total_variation(y, 1.0))(jnp.zeros((3, 3, 3)))
  assert np.isfinite(np.asarray(g)).all()


def test_total_variation_equals_its_definition():
  # x = [[0, 1], [2, 4]]; differences beyond the last row/column are 0 (replicated border):
  # (0,0): dx=1, dy=2 -> 5; (0,1): dx=0, dy=3 -> 9; (1,0): dx=2, dy=0 -> 4; (1,1): 0.
  x = jnp.array([[0.0, 1.0], [2.0, 4.0]])[..., None]
  assert float(O.total_variation(x, 2.0)) == pytest.approx(18.0)
  assert float(O.total_variation(x, 1.0)) == pytest.approx(np.sqrt(5) + 3 + 2)
  assert float(O.total_variation(x, 6.0)) == pytest.approx(125 + 729 + 64)
  # channels and a batch add up
  assert float(O.total_variation(jnp.concatenate([x, 2 * x], -1), 2.0)) == pytest.approx(18 * 5)
  assert float(O.total_variation(jnp.stack([x, 2 * x]), 2.0)) == pytest.approx(18 * 5)


def _context(image, setting, logits=None, acts=None):
  return O.Context(image, logits if logits is not None else jnp.zeros((image.shape[0], 3)),
                   acts or {}, setting)


def test_objectives_compose_with_constant_and_per_setting_weights():
  x = jnp.full((1, 2, 2, 3), 0.75)
  setting = {"center": jnp.full((3,), 0.5), "w": 3.0, "class_index": 1}
  logits = jnp.array([[1.0, 5.0, 2.0]])
  objective = O.ClassLogit() - O.Setting("w") * O.L2() - 2.0 * O.AlphaNorm(2.0) + O.TotalVariation()
  ctx = _context(x, setting, logits)
  terms = objective.terms(ctx)
  assert list(terms) == ["class score", "L2", "alpha-norm", "total variation"]
  l2 = 12 * 0.0625
  assert [float(v) for v in terms.values()] == pytest.approx([5.0, -3 * l2, -2 * l2, 0.0])
  assert float(objective(ctx)) == pytest.approx(5.0 - 5 * l2)
  assert float((-objective)(ctx)) == pytest.approx(-(5.0 - 5 * l2))
  assert hash(objective) == hash(O.ClassLogit() - O.Setting("w") * O.L2() - 2.0 * O.AlphaNorm(2.0)
                                 + O.TotalVariation())          # jit-static: equal and hashable
  repeated = O.L2() + O.L2()
  assert list(repeated.terms(ctx)) == ["L2", "L2'"]


def test_diversity_is_the_mean_cosine_similarity_of_gram_matrices():
  a = jnp.asarray(np.random.RandomState(0).rand(1, 4, 4, 5), jnp.float32)
  same = {"layer": jnp.concatenate([a, 2 * a, a])}         # three images, Gram matrices parallel
  assert float(O.Diversity("layer")(_context(jnp.zeros((3, 1, 1, 3)), {}, acts=same))) == \
      pytest.approx(2.0, rel=1e-5)                           # each image: 2 others at cosine 1
  b = np.zeros((2, 2, 2, 4), np.float32)
  b[0, ..., :2], b[1, ..., 2:] = 1.0, 1.0                     # disjoint channels: orthogonal Grams
  apart = {"layer": jnp.asarray(b)}
  assert float(O.Diversity("layer")(_context(jnp.zeros((2, 1, 1, 3)), {}, acts=apart))) == \
      pytest.approx(0.0, abs=1e-7)


# ------------------------------------------------------------------ projections (Yosinski et al.)

@pytest.mark.parametrize("sigma", [0.3, 0.5, 1.0, 1.7])
def test_gaussian_blur_matches_scipy(sigma):
  x = np.random.RandomState(0).rand(9, 11, 3).astype(np.float32)
  expected = np.stack([scipy.ndimage.gaussian_filter(x[..., c], sigma) for c in range(3)], -1)
  # a larger static radius than needed (a sweep's maximum) gives the same result
  out = opt.gaussian_blur(jnp.asarray(x), sigma, opt.blur_radius(2.0))
  np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5)


def test_gaussian_blur_of_an_impulse_and_zero_width():
  x = np.zeros((9, 9, 3), np.float32)
  x[4, 4] = 1.0
  out = np.asarray(opt.gaussian_blur(jnp.asarray(x), 1.0, 4))
  k = np.exp(-0.5 * np.arange(-4, 5) ** 2)
  k /= k.sum()
  np.testing.assert_allclose(out[..., 0], np.outer(k, k), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(opt.gaussian_blur(jnp.asarray(x), 0.0, 4)), x)


def test_zero_small_norm_by_percentile():
  # pixel norms (about center 0.5): 0.1, 0.2, 0.3, 0.4; the 50th percentile is 0.25
  offsets = np.array([[[0.1, 0, 0], [0, 0.2, 0]], [[0, 0, -0.3], [0.4, 0, 0]]], np.float32)
  x = 0.5 + offsets
  out = np.asarray(opt.zero_small_norm(jnp.asarray(x), 50.0, 0.5))
  expected = x.copy()
  expected[0, 0] = expected[0, 1] = 0.5
  np.testing.assert_allclose(out, expected, atol=1e-7)
  np.testing.assert_allclose(np.asarray(opt.zero_small_norm(jnp.asarray(x), 0.0, 0.5)), x)


def test_zero_small_contribution_by_percentile():
  # contribution |sum_c g_c x_c| per pixel (center 0): |1*1|, |2*(-1)|, |0.5*1|, |3*1| = 1, 2, .5, 3
  x = np.array([[[1, 0, 0], [0, -1, 0]], [[0, 0, 1], [1, 0, 0]]], np.float32)
  g = np.array([[[1, 9, 9], [9, 2, 9]], [[9, 9, 0.5], [3, 9, 9]]], np.float32)
  out = np.asarray(opt.zero_small_contribution(jnp.asarray(x), jnp.asarray(g), 50.0, 0.0))
  expected = x.copy()            # 50th percentile of (1, 2, .5, 3) is 1.5: zero pixels 1 and .5
  expected[0, 0] = expected[1, 0] = 0.0
  np.testing.assert_array_equal(out, expected)


def test_decay_then_clip():
  x = jnp.full((4, 4, 3), 1.3)
  setting = {"center": jnp.full((3,), 0.5), "decay": 0.5}
  out = opt.Decay()(x, jnp.zeros_like(x), 0, setting)
  np.testing.assert_allclose(np.asarray(out), 0.9, atol=1e-6)       # 0.5 + 0.8 * 0.5
  out = opt.Clip()(opt.Decay()(jnp.full((4, 4, 3), 3.0), x, 0, setting), x, 0, setting)
  np.testing.assert_allclose(np.asarray(out), 1.0)                   # 0.5 + 2.5 * 0.5 -> clip


def test_blur_every_n_steps():
  x = jnp.asarray(np.random.RandomState(1).rand(8, 8, 3), jnp.float32)
  setting = {"blur_width": 1.0, "blur_every": 3}
  for step, blurred in [(0, True), (1, False), (2, False), (3, True)]:
    out = opt.Blur(radius=4)(x, x, step, setting)
    assert bool(jnp.allclose(out, opt.gaussian_blur(x, 1.0, 4))) == blurred
    assert bool(jnp.allclose(out, x)) != blurred


# ----------------------------------------------------------------------------- parameterisations

@pytest.mark.parametrize("shape", [(16, 20), (15, 21)])
@pytest.mark.parametrize("param", [opt.Param("fourier", decorrelate=True, sigmoid=True),
                                   opt.Param("fourier"), opt.Param("pixels", decorrelate=True),
                                   opt.Param("pixels", sigmoid=True), opt.Param()])
def test_parameterisation_round_trips_an_image(param, shape):
  image = 0.1 + 0.8 * np.random.RandomState(0).rand(*shape, 3).astype(np.float32)
  params = opt.from_image(param, jnp.asarray(image))
  assert params.shape == opt.param_shape(param, *shape)
  np.testing.assert_allclose(np.asarray(opt.to_image(param, params, *shape)), image, atol=2e-5)


def test_fourier_scale_is_one_over_frequency():
  scale = np.asarray(opt._fourier_scale(8, 8, 1.0)) / np.sqrt(64)
  assert scale[0, 1] == pytest.approx(8.0)          # f = 1/8 -> 8
  assert scale[0, 2] == pytest.approx(4.0)          # f = 2/8 -> 4
  assert scale[2, 2] == pytest.approx(1 / np.sqrt(2 * 0.25 ** 2))
  assert scale[0, 0] == pytest.approx(8.0)          # DC capped at 1 / (1/max(H, W))


# ------------------------------------------------------------------------------------ transforms

def test_jitter_is_a_roll_within_range():
  image = jnp.asarray(np.random.RandomState(0).rand(10, 12, 3), jnp.float32)
  seen = set()
  for i in range(20):
    out = np.asarray(opt.Jitter(2)(jax.random.PRNGKey(i), image))
    matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
               if np.array_equal(out, np.roll(np.asarray(image), (dy, dx), axis=(0, 1)))]
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) > 5
  np.testing.assert_array_equal(np.asarray(opt.Jitter(0)(jax.random.PRNGKey(0), image)), image)


def test_scale_rotate_identity_and_rotate_quarter_turn():
  image = jnp.asarray(np.random.RandomState(0).rand(9, 9, 3), jnp.float32)
  key = jax.random.PRNGKey(0)
  np.testing.assert_allclose(np.asarray(opt.Scale((1.0,))(key, image)), image, atol=1e-5)
  np.testing.assert_allclose(np.asarray(opt.Rotate((0.0,))(key, image)), image, atol=1e-5)
  # a 90 degree rotation about the centre of an odd square image permutes pixels exactly
  out = np.asarray(opt.Rotate((90.0,))(key, image))
  candidates = [np.rot90(np.asarray(image), k, axes=(0, 1)) for k in (1, 3)]
  assert min(np.abs(out - c).max() for c in candidates) < 1e-5
  # scaling up by 2 about the centre: the centre pixel stays, the image is magnified
  big = np.asarray(opt.Scale((2.0,))(key, image))
  assert big.shape == image.shape
  np.testing.assert_allclose(big[4, 4], np.asarray(image)[4, 4], atol=1e-5)


def test_transform_pipeline_keeps_size_and_is_differentiable():
  transforms = opt.from_pairs([("pad", 3), ("jitter", 2), ("scale", (0.9, 1.1)),
                               ("rotate", (-10, 10)), ("jitter", 1)])
  assert transforms == (opt.Pad(3), opt.Jitter(2), opt.Scale((0.9, 1.1)), opt.Rotate((-10, 10)),
                        opt.Jitter(1))
  image = jnp.asarray(np.random.RandomState(0).rand(12, 10, 3), jnp.float32)
  out = opt.apply_transforms(transforms, jax.random.PRNGKey(3), image)
  assert out.shape == image.shape
  energy = lambda x: jnp.sum(opt.apply_transforms(transforms, jax.random.PRNGKey(3), x) ** 2)
  g = jax.grad(energy)(image)
  assert np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).sum()) > 0
  only_pad = opt.apply_transforms((opt.Pad(4),), jax.random.PRNGKey(0), image)
  np.testing.assert_array_equal(np.asarray(only_pad), np.asarray(image))


@pytest.mark.parametrize("bad", [[("blur", 1)], [("jitter", -1)], [("jitter", 1.5)], [("scale", 0)],
                                 ["jitter"]])
def test_bad_transforms_are_one_line_errors(bad):
  with pytest.raises(UserError) as e:
    opt.from_pairs(bad)
  assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------ optimisers

def test_progress_policy_and_mean_abs_step():
  g = jnp.array([3.0, 4.0])                          # ||g||^2 = 25
  update, _ = opt.progress_policy(1.0, 2.0).update(g, optax.EmptyState())
  np.testing.assert_allclose(np.asarray(update), -(2.0 / 25) * np.asarray(g), rtol=1e-6)
  update, _ = opt.progress_policy(0.01, 2.0).update(g, optax.EmptyState())   # capped by max_lr
  np.testing.assert_allclose(np.asarray(update), -0.01 * np.asarray(g), rtol=1e-6)
  update, _ = opt.mean_abs_step(1.5).update(jnp.array([1.0, -3.0]), optax.EmptyState())
  np.testing.assert_allclose(np.asarray(update), [-0.75, 2.25], rtol=1e-6)   # mean |g| = 2


def test_unknown_optimizer_is_a_user_error():
  with pytest.raises(UserError, match="unknown optimizer 'nonsense'"):
    opt.Optimizer("nonsense")


# -------------------------------------------------------------------------------------- driver

def test_l2_class_model_reaches_the_closed_form_optimum():
  # argmax_x w_c . (x - 0.5) - lam ||x - center||^2  =  center + w_c / (2 lam)
  net, variables = _linear()
  lam = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
  classes = np.array([0, 1, 2, 0], np.int32)
  center = jnp.full((3,), 0.5)
  settings = opt.stack_settings(4, class_index=classes, l2=lam, lr=0.1, center=center)
  recipe = opt.Recipe(6, 5, phases=((300, 1.0),), optimizer=opt.Optimizer("sgd"))
  result = opt.render(net, variables, SCORE, settings, jax.random.PRNGKey(0), recipe)
  w = np.asarray(variables["w"])
  for i in range(4):
    expected = 0.5 + w[:, classes[i]].reshape(6, 5, 3) / (2 * lam[i])
    np.testing.assert_allclose(np.asarray(result.images[i, 0]), expected, atol=1e-4)
  assert result.values.shape == (4, 300) and set(result.terms) == {"class score", "L2"}
  np.testing.assert_allclose(result.terms["class score"] + result.terms["L2"], result.values,
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loop", ["scan", "dispatch"])
def test_lbfgs_with_its_line_search_reaches_the_optimum_in_a_few_steps(loop):
  # The same quadratic: L-BFGS (optax.lbfgs + zoom line search, the objective passed to the
  # update) converges in a handful of iterations where plain gradient steps need hundreds.
  net, variables = _linear()
  lam = np.array([0.5, 2.0], np.float32)
  settings = opt.stack_settings(2, class_index=np.array([0, 2], np.int32), l2=lam,
                                center=jnp.full((3,), 0.5))
  recipe = opt.Recipe(6, 5, phases=((8, 1.0),), optimizer=opt.Optimizer("lbfgs"))
  result = opt.render(net, variables, SCORE, settings, jax.random.PRNGKey(0), recipe, loop=loop)
  w = np.asarray(variables["w"])
  for i, c in enumerate((0, 2)):
    expected = 0.5 + w[:, c].reshape(6, 5, 3) / (2 * lam[i])
    np.testing.assert_allclose(np.asarray(result.images[i, 0]), expected, atol=1e-4)
  assert np.all(np.asarray(result.evaluations)[:, :2] >= 1)
  assert np.all(np.diff(np.asarray(result.values), axis=1) >= -1e-4)   # never worse
  sgd = opt.render(net, variables, SCORE, {**settings, "lr": jnp.full((2,), 0.1)},
                   jax.random.PRNGKey(0), dataclasses.replace(recipe, optimizer=opt.Optimizer("sgd")))
  assert np.all(np.asarray(result.values[:, -1]) > np.asarray(sgd.values[:, -1]))


def test_a_batch_of_images_per_setting_diversifies():
  # Two images per setting: maximising the same unit alone makes them alike; subtracting the
  # diversity objective (Olah et al. 2017) makes them differ.
  @dataclasses.dataclass(frozen=True)
  class Features:
    def __call__(self, variables, images):
      acts = jax.nn.relu(jnp.einsum("nhwc,ck->nhwk", images - 0.5, variables["w"]))
      return acts.mean(axis=(1, 2)), {"f": acts}
  variables = {"w": jax.random.normal(jax.random.PRNGKey(1), (3, 4))}
  settings = opt.stack_settings(1, lr=0.05, channel=[0], y=[0], x=[0], center=jnp.full((3,), 0.5))
  recipe = opt.Recipe(4, 4, phases=((60, 1.0),), batch=2, param=opt.Param(init_std=0.1))
  unit = O.Channel("f", spatial="mean") - 0.5 * O.L2()
  alone = opt.render(Features(), variables, unit, settings, jax.random.PRNGKey(0), recipe)
  diverse = opt.render(Features(), variables, unit - 10.0 * O.Diversity("f"), settings,
                       jax.random.PRNGKey(0), recipe)
  assert alone.images.shape == (1, 2, 4, 4, 3)
  spread = lambda r: float(jnp.abs(r.images[0, 0] - r.images[0, 1]).mean())
  assert spread(diverse) > 2 * spread(alone)


# One recipe and settings for the two driver tests below, so they share compiled code.
_RECIPE = opt.Recipe(6, 5, phases=((12, 1.0), (6, 0.1)), optimizer=opt.Optimizer("adam"),
                     transforms=(("jitter", 1),),
                     projections=(opt.Decay(), opt.Blur(2), opt.ZeroSmallNorm(),
                                  opt.ZeroSmallContribution(), opt.Clip()))


def _settings():
  return opt.stack_settings(4, class_index=np.arange(4) % 3, lr=np.linspace(0.01, 0.04, 4),
                            l2=0.1, tv=np.linspace(0, 1, 4), blur_width=0.5, blur_every=4,
                            decay=0.01, norm_pct=10.0, contrib_pct=10.0,
                            center=jnp.full((3,), 0.5))


def test_one_vmapped_call_equals_sequential_calls_and_compiles_once():
  net, variables = _linear()
  settings = _settings()
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  before = opt.render_jit._cache_size()
  together = opt.render_jit(net, SCORE_TV, _RECIPE, variables, settings, keys)
  assert opt.render_jit._cache_size() == before + 1
  for i in range(4):
    one = {k: v[i:i + 1] for k, v in settings.items()}
    alone = opt.render_jit(net, SCORE_TV, _RECIPE, variables, one, keys[i:i + 1])
    np.testing.assert_allclose(np.asarray(alone.images[0]), np.asarray(together.images[i]),
                               atol=1e-5)


def test_dispatch_loop_and_chunks_equal_the_single_compiled_call():
  net, variables = _linear()
  results = [opt.render(net, variables, SCORE_TV, _settings(), jax.random.PRNGKey(0), _RECIPE,
                        loop=loop, chunk=chunk)
             for loop, chunk in [("scan", None), ("dispatch", None), ("scan", 2), ("dispatch", 2)]]
  for other in results[1:]:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5),
                 results[0], other)
  with pytest.raises(UserError, match="unknown loop 'python'"):
    opt.render(net, variables, SCORE_TV, _settings(), jax.random.PRNGKey(0), _RECIPE,
               loop="python")


@dataclasses.dataclass(frozen=True)
class NestedL2(O.Objective):
  """An objective of a technique's own, reading a nested entry of the settings pytree."""

  def value(self, ctx):
    return ctx.setting["weights"]["l2"] * O.l2_penalty(ctx.image, ctx.setting["center"])


def test_settings_may_be_any_pytree():
  net, variables = _linear()
  center = jnp.full((2, 3), 0.5)
  flat = {"class_index": np.array([0, 1], np.int32), "center": center, "l2": jnp.array([0.5, 1.0]),
          "lr": jnp.full((2,), 0.1)}
  nested = {"class_index": flat["class_index"], "center": center, "lr": flat["lr"],
            "weights": {"l2": flat["l2"]}}
  recipe = opt.Recipe(6, 5, phases=((5, 1.0),), optimizer=opt.Optimizer("sgd"))
  a = opt.render(net, variables, SCORE, flat, jax.random.PRNGKey(0), recipe)
  b = opt.render(net, variables, O.ClassLogit() - NestedL2(), nested, jax.random.PRNGKey(0), recipe)
  np.testing.assert_allclose(np.asarray(a.images), np.asarray(b.images), atol=1e-6)
  assert opt.num_settings(nested) == 2


def test_fourier_parameterisation_optimises_through_the_driver():
  net, variables = _linear()
  recipe = opt.Recipe(6, 5, phases=((50, 1.0),), param=opt.Param("fourier", True, True))
  result = opt.render(net, variables, O.ClassLogit(),
                      opt.stack_settings(2, class_index=[0, 1], lr=0.05), jax.random.PRNGKey(0),
                      recipe)
  assert float(result.images.min()) >= 0 and float(result.images.max()) <= 1
  assert np.all(np.asarray(result.values[:, -1]) > np.asarray(result.values[:, 0]) + 1)


def test_projections_need_plain_pixels():
  with pytest.raises(UserError, match="plain pixel"):
    opt.Recipe(6, 5, phases=((2, 1.0),), param=opt.Param("fourier"), projections=(opt.Decay(),))


def test_divergence_stops_with_a_clear_message():
  net, variables = _linear()
  # l2 with a negative weight and a large rate blows up to inf and then NaN
  settings = opt.stack_settings(2, class_index=[0, 1], l2=[0.0, -10.0], lr=10.0)
  recipe = opt.Recipe(6, 5, phases=((200, 1.0),), optimizer=opt.Optimizer("sgd"))
  with pytest.raises(opt.DivergedError) as e:
    opt.render(net, variables, SCORE, settings, jax.random.PRNGKey(0), recipe)
  message = str(e.value)
  assert "\n" not in message and "diverged" in message and "setting 1" in message
  assert "1 of 2" in message


def test_settings_must_share_their_leading_axis():
  with pytest.raises(UserError, match="setting lr has 2 values, expected 3"):
    opt.stack_settings(3, lr=[0.1, 0.2])
  with pytest.raises(UserError, match="same leading axis"):
    opt.num_settings({"lr": jnp.zeros(2), "l2": jnp.zeros(3)})


def test_check_image_rejects_non_finite_and_bad_shapes():
  with pytest.raises(UserError, match="non-finite"):
    opt.check_image(np.full((4, 4, 3), np.nan))
  with pytest.raises(UserError, match="HxWx3"):
    opt.check_image(np.zeros((4, 4)))

