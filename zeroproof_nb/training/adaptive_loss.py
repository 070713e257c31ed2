"""Adaptive rejection penalty λ_rej: a Lagrange multiplier that steers REAL coverage to a target.

The training loss charges ``max(λ_rej, lambda_rej_min)`` for every non-REAL output, so a larger
λ_rej pushes coverage up. :class:`AdaptiveLambda` raises λ_rej (at half rate) while coverage is
below target and lowers it (at double rate) while coverage is above target, with upstream's
warm-up, update frequency, dead band, exponential learning-rate decay, momentum and floors.

One deliberate difference from upstream: with momentum, the velocity is reset to zero whenever
its sign disagrees with the current update ``lr * gap``, so λ always moves in the direction of the
current coverage gap (upstream's velocity kept pushing λ up after coverage rose above target).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from .._validation import (
    check_bool,
    check_choice,
    check_config,
    check_counts,
    finite_float,
    check_in_range,
    check_int,
    check_nonnegative,
    check_positive,
)
from ..core import TRTag, count_tags, from_ieee, is_tr_array
from ..kernels import policy as _kp
from .coverage import CoverageTracker
from .tag_loss import adaptive_tag_weight, tag_cross_entropy

__all__ = [
    "AdaptiveLossConfig",
    "AdaptiveLambda",
    "AdaptiveLossPolicy",
    "PolicyLoss",
    "create_adaptive_loss",
    "BASE_LOSSES",
]

BASE_LOSSES = ("mse", "mae", "huber")

#: message of the ValueError raised, by the Python loop and the compiled epochs alike, when the
#: λ_rej rule would leave λ_rej or its velocity non-finite
LAMBDA_OVERFLOW_MESSAGE = (
    "learning_rate: the lambda_rej update overflowed (lambda_rej, its change or the momentum "
    "velocity is not finite); lower AdaptiveLossConfig.learning_rate (lambda_rej was left "
    "unchanged)"
)


def _item(v: Any) -> Any:
    return v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v


def _finite_list(values: Any, name: str) -> list[float]:
    """A saved list of finite floats."""
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list of numbers, got {type(values).__name__}")
    out = [finite_float(v, f"{name}[{i}]") for i, v in enumerate(values)]
    return out



@dataclass
class AdaptiveLossConfig:
    """Settings of :class:`AdaptiveLambda` (upstream's fields and defaults, plus ``dead_band``).

    Attributes
    ----------
    initial_lambda : float, within [max(lambda_min, lambda_rej_min), lambda_max]
    target_coverage : float in [0, 1]
    learning_rate : float >= 0
    lambda_min : float >= 0 (soft floor)
    lambda_max : float or None (cap, >= both floors)
    lambda_rej_min : float >= 0 (hard floor)
    momentum : float in [0, 1)
    warmup_steps : int >= 0 (updates that never change λ)
    update_frequency : int >= 1 (change λ every this many steps after warm-up)
    exponential_decay : float in (0, 1] or None (lr *= decay**(step - warmup_steps))
    use_tag_loss, tag_loss_adaptive : bool
    tag_loss_weight : float >= 0
    tag_loss_max_weight : float >= tag_loss_weight (checked when the adaptive tag loss is on)
    dead_band : float >= 0 (no update while |gap| < dead_band; upstream hard-codes 0.02)
    """

    initial_lambda: float = 1.0
    target_coverage: float = 0.95
    learning_rate: float = 0.01
    lambda_min: float = 0.1
    lambda_max: float | None = None
    lambda_rej_min: float = 0.1
    momentum: float = 0.0
    warmup_steps: int = 0
    update_frequency: int = 1
    exponential_decay: float | None = None
    use_tag_loss: bool = False
    tag_loss_weight: float = 0.05
    tag_loss_adaptive: bool = True
    tag_loss_max_weight: float = 0.2
    dead_band: float = 0.02

    def __post_init__(self) -> None:
        self.target_coverage = check_in_range(self.target_coverage, "target_coverage", 0.0, 1.0)
        self.learning_rate = check_nonnegative(self.learning_rate, "learning_rate")
        self.lambda_min = check_nonnegative(self.lambda_min, "lambda_min")
        self.lambda_rej_min = check_nonnegative(self.lambda_rej_min, "lambda_rej_min")
        floor = max(self.lambda_min, self.lambda_rej_min)
        if self.lambda_max is not None:
            self.lambda_max = check_positive(self.lambda_max, "lambda_max")
            if self.lambda_max < floor:
                raise ValueError(
                    f"lambda_max must be >= max(lambda_min, lambda_rej_min) = {floor}, got {self.lambda_max}"
                )
        self.initial_lambda = check_nonnegative(self.initial_lambda, "initial_lambda")
        cap = math.inf if self.lambda_max is None else self.lambda_max
        if not floor <= self.initial_lambda <= cap:
            raise ValueError(f"initial_lambda must lie in [{floor}, {cap}], got {self.initial_lambda}")
        self.momentum = check_in_range(self.momentum, "momentum", 0.0, 1.0)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be < 1, got {self.momentum}")
        self.warmup_steps = check_int(self.warmup_steps, "warmup_steps", minimum=0)
        self.update_frequency = check_int(self.update_frequency, "update_frequency", minimum=1)
        if self.exponential_decay is not None:
            self.exponential_decay = check_in_range(self.exponential_decay, "exponential_decay", 0.0, 1.0)
            if self.exponential_decay == 0.0:
                raise ValueError("exponential_decay must be > 0")
        self.use_tag_loss = check_bool(self.use_tag_loss, "use_tag_loss")
        self.tag_loss_adaptive = check_bool(self.tag_loss_adaptive, "tag_loss_adaptive")
        self.tag_loss_weight = check_nonnegative(self.tag_loss_weight, "tag_loss_weight")
        self.tag_loss_max_weight = check_nonnegative(self.tag_loss_max_weight, "tag_loss_max_weight")
        if self.use_tag_loss and self.tag_loss_adaptive and self.tag_loss_max_weight < self.tag_loss_weight:
            raise ValueError(
                f"tag_loss_max_weight must be >= tag_loss_weight ({self.tag_loss_weight}) for the adaptive "
                f"tag loss, got {self.tag_loss_max_weight}"
            )
        self.dead_band = check_nonnegative(self.dead_band, "dead_band")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return asdict(self)


class AdaptiveLambda:
    """The adaptive rejection penalty λ_rej, updated once per batch from the output tags.

    Parameters
    ----------
    config : AdaptiveLossConfig, optional (defaults if None)

    Attributes
    ----------
    lambda_rej : float
        Current penalty.
    coverage_tracker : CoverageTracker
        Cumulative tracker (no window) at ``config.target_coverage``.
    step_count : int
        Number of :meth:`update` calls.
    velocity : float
        Momentum state (0 without momentum).
    lambda_history : list of float
        Initial λ, then λ after every step that reached the update rule (dead band included).
    coverage_history : list of float
        Batch coverage of every :meth:`update` call (warm-up included).
    update_history : list of float
        Applied change of every step that reached the update rule (0.0 in the dead band).
    """

    def __init__(self, config: AdaptiveLossConfig | None = None) -> None:
        config = check_config(config, AdaptiveLossConfig)
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Restore the initial state (λ = initial_lambda, empty tracker and histories)."""
        cfg = self.config
        self.lambda_rej = float(cfg.initial_lambda)
        self.coverage_tracker = CoverageTracker(target_coverage=cfg.target_coverage)
        self.step_count = 0
        self.velocity = 0.0
        self.update_history: list[float] = []
        self.lambda_history: list[float] = [self.lambda_rej]
        self.coverage_history: list[float] = []

    @property
    def lower_bound(self) -> float:
        """``max(lambda_min, lambda_rej_min)``, the least value an update can leave."""
        return max(self.config.lambda_min, self.config.lambda_rej_min)

    def update(self, tags: Any) -> None:
        """Record one batch of output tags and apply the λ update rule.

        Parameters
        ----------
        tags : uint8 array of any shape (e.g. (batch,) or (n_outputs, batch); the fast path,
            counted by a Numba kernel), a transreal array, or a list of TRTag.
        """
        self.update_counts(count_tags(tags))

    def update_counts(self, counts: Any) -> None:
        """:meth:`update` from tag counts ``(REAL, PINF, NINF, PHI)``, e.g. the
        ``stats["tag_counts"]`` that the fused loss-and-gradient pass already computed."""
        counts = check_counts(counts)
        tracker = self.coverage_tracker
        saved = (tracker.current_batch.copy(), tracker.cumulative.copy(), list(tracker.history),
                 tracker.window_coverage)
        tracker.update_counts(counts)
        cumulative = tracker.coverage
        batch = tracker.batch_coverage
        lam, velocity, code, applied = _kp.lambda_rule(
            self.step_count + 1, batch, cumulative, float(self.lambda_rej), float(self.velocity),
            *self.rule_parameters())
        if code == _kp.RULE_OVERFLOW:  # leave everything as before this batch
            (tracker.current_batch, tracker.cumulative, tracker.history,
             tracker.window_coverage) = saved
            raise ValueError(LAMBDA_OVERFLOW_MESSAGE)
        self.coverage_history.append(batch)
        self.step_count += 1
        self.lambda_rej, self.velocity = lam, velocity
        if code != _kp.RULE_SKIPPED:
            self.update_history.append(applied)
            self.lambda_history.append(lam)

    def rule_parameters(self) -> tuple[float, float, float, int, int, float, float, float, float, float]:
        """The config as the arguments of :func:`zeroproof_nb.kernels.policy.lambda_rule`
        after λ and the velocity: ``(target_coverage, learning_rate, exponential_decay or
        -1.0, warmup_steps, update_frequency, dead_band, momentum, lambda_min,
        lambda_rej_min, lambda_max or inf)``."""
        cfg = self.config
        return (
            float(self.coverage_tracker.target_coverage), float(cfg.learning_rate),
            -1.0 if cfg.exponential_decay is None else float(cfg.exponential_decay),
            int(cfg.warmup_steps), int(cfg.update_frequency), float(cfg.dead_band),
            float(cfg.momentum), float(cfg.lambda_min), float(cfg.lambda_rej_min),
            math.inf if cfg.lambda_max is None else float(cfg.lambda_max),
        )

    def _get_learning_rate(self) -> float:
        """``learning_rate * exponential_decay**(step_count - warmup_steps)`` (or undecayed)."""
        cfg = self.config
        decay = -1.0 if cfg.exponential_decay is None else float(cfg.exponential_decay)
        return float(_kp.decayed_rate(float(cfg.learning_rate), decay,
                                      self.step_count - cfg.warmup_steps))

    def get_penalty(self) -> float:
        """Current λ_rej."""
        return self.lambda_rej

    def get_effective_penalty(self) -> float:
        """``max(lambda_rej, lambda_rej_min)``, the charge per non-REAL output."""
        return max(self.lambda_rej, self.config.lambda_rej_min)

    def get_tag_loss_weight(self) -> float:
        """0 without tag loss; ``tag_loss_weight`` if not adaptive; else
        :func:`~zeroproof_nb.training.tag_loss.adaptive_tag_weight` of the last batch coverage."""
        cfg = self.config
        if not cfg.use_tag_loss:
            return 0.0
        if not cfg.tag_loss_adaptive:
            return cfg.tag_loss_weight
        return adaptive_tag_weight(
            self.coverage_tracker.batch_coverage, cfg.tag_loss_weight, cfg.tag_loss_max_weight
        )

    def get_statistics(self) -> dict[str, Any]:
        """Tracker statistics plus ``lambda_rej, lambda_rej_min, step_count, learning_rate,
        velocity, last_update, tag_loss_weight`` (upstream's keys)."""
        stats = self.coverage_tracker.get_statistics()
        stats.update(
            {
                "lambda_rej": self.lambda_rej,
                "lambda_rej_min": self.config.lambda_rej_min,
                "step_count": self.step_count,
                "learning_rate": self._get_learning_rate(),
                "velocity": self.velocity,
                "last_update": self.update_history[-1] if self.update_history else 0.0,
                "tag_loss_weight": self.get_tag_loss_weight(),
            }
        )
        return stats

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: config, λ, counters, velocity, histories and tracker."""
        return {
            "config": self.config.to_dict(),
            "lambda_rej": float(self.lambda_rej),
            "step_count": int(self.step_count),
            "velocity": float(self.velocity),
            "update_history": [float(v) for v in self.update_history],
            "lambda_history": [float(v) for v in self.lambda_history],
            "coverage_history": [float(v) for v in self.coverage_history],
            "coverage_tracker": self.coverage_tracker.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict` (the config included).

        Everything is validated before anything is assigned: λ_rej finite and within the
        config's bounds, the velocity and histories finite, coverages in [0, 1], the tracker's
        counts; on an error (``ValueError``/``TypeError`` naming the entry) nothing changes."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        for key in ("config", "lambda_rej", "step_count", "velocity", "update_history",
                    "lambda_history", "coverage_history", "coverage_tracker"):
            if key not in state:
                raise ValueError(f"state is missing {key!r}")
        if not isinstance(state["config"], dict):
            raise TypeError("config must be a dict")
        names = {f.name for f in fields(AdaptiveLossConfig)}
        config = AdaptiveLossConfig(**{k: v for k, v in state["config"].items() if k in names})
        lam = finite_float(state["lambda_rej"], "lambda_rej")
        cap = math.inf if config.lambda_max is None else config.lambda_max
        floor = max(config.lambda_min, config.lambda_rej_min)
        if not floor <= lam <= cap:
            raise ValueError(f"lambda_rej must lie in [{floor}, {cap}], got {lam}")
        velocity = finite_float(state["velocity"], "velocity")
        step_count = check_int(_item(state["step_count"]), "step_count", minimum=0)
        hist = {k: _finite_list(state[k], k)
                for k in ("update_history", "lambda_history", "coverage_history")}
        if any(not 0.0 <= c <= 1.0 for c in hist["coverage_history"]):
            raise ValueError("coverage_history must hold coverages in [0, 1]")
        tracker = CoverageTracker(target_coverage=config.target_coverage)
        tracker.load_state_dict(state["coverage_tracker"])
        self.config = config
        self.reset()
        self.lambda_rej = lam
        self.step_count = step_count
        self.velocity = velocity
        self.update_history = hist["update_history"]
        self.lambda_history = hist["lambda_history"]
        self.coverage_history = hist["coverage_history"]
        self.coverage_tracker = tracker


class PolicyLoss(NamedTuple):
    """Composite batch loss and its gradients.

    loss : float
    grad_values : array shaped like the predictions, d loss / d y (0 where y or target is non-REAL)
    grad_logits : (N, 4) array or None, d loss / d tag logits (only with the tag loss)
    """

    loss: float
    grad_values: np.ndarray
    grad_logits: np.ndarray | None


class AdaptiveLossPolicy:
    """The composite loss ``mean_i[REAL_i * l(y_i, t_i) + (1 - REAL_i) * max(λ, λ_rej_min)]``.

    ``REAL_i`` is 1 when both the prediction and the target are REAL. λ is updated from the
    prediction tags before the loss is computed (upstream's order); λ is a constant with respect
    to the model, so the gradient flows only through the REAL terms.

    Parameters
    ----------
    config : AdaptiveLossConfig, optional
    base_loss : {"mse", "mae", "huber"}
        ``0.5 d^2``, ``|d|``, or Huber ``0.5 d^2`` for ``|d| <= huber_delta`` else
        ``huber_delta (|d| - 0.5 huber_delta)``.
    huber_delta : float > 0
    """

    def __init__(self, config: AdaptiveLossConfig | None = None, base_loss: str = "mse", huber_delta: float = 1.0) -> None:
        self.adaptive_lambda = AdaptiveLambda(config)
        self.config = self.adaptive_lambda.config
        self.base_loss = check_choice(base_loss, "base_loss", BASE_LOSSES)
        self.huber_delta = check_positive(huber_delta, "huber_delta")

    def base_loss_and_grad(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Elementwise base loss of the residual ``d = y - t`` and its derivative in ``d``."""
        if self.base_loss == "mse":
            return 0.5 * d * d, d.copy()
        if self.base_loss == "mae":
            return np.abs(d), np.sign(d)
        a = np.abs(d)
        k = self.huber_delta
        inner = a <= k
        return np.where(inner, 0.5 * d * d, k * (a - 0.5 * k)), np.where(inner, d, k * np.sign(d))

    @staticmethod
    def _as_tr(a: Any, name: str) -> np.ndarray:
        if is_tr_array(a):
            return a
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a transreal array or an array of floats, got dtype {arr.dtype}")
        return from_ieee(arr)

    def batch_loss_and_grad(self, y: Any, targets: Any, tag_logits: Any = None) -> PolicyLoss:
        """Update λ from the tags of ``y``, then return the composite loss and its gradients.

        Parameters
        ----------
        y : transreal array (or IEEE floats: inf/NaN become PINF/NINF/PHI), any shape
        targets : transreal array or floats of the same shape; a non-REAL target is charged
            the penalty, as upstream does for a non-division prediction
        tag_logits : (N, 4) array, optional
            With ``config.use_tag_loss``, adds ``get_tag_loss_weight() * tag_cross_entropy``
            against the prediction tags.
        """
        y_tr = self._as_tr(y, "y")
        t_tr = self._as_tr(targets, "targets")
        if y_tr.shape != t_tr.shape:
            raise ValueError(f"targets must have the shape of y {y_tr.shape}, got {t_tr.shape}")
        tags = y_tr["tag"]
        n = y_tr.size
        real = (tags == TRTag.REAL) & (t_tr["tag"] == TRTag.REAL)
        with np.errstate(over="ignore", invalid="ignore"):
            d = y_tr["value"][real].astype(np.float64) - t_tr["value"][real].astype(np.float64)
            values, dvalues = self.base_loss_and_grad(d)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:  # checked before λ moves
            raise ValueError(
                f"y, targets: the base loss of {bad} REAL pair(s) overflows float64 (|y - target| "
                "up to ~1e308 is representable, its square is not); rescale y and targets"
            )
        ce_and_grad = None
        if tag_logits is not None and self.config.use_tag_loss:  # validated before λ moves
            ce_and_grad = tag_cross_entropy(tag_logits, tags.reshape(-1))
        self.adaptive_lambda.update(tags)
        grad = np.zeros(y_tr.shape, dtype=np.float64)
        grad_logits = None
        if n == 0:
            return PolicyLoss(0.0, grad, None)
        n_reject = n - int(np.count_nonzero(real))
        total = float(np.sum(values)) + n_reject * self.adaptive_lambda.get_effective_penalty()
        loss = total / n
        grad[real] = dvalues / n
        if ce_and_grad is not None:
            weight = self.adaptive_lambda.get_tag_loss_weight()
            ce, g = ce_and_grad
            loss += weight * ce
            grad_logits = weight * g
        return PolicyLoss(loss, grad, grad_logits)

    def batch_loss(self, y: Any, targets: Any, tag_logits: Any = None) -> float:
        """Composite loss value (updates λ); see :meth:`batch_loss_and_grad`."""
        return self.batch_loss_and_grad(y, targets, tag_logits).loss

    def get_penalty(self) -> float:
        return self.adaptive_lambda.get_penalty()

    def get_statistics(self) -> dict[str, Any]:
        return self.adaptive_lambda.get_statistics()


def create_adaptive_loss(
    target_coverage: float = 0.95,
    learning_rate: float = 0.01,
    initial_lambda: float = 1.0,
    base_loss: str = "mse",
    *,
    momentum: float = 0.9,
    warmup_steps: int = 100,
    update_frequency: int = 10,
    exponential_decay: float | None = None,
    lambda_min: float = 0.1,
    lambda_max: float | None = None,
    lambda_rej_min: float = 0.1,
    use_tag_loss: bool = False,
    tag_loss_weight: float = 0.05,
    tag_loss_adaptive: bool = True,
    dead_band: float = 0.02,
    huber_delta: float = 1.0,
) -> AdaptiveLossPolicy:
    """Build an :class:`AdaptiveLossPolicy` with upstream's factory defaults.

    These differ from :class:`AdaptiveLossConfig`'s: momentum 0.9, warm-up 100 steps, update
    every 10 steps; ``tag_loss_max_weight`` is ``4 * tag_loss_weight``.
    """
    config = AdaptiveLossConfig(
        initial_lambda=initial_lambda,
        target_coverage=target_coverage,
        learning_rate=learning_rate,
        lambda_min=lambda_min,
        lambda_max=lambda_max,
        lambda_rej_min=lambda_rej_min,
        momentum=momentum,
        warmup_steps=warmup_steps,
        update_frequency=update_frequency,
        exponential_decay=exponential_decay,
        use_tag_loss=use_tag_loss,
        tag_loss_weight=tag_loss_weight,
        tag_loss_adaptive=tag_loss_adaptive,
        tag_loss_max_weight=4.0 * tag_loss_weight,
        dead_band=dead_band,
    )
    return AdaptiveLossPolicy(config, base_loss, huber_delta=huber_delta)
