"""CUDA weight-sum and draw kernels in the simulator: the same block sums and indices as the
CPU kernels (which run as Python here, NUMBA_DISABLE_JIT=1), and draws that follow the weights."""
from __future__ import annotations

import os

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    pytest.skip("no GPU: run through tests/test_cuda_backend.py (simulator)", allow_module_level=True)

from zeroproof_nb.kernels import weights as kw  # noqa: E402
from zeroproof_nb.kernels import weights_cuda as kwc  # noqa: E402

ARGS = (1e-6, 2.0, 1.0 / 100.0, 1.0)  # min_q_abs, power, 1/max_weight, 1/temperature


def _cpu(q):
    nb = kwc.n_blocks(q.size)
    sums = np.zeros(nb)
    stats = np.zeros((max(1, -(-q.size // kw.CHUNK)), kw.N_STATS))
    kw.weight_block_sums_serial(q, np.zeros(1), False, *ARGS, np.zeros(1), False, sums, stats)
    return sums


def test_block_sums_and_draws_equal_the_cpu_kernels():
    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, 1000)
    q[::97] = np.nan
    sums_cpu = _cpu(q)
    d_sums = cuda.device_array(sums_cpu.size)
    blocks, threads = kwc.launch_config(sums_cpu.size)
    kwc.weight_block_sums_kernel[blocks, threads](cuda.to_device(q), cuda.to_device(np.zeros(1)),
                                                  False, *ARGS, d_sums)
    np.testing.assert_array_equal(d_sums.copy_to_host(), sums_cpu)
    cum = np.empty_like(sums_cpu)
    last = kw.cumulative_sum(sums_cpu, cum)
    key = np.uint64(12345)
    out_cpu = np.empty(300, dtype=np.int64)
    kw.draw_block_cdf_serial(q, np.zeros(1), False, *ARGS, cum, last, key, out_cpu)
    d_out = cuda.device_array(300, dtype=np.int64)
    blocks, threads = kwc.launch_config(300)
    kwc.draw_kernel[blocks, threads](cuda.to_device(q), cuda.to_device(np.zeros(1)), False, *ARGS,
                                     cuda.to_device(cum), last, key, d_out)
    np.testing.assert_array_equal(d_out.copy_to_host(), out_cpu)
    assert not np.any(np.isnan(q[out_cpu]))


def test_draws_follow_the_weights():
    from scipy import stats

    q = np.array([0.05, 0.1, 0.5, 1.0, 2.0] * 30)  # 150 points, 2 blocks
    w = np.minimum(np.maximum(np.abs(q), ARGS[0]) ** -2.0 * ARGS[2], 1.0)
    sums = _cpu(q)
    cum = np.empty_like(sums)
    last = kw.cumulative_sum(sums, cum)
    n = 3000
    d_out = cuda.device_array(n, dtype=np.int64)
    blocks, threads = kwc.launch_config(n)
    kwc.draw_kernel[blocks, threads](cuda.to_device(q), cuda.to_device(np.zeros(1)), False, *ARGS,
                                     cuda.to_device(cum), last, np.uint64(7), d_out)
    idx = d_out.copy_to_host()
    levels = np.unique(q)
    counts = np.array([np.sum(q[idx] == v) for v in levels])
    p = np.array([w[q == v].sum() for v in levels]) / w.sum()
    assert stats.chisquare(counts, n * p).pvalue > 1e-3
