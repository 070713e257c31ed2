"""The importance sampler's array work as plain functions: weights -> probabilities -> draws.

What a CPU, CUDA or Dask backend calls; the classes of :mod:`.importance_sampler` only hold the
configuration, the generator (each draw function takes its 64-bit stream ``key``) and the
two-level sample counts (``low`` uint16, ``high`` int64 arrays, updated in place). ``params``
is ``ImportanceSamplerConfig.weight_params()``: (min_q_abs, weight_power, 1/max_weight,
1/temperature).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from .._validation import as_float_array
from ..device import resolve_device
from ..kernels import weights as _kw
from ..kernels.tags import CHUNK

__all__ = [
    "DUMMY",
    "SPILL",
    "WeightScan",
    "abs_stats",
    "alias_draws",
    "alias_draw_batches",
    "alias_table",
    "cdf_draws",
    "count_draws",
    "normalise",
    "parallel",
    "sample_weight_factors",
    "scan_weights",
    "smallest_keys",
]

#: placeholder for an absent optional array argument of the kernels
DUMMY = np.zeros(1, dtype=np.float64)
#: largest value of a low (uint16) count word; reaching it moves SPILL to the high counts
SPILL = _kw.SPILL


def parallel(work: int) -> bool:
    """Use a parallel kernel for this much work (else its ``*_serial`` twin, same results)."""
    return work >= _kw.PARALLEL_MIN_WORK and numba.get_num_threads() > 1


def abs_stats(q: np.ndarray) -> tuple[float, float]:
    """(mean, min) of the finite |q| (NaN, NaN when there is none)."""
    stats = np.zeros(((q.shape[0] + CHUNK - 1) // CHUNK, _kw.N_STATS), dtype=np.float64)
    (_kw.abs_stats if parallel(q.shape[0]) else _kw.abs_stats_serial)(q, stats)
    n_fin = stats[:, _kw.STAT_FINITE].sum()
    if not n_fin > 0:
        return float("nan"), float("nan")
    return (float(stats[:, _kw.STAT_ABS_SUM].sum() / n_fin),
            float(stats[:, _kw.STAT_ABS_MIN].min()))


def normalise(w: np.ndarray, total: float) -> None:
    """Weights into probabilities in place: w /= total."""
    (_kw.normalise if parallel(w.shape[0]) else _kw.normalise_serial)(w, total)


@dataclass
class WeightScan:
    """Result of one weights pass over a pool (:func:`scan_weights`), or a prepared pool's
    view of it (``prepared`` set, ``block_cum`` None)."""

    n: int
    q: np.ndarray | None
    extra: np.ndarray | None
    weights: np.ndarray | None
    block_cum: np.ndarray | None
    last_block: int
    total: float
    n_positive: int
    n_nan: int
    prepared: Any = None


def sample_weight_factors(sample_weights: Any, n: int) -> np.ndarray | None:
    """Validated extra weight factors (N,), scaled to a largest entry of 1 (None if absent)."""
    if sample_weights is None:
        return None
    ex = as_float_array(sample_weights, "sample_weights", ndim=1, dtype=np.float64)
    if ex.shape[0] != n:
        raise ValueError(f"sample_weights has {ex.shape[0]} entries but q_pool has {n}")
    if not np.all((ex >= 0) & np.isfinite(ex)):
        raise ValueError("sample_weights must be finite and >= 0")
    # scale-free: the draws depend on sample_weights up to a constant factor only, so
    # divide by the largest entry first (a factor 1e306 or 1e-310 then changes nothing;
    # multiplied as given it overflows the sums or loses the subnormals' precision)
    top = float(ex.max()) if n else 0.0
    return ex / top if top > 0 else ex


def scan_weights(q: np.ndarray, extra: np.ndarray | None, params: tuple[float, ...],
                 write_weights: bool) -> WeightScan:
    """One kernel pass over the pool ``q``: the weights (when ``write_weights``), their block
    prefix sums, and the NaN / positive counts."""
    n = q.shape[0]
    block = np.empty((n + _kw.BLOCK - 1) // _kw.BLOCK, dtype=np.float64)
    stats = np.empty(((n + CHUNK - 1) // CHUNK, _kw.N_STATS), dtype=np.float64)
    w = np.empty(n, dtype=np.float64) if write_weights else DUMMY
    use_extra = extra is not None
    kernel = _kw.weight_block_sums if parallel(n) else _kw.weight_block_sums_serial
    kernel(q, extra if use_extra else DUMMY, use_extra, *params, w, write_weights, block, stats)
    n_nan = int(stats[:, _kw.STAT_NAN].sum())
    last_block = int(_kw.cumulative_sum(block, block))
    return WeightScan(n=n, q=q, extra=extra, weights=w if write_weights else None,
                      block_cum=block, last_block=last_block, total=float(block[-1]),
                      n_positive=int(stats[:, _kw.STAT_POSITIVE].sum()), n_nan=n_nan)


def alias_table(scan: WeightScan) -> np.ndarray:
    """The alias table (N,) uint64 of a scan's (unnormalised) weights."""
    w = scan.weights
    lo = scan.last_block * _kw.BLOCK
    fallback = lo + int(np.flatnonzero(w[lo: lo + _kw.BLOCK] > 0)[-1])
    if scan.n >= 2 ** 32:
        raise ValueError("q_pool: prepare() supports pools of fewer than 2**32 points")
    table = np.empty(scan.n, dtype=np.uint64)
    _kw.build_alias_table(w, scan.total, fallback, table)
    return table


