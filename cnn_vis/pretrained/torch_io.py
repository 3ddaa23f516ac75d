"""Reading PyTorch checkpoints without running code from them.

A `.pth` file is a pickle, and unpickling can call any Python function the file names. We only
ever call `torch.load(..., weights_only=True)`: torch's restricted unpickler then accepts tensors,
storages and plain containers and refuses every other global *before* calling it. An explicit
`weights_only=True` is not overridable by `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`.
"""
import pickle
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from cnn_vis.errors import UserError, check

_REFUSAL = re.compile(r"Unsupported (global|operand)[^\n]*?(?=\s+was not|\.\s|\n|$)")


def _refusal_detail(error: Exception) -> str:
  match = _REFUSAL.search(str(error))
  return match.group(0) if match else "a pickle instruction outside the allowed set"


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:200] if text else "no message"


def _to_numpy(tensor) -> np.ndarray:
  tensor = tensor.detach().cpu()
  if tensor.is_floating_point():
    tensor = tensor.float()  # bf16/fp16 checkpoints become float32, the models' dtype
  return tensor.numpy()


def load_torch_state_dict(path) -> dict[str, np.ndarray]:
  """A PyTorch state dict file as {name: numpy array}, refusing files that would run code.

  Accepts a plain state dict or a dict holding one under "state_dict". Missing, corrupt, unsafe
  or non-state-dict files raise UserError naming the file.
  """
  path = Path(path)
  check(path.is_file(), f"checkpoint file {str(path)!r} does not exist")
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UserError(f"reading {path.name} needs PyTorch; install the extra: "
                    "pip install 'cnn_vis[torch]'") from None
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    raise UserError(f"checkpoint {str(path)!r} refused: it is not a plain tensor state dict and "
                    f"loading it could run code ({_refusal_detail(e)})") from None
  except Exception as e:  # pylint: disable=broad-except  # corrupt files fail in many ways
    raise UserError(f"checkpoint {str(path)!r} is not a readable PyTorch checkpoint "
                    f"({type(e).__name__}: {_first_line(e)})") from None
  if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
    obj = obj["state_dict"]
  check(isinstance(obj, Mapping) and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()),
        f"checkpoint {str(path)!r} holds no state dict (expected a mapping of names to tensors, "
        f"got {type(obj).__name__})")
  return {name: _to_numpy(tensor) for name, tensor in obj.items()}
