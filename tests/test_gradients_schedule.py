"""GradientMode, HybridGradientSchedule, create_default_schedule and HybridGradientContext.

Golden values are upstream's (reference §2.6 and Appendix A).
"""
import math

import numpy as np
import pytest

from zeroproof_nb.gradients import (
    GradientMode,
    HybridGradientContext,
    HybridGradientSchedule,
    ScheduleType,
    create_default_schedule,
)


def test_gradient_mode_values_and_parsing():
    assert GradientMode.MASK_REAL == "mask_real"
    assert GradientMode.SATURATING.value == "saturating"
    assert GradientMode.HYBRID.value == "hybrid"
    assert GradientMode("mask-real") is GradientMode.MASK_REAL
    assert GradientMode("HYBRID") is GradientMode.HYBRID
    with pytest.raises(ValueError):
        GradientMode("nope")


def test_schedule_defaults_match_upstream():
    s = HybridGradientSchedule()
    assert (s.warmup_epochs, s.transition_epochs, s.delta_init, s.delta_final) == (0, 20, 1e-2, 1e-6)
    assert s.schedule_type is ScheduleType.EXPONENTIAL
    assert s.enable and s.saturating_bound == 1.0 and s.adaptive_delta and s.min_delta == 1e-8
    assert s.force_pole_exploration and s.pole_exploration_radius == 0.05
    assert s.pole_exploration_epochs == 5 and s.pole_detection_threshold == 0.1
    assert s.detected_poles == [] and s.pole_exploration_schedule == {}
    assert HybridGradientSchedule().detected_poles is not s.detected_poles


def test_default_schedule_golden_sequence():
    s = create_default_schedule()
    got = [s.get_delta(e) for e in range(25)]
    assert got[0] == pytest.approx(1e-2, rel=1e-12)
    assert got[1] == pytest.approx(6.3096e-3, rel=1e-4)
    assert got[5] == pytest.approx(1e-3, rel=1e-12)
    assert got[10] == pytest.approx(1e-4, rel=1e-12)
    assert got[19] == pytest.approx(1.585e-6, rel=1e-3)
    for e in range(20, 25):
        assert got[e] == pytest.approx(1e-6, rel=1e-12)
    # independent closed form: geometric interpolation
    for e in range(25):
        assert got[e] == pytest.approx(1e-2 * (1e-4) ** (min(e, 20) / 20), rel=1e-12)


def test_aggressive_schedule():
    s = create_default_schedule(aggressive=True, warmup_epochs=3, force_exploration=False)
    assert (s.delta_init, s.delta_final, s.saturating_bound, s.min_delta) == (1e-1, 1e-8, 0.1, 1e-10)
    assert s.pole_exploration_radius == 0.1 and s.pole_exploration_epochs == 10
    assert not s.force_pole_exploration
    assert [s.get_delta(e) for e in range(3)] == [None, None, None]
    assert s.get_delta(3) == pytest.approx(1e-1)
    assert s.get_delta(23) == pytest.approx(1e-8)


def test_cosine_golden_with_warmup():
    s = HybridGradientSchedule(warmup_epochs=2, transition_epochs=4, delta_init=1e-2,
                               delta_final=1e-4, schedule_type=ScheduleType.COSINE)
    got = [s.get_delta(e) for e in range(8)]
    assert got[:2] == [None, None]
    np.testing.assert_allclose(got[2:], [1e-2, 8.550e-3, 5.050e-3, 1.550e-3, 1e-4, 1e-4],
                               rtol=1e-3)
    assert [s.is_warmup(e) for e in range(8)] == [True, True] + [False] * 6
    assert [s.is_transitioning(e) for e in range(8)] == [False, False, True, True, True, True,
                                                          False, False]


def test_linear_adaptive_golden():
    s = HybridGradientSchedule(transition_epochs=4, delta_init=1e-2, delta_final=1e-4,
                               schedule_type="linear")
    got = [s.get_delta(e, q_min=0.01) for e in range(5)]
    np.testing.assert_allclose(got, [0.02, 0.02, 0.02, 0.02, 1e-3], rtol=1e-12)
    # without q_min (or with adaptive off) the plain linear ramp
    np.testing.assert_allclose([s.get_delta(e) for e in range(5)],
                               np.linspace(1e-2, 1e-4, 5), rtol=1e-12)
    s.adaptive_delta = False
    assert s.get_delta(0, q_min=0.01) == pytest.approx(1e-2)
    # the same through the context object (explicit q_min)
    s.adaptive_delta = True
    ctx = HybridGradientContext(s)
    assert [ctx.update_epoch(e, q_min=0.01) for e in range(5)] == pytest.approx(got)


