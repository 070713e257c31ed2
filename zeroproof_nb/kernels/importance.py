"""Importance weights 1/|Q|^p (clipped, tempered) and the block-CDF draw: scalar functions.

The per-point and per-block functions that the CPU loops (:mod:`.importance_cpu`) and the CUDA
kernels (:mod:`.weights_cuda`) share; see :mod:`.weights` for the formulas and the layout.
No ``prange``, no allocation: each compiles for both targets.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .tags import CHUNK

#: points per block of the block CDF (divides CHUNK)
BLOCK = 128
_BLOCKS_PER_CHUNK = CHUNK // BLOCK

#: columns of the per-chunk statistics (:func:`weight_block_sums`, :func:`abs_stats`)
STAT_NAN, STAT_POSITIVE, STAT_ABS_SUM, STAT_ABS_MIN, STAT_FINITE = 0, 1, 2, 3, 4
N_STATS = 5


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


@njit(cache=True, inline="always", error_model="numpy")
def exponential_key(w, e):
    """Key ``e / w`` of weighted sampling without replacement (``inf`` where w <= 0)."""
    if w > 0.0:
        return e / w
    return math.inf
