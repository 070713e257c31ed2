"""CUDA kernels of the importance weights and the block-CDF draws (``@cuda.jit``).

The same functions as the CPU kernels of :mod:`.weights` do the math: :func:`.weights.block_weights`
and :func:`.weights.lane_sum` give each block's weight sum (one thread per block of ``BLOCK``
points, summed in the same fixed order), and :func:`.weights.draw_from_block_cdf` — binary search
of the block CDF, rescan of the block — runs one thread per draw, its uniform
``stream_uniform(key, k)`` a pure function of (key, k). So the draws do not depend on the launch
configuration; they equal the CPU draws wherever the device's floating-point results equal the
CPU's (always in the simulator; a GPU may round ``a**-p`` differently in the last bit, which
moves a draw only when its uniform falls within that rounding of a CDF boundary).

Draws without replacement follow the CPU's exponential keys (Efraimidis & Spirakis): key i is
:func:`.weights.exponential_key` of the weight and ``stream_exponential(key, i)``, the same
pure function of (key, i) as on the CPU; the k smallest keys are found by a radix select over
the keys' bit patterns (non-negative float64 order as uint64; 8 histogram passes of 8 bits,
integer counts), gathered (any order) and sorted by (key, index) with a bitonic network, so the
indices and their order do not depend on the launch.
"""
from __future__ import annotations

import math

from numba import cuda, float64, int64, uint64

from .alias import alias_pick, alias_slot
from .importance import (
    BLOCK,
    block_weights,
    draw_from_block_cdf,
    exponential_key,
    extra_factor,
    importance_weight,
    lane_sum,
)
from .streams import stream_exponential, stream_uniform

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


@cuda.jit
def alias_draw_kernel(table, key, out):
    """out[k] = the alias-method draw of uniform k of the stream ``key`` from ``table`` (the
    CPU's :func:`.weights.draw_alias`: :func:`.weights.alias_slot`, then
    :func:`.weights.alias_pick`), one thread per draw. Integer and exact-fraction arithmetic
    only: the same indices as the CPU on any device."""
    k = cuda.grid(1)
    if k >= out.shape[0]:
        return
    row, frac = alias_slot(table.shape[0], stream_uniform(key, k))
    out[k] = alias_pick(row, frac, table[row])


@cuda.jit
def weights_kernel(q, extra, use_extra, min_q_abs, power, inv_max_weight, inv_temperature, out):
    """out[i] = the importance weight of q[i] (times extra[i] when ``use_extra``): the values
    the CPU pass writes (:func:`.weights.block_weights`), one thread per point."""
    i = cuda.grid(1)
    if i >= q.shape[0]:
        return
    # in float64 from the start, as the CPU's float64 block buffer holds |q|
    w = importance_weight(float64(q[i]), min_q_abs, power, inv_max_weight, inv_temperature)
    out[i] = extra_factor(w, extra[i]) if use_extra else w


@cuda.jit
def exponential_keys_kernel(weights, key, out):
    """out[i] = exponential_key(weights[i], stream_exponential(key, i)) (the CPU's
    :func:`.weights.exponential_keys`), one thread per point."""
    i = cuda.grid(1)
    if i >= weights.shape[0]:
        return
    out[i] = exponential_key(weights[i], stream_exponential(key, i))


@cuda.jit
def exclude_kernel(keys, excluded):
    """keys[excluded[k]] = inf (those indices are never drawn)."""
    k = cuda.grid(1)
    if k < excluded.shape[0]:
        keys[excluded[k]] = math.inf


#: bits per radix-select pass, and the bins of a pass
RADIX_BITS = 8
RADIX_BINS = 1 << RADIX_BITS
_DIGIT = uint64(RADIX_BINS - 1)


@cuda.jit
def radix_histogram_kernel(bits, prefix, mask, shift, hist):
    """hist[d] += #{i: bits[i] & mask == prefix and digit (bits[i] >> shift) & 0xFF == d}
    (``hist`` (RADIX_BINS,) int64, zeroed by the caller; integer counts: any order). Counts go
    through a shared-memory histogram per block."""
    local = cuda.shared.array(RADIX_BINS, int64)
    tid = cuda.threadIdx.x
    for b in range(tid, RADIX_BINS, cuda.blockDim.x):
        local[b] = 0
    cuda.syncthreads()
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, bits.shape[0], step):
        b = bits[i]
        if (b & mask) == prefix:
            cuda.atomic.add(local, (b >> shift) & _DIGIT, 1)
    cuda.syncthreads()
    for b in range(tid, RADIX_BINS, cuda.blockDim.x):
        if local[b] != 0:
            cuda.atomic.add(hist, b, local[b])


@cuda.jit
def gather_at_most_kernel(bits, threshold, counter, out_bits, out_idx):
    """Every i with bits[i] <= threshold into (out_bits, out_idx) at a slot taken from
    ``counter[0]`` (any order: :func:`bitonic_step_kernel` sorts them)."""
    i = cuda.grid(1)
    if i >= bits.shape[0]:
        return
    b = bits[i]
    if b <= threshold:
        slot = cuda.atomic.add(counter, 0, 1)
        out_bits[slot] = b
        out_idx[slot] = i


@cuda.jit
def bitonic_step_kernel(kb, ib, size, stride):
    """One compare-exchange step (block ``size``, distance ``stride``) of the bitonic sort of
    the pairs (kb[i], ib[i]) ascending in (kb, ib); the length is a power of two."""
    i = cuda.grid(1)
    if i >= kb.shape[0]:
        return
    j = i ^ stride
    if j <= i:
        return
    ka, kj = kb[i], kb[j]
    ia, ij = ib[i], ib[j]
    greater = ka > kj or (ka == kj and ia > ij)
    if greater == ((i & size) == 0):
        kb[i], kb[j] = kj, ka
        ib[i], ib[j] = ij, ia


def launch_config(n: int) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` work items."""
    return max(1, (n + THREADS - 1) // THREADS), THREADS


def n_blocks(n_points: int) -> int:
    """Number of weight blocks of a pool of ``n_points``."""
    return (int(n_points) + BLOCK - 1) // BLOCK

