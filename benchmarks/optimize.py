"""Rendering many units at once: one vmapped call vs sequential calls vs a PyTorch loop.

  .venv/bin/python benchmarks/optimize.py                       # 64 units, 128 px, 256 steps
  .venv/bin/python benchmarks/optimize.py --steps=64 --sequential_units=8 --loops=dispatch

Task: activation maximisation of `--units` channels of torchvision-layout AlexNet's conv5 (centre
position), each its own image of --size x --size pixels, Adam lr 0.05 for --steps steps from the
mean pixel + 0.1 N(0, 1), no transforms or regularisers, so all implementations do the same
arithmetic on the same random weights (torchvision's init, converted to Flax with
cnn_vis.pretrained.convert):
- ours, vmapped, loop=scan: cnn_vis.techniques.optimize.render_jit, all units and steps in ONE
  compiled call;
- ours, vmapped, loop=dispatch: the one compiled vmapped step called once per step (the CPU
  default, see optimize.py);
- ours, sequential: one unit per call, the same way (--sequential_units of them, timed and
  scaled to --units);
- reference: a PyTorch loop (torch.optim.Adam) over a batch holding every unit's image, the
  usual PyTorch way (one unit per batch element, summed objectives).
Compile time is reported apart from run time. Ratios > 1 mean ours is faster; the last line is
one JSON object.
"""
import argparse
import dataclasses
import json
import os
import sys
import time

import torch  # before anything that may import TensorFlow
import torchvision

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from cnn_vis import models  # noqa: E402  pylint: disable=wrong-import-position
from cnn_vis.models.layers import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402  pylint: disable=C0413
from cnn_vis.pretrained import convert  # noqa: E402  pylint: disable=wrong-import-position
from cnn_vis.techniques import optimize  # noqa: E402  pylint: disable=wrong-import-position
from cnn_vis.techniques.objectives import Channel  # noqa: E402  pylint: disable=C0413

LAYER = "conv5"
TORCH_CONV5_RELU = 12    # torchvision alexnet.features[:12] ends with conv5's ReLU
CENTRE_UNIT = Channel(LAYER)   # channel, y, x from the settings: the centre of each unit's map


