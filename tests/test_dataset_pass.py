"""The streaming dataset pass: numbered streams (tfds splits and image files, per host), the
running top-k against a brute-force top-k over all activations (values, examples and positions,
ties included; several batch sizes; 4 CPU devices), memory that does not grow with the dataset.

The exact comparisons use a toy network whose activations are small integers (no rounding, so
equal values are exactly equal and there are many ties); a real tiny AlexNet is checked too.
Run as a script (`python tests/test_dataset_pass.py four-devices`) it is the 4-device check.
"""
import dataclasses
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from cnn_vis import models
from cnn_vis.data import stream as stream_lib
from cnn_vis.errors import UserError
from cnn_vis.models import layers
from cnn_vis.models.geometry import ReceptiveField
from cnn_vis.techniques import dataset_pass, patches
from cnn_vis.techniques import gradients as G
from cnn_vis.train import parallel
from conftest import batches_of

REPO = Path(__file__).resolve().parents[1]
SIZE = 8


@dataclasses.dataclass(frozen=True)
class Toy:
  """Activations that are integers 0..8: `pix` = 8 x the image, `max3` its 3x3/1 max pooling
  (overlapping fields), `pool` its 2x2/2 max pooling, `fc` its spatial maximum (the logits)."""
  logits_name = "fc"

  def __call__(self, variables, images):
    pix = images * variables["scale"]
    fc = pix.max(axis=(1, 2))
    return fc, {"pix": pix, "max3": layers.max_pool(pix, 3, 1, "SAME"),
                "pool": layers.max_pool(pix, 2, 2), "fc": fc}


