import json
import logging

import numpy as np
import pytest

from zeroproof_nb.core import TRTag
from zeroproof_nb.training.diagnostics import (
    BATCH_KEYS,
    GRADIENT_KEYS,
    MAIN_KEYS,
    TAG_KEYS,
    DiagnosticConfig,
    DiagnosticMonitor,
)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lengths(group):
    return {len(v) for v in group.values()}


def test_config_defaults_match_upstream():
    c = DiagnosticConfig()
    assert c.export_frequency == 10 and c.export_path == "diagnostics" and c.track_gradients
    assert c.gradient_percentiles == [25, 50, 75, 90, 95, 99]
    assert c.max_history_length == 1000 and c.near_pole_threshold == 0.1 and c.far_pole_threshold == 1.0
    assert c.track_tag_distribution and c.monitor_q_min and c.q_min_warning_threshold == 1e-4


@pytest.mark.parametrize(
    "kwargs,field",
    [({"export_frequency": 0}, "export_frequency"), ({"near_pole_threshold": -1}, "near_pole_threshold"),
     ({"max_history_length": 0}, "max_history_length")],
)
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DiagnosticConfig(**kwargs)


def test_constructor_creates_no_directory(in_tmp):
    DiagnosticMonitor()
    DiagnosticMonitor(DiagnosticConfig(export_path="somewhere/deep"))
    assert list(in_tmp.iterdir()) == []


def test_histories_stay_aligned_with_partial_inputs(in_tmp, rng):
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    q = rng.uniform(-2, 2, size=40)
    mon.update(0, {"lambda_rej": 1.0, "coverage_train": 0.9})
    mon.update(1, {"loss_train": 0.5}, q_values=q)
    mon.update(2, {}, tags=[TRTag.REAL, TRTag.PHI])
    mon.update(3, {"coverage_train": 0.95}, q_values=q, gradients=rng.normal(size=40))
    for group in (mon.history, mon.tag_history, mon.gradient_history):
        assert _lengths(group) == {4}
    assert set(mon.history) == set(MAIN_KEYS)
    assert set(mon.tag_history) == set(TAG_KEYS)
    assert set(mon.gradient_history) == set(GRADIENT_KEYS)
    h = mon.history
    assert h["epoch"] == [0, 1, 2, 3]
    # carry-forward of metrics (None before the first value)
    assert h["lambda_rej"] == [1.0, 1.0, 1.0, 1.0]
    assert h["coverage_train"] == [0.9, 0.9, 0.9, 0.95]
    assert h["loss_train"] == [None, 0.5, 0.5, 0.5]
    # measured quantities are None when not supplied
    assert h["q_min"][0] is None and h["q_min"][2] is None
    assert h["q_min"][1] == pytest.approx(np.abs(q).min())
    assert mon.tag_history["n_real"] == [None, None, 1, None]
    assert mon.gradient_history["gradient_ratio"][:3] == [None, None, None]
    assert list(in_tmp.iterdir()) == []  # auto_export off: nothing written


def test_q_statistics_against_numpy(rng):
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    q = rng.normal(size=100)
    q[3] = np.nan  # a PHI denominator is skipped
    mon.update(1, {}, q_values=q)
    qa = np.abs(q[np.isfinite(q)])
    h = mon.history
    assert h["q_min"][-1] == pytest.approx(qa.min())
    assert h["q_mean"][-1] == pytest.approx(qa.mean())
    assert h["q_std"][-1] == pytest.approx(np.std(qa, ddof=1))
    assert h["near_pole_ratio"][-1] == pytest.approx(np.mean(qa < 0.1))
    mon.update(2, {}, q_values=[0.5])
    assert h["q_std"][-1] is None  # one sample: no unbiased std


def test_tag_counts(rng):
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    codes = rng.integers(0, 4, size=77).astype(np.uint8)
    mon.update(1, {}, tags=codes)
    th = mon.tag_history
    assert [th[k][-1] for k in ("n_real", "n_pinf", "n_ninf", "n_phi")] == [int(np.sum(codes == c)) for c in range(4)]
    assert th["real_ratio"][-1] == pytest.approx(np.mean(codes == 0))