def torch_render(net, init: np.ndarray, channels: np.ndarray, steps: int, lr: float):
  mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
  std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
  x = torch.tensor(init.transpose(0, 3, 1, 2).copy(), requires_grad=True)
  optimizer = torch.optim.Adam([x], lr=lr)
  index = torch.arange(len(channels))
  channels = torch.tensor(channels)
  for _ in range(steps):
    optimizer.zero_grad(set_to_none=True)
    a = net((x - mean) / std)
    centre = a[:, :, a.shape[2] // 2, a.shape[3] // 2]
    loss = -centre[index, channels].sum()
    loss.backward()
    optimizer.step()
  with torch.no_grad():
    a = net((x - mean) / std)
    reached = a[index, channels, a.shape[2] // 2, a.shape[3] // 2]
  return x.detach().numpy().transpose(0, 2, 3, 1), reached.numpy()


def time_ours(mode, apply_fn, recipe, variables, settings, keys, n, n_seq, chunk) -> dict:
  """Compile and run times of all units vmapped, and of n_seq units one by one (scaled to n)."""
  out = {}
  for name, count in (("vmapped", n), ("sequential", n_seq)):
    subset = {k: v[:count] for k, v in settings.items()}
    calls = [({k: v[i:i + 1] for k, v in settings.items()}, keys[i:i + 1]) for i in range(count)] \
        if name == "sequential" else [(subset, keys[:count])]
    if mode == "scan":
      t = time.perf_counter()
      compiled = optimize.render_jit.lower(apply_fn, CENTRE_UNIT, recipe, variables,
                                           *calls[0], chunk=chunk).compile()
      out[f"{name}_compile_s"] = time.perf_counter() - t
      run = lambda s, k, c=compiled: c(variables, s, k)
    else:
      # compile the step (and helpers) on a 1-step recipe of the same shapes
      t = time.perf_counter()
      warm = dataclasses.replace(recipe, phases=((1, 1.0),))
      optimize.render_dispatch(apply_fn, CENTRE_UNIT, warm, variables, *calls[0],
                               chunk=chunk).images.block_until_ready()
      out[f"{name}_compile_s"] = time.perf_counter() - t
      run = lambda s, k: optimize.render_dispatch(apply_fn, CENTRE_UNIT, recipe, variables, s, k,
                                                  chunk=chunk)
    t = time.perf_counter()
    for s, k in calls:
      last = run(s, k)
      last.images.block_until_ready()
    out[f"{name}_run_s"] = (time.perf_counter() - t) * (n / count)
    if name == "vmapped":
      out["result"] = last
    print(f"ours, loop={mode}, {name}: compile {out[f'{name}_compile_s']:.1f} s, run "
          f"{out[f'{name}_run_s']:.1f} s" + (f" ({count} of {n} units run, scaled)" if count < n
                                             else "")
          + f" -> {n / out[f'{name}_run_s']:.3f} units/s", flush=True)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--units", type=int, default=64)
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=256)
  parser.add_argument("--lr", type=float, default=0.05)
  parser.add_argument("--sequential_units", type=int, default=0,
                      help="units actually run one by one (0: all); the time is scaled to --units")
  parser.add_argument("--chunk", type=int, default=0,
                      help="vmapped renders run in chunks of this many units (0: all at once)")
  parser.add_argument("--loops", default="scan,dispatch",
                      help="our loop modes to time (comma-separated: scan, dispatch); the first "
                           "is the one compared with the others")
  args = parser.parse_args()
  n, size, steps = args.units, args.size, args.steps
  n_seq = args.sequential_units or n
  torch.manual_seed(0)
  torch_net = torchvision.models.alexnet(weights=None).eval()
  state = {k: v.numpy() for k, v in torch_net.state_dict().items()}
  variables = jax.tree_util.tree_map(jnp.asarray, convert("torchvision_alexnet", state))
  module = models.build("alexnet_torchvision")
  apply_fn = models.ModelFn(module)
  features = torch_net.features[:TORCH_CONV5_RELU]
  for p in features.parameters():
    p.requires_grad_(False)

  rng = np.random.RandomState(0)
  init = (np.asarray(IMAGENET_MEAN, np.float32)
          + 0.1 * rng.randn(n, size, size, 3)).astype(np.float32)
  channels = np.arange(n, dtype=np.int32)
  height, width = models.output_shapes(apply_fn, variables, (1, size, size, 3))[LAYER][1:3]
  settings = optimize.stack_settings(n, channel=channels, y=height // 2, x=width // 2, lr=args.lr,
                                     init=init)
  recipe = optimize.Recipe(size, size, phases=((steps, 1.0),), optimizer=optimize.Optimizer("adam"))
  keys = jax.random.split(jax.random.PRNGKey(0), n)
  print(f"task: {n} units of alexnet_torchvision {LAYER} (random torchvision init), {size}x{size} "
        f"px, {steps} Adam steps (lr {args.lr}); jax {jax.__version__} "
        f"({jax.devices()[0].platform}), torch {torch.__version__}, {os.cpu_count()} CPUs",
        flush=True)

  loops = [m.strip() for m in args.loops.split(",") if m.strip()]
  timings = {}
  for mode in loops:
    timings[mode] = time_ours(mode, apply_fn, recipe, variables, settings, keys, n, n_seq,
                              args.chunk or None)
  result = timings[loops[0]]["result"]

  # PyTorch reference, batched loop (one warm-up step first: thread pools, allocator)
  torch_render(features, init, channels, 1, args.lr)
  t = time.perf_counter()
  torch_images, torch_reached = torch_render(features, init, channels, steps, args.lr)
  run_torch = time.perf_counter() - t
  print(f"pytorch loop:   run {run_torch:.1f} s -> {n / run_torch:.2f} units/s", flush=True)

  # the three do the same arithmetic: compare what they reached
  images = result.images[:, 0]
  _, acts = apply_fn(variables, images)
  centre = acts[LAYER][:, acts[LAYER].shape[1] // 2, acts[LAYER].shape[2] // 2]
  ours_reached = np.asarray(centre[np.arange(n), channels])
  agreement = float(np.max(np.abs(ours_reached - torch_reached)) /
                    max(float(np.abs(torch_reached).max()), 1e-6))
  image_diff = float(np.max(np.abs(np.asarray(images) - torch_images)))
  print(f"agreement: max |activation difference| / max activation {agreement:.2e}, max |pixel "
        f"difference| {image_diff:.2e}; mean activation reached: ours {ours_reached.mean():.3f}, "
        f"torch {torch_reached.mean():.3f}; units with a non-zero objective: "
        f"{int((torch_reached > 0).sum())} of {n}", flush=True)
  summary = {"task": f"{n} units alexnet_torchvision {LAYER}, {size}px, {steps} adam steps",
             "units": n, "size": size, "steps": steps, "sequential_units_run": n_seq,
             "chunk": args.chunk,
             "torch_run_s": round(run_torch, 2), "torch_units_per_s": round(n / run_torch, 4),
             "max_relative_activation_difference": agreement}
  for mode, t in timings.items():
    for key in ("vmapped_compile_s", "vmapped_run_s", "sequential_compile_s", "sequential_run_s"):
      summary[f"{mode}_{key}"] = round(t[key], 2)
    summary[f"{mode}_vmapped_units_per_s"] = round(n / t["vmapped_run_s"], 4)
    summary[f"{mode}_sequential_units_per_s"] = round(n / t["sequential_run_s"], 4)
    summary[f"{mode}_vmapped_vs_sequential_ratio"] = round(
        t["sequential_run_s"] / t["vmapped_run_s"], 3)
    summary[f"{mode}_vmapped_vs_torch_ratio"] = round(run_torch / t["vmapped_run_s"], 3)
    summary[f"{mode}_vmapped_with_compile_vs_torch_ratio"] = round(
        run_torch / (t["vmapped_run_s"] + t["vmapped_compile_s"]), 3)
  if "scan" in timings and "dispatch" in timings:
    summary["dispatch_vs_scan_ratio"] = round(timings["scan"]["vmapped_run_s"]
                                              / timings["dispatch"]["vmapped_run_s"], 3)
  print(json.dumps(summary))


if __name__ == "__main__":
  main()
