"""The importance sampler: draws pool indices with probability ∝ 1/|Q|^p (clipped, tempered).

:class:`ImportanceSamplerConfig`, :class:`PreparedPool` and :class:`ImportanceSampler` hold the
configuration, the generator and the sample statistics; the array work (weights, probabilities,
alias tables, draws) is done by the plain functions of :mod:`.sampling`.
"""
from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._validation import (
    bit_generator_from_state,
    check_choice,
    check_config,
    check_draws,
    check_in_range,
    check_int,
    check_nonnegative,
    check_positive,
)
from ..device import resolve_device
from . import sampling as _sampling
from .sampler_state import (
    SampledBatch,
    as_pool_q,
    as_pool_x,
    check_seed,
    config_fields,
    int_array,
    make_rng,
    restore_rng,
    rng_state,
    scalar_item,
    stat_float,
    state_mapping,
)

__all__ = ["ImportanceSamplerConfig", "PreparedPool", "ImportanceSampler"]


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
        check_seed(self.seed)

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
        self.rng = make_rng(self.config.seed if rng is None else rng)
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
        self._low = np.minimum(counts, _sampling.SPILL).astype(np.uint16)
        self._high = counts - self._low

    def _record(self, idx: np.ndarray, n: int) -> None:
        self.total_samples += int(idx.shape[0])
        if not self.track_counts:
            return
        self._grow_counts(n)
        new = _sampling.count_draws(self._low, self._high, idx)
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
            self._q_stats = _sampling.abs_stats(self._q_ref)
        return self._q_stats

    # ---------------------------------------------------------------------------- weights
    def _scan(self, q: np.ndarray, extra: np.ndarray | None, write_weights: bool,
              name: str = "q_pool") -> _sampling.WeightScan:
        """One kernel pass: block prefix sums, NaN/positive counts and |q| statistics."""
        self._check_config()
        scan = _sampling.scan_weights(q, extra, self._params, write_weights)
        n_nan = scan.n_nan
        if n_nan and self.config.nan_policy == "raise":
            raise ValueError(
                f"{name} contains {n_nan} NaN value(s); use nan_policy='omit' to give them weight 0"
            )
        self._note_pool(q)
        return scan

    def _extra(self, sample_weights: Any, n: int) -> np.ndarray | None:
        return _sampling.sample_weight_factors(sample_weights, n)

    def compute_weights(self, x_or_q: Any, q_values: Any = None, *,
                        sample_weights: Any = None) -> np.ndarray:
        """Normalised importance weights, shape (N,), float64.

        Call as ``compute_weights(q_values)`` or, upstream style, ``compute_weights(x, q)``
        (x is ignored). ``sample_weights`` (N,) multiplies the weights before normalising.
        Raises ``ValueError`` if no point has a positive weight.
        """
        q = as_pool_q(x_or_q if q_values is None else q_values, "q_values")
        scan = self._scan(q, self._extra(sample_weights, q.shape[0]), True, "q_values")
        if not scan.total > 0:
            raise ValueError("q_values: no point has a positive weight")
        _sampling.normalise(scan.weights, scan.total)
        return scan.weights

    def prepare(self, q_pool: Any, *, sample_weights: Any = None) -> PreparedPool:
        """Build the weights and alias table of a fixed pool once (O(N)).

        Later draws from the returned :class:`PreparedPool` cost O(B) per batch with
        replacement. Re-prepare after changing the config or the pool.
        """
        if isinstance(q_pool, PreparedPool):
            return q_pool
        q = as_pool_q(q_pool)
        scan = self._scan(q, self._extra(sample_weights, q.shape[0]), True)
        if not scan.total > 0:
            raise ValueError("q_pool: no point has a positive weight")
        w = scan.weights
        table = _sampling.alias_table(scan)
        _sampling.normalise(w, scan.total)
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

    def _source(self, q_pool: Any, sample_weights: Any, need_weights: bool) -> _sampling.WeightScan:
        if isinstance(q_pool, PreparedPool):
            self._use_prepared(q_pool, sample_weights)
            return _sampling.WeightScan(n=q_pool.size, q=None, extra=None,
                                        weights=q_pool.weights, block_cum=None, last_block=-1,
                                        total=1.0, n_positive=q_pool.n_positive,
                                        n_nan=q_pool.n_nan, prepared=q_pool)
        q = as_pool_q(q_pool)
        scan = self._scan(q, self._extra(sample_weights, q.shape[0]), need_weights)
        if not scan.total > 0:
            raise ValueError("q_pool: no point has a positive weight")
        return scan

    # ------------------------------------------------------------------------------ draws
    def _stream_key(self) -> np.uint64:
        """Key of a batch's stream of uniforms: one raw 64-bit word of the generator."""
        return np.uint64(self.rng.bit_generator.random_raw())

    def _alias_draws(self, pool: PreparedPool, k: int, count: bool,
                     device: str = "cpu") -> np.ndarray:
        """k alias-method draws from ``pool``; with ``count``, recorded in the statistics by
        the same kernel call (on ``device="cuda"``: drawn on the GPU, the same indices, then
        counted on the CPU)."""
        track = count and self.track_counts
        if track:
            self._grow_counts(pool.size)
        if device == "cuda":
            from .sampling_cuda import alias_draws_cuda

            out = alias_draws_cuda(pool.table, self._stream_key(), k).copy_to_host()
            new = _sampling.count_draws(self._low, self._high, out) if track else 0
        else:
            out, new = _sampling.alias_draws(pool.table, self._stream_key(), k, self._low,
                                             self._high, track)
        if count:
            self.total_samples += k
            self._unique += new
        return out

    def _draw(self, src: _sampling.WeightScan, k: int, replacement: bool,
              device: str = "cpu") -> np.ndarray:
        """k weighted indices from a scanned or prepared pool (no statistics)."""
        if k == 0:
            return np.empty(0, dtype=np.int64)
        if replacement and src.prepared is not None:
            return self._alias_draws(src.prepared, k, False)
        if replacement:
            return _sampling.cdf_draws(src, self._params, self._stream_key(), k, device)
        if k > src.n_positive:
            raise ValueError(
                f"batch_size: {k} draws without replacement exceed the {src.n_positive} "
                "points with a positive weight"
            )
        return self._smallest_keys(src.weights, k, None, device)

    def _smallest_keys(self, weights: np.ndarray, k: int, excluded: np.ndarray | None,
                       device: str = "cpu") -> np.ndarray:
        """Indices of the k smallest exponential keys e/w, in increasing key order."""
        return _sampling.smallest_keys(weights, self._stream_key(), k, excluded, device)

    def sample_indices(self, q_pool: Any, batch_size: int, *, sample_weights: Any = None,
                       replacement: bool | None = None, device: str = "cpu") -> np.ndarray:
        """Draw ``batch_size`` pool indices, shape (B,), int64.

        Parameters
        ----------
        q_pool : (N,) array-like of Q values, or a :class:`PreparedPool`
        batch_size : int >= 1
        sample_weights : (N,) array-like >= 0, optional; multiplies the weights (e.g. a
            curriculum), so indices are drawn ∝ w(q)·sample_weights
        replacement : bool, optional; defaults to ``config.replacement``. Without replacement
            the indices are distinct and ordered as successive weighted draws.
        device : {"cpu", "cuda", "auto"}; where the weighted draws run
            (:mod:`zeroproof_nb.device`): the same indices and statistics for the same
            generator state on either (a :class:`PreparedPool`'s alias table is copied to the
            GPU per call: for many batches on a GPU call
            :func:`.sampling_cuda.alias_draws_cuda` on a device copy of ``pool.table``)
        """
        batch_size = check_draws(batch_size, "batch_size")
        self._check_config()
        if device != "cpu":
            device = resolve_device(device, q_pool)  # before any state changes
        repl = self.config.replacement if replacement is None else bool(replacement)
        if repl and isinstance(q_pool, PreparedPool):  # the repeated-draws path: one kernel call
            self._use_prepared(q_pool, sample_weights)
            return self._alias_draws(q_pool, batch_size, True, device)
        src = self._source(q_pool, sample_weights, need_weights=not repl)
        idx = self._draw(src, batch_size, repl, device)
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
        if self.track_counts:
            self._grow_counts(q_pool.size)
        out, new = _sampling.alias_draw_batches(q_pool.table, keys, batch_size, self._low,
                                                self._high, self.track_counts)
        self._unique += new
        self.total_samples += n_batches * batch_size
        return out

    def sample_batch(self, x_pool: Any, q_pool: Any, batch_size: int, *,
                     sample_weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Importance-sampled batch: ``(x_pool[idx], idx)``.

        ``x_pool`` is (N,) or (N, d) (any array-like; the batch is a NumPy array); ``q_pool``
        is (N,) or a :class:`PreparedPool`. See :meth:`sample_indices` for the rest.
        """
        n = q_pool.size if isinstance(q_pool, PreparedPool) else len(as_pool_q(q_pool))
        x = as_pool_x(x_pool, n)
        idx = self.sample_indices(q_pool, batch_size, sample_weights=sample_weights)
        return x[idx], idx

    def draw(self, x_pool: Any, q_pool: Any, batch_size: int, *,
             sample_weights: Any = None) -> SampledBatch:
        """:meth:`sample_batch` in the shape every sampler's ``draw`` returns:
        ``SampledBatch(x, indices, info)`` with ``info = {"strategy": "importance",
        "indices": ..., "importance_stats": ...}``, as :meth:`IntegratedSampler.draw`."""
        x, idx = self.sample_batch(x_pool, q_pool, batch_size, sample_weights=sample_weights)
        return SampledBatch(x, idx, {"strategy": "importance", "indices": idx,
                                     "importance_stats": self.get_statistics()})

    def hybrid_sample(self, x_pool: Any, q_pool: Any, batch_size: int, *,
                      sample_weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``floor(B·importance_batch_ratio)`` importance draws + the rest uniform, shuffled.

        Uniform draws cover the points with a non-NaN q. Without replacement every index of
        the batch is distinct. Returns ``(x_pool[idx], idx)`` and updates the statistics.
        """
        batch_size = check_draws(batch_size, "batch_size")
        self._check_config()
        n = q_pool.size if isinstance(q_pool, PreparedPool) else len(as_pool_q(q_pool))
        x = as_pool_x(x_pool, n)
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
            "rng_state": rng_state(self.rng),
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
        state = state_mapping(state, ("config", "rng_state", "sample_counts", "total_samples",
                                       "unique_samples", "q_abs_mean", "q_abs_min"))
        config = ImportanceSamplerConfig(**config_fields(state["config"], ImportanceSamplerConfig))
        bit_generator_from_state(state["rng_state"])
        counts = int_array(state["sample_counts"], "sample_counts")
        total = check_int(scalar_item(state["total_samples"]), "total_samples", minimum=0)
        unique = check_int(scalar_item(state["unique_samples"]), "unique_samples", minimum=0)
        if counts.size and int(counts.sum()) > total:
            raise ValueError("sample_counts sum to more than total_samples")
        if unique != int(np.count_nonzero(counts)):
            raise ValueError("unique_samples must be the number of positive sample_counts")
        q_stats = tuple(stat_float(state[k], k) for k in ("q_abs_mean", "q_abs_min"))
        track = state.get("track_counts", True)
        if not isinstance(track, (bool, np.bool_)):
            raise TypeError(f"track_counts must be a bool, got {type(track).__name__}")
        # commit (nothing below can fail)
        self.config = config
        self.rng = restore_rng(self.rng, state["rng_state"])
        self._set_counts(counts)
        self.total_samples = total
        self._unique = unique
        self._q_stats = q_stats
        self._q_ref, self._q_key = None, ("restored", id(state))
        self.track_counts = bool(track)
        self._valid_key = None
        self._check_config()
