"""BatchSource: a pool and a sampler (or a curriculum, or neither) turned into batches of pool
indices, one epoch at a time."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .curriculum import CurriculumScheduler
from .sampling_diagnostics import (
    ImportanceSampler,
    ImportanceSamplerConfig,
    IntegratedSampler,
)


class BatchSource:
    """Turns a pool (x, y) and a sampler into batches of pool indices, one epoch at a time.

    ``sampler`` may be None (uniform: a fresh permutation per epoch, batches are consecutive
    slices, so an epoch visits every point once), an :class:`ImportanceSampler` (weights from the
    model's |Q| on the pool, prepared once per epoch, then O(B) draws), or an
    :class:`IntegratedSampler` (its strategy; indices from ``info["indices"]``; its importance
    draws, if any, from a pool prepared once per epoch). A :class:`CurriculumScheduler`
    multiplies its per-sample weights into the importance weights (or, without a sampler,
    draws from the curriculum weights alone); it needs importance draws, so an
    IntegratedSampler with the uniform or active strategy cannot take one. With the pool's x at
    :meth:`start_epoch`, :attr:`inverse_probability` holds 1/p_i of the epoch's draws, by which
    the Trainer re-weights its batches.
    """

    def __init__(self, sampler: Any, curriculum: CurriculumScheduler | None,
                 rng: np.random.Generator) -> None:
        if sampler is not None and not isinstance(sampler, (ImportanceSampler, IntegratedSampler)):
            raise TypeError(
                "sampler must be None, an ImportanceSampler or an IntegratedSampler, "
                f"got {type(sampler).__name__}"
            )
        if curriculum is not None and not isinstance(curriculum, CurriculumScheduler):
            raise TypeError(f"curriculum must be a CurriculumScheduler, got {type(curriculum).__name__}")
        if curriculum is not None and isinstance(sampler, IntegratedSampler) \
                and not sampler.draws_by_importance:
            raise ValueError(
                "curriculum: its weights act on importance draws, and an IntegratedSampler with "
                f"the {sampler.strategy.value!r} strategy makes none (use 'importance' or 'hybrid')")
        self.sampler = sampler
        self.curriculum = curriculum
        self.rng = rng
        # curriculum without a sampler: draw ∝ curriculum weights alone (flat importance weights)
        self._plain: ImportanceSampler | None = None
        if sampler is None and curriculum is not None:
            seed = int(rng.integers(2**62))
            self._plain = ImportanceSampler(ImportanceSamplerConfig(weight_power=0.0, seed=seed))
        self._prepared: Any = None
        self._perm: np.ndarray | None = None
        self._q: np.ndarray | None = None
        #: 1/p_i of the epoch's draw distribution over the pool (None: uniform batches)
        self.inverse_probability: np.ndarray | None = None

    @property
    def needs_q(self) -> bool:
        """Whether batches depend on the model's Q over the pool."""
        return self.sampler is not None or self.curriculum is not None

    def start_epoch(self, epoch: int, n: int, q_pool: np.ndarray | None,
                    x: np.ndarray | None = None) -> None:
        """Prepare the epoch's draws (this is data-preparation time); with the pool's ``x``
        also the draw probabilities (:attr:`inverse_probability`)."""
        self.epoch = epoch
        self._q = q_pool
        self._pos = 0
        self._perm = None
        self._prepared = None
        self.inverse_probability = None
        if not self.needs_q:
            self._perm = self.rng.permutation(n)
            return
        weights = None
        if self.curriculum is not None:
            weights = self.curriculum.get_sample_weights(q_values=q_pool)
        if isinstance(self.sampler, ImportanceSampler) or (
                isinstance(self.sampler, IntegratedSampler) and self.sampler.draws_by_importance):
            self._prepared = self.sampler.prepare(q_pool, sample_weights=weights)
        elif self._plain is not None:
            self._prepared = self._plain.prepare(q_pool, sample_weights=weights)
        self.inverse_probability = None if x is None else self._inverse_probability(x, q_pool)

    def _inverse_probability(self, x: np.ndarray, q_pool: np.ndarray) -> np.ndarray | None:
        """1/p_i of a draw from the epoch's distribution (0 where p_i = 0: never drawn), or
        None when batches are a permutation of the pool. ``p`` comes from the sampler:
        :meth:`IntegratedSampler.draw_probabilities`, or the prepared importance weights."""
        if isinstance(self.sampler, IntegratedSampler):
            self.sampler.prepare_epoch(x, q_pool, self.epoch)
            p = self.sampler.draw_probabilities(x, q_pool, self._prepared)
        elif self._prepared is not None:
            p = np.asarray(self._prepared.weights, dtype=np.float64)
        else:
            return None
        inv = np.zeros(p.shape[0])
        np.divide(1.0, p, out=inv, where=p > 0)
        return inv

    def next_indices(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Pool indices of the next batch, shape (B,) int64."""
        if self._perm is not None:
            n = self._perm.shape[0]
            if self._pos >= n:
                self._perm = self.rng.permutation(n)
                self._pos = 0
            idx = self._perm[self._pos:self._pos + batch_size]
            self._pos += batch_size
            return idx
        if isinstance(self.sampler, IntegratedSampler):
            _, info = self.sampler.sample_batch(x, self._q, batch_size, epoch=self.epoch,
                                                prepared=self._prepared)
            return np.asarray(info["indices"], dtype=np.int64)
        sampler = self.sampler if self.sampler is not None else self._plain
        return sampler.sample_indices(self._prepared, batch_size)

    def epoch_indices(self, x: np.ndarray, batch_size: int,
                      n_batches: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's ``n_batches`` successive :meth:`next_indices` at once: pool indices
        (int64, concatenated) and offsets (n_batches + 1,), batch b being
        ``indices[offsets[b]:offsets[b + 1]]``."""
        if self._prepared is not None and not isinstance(self.sampler, IntegratedSampler):
            sampler = self.sampler if self.sampler is not None else self._plain
            idx = sampler.sample_index_batches(self._prepared, n_batches, batch_size).reshape(-1)
            return idx, np.arange(n_batches + 1, dtype=np.int64) * batch_size
        parts = [self.next_indices(x, batch_size) for _ in range(n_batches)]
        offsets = np.zeros(n_batches + 1, dtype=np.int64)
        np.cumsum([p.shape[0] for p in parts], out=offsets[1:])
        return np.concatenate(parts).astype(np.int64, copy=False), offsets

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.sampler is not None:
            state["sampler"] = self.sampler.state_dict()
        if self.curriculum is not None:
            state["curriculum"] = self.curriculum.state_dict()
        if self._plain is not None:
            state["plain"] = self._plain.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output: the saved components must be the ones this
        source has (sampler, curriculum); each is loaded into a copy first, so on an error
        nothing changes."""
        if not isinstance(state, dict):
            raise TypeError(f"source state must be a dict, got {type(state).__name__}")
        parts = {"sampler": self.sampler, "curriculum": self.curriculum, "plain": self._plain}
        unknown = sorted(set(state) - set(parts))
        if unknown:
            raise ValueError(f"source state has unknown entries {unknown}")
        for key, part in parts.items():
            if (part is None) != (key not in state):
                raise ValueError(f"source state {'lacks' if part is not None else 'has'} a "
                                 f"{key} state but this trainer {'has' if part is not None else 'has no'} "
                                 f"{key}")
        for key, part in parts.items():
            if part is not None:
                copy.deepcopy(part).load_state_dict(state[key])
        for key, part in parts.items():
            if part is not None:
                part.load_state_dict(state[key])
