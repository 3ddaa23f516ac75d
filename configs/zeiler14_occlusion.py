"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2, Fig. 7).

  python -m cnn_vis.main --config=configs/zeiler14_occlusion.py --workdir=runs/occlusion
  python -m cnn_vis.main --config=configs/zeiler14_occlusion.py \
      --config.images=../shared/data/imagenet-samples --config.target=label --workdir=runs/occ100

A grey square slides over the image; Fig. 7 maps, per position, (b) the total activation of the
feature map that responds most strongly to the unoccluded image, (d) the probability of the
correct class and (e) the most probable label. The paper states neither the square's size, its
stride nor its grey level (docs/papers.md §2: not stated). Our defaults, for 224x224 inputs: a
48-pixel square (about 1/5 of the image, the scale of the objects' parts the figure occludes), moved 16
pixels at a time (a 12x12 map, finer than size/2 for smoother maps), filled with 0.5 grey (mid
grey of [0, 1] pixels; the ImageNet mean pixel is close to it). "Layer 5" of ZFNet is the last
conv layer: EfficientNet-Lite0's `head` (conv5 for AlexNets). Without true labels (skimage
photos) the "correct" class is the one predicted on the unoccluded image; --config.target=label
reads it from ImageNet file names.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("occlusion", None, arg)
  del config.targets, config.spatial, config.unit_chunk
  config.target = "predicted"     # the "correct class": predicted | label | class:N
  config.size = 48                # occluder side in pixels (not stated in the paper)
  config.stride = 16              # pixels between positions (not stated)
  config.fill = "0.5"             # grey level, or r,g,b in [0, 1] (not stated: "grey square")
  config.feature_layer = "head"   # Fig. 7(b): "layer 5"; the last conv feature map; "" = none
  config.chunk = 32               # occluded images per forward pass (memory bound)
  if arg == "smoke":
    config.size, config.stride, config.feature_layer, config.chunk = 8, 4, "conv5", 16
  return config


def get_sweep():
  """Occluder sizes from fine to coarse, at stride size / 3."""
  return [{"size": size, "stride": max(size // 3, 1)} for size in (24, 32, 48, 64, 96)]
