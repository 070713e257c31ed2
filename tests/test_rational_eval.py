"""Tag-aware rational evaluation against independent references.

References: ``numpy.polynomial.polynomial.polyval`` / ``numpy.polynomial.chebyshev.chebval`` for
values, products of powers computed with NumPy for n-D, ``kernels.tags.real_div`` and the
transreal tables for tags, loops over heads for multi-output.

Tolerances: float64 values agree with the float64 NumPy reference to rtol 1e-12 (P and Q are
well conditioned here: |Q| >= 0.5 by construction); float32 values agree with the float64
reference evaluated on the same float32 inputs to rtol 2e-6 (about 16 float32 ULP).
"""
import math

import numpy as np
import pytest
from numba import njit
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P

import zeroproof_nb as zp
from zeroproof_nb.core import TRTag, tr_dtype
from zeroproof_nb.kernels.rational import tr_quotient
from zeroproof_nb.kernels.tags import real_div
from zeroproof_nb.rational import TRPolicy, basis_features, monomial_exponents, rational_eval

REAL, PINF, NINF, PHI = (int(t) for t in TRTag)


def _params(rng, dp, dq, n_out=None, dtype=np.float64):
    """Random theta and a small phi (|Q - 1| <= 0.5 on [-1, 1] for the monomial/Chebyshev
    bases, since |psi_k| <= 1 there and sum |phi_k| <= 0.5)."""
    shape_t = (dp + 1,) if n_out is None else (n_out, dp + 1)
    shape_p = (dq,) if n_out is None else (n_out, dq)
    theta = rng.normal(size=shape_t)
    phi = rng.uniform(-1, 1, size=shape_p)
    if dq:
        phi *= 0.5 / np.maximum(np.abs(phi).sum(axis=-1, keepdims=True), 1e-300)
    return theta.astype(dtype), phi.astype(dtype)


