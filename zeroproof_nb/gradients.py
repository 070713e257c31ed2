"""Gradient modes, the hybrid δ schedule and the hybrid gradient context.

The fused kernel :func:`zeroproof_nb.rational_loss_and_grad` takes ``mode=`` (a
:class:`GradientMode` or its string value) and, for the hybrid rule, the threshold ``delta``:
per point it uses the Saturating gradient where ``|Q| <= delta`` and Mask-REAL elsewhere.

:class:`HybridGradientSchedule` anneals δ over epochs (upstream's fields and defaults).
:class:`HybridGradientContext` is an object the caller (or a trainer) holds; it owns the schedule,
the current epoch and δ, the batch statistics of |Q| and the batch-level MR/SAT hysteresis driven by
optional policy thresholds. There is no class-level or module-level state: two contexts never
interact.

Typical loop::

    ctx = HybridGradientContext(create_default_schedule())
    for epoch in range(n_epochs):
        ctx.update_epoch(epoch)
        for xb, tb in batches:
            res = layer.loss_and_grad(xb, tb, **ctx.kernel_kwargs())
            ctx.record_result(res)
            opt.step([res.grad_theta, res.grad_phi])
            ctx.end_batch()
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ._validation import check_int, check_nonnegative, check_positive

__all__ = [
    "GradientMode",
    "ScheduleType",
    "HybridGradientSchedule",
    "create_default_schedule",
    "HybridGradientContext",
]

#: Floor used for 1/|Q| statistics (upstream's ``1/max(q, 1e-18)``).
_G_FLOOR = 1e-18


class GradientMode(str, Enum):
    """Gradient rule for y = P/Q.

    MASK_REAL: non-REAL outputs get zero gradient; REAL ones the exact derivative.
    SATURATING: ∂/∂θ_k = ψ_k·sign(Q)/√(Q²+b²), ∂/∂φ_k = −P·ψ_k/(Q²+b²) (non-REAL outputs masked).
    HYBRID: Saturating where |Q| <= δ, Mask-REAL elsewhere.

    Strings are accepted case-insensitively, with ``-`` or ``_`` (``"mask-real"`` works).
    """

    MASK_REAL = "mask_real"
    SATURATING = "saturating"
    HYBRID = "hybrid"

    @classmethod
    def _missing_(cls, value: object) -> "GradientMode | None":
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            for member in cls:
                if member.value == key:
                    return member
        return None


class ScheduleType(str, Enum):
    """Shape of the δ annealing curve between ``delta_init`` and ``delta_final``."""

    LINEAR = "linear"
    COSINE = "cosine"
    EXPONENTIAL = "exponential"

    @classmethod
    def _missing_(cls, value: object) -> "ScheduleType | None":
        if isinstance(value, str):
            key = value.strip().lower()
            for member in cls:
                if member.value == key:
                    return member
        return None


@dataclass
class HybridGradientSchedule:
    """Epoch schedule of the hybrid threshold δ (upstream's fields and defaults).

    Parameters
    ----------
    warmup_epochs : int >= 0
        Epochs ``e < warmup_epochs`` are warm-up: :meth:`get_delta` returns None (Mask-REAL only).
    transition_epochs : int
        Length (>= 0) of the anneal from ``delta_init`` to ``delta_final``; 0 jumps to
        ``delta_final``.
    delta_init, delta_final : float
        δ at the start and at the end of the transition (units of |Q|).
    schedule_type : ScheduleType
        LINEAR, COSINE or EXPONENTIAL (geometric) interpolation.
    enable : bool
        False disables the schedule (:meth:`get_delta` returns None).
    saturating_bound : float
        Bound b of the Saturating rule used in hybrid mode.
    adaptive_delta : bool
        If True and a positive ``q_min`` is passed to :meth:`get_delta`, δ is widened to
        ``min(δ·max(1, 0.1/q_min), 2·delta_init)``.
    min_delta : float
        Lower clamp applied last.
    force_pole_exploration, pole_exploration_radius, pole_exploration_epochs,
    pole_detection_threshold, detected_poles, pole_exploration_schedule
        Reserved. Accepted and stored for compatibility with upstream configurations; they have
        no effect (upstream's forced exploration never reached the gradient code either).
    """

    warmup_epochs: int = 0
    transition_epochs: int = 20
    delta_init: float = 1e-2
    delta_final: float = 1e-6
    schedule_type: ScheduleType = ScheduleType.EXPONENTIAL
    enable: bool = True
    saturating_bound: float = 1.0
    force_pole_exploration: bool = True
    pole_exploration_radius: float = 0.05
    pole_exploration_epochs: int = 5
    pole_detection_threshold: float = 0.1
    adaptive_delta: bool = True
    min_delta: float = 1e-8
    detected_poles: list = field(default_factory=list)
    pole_exploration_schedule: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.warmup_epochs = check_int(self.warmup_epochs, "warmup_epochs", minimum=0)
        self.transition_epochs = check_int(self.transition_epochs, "transition_epochs", minimum=0)
        self.delta_init = check_nonnegative(self.delta_init, "delta_init")
        self.delta_final = check_nonnegative(self.delta_final, "delta_final")
        self.min_delta = check_nonnegative(self.min_delta, "min_delta")
        self.saturating_bound = check_positive(self.saturating_bound, "saturating_bound")
        try:
            self.schedule_type = ScheduleType(self.schedule_type)
        except ValueError as exc:
            raise ValueError(
                f"schedule_type must be one of {[s.value for s in ScheduleType]}, "
                f"got {self.schedule_type!r}"
            ) from exc

    # ------------------------------------------------------------------ phases
    def is_warmup(self, epoch: int) -> bool:
        """True while ``epoch < warmup_epochs`` (and the schedule is enabled)."""
        return bool(self.enable) and epoch < max(0, self.warmup_epochs)

    def is_transitioning(self, epoch: int) -> bool:
        """True after warm-up and before ``warmup_epochs + transition_epochs``."""
        return (
            bool(self.enable)
            and not self.is_warmup(epoch)
            and self.transition_epochs > 0
            and epoch < self.warmup_epochs + self.transition_epochs
        )

    def _progress(self, epoch: int) -> float:
        if self.transition_epochs <= 0:
            return 1.0
        p = (epoch - self.warmup_epochs) / float(self.transition_epochs)
        return min(max(p, 0.0), 1.0)

    def get_delta(self, epoch: int, q_min: float | None = None) -> float | None:
        """δ for ``epoch``; None when disabled or in warm-up.

        Parameters
        ----------
        epoch : int
            Epoch index (0-based).
        q_min : float or None
            Smallest |Q| seen recently (e.g. over the previous epoch). Only used when
            ``adaptive_delta`` is set and ``q_min > 0``. Upstream read this from a global.
        """
        epoch = check_int(epoch, "epoch")
        if not self.enable or self.is_warmup(epoch):
            return None
        p = self._progress(epoch)
        d0, df = self.delta_init, self.delta_final
        if self.schedule_type is ScheduleType.LINEAR:
            delta = d0 + (df - d0) * p
        elif self.schedule_type is ScheduleType.COSINE:
            delta = df + 0.5 * (d0 - df) * (1.0 + math.cos(math.pi * p))
        elif d0 <= 0.0:
            delta = df
        else:
            delta = d0 * (df / d0) ** p
        if self.adaptive_delta and q_min is not None:
            q = float(q_min)
            if q > 0.0 and math.isfinite(q):
                delta = min(delta * max(1.0, 0.1 / q), 2.0 * d0)
        return max(delta, self.min_delta)

    def get_mode_description(self, epoch: int) -> str:
        """Human-readable phase: disabled / warmup / transitioning / converged."""
        if not self.enable:
            return "disabled"
        if self.is_warmup(epoch):
            return f"warmup (mask-real only, {epoch}/{self.warmup_epochs})"
        delta = self.get_delta(epoch)
        if self.is_transitioning(epoch):
            return f"transitioning (delta={delta:.3e})"
        return f"converged (delta={delta:.3e})"


def create_default_schedule(
    aggressive: bool = False, warmup_epochs: int = 0, force_exploration: bool = True
) -> HybridGradientSchedule:
    """Upstream's default schedules.

    normal: 20 transition epochs, δ 1e-2 → 1e-6 exponential, bound 1.0, min_delta 1e-8;
    aggressive: δ 1e-1 → 1e-8, bound 0.1, min_delta 1e-10. ``force_exploration`` only sets the
    reserved ``force_pole_exploration`` field.
    """
    if aggressive:
        return HybridGradientSchedule(
            warmup_epochs=warmup_epochs, transition_epochs=20, delta_init=1e-1, delta_final=1e-8,
            schedule_type=ScheduleType.EXPONENTIAL, enable=True, saturating_bound=0.1,
            force_pole_exploration=force_exploration, pole_exploration_radius=0.1,
            pole_exploration_epochs=10, adaptive_delta=True, min_delta=1e-10,
        )
    return HybridGradientSchedule(
        warmup_epochs=warmup_epochs, transition_epochs=20, delta_init=1e-2, delta_final=1e-6,
        schedule_type=ScheduleType.EXPONENTIAL, enable=True, saturating_bound=1.0,
        force_pole_exploration=force_exploration, pole_exploration_radius=0.05,
        pole_exploration_epochs=5, adaptive_delta=True, min_delta=1e-8,
    )


_PREVIOUS_EPOCH = "previous_epoch"


class HybridGradientContext:
    """Per-run hybrid gradient state: schedule, epoch, δ, |Q| statistics and MR/SAT hysteresis.

    Parameters
    ----------
    schedule : HybridGradientSchedule or None
        δ schedule. Without one δ is None (then τ_Q_on when policy thresholds are set).
    policy : object or None
        Anything with ``tau_q_on`` / ``tau_q_off`` attributes (e.g. :class:`zeroproof_nb.TRPolicy`),
        optionally ``g_on`` / ``g_off``. Supplies the hysteresis thresholds.
    tau_q_on, tau_q_off, g_on, g_off : float or None
        Explicit thresholds (override those read from ``policy``). The hysteresis is active when
        any of the four is set. Enter SAT when the batch's p10 of |Q| ≤ τ_Q_on or its p90 of
        1/|Q| ≥ g_on; leave SAT when p10 of |Q| ≥ τ_Q_off unless p90 of 1/|Q| > g_off.
    saturation_bound : float or None
        Bound b for the kernel; default ``schedule.saturating_bound`` (1.0 without a schedule).

    Notes
    -----
    Each |Q| is recorded once per sample (and per head) through :meth:`record_batch`; upstream
    recorded one sample up to four times, biasing ``near_pole_ratio``.
    """

    def __init__(
        self,
        schedule: HybridGradientSchedule | None = None,
        *,
        policy: Any = None,
        tau_q_on: float | None = None,
        tau_q_off: float | None = None,
        g_on: float | None = None,
        g_off: float | None = None,
        saturation_bound: float | None = None,
    ) -> None:
        if schedule is not None and not isinstance(schedule, HybridGradientSchedule):
            raise TypeError(
                f"schedule must be a HybridGradientSchedule or None, got {type(schedule).__name__}"
            )
        self.schedule = schedule

        def pick(explicit: Any, attr: str, name: str) -> float | None:
            value = explicit if explicit is not None else getattr(policy, attr, None)
            return None if value is None else check_nonnegative(value, name)

        self.tau_q_on = pick(tau_q_on, "tau_q_on", "tau_q_on")
        self.tau_q_off = pick(tau_q_off, "tau_q_off", "tau_q_off")
        g_on_v = pick(g_on, "g_on", "g_on")
        g_off_v = pick(g_off, "g_off", "g_off")
        self.g_on = g_on_v
        self.g_off = g_off_v
        self.policy_enabled = policy is not None or any(
            v is not None for v in (self.tau_q_on, self.tau_q_off, self.g_on, self.g_off)
        )
        if saturation_bound is None:
            saturation_bound = schedule.saturating_bound if schedule is not None else 1.0
        self.saturation_bound = check_positive(saturation_bound, "saturation_bound")
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Clear every statistic and the hysteresis state (keeps schedule and thresholds)."""
        self.current_epoch = 0
        self.local_threshold: float | None = None
        self.policy_mode = "MR"
        self.policy_flip_count = 0
        self.batch_count = 0
        self.q_min_epoch: float | None = None
        self._reset_batch()

    def _reset_batch(self) -> None:
        self._q_chunks: list[np.ndarray] = []
        self.q_min_batch: float | None = None
        self.saturating_activations = 0
        self.mask_real_activations = 0

    def update_epoch(self, epoch: int, q_min: float | None | str = _PREVIOUS_EPOCH) -> float | None:
        """Start ``epoch``: reset epoch statistics and set δ from the schedule.

        Parameters
        ----------
        epoch : int
            Epoch index.
        q_min : float, None or "previous_epoch"
            |Q| minimum fed to the schedule's adaptive δ. Default: the smallest |Q| recorded
            during the previous epoch (None if nothing was recorded). None disables adaptation.

        Returns
        -------
        float or None
            The new ``local_threshold`` (δ).
        """
        epoch = check_int(epoch, "epoch")
        if isinstance(q_min, str):
            if q_min != _PREVIOUS_EPOCH:
                raise ValueError(f"q_min must be a number, None or {_PREVIOUS_EPOCH!r}, got {q_min!r}")
            seen = [v for v in (self.q_min_epoch, self.q_min_batch) if v is not None]
            q_min = min(seen) if seen else None
        elif q_min is not None:
            q_min = check_nonnegative(q_min, "q_min")
        self.current_epoch = epoch
        self.q_min_epoch = None
        self.policy_flip_count = 0
        self.batch_count = 0
        if self.schedule is None or not self.schedule.enable:
            self.local_threshold = None
        else:
            self.local_threshold = self.schedule.get_delta(epoch, q_min=q_min)
        return self.local_threshold

    # ------------------------------------------------------------------ kernel view
    def effective_delta(self) -> float | None:
        """Threshold the kernel should use: ``inf`` in SAT state (every point saturates), else δ
        from the schedule, else τ_Q_on when thresholds are set, else None (Mask-REAL only)."""
        if self.policy_enabled and self.policy_mode == "SAT":
            return math.inf
        if self.local_threshold is not None:
            return self.local_threshold
        if self.policy_enabled and self.tau_q_on is not None:
            return self.tau_q_on
        return None

    def kernel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``rational_loss_and_grad`` / ``TRRational.loss_and_grad``:
        ``mode``, ``delta`` and ``saturation_bound`` for the current state."""
        delta = self.effective_delta()
        if delta is None:
            return {"mode": GradientMode.MASK_REAL.value, "delta": None,
                    "saturation_bound": self.saturation_bound}
        if math.isinf(delta):
            return {"mode": GradientMode.SATURATING.value, "delta": None,
                    "saturation_bound": self.saturation_bound}
        return {"mode": GradientMode.HYBRID.value, "delta": float(delta),
                "saturation_bound": self.saturation_bound}

    # ------------------------------------------------------------------ recording
    def record_batch(
        self,
        q_abs: Any,
        n_saturating: int | None = None,
        n_mask_real: int | None = None,
    ) -> None:
        """Record one batch's |Q| values (each point once) and its gradient-rule decisions.

        Parameters
        ----------
        q_abs : array-like
            |Q| per point (any shape; signed Q is accepted, its absolute value is used).
            Non-finite entries (NaN inputs) are ignored, as upstream only recorded REAL Q.
        n_saturating, n_mask_real : int or None
            Decision counts from the kernel's ``stats``. If omitted they are derived from
            ``q_abs`` and :meth:`effective_delta`.
        """
        q = np.abs(np.asarray(q_abs, dtype=np.float64).ravel())
        q = q[np.isfinite(q)]
        if n_saturating is None or n_mask_real is None:
            delta = self.effective_delta()
            n_sat = 0 if delta is None else int(np.count_nonzero(q <= delta))
            n_saturating = n_sat if n_saturating is None else n_saturating
            n_mask_real = (q.size - n_sat) if n_mask_real is None else n_mask_real
        self.saturating_activations += check_int(int(n_saturating), "n_saturating", minimum=0)
        self.mask_real_activations += check_int(int(n_mask_real), "n_mask_real", minimum=0)
        if q.size:
            self._q_chunks.append(q)
            qmin = float(q.min())
            if self.q_min_batch is None or qmin < self.q_min_batch:
                self.q_min_batch = qmin

    def record_result(self, result: Any) -> None:
        """Record a ``LossAndGrad`` result: its signed ``q`` and ``stats['n_saturating']`` /
        ``stats['n_mask_real']``."""
        stats = getattr(result, "stats", None) or {}
        self.record_batch(result.q, stats.get("n_saturating"), stats.get("n_mask_real"))

    def _batch_q(self) -> np.ndarray:
        if not self._q_chunks:
            return np.empty(0, dtype=np.float64)
        if len(self._q_chunks) > 1:
            self._q_chunks = [np.concatenate(self._q_chunks)]
        return self._q_chunks[0]

    def end_batch(self) -> str:
        """Close the batch: apply the MR/SAT hysteresis (when thresholds are set and |Q| values
        were recorded), fold the batch minimum into ``q_min_epoch`` and clear batch statistics.

        Returns the hysteresis state after the batch, "MR" or "SAT".
        """
        q = self._batch_q()
        if self.policy_enabled and q.size:
            q_p10 = float(np.percentile(q, 10))
            g90 = float(np.percentile(1.0 / np.maximum(q, _G_FLOOR), 90))
            enter = (self.tau_q_on is not None and q_p10 <= self.tau_q_on) or (
                self.g_on is not None and g90 >= self.g_on
            )
            leave = self.tau_q_off is not None and q_p10 >= self.tau_q_off
            if self.g_off is not None and g90 > self.g_off:
                leave = False
            if self.policy_mode == "MR" and enter:
                self.policy_mode = "SAT"
                self.policy_flip_count += 1
            elif self.policy_mode == "SAT" and leave:
                self.policy_mode = "MR"
                self.policy_flip_count += 1
            self.batch_count += 1
        if self.q_min_batch is not None and (
            self.q_min_epoch is None or self.q_min_batch < self.q_min_epoch
        ):
            self.q_min_epoch = self.q_min_batch
        self._reset_batch()
        return self.policy_mode

    # ------------------------------------------------------------------ reporting
    def get_statistics(self) -> dict[str, Any]:
        """Upstream's statistics keys for the current (open) batch and epoch.

        Always: ``current_epoch, local_threshold, total_gradient_calls, saturating_activations,
        mask_real_activations, saturating_ratio, q_min_epoch, exploration_regions (always 0),
        policy_flip_count, flip_rate, batch_count``. With recorded |Q|: ``q_min_batch,
        q_mean_batch, q_median_batch, q_p10, q_p50, q_p90, g_p10, g_p50, g_p90`` (g = 1/|Q|,
        floored at 1e-18) and ``near_pole_ratio`` (fraction with |Q| ≤ effective δ). With
        thresholds: ``policy_mode, tau_q_on, tau_q_off``.
        """
        sat, mr = self.saturating_activations, self.mask_real_activations
        total = sat + mr
        stats: dict[str, Any] = {
            "current_epoch": self.current_epoch,
            "local_threshold": self.local_threshold,
            "total_gradient_calls": total,
            "saturating_activations": sat,
            "mask_real_activations": mr,
            "saturating_ratio": (sat / total) if total > 0 else 0.0,
            "q_min_epoch": self.q_min_epoch,
            "exploration_regions": 0,
            "policy_flip_count": self.policy_flip_count,
            "flip_rate": (self.policy_flip_count / self.batch_count) if self.batch_count else 0.0,
            "batch_count": self.batch_count,
        }
        q = self._batch_q()
        if q.size:
            qp = np.percentile(q, [10, 50, 90])
            gp = np.percentile(1.0 / np.maximum(q, _G_FLOOR), [10, 50, 90])
            delta = self.effective_delta()
            near = 0.0 if delta is None else float(np.count_nonzero(q <= delta)) / q.size
            stats.update(
                q_min_batch=self.q_min_batch,
                q_mean_batch=float(q.mean()),
                q_median_batch=float(np.median(q)),
                q_p10=float(qp[0]), q_p50=float(qp[1]), q_p90=float(qp[2]),
                g_p10=float(gp[0]), g_p50=float(gp[1]), g_p90=float(gp[2]),
                near_pole_ratio=near,
            )
        if self.policy_enabled:
            stats.update(policy_mode=self.policy_mode, tau_q_on=self.tau_q_on,
                         tau_q_off=self.tau_q_off)
        return stats

    def get_mode_description(self) -> str:
        """The schedule's description of the current epoch (plus the hysteresis state)."""
        desc = (self.schedule.get_mode_description(self.current_epoch)
                if self.schedule is not None else "no schedule")
        if self.policy_enabled:
            desc += f", policy {self.policy_mode}"
        return desc

    def __repr__(self) -> str:
        return (f"HybridGradientContext(epoch={self.current_epoch}, delta={self.local_threshold}, "
                f"policy_mode={self.policy_mode if self.policy_enabled else None})")
