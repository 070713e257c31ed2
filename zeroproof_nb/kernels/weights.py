"""Importance weights 1/|Q|^p (clipped, tempered) and weighted index draws.

Per-point weight (written once, :func:`importance_weight`)::

    a = max(|q|, min_q_abs);  w = min(a**-p / max_weight, 1);  w = w**(1/T)

i.e. upstream's ``min(a**-p, max_weight)**(1/T)`` times the constant ``max_weight**(-1/T)``,
which cancels in the normalisation and keeps ``w**(1/T)`` in [0, 1] for small temperatures
instead of overflowing. NaN q gives weight 0 (the
Python layer raises first under ``nan_policy='raise'``). An optional per-point factor ``extra``
(e.g. curriculum weights) multiplies the weight: the draw distribution is then ∝ w·extra.

Deterministic layout (independent of the numba thread count): the pool is cut into blocks of
:data:`BLOCK` points; each block's weight sum is a fixed-order :func:`lane_sum`, and the block
sums are accumulated sequentially into ``block_cum``. A draw maps a uniform u to
``t = u·total``, binary-searches the block and rescans it (recomputing the same per-point
weights). Kernels index through slices so that numba can drop negative-index wraparound and
vectorise the loops. The prepared form builds a Walker alias table once (one uint64 word per
point, by a two-cursor sweep): O(1) per draw.

Random numbers: every draw kernel takes a 64-bit ``key`` (drawn once per batch from the
sampler's ``numpy.random.Generator``) and computes its uniforms itself from a counter-based
stream: uniform number k of a batch is SplitMix64's output k for the seed ``key``
(:func:`stream_bits`), a pure function of (key, k). So any partition of the draws over threads
gives the same indices, and no array of uniforms is generated or stored.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .tags import CHUNK

#: points per block of the block CDF (divides CHUNK)
BLOCK = 128
_BLOCKS_PER_CHUNK = CHUNK // BLOCK

#: columns of the per-chunk statistics (:func:`weight_block_sums`, :func:`abs_stats`)
STAT_NAN, STAT_POSITIVE, STAT_ABS_SUM, STAT_ABS_MIN, STAT_FINITE = 0, 1, 2, 3, 4
N_STATS = 5

#: below this many elements of work, the Python layer calls the ``*_serial`` twin of a parallel
#: kernel (same results): waking threads costs more than it saves, and on a busy machine a
#: parallel region waits for a free core (a whole scheduler slice, ~8 ms, measured on a shared
#: 2-core box, against ~25 µs saved on a pass over 65536 points)
PARALLEL_MIN_WORK = 1 << 17

#: draws per block of the alias kernels: first every slot of the block is computed, then the
#: table words are loaded in one tight loop (independent loads, so many cache misses are in
#: flight at once), then the choices are made
DRAW_BLOCK = 64
#: draws per task of the parallel alias kernel (a multiple of DRAW_BLOCK)
DRAW_PART = 8192

# SplitMix64 (Steele, Lea & Flood 2014): state += gamma, output = mix(state)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_ONE = np.uint64(1)
_INV_2_53 = 2.0 ** -53


@njit(cache=True, inline="always")
def stream_bits(key, k):
    """Random 64-bit word number k (k >= 0) of the stream ``key`` (both uint64 / int).

    SplitMix64's k-th output for the seed ``key``: ``mix(key + (k + 1)·γ)`` with
    γ = 0x9E3779B97F4A7C15 and Stafford's mix13 finaliser, all modulo 2**64. A pure function
    of (key, k): draws can be computed in any order and on any thread.
    """
    z = key + (np.uint64(k) + _ONE) * _GAMMA
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def stream_uniform(key, k):
    """Uniform double in [0, 1) number k of the stream ``key``: the top 53 bits of
    :func:`stream_bits` times 2**-53 (the construction of NumPy's ``Generator.random``)."""
    return np.float64(stream_bits(key, k) >> _S11) * _INV_2_53


@njit(cache=True, inline="always")
def stream_exponential(key, k):
    """Standard exponential number k of the stream ``key``: ``-log(1 - u)`` with u =
    :func:`stream_uniform` (1 − u is exact, in (0, 1]; the result is at most 53·ln 2)."""
    return -math.log(1.0 - stream_uniform(key, k))


@njit(cache=True, inline="always", error_model="numpy")
def clamp_abs(q, min_q_abs):
    """``max(|q|, min_q_abs)`` (NaN stays NaN)."""
    a = abs(q)
    if a < min_q_abs:
        a = min_q_abs
    return a


@njit(cache=True, inline="always", error_model="numpy")
def power_weight(a, power, inv_max_weight):
    """``a**-power / max_weight``; powers 2, 1 and 0 avoid ``pow``."""
    if power == 2.0:
        return inv_max_weight / (a * a)
    if power == 1.0:
        return inv_max_weight / a
    if power == 0.0:
        return inv_max_weight
    return inv_max_weight * a ** (-power)


@njit(cache=True, inline="always", error_model="numpy")
def cap_and_temper(w, inv_temperature):
    """``min(w, 1) ** inv_temperature``, with NaN mapped to 0."""
    if w > 1.0:
        w = 1.0
    if inv_temperature != 1.0:
        w = w ** inv_temperature
    if w != w:
        w = 0.0
    return w


@njit(cache=True, inline="always", error_model="numpy")
def importance_weight(q, min_q_abs, power, inv_max_weight, inv_temperature):
    """Unnormalised importance weight of one Q value, in [0, 1] (NaN q -> 0).

    ``min(max(|q|, min_q_abs)**-power / max_weight, 1) ** inv_temperature``, i.e. upstream's
    ``min(a**-p, max_weight)**(1/T)`` divided by the constant ``max_weight**(1/T)``.
    """
    return cap_and_temper(power_weight(clamp_abs(q, min_q_abs), power, inv_max_weight),
                          inv_temperature)


@njit(cache=True, inline="always", error_model="numpy")
def extra_factor(w, e):
    """The weight ``w`` times the per-point factor ``e`` (0 where e <= 0 or NaN)."""
    return w * e if e > 0.0 else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def block_weights(qb, eb, use_extra, min_q_abs, power, inv_max_weight, inv_temperature, buf):
    """:func:`importance_weight` of every entry of the slice ``qb`` into ``buf[:len(qb)]``.

    The same per-point functions, applied step by step so that the branches on ``power`` and
    ``inv_temperature`` sit outside the loops (the loops vectorise). ``eb`` (a slice of the
    per-point factors) multiplies the weights when ``use_extra``; factors <= 0 or NaN give 0.
    Returns ``len(qb)``.
    """
    m = qb.shape[0]
    for j in range(m):
        buf[j] = clamp_abs(qb[j], min_q_abs)
    if power == 2.0:
        for j in range(m):
            buf[j] = power_weight(buf[j], 2.0, inv_max_weight)
    elif power == 1.0:
        for j in range(m):
            buf[j] = power_weight(buf[j], 1.0, inv_max_weight)
    elif power == 0.0:
        for j in range(m):
            buf[j] = power_weight(buf[j], 0.0, inv_max_weight)
    else:
        for j in range(m):
            buf[j] = power_weight(buf[j], power, inv_max_weight)
    if inv_temperature == 1.0:
        for j in range(m):
            buf[j] = cap_and_temper(buf[j], 1.0)
    else:
        for j in range(m):
            buf[j] = cap_and_temper(buf[j], inv_temperature)
    if use_extra:
        for j in range(m):
            buf[j] = extra_factor(buf[j], eb[j])
    return m


@njit(cache=True, inline="always")
def lane_sum(buf, m):
    """Sum of ``buf[:m]`` in a fixed order: four interleaved partial sums, then a pairwise
    combination (independent of the thread count, and faster than one sequential chain)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    j = 0
    while j + 4 <= m:
        s0 += buf[j]
        s1 += buf[j + 1]
        s2 += buf[j + 2]
        s3 += buf[j + 3]
        j += 4
    while j < m:
        s0 += buf[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, inline="always")
def lane_min(buf, m):
    """Minimum of ``buf[:m]`` (NaN-free input) with four interleaved partial minima."""
    s0 = np.inf
    s1 = np.inf
    s2 = np.inf
    s3 = np.inf
    j = 0
    while j + 4 <= m:
        s0 = min(s0, buf[j])
        s1 = min(s1, buf[j + 1])
        s2 = min(s2, buf[j + 2])
        s3 = min(s3, buf[j + 3])
        j += 4
    while j < m:
        s0 = min(s0, buf[j])
        j += 1
    return min(min(s0, s1), min(s2, s3))


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


@njit(cache=True, error_model="numpy")
def draw_from_block_cdf(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                        block_cum, last_block, t, buf):
    """The index whose weight interval holds ``t`` in [0, total): the block by binary search of
    ``block_cum``, then a rescan of that block's weights into ``buf`` (BLOCK float64 scratch).
    One draw, no allocation: the CPU and CUDA draw kernels both call it."""
    nb = block_cum.shape[0]
    b = _upper_bound(block_cum, t)
    if b >= nb:
        b = last_block
    prev = 0.0
    if b > 0:
        prev = block_cum[b - 1]
    target = t - prev
    lo = b * BLOCK
    hi = min(q.shape[0], lo + BLOCK)
    m = block_weights(q[lo:hi], extra[lo:hi] if use_extra else extra, use_extra, min_q_abs,
                      power, inv_max_weight, inv_temperature, buf)
    run = 0.0
    last_pos = -1
    for j in range(m):
        w = buf[j]
        if w > 0.0:
            last_pos = j
            run += w
            if run > target:
                return lo + j
    return lo + last_pos


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


_FIXED_ONE = 4294967296.0  # 2**32
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


@njit(cache=True, inline="always")
def _pack_alias(prob, alias):
    """One alias-table word: ``alias << 32 | floor(prob · 2**32)`` (saturated below 2**32)."""
    p = prob * _FIXED_ONE
    if p < 1.0:  # also rounding residues below 0
        fixed = np.uint64(0)
    elif p < _FIXED_ONE:
        fixed = np.uint64(p)
    else:
        fixed = _LOW32
    return (np.uint64(alias) << _SHIFT32) | fixed


@njit(cache=True, error_model="numpy")
def build_alias_table(weights, total, fallback, table):
    """Walker alias table of ``weights`` (sum ``total`` > 0; N < 2**32), by a sweep.

    ``table`` is an (N,) uint64 output, one word per row (:func:`_pack_alias`): the alias
    index in the high 32 bits, the acceptance probability in 32-bit fixed point in the low bits
    (draw probabilities exact to 2**-32 per row; half the memory of a float64 + int64 table, so
    random draws miss the cache less).

    With scaled weights s_i = w_i·N/total (mean 1), the rows are first split, without
    branches, into a light list (s < 1) and a heavy list (s >= 1), both in index order. Then one
    sweep: each light row keeps s_i and takes the current heavy row as its alias, whose residual
    drops by 1 − s_i; a heavy row whose residual falls below 1 becomes a light row at once (it
    keeps the residual and takes the next heavy row as its alias). O(N), deterministic. Rows
    left when the other kind runs out (rounding) get probability 1 and alias themselves; zero
    weights left over get probability 0 and alias ``fallback`` (a positive-weight index).
    """
    n = weights.shape[0]
    scale = n / total
    light = np.empty(n, dtype=np.uint32)
    heavy = np.empty(n, dtype=np.uint32)
    n_light = 0
    n_heavy = 0
    for i in range(n):
        is_light = weights[i] * scale < 1.0
        light[n_light] = i
        heavy[n_heavy] = i
        n_light += 1 if is_light else 0
        n_heavy += 0 if is_light else 1
    if n_heavy == 0:  # rounding left no heavy row
        for t in range(n_light):
            table[light[t]] = _leftover_row(weights, light[t], fallback)
        return
    a = 0  # next light row
    b = 0  # position of the current heavy row in the heavy list
    h = heavy[0]
    r = weights[h] * scale  # residual of the current heavy row
    while a < n_light:
        i = light[a]
        s = weights[i] * scale
        table[i] = _pack_alias(s, h)
        r += s - 1.0
        a += 1
        while r < 1.0:  # used up: light now, aliasing the next heavy row
            b += 1
            if b >= n_heavy:
                break
            g = heavy[b]
            table[h] = _pack_alias(r, g)
            r += weights[g] * scale - 1.0
            h = g
        if b >= n_heavy:
            break
    if b >= n_heavy:  # no heavy row left: h and the light rows not reached are leftovers
        table[h] = _pack_alias(1.0, h)
        for t in range(a, n_light):
            table[light[t]] = _leftover_row(weights, light[t], fallback)
    else:  # the current heavy row keeps what is left, as do those never reached
        for t in range(b, n_heavy):
            table[heavy[t]] = _pack_alias(1.0, heavy[t])


@njit(cache=True, inline="always")
def _leftover_row(weights, i, fallback):
    """Row of a light row left over by rounding: itself with probability 1, or, for a zero
    weight, ``fallback`` with probability 1."""
    if weights[i] > 0.0:
        return _pack_alias(1.0, i)
    return _pack_alias(0.0, fallback)


@njit(cache=True, inline="always")
def alias_slot(n_rows, u):
    """Row and fraction of a uniform u in [0, 1) for a table of ``n_rows`` rows:
    x = u·n_rows, row = floor(x) (clamped below n_rows), frac = x − row. Returns
    (row as uint64, frac)."""
    x = u * n_rows
    j = min(np.uint64(x), np.uint64(n_rows) - _ONE)
    return j, x - np.float64(j)


@njit(cache=True, inline="always")
def alias_pick(row, frac, word):
    """Index chosen in ``row`` (table word ``word``): the row itself if frac < its acceptance
    probability, else its alias (a select, not a branch)."""
    keep = np.int64(frac * _FIXED_ONE) < np.int64(word & _LOW32)
    return np.int64(row) if keep else np.int64(word >> _SHIFT32)


@njit(cache=True)
def _alias_range(table, key, out, lo, hi, rows, fracs, words):
    """Draws lo..hi-1 of the stream into ``out[lo:hi]``, DRAW_BLOCK at a time (the buffers
    hold DRAW_BLOCK entries). The table loads of a block are independent (unsigned rows: no
    wraparound branch), so their cache misses overlap; a loop that loads and picks in one step
    runs ~5x slower on a table larger than the cache."""
    n_rows = table.shape[0]
    for a in range(lo, hi, DRAW_BLOCK):
        m = min(DRAW_BLOCK, hi - a)
        for t in range(m):
            rows[t], fracs[t] = alias_slot(n_rows, stream_uniform(key, a + t))
        for t in range(m):
            words[t] = table[rows[t]]
        for t in range(m):
            out[a + t] = alias_pick(rows[t], fracs[t], words[t])


@njit(cache=True)
def _alias_part(table, key, out, lo, hi):
    rows = np.empty(DRAW_BLOCK, dtype=np.uint64)
    fracs = np.empty(DRAW_BLOCK, dtype=np.float64)
    words = np.empty(DRAW_BLOCK, dtype=np.uint64)
    _alias_range(table, key, out, lo, hi, rows, fracs, words)


#: largest value of a low count word; reaching it moves SPILL to the high counts
LOW_COUNT_MAX = 65535
SPILL = 32768
_LOW_MAX_U16 = np.uint16(LOW_COUNT_MAX)
_AFTER_SPILL_U16 = np.uint16(LOW_COUNT_MAX - SPILL)
_ONE_U16 = np.uint16(1)
_ZERO_U16 = np.uint16(0)


@njit(cache=True)
def _count_all(low, high, idx):
    """Add one draw of every index of ``idx`` to the two-level counts; returns how many
    indices were drawn for the first time.

    The count of j is ``high[j] + low[j]``: ``low`` (uint16, 2 bytes per point) takes every
    update, so the random updates of a batch touch a quarter of the memory of int64 counts;
    when a low word is full, SPILL of it moves to ``high`` (int64, touched at most once per
    32768 draws of j). A low word is 0 only if j was never drawn, so new indices are found
    without reading ``high``. (The update is written in this loop, not in an inlined helper
    taking the arrays: numba would then count array references on every iteration.)
    """
    new = 0
    for k in range(idx.shape[0]):
        j = np.uint64(idx[k])  # unsigned: no wraparound branch (indices are valid)
        c = low[j]
        if c == _LOW_MAX_U16:
            high[j] += SPILL
            c = _AFTER_SPILL_U16  # a uint16 constant: c keeps one type
        low[j] = c + _ONE_U16
        new += 1 if c == _ZERO_U16 else 0
    return new


@njit(cache=True)
def _count_range(low, high, idx, lo, hi):
    """:func:`_count_all` restricted to the indices in [lo, hi): each chunk of ``idx`` is
    first compacted to its in-range entries (no branch), then counted."""
    buf = np.empty(DRAW_BLOCK * 16, dtype=np.int64)
    width = np.uint64(hi - lo)
    ulo = np.uint64(lo)
    n = idx.shape[0]
    new = 0
    for a in range(0, n, buf.shape[0]):
        m = 0
        for k in range(a, min(n, a + buf.shape[0])):
            j = idx[k]
            buf[m] = j
            m += 1 if np.uint64(j) - ulo < width else 0  # unsigned: below lo wraps around
        new += _count_all(low, high, buf[:m])
    return new


@njit(cache=True, parallel=True)
def accumulate_counts(low, high, idx, n_parts):
    """Add every index of ``idx`` to the two-level counts ``high + low`` (:func:`_bump`;
    ``low`` uint16, ``high`` int64, both at least max(idx) + 1 long); returns how many indices
    were drawn for the first time.

    Parallel over ``n_parts`` disjoint index ranges (pass the thread count), each scanning all
    of ``idx``: integer counts, so the result is the same for any ``n_parts`` and thread count
    (:func:`accumulate_counts_serial` on one thread).
    """
    n = low.shape[0]
    new = np.zeros(n_parts, dtype=np.int64)
    for p in prange(n_parts):
        new[p] = _count_range(low, high, idx, (p * n) // n_parts, ((p + 1) * n) // n_parts)
    return new.sum()


@njit(cache=True)
def accumulate_counts_serial(low, high, idx, n_parts=1):
    """Single-threaded :func:`accumulate_counts`."""
    return _count_all(low, high, idx)


@njit(cache=True, parallel=True)
def draw_alias(table, key, out, low, high, track, n_parts):
    """Alias-method draws with replacement, optionally counted.

    ``out[k]`` is the index drawn by u_k = ``stream_uniform(key, k)``: row j = floor(u_k·N),
    kept if the fraction is below the row's acceptance probability, else its alias. O(1) per
    draw; the draws run in parallel tasks of DRAW_PART. With ``track`` the draws are added to
    the two-level counts as in :func:`accumulate_counts` (``n_parts`` ranges) and the number of
    indices drawn for the first time is returned (else 0). Indices and counts do not depend on
    the thread count (:func:`draw_alias_serial` gives the same on one thread).
    """
    n_draws = out.shape[0]
    for p in prange((n_draws + DRAW_PART - 1) // DRAW_PART):
        _alias_part(table, key, out, p * DRAW_PART, min(n_draws, (p + 1) * DRAW_PART))
    if not track:
        return 0
    n = low.shape[0]
    new = np.zeros(n_parts, dtype=np.int64)
    for p in prange(n_parts):
        new[p] = _count_range(low, high, out, (p * n) // n_parts, ((p + 1) * n) // n_parts)
    return new.sum()


@njit(cache=True)
def draw_alias_serial(table, key, out, low, high, track, n_parts=1):
    """Single-threaded :func:`draw_alias` (one call draws and counts a batch)."""
    _alias_part(table, key, out, 0, out.shape[0])
    if not track:
        return 0
    return _count_all(low, high, out)


@njit(cache=True)
def draw_alias_batches(table, keys, out, low, high, track):
    """Row b of ``out`` (n_batches, B) = what :func:`draw_alias_serial` draws with key
    ``keys[b]``; with ``track``, all draws are counted. Returns the number of new indices."""
    for b in range(keys.shape[0]):
        _alias_part(table, keys[b], out[b], 0, out.shape[1])
    if not track:
        return 0
    return _count_all(low, high, out.reshape(-1))


@njit(cache=True, inline="always", error_model="numpy")
def exponential_key(w, e):
    """Key ``e / w`` of weighted sampling without replacement (``inf`` where w <= 0)."""
    if w > 0.0:
        return e / w
    return math.inf


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
