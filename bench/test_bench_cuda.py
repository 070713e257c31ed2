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


def _copy_bandwidth(nbytes_array) -> float:
    """Device-to-device copy bandwidth (GB/s, read + write) measured now, on this GPU."""
    dst = cuda.device_array_like(nbytes_array)
    dst.copy_to_device(nbytes_array)
    cuda.synchronize()
    s = reference_median(lambda: (dst.copy_to_device(nbytes_array), cuda.synchronize()),
                         rounds=5)
    return 2 * nbytes_array.nbytes / s / 1e9


def test_forward_float32_1e8_bandwidth(benchmark):
    """Target of issue #14: >= 50% of the device's copy bandwidth (same run)."""
    n = 100_000_000
    x = cuda.to_device(np.linspace(-1, 1, n, dtype=np.float32))
    theta, phi = np.array([0.5, 1.0, -0.3, 0.1]), np.array([-1.2, 0.2, 0.05])
    rational_eval_cuda(x, theta, phi)
    cuda.synchronize()

    def run():
        rational_eval_cuda(x, theta, phi)
        cuda.synchronize()

    benchmark(run)
    moved = n * (4 + 4 + 1)  # x read, value and tag written
    copy_gbs = _copy_bandwidth(x)
    if benchmark.stats is not None:
        gbs = moved / benchmark.stats.stats.median / 1e9
        benchmark.extra_info.update(n=n, gb_per_s=gbs, copy_gb_per_s=copy_gbs,
                                    fraction_of_copy=gbs / copy_gbs,
                                    device=str(cuda.get_current_device().name))


@pytest.mark.parametrize("n", [1_000_000], ids=["1e6"])
def test_fused_loss_and_grad_cuda(benchmark, n):
    """Target: >= 20x the 2-core CPU kernel (the CPU median is measured in the same run; on a
    GPU machine with more cores, scale the ratio by the CPU's core count / 2)."""
    from zeroproof_nb import rational_loss_and_grad

    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, n)
    t = np.tan(x)
    theta, phi = rng.normal(size=4), 0.2 * rng.normal(size=3)
    xd = cuda.to_device(x)
    rational_loss_and_grad(xd, t, theta, phi, device="cuda")
    benchmark(lambda: rational_loss_and_grad(xd, t, theta, phi, device="cuda"))
    cpu_s = reference_median(lambda: rational_loss_and_grad(x, t, theta, phi), rounds=3)
    a = rational_loss_and_grad(x, t, theta, phi)
    b = rational_loss_and_grad(x, t, theta, phi, device="cuda")
    benchmark.extra_info.update(n=n, loss_rel_diff=abs(a.loss - b.loss) / abs(a.loss))
    record_ratio(benchmark, cpu_s, "cpu_kernel")


@pytest.mark.parametrize("n", [1_000_000], ids=["1e6"])
def test_normal_equations_cuda(benchmark, n):
    from zeroproof_nb.least_squares import rational_normal_equations
    from zeroproof_nb.least_squares_cuda import rational_normal_equations_cuda

    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, n)
    y = 1.0 / (x - 1.3)
    theta, phi = rng.normal(size=4), 0.2 * rng.normal(size=3)
    rational_normal_equations_cuda(x, y, theta, phi)
    benchmark(lambda: rational_normal_equations_cuda(x, y, theta, phi))
    cpu_s = reference_median(lambda: rational_normal_equations(x, y, theta, phi), rounds=3)
    a = rational_normal_equations(x, y, theta, phi)
    b = rational_normal_equations_cuda(x, y, theta, phi)
    benchmark.extra_info.update(n=n, hessian_rel_diff=float(
        np.abs(a.hessian - b.hessian).max() / np.abs(a.hessian).max()))
    record_ratio(benchmark, cpu_s, "cpu_kernel")


@pytest.mark.parametrize("n", [1_000_000, 10_000_000], ids=["1e6", "1e7"])
def test_draws_without_replacement_cuda(benchmark, n):
    from zeroproof_nb.training import sampling as smp
    from zeroproof_nb.training.sampling_cuda import smallest_keys_cuda

    rng = np.random.default_rng(4)
    w = rng.uniform(0, 1, n)
    wd = cuda.to_device(w)
    k = 65536
    smallest_keys_cuda(wd, np.uint64(9), k)

    def run():
        smallest_keys_cuda(wd, np.uint64(9), k)
        cuda.synchronize()

    benchmark(run)
    cpu_s = reference_median(lambda: smp.smallest_keys(w, np.uint64(9), k, None), rounds=3)
    same = np.array_equal(smp.smallest_keys(w, np.uint64(9), k, None),
                          smallest_keys_cuda(wd, np.uint64(9), k).copy_to_host())
    benchmark.extra_info.update(n=n, k=k, same_indices_as_cpu=bool(same))
    record_ratio(benchmark, cpu_s, "cpu_kernel")


def test_tag_counts_cuda(benchmark):
    from zeroproof_nb import count_tags
    from zeroproof_nb.rational_cuda import count_tags_cuda

    n = 100_000_000
    tags = np.random.default_rng(5).integers(0, 4, n).astype(np.uint8)
    td = cuda.to_device(tags)
    count_tags_cuda(td)
    benchmark(lambda: count_tags_cuda(td))
    cpu_s = reference_median(lambda: count_tags(tags), rounds=3)
    assert np.array_equal(count_tags_cuda(td)[:4], count_tags(tags)[:4])
    benchmark.extra_info.update(n=n)
    record_ratio(benchmark, cpu_s, "cpu_kernel")


def test_alias_draws_1e8_from_a_prepared_pool_of_1e8(benchmark):
    """Target of issue #14: 10^8 importance draws from a prepared pool of 10^8 in < 50 ms."""
    from zeroproof_nb.training.importance_sampler import ImportanceSampler
    from zeroproof_nb.training.sampling_cuda import alias_draws_cuda

    n = 100_000_000
    q = np.random.default_rng(6).uniform(-1, 1, n)
    pool = ImportanceSampler(rng=0).prepare(q)
    td = cuda.to_device(pool.table)
    del q
    alias_draws_cuda(td, np.uint64(1), 1000)

    def run():
        alias_draws_cuda(td, np.uint64(1), n)
        cuda.synchronize()

    benchmark(run)
    got = alias_draws_cuda(td, np.uint64(1), 100_000).copy_to_host()
    from zeroproof_nb.training import sampling as smp

    cpu, _ = smp.alias_draws(pool.table, np.uint64(1), 100_000, np.zeros(1, np.uint16),
                             np.zeros(1, np.int64), False)
    benchmark.extra_info.update(n=n, draws=n, same_indices_as_cpu=bool(np.array_equal(got, cpu)),
                                target_s=0.05)
