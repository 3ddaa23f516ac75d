"""Nearest-neighbour retrieval by CNN codes (Krizhevsky et al. 2012, §6.1 and Fig. 4 right: "Five
ILSVRC-2010 test images in the first column. The remaining columns show the six training images
that produce feature vectors in the last hidden layer with the smallest Euclidean distance from
the feature vector for the test image"; docs/papers.md §1).

  python -m cnn_vis.main --config=configs/krizhevsky12_neighbours.py --workdir=runs/neighbours
  python -m cnn_vis.main --config=configs/krizhevsky12_neighbours.py:cifar \
      --config.checkpoint=runs/alexnet_cifar10 --workdir=runs/neighbours_cifar
  python -m cnn_vis.main --config=configs/krizhevsky12_neighbours.py:imagenet \
      --config.checkpoint=runs/alexnet_imagenet --workdir=runs/neighbours_imagenet

Default: EfficientNet-Lite0's pooled codes; four scikit-image photos as queries against the 100
ImageNet samples. `:cifar`: five CIFAR-10 test images against the 50,000 training images (fc7).
`:imagenet`: five validation images against the 1.28 M training images (fc7, 4096-d), on an
accelerator; the codes are not kept (save_codes False), only each query's running top 6.
"""
from configs import karpathy14_tsne


def get_config(arg=None):
  config = karpathy14_tsne.get_config(arg)
  config.tsne = False
  config.neighbours = 6          # Fig. 4: six training images per query
  if arg is None:
    config.queries = "skimage:chelsea,skimage:coffee,skimage:astronaut,skimage:rocket"
  elif arg == "cifar":
    config.split, config.query_split = "train", "test[:5]"
  elif arg == "imagenet":
    config.split, config.query_split = "train", "validation[:5]"
    config.save_codes = False    # 1.28 M x 4096 floats = 21 GB
  else:  # smoke: the photos against themselves
    config.queries = "skimage:chelsea,skimage:coffee"
    config.neighbours = 3
  return config


def get_sweep():
  """Codes of earlier layers of the default model (EfficientNet-Lite0: the pooled codes, the head
  and the last block, flattened); with `:cifar` or `:imagenet` sweep fc7 / fc6 / pool5 instead
  (`--config.layer=`)."""
  return [{"layer": layer} for layer in ("pool", "head", "block16")]
