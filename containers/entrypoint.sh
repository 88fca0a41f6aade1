#!/usr/bin/env bash
# One entrypoint for local `docker run` and AWS SageMaker (PID 1 is tini, which forwards signals).
#   repro [STAGE...]        dvc repro (the default)
#   exp   [-S k=v ...]      dvc exp run with parameter overrides
#   train                   what SageMaker runs for a training job: the job runner
#                           (splatbench.cloud.job_runner) checks out the `code` channel's commit,
#                           composes params.yaml with the job's overrides, pulls/reproduces/pushes
#                           the targets stage by stage and fills /opt/ml/model; see its docstring
#   splatbench ARGS...      the splatbench CLI
#   info                    versions and devices
# Commands other than `train` run in the image's copy of the project ($SPLATBENCH_HOME).
set -euo pipefail

cmd="${1:-repro}"
[[ $# -gt 0 ]] && shift

if [[ "$cmd" == "train" ]]; then
  # exec: the runner becomes tini's child and receives SIGTERM (stop, spot interruption)
  # directly; it forwards it to the running stage. The job's code comes from its code
  # channel, so nothing below (the image's copy, its git snapshot) applies.
  exec python -m splatbench.cloud.job_runner "$@"
fi

repo="${SPLATBENCH_HOME:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$repo"

# DVC needs a git repo for its lock file and experiments; images carry no .git.
if [[ ! -d .git ]] && ! git rev-parse --git-dir >/dev/null 2>&1; then
  git init -q
  git add -A >/dev/null 2>&1 || true
  git -c user.name=splatbench -c user.email=splatbench@localhost commit -qm "image snapshot" || true
fi

# Record what the `auto` backend means on this machine (hardware.yaml, a DVC param of train and
# evaluate) before DVC decides what to re-run. (`train` does this in the job's own checkout.)
if [[ "$cmd" == repro || "$cmd" == exp ]]; then
  splatbench hardware
fi
case "$cmd" in
  repro)
    exec dvc repro "$@"
    ;;
  exp)
    exec dvc exp run "$@"
    ;;
  splatbench)
    exec splatbench "$@"
    ;;
  info)
    exec splatbench info
    ;;
  *)
    echo "entrypoint: unknown command '$cmd' (use repro, exp, train, splatbench, info)" >&2
    exit 64
    ;;
esac
