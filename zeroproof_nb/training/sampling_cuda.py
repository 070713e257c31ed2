"""The importance sampler's array work on a CUDA GPU: the functions of :mod:`.sampling` over
device arrays (numba device arrays, or anything with ``__cuda_array_interface__``: CuPy,
PyTorch CUDA tensors, read in place).

Every function takes the same stream ``key`` as its CPU twin and computes the same per-point
functions (:mod:`zeroproof_nb.kernels.weights`), so a key gives the same indices on both
(always in the simulator; on a GPU wherever its ``log`` / ``pow`` round as the CPU's do, see
:mod:`zeroproof_nb.kernels.weights_cuda`). ``params`` is
``ImportanceSamplerConfig.weight_params()``: (min_q_abs, weight_power, 1/max_weight,
1/temperature). Results are device arrays; ``copy_to_host()`` brings them back.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..device import cuda_module, is_device_array

__all__ = ["alias_draws_cuda", "cdf_draws_cuda", "importance_weights_cuda", "mark_cells_cuda", "smallest_keys_cuda",
           "to_device_1d"]


def to_device_1d(a: Any, name: str, dtypes: tuple = (np.float64,)) -> Any:
    """``a`` as a 1-D device array (device input in place, host input copied), dtype checked."""
    cuda = cuda_module()
    if is_device_array(a):
        d = cuda.as_cuda_array(a) if hasattr(cuda, "as_cuda_array") and \
            hasattr(a, "__cuda_array_interface__") else a
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
        if arr.dtype not in dtypes:
            arr = arr.astype(dtypes[0])
        d = cuda.to_device(np.ascontiguousarray(arr))
    if d.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(d.shape)}")
    if np.dtype(d.dtype) not in dtypes:
        raise TypeError(f"{name} must have dtype {' or '.join(np.dtype(t).name for t in dtypes)}"
                        f" on the device, got {d.dtype}")
    return d


def _params(params: Any) -> tuple[float, float, float, float]:
    p = tuple(float(v) for v in params)
    if len(p) != 4:
        raise ValueError(f"params must be (min_q_abs, power, 1/max_weight, 1/temperature), got "
                         f"{len(p)} values")
    return p  # type: ignore[return-value]


def importance_weights_cuda(q: Any, params: Any, extra: Any = None) -> Any:
    """Unnormalised importance weights of ``q`` (N,) on the device, (N,) float64 (times
    ``extra`` (N,) where given): the values the CPU pass writes."""
    cuda = cuda_module()
    from ..kernels import weights_cuda as _kwc

    p = _params(params)
    qd = to_device_1d(q, "q", (np.float64, np.float32))
    n = qd.shape[0]
    ed = to_device_1d(extra, "extra") if extra is not None else cuda.to_device(np.zeros(1))
    if extra is not None and ed.shape[0] != n:
        raise ValueError(f"extra has {ed.shape[0]} entries but q has {n}")
    out = cuda.device_array(n, dtype=np.float64)
    if n:
        blocks, threads = _kwc.launch_config(n)
        _kwc.weights_kernel[blocks, threads](qd, ed, extra is not None, *p, out)
    return out


def alias_draws_cuda(table: Any, key: Any, k: int) -> Any:
    """k alias-method draws with replacement from a prepared pool's alias table (N,) uint64
    (``PreparedPool.table``; a host table is copied once per call: keep it on the device with
    ``cuda.to_device`` for repeated draws) -> (k,) int64 on the device: the indices of the
    CPU's :func:`.sampling.alias_draws` with the same ``key``."""
    cuda = cuda_module()
    from ..kernels import weights_cuda as _kwc

    k = _count(k, "k")
    td = to_device_1d(table, "table", (np.uint64,))
    if td.shape[0] == 0:
        raise ValueError("table is empty")
    out = cuda.device_array(k, dtype=np.int64)
    if k:
        blocks, threads = _kwc.launch_config(k)
        _kwc.alias_draw_kernel[blocks, threads](td, np.uint64(key), out)
    return out


def cdf_draws_cuda(q: Any, params: Any, key: Any, k: int, extra: Any = None) -> Any:
    """k draws with replacement (N,) -> (k,) int64 on the device: block sums of the weights,
    their prefix sums (on the host, in block order: the CPU's bits), then one thread per draw
    (the CPU's :func:`.sampling.cdf_draws` with the same ``key``)."""
    cuda = cuda_module()
    from ..kernels import weights as _kw
    from ..kernels import weights_cuda as _kwc

    p = _params(params)
    k = _count(k, "k")
    qd = to_device_1d(q, "q", (np.float64, np.float32))
    n = qd.shape[0]
    ed = to_device_1d(extra, "extra") if extra is not None else cuda.to_device(np.zeros(1))
    nb = _kwc.n_blocks(n)
    sums = cuda.device_array(max(nb, 1), dtype=np.float64)
    if nb:
        blocks, threads = _kwc.launch_config(nb)
        _kwc.weight_block_sums_kernel[blocks, threads](qd, ed, extra is not None, *p, sums)
    host = sums.copy_to_host()[:nb]
    cum = np.empty_like(host)
    last = int(_kw.cumulative_sum(host, cum)) if nb else 0
    if not (nb and cum[-1] > 0):
        raise ValueError("q has no point with a positive weight")
    out = cuda.device_array(k, dtype=np.int64)
    if k:
        blocks, threads = _kwc.launch_config(k)
        _kwc.draw_kernel[blocks, threads](qd, ed, extra is not None, *p, cuda.to_device(cum),
                                          last, np.uint64(key), out)
    return out


