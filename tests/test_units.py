"""Unit addressing: parsing `layer:channel[@y,x]`, validation, and reading activations."""
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis.errors import UserError
from cnn_vis.models import Unit, check_unit, parse_unit, unit_activation

SHAPES = {"conv5": (1, 13, 13, 256), "fc8": (1, 1000)}


def test_parse_round_trip():
  assert parse_unit("fc8:130") == Unit("fc8", 130)
  assert parse_unit("conv5:17@6,6") == Unit("conv5", 17, 6, 6)
  assert str(parse_unit("conv5:17@6,6")) == "conv5:17@6,6"


@pytest.mark.parametrize("text,pattern", [
    ("fc8", "cannot parse unit"), ("fc8:x", "cannot parse unit"),
    ("conv9:1", r"unknown layer 'conv9'; allowed: conv5, fc8"),
    ("fc8:1000", r"channel 1000 out of range; layer fc8 has channels 0..999"),
    ("conv5:-1", "out of range"), ("conv5:3@13,0", r"position out of range; layer conv5 is 13x13"),
    ("fc8:3@0,0", "no spatial positions")])
def test_bad_units_are_one_line_errors(text, pattern):
  with pytest.raises(UserError, match=pattern) as info:
    check_unit(parse_unit(text), SHAPES)
  assert "\n" not in str(info.value)


def test_unit_activation_reductions():
  a = jnp.arange(2 * 3 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 3, 4)
  acts = {"conv": a, "fc": a[:, 0, 0, :]}
  np.testing.assert_array_equal(unit_activation(acts, Unit("conv", 2, 0, 1)), a[:, 0, 1, 2])
  np.testing.assert_array_equal(unit_activation(acts, Unit("conv", 2)), a[:, 1, 1, 2])
  np.testing.assert_allclose(unit_activation(acts, Unit("conv", 2), "mean"), a[..., 2].mean((1, 2)))
  np.testing.assert_array_equal(unit_activation(acts, Unit("fc", 3)), a[:, 0, 0, 3])
