"""Where each dataset comes from: a tfds builder, prepared once offline under the cache.

This machine (and CI) has no internet, so nothing here downloads:
- imagenet2012: tfds's builder, prepared from ILSVRC2012_img_{train,val}.tar in manual_dir.
- cifar10: tfds's builder when already prepared in data_dir, or prepared from the original
  cifar-10-binary.tar.gz placed in manual_dir (tfds checks its checksum).
- cifar10_jpeg: the shared CIFAR-10 JPEG archive (<repo>/../shared/data/cifar10-jpeg.tar.gz, or
  manual_dir) read by a small tfds builder straight from the tar.gz into TFRecords (JPEG bytes
  stored as they are). The same as extracting it and reading it with tfds's ImageFolder, without
  writing 60,000 small files (4 s to 50 s of file-system time here, depending on load; preparing
  takes ~10 s of CPU), and with tfds's split slicing and host sharding.
- fashion_mnist: tfds's builder, fed Debian's dataset-fashion-mnist files. Debian re-gzipped
  them (no file name in the gzip header), so their checksums differ from upstream's while the
  decompressed bytes are the same; a subclass hands tfds the local files instead of URLs and the
  result is stored as the ordinary tfds `fashion_mnist` dataset.
- image_folder: any manual_dir laid out split/class/*.jpg, read with tfds's ImageFolder.

Preparation runs under a file lock and is atomic (tfds prepares into a temporary folder and
renames it when complete), so parallel test workers or an interrupted run never see
half-prepared data.
"""
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import os
import posixpath
import tempfile
from pathlib import Path

import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from cnn_vis.errors import UserError, check

REPO = Path(__file__).resolve().parents[2]
CIFAR10_JPEG_ARCHIVE = "cifar10-jpeg.tar.gz"
SHARED_CIFAR10_JPEG = REPO.parent / "shared" / "data" / CIFAR10_JPEG_ARCHIVE
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR10_BINARY_ARCHIVE = "cifar-10-binary.tar.gz"  # the file tfds's cifar10 downloads
IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
# The label order of the CIFAR-10 binary release (batches.meta.txt); alphabetical, so ImageFolder's
# sorted folder names give the same label ids.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
# Shuffle buffers hold encoded images: whole splits of the small datasets, ~1 GB of ImageNet JPEGs.
SMALL_SHUFFLE_BUFFER = 60_000
LARGE_SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True)
class Source:
  """A prepared dataset and how to turn its stored images into the models' format."""
  builder: tfds.core.DatasetBuilder
  channels: int  # channels to decode; 1 (grayscale) is repeated to RGB by the pipeline
  image_size: int  # side of the square images yielded by default
  pad: int = 0  # zero border added on each side after decoding (Fashion-MNIST 28 -> 32)
  folder: bool = False  # a tfds ImageFolder: reads image files, cannot slice splits itself
  shuffle_buffer: int = SMALL_SHUFFLE_BUFFER


def cache_root() -> Path:
  """$CNN_VIS_CACHE (default ~/.cache/cnn_vis)."""
  return Path(os.environ.get("CNN_VIS_CACHE", "~/.cache/cnn_vis")).expanduser()


def get(name: str, data_dir=None, manual_dir=None) -> Source:
  """The prepared source of dataset `name`; data_dir defaults to $CNN_VIS_CACHE/tfds."""
  data_dir = Path(data_dir or cache_root() / "tfds").expanduser().resolve()
  manual_dir = Path(manual_dir).expanduser().resolve() if manual_dir else None
  return _get(name, data_dir, manual_dir)


