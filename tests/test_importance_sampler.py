"""ImportanceSampler: weights (golden + NumPy reference), draws (chi-square), without
replacement (exact inclusion probabilities), thread independence, state, bad input."""
from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
from scipy import stats

from zeroproof_nb.training.sampling_diagnostics import (
    ImportanceSampler,
    ImportanceSamplerConfig,
    PreparedPool,
)

GOLDEN_Q = np.array([0.0, -0.05, 0.1, 0.5, -1.0, 2.0])


def reference_weights(q, p=2.0, min_q=1e-6, max_w=100.0, t=1.0):
    """Upstream's formula written directly in NumPy."""
    a = np.maximum(np.abs(np.asarray(q, dtype=np.float64)), min_q)
    with np.errstate(divide="ignore"):
        w = np.minimum(a ** (-p), max_w)
    w = w ** (1.0 / t)
    return w / w.sum()


def chisquare_pvalue(idx, probs):
    counts = np.bincount(idx, minlength=probs.size)
    keep = probs > 0
    assert counts[~keep].sum() == 0, "a zero-weight index was drawn"
    return stats.chisquare(counts[keep], probs[keep] * idx.size).pvalue


# ----------------------------------------------------------------------------- weights
def test_golden_weights_t1_and_t2():
    w1 = ImportanceSampler().compute_weights(GOLDEN_Q)
    # golden values are printed to 6 decimals: agree to half a unit in the last place
    np.testing.assert_allclose(w1, [0.3276, 0.3276, 0.3276, 0.013104, 0.003276, 0.000819],
                               rtol=0, atol=5e-7)
    cfg = ImportanceSamplerConfig(temperature=2.0)
    w2 = ImportanceSampler(cfg).compute_weights(GOLDEN_Q)
    np.testing.assert_allclose(
        w2, [0.298507, 0.298507, 0.298507, 0.059701, 0.029851, 0.014925], rtol=0,
        atol=5e-7)


@pytest.mark.parametrize("p,min_q,max_w,t", [
    (2.0, 1e-6, 100.0, 1.0), (1.0, 1e-3, 50.0, 0.5), (1.5, 0.0, 1e4, 3.0),
    (0.0, 1e-6, 100.0, 1.0), (3.0, 1e-2, 1e3, 0.05),
])
def test_weights_match_numpy_formula(rng, p, min_q, max_w, t):
    q = np.concatenate([rng.normal(scale=2.0, size=40_000), [0.0, -0.0, np.inf, -np.inf]])
    cfg = ImportanceSamplerConfig(weight_power=p, min_q_abs=min_q, max_weight=max_w,
                                  temperature=t)
    w = ImportanceSampler(cfg).compute_weights(q)
    np.testing.assert_allclose(w, reference_weights(q, p, min_q, max_w, t), rtol=1e-12,
                               atol=1e-300)
    assert abs(w.sum() - 1.0) < 1e-12


def test_weights_float32_and_upstream_call_style(rng):
    q = rng.normal(size=1000)
    s = ImportanceSampler()
    w64 = s.compute_weights(q)
    w32 = s.compute_weights(q.astype(np.float32))
    assert w32.dtype == np.float64
    np.testing.assert_allclose(w32, reference_weights(q.astype(np.float32)), rtol=1e-12)
    np.testing.assert_array_equal(s.compute_weights(np.zeros(1000), q), w64)


def test_nan_policy():
    q = np.array([0.5, np.nan, 1.0, 2.0])
    with pytest.raises(ValueError, match="q_values"):
        ImportanceSampler().compute_weights(q)
    with pytest.raises(ValueError, match="q_pool"):
        ImportanceSampler().sample_batch(np.arange(4.0), q, 2)
    s = ImportanceSampler(ImportanceSamplerConfig(nan_policy="omit", seed=1))
    w = s.compute_weights(q)
    assert w[1] == 0.0
    np.testing.assert_allclose(w[[0, 2, 3]], reference_weights(q[[0, 2, 3]]), rtol=1e-12)
    idx = s.sample_indices(q, 5000)
    assert not np.any(idx == 1)
    _, hidx = s.hybrid_sample(np.arange(4.0), q, 5000)
    assert not np.any(hidx == 1)
    with pytest.raises(ValueError, match="q_pool"):
        s.sample_indices(np.full(3, np.nan), 2)


