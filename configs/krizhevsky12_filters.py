"""First-layer filters as images (Krizhevsky et al. 2012, Fig. 3: "96 convolutional kernels of size
11x11x3 learned by the first convolutional layer ... The top 48 kernels were learned on GPU 1
while the bottom 48 kernels were learned on GPU 2"; docs/papers.md §1).

  python -m cnn_vis.main --config=configs/krizhevsky12_filters.py --workdir=runs/filters
  python -m cnn_vis.main --config=configs/krizhevsky12_filters.py:cifar \
      --config.checkpoint=runs/alexnet_cifar10 --workdir=runs/filters_cifar
  python -m cnn_vis.main --config=configs/krizhevsky12_filters.py:imagenet \
      --config.checkpoint=runs/alexnet_imagenet --workdir=runs/filters_alexnet

Default: SqueezeNet v1.1's 64 3x3 conv1 filters (Caffe ImageNet weights) and, below them, its
fire2 3x3 expand filters as means over their 16 inputs. `:imagenet`: the paper's two-group
AlexNet (groups=2: filters 0-47 above 48-95; --config.model_kwargs.groups=1 for one stream).
Contrast: each filter stretched on its own (min -> black, max -> white over its pixels and
colours; the paper does not say how it scaled them), or `global` / `symmetric`.
"""
from configs import _views


def get_config(arg=None):
  config = _views.view_config("filters", arg, model="squeezenet1_1")
  config.layer = ""              # "": the model's first layer (conv1, stem, conv1_1)
  config.deeper_layer = "auto"   # its mean-over-inputs grid; auto: the next layer with a k>1 kernel
  config.groups = 0              # 0: auto (AlexNet's groups, else 1)
  config.normalization = "per_filter"  # per_filter | global | symmetric
  config.zoom = 0                # pixels per weight (0: about 40 px per filter)
  config.ncols = 16              # Fig. 3: 16 filters per row
  if arg == "smoke":
    config.ncols = 4
  return config


def get_sweep():
  """Each contrast normalisation."""
  return [{"normalization": n} for n in ("per_filter", "global", "symmetric")]
