"""Every image-optimisation config runs end to end (smoke variants, random small models) through
cnn_vis.main.run, writes its grid, metrics and report, and its vmappable sweep entry runs as one
call; bad input gives a one-line error before anything is written; a diverging run stops with a
clear one-line message."""
import importlib
import json

import numpy as np
import pytest

from cnn_vis import main
from cnn_vis.errors import UserError
from cnn_vis.techniques import optimize


CONFIGS = {
    "simonyan14_class_models": ("class_models.png", "class_models.npy"),
    "yosinski15_deepvis": ("units_conv2.png", "units_fc8.npy"),
    "mahendran15_inversion": ("inversion.png", "inversion_conv5.npy"),
    "deepdream": ("deepdream.png", "dream_00.png"),
}


def smoke(name: str, **overrides):
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  for key, value in overrides.items():
    config[key] = value
  return config


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_runs_end_to_end(name, tmp_path):
  config = smoke(name)
  summary = main.run(config, str(tmp_path))
  assert isinstance(summary, dict)
  for output in CONFIGS[name] + ("report.html", "config.json", "metrics.jsonl"):
    assert (tmp_path / output).is_file(), output
  metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert metrics
  html = (tmp_path / "report.html").read_text()
  assert CONFIGS[name][0] in html
  # every sweep entry overrides fields the config has
  sweep = importlib.import_module(f"configs.{name}").get_sweep()
  assert sweep and all(set(entry) <= set(config.keys()) for entry in sweep)


def test_swept_tuples_render_one_tile_per_setting_in_one_call(tmp_path):
  # smoke yosinski: units conv2:0-2 and fc8:1, decay (0, 0.01) -> 6 + 2 tiles, one call per layer
  config = smoke("yosinski15_deepvis")
  before = optimize.render_jit._cache_size()
  main.run(config, str(tmp_path))
  assert optimize.render_jit._cache_size() - before <= 2
  assert np.load(tmp_path / "units_conv2.npy").shape[0] == 6
  assert np.load(tmp_path / "units_fc8.npy").shape[0] == 2
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  settings = [json.loads(line)["setting"] for line in lines]
  assert settings[:2] == ["decay=0", "decay=0.01"]


@pytest.mark.parametrize("name,overrides,match", [
    ("yosinski15_deepvis", {"preset": "5"}, "unknown preset '5'"),
    ("yosinski15_deepvis", {"units": "conv2:99"}, "channel 99 out of range"),
    ("yosinski15_deepvis", {"units": "conv9:1"}, "unknown layer 'conv9'"),
    ("yosinski15_deepvis", {"units": "conv2"}, "cannot parse unit 'conv2'"),
    ("yosinski15_deepvis", {"units": "max:conv2"}, "needs units LAYER:C"),
    ("simonyan14_class_models", {"classes": "12"}, "class 12 out of range"),
    ("simonyan14_class_models", {"classes": "unicorn"}, "unknown class 'unicorn'"),
    ("mahendran15_inversion", {"layers": "conv1;fc9"}, "unknown layer 'fc9'"),
    ("mahendran15_inversion", {"images": "skimage:nothing"}, "unknown skimage image"),
    ("deepdream", {"layer": "nope"}, "unknown layer 'nope'"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(name, overrides, match, tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(UserError, match=match) as e:
    main.run(smoke(name, **overrides), str(workdir))
  assert "\n" not in str(e.value)
  assert not workdir.exists()


def test_non_finite_start_image_is_rejected():
  with pytest.raises(UserError, match="non-finite"):
    optimize.check_image(np.array([[[0.0, np.nan, 1.0]]]))


def test_diverging_run_stops_with_a_clear_message(tmp_path):
  # a huge plain-gradient step on a stiff TV penalty explodes; DivergedError is a UserError, so
  # `python -m cnn_vis.main` prints it as one `error: ...` line and exits with status 2
  config = smoke("mahendran15_inversion", layers="conv1", optimizer="sgd", lr=1e3, tv=(1e4,),
                 phases=((30, 1.0),))
  with pytest.raises(optimize.DivergedError) as e:
    main.run(config, str(tmp_path / "run"))
  assert isinstance(e.value, UserError)
  message = str(e.value)
  assert "\n" not in message and "diverged" in message and "non-finite at step" in message
