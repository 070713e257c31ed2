"""Walker alias tables: the packed table word and the per-draw pick (scalar functions).

One uint64 word per row: the alias index in the high 32 bits, the acceptance probability in
32-bit fixed point in the low bits. Shared by the CPU loops (:mod:`.alias_cpu`) and the CUDA
kernels (:mod:`.weights_cuda`).
"""
from __future__ import annotations

import numpy as np
from numba import njit

#: draws per block of the alias kernels: first every slot of the block is computed, then the
#: table words are loaded in one tight loop (independent loads, so many cache misses are in
#: flight at once), then the choices are made
DRAW_BLOCK = 64
#: draws per task of the parallel alias kernel (a multiple of DRAW_BLOCK)
DRAW_PART = 8192

_FIXED_ONE = 4294967296.0  # 2**32
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_ONE = np.uint64(1)


@njit(cache=True, inline="always")
def pack_alias(prob, alias):
    """One alias-table word: ``alias << 32 | floor(prob · 2**32)`` (saturated below 2**32)."""
    p = prob * _FIXED_ONE
    if p < 1.0:  # also rounding residues below 0
        fixed = np.uint64(0)
    elif p < _FIXED_ONE:
        fixed = np.uint64(p)
    else:
        fixed = _LOW32
    return (np.uint64(alias) << _SHIFT32) | fixed


@njit(cache=True, inline="always")
def leftover_row(weights, i, fallback):
    """Row of a light row left over by rounding: itself with probability 1, or, for a zero
    weight, ``fallback`` with probability 1."""
    if weights[i] > 0.0:
        return pack_alias(1.0, i)
    return pack_alias(0.0, fallback)


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
