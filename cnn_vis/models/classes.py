"""Class names of the datasets the registered models are trained on, and ImageNet's wnids."""
import functools
import importlib.resources
import re

from cnn_vis.errors import check

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                 "Bag", "Ankle boot")


@functools.cache
def _imagenet_rows() -> tuple[tuple[str, str], ...]:
  """(wnid, name) of the 1,000 ILSVRC-2012 classes, indexed as torchvision and Keras number them
  (the wnids in sorted order)."""
  text = importlib.resources.files("cnn_vis").joinpath("assets/imagenet_classes.tsv").read_text()
  rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
  return tuple((wnid, name) for _, wnid, name in rows)


def imagenet() -> tuple[str, ...]:
  return tuple(name for _, name in _imagenet_rows())


@functools.cache
def _wnid_index() -> dict[str, int]:
  return {wnid: i for i, (wnid, _) in enumerate(_imagenet_rows())}


def names(dataset: str) -> tuple[str, ...]:
  return {"imagenet": imagenet, "cifar10": lambda: CIFAR10,
          "fashion_mnist": lambda: FASHION_MNIST}[dataset]()


def image_labels(file_names, dataset: str) -> list[int]:
  """Each image's class from its file name (ImageNet's `<wnid>_...` names): the target `label`."""
  check(dataset == "imagenet", f"target label needs an ImageNet model (labels come from ImageNet "
                               f"file names); this model is trained on {dataset}")
  return [imagenet_label(name) for name in file_names]


def imagenet_label(file_name: str) -> int:
  """The class index of an ImageNet file named `<wnid>_...` (e.g. n01440764_tench.JPEG)."""
  match = re.match(r"(n\d{8})", file_name)
  check(bool(match) and match[1] in _wnid_index(),
        f"image {file_name!r} does not start with an ImageNet wnid (n01440764_...), so it has "
        "no label")
  return _wnid_index()[match[1]]
