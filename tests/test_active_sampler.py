"""ActiveSampler: cells tile the domain, refinement concentrates near the zero set of Q
(1-D, 2-D, 3-D), the cap and the level bound hold exactly, sampling is uniform in cells."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from zeroproof_nb.training.sampling_diagnostics import ActiveSampler, ActiveSamplerConfig


def leaf_volume(sampler):
    leaves = sampler.cells[~sampler.cells["refined"]]
    return np.prod(2.0 * leaves["half_width"], axis=1).sum()


def assert_tiles(sampler, bounds):
    """Leaves lie inside the bounds and their volumes add up to the domain volume."""
    bounds = np.asarray(bounds, dtype=float)
    c, h = sampler.cells["center"], sampler.cells["half_width"]
    assert np.all(c - h >= bounds[:, 0] - 1e-12) and np.all(c + h <= bounds[:, 1] + 1e-12)
    assert leaf_volume(sampler) == pytest.approx(np.prod(bounds[:, 1] - bounds[:, 0]), rel=1e-9)


def test_initial_grid_1d_and_nd():
    a = ActiveSampler(ActiveSamplerConfig(initial_grid_size=100, grid_bounds=(-3.0, 3.0)))
    np.testing.assert_allclose(a.points()[:, 0], -3.0 + 0.06 * (np.arange(100) + 0.5))
    assert a.points().shape == (100, 1) and np.all(a.cells["level"] == 0)
    b = ActiveSampler(ActiveSamplerConfig(initial_grid_size=100,
                                          grid_bounds=[(-1, 1), (0, 2), (5, 6)]), input_dim=3)
    assert b.n_cells == 64  # 4**3 <= 100 < 5**3
    assert_tiles(b, [(-1, 1), (0, 2), (5, 6)])


def near_fraction(sampler, dist_fn, tol=1e-2):
    return np.mean(dist_fn(sampler.points()) < tol)


def run_rounds(sampler, q_fn, dist_fn, bounds):
    fractions = [near_fraction(sampler, dist_fn)]
    while True:
        entry = sampler.refine(q_fn)
        if entry["n_added"] == 0:
            break
        fractions.append(near_fraction(sampler, dist_fn))
        assert_tiles(sampler, bounds)
    assert len(fractions) >= 3
    assert np.all(np.diff(fractions) > 0), fractions
    return fractions


def test_refinement_1d_concentrates_at_the_pole():
    cfg = ActiveSamplerConfig(initial_grid_size=100, grid_bounds=(-1.0, 1.0),
                              refinement_threshold=0.1, max_refinement_level=5,
                              max_grid_points=10_000)
    a = ActiveSampler(cfg)
    run_rounds(a, lambda p: p[:, 0] - 0.3, lambda p: np.abs(p[:, 0] - 0.3), [(-1.0, 1.0)])
    assert a.n_cells <= 10_000 and a.cells["level"].max() <= 5
    # the cap bound: the last round refined the smallest |Q| first
    s = a.get_statistics()
    assert s["total_points"] == a.n_cells and s["refinement_events"] == len(a.refinement_history)


def test_refinement_2d_circle_and_3d_sphere():
    r = np.sqrt(0.5)
    cfg = ActiveSamplerConfig(initial_grid_size=400, grid_bounds=(-1.0, 1.0),
                              refinement_threshold=0.05, max_refinement_level=6,
                              max_grid_points=20_000)
    a = ActiveSampler(cfg, input_dim=2)
    run_rounds(a, lambda p: (p ** 2).sum(1) - 0.5,
               lambda p: np.abs(np.sqrt((p ** 2).sum(1)) - r), [(-1, 1)] * 2)
    cfg3 = ActiveSamplerConfig(initial_grid_size=1000, grid_bounds=(-1.0, 1.0),
                               refinement_threshold=0.05, max_refinement_level=4,
                               max_grid_points=30_000)
    b = ActiveSampler(cfg3, input_dim=3)
    run_rounds(b, lambda p: (p ** 2).sum(1) - 0.5,
               lambda p: np.abs(np.sqrt((p ** 2).sum(1)) - r), [(-1, 1)] * 3)


def test_cap_refines_smallest_q_first():
    cfg = ActiveSamplerConfig(initial_grid_size=10, grid_bounds=(0.0, 1.0),
                              refinement_ratio=1, refinement_threshold=1.0,
                              max_grid_points=15)
    a = ActiveSampler(cfg)
    q = np.array([0.5, 0.1, 0.9, 0.05, 0.3, 0.2, 0.8, 0.7, 0.6, 0.4])
    entry = a.refine(q)
    assert entry == {"n_refined": 2, "n_added": 4, "total_points": 14}
    np.testing.assert_array_equal(np.flatnonzero(a.cells["refined"]), [1, 3])
    a.refine(np.zeros(a.n_cells))  # 15 - 14 = 1 < 2 children: nothing more fits
    assert a.n_cells == 14


def test_nan_q_is_unknown_and_bad_q_raises():
    a = ActiveSampler(ActiveSamplerConfig(initial_grid_size=4, grid_bounds=(0, 1)))
    entry = a.refine([np.nan, 0.0, np.nan, 5.0])
    assert entry["n_refined"] == 1 and a.cells["refined"][1]
    with pytest.raises(ValueError, match="q"):
        a.refine(np.zeros(3))
    with pytest.raises(ValueError, match="q"):
        a.refine(lambda p: np.zeros(2))


@settings(max_examples=25, deadline=None)
@given(
    dim=st.integers(1, 3),
    n0=st.integers(1, 60),
    extra_cap=st.integers(0, 400),
    ratio=st.integers(1, 4),
    max_level=st.integers(0, 4),
    root=st.floats(-0.9, 0.9),
    rounds=st.integers(1, 6),
)
def test_cap_level_and_single_refinement_hold_exactly(dim, n0, extra_cap, ratio, max_level,
                                                     root, rounds):
    cfg = ActiveSamplerConfig(initial_grid_size=n0, grid_bounds=(-1.0, 1.0),
                              refinement_ratio=ratio, max_refinement_level=max_level,
                              refinement_threshold=0.3, max_grid_points=n0 + extra_cap)
    a = ActiveSampler(cfg, input_dim=dim)
    n_start = a.n_cells
    for _ in range(rounds):
        a.refine(lambda p: p.sum(axis=1) - root)
        assert a.n_cells <= cfg.max_grid_points
        assert a.cells["level"].max() <= max_level
    hist = a.refinement_history
    assert a.n_cells == n_start + sum(e["n_added"] for e in hist)
    # a parent is refined at most once: refined flags == total refinements
    assert np.count_nonzero(a.cells["refined"]) == sum(e["n_refined"] for e in hist)
    assert all(e["n_added"] == e["n_refined"] * a.children_per_cell for e in hist)
    assert_tiles(a, [(-1.0, 1.0)] * dim)


def test_sample_uniform_inside_leaf_cells(rng):
    a = ActiveSampler(ActiveSamplerConfig(initial_grid_size=20, grid_bounds=(-1.0, 1.0)),
                      input_dim=2, rng=3)
    a.refine(lambda p: p[:, 0])
    pts, cells = a.sample(20_000, return_cells=True)
    assert not np.any(a.cells["refined"][cells])
    offsets = (pts - a.cells["center"][cells]) / a.cells["half_width"][cells]
    assert np.all(np.abs(offsets) <= 1.0)
    for ax in range(2):
        assert stats.kstest(offsets[:, ax], stats.uniform(loc=-1, scale=2).cdf).pvalue > 1e-3
    leaves = a.leaf_indices()
    counts = np.bincount(np.searchsorted(leaves, cells), minlength=leaves.size)
    assert stats.chisquare(counts).pvalue > 1e-3  # leaves are picked uniformly


def test_statistics_state_and_bounds_validation():
    a = ActiveSampler(ActiveSamplerConfig(grid_bounds=(-1.0, 1.0), seed=5))
    a.refine(lambda p: -(p[:, 0] - 0.3))  # signed Q: statistics use |Q|
    st_ = a.get_statistics()
    assert {"total_points", "max_refinement_level", "refinement_events", "near_pole_points",
            "mean_q_abs"} <= set(st_)
    assert st_["mean_q_abs"] > 0 and st_["max_refinement_level"] == 1
    state = a.state_dict()
    expected = a.sample(50)
    b = ActiveSampler(ActiveSamplerConfig(seed=99))
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.sample(50), expected)
    for name in a.cells.dtype.names:  # field-wise: NaN (unknown |Q|) compares equal
        np.testing.assert_array_equal(b.cells[name], a.cells[name])
    assert b.refinement_history == a.refinement_history
    b.refine(lambda p: p[:, 0] - 0.3)  # keeps working after a restore
    with pytest.raises(ValueError, match="grid_bounds"):
        ActiveSamplerConfig(grid_bounds=(1.0, 1.0))
    with pytest.raises(ValueError, match="grid_bounds"):
        ActiveSamplerConfig(grid_bounds=[(0, 1), (2, -2)])
    with pytest.raises(ValueError, match="grid_bounds"):
        ActiveSampler(ActiveSamplerConfig(grid_bounds=[(0, 1), (0, 1)]), input_dim=3)
    with pytest.raises(ValueError, match="max_grid_points"):
        ActiveSamplerConfig(initial_grid_size=100, max_grid_points=50)
    with pytest.raises(ValueError, match="input_dim"):
        ActiveSampler(input_dim=0)
