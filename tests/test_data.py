"""Input pipelines on real data (shared CIFAR-10 JPEGs, Debian's Fashion-MNIST) and on small
folders and archives written here; augmentation against hand-computed geometry and statistics.

The real datasets are prepared once per machine into the default cache ($CNN_VIS_CACHE or
~/.cache/cnn_vis; ~10 s each the first time); the preparation code itself is exercised on small
archives in a temporary cache.
"""
import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from cnn_vis import data
from cnn_vis.data import augment
from cnn_vis.errors import UserError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# The label order of the CIFAR-10 release (batches.meta.txt).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")


def _eval_examples(name, split, batch_size, **kwargs):
  """All real examples of one eval pass, the batches and the masks, as numpy arrays."""
  batches = list(data.load(name, split, batch_size=batch_size, train=False, **kwargs))
  mask = np.concatenate([b["mask"] for b in batches])
  images = np.concatenate([b["image"] for b in batches])
  labels = np.concatenate([b["label"] for b in batches])
  return images[mask], labels[mask], batches


def _keys(images, labels) -> Counter:
  """Multiset of examples (content hashes), for exact coverage checks."""
  return Counter(hashlib.sha1(im.tobytes() + bytes([int(lb)])).hexdigest()
                 for im, lb in zip(images, labels))


def _write_image(path: Path, array: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array.astype(np.uint8)).save(path)


# ---- package-level behaviour ------------------------------------------------------------------