VARIABLES = {"scale": np.float32(8.0)}
FIELDS = {"pix": ReceptiveField("pix", 1, 1, 0, SIZE, SIZE),
          "max3": ReceptiveField("max3", 3, 1, -1, SIZE, SIZE),
          "pool": ReceptiveField("pool", 2, 2, 0, SIZE // 2, SIZE // 2),
          "fc": ReceptiveField("fc", SIZE, SIZE, 0, 1, 1)}


def toy_images(count: int, seed: int = 0) -> np.ndarray:
  """Pixels k/8 (k = 0..8, mostly small: many ties), a few images repeated."""
  rng = np.random.default_rng(seed)
  images = (rng.integers(0, 9, (count, SIZE, SIZE, 3)) * rng.integers(0, 2, (count, 1, 1, 3))
            / 8.0).astype(np.float32)
  images[count // 2] = images[0]   # exact duplicates
  return images


def _iou(a, b) -> float:
  h = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
  w = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - h * w
  return h * w / max(union, 1)


def brute_force(acts, request: patches.LayerUnits, selection: patches.Selection):
  """(values, ids, y, x) (U, k) from ALL activations (N, ...): each image's greedy-NMS picks,
  then every candidate sorted by value, earlier image and pick first (a stable sort in stream
  order); -inf / -1 where fewer than k."""
  acts = np.asarray(acts)
  if acts.ndim == 2:
    acts = acts[:, None, None, :]
  n, height, width, _ = acts.shape
  boxes = patches.position_boxes(request.field, request.image_size)
  k, units = selection.k, [np.asarray(v) for v in request.units]
  out = [np.full((len(units[0]), k), v, dtype) for v, dtype in
         ((-np.inf, np.float32), (-1, np.int32), (0, np.int32), (0, np.int32))]
  for u, (c, uy, ux) in enumerate(zip(*units)):
    candidates = []
    for i in range(n):
      flat = acts[i, :, :, c].reshape(-1).astype(np.float64)
      if uy >= 0:
        keep = np.full(flat.shape, -np.inf)
        keep[uy * width + ux] = flat[uy * width + ux]
        flat = keep
      for rank in range(selection.per_image):
        best = int(np.argmax(flat))
        if not np.isfinite(flat[best]):
          break
        candidates.append((-flat[best], i, rank, best))
        suppress = np.array([_iou(boxes[best], b) > selection.overlap for b in boxes])
        suppress[best] = True
        flat = np.where(suppress, -np.inf, flat)
    for j, (negative, i, _, best) in enumerate(sorted(candidates)[:k]):
      out[0][u, j], out[1][u, j] = -negative, i
      out[2][u, j], out[3][u, j] = divmod(best, width)
  return out


def _request(layer: str, channels, y=-1, x=-1) -> patches.LayerUnits:
  return patches.LayerUnits(layer, G.Units.make(channels, y, x), FIELDS[layer], SIZE)


# Passes of several layers at once (one LayerUnits per layer).
PASSES = {"layers": lambda: [_request("pix", [0, 1, 2]), _request("pool", [2, 0]),
                             _request("max3", [0, 1, 2]), _request("fc", [0, 1, 2])],
          "positions": lambda: [_request("pix", [1, 1, 0], [2, 0, 7], [3, 0, 7])]}


def _streaming(images, requests, selection, batch_size, mesh=None):
  tops, result = patches.top_patches(Toy(), VARIABLES, batches_of(images, batch_size), requests,
                                     selection, total=len(images), mesh=mesh)
  return tops, result


@pytest.mark.parametrize("units,batch_size,per_image,overlap", [
    ("layers", 3, 1, 0.1), ("layers", 8, 3, 0.2), ("positions", 1, 3, 0.2),
    ("positions", 5, 1, 0.1)])
def test_streaming_top_k_equals_brute_force_with_ties(units, batch_size, per_image, overlap):
  images = toy_images(13)
  requests = PASSES[units]()
  selection = patches.Selection(k=5, per_image=per_image, overlap=overlap)
  tops, result = _streaming(images, requests, selection, batch_size)
  assert result.images == 13
  _, acts = Toy()(VARIABLES, jnp.asarray(images))
  for request in requests:
    expected = brute_force(acts[request.layer], request, selection)
    got = tops[request.layer]
    for name, want, have in zip(("values", "ids", "y", "x"), expected, got):
      np.testing.assert_array_equal(have, want, err_msg=f"{request.layer} {name}")
  if units == "layers":  # the ties are real: a k-th value shared by more candidates than fit
    pix = np.asarray(acts["pix"])
    assert any(np.sum(pix[..., c] == tops["pix"].values[c, -1]) > 1 for c in range(3))


def test_fewer_candidates_than_k_leave_empty_slots():
  images = toy_images(3)
  request = _request("pix", [0], [1], [1])   # one position: one candidate per image
  tops, _ = _streaming(images, [request], patches.Selection(k=5), 2)
  assert np.isinf(tops["pix"].values[0, 3:]).all() and (tops["pix"].ids[0, 3:] == -1).all()
  lists = patches.patch_lists(tops["pix"], request)
  assert len(lists[0]) == 3 and all(p["y"] == 1 and p["x"] == 1 for p in lists[0])
  assert [p["activation"] for p in lists[0]] == sorted((p["activation"] for p in lists[0]),
                                                       reverse=True)


def test_per_image_nms_keeps_boxes_apart():
  images = toy_images(4, seed=3)
  request = _request("max3", [0, 1, 2])
  selection = patches.Selection(k=8, per_image=4, overlap=0.0)   # no overlap allowed at all
  tops, _ = _streaming(images, [request], selection, 4)
  for unit in patches.patch_lists(tops["max3"], request):
    for i, a in enumerate(unit):
      for b in unit[i + 1:]:
        if a["id"] == b["id"]:
          assert _iou(a["box"], b["box"]) == 0.0, (a, b)


def tiny_alexnet(seed: int = 0):
  """A tiny alexnet_cifar with random N(0, 0.2) weights (numpy: no compiled init)."""
  apply_fn = models.ModelFn(models.build("alexnet_cifar", width=0.0625, fc_width=16))
  shapes = jax.eval_shape(lambda: models.init_variables("alexnet_cifar", apply_fn.module))
  rng = np.random.default_rng(seed)
  return apply_fn, jax.tree.map(lambda s: (0.2 * rng.normal(size=s.shape)).astype(np.float32),
                                shapes)


def test_real_network_top_k_equals_brute_force():
  """A tiny random AlexNet (continuous activations: exact zeros are the only ties)."""
  apply_fn, variables = tiny_alexnet()
  images = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (10, 32, 32, 3)))
  fields = apply_fn.receptive_fields(32)
  requests = [patches.LayerUnits("conv3", G.Units.make(np.arange(4)), fields["conv3"], 32),
              patches.LayerUnits("fc6", G.Units.make(np.arange(4)), fields["fc6"], 32)]
  selection = patches.Selection(k=4, per_image=2, overlap=0.3)
  tops, _ = patches.top_patches(apply_fn, variables, batches_of(images, 4), requests, selection)
  _, acts = jax.jit(apply_fn)(variables, jnp.asarray(images))
  for request in requests:
    values, ids, y, x = brute_force(acts[request.layer], request, selection)
    np.testing.assert_allclose(tops[request.layer].values, values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tops[request.layer].ids, ids)
    np.testing.assert_array_equal(tops[request.layer].y, y)
    np.testing.assert_array_equal(tops[request.layer].x, x)


def _live_bytes() -> int:
  return sum(x.nbytes for x in jax.live_arrays())


def test_memory_of_the_pass_does_not_grow_with_the_dataset():
  """The device memory held while streaming 2 or 20 batches (live arrays, sampled at every
  batch, above what was held before the pass) and the state's size are the same."""
  request = _request("pix", [0, 1, 2])
  peaks, states = [], []
  for count in (16, 160):
    gc.collect()
    base = _live_bytes()
    samples = []

    def watched(batches):
      for batch in batches:
        samples.append(_live_bytes() - base)
        yield batch

    tops, result = patches.top_patches(Toy(), VARIABLES, watched(batches_of(toy_images(count),
                                                                             8)),
                                       [request], patches.Selection(k=4))
    assert result.images == count
    peaks.append(max(samples[1:]))   # after the first step: the compiled pass running
    states.append(sum(np.asarray(a).nbytes for a in tops["pix"]))
  assert states[0] == states[1]
  assert peaks[1] <= peaks[0], peaks


