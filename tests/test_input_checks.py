"""Bad or degenerate input found by an adversarial run of the public API: each gets a clear
ValueError / TypeError naming what is wrong, before any state changes, or the right result."""
from __future__ import annotations

import numpy as np
import pytest

import zeroproof_nb as zp
from zeroproof_nb import least_squares as ls
from zeroproof_nb.fitting import linearized_fit
from zeroproof_nb.layers import TRRational
from zeroproof_nb.training import Trainer, TrainingConfig

X = np.linspace(-1, 1, 200)
Y = 0.5 + 1 / (X - 0.31)
TH = np.array([0.1, 1.0, 0.2, 0.3])
PH = np.array([-3.2, 0.1])


def _trainer(model=None):
    return Trainer(model or TRRational(3, 2), config=TrainingConfig(max_epochs=2, verbose=False))


@pytest.mark.parametrize("fn", [ls.levenberg_marquardt, ls.rational_qr,
                                ls.rational_normal_equations])
def test_too_many_parameters_for_memory_is_refused(fn):
    with pytest.raises(ValueError, match="1000002 parameters need .* GiB"):
        fn(X, Y, np.ones(10**6), PH)


@pytest.mark.parametrize("x,y", [(np.full(200, np.nan), Y), (X, np.full(200, np.nan)),
                                 (np.array([]), np.array([]))])
def test_nothing_to_fit_is_refused(x, y):
    with pytest.raises(ValueError, match="no point with a finite x and a finite target"):
        ls.levenberg_marquardt(x, y, TH, PH)
    with pytest.raises(ValueError, match="no point with a finite x and a finite y"):
        linearized_fit(x, y, 3, 2)
    if x.size:
        with pytest.raises(ValueError, match="no sample with a finite x and a finite y"):
            _trainer().fit(x, y)


def test_trainer_fit_changes_nothing_when_an_argument_is_bad():
    for kwargs in ({"sample_weight": -np.ones(200)}, {"x_val": np.ones(3), "y_val": np.ones(4)},
                   {"x_val": X[:5]}):
        model = TRRational(3, 2)
        with pytest.raises(ValueError):
            _trainer(model).fit(np.linspace(5, 6, 200), Y, **kwargs)
        assert model.domain == (-1.0, 1.0) and not model.domain_given


def test_weights_whose_sum_overflows_give_the_same_fit():
    """1e308 per point: the sum overflows; the normalised weights must not become 0."""
    big = zp.rational_loss_and_grad(X, Y, TH, PH, sample_weight=np.full(200, 1e308))
    unit = zp.rational_loss_and_grad(X, Y, TH, PH, sample_weight=np.ones(200))
    assert big.loss == pytest.approx(unit.loss, rel=1e-12) and unit.loss > 1
    np.testing.assert_allclose(big.grad_theta, unit.grad_theta, rtol=1e-12)


def test_optimizer_given_by_name_is_a_type_error():
    with pytest.raises(TypeError, match="TrainingConfig\\(optimizer="):
        Trainer(TRRational(3, 2), optimizer="adam")


def test_scalar_options_are_checked():
    with pytest.raises(ValueError, match="loss_scale"):
        zp.fit_rational(X, Y, loss="huber", loss_scale=-1)
    with pytest.raises(ValueError, match="iterations must be <= 1000"):
        linearized_fit(X, Y, 3, 2, iterations=10**9)


def test_poles_of_non_finite_parameters_name_them():
    m = TRRational(3, 2).fit_linearized(X, Y)
    m.parameters()[1][0] = np.inf
    with pytest.raises(ValueError, match="phi must contain only finite values"):
        m.poles()


def test_fit_rational_on_a_tiny_domain():
    """x of size 1e-200: the doublet search's polynomial division underflowed (a bare
    ZeroDivisionError); the pole is found at the scaled place."""
    with np.errstate(all="ignore"):
        y = 0.5 + 1 / (X - 0.31)
    fit = zp.fit_rational(X * 1e-200, y)
    np.testing.assert_allclose(fit.poles, [0.31e-200], rtol=1e-6)


def test_layer_arguments_are_named():
    with pytest.raises(ValueError, match=r"x must have shape \(N,\) or \(N, 1\) for input_dim=1"):
        TRRational(3, 2).fit_linearized(np.ones((10, 2)), np.ones(10))
    with pytest.raises(ValueError, match="seed must be >= 0"):
        TRRational(3, 2, init="random", seed=-1)


def test_linearized_fit_needs_as_many_distinct_points_as_coefficients():
    """20 samples at one x: the (3, 2) fit is underdetermined (it returned forward(0.5) = -5.5
    for data whose mean is 9.5)."""
    with pytest.raises(ValueError, match="1 distinct points .* 6 coefficients"):
        TRRational(3, 2).fit_linearized(np.full(20, 0.5), np.arange(20.0))


def test_match_poles_near_the_float64_range():
    from zeroproof_nb.metrics import match_poles

    m = match_poles([1e308, -1e308], [1e308, -1e308], 1e308)
    assert m.pairs.tolist() == [[0, 0], [1, 1]] and m.missed.size == 0 and m.extra.size == 0


def test_flags_must_be_bools():
    with pytest.raises(TypeError, match="return_q must be a bool"):
        zp.rational_eval(X, TH, PH, return_q=1)
    with pytest.raises(TypeError, match="return_residues must be a bool"):
        TRRational(3, 2).fit_linearized(X, Y).poles(return_residues="yes")