def _reference(x, theta, phi, basis="monomial", domain=(-1.0, 1.0)):
    x = np.asarray(x, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if basis == "monomial":
        p = P.polyval(x, theta)
        q = P.polyval(x, np.concatenate([[1.0], phi]))
    else:
        lo, hi = domain
        t = (2.0 * x - (lo + hi)) / (hi - lo)
        p = C.chebval(t, theta)
        q = C.chebval(t, np.concatenate([[1.0], phi]))
    return p / q, q


@pytest.mark.parametrize(
    "dtype,basis,domain,dp,dq",
    [
        (dt, basis, dom, 3, 2)
        for dt in (np.float64, np.float32)
        for basis, dom in (("monomial", (-1.0, 1.0)), ("chebyshev", (-1.0, 1.0)),
                           ("chebyshev", (0.0, 3.0)))
    ]
    + [
        (np.float64, "monomial", (-1.0, 1.0), 6, 5),
        (np.float32, "chebyshev", (0.0, 3.0), 6, 5),
        (np.float64, "monomial", (-1.0, 1.0), 2, 0),
        (np.float64, "chebyshev", (-2.0, -1.0), 2, 0),
    ],
)
def test_values_match_numpy_polynomial(rng, dtype, basis, domain, dp, dq):
    lo, hi = domain
    x = rng.uniform(lo, hi, size=3001).astype(dtype)
    theta, phi = _params(rng, dp, dq, dtype=dtype)
    y, q = rational_eval(x, theta, phi, basis=basis, domain=domain, return_q=True)
    ref_y, ref_q = _reference(x, theta, phi, basis, domain)
    assert y.dtype == tr_dtype(dtype) and q.dtype == dtype and y.shape == x.shape
    assert np.all(y["tag"] == REAL)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    scale = np.max(np.abs(ref_y))
    np.testing.assert_allclose(y["value"], ref_y, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(q, ref_q, rtol=rtol, atol=rtol)


def test_monomial_ignores_domain_and_accepts_lists():
    y1 = rational_eval([0.25, 2.0], [1.0, 2.0], [0.5], domain=(0.0, 5.0))
    y2 = rational_eval(np.array([0.25, 2.0]), np.array([1.0, 2.0]), np.array([0.5]))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1["value"], [(1 + 0.5) / (1 + 0.125), 5.0 / 2.0])


# ---------------------------------------------------------------------------------------------
# exact poles and tags


def test_exact_poles_monomial():
    # Q = 1 - 2x is exactly +0 at x = 0.5
    x = np.array([0.5, 0.25, 0.75])
    phi = [-2.0]
    y, q = rational_eval(x, [1.0, 0.0], phi, return_q=True)  # P = 1 > 0
    assert q[0] == 0.0 and not np.signbit(q[0])
    assert y["tag"][0] == PINF and y["value"][0] == np.inf
    assert list(y["tag"][1:]) == [REAL, REAL]
    np.testing.assert_allclose(y["value"][1:], [2.0, -2.0])
    y = rational_eval(x, [-1.0, 0.0], phi)  # P < 0
    assert y["tag"][0] == NINF and y["value"][0] == -np.inf
    y = rational_eval(x, [0.5, -1.0], phi)  # P = 0.5 - 0.5 = +0
    assert y["tag"][0] == PHI and np.isnan(y["value"][0])
    y = rational_eval(x, [-0.0], phi)  # P = -0
    assert y["tag"][0] == PHI
    assert y["tag"][1] == REAL and y["value"][1] == 0.0 and np.signbit(y["value"][1])  # -0/0.5


def test_exact_poles_chebyshev_mapped_domain():
    # domain (0, 2): x = 1.5 maps to t = 0.5; Q = 1 - 2 T1(t) = 0 there
    y, q = rational_eval(
        np.array([1.5, 1.5, 1.5]).reshape(3), np.array([[3.0, 0.0], [-3.0, 0.0], [1.0, -2.0]]),
        np.array([-2.0]), basis="chebyshev", domain=(0.0, 2.0), return_q=True,
    )
    assert np.all(q == 0.0)
    assert list(y["tag"][0]) == [PINF, NINF, PHI]


def test_non_finite_x_is_phi():
    x = np.array([np.nan, np.inf, -np.inf, 0.5])
    for dq in (0, 2):  # dq = 0: Q = 1, so inf x would otherwise give an infinite P
        y = rational_eval(x, [1.0, 2.0, 3.0], [0.1] * dq)
        assert list(y["tag"]) == [PHI, PHI, PHI, REAL]
        assert np.all(np.isnan(y["value"][:3]))
    y = rational_eval(np.array([[np.nan, 0.0], [0.1, -np.inf], [0.1, 0.2]]), np.ones(3), [0.1, 0.1])
    assert list(y["tag"]) == [PHI, PHI, REAL]


def test_overflow_gives_infinite_tags():
    y = rational_eval([1e200, -1e200], [0.0, 0.0, 1.0], [])  # x^2 overflows
    assert list(y["tag"]) == [PINF, PINF]
    y = rational_eval([1e-300], [1e300], [1e300 * 0 + 1e-10])  # finite, REAL
    assert y["tag"][0] == REAL


@njit(error_model="numpy")  # IEEE division, as in the kernels
def _both_quotients(ps, qs, v1, t1, v2, t2):
    for i in range(ps.shape[0]):
        a, b = tr_quotient(ps[i], qs[i])
        v1[i] = a
        t1[i] = b
        c, d = real_div(ps[i], qs[i])
        v2[i] = c
        t2[i] = d


def test_tr_quotient_matches_real_div_on_special_values():
    specials = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -3.0, 1e-308, -5e-324, 1e308, -1e308,
                         np.inf, -np.inf, np.nan])
    ps, qs = (a.ravel() for a in np.meshgrid(specials, specials))
    v1, v2 = np.empty_like(ps), np.empty_like(ps)
    t1, t2 = np.empty(ps.shape, np.uint8), np.empty(ps.shape, np.uint8)
    _both_quotients(ps, qs, v1, t1, v2, t2)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(v1, v2)  # NaN == NaN here
    np.testing.assert_array_equal(np.signbit(v1[~np.isnan(v1)]), np.signbit(v2[~np.isnan(v2)]))


