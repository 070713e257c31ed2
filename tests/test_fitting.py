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
