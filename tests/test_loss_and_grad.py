"""Fused loss-and-gradient pass against independent references.

References: central finite differences of the returned loss (float64, rtol 1e-6), a NumPy
evaluation of the documented formulas (``docs/losses.md``) built on ``numpy.polynomial``
features, the golden gradients of upstream's Appendix A (with the corrected Mask-REAL sign), and
``numpy.percentile`` / ``count_tags`` for the statistics.

Saturating gradients are not the gradient of any loss, so finite differences check them in the
limit b -> 0 (where sign(Q)/sqrt(Q^2+b^2) -> 1/Q and -P/(Q^2+b^2) -> -P/Q^2, relative error
~ b^2/Q^2 = 1e-16 here); at b = 1 they are checked against the NumPy formulas.
"""
import math

import numba
import numpy as np
import pytest
from enum import Enum
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial import chebyshev as C

import zeroproof_nb as zp
from zeroproof_nb.core import count_tags, from_ieee
from zeroproof_nb.kernels.tags import CHUNK
from zeroproof_nb.rational import (
    LossAndGrad,
    TRPolicy,
    monomial_exponents,
    rational_eval,
    rational_loss_and_grad,
)

REAL, PINF, NINF, PHI = 0, 1, 2, 3


def _fd_grads(f, theta, phi, h=1e-6):
    """Central differences of the scalar f(theta, phi) w.r.t. every entry."""
    out = []
    for arr, which in ((theta, 0), (phi, 1)):
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            step = h * max(1.0, abs(arr[idx]))
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += step
            minus[idx] -= step
            args_p = (plus, phi) if which == 0 else (theta, plus)
            args_m = (minus, phi) if which == 0 else (theta, minus)
            g[idx] = (f(*args_p) - f(*args_m)) / (2 * step)
        out.append(g)
    return out


