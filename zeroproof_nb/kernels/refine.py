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
def split_candidate(refined, level, q_abs, max_level, threshold):
    """Whether a cell is split by a refinement: not yet refined, below ``max_level``, and its
    |Q| below ``threshold`` (a NaN |Q| is never below it)."""
    return (not refined) and level < max_level and q_abs < threshold


@njit(cache=True)
def mark_cells(refined, level, q_abs, max_level, threshold, out):
    """out[i] = :func:`split_candidate` of cell i (the first ``out.shape[0]`` cells)."""
    for i in range(out.shape[0]):
        out[i] = split_candidate(refined[i], level[i], q_abs[i], max_level, threshold)


@njit(cache=True, inline="always")
def child_center(center, half_width, digit, per_axis):
    """Centre of part ``digit`` (0-based) of ``per_axis`` equal parts of [c - h, c + h]."""
    return center - half_width + (2.0 * digit + 1.0) * (half_width / per_axis)


@njit(cache=True)
def _split_one(center, half_width, level, q_abs, refined, src, base, per_axis):
    d = center.shape[1]
    n_children = per_axis ** d
    child_level = level[src] + 1
    for j in range(n_children):
        dst = base + j
        level[dst] = child_level
        q_abs[dst] = math.nan
        refined[dst] = False
    stride = 1  # per_axis ** ax: children with the same digit on axis ax repeat in runs
    for ax in range(d):
        c = center[src, ax]
        h = half_width[src, ax]
        hc = h / per_axis
        for j in range(n_children):
            digit = (j // stride) % per_axis if d > 1 else j
            center[base + j, ax] = child_center(c, h, digit, per_axis)
            half_width[base + j, ax] = hc
        stride *= per_axis
    refined[src] = True


@njit(cache=True, parallel=True)
def split_cells(center, half_width, level, q_abs, refined, parents, per_axis, start):
    """Split ``parents`` (indices of cells) in place.

    Parent p's children occupy rows ``start + p*per_axis**d ... + per_axis**d - 1``; child j has
    axis digits ``j = sum_ax digit_ax * per_axis**ax``. The arrays must have room for them.
    :func:`split_cells_serial` does the same on one thread.
    """
    n_children = per_axis ** center.shape[1]
    for p in prange(parents.shape[0]):
        _split_one(center, half_width, level, q_abs, refined, parents[p],
                   start + p * n_children, per_axis)


@njit(cache=True)
def split_cells_serial(center, half_width, level, q_abs, refined, parents, per_axis, start):
    """Single-threaded :func:`split_cells`."""
    n_children = per_axis ** center.shape[1]
    for p in range(parents.shape[0]):
        _split_one(center, half_width, level, q_abs, refined, parents[p],
                   start + p * n_children, per_axis)


@njit(cache=True, inline="always")
def point_in_cell(center, half_width, u):
    """``center + (2u − 1)·half_width`` for u in [0, 1): a uniform point of the cell's axis."""
    return center + (2.0 * u - 1.0) * half_width


@njit(cache=True)
def points_in_cells(center, half_width, cells, u, out):
    """``out[k] = center[cells[k]] + (2 u[k] - 1) * half_width[cells[k]]`` (u in [0, 1)^d)."""
    d = center.shape[1]
    for k in range(cells.shape[0]):
        c = cells[k]
        for ax in range(d):
            out[k, ax] = point_in_cell(center[c, ax], half_width[c, ax], u[k, ax])


@njit(cache=True)
def locate_in_cells(points, center, half_width, cells, out):
    """out[i] = position k in ``cells`` of the first cell whose closed box
    [center − half_width, center + half_width] holds ``points[i]``, or −1 when none does
    (a point on a shared face goes to the first of its cells in ``cells``' order)."""
    d = points.shape[1]
    for i in range(points.shape[0]):
        out[i] = -1
        for k in range(cells.shape[0]):
            c = cells[k]
            inside = True
            for ax in range(d):
                if abs(points[i, ax] - center[c, ax]) > half_width[c, ax]:
                    inside = False
                    break
            if inside:
                out[i] = k
                break
