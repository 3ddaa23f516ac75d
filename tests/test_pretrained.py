"""Imported PyTorch weights against the PyTorch references, safe checkpoint reading and the cache.

Oracles: the real EfficientNet-Lite0 checkpoint run by its reference implementation
(efficientnet-lite-pytorch) on the 100 ImageNet samples; torchvision AlexNet/VGG with random
weights, layer by layer; crafted pickles that really do run code under an unrestricted unpickler.
"""
import torch  # noqa: I001  # before anything that may import TensorFlow (see conftest.py)
import torchvision
from conftest import imagenet_files_and_labels

import functools
import pickle
import shutil
import time

import jax
import numpy as np
import pytest

from cnn_vis import models, pretrained
from cnn_vis.data.images import load_image, resize_shorter_and_center_crop
from cnn_vis.errors import UserError
from cnn_vis.models import layers
from cnn_vis.pretrained import cache as cache_lib
from cnn_vis.pretrained import load_torch_state_dict


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
  """Every test gets its own empty conversion cache (never the user's)."""
  monkeypatch.setenv("CNN_VIS_CACHE", str(tmp_path / "cache"))
  return tmp_path / "cache" / "pretrained"


def _nchw(images: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))


def _nhwc(tensor: torch.Tensor) -> np.ndarray:
  array = tensor.detach().numpy()
  return np.transpose(array, (0, 2, 3, 1)) if array.ndim == 4 else array


def _numpy_state_dict(net: torch.nn.Module) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def _assert_close(ours, reference, rtol: float, what: str) -> float:
  """max |ours - reference| <= rtol * max |reference|; returns the max difference."""
  ours, reference = np.asarray(ours), np.asarray(reference)
  assert ours.shape == reference.shape, f"{what}: shape {ours.shape} vs {reference.shape}"
  diff = float(np.abs(ours - reference).max())
  scale = float(np.abs(reference).max())
  assert scale > 0, f"{what}: reference is all zeros, the comparison would be vacuous"
  assert diff <= rtol * scale, f"{what}: max |diff| {diff:.3g} > {rtol} * scale {scale:.3g}"
  return diff


# ------------------------------------------------------------------------------------------------
# EfficientNet-Lite0: the real checkpoint against its reference implementation.

def _lite0_reference(**overrides):
  from efficientnet_lite_pytorch import EfficientNet  # pylint: disable=import-outside-toplevel
  net = EfficientNet.from_name("efficientnet-lite0", **overrides)
  state = torch.load(pretrained.checkpoint_path("efficientnet_lite0"), weights_only=True)
  net.load_state_dict(state)  # torch's own strict loading, independent of our converter
  return net


def _imagenet_samples(folder):
  files, labels = imagenet_files_and_labels(folder)
  images = np.stack([resize_shorter_and_center_crop(load_image(f), 256, 224) for f in files])
  return images, labels


@pytest.mark.slow  # ~20 s on 2 busy cores, most of it the PyTorch reference
def test_efficientnet_lite0_matches_reference_on_imagenet_samples(imagenet_samples):
  start = time.perf_counter()
  images, labels = _imagenet_samples(imagenet_samples)
  module = models.build("efficientnet_lite0")
  variables = pretrained.load("efficientnet_lite0")
  apply = jax.jit(functools.partial(module.apply, train=False))
  batches = range(0, len(images), 25)
  ours = np.concatenate([np.asarray(apply(variables, images[i:i + 25])[0]) for i in batches])

  reference = _lite0_reference().eval()
  with torch.no_grad():  # the reference expects normalised input: (x - 0.5) / 0.5
    ref = np.concatenate([reference(_nchw((images[i:i + 25] - 0.5) / 0.5)).numpy()
                          for i in batches])

  diff = float(np.abs(ours - ref).max())
  accuracy = float((ours.argmax(1) == labels).mean())
  print(f"\nefficientnet_lite0 on 100 ImageNet samples: max |logit diff| {diff:.3g} "
        f"(logit scale {np.abs(ref).max():.3g}), top-1 ours {accuracy:.2f}, "
        f"reference {(ref.argmax(1) == labels).mean():.2f}, {time.perf_counter() - start:.1f} s")
  assert diff <= 1e-3
  np.testing.assert_array_equal(ours.argmax(1), ref.argmax(1))
  # Loose sanity bound (the model reaches ~75% on ImageNet val): catches wrong preprocessing or
  # channel order, which the comparison above cannot since both models get the same array.
  assert accuracy >= 0.6


@pytest.fixture(scope="module")
def lite0_variables():
  """The converted real checkpoint, once per module (the load() path is tested separately)."""
  state = load_torch_state_dict(pretrained.checkpoint_path("efficientnet_lite0"))
  return pretrained.convert("efficientnet_lite0", state)


