"""Importance weights 1/|Q|^p (clipped, tempered) and weighted index draws.

Per-point weight (written once, :func:`importance_weight`)::

    a = max(|q|, min_q_abs);  w = min(a**-p, max_weight) / max_weight;  w = w**(1/T)

The division by ``max_weight`` is a constant factor (it cancels in the normalisation) that keeps
``w**(1/T)`` in (0, 1] for small temperatures instead of overflowing. NaN q gives weight 0 (the
Python layer raises first under ``nan_policy='raise'``). An optional per-point factor ``extra``
(e.g. curriculum weights) multiplies the weight: the draw distribution is then ∝ w·extra.

Deterministic layout (independent of the numba thread count): the pool is cut into blocks of
:data:`BLOCK` points; each block's weight sum is a sequential sum, the block sums are accumulated
sequentially into ``block_cum``. A draw maps a uniform u to ``t = u·total``, binary-searches the
block and rescans that block (recomputing the weights, bit-identical to the first pass). The
prepared form builds a Walker/Vose alias table once: O(1) per draw.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .tags import CHUNK

#: points per block of the block CDF (divides CHUNK)
BLOCK = 128
_BLOCKS_PER_CHUNK = CHUNK // BLOCK

#: columns of the per-chunk statistics returned by :func:`weight_block_sums`
STAT_NAN, STAT_POSITIVE, STAT_ABS_SUM, STAT_ABS_MIN, STAT_FINITE = 0, 1, 2, 3, 4
N_STATS = 5

#: structured dtype of an alias table row (one cache line holds both fields of a row)
ALIAS_DTYPE = np.dtype([("prob", np.float64), ("alias", np.int64)])


@njit(cache=True, inline="always", error_model="numpy")
def importance_weight(q, min_q_abs, power, max_weight, inv_temperature):
    """Unnormalised importance weight of one Q value, in [0, 1] (NaN q -> 0).

    ``min(max(|q|, min_q_abs)**-power, max_weight) / max_weight``, raised to ``inv_temperature``
    when it is not 1. ``power`` 2, 1 and 0 avoid ``pow``.
    """
    a = abs(q)
    if a != a:
        return 0.0
    if a < min_q_abs:
        a = min_q_abs
    if power == 2.0:
        w = 1.0 / (a * a)
    elif power == 1.0:
        w = 1.0 / a
    elif power == 0.0:
        w = 1.0
    else:
        w = a ** (-power)
    if w > max_weight:
        w = max_weight
    w = w / max_weight
    if inv_temperature != 1.0:
        w = w ** inv_temperature
    return w


@njit(cache=True, inline="always", error_model="numpy")
def _weight_at(q, extra, use_extra, i, min_q_abs, power, max_weight, inv_temperature):
    w = importance_weight(q[i], min_q_abs, power, max_weight, inv_temperature)
    if use_extra:
        e = extra[i]
        if e > 0.0:  # NaN and negative factors count as 0
            w = w * e
        else:
            w = 0.0
    return w


@njit(cache=True, parallel=True, error_model="numpy")
def weight_block_sums(q, extra, use_extra, min_q_abs, power, max_weight, inv_temperature,
                      weights_out, write_weights, block_sums, chunk_stats):
    """One pass over q: block sums of the weights and per-chunk statistics.

    Parameters
    ----------
    q : (N,) float64 or float32
    extra : (N,) float64 per-point factor, read only when ``use_extra``
    weights_out : (N,) float64, written when ``write_weights`` (else may be a dummy (1,) array)
    block_sums : (ceil(N/BLOCK),) float64, out
    chunk_stats : (ceil(N/CHUNK), N_STATS) float64, out: NaN count, positive-weight count,
        sum and min of the finite |q|, finite count.
    """
    n = q.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        n_nan = 0.0
        n_pos = 0.0
        abs_sum = 0.0
        abs_min = np.inf
        n_fin = 0.0
        b = lo // BLOCK
        for blo in range(lo, hi, BLOCK):
            bhi = min(hi, blo + BLOCK)
            s = 0.0
            for i in range(blo, bhi):
                qi = q[i]
                a = abs(qi)
                if a != a:
                    n_nan += 1.0
                elif a < np.inf:
                    abs_sum += a
                    n_fin += 1.0
                    if a < abs_min:
                        abs_min = a
                w = _weight_at(q, extra, use_extra, i, min_q_abs, power, max_weight,
                               inv_temperature)
                if write_weights:
                    weights_out[i] = w
                if w > 0.0:
                    n_pos += 1.0
                    s += w
            block_sums[b] = s
            b += 1
        chunk_stats[c, STAT_NAN] = n_nan
        chunk_stats[c, STAT_POSITIVE] = n_pos
        chunk_stats[c, STAT_ABS_SUM] = abs_sum
        chunk_stats[c, STAT_ABS_MIN] = abs_min
        chunk_stats[c, STAT_FINITE] = n_fin


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


@njit(cache=True, parallel=True)
def normalise(values, total, out):
    """``out = values / total`` (``out`` may be ``values``)."""
    for i in prange(values.shape[0]):
        out[i] = values[i] / total


@njit(cache=True, inline="always")
def _upper_bound(sorted_values, t):
    """First index k with sorted_values[k] > t (len if none)."""
    lo = 0
    hi = sorted_values.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_values[mid] > t:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, parallel=True, error_model="numpy")
def draw_block_cdf(q, extra, use_extra, min_q_abs, power, max_weight, inv_temperature,
                   block_cum, last_block, u, out):
    """Inverse-CDF draws with replacement: ``out[k]`` = index whose weight interval holds u[k].

    ``block_cum`` is the sequential prefix sum of :func:`weight_block_sums`' block sums and
    ``last_block`` the last block with a positive sum. Only positive-weight indices are returned.
    Each draw depends on u[k] alone, so the result does not depend on the thread count.
    """
    n = q.shape[0]
    nb = block_cum.shape[0]
    total = block_cum[nb - 1]
    for k in prange(u.shape[0]):
        t = u[k] * total
        b = _upper_bound(block_cum, t)
        if b >= nb:
            b = last_block
        prev = 0.0
        if b > 0:
            prev = block_cum[b - 1]
        target = t - prev
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        run = 0.0
        chosen = -1
        last_pos = -1
        for i in range(lo, hi):
            w = _weight_at(q, extra, use_extra, i, min_q_abs, power, max_weight,
                           inv_temperature)
            if w > 0.0:
                last_pos = i
                run += w
                if run > target:
                    chosen = i
                    break
        if chosen < 0:
            chosen = last_pos
        out[k] = chosen


@njit(cache=True, error_model="numpy")
def build_alias_table(weights, total, fallback, prob, alias):
    """Walker/Vose alias table of ``weights`` (sum ``total`` > 0).

    ``prob`` (float64) and ``alias`` (int64) are (N,) outputs, e.g. the field views of an
    ALIAS_DTYPE array. Zero weights get ``prob = 0`` (never chosen
    directly); ``fallback`` (a positive-weight index) absorbs rounding leftovers of such rows.
    Sequential O(N), deterministic.
    """
    n = weights.shape[0]
    scaled = np.empty(n, dtype=np.float64)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    f = n / total
    for i in range(n):
        s = weights[i] * f
        scaled[i] = s
        if s < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        nl -= 1
        g = large[nl]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            small[ns] = g
            ns += 1
        else:
            large[nl] = g
            nl += 1
    while nl > 0:
        nl -= 1
        g = large[nl]
        prob[g] = 1.0
        alias[g] = g
    while ns > 0:
        ns -= 1
        s = small[ns]
        if weights[s] > 0.0:
            prob[s] = 1.0
            alias[s] = s
        else:
            prob[s] = 0.0
            alias[s] = fallback


@njit(cache=True, parallel=True)
def draw_alias(prob, alias, u, out):
    """O(1) draws from an alias table: j = floor(u·N), keep j if frac < prob[j] else alias[j].

    ``prob`` and ``alias`` may be the (strided) field views of an ALIAS_DTYPE array.
    """
    n = prob.shape[0]
    for k in prange(u.shape[0]):
        x = u[k] * n
        j = int(x)
        if j >= n:
            j = n - 1
        if x - j < prob[j]:
            out[k] = j
        else:
            out[k] = alias[j]


@njit(cache=True, parallel=True, error_model="numpy")
def exponential_keys(weights, e, out):
    """Keys ``e_i / w_i`` (``inf`` where w_i <= 0) of weighted sampling without replacement.

    With e_i ~ Exp(1) i.i.d., the k smallest keys, in increasing order, are distributed as k
    successive weighted draws without replacement (Efraimidis & Spirakis).
    """
    for i in prange(weights.shape[0]):
        w = weights[i]
        if w > 0.0:
            out[i] = e[i] / w
        else:
            out[i] = math.inf


@njit(cache=True)
def accumulate_counts(counts, idx):
    """``counts[idx[k]] += 1`` for every k; returns how many entries went from 0 to 1."""
    new = 0
    for k in range(idx.shape[0]):
        j = idx[k]
        if counts[j] == 0:
            new += 1
        counts[j] += 1
    return new
