"""Are class models recognisable? Each preset of cnn_vis.techniques.class_model renders ten
ImageNet classes on one pretrained net; the OTHER pretrained net, which never saw the
optimisation, classifies them (efficientnet_lite0 <-> squeezenet1_1). A class in the judge's
top 5 counts as recognised; an image that only its own net recognises is an adversarial pattern.

  python benchmarks/recognisability.py [--presets paper,jitter,cs231n,lucid] [--size 0]
      [--steps 0] [--pairs efficientnet_lite0:squeezenet1_1,squeezenet1_1:efficientnet_lite0]

Classes: configs/simonyan14_class_models.py's ten (goldfish, ostrich, tarantula, flamingo,
jellyfish, pineapple, strawberry, volcano, daisy, pizza). Images are rendered at the renderer's
input size (--size to change it; 224 px for efficientnet_lite0, 227 for squeezenet1_1) with
each preset's own steps (--steps to override, e.g. for a quick check), then resized bilinearly
to the judge's input size. Per preset and direction it prints how many of the ten reach top-1 on
the renderer and top-5 on the judge, and the seconds the render took. The last line is one
JSON object with every count; `default_vs_paper_top5_ratio` = the judge top-5 hits (both
directions) of the config's default preset / those of the paper's own settings (`paper`; at
least 1 in the denominator): > 1 means the default is more recognisable.
"""
import torch  # noqa: F401,I001  # before anything that may import TensorFlow (tests/conftest.py)

import argparse
import json
import time

import jax
import numpy as np

from cnn_vis import loader, models
from cnn_vis.techniques import class_model, classify
from configs import simonyan14_class_models as class_config


def render(name: str, preset: str, classes, size: int, steps: int, seed: int = 0):
  """(images (10, S, S, 3), top-1 hits on the renderer, seconds)."""
  fn, variables, spec = loader.load(name, pretrained=True)
  size = size or spec.input_size
  start = time.perf_counter()
  result = class_model.class_models(fn, variables, classes, size=size, center=fn.mean_pixel,
                                    key=jax.random.PRNGKey(seed), preset_name=preset,
                                    steps=steps or None)
  images = np.asarray(result.images[:, 0])
  seconds = time.perf_counter() - start
  top1 = np.asarray(classify.probabilities(fn, variables, images)).argmax(-1) == classes
  return images, top1, seconds


def judge(name: str, images, classes):
  """(top-5 hits, ranks) of the judge net on the images."""
  fn, variables, spec = loader.load(name, pretrained=True)
  return class_model.top_k_hits(fn, variables, images, classes, spec.input_size)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--presets", default=",".join(class_model.PRESETS))
  parser.add_argument("--pairs",
                      default="efficientnet_lite0:squeezenet1_1,squeezenet1_1:efficientnet_lite0")
  parser.add_argument("--size", type=int, default=0, help="render size (0: the renderer's)")
  parser.add_argument("--steps", type=int, default=0, help="steps (0: each preset's own)")
  args = parser.parse_args()
  classes = np.array([int(c) for c in class_config.CLASSES.split(";")])
  names = models.get_spec("squeezenet1_1").class_names
  figures = {"classes": len(classes), "size": args.size, "steps": args.steps,
             "default_preset": class_config.DEFAULT_PRESET}
  for preset in args.presets.split(","):
    for pair in args.pairs.split(","):
      renderer, judge_name = pair.split(":")
      images, top1, seconds = render(renderer, preset, classes, args.size, args.steps)
      hits, ranks = judge(judge_name, images, classes)
      key = f"{preset}_{renderer}_to_{judge_name}"
      figures[f"{key}_self_top1"] = int(top1.sum())
      figures[f"{key}_judge_top5"] = int(hits.sum())
      figures[f"{key}_seconds"] = round(seconds, 1)
      recognised = ", ".join(names[c] for c, h in zip(classes, hits) if h) or "none"
      print(f"{preset:8s} rendered on {renderer:18s} top-1 on it {int(top1.sum()):2d}/10; "
            f"top-5 on {judge_name:18s} {int(hits.sum()):2d}/10 ({recognised}); judge ranks "
            f"{(ranks + 1).tolist()}; {seconds:.0f} s", flush=True)
  total = lambda preset: sum(v for k, v in figures.items()
                             if k.startswith(f"{preset}_") and k.endswith("_judge_top5"))
  if {"paper", class_config.DEFAULT_PRESET} <= set(args.presets.split(",")):
    figures["default_vs_paper_top5_ratio"] = (total(class_config.DEFAULT_PRESET)
                                              / max(total("paper"), 1))
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
