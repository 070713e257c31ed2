"""Rational kernels, per-point math: tag-aware P/Q and the fused loss-and-gradient terms.

Scalar ``@njit`` functions only (no ``prange``, no allocation, no closures), so that the CPU
loops of :mod:`.rational_cpu` and a CUDA kernel compile the same source: :func:`tr_quotient`,
:func:`policy_tag`, :func:`output_point`, :func:`data_loss_point`, :func:`dy_coefficients`,
:func:`rejection_point`, :func:`backward_point`, :func:`guard_coefficients`, ... plus the mode,
loss and statistics codes the kernels share. The loops, specialisation builders and compile
caches are in :mod:`.rational_cpu` (its docstring describes the design).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .basis import CHEBYSHEV_ANCHORED, MONOMIAL, denom_sum, feature_denom, poly_sum
from .tags import NINF, PHI, PINF, REAL

MODE_MASK_REAL = 0
MODE_SATURATING = 1
MODE_HYBRID = 2
MODE_CODES = {"mask_real": MODE_MASK_REAL, "saturating": MODE_SATURATING, "hybrid": MODE_HYBRID}

LOSS_MSE = 0
LOSS_MAE = 1
LOSS_HUBER = 2
LOSS_TUKEY = 3
LOSS_CODES = {"mse": LOSS_MSE, "mae": LOSS_MAE, "huber": LOSS_HUBER, "tukey": LOSS_TUKEY}

#: points per block inside a chunk: forward kernel (its two buffers stay in L1) and, at most,
#: fused pass (see fused_block_size: its buffers stay in L2; a smaller block costs more in
#: per-block calls than it saves in L1 hits; < 2**16 for the packed counts of the block reduction)
BLOCK = 512
FUSED_BLOCK = 4096
FUSED_BLOCK_WORDS = 24576

# per-chunk statistics partials: float sums, then integer counts
FS_DATA, FS_REJ, FS_SUMQ, FS_QMIN = 0, 1, 2, 3
N_FSTATS = 4
IS_SAT, IS_MR, IS_NEAR, IS_FINQ, IS_OVERFLOW, IS_TAG0 = 0, 1, 2, 3, 4, 5
N_ISTATS = 9  # tag counts REAL, PINF, NINF, PHI at IS_TAG0 .. IS_TAG0 + 3

_U8_REAL = np.uint8(REAL)
_U8_PINF = np.uint8(PINF)
_U8_NINF = np.uint8(NINF)
_U8_PHI = np.uint8(PHI)

# forward helpers: plain functions (LLVM inlines them into the kernels and still sees the frozen
# degrees); numba-level inlining would only add compile time. Backward helpers are inlined at
# numba IR level into the block reductions of rational_fused_cpu.block_reduce_fn (a loop per
# gradient mode).
_JIT = dict(error_model="numpy")
_JIT_INLINE = dict(inline="always", error_model="numpy")


# ----------------------------------------------------------------------------------------------
# per-point functions: forward


@njit(**_JIT)
def tr_quotient(p, q):
    """Transreal quotient (value, uint8 tag) of REAL p and q; same rules as ``tags.real_div``.

    Written with the IEEE quotient and selects only, so that point loops vectorise: IEEE p/q
    already gives +-inf with the transreal sign rule (signed zeros included) and NaN for 0/0,
    inf/inf and NaN operands; finite/+-inf is +0 (the transreal table), not a signed zero.
    """
    v = p / q
    if abs(q) == math.inf:
        v = abs(v)
    tag = _U8_REAL
    if abs(v) == math.inf:
        tag = _U8_PINF if v > 0 else _U8_NINF
    if v != v:
        tag = _U8_PHI
    return v, tag


@njit(**_JIT)
def policy_tag(tag, p, q, tau_q, tau_p):
    """Tag reported under a TRPolicy: a REAL output with |Q| < tau_q becomes PINF/NINF (IEEE
    signs of P and Q, +0 counting as +1) when |P| >= tau_p, else PHI; other tags are kept."""
    if tag == _U8_REAL and abs(q) < tau_q:
        if abs(p) >= tau_p:
            if math.copysign(1.0, p) * math.copysign(1.0, q) >= 0.0:
                return _U8_PINF
            return _U8_NINF
        return _U8_PHI
    return tag


@njit(**_JIT)
def regularised_denominator(q, eps):
    """Q_eff = Q + eps*sign(Q) with sign(+-0) = +1 (the epsilon baseline)."""
    if q >= 0:
        return q + eps
    return q - eps


@njit(**_JIT)
def point_denominator(basis, phi, j, dq, t, one, has_eps, eps):
    """Q of head ``j`` at the mapped point ``t``, plus eps*sign(Q) for the epsilon baseline."""
    q = denom_sum(basis, phi, j, dq, t, one)
    if has_eps:
        q = regularised_denominator(q, eps)
    return q


@njit(**_JIT)
def row_denominator(phi, j, row, n_tq, one, has_eps, eps):
    """Q of head ``j`` from a feature row, plus eps*sign(Q) for the epsilon baseline."""
    q = feature_denom(phi, j, row, n_tq, one)
    if has_eps:
        q = regularised_denominator(q, eps)
    return q


@njit(**_JIT)
def output_point(p, q, nan_check, has_policy, tau_q, tau_p):
    """(value, tag) of one output from P and Q. ``nan_check`` is x - x: 0 for finite x, NaN
    otherwise (non-finite x gives PHI with a NaN value)."""
    v, tag = tr_quotient(p, q)
    if nan_check != nan_check:
        v = nan_check
        tag = _U8_PHI
    if has_policy:
        tag = policy_tag(tag, p, q, tau_q, tau_p)
    return v, tag


@njit(**_JIT)
def head_output(basis, theta, phi, j, dp, dq, shared_q, t, one, has_eps, eps, q0, nan_check,
                has_policy, tau_q, tau_p):
    """(value, tag, Q) of output head ``j`` at the mapped point ``t``: its own denominator row
    unless Q is shared (``q0``, Q of row 0, is reused then and for j = 0), P, and
    :func:`output_point`."""
    q = q0 if (shared_q or j == 0) else point_denominator(basis, phi, j, dq, t, one, has_eps,
                                                          eps)
    p = poly_sum(basis, theta, j, dp, t)
    v, tag = output_point(p, q, nan_check, has_policy, tau_q, tau_p)
    return v, tag, q


# ----------------------------------------------------------------------------------------------
# per-point functions: backward (float64)


@njit(**_JIT_INLINE)
def smooth_loss_point(kind, r, huber_delta):
    """(loss, dloss/dr) of the residual r = y - t: mse 1/2 r^2, mae |r|, Huber."""
    a = abs(r)
    s = 0.0
    if r > 0:
        s = 1.0
    elif r < 0:
        s = -1.0
    if kind == LOSS_MAE:
        return a, s
    if kind == LOSS_HUBER and a > huber_delta:
        return huber_delta * (a - 0.5 * huber_delta), huber_delta * s
    return 0.5 * r * r, r


@njit(**_JIT_INLINE)
def tukey_loss_point(r, c):
    """(loss, dloss/dr) of Tukey's bisquare with threshold c: c^2/6 (1 - (1 - (r/c)^2)^3)
    inside c, c^2/6 outside (derivative r (1 - (r/c)^2)^2, then 0)."""
    if abs(r) < c:
        u = 1.0 - (r / c) * (r / c)
        return (c * c / 6.0) * (1.0 - u * u * u), r * u * u
    return c * c / 6.0, 0.0


@njit(**_JIT_INLINE)
def data_loss_point(kind, r, huber_delta):
    """(loss, dloss/dr) of the residual r = y - t for any loss code (``huber_delta`` is the
    threshold c of both robust losses)."""
    if kind == LOSS_TUKEY:
        return tukey_loss_point(r, huber_delta)
    return smooth_loss_point(kind, r, huber_delta)


@njit(**_JIT_INLINE)
def use_saturating(mode, abs_q, delta):
    """Gradient rule of one output: Saturating (True) or Mask-REAL (False); delta < 0 = None."""
    if mode == MODE_SATURATING:
        return True
    if mode == MODE_HYBRID:
        return abs_q <= delta
    return False


@njit(**_JIT_INLINE)
def dy_coefficients(saturating, q, y, bound):
    """(dy/dP, dy/dQ) of a REAL output y = P/Q (so Q != 0).

    Mask-REAL: 1/Q and -P/Q^2 (computed as -y/Q). Saturating with bound b: sign(Q)/sqrt(Q^2+b^2)
    and -P/(Q^2+b^2) (computed as -y*Q*r^2 with r = 1/sqrt(Q^2+b^2), so that P is not needed).
    One division either way: in a loop that picks the rule per point (Hybrid), the denominator is
    selected first.
    """
    den = math.sqrt(q * q + bound * bound) if saturating else q
    inv = 1.0 / den
    if saturating:
        return math.copysign(inv, q), -(y * q) * (inv * inv)
    return inv, -y * inv


@njit(**_JIT_INLINE)
def rejection_point(target_real, q, inv_tau):
    """(penalty, dpenalty/dQ) before the factor lambda_rej, for a finite Q; tau = 1/inv_tau.

    REAL target: (1 - |Q|/tau)^2 when |Q| < tau, else 0 (pushes |Q| up to tau).
    non-REAL target (a labelled pole): |Q| (pulls Q to 0). d|Q|/dQ uses the IEEE sign of Q.
    """
    a = abs(q)
    s = math.copysign(1.0, q)
    if target_real:
        u = 1.0 - a * inv_tau
        if u > 0.0:
            return u * u, (-2.0 * inv_tau) * u * s
        return 0.0, 0.0
    return a, s


@njit(**_JIT_INLINE)
def backward_point(
    finite, tag, q, y, target, w, mode, delta, bound, loss_kind, huber_delta, has_rej, lam,
    inv_tau, tukey=False,
):
    """Loss terms and gradient coefficients of one output, all float64.

    Returns ``(c_p, c_q, data_loss, rejection, decision)`` with c_p = dL/dP, c_q = dL/dQ (the
    normalised weight ``w`` = w_i/sum(w) included), the weighted data loss, the weighted
    rejection penalty (before lambda_rej, computed when ``has_rej``) and the rule used (0 none, 1 Mask-REAL,
    2 Saturating). Non-REAL outputs get no data term in any mode; the rejection term acts on Q
    only. A point with non-finite x (``finite`` False) contributes nothing. ``tukey`` (a
    compile-time constant of the block loops) selects Tukey's loss; otherwise ``loss_kind`` is
    mse, mae or Huber, so the common loops carry no Tukey branch.
    """
    c_p = 0.0
    c_q = 0.0
    loss = 0.0
    rej = 0.0
    decision = 0
    target_real = math.isfinite(target)
    if finite and tag == _U8_REAL and target_real:
        if tukey:
            l, dl = tukey_loss_point(y - target, huber_delta)
        else:
            l, dl = smooth_loss_point(loss_kind, y - target, huber_delta)
        sat = use_saturating(mode, abs(q), delta)
        d_p, d_q = dy_coefficients(sat, q, y, bound)
        g = w * dl
        c_p = g * d_p
        c_q = g * d_q
        loss = w * l
        decision = 2 if sat else 1
    if has_rej and finite and math.isfinite(q):
        pen, dpen = rejection_point(target_real, q, inv_tau)
        rej = w * pen
        c_q += lam * w * dpen
    return c_p, c_q, loss, rej, decision


@njit(**_JIT)
def psi_bound(scaled_max_abs, deg):
    """Upper bound (max(1, c*max_j|t_j|))^deg on |psi_k|, k <= deg (c = 1 monomial, 2
    Chebyshev): the overflow guard multiplies the gradient coefficients by it."""
    b = 1.0
    for _ in range(deg):
        b = b * scaled_max_abs
    return b


@njit(**_JIT)
def feature_bound(basis, t64, dmax, slope):
    """Bound on |psi_k| and |eta_k| (k <= dmax) at the mapped point t64 (float64), for the
    overflow guard: :func:`psi_bound` of (max(1, c|t|)) with c = 2 for the Chebyshev bases,
    1 for monomials, times 1 + slope*|t| for the anchored denominator (|eta_k| =
    |m(t) T_{k-1}(t)|, ``slope`` = anchor_slope(d_q))."""
    c = 1.0 if basis == MONOMIAL else 2.0
    b = psi_bound(max(1.0, c * abs(t64)), dmax)
    if basis == CHEBYSHEV_ANCHORED:
        b = b * (1.0 + slope * abs(t64))
    return b


@njit(**_JIT_INLINE)
def guard_coefficients(c_p, c_q, bnd, glim):
    """(c_p, c_q, overflowed): both zeroed when (|c_p| + |c_q|)*bound could exceed ``glim`` =
    max/n_outputs (or is NaN), so that no sum of contributions can overflow (an output whose
    gradient would be inf/NaN is masked like a non-REAL one)."""
    u = abs(c_p) + abs(c_q)
    if u * bnd <= glim:
        return c_p, c_q, False
    return 0.0, 0.0, u != 0.0