def _check_fd(f, res, theta, phi, rtol=1e-6):
    fd_t, fd_p = _fd_grads(f, theta, phi)
    scale = max(np.max(np.abs(fd_t)), np.max(np.abs(fd_p), initial=0.0))
    np.testing.assert_allclose(res.grad_theta, fd_t, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(res.grad_phi, fd_p, rtol=rtol, atol=rtol * scale)


def _small_phi(rng, shape):
    phi = rng.uniform(-1, 1, size=shape)
    if phi.shape[-1]:
        phi *= 0.5 / np.abs(phi).sum(axis=-1, keepdims=True)  # |Q - 1| <= 0.5 on [-1, 1]
    return phi


# ---------------------------------------------------------------------------------------------
# loss value


def test_loss_equals_numpy_mean_half_squared_error(rng):
    x = rng.uniform(-1, 1, 5000)
    theta, phi = rng.normal(size=4), _small_phi(rng, 2)
    t = np.sin(3 * x)
    res = rational_loss_and_grad(x, t, theta, phi)
    y = rational_eval(x, theta, phi)
    assert np.all(y["tag"] == REAL)
    assert math.isclose(res.loss, np.mean(0.5 * (y["value"] - t) ** 2), rel_tol=1e-12)
    assert res.data_loss == res.loss and res.rejection_loss == 0.0
    np.testing.assert_array_equal(res.y, y)  # bit-identical forward
    assert isinstance(res, LossAndGrad) and res.tags.dtype == np.uint8
    np.testing.assert_array_equal(res.tags, y["tag"])
    assert res.grad_theta.shape == theta.shape and res.grad_phi.shape == phi.shape


def test_weighted_mae_and_huber_losses(rng):
    x = rng.uniform(-1, 1, 300)
    theta, phi = rng.normal(size=3), _small_phi(rng, 2)
    t = rng.normal(size=300) * 2
    w = rng.uniform(0, 2, 300)
    y = rational_eval(x, theta, phi)["value"]
    r = y - t
    res = rational_loss_and_grad(x, t, theta, phi, loss="mae", sample_weight=w)
    assert math.isclose(res.loss, np.sum(w * np.abs(r)) / w.sum(), rel_tol=1e-12)
    hd = 0.7
    hub = np.where(np.abs(r) <= hd, 0.5 * r**2, hd * (np.abs(r) - 0.5 * hd))
    res = rational_loss_and_grad(x, t, theta, phi, loss="huber", huber_delta=hd, sample_weight=w)
    assert math.isclose(res.loss, np.sum(w * hub) / w.sum(), rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------
# gradients: finite differences


MODES = [
    dict(mode="mask_real"),
    dict(mode="saturating", saturation_bound=1e-8),
    dict(mode="hybrid", delta=0.9, saturation_bound=1e-8),  # both rules used (|Q| in [0.5, 1.5])
    dict(mode="hybrid", delta=None),
]


@pytest.mark.parametrize("kw", MODES)
@pytest.mark.parametrize("basis", ["monomial", "chebyshev"])
def test_fd_1d(rng, kw, basis):
    x = rng.uniform(-1, 1, 400)
    theta, phi = rng.normal(size=4), _small_phi(rng, 2)
    t = np.cos(2 * x)
    w = rng.uniform(0.5, 1.5, 400)
    args = dict(basis=basis, sample_weight=w, **kw)
    res = rational_loss_and_grad(x, t, theta, phi, **args)
    _check_fd(lambda a, b: rational_loss_and_grad(x, t, a, b, **args).loss, res, theta, phi)
    if kw.get("delta") == 0.9:
        assert res.stats["n_saturating"] > 0 and res.stats["n_mask_real"] > 0


@pytest.mark.parametrize("kw", MODES[:3])
@pytest.mark.parametrize("shared", [True, False])
def test_fd_multi_output(rng, kw, shared):
    x = rng.uniform(-1, 1, 300)
    theta = rng.normal(size=(3, 3))
    phi = _small_phi(rng, 2) if shared else _small_phi(rng, (3, 2))
    t = np.stack([np.sin(x), np.cos(x), x**2], axis=1)
    res = rational_loss_and_grad(x, t, theta, phi, loss="huber", huber_delta=0.3, **kw)
    assert res.y.shape == (300, 3) and res.grad_phi.shape == phi.shape
    _check_fd(lambda a, b: rational_loss_and_grad(x, t, a, b, loss="huber", huber_delta=0.3,
                                                  **kw).loss, res, theta, phi)


@pytest.mark.parametrize("kw", MODES[:3])
def test_fd_nd(rng, kw):
    d, dp, dq = 2, 2, 1
    x = rng.uniform(-1, 1, size=(300, d))
    theta = rng.normal(size=(2, math.comb(d + dp, d)))
    phi = _small_phi(rng, math.comb(d + dq, d) - 1)
    t = np.stack([x[:, 0] * x[:, 1], np.sin(x[:, 0])], axis=1)
    res = rational_loss_and_grad(x, t, theta, phi, **kw)
    _check_fd(lambda a, b: rational_loss_and_grad(x, t, a, b, **kw).loss, res, theta, phi)


def test_fd_rejection_terms_and_labelled_poles(rng):
    # Q = 1 + phi1 x + phi2 x^2 with small |Q| near x ~ 0.9, some targets non-REAL (labelled
    # poles): the whole loss, rejection included, is smooth away from Q = 0
    x = np.concatenate([rng.uniform(0.80, 0.86, 50), rng.uniform(-1, 0.5, 150)])
    theta = rng.normal(size=3)
    phi = np.array([-0.6, -0.5])  # Q(0.9) = 1 - 0.54 - 0.405 = 0.055
    t = np.sin(x)
    t[::7] = np.nan
    t[3::11] = np.inf
    for kw in (dict(), dict(q_epsilon=1e-3), dict(loss="mae")):
        args = dict(lambda_rej=0.7, rejection_threshold=0.3, **kw)
        res = rational_loss_and_grad(x, t, theta, phi, **args)
        assert res.rejection_loss > 0
        _check_fd(lambda a, b: rational_loss_and_grad(x, t, a, b, **args).loss, res, theta, phi)


def test_rejection_loss_formula(rng):
    x = rng.uniform(-1, 1, 200)
    theta, phi = rng.normal(size=3), np.array([-0.9])
    t = np.where(rng.uniform(size=200) < 0.2, np.nan, 1.0)
    w = rng.uniform(0, 1, 200)
    lam, tau = 0.4, 0.5
    res = rational_loss_and_grad(x, t, theta, phi, lambda_rej=lam, rejection_threshold=tau,
                                 sample_weight=w)
    q = np.abs(1 - 0.9 * x)
    pen = np.where(np.isfinite(t), np.clip(1 - q / tau, 0, None) ** 2, q)
    assert math.isclose(res.rejection_loss, lam * np.sum(w * pen) / w.sum(), rel_tol=1e-12)
    assert math.isclose(res.loss, res.data_loss + res.rejection_loss, rel_tol=1e-15)


def test_rejection_pushes_q_away_from_exact_pole():
    # one point exactly at the pole Q(0.5) = +0 with a REAL target: no data gradient, but the
    # rejection term lam*(1 - |Q|/tau)^2 has dL/dQ = -2 lam/tau there, dQ/dphi_1 = x
    res = rational_loss_and_grad([0.5], [1.0], [1.0], [-2.0], lambda_rej=0.5,
                                 rejection_threshold=0.25)
    assert res.tags[0] == PINF and res.data_loss == 0.0
    assert res.rejection_loss == 0.5
    np.testing.assert_array_equal(res.grad_theta, [0.0])
    np.testing.assert_allclose(res.grad_phi, [-2 * 0.5 / 0.25 * 0.5])


# ---------------------------------------------------------------------------------------------
# gradients: NumPy formulas at b = 1, upstream golden values


def _numpy_grads(x, t, theta, phi, mode, delta, b, basis="monomial"):
    """NumPy evaluation of the documented Mask-REAL / Saturating / Hybrid rules (mse, 1-D)."""
    n = len(x)
    deg = max(len(theta) - 1, len(phi))
    V = np.vander(x, deg + 1, increasing=True) if basis == "monomial" else C.chebvander(x, deg)
    p = V[:, :len(theta)] @ theta
    q = 1.0 + V[:, 1:len(phi) + 1] @ phi
    y = p / q
    g = (y - t) / n
    sat = np.full(n, mode == "saturating") if mode != "hybrid" else np.abs(q) <= delta
    dp = np.where(sat, np.sign(q) / np.sqrt(q * q + b * b), 1.0 / q)
    dq = np.where(sat, -p / (q * q + b * b), -p / q**2)
    return (g * dp) @ V[:, :len(theta)], (g * dq) @ V[:, 1:len(phi) + 1]


@pytest.mark.parametrize("mode,delta", [("saturating", None), ("hybrid", 1.0)])
@pytest.mark.parametrize("basis", ["monomial", "chebyshev"])
def test_saturating_rules_against_numpy(rng, mode, delta, basis):
    x = rng.uniform(-1, 1, 500)
    theta, phi = rng.normal(size=4), _small_phi(rng, 3)
    t = np.sin(x)
    res = rational_loss_and_grad(x, t, theta, phi, mode=mode, delta=delta, basis=basis)
    gt, gp = _numpy_grads(x, t, theta, phi, mode, delta, 1.0, basis)
    np.testing.assert_allclose(res.grad_theta, gt, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(res.grad_phi, gp, rtol=1e-11, atol=1e-14)


class _Mode(str, Enum):  # stands in for gradients.GradientMode
    MASK_REAL = "mask_real"
    SATURATING = "saturating"
    HYBRID = "hybrid"


def _appendix_a(phi, mode, delta=None, target=0.0):
    # TRRational(2, 2, basis="monomial") default theta (-0.1, 0.1, -0.1): P(0.5) = -0.075. A single point with the
    # mae loss and y > target gives dL/dy = 1, i.e. the upstream gradients with g = 1.
    return rational_loss_and_grad([0.5], [target], [-0.1, 0.1, -0.1], phi, mode=mode, delta=delta,
                                  loss="mae")


def test_appendix_a_golden_gradients():
    r = _appendix_a([-3.0, 0.0], _Mode.MASK_REAL)  # Q = -0.5
    np.testing.assert_allclose(r.grad_theta, [-2.0, -1.0, -0.5], rtol=1e-14)
    np.testing.assert_allclose(r.grad_phi, [0.15, 0.075], rtol=1e-14)  # corrected sign (upstream -)
    r = _appendix_a([-3.0, 0.0], _Mode.SATURATING)
    np.testing.assert_allclose(r.grad_theta, [-0.894427, -0.447214, -0.223607], rtol=1e-6)
    np.testing.assert_allclose(r.grad_phi, [0.03, 0.015], rtol=1e-12)
    r = _appendix_a([-1.98, 0.0], "hybrid", delta=0.0251, target=-100.0)  # Q = 0.01 <= delta
    np.testing.assert_allclose(r.grad_theta, [0.99995, 0.499975, 0.249988], rtol=1e-5)
    np.testing.assert_allclose(r.grad_phi, [0.037496, 0.018748], rtol=1e-4)
    assert r.stats["n_saturating"] == 1 and r.stats["near_pole_ratio"] == 1.0
    # exact pole Q = 0, y = -inf: masked in every mode (upstream: Saturating gives phi 0.0375,
    # Hybrid in warm-up +-inf)
    for mode, delta in (("mask_real", None), ("saturating", None), ("hybrid", None),
                        ("hybrid", 0.1)):
        r = _appendix_a([-2.0, 0.0], mode, delta)
        assert r.tags[0] == NINF
        np.testing.assert_array_equal(r.grad_theta, 0.0)
        np.testing.assert_array_equal(r.grad_phi, 0.0)
        assert r.loss == 0.0


@pytest.mark.parametrize("mode", ["mask_real", "saturating", "hybrid"])
def test_non_real_outputs_give_zero_gradient(rng, mode):
    # a batch of exact poles (PINF, NINF, PHI), non-finite x, and policy-rejected outputs
    x = np.array([0.5, 0.5, 0.5, np.nan, np.inf, 0.45])
    theta = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, -1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    pol = TRPolicy(tau_q_on=0.2, tau_q_off=0.3)
    for i in range(len(x)):
        r = rational_loss_and_grad(x[i:i + 1], [0.3], theta[i], [-2.0], mode=mode, delta=1.0,
                                   policy=pol)
        assert r.tags[0] != REAL
        np.testing.assert_array_equal(r.grad_theta, 0.0)
        np.testing.assert_array_equal(r.grad_phi, 0.0)
    # a mixed batch equals the REAL points alone, reweighted by the normalisation
    xm = rng.uniform(-1, 0.2, 50)
    full = rational_loss_and_grad(np.concatenate([xm, [0.5, 0.5]]), np.zeros(52), [1.0, 0.3],
                                  [-2.0], mode=mode, delta=0.5)
    real = rational_loss_and_grad(xm, np.zeros(50), [1.0, 0.3], [-2.0], mode=mode, delta=0.5)
    np.testing.assert_allclose(full.grad_theta * 52 / 50, real.grad_theta, rtol=1e-13)
    np.testing.assert_allclose(full.grad_phi * 52 / 50, real.grad_phi, rtol=1e-13)


@settings(max_examples=60, deadline=None)
@given(
    theta=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=3, max_size=3),
    phi=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2),
    x=st.lists(st.one_of(st.floats(), st.sampled_from([0.5, -0.5, 0.0, 1e300])), min_size=1,
               max_size=40),
    t=st.one_of(st.floats(), st.just(1.0)),
    mode=st.sampled_from(["mask_real", "saturating", "hybrid"]),
    delta=st.one_of(st.none(), st.floats(0, 10)),
    lam=st.sampled_from([0.0, 0.5]),
    loss=st.sampled_from(["mse", "mae", "huber"]),
)
def test_property_gradients_always_finite(theta, phi, x, t, mode, delta, lam, loss):
    xs = np.array(x + [0.5])  # exact pole of Q = 1 - 2x included
    for ph in (phi, [-2.0, 0.0]):
        r = rational_loss_and_grad(xs, np.full(len(xs), t), theta, ph, mode=mode, delta=delta,
                                   lambda_rej=lam, loss=loss)
        assert np.all(np.isfinite(r.grad_theta)) and np.all(np.isfinite(r.grad_phi))
        assert not math.isnan(r.loss)


# ---------------------------------------------------------------------------------------------
# statistics, determinism, dtypes, targets


def test_stats_against_numpy(rng):
    x = np.concatenate([rng.uniform(-1, 1, 3000), [0.5, np.nan]])
    theta, phi = rng.normal(size=3), np.array([-2.0])
    t = rng.normal(size=x.size)
    res = rational_loss_and_grad(x, t, theta, phi, mode="hybrid", delta=0.3)
    absq = np.abs(1 - 2 * x)
    fin = absq[np.isfinite(absq)]
    s = res.stats
    assert s["q_min"] == fin.min() == 0.0
    assert math.isclose(s["q_mean"], fin.mean(), rel_tol=1e-12)
    for key, pct in (("q_p10", 10), ("q_p50", 50), ("q_p90", 90)):
        assert s[key] == np.percentile(fin, pct, method="linear")
    np.testing.assert_array_equal(s["tag_counts"], count_tags(res.tags))
    assert s["n_saturating"] + s["n_mask_real"] == s["tag_counts"][REAL]
    assert s["n_saturating"] == np.sum((absq <= 0.3) & (res.tags == REAL))
    assert s["near_pole_ratio"] == np.sum(absq <= 0.3) / x.size
    assert set(dict(s)) >= {"q_min", "q_p10", "q_p50", "q_p90", "q_mean", "n_saturating",
                            "n_mask_real", "near_pole_ratio", "tag_counts"}
    none = rational_loss_and_grad(x, t, theta, phi).stats
    assert none["near_pole_ratio"] == 0.0 and none["n_saturating"] == 0


def test_stats_count_each_q_evaluation_once(rng):
    x = rng.uniform(-1, 1, 100)
    theta = rng.normal(size=(3, 2))
    shared = rational_loss_and_grad(x, np.zeros((100, 3)), theta, [0.4], mode="hybrid", delta=0.9)
    q = np.abs(1 + 0.4 * x)
    assert shared.stats["near_pole_ratio"] == np.mean(q <= 0.9)
    assert shared.stats["q_p50"] == np.percentile(q, 50)
    assert shared.stats["tag_counts"].sum() == 300


def test_thread_count_does_not_change_bits(rng):
    n = 3 * CHUNK + 123
    x = rng.uniform(-1, 1, n)
    x[::1000] = 0.5
    theta, phi = rng.normal(size=(2, 4)), np.array([-2.0, 0.1])
    t = rng.normal(size=(n, 2))
    w = rng.uniform(0, 1, n)
    saved = numba.get_num_threads()
    results = []
    try:
        for k in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(k)
            results.append(rational_loss_and_grad(x, t, theta, phi, mode="hybrid", delta=0.2,
                                                  sample_weight=w, lambda_rej=0.1))
    finally:
        numba.set_num_threads(saved)
    a, b = results[0], results[-1]
    assert a.loss == b.loss and a.rejection_loss == b.rejection_loss
    np.testing.assert_array_equal(a.grad_theta, b.grad_theta)
    np.testing.assert_array_equal(a.grad_phi, b.grad_phi)
    assert dict(a.stats).keys() == dict(b.stats).keys()
    assert a.stats["q_mean"] == b.stats["q_mean"]


def test_float32_path(rng):
    x = rng.uniform(-1, 1, 1000)
    theta, phi = rng.normal(size=3), _small_phi(rng, 2)
    t = np.sin(x)
    r64 = rational_loss_and_grad(x, t, theta, phi)
    r32 = rational_loss_and_grad(x.astype(np.float32), t, theta, phi)
    assert r32.y["value"].dtype == np.float32 and r32.q.dtype == np.float32
    assert r32.grad_theta.dtype == np.float32 and r32.grad_phi.dtype == np.float32
    np.testing.assert_allclose(r32.grad_theta, r64.grad_theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r32.loss, r64.loss, rtol=1e-5)
    np.testing.assert_array_equal(
        r32.y, rational_eval(x.astype(np.float32), theta, phi))


def test_tr_target_equals_float_target(rng):
    x = rng.uniform(-1, 1, 100)
    t = rng.normal(size=100)
    t[::9] = np.inf
    t[1::9] = np.nan
    a = rational_loss_and_grad(x, t, [1.0, 0.5], [0.3], lambda_rej=0.2)
    b = rational_loss_and_grad(x, from_ieee(t), [1.0, 0.5], [0.3], lambda_rej=0.2)
    assert a.loss == b.loss
    np.testing.assert_array_equal(a.grad_phi, b.grad_phi)


def test_polynomial_baseline_dq_zero(rng):
    x = rng.uniform(-1, 1, 200)
    t = x**3
    res = rational_loss_and_grad(x, t, [0.0, 1.0, 0.0, 0.5], np.zeros(0))
    assert res.grad_phi.shape == (0,) and np.all(res.q == 1.0)
    res2 = rational_loss_and_grad(x, np.zeros((200, 2)), np.ones((2, 2)), np.zeros((2, 0)))
    assert res2.grad_phi.shape == (2, 0)
    _check_fd(lambda a, b: rational_loss_and_grad(x, t, a, b).loss, res,
              np.array([0.0, 1.0, 0.0, 0.5]), np.zeros(0))


def test_empty_batch():
    res = rational_loss_and_grad(np.empty(0), np.empty(0), [1.0, 2.0], [0.1])
    assert res.loss == 0.0 and np.all(res.grad_theta == 0) and res.y.shape == (0,)
    assert res.stats["tag_counts"].sum() == 0 and math.isnan(res.stats["q_p50"])


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(mode="exact"), ValueError, "mode must be one of"),
        (dict(loss="l2"), ValueError, "loss must be one of"),
        (dict(lambda_rej=-0.1), ValueError, "lambda_rej"),
        (dict(delta=-1.0), ValueError, "delta"),
        (dict(saturation_bound=0.0), ValueError, "saturation_bound"),
        (dict(huber_delta=0.0), ValueError, "huber_delta"),
        (dict(rejection_threshold=0.0), ValueError, "rejection_threshold"),
        (dict(sample_weight=-np.ones(5)), ValueError, "sample_weight must be >= 0"),
        (dict(sample_weight=np.zeros(5)), ValueError, "sample_weight must have a positive sum"),
        (dict(sample_weight=np.ones(4)), ValueError, "sample_weight must have shape"),
        (dict(target=np.zeros(4)), ValueError, "target must have the output shape"),
        (dict(target=["a"] * 5), TypeError, "target"),
        (dict(theta=[np.nan]), ValueError, "theta"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, match):
    args = dict(target=np.zeros(5), theta=[1.0, 2.0])
    args.update(kwargs)
    target, theta = args.pop("target"), args.pop("theta")
    with pytest.raises(exc, match=match):
        rational_loss_and_grad(np.linspace(-1, 1, 5), target, theta, [0.1], **args)


