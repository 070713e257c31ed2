"""CPU loops of the importance weights and the block-CDF draws (``prange`` over chunks).

One pass gives the block sums of the weights and the per-chunk statistics; the draws map
counter-based uniforms through the block CDF; exponential keys give draws without replacement.
The per-point math is in :mod:`.importance`, the random streams in :mod:`.streams`; see
:mod:`.weights` for the layout. Every parallel kernel has a ``*_serial`` twin with the same
results.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .importance import (
    BLOCK,
    STAT_ABS_MIN,
    STAT_ABS_SUM,
    STAT_FINITE,
    STAT_NAN,
    STAT_POSITIVE,
    block_weights,
    draw_from_block_cdf,
    exponential_key,
    lane_min,
    lane_sum,
)
from .streams import stream_exponential, stream_uniform
from .tags import CHUNK

#: below this many elements of work, the Python layer calls the ``*_serial`` twin of a parallel
#: kernel (same results): waking threads costs more than it saves, and on a busy machine a
#: parallel region waits for a free core (a whole scheduler slice, ~8 ms, measured on a shared
#: 2-core box, against ~25 µs saved on a pass over 65536 points)
PARALLEL_MIN_WORK = 1 << 17


@njit(cache=True, error_model="numpy")
def _chunk_pass(qc, ec, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                wc, write_weights, bsc, stats_row):
    """Block sums, NaN and positive-weight counts of one chunk (slices keep every index
    non-negative, so the loops vectorise)."""
    buf = np.empty(BLOCK, dtype=np.float64)
    n = qc.shape[0]
    n_nan = 0
    n_pos = 0
    for k in range(bsc.shape[0]):
        lo = k * BLOCK
        hi = min(n, lo + BLOCK)
        qb = qc[lo:hi]
        m = block_weights(qb, ec[lo:hi] if use_extra else ec, use_extra, min_q_abs, power,
                          inv_max_weight, inv_temperature, buf)
        if write_weights:
            wb = wc[lo:hi]
            for j in range(m):
                wb[j] = buf[j]
        for j in range(m):
            n_nan += 1 if qb[j] != qb[j] else 0
            n_pos += 1 if buf[j] > 0.0 else 0
        bsc[k] = lane_sum(buf, m)
    stats_row[STAT_NAN] = n_nan
    stats_row[STAT_POSITIVE] = n_pos


@njit(cache=True, error_model="numpy")
def _abs_stats_chunk(qc, stats_row):
    """Sum, min and count of the finite |q| of one chunk."""
    abuf = np.empty(BLOCK, dtype=np.float64)
    n = qc.shape[0]
    n_fin = 0
    abs_sum = 0.0
    abs_min = np.inf
    for lo in range(0, n, BLOCK):
        qb = qc[lo:min(n, lo + BLOCK)]
        m = qb.shape[0]
        for j in range(m):
            a = abs(qb[j])
            fin = a < np.inf
            abuf[j] = a if fin else np.inf
            n_fin += 1 if fin else 0
        abs_min = min(abs_min, lane_min(abuf, m))
        for j in range(m):
            abuf[j] = abuf[j] if abuf[j] < np.inf else 0.0
        abs_sum += lane_sum(abuf, m)
    stats_row[STAT_ABS_SUM] = abs_sum
    stats_row[STAT_ABS_MIN] = abs_min
    stats_row[STAT_FINITE] = n_fin


@njit(cache=True, parallel=True, error_model="numpy")
def abs_stats(q, chunk_stats):
    """Per-chunk sum, min and count of the finite |q| into columns STAT_ABS_SUM, STAT_ABS_MIN
    and STAT_FINITE of ``chunk_stats`` (ceil(N/CHUNK), N_STATS)."""
    n = q.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        _abs_stats_chunk(q[c * CHUNK:min(n, c * CHUNK + CHUNK)], chunk_stats[c])


@njit(cache=True, error_model="numpy")
def abs_stats_serial(q, chunk_stats):
    """Single-threaded :func:`abs_stats`."""
    n = q.shape[0]
    for c in range((n + CHUNK - 1) // CHUNK):
        _abs_stats_chunk(q[c * CHUNK:min(n, c * CHUNK + CHUNK)], chunk_stats[c])


@njit(cache=True, error_model="numpy")
def _pass_chunk(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                weights_out, write_weights, block_sums, chunk_stats, c):
    n = q.shape[0]
    lo = c * CHUNK
    hi = min(n, lo + CHUNK)
    blo = lo // BLOCK
    bhi = (hi + BLOCK - 1) // BLOCK
    _chunk_pass(q[lo:hi], extra[lo:hi] if use_extra else extra, use_extra, min_q_abs,
                power, inv_max_weight, inv_temperature,
                weights_out[lo:hi] if write_weights else weights_out, write_weights,
                block_sums[blo:bhi], chunk_stats[c])


@njit(cache=True, parallel=True, error_model="numpy")
def weight_block_sums(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                      weights_out, write_weights, block_sums, chunk_stats):
    """One pass over q: block sums of the weights, NaN and positive counts (parallel).

    Parameters
    ----------
    q : (N,) float64 or float32
    extra : (N,) float64 per-point factor, read only when ``use_extra`` (else a dummy (1,))
    min_q_abs, power, inv_max_weight, inv_temperature : weight parameters (see
        :func:`importance_weight`)
    weights_out : (N,) float64, written when ``write_weights`` (else a dummy (1,) array)
    block_sums : (ceil(N/BLOCK),) float64, out: :func:`lane_sum` of each block's weights
    chunk_stats : (ceil(N/CHUNK), N_STATS) float64, out: columns STAT_NAN (NaN count) and
        STAT_POSITIVE (positive-weight count); the |q| columns are :func:`abs_stats`' job.

    :func:`weight_block_sums_serial` computes the same values on one thread (small pools).
    """
    for c in prange((q.shape[0] + CHUNK - 1) // CHUNK):
        _pass_chunk(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                    weights_out, write_weights, block_sums, chunk_stats, c)


@njit(cache=True, error_model="numpy")
def weight_block_sums_serial(q, extra, use_extra, min_q_abs, power, inv_max_weight,
                             inv_temperature, weights_out, write_weights, block_sums,
                             chunk_stats):
    """Single-threaded :func:`weight_block_sums` (identical results)."""
    for c in range((q.shape[0] + CHUNK - 1) // CHUNK):
        _pass_chunk(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                    weights_out, write_weights, block_sums, chunk_stats, c)


@njit(cache=True)
def cumulative_sum(values, out):
    """Sequential prefix sum (deterministic), ``out[k] = values[0] + ... + values[k]``.

    Returns the index of the last entry with a positive increment, or -1 if there is none.
    """
    s = 0.0
    last = -1
    for k in range(values.shape[0]):
        v = values[k]
        if v > 0.0:
            s += v
            last = k
        out[k] = s
    return last


@njit(cache=True, parallel=True, error_model="numpy")
def normalise(values, total):
    """``values /= total`` in place (one array, so the loop vectorises)."""
    for i in prange(values.shape[0]):
        values[i] = values[i] / total


@njit(cache=True, error_model="numpy")
def normalise_serial(values, total):
    """Single-threaded :func:`normalise`."""
    for i in range(values.shape[0]):
        values[i] = values[i] / total


@njit(cache=True, error_model="numpy")
def _draw_part(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
               block_cum, last_block, key, out, p, n_parts):
    buf = np.empty(BLOCK, dtype=np.float64)
    total = block_cum[block_cum.shape[0] - 1]
    n_draws = out.shape[0]
    for k in range((p * n_draws) // n_parts, ((p + 1) * n_draws) // n_parts):
        out[k] = draw_from_block_cdf(q, extra, use_extra, min_q_abs, power, inv_max_weight,
                           inv_temperature, block_cum, last_block,
                           stream_uniform(key, k) * total, buf)


@njit(cache=True, parallel=True, error_model="numpy")
def draw_block_cdf(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                   block_cum, last_block, key, out):
    """Inverse-CDF draws with replacement: ``out[k]`` = index whose weight interval holds
    u_k = ``stream_uniform(key, k)``.

    ``block_cum`` is the sequential prefix sum of :func:`weight_block_sums`' block sums and
    ``last_block`` the last block with a positive sum. The chosen block's weights are
    recomputed and scanned; when rounding leaves the target beyond the scan's total, the last
    positive-weight index of the block is taken. Only positive-weight indices are returned, and
    each draw depends on (key, k) alone, so the result does not depend on the thread count
    (:func:`draw_block_cdf_serial` gives the same indices on one thread).
    """
    n_parts = min(out.shape[0], 64)
    for p in prange(n_parts):
        _draw_part(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                   block_cum, last_block, key, out, p, n_parts)


@njit(cache=True, error_model="numpy")
def draw_block_cdf_serial(q, extra, use_extra, min_q_abs, power, inv_max_weight,
                          inv_temperature, block_cum, last_block, key, out):
    """Single-threaded :func:`draw_block_cdf`."""
    _draw_part(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
               block_cum, last_block, key, out, 0, 1)


@njit(cache=True, parallel=True, error_model="numpy")
def exponential_keys(weights, key, out):
    """Keys ``e_i / w_i`` (``inf`` where w_i <= 0) of weighted sampling without replacement,
    with e_i = ``stream_exponential(key, i)``.

    With e_i ~ Exp(1) i.i.d., the k smallest keys, in increasing order, are distributed as k
    successive weighted draws without replacement (Efraimidis & Spirakis).
    """
    for i in prange(weights.shape[0]):
        out[i] = exponential_key(weights[i], stream_exponential(key, i))


@njit(cache=True, error_model="numpy")
def exponential_keys_serial(weights, key, out):
    """Single-threaded :func:`exponential_keys`."""
    for i in range(weights.shape[0]):
        out[i] = exponential_key(weights[i], stream_exponential(key, i))
