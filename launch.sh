#!/usr/bin/env bash
# cnn_vis launcher. Usage:
#   bash launch.sh install [test]        # .venv: the light install (no torch); `test` adds the
#                                        # tests' extras (torch, torchvision, captum, pytest...)
#   bash launch.sh test [pytest args]    # the test suite (what CI runs; needs `install test`)
#   bash launch.sh run CONFIG[:arg] WORKDIR [--config.key=value ...]
#   bash launch.sh sweep CONFIG[:arg] ROOT [--executor=local|slurm] [--parallel=N]
#                 [--partition=P] [--nodes=N] [--gpus_per_node=G] [--time=MINUTES] [--wait]
#   bash launch.sh report ROOT           # ROOT/index.html: every run below ROOT, sweeps compared
# Run as root on Debian, `install` also installs Debian's dataset-fashion-mnist, and
# `install test` chromium + chromium-driver (the reports' browser test) and slurm-wlm (the
# tests start a private one-node Slurm cluster to run a sweep through it).
# Sweeps run through submitit: locally (default) or as a Slurm array job; multi-node runs call
# jax.distributed.initialize(), which reads the cluster from Slurm's environment.
set -euo pipefail
cd "$(dirname "$0")"
PY=.venv/bin/python

debian_packages() {   # packages... : installed when run as root on Debian, else a warning
  local missing=()
  for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
      >/dev/null 2>&1 || echo "warning: could not install Debian's ${missing[*]}" >&2
  else
    echo "note: Debian packages ${missing[*]} not installed (run as root on Debian to add them)" >&2
  fi
}

install() {
  local extras=""
  case "${1:-}" in
    "") ;;
    test) extras="[torch,test]" ;;
    *) echo "error: unknown install variant '$1'; allowed: test" >&2; exit 2 ;;
  esac
  [ -d /usr/share/datasets/fashion-mnist ] || debian_packages dataset-fashion-mnist
  [ -z "$extras" ] || debian_packages chromium chromium-driver slurm-wlm
  [ -x "$PY" ] || python3 -m venv .venv
  if ! { "$PY" -m pip install --upgrade pip && "$PY" -m pip install -e ".$extras"; } \
      > .venv/install.log 2>&1; then
    tail -30 .venv/install.log >&2; echo "error: install failed; see .venv/install.log" >&2; exit 1
  fi
  echo "installed into .venv ($("$PY" -c 'import jax, flax; print("jax", jax.__version__, "flax", flax.__version__)')${extras:+, with the test extras})"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  install) install "$@" ;;
  test) "$PY" -c "import pytest, torch" 2>/dev/null \
          || { echo "error: the test extras are missing; run: bash launch.sh install test" >&2; exit 2; }
        exec "$PY" -m pytest -n 2 -q "$@" ;;
  run) [ $# -ge 2 ] || { echo "error: usage: bash launch.sh run CONFIG[:arg] WORKDIR [--config.key=value ...]" >&2; exit 2; }
       config="$1"; workdir="$2"; shift 2
       exec "$PY" -m cnn_vis.main --config="$config" --workdir="$workdir" "$@" ;;
  sweep) [ $# -ge 2 ] || { echo "error: usage: bash launch.sh sweep CONFIG[:arg] ROOT [--executor=local|slurm] ..." >&2; exit 2; }
         config="$1"; root="$2"; shift 2
         exec "$PY" -m cnn_vis.sweep --config="$config" --workdir="$root" "$@" ;;
  report) [ $# -eq 1 ] || { echo "error: usage: bash launch.sh report ROOT" >&2; exit 2; }
          [ -d "$1" ] || { echo "error: no folder '$1'" >&2; exit 2; }
          exec "$PY" -c "import sys; from cnn_vis.report import write_index; print('index:', write_index(sys.argv[1]))" "$1" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
