"""The one exception type for user mistakes (bad config values, names, files).

`cnn_vis.main` prints it as `error: <message>` and exits with status 2, without a traceback.
"""
import math


class UserError(ValueError):
  """A mistake in what the user asked for; the message names the bad value and what is allowed."""


def check(condition: bool, message: str) -> None:
  """Raises UserError(message) unless condition holds."""
  if not condition:
    raise UserError(message)


def whole_number(name: str, value, least: int = 1) -> int:
  """int(value); UserError naming it unless it is a whole number >= least."""
  number = float(value)
  check(math.isfinite(number) and number == int(number) and number >= least,
        f"{name} must be a whole number >= {least}, got {value!r}")
  return int(number)


def choose(kind: str, value, allowed) -> None:
  """Raises UserError unless value is one of allowed, naming both."""
  allowed = list(allowed)
  if value not in allowed:
    raise UserError(f"unknown {kind} {value!r}; allowed: {', '.join(map(str, allowed))}")
