"""The fixed-order tile reduction shared by the CUDA kernels that sum float terms
(:mod:`.rational_cuda` fused pass, :mod:`.least_squares_cuda` Gauss-Newton pass).

Every thread of a block of :data:`TILE` threads holds a row of ``n_slot`` terms (a local
array); :func:`tile_sum_rows` writes ``partial[tile, s]`` = the sum over the threads of slot s,
added in thread order. The slots go through shared memory :data:`GROUP` at a time (two
barriers per group, not one per tree level and slot), and the host adds the tile rows in tile
order: the result is the same bits for every launch (no atomics in float sums).
"""
from __future__ import annotations

from numba import cuda, float64

#: threads (points) per tile of the reducing kernels
TILE = 128
#: slots reduced per round; the shared buffer is padded by one column (bank conflicts)
GROUP = 16
_COLS = GROUP + 1  # a compile-time constant for the shared array's shape


@cuda.jit(device=True)
def tile_sum_rows(acc, n_slot, partial, tile):
    """partial[tile, s] = sum over the block's threads t = 0..TILE-1, in that order, of
    thread t's acc[s], for s < n_slot (every thread of the block must call it)."""
    buf = cuda.shared.array((TILE, _COLS), float64)
    tid = cuda.threadIdx.x
    for g0 in range(0, n_slot, GROUP):
        m = min(GROUP, n_slot - g0)
        for s in range(m):
            buf[tid, s] = acc[g0 + s]
        cuda.syncthreads()
        if tid < m:
            total = 0.0
            for t in range(TILE):
                total += buf[t, tid]
            partial[tile, g0 + tid] = total
        cuda.syncthreads()