def test_top_level_exports():
    assert zp.rational_loss_and_grad is rational_loss_and_grad
    assert zp.LossAndGrad is LossAndGrad
    assert monomial_exponents(1, 2).tolist() == [[0], [1], [2]]


def _same_result(a, b):
    assert a.loss == b.loss and a.data_loss == b.data_loss
    np.testing.assert_array_equal(a.grad_theta, b.grad_theta)
    np.testing.assert_array_equal(a.grad_phi, b.grad_phi)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.q, b.q)
    assert dict(a.stats).keys() == dict(b.stats).keys()
    np.testing.assert_array_equal(a.stats["tag_counts"], b.stats["tag_counts"])


@pytest.mark.parametrize("case", ["1d", "multi", "nd"])
def test_indices_equal_the_copied_batch(rng, case):
    """indices= gathers the rows in the kernel: same bits as passing x[idx], target[idx]."""
    n_pool, n_batch = 3000, CHUNK + 500  # two chunks: the parallel kernel gathers too
    if case == "nd":
        x = rng.uniform(-1, 1, (n_pool, 2))
        theta, phi = rng.normal(size=6), 0.1 * rng.normal(size=5)
        t = 1.0 / (x[:, 0] - 0.3 + 0.1 * x[:, 1])
    elif case == "multi":
        x = rng.uniform(-1, 1, n_pool)
        theta, phi = rng.normal(size=(2, 4)), 0.1 * rng.normal(size=(2, 2))
        t = np.stack([1.0 / (x - 0.3), x**2], axis=1)
    else:
        x = rng.uniform(-1, 1, n_pool)
        theta, phi = rng.normal(size=4), np.array([-3.3, 0.1])
        t = 1.0 / (x - 0.3)
        t[::7] = np.nan  # labelled poles
    idx = rng.integers(0, n_pool, n_batch)
    w = rng.uniform(0.5, 2.0, n_pool)
    for kw in ({}, {"mode": "hybrid", "delta": 0.2, "lambda_rej": 0.5}):
        ours = zp.rational_loss_and_grad(x, t, theta, phi, indices=idx, **kw)
        _same_result(ours, zp.rational_loss_and_grad(x[idx], t[idx], theta, phi, **kw))
        ours_w = zp.rational_loss_and_grad(x, t, theta, phi, indices=idx, sample_weight=w, **kw)
        _same_result(ours_w, zp.rational_loss_and_grad(x[idx], t[idx], theta, phi,
                                                       sample_weight=w[idx], **kw))


