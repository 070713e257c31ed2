"""GPU benchmarks (skipped without a usable CUDA device): the CUDA forward kernel and the
importance draws beside the CPU kernels, in the same run. Run on a lent GPU with
``bash bench/run_cuda_device.sh`` (writes bench/results/<date>-cuda-<device>.json)."""
from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import record_ratio, reference_median

cuda = pytest.importorskip("numba.cuda")
if not cuda.is_available():
    pytest.skip("no usable CUDA device", allow_module_level=True)

from zeroproof_nb import rational_eval  # noqa: E402
from zeroproof_nb.kernels import weights as kw  # noqa: E402
from zeroproof_nb.kernels import weights_cuda as kwc  # noqa: E402
from zeroproof_nb.rational_cuda import rational_eval_cuda  # noqa: E402


@pytest.mark.parametrize("n", [1_000_000, 10_000_000], ids=["1e6", "1e7"])
@pytest.mark.parametrize("basis", ["monomial", "chebyshev_anchored"])
def test_forward_cuda_device_resident(benchmark, n, basis):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, n)
    theta, phi = rng.normal(size=4), 0.2 * rng.normal(size=3)
    xd = cuda.to_device(x)
    rational_eval_cuda(xd, theta, phi, basis=basis)  # compile

    def run():
        rational_eval_cuda(xd, theta, phi, basis=basis)
        cuda.synchronize()

    benchmark(run)
    cpu = np.empty(n, dtype=rational_eval(x[:1], theta, phi, basis=basis).dtype)
    cpu_s = reference_median(lambda: rational_eval(x, theta, phi, basis=basis, out=cpu), rounds=3)
    ref = rational_eval_cuda(x, theta, phi, basis=basis)
    np.testing.assert_allclose(ref["value"], cpu["value"], rtol=1e-12)
    assert np.array_equal(ref["tag"], cpu["tag"])
    benchmark.extra_info.update(n=n, basis=basis, device=str(cuda.get_current_device().name))
    record_ratio(benchmark, cpu_s, "cpu_kernel")


@pytest.mark.parametrize("n", [1_000_000, 10_000_000], ids=["1e6", "1e7"])
def test_importance_draws_cuda(benchmark, n):
    rng = np.random.default_rng(1)
    q = rng.uniform(-1, 1, n)
    args = (1e-6, 2.0, 1e-2, 1.0)
    nb = kwc.n_blocks(n)
    qd, ed = cuda.to_device(q), cuda.to_device(np.zeros(1))
    sums = cuda.device_array(nb)
    out = cuda.device_array(65536, dtype=np.int64)

    def run():
        blocks, threads = kwc.launch_config(nb)
        kwc.weight_block_sums_kernel[blocks, threads](qd, ed, False, *args, sums)
        host = sums.copy_to_host()
        cum = np.empty_like(host)
        last = kw.cumulative_sum(host, cum)
        blocks, threads = kwc.launch_config(out.shape[0])
        kwc.draw_kernel[blocks, threads](qd, ed, False, *args, cuda.to_device(cum), last,
                                         np.uint64(3), out)
        cuda.synchronize()

    run()
    benchmark(run)

    def cpu():
        s = np.zeros(nb)
        st = np.zeros((-(-n // kw.CHUNK), kw.N_STATS))
        kw.weight_block_sums(q, np.zeros(1), False, *args, np.zeros(1), False, s, st)
        c = np.empty_like(s)
        last = kw.cumulative_sum(s, c)
        o = np.empty(65536, dtype=np.int64)
        kw.draw_block_cdf(q, np.zeros(1), False, *args, c, last, np.uint64(3), o)
        return o

    cpu_s = reference_median(cpu, rounds=3)
    agree = float(np.mean(cpu() == out.copy_to_host()))
    benchmark.extra_info.update(n=n, draws=65536, same_indices_as_cpu=agree)
    record_ratio(benchmark, cpu_s, "cpu_kernel")
