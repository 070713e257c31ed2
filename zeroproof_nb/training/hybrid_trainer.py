"""HybridTrainer: the Trainer plus the hybrid gradient schedule, batch hysteresis, diagnostics
and an optional pole-score head."""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .._validation import (
    as_float_array,
    check_config,
    check_finite,
    check_int,
    check_nonnegative,
    check_positive,
)
from ..gradients import HybridGradientContext, HybridGradientSchedule, ScheduleType
from ..optim import Adam
from .diagnostics import DiagnosticConfig, DiagnosticMonitor
from .trainer import Trainer, TrainingConfig

__all__ = ["HybridTrainingConfig", "HybridTrainer", "PoleScoreHead"]


@dataclass
class HybridTrainingConfig(TrainingConfig):
    """:class:`TrainingConfig` plus upstream's hybrid fields (§4.3 of the reference).

    Used here: the ``hybrid_*`` schedule fields (warm-up and transition default to 1/10 and
    3/10 of ``max_epochs``), ``use_tr_policy`` (the hysteresis thresholds come
    from the model's ``policy``, or from ``policy_ulp_scale``·eps when no policy is given), ``policy_g_on`` /
    ``policy_g_off``, ``use_pole_head`` / ``lambda_pole`` / ``pole_head_degree`` /
    ``pole_proximity_threshold``, ``sat_shrink_on_ratio`` / ``sat_ratio_threshold`` /
    ``sat_shrink_factor`` (now effective: the saturating ratio is measured over the epoch),
    ``enable_diagnostics`` and ``log_interval`` (default 1, as upstream).
    ``hybrid_force_pole_exploration``, ``hybrid_pole_exploration_*`` and
    ``hybrid_pole_detection_threshold`` are accepted for compatibility and reserved (they had no
    effect upstream either).
    """

    use_hybrid_gradient: bool = False
    hybrid_warmup_epochs: int | None = None
    hybrid_transition_epochs: int | None = None
    hybrid_delta_init: float = 1e-2
    hybrid_delta_final: float = 1e-6
    hybrid_aggressive: bool = False
    hybrid_force_pole_exploration: bool = True
    hybrid_pole_exploration_radius: float = 0.05
    hybrid_pole_exploration_epochs: int = 5
    hybrid_pole_detection_threshold: float = 0.1
    hybrid_adaptive_delta: bool = True
    hybrid_min_delta: float = 1e-8
    hybrid_schedule_type: str = "EXPONENTIAL"
    use_pole_head: bool = False
    lambda_pole: float = 0.1
    pole_head_degree: int = 3
    pole_proximity_threshold: float = 0.1
    use_tr_policy: bool = False
    policy_ulp_scale: float = 4.0
    policy_g_on: float | None = None
    policy_g_off: float | None = None
    sat_shrink_on_ratio: bool = True
    sat_ratio_threshold: float = 0.3
    sat_shrink_factor: float = 0.5
    enable_diagnostics: bool = True
    log_interval: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hybrid_warmup_epochs is not None:
            check_int(self.hybrid_warmup_epochs, "hybrid_warmup_epochs", minimum=0)
        if self.hybrid_transition_epochs is not None:
            check_int(self.hybrid_transition_epochs, "hybrid_transition_epochs", minimum=0)
        check_positive(self.hybrid_delta_init, "hybrid_delta_init")
        check_positive(self.hybrid_delta_final, "hybrid_delta_final")
        check_nonnegative(self.hybrid_min_delta, "hybrid_min_delta")
        check_nonnegative(self.lambda_pole, "lambda_pole")
        check_int(self.pole_head_degree, "pole_head_degree", minimum=0)
        check_positive(self.pole_proximity_threshold, "pole_proximity_threshold")
        check_positive(self.sat_shrink_factor, "sat_shrink_factor")
        ScheduleType(self.hybrid_schedule_type)

    def warmup_epochs(self) -> int:
        """``hybrid_warmup_epochs``, or (None) a tenth of ``max_epochs`` (at least 1), so
        that a short run still reaches the hybrid phase (upstream: a fixed 20)."""
        if self.hybrid_warmup_epochs is not None:
            return int(self.hybrid_warmup_epochs)
        return max(1, self.max_epochs // 10)

    def transition_epochs(self) -> int:
        """``hybrid_transition_epochs``, or (None) 3/10 of ``max_epochs`` (at least 1;
        upstream: a fixed 30)."""
        if self.hybrid_transition_epochs is not None:
            return int(self.hybrid_transition_epochs)
        return max(1, (3 * self.max_epochs) // 10)

    def make_schedule(self) -> HybridGradientSchedule:
        """The δ schedule these fields describe (bound 0.1 when aggressive, else 1.0)."""
        return HybridGradientSchedule(
            warmup_epochs=self.warmup_epochs(),
            transition_epochs=self.transition_epochs(),
            delta_init=self.hybrid_delta_init,
            delta_final=self.hybrid_delta_final,
            schedule_type=ScheduleType(self.hybrid_schedule_type),
            saturating_bound=0.1 if self.hybrid_aggressive else 1.0,
            adaptive_delta=self.hybrid_adaptive_delta,
            min_delta=self.hybrid_min_delta,
        )


class PoleScoreHead:
    """Logistic pole-score head s(x) = σ(Σ_k w_k ψ_k(x) + b) over the model's basis features.

    Trained with binary cross-entropy against ``label = 1`` for points near a pole (|Q| at or
    below ``threshold``, or a non-REAL target) and 0 elsewhere; the label is not differentiated,
    so the head learns where the model's poles are without pulling on θ or φ.

    Parameters
    ----------
    degree : int, number of basis functions − 1
    basis, domain : the model's basis
    lr : float, Adam learning rate
    """

    def __init__(self, degree: int, basis: str = "monomial", domain: tuple[float, float] = (-1.0, 1.0),
                 lr: float = 1e-2) -> None:
        self.degree = check_int(degree, "degree", minimum=0)
        self.basis = basis
        self.domain = tuple(domain)
        # upstream HybridRationalWithPoleHead init: (2(i%2)-1)·sqrt(2/(d+1))·0.1
        i = np.arange(degree + 1)
        self.weights = (2.0 * (i % 2) - 1.0) * math.sqrt(2.0 / (degree + 1)) * 0.1
        self.bias = np.zeros(1)
        self.optimizer = Adam([self.weights, self.bias], lr=lr)

    def features(self, x: np.ndarray) -> np.ndarray:
        from ..rational import basis_features

        return basis_features(x, self.degree, basis=self.basis, domain=self.domain)

    def predict(self, x: Any) -> np.ndarray:
        """Pole score in (0, 1) per point, shape (N,)."""
        z = self.features(np.asarray(x, dtype=np.float64)) @ self.weights + self.bias[0]
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def loss_and_grad(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Mean binary cross-entropy and its gradient wrt ``[weights, bias]``."""
        f = self.features(x)
        z = f @ self.weights + self.bias[0]
        # BCE with logits, stable: softplus(z) - y z
        loss = float(np.mean(np.logaddexp(0.0, z) - labels * z))
        r = (0.5 * (1.0 + np.tanh(0.5 * z)) - labels) / max(1, z.shape[0])
        return loss, [f.T @ r, np.array([r.sum()])]

    def step(self, x: np.ndarray, labels: np.ndarray, weight: float) -> float:
        loss, grads = self.loss_and_grad(x, labels)
        self.optimizer.step([g * weight for g in grads])
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "bias": self.bias.tolist(),
                "optimizer": {k: (v if not isinstance(v, list) else [np.asarray(a).tolist() for a in v])
                              for k, v in self.optimizer.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (validated first: on an error nothing changes)."""
        if not isinstance(state, dict) or not {"weights", "bias", "optimizer"} <= set(state):
            raise ValueError("pole_head state must hold 'weights', 'bias' and 'optimizer'")
        new = {}
        for key, cur in (("weights", self.weights), ("bias", self.bias)):
            a = as_float_array(state[key], f"pole_head.{key}", dtype=np.float64)
            if a.shape != cur.shape:
                raise ValueError(f"pole_head.{key} must have shape {cur.shape}, got {a.shape}")
            check_finite(a, f"pole_head.{key}")
            new[key] = a
        if not isinstance(state["optimizer"], dict):
            raise TypeError("pole_head.optimizer must be a dict")
        opt = {k: (v if not isinstance(v, list) else [np.asarray(a, dtype=np.float64) for a in v])
               for k, v in state["optimizer"].items()}
        copy.deepcopy(self.optimizer).load_state_dict(opt)
        self.weights[...] = new["weights"]
        self.bias[...] = new["bias"]
        self.optimizer.load_state_dict(opt)


class HybridTrainer(Trainer):
    """Trainer with the hybrid gradient schedule per epoch and the MR/SAT hysteresis per batch.

    Epoch records add ``saturating_ratio`` (saturating decisions / all decisions over the epoch),
    ``flip_rate``, ``q_min``, ``q_p10``, ``q_p50``, ``q_p90`` (|Q| over every point the epoch
    trained on), ``delta`` (δ of the epoch, None in warm-up), ``gradient_mode`` (the schedule's
    description) and, with a pole head, ``pole_loss``. A :class:`DiagnosticMonitor` (``monitor``)
    receives every epoch and batch. Same parameters as :class:`Trainer`, plus
    ``context`` (a :class:`HybridGradientContext` to use instead of one built from the config)
    and ``monitor``.
    """

    def __init__(self, model: Any, optimizer: Any = None, config: HybridTrainingConfig | None = None,
                 sampler: Any = None, *, curriculum: Any = None, adaptive_lambda: Any = None,
                 callbacks: Iterable[Any] = (), context: HybridGradientContext | None = None,
                 monitor: DiagnosticMonitor | None = None) -> None:
        config = check_config(config, HybridTrainingConfig)
        super().__init__(model, optimizer, config, sampler, curriculum=curriculum,
                         adaptive_lambda=adaptive_lambda, callbacks=callbacks)
        if context is None:
            schedule = config.make_schedule() if config.use_hybrid_gradient else None
            thresholds: dict[str, Any] = {}
            if config.use_tr_policy:
                policy = getattr(model, "policy", None)
                if policy is None:
                    tau = config.policy_ulp_scale * float(np.finfo(np.float64).eps)
                    thresholds = {"tau_q_on": tau, "tau_q_off": 2.0 * tau}
                else:
                    thresholds = {"policy": policy}
                thresholds.update(g_on=config.policy_g_on, g_off=config.policy_g_off)
            context = HybridGradientContext(schedule, **thresholds)
        self.context = context
        if monitor is None and config.enable_diagnostics:
            monitor = DiagnosticMonitor(DiagnosticConfig(auto_export=False))
        self.monitor = monitor
        self.pole_head: PoleScoreHead | None = None
        if config.use_pole_head:
            self.pole_head = PoleScoreHead(config.pole_head_degree,
                                           basis=getattr(model, "basis", "monomial"),
                                           domain=getattr(model, "domain", (-1.0, 1.0)),
                                           lr=config.learning_rate)
        self.gradient_mode_history: list[dict[str, Any]] = []
        self.lr_shrinks: list[dict[str, Any]] = []

    @property
    def uses_context(self) -> bool:
        return self.config.use_hybrid_gradient or self.context.policy_enabled

    def _kernel_kwargs(self) -> dict[str, Any]:
        if self.uses_context:
            return self.context.kernel_kwargs()
        return super()._kernel_kwargs()

    def _start_epoch(self, epoch: int) -> None:
        self.context.update_epoch(epoch)

    def _after_batch(self, result: Any, x: np.ndarray, idx: np.ndarray, acc: dict[str, Any]) -> None:
        stats = result.stats
        q_abs = np.abs(np.asarray(result.q, dtype=np.float64))
        acc["q_abs"].append(q_abs.ravel())
        acc["n_sat"] = acc.get("n_sat", 0) + int(stats["n_saturating"])
        acc["n_mr"] = acc.get("n_mr", 0) + int(stats["n_mask_real"])
        tags = np.asarray(result.tags)
        acc.setdefault("tag_counts", np.zeros(4, dtype=np.int64))
        acc["tag_counts"] += np.asarray(stats["tag_counts"], dtype=np.int64)
        if self.uses_context:
            self.context.record_result(result)
            self.context.end_batch()
        if self.pole_head is not None:
            q1 = q_abs if q_abs.ndim == 1 else q_abs.min(axis=1)
            labels = (q1 <= self.config.pole_proximity_threshold).astype(np.float64)
            nonreal = tags != 0 if tags.ndim == 1 else np.any(tags != 0, axis=1)
            labels[nonreal] = 1.0
            loss = self.pole_head.step(x[idx], labels, self.config.lambda_pole)
            acc["pole_loss"] = acc.get("pole_loss", 0.0) + loss
            acc["pole_batches"] = acc.get("pole_batches", 0) + 1
        if self.monitor is not None:
            finite = q_abs[np.isfinite(q_abs)]
            self.monitor.update_batch(
                batch_idx=self.global_step,
                q_min=float(finite.min()) if finite.size else None,
                tag_counts=stats["tag_counts"],
                loss=float(result.loss),
            )

    def _finish_epoch(self, record: dict[str, Any], acc: dict[str, Any]) -> None:
        cfg = self.config
        q = np.concatenate(acc["q_abs"]) if acc["q_abs"] else np.empty(0)
        q = q[np.isfinite(q)]
        n_sat, n_mr = acc.get("n_sat", 0), acc.get("n_mr", 0)
        total = n_sat + n_mr
        record["saturating_ratio"] = n_sat / total if total else 0.0
        ctx = self.context
        record["flip_rate"] = ctx.policy_flip_count / ctx.batch_count if ctx.batch_count else 0.0
        record["policy_flip_count"] = ctx.policy_flip_count
        if q.size:
            p10, p50, p90 = np.percentile(q, [10, 50, 90])
            record.update(q_min=float(q.min()), q_p10=float(p10), q_p50=float(p50), q_p90=float(p90))
        else:
            record.update(q_min=None, q_p10=None, q_p50=None, q_p90=None)
        record["delta"] = ctx.local_threshold
        record["gradient_mode"] = ctx.get_mode_description()
        self.gradient_mode_history.append(
            {"epoch": record["epoch"], "mode": record["gradient_mode"], "delta": record["delta"]})
        if "pole_batches" in acc:
            record["pole_loss"] = acc["pole_loss"] / acc["pole_batches"]
        if cfg.sat_shrink_on_ratio and self.uses_context and record["saturating_ratio"] >= cfg.sat_ratio_threshold:
            factor = min(1.0, max(0.1, cfg.sat_shrink_factor))
            self.optimizer.lr = self.optimizer.lr * factor
            record["lr_shrunk"] = self.optimizer.lr
            self.lr_shrinks.append({"epoch": record["epoch"], "lr": self.optimizer.lr})
        if self.monitor is not None:
            counts = acc.get("tag_counts", np.zeros(4, dtype=np.int64))
            near = float(np.mean(q <= cfg.pole_proximity_threshold)) if q.size else None
            self.monitor.update(
                record["epoch"],
                {"lambda_rej": record["lambda_rej"], "coverage_train": record["coverage"],
                 "loss_train": record["loss"], "near_pole_ratio": near},
                q_values=q if q.size else None,
                tag_counts=counts,
            )

    def get_training_summary(self) -> dict[str, Any]:
        """Trainer summary plus ``gradient_modes``, ``warmup_epochs`` (index of the first
        transitioning epoch), ``transition_complete``, ``policy_thresholds`` and, with
        diagnostics, ``diagnostics`` (the monitor's summary)."""
        summary = super().get_training_summary()
        if self.gradient_mode_history:
            summary["gradient_modes"] = list(self.gradient_mode_history)
            first = next((h["epoch"] for h in self.gradient_mode_history
                          if h["mode"].startswith("transitioning")), self.epoch)
            summary["warmup_epochs"] = first
            summary["transition_complete"] = self.gradient_mode_history[-1]["mode"].startswith("converged")
        ctx = self.context
        summary["policy_thresholds"] = {"tau_q_on": ctx.tau_q_on, "tau_q_off": ctx.tau_q_off}
        if self.monitor is not None:
            summary["diagnostics"] = self.monitor.get_summary()
        return summary

    def _extra_state(self) -> dict[str, Any]:
        ctx = self.context
        return {
            "context": {"policy_mode": ctx.policy_mode, "q_min_epoch": ctx.q_min_epoch,
                        "current_epoch": ctx.current_epoch,
                        "local_threshold": ctx.local_threshold},
            "lr": self.optimizer.lr,
            "gradient_mode_history": self.gradient_mode_history,
            "pole_head": None if self.pole_head is None else self.pole_head.state_dict(),
            "lr_shrinks": self.lr_shrinks,
            "monitor": None if self.monitor is None else self.monitor.state_dict(),
        }

    def _check_extra_state(self, state: dict[str, Any]) -> None:
        """Validate :meth:`_extra_state`'s output without changing anything."""
        if not isinstance(state, dict):
            raise TypeError("extra state must be a dict")
        for key in ("context", "lr", "gradient_mode_history", "pole_head"):
            if key not in state:
                raise ValueError(f"extra state is missing {key!r}")
        c = state["context"]
        if not isinstance(c, dict) or set(c) != {"policy_mode", "q_min_epoch", "current_epoch",
                                                 "local_threshold"}:
            raise ValueError("context state must hold policy_mode, q_min_epoch, current_epoch "
                             "and local_threshold")
        if c["policy_mode"] not in ("MR", "SAT"):
            raise ValueError(f"context policy_mode must be 'MR' or 'SAT', got {c['policy_mode']!r}")
        for key in ("q_min_epoch", "local_threshold"):
            if c[key] is not None:
                v = c[key]
                if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != v or v < 0:
                    raise ValueError(f"context {key} must be None or a number >= 0, got {v!r}")
        if c["current_epoch"] is not None:
            check_int(c["current_epoch"], "context current_epoch")
        check_nonnegative(state["lr"], "lr")
        if not isinstance(state["gradient_mode_history"], list):
            raise ValueError("gradient_mode_history must be a list")
        if not isinstance(state.get("lr_shrinks", []), list):
            raise ValueError("lr_shrinks must be a list")
        if (self.pole_head is None) != (state["pole_head"] is None):
            raise ValueError("checkpoint and trainer differ in having a pole head")
        if self.pole_head is not None:
            copy.deepcopy(self.pole_head).load_state_dict(state["pole_head"])
        monitor = state.get("monitor")
        if monitor is not None and self.monitor is None:
            raise ValueError("checkpoint has a DiagnosticMonitor state but this trainer has no monitor")
        if monitor is not None:
            copy.deepcopy(self.monitor).load_state_dict(monitor)

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        ctx = self.context
        c = state["context"]
        ctx.policy_mode = c["policy_mode"]
        ctx.q_min_epoch = c["q_min_epoch"]
        ctx.current_epoch = c["current_epoch"]
        ctx.local_threshold = c["local_threshold"]
        self.optimizer.lr = state["lr"]
        self.gradient_mode_history = state["gradient_mode_history"]
        self.lr_shrinks = list(state.get("lr_shrinks", []))
        if self.pole_head is not None and state["pole_head"] is not None:
            self.pole_head.load_state_dict(state["pole_head"])
        if self.monitor is not None and state.get("monitor") is not None:
            self.monitor.load_state_dict(state["monitor"])
