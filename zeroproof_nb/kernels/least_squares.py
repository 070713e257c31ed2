"""Per-point functions of the Gauss-Newton / Levenberg-Marquardt pass: robust losses and the
Jacobian row of one output.

Scalar ``@njit`` functions only (no loops over points, no allocation), so that CPU loops
(:mod:`.least_squares_cpu`) and device kernels compile the same source.

Robust losses of a residual r with threshold c > 0 (``rho`` and its derivative ``psi`` from
``rational.data_loss_point``, and the IRLS weight ``omega = psi / r`` that the Gauss-Newton
matrix uses):

* L2: rho = r^2/2, omega = 1;
* Huber: r^2/2 for |r| <= c, else c (|r| - c/2); omega = min(1, c/|r|);
* Tukey (bisquare): c^2/6 (1 - (1 - (r/c)^2)^3) for |r| < c, else c^2/6; omega = (1 - (r/c)^2)^2
  inside, 0 outside (a gross outlier has no pull at all).
"""
from __future__ import annotations

import math

from numba import njit

from .rational import (
    LOSS_HUBER,
    LOSS_MSE,
    LOSS_TUKEY,
    data_loss_point,
    dy_coefficients,
    output_point,
    regularised_denominator,
    use_saturating,
)
from .tags import REAL

#: loss codes of the data term (those of the fused pass; MAE has no Gauss-Newton matrix)
ROBUST_CODES = {"l2": LOSS_MSE, "mse": LOSS_MSE, "huber": LOSS_HUBER, "tukey": LOSS_TUKEY}

#: Scale factors of the usual 95%-efficiency tuning constants (times the residual scale sigma)
HUBER_K = 1.345
TUKEY_K = 4.685

_JIT = dict(error_model="numpy", inline="always")


@njit(**_JIT)
def robust_loss(kind, r, c):
    """(rho, psi, omega) of the residual ``r``: the loss and its derivative from
    :func:`~.rational.data_loss_point` (threshold ``c``), and the IRLS weight psi/r (1 at
    r = 0, the limit of every loss here)."""
    rho, psi = data_loss_point(kind, r, c)
    if kind == LOSS_MSE or r == 0.0:
        return rho, psi, 1.0
    return rho, psi, psi / r


@njit(**_JIT)
def jacobian_coefficients(finite_x, tag_real, q, y, target, mode, delta, bound):
    """(use, residual, dy/dP, dy/dQ) of one output for the Gauss-Newton matrix.

    ``use`` is False (and the rest 0) unless x is finite, the output is REAL and the target is
    finite; dy/dP and dy/dQ follow the gradient rule (Mask-REAL, Saturating, Hybrid), so the
    Jacobian row of the output is (dy/dP psi_P, dy/dQ psi_Q).
    """
    if not (finite_x and tag_real and math.isfinite(target)):
        return False, 0.0, 0.0, 0.0
    d_p, d_q = dy_coefficients(use_saturating(mode, abs(q), delta), q, y, bound)
    return True, y - target, d_p, d_q


@njit(**_JIT)
def rejection_terms(target_finite, q, inv_tau):
    """(penalty, dpenalty/dQ, sqrt of the Gauss-Newton curvature in Q) of the rejection term
    before the factor lambda_rej, for a finite Q (see ``rational.rejection_point``).

    REAL target with |Q| < tau: (1 - |Q|/tau)^2, a square, so its Gauss-Newton curvature is
    2 (d u/dQ)^2 = 2/tau^2; non-REAL target: |Q| (curvature 0).
    """
    a = abs(q)
    s = math.copysign(1.0, q)
    if target_finite:
        u = 1.0 - a * inv_tau
        if u > 0.0:
            return u * u, (-2.0 * inv_tau) * u * s, math.sqrt(2.0) * inv_tau
        return 0.0, 0.0, 0.0
    return a, s, 0.0


@njit(**_JIT)
def rule_point(mode, kind, finite_x, p, q, target, w, has_eps, eps, has_policy, tau_q, tau_p,
               delta, bound, c):
    """One output of the Gauss-Newton pass from its P and Q: ``(q, tag, use, dy/dP, dy/dQ,
    w rho, w psi, w omega)`` with q the denominator divided by (``eps``-regularised when
    ``has_eps``), the tag of :func:`~.rational.output_point`, the coefficients of
    :func:`jacobian_coefficients` and the weighted robust-loss terms of :func:`robust_loss`
    (0 when the output does not take part). ``w`` is the output's normalised weight."""
    if has_eps:
        q = regularised_denominator(q, eps)
    v, tag = output_point(p, q, 0.0 if finite_x else math.nan, has_policy, tau_q, tau_p)
    use, r, a, bq = jacobian_coefficients(finite_x, tag == REAL, q, v, target, mode, delta,
                                          bound)
    if use:
        rho, psi, om = robust_loss(kind, r, c)
        return q, tag, True, a, bq, w * rho, w * psi, w * om
    return q, tag, False, a, bq, 0.0, 0.0, 0.0
