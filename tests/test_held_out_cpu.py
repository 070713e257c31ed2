"""held_out_point_losses through the one generic compiled loop (kernels.held_out_cpu) equals
the losses computed from the forward kernel's outputs (rational_eval), to rounding, for every
basis, loss, tag policy, ε, several heads and n-D input; and from numpy.polynomial."""
from __future__ import annotations

import numpy as np
import pytest

from zeroproof_nb.kernels import least_squares as kls
from zeroproof_nb.kernels import least_squares_cpu as klc
from zeroproof_nb.layers import TRRational
from zeroproof_nb.least_squares import held_out_point_losses, robust_threshold
from zeroproof_nb.rational import TRPolicy, rational_eval


def _from_forward(x, t, layer, loss="l2", policy=None, q_epsilon=0.0):
    out = rational_eval(np.asarray(x, float), layer.theta, layer.phi, basis=layer.kernel_basis,
                        domain=layer.domain, policy=policy, q_epsilon=q_epsilon)
    t = np.broadcast_to(np.asarray(t, float), out.shape)
    xa = np.asarray(x, float)
    fx = np.isfinite(xa) if xa.ndim == 1 else np.all(np.isfinite(xa), axis=1)
    if out.ndim == 2:
        fx = np.repeat(fx[:, None], out.shape[1], axis=1)
    use = np.isfinite(t) & fx
    r = np.where(out["tag"] == 0, out["value"] - t, np.inf)[use]
    rho = np.empty(r.size)
    klc.robust_losses(kls.ROBUST_CODES[loss], np.ascontiguousarray(r), robust_threshold(loss, 1.0), rho)
    return rho


def _random_layer(rng, *args, **kw):
    layer = TRRational(*args, **kw)
    layer.set_parameters([rng.standard_normal(layer.theta.shape),
                          0.5 * rng.standard_normal(layer.phi.shape)])
    return layer


def _close(a, b):
    assert a.shape == b.shape
    fin = np.isfinite(b)
    np.testing.assert_array_equal(np.isfinite(a), fin)
    np.testing.assert_allclose(a[fin], b[fin], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("basis,dp,dq", [("chebyshev", 3, 2), ("chebyshev", 2, 1),
                                         ("monomial", 3, 2), ("chebyshev", 6, 7)])
@pytest.mark.parametrize("loss", ["l2", "huber", "tukey"])
@pytest.mark.parametrize("policy,eps", [(None, 0.0), (TRPolicy(tau_q_on=1e-2, tau_q_off=2e-2), 0.0),
                                        (None, 1e-3)])
def test_generic_loop_equals_the_forward_kernel(basis, dp, dq, loss, policy, eps):
    rng = np.random.default_rng(dp * 10 + dq)
    x = np.concatenate([rng.uniform(-2, 3, 300), [np.nan, 0.3]])
    t = np.sin(x) + rng.standard_normal(x.size)
    t[5] = np.nan
    layer = _random_layer(rng, dp, dq, basis=basis, domain=(-2, 3))
    got = held_out_point_losses(x, t, layer.theta, layer.phi, basis=layer.kernel_basis,
                                domain=layer.domain, loss=loss, policy=policy, q_epsilon=eps)
    _close(got, _from_forward(x, t, layer, loss, policy, eps))


def test_heads_and_nd_input():
    rng = np.random.default_rng(1)
    multi = _random_layer(rng, 2, 2, n_outputs=3)
    x = rng.uniform(-1, 1, 200)
    t = rng.standard_normal((200, 3))
    got = held_out_point_losses(x, t, multi.theta, multi.phi, basis=multi.kernel_basis,
                                domain=multi.domain)
    _close(got, _from_forward(x, t, multi))
    nd = _random_layer(rng, 2, 2, input_dim=2, basis="monomial")
    x2 = rng.uniform(-1, 1, (200, 2))
    t2 = rng.standard_normal(200)
    got = held_out_point_losses(x2, t2, nd.theta, nd.phi, basis=nd.kernel_basis, domain=nd.domain)
    _close(got, _from_forward(x2, t2, nd))


def test_against_numpy_polynomial():
    rng = np.random.default_rng(2)
    layer = _random_layer(rng, 3, 2, basis="chebyshev", denominator="unit_constant",
                          domain=(-1.0, 1.0))
    x = rng.uniform(-1, 1, 500)
    t = rng.standard_normal(500)
    p = np.polynomial.chebyshev.chebval(x, layer.theta)
    q = np.polynomial.chebyshev.chebval(x, np.concatenate([[1.0], layer.phi]))
    ref = 0.5 * (p / q - t) ** 2
    got = held_out_point_losses(x, t, layer.theta, layer.phi, basis=layer.kernel_basis,
                                domain=layer.domain)
    np.testing.assert_allclose(got, ref, rtol=1e-9)
