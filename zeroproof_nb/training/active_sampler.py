"""The active sampler: a structured array of axis-aligned cells refined where |Q| is small.

See ``docs/sampling.md`` for the split rule.
"""
from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._validation import (
    MAX_GRID_DIM,
    as_float_array,
    bit_generator_from_state,
    check_alloc,
    check_bounds,
    check_config,
    check_draws,
    check_int,
    check_nonnegative,
)
from ..kernels import refine as _kr
from . import sampling as _sampling
from .sampler_state import (
    SampledBatch,
    as_pool_q,
    as_pool_x,
    check_seed,
    config_fields,
    make_rng,
    restore_rng,
    rng_state,
    scalar_item,
    state_mapping,
)

__all__ = ["ActiveSamplerConfig", "ActiveSampler"]


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
        check_seed(self.seed)

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
        self.rng = make_rng(config.seed if rng is None else rng)
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
        mask = np.empty(n, dtype=np.bool_)
        _kr.mark_cells(cells["refined"][:n], cells["level"][:n], qa,
                       int(self.config.max_refinement_level), float(threshold), mask)
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
            kernel = _kr.split_cells if _sampling.parallel(k * per_cell) else _kr.split_cells_serial
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
        r = self.rng if rng is None else make_rng(rng)
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
        q = as_pool_q(q_pool)
        tree, usable = tree if tree is not None else self.pool_tree(x_pool, q)
        _, nearest = tree.query(self.points(), k=1)
        return self.refine(q[usable[nearest]])

    def pool_tree(self, x_pool: Any, q_pool: Any) -> tuple[Any, np.ndarray]:
        """(cKDTree over the pool points with a non-NaN q, their pool indices)."""
        from scipy.spatial import cKDTree

        q = as_pool_q(q_pool)
        x = as_float_array(as_pool_x(x_pool, q.shape[0]), "x_pool", ndim=(1, 2),
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
            q = as_pool_q(q_pool)
            if q.shape[0] != x2.shape[0]:
                raise ValueError(f"q_pool has {q.shape[0]} points but x_pool has {x2.shape[0]}")
            out[np.isnan(q)] = -1
        return out

    def _draw_table(self, x_pool: Any, q_pool: Any, tree: Any) -> tuple[np.ndarray, ...]:
        """(order, start, count, nearest) per leaf: the pool points of leaf k are
        ``order[start[k]:start[k] + count[k]]``; an empty leaf's stand-in is the usable pool
        point ``nearest[k]`` closest to its centre (−1 for leaves that hold points)."""
        q = as_pool_q(q_pool)
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
        q = as_pool_q(q_pool)
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

    def draw(self, x_pool: Any, q_pool: Any, batch_size: int) -> SampledBatch:
        """A batch of labelled pool points (:meth:`sample_pool_indices`) in the shape every
        sampler's ``draw`` returns: ``SampledBatch(x, indices, info)`` with ``info =
        {"strategy": "active", "indices": ..., "active_stats": ...}``. The grid is not refined
        here (:meth:`refine_from_pool`)."""
        idx = self.sample_pool_indices(x_pool, q_pool, batch_size)
        x = np.asarray(x_pool)[idx]
        return SampledBatch(x, idx, {"strategy": "active", "indices": idx,
                                     "active_stats": self.get_statistics()})

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
            "rng_state": rng_state(self.rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Everything (config, dimension, every cell, history, generator state) is validated
        before anything is assigned: on an error the sampler is unchanged."""
        state = state_mapping(state, ("config", "input_dim", "cells", "refinement_history",
                                       "rng_state"))
        cfg = config_fields(state["config"], ActiveSamplerConfig)
        gb = cfg.get("grid_bounds", (-3.0, 3.0))
        try:
            if gb is not None:
                cfg["grid_bounds"] = tuple(tuple(p) for p in gb) if np.ndim(gb) == 2 \
                    else tuple(gb)
        except TypeError as exc:
            raise TypeError(f"config['grid_bounds'] must be (lo, hi) pairs, got {gb!r}") from exc
        config = ActiveSamplerConfig(**cfg)
        dim = check_int(scalar_item(state["input_dim"]), "input_dim", minimum=1,
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
        self.rng = restore_rng(self.rng, state["rng_state"])


# ========================================================================== integrated
