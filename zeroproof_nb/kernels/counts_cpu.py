"""Two-level draw counts (uint16 low words spilling into int64 high words), CPU loops."""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .alias import DRAW_BLOCK

#: largest value of a low count word; reaching it moves SPILL to the high counts
LOW_COUNT_MAX = 65535
SPILL = 32768
_LOW_MAX_U16 = np.uint16(LOW_COUNT_MAX)
_AFTER_SPILL_U16 = np.uint16(LOW_COUNT_MAX - SPILL)
_ONE_U16 = np.uint16(1)
_ZERO_U16 = np.uint16(0)


@njit(cache=True)
def count_all(low, high, idx):
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
def count_range(low, high, idx, lo, hi):
    """:func:`count_all` restricted to the indices in [lo, hi): each chunk of ``idx`` is
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
        new += count_all(low, high, buf[:m])
    return new


@njit(cache=True, parallel=True)
def accumulate_counts(low, high, idx, n_parts):
    """Add every index of ``idx`` to the two-level counts ``high + low`` (:func:`count_all`;
    ``low`` uint16, ``high`` int64, both at least max(idx) + 1 long); returns how many indices
    were drawn for the first time.

    Parallel over ``n_parts`` disjoint index ranges (pass the thread count), each scanning all
    of ``idx``: integer counts, so the result is the same for any ``n_parts`` and thread count
    (:func:`accumulate_counts_serial` on one thread).
    """
    n = low.shape[0]
    new = np.zeros(n_parts, dtype=np.int64)
    for p in prange(n_parts):
        new[p] = count_range(low, high, idx, (p * n) // n_parts, ((p + 1) * n) // n_parts)
    return new.sum()


@njit(cache=True)
def accumulate_counts_serial(low, high, idx, n_parts=1):
    """Single-threaded :func:`accumulate_counts`."""
    return count_all(low, high, idx)