def test_importing_the_package_does_not_import_tensorflow():
  code = ("import sys, cnn_vis.data, cnn_vis.data.augment; "
          "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
  assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_unknown_dataset_lists_known_ones():
  with pytest.raises(UserError, match="unknown dataset 'mnist'.*cifar10_jpeg.*fashion_mnist"):
    data.load("mnist", "train", batch_size=8, train=True)
  with pytest.raises(UserError, match="unknown dataset"):
    data.info("cifar11")


def test_imagenet_without_manual_files_names_dir_and_files(tmp_path):
  manual = tmp_path / "ilsvrc"
  with pytest.raises(UserError, match=f"{manual}.*ILSVRC2012_img_train.tar.*ILSVRC2012_img_val"):
    data.info("imagenet2012", data_dir=tmp_path / "tfds", manual_dir=manual)


def test_cifar10_not_prepared_points_to_cifar10_jpeg(tmp_path):
  with pytest.raises(UserError, match="cifar-10-binary.tar.gz.*cifar10_jpeg"):
    data.info("cifar10", data_dir=tmp_path / "tfds", manual_dir=tmp_path)


# ---- cifar10_jpeg on the shared archive ---------------------------------------------------------

@pytest.fixture(scope="session")
def cifar_archive(shared_dir) -> Path:
  archive = shared_dir / "data" / "cifar10-jpeg.tar.gz"
  assert archive.is_file(), f"missing {archive}"
  return archive


@pytest.fixture(scope="session")
def cifar_info(cifar_archive):
  return data.info("cifar10_jpeg")  # prepares into the default cache once per machine


def test_cifar10_jpeg_info(cifar_info):
  assert cifar_info.num_examples == {"train": 50000, "test": 10000}
  assert cifar_info.class_names == CIFAR10_CLASSES
  assert cifar_info.num_classes == 10 and cifar_info.image_size == 32


def test_cifar10_jpeg_images_and_labels_match_the_archive(cifar_info, cifar_archive):
  from cnn_vis.data import sources  # pylint: disable=import-outside-toplevel
  n = 48
  images, labels, _ = _eval_examples("cifar10_jpeg", f"test[:{n}]", 16)
  # The same examples through tfds, with their file names: the folder is the label.
  builder = sources.get("cifar10_jpeg").builder
  names = [ex["file_name"].decode() for ex in
           builder.as_dataset(split=f"test[:{n}]").as_numpy_iterator()]
  assert [cifar_info.class_names[lb] for lb in labels] == [p.split("/")[1] for p in names]
  with tarfile.open(cifar_archive) as tar:
    wanted = set(names)
    files = {m.name: tar.extractfile(m).read() for m in tar if m.name in wanted}
  for image, name in zip(images, names):
    expected = np.asarray(Image.open(io.BytesIO(files[name])).convert("RGB"), np.float32) / 255
    assert image.shape == (32, 32, 3) and image.dtype == np.float32
    assert np.abs(image - expected).max() <= 1 / 255, name  # TF and PIL decode alike


def test_cifar10_jpeg_training_batches_are_deterministic_and_reshuffled(cifar_info):
  def first(seed, k):
    batches = data.load("cifar10_jpeg", "train[:256]", batch_size=128, train=True, seed=seed)
    return [next(batches) for _ in range(k)]

  a, b, c = first(0, 4), first(0, 4), first(1, 1)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  assert not np.array_equal(a[0]["image"], c[0]["image"])
  assert set(a[0]) == {"image", "label"} and a[0]["label"].dtype == np.int32
  assert a[0]["image"].min() >= 0 and a[0]["image"].max() <= 1
  # Two epochs of 256: the same examples, in a new order.
  epoch1 = np.concatenate([a[0]["image"], a[1]["image"]])
  epoch2 = np.concatenate([a[2]["image"], a[3]["image"]])
  labels1 = np.concatenate([a[0]["label"], a[1]["label"]])
  labels2 = np.concatenate([a[2]["label"], a[3]["label"]])
  assert _keys(epoch1, labels1) == _keys(epoch2, labels2)
  assert not np.array_equal(epoch1, epoch2)


def test_cifar10_jpeg_host_shards_are_disjoint_and_cover_the_split(cifar_info):
  split, n, global_batch = "test[:97]", 97, 24  # shards of 33, 32, 32: 5, 4, 4 batches of 8
  everything, all_labels, _ = _eval_examples("cifar10_jpeg", split, global_batch)
  assert len(everything) == n
  union, counts = Counter(), []
  for index in range(3):
    images, labels, batches = _eval_examples("cifar10_jpeg", split, global_batch,
                                             process_index=index, process_count=3)
    assert all(b["image"].shape == (8, 32, 32, 3) for b in batches)  # 24 / 3 hosts
    counts.append(len(batches))
    union += _keys(images, labels)
  assert union == _keys(everything, all_labels)  # each example exactly once
  assert len(set(counts)) == 1  # hosts run the same number of eval steps


def test_batch_size_must_divide_across_hosts(cifar_info):
  with pytest.raises(UserError, match="batch_size 10 .* process count 3"):
    data.load("cifar10_jpeg", "test", batch_size=10, train=True, process_index=0, process_count=3)


def test_bad_split_is_a_user_error(cifar_info):
  with pytest.raises(UserError, match="bad split 'validation'.*train, test"):
    data.load("cifar10_jpeg", "validation", batch_size=8, train=False)
  with pytest.raises(UserError, match="bad split 'validation'.*train, test"):
    data.num_examples("cifar10_jpeg", "validation")


def test_num_examples_of_whole_and_sliced_splits(cifar_info):
  assert data.num_examples("cifar10_jpeg", "test") == cifar_info.num_examples["test"]
  assert data.num_examples("cifar10_jpeg", "train[:10%]") == cifar_info.num_examples["train"] // 10
  assert data.num_examples("cifar10_jpeg", "test[:97]+test[-3:]") == 100


# ---- cifar10_jpeg preparation from an archive, in a temporary cache ----------------------------

def _cifar_like_archive(path: Path, per_class: int, shade: int = 0) -> Path:
  """A tar.gz of train|test/<CIFAR class>/*.jpg; each class's images are one flat grey level."""
  root = path.with_suffix(".src")
  for split, count in (("train", per_class), ("test", 1)):
    for k, name in enumerate(CIFAR10_CLASSES):
      for i in range(count):
        _write_image(root / split / name / f"{i:04d}.jpg", np.full((32, 32, 3), 20 * k + shade))
  with tarfile.open(path, "w:gz") as tar:
    for split in ("train", "test"):
      tar.add(root / split, arcname=split)
  return path


def test_cifar10_jpeg_prepares_once_from_a_given_archive(tmp_path, monkeypatch):
  from cnn_vis.data import sources  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("CNN_VIS_CACHE", str(tmp_path / "cache"))
  archive = _cifar_like_archive(tmp_path / "cifar10-jpeg.tar.gz", per_class=2)
  got = data.info("cifar10_jpeg", manual_dir=archive)
  assert got.num_examples == {"train": 20, "test": 10}
  prepared = tmp_path / "cache" / "tfds" / "cifar10_jpeg" / "1.0.0"
  stamp = (prepared / "dataset_info.json").stat().st_mtime_ns
  # manual_dir may be the archive or its folder.
  images, labels, _ = _eval_examples("cifar10_jpeg", "train", 8, manual_dir=tmp_path)
  assert len(images) == 20 and Counter(labels.tolist()) == {k: 2 for k in range(10)}
  # The folder is the label: class k was written with grey level 20 k.
  np.testing.assert_allclose(images.mean(axis=(1, 2, 3)) * 255, 20 * labels, atol=2)
  sources._get.cache_clear()  # pylint: disable=protected-access
  data.info("cifar10_jpeg", manual_dir=archive)
  assert (prepared / "dataset_info.json").stat().st_mtime_ns == stamp  # not prepared again
  other = _cifar_like_archive(tmp_path / "other.tar.gz", per_class=1, shade=5)
  with pytest.raises(UserError, match="prepared from another archive"):
    data.info("cifar10_jpeg", manual_dir=other)
  with pytest.raises(UserError, match="CIFAR-10 JPEG archive .* not found"):
    data.info("cifar10_jpeg", manual_dir=tmp_path / "nowhere")


# ---- the real tfds cifar10 builder, on a tiny dataset in its binary format ----------------------

def test_cifar10_reads_a_prepared_tfds_cifar10(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  batches = tmp_path / "extracted" / "cifar-10-batches-bin"
  batches.mkdir(parents=True)
  (batches / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n")
  written = {}
  for file in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    labels = rng.integers(0, 10, 2).astype(np.uint8)
    pixels = rng.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8)  # CHW, as the binary release
    records = np.concatenate([labels[:, None], pixels.reshape(2, -1)], axis=1)
    (batches / file).write_bytes(records.tobytes())
    written[file] = (pixels.transpose(0, 2, 3, 1), labels)
  # tfds's own cifar10 builder prepares it; only the download is replaced by our folder.
  monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract",
                      lambda self, url: tmp_path / "extracted")
  tfds.builder("cifar10", data_dir=str(tmp_path / "tfds")).download_and_prepare()
  got = data.info("cifar10", data_dir=tmp_path / "tfds")
  assert got.num_examples == {"train": 10, "test": 2} and got.class_names[0] == "airplane"
  images, labels, _ = _eval_examples("cifar10", "test", 4, data_dir=tmp_path / "tfds")
  expected_images, expected_labels = written["test_batch.bin"]
  assert _keys(np.round(images * 255).astype(np.uint8), labels) == _keys(expected_images,
                                                                         expected_labels)


# ---- fashion_mnist from Debian's files ----------------------------------------------------------

@pytest.fixture(scope="session")
def fashion_files():
  missing = [f for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                         "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
             if not (FASHION_DIR / f).is_file()]
  assert not missing, (f"Debian package dataset-fashion-mnist is not installed ({missing} missing "
                       f"in {FASHION_DIR}): apt-get install -y dataset-fashion-mnist")
  return FASHION_DIR


def _idx(path: Path, offset: int) -> np.ndarray:
  with gzip.open(path) as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def test_fashion_mnist_matches_the_debian_files(fashion_files):
  got = data.info("fashion_mnist")
  assert got.num_examples == {"train": 60000, "test": 10000}
  assert got.num_classes == 10 and got.image_size == 32 and got.class_names[9] == "Ankle boot"
  images, labels, batches = _eval_examples("fashion_mnist", "test", 1000)
  assert len(images) == 10000 and all(b["image"].shape == (1000, 32, 32, 3) for b in batches)
  # Padded 28 -> 32 with zeros, grey repeated to RGB.
  assert np.all(images[:, :2] == 0) and np.all(images[:, -2:] == 0)
  assert np.all(images[:, :, :2] == 0) and np.all(images[:, :, -2:] == 0)
  assert np.array_equal(images[..., 0], images[..., 2])
  # Exact pixels, compared per class with the idx files parsed here (tfds reorders examples).
  raw = _idx(fashion_files / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
  raw_labels = _idx(fashion_files / "t10k-labels-idx1-ubyte.gz", 8)
  ours = np.round(images[:, 2:30, 2:30, 0] * 255).astype(np.uint8)
  assert _keys(ours, labels) == _keys(raw, raw_labels)


# ---- image_folder ----------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path) -> Path:
  """train: 7 cats, 5 dogs; val: 2 + 2; 12x16 or 16x12 PNGs whose grey level is a unique id."""
  root = tmp_path / "folder"
  ident = 0
  for split, counts in (("train", (7, 5)), ("val", (2, 2))):
    for label, count in zip(("cat", "dog"), counts):
      for i in range(count):
        ident += 1
        shape = (12, 16, 3) if i % 2 else (16, 12, 3)
        _write_image(root / split / label / f"{i}.png", np.full(shape, 10 * ident))
  return root


def test_image_folder(folder):
  got = data.info("image_folder", manual_dir=folder)
  assert got.class_names == ("cat", "dog") and got.num_examples == {"train": 12, "val": 4}
  assert got.image_size == 12  # shorter side of the first image
  images, labels, _ = _eval_examples("image_folder", "train", 5, manual_dir=folder)
  assert images.shape == (12, 12, 12, 3)
  ids = np.round(images.mean(axis=(1, 2, 3)) * 255 / 10).astype(int)
  assert np.allclose(images * 255, 10 * ids[:, None, None, None], atol=0.5)  # flat, resized
  assert sorted(ids.tolist()) == list(range(1, 13))
  assert np.array_equal(labels, (ids > 7).astype(np.int32))  # ids 1-7 are cats
  resized, _, _ = _eval_examples("image_folder", "val", 4, manual_dir=folder, image_size=8)
  assert resized.shape == (4, 8, 8, 3)


def test_image_folder_host_shards_and_slices(folder):
  everything, all_labels, _ = _eval_examples("image_folder", "train", 4, manual_dir=folder)
  union = Counter()
  for index in range(2):
    images, labels, batches = _eval_examples("image_folder", "train", 4, manual_dir=folder,
                                             process_index=index, process_count=2)
    assert len(images) == 6 and len(batches) == 3  # 6 examples per host, batches of 2
    union += _keys(images, labels)
  assert union == _keys(everything, all_labels)
  head, _, _ = _eval_examples("image_folder", "train[:5]", 4, manual_dir=folder)
  tail, _, _ = _eval_examples("image_folder", "train[5:]", 4, manual_dir=folder)
  np.testing.assert_array_equal(np.concatenate([head, tail]), everything)


def test_eval_mask_pads_the_last_batch(folder):
  _, _, batches = _eval_examples("image_folder", "train", 5, manual_dir=folder)
  masks = [b["mask"].tolist() for b in batches]
  assert masks == [[True] * 5, [True] * 5, [True, True, False, False, False]]
  assert np.all(batches[-1]["image"][2:] == 0)


def test_image_folder_needs_a_folder(tmp_path):
  with pytest.raises(UserError, match="image_folder needs manual_dir"):
    data.info("image_folder")
  with pytest.raises(UserError, match="not a directory"):
    data.info("image_folder", manual_dir=tmp_path / "missing")


# ---- augmentation -------------------------------------------------------------------------------

def _coordinates(n, height, width, offset=0):
  """Images whose channel 0 is y + offset, channel 1 is x + offset, channel 2 the image index."""
  y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  base = np.stack([y + offset, x + offset, np.zeros_like(y)], -1).astype(np.float32)
  images = np.repeat(base[None], n, axis=0)
  images[..., 2] = np.arange(n)[:, None, None]
  return images


def test_ten_crops_corners_centre_and_flips():
  images = _coordinates(2, 10, 13)
  crops = np.asarray(augment.ten_crops(images, 6))
  assert crops.shape == (10, 2, 6, 6, 3)
  # Hand-computed top-left corners of a 6x6 crop in 10x13: TL, TR, BL, BR, centre.
  corners = [(0, 0), (0, 7), (4, 0), (4, 7), (2, 3)]
  for k, (top, left) in enumerate(corners):
    assert crops[k, :, 0, 0, 0].tolist() == [top, top] and crops[k, 0, 0, 0, 1] == left
    assert crops[k, 0, 5, 5, :2].tolist() == [top + 5, left + 5]
    np.testing.assert_array_equal(crops[5 + k], crops[k][:, :, ::-1])  # the flipped five
  np.testing.assert_array_equal(augment.center_crop(images, 6), crops[4])
  np.testing.assert_array_equal(crops[:, 1, ..., 2], 1)  # images stay apart


def test_random_crop_flip_is_a_padded_window_within_bounds_and_deterministic():
  n, size, pad = 600, 8, 3
  images = _coordinates(n, size, size, offset=1)  # coordinates + 1, so 0 marks padding
  key = jax.random.PRNGKey(0)
  out = np.asarray(augment.random_crop_flip(key, images, size, pad=pad))
  np.testing.assert_array_equal(out, augment.random_crop_flip(key, images, size, pad=pad))
  assert not np.array_equal(out, augment.random_crop_flip(jax.random.PRNGKey(1), images, size,
                                                          pad=pad))
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  seen, flips = set(), 0
  for i in range(n):
    # Read the window's position off one image pixel, then check the whole output is that window.
    row, col = np.argwhere(out[i, ..., 0] > 0)[0]
    xs = out[i, row, :, 1][out[i, row, :, 1] > 0]
    flip = bool(xs[0] > xs[-1])
    top = int(out[i, row, col, 0]) - 1 + pad - row
    left = int(out[i, row, col, 1]) - 1 + pad - (size - 1 - col if flip else col)
    assert 0 <= top <= 2 * pad and 0 <= left <= 2 * pad, i
    window = padded[i, top:top + size, left:left + size]
    np.testing.assert_array_equal(out[i], window[:, ::-1] if flip else window)
    seen.add((top, left))
    flips += flip
  assert len(seen) == (2 * pad + 1) ** 2  # every offset occurs
  assert 240 < flips < 360  # p = 1/2


def test_imagenet_pca_constants_are_an_orthonormal_basis():
  vecs = augment.IMAGENET_EIGVEC
  np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=2e-3)
  assert np.all(np.diff(augment.IMAGENET_EIGVAL) < 0)


def test_pca_lighting_basis_equals_numpy_eigh():
  rng = np.random.default_rng(0)
  mixing = np.array([[0.20, 0.00, 0.00], [0.15, 0.08, 0.00], [0.10, 0.05, 0.03]])
  pixels = 0.5 + rng.standard_normal((4000, 3)) @ mixing.T
  images = pixels.reshape(40, 10, 10, 3)
  eigval, eigvec = augment.pca_lighting_basis(images)
  ref_val, ref_vec = np.linalg.eigh(np.cov(pixels, rowvar=False))
  np.testing.assert_allclose(eigval, ref_val[::-1], rtol=1e-4)
  np.testing.assert_allclose(np.abs(np.sum(np.asarray(eigvec) * ref_vec[:, ::-1], axis=0)), 1,
                             atol=1e-4)  # same eigenvectors, up to sign
  # And the sample estimates the covariance the data was drawn with.
  np.testing.assert_allclose(np.asarray(eigvec) @ np.diag(eigval) @ np.asarray(eigvec).T,
                             mixing @ mixing.T, atol=3e-3)


def test_pca_lighting_offsets_have_the_paper_covariance():
  rng = np.random.default_rng(1)
  vecs, _ = np.linalg.qr(rng.standard_normal((3, 3)))
  vals = np.array([0.3, 0.1, 0.02])
  n = 40000
  images = np.full((n, 2, 2, 3), 0.5, np.float32)
  out = np.asarray(augment.pca_lighting(jax.random.PRNGKey(0), images, vals, vecs, std=0.1))
  np.testing.assert_array_equal(out[:, 0, 0], out[:, 1, 1])  # one offset per image
  offsets = out[:, 0, 0] - 0.5
  # offset = P (a * l), a ~ N(0, 0.1^2 I)  =>  Cov = P diag(0.01 l^2) P^T.
  expected = vecs @ np.diag(0.01 * vals ** 2) @ vecs.T
  np.testing.assert_allclose(np.cov(offsets, rowvar=False), expected, atol=0.03 * expected.max())
  np.testing.assert_allclose(offsets.mean(axis=0), 0, atol=4 * 0.1 * vals[0] / np.sqrt(n))
  again = augment.pca_lighting(jax.random.PRNGKey(0), images, vals, vecs)
  np.testing.assert_array_equal(out, again)
