"""Active and hybrid draws from a pool: known probabilities, checked by goodness of fit."""
import numpy as np
import pytest
from scipy import stats

from zeroproof_nb.training.sampling_diagnostics import (
    ActiveSampler,
    ActiveSamplerConfig,
    IntegratedSampler,
    create_integrated_sampler,
)


def _chi2_pvalue(idx, p, n_bins=40):
    """χ² of the draws against the probabilities p, on bins of about equal expected mass."""
    order = np.argsort(p)
    cum = np.cumsum(p[order])
    bins = np.minimum((cum * n_bins).astype(int), n_bins - 1)
    bin_of = np.empty(p.size, dtype=int)
    bin_of[order] = bins
    observed = np.bincount(bin_of[idx], minlength=n_bins)
    expected = np.bincount(bin_of, weights=p, minlength=n_bins) * idx.size
    keep = expected > 0
    return stats.chisquare(observed[keep], expected[keep] * observed[keep].sum()
                           / expected[keep].sum()).pvalue


def _refined(dim, seed=0):
    rng = np.random.default_rng(seed)
    if dim == 1:
        x = rng.uniform(-1, 1, 3000)
        q = x - 0.3
    else:
        x = rng.uniform(-1, 1, (3000, 2))
        q = x[:, 0] + 0.5 * x[:, 1] - 0.2
    a = ActiveSampler(ActiveSamplerConfig(grid_bounds=(-1, 1), initial_grid_size=64,
                                          max_refinement_level=3, seed=seed), dim)
    for _ in range(3):
        a.refine_from_pool(x, q)
    return a, x, q


@pytest.mark.parametrize("dim", [1, 2])
def test_pool_leaves_match_brute_force_containment(dim):
    a, x, q = _refined(dim)
    leaf = a.pool_leaves(x)
    leaves = a.leaf_indices()
    c, h = a.cells["center"], a.cells["half_width"]
    x2 = x.reshape(len(x), -1)
    for i in range(0, len(x), 97):
        k = leaf[i]
        assert k >= 0
        assert np.all(np.abs(x2[i] - c[leaves[k]]) <= h[leaves[k]])


@pytest.mark.parametrize("dim", [1, 2])
def test_active_draws_follow_their_probabilities(dim):
    a, x, q = _refined(dim)
    p = a.pool_draw_probabilities(x, q)
    assert p.sum() == pytest.approx(1.0) and np.all(p >= 0)
    idx = a.sample_pool_indices(x, q, 60000)
    assert _chi2_pvalue(idx, p) > 1e-3
    # the draws focus near the pole set: far more often than uniform draws would
    near = np.abs(q) < 0.05
    assert np.mean(near[idx]) > 3 * np.mean(near)


def test_hybrid_batches_follow_the_mixture_and_reweighting_recovers_the_pool_mean():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 2000)
    q = x - 0.3
    s = create_integrated_sampler("hybrid", seed=3, adapt_frequency=1)
    s.prepare_epoch(x, q, 0)
    p = s.draw_probabilities(x, q)
    prepared = s.prepare(q)
    draws = np.concatenate([s.sample_batch(x, q, 500, epoch=0, prepared=prepared)[1]["indices"]
                            for _ in range(100)])
    assert _chi2_pvalue(draws, p) > 1e-3
    f = np.sin(3 * x) + x**2  # any per-point quantity
    w = 1.0 / p[draws]
    assert np.sum(w * f[draws]) / np.sum(w) == pytest.approx(f.mean(), abs=0.02)
    assert abs(f[draws].mean() - f.mean()) > 0.05  # unweighted: biased toward the pole


def test_grid_covers_the_first_pool_and_relative_threshold_ignores_q_units():
    rng = np.random.default_rng(2)
    x = rng.uniform(2.0, 7.0, 1500)
    q = x - 4.0
    s = IntegratedSampler("active", seed=0)
    s.sample_batch(x, q, 16)
    cells = s.active_sampler.cells
    lo = (cells["center"] - cells["half_width"]).min()
    hi = (cells["center"] + cells["half_width"]).max()
    assert lo == pytest.approx(x.min()) and hi == pytest.approx(x.max())
    counts = []
    for scale in (1.0, 1e3):  # the same cells split whatever the units of Q
        a = ActiveSampler(ActiveSamplerConfig(grid_bounds=(2.0, 7.0)), 1)
        counts.append(a.refine_from_pool(x, scale * q)["n_refined"])
    assert counts[0] == counts[1] > 0
    absolute = ActiveSampler(ActiveSamplerConfig(grid_bounds=(2.0, 7.0),
                                                 relative_threshold=False), 1)
    assert absolute.refine_from_pool(x, 1e3 * q)["n_refined"] == 0
