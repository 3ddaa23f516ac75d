"""The one unit grammar: every form, ranges, lists, class names, and one-line errors."""
import jax
import pytest

from cnn_vis import models
from cnn_vis.errors import UserError
from cnn_vis.models import LayerTable, Unit, parse_unit, parse_units

TABLE = LayerTable({"conv5": (13, 13, 256), "fc7": (4096,), "fc8": (1000,)}, "fc8",
                   models.get_spec("alexnet").class_names)


@pytest.mark.parametrize("text,expected", [
    ("fc8:130", [Unit("fc8", 130)]),
    ("conv5:17@6,6", [Unit("conv5", 17, 6, 6)]),
    ("conv5:3-5", [Unit("conv5", 3), Unit("conv5", 4), Unit("conv5", 5)]),
    ("conv5:0-1@2,3", [Unit("conv5", 0, 2, 3), Unit("conv5", 1, 2, 3)]),
    ("class:130", [Unit("fc8", 130)]),
    ("class:flamingo", [Unit("fc8", 130)]),
    ("fc8:flamingo", [Unit("fc8", 130)]),
    ("max:conv5", [Unit("conv5")]),
    ("predicted", [Unit("fc8")]),
    ("label", [Unit("fc8", label=True)]),
    ("predicted; conv5:1@0,12 ;fc7:9", [Unit("fc8"), Unit("conv5", 1, 0, 12), Unit("fc7", 9)]),
    (("class:1", "conv5:2"), [Unit("fc8", 1), Unit("conv5", 2)]),
])
def test_every_form_parses(text, expected):
  assert parse_units(text, TABLE) == expected


def test_units_print_back_in_the_grammar():
  for text in ("fc8:130", "conv5:17@6,6", "max:conv5", "label", "predicted"):
    assert str(parse_unit(text, TABLE)) == text


@pytest.mark.parametrize("text,pattern", [
    ("conv5", "cannot parse unit 'conv5'; expected one of LAYER:C"),
    ("fc8:x", "unknown class 'x'"),
    ("conv9:1", r"unknown layer 'conv9' \(closest: conv5\); allowed: conv5, fc7, fc8"),
    ("max:conv9", "unknown layer 'conv9'"),
    ("fc8:1000", r"channel 1000 out of range; layer fc8 has channels 0..999"),
    ("class:1000", r"class 1000 out of range; the model has classes 0..999"),
    ("class:flamingoo", "did you mean flamingo"),
    ("class:crane", r"class name 'crane' is ambiguous \(classes 134, 517\)"),
    ("conv5:3@13,0", r"position out of range; layer conv5 is 13x13"),
    ("fc7:3@0,0", "no spatial positions"),
    ("conv5:9-3", "is empty"),
    ("conv5:1,conv5:2", "separate units with ';'"),
    (" ; ", "no units given"),
])
def test_bad_units_are_one_line_errors(text, pattern):
  with pytest.raises(UserError, match=pattern) as info:
    parse_units(text, TABLE)
  assert "\n" not in str(info.value)


def test_a_models_table_knows_its_layers_logits_and_classes():
  fn = models.ModelFn(models.build("alexnet_cifar", width=0.125, fc_width=16))
  variables = jax.eval_shape(lambda: models.init_variables("alexnet_cifar", fn.module))
  table = models.layer_table(fn, variables, (1, 32, 32, 3), models.get_spec("alexnet_cifar").class_names)
  assert table.logits == "fc8" and table.num_classes == 10
  assert table.layers()[:3] == ["conv1", "norm1", "pool1"]   # forward order, not alphabetical
  assert parse_units("class:cat;conv5:0@1,1", table) == [Unit("fc8", 3), Unit("conv5", 0, 1, 1)]
