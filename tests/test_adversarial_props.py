"""Adversarial properties over the public API (issue #12): bad input raises ValueError or
TypeError, never anything else (no numpy/KeyError/MemoryError/numba TypingError, no silent
truncation); sampling is invariant to the scale of sample weights; the λ rule never leaves a
non-finite λ; reserved tag codes and bad structured dtypes are refused."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zeroproof_nb as zp
from zeroproof_nb.gradients import HybridGradientSchedule
from zeroproof_nb.kernels import policy as kp
from zeroproof_nb.layers import TRRational
from zeroproof_nb.optim import SGD, Adam
from zeroproof_nb.training.adaptive_loss import (
    AdaptiveLambda,
    AdaptiveLossConfig,
    AdaptiveLossPolicy,
)
from zeroproof_nb.training.coverage import CoverageTracker
from zeroproof_nb.training.curriculum import CurriculumScheduler, combine_sample_weights
from zeroproof_nb.training.sampling_diagnostics import (
    ActiveSampler,
    ActiveSamplerConfig,
    ImportanceSampler,
    ImportanceSamplerConfig,
)

ALLOWED = (ValueError, TypeError)
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# values an adversarial user passes where a number (or a small integer) is expected
BAD = [-1, 0, 1, 2, 3.7, -0.0, 1e308, -1e308, 10**9, 10**12, 10**13, 2**63, float("nan"),
       float("inf"), -float("inf"), 5e-324, True, None, "2", [1, 2], np.int64(3),
       np.float32(2.5), object()]

Q = np.linspace(-2.0, 2.0, 64)


def _sampler():
    return ImportanceSampler(ImportanceSamplerConfig(seed=0))


# one entry per argument: a call that puts the value v there (the other arguments are valid)
TARGETS = {
    "TRRational.d_p": lambda v: TRRational(v, 1, basis="monomial"),
    "TRRational.d_q": lambda v: TRRational(2, v, basis="monomial"),
    "TRRational.input_dim": lambda v: TRRational(1, 1, input_dim=v, basis="monomial"),
    "TRRational.n_outputs": lambda v: TRRational(1, 1, n_outputs=v, basis="monomial"),
    "TRRational.domain": lambda v: TRRational(1, 1, domain=(0.0, v), basis="monomial"),
    "TRRational.alpha_phi": lambda v: TRRational(1, 1, alpha_phi=v, basis="monomial"),
    "monomial_exponents.d": lambda v: zp.monomial_exponents(v, 2),
    "monomial_exponents.degree": lambda v: zp.monomial_exponents(16, v),
    "rational_eval.domain": lambda v: zp.rational_eval(Q, [1.0, 0.5], [0.2], basis="chebyshev",
                                                      domain=(0.0, v)),
    "rational_eval.q_epsilon": lambda v: zp.rational_eval(Q, [1.0], [0.2], q_epsilon=v),
    "basis_features.degree": lambda v: zp.rational.basis_features(Q, v),
    "count_tags.axis": lambda v: zp.count_tags(np.zeros((3, 4), np.uint8), axis=v),
    "tr_pow_int.k": lambda v: zp.tr_pow_int(zp.from_ieee(Q), v),
    "sample_indices.batch_size": lambda v: _sampler().sample_indices(Q, v),
    "hybrid_sample.batch_size": lambda v: _sampler().hybrid_sample(Q, Q, v),
    "sample_index_batches.n_batches": lambda v: _sampler().sample_index_batches(
        _sampler().prepare(Q), v, 10**6),
    "ImportanceSamplerConfig.max_weight": lambda v: ImportanceSamplerConfig(max_weight=v),
    "ImportanceSamplerConfig.temperature": lambda v: ImportanceSamplerConfig(temperature=v),
    "ActiveSamplerConfig.grid_bounds": lambda v: ActiveSamplerConfig(grid_bounds=(-v, v)),
    "ActiveSamplerConfig.grid_bounds_lo": lambda v: ActiveSamplerConfig(grid_bounds=(0.0, v)),
    "ActiveSampler.input_dim": lambda v: ActiveSampler(ActiveSamplerConfig(initial_grid_size=4),
                                                       input_dim=v),
    "ActiveSampler.sample": lambda v: ActiveSampler(ActiveSamplerConfig(initial_grid_size=4)).sample(v),
    "CoverageTracker.counts": lambda v: CoverageTracker().update_counts([v, 1, 0, 0]),
    "Curriculum.coverage": lambda v: CurriculumScheduler().update(1, v, 0.5),
    "Curriculum.loss": lambda v: CurriculumScheduler().update(1, 0.9, v),
    "HybridGradientSchedule.warmup_epochs": lambda v: HybridGradientSchedule(warmup_epochs=v),
    "HybridGradientSchedule.transition_epochs": lambda v: HybridGradientSchedule(transition_epochs=v),
    "AdaptiveLossConfig.learning_rate": lambda v: AdaptiveLossConfig(learning_rate=v),
    "AdaptiveLossConfig.momentum": lambda v: AdaptiveLossConfig(momentum=v),
    "SGD.lr": lambda v: SGD([np.zeros(3)], lr=v),
    "Adam.eps": lambda v: Adam([np.zeros(3)], eps=v),
    "combine_sample_weights": lambda v: combine_sample_weights(np.full(4, v), np.ones(4)),
    "AdaptiveLossPolicy.y": lambda v: AdaptiveLossPolicy().batch_loss_and_grad([v], [-1e308]),
}


def test_bad_scalar_arguments_raise_value_or_type_error():
    """Every (argument, value) pair: accepted, or a ValueError/TypeError with a message."""
    wrong = []
    n = 0
    for target in sorted(TARGETS):
        for value in BAD:
            n += 1
            try:
                TARGETS[target](value)
            except ALLOWED as exc:
                if not str(exc):
                    wrong.append((target, value, "empty message"))
            except Exception as exc:  # noqa: BLE001 - the property under test
                wrong.append((target, value, f"{type(exc).__name__}: {exc}"))
    assert n == len(TARGETS) * len(BAD)
    assert not wrong, wrong


ARRAYS = st.sampled_from([
    np.zeros(0), np.array([np.nan, 1.0]), np.array([np.inf, -np.inf]), np.array([[1.0, 2.0]]),
    np.zeros((2, 0)), np.array(["a", "b"]), np.array([1 + 2j]), np.array([True, False]),
    np.array([1e308, -1e308]), np.zeros((3, 1, 1)), np.arange(5, dtype=np.int8),
    np.array([5e-324]), np.array(3.0), [[1.0], [2.0, 3.0]], "x", None,
])


@SETTINGS
@given(x=ARRAYS, theta=ARRAYS, phi=ARRAYS, target=ARRAYS, weight=ARRAYS)
def test_fused_pass_and_eval_with_arbitrary_arrays(x, theta, phi, target, weight):
    for call in (lambda: zp.rational_eval(x, theta, phi),
                 lambda: zp.rational_loss_and_grad(x, target, theta, phi, sample_weight=weight),
                 lambda: zp.rational_loss_and_grad(x, target, [1.0, 0.5], [0.25],
                                                   sample_weight=weight, indices=theta)):
        try:
            call()
        except ALLOWED:
            pass


@pytest.mark.parametrize("target,value,fragment", [
    ("TRRational.d_p", 3.7, "d_p"), ("TRRational.d_p", 10**12, "d_p"),
    ("monomial_exponents.degree", 16, "degree"), ("count_tags.axis", 1.5, "axis"),
    ("sample_indices.batch_size", 10**13, "batch_size"),
    ("ActiveSampler.input_dim", 10**9, "input_dim"),
    ("CoverageTracker.counts", -1, "counts"), ("CoverageTracker.counts", 3.7, "counts"),
    ("Curriculum.coverage", float("nan"), "coverage"), ("Curriculum.loss", float("nan"), "loss"),
    ("HybridGradientSchedule.warmup_epochs", -1, "warmup_epochs"),
    ("ActiveSamplerConfig.grid_bounds", 1.7e308, "grid_bounds"),
    ("ActiveSamplerConfig.grid_bounds_lo", 1e-308, "grid_bounds"),
    ("rational_eval.domain", 1e-308, "domain"),
    ("AdaptiveLossPolicy.y", 1e308, "y"),
])
def test_the_unclear_cases_of_the_issue_name_their_argument(target, value, fragment):
    with pytest.raises(ALLOWED, match=fragment):
        TARGETS[target](value)


def test_empty_batch_with_empty_sample_weight():
    res = zp.rational_loss_and_grad(np.zeros(0), np.zeros(0), [1.0, 0.5], [0.2],
                                    sample_weight=np.zeros(0))
    assert res.loss == 0.0 and res.grad_theta.shape == (2,)


# --------------------------------------------------------------------- tags and dtypes
VALUE_DTYPES = ["f8", "f4", "f2", "c16", "i8", "u1", "?"]
TAG_DTYPES = ["u1", "i8", "f8"]


@SETTINGS
@given(vd=st.sampled_from(VALUE_DTYPES), td=st.sampled_from(TAG_DTYPES),
       codes=st.lists(st.integers(0, 255), min_size=1, max_size=20),
       op=st.sampled_from(["add", "mul", "div", "neg", "sqrt", "sum", "drop_null", "mean",
                           "to_ieee", "pow"]))
def test_tr_ops_refuse_reserved_codes_and_foreign_dtypes(vd, td, codes, op):
    t = np.zeros(len(codes), dtype=[("value", vd), ("tag", td)])
    t["tag"] = np.array(codes).astype(td)
    calls = {
        "add": lambda: zp.tr_add(t, 1.0), "mul": lambda: zp.tr_mul(t, t),
        "div": lambda: zp.tr_div(1.0, t), "neg": lambda: zp.tr_neg(t),
        "sqrt": lambda: zp.tr_sqrt(t), "sum": lambda: zp.tr_sum(t),
        "drop_null": lambda: zp.tr_sum(t, "drop_null"), "mean": lambda: zp.tr_mean(t),
        "to_ieee": lambda: zp.to_ieee(t), "pow": lambda: zp.tr_pow_int(t, 2),
    }
    valid_dtype = vd in ("f8", "f4") and td == "u1"
    if not valid_dtype:
        with pytest.raises(TypeError):
            calls[op]()
    elif max(codes) > 3:
        with pytest.raises(ValueError, match="reserved tag codes"):
            calls[op]()
    else:
        calls[op]()


# ------------------------------------------------------------------ scale invariance
@settings(max_examples=30, deadline=None)
@given(k=st.integers(-1021, 1020), seed=st.integers(0, 2**16))  # w·2**k stays normal
def test_importance_weights_do_not_depend_on_the_scale_of_sample_weights(k, seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=300)
    w = rng.uniform(0.5, 1.0, size=300)
    s = ImportanceSampler(ImportanceSamplerConfig(seed=0))
    ref = s.compute_weights(q, sample_weights=w)
    scaled = s.compute_weights(q, sample_weights=w * 2.0**k)  # exact scaling: same bits
    np.testing.assert_array_equal(scaled, ref)
    for c in (1e306, 3e-310, 7.0):
        np.testing.assert_allclose(s.compute_weights(q, sample_weights=w * c), ref, rtol=1e-11)


def test_huge_sample_weights_do_not_collapse_the_draws():
    q = np.ones(1000)
    s = ImportanceSampler(ImportanceSamplerConfig(seed=0))
    idx = s.sample_indices(q, 20000, sample_weights=np.full(1000, 1e306))
    # uniform over the pool (was: all-zero weights, only the last index drawn)
    counts = np.bincount(idx, minlength=1000)
    assert counts.max() < 60 and np.count_nonzero(counts) > 990
    w = combine_sample_weights(np.full(4, 1e200), np.full(4, 1e200))
    np.testing.assert_allclose(w, 0.25)
    np.testing.assert_allclose(combine_sample_weights([1e-320, 2e-320], [1.0, 1.0]),
                               [1 / 3, 2 / 3], rtol=1e-3)


# ------------------------------------------------------------------------- λ rule
@settings(max_examples=50, deadline=None)
@given(lam=st.floats(0.1, 1e308), vel=st.floats(-1e308, 1e308),
       lr=st.floats(0.0, 1e308), cov=st.floats(0.0, 1.0), mom=st.sampled_from([0.0, 0.5, 0.99]),
       step=st.integers(1, 50))
def test_lambda_rule_never_leaves_a_non_finite_lambda(lam, vel, lr, cov, mom, step):
    new, v, code, change = kp.lambda_rule(step, cov, cov, lam, vel, 0.95, lr, -1.0, 0, 1,
                                          0.02, mom, 0.1, 0.1, math.inf)
    if code == kp.RULE_OVERFLOW:
        assert (new, v, change) == (lam, vel, 0.0)
    else:
        assert math.isfinite(new) and math.isfinite(v) and new >= 0.1


def test_lambda_rule_refuses_non_finite_state():
    for lam, vel in ((math.nan, 0.0), (math.inf, 0.0), (1.0, math.inf), (1.0, -math.inf)):
        _, _, code, _ = kp.lambda_rule(5, 0.5, 0.5, lam, vel, 0.95, 0.01, -1.0, 0, 1, 0.02,
                                       0.5, 0.1, 0.1, math.inf)
        assert code == kp.RULE_OVERFLOW


def test_adaptive_lambda_overflow_raises_and_changes_nothing():
    alp = AdaptiveLambda(AdaptiveLossConfig(learning_rate=1e308, momentum=0.5))
    before = alp.state_dict()
    with pytest.raises(ValueError, match="learning_rate"):
        for _ in range(5):
            before = alp.state_dict()
            alp.update_counts(np.array([0, 10, 0, 0]))
    assert alp.state_dict() == before
    assert math.isfinite(alp.lambda_rej)
