"""Training from a pool held as dask arrays: the checks of ``Trainer.fit(x, y)`` with a dask
``x`` and ``y``, and one epoch's importance batches drawn on the cluster and gathered to the
driver, where the trainer steps on them with its in-core per-batch code.

What runs where (per epoch): the model's |Q| over the pool, the importance-weights pass and the
epoch's ``batches_per_epoch·batch_size`` draws with replacement run on the cluster, chunk by
chunk (:func:`zeroproof_nb.distributed.gather_epoch`); the drawn rows of x, y and the sample
weights come to the driver, with the importance correction 1/(N·p_i) recomputed there from the
rows' |Q| by the in-core kernel; the steps run on the driver as for an in-memory pool.

Dask is imported only when a dask pool is used (this module and ``trainer.py`` import without
it): :func:`is_dask_array` is duck-typed, and :mod:`zeroproof_nb.distributed` is imported on
first use.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._validation import as_float_array, check_draws
from ..optim import LevenbergMarquardt
from .importance_sampler import ImportanceSampler

__all__ = ["DaskPool", "DaskEpoch", "is_dask_array", "check_setup", "check_pool", "fit_pool",
           "gather_batches"]


def is_dask_array(a: Any) -> bool:
    """Whether ``a`` is a ``dask.array.Array`` (duck-typed: dask is not imported)."""
    module = type(a).__module__ or ""
    return (module.split(".")[0] == "dask" and hasattr(a, "__dask_graph__")
            and hasattr(a, "chunks") and hasattr(a, "ndim"))


def _distributed() -> Any:
    from .. import distributed

    return distributed


@dataclass(frozen=True)
class DaskPool:
    """A validated dask pool for :meth:`Trainer.fit`.

    Attributes
    ----------
    x : (N,) or (N, d) float64 dask array (a chunked second axis merged)
    y : (N,) or (N, n_outputs) float64 dask array, the same row chunks as x
    sample_weight : (N,) float64 dask array on x's row chunks, or None
    x_range : (2,) float64 ndarray, the smallest and largest finite input ((0,) when no input
        is finite), computed only when the model needs a domain from the data, else None
    x_val, y_val : in-memory held-out data (float64 ndarrays) or None
    """

    x: Any
    y: Any
    sample_weight: Any
    x_range: np.ndarray | None
    x_val: np.ndarray | None
    y_val: np.ndarray | None


@dataclass(frozen=True)
class DaskEpoch:
    """One epoch's batches from a dask pool, on the driver (:func:`gather_batches`).

    Batch b is rows ``offsets[b]:offsets[b + 1]`` of ``x``, ``y`` and ``weight``.

    Attributes
    ----------
    x : (M,) or (M, d) float64 ndarray, M = n_batches·batch_size drawn pool rows
    y : (M,) or (M, n_outputs) float64 ndarray, their targets
    weight : (M,) float64 ndarray or None; the row weights the step uses: the importance
        correction 1/(N·p_i) (with ``importance_weighting``) times the user's sample weights,
        None when neither applies
    indices : (M,) int64 ndarray, the rows' pool indices
    offsets : (n_batches + 1,) int64 ndarray
    seed : int, the seed of the epoch's draws (drawn from the sampler's generator)
    seconds : float, wall time of the cluster passes and the gathers
    """

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None
    indices: np.ndarray
    offsets: np.ndarray
    seed: int
    seconds: float


def check_setup(trainer: Any, *, has_val: bool | None = None) -> None:
    """Raise ``ValueError`` / ``TypeError`` when ``trainer`` cannot train from a dask pool.

    A dask pool needs: a first-order optimizer (SGD / Adam; Levenberg–Marquardt steps on the
    whole pool in memory), an :class:`ImportanceSampler` drawing with replacement (the batches
    are importance draws; no IntegratedSampler, no curriculum), ``config.batches_per_epoch``
    (an epoch gathers that many batches to the driver), a fixed ``loss_scale`` for the
    robust losses, and -- when ``has_val`` is False and
    ``config.validation_fraction > 0`` -- held-out data in memory (no split is taken from a dask
    pool). ``has_val=None`` skips the last check (a bare :meth:`Trainer.train_epoch`).
    """
    cfg = trainer.config
    if isinstance(trainer.optimizer, LevenbergMarquardt):
        raise ValueError(
            "a dask pool trains with first-order steps on gathered importance batches; "
            "Levenberg–Marquardt needs the whole pool in memory: set "
            "TrainingConfig(optimizer='adam') (or 'sgd'), or pass optimizer=Adam(...)")
    sampler = trainer.sampler
    if not isinstance(sampler, ImportanceSampler):
        got = "no sampler" if sampler is None else type(sampler).__name__
        raise ValueError(
            "a dask pool needs sampler=ImportanceSampler(...): its batches are importance "
            "draws made on the cluster (uniform batches: ImportanceSamplerConfig("
            f"weight_power=0.0)); got {got}")
    if not sampler.config.replacement:
        raise ValueError("a dask pool draws with replacement: set "
                         "ImportanceSamplerConfig(replacement=True)")
    if trainer.curriculum is not None:
        raise ValueError("curriculum: its weights need the pool's |Q| in memory; train a dask "
                         "pool without a curriculum")
    if cfg.batches_per_epoch is None:
        raise ValueError(
            "a dask pool needs config.batches_per_epoch: an epoch gathers batches_per_epoch·"
            "batch_size drawn rows to the driver (the in-core default, ceil(N / batch_size) "
            "batches, would gather as many rows as the pool has)")
    if cfg.loss in ("huber", "tukey") and trainer.loss_sigma is None:
        raise ValueError(
            f"loss={cfg.loss!r} with a dask pool needs config.loss_scale (σ of the residuals): "
            "the default, the MAD of the start's residuals over the pool, needs the pool in "
            "memory")
    if has_val is False and cfg.validation_fraction > 0:
        raise ValueError(
            "a dask pool has no held-out split: pass x_val, y_val (in memory), or set "
            "TrainingConfig(validation_fraction=0.0) to train without held-out tracking and "
            "restore_best")


def _rows(a: Any, name: str, ndim: tuple[int, ...]) -> Any:
    """``a`` (a dask array) checked and as float64, with its columns in one chunk."""
    if not is_dask_array(a):
        raise TypeError(f"{name} must be a dask array like x (a dask pool: x and y are both "
                        f"dask arrays), got {type(a).__name__}")
    a = _distributed().as_dask_array(a, name, ndim)
    if a.dtype != np.float64:
        a = a.astype(np.float64)
    if a.ndim == 2 and len(a.chunks[1]) > 1:
        a = a.rechunk({1: -1})
    return a


def check_pool(x: Any, y: Any, sample_weight: Any = None) -> tuple[Any, Any, Any]:
    """Validate a dask pool without computing it (shapes, dtypes, chunks).

    Parameters
    ----------
    x : (N,) or (N, d) dask array; y : (N,) or (N, n_outputs) dask array with x's row chunks
    sample_weight : (N,) dask array (x's row chunks) or array-like, optional; its values are
        checked by :func:`fit_pool`

    Returns
    -------
    (x, y, sample_weight) as float64 dask arrays (sample_weight None when not given)
    """
    if not is_dask_array(x):
        raise TypeError("x must be a dask array like y (a dask pool: x and y are both dask "
                        f"arrays), got {type(x).__name__}")
    xd = _rows(x, "x", (1, 2))
    yd = _rows(y, "y", (1, 2))
    n = xd.shape[0]
    if yd.shape[0] != n:
        raise ValueError(f"x and y must have the same length, got {n} and {yd.shape[0]}")
    if n == 0:
        raise ValueError("x must not be empty")
    if yd.chunks[0] != xd.chunks[0]:
        raise ValueError("y must have the row chunks of x (use y.rechunk({0: x.chunks[0]})), "
                         f"got {len(yd.chunks[0])} chunks for {len(xd.chunks[0])}")
    wd = None
    if sample_weight is not None:
        if is_dask_array(sample_weight):
            wd = _rows(sample_weight, "sample_weight", (1,))
            if wd.shape[0] == n and wd.chunks[0] != xd.chunks[0]:
                raise ValueError("sample_weight must have the row chunks of x (use "
                                 "sample_weight.rechunk({0: x.chunks[0]}))")
        else:
            w = as_float_array(sample_weight, "sample_weight", ndim=1, dtype=np.float64)
            import dask.array as da

            wd = da.from_array(w, chunks=(xd.chunks[0],)) if w.shape[0] == n else w
        if wd.shape[0] != n:
            raise ValueError(f"sample_weight must have one entry per point ({n}), got "
                             f"{wd.shape[0]}")
    return xd, yd, wd


def _in_memory(a: Any, name: str) -> np.ndarray:
    if is_dask_array(a):
        raise TypeError(f"{name} must be in memory (a NumPy array; call {name}.compute()): "
                        "held-out data are evaluated on the driver")
    return as_float_array(a, name, ndim=(1, 2), dtype=np.float64)


def fit_pool(trainer: Any, x: Any, y: Any, *, x_val: Any = None, y_val: Any = None,
             sample_weight: Any = None) -> DaskPool:
    """Everything :meth:`Trainer.fit` checks of a dask pool, before any state changes.

    Runs :func:`check_setup` and :func:`check_pool`, the held-out data's checks (in memory,
    both given), and one pass over the pool when needed: the sample weights' values (finite,
    >= 0, a positive sum) and, for a :class:`TRRational` built without a domain, the range of
    the finite inputs (returned as ``x_range``; the trainer sets the domain from it).

    Returns
    -------
    DaskPool
    """
    xv = yv = None
    if x_val is not None or y_val is not None:
        if x_val is None or y_val is None:
            raise ValueError("x_val and y_val must be given together")
        xv, yv = _in_memory(x_val, "x_val"), _in_memory(y_val, "y_val")
        if xv.shape[0] != yv.shape[0]:
            raise ValueError(f"x_val and y_val must have the same length, got {xv.shape[0]} "
                             f"and {yv.shape[0]}")
        if xv.shape[0] == 0:
            raise ValueError("x_val must not be empty")
    check_setup(trainer, has_val=xv is not None)
    xd, yd, wd = check_pool(x, y, sample_weight)
    from ..layers import TRRational

    model = trainer.model
    want_range = isinstance(model, TRRational) and not model.domain_given
    if wd is None and not want_range:
        return DaskPool(xd, yd, None, None, xv, yv)
    import dask
    import dask.array as da

    todo: dict[str, Any] = {}
    if wd is not None:
        todo["w_bad"] = (~(da.isfinite(wd) & (wd >= 0))).any()
        todo["w_sum"] = wd.sum()
    if want_range:
        finite = da.isfinite(xd)
        todo["lo"] = da.where(finite, xd, np.inf).min()
        todo["hi"] = da.where(finite, xd, -np.inf).max()
    got = dict(zip(todo, dask.compute(*todo.values())))
    if wd is not None and (got["w_bad"] or not got["w_sum"] > 0):
        raise ValueError("sample_weight must be finite, >= 0, with a positive sum and one "
                         f"entry per point ({xd.shape[0]})")
    x_range = None
    if want_range:
        lo, hi = float(got["lo"]), float(got["hi"])
        x_range = np.array([lo, hi]) if np.isfinite(lo) else np.empty(0)
    return DaskPool(xd, yd, wd, x_range, xv, yv)


def _epoch_seed(sampler: ImportanceSampler) -> int:
    """The next epoch's seed from the sampler's generator (int in [0, 2**63))."""
    return int(sampler.rng.integers(0, 2 ** 63, dtype=np.int64))


def gather_batches(x: Any, y: Any, q_fn: Callable[[np.ndarray], np.ndarray],
                   sampler: ImportanceSampler, *, n_batches: int, batch_size: int,
                   sample_weight: Any = None, importance_weighting: bool = True) -> DaskEpoch:
    """One epoch's importance batches from a dask pool, gathered to the driver.

    The seed of the epoch's draws is the next ``integers(0, 2**63)`` of ``sampler.rng`` (so a
    seeded sampler gives the same epochs, and a checkpoint continues them); the draws are
    :func:`zeroproof_nb.distributed.sample_indices` with that seed and ``sampler.config``:
    a function of the seed and the pool's values, not of the chunking or the workers. If a
    pass fails (e.g. a worker is lost for good), the sampler's generator is put back, so a
    retried call draws the same batches.

    Parameters
    ----------
    x : (N,) or (N, d) dask array; y : (N,) or (N, n_outputs) dask array
    q_fn : callable mapping an (m,) or (m, d) ndarray to |Q| ((m,) or (m, n_heads)), e.g. the
        model's ``q_values``; it is pickled to the workers
    sampler : ImportanceSampler with ``replacement=True`` (its config and generator; its
        sample statistics are not updated: per-index counts would be as long as the pool)
    n_batches, batch_size : ints >= 1
    sample_weight : (N,) dask array, optional; the user's loss weights of the pool's points
    importance_weighting : bool; multiply the rows by 1/(N·p_i) (the trainer's default) or
        not (upstream's unweighted batches)

    Returns
    -------
    DaskEpoch
    """
    zd = _distributed()
    check_draws(n_batches, "n_batches")
    check_draws(batch_size, "batch_size")
    state = sampler.rng.bit_generator.state
    t0 = time.perf_counter()
    try:
        seed = _epoch_seed(sampler)
        ep = zd.gather_epoch(x, y, q_fn, n_batches=n_batches, batch_size=batch_size,
                             config=sampler.config, seed=seed)
        rows_w = None
        if sample_weight is not None:
            rows_w = np.asarray(zd.gather(sample_weight, ep.indices), dtype=np.float64)
    except BaseException:
        sampler.rng.bit_generator.state = state  # nothing drawn: a retry draws the same
        raise
    seconds = time.perf_counter() - t0
    weight = ep.weight if importance_weighting else None
    if rows_w is not None:
        weight = rows_w if weight is None else weight * rows_w
    xb = np.ascontiguousarray(ep.x, dtype=np.float64)
    yb = np.ascontiguousarray(ep.y, dtype=np.float64)
    return DaskEpoch(x=xb, y=yb, weight=weight, indices=ep.indices, offsets=ep.offsets,
                     seed=seed, seconds=seconds)
