"""Gauss-Newton normal equations of a rational model and a Levenberg-Marquardt solver.

The objective is the one the Trainer minimises on a pool:

    L = sum_i w_i rho(y_i - t_i) + lambda_rej * sum_i w_i pen_i + alpha/2 ||phi||^2

with normalised weights w_i (sum 1; uniform 1/N without ``sample_weight``), the data term over
the outputs that take part (finite x, REAL output, finite target), a robust loss rho (L2, Huber,
Tukey, see :mod:`zeroproof_nb.kernels.least_squares`) and the rejection penalty of
``docs/losses.md``. The Jacobian rows follow the gradient rule (Mask-REAL, Saturating, Hybrid),
so under Mask-REAL the matrix is the exact Gauss-Newton matrix J^T diag(w omega) J and the
gradient the exact gradient of L. One pass over the points (parallel, deterministic for any
thread count) gives L, the gradient and the matrix: a rational layer has few parameters, so the
whole pool fits in one pass.

:func:`rational_qr` gives the same Gauss-Newton model as a QR factorisation R, Q^T b of the
weighted Jacobian (R^T R = the matrix; TSQR over chunks of points, the same bits for any thread
count). :func:`levenberg_marquardt` solves its steps from R, never from J^T J, which squares
the condition number (1e9-1e10 for rational fits near poles) and loses the accuracy that the
last steps to the optimum need. It runs the whole iteration in one compiled call: a step is accepted
only when L falls and no output that took part became non-REAL, so the result is never worse
than the start on the data it is given. Local descent cannot carry a pole across a sample (L is
infinite where a pole sits on one): start from :func:`zeroproof_nb.fitting.linearized_fit`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import (
    as_float_array,
    check_alloc,
    check_int,
    check_nonnegative,
    check_positive,
)
from .kernels import least_squares as _kls
from .kernels import held_out_cpu as _kho
from .kernels import least_squares_cpu as _klc
from .rational import (
    TRPolicy,
    grad_options,
    normalised_weights,
    policy_thresholds,
    prepare_plan,
    target_array,
)

__all__ = [
    "NormalEquations",
    "QRFactor",
    "rational_qr",
    "LMResult",
    "LMState",
    "rational_normal_equations",
    "levenberg_marquardt",
    "refine_optimum",
    "held_out_point_losses",
    "robust_scale",
    "robust_threshold",
    "held_out_loss",
    "LOSSES",
]

#: default tolerances of :func:`levenberg_marquardt` (ftol: relative predicted reduction of the
#: objective; the training objective is quadratic near its optimum, so a relative 1e-6 in the
#: parameters is a relative 1e-12 in the objective, and ftol sits below that)
FTOL = 1e-14
XTOL = 1e-12
GTOL = 1e-12
#: refinement steps of :func:`refine_optimum` and of the Trainer's Levenberg-Marquardt (each
#: two more passes; from a float64 optimum one Gauss-Newton step on double-double residuals
#: reaches the model's optimum in every eligible run of the training-quality benchmark)
REFINE_STEPS = 1

#: loss names accepted by the least-squares functions (``"mse"`` is an alias of ``"l2"``)
LOSSES = ("l2", "mse", "huber", "tukey")

#: the message of each status of :func:`levenberg_marquardt` (:attr:`LMResult.message`)
LM_MESSAGES = {
    _klc.LM_RUNNING: "the step limit was reached",
    _klc.LM_FTOL: "the relative reduction of the objective fell below ftol",
    _klc.LM_XTOL: "the relative step fell below xtol",
    _klc.LM_GTOL: "the scaled gradient fell below gtol",
    _klc.LM_STALLED: "no step reduces the objective (a local minimum within rounding)",
    _klc.LM_NOT_FINITE: "the objective or its derivatives are not finite at the start",
}


def robust_scale(residuals: Any) -> float:
    """Residual scale sigma = 1.4826 * median(|r - median(r)|) over the finite residuals (the
    normalised MAD: sigma for Gaussian noise); 0.0 when there are none."""
    r = np.asarray(residuals, dtype=np.float64).reshape(-1)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def robust_threshold(loss: str, scale: float) -> float:
    """Threshold c of the robust ``loss`` for residual scale ``scale``: 1.345 sigma (Huber),
    4.685 sigma (Tukey), the 95%-efficiency constants; 1.0 for L2 (unused)."""
    if loss == "huber":
        return _kls.HUBER_K * scale
    if loss == "tukey":
        return _kls.TUKEY_K * scale
    return 1.0


@dataclass
class NormalEquations:
    """Result of :func:`rational_normal_equations`.

    Attributes
    ----------
    hessian : (n, n) float64 or None
        Gauss-Newton matrix of L over the parameters [theta.ravel(), phi.ravel()] (None when
        not requested).
    gradient : (n,) float64
        Gradient of L (Mask-REAL: exact; other rules: their modified Jacobian).
    loss, data_loss, rejection_loss : float
        L, its data term and lambda_rej times the rejection sum (L includes alpha/2 ||phi||^2).
    n_used, n_finite_target, n_real : int
        Outputs in the data term, outputs with finite x and target, REAL outputs.
    """

    hessian: np.ndarray | None
    gradient: np.ndarray
    loss: float
    data_loss: float
    rejection_loss: float
    n_used: int
    n_finite_target: int
    n_real: int


@dataclass
class QRFactor:
    """Result of :func:`rational_qr`: the QR factorisation of the weighted Jacobian.

    Attributes
    ----------
    r : (n, n) float64, upper triangular (diagonal of either sign), R^T R = the Gauss-Newton
        matrix of :class:`NormalEquations`
    qtb : (n,) float64, the first n entries of Q^T b (b: the weighted residuals), so that
        R^T qtb + gradient_extra = the gradient
    gradient_extra : (n,) float64, the gradient of the terms without Gauss-Newton curvature
        (the rejection term |Q| at non-REAL targets)
    gradient : (n,) float64, R^T qtb + gradient_extra
    residual_ss : float, the squares of b that no parameter explains (L2: 2 L = |qtb|^2 +
        residual_ss without rejection and regulariser terms)
    loss, data_loss, rejection_loss, n_used, n_finite_target, n_real : as in
        :class:`NormalEquations`
    """

    r: np.ndarray
    qtb: np.ndarray
    gradient_extra: np.ndarray
    gradient: np.ndarray
    residual_ss: float
    loss: float
    data_loss: float
    rejection_loss: float
    n_used: int
    n_finite_target: int
    n_real: int


@dataclass
class LMState:
    """Damping state carried between :func:`levenberg_marquardt` calls (e.g. one call per
    training epoch): ``values`` = [mu, nu, gn, D_1..D_n] (mu <= 0: start afresh; gn = 1 when
    the next step tries the undamped Gauss-Newton step first)."""

    values: np.ndarray

    @classmethod
    def fresh(cls, n_parameters: int) -> "LMState":
        return cls(np.zeros(_klc.N_STATE + int(n_parameters)))


@dataclass
class LMResult:
    """Report of :func:`levenberg_marquardt` (after ``scipy.optimize.least_squares``).

    Attributes
    ----------
    theta, phi : ndarray, the final parameters (float64, shapes of the input)
    loss_start, loss : float, objective L before and after
    status : int, message : str
        0 step limit, 1 ftol, 2 xtol, 3 gtol, 4 no step reduces L, 5 not finite at the start.
    success : bool, status in (1, 2, 3, 4)
    steps, passes : int, accepted steps and passes over the data
    n_used : int, outputs in the data term at the end
    refined : int, refinement steps on double-double residuals (:func:`refine_optimum`)
    """

    theta: np.ndarray
    phi: np.ndarray
    loss_start: float
    loss: float
    status: int
    message: str
    success: bool
    steps: int
    passes: int
    n_used: int
    refined: int = 0


@dataclass
class PassSetup:
    """Validated input of one Gauss-Newton pass (:func:`setup_pass`), as the CPU and CUDA
    kernels read it: the plan, x as (N, max(d, 1)), target and weights (N, n_out) float64
    (``weight`` (1, 1) unless ``has_w``; then every output weighs ``w_const``), and the scalar
    kernel arguments (basis .. inv_tau)."""

    pb: Any
    x2: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    has_w: bool
    w_const: float
    scalars: tuple

    def cpu_scalars(self) -> tuple:
        """``scalars`` as the CPU kernels take them: the gradient rule and the loss code
        replaced by the address of their rule loop (``rule_block_fn`` of
        :mod:`.kernels.least_squares_cpu`, compiled on first use)."""
        (basis, deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound,
         kind, c, lam, inv_tau) = self.scalars
        rule = _klc.rule_block_fn(mode, kind).address
        return (basis, deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta,
                bound, c, lam, inv_tau)


def check_lm_size(n: int, n_par: int, chunk: int) -> None:
    """ValueError naming the parameters when the QR kernels' matrices for ``n_par`` parameters
    (one R factor per chunk of ``chunk`` of the ``n`` points, and about a dozen more) exceed
    the machine's memory."""
    n_chunks = max(1, -(-n // chunk))
    entries = (n_chunks + 12) * n_par * n_par
    try:
        check_alloc(entries, 8, "entries")
    except ValueError:
        raise ValueError(f"theta, phi: {n_par} parameters need {entries * 8 / 2**30:.3g} GiB "
                         "of matrices in the Gauss-Newton kernels, more than this machine's "
                         "memory") from None


def check_usable_points(s: PassSetup) -> None:
    """ValueError unless some output has a finite x, a finite target and (with weights) a
    positive weight: a solver has something to fit."""
    x2, t = s.x2, s.target
    use = np.isfinite(t) & np.all(np.isfinite(x2), axis=1)[:, None]
    if s.has_w:
        use &= s.weight > 0
    if not use.any():
        raise ValueError("x, target: no point with a finite x and a finite target (with a "
                         "positive weight) to fit")


def chunk_addresses(n: int, chunk: int) -> tuple[int, int]:
    """The ``accumulate, partials`` arguments of the CPU QR kernels for ``n`` points in chunks
    of ``chunk``: the addresses of the chunk accumulation and, where a parallel region pays,
    of the parallel chunk partials (else 0); each compiled on first use."""
    parallel = _klc.use_parallel(n, chunk)
    return _klc.qr_accumulate_fn().address, (_klc.qr_partials_fn().address if parallel else 0)


def setup_pass(x: Any, target: Any, theta: Any, phi: Any, basis: str, domain: Any, mode: Any,
               delta: float | None, saturation_bound: float, sample_weight: Any, loss: str,
               loss_scale: float, lambda_rej: float, rejection_threshold: float,
               policy: TRPolicy | None, q_epsilon: float) -> PassSetup:
    """Validate the arguments of a Gauss-Newton pass (see :func:`rational_normal_equations`)
    into a :class:`PassSetup` (raises ValueError / TypeError naming the argument)."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    xa = as_float_array(x, "x", ndim=(1, 2), dtype=np.float64)
    pb = prepare_plan(xa, theta, phi, basis, domain)
    opt = grad_options(np.dtype(np.float64), mode, delta, saturation_bound, "mse", 1.0,
                        lambda_rej, rejection_threshold, policy, q_epsilon)
    c = robust_threshold(loss, check_positive(loss_scale, "loss_scale")) \
        if loss in ("huber", "tukey") else 1.0
    if not c > 0 or not np.isfinite(c):
        raise ValueError(f"loss_scale gives a threshold {c!r}; it must be finite and > 0")
    shape = pb.out_shape
    n = shape[0]
    t2 = target_array(target, shape, np.dtype(np.float64)).reshape(n, pb.n_out)
    wn = normalised_weights(sample_weight, shape, np.arange(n) if sample_weight is not None
                             and n else None)
    has_w = wn is not None
    # C-contiguous and writable: the kernels' one compiled signature (qr_equations_signature)
    weight = np.require(wn.reshape(n, pb.n_out), requirements="CW") if has_w \
        else np.zeros((1, 1))
    w_const = 1.0 / max(1, n * pb.n_out)
    x2 = pb.x.reshape(n, 1) if pb.d == 0 else pb.x
    tau_q, tau_p = policy_thresholds(opt.policy, np.dtype(np.float64))
    scalars = (pb.basis_code, max(pb.dp, pb.dq), float(pb.scale), float(pb.shift),
               bool(opt.eps > 0), float(opt.eps), opt.policy is not None, float(tau_q),
               float(tau_p), opt.mode, opt.delta, opt.bound, _kls.ROBUST_CODES[loss], float(c),
               opt.lam, opt.inv_tau)
    return PassSetup(pb, np.require(x2, requirements="CW"), np.require(t2, requirements="CW"),
                     weight, has_w, w_const, scalars)


def rational_normal_equations(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "l2", loss_scale: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
    alpha_phi: float = 0.0, hessian: bool = True,
) -> NormalEquations:
    """L, its gradient and Gauss-Newton matrix in one pass (see the module doc).

    Arguments shared with :func:`zeroproof_nb.rational_loss_and_grad` have its meaning (the
    computation is float64); ``loss`` in ``LOSSES``, ``loss_scale`` the residual scale sigma of
    a robust loss (threshold :func:`robust_threshold`), ``alpha_phi`` the regulariser weight,
    ``hessian=False`` skips the matrix.
    """
    s = setup_pass(x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
                   sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
                   q_epsilon)
    alpha = check_nonnegative(alpha_phi, "alpha_phi")
    pb = s.pb
    n_par = pb.theta2.size + pb.phi2.size
    check_lm_size(s.x2.shape[0], n_par, _klc.LS_CHUNK)
    h = np.zeros((n_par, n_par) if hessian else (1, 1))
    g = np.zeros(n_par)
    fs = np.zeros(_klc.N_F)
    cnt = np.zeros(_klc.N_C, dtype=np.int64)
    theta2 = pb.theta2.astype(np.float64)
    phi2 = pb.phi2.astype(np.float64)
    _klc.normal_equations(s.x2, pb.d, pb.exps, s.target, s.weight, s.has_w, s.w_const, theta2,
                          phi2, *s.cpu_scalars(), bool(hessian), h, g, fs, cnt)
    reg = _klc.add_regulariser(alpha, phi2, pb.theta2.size, h, g, bool(hessian))
    rej = s.scalars[-2] * float(fs[_klc.F_REJ])
    return NormalEquations(
        hessian=h if hessian else None, gradient=g,
        loss=float(fs[_klc.F_DATA]) + rej + reg, data_loss=float(fs[_klc.F_DATA]),
        rejection_loss=rej, n_used=int(cnt[_klc.C_USED]),
        n_finite_target=int(cnt[_klc.C_TARGET]), n_real=int(cnt[_klc.C_REAL]),
    )


def rational_qr(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "l2", loss_scale: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
    alpha_phi: float = 0.0, chunk: int | None = None,
) -> QRFactor:
    """The QR factorisation of the weighted Jacobian in one pass, as Levenberg-Marquardt uses
    it: rows sqrt(w omega) J_i, right-hand sides sqrt(w omega) r_i, then the rejection and
    regulariser rows (see :func:`~zeroproof_nb.kernels.least_squares_cpu.qr_equations`).

    Arguments as in :func:`rational_normal_equations`; ``chunk`` points per chunk (default
    ``QR_CHUNK``): chunks are factorised in parallel and combined in chunk order, so the result
    is the same bits for any thread count.
    """
    s = setup_pass(x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
                   sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
                   q_epsilon)
    alpha = check_nonnegative(alpha_phi, "alpha_phi")
    chunk = _klc.QR_CHUNK if chunk is None else check_int(chunk, "chunk", minimum=1)
    pb = s.pb
    n_par = pb.theta2.size + pb.phi2.size
    check_lm_size(s.x2.shape[0], n_par, chunk)
    r = np.zeros((n_par, n_par))
    qtb = np.zeros(n_par)
    gx = np.zeros(n_par)
    g = np.zeros(n_par)
    fs = np.zeros(_klc.N_F)
    cnt = np.zeros(_klc.N_C, dtype=np.int64)
    theta2 = pb.theta2.astype(np.float64)
    phi2 = pb.phi2.astype(np.float64)
    reg = _klc.qr_equations(s.x2, pb.d, pb.exps, s.target, s.weight, s.has_w, s.w_const,
                            theta2, phi2, *s.cpu_scalars(), alpha, chunk,
                            *chunk_addresses(s.x2.shape[0], chunk), r, qtb, gx, fs, cnt)
    _klc.qr_gradient(r, qtb, gx, g)
    rej = s.scalars[-2] * float(fs[_klc.F_REJ])
    return QRFactor(
        r=r, qtb=qtb, gradient_extra=gx, gradient=g, residual_ss=float(fs[_klc.F_RES]),
        loss=float(fs[_klc.F_DATA]) + rej + reg, data_loss=float(fs[_klc.F_DATA]),
        rejection_loss=rej, n_used=int(cnt[_klc.C_USED]),
        n_finite_target=int(cnt[_klc.C_TARGET]), n_real=int(cnt[_klc.C_REAL]),
    )


def levenberg_marquardt(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "l2", loss_scale: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
    alpha_phi: float = 0.0, max_steps: int = 100, max_tries: int = 30, ftol: float = FTOL,
    xtol: float = XTOL, gtol: float = GTOL, state: LMState | None = None,
    chunk: int | None = None, refine_steps: int = 0,
) -> LMResult:
    """Minimise L (see the module doc) over theta and phi from the given start.

    Parameters
    ----------
    x, target, theta, phi, ... : as in :func:`rational_normal_equations`
    max_steps : int >= 1, accepted steps at most
    max_tries : int >= 1, damping increases per step before giving up (status 4)
    ftol, xtol, gtol : float >= 0, stop when the relative reduction of L, the relative step, or
        the scaled gradient max_u |g_u|/sqrt(D_u) relative to sqrt(2L) falls below them
    state : LMState, optional, damping carried between calls (updated in place)
    chunk : int >= 1, optional, points per chunk of the QR accumulation (default
        ``QR_CHUNK``; the result depends on it within rounding, never on the thread count)
    refine_steps : int >= 0, when the run converges, up to this many steps of
        :func:`refine_optimum` (residuals in double-double) from its float64 optimum

    Returns
    -------
    LMResult (the input arrays are not modified)
    """
    max_steps = check_int(max_steps, "max_steps", minimum=1)
    max_tries = check_int(max_tries, "max_tries", minimum=1)
    refine_steps = check_int(refine_steps, "refine_steps", minimum=0)
    tols = [check_nonnegative(v, name) for v, name in ((ftol, "ftol"), (xtol, "xtol"),
                                                      (gtol, "gtol"))]
    return _lm(x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
               sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
               q_epsilon, alpha_phi, max_steps, max_tries, *tols, state, chunk, refine_steps)


def _lm(x, target, theta, phi, basis, domain, mode, delta, saturation_bound, sample_weight,
        loss, loss_scale, lambda_rej, rejection_threshold, policy, q_epsilon, alpha_phi,
        max_steps, max_tries, ftol, xtol, gtol, state, chunk, refine_steps) -> LMResult:
    """:func:`levenberg_marquardt` (``max_steps`` >= 1) or :func:`refine_optimum`
    (``max_steps`` 0) after the argument checks of each."""
    s = setup_pass(x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
                   sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
                   q_epsilon)
    alpha = check_nonnegative(alpha_phi, "alpha_phi")
    pb = s.pb
    n_par = pb.theta2.size + pb.phi2.size
    if state is None:
        state = LMState.fresh(n_par)
    elif not isinstance(state, LMState) or state.values.shape != (_klc.N_STATE + n_par,):
        raise ValueError(f"state must be an LMState for {n_par} parameters")
    chunk = _klc.QR_CHUNK if chunk is None else check_int(chunk, "chunk", minimum=1)
    check_lm_size(s.x2.shape[0], n_par, chunk)
    if max_steps > 0:
        check_usable_points(s)
    theta2 = pb.theta2.astype(np.float64)  # copies: the inputs stay as they are
    phi2 = pb.phi2.astype(np.float64)
    # the refinement evaluates 1-D models without tag policy or Q regularisation
    refinable = pb.d == 0 and policy is None and not q_epsilon > 0 and max(pb.dp, pb.dq) >= 1
    if not refinable:
        refine_steps = 0
    info = np.zeros(7)
    corr = np.zeros_like(s.target) if refine_steps else np.zeros((1, 1))
    if max_steps == 0 and (refine_steps == 0 or pb.x.shape[0] == 0):
        info[3] = info[4] = math.nan
        status = _klc.LM_STALLED
    else:
        status = int(_klc.lm_run(s.x2, pb.d, pb.exps, s.target, s.weight, s.has_w, s.w_const,
                                 theta2, phi2, *s.cpu_scalars(), alpha, chunk,
                                 *chunk_addresses(s.x2.shape[0], chunk),
                                 _klc.qr_equations_fn().address, state.values, max_steps,
                                 max_tries, ftol, xtol, gtol, refine_steps,
                                 _klc.corrected_targets_fn().address if refine_steps else 0,
                                 corr, info))
        if max_steps == 0 and status == _klc.LM_RUNNING:
            status = _klc.LM_STALLED
    th_shape = np.shape(theta)
    ph_shape = np.shape(phi)
    return LMResult(
        theta=theta2.reshape(th_shape), phi=phi2.reshape(ph_shape), loss_start=float(info[3]),
        loss=float(info[4]), status=status, message=LM_MESSAGES[status],
        success=status in (_klc.LM_FTOL, _klc.LM_XTOL, _klc.LM_GTOL, _klc.LM_STALLED),
        steps=int(info[1]), passes=int(info[2]), n_used=int(info[5]), refined=int(info[6]),
    )


def refine_optimum(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "l2", loss_scale: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
    alpha_phi: float = 0.0, max_steps: int = REFINE_STEPS, chunk: int | None = None,
) -> LMResult:
    """Gauss-Newton steps from a float64 optimum on residuals y − P/Q evaluated in
    double-double (mixed-precision iterative refinement).

    Near a pole the float64 value of P/Q carries a rounding error of about eps·Σ|terms of
    Q|/|Q| relative, and a float64 solver converges to the optimum of that perturbed loss, off
    the model's own optimum by up to ~1e-9 relative in the parameters (enough to move the loss
    at a held-out point within 1e-5 of a pole by 1e-6). Each step here takes the residuals
    from :mod:`zeroproof_nb.kernels.compensated` (the Jacobian stays float64: its error only
    slows the refinement), solves the Gauss-Newton step from the QR factorisation and keeps it
    when the objective, data term in double-double, falls and no output that took part
    becomes non-REAL. 1-D input without a tag policy or Q regularisation only (otherwise the
    parameters come back unchanged, ``refined`` 0, losses NaN).
    :func:`levenberg_marquardt` does the same at the end of a converged run with
    ``refine_steps``.

    Arguments as in :func:`levenberg_marquardt`; ``max_steps`` refinement steps at most.
    Returns an :class:`LMResult` (loss_start / loss: the objective with compensated
    residuals before and after; ``refined``: the steps taken).
    """
    max_steps = check_int(max_steps, "max_steps", minimum=0)
    return _lm(x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
               sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
               q_epsilon, alpha_phi, 0, 1, 0.0, 0.0, 0.0, None, chunk, max_steps)


def held_out_loss(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), loss: str = "l2", loss_scale: float = 1.0,
    policy: TRPolicy | None = None, q_epsilon: float = 0.0, return_se: bool = False,
) -> float | tuple[float, float]:
    """Mean data loss rho(y − t) over the outputs with a finite target and x (NaN if none),
    and with ``return_se`` its standard error (std of the per-point losses / sqrt(n)).

    An output that is not REAL where the target is finite counts as an infinite residual
    (Tukey: its ceiling c²/6): a model that puts a pole on a held-out point never scores
    better for it. ``loss`` in ``LOSSES`` with residual scale ``loss_scale``; the other
    arguments as in :func:`zeroproof_nb.rational_eval`.
    """
    rho = held_out_point_losses(x, target, theta, phi, basis=basis, domain=domain, loss=loss,
                                loss_scale=loss_scale, policy=policy, q_epsilon=q_epsilon)
    if rho.size == 0:
        return (math.nan, math.nan) if return_se else math.nan
    mean = float(rho.mean())
    if not return_se:
        return mean
    se = float(rho.std() / math.sqrt(rho.size)) if math.isfinite(mean) else math.inf
    return mean, se


def held_out_point_losses(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), loss: str = "l2", loss_scale: float = 1.0,
    policy: TRPolicy | None = None, q_epsilon: float = 0.0,
) -> np.ndarray:
    """The per-output losses rho(y − t) that :func:`held_out_loss` averages: a 1-D float64
    array over the outputs with a finite target and x, in row-major order (a non-REAL output
    counts as an infinite residual). Paired comparisons of two models on the same held-out
    points use it."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    c = robust_threshold(loss, check_positive(loss_scale, "loss_scale"))
    xa = as_float_array(x, "x", ndim=(1, 2), dtype=np.float64)
    # one compiled loop for every degree pair (kernels.held_out_cpu), not a forward kernel
    # specialised per pair: fit_rational scores dozens of pairs on a cold cache
    s = setup_pass(xa, target, theta, phi, basis, domain, "mask_real", None, 1.0, None, "l2", 1.0,
                   0.0, 1e-2, policy, q_epsilon)
    pb = s.pb
    basis_code, deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p = s.scalars[:9]
    resid = np.empty(s.target.shape)
    _kho.held_out_residuals(s.x2, pb.d, pb.exps, s.target, pb.theta2.astype(np.float64),
                            pb.phi2.astype(np.float64), basis_code, deg, scale, shift, has_eps,
                            eps, has_policy, tau_q, tau_p, resid)
    t = s.target
    finite_x = np.isfinite(xa) if xa.ndim == 1 else np.all(np.isfinite(xa), axis=1)
    use = np.isfinite(t) & finite_x[:, None]
    r = resid[use]
    rho = np.empty(r.size)
    if r.size:
        _klc.robust_losses(_kls.ROBUST_CODES[loss], np.ascontiguousarray(r), c, rho)
    return rho
