import numpy as np
import pytest

from zeroproof_nb.fitting import linearized_fit
from zeroproof_nb.problems import get_problem


@pytest.mark.parametrize("name", ["two_poles", "simple_pole", "edge_pole"])
def test_linearized_fit_recovers_exact_rational(name):
    pr = get_problem(name)
    d_p, d_q = pr.degrees()
    x, y = pr.sample(500, seed=1)
    theta, phi = linearized_fit(x, y, d_p, d_q)
    p_true, q_true = pr.rational_coefficients()
    # normalise the true coefficients so that Q's constant term is 1, as the model's
    scale = q_true[0]
    np.testing.assert_allclose(theta, p_true / scale, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(phi, q_true[1:] / scale, rtol=1e-8, atol=1e-10)


def test_linearized_fit_chebyshev_poles_and_skips_nonfinite():
    pr = get_problem("two_poles")
    x, y = pr.sample(400, seed=2)
    y[:5] = np.nan
    theta, phi = linearized_fit(x, y, 3, 2, basis="chebyshev", domain=(-1.0, 1.0))
    roots = np.polynomial.chebyshev.chebroots(np.r_[1.0, phi])
    np.testing.assert_allclose(np.sort(roots.real), np.sort(pr.poles), atol=1e-9)


def test_linearized_fit_bad_input():
    with pytest.raises(ValueError, match="y must have length"):
        linearized_fit(np.zeros(5), np.zeros(4), 1, 1)
    with pytest.raises(ValueError, match="finite samples"):
        linearized_fit(np.zeros(2), np.zeros(2), 3, 2)


def test_linearized_fit_overflowing_features_raise_a_named_error():
    x = np.linspace(-1, 1, 50)
    y = 1.0 / (x - 2.0)
    with pytest.raises(ValueError, match="x: the basis features"):
        linearized_fit(x * 1e200, y, 3, 2)
    with pytest.raises(ValueError, match="loss"):
        linearized_fit(x, y, 1, 1, loss="cauchy")


def test_fit_rational_clean_two_poles_finds_poles_and_residues():
    import zeroproof_nb as zp

    pr = get_problem("two_poles")
    x, y = pr.sample(1500, seed=0)
    fit = zp.fit_rational(x, y, max_degree=6)
    np.testing.assert_allclose(fit.poles, [-0.55, 0.3], atol=1e-8)
    np.testing.assert_allclose(fit.residues, [-2.0, 1.0], rtol=1e-6)
    assert fit.degrees == (fit.model.d_p, fit.model.d_q) and fit.model.basis == "chebyshev"
    rep = fit.report
    assert rep["chosen"] == list(fit.degrees) and len(rep["held_out"]) >= 10
    assert np.isfinite(rep["held_out_loss"]) and rep["best"] <= rep["held_out_loss"]
    assert rep["best_degrees"] in [t["degrees"] for t in rep["held_out"]]
    assert fit.model.domain == (float(x.min()), float(x.max()))


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_rational_noisy_tan_has_no_spurious_poles(seed):
    """1% multiplicative noise on tan over [−3, 3]: both poles ±π/2 within 1e-3, nothing else
    (AAA at its default tolerance reports dozens of real poles on such data)."""
    import zeroproof_nb as zp

    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, 2000)
    y = np.tan(x) * (1 + 0.01 * rng.standard_normal(x.size))
    fit = zp.fit_rational(x, y, max_degree=8, seed=seed)
    assert fit.poles.size == 2
    np.testing.assert_allclose(fit.poles, [-np.pi / 2, np.pi / 2], atol=1e-3)
    np.testing.assert_allclose(fit.residues, [-1.0, -1.0], rtol=0.05)