def test_min_delta_disable_and_zero_transition():
    s = HybridGradientSchedule(delta_init=1e-2, delta_final=1e-12, min_delta=1e-9,
                               transition_epochs=0)
    assert s.get_delta(0) == pytest.approx(1e-9)
    assert not s.is_transitioning(0)
    s = HybridGradientSchedule(enable=False)
    assert s.get_delta(0) is None and s.get_mode_description(0) == "disabled"
    assert not s.is_warmup(0)
    s = HybridGradientSchedule(delta_init=0.0, delta_final=1e-3)
    assert s.get_delta(0) == pytest.approx(1e-3)


def test_mode_descriptions():
    s = create_default_schedule(warmup_epochs=2)
    assert s.get_mode_description(1) == "warmup (mask-real only, 1/2)"
    assert s.get_mode_description(2) == "transitioning (delta=1.000e-02)"
    assert s.get_mode_description(40) == "converged (delta=1.000e-06)"


def test_schedule_validation():
    with pytest.raises(ValueError, match="schedule_type"):
        HybridGradientSchedule(schedule_type="quadratic")
    with pytest.raises(ValueError, match="delta_init"):
        HybridGradientSchedule(delta_init=-1.0)
    with pytest.raises(TypeError, match="warmup_epochs"):
        HybridGradientSchedule(warmup_epochs=1.5)
    with pytest.raises(TypeError, match="schedule"):
        HybridGradientContext(schedule="default")


def _run_trace(ctx):
    batches = [(0.01, 0.02, 0.03), (5e-4, 8e-4, 1.5e-3), (1.5e-3, 1.6e-3, 1.9e-3),
               (2.5e-3, 3e-3, 4e-3), (0.01, 0.02, 0.03)]
    modes = []
    for b in batches:
        ctx.record_batch(np.array(b))
        modes.append(ctx.end_batch())
    return modes


def test_hysteresis_golden_trace():
    ctx = HybridGradientContext(tau_q_on=1e-3, tau_q_off=2e-3)
    ctx.update_epoch(0)
    assert _run_trace(ctx) == ["MR", "SAT", "SAT", "MR", "MR"]
    st = ctx.get_statistics()
    assert st["policy_flip_count"] == 2
    assert st["flip_rate"] == pytest.approx(0.4)
    assert st["q_min_epoch"] == pytest.approx(5e-4)
    assert st["policy_mode"] == "MR" and st["tau_q_on"] == 1e-3 and st["tau_q_off"] == 2e-3


def test_hysteresis_from_policy_object_and_g_thresholds():
    class Policy:  # duck-typed TRPolicy
        tau_q_on = 1e-3
        tau_q_off = 2e-3

    ctx = HybridGradientContext(policy=Policy())
    assert _run_trace(ctx) == ["MR", "SAT", "SAT", "MR", "MR"]
    # g_on: enter when p90 of 1/|Q| >= g_on; g_off blocks leaving while 1/|Q| stays large
    ctx = HybridGradientContext(g_on=100.0, tau_q_off=0.05, g_off=10.0)
    ctx.record_batch([0.001] + [0.5] * 19)
    assert ctx.end_batch() == "MR"  # p90 of 1/q = 2 (one point near, 19 far)
    ctx.record_batch([0.001, 0.001, 0.001, 0.5])
    assert ctx.end_batch() == "SAT"
    ctx.record_batch([0.06, 0.06, 0.06, 0.06])  # p10 >= tau_off but g90 = 16.7 > g_off
    assert ctx.end_batch() == "SAT"
    ctx.record_batch([0.2, 0.2, 0.2, 0.2])
    assert ctx.end_batch() == "MR"


def test_percentiles_are_numpy_linear(rng):
    q = rng.uniform(1e-4, 1.0, size=37)
    ctx = HybridGradientContext(create_default_schedule(), tau_q_on=0.0)
    ctx.update_epoch(3)
    ctx.record_batch(q[:20], n_saturating=2, n_mask_real=18)
    ctx.record_batch(-q[20:], n_saturating=1, n_mask_real=16)  # signed Q accepted
    st = ctx.get_statistics()
    np.testing.assert_allclose([st["q_p10"], st["q_p50"], st["q_p90"]],
                               np.percentile(q, [10, 50, 90], method="linear"), rtol=1e-14)
    np.testing.assert_allclose([st["g_p10"], st["g_p50"], st["g_p90"]],
                               np.percentile(1 / q, [10, 50, 90]), rtol=1e-14)
    assert st["q_min_batch"] == q.min() and st["q_mean_batch"] == pytest.approx(q.mean())
    assert st["q_median_batch"] == pytest.approx(np.median(q))
    assert st["total_gradient_calls"] == 37 and st["saturating_activations"] == 3
    assert st["saturating_ratio"] == pytest.approx(3 / 37)
    delta = create_default_schedule().get_delta(3)
    assert st["local_threshold"] == pytest.approx(delta)
    assert st["near_pole_ratio"] == pytest.approx(np.mean(q <= delta))
    assert st["current_epoch"] == 3 and st["exploration_regions"] == 0