def test_policy_reports_small_q_non_real_and_keeps_value():
    # Q = 1 - x: at x = 0.95, |Q| = 0.05
    x = np.array([0.95, 0.95, 0.95, 0.0, 1.05])
    theta = np.array([[1.0, 0.0], [-1.0, 0.0], [0.001, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    pol = TRPolicy(tau_q_on=0.1, tau_q_off=0.2, tau_p_on=0.01)
    ys = [rational_eval(x[i:i + 1], theta[i], [-1.0], policy=pol) for i in range(5)]
    tags = [int(y["tag"][0]) for y in ys]
    assert tags == [PINF, NINF, PHI, REAL, PINF]  # Q < 0 at 1.05 and P < 0: sign product > 0
    np.testing.assert_allclose(ys[0]["value"], 1.0 / (1 - 0.95))
    np.testing.assert_allclose(ys[4]["value"], -1.0 / (1 - 1.05))
    plain = rational_eval(x[:1], theta[0], [-1.0])
    assert plain["tag"][0] == REAL  # no policy: pure transreal division
    # the default policy (all thresholds 0) changes nothing, exact poles stay non-REAL
    y = rational_eval([0.5], [1.0], [-2.0], policy=TRPolicy())
    assert y["tag"][0] == PINF


def test_trpolicy_validation_and_from_ulp():
    with pytest.raises(ValueError, match="tau_q_off"):
        TRPolicy(tau_q_on=0.2, tau_q_off=0.1)
    with pytest.raises(ValueError, match="tau_p_on"):
        TRPolicy(tau_p_on=-1.0)
    with pytest.raises(ValueError, match="tau_q_off"):
        TRPolicy(tau_q_off=np.inf)
    with pytest.raises(TypeError, match="tau_q_on"):
        TRPolicy(tau_q_on="0.1")
    pol = TRPolicy.from_ulp()
    assert math.isclose(pol.tau_q_on, 4 * np.finfo(np.float64).eps)
    assert math.isclose(pol.tau_q_off, 2 * pol.tau_q_on)
    with pytest.raises(AttributeError):
        pol.tau_q_on = 1.0  # frozen


def test_q_epsilon_baseline(rng):
    x = rng.uniform(-1, 1, 500)
    theta, phi = _params(rng, 3, 2)
    eps = 0.05
    y, q = rational_eval(x, theta, phi, q_epsilon=eps, return_q=True)
    p_ref = P.polyval(x, theta)
    q_ref = P.polyval(x, np.concatenate([[1.0], phi]))
    q_eff = q_ref + eps * np.where(q_ref >= 0, 1.0, -1.0)
    np.testing.assert_allclose(q, q_eff, rtol=1e-12)
    np.testing.assert_allclose(y["value"], p_ref / q_eff, rtol=1e-12)
    # at an exact pole Q_eff = +eps (sign(0) = +1): finite and REAL
    y, q = rational_eval([0.5], [1.0], [-2.0], q_epsilon=eps, return_q=True)
    assert y["tag"][0] == REAL and q[0] == eps and y["value"][0] == 1.0 / eps


# ---------------------------------------------------------------------------------------------
# multi-output and n-D


@pytest.mark.parametrize("shared", [True, False])
def test_multi_output_matches_loop_over_heads(rng, shared):
    x = rng.uniform(-1, 1, 2000)
    theta, phi = _params(rng, 3, 2, n_out=3)
    if shared:
        phi = phi[0]
    y, q = rational_eval(x, theta, phi, return_q=True)
    assert y.shape == (2000, 3) and q.shape == (2000, 3)
    for j in range(3):
        yj, qj = rational_eval(x, theta[j], phi if shared else phi[j], return_q=True)
        np.testing.assert_array_equal(y[:, j], yj)
        np.testing.assert_array_equal(q[:, j], qj)
        ref, _ = _reference(x, theta[j], phi if shared else phi[j])
        np.testing.assert_allclose(y["value"][:, j], ref, rtol=1e-12, atol=1e-12)


def test_monomial_exponents_order_and_count():
    e = monomial_exponents(2, 2)
    assert e.tolist() == [[0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 2]]
    e3 = monomial_exponents(3, 3)
    assert e3.shape == (math.comb(6, 3), 3)
    assert e3[0].tolist() == [0, 0, 0] and e3[1:4].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert np.all(np.diff(e3.sum(axis=1)) >= 0)  # by total degree
    assert len({tuple(r) for r in e3}) == len(e3)
    with pytest.raises(ValueError, match="d"):
        monomial_exponents(0, 2)


def _nd_features(x, degree):
    e = monomial_exponents(x.shape[1], degree)
    return np.prod(x[:, None, :] ** e[None, :, :], axis=2)


@pytest.mark.parametrize("d,dp,dq", [(2, 2, 1), (3, 2, 2)])
def test_nd_matches_direct_numpy(rng, d, dp, dq):
    x = rng.uniform(-1, 1, size=(1500, d))
    ntp, ntq = math.comb(d + dp, d), math.comb(d + dq, d)
    theta = rng.normal(size=ntp)
    phi = rng.uniform(-1, 1, size=ntq - 1)
    phi *= 0.5 / np.abs(phi).sum()
    y, q = rational_eval(x, theta, phi, return_q=True)
    fp, fq = _nd_features(x, dp), _nd_features(x, dq)
    ref_q = 1.0 + fq[:, 1:] @ phi
    np.testing.assert_allclose(q, ref_q, rtol=1e-12)
    np.testing.assert_allclose(y["value"], (fp @ theta) / ref_q, rtol=1e-11, atol=1e-12)
    # multi-output n-D against a loop over heads
    theta2 = rng.normal(size=(2, ntp))
    y2 = rational_eval(x, theta2, phi)
    for j in range(2):
        np.testing.assert_array_equal(y2[:, j], rational_eval(x, theta2[j], phi))


def test_x_with_one_column_equals_1d(rng):
    x = rng.uniform(-1, 1, 300)
    theta, phi = _params(rng, 3, 2)
    np.testing.assert_array_equal(rational_eval(x[:, None], theta, phi), rational_eval(x, theta, phi))


def test_basis_features_against_numpy(rng):
    x = rng.uniform(-2, 3, 400)
    np.testing.assert_allclose(basis_features(x, 4), np.vander(x, 5, increasing=True), rtol=1e-13)
    t = (2 * x - 1.0) / 5.0
    np.testing.assert_allclose(
        basis_features(x, 4, basis="chebyshev", domain=(-2.0, 3.0)), C.chebvander(t, 4),
        rtol=1e-12, atol=1e-12,
    )
    xn = rng.uniform(-1, 1, size=(50, 3))
    np.testing.assert_allclose(basis_features(xn, 3), _nd_features(xn, 3), rtol=1e-13)
    assert basis_features(x.astype(np.float32), 2).dtype == np.float32


# ---------------------------------------------------------------------------------------------
# dtypes, empty input, out buffers


def test_float32_in_float32_out_and_empty(rng):
    x = rng.uniform(-1, 1, 10).astype(np.float32)
    y, q = rational_eval(x, [1.0, 2.0], [0.1], return_q=True)
    assert y.dtype == tr_dtype(np.float32) and q.dtype == np.float32
    y, q = rational_eval(np.empty(0), [1.0, 2.0], [0.1], return_q=True)
    assert y.shape == (0,) and q.shape == (0,)
    y = rational_eval(np.empty((0, 2)), np.ones((2, 3)), [0.1, 0.2])
    assert y.shape == (0, 2)


def test_out_buffer_is_reused_and_validated(rng):
    x = rng.uniform(-1, 1, 100)
    out = np.empty(100, dtype=tr_dtype(np.float64))
    res = rational_eval(x, [1.0, 2.0, 3.0], [0.2], out=out)
    assert res is out
    np.testing.assert_array_equal(out, rational_eval(x, [1.0, 2.0, 3.0], [0.2]))
    with pytest.raises(TypeError, match="out"):
        rational_eval(x, [1.0], [0.2], out=np.empty(100, dtype=tr_dtype(np.float32)))
    with pytest.raises(ValueError, match="out"):
        rational_eval(x, [1.0], [0.2], out=np.empty(99, dtype=tr_dtype(np.float64)))
    with pytest.raises(TypeError, match="out"):
        rational_eval(x, [1.0], [0.2], out=np.empty(100))


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(x=np.zeros((2, 2, 2))), ValueError, "x must be 1 or 2-dimensional"),
        (dict(x=np.array(["a", "b"])), TypeError, "x must have a real numeric dtype"),
        (dict(theta=np.zeros((2, 2, 2))), ValueError, "theta"),
        (dict(theta=[1.0, np.nan]), ValueError, "theta must contain only finite"),
        (dict(phi=[np.inf]), ValueError, "phi must contain only finite"),
        (dict(theta=[]), ValueError, "theta"),
        (dict(phi=np.zeros((2, 1))), ValueError, "phi"),
        (dict(basis="fourier"), ValueError, "basis must be one of"),
        (dict(domain=(1.0, 1.0)), ValueError, "domain must satisfy lo < hi"),
        (dict(domain=(0.0, np.inf)), ValueError, "domain"),
        (dict(domain=3.0), TypeError, "domain"),
        (dict(q_epsilon=-1.0), ValueError, "q_epsilon"),
        (dict(policy="strict"), TypeError, "policy"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, match):
    args = dict(x=np.linspace(-1, 1, 5), theta=[1.0, 2.0], phi=[0.1])
    args.update(kwargs)
    x, theta, phi = args.pop("x"), args.pop("theta"), args.pop("phi")
    with pytest.raises(exc, match=match):
        rational_eval(x, theta, phi, **args)


def test_bad_shapes_multi_output_and_nd():
    with pytest.raises(ValueError, match="phi must have shape"):
        rational_eval(np.zeros(3), np.ones((2, 3)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="theta has 5 coefficients"):
        rational_eval(np.zeros((3, 2)), np.ones(5), np.ones(2))
    with pytest.raises(ValueError, match="phi has 3 coefficients"):
        rational_eval(np.zeros((3, 2)), np.ones(6), np.ones(3))
    with pytest.raises(ValueError, match="x must have at least one column"):
        rational_eval(np.zeros((3, 0)), np.ones(1), np.ones(0))


def test_top_level_exports():
    assert zp.rational_eval is rational_eval
    assert zp.TRPolicy is TRPolicy
    assert zp.monomial_exponents is monomial_exponents


_CACHE_PROBE = """
import numpy as np
from zeroproof_nb import rational_eval, rational_loss_and_grad
from zeroproof_nb.kernels import rational_cpu as kr
x = np.linspace(-1, 1, 50)
rational_eval(x, [1.0, 2.0, 3.0, 4.0], [0.1, 0.2])
rational_loss_and_grad(x, x, [1.0, 2.0, 3.0, 4.0], [0.1, 0.2])
disps = [f.dispatcher for f in kr._EVAL_CHUNKS.values()]
disps += [f.dispatcher for f in kr._FORWARD_BLOCKS.values()]
disps += list(kr._EVAL_KERNELS.values()) + list(kr._GRAD_KERNELS.values())
print(min(sum(d.stats.cache_hits.values()) for d in disps), len(disps))
"""


def test_specialised_kernels_load_from_the_disk_cache_in_a_fresh_process():
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    runs = [subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True,
                           env=env, check=True).stdout.split() for _ in range(2)]
    min_hits, n_disp = (int(v) for v in runs[-1])
    assert n_disp == 4 and min_hits >= 1  # the second process compiled nothing
