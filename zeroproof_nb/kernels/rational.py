"""Rational kernels: tag-aware forward y = P/Q and the fused loss-and-gradient pass.

Design
------
The per-point math is written once, as small ``@njit(inline="always")`` scalar functions
(:func:`tr_quotient`, :func:`policy_tag`, :func:`output_point`, :func:`data_loss_point`,
:func:`dy_coefficients`, :func:`rejection_point`, :func:`add_psi_1d`, ...) that allocate nothing
(a CUDA kernel can compile the same source as device functions). The point loops are thin
``prange`` wrappers built by *kernel factories*: :func:`eval_kernel` and :func:`grad_kernel`
return an ``@njit(cache=True, parallel=True)`` closure whose basis, degrees, input dimension,
number of outputs and Q-sharing are frozen closure constants. With the degrees known at compile
time every Horner/Clenshaw loop has a constant trip count, LLVM unrolls it and vectorises the
loop over points (with runtime-length coefficient loops it does not, and the forward runs about
5x slower). Each combination compiles once per process (memoised in a dict keyed by the
constants) and is cached on disk: numba's cache index key includes the closure-cell contents, so
every specialisation gets its own cache entry.

Arrays seen by the kernels
--------------------------
* ``theta`` (n_out, n_tp), ``phi`` (n_qh, n_tq - 1) with n_qh = 1 (shared Q) or n_out; the
  constant term of Q is the fixed 1.
* outputs as 2-D views (N, n_out): ``val`` and ``tag`` are the field views of a transreal
  structured array, ``qout`` the signed denominator.
* the computation dtype is the dtype of ``x`` (float32 or float64); the backward part of the
  fused kernel runs in float64 and accumulates per-chunk partials (``tags.CHUNK`` points per
  chunk, points in order inside a chunk, chunks combined sequentially), so sums do not depend on
  the thread count.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .basis import (
    CHEBYSHEV,
    MONOMIAL,
    basis_row_nd,
    denom_sum,
    feature_denom,
    feature_dot,
    poly_sum,
)
from .tags import CHUNK, NINF, PHI, PINF, REAL

MODE_MASK_REAL = 0
MODE_SATURATING = 1
MODE_HYBRID = 2
MODE_CODES = {"mask_real": MODE_MASK_REAL, "saturating": MODE_SATURATING, "hybrid": MODE_HYBRID}

LOSS_MSE = 0
LOSS_MAE = 1
LOSS_HUBER = 2
LOSS_CODES = {"mse": LOSS_MSE, "mae": LOSS_MAE, "huber": LOSS_HUBER}

# layout of the per-chunk statistics partials
FS_DATA, FS_REJ, FS_SUMQ, FS_QMIN = 0, 1, 2, 3
N_FSTATS = 4
IS_SAT, IS_MR, IS_NEAR, IS_FINQ, IS_OVERFLOW, IS_TAG0 = 0, 1, 2, 3, 4, 5
N_ISTATS = 9  # ... then tag counts REAL, PINF, NINF, PHI at IS_TAG0..IS_TAG0+3

_JIT = dict(inline="always", error_model="numpy")
_KERNEL = dict(cache=True, parallel=True, error_model="numpy")


# ----------------------------------------------------------------------------------------------
# per-point functions (forward)


@njit(**_JIT)
def tr_quotient(p, q):
    """Transreal quotient (value, tag) of REAL p and q, same rules as ``tags.real_div``.

    Written with the IEEE quotient and selects only, so that the point loop vectorises: IEEE
    p/q already yields +-inf with the transreal sign rule (signed zeros included) and NaN for
    0/0, inf/inf and NaN operands; finite/inf is +0 (the transreal table) rather than a signed
    zero.
    """
    v = p / q
    if math.isinf(q) and math.isfinite(p):
        v = abs(v)
    tag = REAL
    if math.isnan(v):
        tag = PHI
    elif math.isinf(v):
        tag = PINF if v > 0 else NINF
    return v, tag


@njit(**_JIT)
def policy_tag(tag, p, q, tau_q, tau_p):
    """Tag reported under a TRPolicy: a REAL output with |Q| < tau_q becomes PINF/NINF (signs of
    P and Q, IEEE signed zeros, when |P| >= tau_p) or PHI; other tags are kept."""
    if tag == REAL and abs(q) < tau_q:
        if abs(p) >= tau_p:
            if math.copysign(1.0, p) * math.copysign(1.0, q) >= 0.0:
                return PINF
            return NINF
        return PHI
    return tag


@njit(**_JIT)
def regularised_denominator(q, eps):
    """Q_eff = Q + eps*sign(Q) with sign(+-0) = +1; Q itself when eps == 0."""
    if eps > 0:
        if q >= 0:
            return q + eps
        return q - eps
    return q


@njit(**_JIT)
def output_point(p, q, nan_check, tau_q, tau_p):
    """(value, tag) of one output. ``nan_check`` is x - x: 0 for finite x, NaN otherwise
    (non-finite x gives PHI with a NaN value)."""
    v, tag = tr_quotient(p, q)
    if math.isnan(nan_check):
        v = nan_check
        tag = PHI
    tag = policy_tag(tag, p, q, tau_q, tau_p)
    return v, tag


# ----------------------------------------------------------------------------------------------
# per-point functions (backward, float64)


@njit(**_JIT)
def data_loss_point(kind, r, huber_delta):
    """(loss, dloss/dr) of the residual r = y - t: mse 1/2 r^2, mae |r|, Huber."""
    if kind == LOSS_MSE:
        return 0.5 * r * r, r
    a = abs(r)
    s = 0.0
    if r > 0:
        s = 1.0
    elif r < 0:
        s = -1.0
    if kind == LOSS_MAE:
        return a, s
    if a <= huber_delta:
        return 0.5 * r * r, r
    return huber_delta * (a - 0.5 * huber_delta), huber_delta * s


@njit(**_JIT)
def use_saturating(mode, abs_q, delta):
    """Gradient rule of one output: Saturating (True) or Mask-REAL (False); delta < 0 = None."""
    if mode == MODE_SATURATING:
        return True
    if mode == MODE_HYBRID:
        return abs_q <= delta
    return False


@njit(**_JIT)
def dy_coefficients(saturating, p, q, y, bound):
    """(dy/dP, dy/dQ) of a REAL output y = P/Q under the chosen rule.

    Mask-REAL: 1/Q and -P/Q^2 (= -y/Q). Saturating with bound b: sign(Q)/sqrt(Q^2+b^2) and
    -P/(Q^2+b^2).
    """
    if saturating:
        s = 0.0
        if q > 0:
            s = 1.0
        elif q < 0:
            s = -1.0
        den = q * q + bound * bound
        return s / math.sqrt(den), -p / den
    return 1.0 / q, -y / q


@njit(**_JIT)
def rejection_point(target_real, q, tau):
    """(penalty, dpenalty/dQ) before the factor lambda_rej, for a finite Q.

    REAL target: (1 - |Q|/tau)^2 when |Q| < tau, else 0 (pushes |Q| up to tau).
    non-REAL target (a labelled pole): |Q| (pulls Q to 0). d|Q|/dQ uses the IEEE sign of Q.
    """
    a = abs(q)
    s = math.copysign(1.0, q)
    if target_real:
        if a < tau:
            u = 1.0 - a / tau
            return u * u, (-2.0 / tau) * u * s
        return 0.0, 0.0
    return a, s


@njit(**_JIT)
def psi_bound(scaled_max_abs, deg):
    """Upper bound on |psi_k| for k <= deg, given max(1, c*max_j |t_j|) (c = 1 monomial, 2
    Chebyshev)."""
    b = 1.0
    for _ in range(deg):
        b = b * scaled_max_abs
    return b


@njit(**_JIT)
def add_psi_1d(basis, t, deg, k0, coef, acc, off):
    """acc[off + k - k0] += coef * psi_k(t) for k = k0..deg (float64)."""
    if basis == MONOMIAL:
        psi = 1.0
        for k in range(deg + 1):
            if k >= k0:
                acc[off + k - k0] += coef * psi
            psi = psi * t
    else:
        t_prev = 1.0
        t_cur = t
        if k0 == 0:
            acc[off] += coef
        if deg >= 1:
            acc[off + 1 - k0] += coef * t
        for k in range(2, deg + 1):
            t_next = 2.0 * t * t_cur - t_prev
            t_prev = t_cur
            t_cur = t_next
            acc[off + k - k0] += coef * t_cur


@njit(**_JIT)
def add_psi_row(row, n_t, k0, coef, acc, off):
    """acc[off + k - k0] += coef * row[k] for k = k0..n_t-1 (float64)."""
    for k in range(k0, n_t):
        acc[off + k - k0] += coef * np.float64(row[k])


@njit(**_JIT)
def backward_point(
    tag, p, q, y, target, w, mode, delta, bound, loss_kind, huber_delta, lam, tau_rej, fs, ist
):
    """Loss terms and (dL/dP, dL/dQ) of one output (float64), statistics updated in place.

    ``w`` is the normalised weight w/sum(w). Non-REAL outputs get no data gradient in any
    mode; the rejection term acts through Q only.
    """
    c_p = 0.0
    c_q = 0.0
    target_real = math.isfinite(target)
    if tag == REAL and target_real:
        loss, dl = data_loss_point(loss_kind, y - target, huber_delta)
        fs[FS_DATA] += w * loss
        sat = use_saturating(mode, abs(q), delta)
        if sat:
            ist[IS_SAT] += 1
        else:
            ist[IS_MR] += 1
        d_p, d_q = dy_coefficients(sat, p, q, y, bound)
        g = w * dl
        c_p = g * d_p
        c_q = g * d_q
    if lam > 0.0 and math.isfinite(q):
        pen, dpen = rejection_point(target_real, q, tau_rej)
        fs[FS_REJ] += w * pen
        c_q += lam * w * dpen
    return c_p, c_q


@njit(**_JIT)
def q_stats_point(q, delta, fs, ist):
    """Accumulate |Q| statistics of one Q evaluation."""
    a = abs(q)
    if math.isfinite(a):
        ist[IS_FINQ] += 1
        fs[FS_SUMQ] += a
        if a < fs[FS_QMIN]:
            fs[FS_QMIN] = a
        if a <= delta:
            ist[IS_NEAR] += 1


# ----------------------------------------------------------------------------------------------
# kernel factories

_EVAL_KERNELS: dict = {}
_GRAD_KERNELS: dict = {}


def eval_kernel(basis: int, dp: int, dq: int, d: int, n_out: int, shared_q: bool, write_q: bool):
    """Forward kernel specialised on (basis, dp, dq, d, n_out, shared_q, write_q); d = 0 is the
    1-D path. Signature: ``k(x, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, val, tag,
    qout)``."""
    key = (int(basis), int(dp), int(dq), int(d), int(n_out), bool(shared_q), bool(write_q))
    k = _EVAL_KERNELS.get(key)
    if k is None:
        k = _build_eval_1d(*key) if d == 0 else _build_eval_nd(*key)
        _EVAL_KERNELS[key] = k
    return k


def grad_kernel(basis: int, dp: int, dq: int, d: int, n_out: int, shared_q: bool):
    """Fused forward+backward kernel specialised like :func:`eval_kernel` (always writes Q)."""
    key = (int(basis), int(dp), int(dq), int(d), int(n_out), bool(shared_q))
    k = _GRAD_KERNELS.get(key)
    if k is None:
        k = _build_grad_1d(*key) if d == 0 else _build_grad_nd(*key)
        _GRAD_KERNELS[key] = k
    return k


def _build_eval_1d(BASIS, DP, DQ, D, NOUT, SHARED, WRITE_Q):
    @njit(**_KERNEL)
    def rational_eval_1d(x, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, val, tag, qout):
        for i in prange(x.shape[0]):
            t = x[i]
            if BASIS == CHEBYSHEV:
                t = t * scale + shift
            nan_check = t - t
            q0 = regularised_denominator(denom_sum(BASIS, phi, 0, DQ, t, one), eps)
            for j in range(NOUT):
                q = q0
                if not SHARED and j > 0:
                    q = regularised_denominator(denom_sum(BASIS, phi, j, DQ, t, one), eps)
                p = poly_sum(BASIS, theta, j, DP, t)
                v, g = output_point(p, q, nan_check, tau_q, tau_p)
                val[i, j] = v
                tag[i, j] = g
                if WRITE_Q:
                    qout[i, j] = q

    return rational_eval_1d


def _build_eval_nd(BASIS, DP, DQ, D, NOUT, SHARED, WRITE_Q):
    DMAX = max(DP, DQ)
    from .basis import n_terms

    NTP = n_terms(D, DP)
    NTQ = n_terms(D, DQ)
    NTMAX = max(NTP, NTQ)

    @njit(**_KERNEL)
    def rational_eval_nd(x, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, val, tag, qout):
        n = x.shape[0]
        n_chunks = (n + CHUNK - 1) // CHUNK
        for c in prange(n_chunks):
            table = np.empty((D, DMAX + 1), dtype=theta.dtype)
            row = np.empty(NTMAX, dtype=theta.dtype)
            for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
                xi = x[i]
                nan_check = one - one
                for jd in range(D):
                    nan_check = nan_check + (xi[jd] - xi[jd])
                basis_row_nd(BASIS, xi, scale, shift, exps, NTMAX, DMAX, one, table, row)
                q0 = regularised_denominator(feature_denom(phi, 0, row, NTQ, one), eps)
                for j in range(NOUT):
                    q = q0
                    if not SHARED and j > 0:
                        q = regularised_denominator(feature_denom(phi, j, row, NTQ, one), eps)
                    p = feature_dot(theta, j, row, NTP)
                    v, g = output_point(p, q, nan_check, tau_q, tau_p)
                    val[i, j] = v
                    tag[i, j] = g
                    if WRITE_Q:
                        qout[i, j] = q

    return rational_eval_nd


def _grad_layout(NOUT, SHARED, NTP, NTQ):
    n_qh = 1 if SHARED else NOUT
    return NOUT * NTP, n_qh * (NTQ - 1)


def _build_grad_1d(BASIS, DP, DQ, D, NOUT, SHARED):
    NTP = DP + 1
    NTQ = DQ + 1
    N_THETA, N_PHI = _grad_layout(NOUT, SHARED, NTP, NTQ)
    DMAX = max(DP, DQ)
    BSCALE = 2.0 if BASIS == CHEBYSHEV else 1.0

    @njit(**_KERNEL)
    def rational_grad_1d(
        x, exps, target, weight, theta, phi, scale, shift, one, eps, tau_q, tau_p,
        mode, delta, bound, loss_kind, huber_delta, lam, tau_rej, glim,
        val, tag, qout, pgrad, pf, pi,
    ):
        n = x.shape[0]
        n_chunks = pgrad.shape[0]
        for c in prange(n_chunks):
            acc = pgrad[c]
            fs = pf[c]
            ist = pi[c]
            for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
                t = x[i]
                if BASIS == CHEBYSHEV:
                    t = t * scale + shift
                nan_check = t - t
                q0 = regularised_denominator(denom_sum(BASIS, phi, 0, DQ, t, one), eps)
                t64 = np.float64(t)
                finite = not math.isnan(nan_check)
                bnd = psi_bound(max(1.0, BSCALE * abs(t64)), DMAX)
                cq_shared = 0.0
                for j in range(NOUT):
                    q = q0
                    if not SHARED and j > 0:
                        q = regularised_denominator(denom_sum(BASIS, phi, j, DQ, t, one), eps)
                    p = poly_sum(BASIS, theta, j, DP, t)
                    v, g = output_point(p, q, nan_check, tau_q, tau_p)
                    val[i, j] = v
                    tag[i, j] = g
                    qout[i, j] = q
                    ist[IS_TAG0 + g] += 1
                    if SHARED:
                        if j == 0:
                            q_stats_point(q, delta, fs, ist)
                    else:
                        q_stats_point(q, delta, fs, ist)
                    if not finite:
                        continue
                    c_p, c_q = backward_point(
                        g, np.float64(p), np.float64(q), np.float64(v), np.float64(target[i, j]),
                        np.float64(weight[i, j]), mode, delta, bound, loss_kind, huber_delta,
                        lam, tau_rej, fs, ist,
                    )
                    if not (abs(c_p) * bnd <= glim and abs(c_q) * bnd <= glim):
                        if c_p != 0.0 or c_q != 0.0:
                            ist[IS_OVERFLOW] += 1
                        continue
                    if c_p != 0.0:
                        add_psi_1d(BASIS, t64, DP, 0, c_p, acc, j * NTP)
                    if SHARED:
                        cq_shared += c_q
                    elif c_q != 0.0 and DQ > 0:
                        add_psi_1d(BASIS, t64, DQ, 1, c_q, acc, N_THETA + j * DQ)
                if SHARED and cq_shared != 0.0 and DQ > 0:
                    add_psi_1d(BASIS, t64, DQ, 1, cq_shared, acc, N_THETA)

    return rational_grad_1d


def _build_grad_nd(BASIS, DP, DQ, D, NOUT, SHARED):
    from .basis import n_terms

    NTP = n_terms(D, DP)
    NTQ = n_terms(D, DQ)
    NTMAX = max(NTP, NTQ)
    N_THETA, N_PHI = _grad_layout(NOUT, SHARED, NTP, NTQ)
    DMAX = max(DP, DQ)
    BSCALE = 2.0 if BASIS == CHEBYSHEV else 1.0

    @njit(**_KERNEL)
    def rational_grad_nd(
        x, exps, target, weight, theta, phi, scale, shift, one, eps, tau_q, tau_p,
        mode, delta, bound, loss_kind, huber_delta, lam, tau_rej, glim,
        val, tag, qout, pgrad, pf, pi,
    ):
        n = x.shape[0]
        n_chunks = pgrad.shape[0]
        for c in prange(n_chunks):
            acc = pgrad[c]
            fs = pf[c]
            ist = pi[c]
            table = np.empty((D, DMAX + 1), dtype=theta.dtype)
            row = np.empty(NTMAX, dtype=theta.dtype)
            for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
                xi = x[i]
                nan_check = one - one
                tmax = 1.0
                for jd in range(D):
                    nan_check = nan_check + (xi[jd] - xi[jd])
                    tj = np.float64(xi[jd])
                    if BASIS == CHEBYSHEV:
                        tj = np.float64(xi[jd] * scale + shift)
                    tmax = max(tmax, BSCALE * abs(tj))
                finite = not math.isnan(nan_check)
                bnd = psi_bound(tmax, DMAX)
                basis_row_nd(BASIS, xi, scale, shift, exps, NTMAX, DMAX, one, table, row)
                q0 = regularised_denominator(feature_denom(phi, 0, row, NTQ, one), eps)
                cq_shared = 0.0
                for j in range(NOUT):
                    q = q0
                    if not SHARED and j > 0:
                        q = regularised_denominator(feature_denom(phi, j, row, NTQ, one), eps)
                    p = feature_dot(theta, j, row, NTP)
                    v, g = output_point(p, q, nan_check, tau_q, tau_p)
                    val[i, j] = v
                    tag[i, j] = g
                    qout[i, j] = q
                    ist[IS_TAG0 + g] += 1
                    if SHARED:
                        if j == 0:
                            q_stats_point(q, delta, fs, ist)
                    else:
                        q_stats_point(q, delta, fs, ist)
                    if not finite:
                        continue
                    c_p, c_q = backward_point(
                        g, np.float64(p), np.float64(q), np.float64(v), np.float64(target[i, j]),
                        np.float64(weight[i, j]), mode, delta, bound, loss_kind, huber_delta,
                        lam, tau_rej, fs, ist,
                    )
                    if not (abs(c_p) * bnd <= glim and abs(c_q) * bnd <= glim):
                        if c_p != 0.0 or c_q != 0.0:
                            ist[IS_OVERFLOW] += 1
                        continue
                    if c_p != 0.0:
                        add_psi_row(row, NTP, 0, c_p, acc, j * NTP)
                    if SHARED:
                        cq_shared += c_q
                    elif c_q != 0.0:
                        add_psi_row(row, NTQ, 1, c_q, acc, N_THETA + j * (NTQ - 1))
                if SHARED and cq_shared != 0.0:
                    add_psi_row(row, NTQ, 1, cq_shared, acc, N_THETA)

    return rational_grad_nd


@njit(cache=True)
def combine_partials(pgrad, pf, pi):
    """Sequential (chunk order) combination of the per-chunk partials: sums, and min for q_min."""
    n_chunks = pgrad.shape[0]
    g = np.zeros(pgrad.shape[1], dtype=np.float64)
    f = np.zeros(pf.shape[1], dtype=np.float64)
    f[FS_QMIN] = np.inf
    s = np.zeros(pi.shape[1], dtype=np.int64)
    for c in range(n_chunks):
        for k in range(pgrad.shape[1]):
            g[k] += pgrad[c, k]
        for k in range(pf.shape[1]):
            if k == FS_QMIN:
                f[k] = min(f[k], pf[c, k])
            else:
                f[k] += pf[c, k]
        for k in range(pi.shape[1]):
            s[k] += pi[c, k]
    return g, f, s
