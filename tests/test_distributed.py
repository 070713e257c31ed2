"""zeroproof_nb.distributed on a LocalCluster (2 worker processes, loopback): draws against the
in-core weights (chi-square) and an independent NumPy formula, indices independent of the
chunking, agreement with the in-core sampler, a restarted cluster, bad input.

One cluster per module; the pools are small and few kernel specialisations are used (each
worker compiles them once, from the numba cache when it is warm)."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from scipy import stats

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

import cloudpickle  # noqa: E402  (a dependency of distributed)

from zeroproof_nb import distributed as zd  # noqa: E402
from zeroproof_nb.layers import TRRational  # noqa: E402
from zeroproof_nb.rational import rational_eval as rational_eval_np  # noqa: E402
from zeroproof_nb.training.active_sampler import (  # noqa: E402
    ActiveSampler,
    ActiveSamplerConfig,
)
from zeroproof_nb.training.importance_sampler import (  # noqa: E402
    ImportanceSampler,
    ImportanceSamplerConfig,
)

# the slow identity below runs on the workers, which cannot import this test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CFG = ImportanceSamplerConfig(weight_power=2.0, min_q_abs=1e-6, max_weight=100.0)
B = zd.BLOCK
SEG = zd.SEGMENT_BLOCKS * B


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def reference_probs(q, p=2.0, min_q=1e-6, max_w=100.0, t=1.0, extra=None):
    """Upstream's weight formula written directly in NumPy, normalised."""
    a = np.maximum(np.abs(np.asarray(q, dtype=np.float64)), min_q)
    w = np.minimum(a ** (-p), max_w) ** (1.0 / t)
    if extra is not None:
        w = w * extra
    return w / w.sum()


