"""DeepDream (Mordvintsev, Olah & Tyka 2015; google/deepdream dream.ipynb, docs/papers.md §7).

  python -m cnn_vis.main --config=configs/deepdream.py --workdir=runs/deepdream
  python -m cnn_vis.main --config=configs/deepdream.py --config.layer=block5 \
      --config.images=../shared/data/imagenet-samples/n01440764_tench.JPEG --workdir=runs/dd_tench
  python -m cnn_vis.main --config=configs/deepdream.py \
      --config.step_size="(0.75, 1.5, 3.0)" --workdir=runs/dd_steps      # one call per octave

The notebook's settings: L2 objective, step 1.5 (0..255 pixels) / mean |g|, jitter 32,
iter_n 10, octave_n 4, octave_scale 1.4, detail carried up the octaves. Its GoogLeNet
(`inception_4c/output`) has no weights here; the default is the pretrained EfficientNet-Lite0 at
`block11` (14x14x112 at 224 px), a layer of similar relative depth. Every image is dreamed at its
own size; ||a||^2 before/after each octave is in metrics.jsonl (it rises in every octave).
"""
import ml_collections

from configs import common


def get_config(arg=None):
  common.check_arg(arg, "smoke")
  config = common.base_config("deepdream", images="skimage:chelsea")  # images of any size
  config.max_size = 512              # shrink larger images to this longer side (0: never)
  config.layer = "block11"           # notebook: inception_4c/output of GoogLeNet
  config.step_size = (1.5,)          # make_step step_size, 0..255 pixel units; tuple sweeps
  config.jitter = 32                 # make_step jitter
  config.iter_n = 10                 # deepdream iter_n
  config.octave_n = 4                # deepdream octave_n
  config.octave_scale = 1.4          # deepdream octave_scale
  # scan: each render is ONE compiled call; dispatch: one compiled vmapped step called per step
  # (same images, several times faster on CPU); auto: dispatch on CPU, scan on accelerators.
  config.loop = "auto"
  if arg == "smoke":
    # random weights, torchvision AlexNet's conv stack (any input size >= 67 px) with tiny fc layers
    config.model = "alexnet_torchvision"
    config.pretrained = False
    config.model_kwargs = ml_collections.ConfigDict({"fc_widths": (32, 32), "num_classes": 10})
    config.images = "skimage:coffee"
    config.max_size = 96
    config.layer = "conv2"
    config.step_size = (1.5, 3.0)
    config.iter_n = 2
    config.octave_n = 2
    config.jitter = 4
  return config


def get_sweep():
  """Dreams at increasing depth (separate runs: each layer is its own objective)."""
  return [{"layer": layer} for layer in ("block3", "block5", "block8", "block11", "block15")]
