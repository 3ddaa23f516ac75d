"""A unit of a network: a channel of a named layer, optionally at one spatial position.

Written on the command line as `layer:channel` or `layer:channel@y,x` (e.g. `fc8:130`,
`conv5:17@6,6`). A unit without a position on a conv layer means the centre position, as in
Yosinski et al. 2015 and the deep visualization toolbox; `unit_activation(..., spatial="mean")`
averages over positions instead (DeepDream-style channel objectives).
"""
import dataclasses
import re
from typing import Mapping

import jax.numpy as jnp

from cnn_vis.errors import UserError, choose

_UNIT = re.compile(r"^(?P<layer>[A-Za-z0-9_.]+):(?P<channel>-?\d+)(@(?P<y>-?\d+),(?P<x>-?\d+))?$")


@dataclasses.dataclass(frozen=True)
class Unit:
  layer: str
  channel: int
  y: int | None = None
  x: int | None = None

  def __str__(self) -> str:
    where = "" if self.y is None else f"@{self.y},{self.x}"
    return f"{self.layer}:{self.channel}{where}"


def parse_unit(text: str) -> Unit:
  """Parses `layer:channel[@y,x]`."""
  match = _UNIT.match(str(text).strip())
  if not match:
    raise UserError(f"cannot parse unit {text!r}; expected 'layer:channel' or 'layer:channel@y,x'")
  y, x = match["y"], match["x"]
  return Unit(match["layer"], int(match["channel"]), None if y is None else int(y),
              None if x is None else int(x))


def check_unit(unit: Unit, shapes: Mapping[str, tuple]) -> Unit:
  """Validates unit against per-layer activation shapes ((N,) H, W, C or (N,) C); returns it."""
  choose("layer", unit.layer, shapes)
  shape = tuple(shapes[unit.layer])[1:]  # drop the batch axis
  channels = shape[-1]
  if not 0 <= unit.channel < channels:
    raise UserError(f"unit {unit}: channel {unit.channel} out of range; layer {unit.layer} has "
                    f"channels 0..{channels - 1}")
  if unit.y is not None:
    if len(shape) != 3:
      raise UserError(f"unit {unit}: layer {unit.layer} has no spatial positions; write "
                      f"'{unit.layer}:{unit.channel}'")
    height, width = shape[:2]
    if not (0 <= unit.y < height and 0 <= unit.x < width):
      raise UserError(f"unit {unit}: position out of range; layer {unit.layer} is {height}x{width} "
                      f"(y 0..{height - 1}, x 0..{width - 1})")
  return unit


def unit_activation(acts: Mapping[str, jnp.ndarray], unit: Unit, spatial: str = "center"):
  """The unit's activation per image, shape (N,).

  spatial: for conv layers without an explicit position, "center" takes the centre position,
  "mean" averages over all positions, "sum" sums them.
  """
  a = acts[unit.layer][..., unit.channel]
  if a.ndim == 1:
    return a
  if unit.y is not None:
    return a[:, unit.y, unit.x]
  if spatial == "center":
    return a[:, a.shape[1] // 2, a.shape[2] // 2]
  choose("spatial reduction", spatial, ("center", "mean", "sum"))
  return a.mean(axis=(1, 2)) if spatial == "mean" else a.sum(axis=(1, 2))