def pool(n, seed=0):
    """Q values with weights varying by ~100x inside blocks and between segments."""
    r = np.random.default_rng(seed)
    q = r.uniform(0.1, 1.0, n) * np.where(r.random(n) < 0.5, -1.0, 1.0)
    q[: n // 3] *= 3.0  # a lighter first third
    return q


def binned_pvalue(idx, probs, labels):
    """Chi-square p-value of the draws grouped by ``labels`` (per point) against probs."""
    n_bins = labels.max() + 1
    got = np.bincount(labels[idx], minlength=n_bins)
    exp = np.bincount(labels, weights=probs, minlength=n_bins) * idx.size
    keep = exp > 0
    assert got[~keep].sum() == 0
    return stats.chisquare(got[keep], exp[keep] * got.sum() / exp[keep].sum()).pvalue


# --------------------------------------------------------------------------- statistics
def test_chisquare_per_point_against_in_core_weights(client):
    q = pool(3000, seed=1)
    w_in_core = ImportanceSampler(CFG).compute_weights(q)
    np.testing.assert_allclose(w_in_core, reference_probs(q), rtol=1e-12)
    idx = zd.sample_indices(da.from_array(q, chunks=384), 200_000, config=CFG, seed=7)
    assert idx.dtype == np.int64 and idx.shape == (200_000,)
    counts = np.bincount(idx, minlength=q.size)
    assert stats.chisquare(counts, w_in_core * idx.size).pvalue > 1e-3
    # a wrong pool is rejected by the same test (the test has power)
    wrong = reference_probs(q, p=1.8)
    assert stats.chisquare(counts, wrong * idx.size).pvalue < 1e-6


@pytest.mark.filterwarnings("ignore:Sending large graph")
def test_chisquare_across_segments_and_cut_chunks(client):
    n = 2 * SEG + 12345  # three segments, the last one short
    q = pool(n, seed=2)
    probs = ImportanceSampler(CFG).compute_weights(q)
    qd = da.from_array(q, chunks=100_000)  # not block-aligned: re-aligned; segments cut
    idx = zd.sample_indices(qd, 300_000, config=CFG, seed=11)
    i = np.arange(n)
    assert binned_pvalue(idx, probs, i // 2000) > 1e-3  # where in the pool
    assert binned_pvalue(idx, probs, i % B) > 1e-3  # where inside the block
    assert binned_pvalue(idx, probs, (i // B) % zd.SEGMENT_BLOCKS // 16) > 1e-3


def test_sample_weights_chisquare(client):
    q = pool(2000, seed=3)
    extra = np.random.default_rng(4).uniform(0.0, 2.0, q.size) * 1e300  # scale-free
    idx = zd.sample_indices(da.from_array(q, chunks=256), 150_000, config=CFG, seed=3,
                            sample_weights=da.from_array(extra, chunks=500))
    want = reference_probs(q, extra=extra / 1e300)
    assert stats.chisquare(np.bincount(idx, minlength=q.size), want * idx.size).pvalue > 1e-3


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_indices_for_any_chunking(client):
    n = 2 * SEG + 777
    q = pool(n, seed=5)
    ref = zd.sample_indices(da.from_array(q, chunks=n), 4096, config=CFG, seed=99)
    for chunks in (128 * 1000, SEG, SEG + 128 * 3, (128 * 7, 128 * 3000, n - 128 * 3007),
                   99_999):
        got = zd.sample_indices(da.from_array(q, chunks=chunks), 4096, config=CFG, seed=99)
        np.testing.assert_array_equal(got, ref, err_msg=f"chunks={chunks}")
    assert not np.array_equal(zd.sample_indices(da.from_array(q, chunks=n), 4096, config=CFG,
                                                seed=100), ref)


def test_matches_in_core_sampler(client):
    """Same seed, same indices as ImportanceSampler's first batch (with replacement up to
    rounding at block boundaries -- none in this pool; without replacement exactly)."""
    n = SEG + 5000
    q = pool(n, seed=6)
    cfg = ImportanceSamplerConfig(weight_power=1.5, temperature=2.0, seed=42)
    qd = da.from_array(q, chunks=128 * 700)
    want = ImportanceSampler(cfg).sample_indices(q, 5000)
    np.testing.assert_array_equal(zd.sample_indices(qd, 5000, config=cfg, seed=42), want)
    prepared = zd.importance_weights(qd, cfg)  # one weights pass, reused
    np.testing.assert_array_equal(zd.sample_indices(qd, 5000, config=cfg, seed=42,
                                                    prepared=prepared), want)
    with pytest.raises(ValueError, match="prepared"):
        zd.sample_indices(qd, 10, config=CFG, seed=42, prepared=prepared)  # other weights
    q2d = da.from_array(q[: 600 * 100].reshape(600, 100), chunks=(128, 50))  # flattened, C order
    np.testing.assert_array_equal(zd.sample_indices(q2d, 500, config=cfg, seed=1),
                                  ImportanceSampler(ImportanceSamplerConfig(
                                      weight_power=1.5, temperature=2.0, seed=1)
                                  ).sample_indices(q[:60000], 500))
    want = ImportanceSampler(cfg).sample_indices(q, 3000, replacement=False)
    got = zd.sample_indices(qd, 3000, config=cfg, seed=42, replace=False)
    np.testing.assert_array_equal(got, want)
    assert np.unique(got).size == got.size


def test_without_replacement_first_draw(client):
    """Two draws without replacement from 3 weight classes: the first draw's class follows
    the classes' weight sums (NumPy), the second differs from it."""
    q = np.array([0.5, 1.0, 0.25] * 64)  # 192 points, weights 4 : 1 : 16 repeated
    w = reference_probs(q)
    idx = np.array([zd.sample_indices(da.from_array(q, chunks=128), 2, config=CFG, seed=s,
                                      replace=False) for s in range(80)])
    first = np.bincount(idx[:, 0] % 3, minlength=3)
    wk = np.array([w[0::3].sum(), w[1::3].sum(), w[2::3].sum()])
    assert stats.chisquare(first, wk * 80).pvalue > 1e-3
    assert np.all(idx[:, 0] != idx[:, 1])


# --------------------------------------------------------------------------- evaluation
def test_rational_eval_q_abs_gather_match_in_core(client):
    x = np.linspace(-1.0, 1.0, 5001)
    theta, phi = [1.0, 2.0, -0.5], [0.5, -1.2]
    xd = da.from_array(x, chunks=1024)
    y, q = zd.rational_eval(xd, theta, phi, return_q=True)
    y_ref, q_ref = rational_eval_np(x, theta, phi, return_q=True)
    y, q = (a.compute() for a in (y, q))
    assert y.dtype == y_ref.dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(zd.q_abs(xd, theta, phi).compute(), np.abs(q_ref))
    # independent reference: Q = 1 + 0.5 x - 1.2 x^2
    np.testing.assert_allclose(np.abs(q), np.abs(1 + 0.5 * x - 1.2 * x * x), atol=1e-15)
    x2 = np.random.default_rng(0).uniform(-1, 1, (300, 2))
    x2d = da.from_array(x2, chunks=(128, 1))
    phi2 = [[0.1, 0.2], [0.3, -0.4]]  # one Q per head (d = 2, degree 1: 3 terms)
    theta2 = [[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]
    qa = zd.q_abs(x2d, theta2, phi2).compute()
    _, q2 = rational_eval_np(x2, theta2, phi2, return_q=True)
    np.testing.assert_array_equal(qa, np.abs(q2).min(axis=1))
    idx = np.array([5, 0, 299, 5, 17])
    np.testing.assert_array_equal(zd.gather(x2d, idx), x2[idx])


def test_importance_weights_block_sums(client):
    q = pool(1000, seed=8)
    res = zd.importance_weights(da.from_array(q, chunks=256), CFG)
    w = res.weights.compute()
    np.testing.assert_allclose(w, reference_probs(q), rtol=1e-12)
    bs = res.block_sums.compute()
    assert bs.shape == (8,)
    raw = reference_probs(q) * res.total
    np.testing.assert_allclose(bs, np.add.reduceat(raw, np.arange(0, 1000, B)), rtol=1e-12)
    assert res.n_positive == 1000 and res.n_nan == 0


def test_gather_epoch_rows_and_importance_correction(client):
    x = np.random.default_rng(12).uniform(-1.0, 1.0, 20_000)
    y = x * x
    # a layer's q_values, as a trainer would pass it: Q = 1 + 0.5x - 1.2x^2, poles inside
    layer = TRRational(d_p=2, d_q=2, basis="monomial")
    layer.theta[:] = [1.0, 2.0, -0.5]
    layer.phi[:] = [0.5, -1.2]
    ep = zd.gather_epoch(da.from_array(x, chunks=4096), da.from_array(y, chunks=5000),
                         layer.q_values, n_batches=20, batch_size=2000, config=CFG, seed=3)
    assert ep.x.shape == (40_000,) and ep.offsets[-1] == 40_000
    np.testing.assert_array_equal(ep.x, x[ep.indices])
    np.testing.assert_array_equal(ep.y, y[ep.indices])
    p = reference_probs(np.abs(1 + 0.5 * x - 1.2 * x * x))  # independent NumPy weights
    np.testing.assert_allclose(ep.weight, 1.0 / (x.size * p[ep.indices]), rtol=1e-9)
    # the corrected batch means estimate the pool mean of y (the objective is the pool's)
    est = [np.mean(ep.weight[a:b] * ep.y[a:b]) for a, b in zip(ep.offsets[:-1], ep.offsets[1:])]
    se = np.std(est, ddof=1) / np.sqrt(len(est))
    assert abs(np.mean(est) - y.mean()) < 5 * se
    assert abs(np.mean(ep.y) - y.mean()) > 5 * se  # uncorrected draws are biased


# --------------------------------------------------------------------------- refinement
def same_cells(a, b):
    assert a.shape == b.shape
    for f in a.dtype.names:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)


def q_2d(c):
    """Q with a pole line x0 = 0.3 and one x1 = -0.55 (works on the workers: a module
    function pickled by value)."""
    return (c[:, 0] - 0.3) * (c[:, -1] + 0.55)


@pytest.mark.parametrize("dim,cap", [(1, 1300), (2, 1300)])
def test_refine_cells_matches_in_core_and_cap_is_exact(client, dim, cap):
    cfg = ActiveSamplerConfig(initial_grid_size=1000 if dim == 1 else 900,
                              max_grid_points=cap, refinement_threshold=0.4,
                              grid_bounds=(-1.0, 1.0))
    s = ActiveSampler(cfg, dim)
    cells = da.from_array(s.cells.copy(), chunks=97)
    for step in range(3):
        n0 = s.n_cells
        qa0 = np.abs(q_2d(s.points()))
        want = s.refine(q_2d(s.points()))
        cells, got = zd.refine_cells(cells, q_2d if step % 2 else
                                     da.from_array(q_2d(s.cells["center"][:n0]), chunks=50), cfg)
        assert got == want
        assert got["total_points"] <= cap
        grid = cells.compute()
        same_cells(grid, s.cells)
        if step == 0:  # the cap binds here: an independent NumPy check of the choice
            thr = 0.4 * np.median(qa0)
            qualify = np.flatnonzero(qa0 < thr)
            room = (cap - n0) // (s.children_per_cell)
            assert qualify.size > room > 0
            chosen = np.sort(qualify[np.lexsort((qualify, qa0[qualify]))[:room]])
            np.testing.assert_array_equal(np.flatnonzero(grid["refined"][:n0]), chosen)
            assert got["total_points"] == n0 + room * s.children_per_cell


# --------------------------------------------------------------------------- failures
def _slow(b):
    time.sleep(0.05)
    return b


def test_restart_mid_computation_then_retry_gives_same_result(client):
    q = pool(128 * 40 * 24, seed=9)  # 24 chunks of 5120 points, 50 ms each
    qd = da.from_array(q, chunks=128 * 40).map_blocks(_slow, dtype=q.dtype)
    want = zd.sample_indices(qd, 2048, config=CFG, seed=1)
    outcome = {}

    def run():
        try:
            outcome["idx"] = zd.sample_indices(qd, 2048, config=CFG, seed=1)
        except Exception as exc:  # the restart cancels the computation
            outcome["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    client.restart()
    t.join(120)
    assert not t.is_alive()
    if "idx" in outcome:  # finished before the restart reached it
        np.testing.assert_array_equal(outcome["idx"], want)
    np.testing.assert_array_equal(zd.sample_indices(qd, 2048, config=CFG, seed=1), want)


# --------------------------------------------------------------------------- bad input
def test_nan_policy_and_bad_arguments(client):
    q = pool(512, seed=10)
    q[7] = np.nan
    qd = da.from_array(q, chunks=128)
    with pytest.raises(ValueError, match="NaN"):
        zd.sample_indices(qd, 10, config=CFG, seed=0)
    omit = ImportanceSamplerConfig(nan_policy="omit")
    assert 7 not in zd.sample_indices(qd, 5000, config=omit, seed=0)
    with pytest.raises(ValueError, match="seed"):
        zd.sample_indices(qd, 10, config=omit, seed=None)
    with pytest.raises(ValueError, match="batch_size"):
        zd.sample_indices(qd, 0, config=omit, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        zd.sample_indices(qd, 600, config=omit, seed=0, replace=False)
    with pytest.raises(TypeError, match="config"):
        zd.sample_indices(qd, 10, config={"weight_power": 2}, seed=0)
    with pytest.raises(TypeError, match="replace"):
        zd.sample_indices(qd, 10, config=omit, seed=0, replace="yes")
    with pytest.raises(ValueError, match="sample_weights"):
        zd.sample_indices(qd, 10, config=omit, seed=0, sample_weights=-np.ones(512))
    with pytest.raises(ValueError, match="sample_weights"):
        zd.sample_indices(qd, 10, config=omit, seed=0, sample_weights=np.ones(3))
    with pytest.raises(ValueError, match="positive weight"):
        zd.sample_indices(da.from_array(np.full(256, np.nan), chunks=128), 1, config=omit,
                          seed=0)
    with pytest.raises(TypeError, match="q"):
        zd.sample_indices(da.from_array(np.array(["a", "b"])), 1, config=omit, seed=0)
    with pytest.raises(ValueError, match="theta"):
        zd.q_abs(da.from_array(np.zeros(4)), [np.nan], [])
    with pytest.raises(ValueError, match="indices"):
        zd.gather(qd, [512])
    with pytest.raises(TypeError, match="indices"):
        zd.gather(qd, [0.5])
    with pytest.raises(TypeError, match="cells"):
        zd.refine_cells(qd, q, ActiveSamplerConfig())
    grid = ActiveSampler(ActiveSamplerConfig(initial_grid_size=10), 1).cells
    with pytest.raises(ValueError, match="q"):
        zd.refine_cells(grid, np.ones(3), ActiveSamplerConfig(initial_grid_size=10))
    with pytest.raises(TypeError, match="config"):
        zd.refine_cells(grid, np.ones(10), {"max_grid_points": 5})
