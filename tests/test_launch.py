"""launch.sh and sweeps: get_sweep() expands to one run per setting, and an index links them."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_sweep_runs_each_setting_and_writes_an_index(tmp_path):
  config = tmp_path / "tiny_sweep.py"
  config.write_text(
      "from configs import predict\n"
      "def get_config(arg=None):\n  return predict.get_config('smoke')\n"
      "def get_sweep():\n  return [{'top_k': 2}, {'top_k': 3}]\n")
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run([sys.executable, "-m", "cnn_vis.sweep", f"--config={config}",
                           f"--workdir={tmp_path / 'root'}"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  for k in (2, 3):
    lines = (tmp_path / "root" / f"top_k={k}" / "predictions.jsonl").read_text().splitlines()
    assert f'"top{k}"' in lines[0]
  index = (tmp_path / "root" / "index.html").read_text()
  assert "top_k=2/report.html" in index and "top_k=3/report.html" in index


def test_sweep_of_a_config_without_get_sweep_is_an_error(tmp_path):
  config = tmp_path / "plain.py"
  config.write_text("def get_config(arg=None):\n  return None\n")
  result = subprocess.run([sys.executable, "-m", "cnn_vis.sweep", f"--config={config}",
                           f"--workdir={tmp_path / 'root'}"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO, timeout=300,
                          check=False)
  assert result.returncode == 2
  assert "has no get_sweep()" in result.stderr
