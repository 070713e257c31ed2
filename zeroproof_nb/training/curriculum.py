"""Curriculum from far to near poles: stage thresholds, easy/hard mixing, adaptive advance.

Formulas follow upstream's ``advanced_control.CurriculumScheduler`` (reference §5.5):

* threshold: ``easy_distance`` during warm-up, else ``easy·(1 − prog) + hard·prog`` with
  ``prog = stage/(n−1)`` (linear) or ``(exp(stage/(n−1)) − 1)/(e − 1)`` (exponential); with
  ``n_stages = 1`` both give ``prog = 0`` (upstream divides by zero);
* a sample is *hard* when its distance (to the nearest pole, or |Q|) is ≤ the threshold;
* ``easy_ratio = initial·(1 − p) + final·p`` with the linear progress ``p``; hard samples share
  ``1 − easy_ratio``, easy samples share ``easy_ratio``;
* with ``use_importance_weights`` the hard share is split ∝ ``exp(−d/T)`` (a shifted softmax,
  so tiny temperatures do not underflow to 0/0);
* weights are normalised to sum to 1.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

from .._validation import (
    as_float_array,
    check_choice,
    check_in_range,
    check_int,
    check_nonnegative,
    check_positive,
)

__all__ = ["CurriculumConfig", "CurriculumScheduler", "combine_sample_weights"]


@dataclass
class CurriculumConfig:
    """Settings of :class:`CurriculumScheduler` (upstream's fields and defaults).

    Attributes
    ----------
    n_stages : int >= 1
    stage_duration : int >= 0 (epochs per stage; adaptive mode needs half of it)
    easy_distance, hard_distance : float, 0 <= hard_distance <= easy_distance
    initial_easy_ratio, final_easy_ratio : float in [0, 1]
    linear_progression : bool (else exponential)
    warmup_epochs : int >= 0
    adaptive : bool (advance on coverage and loss)
    min_coverage_for_advance : float in [0, 1]
    max_loss_for_advance : float >= 0
    use_importance_weights : bool
    importance_temperature : float > 0
    """

    n_stages: int = 5
    stage_duration: int = 20
    easy_distance: float = 1.0
    hard_distance: float = 0.01
    initial_easy_ratio: float = 0.9
    final_easy_ratio: float = 0.2
    linear_progression: bool = False
    warmup_epochs: int = 5
    adaptive: bool = True
    min_coverage_for_advance: float = 0.7
    max_loss_for_advance: float = 1.0
    use_importance_weights: bool = True
    importance_temperature: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first invalid field."""
        check_int(self.n_stages, "n_stages", minimum=1)
        check_int(self.stage_duration, "stage_duration", minimum=0)
        check_int(self.warmup_epochs, "warmup_epochs", minimum=0)
        easy = check_nonnegative(self.easy_distance, "easy_distance")
        hard = check_nonnegative(self.hard_distance, "hard_distance")
        if hard > easy:
            raise ValueError(
                f"hard_distance must be <= easy_distance, got {hard!r} > {easy!r}"
            )
        check_in_range(self.initial_easy_ratio, "initial_easy_ratio", 0.0, 1.0)
        check_in_range(self.final_easy_ratio, "final_easy_ratio", 0.0, 1.0)
        check_in_range(self.min_coverage_for_advance, "min_coverage_for_advance", 0.0, 1.0)
        if isinstance(self.max_loss_for_advance, bool) or not (
                isinstance(self.max_loss_for_advance, numbers.Real)
                and self.max_loss_for_advance >= 0):
            raise ValueError(
                f"max_loss_for_advance must be a number >= 0, got {self.max_loss_for_advance!r}"
            )
        for name in ("linear_progression", "adaptive", "use_importance_weights"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        check_positive(self.importance_temperature, "importance_temperature")


def combine_sample_weights(*weights: Any) -> np.ndarray:
    """Product of per-sample weight arrays, normalised to sum 1.

    Use it to combine curriculum weights with importance weights:
    ``combine_sample_weights(curriculum.get_sample_weights(x), sampler.compute_weights(q))``.
    The draw distribution of ``ImportanceSampler.sample_batch(..., sample_weights=c)`` is the
    same product, computed inside the kernel without this intermediate array.

    Each array is divided by its largest entry before the product, so the result does not
    depend on the arrays' scales (``combine_sample_weights(1e200 * a, b)`` equals
    ``combine_sample_weights(a, b)`` up to rounding, instead of overflowing to NaN).

    Raises ``ValueError`` for mismatched lengths, negative or NaN entries, or a zero product.
    """
    if not weights:
        raise ValueError("weights: give at least one array")
    prod = None
    for k, w in enumerate(weights):
        arr = as_float_array(w, f"weights[{k}]", ndim=1, dtype=np.float64)
        if np.any(~(arr >= 0)) or np.any(np.isinf(arr)):
            raise ValueError(f"weights[{k}] must be finite and >= 0")
        top = float(arr.max()) if arr.size else 0.0
        arr = arr / top if top > 0 else arr.copy()
        if prod is None:
            prod = arr
        elif arr.shape != prod.shape:
            raise ValueError(
                f"weights[{k}] must have length {prod.shape[0]}, got {arr.shape[0]}"
            )
        else:
            prod *= arr
    total = float(np.sum(prod))
    if not total > 0:
        raise ValueError("weights: the product of the weights is zero everywhere")
    return prod / total


def _item(v: Any) -> Any:
    return v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v


class CurriculumScheduler:
    """Stages of difficulty from far (|Q| or pole distance ≤ easy) to near (≤ hard).

    Parameters
    ----------
    config : CurriculumConfig, optional
    pole_locations : sequence of floats (1-D poles), or (P, d) array of pole positions, optional.
        When given, a sample's distance is its Euclidean distance to the nearest pole; otherwise
        ``get_sample_weights`` uses |q| as the distance.
    """

    def __init__(self, config: CurriculumConfig | None = None,
                 pole_locations: Sequence[float] | np.ndarray | None = None) -> None:
        self.config = config if config is not None else CurriculumConfig()
        if not isinstance(self.config, CurriculumConfig):
            raise TypeError(f"config must be a CurriculumConfig, got {type(config).__name__}")
        self.config.validate()
        if pole_locations is None or len(pole_locations) == 0:
            self.pole_locations = np.empty((0, 1))
        else:
            poles = as_float_array(pole_locations, "pole_locations", ndim=(1, 2),
                                   dtype=np.float64)
            if poles.ndim == 1:
                poles = poles[:, None]
            if not np.all(np.isfinite(poles)):
                raise ValueError("pole_locations must be finite")
            self.pole_locations = poles
        self.current_epoch = 0
        self.current_stage = 0
        self.stage_start_epoch = 0
        self.stage_performance: list[dict[str, Any]] = []
        self.coverage_history: list[float] = []
        self.loss_history: list[float] = []

    # ----------------------------------------------------------------------------- progress
    def linear_progress(self) -> float:
        """``stage / (n_stages − 1)`` (0 when n_stages = 1)."""
        return self.current_stage / max(1, self.config.n_stages - 1)

    def stage_progress(self) -> float:
        """Progress used by the threshold: linear or exponential (0 when n_stages = 1)."""
        n = self.config.n_stages
        if self.config.linear_progression or n == 1:
            return self.linear_progress()
        return (math.exp(self.current_stage / (n - 1)) - 1.0) / (math.e - 1.0)

    def get_difficulty_threshold(self) -> float:
        """Distance below which (≤) a sample counts as hard at the current stage."""
        c = self.config
        if self.current_epoch < c.warmup_epochs:
            return float(c.easy_distance)
        prog = self.stage_progress()
        return float(c.easy_distance * (1.0 - prog) + c.hard_distance * prog)

    def easy_ratio(self) -> float:
        """Share of the total weight given to easy samples at the current stage."""
        p = self.linear_progress()
        c = self.config
        return float(c.initial_easy_ratio * (1.0 - p) + c.final_easy_ratio * p)

    # ------------------------------------------------------------------------------ weights
    def distances(self, x_values: Any = None, q_values: Any = None) -> np.ndarray | None:
        """Per-sample distances: to the nearest pole (needs x), else |q|; None if neither."""
        if self.pole_locations.shape[0] > 0:
            if x_values is None:
                raise ValueError("x_values is required when pole_locations are set")
            x = as_float_array(x_values, "x_values", ndim=(1, 2), dtype=np.float64)
            if x.ndim == 1:
                x = x[:, None]
            if x.shape[1] != self.pole_locations.shape[1]:
                raise ValueError(
                    f"x_values must have {self.pole_locations.shape[1]} columns (the pole "
                    f"dimension), got shape {x.shape}"
                )
            dist = np.full(x.shape[0], np.inf)
            for pole in self.pole_locations:  # P is small; vectorised over samples
                np.minimum(dist, np.sqrt(np.sum((x - pole) ** 2, axis=1)), out=dist)
            return dist
        if q_values is not None:
            return np.abs(as_float_array(q_values, "q_values", ndim=1, dtype=np.float64))
        return None

    def get_sample_weights(self, x_values: Any = None, q_values: Any = None, *,
                           distances: Any = None, nan_policy: str = "raise") -> np.ndarray:
        """Normalised per-sample weights for the current stage, shape (n,).

        Parameters
        ----------
        x_values : (n,) or (n, d) array-like; used with ``pole_locations``
        q_values : (n,) array-like; |q| is the distance when there are no poles
        distances : (n,) array-like, optional; overrides both
        nan_policy : 'raise' (ValueError) or 'omit' (NaN distances get weight 0)
        """
        check_choice(nan_policy, "nan_policy", ("raise", "omit"))
        if distances is not None:
            dist = np.abs(as_float_array(distances, "distances", ndim=1, dtype=np.float64))
            name = "distances"
        else:
            dist = self.distances(x_values, q_values)
            name = "x_values" if self.pole_locations.shape[0] > 0 else "q_values"
        if dist is None:
            if x_values is None:
                raise ValueError("x_values, q_values or distances must be given")
            n = len(x_values)
            if n == 0:
                raise ValueError("x_values must not be empty")
            return np.full(n, 1.0 / n)
        n = dist.shape[0]
        if n == 0:
            raise ValueError(f"{name} must not be empty")
        valid = ~np.isnan(dist)
        if not np.all(valid):
            if nan_policy == "raise":
                raise ValueError(f"{name} contains NaN (use nan_policy='omit' to weight it 0)")
            if not np.any(valid):
                raise ValueError(f"{name} contains only NaN")
        thr = self.get_difficulty_threshold()
        hard = valid & (dist <= thr)
        easy = valid & ~hard
        n_hard = int(np.count_nonzero(hard))
        n_easy = int(np.count_nonzero(easy))
        easy_ratio = self.easy_ratio()
        hard_ratio = 1.0 - easy_ratio
        weights = np.zeros(n)
        if n_easy:
            weights[easy] = easy_ratio / n_easy
        if n_hard:
            if self.config.use_importance_weights:
                d_hard = dist[hard]
                imp = np.exp(-(d_hard - d_hard.min()) / self.config.importance_temperature)
                weights[hard] = hard_ratio * imp / imp.sum()
            else:
                weights[hard] = hard_ratio / n_hard
        total = weights.sum()
        if not total > 0:  # e.g. every sample easy and easy_ratio = 0
            weights[valid] = 1.0
            total = weights.sum()
        return weights / total

    # ------------------------------------------------------------------------------ advance
    def should_advance_stage(self, current_coverage: float, current_loss: float) -> bool:
        """Fixed: ``epochs_in_stage ≥ stage_duration``. Adaptive: coverage ≥ min, loss ≤ max,
        and ``epochs_in_stage ≥ stage_duration // 2``."""
        c = self.config
        epochs_in_stage = self.current_epoch - self.stage_start_epoch
        if not c.adaptive:
            return epochs_in_stage >= c.stage_duration
        if current_coverage < c.min_coverage_for_advance:
            return False
        if current_loss > c.max_loss_for_advance:
            return False
        return epochs_in_stage >= c.stage_duration // 2

    def update(self, epoch: int, coverage: float, loss: float) -> dict[str, Any]:
        """Record an epoch and advance the stage when due.

        Returns {stage, progress, difficulty_threshold, advanced, epochs_in_stage}.
        """
        epoch = check_int(epoch, "epoch", minimum=0)
        coverage = check_in_range(coverage, "coverage", 0.0, 1.0)
        if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
            raise TypeError(f"loss must be a real number, got {type(loss).__name__}")
        loss = float(loss)
        if loss != loss:
            raise ValueError("loss must not be NaN (a NaN loss must not advance the curriculum)")
        self.current_epoch = epoch
        self.coverage_history.append(coverage)
        self.loss_history.append(loss)
        advanced = False
        if (self.current_stage < self.config.n_stages - 1
                and self.should_advance_stage(coverage, loss)):
            self.stage_performance.append({
                "stage": self.current_stage,
                "duration": epoch - self.stage_start_epoch,
                "final_coverage": coverage,
                "final_loss": loss,
            })
            self.current_stage += 1
            self.stage_start_epoch = epoch
            advanced = True
        return {
            "stage": self.current_stage,
            "progress": self.linear_progress(),
            "difficulty_threshold": self.get_difficulty_threshold(),
            "advanced": advanced,
            "epochs_in_stage": epoch - self.stage_start_epoch,
        }

    def get_summary(self) -> dict[str, Any]:
        """{current_stage, total_stages, mean_coverage, coverage_trend, stage_performance};
        {} before the first update. ``coverage_trend`` is the least-squares slope per epoch
        (0.0 with a single record)."""
        if not self.coverage_history:
            return {}
        cov = np.asarray(self.coverage_history, dtype=np.float64)
        trend = float(np.polyfit(np.arange(cov.size), cov, 1)[0]) if cov.size > 1 else 0.0
        return {
            "current_stage": self.current_stage,
            "total_stages": self.config.n_stages,
            "mean_coverage": float(cov.mean()),
            "coverage_trend": trend,
            "stage_performance": list(self.stage_performance),
        }

    # -------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Config, poles, stage counters and histories (plain Python / NumPy values)."""
        return {
            "config": asdict(self.config),
            "pole_locations": self.pole_locations.copy(),
            "current_epoch": self.current_epoch,
            "current_stage": self.current_stage,
            "stage_start_epoch": self.stage_start_epoch,
            "stage_performance": [dict(s) for s in self.stage_performance],
            "coverage_history": list(self.coverage_history),
            "loss_history": list(self.loss_history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; everything is validated before anything
        is assigned (on an error the scheduler is unchanged)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        keys = ("config", "pole_locations", "current_epoch", "current_stage",
                "stage_start_epoch", "stage_performance", "coverage_history", "loss_history")
        for key in keys:
            if key not in state:
                raise ValueError(f"state is missing {key!r}")
        cfg = state["config"]
        if not isinstance(cfg, dict):
            raise TypeError(f"config must be a dict, got {type(cfg).__name__}")
        unknown = sorted(set(cfg) - {f.name for f in fields(CurriculumConfig)})
        if unknown:
            raise ValueError(f"config has unknown fields {unknown}")
        config = CurriculumConfig(**cfg)
        poles = as_float_array(state["pole_locations"], "pole_locations", ndim=(1, 2),
                               dtype=np.float64)
        if not np.all(np.isfinite(poles)):
            raise ValueError("pole_locations must be finite")
        poles = poles.reshape(-1, 1) if poles.ndim == 1 else np.array(poles)
        if poles.shape[0] == 0:
            poles = np.empty((0, 1))
        ints = {k: check_int(_item(state[k]), k, minimum=0)
                for k in ("current_epoch", "current_stage", "stage_start_epoch")}
        if ints["current_stage"] >= config.n_stages:
            raise ValueError(f"current_stage must be < n_stages ({config.n_stages})")
        if ints["stage_start_epoch"] > ints["current_epoch"]:
            raise ValueError("stage_start_epoch must be <= current_epoch")
        hist = {}
        for key in ("coverage_history", "loss_history"):
            vals = state[key]
            if not isinstance(vals, (list, tuple, np.ndarray)):
                raise TypeError(f"{key} must be a list of numbers")
            hist[key] = [float(v) for v in as_float_array(vals, key, ndim=1, dtype=np.float64)] \
                if len(vals) else []
        if any(not 0.0 <= c <= 1.0 for c in hist["coverage_history"]):
            raise ValueError("coverage_history must hold coverages in [0, 1]")
        if any(v != v for v in hist["loss_history"]):
            raise ValueError("loss_history must not hold NaN")
        perf = state["stage_performance"]
        if not isinstance(perf, list) or not all(isinstance(p, dict) for p in perf):
            raise ValueError("stage_performance must be a list of dicts")
        # commit
        self.config = config
        self.pole_locations = poles
        self.current_epoch = ints["current_epoch"]
        self.current_stage = ints["current_stage"]
        self.stage_start_epoch = ints["stage_start_epoch"]
        self.stage_performance = [dict(p) for p in perf]
        self.coverage_history = hist["coverage_history"]
        self.loss_history = hist["loss_history"]
