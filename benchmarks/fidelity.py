"""Do the attribution defaults give the papers' figures? Three checks on a pretrained net, each
beside a named reference, run in one process.

  python benchmarks/fidelity.py [--model squeezenet1_1] [--images skimage:chelsea,skimage:coffee]
      [--samples 50] [--checks ig,smoothness,catbox]

- ig: Integrated Gradients at the config's defaults (cnn_vis.techniques.attribution.IGOptions:
  50 steps doubled until the completeness gap is within 5%, up to 1600) against the fixed 50
  steps of the reference implementations (ankurtaly/Integrated-Gradients `steps=50`; Captum's
  n_steps=50), predicted class, black baseline. Figures: steps used and the largest gap
  |sum of attributions - (S(x) - S(x'))| / |S(x) - S(x')| (Sundararajan et al. §5 asks for <= 5%);
  `ig_gap_ratio` = reference gap / ours.
- smoothness: SmoothGrad at the paper's settings (15% noise, 50 samples; Smilkov et al. §3)
  against the plain saliency map it smooths, both as displayed (max_c |g| scaled to its 99th
  percentile): total variation and the energy above half the Nyquist frequency
  (cnn_vis.report.images); `smoothgrad_tv_ratio` = saliency TV / SmoothGrad TV (> 1: SmoothGrad
  is smoother).
- catbox: tests/test_attribution_experiments.py's scenes (skimage's chelsea pasted on a dark and
  a light plain background, the cat's box 31% of a 227 px image): the share of each map's
  top-10% pixels inside the box for saliency, guided backprop and deconvnet of the predicted
  class, and the share of |map| inside it for deconvnet / guided backprop of the strongest
  activation of the model's deconvnet layer; `*_box_ratio` = share / the box's area (> 1: the
  map prefers the cat to chance).
The last line is one JSON object with every figure.
"""
import torch  # noqa: F401,I001  # before anything that may import TensorFlow (tests/conftest.py)

import argparse
import json
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from cnn_vis import loader
from cnn_vis.data import images as image_io
from cnn_vis.report import images as pictures
from cnn_vis.techniques import attribution
from cnn_vis.techniques import gradients as G

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_attribution_experiments import _cat_scene, _inside  # noqa: E402  the test's own scenes


def run_method(model, images, name, target, options=None):
  apply_fn, variables, _ = model
  method = attribution.get(name)
  return method.fn(apply_fn, variables, images, target, options or method.options())


def integrated_gradients(model, images, names, figures):
  predicted = attribution.Target(None, G.Units.make([-1]))
  for label, options in (("ours", attribution.IGOptions()),
                         ("reference50", attribution.IGOptions(target_gap=0.0))):
    start = time.perf_counter()
    maps = run_method(model, images, "integrated_gradients", predicted, options)
    seconds = time.perf_counter() - start
    gap, steps = (np.asarray(maps.extras[k])[0] for k in ("completeness_gap", "steps"))
    for name, g, s in zip(names, gap, steps):
      print(f"IG {label:12s} {name:10s} steps {int(s):5d}  completeness gap {g:.2%}")
    figures[f"ig_{label}_max_gap"] = float(gap.max())
    figures[f"ig_{label}_steps"] = int(steps.max())
    figures[f"ig_{label}_seconds"] = seconds
  figures["ig_gap_ratio"] = figures["ig_reference50_max_gap"] / max(figures["ig_ours_max_gap"],
                                                                    1e-12)


def smoothness(model, images, names, samples: int, figures):
  predicted = attribution.Target(None, G.Units.make([-1]))
  maps = {"saliency": run_method(model, images, "saliency", predicted),
          "smoothgrad": run_method(model, images, "smoothgrad", predicted,
                                   attribution.SmoothGradOptions(samples=samples))}
  for method, result in maps.items():
    magnitude = np.abs(np.asarray(result.values[0])).max(-1)
    tv = [pictures.total_variation(m) for m in magnitude]
    high = [pictures.high_frequency_energy(m) for m in magnitude]
    for name, t, h in zip(names, tv, high):
      print(f"{method:10s} {name:10s} total variation {t:.4f}  energy above Nyquist/2 {h:.2%}")
    figures[f"{method}_tv"] = float(np.mean(tv))
    figures[f"{method}_high_frequency"] = float(np.mean(high))
  figures["smoothgrad_tv_ratio"] = figures["saliency_tv"] / figures["smoothgrad_tv"]
  figures["smoothgrad_high_frequency_ratio"] = (figures["saliency_high_frequency"]
                                                / figures["smoothgrad_high_frequency"])


def catbox(model, figures):
  _, _, spec = model
  size = spec.input_size
  scenes = [_cat_scene(0.2, 8, 8, size), _cat_scene(0.8, 104, 74, size)]
  images = jnp.asarray(np.stack([image for image, _ in scenes]))
  boxes = [box for _, box in scenes]
  area = (boxes[0][1] - boxes[0][0]) * (boxes[0][3] - boxes[0][2]) / size ** 2
  figures["catbox_area"] = area
  predicted = attribution.Target(None, G.Units.make([-1]))
  strongest = attribution.Target(spec.default("deconvnet").split(":")[1], G.Units.make([-1]))
  for method, target, label in (("saliency", predicted, "saliency"),
                                ("guided_backprop", predicted, "guided_backprop"),
                                ("deconvnet", predicted, "deconvnet"),
                                ("guided_backprop", strongest, f"guided_{strongest.layer}"),
                                ("deconvnet", strongest, f"deconvnet_{strongest.layer}")):
    magnitude = np.abs(np.asarray(run_method(model, images, method, target).values[0])).max(-1)
    if target is predicted:   # dense maps: where their top 10% of pixels are
      share = [float(_inside(m, box)) for m, box in zip(magnitude, boxes)]
      what = "top-10% pixels"
    else:                     # a projection confined to one receptive field: where its mass is
      share = [float(m[y0:y1, x0:x1].sum() / m.sum())
               for m, (y0, y1, x0, x1) in zip(magnitude, boxes)]
      what = "|map| mass"
    print(f"cat box ({area:.0%} of the image) {label:28s} {what} inside: "
          + ", ".join(f"{v:.3f}" for v in share))
    figures[f"{label}_box_share"] = min(share)
    figures[f"{label}_box_ratio"] = min(share) / area


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="squeezenet1_1")
  parser.add_argument("--images", default="skimage:chelsea,skimage:coffee")
  parser.add_argument("--samples", type=int, default=50, help="SmoothGrad samples (paper: 50)")
  parser.add_argument("--checks", default="ig,smoothness,catbox")
  args = parser.parse_args()
  model = loader.load(args.model, pretrained=True)
  spec = model[2]
  names = [source.split(":")[-1] for source in args.images.split(",")]
  images = jnp.asarray(np.stack([image_io.model_input(source, spec.input_size, spec.resize)[1]
                                 for source in args.images.split(",")]))
  figures = {"model": args.model, "images": len(names)}
  checks = args.checks.split(",")
  if "ig" in checks:
    integrated_gradients(model, images, names, figures)
  if "smoothness" in checks:
    smoothness(model, images, names, args.samples, figures)
  if "catbox" in checks:
    catbox(model, figures)
  print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
  main()
