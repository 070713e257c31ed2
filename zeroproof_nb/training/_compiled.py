"""An epoch's batches in one kernel call (:func:`zeroproof_nb.kernels.train.train_batches`).

:class:`~zeroproof_nb.training.trainer.Trainer` uses this path when its per-batch step is
fully known: a :class:`~zeroproof_nb.layers.TRRational` (its own methods), our
:class:`~zeroproof_nb.optim.SGD` / :class:`~zeroproof_nb.optim.Adam` over ``[theta, phi]``, no
λ policy or an :class:`AdaptiveLambda`, no safe learning rate, batches of at most one chunk,
and no subclass hook per batch. The kernel calls the functions the Python loop calls, in the
same order, so both paths give the same bits (tests check it); here only the Python state
around the kernel is read before and written back after.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..kernels import policy as _kp
from ..kernels import train as _kt
from ..kernels.tags import CHUNK
from ..layers import TRRational
from ..optim import SGD, Adam, step_overflow_message
from ..rational import (
    DTYPE_MAX,
    fused_pass_addresses,
    kernel_target,
    policy_thresholds,
    target_array,
)
from .adaptive_loss import LAMBDA_OVERFLOW_MESSAGE, AdaptiveLambda

_LAYER_METHODS = ("loss_and_grad", "project_phi", "regularization", "parameters", "kernel_plan",
                  "kernel_options", "kernel_input")
#: the λ rule's arguments when no policy runs (same types as AdaptiveLambda.rule_parameters)
_NO_RULE = (0.0, 0.0, -1.0, 0, 1, 0.0, 0.0, 0.0, 0.0, float("inf"))
_ERRORS = {
    _kt.THETA_NOT_FINITE: "theta must contain only finite values",
    _kt.PHI_NOT_FINITE: "phi must contain only finite values",
    _kt.GRAD_THETA_NOT_FINITE: "grads[0] must contain only finite values",
    _kt.GRAD_PHI_NOT_FINITE: "grads[1] must contain only finite values",
    _kt.LAMBDA_OVERFLOW: LAMBDA_OVERFLOW_MESSAGE,
}


class EpochSteps(NamedTuple):
    """Per-batch results of the batches that ran: ``losses`` (k,), ``tag_counts`` (k, 4),
    ``lambda_rej`` (k,) the λ_rej in force after each batch; ``error`` the message of the
    ValueError the step of batch k raised (None when all ran)."""

    losses: np.ndarray
    tag_counts: np.ndarray
    lambda_rej: np.ndarray
    error: str | None


_CLASS_CHECKS: dict[tuple[type, type], str | None] = {}


def _class_reason(trainer_cls: type, model_cls: type) -> str | None:
    """The checks that depend on the classes only (memoised)."""
    key = (trainer_cls, model_cls)
    if key not in _CLASS_CHECKS:
        reason = None
        if trainer_cls.customises_batch_step():
            reason = f"{trainer_cls.__name__} customises the batch step"
        elif not issubclass(model_cls, TRRational) or any(
                getattr(model_cls, m) is not getattr(TRRational, m) for m in _LAYER_METHODS):
            reason = "the model is not a plain TRRational"
        _CLASS_CHECKS[key] = reason
    return _CLASS_CHECKS[key]


def unavailable(trainer: Any) -> str | None:
    """Why ``trainer``'s batches cannot run compiled (None when they can)."""
    model, opt, cfg = trainer.model, trainer.optimizer, trainer.config
    if not cfg.compiled_epochs:
        return "config.compiled_epochs is False"
    if getattr(trainer, "device", "cpu") != "cpu":
        return "device='cuda': each batch runs the CUDA fused pass"
    reason = _class_reason(type(trainer), type(model))
    if reason is not None:
        return reason
    if type(opt) not in (SGD, Adam) or len(opt.params) != 2 or opt.params[0] is not model.theta \
            or opt.params[1] is not model.phi:
        return "the optimizer is not SGD or Adam over [model.theta, model.phi]"
    alp = trainer.adaptive_lambda
    if alp is not None and type(alp) is not AdaptiveLambda:
        return "the λ policy is not an AdaptiveLambda"
    if model.adaptive_loss_policy is not None and model.adaptive_loss_policy is not alp:
        return "the model's λ policy is not the trainer's"
    if cfg.use_safe_lr:
        return "use_safe_lr reads each batch's statistics"
    if cfg.batch_size > CHUNK:
        return f"batch_size exceeds {CHUNK} (one chunk)"
    return None