def test_gradients_near_far_by_hand():
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    q = np.array([0.01, -0.05, 0.5, 2.0, -3.0])
    g = np.array([[3.0, 4.0], [0.0, 1.0], [9.0, 9.0], [1.0, 0.0], [0.0, 2.0]])  # norms 5,1,.,1,2
    mon.update(1, {}, q_values=q, gradients=g)
    gh = mon.gradient_history
    assert gh["near_pole_mean"][-1] == pytest.approx(3.0) and gh["near_pole_max"][-1] == 5.0
    assert gh["far_pole_mean"][-1] == pytest.approx(1.5) and gh["far_pole_max"][-1] == 2.0
    assert gh["gradient_ratio"][-1] == pytest.approx(2.0)
    # dict of parameters: norms averaged across parameters (as upstream)
    mon.update(2, {}, q_values=q, gradients={"theta": g, "phi": 3 * g})
    assert gh["near_pole_mean"][-1] == pytest.approx(6.0)
    # no far samples -> 0 and ratio 1.0
    mon.update(3, {}, q_values=np.array([0.01, 0.02]), gradients=np.array([1.0, 2.0]))
    assert gh["far_pole_mean"][-1] == 0.0 and gh["gradient_ratio"][-1] == 1.0
    with pytest.raises(ValueError, match="gradients"):
        mon.update(4, {}, q_values=q, gradients=np.ones(3))


def test_q_min_warning_goes_through_logging(caplog, capsys):
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    with caplog.at_level(logging.WARNING, logger="zeroproof_nb.training.diagnostics"):
        mon.update(1, {}, q_values=np.array([1e-6, 0.5]))
    assert any("q_min" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert capsys.readouterr().out == ""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zeroproof_nb.training.diagnostics"):
        mon.update(2, {}, q_values=np.array([1e-3]))
    assert not caplog.records


def test_export_roundtrip(in_tmp, rng):
    mon = DiagnosticMonitor(DiagnosticConfig(export_frequency=2, export_path="out/diag"))
    for epoch in range(5):
        q = rng.normal(size=20)
        mon.update(
            epoch,
            {"lambda_rej": 1.0 + epoch, "coverage_train": 0.9, "loss_train": np.float64(0.1 * epoch)},
            p_values=rng.normal(size=20),
            q_values=q,
            gradients=rng.normal(size=(20, 3)),
            tags=rng.integers(0, 4, size=20).astype(np.uint8),
        )
        for b in range(3):
            mon.update_batch(b, q_min=float(np.abs(q).min()), tags=[TRTag.REAL, TRTag.PINF], loss=0.5)
    out = in_tmp / "out" / "diag"
    names = sorted(p.name for p in out.iterdir())
    assert "history_epoch_0.json" in names and "history_epoch_4.json" in names
    assert "history_epoch_1.json" not in names
    written = mon.export_diagnostics(4)
    with open(written["history"]) as f:
        loaded = json.load(f)
    assert set(loaded) == {"main", "tags", "gradients"}
    assert loaded["main"] == mon.history
    assert loaded["tags"] == mon.tag_history
    assert loaded["gradients"] == mon.gradient_history
    with open(written["batch_metrics"]) as f:
        bm = json.load(f)
    assert bm == mon.batch_metrics and set(bm) == set(BATCH_KEYS) and _lengths(bm) == {15}
    with np.load(written["pq_snapshots"], allow_pickle=False) as z:
        assert z["epochs"].tolist() == [0, 2, 4]
        snap = mon.pq_snapshots[-1]
        assert np.array_equal(z["q_values_4"], snap["q_values"])
        assert np.array_equal(z["p_values_4"], snap["p_values"])


def test_export_to_explicit_path_creates_it(in_tmp):
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    mon.update(3, {"coverage_train": 1.0})
    written = mon.export_diagnostics(3, path=in_tmp / "x" / "y")
    assert written["history"] == in_tmp / "x" / "y" / "history_epoch_3.json"
    assert set(written) == {"history"}  # no batches, no snapshots
    assert not (in_tmp / "diagnostics").exists()


def test_update_batch_aligned():
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    mon.update_batch(0, q_min=0.1)
    mon.update_batch(1, q_min=0.2, tags=np.array([0, 0, 3], np.uint8), loss=1.5)
    bm = mon.batch_metrics
    assert _lengths(bm) == {2}
    assert bm["loss"] == [None, 1.5] and bm["n_real"] == [None, 2] and bm["n_non_real"] == [None, 1]


def test_trimming_keeps_lists_aligned():
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False, max_history_length=3))
    for e in range(6):
        mon.update(e, {"coverage_train": e / 10}, q_values=[1.0, 2.0] if e % 2 else None)
        mon.update_batch(e, 0.1)
    assert mon.history["epoch"] == [3, 4, 5]
    assert mon.history["coverage_train"] == [0.3, 0.4, 0.5]
    for group in (mon.history, mon.tag_history, mon.gradient_history, mon.batch_metrics):
        assert _lengths(group) == {3}