# ------------------------------------------------------------------------------- draws
def _varied_pool(rng, n=3000):
    # several blocks, some all-zero weight (q = inf), distinct weights elsewhere
    q = rng.uniform(0.15, 3.0, size=n) * rng.choice([-1.0, 1.0], size=n)
    q[300:700] = np.inf
    q[-5:] = np.inf
    return q


def test_chisquare_with_replacement_block_cdf(rng):
    q = rng.uniform(0.12, 3.0, size=60)
    s = ImportanceSampler(ImportanceSamplerConfig(seed=3))
    idx = s.sample_indices(q, 100_000)
    assert chisquare_pvalue(idx, reference_weights(q)) > 1e-3
    q2 = _varied_pool(rng)
    idx2 = s.sample_indices(q2, 100_000)
    probs = reference_weights(q2)
    # too many cells for per-index chi-square: group by deciles of probability mass
    groups = np.minimum((np.cumsum(probs) * 20).astype(int), 19)
    got = np.bincount(groups[idx2], minlength=20)
    exp = np.bincount(groups, weights=probs, minlength=20) * idx2.size
    assert np.all(probs[idx2] > 0)
    assert stats.chisquare(got[exp > 0], exp[exp > 0]).pvalue > 1e-3


def test_chisquare_prepared_alias(rng):
    q = np.concatenate([rng.uniform(0.12, 3.0, size=60), [np.inf, np.inf]])
    s = ImportanceSampler(ImportanceSamplerConfig(seed=4, temperature=1.5))
    pool = s.prepare(q)
    assert isinstance(pool, PreparedPool) and pool.size == 62 and pool.n_positive == 60
    np.testing.assert_allclose(pool.weights, reference_weights(q, t=1.5), rtol=1e-12)
    idx = s.sample_indices(pool, 100_000)
    assert chisquare_pvalue(idx, reference_weights(q, t=1.5)) > 1e-3


def test_sample_weights_product(rng):
    from zeroproof_nb.training.curriculum import combine_sample_weights

    q = rng.uniform(0.12, 3.0, size=40)
    extra = rng.uniform(0.0, 2.0, size=40)
    extra[:3] = 0.0
    s = ImportanceSampler(ImportanceSamplerConfig(seed=5))
    target = combine_sample_weights(extra, reference_weights(q))
    np.testing.assert_allclose(s.compute_weights(q, sample_weights=extra), target, rtol=1e-12)
    assert chisquare_pvalue(s.sample_indices(q, 100_000, sample_weights=extra), target) > 1e-3
    pool = s.prepare(q, sample_weights=extra)
    assert chisquare_pvalue(s.sample_indices(pool, 100_000), target) > 1e-3
    with pytest.raises(ValueError, match="sample_weights"):
        s.sample_indices(q, 4, sample_weights=-extra)
    with pytest.raises(ValueError, match="sample_weights"):
        s.sample_indices(q, 4, sample_weights=extra[:-1])


