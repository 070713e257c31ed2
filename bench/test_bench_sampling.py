"""Near-pole sampling benchmarks, each beside its reference in the same run.

* weights + one batch (B = 4096, N = 10^7) vs ``Generator.choice(p=...)`` (target >= 5x);
* repeated batches from a prepared pool (N = 10^6, B = 4096 and 65536) vs ``choice`` (>= 50x);
* the Trainer's shape: ``prepare`` of N = 65536 once per epoch (beside NumPy's weights + cumsum)
  and one call ``sample_indices(prepared, 4096)`` (beside ``choice``);
* grid refinement throughput in new cells per second (target >= 10^7), beside a NumPy split;
* points within 1e-3 of the pole of 1/(x − 0.3) per second: ActiveSampler vs python-adaptive's
  ``Learner1D`` (the peer).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from bench.conftest import record_ratio, reference_median
from zeroproof_nb.training.sampling_diagnostics import (
    ActiveSampler,
    ActiveSamplerConfig,
    ImportanceSampler,
    ImportanceSamplerConfig,
)


def numpy_weights(q, p=2.0, min_q=1e-6, max_w=100.0):
    w = np.minimum(np.maximum(np.abs(q), min_q) ** (-p), max_w)
    return w / w.sum()


def test_weights_and_one_batch_vs_choice(benchmark):
    n, b = 10_000_000, 4096
    q = np.random.default_rng(0).normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    benchmark(lambda: sampler.sample_indices(q, b))
    ref_rng = np.random.default_rng(2)
    p = numpy_weights(q)
    choice_s = reference_median(lambda: ref_rng.choice(n, b, p=p), rounds=3)
    full_s = reference_median(lambda: ref_rng.choice(n, b, p=numpy_weights(q)), rounds=3)
    benchmark.extra_info.update(n=n, batch=b)
    record_ratio(benchmark, full_s, "numpy_weights_and_choice")
    record_ratio(benchmark, choice_s, "choice")  # the target compares with this one


@pytest.mark.parametrize("batch", [4096, 65536])
def test_prepared_pool_batches_vs_choice(benchmark, batch):
    n = 1_000_000
    q = np.random.default_rng(0).normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    pool = sampler.prepare(q)
    prepare_s = reference_median(lambda: sampler.prepare(q), rounds=3)
    benchmark(lambda: sampler.sample_indices(pool, batch))
    ref_rng = np.random.default_rng(2)
    p = pool.weights
    choice_s = reference_median(lambda: ref_rng.choice(n, batch, p=p), rounds=5)
    bare = ImportanceSampler(ImportanceSamplerConfig(seed=1), track_counts=False)
    bare_s = reference_median(lambda: bare.sample_indices(pool, batch), rounds=21)
    benchmark.extra_info.update(n=n, batch=batch, prepare_s=prepare_s,
                                without_count_tracking_s=bare_s,
                                ratio_vs_choice_without_count_tracking=choice_s / bare_s)
    record_ratio(benchmark, choice_s, "choice")


def test_trainer_pool_prepare_and_batch(benchmark):
    n, b = 65536, 4096
    q = np.random.default_rng(0).normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    pool = sampler.prepare(q)
    benchmark(lambda: sampler.sample_indices(pool, b))
    prepare_s = reference_median(lambda: sampler.prepare(q), rounds=21)
    cumsum_s = reference_median(lambda: np.cumsum(numpy_weights(q)), rounds=21)
    ref_rng = np.random.default_rng(2)
    choice_s = reference_median(lambda: ref_rng.choice(n, b, p=pool.weights), rounds=21)
    benchmark.extra_info.update(n=n, batch=b, prepare_s=prepare_s,
                                numpy_weights_cumsum_s=cumsum_s,
                                prepare_ratio_vs_numpy_weights_cumsum=cumsum_s / prepare_s)
    record_ratio(benchmark, choice_s, "choice")


def numpy_split_1d(center, half, per_axis):
    """Reference: the same 1-D split written with NumPy broadcasting."""
    digits = np.arange(per_axis)
    child_half = half / per_axis
    centers = center[:, None] - half[:, None] + (2 * digits + 1) * child_half[:, None]
    return centers.reshape(-1), np.repeat(child_half, per_axis)


@pytest.mark.parametrize("dim", [1, 2])
def test_refinement_throughput(benchmark, dim):
    n0 = 200_000
    ratio = 3
    children = 2 * ratio if dim == 1 else 2 ** dim
    cfg = ActiveSamplerConfig(initial_grid_size=n0, grid_bounds=(-1.0, 1.0),
                              refinement_ratio=ratio, max_grid_points=n0 * (children + 1),
                              refinement_threshold=0.1)

    def setup():
        s = ActiveSampler(cfg, input_dim=dim)
        s._reserve(s.n_cells * (children + 1))  # time the split, not the buffer growth
        return (s, np.zeros(s.n_cells)), {}

    benchmark.pedantic(lambda s, q: s.refine(q), setup=setup, rounds=5)
    s, _ = setup()[0]
    added = s.n_cells * children
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(dim=dim, parents=s.n_cells, new_cells=added,
                                new_cells_per_s=added / median,
                                parents_per_s=s.n_cells / median)
    if dim == 1:
        c = s.cells["center"][:, 0].copy()
        h = s.cells["half_width"][:, 0].copy()
        record_ratio(benchmark, reference_median(lambda: numpy_split_1d(c, h, children)),
                     "numpy_split")


def test_near_pole_points_per_second_vs_adaptive(benchmark):
    pole = 0.3

    def ours():
        cfg = ActiveSamplerConfig(initial_grid_size=100, grid_bounds=(-1.0, 1.0),
                                  refinement_threshold=0.1, max_refinement_level=5,
                                  max_grid_points=10_000, seed=0)
        s = ActiveSampler(cfg)
        while s.refine(lambda p: p[:, 0] - pole)["n_added"]:
            pass
        pts = s.sample(100_000)
        return int(np.count_nonzero(np.abs(pts[:, 0] - pole) < 1e-3))

    near = benchmark(ours)
    ours_rate = near / benchmark.stats.stats.median

    import adaptive

    def f(x):
        return 1.0 / (x - pole)

    def peer():
        learner = adaptive.Learner1D(f, bounds=(-1.0, 1.0))
        for _ in range(1000):
            xs, _ = learner.ask(1)
            for x in xs:
                learner.tell(x, f(x))
        return learner

    t0 = time.perf_counter()
    learner = peer()
    peer_s = time.perf_counter() - t0
    xs = np.array(list(learner.data))
    peer_near = int(np.count_nonzero(np.abs(xs - pole) < 1e-3))
    benchmark.extra_info.update(
        ours_near_pole_points=near, ours_near_per_s=ours_rate,
        adaptive_points=len(xs), adaptive_near_pole_points=peer_near,
        adaptive_s=peer_s, adaptive_near_per_s=peer_near / peer_s,
        ratio_vs_adaptive=ours_rate / (peer_near / peer_s),
    )
