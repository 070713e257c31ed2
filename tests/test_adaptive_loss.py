import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroproof_nb.core import TRTag, tr_array
from zeroproof_nb.training.adaptive_loss import (
    AdaptiveLambda,
    AdaptiveLossConfig,
    AdaptiveLossPolicy,
    create_adaptive_loss,
)

R, P, N, F = TRTag.REAL, TRTag.PINF, TRTag.NINF, TRTag.PHI


def batch(pct, n=100):
    """A batch of n tags with pct% REAL (rest PHI)."""
    k = round(pct * n / 100)
    return [R] * k + [F] * (n - k)


def run(cfg, coverages, n=100):
    lam = AdaptiveLambda(cfg)
    trace = []
    for c in coverages:
        lam.update(batch(c, n))
        trace.append(lam.lambda_rej)
    return lam, trace


# ---------------------------------------------------------------- golden traces (Appendix A)

def test_golden_defaults():
    lam, trace = run(AdaptiveLossConfig(), [70, 70, 70, 100, 100, 100])
    assert trace == pytest.approx([1.00125, 1.0025, 1.00375, 1.00275, 1.00175, 1.00075], abs=1e-12)
    assert lam.coverage_history == pytest.approx([0.7, 0.7, 0.7, 1.0, 1.0, 1.0])
    assert len(lam.lambda_history) == 7 and lam.lambda_history[0] == 1.0


def test_golden_momentum_before_crossing_then_falls():
    # upstream: 1.0225, 1.06525, 1.126225, then 1.335735, ... (the runaway we do not copy)
    cfg = AdaptiveLossConfig(momentum=0.9, learning_rate=0.1)
    lam, trace = run(cfg, [50, 50, 50, 100, 100, 100])
    assert trace[:3] == pytest.approx([1.0225, 1.06525, 1.126225], abs=1e-12)
    # coverage is above target from the 4th batch on: λ must fall at every step
    assert trace[3] < trace[2] and trace[4] < trace[3] and trace[5] < trace[4]
    assert lam.velocity < 0
    # the first step after the crossing drops the stale velocity: Δλ = 2 * lr * gap
    assert trace[3] - trace[2] == pytest.approx(2 * 0.1 * (0.95 - 1.0), abs=1e-12)


def test_momentum_sign_follows_gap_over_long_run():
    cfg = AdaptiveLossConfig(momentum=0.9, learning_rate=0.05)
    lam = AdaptiveLambda(cfg)
    pattern = [40] * 5 + [100] * 5 + [60] * 4 + [100] * 3
    for c in pattern:
        before = lam.lambda_rej
        lam.update(batch(c))
        gap = 0.95 - c / 100
        if lam.step_count > 2 and abs(gap) >= cfg.dead_band:
            assert math.copysign(1, lam.lambda_rej - before) == math.copysign(1, gap)


def test_golden_warmup_and_frequency():
    cfg = AdaptiveLossConfig(update_frequency=3, warmup_steps=2, learning_rate=0.1)
    lam, trace = run(cfg, [50] * 10)
    assert trace == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0225, 1.0225, 1.0225, 1.045, 1.045, 1.045], abs=1e-12)
    assert len(lam.coverage_history) == 10  # appended during warm-up too
    assert len(lam.lambda_history) == 3  # initial + updates at steps 5 and 8


def test_golden_exponential_decay():
    _, trace = run(AdaptiveLossConfig(exponential_decay=0.5, learning_rate=0.1), [50] * 5)
    assert trace == pytest.approx([1.01125, 1.016875, 1.0196875, 1.02109375, 1.021796875], abs=1e-12)


def test_golden_dead_band():
    lam, trace = run(AdaptiveLossConfig(target_coverage=0.9, learning_rate=0.1), [91, 88, 89])
    assert trace == [1.0, 1.0, 1.0]
    assert lam.lambda_history == [1.0] * 4
    assert lam.update_history == [0.0] * 3


def test_golden_floors():
    cfg = AdaptiveLossConfig(learning_rate=1.0, lambda_min=0.0, lambda_rej_min=0.3)
    _, trace = run(cfg, [100] * 10)
    assert trace[:3] == pytest.approx([0.9, 0.8, 0.7], abs=1e-12)
    assert min(trace) == 0.3 and trace[-1] == 0.3


def test_lambda_max_cap():
    _, trace = run(AdaptiveLossConfig(learning_rate=1.0, lambda_max=1.2), [0] * 5)
    assert trace[-1] == 1.2 and max(trace) == 1.2


def test_golden_empty_batches():
    lam = AdaptiveLambda()
    for _ in range(3):
        lam.update([])
    assert lam.lambda_history[1:] == pytest.approx([0.999, 0.998, 0.997], abs=1e-12)
    s = lam.get_statistics()
    assert s["total_samples"] == 0 and s["current_coverage"] == 1.0