def test_sample_batch_user_example_and_nd_pool(rng):
    # the user's document, with zeroproof -> zeroproof_nb
    from zeroproof_nb.training.sampling_diagnostics import ImportanceSampler, ImportanceSamplerConfig
    sampler = ImportanceSampler(ImportanceSamplerConfig(weight_power=2.0, max_weight=100.0))
    # Given pools x_pool, q_pool (tensors)
    x_pool = np.linspace(-1, 1, 500)
    q_pool = x_pool - 0.3
    batch_x, idx = sampler.sample_batch(x_pool, q_pool, batch_size=128)
    assert batch_x.shape == (128,) and idx.dtype == np.int64
    np.testing.assert_array_equal(batch_x, x_pool[idx])
    x2 = rng.normal(size=(500, 3))
    bx2, idx2 = sampler.sample_batch(x2, q_pool, 64)
    assert bx2.shape == (64, 3)
    np.testing.assert_array_equal(bx2, x2[idx2])
    st = sampler.get_statistics()
    assert set(st) == {"total_samples", "unique_samples", "max_sample_count",
                       "min_sample_count", "sample_diversity", "mean_q_abs", "min_q_abs"}
    assert st["total_samples"] == 192
    np.testing.assert_allclose(st["mean_q_abs"], np.abs(q_pool).mean(), rtol=1e-12)
    np.testing.assert_allclose(st["min_q_abs"], np.abs(q_pool).min(), rtol=1e-12)
    counts = sampler.sample_counts
    assert counts.sum() == 192
    assert st["unique_samples"] == np.count_nonzero(counts)
    assert st["max_sample_count"] == counts.max()


# ------------------------------------------------------------------- without replacement
def _exact_pair_probabilities(w):
    """P({i, j}) of two successive weighted draws without replacement, by enumeration."""
    w = np.asarray(w, dtype=np.float64)
    total = w.sum()
    probs = {}
    for i, j in itertools.permutations(range(w.size), 2):
        p = w[i] / total * w[j] / (total - w[i])
        key = (min(i, j), max(i, j))
        probs[key] = probs.get(key, 0.0) + p
    return probs


@pytest.mark.parametrize("prepared", [False, True])
def test_without_replacement_matches_exact_inclusion(prepared):
    q = np.array([0.15, 0.3, 0.6, 1.2])
    w = reference_weights(q)
    exact = _exact_pair_probabilities(w)
    s = ImportanceSampler(ImportanceSamplerConfig(replacement=False, seed=11))
    src = s.prepare(q) if prepared else q
    pairs = list(exact)
    counts = np.zeros(len(pairs))
    first = np.zeros(4)
    n_rep = 8_000
    for _ in range(n_rep):
        idx = s.sample_indices(src, 2)
        assert idx[0] != idx[1]
        counts[pairs.index((min(idx), max(idx)))] += 1
        first[idx[0]] += 1
    assert stats.chisquare(counts, np.array([exact[p] for p in pairs]) * n_rep).pvalue > 1e-3
    # the first index of the batch is a plain weighted draw
    assert stats.chisquare(first, w * n_rep).pvalue > 1e-3


def test_without_replacement_distinct_and_limits(rng):
    q = _varied_pool(rng, 2000)
    n_pos = int(np.count_nonzero(np.isfinite(q)))
    s = ImportanceSampler(ImportanceSamplerConfig(replacement=False, seed=2))
    idx = s.sample_indices(q, n_pos)
    assert np.unique(idx).size == n_pos and np.all(np.isfinite(q[idx]))
    with pytest.raises(ValueError, match="batch_size"):
        s.sample_indices(q, n_pos + 1)
    _, hidx = s.hybrid_sample(np.arange(q.size), q, 1500)
    assert np.unique(hidx).size == 1500
    with pytest.raises(ValueError, match="batch_size"):
        s.hybrid_sample(np.arange(q.size), q, q.size + 1)


