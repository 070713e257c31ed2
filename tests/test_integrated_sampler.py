"""IntegratedSampler / create_integrated_sampler: strategies, indices in info, refinement
epochs, reproducibility, factory keywords, no directory until export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zeroproof_nb.training.sampling_diagnostics import (
    ActiveSamplerConfig,
    DiagnosticConfig,
    DiagnosticMonitor,
    ImportanceSamplerConfig,
    IntegratedSampler,
    SamplingStrategy,
    create_integrated_sampler,
)


@pytest.fixture
def pool():
    x = np.linspace(-1.0, 1.0, 2001)
    return x, x - 0.3


@pytest.mark.parametrize("strategy", ["uniform", "importance", "active", "hybrid"])
def test_every_strategy_returns_labelled_pool_points(pool, strategy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, q = pool
    s = create_integrated_sampler(strategy, seed=0, grid_bounds=(-1.0, 1.0))
    for epoch in range(3):
        bx, info = s.sample_batch(x, q, 64, epoch=epoch)
        assert info["strategy"] == strategy
        idx = info["indices"]
        assert idx.shape == (64,) and idx.dtype == np.int64
        np.testing.assert_array_equal(bx, x[idx])
    assert ("importance_stats" in info) == (strategy in ("importance", "hybrid"))
    assert ("active_stats" in info) == (strategy in ("active", "hybrid"))
    assert len(s.sampling_history) == 3
    assert all("indices" not in h and h["strategy"] == strategy for h in s.sampling_history)
    assert list(tmp_path.iterdir()) == []  # nothing written without an export


def test_active_refines_once_per_adapt_epoch_and_focuses(pool):
    x, q = pool
    # relative threshold: 0.1 × the median |Q| of the cells (≈ 0.5) splits cells with |Q| < 0.05
    s = create_integrated_sampler("active", seed=1, grid_bounds=(-1.0, 1.0),
                                  adapt_frequency=2, refinement_threshold=0.1)
    grid = s.active_sampler
    s.sample_batch(x, q, 32, epoch=0)
    s.sample_batch(x, q, 32, epoch=0)
    assert len(grid.refinement_history) == 1  # once per epoch, not per batch
    s.sample_batch(x, q, 32, epoch=1)
    assert len(grid.refinement_history) == 1
    s.sample_batch(x, q, 32, epoch=2)
    s.sample_batch(x, q, 32, epoch=4)
    assert len(grid.refinement_history) == 3
    _, info = s.sample_batch(x, q, 4000, epoch=5)
    near = np.mean(np.abs(q[info["indices"]]) < 0.05)
    assert near > 0.5  # uniform draws would give 0.05


def test_active_2d_pool_and_nan_handling(rng):
    x = rng.uniform(-1, 1, size=(3000, 2))
    q = (x ** 2).sum(1) - 0.5
    s = IntegratedSampler("active", active_config=ActiveSamplerConfig(grid_bounds=(-1, 1)),
                          seed=2)
    bx, info = s.sample_batch(x, q, 100)
    assert s.active_sampler.input_dim == 2 and bx.shape == (100, 2)
    q_nan = q.copy()
    q_nan[::7] = np.nan
    with pytest.raises(ValueError, match="q_pool"):
        s.sample_batch(x, q_nan, 10, epoch=1)
    s2 = IntegratedSampler("active", ImportanceSamplerConfig(nan_policy="omit"),
                           ActiveSamplerConfig(grid_bounds=(-1, 1)), seed=2)
    _, info2 = s2.sample_batch(x, q_nan, 500)
    assert not np.any(np.isnan(q_nan[info2["indices"]]))


def test_same_seed_same_batches_and_state_restore(pool):
    x, q = pool
    a = create_integrated_sampler("hybrid", seed=7, grid_bounds=(-1.0, 1.0))
    b = create_integrated_sampler("hybrid", seed=7, grid_bounds=(-1.0, 1.0))
    for e in range(3):
        np.testing.assert_array_equal(a.sample_batch(x, q, 50, e)[1]["indices"],
                                      b.sample_batch(x, q, 50, e)[1]["indices"])
    state = a.state_dict()
    expected = [a.sample_batch(x, q, 50, e)[1]["indices"] for e in (10, 11)]
    c = create_integrated_sampler("hybrid", seed=123, grid_bounds=(-1.0, 1.0))
    c.load_state_dict(state)
    got = [c.sample_batch(x, q, 50, e)[1]["indices"] for e in (10, 11)]
    for e_, g in zip(expected, got):
        np.testing.assert_array_equal(e_, g)
    assert c.active_sampler.n_cells == a.active_sampler.n_cells


def test_factory_keywords_and_errors():
    s = create_integrated_sampler("importance", 1.5, "out_dir", temperature=2.0,
                                  importance_ratio=0.4, grid_size=50, refinement_threshold=0.2,
                                  max_refinement=3, export_frequency=4, track_gradients=False,
                                  track_tags=False, max_weight=10.0, min_q_abs=1e-3)
    assert s.strategy is SamplingStrategy.IMPORTANCE
    ic = s.importance_sampler.config
    assert (ic.weight_power, ic.temperature, ic.importance_batch_ratio, ic.max_weight,
            ic.min_q_abs) == (1.5, 2.0, 0.4, 10.0, 1e-3)
    ac = s.active_sampler.config
    assert (ac.initial_grid_size, ac.refinement_threshold, ac.max_refinement_level) == (50, 0.2, 3)
    dc = s.diagnostic_monitor.config
    assert (dc.export_path, dc.export_frequency, dc.track_gradients,
            dc.track_tag_distribution) == ("out_dir", 4, False, False)
    assert isinstance(s.diagnostic_monitor, DiagnosticMonitor)
    assert isinstance(dc, DiagnosticConfig)
    with pytest.raises(ValueError, match="strategy"):
        create_integrated_sampler("greedy")
    with pytest.raises(TypeError, match="grid_sise"):
        create_integrated_sampler("hybrid", grid_sise=10)
    with pytest.raises(ValueError, match="weight_power"):
        create_integrated_sampler("hybrid", weight_power=-2.0)
    with pytest.raises(ValueError, match="batch_size"):
        create_integrated_sampler("uniform").sample_batch(np.arange(4.0), None, 0)


def test_export_all_writes_sampling_history(pool, tmp_path):
    x, q = pool
    s = create_integrated_sampler("hybrid", seed=3, export_path=str(tmp_path / "diag"),
                                  grid_bounds=(-1.0, 1.0))
    s.sample_batch(x, q, 16, epoch=0)
    s.update_diagnostics(epoch=0, metrics={"loss_train": 1.0}, q_values=q)
    written = s.export_all(0)
    hist = json.loads(written["sampling_history"].read_text())
    assert hist[0]["strategy"] == "hybrid" and hist[0]["batch_size"] == 16
    assert (tmp_path / "diag" / "history_epoch_0.json").exists()


# ------------------------------------------------------------------ weights and prepared pools
@pytest.mark.parametrize("strategy", ["importance", "hybrid"])
def test_sample_weights_and_prepared_pool_steer_the_importance_draws(pool, strategy):
    from scipy import stats

    x, q = pool
    w_extra = (x >= 0).astype(np.float64)  # half the pool gets weight 0
    cfg = {"importance_config": ImportanceSamplerConfig(importance_batch_ratio=1.0)}
    s = IntegratedSampler(strategy, seed=4, **cfg)
    _, info = s.sample_batch(x, q, 500, sample_weights=w_extra)
    assert np.all(x[info["indices"]] >= 0)
    # the prepared pool (weights inside) draws ∝ w(q)·w_extra: a goodness-of-fit test
    prepared = s.prepare(q, sample_weights=w_extra)
    idx = np.concatenate([s.sample_batch(x, q, 4000, prepared=prepared)[1]["indices"]
                          for _ in range(10)])
    a = np.maximum(np.abs(q), 1e-6)
    probs = np.minimum(a ** -2.0, 100.0) * w_extra
    probs /= probs.sum()
    edges = np.quantile(np.flatnonzero(probs > 0), np.linspace(0, 1, 21)).astype(int)
    edges[-1] += 1
    observed = np.histogram(idx, bins=edges)[0]
    expected = np.array([probs[lo:hi].sum() for lo, hi in zip(edges[:-1], edges[1:])]) * idx.size
    assert stats.chisquare(observed, expected).pvalue > 1e-4


def test_weights_need_importance_draws(pool):
    x, q = pool
    for strategy in ("uniform", "active"):
        with pytest.raises(ValueError, match="importance draws"):
            create_integrated_sampler(strategy, seed=0).sample_batch(
                x, q, 8, sample_weights=np.ones_like(x))
    s = create_integrated_sampler("hybrid", seed=0)
    with pytest.raises(ValueError, match="prepare"):
        s.sample_batch(x, q, 8, sample_weights=np.ones_like(x), prepared=s.prepare(q))
    with pytest.raises(TypeError, match="PreparedPool"):
        s.sample_batch(x, q, 8, prepared=q)
    with pytest.raises(ValueError, match="points"):
        s.sample_batch(x, q, 8, prepared=s.prepare(q[:100]))
