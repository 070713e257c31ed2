"""CPU loops of the blockwise (Dask) importance draws, over the per-point functions of
:mod:`.weights`.

A pool cut into chunks (any sizes that are multiples of :data:`~.weights.BLOCK`) is also cut
into *segments* of :data:`SEGMENT_BLOCKS` blocks at fixed global positions, independent of the
chunking. Inside a segment the block sums are accumulated sequentially from 0
(:func:`segment_cumsums`); the segment totals are accumulated sequentially on the driver. A
draw picks its segment from those totals, then its block and its index inside the segment with
the in-core per-draw function :func:`~.weights.draw_from_block_cdf`
(:func:`draw_routed`). Every sum is taken in one fixed order over fixed ranges, so every
draw depends on the block sums alone, never on where the chunk boundaries fall.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .importance import BLOCK, draw_from_block_cdf, exponential_key
from .importance_cpu import cumulative_sum
from .streams import stream_exponential, stream_uniform

#: blocks per segment (2048 blocks of 128: 262144 points)
SEGMENT_BLOCKS = 2048


@njit(cache=True)
def piece_start(p, offset, n_blocks):
    """First local block of piece ``p`` of a chunk whose first block sits ``offset`` blocks
    after a segment boundary (``0 <= offset < SEGMENT_BLOCKS``), clipped to ``n_blocks``."""
    if p == 0:
        return 0
    return min(n_blocks, p * SEGMENT_BLOCKS - offset)


@njit(cache=True)
def segment_cumsums(block_sums, offset, cum, last):
    """Prefix sums of ``block_sums`` (the chunk's blocks) restarted at every segment boundary.

    Parameters
    ----------
    block_sums : (nb,) float64, the block sums of one chunk
    offset : int, global index of the chunk's first block modulo SEGMENT_BLOCKS
    cum : (nb,) float64, out: piece by piece, :func:`~.weights.cumulative_sum` of its blocks
    last : (n_pieces,) int64, out: local index (within its piece) of each piece's last block
        with a positive sum, -1 if none; ``n_pieces >= nb // SEGMENT_BLOCKS + 2`` suffices

    Returns the number of pieces (consecutive segments met by the chunk).
    """
    nb = block_sums.shape[0]
    p = 0
    lo = 0
    while lo < nb:
        hi = piece_start(p + 1, offset, nb)
        last[p] = cumulative_sum(block_sums[lo:hi], cum[lo:hi])
        p += 1
        lo = hi
    return p


@njit(cache=True)
def uniforms_at(key, first, out):
    """``out[k] = stream_uniform(key, first + k)``: uniforms of global draw numbers."""
    for k in range(out.shape[0]):
        out[k] = stream_uniform(key, first + k)


@njit(cache=True, error_model="numpy")
def exponential_keys_at(weights, key, first, out):
    """Efraimidis–Spirakis keys of a chunk starting at global index ``first``:
    ``out[i] = exponential_key(weights[i], stream_exponential(key, first + i))`` (the keys
    the in-core sampler gives the same points)."""
    for i in range(weights.shape[0]):
        out[i] = exponential_key(weights[i], stream_exponential(key, first + i))


@njit(cache=True, error_model="numpy")
def draw_routed(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature,
                block_sums, cum, last, offset, kind, where, target, out):
    """Resolve draws routed to one chunk into chunk-local indices.

    Job j is either a whole segment (``kind[j] == 0``: ``where[j]`` is the piece, ``target[j]``
    in [0, segment total) measured from the segment's start, ``cum``/``last`` from
    :func:`segment_cumsums`) or one block (``kind[j] == 1``: ``where[j]`` is the local block,
    ``target[j]`` measured from the block's start; used for segments cut by a chunk boundary,
    whose block was found on the driver). Both are resolved by
    :func:`~.weights.draw_from_block_cdf` over the job's range of q, as in-core.
    """
    buf = np.empty(BLOCK, dtype=np.float64)
    nb = block_sums.shape[0]
    n = q.shape[0]
    for j in range(kind.shape[0]):
        if kind[j] == 0:
            b0 = piece_start(where[j], offset, nb)
            b1 = piece_start(where[j] + 1, offset, nb)
            cj = cum[b0:b1]
            lastj = last[where[j]]
        else:
            b0 = where[j]
            b1 = b0 + 1
            cj = block_sums[b0:b1]
            lastj = 0
        lo = b0 * BLOCK
        hi = min(n, b1 * BLOCK)
        out[j] = lo + draw_from_block_cdf(q[lo:hi], extra[lo:hi] if use_extra else extra,
                                          use_extra, min_q_abs, power, inv_max_weight,
                                          inv_temperature, cj, lastj, target[j], buf)
