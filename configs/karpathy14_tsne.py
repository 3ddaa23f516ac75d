"""A t-SNE map of CNN codes (Karpathy's "t-SNE visualization of CNN codes", docs/papers.md §10;
van der Maaten & Hinton 2008, §19): the images at their embedded positions and snapped to a grid.

  python -m cnn_vis.main --config=configs/karpathy14_tsne.py --workdir=runs/tsne
  python -m cnn_vis.main --config=configs/karpathy14_tsne.py:cifar \
      --config.checkpoint=runs/alexnet_cifar10 --workdir=runs/tsne_cifar
  python -m cnn_vis.main --config=configs/karpathy14_tsne.py:imagenet \
      --config.checkpoint=runs/alexnet_imagenet --workdir=runs/tsne_imagenet   # accelerators

Karpathy embedded the 4096-d Caffe fc7 codes of the 50,000 ILSVRC-2012 validation images with
Barnes-Hut t-SNE and states no other setting; here: PCA to 50 dimensions and perplexity 30 (the
author's tsne.py), PCA initialisation, openTSNE's optimiser (250 early-exaggeration iterations,
then 500). Default: EfficientNet-Lite0's 1280-d pooled codes (its last hidden layer) of the 100
ImageNet samples (perplexity 30 needs more than 91 images). `:cifar`: the fc7 codes of the 10,000
CIFAR-10 test images. summary.json reports the map's trustworthiness and 10-NN label accuracy in
2-D beside the same accuracy on the codes.
"""
from configs import _views


def get_config(arg=None):
  config = _views.view_config("embedding", arg, model="efficientnet_lite0")
  config.layer = ""             # "": the model's last hidden layer (fc7, pool, ...)
  config.tsne = True
  config.perplexity = 30.0      # the author's tsne.py (Karpathy: not stated)
  config.pca_dims = 50          # the author's tsne.py: PCA to 50 dimensions first
  config.tsne_iterations = 500  # after openTSNE's 250 early-exaggeration iterations
  config.metric_neighbours = 10  # trustworthiness and k-NN accuracy
  config.thumb = 32             # pixels per image in the pictures
  config.canvas = 2000          # side of the placed-images picture (Karpathy: 1000-6000)
  config.grid_points = 1024     # images snapped to the grid (a random subset; 0: all)
  config.exact_limit = 2048     # above: rows sorted instead of the optimal assignment
  config.save_codes = True
  # Nearest neighbours (configs/krizhevsky12_neighbours.py): queries as images or a split.
  config.queries = ""
  config.query_split = ""
  config.neighbours = 6
  config.tile = 64
  if arg == "cifar":
    config.canvas = 3200
  elif arg == "smoke":
    config.perplexity = 1.5
    config.tsne_iterations = 50
    config.canvas = 128
    config.thumb = 16
  return config


def get_sweep():
  """The perplexities t-SNE is usually run at (van der Maaten & Hinton: 5 to 50)."""
  return [{"perplexity": p} for p in (5.0, 15.0, 30.0, 50.0)]
