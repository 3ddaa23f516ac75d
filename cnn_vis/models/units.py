"""Units: the one grammar every technique and config uses to name what to look at.

    unit     := LAYER ':' channels [ '@' y ',' x ]     conv5:17, conv5:17@6,6, conv1:0-63
              | LOGITS ':' CLASS_NAME                  fc8:flamingo (the logits layer only)
              | 'class:' (INDEX | CLASS_NAME)          a class score (pre-softmax logit)
              | 'max:' LAYER                           the layer's strongest activation per image
              | 'predicted'                            the top-1 class of each image
              | 'label'                                each image's true class (from its file name)
    channels := INDEX | INDEX '-' INDEX                a range, both ends included
    units    := unit (';' unit)*                       or a tuple/list of unit strings

Commas belong to positions only (`@y,x`), so a list is never ambiguous. A unit without a position
on a conv layer leaves the position to the technique (its centre, its mean, or its strongest
position). `parse_units(text, table)` checks everything against a `LayerTable` (the model's layer
shapes, its logits layer and class names) and raises one-line UserErrors that name the bad value
and what exists.
"""
import dataclasses
import difflib
import re
from typing import Mapping, Sequence

from cnn_vis.errors import UserError, check

_NAME = r"[A-Za-z0-9_.]+"
_UNIT = re.compile(rf"^(?P<layer>{_NAME}):(?P<first>\d+)(?:-(?P<last>\d+))?"
                   r"(?:@(?P<y>\d+),(?P<x>\d+))?$")
_FORMS = ("LAYER:C", "LAYER:C@y,x", "LAYER:A-B", "class:N", "class:NAME", "max:LAYER",
          "predicted", "label")


@dataclasses.dataclass(frozen=True)
class Unit:
  """A channel of a named layer, optionally at one position.

  channel None: the strongest channel (of the layer, or the predicted class on the logits);
  label: the image's own label, resolved from its file name by the experiment;
  text: how the unit was written when that is shorter than the general form (predicted, label).
  """
  layer: str
  channel: int | None = None
  y: int | None = None
  x: int | None = None
  label: bool = False
  text: str = dataclasses.field(default="", compare=False)

  def __str__(self) -> str:
    if self.text:
      return self.text
    if self.channel is None:
      return f"max:{self.layer}"
    where = "" if self.y is None else f"@{self.y},{self.x}"
    return f"{self.layer}:{self.channel}{where}"


@dataclasses.dataclass(frozen=True)
class LayerTable:
  """What units are checked against: per-image activation shapes by layer name (forward order,
  the logits included), the name of the logits layer and the class names."""
  shapes: Mapping[str, tuple]
  logits: str
  class_names: Sequence[str] = ()

  def layers(self) -> list[str]:
    return list(self.shapes)

  @property
  def num_classes(self) -> int:
    return self.shapes[self.logits][-1]


def split_units(text) -> list[str]:
  """A tuple/list of unit strings, or one string of units separated by ';'."""
  items = [str(t) for t in text] if isinstance(text, (tuple, list)) else str(text).split(";")
  return [item.strip() for item in items if item.strip()]


def parse_units(text, table: LayerTable) -> list[Unit]:
  """All units of `text` (see the module docstring), validated against `table`."""
  items = split_units(text)
  check(bool(items), f"no units given; write e.g. {', '.join(_FORMS[:3])} (several separated by ';')")
  return [unit for item in items for unit in _parse_one(item, table)]


def parse_unit(text: str, table: LayerTable) -> Unit:
  """Exactly one unit (no range, no list)."""
  units = parse_units(text, table)
  check(len(units) == 1, f"expected one unit, got {len(units)} in {text!r}")
  return units[0]


def class_index(name_or_index, table: LayerTable) -> int:
  """A class index from an index or a class name, checked against the model's classes."""
  text = str(name_or_index).strip()
  if re.fullmatch(r"-?\d+", text):
    index = int(text)
    check(0 <= index < table.num_classes, f"class {index} out of range; the model has classes "
                                          f"0..{table.num_classes - 1}")
    return index
  matches = [i for i, name in enumerate(table.class_names) if name == text]
  if len(matches) > 1:
    raise UserError(f"class name {text!r} is ambiguous (classes {', '.join(map(str, matches))}); "
                    "give the index")
  if not matches:
    close = difflib.get_close_matches(text, table.class_names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"unknown class {text!r}; give an index 0..{table.num_classes - 1} or a "
                    f"class name{hint}")
  return matches[0]


def check_layer(name: str, table: LayerTable) -> str:
  """name, if the model has such a layer; else a one-line error with the closest name."""
  if name not in table.shapes:
    close = difflib.get_close_matches(name, table.layers(), n=1)
    hint = f" (closest: {close[0]})" if close else ""
    raise UserError(f"unknown layer {name!r}{hint}; allowed: {', '.join(table.layers())}")
  return name


def _parse_one(text: str, table: LayerTable) -> list[Unit]:
  if text == "predicted":
    return [Unit(table.logits, text="predicted")]
  if text == "label":
    return [Unit(table.logits, label=True, text="label")]
  head, _, rest = text.partition(":")
  if head == "class" and rest:
    return [Unit(table.logits, class_index(rest, table))]
  if head == "max" and rest:
    return [Unit(check_layer(rest, table))]
  match = _UNIT.match(text)
  if match is None and head == table.logits and rest:
    return [Unit(table.logits, class_index(rest, table))]
  if match is None:
    comma = "; separate units with ';'" if "," in text and "@" not in text else ""
    raise UserError(f"cannot parse unit {text!r}; expected one of {', '.join(_FORMS)}{comma}")
  layer = check_layer(match["layer"], table)
  first = int(match["first"])
  last = first if match["last"] is None else int(match["last"])
  check(first <= last, f"unit range {text!r} is empty ({first} > {last})")
  y = None if match["y"] is None else int(match["y"])
  x = None if match["x"] is None else int(match["x"])
  return [check_unit(Unit(layer, c, y, x), table) for c in range(first, last + 1)]


def check_unit(unit: Unit, table: LayerTable) -> Unit:
  """Validates channel and position against the layer's shape; returns the unit."""
  check_layer(unit.layer, table)
  shape = tuple(table.shapes[unit.layer])
  channels = shape[-1]
  if unit.channel is not None and not 0 <= unit.channel < channels:
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


def unit_activation(acts: Mapping, unit: Unit, spatial: str = "center"):
  """The unit's activation per image, shape (N,); acts maps layer names to (N, ...) arrays.

  spatial: for conv units without a position, "center" takes the centre position, "mean"
  averages over positions, "sum" sums them.
  """
  a = acts[unit.layer][..., unit.channel]
  if a.ndim == 1:
    return a
  if unit.y is not None:
    return a[:, unit.y, unit.x]
  if spatial == "center":
    return a[:, a.shape[1] // 2, a.shape[2] // 2]
  check(spatial in ("mean", "sum"), f"unknown spatial reduction {spatial!r}; allowed: center, "
                                    "mean, sum")
  return a.mean(axis=(1, 2)) if spatial == "mean" else a.sum(axis=(1, 2))
