"""The front door: config-level mistakes are one line and exit status 2, runs never mix or lose
results, long optimisations show progress, the tour's stages are built from their configs (the
tour itself runs, torch-free, in tests/test_reports.py)."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

import experiments
from cnn_vis import configuration, report, runs
from cnn_vis.errors import UserError
from cnn_vis.techniques import embedding, objectives, optimize
from configs import tour as tour_config
from experiments import tour

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


# ------------------------------------------------------------------ config-level mistakes

def test_unknown_config_arguments_are_refused_by_every_config():
  names = sorted(p.stem for p in (REPO / "configs").glob("*.py") if not p.stem.startswith("_")
                 and p.stem not in ("__init__", "common"))
  assert "tour" in names and "predict" in names
  for name in names:
    module = __import__(f"configs.{name}", fromlist=["get_config"])
    with pytest.raises(UserError, match="unknown config argument 'no-such-arg'; allowed: "):
      module.get_config("no-such-arg")
    assert isinstance(module.get_config(), ml_collections.ConfigDict), name


def test_a_missing_config_file_names_the_closest_ones():
  with pytest.raises(UserError, match=r"config file 'configs/predictt.py' does not exist; "
                                      r"closest: configs/predict.py"):
    configuration.load_config("configs/predictt.py")


def test_an_unknown_key_names_the_closest_and_lists_the_keys():
  config = configuration.load_config("configs/simonyan14_class_models.py")
  with pytest.raises(UserError) as error:
    configuration.check_key(config, "stepz", "--config.stepz=5", "configs/x.py")
  message = str(error.value)
  assert "unknown config key 'stepz'" in message and "did you mean 'steps'?" in message
  assert "keys of configs/x.py: " in message and "image_size" in message
  configuration.check_key(config, "steps", "", "")         # real keys pass
  configuration.check_key(configuration.load_config("configs/mahendran15_inversion.py"),
                          "phases[0]", "", "")


@pytest.mark.parametrize("value, ok", [
    ((0.01, 0.1), True), (("(nan,)",), False), ((0.1, float("nan")), False), (float("inf"), False),
    ("nan", False), ("0.5,inf,0.5", False), (("(1e-3,, 2)",), False), ("skimage:inf.png", True),
    ("class:nan", True), (((200, 1.0), (100, 0.1)), True)])
def test_values_must_be_finite_and_readable(value, ok):
  config = ml_collections.ConfigDict({"lr": value, "nested": {"x": 1.0}})
  if ok:
    configuration.check_values(config)
  else:
    with pytest.raises(UserError, match=r"^config\.lr = "):
      configuration.check_values(config)


def test_set_fields_checks_keys_and_types():
  config = configuration.load_config("configs/predict.py:smoke")
  configuration.set_fields(config, {"top_k": 3, "model_kwargs.width": 0.25, "overwrite": True})
  assert config.top_k == 3 and config.model_kwargs.width == 0.25 and config.overwrite
  with pytest.raises(UserError, match="unknown config key 'top_kk'.*did you mean 'top_k'"):
    configuration.set_fields(config, {"top_kk": 3})
  with pytest.raises(UserError, match=r"config.top_k = 'x'"):
    configuration.set_fields(config, {"top_k": "x"})


# Each command must fail with one line `error: ...`, status 2, no traceback and nothing written.
CLI_MISTAKES = {
    "missing_file": (["--config=configs/nope.py"], "config file 'configs/nope.py' does not exist"),
    "typo_key": (["--config=configs/predict.py:smoke", "--config.top_kk=5"],
                 "unknown config key 'top_kk'"),
    "unknown_arg": (["--config=configs/predict.py:bogus"], "unknown config argument 'bogus'"),
    "nan_tuple": (["--config=configs/simonyan14_class_models.py:smoke", "--config.lr=(nan,)"],
                  "config.lr = '(nan,)': every number must be finite"),
    "nan_int": (["--config=configs/predict.py:smoke", "--config.top_k=nan"],
                "--config.top_k=nan"),
    "bad_overwrite": (["--config=configs/predict.py:smoke", "--config.overwrite=maybe"],
                      "--config.overwrite must be True or False"),
    "read_only": (["--config=configs/predict.py:smoke"], "is not writable"),
}


def test_command_line_mistakes_are_one_line_and_exit_2(tmp_path):
  processes = {}
  for name, (args, _) in CLI_MISTAKES.items():
    workdir = "/sys/cnn_vis_test_run" if name == "read_only" else str(tmp_path / name)
    processes[name] = subprocess.Popen(
        [sys.executable, "-m", "cnn_vis.main", *args, f"--workdir={workdir}"], cwd=REPO, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  for name, process in processes.items():
    out, err = process.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode == 2, (name, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, err[-2000:])
    assert CLI_MISTAKES[name][1] in lines[0], (name, lines[0])
    assert "report:" not in out
    assert not (tmp_path / name).exists(), name


def test_a_run_ends_with_the_line_naming_its_report(tmp_path):
  result = subprocess.run([sys.executable, "-m", "cnn_vis.main", "--config=configs/predict.py:smoke",
                           f"--workdir={tmp_path / 'w'}", "--config.top_k=2"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().splitlines()[-1] == f"report: {tmp_path / 'w' / 'report.html'}"
  info = json.loads((tmp_path / "w" / "run.json").read_text())
  assert info["config_file"] == "configs/predict.py" and info["config_arg"] == "smoke"
  assert info["overrides"] == ["config.top_k=2"] and "cnn_vis.main" in info["command"]
  assert info["git"]["commit"] and isinstance(info["git"]["dirty"], bool)
  assert "jax" in info["versions"] and info["devices"]["platform"] == "cpu"
  assert info["stages"]["prepare"] > 0 and info["seconds"] > 0
  assert json.loads((tmp_path / "w" / "status.json").read_text())["status"] == "ok"


# ------------------------------------------------------------------ runs never mix or lose

def _experiment(workdir, config, pictures=("a",), fail=False, metrics=2):
  """What an experiment does: a Run, metrics, pictures, a summary, a report."""
  with runs.Run(config, workdir) as run:
    for step in range(metrics):
      runs.append_metrics(run.dir, {"step": step})
    for name in pictures:
      report.save_image(run.dir / f"{name}.png", np.full((4, 4, 3), 0.5))
    if fail:
      raise RuntimeError("the technique broke\nsecond line")
    run.summary.update(accuracy=0.5, images=len(pictures))
    report.write_report(run.dir, "test", config, [("pictures", [(p, f"{p}.png", None)
                                                                for p in pictures])],
                        summary=run.summary)
  return run


def test_a_rerun_replaces_its_outputs_atomically_without_duplicates(tmp_path):
  config = ml_collections.ConfigDict({"experiment": "x", "steps": 5})
  _experiment(tmp_path, config, pictures=("a",))
  _experiment(tmp_path, config, pictures=("b",))
  assert (tmp_path / "b.png").exists() and not (tmp_path / "a.png").exists()
  assert len(runs.read_metrics(tmp_path)) == 2                     # not 4
  assert json.loads((tmp_path / "summary.json").read_text()) == {"accuracy": 0.5, "images": 1}
  assert not [p for p in tmp_path.iterdir() if p.name.startswith((".staging", ".previous"))]


def test_a_failed_run_keeps_the_previous_outputs_and_says_why(tmp_path):
  config = ml_collections.ConfigDict({"experiment": "x", "steps": 5})
  _experiment(tmp_path, config, pictures=("a",))
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()
            and p.name != "status.json"}
  with pytest.raises(RuntimeError):
    _experiment(tmp_path, config, pictures=("b",), fail=True)
  after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()
           and p.name != "status.json"}
  assert after == before
  status = json.loads((tmp_path / "status.json").read_text())
  assert status["status"] == "failed" and status["error"] == "RuntimeError: the technique broke"


def test_a_different_config_is_refused_naming_the_keys_unless_overwrite(tmp_path):
  _experiment(tmp_path, ml_collections.ConfigDict({"experiment": "x", "steps": 5, "lr": 0.1}))
  before = (tmp_path / "config.json").read_text()
  other = ml_collections.ConfigDict({"experiment": "x", "steps": 6, "lr": 0.2})
  with pytest.raises(UserError, match=r"holds a run of another config \(differing keys: lr, "
                                      r"steps\); use another --workdir or "
                                      r"--config.overwrite=True"):
    runs.Run(other, tmp_path)
  assert (tmp_path / "config.json").read_text() == before
  with other.unlocked():
    other.overwrite = True
  _experiment(tmp_path, other)
  assert json.loads((tmp_path / "config.json").read_text())["steps"] == 6


def test_workdirs_that_cannot_hold_a_run_are_refused(tmp_path):
  config = ml_collections.ConfigDict({"experiment": "x"})
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(UserError, match="is not empty and holds no cnn_vis run"):
    runs.Run(config, tmp_path)
  with pytest.raises(UserError, match="is not writable"):
    runs.Run(config, tmp_path / "notes.txt" / "run")            # a file in the way
  with pytest.raises(UserError, match="is not writable"):
    runs.Run(config, "/sys/cnn_vis_test_run")                   # refused even to root
  assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_report_shows_the_run_facts_with_the_final_times(tmp_path):
  config = ml_collections.ConfigDict({"experiment": "x"})
  with runs.origin(command="python -m cnn_vis.main --config=configs/x.py:smoke",
                   config_file="configs/x.py", config_arg="smoke", overrides=("config.a=1",)):
    run = _experiment(tmp_path, config, pictures=("a", "b"))
  page = (tmp_path / "report.html").read_text()
  info = json.loads((tmp_path / "run.json").read_text())
  for text in ("configs/x.py:smoke", "config.a=1", info["git"]["commit"][:12], "jax ",
               "wall time", "accuracy", f"{info['seconds']:.1f} s"):
    assert text in page, text
  assert str(tmp_path) in page and ".staging" not in page
  assert info["thumbnail"] == "a.png" and info["title"] == "test" and run.dir == tmp_path


def test_nested_runs_commit_with_their_parent(tmp_path):
  config = ml_collections.ConfigDict({"experiment": "x"})
  with runs.Run(config, tmp_path / "tour") as outer:
    _experiment(outer.dir / "stage", config)
    assert (outer.dir / "stage" / "report.html").exists()
    assert not (tmp_path / "tour" / "stage").exists()            # not before the tour succeeds
  assert (tmp_path / "tour" / "stage" / "a.png").exists()
  assert json.loads((tmp_path / "tour" / "stage" / "status.json").read_text())["status"] == "ok"


# ------------------------------------------------------------------ progress

@dataclasses.dataclass(frozen=True)
class _Linear:
  def __call__(self, variables, images):
    logits = (images - 0.5).reshape(images.shape[0], -1) @ variables["w"]
    return logits, {"logits": logits}


class _CountingBar:
  """Stands in for the tqdm bar: counts what the loops report."""
  def __init__(self, total, desc, unit):
    self.total, self.desc, self.count, self.disable = total, desc, 0, False
    _CountingBar.last = self

  def __enter__(self):
    return self

  def __exit__(self, *args):
    return False

  def update(self, n=1):
    self.count += n


def _render(loop):
  variables = {"w": jax.random.normal(jax.random.PRNGKey(0), (4 * 4 * 3, 2))}
  settings = optimize.stack_settings(3, class_index=np.array([0, 1, 0], np.int32), lr=0.1)
  recipe = optimize.Recipe(4, 4, phases=((4, 1.0), (3, 0.1)))
  score = objectives.ClassLogit() - 0.1 * objectives.L2()
  return optimize.render(_Linear(), variables, score, settings, jax.random.PRNGKey(1), recipe,
                         loop=loop, chunk=2)


@pytest.mark.parametrize("loop", ["dispatch", "scan"])
def test_optimisations_count_every_step_on_the_progress_bar(loop, monkeypatch):
  quiet = _render(loop)
  monkeypatch.setattr(optimize.runs, "progress",
                      lambda total, desc, unit: _CountingBar(total, desc, unit))
  shown = _render(loop)
  bar = _CountingBar.last
  # scan's chunks of 2 pad the 3 settings to 4 (the padding's steps are counted too)
  assert bar.desc == "optimise 3 x 7 steps" and bar.total == (21 if loop == "dispatch" else 28)
  assert bar.count == bar.total
  np.testing.assert_array_equal(np.asarray(quiet.images), np.asarray(shown.images))


def test_the_progress_bar_is_shown_on_a_terminal_only(capsys, monkeypatch):
  _render("dispatch")
  assert capsys.readouterr().err == ""
  monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
  _render("dispatch")
  err = capsys.readouterr().err
  assert "optimise 3 x 7 steps" in err and "/21" in err and "step" in err, err[-500:]


# ------------------------------------------------------------------ the tour

def test_the_tour_builds_every_stage_from_its_own_config():
  config = tour_config.get_config()
  stages = tour.plan(config)
  assert [s.name for s in stages] == [name for name, *_ in tour_config.STAGES]
  by_name = {s.name: s for s in stages}
  assert all(s.config.model == "squeezenet1_1" and s.config.pretrained for s in stages)
  assert by_name["deconvnet"].config.targets == "max:fire5"          # the model's defaults
  assert by_name["inversion"].config.layers == "fire3;fire7"
  assert by_name["occlusion"].config.feature_layer == "fire9"
  default_steps = configuration.load_config("configs/simonyan14_class_models.py").steps
  assert by_name["class_model"].changed["steps"] == (default_steps, 50)   # what the tour changed
  assert by_name["deepdream"].changed["model"] == ("efficientnet_lite0", "squeezenet1_1")
  assert by_name["predict"].config_file == "configs/predict.py"
  assert set(experiments.available()) >= {s.config.experiment for s in stages}


def test_tour_mistakes_are_caught_before_anything_runs(tmp_path):
  config = tour_config.get_config()
  with config.unlocked():
    config.stages = "predict;nope"
  with pytest.raises(UserError, match="unknown tour stage 'nope'; allowed: .*class_model.*predict"):
    tour.run(config, tmp_path / "t")
  config = tour_config.get_config()
  config.stage.class_model.overrides = ml_collections.ConfigDict({"stepz": 5})
  with pytest.raises(UserError, match="unknown config key 'stepz'.*did you mean 'steps'"):
    tour.plan(config)
  assert not (tmp_path / "t").exists()


def test_the_tours_tsne_stage_has_more_photos_than_its_perplexity_needs():
  """t-SNE refuses a perplexity of N/3 or more; the tour's stage runs on the 7 skimage photos."""
  stage = {s.name: s for s in tour.plan(tour_config.get_config())}["tsne"]
  embedding.TSNESettings(perplexity=stage.config.perplexity).check(
      len(stage.config.images.split(",")))
  with pytest.raises(UserError, match="perplexity 2.0 needs more than 7 images"):
    embedding.TSNESettings(perplexity=2.0).check(len(stage.config.images.split(",")))
