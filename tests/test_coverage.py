import json

import numpy as np
import pytest

from zeroproof_nb.core import TRTag
from zeroproof_nb.training.coverage import CoverageMetrics, CoverageTracker, MultiOutputCoverageTracker

R, P, N, F = TRTag.REAL, TRTag.PINF, TRTag.NINF, TRTag.PHI


def test_metrics_hand_counts_and_proportions():
    m = CoverageMetrics()
    m.update([R, R, P, N, F, F, R, R])
    assert (m.total_samples, m.real_samples, m.pinf_samples, m.ninf_samples, m.phi_samples) == (8, 4, 1, 1, 2)
    assert m.coverage == 0.5
    assert m.rejection_rate == 0.5
    assert m.tag_distribution == {"REAL": 0.5, "PINF": 0.125, "NINF": 0.125, "PHI": 0.25}
    m.reset()
    assert m.total_samples == 0 and m.coverage == 1.0
    assert m.tag_distribution == {"REAL": 1.0, "PINF": 0.0, "NINF": 0.0, "PHI": 0.0}


def test_uint8_fast_path_equals_list_path(rng):
    codes = rng.integers(0, 4, size=1000).astype(np.uint8)
    a, b = CoverageMetrics(), CoverageMetrics()
    a.update(codes)
    b.update([TRTag(int(c)) for c in codes])
    assert a == b
    assert a.real_samples == int(np.sum(codes == 0))
    assert a.phi_samples == int(np.sum(codes == 3))


def test_empty_batch_counts_as_full_coverage():
    t = CoverageTracker()
    t.update([])
    assert t.batch_coverage == 1.0 and t.coverage == 1.0
    t.update(np.zeros(0, np.uint8))
    assert t.get_statistics()["total_samples"] == 0


def test_window_golden_trace():
    # upstream golden (Appendix A): window_size=3, target 0.8
    t = CoverageTracker(target_coverage=0.8, window_size=3)
    t.update([R] * 10)
    assert t.window_coverage == 1.0
    t.update([R] * 5 + [F] * 5)
    assert t.window_coverage == 0.75
    t.update([R] * 2 + [P] * 8)
    assert t.window_coverage == pytest.approx(17 / 30, abs=1e-15)
    t.update([R] * 8 + [N] * 2)
    assert t.window_coverage == pytest.approx(15 / 30, abs=1e-15)
    assert len(t.history) == 3
    assert t.coverage == t.window_coverage
    assert t.cumulative.coverage == pytest.approx(25 / 40)
    assert t.coverage_gap == pytest.approx(0.3, abs=1e-12)


def test_cumulative_and_gap_rounding():
    t = CoverageTracker(target_coverage=0.95)
    t.update([R] * 9 + [F])
    # 0.95 - 0.9 is 0.04999999999999993 in floats; upstream rounds to 10 decimals
    assert t.coverage_gap == 0.05
    t.update([R] * 7 + [F] * 3)
    assert t.coverage == pytest.approx(16 / 20)
    assert t.batch_coverage == pytest.approx(0.7)


def test_statistics_keys_and_counts():
    t = CoverageTracker(target_coverage=0.9)
    t.update([R, R, P, F])
    s = t.get_statistics()
    assert set(s) == {
        "target_coverage", "current_coverage", "coverage_gap", "batch_coverage", "cumulative_coverage",
        "window_coverage", "total_samples", "tag_distribution",
    }
    assert s["window_coverage"] is None
    assert s["tag_distribution"] == {"n_real": 2, "n_pinf": 1, "n_ninf": 0, "n_phi": 1}
    assert s["total_samples"] == 4 and s["current_coverage"] == 0.5


def test_two_dimensional_tags_count_every_entry():
    t = CoverageTracker()
    t.update(np.array([[0, 0, 1], [3, 0, 0]], dtype=np.uint8))
    assert t.cumulative.total_samples == 6 and t.cumulative.real_samples == 4


def test_reset_and_state_roundtrip():
    t = CoverageTracker(target_coverage=0.7, window_size=2)
    for k in (3, 7, 10):
        t.update([R] * k + [F] * (10 - k))
    state = json.loads(json.dumps(t.state_dict()))
    u = CoverageTracker()
    u.load_state_dict(state)
    assert u.get_statistics() == t.get_statistics()
    u.update([F] * 10)
    t.update([F] * 10)
    assert u.coverage == t.coverage
    t.reset()
    assert t.coverage == 1.0 and t.history == [] and t.window_coverage is None


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_invalid_target(bad):
    with pytest.raises(ValueError, match="target_coverage"):
        CoverageTracker(target_coverage=bad)


def test_invalid_window():
    with pytest.raises(ValueError, match="window_size"):
        CoverageTracker(window_size=0)


def test_invalid_tag_code():
    with pytest.raises(ValueError):
        CoverageTracker().update(np.array([0, 4], dtype=np.uint8))


@pytest.mark.parametrize("mode,agg", [("mean", np.mean), ("min", np.min), ("max", np.max)])
def test_multi_output_aggregation(mode, agg):
    mt = MultiOutputCoverageTracker(3, target_coverage=0.9, aggregate_mode=mode)
    batches = [
        [[R, R, R, F], [R, P, P, P], [R, R, R, R]],
        [[R, F], [R, R], [N, N]],
    ]
    for b in batches:
        mt.update(b)
    # hand counts per output: 4/6, 3/6, 4/6
    per = [4 / 6, 3 / 6, 4 / 6]
    assert mt.get_per_output_coverage() == pytest.approx(per)
    assert mt.coverage == pytest.approx(agg(per))
    assert mt.coverage_gap == pytest.approx(0.9 - agg(per))


def test_multi_output_array_input_matches_lists(rng):
    codes = rng.integers(0, 4, size=(2, 50)).astype(np.uint8)
    a = MultiOutputCoverageTracker(2)
    b = MultiOutputCoverageTracker(2)
    a.update(codes)
    b.update([[TRTag(int(c)) for c in row] for row in codes])
    expected = (codes == 0).mean(axis=1)
    assert a.get_per_output_coverage() == pytest.approx(expected)
    assert b.get_per_output_coverage() == pytest.approx(expected)


def test_multi_output_errors():
    with pytest.raises(ValueError, match="aggregate_mode"):
        MultiOutputCoverageTracker(2, aggregate_mode="median")
    mt = MultiOutputCoverageTracker(2)
    with pytest.raises(ValueError, match="tags_list"):
        mt.update([[R]])
    with pytest.raises(ValueError, match="tags_list"):
        mt.update(np.zeros((3, 4), np.uint8))
