"""CUDA forward kernel in the simulator (run by tests/test_cuda_backend.py with
NUMBA_ENABLE_CUDASIM=1 and NUMBA_DISABLE_JIT=1), against NumPy closed forms."""
from __future__ import annotations

import os

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as Pn

cuda = pytest.importorskip("numba.cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    pytest.skip("no GPU: run through tests/test_cuda_backend.py (simulator)", allow_module_level=True)

from zeroproof_nb.core import TRTag  # noqa: E402
from zeroproof_nb.rational import TRPolicy  # noqa: E402
from zeroproof_nb.rational_cuda import DeviceRational, rational_eval_cuda  # noqa: E402


def _t(x, dom):
    return (2 * x - (dom[0] + dom[1])) / (dom[1] - dom[0])


def test_monomial_and_chebyshev_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, 300)
    th, ph = rng.normal(size=4), 0.2 * rng.normal(size=3)
    y = rational_eval_cuda(x, th, ph)
    ref = Pn.polyval(x, th) / Pn.polyval(x, np.r_[1.0, ph])
    np.testing.assert_allclose(y["value"], ref, rtol=1e-12)
    assert np.all(y["tag"] == 0)
    dom = (-2.0, 3.0)
    y, q = rational_eval_cuda(x, th, ph, basis="chebyshev", domain=dom, return_q=True)
    t = _t(x, dom)
    np.testing.assert_allclose(q, C.chebval(t, np.r_[1.0, ph]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y["value"], C.chebval(t, th) / q, rtol=1e-12)
    y = rational_eval_cuda(x, th, ph, basis="chebyshev_anchored", domain=dom)
    t_a = -np.cosh(np.arccosh(10.0) / 3)
    qa = 1.0 + (1.0 - t / t_a) * C.chebval(t, ph)
    np.testing.assert_allclose(y["value"], C.chebval(t, th) / qa, rtol=1e-11)


def test_tags_poles_nan_policy_and_epsilon():
    th, ph = np.array([1.0, 0.0]), np.array([-2.0])        # y = 1/(1 − 2x): pole at 0.5
    x = np.array([0.5, 0.25, np.nan, 0.5000001, 0.4999999])
    y = rational_eval_cuda(x, th, ph)
    assert list(y["tag"][:3]) == [TRTag.PINF, TRTag.REAL, TRTag.PHI]
    pol = TRPolicy(tau_q_on=1e-3, tau_q_off=2e-3, tau_p_on=1e-6, tau_p_off=2e-6)
    y = rational_eval_cuda(x, th, ph, policy=pol)
    assert list(y["tag"][3:]) == [TRTag.NINF, TRTag.PINF]  # |Q| = 2e-7 < tau_q
    y = rational_eval_cuda(x[1:2], th, ph, q_epsilon=0.1)
    np.testing.assert_allclose(y["value"], [1.0 / (0.5 + 0.1)])


def test_heads_float32_and_device_arrays():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 100)
    th = rng.normal(size=(3, 3))
    for ph in (0.2 * rng.normal(size=2), 0.2 * rng.normal(size=(3, 2))):
        y = rational_eval_cuda(x, th, ph)
        assert y.shape == (100, 3)
        for j in range(3):
            pj = ph if ph.ndim == 1 else ph[j]
            ref = Pn.polyval(x, th[j]) / Pn.polyval(x, np.r_[1.0, pj])
            np.testing.assert_allclose(y["value"][:, j], ref, rtol=1e-12)
    y32 = rational_eval_cuda(x.astype(np.float32), th[0], ph[0])
    assert y32["value"].dtype == np.float32
    ref = Pn.polyval(x, th[0]) / Pn.polyval(x, np.r_[1.0, ph[0]])
    np.testing.assert_allclose(y32["value"], ref, rtol=1e-5)
    dev = rational_eval_cuda(cuda.to_device(x), th[0], ph[0], return_q=True)
    assert isinstance(dev, DeviceRational)
    np.testing.assert_allclose(dev.value.copy_to_host(), ref, rtol=1e-12)
    np.testing.assert_allclose(dev.q.copy_to_host(), Pn.polyval(x, np.r_[1.0, ph[0]]), rtol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        rational_eval_cuda(np.zeros((5, 2)), np.zeros(6), np.zeros(5))
    with pytest.raises(TypeError, match="float64 or float32"):
        rational_eval_cuda(cuda.to_device(np.zeros(4, dtype=np.int64)), np.zeros(2), np.zeros(1))
    with pytest.raises(ValueError, match="theta"):
        rational_eval_cuda(np.zeros(4), np.full(2, np.nan), np.zeros(1))
