"""The anchored denominator (issue #13 item 5): Q = 1 + m(t) Σ_{k<d_q} φ_{k+1} T_k(t),
m(t) = 1 − t/t_a, Q(t_a) = 1 at t_a = −cosh(acosh(10)/d_q) — a pole can sit anywhere in the
domain at every d_q ≥ 1.

References: closed forms with numpy.polynomial.chebyshev, finite differences, SciPy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial import Polynomial
from numpy.polynomial import chebyshev as C

from zeroproof_nb import rational_eval, rational_loss_and_grad
from zeroproof_nb.core import to_ieee
from zeroproof_nb.fitting import fit_rational, linearized_fit
from zeroproof_nb.layers import TRRational
from zeroproof_nb.least_squares import levenberg_marquardt, rational_normal_equations
from zeroproof_nb.rational import basis_features, denominator_features

ANCH = "chebyshev_anchored"


def _t(x, dom):
    return (2 * x - (dom[0] + dom[1])) / (dom[1] - dom[0])


def _reference(x, theta, phi, dom):
    t = _t(x, dom)
    t_a = -np.cosh(np.arccosh(10.0) / len(phi))
    return C.chebval(t, theta), 1.0 + (1.0 - t / t_a) * C.chebval(t, phi)


@pytest.mark.parametrize("dp,dq", [(3, 1), (4, 3), (2, 9)])  # 9: the feature-row gradient path
def test_forward_and_gradient_match_the_closed_form(dp, dq):
    rng = np.random.default_rng(dp * 10 + dq)
    dom = (-3.0, 2.0)
    x = rng.uniform(*dom, 2000)
    theta, phi = rng.normal(size=dp + 1), 0.3 * rng.normal(size=dq)
    p, q = _reference(x, theta, phi, dom)
    y, qk = rational_eval(x, theta, phi, basis=ANCH, domain=dom, return_q=True)
    np.testing.assert_allclose(qk, q, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(to_ieee(y), p / q, rtol=1e-10)
    eta = denominator_features(x, dq, basis=ANCH, domain=dom)
    np.testing.assert_allclose(1.0 + eta @ phi, q, rtol=1e-12, atol=1e-13)
    # the fused pass (mse = mean of r²/2, Mask-REAL) against the analytic NumPy gradient
    target = p / q + 0.1 * rng.standard_normal(x.size)
    res = rational_loss_and_grad(x, target, theta, phi, basis=ANCH, domain=dom)
    r = (p / q - target) / x.size
    psi = basis_features(x, dp, basis=ANCH, domain=dom)
    np.testing.assert_allclose(res.grad_theta, (r / q) @ psi, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.grad_phi, (-r * p / q / q) @ eta, rtol=1e-9, atol=1e-12)


def test_multi_head_shared_and_separate_denominators():
    rng = np.random.default_rng(5)
    dom = (0.0, 4.0)
    x = rng.uniform(*dom, 700)
    theta = rng.normal(size=(3, 4))
    for phi in (0.2 * rng.normal(size=2), 0.2 * rng.normal(size=(3, 2))):
        y = to_ieee(rational_eval(x, theta, phi, basis=ANCH, domain=dom))
        for j in range(3):
            p, q = _reference(x, theta[j], phi if phi.ndim == 1 else phi[j], dom)
            np.testing.assert_allclose(y[:, j], p / q, rtol=1e-10)
        target = y + 0.05 * rng.standard_normal(y.shape)
        res = rational_loss_and_grad(x, target, theta, phi, basis=ANCH, domain=dom)

        def loss(th, ph):
            return rational_loss_and_grad(x, target, th, ph, basis=ANCH, domain=dom).loss

        h = 1e-6
        for idx in np.ndindex(phi.shape):
            e = np.zeros_like(phi)
            e[idx] = h
            fd = (loss(theta, phi + e) - loss(theta, phi - e)) / (2 * h)
            assert res.grad_phi[idx] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_float32_follows_the_float64_kernel():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, 300)
    theta, phi = rng.normal(size=4), 0.2 * rng.normal(size=3)
    y64 = to_ieee(rational_eval(x, theta, phi, basis=ANCH))
    y32 = to_ieee(rational_eval(x.astype(np.float32), theta, phi, basis=ANCH))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=2e-4, atol=1e-5)


def test_normal_equations_match_the_numpy_jacobian():
    rng = np.random.default_rng(3)
    dom = (-2.0, 3.0)
    x = rng.uniform(*dom, 900)
    theta, phi = rng.normal(size=3), np.array([-0.4, 0.1])
    p, q = _reference(x, theta, phi, dom)
    target = p / q + 0.01 * rng.standard_normal(x.size)
    ne = rational_normal_equations(x, target, theta, phi, basis=ANCH, domain=dom)
    psi = basis_features(x, 2, basis=ANCH, domain=dom)
    eta = denominator_features(x, 2, basis=ANCH, domain=dom)
    jac = np.hstack([psi / q[:, None], -(p / q / q)[:, None] * eta]) / np.sqrt(x.size)
    r = (p / q - target) / np.sqrt(x.size)
    np.testing.assert_allclose(ne.hessian, jac.T @ jac, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ne.gradient, jac.T @ r, rtol=1e-9, atol=1e-13)


def test_lm_matches_scipy_least_squares():
    from scipy.optimize import least_squares

    rng = np.random.default_rng(4)
    dom = (-2.0, 3.0)
    x = rng.uniform(*dom, 1200)
    y = 1.0 / (x - 0.5) + 0.1 * x + 1e-3 * rng.standard_normal(x.size)  # pole at the centre
    theta0, phi0 = linearized_fit(x, y, 2, 1, basis=ANCH, domain=dom)
    psi = basis_features(x, 2, basis=ANCH, domain=dom)
    eta = denominator_features(x, 1, basis=ANCH, domain=dom)

    def fun(u):
        return psi @ u[:3] / (1.0 + eta @ u[3:]) - y

    def jac(u):
        q = 1.0 + eta @ u[3:]
        return np.hstack([psi / q[:, None], -((psi @ u[:3]) / q / q)[:, None] * eta])

    u0 = np.r_[theta0 * (1 + 1e-3), phi0]  # (moving φ would carry the pole across samples)
    ref = least_squares(fun, u0, jac=jac, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    res = levenberg_marquardt(x, y, u0[:3], u0[3:], basis=ANCH, domain=dom, ftol=1e-15,
                              xtol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(np.r_[res.theta, res.phi], ref.x, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("domain,pole", [((-2.0, 2.0), 0.0), ((-1.0, 3.0), 1.0),
                                          ((-1.0, 2.0), 0.0)])
def test_a_pole_at_zero_and_at_the_centre_at_the_lowest_degree(domain, pole):
    """y = 1/(x − pole) + 1: degrees (1, 1) fit it exactly — with the anchored Q; the
    unit-constant Chebyshev Q cannot vanish at the centre when d_q = 1."""
    x = np.linspace(*domain, 801)
    x = x[np.abs(x - pole) > 1e-3]
    y = 1.0 / (x - pole) + 1.0
    layer = TRRational(1, 1, domain=domain).fit_linearized(x, y)
    assert layer.denominator == "anchored"
    np.testing.assert_allclose(layer.poles(), [pole], atol=1e-9)
    fit = fit_rational(x, y, max_degree=4)
    assert fit.degrees == (1, 1)
    np.testing.assert_allclose(fit.poles, [pole], atol=1e-8)
    if pole == 0.5 * (domain[0] + domain[1]):
        old = TRRational(1, 1, domain=domain, denominator="unit_constant").fit_linearized(x, y)
        err = np.max(np.abs(old.forward(x)["value"] - y))
        assert err > 1e-3 * np.max(np.abs(y))  # the blind spot that the anchor removes


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-0.999, 0.999), min_size=1, max_size=4),
       st.floats(-3.0, 3.0), st.floats(0.5, 4.0))
def test_every_pole_configuration_in_the_domain_is_representable(roots, centre, width):
    roots = sorted(roots)
    if np.min(np.diff(roots), initial=1.0) < 1e-2:
        return
    dom = (centre - width, centre + width)
    r = centre + width * np.asarray(roots)
    q = Polynomial.fromroots(r)
    p = Polynomial([1.0])  # P = 1: nothing cancels
    layer = TRRational(0, len(roots), domain=dom)
    layer.set_series(p, q)
    np.testing.assert_allclose(layer.poles(), r, atol=1e-7 * width)
    xs = np.linspace(*dom, 41)
    xs = xs[np.min(np.abs(xs[:, None] - r[None, :]), axis=1) > 1e-2 * width]
    np.testing.assert_allclose(layer.forward(xs)["value"], p(xs) / q(xs), rtol=1e-7)


def test_set_domain_keeps_the_function_and_persistence_keeps_the_form(tmp_path):
    rng = np.random.default_rng(7)
    layer = TRRational(3, 2, denominator="anchored")
    layer.set_parameters([rng.normal(size=4), np.array([0.3, -0.2])])
    x = rng.uniform(-1, 1, 200)
    before = layer.forward(x)["value"].copy()
    layer.set_domain((-1.5, 2.5))
    np.testing.assert_allclose(layer.forward(x)["value"], before, rtol=1e-10, atol=1e-12)
    path = tmp_path / "m.npz"
    layer.save(path)
    back = TRRational.load(path)
    assert back.denominator == "anchored" and back.domain == layer.domain
    np.testing.assert_array_equal(back.forward(x)["value"], layer.forward(x)["value"])
    # a file written before the anchored form (no 'denominator' entry) is upstream's form
    state = dict(np.load(path))
    del state["denominator"]
    np.savez(tmp_path / "old.npz", **state)
    old = TRRational.load(tmp_path / "old.npz")
    assert old.denominator == "unit_constant"
    p, q = old.series()
    np.testing.assert_allclose(q.coef, np.r_[1.0, old.phi])


def test_denominator_choices_are_checked():
    with pytest.raises(ValueError, match="denominator"):
        TRRational(2, 2, basis="monomial", denominator="anchored")
    with pytest.raises(ValueError, match="denominator"):
        TRRational(2, 2, input_dim=2, basis="chebyshev", denominator="anchored")
    with pytest.raises(ValueError, match="denominator"):
        TRRational(2, 2, denominator="leading")
    assert TRRational(2, 2, input_dim=2).basis == "monomial"
    # the default: anchored at d_q = 1 only (the anchor 4.5 domain widths away)
    assert TRRational(3, 1).denominator == "anchored"
    assert TRRational(3, 2).denominator == "unit_constant"
    assert TRRational(3, 0).denominator == "unit_constant"
    assert TRRational(2, 2, basis="monomial").denominator == "unit_constant"
    with pytest.raises(ValueError, match="1-D"):
        rational_eval(np.zeros((4, 2)), np.zeros(6), np.zeros(5), basis=ANCH)
    layer = TRRational(2, 1)
    with pytest.raises(TypeError, match="basis"):
        layer.fit_linearized(np.linspace(0, 1, 20), np.ones(20), basis="monomial")


def test_pole_set_on_a_circle_and_in_1d():
    from zeroproof_nb.metrics import pole_set

    # Q = 1 − 4(x0² + x1²): the pole set is the circle of radius 1/2
    layer = TRRational(0, 2, input_dim=2)
    assert layer.basis == "monomial"
    layer.set_parameters([np.array([1.0]), np.array([0.0, 0.0, -4.0, 0.0, -4.0])])
    g = np.linspace(-1, 1, 101)
    pts = pole_set(layer, [g, g])
    r = np.hypot(pts[:, 0], pts[:, 1])
    np.testing.assert_allclose(r, 0.5, atol=2e-3)  # linear interpolation on a 0.02 grid
    ang = np.arctan2(pts[:, 1], pts[:, 0])
    assert pts.shape[1] == 2 and np.histogram(ang, bins=8, range=(-np.pi, np.pi))[0].min() > 5
    with pytest.raises(ValueError, match="pole_set"):
        layer.poles()
    with pytest.raises(ValueError, match="axes"):
        pole_set(layer, [g])
    with pytest.raises(ValueError, match="increasing"):
        pole_set(layer, [g, g[::-1]])
    # 1-D: the sign changes bracket the simple poles that poles() returns
    one = TRRational(1, 2, domain=(-2.0, 2.0))
    one.set_series(Polynomial([1.0, 1.0]), Polynomial.fromroots([-0.7, 1.1]))
    found = pole_set(one, np.linspace(-2, 2, 401))[:, 0]
    np.testing.assert_allclose(found, one.poles(), atol=1e-4)
    np.testing.assert_allclose(found, [-0.7, 1.1], atol=1e-4)


def test_fit_rational_in_two_dimensions_finds_the_pole_line():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1500, 2))
    s = x[:, 0] + x[:, 1] - 0.3
    x = x[np.abs(s) > 1e-2]
    y = 1.0 / (x[:, 0] + x[:, 1] - 0.3) + x[:, 0]
    fit = fit_rational(x, y, max_degree=2)
    assert fit.model.input_dim == 2 and fit.report["input_dim"] == 2
    assert fit.poles.ndim == 2 and fit.poles.shape[1] == 2 and len(fit.poles) > 50
    np.testing.assert_allclose(fit.poles.sum(axis=1), 0.3, atol=1e-3)
    xt = rng.uniform(-1, 1, (400, 2))
    xt = xt[np.abs(xt.sum(axis=1) - 0.3) > 0.1]
    yt = 1.0 / (xt.sum(axis=1) - 0.3) + xt[:, 0]
    np.testing.assert_allclose(fit.model.forward(xt)["value"], yt, rtol=1e-6, atol=1e-6)
    assert fit.removed == [] and fit.residues.size == 0