# --------------------------------------------------------------------------- hybrid
def test_hybrid_split_shuffle_and_statistics():
    q = np.full(1000, np.inf)
    q[:10] = 0.01  # only these have importance weight
    x = np.arange(1000.0)
    s = ImportanceSampler(ImportanceSamplerConfig(seed=7, importance_batch_ratio=0.7))
    bx, idx = s.hybrid_sample(x, q, 1000)
    np.testing.assert_array_equal(bx, x[idx])
    far = np.flatnonzero(idx >= 10)
    assert 250 <= far.size <= 300  # only the 300 uniform draws can land there
    assert far.min() < 700  # shuffled, not appended
    assert s.get_statistics()["total_samples"] == 1000
    assert s.sample_counts.sum() == 1000
    # bs=32 gives floor(22.4) = 22 importance draws, as upstream
    s2 = ImportanceSampler(ImportanceSamplerConfig(seed=8, importance_batch_ratio=0.7))
    _, idx2 = s2.hybrid_sample(x, q, 32)
    assert np.count_nonzero(idx2 < 10) >= 22
    s3 = ImportanceSampler(ImportanceSamplerConfig(seed=8, importance_batch_ratio=1.0))
    assert np.all(s3.hybrid_sample(x, q, 64)[1] < 10)


# ------------------------------------------------------------------ stream and alias table
_MASK64 = (1 << 64) - 1


def splitmix64_reference(seed, n):
    """SplitMix64 as a sequential generator in pure Python (state += gamma; output mix)."""
    state, out = seed, []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return out


def test_stream_is_splitmix64():
    from zeroproof_nb.kernels.weights import (
        stream_bits,
        stream_exponential,
        stream_uniform,
    )

    # the published first outputs of SplitMix64 for seed 1234567
    golden = [6457827717110365317, 3203168211198807973, 9817491932198370423,
              4593380528125082431, 16408922859458223821]
    assert splitmix64_reference(1234567, 5) == golden
    for key in (1234567, 0, 2**64 - 1, 0x0123456789ABCDEF):
        ref = splitmix64_reference(key, 40)
        got = [int(stream_bits(np.uint64(key), k)) for k in range(40)]
        assert got == ref
        u = [stream_uniform(np.uint64(key), k) for k in range(40)]
        assert u == [(r >> 11) * 2.0 ** -53 for r in ref]
        e = [stream_exponential(np.uint64(key), k) for k in range(40)]
        np.testing.assert_allclose(e, -np.log1p(-np.array(u)), rtol=1e-14)


def decode_alias(table):
    """Draw probabilities implied by a packed alias table (NumPy)."""
    prob = (table & np.uint64(0xFFFFFFFF)).astype(np.float64) / 2.0**32
    alias = (table >> np.uint64(32)).astype(np.int64)
    p = prob.copy()
    np.add.at(p, alias, 1.0 - prob)
    return p / table.size


@pytest.mark.parametrize("kind", ["varied", "equal", "one_positive", "heavy_tail"])
def test_alias_table_probabilities_exact(rng, kind):
    n = 5000
    q = {"varied": _varied_pool(rng, n),
         "equal": np.full(n, 0.5),  # every row exactly 1: rounding leftovers only
         "one_positive": np.where(np.arange(n) == 1234, 0.5, np.inf),
         "heavy_tail": rng.standard_cauchy(n)}[kind]
    pool = ImportanceSampler().prepare(q)
    # each row's acceptance probability is exact to 2**-32, so every point's probability is
    # exact to (1 + rows aliasing it)·2**-32 / n
    alias = (pool.table >> np.uint64(32)).astype(np.int64)
    tol = (1 + np.bincount(alias, minlength=n)) * 2.0**-32 / n
    err = np.abs(decode_alias(pool.table) - reference_weights(q))
    assert np.all(err <= tol + 1e-15)
    assert np.all(alias < n)


def test_prepared_draws_match_numpy_reimplementation(rng):
    # indices = alias method on the stream's uniforms, the key being the generator's next
    # raw 64-bit word: rebuilt here from a copy of the generator, in NumPy
    q = _varied_pool(rng, 3000)
    s = ImportanceSampler(ImportanceSamplerConfig(seed=21))
    pool = s.prepare(q)
    for batch in (1, 100, 5000):
        clone = np.random.Generator(np.random.PCG64())
        clone.bit_generator.state = s.rng.bit_generator.state
        key = int(clone.bit_generator.random_raw())
        u = np.array(splitmix64_reference(key, batch), dtype=np.uint64) >> np.uint64(11)
        x = u.astype(np.float64) * 2.0**-53 * pool.size
        j = np.minimum(x.astype(np.int64), pool.size - 1)
        frac = (x - j) * 2.0**32
        word = pool.table[j]
        keep = frac.astype(np.int64) < (word & np.uint64(0xFFFFFFFF)).astype(np.int64)
        expected = np.where(keep, j, (word >> np.uint64(32)).astype(np.int64))
        np.testing.assert_array_equal(s.sample_indices(pool, batch), expected)