def test_each_q_counted_once_and_nan_ignored():
    ctx = HybridGradientContext(create_default_schedule())
    ctx.update_epoch(0)  # delta = 1e-2
    ctx.record_batch([1e-3, 1e-3, 0.5, 0.5, np.nan])
    st = ctx.get_statistics()
    assert st["total_gradient_calls"] == 4
    assert st["saturating_activations"] == 2 and st["mask_real_activations"] == 2
    assert st["near_pole_ratio"] == pytest.approx(0.5)  # upstream reported 0.5 when ALL were near
    ctx.end_batch()
    st = ctx.get_statistics()
    assert st["total_gradient_calls"] == 0 and "q_p10" not in st
    assert "policy_mode" not in st and st["q_min_epoch"] == pytest.approx(1e-3)


def test_effective_delta_and_kernel_kwargs():
    # no schedule, no thresholds: Mask-REAL only
    ctx = HybridGradientContext()
    ctx.update_epoch(0)
    assert ctx.effective_delta() is None
    assert ctx.kernel_kwargs()["mode"] == "mask_real"
    # warm-up with thresholds: tau_q_on
    ctx = HybridGradientContext(create_default_schedule(warmup_epochs=2), tau_q_on=1e-3,
                                tau_q_off=2e-3)
    ctx.update_epoch(0)
    assert ctx.local_threshold is None and ctx.effective_delta() == 1e-3
    kw = ctx.kernel_kwargs()
    assert kw == {"mode": "hybrid", "delta": 1e-3, "saturation_bound": 1.0}
    ctx.update_epoch(2)
    assert ctx.effective_delta() == pytest.approx(1e-2)
    # SAT state: every point saturates
    ctx.record_batch([1e-4, 1e-4, 1e-4])
    assert ctx.end_batch() == "SAT"
    assert math.isinf(ctx.effective_delta())
    assert ctx.kernel_kwargs()["mode"] == "saturating"
    # bound follows the schedule (aggressive: 0.1)
    ctx = HybridGradientContext(create_default_schedule(aggressive=True))
    ctx.update_epoch(0)
    assert ctx.kernel_kwargs()["saturation_bound"] == 0.1


def test_update_epoch_adapts_from_previous_epoch_and_resets():
    s = HybridGradientSchedule(transition_epochs=4, delta_init=1e-2, delta_final=1e-4,
                               schedule_type=ScheduleType.LINEAR)
    ctx = HybridGradientContext(s, tau_q_on=1e-3, tau_q_off=2e-3)
    assert ctx.update_epoch(0) == pytest.approx(1e-2)  # nothing recorded yet: no adaptation
    ctx.record_batch([0.01, 0.5])
    ctx.end_batch()
    assert ctx.batch_count == 1
    assert ctx.update_epoch(1) == pytest.approx(0.02)  # q_min 0.01 from epoch 0 -> capped
    assert ctx.q_min_epoch is None and ctx.batch_count == 0 and ctx.policy_flip_count == 0
    assert ctx.update_epoch(2, q_min=None) == pytest.approx(np.linspace(1e-2, 1e-4, 5)[2])
    with pytest.raises(ValueError, match="q_min"):
        ctx.update_epoch(3, q_min="last")


def test_contexts_are_independent():
    a = HybridGradientContext(tau_q_on=1e-3, tau_q_off=2e-3)
    b = HybridGradientContext(tau_q_on=1e-3, tau_q_off=2e-3)
    a.record_batch([1e-5])
    a.end_batch()
    assert a.policy_mode == "SAT" and b.policy_mode == "MR"
    assert b.get_statistics()["q_min_epoch"] is None
    a.reset()
    assert a.policy_mode == "MR" and a.q_min_epoch is None


def test_record_result_reads_kernel_stats():
    class Res:
        q = np.array([-1e-3, 0.5, 2.0])
        stats = {"n_saturating": 1, "n_mask_real": 2}

    ctx = HybridGradientContext(create_default_schedule())
    ctx.update_epoch(0)
    ctx.record_result(Res())
    st = ctx.get_statistics()
    assert st["saturating_activations"] == 1 and st["q_min_batch"] == pytest.approx(1e-3)
