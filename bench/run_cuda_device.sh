#!/usr/bin/env bash
# One short script for a lent GPU (see DEVELOPERS/DESIGN: device time is minutes): the CUDA
# tests on the real device, then the GPU benchmarks; figures to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q ".[test,cuda]" >/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
python -m pytest -q tests/test_cuda_backend.py tests/cuda_sim -p no:cacheprovider || true
out="${OUT:-bench/results}/$(date +%F)-cuda-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_').json"
python -m pytest -q bench/test_bench_cuda.py --benchmark-json="$out"
echo "wrote $out"
