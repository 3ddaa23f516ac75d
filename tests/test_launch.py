"""launch.sh, the front door: its commands reach the entry points with their arguments, its
mistakes are one line and status 2, and the README gives a new machine exactly two commands."""
import re
import subprocess
from pathlib import Path

import ml_collections
import numpy as np

from cnn_vis import report, runs

REPO = Path(__file__).resolve().parents[1]


def _launch(*args, timeout=600):
  return subprocess.run(["bash", str(REPO / "launch.sh"), *args], capture_output=True, text=True,
                        cwd=REPO, timeout=timeout, check=False)


def test_usage_mistakes_are_one_line_and_status_2(tmp_path):
  for args, message in ((("run", "configs/tour.py"), "error: usage: bash launch.sh run"),
                        (("sweep",), "error: usage: bash launch.sh sweep"),
                        (("report",), "error: usage: bash launch.sh report ROOT"),
                        (("report", str(tmp_path / "none")), "error: no folder"),
                        (("install", "everything"), "error: unknown install variant "
                                                    "'everything'; allowed: test")):
    result = _launch(*args)
    assert result.returncode == 2, (args, result.stderr)
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], args
    assert result.stderr.startswith(message), (args, result.stderr)
  result = _launch("help")
  assert result.returncode == 2 and "bash launch.sh install [test]" in result.stdout


def test_run_passes_the_config_workdir_and_overrides_through(tmp_path):
  result = _launch("run", "configs/predict.py:smoke", str(tmp_path / "w"), "--config.top_kk=3")
  assert result.returncode == 2 and result.stderr.startswith("error: unknown config key 'top_kk'")
  assert not (tmp_path / "w").exists()


def test_sweep_passes_its_flags_through(tmp_path):
  result = _launch("sweep", "configs/zeiler14_occlusion.py", str(tmp_path / "root"), "--dry_run")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "[5/5] size=96,stride=32: {'size': 96, 'stride': 32}" in result.stdout
  assert not (tmp_path / "root").exists()
  result = _launch("sweep", "configs/zeiler14_occlusion.py", str(tmp_path / "root"),
                   "--executor=cloud")
  assert result.returncode == 2
  assert result.stderr.strip() == "error: flag --executor=cloud: value should be one of " \
      "<local|slurm>"


def test_report_writes_the_index_of_a_folder(tmp_path):
  config = ml_collections.ConfigDict({"experiment": "predict", "model": "m"})
  with runs.Run(config, tmp_path / "one") as run:
    report.save_image(run.dir / "a.png", np.zeros((4, 4, 3)))
    report.write_report(run.dir, "one", config, [("s", [("a", "a.png", None)])])
  result = _launch("report", str(tmp_path))
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == f"index: {tmp_path / 'index.html'}"
  assert "one/report.html" in (tmp_path / "index.html").read_text()


def test_the_readme_gives_a_new_machine_exactly_two_commands():
  readme = (REPO / "README.md").read_text()
  section = readme.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
  commands = [line.strip() for line in section.splitlines() if line.startswith("    ")]
  assert commands == ["bash launch.sh install && bash launch.sh run configs/tour.py runs/tour",
                      "bash launch.sh install test && bash launch.sh test"]
  ci = (REPO / ".ci" / "run").read_text()
  assert commands[1] in ci
  # the light install names no torch; the tests' extra does
  project = (REPO / "pyproject.toml").read_text()
  default = project.split("dependencies = [", 1)[1].split("]\n", 1)[0]
  assert not re.search(r'"(torch|torchvision|captum)\b', default)
  assert re.search(r'torch = \[\s*"torch==', project)
