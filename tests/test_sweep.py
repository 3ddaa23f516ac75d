"""Sweeps through submitit: the local executor for real (settings in separate processes, an
index comparing them), the Slurm path as far as this machine allows: the submission script
(flags and config options) always, and a real job on a private one-node Slurm cluster when
Debian's slurm-wlm is installed and the tests run as root (`launch.sh install test` does both),
including a run of two processes joined by jax.distributed.initialize()'s Slurm detection."""
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ml_collections
import pytest

from cnn_vis import sweep
from cnn_vis.errors import UserError

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))

TINY_SWEEP = textwrap.dedent("""
    import ml_collections
    from configs import predict
    def get_config(arg=None):
      config = predict.get_config("smoke")
      config.slurm = ml_collections.ConfigDict({"partition": "from_config", "time": 33})
      return config
    def get_sweep():
      return [{"top_k": 2}, {"top_k": 3}]
""")


def _sweep(tmp_path, *flags, env=None, config=TINY_SWEEP, timeout=900):
  path = tmp_path / "tiny_sweep.py"
  path.write_text(config)
  return subprocess.run([sys.executable, "-m", "cnn_vis.sweep", f"--config={path}",
                         f"--workdir={tmp_path / 'root'}", *flags], capture_output=True,
                        text=True, env=env or ENV, cwd=REPO, timeout=timeout, check=False)


@pytest.mark.slow
def test_the_local_executor_runs_each_setting_in_its_own_process(tmp_path):
  result = _sweep(tmp_path, "--parallel=2")
  assert result.returncode == 0, result.stderr[-3000:]
  root = tmp_path / "root"
  for k in (2, 3):
    lines = (root / f"top_k={k}" / "predictions.jsonl").read_text().splitlines()
    assert f'"top{k}"' in lines[0]
  statuses = {k: json.loads((root / f"top_k={k}" / "status.json").read_text()) for k in (2, 3)}
  pids = {s["pid"] for s in statuses.values()}
  assert all(s["status"] == "ok" for s in statuses.values())
  assert len(pids) == 2 and os.getpid() not in pids                 # two processes of their own
  assert len(list((root / ".submitit").glob("*/*_result.pkl"))) == 2
  index = (root / "index.html").read_text()
  assert "top_k=2/report.html" in index and "top_k=3/report.html" in index
  assert "<table class='sweep'>" in index and "<th>top_k</th>" in index
  sweep = json.loads((root / "sweep.json").read_text())
  assert [r["name"] for r in sweep["runs"]] == ["top_k=2", "top_k=3"]
  assert result.stdout.strip().splitlines()[-1] == f"index: {root / 'index.html'}"


def test_every_setting_is_checked_before_anything_is_submitted(tmp_path):
  path = tmp_path / "tiny_sweep.py"
  path.write_text(TINY_SWEEP)
  assert sweep.plan(str(path)) == [("top_k=2", {"top_k": 2}), ("top_k=3", {"top_k": 3})]
  path.write_text(TINY_SWEEP.replace('{"top_k": 3}', '{"top_k": float("nan")}'))
  with pytest.raises(UserError, match=r"^config.top_k = nan: "):
    sweep.plan(str(path))
  path.write_text("def get_config(arg=None):\n  return None\n")
  with pytest.raises(UserError, match="has no get_sweep"):
    sweep.plan(str(path))
  # the command line: one line, status 2, nothing written
  path.write_text(TINY_SWEEP.replace('{"top_k": 3}', '{"top_kk": 3}'))
  result = subprocess.run([sys.executable, "-m", "cnn_vis.sweep", f"--config={path}",
                           f"--workdir={tmp_path / 'root'}"], capture_output=True, text=True,
                          env=ENV, cwd=REPO, timeout=600, check=False)
  assert result.returncode == 2 and result.stderr.startswith("error: unknown config key 'top_kk'")
  assert "did you mean 'top_k'" in result.stderr and not (tmp_path / "root").exists()


def test_slurm_options_come_from_the_flags_then_the_config_then_the_defaults():
  config = ml_collections.ConfigDict({"slurm": {"partition": "from_config", "time": 33}})
  options = sweep.slurm_options(config, {"partition": None, "nodes": 2})
  assert options == {**sweep.SLURM_DEFAULTS, "partition": "from_config", "time": 33, "nodes": 2}
  assert sweep.slurm_options(config, {"partition": "gpu"})["partition"] == "gpu"
  assert sweep.slurm_options(ml_collections.ConfigDict(), {}) == sweep.SLURM_DEFAULTS
  with pytest.raises(UserError, match="--nodes must be >= 1, got 0"):
    sweep.slurm_options(config, {"nodes": 0})


