"""Top patches of every unit of a layer over a dataset (Girshick et al. 2014, §3.1 and Fig. 4, the
R-CNN "top regions for pool5 units": docs/papers.md §11; Zeiler & Fergus 2014, Fig. 2: §2; the
deep-visualization toolbox's top 9: §5), with receptive fields (§25) and deconvnet projections.

  python -m cnn_vis.main --config=configs/girshick14_top_patches.py --workdir=runs/top_patches
  python -m cnn_vis.main --config=configs/girshick14_top_patches.py:cifar \
      --config.checkpoint=runs/alexnet_cifar10 --workdir=runs/top_patches_cifar
  python -m cnn_vis.main --config=configs/girshick14_top_patches.py:imagenet \
      --config.checkpoint=runs/alexnet_imagenet --config.model_kwargs.groups=1 \
      --workdir=runs/top_patches_imagenet                     # accelerators

Default: SqueezeNet v1.1 with its Caffe ImageNet weights (the AlexNet-level net with published
weights here) over the 100 ImageNet samples, layer fire9 (14x14x512, receptive field 207 px of
227, the analogue of AlexNet's pool5: 195 px). `:cifar`: alexnet_cifar over the 10,000 CIFAR-10
test images, conv3 (27 px of 32) and conv5 (43 px: the whole image but at the borders; the
layer configs/yosinski15_activations.py:cifar links to). `:imagenet`: AlexNet pool5 over the
50,000 ILSVRC-2012 validation images, as R-CNN shows pool5 units (it ran ~10 M region
proposals instead). Outputs: top_patches.jsonl (every unit), top_patches_<layer>.png (the first
show_units units: each patch with its box, beside its projection), units/<layer>_<c>.png (one
row per unit, what activation-map runs link to) and summary.json with the receptive fields.
"""
from configs import _views


def get_config(arg=None):
  config = _views.view_config("top_patches", arg, model="squeezenet1_1")
  config.layers = ""            # ';'-separated layers; "": the model's default (fire9, pool5)
  config.units = ""             # or units instead of whole layers: pool5:0-15, pool5:42@3,3
  config.k = 9                  # the toolbox's top 9 and Zeiler & Fergus Fig. 2 (R-CNN: 16)
  config.per_image = 1          # R-CNN: at most one patch per image per unit
  config.overlap = 0.1          # per_image > 1: the R-CNN code's per-image NMS IoU threshold
  config.projection = "deconvnet"  # beside each patch (Zeiler & Fergus Fig. 2); guided_backprop; ""
  config.show_units = 16        # units drawn in the layer grids (and projected)
  config.unit_pages = True      # units/<layer>_<channel>.png for every unit
  config.tile = 64              # pixels per patch tile
  config.context = 0.1          # context around the box, x its size (R-CNN's crops: 16 of 96 px)
  if arg == "cifar":
    config.layers = "conv3;conv5"
  elif arg == "imagenet":
    config.layers = "pool5"
    config.show_units = 32
  elif arg == "smoke":
    config.layers = "conv3;fc6"
    config.k = 3
    config.show_units = 2
    config.tile = 24
  return config


def get_sweep():
  """SqueezeNet's stages, low to high (Zeiler & Fergus Fig. 2 walks layers 1-5)."""
  return [{"layers": layer} for layer in ("fire3", "fire5", "fire7", "fire9")]