def test_efficientnet_lite0_layers_and_train_mode_batch_norm(lite0_variables):
  """Train mode (batch statistics, running-average update) against the reference in train mode."""
  images = np.random.default_rng(0).random((4, 64, 64, 3), dtype=np.float32)
  module = models.build("efficientnet_lite0", dropout_rate=0.0, drop_connect_rate=0.0)
  train_apply = jax.jit(functools.partial(module.apply, train=True, mutable=["batch_stats"]))
  (logits, acts), updates = train_apply(lite0_variables, images)

  reference = _lite0_reference(dropout_rate=0.0, drop_connect_rate=0.0).train()
  with torch.no_grad():
    ref_logits = reference(_nchw((images - 0.5) / 0.5)).numpy()
  _assert_close(logits, ref_logits, 1e-4, "train-mode logits")
  # Running means: 0.99 * stored + 0.01 * batch mean in both (variances differ by design: torch
  # stores the unbiased batch variance, Flax the biased one).
  _assert_close(updates["batch_stats"]["head"]["bn"]["mean"], reference._bn1.running_mean, 1e-4,
                "head running mean")
  _assert_close(updates["batch_stats"]["block9"]["depthwise"]["bn"]["mean"],
                reference._blocks[8]._bn1.running_mean, 1e-4, "block9 running mean")
  shapes = models.output_shapes(models.ModelFn(module), lite0_variables, (1, 224, 224, 3))
  assert shapes["head"] == (1, 7, 7, 1280) and shapes["pool"] == (1, 1280)
  assert shapes["logits"] == (1, 1000) and shapes["block16"] == (1, 7, 7, 320)
  assert list(shapes) == ["stem"] + [f"block{i}" for i in range(1, 17)] + ["head", "pool",
                                                                          "logits", None]
  assert acts["head"].shape == (4, 2, 2, 1280)


@pytest.mark.parametrize("size,kernel,stride", [(9, 3, 1), (8, 3, 2), (9, 5, 2), (10, 5, 1)])
def test_depthwise_conv_cpu_form_matches_grouped_convolution(size, kernel, stride):
  from cnn_vis.models.efficientnet import depthwise_conv  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(size + kernel + stride)
  x = rng.normal(size=(2, size, size, 6)).astype(np.float32)
  w = rng.normal(size=(kernel, kernel, 1, 6)).astype(np.float32)
  grouped = depthwise_conv(x, w, stride, impl="conv")
  np.testing.assert_allclose(depthwise_conv(x, w, stride, impl="shifted"), grouped, atol=1e-5)
  # and both are torch's depthwise conv with TF 'SAME' padding (extra row/column bottom/right)
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  padded = torch.nn.functional.pad(_nchw(x), [total // 2, total - total // 2] * 2)
  ref = torch.nn.functional.conv2d(padded, torch.from_numpy(w.transpose(3, 2, 0, 1).copy()),
                                   stride=stride, groups=6)
  np.testing.assert_allclose(grouped, _nhwc(ref), atol=1e-5)


def test_efficientnet_tiny_trains_and_threads_relu_mode():
  from cnn_vis.models import efficientnet  # pylint: disable=import-outside-toplevel
  images = np.random.default_rng(1).random((3, 32, 32, 3), dtype=np.float32)
  module = efficientnet.efficientnet_tiny()
  variables = jax.jit(functools.partial(module.init, train=False))(jax.random.PRNGKey(0), images)
  train_apply = jax.jit(functools.partial(module.apply, train=True, mutable=["batch_stats"]))
  (logits, _), updates = train_apply(variables, images, rngs={"dropout": jax.random.PRNGKey(1)})
  assert logits.shape == (3, 10)
  changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), variables["batch_stats"],
                                   updates["batch_stats"])
  assert all(jax.tree_util.tree_leaves(changed))

  def input_grad(mode):
    net = efficientnet.efficientnet_tiny(relu_mode=mode)
    return np.asarray(jax.jit(jax.grad(lambda x: net.apply(variables, x)[0][:, 3].sum()))(images))

  standard, guided = input_grad("standard"), input_grad("guided")
  assert np.all(np.isfinite(guided)) and not np.allclose(standard, guided)


# ------------------------------------------------------------------------------------------------
# torchvision AlexNet / VGG with random weights, layer by layer.