FAKE_SBATCH = """#!/bin/sh
# Records the submission script (its last argument) instead of queueing it.
for last in "$@"; do :; done
cp "$last" "$RECORD"
echo "Submitted batch job 4242"
"""


def test_the_slurm_submission_carries_the_flags_and_the_configs_options(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name, text in (("sbatch", FAKE_SBATCH), ("srun", "#!/bin/sh\nexit 1\n")):
    (bin_dir / name).write_text(text)
    (bin_dir / name).chmod(0o755)
  record = tmp_path / "submitted.sh"
  env = dict(ENV, PATH=f"{bin_dir}:{os.environ['PATH']}", RECORD=str(record))
  result = _sweep(tmp_path, "--executor=slurm", "--nodes=2", "--gpus_per_node=4",
                  "--cpus_per_task=8", env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  script = record.read_text()
  for line in ("#SBATCH --partition=from_config", "#SBATCH --time=33", "#SBATCH --nodes=2",
               "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=1",
               "#SBATCH --cpus-per-task=8", "#SBATCH --array=0-1%2"):
    assert line in script, (line, script)
  assert "srun --unbuffered" in script and f"{sys.executable} -u -m submitit.core._submit" in script
  assert "submitted Slurm array job 4242 (2 runs)" in result.stdout
  record = json.loads((tmp_path / "root" / "sweep.json").read_text())
  assert [r["job_id"] for r in record["runs"]] == ["4242_0", "4242_1"]
  assert record["options"]["partition"] == "from_config" and record["options"]["nodes"] == 2
  assert "follow with: bash launch.sh report" in result.stdout


# ------------------------------------------------------------------ a real one-node cluster

SLURM_CONF = """ClusterName=cnnvis_test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _pid(path: Path):
  try:
    return int(path.read_text().strip())
  except (OSError, ValueError):
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
  """A private one-node Slurm cluster (its own config, ports and state); stopped afterwards."""
  binaries = ("slurmctld", "slurmd", "munged", "sbatch", "srun", "sinfo")
  if os.geteuid() != 0 or not all(shutil.which(b) for b in binaries):
    pytest.skip("needs root and Debian's slurm-wlm (bash launch.sh install test, as root)")
  folder = tmp_path_factory.mktemp("slurm")
  for sub in ("state", "spool"):
    (folder / sub).mkdir()
  host = socket.gethostname()
  conf = folder / "slurm.conf"
  conf.write_text(SLURM_CONF.format(host=host, dir=folder, ctld_port=_free_port(),
                                    d_port=_free_port(), cpus=os.cpu_count()))
  env = dict(ENV, SLURM_CONF=str(conf))
  started_munge = subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0
  if started_munge:
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    subprocess.run(["munged", "--force"], check=True, capture_output=True)
  subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
  subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
  for _ in range(120):
    state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env)
    if state.stdout.strip() == "idle":
      break
    time.sleep(0.5)
  else:
    pytest.fail(f"the test cluster did not come up: {state.stdout} {state.stderr}")
  yield env
  for name in ("slurmd.pid", "slurmctld.pid"):
    pid = _pid(folder / name)
    if pid:
      os.kill(pid, 15)
  if started_munge and _pid(Path("/run/munge/munged.pid")):
    os.kill(_pid(Path("/run/munge/munged.pid")), 15)


@pytest.mark.slow
def test_a_sweep_runs_as_a_real_slurm_array_job(tmp_path, slurm):
  one_setting = TINY_SWEEP.replace(', {"top_k": 3}', "")
  result = _sweep(tmp_path, "--executor=slurm", "--partition=test", "--wait", env=slurm,
                  config=one_setting)
  assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
  root = tmp_path / "root"
  job = json.loads((root / "sweep.json").read_text())["runs"][0]["job_id"]
  assert json.loads((root / "top_k=2" / "run.json").read_text())["slurm_job"] == job
  assert json.loads((root / "top_k=2" / "status.json").read_text())["status"] == "ok"
  assert "top_k=2/report.html" in (root / "index.html").read_text()


@pytest.mark.slow
def test_two_slurm_tasks_join_one_jax_program(tmp_path, slurm):
  # jax.distributed.initialize() finds the coordinator, count and rank in Slurm's environment.
  probe = ("from cnn_vis import runs; runs.initialize_distributed(); import jax; "
           "print('process', jax.process_index(), 'of', jax.process_count(), 'devices', "
           "jax.device_count())")
  result = subprocess.run(["srun", "--ntasks=2", sys.executable, "-c", probe], env=slurm,
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = sorted(line for line in result.stdout.splitlines() if line.startswith("process"))
  assert lines == ["process 0 of 2 devices 2", "process 1 of 2 devices 2"]
