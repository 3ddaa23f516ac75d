"""Model registry: name -> how to build it, its input size, classes and pretrained weights.

Every model is a flax.linen module called as a pure function,
`logits, acts = module.apply(variables, images, train=False)`, with images NHWC float32 in [0, 1]
(the model normalises them itself) and `acts` mapping each documented layer name to its output.
"""
import dataclasses
import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_vis.errors import UserError, choose
from cnn_vis.models import alexnet as _alexnet
from cnn_vis.models import classes as _classes
from cnn_vis.models import efficientnet
from cnn_vis.models import vgg as _vgg
from cnn_vis.models.relu import RELU_MODES
from cnn_vis.models.units import Unit, check_unit, parse_unit, unit_activation


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  build: Callable[..., nn.Module]
  input_size: int
  dataset: str                      # whose classes the logits index: imagenet, cifar10, fashion_mnist
  channels: int = 3
  resize: int | None = None         # reference preprocessing: shorter side to `resize`, centre crop
  pretrained: str | None = None     # name of the converter in cnn_vis.pretrained

  @property
  def class_names(self) -> tuple[str, ...]:
    return _classes.names(self.dataset)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
  _REGISTRY[spec.name] = spec
  return spec


register(ModelSpec("alexnet", _alexnet.alexnet, 227, "imagenet", resize=256))
register(ModelSpec("alexnet_torchvision", _alexnet.alexnet_torchvision, 224, "imagenet", resize=256,
                   pretrained="torchvision_alexnet"))
register(ModelSpec("alexnet_cifar", _alexnet.alexnet_cifar, 32, "cifar10"))
register(ModelSpec("alexnet_fashion_mnist",
                   functools.partial(_alexnet.alexnet_cifar, mean=(0.286,) * 3, std=(0.353,) * 3),
                   32, "fashion_mnist"))
register(ModelSpec("vgg16", _vgg.vgg16, 224, "imagenet", resize=256, pretrained="torchvision_vgg16"))
register(ModelSpec("vgg19", _vgg.vgg19, 224, "imagenet", resize=256, pretrained="torchvision_vgg19"))
register(ModelSpec("efficientnet_lite0", efficientnet.efficientnet_lite0, 224, "imagenet", resize=256,
                   pretrained="efficientnet_lite0"))


def list_models() -> list[str]:
  return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
  choose("model", name, list_models())
  return _REGISTRY[name]


def build(name: str, relu_mode: str = "standard", **overrides) -> nn.Module:
  """The named model's module with the given ReLU backward rule and attribute overrides.

  List values (as JSON and command-line configs give them) become tuples: module attributes stay
  hashable, so the module can be a static jit argument and a cache key.
  """
  choose("relu_mode", relu_mode, RELU_MODES)
  spec = get_spec(name)
  overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
  try:
    return spec.build(relu_mode=relu_mode, **overrides)
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
  techniques take (jit-static; equal modules give equal functions, so compilations are reused)."""
  module: nn.Module

  def __call__(self, variables, images):
    return self.module.apply(variables, images, train=False)


def output_shapes(apply_fn, variables, image_shape) -> dict:
  """{layer name: activation shape, None: logits shape} for a batch of image_shape (no compute)."""
  logits, acts = jax.eval_shape(apply_fn, variables, jax.ShapeDtypeStruct(image_shape, jnp.float32))
  return {**{name: tuple(a.shape) for name, a in acts.items()}, None: tuple(logits.shape)}


def layer_shapes(module: nn.Module, variables, input_size: int) -> dict[str, tuple]:
  """Activation shape of every named layer for one image of input_size (no computation)."""
  shapes = output_shapes(ModelFn(module), variables, (1, input_size, input_size, 3))
  return {name: shape for name, shape in shapes.items() if name is not None}


def activations(module: nn.Module, variables, images, names: Sequence[str]) -> dict:
  """Activations of the named layers (an unknown name is a UserError listing the known ones)."""
  _, acts = module.apply(variables, images, train=False)
  for name in names:
    choose("layer", name, acts)
  return {name: acts[name] for name in names}


def resolve_unit(text_or_unit, module: nn.Module, variables, input_size: int) -> Unit:
  """Parses and validates a unit against the model's layers."""
  unit = text_or_unit if isinstance(text_or_unit, Unit) else parse_unit(text_or_unit)
  return check_unit(unit, layer_shapes(module, variables, input_size))


def load_model(name: str, *, checkpoint: str | None = None, pretrained: bool = False,
               relu_mode: str = "standard", seed: int = 0, **overrides):
  """(module, variables, spec): weights from a training checkpoint, pretrained import, or random."""
  spec = get_spec(name)
  if checkpoint:  # the options the network was trained with, unless given (then they must agree)
    from cnn_vis.train import checkpoint as ckpt  # pylint: disable=import-outside-toplevel
    overrides = ckpt.model_kwargs(checkpoint, name, overrides)
  module = build(name, relu_mode, **overrides)
  if checkpoint:
    variables = ckpt.load_variables(checkpoint)  # model and options checked just above
  elif pretrained:
    if spec.pretrained is None:
      raise UserError(f"model {name} has no pretrained weights; models with them: "
                      f"{', '.join(n for n in list_models() if _REGISTRY[n].pretrained)}")
    from cnn_vis import pretrained as pre  # pylint: disable=import-outside-toplevel
    variables = pre.load(spec.pretrained)
  else:
    variables = init_variables(name, module, seed)
  return module, variables, spec


__all__ = ["ModelFn", "ModelSpec", "Unit", "activations", "check_unit", "build", "get_spec",
           "init_variables", "layer_shapes", "list_models", "load_model", "output_shapes",
           "parse_unit", "register", "resolve_unit", "unit_activation"]
