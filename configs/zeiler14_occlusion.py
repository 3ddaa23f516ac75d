"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2, Fig. 7).

  python -m cnn_vis.main --config=configs/zeiler14_occlusion.py --workdir=runs/occlusion
  python -m cnn_vis.main --config=configs/zeiler14_occlusion.py \
      --config.images=../shared/data/imagenet-samples --config.target=label --workdir=runs/occ100

A grey square slides over the image; Fig. 7 maps, per position, (b) the total activation of the
feature map that responds most strongly to the unoccluded image, (d) the probability of the
correct class and (e) the most probable label. The paper states neither the square's size, its
stride nor its grey level (docs/papers.md §2: not stated). Our defaults, for 224-227 px inputs:
a 48-pixel square (about 1/5 of the image, the scale of the objects' parts the figure occludes),
moved 16 pixels at a time (a 13x13 map at 227 px, finer than size/2 for smoother maps), filled
with 0.5 grey (mid
grey of [0, 1] pixels; the ImageNet mean pixel is close to it). The model is the pretrained
SqueezeNet 1.1, a ReLU + max-pool net like the paper's (--config.model=efficientnet_lite0 also
works); "layer 5" of ZFNet is its last conv layer, `fire9` (conv5 for AlexNets, head for
EfficientNet-Lite0). Without true labels (skimage photos) the "correct" class is the one
predicted on the unoccluded image; --config.target=label reads it from ImageNet file names. The
label map (e) comes with a legend naming every label on top somewhere and how often.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("occlusion", None, arg)
  del config.targets, config.spatial, config.unit_chunk
  config.target = "predicted"     # the "correct class": predicted | label | class:N
  config.size = 48                # occluder side in pixels (not stated in the paper)
  config.stride = 16              # pixels between positions (not stated)
  config.fill = "0.5"             # grey level, or r,g,b in [0, 1] (not stated: "grey square")
  config.feature_layer = ""       # Fig. 7(b): "layer 5": "" = the last conv map; "none" = skip
  config.chunk = 32               # occluded images per forward pass (memory bound)
  if arg == "smoke":
    config.size, config.stride, config.chunk = 8, 4, 16
  return config


def get_sweep():
  """Occluder sizes from fine to coarse, at stride size / 3."""
  return [{"size": size, "stride": max(size // 3, 1)} for size in (24, 32, 48, 64, 96)]
