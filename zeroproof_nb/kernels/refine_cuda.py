"""CUDA kernel of the active sampler's refinement marking (``@cuda.jit``): per cell, |Q| at its
centre into the grid's ``q_abs`` and whether it is split, :func:`.refine.split_candidate` (the
function the CPU's :func:`.refine.mark_cells` calls), one thread per cell. Exact: comparisons
only."""
from __future__ import annotations

from numba import cuda

from .refine import split_candidate

#: threads per block
THREADS = 256


@cuda.jit
def mark_cells_kernel(q, refined, level, max_level, threshold, q_abs, out):
    """q_abs[i] = |q[i]| and out[i] = split_candidate(refined[i], level[i], |q[i]|, max_level,
    threshold) for i < q.shape[0] (``out`` uint8 0/1)."""
    i = cuda.grid(1)
    if i >= q.shape[0]:
        return
    a = abs(q[i])
    q_abs[i] = a
    out[i] = 1 if split_candidate(refined[i], level[i], a, max_level, threshold) else 0


def launch_config(n: int) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` cells."""
    return max(1, (int(n) + THREADS - 1) // THREADS), THREADS