def test_summary_keys_and_values():
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    assert mon.get_summary() == {}
    mon.update(1, {"coverage_train": 0.8}, q_values=[0.5, 0.02], tags=[TRTag.REAL, TRTag.PINF],
               gradients=[4.0, 1.0])
    mon.update(2, {"coverage_train": 0.9}, q_values=[0.3, 3.0], tags=[TRTag.PHI, TRTag.NINF],
               gradients=[1.0, 2.0])
    s = mon.get_summary()
    assert set(s) == {
        "q_min_global", "q_min_recent", "q_mean_recent", "coverage_current", "coverage_mean",
        "real_ratio_current", "non_real_total", "gradient_ratio_mean", "gradient_ratio_max",
        "q_min_below_threshold_epochs",
    }
    assert s["q_min_global"] == 0.02 and s["q_min_recent"] == 0.3
    assert s["q_mean_recent"] == pytest.approx(1.65)
    assert s["coverage_current"] == 0.9 and s["coverage_mean"] == pytest.approx(0.85)
    assert s["real_ratio_current"] == 0.0 and s["non_real_total"] == 3
    # epoch 1: near mean 1 / no far sample -> 1.0; epoch 2: no near -> 1.0
    assert s["gradient_ratio_mean"] == 1.0 and s["gradient_ratio_max"] == 1.0


def test_state_and_to_dict_are_json():
    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    mon.update(1, {"coverage_train": np.float32(0.5)}, q_values=[1.0, 2.0])
    d = json.loads(json.dumps(mon.state))
    assert d["main"] == mon.history and d["config"]["export_path"] == "diagnostics"
    assert mon.to_dict()["batch_metrics"] == {k: [] for k in BATCH_KEYS}


def test_tag_counts_equal_counting_tags():
    import numpy as np
    import pytest

    from zeroproof_nb.core import count_tags
    from zeroproof_nb.training.diagnostics import DiagnosticConfig, DiagnosticMonitor

    tags = np.array([0, 0, 1, 3, 2, 0], dtype=np.uint8)
    a = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    b = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
    a.update(0, {"loss_train": 1.0}, tags=tags)
    b.update(0, {"loss_train": 1.0}, tag_counts=count_tags(tags))
    a.update_batch(0, q_min=0.1, tags=tags)
    b.update_batch(0, q_min=0.1, tag_counts=count_tags(tags))
    assert a.tag_history == b.tag_history and a.batch_metrics == b.batch_metrics
    with pytest.raises(ValueError, match="not both"):
        a.update(1, tags=tags, tag_counts=[1, 0, 0, 0])
    with pytest.raises(ValueError, match="tag_counts"):
        a.update_batch(1, tag_counts=[1, 2])


def test_q_min_warning_is_logged_once_per_run(caplog):
    import logging

    from zeroproof_nb.training.diagnostics import DiagnosticConfig, DiagnosticMonitor

    mon = DiagnosticMonitor(DiagnosticConfig(auto_export=False, q_min_warning_threshold=1e-3))
    with caplog.at_level(logging.WARNING):
        for epoch, q_min in enumerate([1.0, 1e-5, 1e-6, 0.5, 1e-7]):
            mon.update(epoch, {"loss_train": 1.0}, q_values=np.array([q_min, 1.0]))
    warnings = [r for r in caplog.records if "below threshold" in r.getMessage()]
    assert len(warnings) == 1 and "epoch 1" in warnings[0].getMessage()
    assert mon.get_summary()["q_min_below_threshold_epochs"] == 3
