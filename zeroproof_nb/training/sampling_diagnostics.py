"""Near-pole sampling: importance sampling 1/|Q|^p, an adaptive grid, and their integration.

Public names (upstream's, ``zeroproof.training.sampling_diagnostics``):

* :class:`ImportanceSamplerConfig`, :class:`ImportanceSampler` — weights
  ``min(max(|q|, min_q_abs)^-p, max_weight)^(1/T)`` normalised; draws with replacement
  (inverse CDF over a block prefix sum, or an alias table after :meth:`ImportanceSampler.prepare`)
  and without replacement (exponential keys); hybrid importance + uniform batches.
* :class:`ActiveSamplerConfig`, :class:`ActiveSampler` — a structured array of axis-aligned
  cells refined where |Q| is small (see ``docs/sampling.md`` for the split rule).
* :class:`SamplingStrategy`, :class:`IntegratedSampler`, :func:`create_integrated_sampler`.
* re-exported: :class:`DiagnosticConfig`, :class:`DiagnosticMonitor` (from ``diagnostics``) and
  :class:`CurriculumConfig`, :class:`CurriculumScheduler`, :func:`combine_sample_weights`
  (from ``curriculum``).

Randomness comes only from ``numpy.random.Generator`` objects the samplers hold (seeded from the
config's ``seed`` or passed in as ``rng``). An importance batch takes one 64-bit key from the
generator; the kernels compute draw k's uniform from (key, k) (``kernels.weights.stream_bits``),
so the same seed gives the same indices whatever the numba thread count. ``state_dict()``
includes the generator's state: a restored sampler continues the same stream.
"""
from __future__ import annotations

import copy
import math
import numbers
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numba
import numpy as np

from .._jsonutil import dump_strict
from .._validation import (
    MAX_GRID_DIM,
    as_float_array,
    bit_generator_from_state,
    check_alloc,
    check_bounds,
    check_choice,
    check_draws,
    check_config,
    check_in_range,
    check_int,
    check_nonnegative,
    check_positive,
)
from ..kernels import refine as _kr
from ..kernels import weights as _kw
from ..kernels.tags import CHUNK
from .curriculum import CurriculumConfig, CurriculumScheduler, combine_sample_weights
from .diagnostics import DiagnosticConfig, DiagnosticMonitor

__all__ = [
    "SamplingStrategy",
    "ImportanceSamplerConfig",
    "ImportanceSampler",
    "PreparedPool",
    "ActiveSamplerConfig",
    "ActiveSampler",
    "IntegratedSampler",
    "create_integrated_sampler",
    "DiagnosticConfig",
    "DiagnosticMonitor",
    "CurriculumConfig",
    "CurriculumScheduler",
    "combine_sample_weights",
]

_DUMMY = np.zeros(1, dtype=np.float64)


def _parallel(work: int) -> bool:
    """Use a parallel kernel for this much work (else its ``*_serial`` twin, same results)."""
    return work >= _kw.PARALLEL_MIN_WORK and numba.get_num_threads() > 1


def _abs_stats(q: np.ndarray) -> tuple[float, float]:
    """(mean, min) of the finite |q| (NaN, NaN when there is none)."""
    stats = np.zeros(((q.shape[0] + CHUNK - 1) // CHUNK, _kw.N_STATS), dtype=np.float64)
    (_kw.abs_stats if _parallel(q.shape[0]) else _kw.abs_stats_serial)(q, stats)
    n_fin = stats[:, _kw.STAT_FINITE].sum()
    if not n_fin > 0:
        return float("nan"), float("nan")
    return (float(stats[:, _kw.STAT_ABS_SUM].sum() / n_fin),
            float(stats[:, _kw.STAT_ABS_MIN].min()))


def _normalise(w: np.ndarray, total: float) -> None:
    (_kw.normalise if _parallel(w.shape[0]) else _kw.normalise_serial)(w, total)


class SamplingStrategy(Enum):
    """Strategies of :class:`IntegratedSampler`."""

    UNIFORM = "uniform"
    IMPORTANCE = "importance"
    ACTIVE = "active"
    HYBRID = "hybrid"


# ----------------------------------------------------------------------------- RNG helpers
def _make_rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise ValueError(f"seed must be None, an int >= 0, a SeedSequence or a Generator, got {seed!r}")


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return copy.deepcopy(rng.bit_generator.state)


def _restore_rng(rng: np.random.Generator, state: dict[str, Any],
                 name: str = "rng_state") -> np.random.Generator:
    """``rng`` continuing the saved ``state`` (the same object when its bit generator is of
    the saved kind, else a new Generator). The kind goes through an allow-list and the state
    is validated on a fresh bit generator first: on an error ``rng`` is unchanged."""
    bg = bit_generator_from_state(state, name)
    if type(rng.bit_generator) is type(bg):
        rng.bit_generator.state = bg.state
        return rng
    return np.random.Generator(bg)


def _check_seed(seed: Any) -> None:
    if seed is not None:
        check_int(seed, "seed", minimum=0)


def _as_pool_x(x_pool: Any, n: int) -> np.ndarray:
    x = x_pool if isinstance(x_pool, np.ndarray) else np.asarray(x_pool)
    if x.ndim == 0:
        raise ValueError("x_pool must be an array of shape (N,) or (N, d), got a scalar")
    if x.shape[0] != n:
        raise ValueError(f"x_pool has {x.shape[0]} points but q_pool has {n}")
    return x


def _as_pool_q(q_pool: Any, name: str = "q_pool") -> np.ndarray:
    q = as_float_array(q_pool, name, ndim=1)
    if q.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    return q


def _state_mapping(state: Any, required: tuple[str, ...], name: str = "state") -> dict[str, Any]:
    """``state`` if it is a dict holding every key of ``required`` (``ValueError`` naming the
    first missing one, ``TypeError`` for a non-dict)."""
    if not isinstance(state, dict):
        raise TypeError(f"{name} must be a dict, got {type(state).__name__}")
    for key in required:
        if key not in state:
            raise ValueError(f"{name} is missing {key!r}")
    return state


def _config_fields(cfg: Any, cls: type) -> dict[str, Any]:
    """The saved config dict, with only ``cls``'s field names (``ValueError`` for others)."""
    if not isinstance(cfg, dict):
        raise TypeError(f"config must be a dict, got {type(cfg).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - names)
    if unknown:
        raise ValueError(f"config has unknown fields {unknown} for {cls.__name__}")
    return dict(cfg)


def _scalar_item(v: Any) -> Any:
    return v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v


def _int_array(a: Any, name: str) -> np.ndarray:
    """A 1-D array of integers >= 0 as int64."""
    arr = np.asarray(a)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise TypeError(f"{name} must be a 1-D array of integers, got dtype {arr.dtype}, "
                        f"shape {arr.shape}")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0")
    return arr


def _stat_float(v: Any, name: str) -> float:
    """A saved statistic: a finite float, or NaN meaning 'none' (never ±inf)."""
    v = _scalar_item(v)
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    f = float(v)
    if f in (math.inf, -math.inf):
        raise ValueError(f"{name} must be finite (or NaN for none), got {f}")
    return f


# ========================================================================== importance
@dataclass
class ImportanceSamplerConfig:
    """Settings of :class:`ImportanceSampler` (upstream's fields and defaults, plus the last three).

    Attributes
    ----------
    weight_power : float >= 0 (p in 1/|Q|^p)
    min_q_abs : float >= 0 (|Q| floor before the power)
    max_weight : float > 0 (weight ceiling, applied before the temperature)
    temperature : float > 0 (weights are raised to 1/T)
    resample_ratio, resample_frequency : accepted for compatibility, unused (as upstream)
    importance_batch_ratio : float in [0, 1] (importance share of a hybrid batch)
    replacement : bool (draw with replacement; upstream always does)
    nan_policy : 'raise' (ValueError naming q) or 'omit' (NaN q gets weight 0)
    seed : int >= 0 or None (seed of the sampler's numpy Generator)
    """

    weight_power: float = 2.0
    min_q_abs: float = 1e-6
    max_weight: float = 100.0
    temperature: float = 1.0
    resample_ratio: float = 0.5
    resample_frequency: int = 5
    importance_batch_ratio: float = 0.7
    replacement: bool = True
    nan_policy: str = "raise"
    seed: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first invalid field."""
        check_nonnegative(self.weight_power, "weight_power")
        check_nonnegative(self.min_q_abs, "min_q_abs")
        check_positive(self.max_weight, "max_weight")
        check_positive(self.temperature, "temperature")
        check_in_range(self.importance_batch_ratio, "importance_batch_ratio", 0.0, 1.0)
        if not isinstance(self.replacement, (bool, np.bool_)):
            raise TypeError(f"replacement must be a bool, got {type(self.replacement).__name__}")
        check_choice(self.nan_policy, "nan_policy", ("raise", "omit"))
        _check_seed(self.seed)

    def weight_params(self) -> tuple[float, float, float, float]:
        """(min_q_abs, weight_power, 1/max_weight, 1/temperature) as the kernels take them."""
        return (float(self.min_q_abs), float(self.weight_power), 1.0 / float(self.max_weight),
                1.0 / float(self.temperature))


def _frozen(a: Any, dtype: Any, name: str) -> np.ndarray:
    """``a`` as a read-only 1-D C-contiguous array of ``dtype`` that no other array can write:
    kept when it already is one owning its data, else copied."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {a.shape}")
    if a.flags.writeable or not a.flags.owndata or not a.flags.c_contiguous:
        a = np.array(a, dtype=dtype, order="C", copy=True)
        a.setflags(write=False)
    return a


@dataclass(frozen=True)
class PreparedPool:
    """A pool's weights and alias table, built once by :meth:`ImportanceSampler.prepare`.

    Pass it instead of ``q_pool`` to the sampling methods: each batch then costs O(B) with
    replacement (alias method). Without replacement a batch costs O(N) (exponential keys).

    Built by :meth:`ImportanceSampler.prepare`; one built by hand is validated at
    construction (``ValueError``/``TypeError`` naming the field) and its arrays are stored
    read-only, so a pool that exists is one the draw kernels can index safely.

    Attributes
    ----------
    weights : (N,) float64, normalised draw probabilities
    table : (N,) uint64 alias table (alias index << 32 | acceptance probability · 2**32)
    n_positive, n_nan : ints
    q_abs_mean, q_abs_min : floats over the finite |q| (NaN if none)
    valid_index : (M,) int64 indices of the non-NaN q, or None when every q is a number
    params : the (min_q_abs, weight_power, 1/max_weight, 1/temperature) used
    """

    weights: np.ndarray
    table: np.ndarray
    n_positive: int
    n_nan: int
    q_abs_mean: float
    q_abs_min: float
    valid_index: np.ndarray | None
    params: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        """Validate every field once (the draw kernels index with ``table`` and
        ``valid_index`` unchecked) and freeze the arrays: they are stored read-only (copied
        unless already read-only arrays owning their data), so the checks stay true."""
        w = _frozen(self.weights, np.float64, "weights")
        n = w.shape[0]
        if n == 0 or n >= 2 ** 32:
            raise ValueError(f"weights must have between 1 and 2**32 - 1 entries, got {n}")
        if not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError("weights must be finite and >= 0")
        n_pos = int(np.count_nonzero(w))
        if n_pos == 0:
            raise ValueError("weights: no point has a positive weight")
        table = _frozen(self.table, np.uint64, "table")
        if table.shape != (n,):
            raise ValueError(f"table must have shape ({n},) like weights, got {table.shape}")
        if int((table >> np.uint64(32)).max()) >= n:
            raise ValueError(f"table holds alias indices outside [0, {n})")
        npos = check_int(self.n_positive, "n_positive", minimum=0)
        if npos != n_pos:
            raise ValueError(f"n_positive must be the number of positive weights ({n_pos}), got {npos}")
        n_nan = check_int(self.n_nan, "n_nan", minimum=0, maximum=n)
        valid = self.valid_index
        if n_nan == 0:
            if valid is not None:
                raise ValueError("valid_index must be None when n_nan is 0")
        else:
            if valid is None:
                raise ValueError("valid_index must list the non-NaN points when n_nan > 0")
            valid = _frozen(valid, np.int64, "valid_index")
            if valid.shape != (n - n_nan,):
                raise ValueError(f"valid_index must have n - n_nan = {n - n_nan} entries, "
                                 f"got shape {valid.shape}")
            if valid.size and (valid[0] < 0 or valid[-1] >= n or np.any(np.diff(valid) <= 0)):
                raise ValueError(f"valid_index must be increasing indices in [0, {n})")
        try:
            params = tuple(float(v) for v in self.params)
        except (TypeError, ValueError) as exc:
            raise TypeError("params must be 4 numbers") from exc
        if len(params) != 4 or not all(np.isfinite(params)):
            raise ValueError(f"params must be 4 finite numbers, got {self.params!r}")
        for name, v in (("q_abs_mean", self.q_abs_mean), ("q_abs_min", self.q_abs_min)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name} must be a float, got {type(v).__name__}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "n_positive", npos)
        object.__setattr__(self, "n_nan", n_nan)
        object.__setattr__(self, "valid_index", valid if n_nan else None)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "q_abs_mean", float(self.q_abs_mean))
        object.__setattr__(self, "q_abs_min", float(self.q_abs_min))

    @property
    def size(self) -> int:
        """Number of pool points N."""
        return int(self.weights.shape[0])

    def __len__(self) -> int:
        return self.size


