#!/usr/bin/env bash
# One entrypoint for local `docker run` and AWS SageMaker.
#   repro [STAGE...]        dvc repro (the default)
#   exp   [-S k=v ...]      dvc exp run with parameter overrides
#   train                   what SageMaker runs for a training job: dvc repro, then copy
#                           metrics and reports to /opt/ml/model (SageMaker uploads that folder)
#   splatbench ARGS...      the splatbench CLI
#   info                    versions and devices
# SageMaker invokes the image as `<image> train`; the working tree is the image's copy of the
# repo, or /opt/ml/input/data/code when a `code` channel is given.
set -euo pipefail

repo="${SPLATBENCH_HOME:-$(cd "$(dirname "$0")/.." && pwd)}"
if [[ -d /opt/ml/input/data/code ]]; then
  repo=/opt/ml/input/data/code
fi
cd "$repo"

# DVC needs a git repo for its lock file and experiments; images carry no .git.
if [[ ! -d .git ]] && ! git rev-parse --git-dir >/dev/null 2>&1; then
  git init -q
  git add -A >/dev/null 2>&1 || true
  git -c user.name=splatbench -c user.email=splatbench@localhost commit -qm "image snapshot" || true
fi

cmd="${1:-repro}"
[[ $# -gt 0 ]] && shift
# Record what the `auto` backend means on this machine (hardware.yaml, a DVC param of train and
# evaluate) before DVC decides what to re-run.
if [[ "$cmd" == repro || "$cmd" == exp || "$cmd" == train ]]; then
  splatbench hardware
fi
case "$cmd" in
  repro)
    exec dvc repro "$@"
    ;;
  exp)
    exec dvc exp run "$@"
    ;;
  train)
    # SageMaker syncs /opt/ml/checkpoints to S3 and restores it when a spot job restarts, so
    # an interrupted training resumes from its last checkpoint.
    export SPLATBENCH_CHECKPOINT_DIR="${SPLATBENCH_CHECKPOINT_DIR:-/opt/ml/checkpoints}"
    dvc repro "$@"
    model_dir="${SM_MODEL_DIR:-/opt/ml/model}"
    mkdir -p "$model_dir"
    for out in metrics reports data/splats data/compressed; do
      if [[ -d "$out" ]]; then
        mkdir -p "$model_dir/$(dirname "$out")"
        cp -r "$out" "$model_dir/$out"
      fi
    done
    exit 0
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
