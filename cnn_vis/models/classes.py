"""Class names of the datasets the registered models are trained on."""
import functools
import importlib.resources

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                 "Bag", "Ankle boot")


@functools.cache
def imagenet() -> tuple[str, ...]:
  """The 1,000 ILSVRC-2012 class names, indexed as torchvision and Keras number them."""
  text = importlib.resources.files("cnn_vis").joinpath("assets/imagenet_classes.tsv").read_text()
  rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
  return tuple(name for _, _, name in rows)


def names(dataset: str) -> tuple[str, ...]:
  return {"imagenet": imagenet, "cifar10": lambda: CIFAR10,
          "fashion_mnist": lambda: FASHION_MNIST}[dataset]()
