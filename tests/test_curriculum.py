"""CurriculumScheduler: stage thresholds and sample weights (upstream golden values), the
n_stages = 1 guard, advancing, combination with importance weights, state."""
from __future__ import annotations

import math

import numpy as np
import pytest

from zeroproof_nb.training.curriculum import (
    CurriculumConfig,
    CurriculumScheduler,
    combine_sample_weights,
)
from zeroproof_nb.training.sampling_diagnostics import (
    CurriculumConfig as ReexportedConfig,
    ImportanceSampler,
)

XS = [0.0, 0.005, 0.5, 2.0]


def _at_stage(sched, stage, epoch=100):
    sched.current_stage = stage
    sched.current_epoch = epoch
    return sched


def test_reexported_from_sampling_diagnostics():
    assert ReexportedConfig is CurriculumConfig


def test_golden_stage_thresholds():
    sched = CurriculumScheduler()
    got = [_at_stage(sched, s).get_difficulty_threshold() for s in range(5)]
    np.testing.assert_allclose(got, [1.0, 0.83636, 0.62623, 0.35643, 0.01], atol=5e-6)
    # closed form of the exponential progression
    for s, thr in enumerate(got):
        prog = (math.exp(s / 4) - 1) / (math.e - 1)
        assert thr == pytest.approx(1.0 * (1 - prog) + 0.01 * prog, rel=1e-14)
    # warm-up keeps the easy distance whatever the stage
    assert _at_stage(sched, 3, epoch=2).get_difficulty_threshold() == 1.0
    lin = CurriculumScheduler(CurriculumConfig(linear_progression=True))
    np.testing.assert_allclose([_at_stage(lin, s).get_difficulty_threshold() for s in range(5)],
                               np.linspace(1.0, 0.01, 5), rtol=1e-14)


def test_golden_sample_weights_pole_at_zero():
    sched = CurriculumScheduler(pole_locations=[0.0])
    w0 = _at_stage(sched, 0, epoch=0).get_sample_weights(XS)
    np.testing.assert_allclose(w0, [0.0384, 0.0382, 0.0233, 0.9], atol=5e-5)
    w4 = _at_stage(sched, 4).get_sample_weights(XS)
    np.testing.assert_allclose(w4, [0.401, 0.399, 0.1, 0.1], atol=5e-4)
    # the same numbers from |q| with q = x (no poles given), and from distances
    qs = CurriculumScheduler()
    np.testing.assert_allclose(_at_stage(qs, 4).get_sample_weights(XS, q_values=XS), w4,
                               rtol=1e-14)
    np.testing.assert_allclose(_at_stage(qs, 4).get_sample_weights(distances=XS), w4, rtol=1e-14)


def test_sample_weights_closed_form_and_repeats(rng):
    cfg = CurriculumConfig(importance_temperature=0.3)
    sched = _at_stage(CurriculumScheduler(cfg, pole_locations=[0.3, -1.0]), 2)
    x = np.concatenate([rng.uniform(-2, 2, size=200), [0.4, 0.4, 0.4]])  # repeated x
    w = sched.get_sample_weights(x)
    d = np.minimum(np.abs(x - 0.3), np.abs(x + 1.0))
    thr = sched.get_difficulty_threshold()
    hard = d <= thr
    easy_ratio = 0.9 * 0.5 + 0.2 * 0.5
    ref = np.where(hard, (1 - easy_ratio) * np.exp(-d / 0.3) / np.exp(-d[hard] / 0.3).sum(),
                   easy_ratio / np.count_nonzero(~hard))
    np.testing.assert_allclose(w, ref / ref.sum(), rtol=1e-12)
    assert w[-1] == w[-2] == w[-3]
    # tiny temperatures do not underflow to 0/0
    cold = _at_stage(CurriculumScheduler(CurriculumConfig(importance_temperature=1e-6),
                                         pole_locations=[0.0]), 1)
    wc = cold.get_sample_weights([0.3, 0.31, 5.0])
    assert np.all(np.isfinite(wc)) and wc.sum() == pytest.approx(1.0)


def test_uniform_without_pole_information_and_nan_policy():
    sched = CurriculumScheduler()
    np.testing.assert_array_equal(sched.get_sample_weights([1.0, 2.0, 3.0, 4.0]), [0.25] * 4)
    with pytest.raises(ValueError, match="q_values"):
        sched.get_sample_weights(None, q_values=[0.1, np.nan])
    w = sched.get_sample_weights(None, q_values=[0.1, np.nan, 2.0], nan_policy="omit")
    assert w[1] == 0.0 and w.sum() == pytest.approx(1.0)


def test_single_stage_does_not_divide_by_zero():
    sched = CurriculumScheduler(CurriculumConfig(n_stages=1, warmup_epochs=0))
    assert sched.get_difficulty_threshold() == 1.0
    info = sched.update(epoch=50, coverage=1.0, loss=0.0)
    assert info["stage"] == 0 and not info["advanced"] and info["progress"] == 0.0


def test_adaptive_and_fixed_advance():
    sched = CurriculumScheduler()  # adaptive, stage_duration 20 -> at least 10 epochs
    assert not sched.update(5, coverage=0.9, loss=0.5)["advanced"]
    assert not sched.update(10, coverage=0.6, loss=0.5)["advanced"]  # coverage too low
    assert not sched.update(10, coverage=0.9, loss=1.5)["advanced"]  # loss too high
    info = sched.update(10, coverage=0.9, loss=0.5)
    assert info["advanced"] and info["stage"] == 1 and info["epochs_in_stage"] == 0
    assert info["progress"] == 0.25
    assert sched.stage_performance[0]["duration"] == 10  # upstream always recorded 0
    fixed = CurriculumScheduler(CurriculumConfig(adaptive=False, stage_duration=3))
    stages = [fixed.update(e, 0.0, 99.0)["stage"] for e in range(20)]
    assert stages[:4] == [0, 0, 0, 1] and max(stages) == 4
    summary = fixed.get_summary()
    assert set(summary) == {"current_stage", "total_stages", "mean_coverage",
                            "coverage_trend", "stage_performance"}
    assert summary["current_stage"] == 4 and len(summary["stage_performance"]) == 4


def test_combine_with_importance_weights(rng):
    q = rng.normal(size=50)
    imp = ImportanceSampler().compute_weights(q)
    cur = _at_stage(CurriculumScheduler(), 2).get_sample_weights(None, q_values=q)
    comb = combine_sample_weights(cur, imp)
    np.testing.assert_allclose(comb, cur * imp / np.sum(cur * imp), rtol=1e-12)
    with pytest.raises(ValueError, match="weights"):
        combine_sample_weights(cur, imp[:-1])
    with pytest.raises(ValueError, match="weights"):
        combine_sample_weights(np.zeros(3))


def test_state_round_trip_and_validation():
    a = CurriculumScheduler(pole_locations=[0.5])
    for e in range(15):
        a.update(e, 0.9, 0.1)
    b = CurriculumScheduler()
    b.load_state_dict(a.state_dict())
    assert b.get_summary() == a.get_summary()
    np.testing.assert_array_equal(b.get_sample_weights(XS), a.get_sample_weights(XS))
    with pytest.raises(ValueError, match="n_stages"):
        CurriculumConfig(n_stages=0)
    with pytest.raises(ValueError, match="hard_distance"):
        CurriculumConfig(hard_distance=2.0)
    with pytest.raises(ValueError, match="importance_temperature"):
        CurriculumConfig(importance_temperature=0.0)
    with pytest.raises(ValueError, match="initial_easy_ratio"):
        CurriculumConfig(initial_easy_ratio=1.2)