@functools.lru_cache(maxsize=16)
def _get(name: str, data_dir: Path, manual_dir: Path | None) -> Source:
  if name == "imagenet2012":
    # Paper §2: images rescaled (shorter side) to 256 and centre-cropped to 256x256.
    builder = _tfds_builder(name, data_dir, functools.partial(
        _prepare_from_manual, name, data_dir, manual_dir or data_dir / "downloads" / "manual",
        IMAGENET_TARS))
    return Source(builder, channels=3, image_size=256, shuffle_buffer=LARGE_SHUFFLE_BUFFER)
  if name == "cifar10":
    builder = _tfds_builder(name, data_dir, functools.partial(
        _prepare_from_manual, name, data_dir, manual_dir or data_dir / "downloads" / "manual",
        (CIFAR10_BINARY_ARCHIVE,), hint="; without internet use dataset cifar10_jpeg"))
    return Source(builder, channels=3, image_size=32)
  if name == "fashion_mnist":
    builder = _tfds_builder(name, data_dir, functools.partial(
        _prepare_fashion_mnist, data_dir, manual_dir or DEBIAN_FASHION_MNIST))
    return Source(builder, channels=1, image_size=32, pad=2)
  if name == "cifar10_jpeg":
    return Source(_cifar10_jpeg(data_dir, _cifar10_jpeg_archive(manual_dir)), channels=3,
                  image_size=32)
  if name == "image_folder":
    check(manual_dir is not None, "dataset image_folder needs manual_dir=<folder laid out "
                                  "split/class/*.jpg>")
    check(manual_dir.is_dir(), f"image_folder manual_dir {str(manual_dir)!r} is not a directory")
    builder = tfds.folder_dataset.ImageFolder(str(manual_dir))
    size = min(_first_image_size(manual_dir))
    return Source(builder, channels=3, image_size=size, folder=True,
                  shuffle_buffer=LARGE_SHUFFLE_BUFFER)
  raise UserError(f"unknown dataset {name!r}")  # cnn_vis.data checks names first


@contextlib.contextmanager
def _lock(path: Path):
  """An exclusive lock on `path` across processes (released when the file closes)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "a", encoding="utf-8") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    yield


def _tfds_builder(name: str, data_dir: Path, prepare) -> tfds.core.DatasetBuilder:
  """tfds's builder `name` in data_dir, calling prepare() first if it is not prepared yet."""
  builder = tfds.builder(name, data_dir=str(data_dir))
  if builder.is_prepared():
    return builder
  with _lock(data_dir / f".{name}.lock"):
    if not tfds.builder(name, data_dir=str(data_dir)).is_prepared():  # others may have, meanwhile
      prepare()
  return tfds.builder(name, data_dir=str(data_dir))


def _missing(directory: Path, files) -> list[str]:
  return [f for f in files if not (directory / f).is_file()]


def _prepare_from_manual(name: str, data_dir: Path, manual_dir: Path, files, hint: str = ""):
  """tfds's own download_and_prepare, reading `files` from manual_dir (no download)."""
  missing = _missing(manual_dir, files)
  check(not missing, f"dataset {name} is not prepared in {data_dir} and manual_dir {manual_dir} "
                     f"lacks {', '.join(missing)} (expected: {', '.join(files)}){hint}")
  builder = tfds.builder(name, data_dir=str(data_dir))
  with tempfile.TemporaryDirectory(dir=data_dir, prefix=".downloads-") as downloads:
    builder.download_and_prepare(
        download_dir=downloads, download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))


class _DebianFashionMnist(tfds_mnist.FashionMNIST, skip_registration=True):
  """tfds's fashion_mnist builder reading the four idx files from manual_dir, not the web."""
  name = "fashion_mnist"  # prepares the ordinary tfds dataset, read back by tfds.builder()
  MANUAL_DOWNLOAD_INSTRUCTIONS = "apt-get install -y dataset-fashion-mnist"

  def _split_generators(self, dl_manager):
    return super()._split_generators(_ManualFiles(dl_manager))


class _ManualFiles:
  """Stands in for a DownloadManager: each URL maps to the same-named file in manual_dir,
  decompressed by tfds's own extractor."""

  def __init__(self, dl_manager):
    self._dl_manager = dl_manager

  def download_and_extract(self, urls: dict) -> dict:
    manual = self._dl_manager.manual_dir
    return self._dl_manager.extract(
        {key: manual / posixpath.basename(url) for key, url in urls.items()})


