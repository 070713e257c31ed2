"""Importance, active, uniform or hybrid batches from a labelled pool, plus diagnostics.

:class:`SamplingStrategy`, :class:`IntegratedSampler` and :func:`create_integrated_sampler`.
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from .._jsonutil import dump_strict
from .._validation import bit_generator_from_state, check_draws, check_int
from .active_sampler import ActiveSampler, ActiveSamplerConfig
from .diagnostics import DiagnosticConfig, DiagnosticMonitor
from .importance_sampler import ImportanceSampler, ImportanceSamplerConfig, PreparedPool
from .sampler_state import (
    SampledBatch,
    as_pool_q,
    as_pool_x,
    check_seed,
    restore_rng,
    rng_state,
    scalar_item,
    state_mapping,
)

__all__ = ["SamplingStrategy", "IntegratedSampler", "create_integrated_sampler", "FACTORY_ALIASES"]


class SamplingStrategy(Enum):
    """Strategies of :class:`IntegratedSampler`."""

    UNIFORM = "uniform"
    IMPORTANCE = "importance"
    ACTIVE = "active"
    HYBRID = "hybrid"


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
                check_seed(seed)
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
        q = as_pool_q(q_pool)
        x = as_pool_x(x_pool, q.shape[0])
        self._maybe_refine(self._active_for(x), x, q, check_int(epoch, "epoch", minimum=0))

    def draw_probabilities(self, x_pool: Any, q_pool: Any,
                           prepared: PreparedPool | None = None) -> np.ndarray:
        """Probability p_i that one draw of :meth:`sample_batch` is pool point i, shape (N,):
        uniform 1/N; importance: the prepared weights (``prepared``, else those of
        ``q_pool``); active: :meth:`ActiveSampler.pool_draw_probabilities`; hybrid: the
        mixture r·p_importance + (1 − r)·p_active with r = ``importance_batch_ratio``. Without
        replacement these are the probabilities of the first draw."""
        q = as_pool_q(q_pool)
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
        x = as_pool_x(x_pool, n)
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
                x = as_pool_x(x, len(as_pool_q(q_pool)))
            idx = self.rng.integers(0, x.shape[0], size=batch_size, dtype=np.int64)
            batch_x = x[idx]
        elif self.strategy is SamplingStrategy.IMPORTANCE:
            batch_x, idx = imp.sample_batch(x_pool, draw_q, batch_size,
                                            sample_weights=sample_weights)
            info["importance_stats"] = imp.get_statistics()
        else:
            q = as_pool_q(q_pool)
            x = as_pool_x(x_pool, q.shape[0])
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

    def draw(self, x_pool: Any, q_pool: Any, batch_size: int, epoch: int = 0, *,
             sample_weights: Any = None, prepared: PreparedPool | None = None) -> SampledBatch:
        """:meth:`sample_batch` in the shape every sampler's ``draw`` returns:
        ``SampledBatch(x, indices, info)`` (``indices`` is ``info["indices"]``)."""
        x, info = self.sample_batch(x_pool, q_pool, batch_size, epoch,
                                    sample_weights=sample_weights, prepared=prepared)
        return SampledBatch(x, info["indices"], info)

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
            "rng_state": rng_state(self.rng),
            "last_refined_epoch": self._last_refined_epoch,
            "sampling_history": list(self.sampling_history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Validated as a whole first (the component states are loaded into copies): on an
        error the sampler is unchanged."""
        state = state_mapping(state, ("strategy", "importance", "active", "rng_state",
                                       "last_refined_epoch"))
        try:
            strategy = SamplingStrategy(state["strategy"])
        except ValueError:
            raise ValueError(f"strategy must be one of {[s.value for s in SamplingStrategy]}, "
                             f"got {state['strategy']!r}") from None
        copy.deepcopy(self.importance_sampler).load_state_dict(state["importance"])
        copy.deepcopy(self.active_sampler).load_state_dict(state["active"])
        bit_generator_from_state(state["rng_state"])
        last = scalar_item(state["last_refined_epoch"])
        if last is not None:
            last = check_int(last, "last_refined_epoch", minimum=0)
        history = state.get("sampling_history", [])
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise ValueError("sampling_history must be a list of dicts")
        # commit: the same loads succeed on the real components
        self.importance_sampler.load_state_dict(state["importance"])
        self.active_sampler.load_state_dict(state["active"])
        self.strategy = strategy
        self.rng = restore_rng(self.rng, state["rng_state"])
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
    # the config fields' own names, accepted beside upstream's shorter spellings
    "importance_batch_ratio", "initial_grid_size", "max_refinement_level",
}
#: upstream's factory keyword -> the config field it sets (either spelling is accepted)
FACTORY_ALIASES = {"importance_ratio": "importance_batch_ratio", "grid_size": "initial_grid_size",
                   "max_refinement": "max_refinement_level"}


def create_integrated_sampler(strategy: str = "hybrid", weight_power: float = 2.0,
                              export_path: str = "diagnostics", *, seed: Any = None,
                              **kwargs: Any) -> IntegratedSampler:
    """Build an :class:`IntegratedSampler` from flat keyword arguments.

    Upstream's keywords: ``temperature``, ``importance_ratio`` (→ importance_batch_ratio),
    ``grid_size`` (→ initial_grid_size), ``refinement_threshold``, ``max_refinement``
    (→ max_refinement_level), each of the three also under the config field's own name
    (:data:`FACTORY_ALIASES`; both spellings at once raise ``TypeError``), ``export_frequency``, ``track_gradients``, ``track_tags``
    (→ track_tag_distribution). Ours: ``max_weight``, ``min_q_abs``, ``replacement``,
    ``nan_policy``, ``grid_bounds``, ``max_grid_points``, ``refinement_ratio``,
    ``adapt_frequency``, ``input_dim``, ``max_history``. Unknown keywords raise ``TypeError``.
    No directory is created until an export.
    """
    unknown = sorted(set(kwargs) - _FACTORY_KEYS)
    if unknown:
        raise TypeError(f"create_integrated_sampler got unexpected keyword argument(s) {unknown}")
    for short, field in FACTORY_ALIASES.items():
        if field in kwargs:
            if short in kwargs:
                raise TypeError(f"create_integrated_sampler got both {short!r} and {field!r} "
                                f"(the same setting); pass one")
            kwargs[short] = kwargs.pop(field)
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
