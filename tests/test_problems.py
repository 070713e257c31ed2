"""Built-in rational problems against their closed forms, and the AAA peer."""
import json
import warnings

import numpy as np
import pytest

from zeroproof_nb.metrics import pole_localization_error
from zeroproof_nb.problems import (
    RationalProblem,
    fit_aaa,
    get_problem,
    list_problems,
    make_problem,
)


def test_builtins():
    assert list_problems()[0] == "two_poles"
    two = get_problem()
    assert two.name == "two_poles" and two.poles == (0.3, -0.55) and two.residues == (1.0, -2.0)
    assert two.domain == (-1.0, 1.0) and two.noise == 0.0
    np.testing.assert_array_equal(two.true_poles(), [-0.55, 0.3])
    simple = get_problem("simple_pole")
    x = np.linspace(-1, 1, 101)
    x = x[x != 0.3]
    np.testing.assert_allclose(simple.target(x), 1 / (x - 0.3) + x, rtol=1e-15, atol=1e-15)
    edge = get_problem("edge_pole")
    lo, hi = edge.domain
    assert hi - edge.true_poles()[0] <= 0.05 + 1e-12
    with pytest.raises(ValueError, match="name"):
        get_problem("three_poles")


def test_target_closed_form_and_rational_form(rng):
    prob = make_problem([0.3, -0.55, 0.8], [1.0, -2.0, 0.25], smooth=[0.5, -1.0, 2.0])
    x = rng.uniform(-1, 1, 1000)
    closed = (0.5 - x + 2 * x**2) + 1 / (x - 0.3) - 2 / (x + 0.55) + 0.25 / (x - 0.8)
    np.testing.assert_allclose(prob.target(x), closed, rtol=1e-13)
    # P/Q representation: direct products, and monomial coefficients via numpy.polynomial
    np.testing.assert_allclose(prob.p_true(x) / prob.q_true(x), closed, rtol=1e-11)
    np.testing.assert_allclose(prob.q_true(x), (x - 0.3) * (x + 0.55) * (x - 0.8), rtol=1e-14)
    p_coef, q_coef = prob.rational_coefficients()
    pv = np.polynomial.polynomial.polyval(x, p_coef)
    qv = np.polynomial.polynomial.polyval(x, q_coef)
    np.testing.assert_allclose(pv / qv, closed, rtol=1e-9)
    assert prob.degrees() == (5, 3)
    assert get_problem().degrees() == (3, 2)


def test_target_at_exact_poles_is_signed_inf_and_never_nan():
    prob = get_problem()
    y = prob.target(np.array([0.3, -0.55, 0.0]))
    assert y[0] == np.inf and y[1] == -np.inf and np.isfinite(y[2])
    x, y = prob.grid(4001)  # the grid also hits both poles exactly? at least no NaN
    assert not np.any(np.isnan(y))
    np.testing.assert_array_equal(prob.q_true(prob.true_poles()), [0.0, 0.0])


def test_sample_and_grid(rng):
    prob = get_problem("two_poles", noise=0.01)
    x1, y1 = prob.sample(500, seed=3)
    x2, y2 = prob.sample(500, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.shape == y1.shape == (500,)
    assert np.all((x1 >= -1) & (x1 < 1))
    resid = y1 - prob.target(x1)
    assert abs(resid.std() - 0.01) < 0.002 and abs(resid.mean()) < 0.003
    xg, yg = prob.grid(11)
    np.testing.assert_array_equal(xg, np.linspace(-1, 1, 11))
    np.testing.assert_array_equal(yg, prob.target(xg))
    x0, y0 = get_problem().sample(5, seed=np.random.default_rng(1))
    np.testing.assert_array_equal(y0, get_problem().target(x0))  # noise 0: exact
    d = prob.to_dict()
    assert json.loads(json.dumps(d)) == d and d["poles"] == [0.3, -0.55]


def test_problem_validation():
    with pytest.raises(ValueError, match="residues"):
        make_problem([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="distinct"):
        make_problem([0.1, 0.1], [1.0, 2.0])
    with pytest.raises(ValueError, match="residues"):
        make_problem([0.1], [0.0])
    with pytest.raises(ValueError, match="domain"):
        make_problem([0.1], [1.0], domain=(1.0, -1.0))
    with pytest.raises(ValueError, match="noise"):
        make_problem([0.1], [1.0], noise=-0.1)
    with pytest.raises(ValueError, match="poles"):
        RationalProblem(poles=[np.inf], residues=[1.0])
    with pytest.raises(ValueError, match="n"):
        get_problem().grid(1)
    with pytest.raises(ValueError, match="x"):
        get_problem().target([np.nan])
    # poles outside the domain are allowed but not reported by true_poles
    assert make_problem([0.1, 1.5], [1.0, 1.0]).true_poles().tolist() == [0.1]


@pytest.mark.parametrize("name", ["two_poles", "simple_pole", "edge_pole"])
def test_aaa_recovers_poles(name):
    prob = get_problem(name)
    x, y = prob.sample(300, seed=0)
    peer = fit_aaa(x, y, prob.domain)
    found = peer.poles()
    assert found.size == prob.true_poles().size
    np.testing.assert_allclose(found, prob.true_poles(), atol=1e-8)
    assert pole_localization_error(found, prob.true_poles()) < 1e-8
    xt, yt = prob.grid(257)
    far = np.min(np.abs(xt[:, None] - prob.true_poles()[None, :]), axis=1) > 1e-3
    np.testing.assert_allclose(peer.predict(xt[far]), yt[far], rtol=1e-8, atol=1e-8)


def test_aaa_noisy_and_non_finite_samples():
    prob = get_problem("two_poles", noise=1e-4)
    x, y = prob.sample(400, seed=1)
    x = np.append(x, [0.3, x[0]])  # an exact pole hit (inf) and a repeated x (first kept)
    y = np.append(y, [np.inf, y[0] + 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        peer = fit_aaa(x, y, prob.domain, rtol=1e-4)
    assert pole_localization_error(peer.poles(), prob.true_poles()) < 1e-3
    with pytest.raises(ValueError, match="shape"):
        fit_aaa([0.0, 1.0], [1.0])
