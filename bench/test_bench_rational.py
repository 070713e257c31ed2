"""Rational kernel benchmarks, each beside its references in the same rounds (``ratio_gate``).

* forward ``rational_eval`` at N = 10^4 / 10^6 / 10^7 (small / medium / large), degrees (3, 2)
  and (10, 10), float64 and float32, into a reused ``out`` buffer, beside (a) a NumPy vectorised
  implementation of the same outputs (Horner, IEEE quotient, tags) — target >= 25x for (3, 2) at
  10^7 —, (b) ``numpy.polynomial.polynomial.polyval`` for P and Q and their quotient (no tags),
  and (c) a parallel copy of the same bytes (x in; value and tag written through the same
  structured-array field views), the bandwidth bound — target: kernel time <= 1.5x copy time,
  i.e. ``ratio_vs_parallel_copy`` >= 0.67 for (3, 2) float64 at 10^7;
* fused forward+backward ``rational_loss_and_grad`` at N = 10^4 / 10^6 / 10^7 (degrees (3, 2),
  mse) beside a NumPy implementation of the same math (values, tags, Q, loss, both gradients,
  |Q| statistics except the lazily computed percentiles) — target >= 20x.

Run: ``python -m pytest bench/test_bench_rational.py``. The first call of each case (compile or
cache load) happens before timing.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import polynomial as P

from bench.conftest import sized
from bench.references import numpy_eval, numpy_loss_and_grad, parallel_copy
from zeroproof_nb.core import tr_dtype
from zeroproof_nb.rational import rational_eval, rational_loss_and_grad


def _params(dp, dq, dtype):
    rng = np.random.default_rng(3)
    theta = (rng.normal(size=dp + 1) * 0.3).astype(dtype)
    phi = rng.uniform(-1, 1, size=dq)
    phi = (0.5 * phi / np.abs(phi).sum()).astype(dtype)  # |Q| in [0.5, 1.5] on [-1, 1]
    return theta, phi


def polynomial_eval(x, theta, phi):
    """``numpy.polynomial`` reference: P(x) / (1 + x * Phi(x)), IEEE values only."""
    with np.errstate(all="ignore"):
        return P.polyval(x, theta) / (1.0 + x * P.polyval(x, phi))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("dp,dq", [(3, 2), (10, 10)], ids=["deg3-2", "deg10-10"])
@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000, large=10_000_000))
def test_forward(benchmark, ratio_gate, n, dp, dq, dtype):
    x = np.random.default_rng(0).uniform(-1, 1, n).astype(dtype)
    theta, phi = _params(dp, dq, dtype)
    out = np.empty(n, dtype=tr_dtype(dtype))
    rational_eval(x, theta, phi, out=out)
    ref = np.empty_like(out)
    numpy_eval(x, theta, phi, ref)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(ref["value"], out["value"], rtol=rtol)
    np.testing.assert_allclose(polynomial_eval(x, theta, phi), out["value"], rtol=rtol)
    copy = np.empty_like(out)
    benchmark.group = f"forward-n{n}"
    benchmark.extra_info.update(n=n, degrees=[dp, dq], dtype=np.dtype(dtype).name)
    ratios = ratio_gate(lambda: rational_eval(x, theta, phi, out=out), {
        "numpy": lambda: numpy_eval(x, theta, phi, ref),
        "numpy_polynomial": lambda: polynomial_eval(x, theta, phi),
        "parallel_copy": lambda: parallel_copy(x, copy["value"], copy["tag"]),
    })
    if ratios:
        benchmark.extra_info["kernel_over_copy"] = 1.0 / ratios["ratio_vs_parallel_copy"]


@pytest.mark.parametrize("mode,delta", [("mask_real", None), ("hybrid", 0.7)])
@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000, large=10_000_000))
def test_fused_forward_backward(benchmark, ratio_gate, n, mode, delta):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, n)
    t = np.sin(3 * x)
    theta, phi = _params(3, 2, np.float64)
    res = rational_loss_and_grad(x, t, theta, phi, mode=mode, delta=delta)
    ref = numpy_loss_and_grad(x, t, theta, phi, mode, delta)
    np.testing.assert_allclose(res.grad_theta, ref[1], rtol=1e-9)
    np.testing.assert_allclose(res.grad_phi, ref[2], rtol=1e-9)
    benchmark.group = f"fused-n{n}"
    benchmark.extra_info.update(n=n, degrees=[3, 2], mode=mode, delta=delta)
    ratio_gate(lambda: rational_loss_and_grad(x, t, theta, phi, mode=mode, delta=delta),
               {"numpy": lambda: numpy_loss_and_grad(x, t, theta, phi, mode, delta)})