@pytest.mark.parametrize("prepared", [False, True])
def test_counts_match_bincount_for_any_thread_count(rng, prepared):
    q = rng.normal(size=40_000)
    x = np.arange(q.size)
    original = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            s = ImportanceSampler(ImportanceSamplerConfig(seed=5))
            src = s.prepare(q) if prepared else q
            drawn = [s.sample_indices(src, b) for b in (3, 4096, 140_000)]  # serial and parallel
            drawn.append(s.hybrid_sample(x, src, 200_000)[1])
            allidx = np.concatenate(drawn)
            np.testing.assert_array_equal(s.sample_counts, np.bincount(allidx, minlength=q.size))
            st = s.get_statistics()
            assert st["total_samples"] == allidx.size
            assert st["unique_samples"] == np.unique(allidx).size
            results.append((allidx, s.sample_counts.copy()))
    finally:
        numba.set_num_threads(original)
    for r1, r2 in zip(*results):
        np.testing.assert_array_equal(r1, r2)


def test_count_kernels_two_levels_and_any_number_of_parts(rng):
    from zeroproof_nb.kernels.weights import (
        LOW_COUNT_MAX,
        accumulate_counts,
        accumulate_counts_serial,
    )

    n = 1000
    idx = rng.integers(0, n, size=5000)
    idx[:10] = n - 1  # the last range boundary
    idx[10:3010] = np.arange(5).repeat(600)  # 600 more draws of each of 0..4
    low = np.zeros(n, dtype=np.uint16)
    high = np.zeros(n, dtype=np.int64)
    low[:5] = [1, 2, LOW_COUNT_MAX - 3, LOW_COUNT_MAX, 5]  # two of them spill
    high[4] = 10**12
    expected = high + low + np.bincount(idx, minlength=n)
    n_new = np.count_nonzero((low == 0) & (expected > 0))
    for kernel, n_parts in [(accumulate_counts_serial, 1), (accumulate_counts, 1),
                            (accumulate_counts, 2), (accumulate_counts, 3),
                            (accumulate_counts, 7)]:
        lo, hi = low.copy(), high.copy()
        assert kernel(lo, hi, idx, n_parts) == n_new
        np.testing.assert_array_equal(hi + lo, expected)
        np.testing.assert_array_equal(lo == 0, expected == 0)  # 0 exactly where never drawn
    # a sampler's counts past several spills, through state_dict / load_state_dict
    s = ImportanceSampler(ImportanceSamplerConfig(seed=3))
    q = np.array([0.01, 5.0, 5.0])  # index 0 takes almost every draw
    pool = s.prepare(q)
    for _ in range(4):
        s.sample_indices(pool, 60_000)
    counts = s.sample_counts
    assert counts.sum() == 240_000 and counts[0] > 3 * 65_535
    t = ImportanceSampler()
    t.load_state_dict(s.state_dict())
    np.testing.assert_array_equal(t.sample_counts, counts)
    idx2 = s.sample_indices(pool, 1000)
    np.testing.assert_array_equal(t.sample_indices(pool, 1000), idx2)
    np.testing.assert_array_equal(t.sample_counts, counts + np.bincount(idx2, minlength=3))
    assert t.get_statistics() == s.get_statistics()


