#!/usr/bin/env bash
# One short script for a lent GPU (device time is minutes; see DESIGN.md): the CUDA tests on the
# real device, then the GPU benchmarks, each beside the CPU kernel in the same run. Writes
#   bench/results/<date>-cuda-<device>.json / .md   (pytest-benchmark JSON and its table)
#   bench/results/<date>-cuda-<device>-tests.txt    (the test log)
# under $OUT instead of bench/results when OUT is set (the device runner's output folder).
# Usage: bash bench/run_cuda_device.sh [--quick]   (--quick: 1e6-point benchmarks only)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
# no network on a lent machine: install only if pip can (the package may already be importable)
"$PY" -m pip install -q ".[test,bench,cuda]" >/dev/null 2>&1 || echo "pip install skipped"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/zp-numba-cache}"
unset NUMBA_ENABLE_CUDASIM NUMBA_DISABLE_JIT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' /' '__')
name=${name:-unknown}
dest="${OUT:-bench/results}"
mkdir -p "$dest"
stem="$dest/$(date -u +%F)-cuda-$name"
"$PY" -c "from zeroproof_nb.device import backend_report; print(backend_report())" \
  | tee "$stem-tests.txt"
# the simulator tests, unchanged, on the real device (they skip nothing when a GPU is usable);
# test_cuda_backend.py adds the simulator run and the sm_90 PTX gate
"$PY" -m pytest -q -p no:cacheprovider tests/cuda_sim tests/test_cuda_backend.py \
  tests/test_device.py 2>&1 | tee -a "$stem-tests.txt" | tail -5
sel=()
if [[ "${1:-}" == "--quick" ]]; then sel=(-k "1e6 and not 1e8"); fi
"$PY" -m pytest -q -p no:cacheprovider bench/test_bench_cuda.py "${sel[@]}" \
  --benchmark-json="$stem.json" --benchmark-min-rounds=3 2>&1 | tail -15
"$PY" bench/summarize.py "$stem.json" > "$stem.md" && cat "$stem.md"
echo "wrote $stem.json $stem.md $stem-tests.txt"
