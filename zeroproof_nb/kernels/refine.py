"""Cell splitting for the active sampler's adaptive grid, and uniform points inside cells.

A grid is a structured array of axis-aligned cells (see :func:`cell_dtype`). Splitting a cell
cuts each axis into ``per_axis`` equal parts, giving ``per_axis**d`` children that tile the
parent; children get ``level + 1``, an unknown ``q_abs`` (NaN) and ``refined = False``, and the
parent is marked ``refined`` (it is never split again). Kernels receive the field views of the
structured array (strided arrays), so they write into the grid in place.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


def cell_dtype(dim: int) -> np.dtype:
    """Structured dtype of one grid cell in ``dim`` dimensions.

    Fields: ``center`` (dim,) float64, ``half_width`` (dim,) float64, ``level`` int32,
    ``q_abs`` float64 (last |Q| at the centre, NaN when unknown), ``refined`` bool.
    """
    return np.dtype(
        [
            ("center", np.float64, (dim,)),
            ("half_width", np.float64, (dim,)),
            ("level", np.int32),
            ("q_abs", np.float64),
            ("refined", np.bool_),
        ]
    )


@njit(cache=True, inline="always")
def child_center(center, half_width, digit, per_axis):
    """Centre of part ``digit`` (0-based) of ``per_axis`` equal parts of [c - h, c + h]."""
    return center - half_width + (2.0 * digit + 1.0) * (half_width / per_axis)


@njit(cache=True, parallel=True)
def split_cells(center, half_width, level, q_abs, refined, parents, per_axis, start):
    """Split ``parents`` (indices of cells) in place.

    Parent p's children occupy rows ``start + p*per_axis**d ... + per_axis**d - 1``; child j has
    axis digits ``j = sum_ax digit_ax * per_axis**ax``. The arrays must have room for them.
    """
    d = center.shape[1]
    n_children = per_axis ** d
    for p in prange(parents.shape[0]):
        src = parents[p]
        base = start + p * n_children
        for j in range(n_children):
            dst = base + j
            r = j
            for ax in range(d):
                digit = r % per_axis
                r //= per_axis
                center[dst, ax] = child_center(center[src, ax], half_width[src, ax], digit,
                                               per_axis)
                half_width[dst, ax] = half_width[src, ax] / per_axis
            level[dst] = level[src] + 1
            q_abs[dst] = math.nan
            refined[dst] = False
        refined[src] = True


@njit(cache=True, parallel=True)
def points_in_cells(center, half_width, cells, u, out):
    """``out[k] = center[cells[k]] + (2 u[k] - 1) * half_width[cells[k]]`` (u in [0, 1)^d)."""
    d = center.shape[1]
    for k in prange(cells.shape[0]):
        c = cells[k]
        for ax in range(d):
            out[k, ax] = center[c, ax] + (2.0 * u[k, ax] - 1.0) * half_width[c, ax]
