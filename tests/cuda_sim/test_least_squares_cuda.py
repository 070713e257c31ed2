"""The CUDA Gauss-Newton pass (J^T J, J^T r) in the simulator against the CPU pass (which runs
as Python here, NUMBA_DISABLE_JIT=1) and against a NumPy finite-difference-free reference of
the plain L2 case (J from closed-form derivatives)."""
from __future__ import annotations

import os

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    pytest.skip("no GPU: run through tests/test_cuda_backend.py (simulator)", allow_module_level=True)

from zeroproof_nb.least_squares import rational_normal_equations  # noqa: E402
from zeroproof_nb.least_squares_cuda import rational_normal_equations_cuda  # noqa: E402
from zeroproof_nb.rational import TRPolicy  # noqa: E402

CASES = {
    "l2_monomial": dict(dp=3, dq=2, kw={}),
    "huber_cheb_weights_eps": dict(dp=2, dq=3, basis="chebyshev", domain=(-2.0, 2.0),
                                   weights=True, kw=dict(loss="huber", loss_scale=0.2,
                                                         q_epsilon=1e-3, alpha_phi=0.1)),
    "tukey_anchored_rejection": dict(dp=3, dq=2, basis="chebyshev_anchored",
                                     kw=dict(loss="tukey", lambda_rej=0.3,
                                             rejection_threshold=0.5, mode="hybrid",
                                             delta=0.2)),
    "heads_separate_q_policy": dict(dp=2, dq=2, n_out=2, shared=False,
                                    kw=dict(mode="saturating", saturation_bound=0.5,
                                            policy=TRPolicy(tau_q_on=1e-2, tau_q_off=2e-2))),
    "heads_shared_no_hessian": dict(dp=1, dq=1, n_out=3, n=300, kw=dict(hessian=False)),
}


def _data(name):
    c = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name) + 10)
    n = c.get("n", 200)
    dom = c.get("domain", (-1.0, 1.0))
    x = rng.uniform(dom[0], dom[1], n)
    x[3] = np.nan
    n_out = c.get("n_out", 1)
    theta = rng.normal(size=(c["dp"] + 1,) if n_out == 1 else (n_out, c["dp"] + 1))
    if n_out == 1 or c.get("shared", True):
        phi = 0.4 * rng.normal(size=c["dq"])
    else:
        phi = 0.4 * rng.normal(size=(n_out, c["dq"]))
    shape = (n,) if n_out == 1 else (n, n_out)
    target = rng.normal(size=shape)
    target.reshape(n, -1)[9, 0] = np.inf
    target.reshape(n, -1)[11, 0] = 40.0  # an outlier for the robust losses
    kw = dict(c["kw"], basis=c.get("basis", "monomial"), domain=dom)
    if c.get("weights"):
        kw["sample_weight"] = rng.uniform(0.1, 2.0, n)
    return x, target, theta, phi, kw


@pytest.mark.parametrize("name", sorted(CASES))
def test_normal_equations_cuda_equal_the_cpu_pass(name):
    x, target, theta, phi, kw = _data(name)
    ref = rational_normal_equations(x, target, theta, phi, **kw)
    got = rational_normal_equations_cuda(x, target, theta, phi, **kw)
    assert (got.n_used, got.n_finite_target, got.n_real) == \
        (ref.n_used, ref.n_finite_target, ref.n_real)
    assert got.n_used < x.size * (1 if np.ndim(theta) == 1 else theta.shape[0])
    # the same terms, summed in another order (tile trees vs CPU blocks): a few ulps of the
    # largest term
    assert got.loss == pytest.approx(ref.loss, rel=1e-12)
    assert got.data_loss == pytest.approx(ref.data_loss, rel=1e-12)
    assert got.rejection_loss == pytest.approx(ref.rejection_loss, rel=1e-12, abs=1e-300)
    scale = np.abs(ref.gradient).max()
    np.testing.assert_allclose(got.gradient, ref.gradient, rtol=1e-11, atol=1e-13 * scale)
    if ref.hessian is None:
        assert got.hessian is None
    else:
        hs = np.abs(ref.hessian).max()
        np.testing.assert_allclose(got.hessian, ref.hessian, rtol=1e-11, atol=1e-13 * hs)
        np.testing.assert_array_equal(got.hessian, got.hessian.T)
    again = rational_normal_equations_cuda(x, target, theta, phi, **kw)  # same bits
    assert again.loss == got.loss and np.array_equal(again.gradient, got.gradient)


def test_l2_pass_matches_a_numpy_jacobian():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, 260)
    theta, phi = rng.normal(size=3), np.array([0.3, -0.2])
    y = rng.normal(size=260)
    got = rational_normal_equations_cuda(x, y, theta, phi)
    p = np.polynomial.polynomial.polyval(x, theta)
    q = np.polynomial.polynomial.polyval(x, np.r_[1.0, phi])
    r = p / q - y
    jac = np.hstack([np.vander(x, 3, increasing=True) / q[:, None],
                     -(p / q ** 2)[:, None] * np.vander(x, 3, increasing=True)[:, 1:]])
    w = 1.0 / x.size
    np.testing.assert_allclose(got.gradient, w * jac.T @ r, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got.hessian, w * jac.T @ jac, rtol=1e-10, atol=1e-14)
    assert got.data_loss == pytest.approx(0.5 * w * np.sum(r * r), rel=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        rational_normal_equations_cuda(np.zeros((4, 2)), np.zeros(4), np.zeros(6), np.zeros(5))
    with pytest.raises(ValueError, match="loss"):
        rational_normal_equations_cuda(np.zeros(4), np.zeros(4), np.zeros(2), np.zeros(1),
                                       loss="mae")
    with pytest.raises(TypeError, match="host x"):
        rational_normal_equations_cuda(cuda.to_device(np.zeros(4)), np.zeros(4), np.zeros(2),
                                       np.zeros(1))
