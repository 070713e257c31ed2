"""CUDA kernels of the importance weights and the block-CDF draws (``@cuda.jit``).

The same functions as the CPU kernels of :mod:`.weights` do the math: :func:`.weights.block_weights`
and :func:`.weights.lane_sum` give each block's weight sum (one thread per block of ``BLOCK``
points, summed in the same fixed order), and :func:`.weights.draw_from_block_cdf` — binary search
of the block CDF, rescan of the block — runs one thread per draw, its uniform
``stream_uniform(key, k)`` a pure function of (key, k). So the draws do not depend on the launch
configuration; they equal the CPU draws wherever the device's floating-point results equal the
CPU's (always in the simulator; a GPU may round ``a**-p`` differently in the last bit, which
moves a draw only when its uniform falls within that rounding of a CDF boundary).
"""
from __future__ import annotations

from numba import cuda, float64

from .weights import BLOCK, block_weights, draw_from_block_cdf, lane_sum, stream_uniform

#: Threads per block of both kernels.
THREADS = 128


@cuda.jit
def weight_block_sums_kernel(q, extra, use_extra, min_q_abs, power, inv_max_weight,
                             inv_temperature, block_sums):
    """block_sums[b] = lane_sum of the weights of points [b*BLOCK, (b+1)*BLOCK) (one thread
    per block; ``extra`` is read when ``use_extra``)."""
    b = cuda.grid(1)
    if b >= block_sums.shape[0]:
        return
    buf = cuda.local.array(BLOCK, float64)
    lo = b * BLOCK
    hi = min(q.shape[0], lo + BLOCK)
    m = block_weights(q[lo:hi], extra[lo:hi] if use_extra else extra, use_extra, min_q_abs,
                      power, inv_max_weight, inv_temperature, buf)
    block_sums[b] = lane_sum(buf, m)


@cuda.jit
def draw_kernel(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                block_cum, last_block, key, out):
    """out[k] = the index drawn by uniform k of the stream ``key`` (one thread per draw)."""
    k = cuda.grid(1)
    if k >= out.shape[0]:
        return
    buf = cuda.local.array(BLOCK, float64)
    total = block_cum[block_cum.shape[0] - 1]
    out[k] = draw_from_block_cdf(q, extra, use_extra, min_q_abs, power, inv_max_weight,
                                 inv_temperature, block_cum, last_block,
                                 stream_uniform(key, k) * total, buf)


def launch_config(n: int) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` work items."""
    return max(1, (n + THREADS - 1) // THREADS), THREADS


def n_blocks(n_points: int) -> int:
    """Number of weight blocks of a pool of ``n_points``."""
    return (int(n_points) + BLOCK - 1) // BLOCK