def _torch_named_acts(net: torch.nn.Module, x: torch.Tensor, vgg: bool) -> dict[str, np.ndarray]:
  """Outputs of torchvision's features/classifier under our layer names."""
  acts, block, conv, fc = {}, 1, 0, 5
  with torch.no_grad():
    for layer in net.features:
      x = layer(x)
      if isinstance(layer, torch.nn.Conv2d):
        conv += 1
      elif isinstance(layer, torch.nn.ReLU):
        acts[f"conv{block}_{conv}" if vgg else f"conv{conv}"] = _nhwc(x.clone())
      elif isinstance(layer, torch.nn.MaxPool2d):
        acts[f"pool{block}" if vgg else f"pool{conv}"] = _nhwc(x.clone())
        block, conv = (block + 1, 0) if vgg else (block, conv)
    x = torch.flatten(net.avgpool(x), 1)
    for layer in net.classifier:
      x = layer(x)
      if isinstance(layer, torch.nn.Linear):
        fc += 1
        acts[f"fc{fc}"] = x.clone().numpy()
      elif isinstance(layer, torch.nn.ReLU):
        acts[f"fc{fc}"] = x.clone().numpy()
  return acts


def _compare_with_torchvision(module, variables, net, images, vgg: bool):
  net.eval()
  x = _nchw(np.asarray(layers.normalize(images, layers.IMAGENET_MEAN, layers.IMAGENET_STD)))
  with torch.no_grad():
    ref_logits = net(x).numpy()
  ref_acts = _torch_named_acts(net, x, vgg)
  logits, acts = jax.jit(functools.partial(module.apply, train=False))(variables, images)
  diffs = {"logits": _assert_close(logits, ref_logits, 1e-4, "logits")}
  for name, ref in ref_acts.items():
    diffs[name] = _assert_close(acts[name], ref, 1e-4, name)
  return diffs


def test_torchvision_alexnet_random_weights_through_load(tmp_path, monkeypatch):
  """The whole path: torchvision file in CNN_VIS_TORCHVISION_DIR -> safe read -> convert -> cache."""
  torch.manual_seed(0)
  net = torchvision.models.alexnet(weights=None)
  folder = tmp_path / "torchvision"
  folder.mkdir()
  torch.save(net.state_dict(), folder / pretrained.TORCHVISION_FILES["torchvision_alexnet"])
  monkeypatch.setenv("CNN_VIS_TORCHVISION_DIR", str(folder))
  variables = pretrained.load("torchvision_alexnet")
  images = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
  diffs = _compare_with_torchvision(models.build("alexnet_torchvision"), variables, net, images,
                                    vgg=False)
  assert {"conv1", "conv5", "pool1", "pool2", "pool5", "fc6", "fc7", "fc8"} <= set(diffs)
  print(f"\nalexnet max |diff| per layer: { {k: f'{v:.2g}' for k, v in diffs.items()} }")


@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_torchvision_vgg_random_weights(name):
  torch.manual_seed(1)
  net = getattr(torchvision.models, name)(weights=None)
  variables = pretrained.convert(f"torchvision_{name}", _numpy_state_dict(net))
  # 64x64 keeps the test fast; pool5 is then 2x2 and the adaptive pool to 7x7 averages
  # overlapping bins, which must match torch's AdaptiveAvgPool2d too.
  images = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
  diffs = _compare_with_torchvision(models.build(name), variables, net, images, vgg=True)
  assert {"conv1_1", "conv5_3", "pool5", "fc6", "fc8"} <= set(diffs)
  print(f"\n{name} max |logit diff| {diffs['logits']:.2g}")


# ------------------------------------------------------------------------------------------------
# Safety: checkpoints that run code are refused before any code runs.