def alias_draws(table: np.ndarray, key: np.uint64, k: int, low: np.ndarray, high: np.ndarray,
                track: bool) -> tuple[np.ndarray, Any]:
    """k alias-method draws from ``table`` with stream ``key``; with ``track`` counted into
    (``low``, ``high``) by the same kernel call. Returns (indices, number of new indices)."""
    out = np.empty(k, dtype=np.int64)
    # one thread up to 2**17 draws: B = 65536 from N = 10**6 takes ~0.26 ms there, while
    # a parallel region that waits for a busy core costs a scheduler slice (~8 ms)
    if parallel(k):
        new = _kw.draw_alias(table, key, out, low, high, track, numba.get_num_threads())
    else:
        new = _kw.draw_alias_serial(table, key, out, low, high, track)
    return out, new


def alias_draw_batches(table: np.ndarray, keys: np.ndarray, batch_size: int, low: np.ndarray,
                       high: np.ndarray, track: bool) -> tuple[np.ndarray, int]:
    """One batch of ``batch_size`` alias draws per stream key, (n_batches, batch_size) int64,
    in one kernel call; returns (indices, number of new indices)."""
    out = np.empty((keys.shape[0], batch_size), dtype=np.int64)
    new = int(_kw.draw_alias_batches(table, keys, out, low, high, track))
    return out, new


def cdf_draws(scan: WeightScan, params: tuple[float, ...], key: np.uint64, k: int,
              device: str = "cpu") -> np.ndarray:
    """k draws with replacement from a scanned pool (inverse CDF over the block prefix sums;
    the weights are recomputed from q inside their block). ``device="cuda"`` (or "auto" with
    a usable GPU) draws on the GPU (:func:`.sampling_cuda.cdf_draws_cuda`): the same indices
    for the same key, returned on the host."""
    if device != "cpu" and resolve_device(device, scan.q) == "cuda":
        from .sampling_cuda import cdf_draws_cuda

        return cdf_draws_cuda(scan.q, params, key, k, extra=scan.extra).copy_to_host()
    out = np.empty(k, dtype=np.int64)
    kernel = _kw.draw_block_cdf if parallel(k * 4) else _kw.draw_block_cdf_serial
    extra = scan.extra if scan.extra is not None else DUMMY
    kernel(scan.q, extra, scan.extra is not None, *params, scan.block_cum, scan.last_block, key,
           out)
    return out


def smallest_keys(weights: np.ndarray, key: np.uint64, k: int,
                  excluded: np.ndarray | None, device: str = "cpu") -> np.ndarray:
    """Draws without replacement: indices of the k smallest exponential keys e/w (stream
    ``key``; ``excluded`` indices never drawn), in increasing key order. ``device="cuda"``
    (or "auto" with a usable GPU) selects them on the GPU
    (:func:`.sampling_cuda.smallest_keys_cuda`): the same indices, returned on the host."""
    if device != "cpu" and resolve_device(device, weights) == "cuda":
        from .sampling_cuda import smallest_keys_cuda

        return smallest_keys_cuda(weights, key, k, excluded).copy_to_host()
    n = weights.shape[0]
    keys = np.empty(n, dtype=np.float64)
    (_kw.exponential_keys if parallel(n) else _kw.exponential_keys_serial)(weights, key, keys)
    if excluded is not None:
        keys[excluded] = np.inf
    part = np.argpartition(keys, k - 1)[:k]
    return part[np.argsort(keys[part], kind="stable")].astype(np.int64, copy=False)


def count_draws(low: np.ndarray, high: np.ndarray, idx: np.ndarray) -> Any:
    """Add the drawn indices ``idx`` to the two-level counts; returns how many were new."""
    if parallel(idx.shape[0]):
        return _kw.accumulate_counts(low, high, idx, numba.get_num_threads())
    return _kw.accumulate_counts_serial(low, high, idx)