@dataclass
class _Scan:
    """Result of one weights pass over a pool (internal)."""

    n: int
    q: np.ndarray | None
    extra: np.ndarray | None
    weights: np.ndarray | None
    block_cum: np.ndarray | None
    last_block: int
    total: float
    n_positive: int
    n_nan: int
    prepared: PreparedPool | None = None


class ImportanceSampler:
    """Draw pool indices with probability ∝ min(max(|q|, min_q_abs)^-p, max_weight)^(1/T).

    Parameters
    ----------
    config : ImportanceSamplerConfig, optional
    rng : numpy Generator, int seed or SeedSequence, optional; overrides ``config.seed``
    track_counts : bool, default True; keep per-index sample counts (as long as the largest pool
        seen) for :meth:`get_statistics` and :attr:`sample_counts`. They are kept in two levels,
        a uint16 word per index that every draw updates and an int64 word that takes 32768 at a
        time when the first fills, so the random updates of a batch touch 2 bytes per point.

    Examples
    --------
    >>> sampler = ImportanceSampler(ImportanceSamplerConfig(weight_power=2.0, seed=0))
    >>> batch_x, idx = sampler.sample_batch(x_pool, q_pool, batch_size=128)   # doctest: +SKIP
    >>> prepared = sampler.prepare(q_pool)                                    # doctest: +SKIP
    >>> batch_x, idx = sampler.sample_batch(x_pool, prepared, batch_size=128) # doctest: +SKIP
    """

    def __init__(self, config: ImportanceSamplerConfig | None = None, *, rng: Any = None,
                 track_counts: bool = True) -> None:
        self.config = check_config(config, ImportanceSamplerConfig)
        self._check_config()
        self.rng = _make_rng(self.config.seed if rng is None else rng)
        self.track_counts = bool(track_counts)
        self.reset_statistics()

    def _check_config(self) -> None:
        """Re-validate the config when one of its fields changed since the last check."""
        c = self.config
        key = (c.weight_power, c.min_q_abs, c.max_weight, c.temperature,
               c.importance_batch_ratio, c.replacement, c.nan_policy)
        if key != getattr(self, "_valid_key", None):
            c.validate()
            self._valid_key = key
            self._params = c.weight_params()

    # ------------------------------------------------------------------------ statistics
    def reset_statistics(self) -> None:
        """Forget sample counts and the recorded |q| statistics."""
        self._low = np.zeros(0, dtype=np.uint16)  # two-level counts: high + low
        self._high = np.zeros(0, dtype=np.int64)
        self.total_samples = 0
        self._unique = 0
        self._q_stats: tuple[float, float] | None = (0.0, 0.0)
        self._q_ref: np.ndarray | None = None
        self._q_key: Any = None

    def _grow_counts(self, n: int) -> None:
        """Grow the two-level counts to at least n entries."""
        m = self._low.shape[0]
        if m < n:
            low, high = np.zeros(n, dtype=np.uint16), np.zeros(n, dtype=np.int64)
            low[:m], high[:m] = self._low, self._high
            self._low, self._high = low, high

    def _set_counts(self, counts: np.ndarray) -> None:
        """Store int64 counts in two levels (low in [1, SPILL] where a count is positive)."""
        self._low = np.minimum(counts, _kw.SPILL).astype(np.uint16)
        self._high = counts - self._low

    def _record(self, idx: np.ndarray, n: int) -> None:
        self.total_samples += int(idx.shape[0])
        if not self.track_counts:
            return
        self._grow_counts(n)
        if _parallel(idx.shape[0]):
            new = _kw.accumulate_counts(self._low, self._high, idx, numba.get_num_threads())
        else:
            new = _kw.accumulate_counts_serial(self._low, self._high, idx)
        self._unique += int(new)

    @property
    def sample_counts(self) -> np.ndarray:
        """Per-index sample counts (a new read-only int64 array, length of the largest pool
        seen)."""
        counts = self._high + self._low
        counts.flags.writeable = False
        return counts

    def get_statistics(self) -> dict[str, Any]:
        """Upstream's keys: total_samples, unique_samples, max_sample_count, min_sample_count,
        sample_diversity (unique/total), mean_q_abs, min_q_abs ({} before any draw).

        Counts cover every drawn index (hybrid batches included). ``mean_q_abs``/``min_q_abs``
        are the mean and min of the finite |q| of the most recent pool (upstream: signed q).
        """
        if self.total_samples == 0:
            return {}
        if self.track_counts and self._unique:
            counts = self.sample_counts
            nz = counts[counts > 0]
            max_c, min_c = int(nz.max()), int(nz.min())
        else:
            max_c = min_c = 0
        return {
            "total_samples": int(self.total_samples),
            "unique_samples": int(self._unique),
            "max_sample_count": max_c,
            "min_sample_count": min_c,
            "sample_diversity": self._unique / max(1, self.total_samples),
            "mean_q_abs": self._pool_q_stats()[0],
            "min_q_abs": self._pool_q_stats()[1],
        }

    def _note_pool(self, q: np.ndarray) -> None:
        """Remember the pool whose |q| statistics :meth:`get_statistics` reports.

        They are computed on demand, once per pool array. The sampler keeps a reference to the
        most recent pool (so a new array cannot reuse its address); an array changed in place
        keeps its cached values."""
        key = (q.__array_interface__["data"][0], q.shape, q.dtype.str)
        if key != self._q_key:
            self._q_key, self._q_ref, self._q_stats = key, q, None

    def _pool_q_stats(self) -> tuple[float, float]:
        if self._q_stats is None:
            self._q_stats = _abs_stats(self._q_ref)
        return self._q_stats

    # ---------------------------------------------------------------------------- weights
    def _scan(self, q: np.ndarray, extra: np.ndarray | None, write_weights: bool,
              name: str = "q_pool") -> _Scan:
        """One kernel pass: block prefix sums, NaN/positive counts and |q| statistics."""
        self._check_config()
        n = q.shape[0]
        block = np.empty((n + _kw.BLOCK - 1) // _kw.BLOCK, dtype=np.float64)
        stats = np.empty(((n + CHUNK - 1) // CHUNK, _kw.N_STATS), dtype=np.float64)
        w = np.empty(n, dtype=np.float64) if write_weights else _DUMMY
        use_extra = extra is not None
        kernel = _kw.weight_block_sums if _parallel(n) else _kw.weight_block_sums_serial
        kernel(q, extra if use_extra else _DUMMY, use_extra, *self._params, w, write_weights,
               block, stats)
        n_nan = int(stats[:, _kw.STAT_NAN].sum())
        if n_nan and self.config.nan_policy == "raise":
            raise ValueError(
                f"{name} contains {n_nan} NaN value(s); use nan_policy='omit' to give them weight 0"
            )
        self._note_pool(q)
        last_block = int(_kw.cumulative_sum(block, block))
        return _Scan(n=n, q=q, extra=extra, weights=w if write_weights else None,
                     block_cum=block, last_block=last_block, total=float(block[-1]),
                     n_positive=int(stats[:, _kw.STAT_POSITIVE].sum()), n_nan=n_nan)

    def _extra(self, sample_weights: Any, n: int) -> np.ndarray | None:
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

    def compute_weights(self, x_or_q: Any, q_values: Any = None, *,
                        sample_weights: Any = None) -> np.ndarray:
        """Normalised importance weights, shape (N,), float64.

        Call as ``compute_weights(q_values)`` or, upstream style, ``compute_weights(x, q)``
        (x is ignored). ``sample_weights`` (N,) multiplies the weights before normalising.
        Raises ``ValueError`` if no point has a positive weight.
        """
        q = _as_pool_q(x_or_q if q_values is None else q_values, "q_values")
        scan = self._scan(q, self._extra(sample_weights, q.shape[0]), True, "q_values")
        if not scan.total > 0:
            raise ValueError("q_values: no point has a positive weight")
        _normalise(scan.weights, scan.total)
        return scan.weights

    def prepare(self, q_pool: Any, *, sample_weights: Any = None) -> PreparedPool:
        """Build the weights and alias table of a fixed pool once (O(N)).

        Later draws from the returned :class:`PreparedPool` cost O(B) per batch with
        replacement. Re-prepare after changing the config or the pool.
        """
        if isinstance(q_pool, PreparedPool):
            return q_pool
        q = _as_pool_q(q_pool)
        scan = self._scan(q, self._extra(sample_weights, q.shape[0]), True)
        if not scan.total > 0:
            raise ValueError("q_pool: no point has a positive weight")
        w = scan.weights
        lo = scan.last_block * _kw.BLOCK
        fallback = lo + int(np.flatnonzero(w[lo: lo + _kw.BLOCK] > 0)[-1])
        if scan.n >= 2 ** 32:
            raise ValueError("q_pool: prepare() supports pools of fewer than 2**32 points")
        table = np.empty(scan.n, dtype=np.uint64)
        _kw.build_alias_table(w, scan.total, fallback, table)
        _normalise(w, scan.total)
        valid = np.flatnonzero(~np.isnan(q)) if scan.n_nan else None
        for a in (w, table, valid):
            if a is not None:
                a.setflags(write=False)  # ours: the pool keeps them without a copy
        return PreparedPool(weights=w, table=table, n_positive=scan.n_positive, n_nan=scan.n_nan,
                            q_abs_mean=self._pool_q_stats()[0],
                            q_abs_min=self._pool_q_stats()[1],
                            valid_index=valid, params=self._params)

    def _use_prepared(self, pool: PreparedPool, sample_weights: Any) -> None:
        """Check that ``pool`` fits the current config and note its |q| statistics."""
        if sample_weights is not None:
            raise ValueError("sample_weights: pass them to prepare(), not with a PreparedPool")
        if pool.params != self._params:
            raise ValueError("q_pool was prepared with other weight parameters; prepare it again")
        self._q_key, self._q_ref = ("prepared", id(pool)), None
        self._q_stats = (pool.q_abs_mean, pool.q_abs_min)

    def _source(self, q_pool: Any, sample_weights: Any, need_weights: bool) -> _Scan:
        if isinstance(q_pool, PreparedPool):
            self._use_prepared(q_pool, sample_weights)
            return _Scan(n=q_pool.size, q=None, extra=None, weights=q_pool.weights,
                         block_cum=None, last_block=-1, total=1.0,
                         n_positive=q_pool.n_positive, n_nan=q_pool.n_nan, prepared=q_pool)
        q = _as_pool_q(q_pool)
        scan = self._scan(q, self._extra(sample_weights, q.shape[0]), need_weights)
        if not scan.total > 0:
            raise ValueError("q_pool: no point has a positive weight")
        return scan

    # ------------------------------------------------------------------------------ draws
    def _stream_key(self) -> np.uint64:
        """Key of a batch's stream of uniforms: one raw 64-bit word of the generator."""
        return np.uint64(self.rng.bit_generator.random_raw())

    def _alias_draws(self, pool: PreparedPool, k: int, count: bool) -> np.ndarray:
        """k alias-method draws from ``pool``; with ``count``, recorded in the statistics by
        the same kernel call."""
        out = np.empty(k, dtype=np.int64)
        track = count and self.track_counts
        if track:
            self._grow_counts(pool.size)
        # one thread up to 2**17 draws: B = 65536 from N = 10**6 takes ~0.26 ms there, while
        # a parallel region that waits for a busy core costs a scheduler slice (~8 ms)
        if _parallel(k):
            new = _kw.draw_alias(pool.table, self._stream_key(), out, self._low, self._high,
                                 track, numba.get_num_threads())
        else:
            new = _kw.draw_alias_serial(pool.table, self._stream_key(), out, self._low,
                                        self._high, track)
        if count:
            self.total_samples += k
            self._unique += new
        return out

    def _draw(self, src: _Scan, k: int, replacement: bool) -> np.ndarray:
        """k weighted indices from a scanned or prepared pool (no statistics)."""
        if k == 0:
            return np.empty(0, dtype=np.int64)
        if replacement and src.prepared is not None:
            return self._alias_draws(src.prepared, k, False)
        out = np.empty(k, dtype=np.int64)
        if replacement:
            kernel = _kw.draw_block_cdf if _parallel(k * 4) else _kw.draw_block_cdf_serial
            extra = src.extra if src.extra is not None else _DUMMY
            kernel(src.q, extra, src.extra is not None, *self._params, src.block_cum,
                   src.last_block, self._stream_key(), out)
            return out
        if k > src.n_positive:
            raise ValueError(
                f"batch_size: {k} draws without replacement exceed the {src.n_positive} "
                "points with a positive weight"
            )
        return self._smallest_keys(src.weights, k, None)

    def _smallest_keys(self, weights: np.ndarray, k: int, excluded: np.ndarray | None) -> np.ndarray:
        """Indices of the k smallest exponential keys e/w, in increasing key order."""
        n = weights.shape[0]
        keys = np.empty(n, dtype=np.float64)
        (_kw.exponential_keys if _parallel(n) else _kw.exponential_keys_serial)(
            weights, self._stream_key(), keys)
        if excluded is not None:
            keys[excluded] = np.inf
        part = np.argpartition(keys, k - 1)[:k]
        return part[np.argsort(keys[part], kind="stable")].astype(np.int64, copy=False)

    def sample_indices(self, q_pool: Any, batch_size: int, *, sample_weights: Any = None,
                       replacement: bool | None = None) -> np.ndarray:
        """Draw ``batch_size`` pool indices, shape (B,), int64.

        Parameters
        ----------
        q_pool : (N,) array-like of Q values, or a :class:`PreparedPool`
        batch_size : int >= 1
        sample_weights : (N,) array-like >= 0, optional; multiplies the weights (e.g. a
            curriculum), so indices are drawn ∝ w(q)·sample_weights
        replacement : bool, optional; defaults to ``config.replacement``. Without replacement
            the indices are distinct and ordered as successive weighted draws.
        """
        batch_size = check_draws(batch_size, "batch_size")
        self._check_config()
        repl = self.config.replacement if replacement is None else bool(replacement)
        if repl and isinstance(q_pool, PreparedPool):  # the repeated-draws path: one kernel call
            self._use_prepared(q_pool, sample_weights)
            return self._alias_draws(q_pool, batch_size, True)
        src = self._source(q_pool, sample_weights, need_weights=not repl)
        idx = self._draw(src, batch_size, repl)
        self._record(idx, src.n)
        return idx

    def sample_index_batches(self, q_pool: Any, n_batches: int, batch_size: int) -> np.ndarray:
        """``n_batches`` successive :meth:`sample_indices` draws of ``batch_size`` (same
        indices, statistics and generator state), shape (n_batches, batch_size), int64; with
        replacement from a :class:`PreparedPool` in one kernel call."""
        n_batches = check_int(n_batches, "n_batches", minimum=0)
        batch_size = check_draws(batch_size, "batch_size")
        check_draws(n_batches * batch_size, "n_batches * batch_size", minimum=0)
        self._check_config()
        if not (self.config.replacement and isinstance(q_pool, PreparedPool)):
            out = np.empty((n_batches, batch_size), dtype=np.int64)
            for b in range(n_batches):
                out[b] = self.sample_indices(q_pool, batch_size)
            return out
        self._use_prepared(q_pool, None)
        keys = self.rng.bit_generator.random_raw(n_batches)  # one stream key per batch
        out = np.empty((n_batches, batch_size), dtype=np.int64)
        if self.track_counts:
            self._grow_counts(q_pool.size)
        self._unique += int(_kw.draw_alias_batches(q_pool.table, keys, out, self._low,
                                                   self._high, self.track_counts))
        self.total_samples += n_batches * batch_size
        return out

    def sample_batch(self, x_pool: Any, q_pool: Any, batch_size: int, *,
                     sample_weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Importance-sampled batch: ``(x_pool[idx], idx)``.

        ``x_pool`` is (N,) or (N, d) (any array-like; the batch is a NumPy array); ``q_pool``
        is (N,) or a :class:`PreparedPool`. See :meth:`sample_indices` for the rest.
        """
        n = q_pool.size if isinstance(q_pool, PreparedPool) else len(_as_pool_q(q_pool))
        x = _as_pool_x(x_pool, n)
        idx = self.sample_indices(q_pool, batch_size, sample_weights=sample_weights)
        return x[idx], idx

    def hybrid_sample(self, x_pool: Any, q_pool: Any, batch_size: int, *,
                      sample_weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``floor(B·importance_batch_ratio)`` importance draws + the rest uniform, shuffled.

        Uniform draws cover the points with a non-NaN q. Without replacement every index of
        the batch is distinct. Returns ``(x_pool[idx], idx)`` and updates the statistics.
        """
        batch_size = check_draws(batch_size, "batch_size")
        self._check_config()
        n = q_pool.size if isinstance(q_pool, PreparedPool) else len(_as_pool_q(q_pool))
        x = _as_pool_x(x_pool, n)
        n_imp = int(batch_size * self.config.importance_batch_ratio)
        n_uni = batch_size - n_imp
        repl = bool(self.config.replacement)
        src = self._source(q_pool, sample_weights, need_weights=not repl)
        valid: np.ndarray | None = None
        if src.n_nan:
            if src.prepared is not None:
                valid = src.prepared.valid_index
            else:
                valid = np.flatnonzero(~np.isnan(src.q))
        n_valid = n if valid is None else valid.shape[0]
        if not repl and batch_size > n_valid:
            raise ValueError(
                f"batch_size: {batch_size} distinct draws exceed the {n_valid} usable pool points"
            )
        imp = self._draw(src, n_imp, repl)
        if n_uni == 0:
            uni = np.empty(0, dtype=np.int64)
        elif repl:
            uni = self.rng.integers(0, n_valid, size=n_uni, dtype=np.int64)
            if valid is not None:
                uni = valid[uni]
        else:
            if valid is None:
                flat = np.ones(n, dtype=np.float64)
            else:
                flat = np.zeros(n, dtype=np.float64)
                flat[valid] = 1.0
            uni = self._smallest_keys(flat, n_uni, imp)
        idx = np.concatenate([imp, uni])[self.rng.permutation(batch_size)]
        self._record(idx, n)
        return x[idx], idx

    # ------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Config, generator state and statistics (plain Python / NumPy values)."""
        return {
            "config": asdict(self.config),
            "rng_state": _rng_state(self.rng),
            "sample_counts": np.array(self.sample_counts),
            "total_samples": int(self.total_samples),
            "unique_samples": int(self._unique),
            "q_abs_mean": self._pool_q_stats()[0],
            "q_abs_min": self._pool_q_stats()[1],
            "track_counts": self.track_counts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; the generator continues the saved stream.

        Everything is validated before anything is assigned: on an error (``ValueError`` /
        ``TypeError`` naming the entry) the sampler is unchanged."""
        state = _state_mapping(state, ("config", "rng_state", "sample_counts", "total_samples",
                                       "unique_samples", "q_abs_mean", "q_abs_min"))
        config = ImportanceSamplerConfig(**_config_fields(state["config"], ImportanceSamplerConfig))
        bit_generator_from_state(state["rng_state"])
        counts = _int_array(state["sample_counts"], "sample_counts")
        total = check_int(_scalar_item(state["total_samples"]), "total_samples", minimum=0)
        unique = check_int(_scalar_item(state["unique_samples"]), "unique_samples", minimum=0)
        if counts.size and int(counts.sum()) > total:
            raise ValueError("sample_counts sum to more than total_samples")
        if unique != int(np.count_nonzero(counts)):
            raise ValueError("unique_samples must be the number of positive sample_counts")
        q_stats = tuple(_stat_float(state[k], k) for k in ("q_abs_mean", "q_abs_min"))
        track = state.get("track_counts", True)
        if not isinstance(track, (bool, np.bool_)):
            raise TypeError(f"track_counts must be a bool, got {type(track).__name__}")
        # commit (nothing below can fail)
        self.config = config
        self.rng = _restore_rng(self.rng, state["rng_state"])
        self._set_counts(counts)
        self.total_samples = total
        self._unique = unique
        self._q_stats = q_stats
        self._q_ref, self._q_key = None, ("restored", id(state))
        self.track_counts = bool(track)
        self._valid_key = None
        self._check_config()


# ============================================================================== active
@dataclass
class ActiveSamplerConfig:
    """Settings of :class:`ActiveSampler` (upstream's fields and defaults, plus ``seed``).

    Attributes
    ----------
    initial_grid_size : int >= 1 (initial cells: the largest m**d <= it, m per axis)
    grid_bounds : (lo, hi) for every axis, or one (lo, hi) pair per axis; lo < hi; or None
        (default): the range of the first pool an :class:`IntegratedSampler` sees, and
        upstream's (−3, 3) for an ActiveSampler on its own
    refinement_threshold : float >= 0 (cells with |Q| < it are split; with
        ``relative_threshold`` in units of the median |Q| over the initial cells)
    relative_threshold : bool (default True; False: an absolute |Q| as upstream)
    max_refinement_level : int >= 0
    refinement_ratio : int >= 1 (1-D: a split makes 2·ratio children; n-D: 2 per axis)
    adapt_frequency : int >= 1 (epochs between refinements in :class:`IntegratedSampler`)
    min_points_per_region : accepted for compatibility, unused (as upstream)
    max_grid_points : int >= initial_grid_size (hard cap on the number of cells)
    seed : int >= 0 or None
    """

    initial_grid_size: int = 100
    grid_bounds: Any = None
    refinement_threshold: float = 0.1
    max_refinement_level: int = 5
    refinement_ratio: int = 3
    adapt_frequency: int = 10
    min_points_per_region: int = 5
    max_grid_points: int = 10000
    seed: int | None = None
    relative_threshold: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first invalid field."""
        n0 = check_int(self.initial_grid_size, "initial_grid_size", minimum=1)
        self.bounds_array(None)
        check_nonnegative(self.refinement_threshold, "refinement_threshold")
        check_int(self.max_refinement_level, "max_refinement_level", minimum=0)
        check_int(self.refinement_ratio, "refinement_ratio", minimum=1)
        check_int(self.adapt_frequency, "adapt_frequency", minimum=1)
        cap = check_int(self.max_grid_points, "max_grid_points", minimum=1)
        if cap < n0:
            raise ValueError(
                f"max_grid_points must be >= initial_grid_size ({n0}), got {cap}"
            )
        _check_seed(self.seed)

    def bounds_array(self, dim: int | None) -> np.ndarray:
        """Bounds as a (dim, 2) float64 array (validated; dim=None only validates)."""
        b = (-3.0, 3.0) if self.grid_bounds is None else self.grid_bounds
        if np.ndim(b) == 1:
            lo, hi = check_bounds(b, "grid_bounds")
            rows = np.array([[lo, hi]])
            if dim is not None:
                rows = np.repeat(rows, dim, axis=0)
            return rows
        if np.ndim(b) != 2 or np.shape(b)[1] != 2:
            raise ValueError(f"grid_bounds must be (lo, hi) or a sequence of (lo, hi) pairs, got {b!r}")
        rows = np.array([check_bounds(pair, f"grid_bounds[{i}]") for i, pair in enumerate(b)])
        if dim is not None and rows.shape[0] != dim:
            raise ValueError(f"grid_bounds has {rows.shape[0]} pairs but input_dim is {dim}")
        return rows


class ActiveSampler:
    """Adaptive grid of axis-aligned cells, split where |Q| is small.

    The grid is a structured array (:func:`zeroproof_nb.kernels.refine.cell_dtype`): ``center``
    (d,), ``half_width`` (d,), ``level``, ``q_abs`` (last |Q| at the centre, NaN if unknown) and
    ``refined``. Initially m**d equal cells tile the bounds (m per axis, the largest m with
    m**d <= initial_grid_size). :meth:`refine` splits every unrefined cell with
    |Q| < refinement_threshold and level < max_refinement_level into children that tile it
    (1-D: 2·refinement_ratio equal parts; n-D: halves along every axis, 2**d children). The
    parent stays in the grid marked ``refined`` and is never split again. The number of cells
    never exceeds ``max_grid_points``: when the cap binds, the cells with the smallest |Q| are
    split first and the others wait.

    Parameters
    ----------
    config : ActiveSamplerConfig, optional
    input_dim : int >= 1
    rng : numpy Generator, int seed or SeedSequence, optional; overrides ``config.seed``
    """

    def __init__(self, config: ActiveSamplerConfig | None = None, input_dim: int = 1, *,
                 rng: Any = None) -> None:
        config = check_config(config, ActiveSamplerConfig)
        config.validate()
        self._input_dim = check_int(input_dim, "input_dim", minimum=1, maximum=MAX_GRID_DIM)
        check_alloc(min(int(config.max_grid_points), 1024), _kr.cell_dtype(1).itemsize
                    + 16 * (self._input_dim - 1), "input_dim")
        self.config = config
        self.rng = _make_rng(config.seed if rng is None else rng)
        self._build_initial_grid()

    @property
    def input_dim(self) -> int:
        """Dimension d of the grid (read-only: it sizes the cells the kernels write; build a
        new sampler for another dimension)."""
        return self._input_dim

    @property
    def config(self) -> ActiveSamplerConfig:
        """The settings; a new config is validated when assigned, and the config is validated
        again before each refinement (its fields size the kernels' work)."""
        return self._config

    @config.setter
    def config(self, value: ActiveSamplerConfig) -> None:
        if not isinstance(value, ActiveSamplerConfig):
            raise TypeError(f"config must be an ActiveSamplerConfig, got {type(value).__name__}")
        value.validate()
        if hasattr(self, "_input_dim"):
            value.bounds_array(self._input_dim)
        self._config = value

    # --------------------------------------------------------------------------- the grid
    @property
    def per_axis(self) -> int:
        """Parts per axis when a cell is split (2·refinement_ratio in 1-D, else 2)."""
        return 2 * int(self.config.refinement_ratio) if self.input_dim == 1 else 2

    @property
    def children_per_cell(self) -> int:
        """Children of one split: per_axis ** input_dim."""
        return self.per_axis ** self.input_dim

    def _build_initial_grid(self) -> None:
        d = self.input_dim
        n0 = int(self.config.initial_grid_size)
        m = max(1, int(round(n0 ** (1.0 / d))))
        while m > 1 and m ** d > n0:
            m -= 1
        while (m + 1) ** d <= n0:
            m += 1
        bounds = self.config.bounds_array(d)
        axes = []
        for lo, hi in bounds:
            edges = np.linspace(lo, hi, m + 1)
            axes.append(0.5 * (edges[:-1] + edges[1:]))
        # the m**d centres in "ij" order (last axis fastest), digit by digit: no meshgrid,
        # whose broadcasting stops at 32/64 dimensions
        n = m ** d
        centers = np.empty((n, d), dtype=np.float64)
        code = np.arange(n, dtype=np.int64)
        for k in range(d - 1, -1, -1):
            centers[:, k] = axes[k][code % m]
            code //= m
        cap = min(int(self.config.max_grid_points), max(2 * n, 1024))
        self._cells = np.zeros(cap, dtype=_kr.cell_dtype(d))
        self._cells["center"][:n] = centers
        self._cells["half_width"][:n] = (bounds[:, 1] - bounds[:, 0]) / (2.0 * m)
        self._cells["q_abs"][:n] = np.nan
        self._n = n
        self.refinement_history: list[dict[str, int]] = []

    def _reserve(self, needed: int) -> None:
        cap = self._cells.shape[0]
        if needed <= cap:
            return
        new_cap = min(int(self.config.max_grid_points), max(needed, 2 * cap))
        grown = np.zeros(new_cap, dtype=self._cells.dtype)
        grown[: self._n] = self._cells[: self._n]
        self._cells = grown

    @property
    def cells(self) -> np.ndarray:
        """The grid: structured array view, one row per cell (do not resize it)."""
        return self._cells[: self._n]

    @property
    def n_cells(self) -> int:
        return self._n

    def points(self) -> np.ndarray:
        """Centres of all cells (refined parents included), shape (n, d), float64."""
        return self._cells["center"][: self._n].copy()

    def get_current_grid(self) -> np.ndarray:
        """Upstream's name for :meth:`points`."""
        return self.points()

    def leaf_indices(self) -> np.ndarray:
        """Indices of the unrefined cells (they tile the bounds)."""
        return np.flatnonzero(~self._cells["refined"][: self._n])

    # ---------------------------------------------------------------------------- refine
    def _q_abs_from(self, q: Any) -> np.ndarray:
        n = self._n
        if callable(q):
            vals = np.asarray(q(self.points()))
            if vals.dtype.kind not in "biuf":
                raise TypeError(f"q must return real numbers, got dtype {vals.dtype}")
            vals = vals.astype(np.float64, copy=False)
        else:
            vals = as_float_array(q, "q", ndim=(1, 2), dtype=np.float64)
        if vals.size != n or (vals.ndim == 2 and vals.shape[1] != 1):
            raise ValueError(f"q must give one value per grid point ({n}), got shape {vals.shape}")
        return np.abs(vals.reshape(n))

    def refine(self, q: Any) -> dict[str, int]:
        """Split the cells where |Q| < refinement_threshold (times the median |Q| over the
        initial cells with ``relative_threshold``, so that the threshold follows the scale of
        Q rather than its units).

        Parameters
        ----------
        q : (n,) array of Q (or |Q|) at :meth:`points`, or a callable mapping an (n, d) array of
            points to (n,) Q values. NaN marks an unknown value (that cell is not split).

        Returns
        -------
        dict ``{"n_refined", "n_added", "total_points"}``, also appended to
        ``refinement_history``.
        """
        self.config = self._config  # re-validated: its fields size the split
        qa = self._q_abs_from(q)
        n = self._n
        cells = self._cells
        cells["q_abs"][:n] = qa
        threshold = self.config.refinement_threshold
        if self.config.relative_threshold:
            # the scale: median |Q| over the initial cells (they tile the bounds evenly, so
            # it does not drift as cells near the poles are added)
            base = qa[(cells["level"][:n] == 0) & np.isfinite(qa)]
            threshold = threshold * (float(np.median(base)) if base.size else 0.0)
        with np.errstate(invalid="ignore"):
            mask = (~cells["refined"][:n]) & (cells["level"][:n] < self.config.max_refinement_level) \
                & (qa < threshold)
        cand = np.flatnonzero(mask)
        per_cell = self.children_per_cell
        budget = (int(self.config.max_grid_points) - n) // per_cell
        if cand.shape[0] > budget:
            chosen = cand[np.argsort(qa[cand], kind="stable")[: max(budget, 0)]]
            cand = np.sort(chosen)
        k = int(cand.shape[0])
        if k:
            self._reserve(n + k * per_cell)
            cells = self._cells
            kernel = _kr.split_cells if _parallel(k * per_cell) else _kr.split_cells_serial
            kernel(cells["center"], cells["half_width"], cells["level"], cells["q_abs"],
                   cells["refined"], cand.astype(np.int64), self.per_axis, n)
            self._n = n + k * per_cell
        entry = {"n_refined": k, "n_added": k * per_cell, "total_points": self._n}
        self.refinement_history.append(entry)
        return dict(entry)

    # ---------------------------------------------------------------------------- sample
    def sample(self, n: int, rng: Any = None, *, return_cells: bool = False):
        """Draw n points: a leaf cell uniformly at random, then a point uniformly inside it.

        Small cells (near the poles) are therefore sampled densely. Returns an (n, d) float64
        array, and the (n,) cell indices when ``return_cells``.
        """
        n = check_draws(n, "n")
        check_alloc(n * (self.input_dim + 1), 8, "n")
        r = self.rng if rng is None else _make_rng(rng)
        leaves = self.leaf_indices()
        cells = leaves[r.integers(0, leaves.shape[0], size=n)]
        u = r.random((n, self.input_dim))
        out = np.empty((n, self.input_dim), dtype=np.float64)
        _kr.points_in_cells(self._cells["center"], self._cells["half_width"], cells, u, out)
        return (out, cells) if return_cells else out

    def get_statistics(self) -> dict[str, Any]:
        """Upstream's keys, on |Q|: total_points, max_refinement_level, refinement_events,
        near_pole_points (cells whose last |Q| < threshold), mean_q_abs (over cells with a
        known |Q|); plus leaf_points."""
        n = self._n
        qa = self._cells["q_abs"][:n]
        known = qa[~np.isnan(qa)]
        return {
            "total_points": int(n),
            "max_refinement_level": int(self._cells["level"][:n].max()),
            "refinement_events": len(self.refinement_history),
            "near_pole_points": int(np.count_nonzero(known < self.config.refinement_threshold)),
            "mean_q_abs": float(known.mean()) if known.size else 0.0,
            "leaf_points": int(n - np.count_nonzero(self._cells["refined"][:n])),
        }

    # ------------------------------------------------------------------------ pool helpers
    def refine_from_pool(self, x_pool: Any, q_pool: Any, *, tree: Any = None) -> dict[str, int]:
        """Refine with |Q| at each cell centre taken from the nearest pool point.

        Pool points with NaN q are skipped. ``tree`` may be a prebuilt ``scipy.spatial.cKDTree``
        over the usable pool points together with their indices, as returned by
        :meth:`pool_tree`.
        """
        q = _as_pool_q(q_pool)
        tree, usable = tree if tree is not None else self.pool_tree(x_pool, q)
        _, nearest = tree.query(self.points(), k=1)
        return self.refine(q[usable[nearest]])

    def pool_tree(self, x_pool: Any, q_pool: Any) -> tuple[Any, np.ndarray]:
        """(cKDTree over the pool points with a non-NaN q, their pool indices)."""
        from scipy.spatial import cKDTree

        q = _as_pool_q(q_pool)
        x = as_float_array(_as_pool_x(x_pool, q.shape[0]), "x_pool", ndim=(1, 2),
                           dtype=np.float64)
        x2 = x.reshape(x.shape[0], -1)
        if x2.shape[1] != self.input_dim:
            raise ValueError(f"x_pool has {x2.shape[1]} columns but input_dim is {self.input_dim}")
        if not np.all(np.isfinite(x2)):
            raise ValueError("x_pool must contain only finite values")
        usable = np.flatnonzero(~np.isnan(q))
        if usable.shape[0] == 0:
            raise ValueError("q_pool contains only NaN")
        return cKDTree(x2[usable]), usable

    def pool_leaves(self, x_pool: Any, q_pool: Any = None) -> np.ndarray:
        """Leaf of each pool point: its position in :meth:`leaf_indices` (−1 outside the grid,
        and for points with a NaN q when ``q_pool`` is given). Leaves tile the bounds; a point
        on a face shared by two leaves goes to one of them."""
        x = as_float_array(x_pool, "x_pool", ndim=(1, 2), dtype=np.float64)
        x2 = np.ascontiguousarray(x.reshape(x.shape[0], -1))
        if x2.shape[1] != self.input_dim:
            raise ValueError(f"x_pool has {x2.shape[1]} columns but input_dim is {self.input_dim}")
        leaves = self.leaf_indices()
        centre = self._cells["center"]
        half = self._cells["half_width"]
        out = np.full(x2.shape[0], -1, dtype=np.int64)
        if self.input_dim == 1:  # leaves are intervals: binary search over their lower edges
            lo = centre[leaves, 0] - half[leaves, 0]
            order = np.argsort(lo, kind="stable")
            pos = np.searchsorted(lo[order], x2[:, 0], side="right") - 1
            ok = pos >= 0
            cand = order[np.where(ok, pos, 0)]
            ok &= x2[:, 0] <= centre[leaves[cand], 0] + half[leaves[cand], 0]
            out[ok] = cand[ok]
        else:
            _kr.locate_in_cells(x2, np.ascontiguousarray(centre), np.ascontiguousarray(half),
                                leaves.astype(np.int64), out)
        if q_pool is not None:
            q = _as_pool_q(q_pool)
            if q.shape[0] != x2.shape[0]:
                raise ValueError(f"q_pool has {q.shape[0]} points but x_pool has {x2.shape[0]}")
            out[np.isnan(q)] = -1
        return out

    def _draw_table(self, x_pool: Any, q_pool: Any, tree: Any) -> tuple[np.ndarray, ...]:
        """(order, start, count, nearest) per leaf: the pool points of leaf k are
        ``order[start[k]:start[k] + count[k]]``; an empty leaf's stand-in is the usable pool
        point ``nearest[k]`` closest to its centre (−1 for leaves that hold points)."""
        q = _as_pool_q(q_pool)
        leaf = self.pool_leaves(x_pool, q)
        n_leaves = self.leaf_indices().shape[0]
        inside = np.flatnonzero(leaf >= 0)
        order = inside[np.argsort(leaf[inside], kind="stable")]
        count = np.bincount(leaf[order], minlength=n_leaves)
        start = np.concatenate(([0], np.cumsum(count)[:-1]))
        nearest = np.full(n_leaves, -1, dtype=np.int64)
        empty = np.flatnonzero(count == 0)
        if empty.size:
            tree, usable = tree if tree is not None else self.pool_tree(x_pool, q)
            centres = self._cells["center"][self.leaf_indices()[empty]]
            _, near = tree.query(centres, k=1)
            nearest[empty] = usable[np.asarray(near, dtype=np.int64)]
        return order, start, count, nearest

    def pool_draw_probabilities(self, x_pool: Any, q_pool: Any, *,
                                tree: Any = None) -> np.ndarray:
        """Probability of each pool point under one :meth:`sample_pool_indices` draw, shape
        (N,), summing to 1: with L leaves, 1/(L·n_c) for a point of a leaf c holding n_c pool
        points, plus 1/L for each empty leaf whose centre it is the nearest usable point to."""
        q = _as_pool_q(q_pool)
        order, start, count, nearest = self._draw_table(x_pool, q, tree)
        n_leaves = count.shape[0]
        p = np.zeros(q.shape[0])
        leaf_of = np.repeat(np.arange(n_leaves), count)
        p[order] = 1.0 / (n_leaves * count[leaf_of])
        stand_in = nearest[nearest >= 0]
        p += np.bincount(stand_in, minlength=q.shape[0]) / n_leaves
        return p

    def sample_pool_indices(self, x_pool: Any, q_pool: Any, n: int, *,
                            tree: Any = None) -> np.ndarray:
        """n draws of pool points: a leaf uniformly at random, then one of its pool points
        (with a non-NaN q) uniformly, or, for a leaf that holds none (the small cells right at
        a pole), the usable pool point nearest its centre. Small cells near the poles are
        drawn densely, every draw has a label, and the probability of each point is
        :meth:`pool_draw_probabilities`, so a batch can be re-weighted to the pool's loss.
        ``tree``: :meth:`pool_tree` of the pool, if already built."""
        n = check_draws(n, "n")
        order, start, count, nearest = self._draw_table(x_pool, q_pool, tree)
        leaf = self.rng.integers(0, count.shape[0], size=n)
        u = self.rng.random(n)
        c = count[leaf]
        offset = np.minimum((u * c).astype(np.int64), np.maximum(c - 1, 0))
        inner = order[np.minimum(start[leaf] + offset, max(order.shape[0] - 1, 0))] \
            if order.shape[0] else np.zeros(n, dtype=np.int64)
        return np.where(c > 0, inner, nearest[leaf]).astype(np.int64)

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Config, dimension, cells (copy), refinement history and generator state."""
        cfg = asdict(self.config)
        gb = self.config.grid_bounds
        cfg["grid_bounds"] = None if gb is None else np.asarray(gb, dtype=np.float64).tolist()
        return {
            "config": cfg,
            "input_dim": self.input_dim,
            "cells": self.cells.copy(),
            "refinement_history": [dict(e) for e in self.refinement_history],
            "rng_state": _rng_state(self.rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Everything (config, dimension, every cell, history, generator state) is validated
        before anything is assigned: on an error the sampler is unchanged."""
        state = _state_mapping(state, ("config", "input_dim", "cells", "refinement_history",
                                       "rng_state"))
        cfg = _config_fields(state["config"], ActiveSamplerConfig)
        gb = cfg.get("grid_bounds", (-3.0, 3.0))
        try:
            if gb is not None:
                cfg["grid_bounds"] = tuple(tuple(p) for p in gb) if np.ndim(gb) == 2 \
                    else tuple(gb)
        except TypeError as exc:
            raise TypeError(f"config['grid_bounds'] must be (lo, hi) pairs, got {gb!r}") from exc
        config = ActiveSamplerConfig(**cfg)
        dim = check_int(_scalar_item(state["input_dim"]), "input_dim", minimum=1,
                        maximum=MAX_GRID_DIM)
        bounds = config.bounds_array(dim)
        cells = state["cells"]
        if not isinstance(cells, np.ndarray) or cells.dtype != _kr.cell_dtype(dim) \
                or cells.ndim != 1:
            raise ValueError("cells must be a 1-D array of the cell dtype for input_dim")
        n = cells.shape[0]
        if not 1 <= n <= int(config.max_grid_points):
            raise ValueError(f"cells must hold 1 to max_grid_points cells, got {n}")
        c, hw, qa = cells["center"], cells["half_width"], cells["q_abs"]
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(hw)) and np.all(hw > 0)):
            raise ValueError("cells: centres and half-widths must be finite, half-widths > 0")
        if np.any(c - hw < bounds[:, 0] - 1e-9 * np.abs(bounds[:, 0]) - 1e-300) \
                or np.any(c + hw > bounds[:, 1] + 1e-9 * np.abs(bounds[:, 1]) + 1e-300):
            raise ValueError("cells must lie inside grid_bounds")
        lv = cells["level"]
        if np.any(lv < 0) or np.any(lv > config.max_refinement_level):
            raise ValueError("cells: levels must lie in [0, max_refinement_level]")
        if np.any(qa < 0) or np.any(np.isinf(qa)):
            raise ValueError("cells: q_abs must be >= 0 and finite, or NaN (unknown)")
        if np.all(cells["refined"]):
            raise ValueError("cells: at least one cell must be a leaf (unrefined)")
        hist = state["refinement_history"]
        if not isinstance(hist, list) or not all(
                isinstance(e, dict) and set(e) == {"n_refined", "n_added", "total_points"}
                and all(isinstance(v, numbers.Integral) and v >= 0 for v in e.values())
                for e in hist):
            raise ValueError("refinement_history must be a list of {n_refined, n_added, "
                             "total_points} dicts of integers >= 0")
        bit_generator_from_state(state["rng_state"])
        # commit (nothing below can fail)
        self._input_dim = dim
        self._config = config
        self._cells = cells.copy()
        self._n = n
        self.refinement_history = [{k: int(v) for k, v in e.items()} for e in hist]
        self.rng = _restore_rng(self.rng, state["rng_state"])


# ========================================================================== integrated
class IntegratedSampler:
    """Importance, active, uniform or hybrid batches from a labelled pool, plus diagnostics.

    ``sample_batch(x_pool, q_pool, batch_size, epoch)`` returns ``(batch_x, info)`` where
    ``info`` holds ``"strategy"``, ``"indices"`` (pool indices of the batch) and the
    component statistics:

    * uniform: indices uniform over the pool;
    * importance: :meth:`ImportanceSampler.sample_batch`; ``info["importance_stats"]``;
    * active: on the first call of an epoch with ``epoch % adapt_frequency == 0`` (or at
      :meth:`prepare_epoch`) the grid is refined with |Q| of the pool point nearest to each cell
      centre; then pool points are drawn by :meth:`ActiveSampler.sample_pool_indices` (a leaf
      uniformly, then one of its pool points, or the pool point nearest an empty leaf's centre),
      so every batch point has a label and a known probability; ``info["active_stats"]``;
    * hybrid: floor(B·importance_batch_ratio) importance draws and the rest active draws from
      the refined grid, shuffled (upstream's hybrid drew the rest uniformly and never sampled
      its grid); both stats.

    :meth:`draw_probabilities` gives the probability of each pool point under one draw, which
    the Trainer uses to re-weight batches to the pool's loss. With ``grid_bounds=None`` (the
    default) the grid covers the first pool's range.

    Parameters
    ----------
    strategy : SamplingStrategy or its string value
    importance_config, active_config, diagnostic_config : optional configs
    input_dim : int, dimension of the active grid (re-chosen from the first x_pool while the
        grid is still unrefined)
    seed : int or SeedSequence, optional; spawns independent streams for the importance sampler,
        the grid and the uniform draws (otherwise each component uses its config's seed)
    max_history : int, entries kept in ``sampling_history``
    """

    def __init__(self, strategy: SamplingStrategy | str = SamplingStrategy.HYBRID,
                 importance_config: ImportanceSamplerConfig | None = None,
                 active_config: ActiveSamplerConfig | None = None,
                 diagnostic_config: DiagnosticConfig | None = None, *, input_dim: int = 1,
                 seed: Any = None, max_history: int = 1000) -> None:
        try:
            self.strategy = SamplingStrategy(strategy)
        except ValueError:
            raise ValueError(
                f"strategy must be one of {[s.value for s in SamplingStrategy]}, got {strategy!r}"
            ) from None
        if seed is None:
            streams: list[Any] = [None, None, None]
        else:
            if not isinstance(seed, np.random.SeedSequence):
                _check_seed(seed)
                seed = np.random.SeedSequence(int(seed))
            streams = [np.random.default_rng(s) for s in seed.spawn(3)]
        self.importance_sampler = ImportanceSampler(importance_config, rng=streams[0])
        self.active_sampler = ActiveSampler(active_config, input_dim, rng=streams[1])
        self.diagnostic_monitor = DiagnosticMonitor(diagnostic_config)
        self.rng = streams[2] if streams[2] is not None else np.random.default_rng()
        self.sampling_history: deque[dict[str, Any]] = deque(
            maxlen=check_int(max_history, "max_history", minimum=1))
        self._last_refined_epoch: int | None = None

    def _active_for(self, x: np.ndarray) -> ActiveSampler:
        """The grid for pools like ``x``: re-built while unrefined for another dimension, and
        on the pool's range (per axis) when the config leaves ``grid_bounds`` None."""
        d = 1 if x.ndim == 1 else int(np.prod(x.shape[1:]))
        a = self.active_sampler
        if d != a.input_dim and a.refinement_history:
            raise ValueError(f"x_pool has dimension {d} but the grid has {a.input_dim}")
        config = a.config
        if config.grid_bounds is None and not a.refinement_history:
            x2 = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
            finite = np.all(np.isfinite(x2), axis=1)
            if finite.any():
                lo = x2[finite].min(axis=0)
                hi = x2[finite].max(axis=0)
                pad = np.where(hi > lo, 0.0, 1.0)
                bounds = tuple((float(u), float(v)) for u, v in zip(lo - pad, hi + pad))
                config = replace(config, grid_bounds=bounds[0] if d == 1 else bounds)
        if d != a.input_dim or config is not a.config:
            self.active_sampler = ActiveSampler(config, d, rng=a.rng)
        return self.active_sampler

    def _maybe_refine(self, active: ActiveSampler, x: np.ndarray, q: np.ndarray, epoch: int,
                      tree: Any = None) -> Any:
        if epoch % active.config.adapt_frequency == 0 and epoch != self._last_refined_epoch:
            tree = tree if tree is not None else active.pool_tree(x, q)
            active.refine_from_pool(x, q, tree=tree)
            self._last_refined_epoch = epoch
        return tree

    @property
    def draws_by_importance(self) -> bool:
        """Whether batches include importance draws (strategies importance and hybrid)."""
        return self.strategy in (SamplingStrategy.IMPORTANCE, SamplingStrategy.HYBRID)

    @property
    def draws_from_grid(self) -> bool:
        """Whether batches include active draws (strategies active and hybrid)."""
        return self.strategy in (SamplingStrategy.ACTIVE, SamplingStrategy.HYBRID)

    def prepare_epoch(self, x_pool: Any, q_pool: Any, epoch: int) -> None:
        """Refine the grid for ``epoch`` now (on adapt epochs; the first batch of the epoch
        would otherwise do it), so that :meth:`draw_probabilities` describes the epoch's
        draws."""
        if not self.draws_from_grid:
            return
        q = _as_pool_q(q_pool)
        x = _as_pool_x(x_pool, q.shape[0])
        self._maybe_refine(self._active_for(x), x, q, check_int(epoch, "epoch", minimum=0))

    def draw_probabilities(self, x_pool: Any, q_pool: Any,
                           prepared: PreparedPool | None = None) -> np.ndarray:
        """Probability p_i that one draw of :meth:`sample_batch` is pool point i, shape (N,):
        uniform 1/N; importance: the prepared weights (``prepared``, else those of
        ``q_pool``); active: :meth:`ActiveSampler.pool_draw_probabilities`; hybrid: the
        mixture r·p_importance + (1 − r)·p_active with r = ``importance_batch_ratio``. Without
        replacement these are the probabilities of the first draw."""
        q = _as_pool_q(q_pool)
        n = q.shape[0]
        if self.strategy is SamplingStrategy.UNIFORM:
            return np.full(n, 1.0 / n)
        p_imp = None
        if self.draws_by_importance:
            pool = prepared if prepared is not None else self.importance_sampler.prepare(q)
            if pool.size != n:
                raise ValueError(f"prepared has {pool.size} points but q_pool has {n}")
            p_imp = np.array(pool.weights, dtype=np.float64)
            if self.strategy is SamplingStrategy.IMPORTANCE:
                return p_imp
        x = _as_pool_x(x_pool, n)
        p_act = self._active_for(x).pool_draw_probabilities(x, q)
        if p_imp is None:
            return p_act
        ratio = float(self.importance_sampler.config.importance_batch_ratio)
        return ratio * p_imp + (1.0 - ratio) * p_act

    def prepare(self, q_pool: Any, *, sample_weights: Any = None) -> PreparedPool:
        """The importance sampler's :meth:`ImportanceSampler.prepare` of ``q_pool``: pass it
        as ``prepared=`` to :meth:`sample_batch` while the pool's Q stays the same (O(B)
        importance draws instead of O(N) per batch)."""
        return self.importance_sampler.prepare(q_pool, sample_weights=sample_weights)

    def sample_batch(self, x_pool: Any, q_pool: Any, batch_size: int, epoch: int = 0, *,
                     sample_weights: Any = None,
                     prepared: PreparedPool | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """One batch with the configured strategy: ``(batch_x, info)`` (see the class doc).

        ``sample_weights`` (N,) >= 0 multiplies the importance weights, e.g. a curriculum's;
        ``prepared`` (from :meth:`prepare` of this ``q_pool``, weights included) replaces the
        per-batch weight computation. Both act on importance draws, so they require the
        importance or hybrid strategy; ``q_pool`` is still read by the active grid."""
        batch_size = check_draws(batch_size, "batch_size")
        epoch = check_int(epoch, "epoch", minimum=0)
        if (sample_weights is not None or prepared is not None) and not self.draws_by_importance:
            raise ValueError(f"sample_weights and prepared act on importance draws; the "
                             f"{self.strategy.value!r} strategy makes none")
        if sample_weights is not None and prepared is not None:
            raise ValueError("sample_weights: pass them to prepare(), not with prepared")
        if prepared is not None and not isinstance(prepared, PreparedPool):
            raise TypeError(f"prepared must be a PreparedPool, got {type(prepared).__name__}")
        info: dict[str, Any] = {"strategy": self.strategy.value}
        imp = self.importance_sampler
        draw_q = prepared if prepared is not None else q_pool
        if self.strategy is SamplingStrategy.UNIFORM:
            x = np.asarray(x_pool)
            if x.ndim == 0 or x.shape[0] == 0:
                raise ValueError("x_pool must be a non-empty array of shape (N,) or (N, d)")
            if q_pool is not None:
                x = _as_pool_x(x, len(_as_pool_q(q_pool)))
            idx = self.rng.integers(0, x.shape[0], size=batch_size, dtype=np.int64)
            batch_x = x[idx]
        elif self.strategy is SamplingStrategy.IMPORTANCE:
            batch_x, idx = imp.sample_batch(x_pool, draw_q, batch_size,
                                            sample_weights=sample_weights)
            info["importance_stats"] = imp.get_statistics()
        else:
            q = _as_pool_q(q_pool)
            x = _as_pool_x(x_pool, q.shape[0])
            if prepared is not None and prepared.size != q.shape[0]:
                raise ValueError(f"prepared has {prepared.size} points but q_pool has {q.shape[0]}")
            active = self._active_for(x)
            if self.strategy is SamplingStrategy.ACTIVE:
                if np.isnan(q).any() and imp.config.nan_policy == "raise":
                    raise ValueError("q_pool contains NaN; use nan_policy='omit' to skip them")
                tree = self._maybe_refine(active, x, q, epoch)
                idx = active.sample_pool_indices(x, q, batch_size, tree=tree)
                batch_x = x[idx]
                info["active_stats"] = active.get_statistics()
            else:
                # hybrid: floor(B·r) importance draws and the rest from the refined grid
                n_imp = int(batch_size * imp.config.importance_batch_ratio)
                tree = self._maybe_refine(active, x, q, epoch)
                parts = []
                if n_imp:
                    parts.append(imp.sample_indices(draw_q, n_imp, sample_weights=sample_weights))
                if batch_size - n_imp:
                    parts.append(active.sample_pool_indices(x, q, batch_size - n_imp, tree=tree))
                idx = np.concatenate(parts)[self.rng.permutation(batch_size)]
                batch_x = x[idx]
                info["importance_stats"] = imp.get_statistics()
                info["active_stats"] = active.get_statistics()
        info["indices"] = idx
        entry = {"epoch": epoch, "batch_size": batch_size}
        entry.update({k: v for k, v in info.items() if k != "indices"})
        self.sampling_history.append(entry)
        return batch_x, info

    # ----------------------------------------------------------------------- diagnostics
    def update_diagnostics(self, **kwargs: Any) -> None:
        """Forward to :meth:`DiagnosticMonitor.update`."""
        self.diagnostic_monitor.update(**kwargs)

    def update_batch_diagnostics(self, **kwargs: Any) -> None:
        """Forward to :meth:`DiagnosticMonitor.update_batch`."""
        self.diagnostic_monitor.update_batch(**kwargs)

    def get_diagnostics_summary(self) -> dict[str, Any]:
        """Forward to :meth:`DiagnosticMonitor.get_summary`."""
        return self.diagnostic_monitor.get_summary()

    def export_all(self, epoch: int, path: str | Path | None = None) -> dict[str, Path]:
        """Export the diagnostics and ``sampling_history_epoch_{epoch}.json`` (last 100
        entries) into ``path`` (default: the diagnostic config's export_path, created here)."""
        written = self.diagnostic_monitor.export_diagnostics(epoch, path)
        out_dir = self.diagnostic_monitor.export_dir if path is None else Path(path)
        if self.sampling_history:
            out_dir.mkdir(parents=True, exist_ok=True)
            p = out_dir / f"sampling_history_epoch_{epoch}.json"
            with open(p, "w", encoding="utf-8") as f:
                dump_strict(list(self.sampling_history)[-100:], f, indent=2)
            written["sampling_history"] = p
        return written

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Strategy, component states, generator state and the last refinement epoch."""
        return {
            "strategy": self.strategy.value,
            "importance": self.importance_sampler.state_dict(),
            "active": self.active_sampler.state_dict(),
            "rng_state": _rng_state(self.rng),
            "last_refined_epoch": self._last_refined_epoch,
            "sampling_history": list(self.sampling_history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Validated as a whole first (the component states are loaded into copies): on an
        error the sampler is unchanged."""
        state = _state_mapping(state, ("strategy", "importance", "active", "rng_state",
                                       "last_refined_epoch"))
        try:
            strategy = SamplingStrategy(state["strategy"])
        except ValueError:
            raise ValueError(f"strategy must be one of {[s.value for s in SamplingStrategy]}, "
                             f"got {state['strategy']!r}") from None
        copy.deepcopy(self.importance_sampler).load_state_dict(state["importance"])
        copy.deepcopy(self.active_sampler).load_state_dict(state["active"])
        bit_generator_from_state(state["rng_state"])
        last = _scalar_item(state["last_refined_epoch"])
        if last is not None:
            last = check_int(last, "last_refined_epoch", minimum=0)
        history = state.get("sampling_history", [])
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise ValueError("sampling_history must be a list of dicts")
        # commit: the same loads succeed on the real components
        self.importance_sampler.load_state_dict(state["importance"])
        self.active_sampler.load_state_dict(state["active"])
        self.strategy = strategy
        self.rng = _restore_rng(self.rng, state["rng_state"])
        self._last_refined_epoch = last
        self.sampling_history.clear()
        self.sampling_history.extend(history)


_FACTORY_KEYS = {
    # upstream's keyword arguments
    "temperature", "importance_ratio", "grid_size", "refinement_threshold", "max_refinement",
    "export_frequency", "track_gradients", "track_tags",
    # ours
    "max_weight", "min_q_abs", "replacement", "nan_policy", "grid_bounds", "max_grid_points",
    "refinement_ratio", "adapt_frequency", "input_dim", "max_history",
}


def create_integrated_sampler(strategy: str = "hybrid", weight_power: float = 2.0,
                              export_path: str = "diagnostics", *, seed: Any = None,
                              **kwargs: Any) -> IntegratedSampler:
    """Build an :class:`IntegratedSampler` from flat keyword arguments.

    Upstream's keywords: ``temperature``, ``importance_ratio`` (→ importance_batch_ratio),
    ``grid_size`` (→ initial_grid_size), ``refinement_threshold``, ``max_refinement``
    (→ max_refinement_level), ``export_frequency``, ``track_gradients``, ``track_tags``
    (→ track_tag_distribution). Ours: ``max_weight``, ``min_q_abs``, ``replacement``,
    ``nan_policy``, ``grid_bounds``, ``max_grid_points``, ``refinement_ratio``,
    ``adapt_frequency``, ``input_dim``, ``max_history``. Unknown keywords raise ``TypeError``.
    No directory is created until an export.
    """
    unknown = sorted(set(kwargs) - _FACTORY_KEYS)
    if unknown:
        raise TypeError(f"create_integrated_sampler got unexpected keyword argument(s) {unknown}")
    imp_kw = {"weight_power": weight_power,
              "temperature": kwargs.get("temperature", 1.0),
              "importance_batch_ratio": kwargs.get("importance_ratio", 0.7)}
    for k in ("max_weight", "min_q_abs", "replacement", "nan_policy"):
        if k in kwargs:
            imp_kw[k] = kwargs[k]
    act_kw = {"initial_grid_size": kwargs.get("grid_size", 100),
              "refinement_threshold": kwargs.get("refinement_threshold", 0.1),
              "max_refinement_level": kwargs.get("max_refinement", 5)}
    for k in ("grid_bounds", "max_grid_points", "refinement_ratio", "adapt_frequency"):
        if k in kwargs:
            act_kw[k] = kwargs[k]
    diag = DiagnosticConfig(export_path=export_path,
                            export_frequency=kwargs.get("export_frequency", 10),
                            track_gradients=kwargs.get("track_gradients", True),
                            track_tag_distribution=kwargs.get("track_tags", True))
    return IntegratedSampler(strategy, ImportanceSamplerConfig(**imp_kw),
                             ActiveSamplerConfig(**act_kw), diag,
                             input_dim=kwargs.get("input_dim", 1), seed=seed,
                             max_history=kwargs.get("max_history", 1000))