def test_golden_tag_weight():
    lam = AdaptiveLambda(AdaptiveLossConfig(use_tag_loss=True))
    lam.update(batch(99))
    assert lam.get_tag_loss_weight() == pytest.approx(0.125)
    lam.update(batch(100))
    assert lam.get_tag_loss_weight() == pytest.approx(0.2)
    lam.update(batch(50))
    assert lam.get_tag_loss_weight() == 0.05
    assert AdaptiveLambda().get_tag_loss_weight() == 0.0
    fixed = AdaptiveLambda(AdaptiveLossConfig(use_tag_loss=True, tag_loss_adaptive=False))
    fixed.update(batch(100))
    assert fixed.get_tag_loss_weight() == 0.05


def test_golden_upstream_unit_test():
    cfg = AdaptiveLossConfig(initial_lambda=1.0, target_coverage=0.9, learning_rate=0.1)
    lam = AdaptiveLambda(cfg)
    lam.update([R] * 7 + [F] * 3)
    assert lam.lambda_rej == pytest.approx(1.01)
    lam.update([R] * 10)  # cumulative 17/20 = 0.85 on global step 2
    assert lam.lambda_rej == pytest.approx(1.0125)


# ---------------------------------------------------------------- input forms, stats, state

def test_uint8_and_two_dimensional_input_match_list():
    a, b, c = AdaptiveLambda(), AdaptiveLambda(), AdaptiveLambda()
    codes = np.array([0, 0, 1, 3, 0, 2, 0, 0], dtype=np.uint8)
    for _ in range(3):
        a.update(codes)
        b.update([TRTag(int(x)) for x in codes])
        c.update(codes.reshape(2, 4))
    assert a.lambda_history == b.lambda_history == c.lambda_history
    assert a.coverage_history == pytest.approx([5 / 8] * 3)


def test_statistics_keys():
    lam = AdaptiveLambda()
    lam.update([R, P])
    s = lam.get_statistics()
    assert set(s) == {
        "target_coverage", "current_coverage", "coverage_gap", "batch_coverage", "cumulative_coverage",
        "window_coverage", "total_samples", "tag_distribution", "lambda_rej", "lambda_rej_min",
        "step_count", "learning_rate", "velocity", "last_update", "tag_loss_weight",
    }
    assert s["step_count"] == 1 and s["last_update"] == pytest.approx(0.5 * 0.01 * 0.45)
    assert s["tag_distribution"] == {"n_real": 1, "n_pinf": 1, "n_ninf": 0, "n_phi": 0}
    assert lam.get_penalty() == s["lambda_rej"]


def test_reset():
    lam, _ = run(AdaptiveLossConfig(momentum=0.5), [50] * 4)
    lam.reset()
    assert lam.lambda_rej == 1.0 and lam.step_count == 0 and lam.velocity == 0.0
    assert lam.lambda_history == [1.0] and lam.coverage_history == [] and lam.update_history == []
    assert lam.coverage_tracker.cumulative.total_samples == 0