def test_indices_through_the_layer(rng):
    layer = zp.TRRational(3, 2)
    x = rng.uniform(-1, 1, 500)
    t = 1.0 / (x - 0.3) + x
    idx = rng.integers(0, 500, 128)
    _same_result(layer.loss_and_grad(x, t, indices=idx), layer.loss_and_grad(x[idx], t[idx]))


@pytest.mark.parametrize("indices, err, match", [
    (np.array([0, 5, -1]), ValueError, r"indices must lie in \[0, 10\)"),
    (np.array([0, 10]), ValueError, r"indices must lie in \[0, 10\)"),
    (np.array([0.0, 1.0]), TypeError, "indices must be an array of integers"),
    (np.zeros((2, 2), dtype=int), ValueError, "indices must be 1-dimensional"),
])
def test_bad_indices(indices, err, match):
    x = np.linspace(-1, 1, 10)
    with pytest.raises(err, match=match):
        zp.rational_loss_and_grad(x, x, np.ones(2), np.ones(1), indices=indices)


def test_read_only_inputs_give_the_writable_results():
    """Read-only arrays (np.load(mmap_mode="r"), broadcast views, frozen buffers) are accepted
    by every kernel entry point and give the same bits as writable copies (the kernels are
    compiled for writable arrays; a read-only input used to fail deep inside numba with
    "mismatch of argument types")."""
    from zeroproof_nb import least_squares as ls

    x = np.linspace(-1, 1, 300)
    y = 1.0 / (x - 0.31) + 0.5 * x
    th, ph, w = np.array([0.5, 1.0, 0.1]), np.array([-3.2, 0.1]), np.linspace(1.0, 2.0, 300)
    frozen = [a.copy() for a in (x, y, th, ph, w)]
    for a in frozen:
        a.setflags(write=False)
    for args in ((x, y, th, ph, w), tuple(frozen)):
        xa, ya, tha, pha, wa = args
        ev = zp.rational_eval(xa, tha, pha)
        lg = zp.rational_loss_and_grad(xa, ya, tha, pha, mode="saturating", sample_weight=wa)
        lm = ls.levenberg_marquardt(xa, ya, tha, pha, sample_weight=wa, max_steps=3)
        got = (ev["value"], lg.loss, lg.grad_theta, lg.grad_phi, lm.theta, lm.phi)
        if xa is x:
            want = got
        else:
            for g, r in zip(got, want):
                np.testing.assert_array_equal(g, r)