@pytest.mark.parametrize("seed", [2, 9])
def test_fit_rational_removes_a_doublet_beside_a_true_pole(seed):
    """The fit-quality benchmark's noisy tan samples of these seeds: a pole with residue ~1e-3
    and a zero of P sit 3-4e-3 from −π/2. Refitted at the lower degree, the model is worse on
    the held-out points (the refit trades them for training loss near the pole); the deflated
    model as it is, is not, and is kept: the poles are ±π/2 and nothing else."""
    import zeroproof_nb as zp

    rng = np.random.default_rng([13, seed])
    x = np.sort(rng.uniform(-3.0, 3.0, 2000))
    eps = rng.standard_normal(2000)
    keep = np.min(np.abs(x[:, None] - np.array([-np.pi / 2, np.pi / 2])), axis=1) > 1e-3
    x, y = x[keep], np.tan(x[keep]) * (1 + 0.01 * eps[keep])
    fit = zp.fit_rational(x, y, seed=seed)
    assert fit.poles.size == 2, (fit.poles, fit.removed)
    np.testing.assert_allclose(fit.poles, [-np.pi / 2, np.pi / 2], atol=1e-3)
    assert any(abs(r["pole"] + np.pi / 2) < 1e-2 for r in fit.removed)


def test_fit_rational_lorentzian_has_no_real_pole():
    from zeroproof_nb.fitting import fit_rational

    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 1500)
    for noise in (0.0, 0.01):
        y = 1.0 / ((x - 0.2) ** 2 + 0.01) * (1 + noise * rng.standard_normal(x.size))
        fit = fit_rational(x, y, max_degree=6)
        assert fit.poles.size == 0
        near = fit.model.poles(near_axis=0.2)  # the complex pair 0.2 ± 0.1i
        np.testing.assert_allclose(np.abs(near.imag), [0.1, 0.1], rtol=0.05)


def test_deflate_removes_a_doublet_and_keeps_the_function():
    from zeroproof_nb.fitting import _deflate, _chebyshev_layer

    # f = (x − 0.5)(x + 0.2001)/((x − 0.5)(x + 0.2)): a doublet at −0.2 / −0.2001 over (x−0.5)/(x−0.5)
    from numpy.polynomial import Polynomial, Chebyshev

    dom = [-1.0, 1.0]
    p = (Polynomial([-0.5, 1.0]) * Polynomial([0.2001, 1.0]) * Polynomial([2.0, 1.0])).convert(
        kind=Chebyshev, domain=dom)
    q = (Polynomial([-0.5, 1.0]) * Polynomial([0.2, 1.0]) * Polynomial([3.0, 1.0])).convert(
        kind=Chebyshev, domain=dom)
    layer = _chebyshev_layer(3, 3, (-1.0, 1.0), np.zeros(4), np.zeros(3))
    layer.set_series(p, q)
    x = np.linspace(-0.9, 0.9, 7)
    np.testing.assert_allclose(layer.forward(x)["value"], p(x) / q(x), rtol=1e-12)
    theta, phi, gap = _deflate(layer, -0.2)
    assert gap == pytest.approx(1e-4, rel=1e-6)  # the zero of P at -0.2001
    small = _chebyshev_layer(2, 2, (-1.0, 1.0), theta, phi)
    np.testing.assert_allclose(small.forward(x)["value"], layer.forward(x)["value"], rtol=2e-3)
    np.testing.assert_allclose(np.sort(small.poles()), [0.5], atol=1e-9)


def test_fit_rational_bad_input():
    from zeroproof_nb.fitting import fit_rational

    x = np.linspace(-1, 1, 50)
    with pytest.raises(ValueError, match="y must have one value per point of x"):
        fit_rational(x, x[:-1])
    with pytest.raises(ValueError, match="validation_fraction"):
        fit_rational(x, x, validation_fraction=0.0)
    with pytest.raises(ValueError, match="loss"):
        fit_rational(x, x, loss="mae")
    with pytest.raises(ValueError, match="max_degree"):
        fit_rational(x, x, max_degree=-1)


def test_fit_rational_does_not_depend_on_the_units_of_y():
    from zeroproof_nb.fitting import fit_rational

    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 600)
    x = x[np.abs(x - 0.3) > 1e-3]
    y = (1.0 / (x - 0.3) + x) * (1 + 1e-3 * rng.standard_normal(x.size))
    ref = fit_rational(x, y, max_degree=4)
    for s in (1e-300, 1e300):
        fit = fit_rational(x, y * s, max_degree=4)
        assert fit.degrees == ref.degrees
        np.testing.assert_allclose(fit.poles, ref.poles, rtol=1e-9)
        np.testing.assert_allclose(fit.residues / s, ref.residues, rtol=1e-9)
        assert fit.report["held_out_loss"] == pytest.approx(ref.report["held_out_loss"],
                                                            rel=1e-8)  # losses of y / y_scale
        assert fit.report["y_scale"] / s == pytest.approx(ref.report["y_scale"], rel=1e-12)
    np.testing.assert_allclose(ref.poles, [0.3], atol=1e-4)


