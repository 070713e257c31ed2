"""The package's array operations over ``dask.array`` pools (the optional extra ``dask``).

Evaluation, |Q|, importance weights and importance draws for pools too large for one machine,
blockwise over the same kernels as the in-core API: every chunk runs the in-core kernel on its
slice with its global offsets. Works with any Dask scheduler (a ``dask.distributed.Client``
when one is active, else Dask's default); nothing here holds state.

Determinism of :func:`sample_indices` (what the indices depend on)
------------------------------------------------------------------
The indices are a function of ``seed``, ``batch_size``, ``replace``, the weight fields of
``config`` (``weight_power``, ``min_q_abs``, ``max_weight``, ``temperature``), and the values
of ``q`` and ``sample_weights`` in global order -- not of the chunk sizes, the number of
chunks, the number of workers or the order in which tasks run. Chunkings whose chunks are not
multiples of the kernel block :data:`BLOCK` (128 points; the last chunk may be shorter) are
first re-aligned to such chunks (a rechunk that moves only the pieces at the boundaries), so the
statement holds for every chunking.

With replacement, draw j uses the uniform number j of the counter-based stream keyed by
``numpy.random.default_rng(seed).bit_generator.random_raw()`` -- the key of the first batch of
``ImportanceSampler(ImportanceSamplerConfig(..., seed=seed))`` -- and two levels of prefix
sums: segments of :data:`SEGMENT_BLOCKS` blocks at fixed global positions, then the blocks and
points of the segment by the in-core per-draw function. Each index has probability
w_i / Σw exactly as in-core; the indices equal the in-core sampler's first batch except where
u_j·Σw falls within rounding (~1e-16 relative) of a block boundary, as the two sum the same
block sums in a different order. Without replacement, the Efraimidis–Spirakis keys e_i/w_i use
the exponential number i of the same stream for point i, as in-core, and the per-chunk smallest
keys are merged with their global offsets: the indices are those of the in-core sampler.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "zeroproof_nb.distributed needs Dask: pip install 'zeroproof-nb[dask]' "
        "(installs dask[distributed])"
    ) from exc

import numpy as np

from . import _dask_blocks as _blocks
from . import _dask_refine as _refine
from . import rational as _rational
from ._validation import check_config, check_draws
from .kernels.refine import cell_dtype
from .training.active_sampler import ActiveSamplerConfig
from .training.importance_sampler import ImportanceSamplerConfig
from .training.sampler_state import make_rng
from .training.sampling import scan_weights

__all__ = [
    "as_dask_array",
    "BLOCK",
    "SEGMENT_BLOCKS",
    "ImportanceWeights",
    "EpochBatches",
    "aligned_chunks",
    "gather_epoch",
    "q_of",
    "gather",
    "importance_weights",
    "q_abs",
    "rational_eval",
    "refine_cells",
    "sample_indices",
    "stream_key",
]

#: points per block of the weight kernels: chunk sizes should be multiples of it
BLOCK = _blocks.BLOCK
#: blocks per segment (the first level of the with-replacement draws)
SEGMENT_BLOCKS = _blocks.SEGMENT_BLOCKS
#: fan-in of the tree that merges the per-chunk smallest keys (draws without replacement)
MERGE_FAN_IN = 8


# ------------------------------------------------------------------------------ validation
def as_dask_array(a: Any, name: str, ndim: tuple[int, ...]) -> "da.Array":
    """``a`` as a dask array of real numbers with one of the ``ndim`` numbers of dimensions and
    known chunk sizes (NumPy input is wrapped); TypeError / ValueError naming ``name``."""
    if not isinstance(a, da.Array):
        try:
            a = da.from_array(np.asarray(a), chunks="auto")
        except Exception as exc:
            raise TypeError(f"{name} must be a dask array or array-like, got "
                            f"{type(a).__name__}") from exc
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric dtype, got dtype {a.dtype}")
    if a.ndim not in ndim:
        want = " or ".join(str(d) for d in ndim)
        raise ValueError(f"{name} must be {want}-dimensional, got shape {a.shape}")
    if any(np.isnan(s) for s in a.shape):
        raise ValueError(f"{name} must have known chunk sizes "
                         f"(call {name}.compute_chunk_sizes())")
    return a


def aligned_chunks(chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Chunk sizes with every boundary moved down to a multiple of :data:`BLOCK` (empty chunks
    dropped); unchanged when the boundaries already are."""
    ends = np.cumsum(chunks)
    if ends.size == 0:
        return tuple(chunks)
    cut = np.unique(np.append((ends[:-1] // BLOCK) * BLOCK, ends[-1]))
    cut = cut[cut > 0]
    return tuple(int(v) for v in np.diff(np.concatenate(([0], cut))))


def _pool(q: Any, name: str = "q") -> "da.Array":
    """A 1-D float pool with block-aligned chunks (n-D input is flattened, C order)."""
    q = as_dask_array(q, name, (1, 2, 3, 4, 5, 6, 7, 8))
    if q.ndim > 1:
        q = q.reshape(-1)
    if q.dtype not in (np.float32, np.float64):
        q = q.astype(np.float64)
    if q.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    chunks = aligned_chunks(q.chunks[0])
    return q if chunks == q.chunks[0] else q.rechunk({0: chunks})


def _sample_weights(sample_weights: Any, q: "da.Array") -> tuple["da.Array | None", float]:
    """Validated per-point factors on the chunks of ``q`` and their largest value (one pass
    over them, before any draw)."""
    if sample_weights is None:
        return None, 1.0
    ex = as_dask_array(sample_weights, "sample_weights", (1,))
    if ex.shape[0] != q.shape[0]:
        raise ValueError(f"sample_weights has {ex.shape[0]} entries but q has {q.shape[0]}")
    ex = ex.astype(np.float64).rechunk({0: q.chunks[0]})
    top, bad = dask.compute(ex.max(), (~(da.isfinite(ex) & (ex >= 0))).any())
    if bad:
        raise ValueError("sample_weights must be finite and >= 0")
    return ex, float(top)


def _config(config: Any) -> ImportanceSamplerConfig:
    config = check_config(config, ImportanceSamplerConfig)
    config.validate()
    return config


def stream_key(seed: Any) -> np.uint64:
    """Key of the draw stream for ``seed`` (int >= 0 or a ``numpy.random.SeedSequence``): the
    first raw word of ``numpy.random.default_rng(seed)``, as the in-core sampler's first batch."""
    if seed is None or isinstance(seed, np.random.Generator):
        raise ValueError("seed must be an int >= 0 or a SeedSequence (a fixed seed: the draws "
                         f"are a function of it), got {seed!r}")
    return np.uint64(make_rng(seed).bit_generator.random_raw())


# ------------------------------------------------------------------------------ evaluation
def _points(x: Any) -> "da.Array":
    x = as_dask_array(x, "x", (1, 2))
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim == 2 and len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    return x


def _probe(x: "da.Array", theta: Any, phi: Any, kw: dict) -> tuple[np.ndarray, np.ndarray]:
    """Validate the arguments on one zero point of x's dtype and width (strict errors before
    any graph is built); returns the in-core (y, q) of that point."""
    shape = (1,) if x.ndim == 1 else (1, x.shape[1])
    return _rational.rational_eval(np.zeros(shape, dtype=x.dtype), theta, phi, return_q=True,
                                   **kw)


def _eval_block(xb: np.ndarray, theta: Any, phi: Any, kw: dict, what: str) -> np.ndarray:
    """One chunk's evaluation: ``what`` = 'y' (transreal), 'yq' (records of value, tag and
    q, split by :func:`_tr_part`) or 'abs' (|Q|, the smallest over the heads)."""
    y, q = _rational.rational_eval(xb, theta, phi, return_q=True, **kw)
    if what == "y":
        return y
    if what == "yq":
        rec = np.empty(y.shape, dtype=_with_q(y.dtype))
        rec["value"], rec["tag"], rec["q"] = y["value"], y["tag"], q
        return rec
    np.abs(q, out=q)  # in place: q is this call's array
    return q.min(axis=1) if q.ndim == 2 else q


def _with_q(tr: np.dtype) -> np.dtype:
    return np.dtype([("value", tr["value"]), ("tag", np.uint8), ("q", tr["value"])])


def _tr_part(rec: np.ndarray, tr: np.dtype) -> np.ndarray:
    y = np.empty(rec.shape, dtype=tr)
    y["value"], y["tag"] = rec["value"], rec["tag"]
    return y


def _map_rows(x: "da.Array", fn: Any, out_ndim: int, width: int, dtype: np.dtype,
              *args: Any) -> "da.Array":
    """``fn`` over x's row chunks, with output (N,) or (N, width)."""
    kw: dict[str, Any] = {"dtype": dtype, "meta": np.empty((0,) * out_ndim, dtype=dtype)}
    if x.ndim == 1 and out_ndim == 2:
        kw.update(new_axis=1, chunks=(x.chunks[0], (width,)))
    elif x.ndim == 2 and out_ndim == 1:
        kw.update(drop_axis=1)
    elif x.ndim == 2:
        kw.update(chunks=(x.chunks[0], (width,)))
    return da.map_blocks(fn, x, *args, **kw)


def rational_eval(x: Any, theta: Any, phi: Any, *, basis: str = "monomial",
                  domain: tuple[float, float] = (-1.0, 1.0), return_q: bool = False,
                  policy: Any = None, q_epsilon: float = 0.0) -> Any:
    """:func:`zeroproof_nb.rational.rational_eval` over a dask array of points, chunk by chunk.

    Parameters
    ----------
    x : dask array (or array-like), (N,) or (N, d); chunked along the points (a chunked
        second axis is merged). float32 stays float32, other dtypes become float64.
    theta, phi, basis, domain, policy, q_epsilon : as in-core (validated here, once)
    return_q : bool, also return the signed Q per output

    Returns
    -------
    y : dask array (N,) or (N, n_outputs) of the transreal structured dtype
    q : dask array of the same shape (x's dtype), only with ``return_q=True``; y and q come
        from one kernel pass per chunk when computed together (``dask.compute(y, q)``)
    """
    xd = _points(x)
    kw = {"basis": basis, "domain": domain, "policy": policy, "q_epsilon": q_epsilon}
    y0, q0 = _probe(xd, theta, phi, kw)
    width = y0.shape[1] if y0.ndim == 2 else 1
    if not return_q:
        return _map_rows(xd, _eval_block, y0.ndim, width, y0.dtype, theta, phi, kw, "y")
    rec = _map_rows(xd, _eval_block, y0.ndim, width, _with_q(y0.dtype), theta, phi, kw, "yq")
    meta = np.empty((0,) * y0.ndim, dtype=y0.dtype)
    y = rec.map_blocks(_tr_part, y0.dtype, dtype=y0.dtype, meta=meta)
    return y, rec["q"]


def q_abs(x: Any, theta: Any, phi: Any, *, basis: str = "monomial",
          domain: tuple[float, float] = (-1.0, 1.0), q_epsilon: float = 0.0) -> "da.Array":
    """|Q| per point over a dask array of points: shape (N,), x's dtype; with one Q per head,
    the smallest over the heads (the trainers' pool |Q|). NaN for a NaN Q.

    Parameters as in :func:`rational_eval`.
    """
    xd = _points(x)
    kw = {"basis": basis, "domain": domain, "policy": None, "q_epsilon": q_epsilon}
    _, q0 = _probe(xd, theta, phi, kw)
    return _map_rows(xd, _eval_block, 1, 1, q0.dtype, theta, phi, kw, "abs")


# ------------------------------------------------------------------------------ weights
def _chunk_starts(q: "da.Array") -> np.ndarray:
    """First global index of every chunk of q, and N: (n_chunks + 1,) int64."""
    return np.concatenate(([0], np.cumsum(q.chunks[0]))).astype(np.int64)


def _blockwise(q: "da.Array", ex: "da.Array | None") -> list[tuple[Any, Any]]:
    """(q chunk, sample-weight chunk or None) as delayed objects, chunk by chunk."""
    qs = list(q.to_delayed().ravel())
    es = list(ex.to_delayed().ravel()) if ex is not None else [None] * len(qs)
    return list(zip(qs, es))


def _scan(q: "da.Array", ex: "da.Array | None", top: float,
          params: tuple[float, ...], nan_policy: str) -> "_blocks.SegmentTable":
    """The weights pass: every chunk's scan, assembled on the driver; raises for NaN under
    ``nan_policy='raise'`` and for a pool without a positive weight."""
    starts = _chunk_starts(q)
    chunk_blocks = (starts + BLOCK - 1) // BLOCK
    n_blocks = int(chunk_blocks[-1])
    scan = dask.delayed(_blocks.chunk_scan, pure=True)
    tasks = [scan(qc, ec, top, params, c, int(chunk_blocks[c]), n_blocks)
             for c, (qc, ec) in enumerate(_blockwise(q, ex))]
    table = _blocks.segment_table(list(dask.compute(*tasks)), chunk_blocks)
    _check_nan(table.n_nan, nan_policy)
    if not table.total > 0:
        raise ValueError("q: no point has a positive weight")
    return table


def _check_nan(n_nan: int, nan_policy: str) -> None:
    if n_nan and nan_policy == "raise":
        raise ValueError(f"q contains {n_nan} NaN value(s); use nan_policy='omit' to give them "
                         "weight 0")


@dataclass(frozen=True)
class ImportanceWeights:
    """Result of :func:`importance_weights`: a pool's weights pass, reusable by
    :func:`sample_indices` (``prepared=``) for any number of batches without a new pass.

    Attributes
    ----------
    weights : dask array (N,) float64, normalised draw probabilities w_i / total (lazy)
    block_sums : dask array (ceil(N / BLOCK),) float64, unnormalised weight sums of the blocks
        of BLOCK points, each the in-core kernel's (lazy)
    total : float, sum of the unnormalised weights (by segments, see the module notes)
    n_positive, n_nan : ints, points with a positive weight / with a NaN q
    params : the (min_q_abs, weight_power, 1/max_weight, 1/temperature) used
    chunks : the pool's block-aligned chunk sizes
    """

    weights: "da.Array"
    block_sums: "da.Array"
    total: float
    n_positive: int
    n_nan: int
    params: tuple[float, float, float, float]
    chunks: tuple[int, ...]
    table: Any = field(repr=False, default=None)
    extra: Any = field(repr=False, default=None)
    top: float = field(repr=False, default=1.0)


def importance_weights(q: Any, config: ImportanceSamplerConfig | None = None, *,
                       sample_weights: Any = None) -> ImportanceWeights:
    """Importance weights of a dask pool of Q values, with per-block sums.

    Runs the weights pass at once (the total, the NaN check under ``config.nan_policy`` and the
    positive count need it); ``weights`` and ``block_sums`` stay lazy dask arrays whose chunks
    recompute the same kernel. Per point the weight is the in-core one
    (``ImportanceSampler.compute_weights``), normalised by the segment-wise total.

    Parameters
    ----------
    q : dask array (or array-like) of Q values, flattened in C order
    config : ImportanceSamplerConfig, optional (weight fields and ``nan_policy``)
    sample_weights : (N,) dask array or array-like >= 0, optional per-point factors
    """
    config = _config(config)
    qd = _pool(q)
    ex, top = _sample_weights(sample_weights, qd)
    params = config.weight_params()
    table = _scan(qd, ex, top, params, config.nan_policy)
    args = (ex,) if ex is not None else (None,)
    w = da.map_blocks(_blocks.chunk_weights, qd, *args, top, params, table.total,
                      dtype=np.float64, meta=np.empty(0, dtype=np.float64))
    nb = tuple((c + BLOCK - 1) // BLOCK for c in qd.chunks[0])
    bs = da.map_blocks(_blocks.chunk_block_sums, qd, *args, top, params, dtype=np.float64,
                       chunks=(nb,), meta=np.empty(0, dtype=np.float64))
    return ImportanceWeights(weights=w, block_sums=bs, total=table.total,
                             n_positive=table.n_positive, n_nan=table.n_nan, params=params,
                             chunks=qd.chunks[0], table=table, extra=ex, top=top)


# ------------------------------------------------------------------------------ draws
def sample_indices(q: Any, batch_size: int, *, config: ImportanceSamplerConfig | None = None,
                   seed: Any, replace: bool | None = None, sample_weights: Any = None,
                   prepared: ImportanceWeights | None = None) -> np.ndarray:
    """``batch_size`` importance draws from a dask pool: global int64 indices into q (flattened).

    Parameters
    ----------
    q : dask array (or array-like) of Q values; the pool is q flattened in C order
    batch_size : int >= 1
    config : ImportanceSamplerConfig, optional (weight fields, ``nan_policy``; its
        ``replacement`` is the default of ``replace``; its ``seed`` is not used)
    seed : int >= 0 or numpy SeedSequence (keyword, required): the draws are a function of it
    replace : bool, optional; with replacement (default ``config.replacement``): two passes
        over q (weights, then draws) -- persist q when memory allows, else its chunks are
        computed twice; without: one pass, the indices distinct, ordered as successive draws
    sample_weights : (N,) dask array or array-like >= 0, optional; draws ∝ w(q)·sample_weights
    prepared : ImportanceWeights, optional; the weights pass of this q by
        :func:`importance_weights` (same weight fields; its sample weights apply, pass none
        here): a batch with replacement then costs one pass over the chunks that receive
        draws. The indices are the same as without it.

    Returns
    -------
    (batch_size,) int64 ndarray of pool indices

    Raises ``ValueError`` for NaN in q under ``nan_policy='raise'``, for a pool without a
    positive weight, and (without replacement) for ``batch_size`` above the number of points
    with a positive weight. See the module notes for what the result depends on.
    """
    batch_size = check_draws(batch_size, "batch_size")
    config = _config(config)
    repl = config.replacement if replace is None else replace
    if not isinstance(repl, (bool, np.bool_)):
        raise TypeError(f"replace must be a bool or None, got {type(repl).__name__}")
    key = stream_key(seed)
    qd = _pool(q)
    params = config.weight_params()
    if prepared is not None:
        table, ex, top = _use_prepared(prepared, qd, params, sample_weights)
    else:
        ex, top = _sample_weights(sample_weights, qd)
    if not repl:
        return _smallest_keys(qd, ex, top, params, key, batch_size, config.nan_policy)
    if prepared is None:
        table = _scan(qd, ex, top, params, config.nan_policy)
    jobs = _blocks.route_draws(table, key, batch_size)
    draw = dask.delayed(_blocks.chunk_draws, pure=True)
    chunks = _blockwise(qd, ex)
    tasks = {c: draw(chunks[c][0], chunks[c][1], top, params, int(table.chunk_blocks[c]),
                     *job[1:]) for c, job in jobs.items()}
    found = dict(zip(tasks, dask.compute(*tasks.values())))
    out = np.empty(batch_size, dtype=np.int64)
    for c, idx in found.items():
        out[jobs[c][0]] = idx
    return out


def _use_prepared(prepared: Any, q: "da.Array", params: tuple[float, ...],
                  sample_weights: Any) -> tuple[Any, Any, float]:
    """Check that ``prepared`` is the weights pass of ``q`` under ``params``."""
    if not isinstance(prepared, ImportanceWeights):
        raise TypeError("prepared must be an ImportanceWeights from importance_weights(), got "
                        f"{type(prepared).__name__}")
    if sample_weights is not None:
        raise ValueError("sample_weights: pass them to importance_weights(), not with prepared")
    if tuple(prepared.params) != tuple(params):
        raise ValueError("prepared was computed with other weight parameters than config")
    if tuple(prepared.chunks) != tuple(q.chunks[0]):
        raise ValueError("prepared was computed for a pool of other chunks or length than q")
    return prepared.table, prepared.extra, prepared.top


def _smallest_keys(q: "da.Array", ex: "da.Array | None", top: float,
                   params: tuple[float, ...], key: np.uint64, k: int,
                   nan_policy: str) -> np.ndarray:
    """Without replacement: per-chunk k smallest keys, merged by a tree of fan-in
    MERGE_FAN_IN (each merge keeps k), then checked."""
    starts = _chunk_starts(q)
    keys = dask.delayed(_blocks.chunk_smallest_keys, pure=True)
    merge = dask.delayed(_blocks.merge_smallest, pure=True)
    level = [keys(qc, ec, top, params, int(starts[c]), key, k)
             for c, (qc, ec) in enumerate(_blockwise(q, ex))]
    while len(level) > 1:
        level = [merge(level[i:i + MERGE_FAN_IN], k) for i in range(0, len(level), MERGE_FAN_IN)]
    vals, idx, n_nan, n_pos = dask.compute(merge(level, k))[0]
    _check_nan(n_nan, nan_policy)
    if n_pos == 0:
        raise ValueError("q: no point has a positive weight")
    if k > n_pos:
        raise ValueError(f"batch_size: {k} draws without replacement exceed the {n_pos} "
                         "points with a positive weight")
    return idx


def gather(x: Any, indices: Any) -> np.ndarray:
    """Rows ``x[indices]`` of a dask array brought to the driver, in the order of ``indices``.

    Only the chunks holding the indices are read, and only the selected rows move (each
    distinct row once). x of shape (N,) or (N, ...); indices int array-like in [0, N).
    """
    xd = as_dask_array(x, "x", tuple(range(1, 33)))
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"indices must be 1-dimensional, got shape {idx.shape}")
    n = xd.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    uniq, inverse = np.unique(idx.astype(np.int64), return_inverse=True)
    if xd.ndim > 1 and any(len(c) > 1 for c in xd.chunks[1:]):
        xd = xd.rechunk({a: -1 for a in range(1, xd.ndim)})
    starts = _chunk_starts(xd)
    cut = np.searchsorted(uniq, starts)
    take = dask.delayed(np.take, pure=True)
    tasks = [take(block, uniq[cut[c]:cut[c + 1]] - starts[c], axis=0)
             for c, block in enumerate(xd.to_delayed().ravel()) if cut[c + 1] > cut[c]]
    parts = dask.compute(*tasks)
    rows = (np.concatenate(parts) if parts else
            np.empty((0,) + xd.shape[1:], dtype=xd.dtype))
    return rows[inverse]

# ------------------------------------------------------------------------------ refinement
def _grid(cells: Any) -> tuple["da.Array", int]:
    """A 1-D dask array of grid cells and its dimension d (dtype ``cell_dtype(d)``)."""
    if not isinstance(cells, da.Array):
        cells = da.from_array(np.asarray(cells), chunks="auto")
    sub = cells.dtype.fields.get("center") if cells.dtype.fields else None
    if sub is None:
        raise TypeError(f"cells must have the grid cell dtype (cell_dtype(d)), got {cells.dtype}")
    dim = sub[0].shape[0] if sub[0].shape else 1
    if cells.dtype != cell_dtype(dim):
        raise TypeError(f"cells must have dtype cell_dtype({dim}), got {cells.dtype}")
    if cells.ndim != 1:
        raise ValueError(f"cells must be 1-dimensional, got shape {cells.shape}")
    if any(np.isnan(c) for c in cells.shape):
        raise ValueError("cells must have known chunk sizes (call cells.compute_chunk_sizes())")
    return cells, dim


def refine_cells(cells: Any, q: Any, config: ActiveSamplerConfig | None = None
                 ) -> tuple["da.Array", dict[str, int]]:
    """One :meth:`ActiveSampler.refine` step on a grid whose cells are a dask array.

    Marks and splits blockwise; the cap is exact: when more cells qualify than
    ``config.max_grid_points`` leaves room for, the ones with the smallest (|Q|, index) are
    split, chosen by merging each chunk's smallest candidates (as in-core). The new grid is the
    in-core one row for row: the old cells (|Q| written, parents marked refined), then the
    children in parent order.

    Parameters
    ----------
    cells : (n,) dask array (or array) of ``kernels.refine.cell_dtype(d)``, e.g.
        ``da.from_array(ActiveSampler(config, d).cells)``
    q : (n,) dask array or array-like of Q (or |Q|) at the cell centres, or a callable mapping
        an (m, d) array of centres to (m,) values (called chunk by chunk on the workers)
    config : ActiveSamplerConfig (threshold, relative_threshold, max_refinement_level,
        refinement_ratio, max_grid_points)

    Returns
    -------
    cells : dask array (n + n_added,) of the same dtype, persisted (held on the workers with a
        distributed client; in memory with Dask's local schedulers)
    entry : dict ``{"n_refined", "n_added", "total_points"}`` as in-core
    """
    config = check_config(config, ActiveSamplerConfig)
    config.validate()
    cd, dim = _grid(cells)
    config.bounds_array(dim)
    n = int(cd.shape[0])
    if callable(q):
        qa = da.map_blocks(_refine.chunk_abs_q, cd, q, dtype=np.float64,
                           meta=np.empty(0, dtype=np.float64))
    else:
        qd = as_dask_array(q, "q", (1, 2))
        if qd.size != n or (qd.ndim == 2 and qd.shape[1] != 1):
            raise ValueError(f"q must give one value per cell ({n}), got shape {qd.shape}")
        qa = da.map_blocks(_refine.chunk_abs_q, cd, qd.reshape(-1).rechunk({0: cd.chunks[0]}),
                           dtype=np.float64, meta=np.empty(0, dtype=np.float64))
    qa = qa.persist()
    per_axis = 2 * int(config.refinement_ratio) if dim == 1 else 2  # ActiveSampler.per_axis
    per_cell = per_axis ** dim
    threshold = float(config.refinement_threshold)
    if config.relative_threshold:
        base = da.map_blocks(_refine.chunk_level0, cd, qa, dtype=np.float64,
                             chunks=(tuple(np.nan for _ in cd.chunks[0]),),
                             meta=np.empty(0, dtype=np.float64)).compute()
        threshold *= float(np.median(base)) if base.size else 0.0
    budget = max((int(config.max_grid_points) - n) // per_cell, 0)
    starts = _chunk_starts(cd)
    cand = dask.delayed(_refine.chunk_candidates, pure=True)
    merge = dask.delayed(_blocks.merge_smallest, pure=True)
    cs, qs = list(cd.to_delayed().ravel()), list(qa.to_delayed().ravel())
    level = [cand(c, a, threshold, int(config.max_refinement_level), int(starts[i]), budget)
             for i, (c, a) in enumerate(zip(cs, qs))]
    while len(level) > 1:
        level = [merge(level[i:i + MERGE_FAN_IN], budget)
                 for i in range(0, len(level), MERGE_FAN_IN)]
    chosen = np.sort(dask.compute(merge(level, budget))[0][1])
    split = dask.delayed(_refine.chunk_split, pure=True)
    olds, kids = [], []
    for i, (c, a) in enumerate(zip(cs, qs)):
        lo, hi = np.searchsorted(chosen, starts[i:i + 2])
        parents = chosen[lo:hi] - starts[i]
        olds.append(da.from_delayed(split(c, a, parents, per_axis, "cells"),
                                    shape=(int(starts[i + 1] - starts[i]),), dtype=cd.dtype))
        if parents.size:
            kids.append(da.from_delayed(split(c, a, parents, per_axis, "children"),
                                        shape=(parents.size * per_cell,), dtype=cd.dtype))
    k = int(chosen.shape[0])
    entry = {"n_refined": k, "n_added": k * per_cell, "total_points": n + k * per_cell}
    # persisted before qa (persisted above, held only here) is released
    return da.concatenate(olds + kids).persist(), entry


# ------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class EpochBatches:
    """One epoch's importance batches from a dask pool, gathered to the driver
    (:func:`gather_epoch`): batch b is rows ``offsets[b]:offsets[b + 1]`` of ``x``, ``y`` and
    ``weight``.

    Attributes
    ----------
    x : (n_batches·B,) or (n_batches·B, d) ndarray, the drawn pool rows
    y : (n_batches·B, ...) ndarray, their targets
    weight : (n_batches·B,) float64, 1/(N·p_i) times the loss weights: a batch's weighted mean
        loss estimates the pool's mean loss (the trainers' importance correction)
    indices : (n_batches·B,) int64 pool indices
    offsets : (n_batches + 1,) int64
    """

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    indices: np.ndarray
    offsets: np.ndarray


def q_of(q_fn: Any, xb: np.ndarray) -> np.ndarray:
    """|Q| per point of the points ``xb`` by the in-core callable ``q_fn`` (e.g. a layer's
    ``q_values``): shape (m,), float64; with one value per head, the smallest."""
    q = np.abs(np.asarray(q_fn(xb), dtype=np.float64))
    if q.ndim == 2:
        q = q.min(axis=1)
    if q.shape != (xb.shape[0],):
        raise ValueError(f"q_fn must give one |Q| per point ({xb.shape[0]}), got shape {q.shape}")
    return q


def gather_epoch(x: Any, y: Any, q_fn: Any, *, n_batches: int, batch_size: int,
                 config: ImportanceSamplerConfig | None = None, seed: Any,
                 loss_weights: Any = None) -> EpochBatches:
    """An epoch of importance batches from a dask pool: the model's |Q| pass and the weights
    pass on the cluster, ``n_batches·batch_size`` draws with replacement in one draw pass, and
    the rows brought to the driver, where a trainer steps on them as on an in-memory batch.

    Parameters
    ----------
    x : (N,) or (N, d) dask array of pool inputs; y : (N, ...) dask array of targets
    q_fn : callable mapping an (m,) or (m, d) ndarray of points to their Q or |Q| ((m,), or
        (m, n_heads): the smallest |Q| is used), e.g. ``TRRational.q_values``; it runs on the
        workers chunk by chunk (pickled) and on the driver for the drawn rows
    n_batches, batch_size : ints >= 1
    config : ImportanceSamplerConfig (weight fields, nan_policy)
    seed : int >= 0 or SeedSequence; use a new one per epoch (e.g. ``SeedSequence([s, epoch])``)
    loss_weights : (N,) dask array, optional per-point loss weights (gathered, multiplied in)

    Moves per epoch: the chunk scans (~24 bytes per segment), 32 bytes per draw for the draw
    jobs and indices, and the drawn rows of x, y and loss_weights. The per-row weights are
    recomputed on the driver from the drawn rows' |Q| by the same kernel.
    """
    n_batches = check_draws(n_batches, "n_batches")
    batch_size = check_draws(batch_size, "batch_size")
    total_draws = check_draws(n_batches * batch_size, "n_batches * batch_size")
    config = _config(config)
    xd = _points(x)
    yd = as_dask_array(y, "y", tuple(range(1, 33)))
    if yd.shape[0] != xd.shape[0]:
        raise ValueError(f"x and y must have the same length, got {xd.shape[0]} and {yd.shape[0]}")
    if loss_weights is not None:
        lw = as_dask_array(loss_weights, "loss_weights", (1,))
        if lw.shape[0] != xd.shape[0]:
            raise ValueError(f"loss_weights has {lw.shape[0]} entries but x has {xd.shape[0]}")
    if not callable(q_fn):
        raise TypeError(f"q_fn must be callable, got {type(q_fn).__name__}")
    stream_key(seed)
    q = da.map_blocks(q_of, q_fn, xd, dtype=np.float64, meta=np.empty(0, dtype=np.float64),
                      **({"drop_axis": 1} if xd.ndim == 2 else {}))
    prepared = importance_weights(q, config)
    idx = sample_indices(q, total_draws, config=config, seed=seed, replace=True,
                         prepared=prepared)
    xb, yb = gather(xd, idx), gather(yd, idx)
    wb = scan_weights(q_of(q_fn, xb), None, config.weight_params(), True).weights
    weight = prepared.total / (xd.shape[0] * wb)  # drawn rows have w > 0
    if loss_weights is not None:
        weight = weight * gather(lw, idx).astype(np.float64)
    offsets = np.arange(n_batches + 1, dtype=np.int64) * batch_size
    return EpochBatches(x=xb, y=yb, weight=weight, indices=idx, offsets=offsets)
