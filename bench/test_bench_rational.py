"""Rational kernel benchmarks, each beside its references in the same run.

* forward ``rational_eval`` at N = 10^6 and 10^7, degrees (3, 2) and (10, 10), float64 and
  float32, into a reused ``out`` buffer, beside (a) a NumPy vectorised implementation of the same
  outputs (Horner, IEEE quotient, tags) — target >= 25x for (3, 2) at 10^7 — and (b) a parallel
  copy of the same bytes (x in; value and tag written through the same structured-array field
  views), the bandwidth bound — target: kernel time <= 1.5x copy time, i.e.
  ``ratio_vs_parallel_copy`` >= 0.67 for (3, 2) float64 at 10^7;
* fused forward+backward ``rational_loss_and_grad`` at N = 10^6 (degrees (3, 2), mse) beside a
  NumPy implementation of the same math (values, tags, Q, loss, both gradients, |Q| statistics
  except the lazily computed percentiles) — target >= 20x.

Run: ``python -m pytest bench/test_bench_rational.py``. The first call of each case (compile or
cache load) happens before timing.
"""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange

from bench.conftest import record_ratio, reference_median
from zeroproof_nb.core import tr_dtype
from zeroproof_nb.rational import rational_eval, rational_loss_and_grad


@njit(cache=True, parallel=True)
def parallel_copy(x, val, tag):
    """The same bytes as the forward kernel: 8 (or 4) in, 9 (or 5) out per point."""
    for i in prange(x.shape[0]):
        val[i] = x[i]
        tag[i] = 0


def numpy_eval(x, theta, phi, out):
    """NumPy vectorised forward with the same outputs (value and transreal tag)."""
    with np.errstate(all="ignore"):
        p = np.full_like(x, theta[-1])
        for c in theta[-2::-1]:
            p *= x
            p += c
        q = np.ones_like(x)
        if len(phi):
            q = np.full_like(x, phi[-1])
            for c in phi[-2::-1]:
                q *= x
                q += c
            q *= x
            q += 1
        y = p / q
    tag = np.zeros(x.shape, np.uint8)
    tag[np.isposinf(y)] = 1
    tag[np.isneginf(y)] = 2
    tag[np.isnan(y) | ~np.isfinite(x)] = 3
    y[~np.isfinite(x)] = np.nan
    out["value"] = y
    out["tag"] = tag
    return out


def numpy_loss_and_grad(x, t, theta, phi, mode="mask_real", delta=None, bound=1.0):
    """NumPy implementation of the fused pass (1-D monomial, one output, mse, no weights)."""
    n = x.shape[0]
    with np.errstate(all="ignore"):
        V = np.vander(x, max(len(theta), len(phi) + 1), increasing=True)
        p = V[:, :len(theta)] @ theta
        q = 1.0 + V[:, 1:len(phi) + 1] @ phi
        y = p / q
        tag = np.zeros(n, np.uint8)
        tag[np.isposinf(y)] = 1
        tag[np.isneginf(y)] = 2
        tag[np.isnan(y)] = 3
        real = (tag == 0) & np.isfinite(t)
        r = np.where(real, y - t, 0.0)
        loss = 0.5 * np.sum(r * r) / n
        g = r / n
        absq = np.abs(q)
        if mode == "saturating":
            sat = np.ones(n, bool)
        elif mode == "hybrid" and delta is not None:
            sat = absq <= delta
        else:
            sat = np.zeros(n, bool)
        inv_q = 1.0 / np.where(real, q, 1.0)
        den = q * q + bound * bound
        dp = np.where(sat, np.sign(q) / np.sqrt(den), inv_q)
        dq = np.where(sat, -p / den, -y * inv_q)
        grad_theta = np.where(real, g * dp, 0.0) @ V[:, :len(theta)]
        grad_phi = np.where(real, g * dq, 0.0) @ V[:, 1:len(phi) + 1]
        fin = np.isfinite(absq)
        stats = dict(q_min=absq[fin].min(), q_mean=absq[fin].mean(),
                     n_saturating=int(np.sum(sat & real)), n_mask_real=int(np.sum(~sat & real)),
                     near_pole_ratio=float(np.mean(absq <= delta)) if delta is not None else 0.0,
                     tag_counts=np.bincount(tag, minlength=4))
    out = np.empty(n, tr_dtype(x.dtype))
    out["value"] = y
    out["tag"] = tag
    return loss, grad_theta, grad_phi, out, q, stats


def _params(dp, dq, dtype):
    rng = np.random.default_rng(3)
    theta = (rng.normal(size=dp + 1) * 0.3).astype(dtype)
    phi = rng.uniform(-1, 1, size=dq)
    phi = (0.5 * phi / np.abs(phi).sum()).astype(dtype)  # |Q| in [0.5, 1.5] on [-1, 1]
    return theta, phi


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("dp,dq", [(3, 2), (10, 10)], ids=["deg3-2", "deg10-10"])
@pytest.mark.parametrize("n", [1_000_000, 10_000_000], ids=["1e6", "1e7"])
def test_forward(benchmark, n, dp, dq, dtype):
    x = np.random.default_rng(0).uniform(-1, 1, n).astype(dtype)
    theta, phi = _params(dp, dq, dtype)
    out = np.empty(n, dtype=tr_dtype(dtype))
    rational_eval(x, theta, phi, out=out)
    benchmark(rational_eval, x, theta, phi, out=out)
    ref = np.empty_like(out)
    numpy_s = reference_median(lambda: numpy_eval(x, theta, phi, ref), rounds=3)
    np.testing.assert_allclose(ref["value"], out["value"], rtol=1e-4 if dtype == np.float32 else 1e-10)
    copy_s = reference_median(lambda: parallel_copy(x, ref["value"], ref["tag"]), rounds=15)
    benchmark.extra_info.update(n=n, degrees=[dp, dq], dtype=np.dtype(dtype).name,
                                kernel_over_copy=benchmark.stats.stats.median / copy_s)
    record_ratio(benchmark, copy_s, "parallel_copy")
    record_ratio(benchmark, numpy_s, "numpy")


@pytest.mark.parametrize("mode,delta", [("mask_real", None), ("hybrid", 0.7)])
def test_fused_forward_backward(benchmark, mode, delta):
    n = 1_000_000
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, n)
    t = np.sin(3 * x)
    theta, phi = _params(3, 2, np.float64)
    res = rational_loss_and_grad(x, t, theta, phi, mode=mode, delta=delta)
    benchmark(rational_loss_and_grad, x, t, theta, phi, mode=mode, delta=delta)
    ref = numpy_loss_and_grad(x, t, theta, phi, mode, delta)
    np.testing.assert_allclose(res.grad_theta, ref[1], rtol=1e-9)
    np.testing.assert_allclose(res.grad_phi, ref[2], rtol=1e-9)
    numpy_s = reference_median(lambda: numpy_loss_and_grad(x, t, theta, phi, mode, delta),
                               rounds=5)
    benchmark.extra_info.update(n=n, degrees=[3, 2], mode=mode, delta=delta)
    record_ratio(benchmark, numpy_s, "numpy")
