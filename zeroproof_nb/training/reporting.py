"""What a trainer reports: :meth:`~ReportingMixin.evaluate`, the held-out loss and the training
summary (with the start's and the final poles).

:class:`ReportingMixin` is inherited by :class:`~zeroproof_nb.training.trainer.Trainer`; it reads
the trainer's model, configuration and history and changes nothing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import TRRational
from ..least_squares import held_out_loss, robust_threshold
from ..optim import LevenbergMarquardt

__all__ = ["ROBUST_K", "ReportingMixin"]

#: threshold / σ of the robust losses (robust_threshold(loss, 1.0))
ROBUST_K = {"huber": robust_threshold("huber", 1.0), "tukey": robust_threshold("tukey", 1.0)}


class ReportingMixin:
    """Evaluation and summaries of a :class:`~zeroproof_nb.training.trainer.Trainer`."""

    def evaluate(self, x: Any, y: Any) -> dict[str, float]:
        """Loss (as trained, with the current λ_rej) and coverage on ``(x, y)``; no update."""
        xa, ya = self._check_data(x, y, "x_val", "y_val")
        alp = getattr(self.model, "adaptive_loss_policy", None)
        self.model.adaptive_loss_policy = None  # evaluation must not move λ
        try:
            updates = self._model_updates_lambda
            self._model_updates_lambda = False
            res = self._loss_and_grad(xa, ya)
        finally:
            self._model_updates_lambda = updates
            if alp is not None:
                self.model.adaptive_loss_policy = alp
        counts = res.stats["tag_counts"]
        return {"loss": float(res.loss), "data_loss": float(res.data_loss),
                "coverage": float(counts[0] / max(1, int(np.sum(counts))))}

    def held_out_loss(self, x: Any, y: Any, return_se: bool = False) -> Any:
        """Data loss of the model on ``(x, y)`` with the training loss (robust threshold
        included), the mean over outputs with a finite target: an output that is not REAL
        where the target is finite counts as an infinite error (Tukey: its ceiling c²/6), so
        placing a pole on a held-out point never looks like an improvement. With ``return_se``
        also its standard error. For models other than :class:`TRRational`: the data loss of
        :meth:`evaluate` (standard error 0)."""
        xa, ya = self._check_data(x, y, "x_val", "y_val")
        if not isinstance(self.model, TRRational):
            loss = self.evaluate(xa, ya)["data_loss"]
            return (loss, 0.0) if return_se else loss
        model, cfg = self.model, self.config
        kw = self.pass_options()
        loss = "l2" if cfg.loss in ("mse", "mae") else cfg.loss
        return held_out_loss(
            xa, ya, model.theta, model.phi, basis=model.kernel_basis, domain=model.domain,
            policy=model.policy, loss=loss,
            loss_scale=self._loss_threshold() / ROBUST_K.get(loss, 1.0),
            q_epsilon=kw.get("q_epsilon", 0.0), return_se=return_se)

    def get_training_summary(self) -> dict[str, Any]:
        """``epochs_trained, global_steps, final_metrics, bench_history`` (upstream's keys)."""
        final = {k: (v[-1] if v else None) for k, v in self.history.items()}
        summary = {
            "epochs_trained": self.epoch,
            "global_steps": self.global_step,
            "final_metrics": final,
            "bench_history": list(self.bench_history),
            "stopped_early": self.stopped_early,
            "optimizer": type(self.optimizer).__name__,
            "held_out": dict(self.held_out),
        }
        if isinstance(self.optimizer, LevenbergMarquardt):
            summary["converged"] = bool(self.optimizer.converged)
        poles = self._poles()
        if poles is not None:
            summary["poles"] = {"start": self._start_pole_list(), "final": poles}
        return summary

    def _start_pole_list(self) -> list[float] | None:
        """The start's poles (:meth:`_poles` of the start's parameters), found once."""
        if self._start_poles is None and self._start_params is not None:
            params = self.model.parameters()
            saved = [np.array(p) for p in params]
            try:
                for p, start in zip(params, self._start_params):
                    p[...] = start
                self._start_poles = self._poles()
            finally:
                for p, cur in zip(params, saved):
                    p[...] = cur
            self._start_params = None
        return self._start_poles

    def _poles(self) -> list[float] | None:
        """The model's real poles in its domain (1-D, one shared Q), else None."""
        model = self.model
        if not isinstance(model, TRRational) or model.input_dim != 1 or model.phi.ndim != 1:
            return None
        return [float(p) for p in model.poles()]
