"""Chunk-level work of the blockwise grid refinement (:func:`zeroproof_nb.distributed.refine_cells`).

Plain NumPy in and out, no Dask: each function takes one chunk of the structured cell array
(:func:`zeroproof_nb.kernels.refine.cell_dtype`) with the chunk's |Q| values and its global
offset. The split itself is the in-core kernel :func:`~zeroproof_nb.kernels.refine.split_cells_serial`
on the chunk's rows, so parents and children are the in-core ones bit for bit.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .kernels import refine as _kr

__all__ = ["chunk_abs_q", "chunk_candidates", "chunk_level0", "chunk_split", "children_of"]


def chunk_abs_q(cells: np.ndarray, q: Any) -> np.ndarray:
    """|Q| of a chunk's cells: ``q`` is the chunk's (m,) values or a callable mapping the
    (m, d) centres to them."""
    if callable(q):
        q = q(np.ascontiguousarray(cells["center"]))
    vals = np.asarray(q)
    if vals.dtype.kind not in "biuf":
        raise TypeError(f"q must give real numbers, got dtype {vals.dtype}")
    vals = vals.astype(np.float64).reshape(-1)
    if vals.shape[0] != cells.shape[0]:
        raise ValueError(f"q must give one value per cell ({cells.shape[0]} in a chunk), "
                         f"got {vals.shape[0]}")
    return np.abs(vals)


def chunk_level0(cells: np.ndarray, qa: np.ndarray) -> np.ndarray:
    """The finite |Q| of the chunk's initial (level-0) cells: the relative threshold's scale."""
    return qa[(cells["level"] == 0) & np.isfinite(qa)]


def chunk_candidates(cells: np.ndarray, qa: np.ndarray, threshold: float, max_level: int,
                     first: int, budget: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Cells to split in one chunk: unrefined, below ``max_level``, |Q| < ``threshold``.

    Returns (|Q|, global index) of at most ``budget`` of them with the smallest (|Q|, index)
    -- the in-core order of choice under the cap -- in the form
    :func:`zeroproof_nb._dask_blocks.merge_smallest` merges, the number of candidates, and 0.
    """
    with np.errstate(invalid="ignore"):
        mask = (~cells["refined"]) & (cells["level"] < max_level) & (qa < threshold)
    cand = np.flatnonzero(mask)
    vals = qa[cand]
    keep = np.lexsort((cand, vals))[:max(budget, 0)]
    return vals[keep], cand[keep].astype(np.int64) + first, int(cand.shape[0]), 0


def children_of(n_parents: int, per_axis: int, dim: int) -> int:
    """Rows added by splitting ``n_parents`` cells."""
    return n_parents * per_axis ** dim


def chunk_split(cells: np.ndarray, qa: np.ndarray, parents: np.ndarray, per_axis: int,
                part: str) -> np.ndarray:
    """The chunk with |Q| written and ``parents`` (local, increasing) marked refined
    (``part='cells'``), or the parents' children in parent order (``part='children'``)."""
    m = cells.shape[0]
    dim = cells.dtype["center"].shape[0] if cells.dtype["center"].shape else 1
    work = np.zeros(m + children_of(parents.shape[0], per_axis, dim), dtype=cells.dtype)
    work[:m] = cells
    work["q_abs"][:m] = qa
    if parents.shape[0]:
        _kr.split_cells_serial(work["center"], work["half_width"], work["level"],
                               work["q_abs"], work["refined"], parents.astype(np.int64),
                               per_axis, m)
    return work[:m] if part == "cells" else work[m:]