# ------------------------------------------------------------- determinism and state
def test_same_indices_with_one_and_two_threads(rng):
    q = rng.normal(size=70_000)  # several CHUNKs
    x = np.arange(q.size)
    results = []
    original = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            a = ImportanceSampler(ImportanceSamplerConfig(seed=42))
            b = ImportanceSampler(ImportanceSamplerConfig(seed=42, replacement=False))
            results.append((
                a.sample_indices(q, 20_000),  # parallel block-CDF draws with 2 threads
                a.sample_indices(a.prepare(q), 300_000),  # parallel alias draws
                a.hybrid_sample(x, q, 777)[1],
                b.sample_indices(q, 300),
                a.compute_weights(q),
            ))
    finally:
        numba.set_num_threads(original)
    for r1, r2 in zip(*results):
        np.testing.assert_array_equal(r1, r2)


def test_state_dict_continues_stream(rng):
    q = rng.normal(size=5000)
    x = np.arange(q.size)
    a = ImportanceSampler(ImportanceSamplerConfig(seed=9))
    a.sample_batch(x, q, 100)
    state = a.state_dict()
    expected = [a.sample_batch(x, q, 100)[1], a.hybrid_sample(x, q, 50)[1]]
    b = ImportanceSampler(ImportanceSamplerConfig(seed=12345))
    b.load_state_dict(state)
    assert b.get_statistics()["total_samples"] == 100
    got = [b.sample_batch(x, q, 100)[1], b.hybrid_sample(x, q, 50)[1]]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
    assert b.get_statistics() == a.get_statistics()


@pytest.mark.parametrize("replacement", [True, False])
def test_sample_index_batches_equal_successive_sample_indices(rng, replacement):
    q = rng.normal(size=3000)
    a, b = (ImportanceSampler(ImportanceSamplerConfig(seed=7, replacement=replacement))
            for _ in range(2))
    pool_a, pool_b = a.prepare(q), b.prepare(q)
    one_by_one = np.stack([a.sample_indices(pool_a, 64) for _ in range(5)])
    at_once = b.sample_index_batches(pool_b, 5, 64)
    np.testing.assert_array_equal(at_once, one_by_one)
    assert b.get_statistics() == a.get_statistics()
    np.testing.assert_array_equal(b.sample_indices(pool_b, 64), a.sample_indices(pool_a, 64))
    assert b.sample_index_batches(pool_b, 0, 64).shape == (0, 64)


# ------------------------------------------------------------------------- bad input
def test_bad_input_raises_naming_the_argument():
    x = np.arange(5.0)
    q = np.linspace(0.1, 1.0, 5)
    s = ImportanceSampler(ImportanceSamplerConfig(seed=0))
    with pytest.raises(ValueError, match="q_pool"):
        s.sample_batch(np.empty(0), np.empty(0), 1)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            s.sample_batch(x, q, bad)
    with pytest.raises(TypeError, match="batch_size"):
        s.sample_batch(x, q, 2.5)
    with pytest.raises(ValueError, match="x_pool"):
        s.sample_batch(x[:-1], q, 2)
    with pytest.raises(ValueError, match="batch_size"):
        ImportanceSampler(ImportanceSamplerConfig(replacement=False)).sample_batch(x, q, 6)
    with pytest.raises(ValueError, match="weight_power"):
        ImportanceSamplerConfig(weight_power=-1.0)
    for t in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            ImportanceSamplerConfig(temperature=t)
    with pytest.raises(ValueError, match="max_weight"):
        ImportanceSamplerConfig(max_weight=0.0)
    with pytest.raises(ValueError, match="importance_batch_ratio"):
        ImportanceSamplerConfig(importance_batch_ratio=1.5)
    with pytest.raises(ValueError, match="nan_policy"):
        ImportanceSamplerConfig(nan_policy="ignore")
    with pytest.raises(ValueError, match="q_pool"):
        s.sample_batch(x, np.full(5, np.inf), 2)  # every weight is 0
    pool = s.prepare(q)
    s.config.temperature = 2.0
    with pytest.raises(ValueError, match="q_pool"):
        s.sample_indices(pool, 3)
