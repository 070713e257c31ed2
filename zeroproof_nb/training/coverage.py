"""Coverage tracking: the share of REAL outputs per batch, cumulatively and over a window.

Coverage is ``n_REAL / n_total``; an empty batch (or window) counts as coverage 1.0, as upstream.
Tags are counted with :func:`zeroproof_nb.core.count_tags` (a Numba kernel), so a ``uint8`` tag
array is the fast path; lists of :class:`~zeroproof_nb.core.TRTag` and transreal arrays work too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._validation import check_choice, check_counts, check_in_range, check_int
from ..core import as_tags, count_tags

__all__ = ["CoverageMetrics", "CoverageTracker", "MultiOutputCoverageTracker"]

_TAG_NAMES = ("REAL", "PINF", "NINF", "PHI")


@dataclass
class CoverageMetrics:
    """Tag counters of one batch or of a whole run.

    Attributes
    ----------
    total_samples, real_samples, pinf_samples, ninf_samples, phi_samples : int
    """

    total_samples: int = 0
    real_samples: int = 0
    pinf_samples: int = 0
    ninf_samples: int = 0
    phi_samples: int = 0

    @property
    def coverage(self) -> float:
        """``real_samples / total_samples``, or 1.0 when nothing was counted."""
        if self.total_samples == 0:
            return 1.0
        return self.real_samples / self.total_samples

    @property
    def rejection_rate(self) -> float:
        """``1 - coverage``."""
        return 1.0 - self.coverage

    @property
    def tag_distribution(self) -> dict[str, float]:
        """Proportions of each tag, keys ``REAL, PINF, NINF, PHI`` (REAL 1.0 when empty)."""
        if self.total_samples == 0:
            return {"REAL": 1.0, "PINF": 0.0, "NINF": 0.0, "PHI": 0.0}
        n = self.total_samples
        return {name: c / n for name, c in zip(_TAG_NAMES, self.counts())}

    def counts(self) -> tuple[int, int, int, int]:
        """Counts ``(REAL, PINF, NINF, PHI)``."""
        return (self.real_samples, self.pinf_samples, self.ninf_samples, self.phi_samples)

    def add_counts(self, counts: Sequence[int]) -> None:
        """Add counts ``(REAL, PINF, NINF, PHI)`` as returned by ``count_tags`` (4 integers
        >= 0; ``TypeError`` for floats, ``ValueError`` for negatives)."""
        r, p, n, f = (int(c) for c in check_counts(counts))
        self.real_samples += r
        self.pinf_samples += p
        self.ninf_samples += n
        self.phi_samples += f
        self.total_samples += r + p + n + f

    def update(self, tags: Any) -> None:
        """Count a batch of tags (uint8 array, transreal array or list of TRTag, any shape)."""
        self.add_counts(count_tags(tags))

    def reset(self) -> None:
        """Set every counter to zero."""
        self.total_samples = self.real_samples = self.pinf_samples = 0
        self.ninf_samples = self.phi_samples = 0

    def copy(self) -> "CoverageMetrics":
        return CoverageMetrics(*self._fields())

    def _fields(self) -> tuple[int, int, int, int, int]:
        return (self.total_samples, *self.counts())

    def to_dict(self) -> dict[str, int]:
        """The five counters as a JSON-able dict."""
        return {
            "total_samples": self.total_samples,
            "real_samples": self.real_samples,
            "pinf_samples": self.pinf_samples,
            "ninf_samples": self.ninf_samples,
            "phi_samples": self.phi_samples,
        }


def _metrics_from(d: Any, name: str) -> CoverageMetrics:
    """A :class:`CoverageMetrics` from its ``to_dict`` form, validated."""
    keys = ("total_samples", "real_samples", "pinf_samples", "ninf_samples", "phi_samples")
    if not isinstance(d, dict) or set(d) != set(keys):
        raise ValueError(f"{name} must be a dict with the keys {keys}")
    vals = {k: check_int(d[k], f"{name}[{k!r}]", minimum=0) for k in keys}
    if vals["total_samples"] != sum(vals[k] for k in keys[1:]):
        raise ValueError(f"{name}: total_samples must be the sum of the four counts")
    return CoverageMetrics(**vals)


class CoverageTracker:
    """Batch, cumulative and (optionally) sliding-window REAL coverage.

    Parameters
    ----------
    target_coverage : float in [0, 1]
        Desired share of REAL outputs.
    window_size : int >= 1 or None
        Number of most recent batches in the window; None tracks cumulative coverage only.

    Attributes
    ----------
    current_batch, cumulative : CoverageMetrics
    history : list of CoverageMetrics
        The batches in the window (only filled when ``window_size`` is set).
    window_coverage : float or None
        ``sum(real) / sum(total)`` over the window (1.0 if the window holds no samples); None
        before the first update or without a window.
    """

    def __init__(self, target_coverage: float = 0.95, window_size: int | None = None) -> None:
        self.target_coverage = check_in_range(target_coverage, "target_coverage", 0.0, 1.0)
        self.window_size = None if window_size is None else check_int(window_size, "window_size", minimum=1)
        self.current_batch = CoverageMetrics()
        self.cumulative = CoverageMetrics()
        self.history: list[CoverageMetrics] = []
        self.window_coverage: float | None = None

    def update(self, tags: Any) -> None:
        """Record one batch of tags (uint8 array of any shape, transreal array, or list of TRTag)."""
        self.update_counts(count_tags(tags))

    def update_counts(self, counts: Sequence[int]) -> None:
        """Record one batch given its counts ``(REAL, PINF, NINF, PHI)`` (integers >= 0)."""
        counts = check_counts(counts)
        self.current_batch.reset()
        self.current_batch.add_counts(counts)
        self.cumulative.add_counts(counts)
        if self.window_size is not None:
            self.history.append(self.current_batch.copy())
            del self.history[: max(0, len(self.history) - self.window_size)]
            total = sum(m.total_samples for m in self.history)
            real = sum(m.real_samples for m in self.history)
            self.window_coverage = real / total if total > 0 else 1.0

    def update_counts_many(self, counts: np.ndarray) -> None:
        """:meth:`update_counts` for each row of ``counts`` (n_batches, 4), in order."""
        c = np.asarray(counts)
        if c.size == 0:
            return
        if c.dtype.kind not in "iu":
            raise TypeError(f"counts must hold integer counts, got dtype {c.dtype}")
        if c.ndim != 2 or c.shape[1] != 4:
            raise ValueError(f"counts must have shape (n_batches, 4), got {c.shape}")
        counts = c.astype(np.int64)
        if np.any(counts < 0):
            raise ValueError("counts must be >= 0")
        if self.window_size is not None:
            for row in counts:
                self.update_counts(row)
            return
        self.current_batch.reset()
        self.current_batch.add_counts(counts[-1])
        self.cumulative.add_counts(counts.sum(axis=0))

    @property
    def coverage(self) -> float:
        """Window coverage when a window is set and filled, else cumulative coverage."""
        if self.window_size is not None and self.window_coverage is not None:
            return self.window_coverage
        return self.cumulative.coverage

    @property
    def coverage_gap(self) -> float:
        """``target_coverage - coverage``, rounded to 10 decimals (as upstream)."""
        return float(round(self.target_coverage - self.coverage, 10))

    @property
    def batch_coverage(self) -> float:
        """Coverage of the most recent batch (1.0 before any update)."""
        return self.current_batch.coverage

    def get_statistics(self) -> dict[str, Any]:
        """Upstream's keys; ``tag_distribution`` holds cumulative *counts* n_real..n_phi."""
        c = self.cumulative
        return {
            "target_coverage": self.target_coverage,
            "current_coverage": self.coverage,
            "coverage_gap": self.coverage_gap,
            "batch_coverage": self.batch_coverage,
            "cumulative_coverage": c.coverage,
            "window_coverage": self.window_coverage if self.window_size else None,
            "total_samples": c.total_samples,
            "tag_distribution": {
                "n_real": c.real_samples,
                "n_pinf": c.pinf_samples,
                "n_ninf": c.ninf_samples,
                "n_phi": c.phi_samples,
            },
        }

    def reset(self) -> None:
        """Forget every batch."""
        self.current_batch.reset()
        self.cumulative.reset()
        self.history.clear()
        self.window_coverage = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (settings and counters)."""
        return {
            "target_coverage": self.target_coverage,
            "window_size": self.window_size,
            "current_batch": self.current_batch.to_dict(),
            "cumulative": self.cumulative.to_dict(),
            "history": [m.to_dict() for m in self.history],
            "window_coverage": self.window_coverage,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`; validated first (counts are
        integers >= 0 whose total is their sum), so on an error the tracker is unchanged."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        for key in ("target_coverage", "window_size", "current_batch", "cumulative", "history",
                    "window_coverage"):
            if key not in state:
                raise ValueError(f"state is missing {key!r}")
        ws = state["window_size"]
        target = check_in_range(state["target_coverage"], "target_coverage", 0.0, 1.0)
        window = None if ws is None else check_int(ws, "window_size", minimum=1)
        current = _metrics_from(state["current_batch"], "current_batch")
        cumulative = _metrics_from(state["cumulative"], "cumulative")
        if not isinstance(state["history"], list):
            raise TypeError("history must be a list")
        history = [_metrics_from(m, f"history[{i}]") for i, m in enumerate(state["history"])]
        wc = state["window_coverage"]
        if wc is not None:
            wc = check_in_range(wc, "window_coverage", 0.0, 1.0)
        self.target_coverage = target
        self.window_size = window
        self.current_batch = current
        self.cumulative = cumulative
        self.history = history
        self.window_coverage = wc


class MultiOutputCoverageTracker:
    """One cumulative :class:`CoverageTracker` per output, aggregated by mean, min or max.

    Parameters
    ----------
    n_outputs : int >= 1
    target_coverage : float in [0, 1]
    aggregate_mode : {"mean", "min", "max"}
    """

    def __init__(self, n_outputs: int, target_coverage: float = 0.95, aggregate_mode: str = "mean") -> None:
        self.n_outputs = check_int(n_outputs, "n_outputs", minimum=1)
        self.target_coverage = check_in_range(target_coverage, "target_coverage", 0.0, 1.0)
        self.aggregate_mode = check_choice(aggregate_mode, "aggregate_mode", ("mean", "min", "max"))
        self.trackers = [CoverageTracker(self.target_coverage) for _ in range(self.n_outputs)]

    def update(self, tags_list: Any) -> None:
        """Record one batch per output.

        Parameters
        ----------
        tags_list : (n_outputs, batch) uint8/transreal array, or a sequence of n_outputs tag
            sequences (each a uint8 array or a list of TRTag; lengths may differ).
        """
        if isinstance(tags_list, np.ndarray) and tags_list.ndim == 2:
            t = as_tags(tags_list, "tags_list")
            if t.shape[0] != self.n_outputs:
                raise ValueError(f"tags_list must have {self.n_outputs} outputs (rows), got {t.shape[0]}")
            per_output = count_tags(t, axis=1)
        else:
            if isinstance(tags_list, np.ndarray) and tags_list.ndim != 2:
                raise ValueError(f"tags_list must be 2-dimensional (n_outputs, batch), got shape {tags_list.shape}")
            seqs = list(tags_list)
            if len(seqs) != self.n_outputs:
                raise ValueError(f"tags_list must have {self.n_outputs} outputs, got {len(seqs)}")
            per_output = [count_tags(s) for s in seqs]
        for tracker, counts in zip(self.trackers, per_output):
            tracker.update_counts(counts)

    @property
    def coverage(self) -> float:
        """Mean, min or max of the per-output coverages."""
        cov = np.array(self.get_per_output_coverage())
        return float({"mean": np.mean, "min": np.min, "max": np.max}[self.aggregate_mode](cov))

    @property
    def coverage_gap(self) -> float:
        """``target_coverage - coverage`` (not rounded, as upstream)."""
        return self.target_coverage - self.coverage

    def get_per_output_coverage(self) -> list[float]:
        """Cumulative coverage of each output."""
        return [t.coverage for t in self.trackers]

    def reset(self) -> None:
        for t in self.trackers:
            t.reset()