def _count(k: Any, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"{name} must be >= 0, got {k}")
    return int(k)


def smallest_keys_cuda(weights: Any, key: Any, k: int, excluded: Any = None) -> Any:
    """Draws without replacement on the device: the indices (k,) int64 of the k smallest
    exponential keys e_i/w_i of ``weights`` (N,) (stream ``key``; ``excluded`` indices never
    drawn), in increasing key order (ties, which have probability 0 for positive weights, by
    index): the CPU's :func:`.sampling.smallest_keys`.

    Raises ValueError when fewer than k points have a positive weight and are not excluded.
    """
    cuda = cuda_module()
    from ..kernels import weights_cuda as _kwc

    k = _count(k, "k")
    wd = to_device_1d(weights, "weights")
    n = wd.shape[0]
    keys = cuda.device_array(max(n, 1), dtype=np.float64)
    if n:
        blocks, threads = _kwc.launch_config(n)
        _kwc.exponential_keys_kernel[blocks, threads](wd, np.uint64(key), keys)
    if excluded is not None:
        ex = np.ascontiguousarray(np.asarray(excluded), dtype=np.int64)
        if ex.ndim != 1 or (ex.size and (ex.min() < 0 or ex.max() >= n)):
            raise ValueError(f"excluded must be 1-D indices in [0, {n})")
        if ex.size:
            blocks, threads = _kwc.launch_config(ex.size)
            _kwc.exclude_kernel[blocks, threads](keys, cuda.to_device(ex))
    if k == 0:
        return cuda.device_array(0, dtype=np.int64)
    bits = keys[:n].view(np.uint64)
    threshold, n_le = _kth_smallest_bits(cuda, _kwc, bits, k)
    if threshold >= _INF_BITS:
        raise ValueError(f"k: {k} draws without replacement exceed the points with a positive "
                         "weight that are not excluded")
    size = 1 << max(0, (n_le - 1).bit_length())
    kb = cuda.to_device(np.full(size, np.iinfo(np.uint64).max, dtype=np.uint64))
    ib = cuda.to_device(np.full(size, np.iinfo(np.int64).max, dtype=np.int64))
    counter = cuda.to_device(np.zeros(1, dtype=np.int64))
    blocks, threads = _kwc.launch_config(n)
    _kwc.gather_at_most_kernel[blocks, threads](bits, np.uint64(threshold), counter, kb, ib)
    blocks, threads = _kwc.launch_config(size)
    block = 2
    while block <= size:
        stride = block // 2
        while stride > 0:
            _kwc.bitonic_step_kernel[blocks, threads](kb, ib, block, stride)
            stride //= 2
        block *= 2
    return ib[:k]


_INF_BITS = int(np.float64(np.inf).view(np.uint64))


def _kth_smallest_bits(cuda: Any, kwc: Any, bits: Any, k: int) -> tuple[int, int]:
    """(bit pattern of the k-th smallest key, number of keys <= it) by 8 radix passes."""
    prefix = 0
    mask = 0
    rank = k
    hist = cuda.device_array(kwc.RADIX_BINS, dtype=np.int64)
    zeros = np.zeros(kwc.RADIX_BINS, dtype=np.int64)
    blocks, threads = kwc.launch_config(bits.shape[0])
    blocks = min(blocks, 1024)  # grid-stride
    n_at = 0
    for shift in range(64 - kwc.RADIX_BITS, -1, -kwc.RADIX_BITS):
        hist.copy_to_device(zeros)
        kwc.radix_histogram_kernel[blocks, threads](bits, np.uint64(prefix), np.uint64(mask),
                                                   np.uint64(shift), hist)
        h = hist.copy_to_host()
        cum = np.cumsum(h)
        d = int(np.searchsorted(cum, rank))  # first digit whose cumulative count >= rank
        rank -= int(cum[d - 1]) if d else 0
        n_at = int(h[d])
        prefix |= d << shift
        mask |= (kwc.RADIX_BINS - 1) << shift
    # keys below the threshold: k - rank; equal to it: n_at
    return prefix, (k - rank) + n_at


def mark_cells_cuda(q: Any, refined: Any, level: Any, max_level: int, threshold: float) -> tuple:
    """Refinement marking of the active sampler's grid on the device: ``(q_abs, mask)`` with
    q_abs = |q| (N,) float64 and mask (N,) uint8 = 1 where a cell is split
    (:func:`zeroproof_nb.kernels.refine.split_candidate`, as the CPU marks them)."""
    cuda = cuda_module()
    from ..kernels import refine_cuda as _krc

    qd = to_device_1d(q, "q")
    n = qd.shape[0]
    rd = to_device_1d(np.asarray(refined, dtype=np.bool_) if not is_device_array(refined)
                      else refined, "refined", (np.bool_,))
    ld = to_device_1d(np.asarray(level, dtype=np.int32) if not is_device_array(level)
                      else level, "level", (np.int32,))
    if rd.shape[0] != n or ld.shape[0] != n:
        raise ValueError(f"refined and level must have one entry per cell ({n})")
    q_abs = cuda.device_array(n, dtype=np.float64)
    mask = cuda.device_array(n, dtype=np.uint8)
    if n:
        blocks, threads = _krc.launch_config(n)
        _krc.mark_cells_kernel[blocks, threads](qd, rd, ld, int(max_level), float(threshold),
                                                q_abs, mask)
    return q_abs, mask
