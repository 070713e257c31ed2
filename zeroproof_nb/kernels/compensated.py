"""Per-point double-double arithmetic: a 1-D rational P/Q evaluated to ~32 digits.

Near a pole, float64 evaluation of P/Q loses digits to cancellation in Q (its terms are much
larger than Q itself), and the error of y - P/Q then biases the least-squares optimum that a
float64 solver can find. The functions here evaluate the same model, from the same float64
mapped point t, in double-double arithmetic (a value is an unevaluated sum hi + lo, |lo| <=
ulp(hi)/2; error-free transformations of Knuth and Dekker, no fused multiply-add needed), so
that the residual of a point is known to float64 accuracy however close it is to a pole.

Scalar functions only (no allocation, no loops over points): the one source of this math for
the CPU loop in :mod:`.compensated_cpu`.
"""
from __future__ import annotations

from numba import njit

from .basis import CHEBYSHEV_ANCHORED, MONOMIAL, anchor_slope

_JIT = {"cache": True, "error_model": "numpy"}  # never fastmath: it would undo the compensation

#: Dekker's splitter 2^27 + 1
_SPLITTER = 134217729.0


@njit(**_JIT)
def two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(**_JIT)
def quick_two_sum(a, b):
    """two_sum for |a| >= |b|."""
    s = a + b
    return s, b - (s - a)


@njit(**_JIT)
def split(a):
    """(hi, lo) with a = hi + lo, each of 26 significant bits."""
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


@njit(**_JIT)
def two_prod(a, b):
    """(p, e) with p = fl(a * b) and p + e = a * b exactly (Dekker)."""
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(**_JIT)
def dd_add(ah, al, bh, bl):
    """(ah + al) + (bh + bl) in double-double."""
    s, e = two_sum(ah, bh)
    e += al + bl
    return quick_two_sum(s, e)


@njit(**_JIT)
def dd_mul(ah, al, bh, bl):
    """(ah + al) * (bh + bl) in double-double."""
    p, e = two_prod(ah, bh)
    e += ah * bl + al * bh
    return quick_two_sum(p, e)


@njit(**_JIT)
def dd_div(ah, al, bh, bl):
    """(ah + al) / (bh + bl) in double-double (two correction steps)."""
    q1 = ah / bh
    ph, pl = dd_mul(bh, bl, q1, 0.0)
    rh, rl = dd_add(ah, al, -ph, -pl)
    q2 = rh / bh
    ph, pl = dd_mul(bh, bl, q2, 0.0)
    rh, rl = dd_add(rh, rl, -ph, -pl)
    q3 = rh / bh
    s, e = quick_two_sum(q1, q2)
    return dd_add(s, e, q3, 0.0)


@njit(**_JIT)
def feature_dd(basis, k, t, f1h, f1l, f2h, f2l):
    """psi_k(t) from psi_{k-1} = f1 and psi_{k-2} = f2 (k >= 2): 2 t psi_{k-1} - psi_{k-2}
    (Chebyshev) or t psi_{k-1} (monomial), in double-double."""
    if basis == MONOMIAL:
        return dd_mul(f1h, f1l, t, 0.0)
    ph, pl = dd_mul(f1h, f1l, 2.0 * t, 0.0)
    return dd_add(ph, pl, -f2h, -f2l)


@njit(**_JIT)
def rational_point_dd(basis, theta, phi, j, jq, t):
    """(hi, lo) of P/Q of head ``j`` (denominator row ``jq``) at the mapped point t, with the
    layout of the Levenberg-Marquardt pass: P = sum_k theta[j, k] psi_k(t), Q = 1 +
    sum_k phi[jq, k] eta_{k+1}(t), eta_{k+1} = psi_{k+1} or, anchored, m(t) psi_k with m(t) =
    1 + anchor_slope(d_q) t. Returns (nan, 0) when Q is 0 in double-double."""
    n_tp = theta.shape[1]
    n_q = phi.shape[1]
    deg = max(n_tp - 1, n_q)
    mh, ml = 1.0, 0.0
    if basis == CHEBYSHEV_ANCHORED:
        sh, sl = two_prod(anchor_slope(n_q), t)
        mh, ml = dd_add(1.0, 0.0, sh, sl)
    ph, pl = theta[j, 0], 0.0
    qh, ql = 1.0, 0.0
    f2h, f2l = 1.0, 0.0  # psi_0
    f1h, f1l = t, 0.0    # psi_1
    for k in range(0, deg + 1):
        if k == 0:
            fh, fl = 1.0, 0.0
        elif k == 1:
            fh, fl = t, 0.0
        else:
            fh, fl = feature_dd(basis, k, t, f1h, f1l, f2h, f2l)
            f2h, f2l = f1h, f1l
            f1h, f1l = fh, fl
        if 1 <= k < n_tp:
            th, tl = dd_mul(fh, fl, theta[j, k], 0.0)
            ph, pl = dd_add(ph, pl, th, tl)
        if basis == CHEBYSHEV_ANCHORED:
            if k < n_q:
                eh, el = dd_mul(mh, ml, fh, fl)
                th, tl = dd_mul(eh, el, phi[jq, k], 0.0)
                qh, ql = dd_add(qh, ql, th, tl)
        elif 1 <= k <= n_q:
            th, tl = dd_mul(fh, fl, phi[jq, k - 1], 0.0)
            qh, ql = dd_add(qh, ql, th, tl)
    if qh == 0.0:
        return float("nan"), 0.0
    return dd_div(ph, pl, qh, ql)
