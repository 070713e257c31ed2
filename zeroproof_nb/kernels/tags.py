"""Tag codes, the per-point transreal quotient, and tag counting.

Tag codes are ``uint8``: REAL=0, PINF=1, NINF=2, PHI=3. Non-REAL values are stored as their IEEE
equivalent (+inf, -inf, NaN) unless a tag policy keeps a finite value (see ``rational``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

REAL = 0
PINF = 1
NINF = 2
PHI = 3
N_TAGS = 4

#: chunk length used by every deterministic reduction (independent of the thread count)
CHUNK = 16384


@njit(cache=True, inline="always")
def real_div(p, q):
    """Transreal quotient of two REAL (possibly overflowed / NaN) numbers.

    Returns ``(value, tag)``: Q != 0 gives REAL p/q unless it overflows (then +-inf by the sign
    rule ``(p >= 0) == (q >= 0)``); Q == +-0 gives sign(p)*sign(q)*inf using the IEEE sign of the
    zero, and PHI when p == 0; NaN in p or q, and inf/inf, give PHI; finite/inf gives +0.
    """
    if math.isnan(p) or math.isnan(q):
        return math.nan, PHI
    if math.isinf(q):
        if math.isinf(p):
            return math.nan, PHI
        return 0.0, REAL
    if q == 0.0:
        if p == 0.0:
            return math.nan, PHI
        if (p > 0.0) == (math.copysign(1.0, q) > 0.0):
            return math.inf, PINF
        return -math.inf, NINF
    v = p / q
    if math.isinf(v):
        if (p >= 0.0) == (q >= 0.0):
            return math.inf, PINF
        return -math.inf, NINF
    return v, REAL


@njit(cache=True, inline="always")
def tag_bin(t):
    """Column of tag code ``t`` in a count row: the code for REAL..PHI, ``N_TAGS`` for an
    invalid code."""
    return t if t < N_TAGS else N_TAGS


@njit(cache=True)
def _count_chunk(tags, lo, hi, out_row):
    for i in range(lo, hi):
        out_row[tag_bin(tags[i])] += 1


@njit(cache=True, parallel=True)
def count_tags_flat(tags):
    """Counts of REAL, PINF, NINF, PHI and invalid codes in a 1-D uint8 array, shape (5,)."""
    n = tags.shape[0]
    n_chunks = max(1, (n + CHUNK - 1) // CHUNK)
    partial = np.zeros((n_chunks, N_TAGS + 1), dtype=np.int64)
    for c in prange(n_chunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        _count_chunk(tags, lo, hi, partial[c])
    out = np.zeros(N_TAGS + 1, dtype=np.int64)
    for c in range(n_chunks):
        for k in range(N_TAGS + 1):
            out[k] += partial[c, k]
    return out


@njit(cache=True, parallel=True)
def count_tags_rows(tags2d):
    """Per-row counts of a (R, n) uint8 array, shape (R, 5)."""
    r = tags2d.shape[0]
    out = np.zeros((r, N_TAGS + 1), dtype=np.int64)
    for i in prange(r):
        _count_chunk(tags2d[i], 0, tags2d.shape[1], out[i])
    return out
