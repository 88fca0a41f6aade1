#!/usr/bin/env bash
# GPU validation of splatbench's CUDA path, on one GPU (about 4-6 minutes once gsplat's kernels
# are built; a first-use kernel compile is timed and reported separately).
#   benchmarks/gpu/validate.sh [OUT_DIR]        (default: benchmarks/gpu/out)
# Steps, each writing OUT_DIR/<step>.json, then OUT_DIR/summary.json:
#   probe                gsplat's kernels load and render one Gaussian (compile time reported)
#   parity               tests/test_render_gsplat_parity.py: images and gradients vs our CPU
#                        rasterizer (must pass, not skip)
#   train_default        the built-in scene, 3000 steps, gsplat + DefaultStrategy
#   train_default_rerun  the same run again: spread_rerun = run-to-run difference (atomic adds)
#   train_mcmc           the same with MCMC
#   train_resumed        a run SIGKILLed after its first checkpoint, then resumed:
#                        spread_resume = its difference from train_default
#   itps                 forward+backward it/s, gsplat (CUDA) vs our rasterizer (CPU)
# Needs: the project installed in .venv with a CUDA torch and gsplat (README, "GPU boxes").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$(realpath -m "${1:-$root/benchmarks/gpu/out}")"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
py="$root/.venv/bin/python"
steps_py="$root/benchmarks/gpu/validate.py"
mkdir -p "$out"
declare -A seconds=()
started=$SECONDS

step() {  # step NAME COMMAND...: run, time, and stop the script on failure
  local name="$1" t0=$SECONDS
  shift
  echo "=== $name"
  if ! "$@"; then
    echo "validate: step '$name' failed" >&2
    exit 1
  fi
  seconds[$name]=$((SECONDS - t0))
  echo "--- $name: ${seconds[$name]} s"
}

parity() {
  local log="$out/parity.log"
  "$py" -m pytest tests/test_render_gsplat_parity.py -v -rs -p no:cacheprovider >"$log" 2>&1 \
    || { cat "$log"; return 1; }
  cat "$log"
  if grep -q -E "SKIPPED|no tests ran" "$log"; then
    echo "validate: the parity tests were skipped: gsplat is not usable here" >&2
    return 1
  fi
  "$py" - "$log" "$out/parity.json" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
passed = len(re.findall(r" PASSED", text))
json.dump({"passed": passed, "log": sys.argv[1]}, open(sys.argv[2], "w"))
PY
}

train() {  # train NAME STRATEGY [extra args]
  local name="$1" strategy="$2"
  shift 2
  "$py" "$steps_py" train --backend gsplat --strategy "$strategy" \
    --out "$out/$name.json" --params-out "$out/$name.pt" "$@"
}

resume_after_kill() {
  local ckpt="$out/ckpt_resume" log="$out/train_killed.log"
  rm -rf "$ckpt"
  "$py" "$steps_py" train --backend gsplat --strategy default --checkpoint-dir "$ckpt" \
    --out "$out/train_killed.json" >"$log" 2>&1 &
  local pid=$! waited=0
  until compgen -G "$ckpt/ckpt_*.pt" >/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "validate: the run ended before its first checkpoint" >&2
      cat "$log" >&2
      return 1
    fi
    if ((waited >= 600)); then
      kill -9 "$pid"
      echo "validate: no checkpoint after 300 s" >&2
      return 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  echo "killed the run after $(basename "$(compgen -G "$ckpt/ckpt_*.pt" | sort | tail -1)")"
  train train_resumed default --checkpoint-dir "$ckpt"
  "$py" - "$out/train_resumed.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["resumed_from_step"], f"the second run did not resume: {doc['resumed_from_step']}"
print("resumed from step", doc["resumed_from_step"])
PY
}

nvidia-smi -L || true
splatbench info
step probe "$py" "$steps_py" probe --out "$out/probe.json"
step parity parity
step scene dvc repro sfm@blocks
step train_default train train_default default
step train_default_rerun train train_default_rerun default
step spread_rerun "$py" "$steps_py" compare "$out/train_default.pt" "$out/train_default_rerun.pt" \
  --json-a "$out/train_default.json" --json-b "$out/train_default_rerun.json" \
  --out "$out/spread_rerun.json"
step train_mcmc train train_mcmc mcmc
step resume resume_after_kill
step spread_resume "$py" "$steps_py" compare "$out/train_default.pt" "$out/train_resumed.pt" \
  --json-a "$out/train_default.json" --json-b "$out/train_resumed.json" \
  --out "$out/spread_resume.json"
step itps "$py" "$steps_py" itps --backends torch,gsplat --out "$out/itps.json"

{
  echo "{"
  first=1
  for name in "${!seconds[@]}"; do
    ((first)) || echo ","
    first=0
    printf '  "%s": %s' "$name" "${seconds[$name]}"
  done
  printf ',\n  "total": %s\n}\n' "$((SECONDS - started))"
} >"$out/timings.json"
"$py" "$steps_py" summary "$out" --out "$out/summary.json"
echo "validate: done in $((SECONDS - started)) s; summary in $out/summary.json"