class _WritesMarker:
  """Unpickling this calls open(marker, "w"), i.e. creates the marker file."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, "w"))


@pytest.mark.parametrize("layout", ["torch_zip", "raw_pickle"])
def test_checkpoint_that_runs_code_is_refused(tmp_path, layout):
  marker, path = tmp_path / "marker", tmp_path / "evil.pth"
  if layout == "torch_zip":
    torch.save({"conv1.weight": torch.zeros(2), "evil": _WritesMarker(marker)}, path)
  else:
    with open(path, "wb") as f:
      pickle.dump({"evil": _WritesMarker(marker)}, f, protocol=2)
  with pytest.raises(UserError, match="refused") as error:
    load_torch_state_dict(path)
  assert "\n" not in str(error.value)
  assert not marker.exists()
  # The payload is live: an unrestricted unpickler does run it (so the check above can fail).
  if layout == "torch_zip":
    torch.load(path, weights_only=False)
  else:
    with open(path, "rb") as f:
      pickle.load(f)  # noqa: S301  # deliberately unsafe, on our own crafted file
  assert marker.exists()


def test_missing_corrupt_and_wrong_checkpoints_are_user_errors(tmp_path, monkeypatch):
  with pytest.raises(UserError, match="does not exist"):
    load_torch_state_dict(tmp_path / "nothing.pth")
  junk = tmp_path / "junk.pth"
  junk.write_bytes(np.random.default_rng(0).bytes(4096))
  with pytest.raises(UserError, match="junk.pth"):
    load_torch_state_dict(junk)
  truncated = tmp_path / "truncated.pth"
  real = pretrained.checkpoint_path("efficientnet_lite0").read_bytes()
  truncated.write_bytes(real[:len(real) // 2])
  with pytest.raises(UserError, match="truncated.pth"):
    load_torch_state_dict(truncated)
  not_a_state_dict = tmp_path / "list.pth"
  torch.save([1, 2, 3], not_a_state_dict)
  with pytest.raises(UserError, match="no state dict"):
    load_torch_state_dict(not_a_state_dict)

  monkeypatch.setenv("CNN_VIS_TORCHVISION_DIR", str(tmp_path / "empty"))
  with pytest.raises(UserError, match="vgg16-397923af.pth") as error:
    pretrained.load("torchvision_vgg16")
  assert "CNN_VIS_TORCHVISION_DIR" in str(error.value) and str(tmp_path / "empty") in str(error.value)
  with pytest.raises(UserError, match="unknown pretrained weights"):
    pretrained.load("resnet50")


def test_convert_is_strict_about_keys_and_shapes():
  state = load_torch_state_dict(pretrained.checkpoint_path("efficientnet_lite0"))
  missing = {k: v for k, v in state.items() if k != "_blocks.3._bn1.running_var"}
  with pytest.raises(UserError, match=r"lacks key '_blocks.3._bn1.running_var'"):
    pretrained.convert("efficientnet_lite0", missing)
  with pytest.raises(UserError, match=r"unexpected key\(s\) '_extra.weight'"):
    pretrained.convert("efficientnet_lite0", {**state, "_extra.weight": np.zeros(3)})
  wrong = {**state, "_fc.weight": np.zeros((10, 1280), np.float32)}
  with pytest.raises(UserError, match=r"'_fc.weight' has shape \(10, 1280\), expected \(1000, 1280\)"):
    pretrained.convert("efficientnet_lite0", wrong)
  variables = pretrained.convert("efficientnet_lite0", state)
  np.testing.assert_array_equal(variables["params"]["block2"]["depthwise"]["conv"]["kernel"],
                                state["_blocks.1._depthwise_conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(variables["batch_stats"]["stem"]["bn"]["var"],
                                state["_bn0.running_var"])


# ------------------------------------------------------------------------------------------------
# Cache.

def _assert_trees_equal(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_cache_skips_conversion_and_is_invalidated_by_a_new_checkpoint(cache_dir, monkeypatch,
                                                                        tmp_path):
  source = tmp_path / "lite0.pth"
  shutil.copy(pretrained.checkpoint_path("efficientnet_lite0"), source)
  monkeypatch.setattr(pretrained, "_package_file", lambda name: source)
  first = pretrained.load("efficientnet_lite0")
  assert (cache_dir / "efficientnet_lite0.safetensors").is_file()
  assert [p.name for p in cache_dir.iterdir()] == ["efficientnet_lite0.safetensors"]  # no temp files

  real_convert = pretrained.convert

  def must_not_convert(*args):
    raise AssertionError("converted again although the cache is valid")

  monkeypatch.setattr(pretrained, "convert", must_not_convert)
  _assert_trees_equal(pretrained.load("efficientnet_lite0"), first)

  # A changed checkpoint file is converted again.
  state = torch.load(source, weights_only=True)
  state["_fc.bias"] = state["_fc.bias"] + 1.0
  torch.save(state, source)
  calls = []
  monkeypatch.setattr(pretrained, "convert", lambda *a: calls.append(1) or real_convert(*a))
  second = pretrained.load("efficientnet_lite0")
  assert calls == [1]
  np.testing.assert_allclose(second["params"]["fc"]["bias"], first["params"]["fc"]["bias"] + 1.0)


def test_cache_survives_corruption_and_failed_writes(cache_dir, monkeypatch):
  first = pretrained.load("efficientnet_lite0")
  cache_file = cache_dir / "efficientnet_lite0.safetensors"
  cache_file.write_bytes(b"garbage")                 # a corrupt cache is ignored and rewritten
  _assert_trees_equal(pretrained.load("efficientnet_lite0"), first)
  good = cache_file.read_bytes()
  assert good != b"garbage"

  def crash_midway(tensors, filename, metadata=None):
    with open(filename, "wb") as f:
      f.write(b"half a file")
    raise OSError("disk full")

  # A write that fails leaves the previous cache file intact and no temporary file behind.
  monkeypatch.setattr(cache_lib, "save_file", crash_midway)
  assert not cache_lib.write(cache_file, {"params": {"w": np.zeros(3)}}, {"format": "x"})
  assert cache_file.read_bytes() == good
  assert [p.name for p in cache_dir.iterdir()] == ["efficientnet_lite0.safetensors"]