# ------------------------------------------------------------------------------------------------
# Streams.

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
  """split/class/*.png: 2 classes x 5 images, 10x12 pixels (not square), distinct colours."""
  root = tmp_path_factory.mktemp("folder")
  for c in range(2):
    for i in range(5):
      path = root / "test" / f"class{c}" / f"{i}.png"
      path.parent.mkdir(parents=True, exist_ok=True)
      Image.fromarray(np.full((10, 12, 3), 20 * (5 * c + i) + 5, np.uint8)).save(path)
  return root


def test_split_stream_numbers_names_and_reads_back_examples(folder):
  stream = stream_lib.from_split("image_folder", "test[2:]", image_size=8, resize=10,
                                 manual_dir=folder)
  assert stream.num_examples == 8
  batches = list(stream.batches(3))
  ids = np.concatenate([b["id"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  np.testing.assert_array_equal(ids[mask], np.arange(8))
  assert (ids[~mask] == -1).all() and batches[0]["image"].shape == (3, 8, 8, 3)
  images = np.concatenate([b["image"] for b in batches])[mask]
  np.testing.assert_array_equal(stream.fetch([5, 0, 5]), images[[5, 0, 5]])
  assert stream.names([0, 7]) == ["test:2", "test:9"]
  labels = np.concatenate([b["label"] for b in batches])
  assert set(labels[mask]) <= {0, 1} and (labels[~mask] == -1).all()
  # two hosts: disjoint contiguous shards, every example once, the same ids
  hosts = [np.concatenate([b["id"] for b in stream.batches(4, process_index=i, process_count=2)])
           for i in range(2)]
  assert len(hosts[0]) == len(hosts[1])
  np.testing.assert_array_equal(np.sort(np.concatenate(hosts)[np.concatenate(hosts) >= 0]),
                                np.arange(8))


def test_file_stream_shards_hosts_and_skips_unreadable_files(folder, tmp_path, capsys):
  files = sorted(str(p) for p in (folder / "test").rglob("*.png"))
  broken = tmp_path / "broken.png"
  broken.write_bytes(b"not a png")
  stream = stream_lib.from_files(files[:3] + [str(broken)] + files[3:], image_size=8)
  assert stream.num_examples == 11
  assert stream.names([0, 3]) == ["0.png", "broken.png"]
  seen = []
  for host in range(2):
    for batch in stream.batches(4, process_index=host, process_count=2):
      seen += batch["id"][batch["mask"]].tolist()
  assert sorted(seen) == [0, 1, 2] + list(range(4, 11))
  assert "skipped" in capsys.readouterr().err
  with pytest.raises(UserError, match="positive multiple of the process count 2"):
    next(stream.batches(3, process_index=0, process_count=2))


def test_missing_dataset_and_bad_split_are_one_line_errors(tmp_path, folder):
  with pytest.raises(UserError, match="ILSVRC2012_img_train.tar") as e:
    stream_lib.from_split("imagenet2012", "validation", image_size=8,
                          data_dir=tmp_path / "tfds", manual_dir=tmp_path)
  assert "\n" not in str(e.value)
  with pytest.raises(UserError, match="bad split 'validation'"):
    stream_lib.from_split("image_folder", "validation", image_size=8, manual_dir=folder)


# ------------------------------------------------------------------------------------------------
# Four CPU devices (a subprocess: the device count is fixed when jax starts).

def _four_devices() -> dict:
  assert jax.device_count() == 4, jax.devices()
  images = toy_images(21)
  requests = PASSES["layers"]()
  selection = patches.Selection(k=4, per_image=2, overlap=0.2)
  _, acts = Toy()(VARIABLES, jnp.asarray(images))
  tops, _ = _streaming(images, requests, selection, 8)
  single, _ = _streaming(images, requests, selection, 8,
                         mesh=parallel.data_mesh(jax.devices()[:1]))
  out = {"equal": True}
  for request in requests:
    expected = brute_force(acts[request.layer], request, selection)
    out["equal"] &= all(np.array_equal(a, b) for a, b in zip(tops[request.layer], expected))
    out["equal"] &= all(np.array_equal(a, b) for a, b in zip(tops[request.layer],
                                                           single[request.layer]))
  try:
    _streaming(images, requests, selection, 6)
    out["error"] = None
  except UserError as e:
    out["error"] = str(e)
  return out


def test_four_devices_equal_one_device_and_brute_force():
  env = dict(os.environ, PYTHONPATH=str(REPO),
             XLA_FLAGS="--xla_force_host_platform_device_count=4")
  result = subprocess.run([sys.executable, __file__, "four-devices"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["equal"], out
  assert out["error"] == ("batch_size 6 is not a positive multiple of the 4 devices; use a "
                          "multiple of 4")


def test_features_compute_only_the_asked_layers():
  apply_fn, variables = tiny_alexnet()
  forward = dataset_pass.features(apply_fn, ("conv2", "fc8"))
  out = jax.eval_shape(forward, variables, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
  assert set(out) == {"conv2", "fc8"} and out["fc8"].shape == (2, 10)


if __name__ == "__main__" and sys.argv[1:] == ["four-devices"]:
  print(json.dumps({k: bool(v) if k == "equal" else v for k, v in _four_devices().items()}))
