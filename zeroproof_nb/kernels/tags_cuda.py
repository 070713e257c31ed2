"""CUDA kernel of tag counting (``@cuda.jit``): the counts of REAL, PINF, NINF, PHI and invalid
codes of a uint8 tag array, the columns of :func:`.tags.tag_bin` (the CPU's per-element
function). Counts are integers, so atomic adds give the same result in any order: each block
counts into a shared-memory row, then adds it to the global row."""
from __future__ import annotations

from numba import cuda, int64

from .tags import N_TAGS, tag_bin

#: threads per block
THREADS = 256
#: columns of the count row: the tags, then invalid codes
N_BINS = N_TAGS + 1


@cuda.jit
def count_tags_kernel(tags, counts):
    """counts[tag_bin(tags[i])] += 1 for every i (``tags`` 1-D uint8, ``counts`` (N_BINS,)
    int64 zeroed by the caller; grid-stride, any launch)."""
    local = cuda.shared.array(N_BINS, int64)
    tid = cuda.threadIdx.x
    if tid < N_BINS:
        local[tid] = 0
    cuda.syncthreads()
    for i in range(cuda.grid(1), tags.shape[0], cuda.gridsize(1)):
        cuda.atomic.add(local, tag_bin(tags[i]), 1)
    cuda.syncthreads()
    if tid < N_BINS and local[tid] != 0:
        cuda.atomic.add(counts, tid, local[tid])


def launch_config(n: int) -> tuple[int, int]:
    """(blocks, threads) for ``n`` tags: one element per thread up to 1024 blocks, then
    grid-stride."""
    return max(1, min(1024, (int(n) + THREADS - 1) // THREADS)), THREADS
