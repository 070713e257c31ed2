"""Near-pole sampling benchmarks, each beside its reference in the same rounds (``ratio_gate``).

* importance weights of a pool, ``ImportanceSampler.prepare`` (N = 10^4 / 10^6 / 10^7), beside
  NumPy's clipped 1/|Q|^p weights and their cumulative sum;
* weights + one batch (B = 4096, N = 10^4 / 10^6 / 10^7) vs ``Generator.choice(p=...)``
  (target >= 5x at 10^7), with and without NumPy computing the weights first;
* repeated batches from a prepared pool (N = 10^4 / 10^6, B = 4096 and 65536) vs ``choice``
  (>= 50x);
* the Trainer's shape: ``prepare`` of N = 65536 once per epoch (beside NumPy's weights + cumsum)
  and one call ``sample_indices(prepared, 4096)`` (beside ``choice``);
* grid refinement throughput in new cells per second (target >= 10^7), beside a NumPy split of
  the same cells (1-D and 2-D, 2·10^4 / 2·10^5 / 2·10^6 parents);
* points within 1e-3 of the pole of 1/(x − 0.3) per second: ActiveSampler vs python-adaptive's
  ``Learner1D`` (the peer; skipped without ``adaptive``).
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import reference_median, sized
from bench.references import numpy_weights
from zeroproof_nb.training.sampling_diagnostics import (
    ActiveSampler,
    ActiveSamplerConfig,
    ImportanceSampler,
    ImportanceSamplerConfig,
)


@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000, large=10_000_000))
def test_prepare_weights(benchmark, ratio_gate, n):
    q = np.random.default_rng(0).normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    pool = sampler.prepare(q)
    np.testing.assert_allclose(pool.weights, numpy_weights(q), rtol=1e-12)
    benchmark.group = f"importance-weights-n{n}"
    benchmark.extra_info.update(n=n)
    ratio_gate(lambda: sampler.prepare(q),
               {"numpy_weights_cumsum": lambda: np.cumsum(numpy_weights(q))})


@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000, large=10_000_000))
def test_weights_and_one_batch_vs_choice(benchmark, ratio_gate, n):
    b = 4096
    q = np.random.default_rng(0).normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    ref_rng = np.random.default_rng(2)
    p = numpy_weights(q)
    benchmark.group = f"weights-and-one-batch-n{n}"
    benchmark.extra_info.update(n=n, batch=b)
    ratio_gate(lambda: sampler.sample_indices(q, b), {
        "choice": lambda: ref_rng.choice(n, b, p=p),  # the target compares with this one
        "numpy_weights_and_choice": lambda: ref_rng.choice(n, b, p=numpy_weights(q)),
    })


@pytest.mark.parametrize("batch", [4096, 65536])
@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000))
def test_prepared_pool_batches_vs_choice(benchmark, ratio_gate, n, batch):
    q = np.random.default_rng(0).normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    pool = sampler.prepare(q)
    ref_rng = np.random.default_rng(2)
    p = pool.weights
    benchmark.group = f"prepared-pool-batches-n{n}"
    benchmark.extra_info.update(n=n, batch=batch)
    ratios = ratio_gate(lambda: sampler.sample_indices(pool, batch),
                        {"choice": lambda: ref_rng.choice(n, batch, p=p)})
    if ratios:
        bare = ImportanceSampler(ImportanceSamplerConfig(seed=1), track_counts=False)
        bare_s = reference_median(lambda: bare.sample_indices(pool, batch), rounds=21)
        choice_s = benchmark.extra_info["choice_median_s"]
        benchmark.extra_info.update(
            prepare_s=reference_median(lambda: sampler.prepare(q), rounds=3),
            without_count_tracking_s=bare_s,
            ratio_vs_choice_without_count_tracking=choice_s / bare_s)


def test_trainer_pool_prepare_and_batch(benchmark, ratio_gate):
    n, b = 65536, 4096
    q = np.random.default_rng(0).normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    pool = sampler.prepare(q)
    ref_rng = np.random.default_rng(2)
    benchmark.extra_info.update(n=n, batch=b)
    ratios = ratio_gate(lambda: sampler.sample_indices(pool, b),
                        {"choice": lambda: ref_rng.choice(n, b, p=pool.weights)})
    if ratios:
        prepare_s = reference_median(lambda: sampler.prepare(q), rounds=21)
        cumsum_s = reference_median(lambda: np.cumsum(numpy_weights(q)), rounds=21)
        benchmark.extra_info.update(prepare_s=prepare_s, numpy_weights_cumsum_s=cumsum_s,
                                    prepare_ratio_vs_numpy_weights_cumsum=cumsum_s / prepare_s)


def numpy_split(center, half, per_axis):
    """Reference: the split of every cell into ``per_axis`` children per axis, with NumPy
    broadcasting (``center``, ``half``: (n, d))."""
    n, d = center.shape
    digits = np.stack(np.meshgrid(*[np.arange(per_axis)] * d, indexing="ij"), -1).reshape(-1, d)
    child_half = half / per_axis
    lo = center - half
    centers = lo[:, None, :] + (2 * digits[None, :, :] + 1) * child_half[:, None, :]
    halves = np.broadcast_to(child_half[:, None, :], centers.shape)
    return centers.reshape(-1, d), np.ascontiguousarray(halves).reshape(-1, d)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("n0", sized(small=20_000, medium=200_000, large=2_000_000))
def test_refinement_throughput(benchmark, ratio_gate, n0, dim):
    ratio = 3
    children = 2 * ratio if dim == 1 else 2 ** dim
    per_axis = children if dim == 1 else 2
    cfg = ActiveSamplerConfig(initial_grid_size=n0, grid_bounds=(-1.0, 1.0),
                              refinement_ratio=ratio, max_grid_points=n0 * (children + 1),
                              refinement_threshold=0.1, relative_threshold=False)
    # absolute threshold: with the default relative one, q = 0 everywhere gives a threshold of 0
    # and nothing is split

    def setup():
        s = ActiveSampler(cfg, input_dim=dim)
        s._reserve(s.n_cells * (children + 1))  # time the split, not the buffer growth
        return (s, np.zeros(s.n_cells)), {}

    (s, q), _ = setup()
    c = s.cells["center"].copy()
    h = s.cells["half_width"].copy()
    assert s.refine(q)["n_added"] == len(c) * children
    ref_c, ref_h = numpy_split(c, h, per_axis)
    new = s.cells[len(c):]
    order = np.lexsort(new["center"].T[::-1])
    ref_order = np.lexsort(ref_c.T[::-1])
    np.testing.assert_allclose(new["center"][order], ref_c[ref_order], rtol=1e-12, atol=1e-15)
    added = len(ref_c)
    benchmark.group = f"refinement-{dim}d-n{n0}"
    benchmark.extra_info.update(dim=dim, parents=len(c), new_cells=added)
    ratios = ratio_gate(lambda s, q: s.refine(q), {"numpy_split": lambda: numpy_split(c, h, per_axis)},
                        setup=setup)
    if ratios:
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(new_cells_per_s=added / median,
                                    parents_per_s=len(c) / median)


def test_near_pole_points_per_second_vs_adaptive(benchmark, ratio_gate):
    adaptive = pytest.importorskip("adaptive")
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

    def f(x):
        return 1.0 / (x - pole)

    def peer():
        learner = adaptive.Learner1D(f, bounds=(-1.0, 1.0))
        for _ in range(1000):
            xs, _ = learner.ask(1)
            for x in xs:
                learner.tell(x, f(x))
        return learner

    near = ours()
    xs = np.array(list(peer().data))
    peer_near = int(np.count_nonzero(np.abs(xs - pole) < 1e-3))
    assert near > 0 and peer_near > 0
    ratios = ratio_gate(ours, {"adaptive": peer}, rounds=3)
    if ratios:
        ours_s = benchmark.extra_info["kernel_min_s"]
        peer_s = benchmark.extra_info["adaptive_min_s"]
        benchmark.extra_info.update(
            ours_near_pole_points=near, ours_near_per_s=near / ours_s,
            adaptive_points=len(xs), adaptive_near_pole_points=peer_near,
            adaptive_near_per_s=peer_near / peer_s,
            near_rate_ratio_vs_adaptive=(near / ours_s) / (peer_near / peer_s))
