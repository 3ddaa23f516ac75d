"""Training throughput of alexnet_cifar on this machine: ours (JAX/XLA) vs the same network and
optimiser in PyTorch (CPU), with achieved GFLOP/s against the machine's measured GEMM peak.

  .venv/bin/python benchmarks/train_throughput.py
  XLA_FLAGS=--xla_cpu_use_onednn=true .venv/bin/python benchmarks/train_throughput.py

Both sides run one SGD step (momentum 0.9, weight decay 5e-4, dropout 0.5 on fc6/fc7, softmax
cross-entropy) per batch of --batch 32x32 images with a random horizontal flip, on the network of
configs/alexnet_cifar10.py (--width, --fc_width; no LRN): ours is cnn_vis.train.steps.train_step,
jitted and donating its state; the reference is a torch.nn.Module written here with the same
layer shapes (torch.set_num_threads(--threads)). Data is already in memory, so this measures the
step alone. Model FLOPs are counted analytically: 2 x multiply-adds of every conv and fc layer per
image forward, x3 for forward + backward. The GEMM peak is the best of a few
--gemm x --gemm float32 jnp.dot runs in the same process. Last line: one JSON object; ratios > 1
mean ours is better.
"""
import argparse
import functools
import json
import os
import sys
import time

import torch  # before anything that may import TensorFlow
from torch import nn

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from cnn_vis import models  # noqa: E402  pylint: disable=wrong-import-position
from cnn_vis.train import optim, state as state_lib, steps  # noqa: E402  pylint: disable=wrong-import-position


def conv_shapes(module) -> list[tuple[int, int, int, int]]:
  """(in_channels, out_channels, kernel, output side) of each conv of an alexnet_cifar module."""
  shapes, channels, side = [], 3, 32
  for i, spec in enumerate(module.convs, start=1):
    shapes.append((channels, spec.features, spec.kernel, side))
    channels = spec.features
    if i in module.pool_after:
      side = -(-side // 2)  # 'SAME' 3x3/2 pooling
  return shapes, channels * side * side


def model_flops_per_image(module) -> float:
  """2 x multiply-adds of the forward pass, x3 for forward + backward."""
  shapes, flat = conv_shapes(module)
  macs = sum(cin * cout * k * k * side * side for cin, cout, k, side in shapes)
  widths = [flat, *module.fc_widths, module.num_classes]
  macs += sum(a * b for a, b in zip(widths[:-1], widths[1:]))
  return 3 * 2 * macs


class TorchAlexNetCifar(nn.Module):
  """alexnet_cifar in PyTorch: the same convs, 3x3/2 max pools (padding 1: 32->16->8->4), fcs."""

  def __init__(self, module):
    super().__init__()
    shapes, flat = conv_shapes(module)
    layers = []
    for i, (cin, cout, k, _) in enumerate(shapes, start=1):
      layers += [nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True)]
      if i in module.pool_after:
        layers.append(nn.MaxPool2d(3, 2, padding=1))
    self.features = nn.Sequential(*layers)
    fc = []
    for a, b in zip([flat, *module.fc_widths], module.fc_widths):
      fc += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(module.dropout_rate)]
    self.classifier = nn.Sequential(*fc, nn.Linear(module.fc_widths[-1], module.num_classes))

  def forward(self, x):
    return self.classifier(torch.flatten(self.features(x), 1))


def time_steps(step, n: int, repeats: int = 3) -> float:
  """Best seconds per step over `repeats` runs of n steps; step() must block until done."""
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    step(n)
    best = min(best, (time.perf_counter() - start) / n)
  return best


def bench_jax(module, batch: int, steps_n: int, lr: float) -> float:
  tx = optim.optimizer(0.9, 5e-4)
  variables = models.init_variables("alexnet_cifar", module, 0)
  state = state_lib.create(variables, tx, optim.plateau(), jax.random.PRNGKey(1))
  step = jax.jit(functools.partial(steps.train_step, apply_fn=module.apply, tx=tx,
                                   lr_schedule=lambda s: lr, augment=steps.Augment(32)),
                 donate_argnums=0)
  rng = np.random.default_rng(0)
  data = {"image": jnp.asarray(rng.random((batch, 32, 32, 3), np.float32)),
          "label": jnp.asarray(rng.integers(0, 10, batch), jnp.int32)}
  holder = [step(state, data)[0]]
  jax.block_until_ready(holder[0])

  def run(n):
    s = holder[0]
    for _ in range(n):
      s, metrics = step(s, data)
    jax.block_until_ready(metrics)
    holder[0] = s

  return time_steps(run, steps_n)


def bench_torch(module, batch: int, steps_n: int, lr: float, threads: int) -> float:
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  net = TorchAlexNetCifar(module).train()
  opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
  loss_fn = nn.CrossEntropyLoss()
  images = torch.rand(batch, 3, 32, 32)
  labels = torch.randint(0, 10, (batch,))

  def run(n):
    for _ in range(n):
      flip = torch.rand(batch, 1, 1, 1) < 0.5
      x = torch.where(flip, images.flip(3), images)
      opt.zero_grad(set_to_none=True)
      loss = loss_fn(net(x), labels)
      loss.backward()
      opt.step()

  run(2)  # warm-up
  return time_steps(run, steps_n)


def gemm_peak_gflops(n: int, repeats: int = 5) -> float:
  a = jnp.asarray(np.random.default_rng(0).random((n, n), np.float32))
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    dot(a, a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--width", type=float, default=0.25)
  parser.add_argument("--fc_width", type=int, default=256)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--gemm", type=int, default=2048)
  args = parser.parse_args()
  module = models.build("alexnet_cifar", width=args.width, fc_width=args.fc_width, lrn=False)
  flops = model_flops_per_image(module)
  peak = gemm_peak_gflops(args.gemm)
  ours = bench_jax(module, args.batch, args.steps, 0.01)
  ref = bench_torch(module, args.batch, args.steps, 0.01, args.threads)
  ours_ips, ref_ips = args.batch / ours, args.batch / ref
  result = {
      "model": f"alexnet_cifar width={args.width} fc_width={args.fc_width} lrn=False",
      "batch": args.batch, "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "torch_threads": args.threads, "cpu_count": os.cpu_count(),
      "model_gflop_per_image": flops / 1e9,
      "ours_images_per_sec": ours_ips, "torch_images_per_sec": ref_ips,
      "ours_gflops": ours_ips * flops / 1e9, "torch_gflops": ref_ips * flops / 1e9,
      "gemm_peak_gflops": peak,
      "ours_fraction_of_gemm_peak": ours_ips * flops / 1e9 / peak,
      "torch_fraction_of_gemm_peak": ref_ips * flops / 1e9 / peak,
      "throughput_ratio": ours_ips / ref_ips,
  }
  print(f"ours {ours_ips:.0f} img/s ({result['ours_gflops']:.1f} GFLOP/s), PyTorch {ref_ips:.0f} "
        f"img/s ({result['torch_gflops']:.1f} GFLOP/s), GEMM peak {peak:.1f} GFLOP/s")
  print(json.dumps(result))


if __name__ == "__main__":
  main()