def _prepare_fashion_mnist(data_dir: Path, files_dir: Path):
  missing = _missing(files_dir, FASHION_MNIST_FILES)
  check(not missing, f"fashion_mnist needs {', '.join(missing)} in {files_dir}: install Debian's "
                     f"package with `apt-get install -y dataset-fashion-mnist` (or set manual_dir "
                     f"to a folder holding {', '.join(FASHION_MNIST_FILES)})")
  builder = _DebianFashionMnist(data_dir=str(data_dir))
  with tempfile.TemporaryDirectory(dir=data_dir, prefix=".downloads-") as downloads:
    builder.download_and_prepare(
        download_dir=downloads, download_config=tfds.download.DownloadConfig(manual_dir=files_dir))


def _cifar10_jpeg_archive(manual_dir: Path | None) -> Path:
  """The archive: manual_dir itself if a file, else manual_dir/cifar10-jpeg.tar.gz, else shared/."""
  if manual_dir is None:
    archive = SHARED_CIFAR10_JPEG
  else:
    archive = manual_dir if manual_dir.is_file() else manual_dir / CIFAR10_JPEG_ARCHIVE
  check(archive.is_file(), f"CIFAR-10 JPEG archive {str(archive)!r} not found; set manual_dir to "
                           f"{CIFAR10_JPEG_ARCHIVE} or the folder holding it")
  return archive


class _Cifar10Jpeg(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """CIFAR-10 from a tar.gz of train/<class>/*.jpg and test/<class>/*.jpg; JPEGs kept as is."""
  name = "cifar10_jpeg"
  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, archive: Path, archive_sha256: str, **kwargs):
    self._archive, self._archive_sha256 = archive, archive_sha256
    super().__init__(**kwargs)

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="CIFAR-10 (Krizhevsky 2009) re-encoded as JPEG, 50,000 train / 10,000 test.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(32, 32, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=CIFAR10_CLASSES),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        metadata=tfds.core.MetadataDict(archive_sha256=self._archive_sha256))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(dl_manager.iter_archive(self._archive), split)
            for split in ("train", "test")}

  def _generate_examples(self, archive, split: str):
    for path, file in archive:
      parts = path.split("/")
      if len(parts) == 3 and parts[0] == split:
        check(parts[1] in CIFAR10_CLASSES, f"{self._archive}: {path} is not in a CIFAR-10 class "
                                           f"folder ({', '.join(CIFAR10_CLASSES)})")
        yield path, {"image": file.read(), "label": parts[1], "file_name": path}


def _cifar10_jpeg(data_dir: Path, archive: Path) -> tfds.core.DatasetBuilder:
  """The prepared cifar10_jpeg builder; refuses data prepared from a different archive."""
  digest = hashlib.sha256()
  with open(archive, "rb") as handle:
    for block in iter(lambda: handle.read(1 << 20), b""):
      digest.update(block)
  digest = digest.hexdigest()
  make = functools.partial(_Cifar10Jpeg, archive=archive, archive_sha256=digest,
                           data_dir=str(data_dir))
  if not make().is_prepared():
    with _lock(data_dir / ".cifar10_jpeg.lock"):
      if not make().is_prepared():
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".downloads-") as downloads:
          make().download_and_prepare(download_dir=downloads)
  builder = make()
  prepared_from = builder.info.metadata["archive_sha256"]
  check(prepared_from == digest, f"{builder.data_dir} was prepared from another archive (sha256 "
                                 f"{prepared_from[:12]}..., not {archive}'s {digest[:12]}...); "
                                 f"delete it or set CNN_VIS_CACHE elsewhere")
  return builder


def _first_image_size(root: Path) -> tuple[int, int]:
  """(width, height) of the first image of the first class of the first split under root."""
  for split in sorted(p for p in root.iterdir() if p.is_dir()):
    for label in sorted(p for p in split.iterdir() if p.is_dir()):
      for path in sorted(label.iterdir()):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
          with Image.open(path) as image:
            return image.size
  raise UserError(f"image_folder {str(root)!r} holds no split/class/*.jpg|jpeg|png images")
