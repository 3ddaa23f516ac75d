"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014, §3.1, Fig. 2).

  python -m cnn_vis.main --config=configs/simonyan14_saliency.py --workdir=runs/saliency
  python -m cnn_vis.main --config=configs/simonyan14_saliency.py \
      --config.images=../shared/data/imagenet-samples --config.targets=label --workdir=runs/sal100

w = dS_c/dI at the image, one back-propagation pass; M_ij = max_c |w_h(i,j,c)|, shown in grey as in
Fig. 2. S_c is the unnormalised class score (the logits, before the softmax), for the top-1
predicted class; the map is clipped at its 99th percentile (cnn_vis/report/images.py) and shown
with a colour bar. The paper's net (§2: conv64-conv256-conv256-conv256-conv256-fc4096-fc4096-
fc1000) has no public weights, so the default is the pretrained SqueezeNet 1.1, the ReLU +
max-pool net CS231n computes its saliency maps with (docs/papers.md §12); any registered model or
a trained checkpoint works (--config.model=efficientnet_lite0, --config.checkpoint=...).
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "saliency", arg)
  config.targets = "predicted"   # §3: "the top-1 predicted class"
  return config


def get_sweep():
  """The same maps from each ImageNet model with published weights."""
  return [{"model": name} for name in ("squeezenet1_1", "efficientnet_lite0", "alexnet_torchvision",
                                       "vgg16")]
