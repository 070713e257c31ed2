"""The bandwidth bound of the forward pass: a parallel copy of the same bytes.

Used by the benchmarks as the floor of any kernel that reads x and writes a transreal value and
tag per point: 8 (or 4) bytes in, 9 (or 5) out.
"""
from __future__ import annotations

from numba import njit, prange


@njit(cache=True, parallel=True)
def copy_value_tag(x, val, tag):  # pragma: no cover - compiled
    """``val[i] = x[i]; tag[i] = 0`` over every i, in parallel."""
    for i in prange(x.shape[0]):
        val[i] = x[i]
        tag[i] = 0