def test_state_dict_json_roundtrip_continues_identically():
    cfg = AdaptiveLossConfig(momentum=0.9, learning_rate=0.1, warmup_steps=1, dead_band=0.01)
    a, _ = run(cfg, [50, 60, 99, 100])
    state = json.loads(json.dumps(a.state_dict()))
    b = AdaptiveLambda()
    b.load_state_dict(state)
    assert b.config == a.config
    for c in [30, 100, 80]:
        a.update(batch(c))
        b.update(batch(c))
    assert b.lambda_history == a.lambda_history
    assert b.velocity == a.velocity
    assert b.get_statistics() == a.get_statistics()


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"target_coverage": 1.5}, "target_coverage"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"lambda_min": -0.1}, "lambda_min"),
        ({"lambda_rej_min": float("nan")}, "lambda_rej_min"),
        ({"lambda_max": 0.05}, "lambda_max"),
        ({"initial_lambda": 0.01}, "initial_lambda"),
        ({"initial_lambda": 5.0, "lambda_max": 2.0}, "initial_lambda"),
        ({"momentum": 1.0}, "momentum"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"update_frequency": 0}, "update_frequency"),
        ({"exponential_decay": 0.0}, "exponential_decay"),
        ({"exponential_decay": 1.5}, "exponential_decay"),
        ({"tag_loss_weight": -1.0}, "tag_loss_weight"),
        ({"use_tag_loss": True, "tag_loss_max_weight": 0.01}, "tag_loss_max_weight"),
        ({"dead_band": -0.01}, "dead_band"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AdaptiveLossConfig(**kwargs)


def test_config_type_errors():
    with pytest.raises(TypeError, match="warmup_steps"):
        AdaptiveLossConfig(warmup_steps=1.5)
    with pytest.raises(TypeError, match="use_tag_loss"):
        AdaptiveLossConfig(use_tag_loss="yes")
    with pytest.raises(TypeError, match="config"):
        AdaptiveLambda({"momentum": 0.9})


def test_dead_band_is_a_config_field():
    # gap 0.05 is outside the default band but inside a 0.1 band
    _, trace = run(AdaptiveLossConfig(dead_band=0.1), [90] * 3)
    assert trace == [1.0] * 3
    _, trace = run(AdaptiveLossConfig(), [90] * 3)
    assert trace[0] > 1.0


# ---------------------------------------------------------------- property: bounds, no NaN

tag_batches = st.lists(
    st.one_of(
        st.lists(st.integers(0, 3), min_size=0, max_size=30),
        st.integers(0, 30).map(lambda n: [int(F)] * n),  # all non-REAL (or empty)
        st.integers(0, 30).map(lambda n: [0] * n),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(
    batches=tag_batches,
    lr=st.floats(0.0, 5.0),
    momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    lambda_min=st.floats(0.0, 1.0),
    lambda_rej_min=st.floats(0.0, 1.0),
    span=st.one_of(st.none(), st.floats(0.0, 3.0)),
    target=st.floats(0.0, 1.0),
    decay=st.one_of(st.none(), st.floats(0.1, 1.0)),
    warmup=st.integers(0, 3),
    freq=st.integers(1, 3),
)
def test_lambda_within_bounds(batches, lr, momentum, lambda_min, lambda_rej_min, span, target, decay, warmup, freq):
    floor = max(lambda_min, lambda_rej_min)
    lam_max = None if span is None else floor + span
    if lam_max == 0.0:
        lam_max = None
    cfg = AdaptiveLossConfig(
        initial_lambda=floor if lam_max is None else 0.5 * (floor + lam_max),
        target_coverage=target, learning_rate=lr, lambda_min=lambda_min, lambda_rej_min=lambda_rej_min,
        lambda_max=lam_max, momentum=momentum, exponential_decay=decay, warmup_steps=warmup,
        update_frequency=freq,
    )
    lam = AdaptiveLambda(cfg)
    upper = math.inf if lam_max is None else lam_max
    for i, b in enumerate(batches):
        codes = np.array(b, dtype=np.uint8)
        n_updates = len(lam.update_history)
        lam.update(codes if i % 2 else [TRTag(c) for c in b])
        if len(lam.update_history) > n_updates and lam.update_history[-1] != 0.0:
            # with or without momentum, the applied step has the sign of the current gap
            cov = lam.coverage_tracker.coverage if lam.step_count <= 2 else lam.coverage_history[-1]
            assert math.copysign(1, lam.update_history[-1]) == math.copysign(1, target - cov)
        assert math.isfinite(lam.lambda_rej)
        assert floor <= lam.lambda_rej <= upper
        assert math.isfinite(lam.velocity)
    assert all(floor <= v <= upper for v in lam.lambda_history)
    assert len(lam.coverage_history) == len(batches)


# ---------------------------------------------------------------- policy and factory

def test_factory_defaults_differ_from_dataclass():
    pol = create_adaptive_loss()
    c = pol.config
    assert (c.momentum, c.warmup_steps, c.update_frequency) == (0.9, 100, 10)
    assert c.tag_loss_max_weight == pytest.approx(4 * c.tag_loss_weight)
    assert create_adaptive_loss(tag_loss_weight=0.1).config.tag_loss_max_weight == pytest.approx(0.4)
    d = AdaptiveLossConfig()
    assert (d.momentum, d.warmup_steps, d.update_frequency, d.dead_band) == (0.0, 0, 1, 0.02)
    assert "lambda_rej" in pol.get_statistics()


def test_factory_accepts_every_keyword():
    pol = create_adaptive_loss(
        target_coverage=0.9, learning_rate=0.02, initial_lambda=2.0, base_loss="mae", momentum=0.5,
        warmup_steps=3, update_frequency=2, exponential_decay=0.99, lambda_min=0.2, lambda_max=5.0,
        lambda_rej_min=0.3, use_tag_loss=True, tag_loss_weight=0.1, tag_loss_adaptive=False,
    )
    assert pol.base_loss == "mae" and pol.config.lambda_max == 5.0 and pol.get_penalty() == 2.0


def _policy(base_loss="mse", **cfg):
    return AdaptiveLossPolicy(AdaptiveLossConfig(**cfg), base_loss=base_loss)


def test_policy_composite_loss_hand_computed():
    pol = _policy(initial_lambda=2.0, learning_rate=0.0)
    y = tr_array([1.0, 3.0, np.inf, np.nan], [R, R, P, F])
    t = np.array([0.0, 1.0, 0.0, 0.0])
    out = pol.batch_loss_and_grad(y, t)
    # 0.5*1 + 0.5*4 + 2 + 2, mean over 4
    assert out.loss == pytest.approx((0.5 + 2.0 + 4.0) / 4)
    assert out.grad_values == pytest.approx([1.0 / 4, 2.0 / 4, 0.0, 0.0])
    assert pol.adaptive_lambda.coverage_history == [0.5]  # λ updated from the prediction tags


def test_policy_all_nonreal_is_penalty():
    pol = _policy(initial_lambda=2.0, learning_rate=0.0)
    y = tr_array([np.inf, -np.inf], [P, N])
    assert pol.batch_loss(y, np.zeros(2)) == pytest.approx(2.0)


def test_policy_penalty_floor_and_nonreal_target():
    pol = _policy(initial_lambda=0.5, lambda_min=0.0, lambda_rej_min=0.5, learning_rate=0.0)
    pol.adaptive_lambda.lambda_rej = 0.2  # below the hard floor: the charge is lambda_rej_min
    y = np.array([1.0, 2.0])
    t = np.array([1.0, np.nan])  # PHI target -> penalty
    assert pol.batch_loss(y, t) == pytest.approx(0.5 / 2)


def test_policy_updates_lambda_before_loss():
    pol = _policy(learning_rate=1.0)
    y = tr_array([np.inf] * 4, [P] * 4)
    loss = pol.batch_loss(y, np.zeros(4))
    assert pol.get_penalty() == pytest.approx(1.0 + 0.5 * 0.95)
    assert loss == pytest.approx(pol.get_penalty())


@pytest.mark.parametrize("base_loss", ["mse", "mae", "huber"])
def test_policy_base_losses_and_gradient(base_loss, rng):
    pol = AdaptiveLossPolicy(AdaptiveLossConfig(learning_rate=0.0), base_loss=base_loss, huber_delta=0.7)
    y = rng.normal(size=12) * 2
    t = rng.normal(size=12)
    d = y - t
    ref = {
        "mse": 0.5 * d**2,
        "mae": np.abs(d),
        "huber": np.where(np.abs(d) <= 0.7, 0.5 * d**2, 0.7 * (np.abs(d) - 0.35)),
    }[base_loss]
    out = pol.batch_loss_and_grad(y, t)
    assert out.loss == pytest.approx(ref.mean())
    h = 1e-6
    fd = np.array(
        [(pol.batch_loss(y + h * e, t) - pol.batch_loss(y - h * e, t)) / (2 * h) for e in np.eye(12)]
    )
    assert out.grad_values == pytest.approx(fd, abs=1e-6)


def test_huber_is_not_mse():
    y, t = np.array([3.0]), np.array([0.0])
    assert AdaptiveLossPolicy(base_loss="huber").batch_loss(y, t) == pytest.approx(2.5)
    assert AdaptiveLossPolicy(base_loss="mse").batch_loss(y, t) == pytest.approx(4.5)


def test_policy_tag_loss_term():
    pol = _policy(use_tag_loss=True, tag_loss_adaptive=False, tag_loss_weight=0.5, learning_rate=0.0)
    y = tr_array([1.0, np.inf], [R, P])
    logits = np.zeros((2, 4))
    out = pol.batch_loss_and_grad(y, np.array([1.0, 0.0]), tag_logits=logits)
    assert out.loss == pytest.approx(1.0 / 2 + 0.5 * np.log(4))
    assert out.grad_logits.shape == (2, 4)


def test_policy_errors_and_empty():
    with pytest.raises(ValueError, match="base_loss"):
        AdaptiveLossPolicy(base_loss="hinge")
    pol = AdaptiveLossPolicy()
    with pytest.raises(ValueError, match="targets"):
        pol.batch_loss(np.zeros(3), np.zeros(2))
    assert pol.batch_loss(np.zeros(0), np.zeros(0)) == 0.0


def test_update_counts_equals_update_from_tags():
    import numpy as np

    from zeroproof_nb.core import count_tags
    from zeroproof_nb.training.adaptive_loss import AdaptiveLambda, AdaptiveLossConfig

    rng = np.random.default_rng(0)
    cfg = AdaptiveLossConfig(learning_rate=0.1, momentum=0.5, target_coverage=0.8)
    a, b = AdaptiveLambda(cfg), AdaptiveLambda(cfg)
    for _ in range(12):
        tags = rng.choice(4, size=50, p=[0.7, 0.1, 0.1, 0.1]).astype(np.uint8)
        a.update(tags)
        b.update_counts(count_tags(tags))
    assert a.lambda_history == b.lambda_history
    assert a.get_statistics() == b.get_statistics()