def test_fit_rational_refuses_degenerate_data():
    from zeroproof_nb.fitting import fit_rational

    with pytest.raises(ValueError, match="same coordinates"):
        fit_rational(np.full(300, 0.5), np.linspace(0, 1, 300))
    with pytest.raises(ValueError, match="at least 10 points"):
        fit_rational(np.linspace(0, 1, 3), np.ones(3))
    with pytest.raises(ValueError, match="at least 10 points"):
        fit_rational(np.r_[np.linspace(0, 1, 5), np.full(20, np.nan)], np.ones(25))


def test_rational_fit_predicts_plain_floats():
    from zeroproof_nb.fitting import fit_rational

    x = np.linspace(-1, 1, 401)
    x = x[np.abs(x - 0.25) > 1e-3]
    fit = fit_rational(x, 1.0 / (x - 0.25) + 2.0, max_degree=3)
    xt = np.array([-0.5, 0.0, 0.75, np.nan])
    out = fit.predict(xt)
    assert out.dtype == np.float64 and out.shape == (4,)
    np.testing.assert_allclose(out[:3], 1.0 / (xt[:3] - 0.25) + 2.0, rtol=1e-9)
    assert np.isnan(out[3]) and np.array_equal(fit(xt[:3]), out[:3])


def test_robust_linearized_fit_finds_outliers_that_pole_zero_pairs_absorb():
    """ψ(x) on [−2.5, 2.5] at (4, 8) with 5% gross outliers (the training-quality benchmark's
    digamma case, seed 101): the fit of all points puts pole-zero pairs at outliers, whose
    residuals are then small, so Tukey re-weighting from it keeps them. The least-median start
    (the best of seeded subset fits by the median residual over all points) does not: the
    Tukey fit has the three poles 0, −1, −2, no other, and is accurate between them."""
    from scipy.special import digamma

    from zeroproof_nb.layers import TRRational

    rng = np.random.default_rng([101, 0])
    x = rng.uniform(-2.5, 2.5, 2000)
    y = digamma(x) + 1e-3 * rng.standard_normal(x.size)
    idx = rng.choice(x.size, size=100, replace=False)
    y[idx] += rng.choice([-1.0, 1.0], size=100) * (1.0 + np.abs(rng.standard_t(2, size=100)))
    dom = (float(x.min()), float(x.max()))
    theta, phi = linearized_fit(x, y, 4, 8, basis="chebyshev", domain=dom, loss="tukey")
    layer = TRRational(4, 8, basis="chebyshev", domain=dom, denominator="unit_constant")
    layer.set_parameters([theta, phi])
    poles = np.sort(layer.poles())
    np.testing.assert_allclose(poles, [-2.0, -1.0, 0.0], atol=1e-4)
    grid = np.linspace(-2.4, 2.4, 481)
    grid = grid[np.min(np.abs(grid[:, None] - np.array([-2.0, -1.0, 0.0])), axis=1) > 0.1]
    err = np.asarray(layer.forward(grid)["value"]) - digamma(grid)
    assert np.max(np.abs(err)) < 1e-2


def test_fit_rational_removes_a_tight_doublet_beside_a_true_pole():
    """tan with 1% noise, a seed where the chosen model held a pole 2e-3 from the true pole at
    pi/2 with a zero of P 1e-4 from it (residue 6% of the true pole's): a doublet by its shape,
    which bought 36% lower held-out loss near the pole, so the 5% rule kept it and the true
    pole was off by 1.8e-4. Now both true poles come back alone, each within 1e-4."""
    from zeroproof_nb import fit_rational

    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, 2000)
    y = np.tan(x) * (1 + 0.01 * rng.standard_normal(2000))
    fit = fit_rational(x, y)
    np.testing.assert_allclose(fit.poles, [-np.pi / 2, np.pi / 2], atol=1e-4)
    assert any("doublet by its shape" in r["reason"] for r in fit.removed), fit.removed
