"""The datasets cnn_vis.data reads, and what is known about each once prepared."""
import dataclasses
from typing import Mapping

DATASETS = ("cifar10", "cifar10_jpeg", "fashion_mnist", "image_folder", "imagenet2012")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model and a training loop need to know about a dataset."""
  num_classes: int
  num_examples: Mapping[str, int]  # split name -> number of examples
  image_size: int  # the side of the square images `load` yields (without image_size=)
  class_names: tuple[str, ...]