def _hyper(opt: Any) -> tuple[int, np.ndarray, list[np.ndarray]]:
    h = np.zeros(_kt.N_HYPER)
    h[_kt.HYPER_LR] = opt.lr
    h[_kt.HYPER_WEIGHT_DECAY] = opt.weight_decay
    if isinstance(opt, Adam):
        h[_kt.HYPER_BETA1], h[_kt.HYPER_BETA2] = opt.betas
        h[_kt.HYPER_EPS] = opt.eps
        avg, avg_sq = opt.buffers("exp_avg"), opt.buffers("exp_avg_sq")
        bufs = [avg[0], avg_sq[0], avg[1], avg_sq[1]]
        return _kt.OPT_ADAM, h, [b.reshape(-1) for b in bufs]
    h[_kt.HYPER_MOMENTUM] = opt.momentum
    h[_kt.HYPER_NESTEROV] = float(opt.nesterov)
    mb = opt.buffers("momentum_buffer")
    empty = np.zeros(0, dtype=mb[0].dtype)
    return _kt.OPT_SGD, h, [mb[0].reshape(-1), empty, mb[1].reshape(-1), empty]


def run_epoch(trainer: Any, x: np.ndarray, y: np.ndarray, idx: np.ndarray,
              offsets: np.ndarray) -> EpochSteps:
    """Train ``trainer`` on the batches ``idx[offsets[b]:offsets[b + 1]]`` of the pool
    ``(x, y)`` (validated float64 arrays); the optimizer, λ policy and layer state are
    written back, also when a batch fails (then ``error`` says why, for the caller to raise
    after its bookkeeping)."""
    model, opt = trainer.model, trainer.optimizer
    xa = model.kernel_input(x)
    pb = model.kernel_plan(xa)  # checks θ and φ
    if not (np.shares_memory(pb.theta2, model.theta)
            and (model.phi.size == 0 or np.shares_memory(pb.phi2, model.phi))):
        raise RuntimeError("compiled epochs need the kernel's θ and φ to be the layer's arrays")
    for name, a in (("x", xa), ("y", y), ("indices", idx)):
        if np.may_share_memory(a, model.theta) or np.may_share_memory(a, model.phi):
            raise ValueError(f"{name} must not share memory with the parameters the epoch "
                             "updates in place")
    options = model.kernel_options(trainer.pass_options())
    shape = (xa.shape[0], pb.n_out) if pb.multi else (xa.shape[0],)
    target = kernel_target(target_array(y, shape, pb.dtype), pb.n_out, True)
    tau_q, tau_p = policy_thresholds(options.policy, pb.dtype)
    kind, hyper, bufs = _hyper(opt)
    alp = trainer.adaptive_lambda
    if alp is not None:
        cum = alp.coverage_tracker.cumulative
        lam_state = np.array([alp.lambda_rej, alp.velocity], dtype=np.float64)
        lam_counts = np.array([alp.step_count, cum.real_samples, cum.total_samples], dtype=np.int64)
        rule = alp.rule_parameters()
    else:
        lam_state = np.array([trainer.config.initial_lambda, 0.0], dtype=np.float64)
        lam_counts = np.zeros(3, dtype=np.int64)
        rule = _NO_RULE
    n_batches = offsets.shape[0] - 1
    losses = np.empty(n_batches)
    counts = np.zeros((n_batches, 4), dtype=np.int64)
    lam_after = np.empty(n_batches)
    codes = np.zeros(n_batches, dtype=np.int64)
    applied = np.zeros(n_batches)
    coverages = np.zeros(n_batches)
    l1 = model.l1_projection
    done, status, steps = _kt.train_batches(
        xa.reshape(-1), target, idx, offsets, pb.exps, pb.theta2, pb.phi2, pb.scale, pb.shift,
        pb.dtype.type(1.0), options.eps, tau_q, tau_p, options.mode, options.delta,
        options.bound, options.loss, options.huber_delta, options.inv_tau, DTYPE_MAX[pb.dtype],
        pb.n_out, pb.shared_q, pb.theta2.shape[1], pb.phi2.shape[1] + 1, pb.d,
        *fused_pass_addresses(pb, options), float(model.alpha_phi),
        0.0 if l1 is None else float(l1), kind, hyper, opt.step_count, *bufs, lam_state,
        lam_counts, alp is not None, rule, losses, counts, lam_after, codes, applied, coverages,
    )
    opt.step_count = int(steps)
    if alp is not None:
        alp.lambda_rej = float(lam_state[0])
        alp.velocity = float(lam_state[1])
        alp.step_count = int(lam_counts[_kt.LAM_STEPS])
        alp.coverage_history.extend(coverages[:done].tolist())
        ran = codes[:done] != _kp.RULE_SKIPPED
        alp.update_history.extend(applied[:done][ran].tolist())
        alp.lambda_history.extend(lam_after[:done][ran].tolist())
        alp.coverage_tracker.update_counts_many(counts[:done])
        lam_after = np.maximum(lam_after, alp.config.lambda_rej_min)
    error = step_overflow_message(opt.lr) if status == _kt.STEP_NOT_FINITE else _ERRORS.get(status)
    return EpochSteps(losses[:done], counts[:done], lam_after[:done], error)
