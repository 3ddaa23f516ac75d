"""The one place model weights come from: random initialisation, a pretrained import, or a
training checkpoint.

    apply_fn, variables, spec = loader.load("efficientnet_lite0", pretrained=True)
    apply_fn, variables, spec = loader.load("alexnet_cifar", checkpoint="runs/cifar10")
    apply_fn, variables, spec = loader.load("vgg19", weights="vgg19-dcbb9e9d.pth")

`apply_fn` is a `cnn_vis.models.ModelFn` (hashable, jit-static). A checkpoint knows the model and
options it was trained with (they are read from it; options given must describe the same
network). `from_config` reads the common config fields (model, pretrained, weights, checkpoint,
model_kwargs, seed) and keeps the variables of the last few models it loaded, so a sweep, a tour
or a notebook running several techniques on one model initialises or imports it once.
"""
import functools
import json

from cnn_vis import models, pretrained as pretrained_lib
from cnn_vis.errors import UserError, check
from cnn_vis.train import checkpoint as checkpoint_lib


def load(name: str, *, checkpoint: str | None = None, pretrained: bool = False,
         weights: str | None = None, relu_mode: str = "standard", seed: int = 0, **options):
  """(ModelFn, variables, ModelSpec): weights from a checkpoint, a pretrained import (its default
  file, or `weights`), or random with `seed`."""
  spec = models.get_spec(name)
  check(not (checkpoint and weights), "give either checkpoint (a training run) or weights (a "
                                      "pretrained file), not both")
  if checkpoint:  # the options the network was trained with, unless given (then they must agree)
    options = checkpoint_lib.model_kwargs(checkpoint, name, options)
  apply_fn = models.ModelFn(models.build(name, relu_mode, **options))
  if checkpoint:
    variables = checkpoint_lib.load_variables(checkpoint)
  elif pretrained or weights:
    if spec.pretrained is None:
      with_weights = [n for n in models.list_models() if models.get_spec(n).pretrained]
      raise UserError(f"model {name} has no pretrained weights; models with them: "
                      f"{', '.join(with_weights)}")
    variables = pretrained_lib.load(spec.pretrained, path=weights or None)
  else:
    variables = models.init_variables(name, apply_fn.module, seed)
  return apply_fn, variables, spec


def _options(config) -> dict:
  options = config.get("model_kwargs") or {}
  return options.to_dict() if hasattr(options, "to_dict") else dict(options)


def from_config(config, relu_mode: str = "standard"):
  """load() from the common config fields; variables of the last models loaded are reused (a
  checkpoint is read every time: it may have changed between runs)."""
  fields = dict(pretrained=bool(config.get("pretrained", False)),
                weights=str(config.get("weights") or "") or None, seed=int(config.get("seed", 0)))
  if config.get("checkpoint"):
    return load(config.model, checkpoint=config.checkpoint, relu_mode=relu_mode,
                **{**_options(config)})
  key = (config.model, fields["pretrained"], fields["weights"], fields["seed"],
         json.dumps(_options(config), sort_keys=True, default=str))
  _, variables, spec = _cached(key)
  apply_fn = models.ModelFn(models.build(config.model, relu_mode, **_options(config)))
  return apply_fn, variables, spec


@functools.lru_cache(maxsize=3)
def _cached(key):
  name, pretrained, weights, seed, options = key
  return load(name, pretrained=pretrained, weights=weights, seed=seed, **json.loads(options))
