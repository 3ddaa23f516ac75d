#!/usr/bin/env bash
# cnn_vis launcher. Usage:
#   bash launch.sh install                      # venv in .venv + every dependency (+ Debian data packages)
#   bash launch.sh test [pytest args]           # the test suite (what CI runs)
#   bash launch.sh run CONFIG[:arg] WORKDIR [--config.key=value ...]
#   bash launch.sh sweep CONFIG[:arg] ROOT      # every get_sweep() setting, one workdir each
#   bash launch.sh report ROOT                  # ROOT/index.html linking every run's report.html
# On an accelerator host: CNN_VIS_HOST=user@host bash launch.sh run|sweep ... copies the repository
# there (rsync, without .venv) and runs the same command in it over ssh.
# Multi-host JAX: set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID on every host
# (or run under a cluster JAX auto-detects); cnn_vis.main then calls jax.distributed.initialize().
set -euo pipefail
cd "$(dirname "$0")"
PY=.venv/bin/python

install() {
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      >/dev/null || echo "warning: could not install Debian's dataset-fashion-mnist" >&2
  fi
  [ -x "$PY" ] || python3 -m venv .venv
  if ! { "$PY" -m pip install --upgrade pip && "$PY" -m pip install -e ".[torch,test]"; } \
      > .venv/install.log 2>&1; then
    tail -30 .venv/install.log >&2; echo "error: install failed; see .venv/install.log" >&2; exit 1
  fi
  echo "installed into .venv ($("$PY" -c 'import jax, flax; print("jax", jax.__version__, "flax", flax.__version__)'))"
}

remote() {
  local host="$CNN_VIS_HOST"; shift 0
  rsync -az --delete --exclude .venv --exclude runs --exclude .git ./ "$host:cnn_vis/"
  ssh "$host" "cd cnn_vis && CNN_VIS_HOST= bash launch.sh install && CNN_VIS_HOST= bash launch.sh $*"
}

cmd="${1:-}"; shift || true
if [ -n "${CNN_VIS_HOST:-}" ] && { [ "$cmd" = run ] || [ "$cmd" = sweep ]; }; then
  remote "$cmd" "$@"; exit
fi
case "$cmd" in
  install) install ;;
  test) exec "$PY" -m pytest -n 2 -q "$@" ;;
  run) config="$1"; workdir="$2"; shift 2
       exec "$PY" -m cnn_vis.main --config="$config" --workdir="$workdir" "$@" ;;
  sweep) exec "$PY" -m cnn_vis.sweep --config="$1" --workdir="$2" ;;
  report) exec "$PY" -c "import sys; from cnn_vis.report import write_index; print(write_index(sys.argv[1]))" "$1" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
