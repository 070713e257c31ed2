"""CPU loops of the Gauss-Newton pass and the Levenberg-Marquardt driver (float64).

:func:`accumulate_chunk` evaluates P, Q and the tag of every output of a chunk of points and
adds, for the outputs that take part (finite x, REAL output, finite target), the weighted
robust loss, the gradient J^T psi(r) and the Gauss-Newton matrix J^T diag(omega) J (upper
triangle) of the data term, then the rejection term and its Gauss-Newton curvature
(:func:`normal_equations`, the public ``rational_normal_equations``).

Levenberg-Marquardt never forms J^T J (that squares cond J, ~1e9-1e10 for rational fits near
poles, and loses the accuracy the last steps need): :func:`qr_accumulate_chunk` adds the same
rows, weighted by sqrt(w omega), to a QR factorisation (Householder, :func:`tri_update` of
[R; rows] per block of ``LS_BLOCK`` points), keeping Q^T b of the weighted residuals alongside.
:func:`qr_equations` factorises chunks of points in parallel and stacks their R factors in
chunk order (TSQR), so the result is the same bits for any number of threads.

:func:`lm_run` is the whole iteration in one call: each step solves the damped problem
min ||R s + c||^2 + mu ||D s||^2 from the QR factorisation of [R; sqrt(mu) D] (as MINPACK does;
D^2 = diag(R^T R), Marquardt's scaling), evaluates the candidate (one more pass, which also
gives its R), accepts it when the objective falls and no output that took part became
non-REAL, and adapts mu (Nielsen's rule). Each step first tries the Gauss-Newton step (a ridge
of ``GN_RIDGE`` D, far below rounding): damping also damps the directions of smallest
curvature, so that damped steps crawl where Gauss-Newton converges in a few steps; after a
failed Gauss-Newton try, steps are damped until mu falls below ``GN_REENABLE``. The parameter
layout is ``[theta2.ravel(), phi2.ravel()]``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .basis import CHEBYSHEV_ANCHORED, MONOMIAL, anchor_slope, basis_row_nd, mapped_point
from .least_squares import jacobian_coefficients, rejection_terms, robust_loss
from .compensated import rational_point_dd
from .rational import (
    LOSS_HUBER,
    LOSS_MSE,
    LOSS_TUKEY,
    MODE_HYBRID,
    MODE_MASK_REAL,
    MODE_SATURATING,
    output_point,
    regularised_denominator,
)
from .tags import REAL

# per-chunk float and count partials
F_DATA, F_REJ, F_RES = 0, 1, 2
N_F = 3
C_USED, C_TARGET, C_REAL = 0, 1, 2
N_C = 3

# lm_run status codes
LM_RUNNING, LM_FTOL, LM_XTOL, LM_GTOL, LM_STALLED, LM_NOT_FINITE = 0, 1, 2, 3, 4, 5
# lm_run state slots (then D, one per parameter): damping, its growth factor, and whether a
# step first tries the undamped Gauss-Newton step
S_MU, S_NU, S_GN = 0, 1, 2
N_STATE = 3
#: relative ridge of the Gauss-Newton try: its rows sqrt(GN_RIDGE D) are 1e-15 of the columns'
#: norms, below rounding, and keep a rank-deficient R solvable
GN_RIDGE = 1e-30
#: relative rounding allowance of the objective when the last step's gain is compared with the
#: gain its model predicts
LAST_NOISE = 1e-15
#: damping below which the Gauss-Newton try is switched back on
GN_REENABLE = 1e-6


#: condition of a float64 value of P/Q (sum |terms| / |sum| of P and of Q) below which
#: :func:`value_corrections` leaves it as it is: its error is at most ~64 eps relative
COMPENSATE_CONDITION = 32.0

#: points per block of :func:`accumulate_chunk` (its Jacobian buffer stays in L1/L2)
LS_BLOCK = 256
#: points per parallel chunk (fixed: the sums do not depend on the thread count); smaller than
#: ``tags.CHUNK`` so that pools of a few 10^4 points still split evenly over threads
LS_CHUNK = 4096
#: points per chunk of the QR accumulation (:func:`qr_equations`): a pool of 2*10^4 points
#: splits into enough chunks to run in parallel, and combining two R factors costs ~n^3 flops
QR_CHUNK = 2048
#: chunks from which the chunks run in parallel (below, serially into the same partials: the
#: same bits, without the start-up of a parallel region, which on a loaded machine can cost
#: milliseconds)
PARALLEL_MIN_CHUNKS = 8


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def block_gram(jac, jw, m, n_loc, col, want_h, gw, h, g):
    """h[col[u], col[v]] += sum_{i<m} jw[u, i] jac[v, i] (v >= u) and
    g[col[u]] += sum_{i<m} gw[i] jac[u, i]: the block's rank-m update (the sums over i
    vectorise; their order is fixed by the compiled code)."""
    for u in range(n_loc):
        s = 0.0
        for i in range(m):
            s += gw[i] * jac[u, i]
        g[col[u]] += s
        if want_h:
            for v in range(u, n_loc):
                s = 0.0
                for i in range(m):
                    s += jw[u, i] * jac[v, i]
                h[col[u], col[v]] += s


@njit(error_model="numpy", inline="always")
def _rule_loop(MODE, KIND, m, b0, j, fin, pb, qb, target, weight, has_w, w_const, has_eps, eps,
               has_policy, tau_q, tau_p, delta, bound, c, ab, bb, gw, hwb):
    n_target = 0
    n_real = 0
    n_used = 0
    data = 0.0
    for i in range(m):
        q = qb[i]
        if has_eps:
            q = regularised_denominator(q, eps)
            qb[i] = q
        v, tag = output_point(pb[i], q, 0.0 if fin[i] else math.nan, has_policy, tau_q, tau_p)
        tj = target[b0 + i, j]
        n_target += fin[i] and math.isfinite(tj)
        n_real += tag == REAL
        use, r, a, bq = jacobian_coefficients(fin[i], tag == REAL, q, v, tj, MODE, delta, bound)
        hw = 0.0
        gwi = 0.0
        if use:
            wt = weight[b0 + i, j] if has_w else w_const
            n_used += 1
            rho, psi, om = robust_loss(KIND, r, c)
            data += wt * rho
            gwi = wt * psi
            hw = wt * om
        ab[i] = a
        bb[i] = bq
        gw[i] = gwi
        hwb[i] = hw
    return n_target, n_real, n_used, data


@njit(cache=True, error_model="numpy")
def rule_block(mode, kind, m, b0, j, fin, pb, qb, target, weight, has_w, w_const, has_eps, eps,
               has_policy, tau_q, tau_p, delta, bound, c, ab, bb, gw, hwb):
    """Per point of a block of head ``j``: the output and its tag (``rational.output_point``),
    the Jacobian coefficients dy/dP, dy/dQ into ``ab``, ``bb`` and the robust-loss weights
    w psi and w omega into ``gw``, ``hwb`` (0 for outputs that do not take part); returns the
    block's (finite targets, REAL tags, used outputs, data loss). The loop is instantiated once
    per gradient rule and loss, constants to the compiler (half the time per point)."""
    if kind == LOSS_MSE:
        if mode == MODE_MASK_REAL:
            return _rule_loop(MODE_MASK_REAL, LOSS_MSE, m, b0, j, fin, pb, qb, target, weight,
                              has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p, delta,
                              bound, c, ab, bb, gw, hwb)
        if mode == MODE_SATURATING:
            return _rule_loop(MODE_SATURATING, LOSS_MSE, m, b0, j, fin, pb, qb, target, weight,
                              has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p, delta,
                              bound, c, ab, bb, gw, hwb)
        return _rule_loop(MODE_HYBRID, LOSS_MSE, m, b0, j, fin, pb, qb, target, weight, has_w,
                          w_const, has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c, ab,
                          bb, gw, hwb)
    if kind == LOSS_HUBER:
        if mode == MODE_MASK_REAL:
            return _rule_loop(MODE_MASK_REAL, LOSS_HUBER, m, b0, j, fin, pb, qb, target, weight,
                              has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p, delta,
                              bound, c, ab, bb, gw, hwb)
        if mode == MODE_SATURATING:
            return _rule_loop(MODE_SATURATING, LOSS_HUBER, m, b0, j, fin, pb, qb, target,
                              weight, has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p,
                              delta, bound, c, ab, bb, gw, hwb)
        return _rule_loop(MODE_HYBRID, LOSS_HUBER, m, b0, j, fin, pb, qb, target, weight, has_w,
                          w_const, has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c, ab,
                          bb, gw, hwb)
    if mode == MODE_MASK_REAL:
        return _rule_loop(MODE_MASK_REAL, LOSS_TUKEY, m, b0, j, fin, pb, qb, target, weight,
                          has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c,
                          ab, bb, gw, hwb)
    if mode == MODE_SATURATING:
        return _rule_loop(MODE_SATURATING, LOSS_TUKEY, m, b0, j, fin, pb, qb, target, weight,
                          has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c,
                          ab, bb, gw, hwb)
    return _rule_loop(MODE_HYBRID, LOSS_TUKEY, m, b0, j, fin, pb, qb, target, weight, has_w,
                      w_const, has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c, ab, bb,
                      gw, hwb)


@njit(cache=True, error_model="numpy")
def block_features(x, d, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table):
    """feat[k, i] = psi_k of point b0 + i (k < n_f, i < m), fin[i] = the point is finite.

    1-D: the recurrences run over k with the points innermost (unit stride: they vectorise);
    n-D: :func:`~.basis.basis_row_nd` per point into ``row``, copied into the column."""
    if d == 0:
        for i in range(m):
            t = x[b0 + i, 0]
            fin[i] = (t - t) == 0.0
            t = mapped_point(basis, t, scale, shift)
            feat[0, i] = 1.0
            if n_f > 1:
                feat[1, i] = t
        for k in range(2, n_f):
            if basis != MONOMIAL:
                for i in range(m):
                    feat[k, i] = 2.0 * feat[1, i] * feat[k - 1, i] - feat[k - 2, i]
            else:
                for i in range(m):
                    feat[k, i] = feat[k - 1, i] * feat[1, i]
        return
    dims = x.shape[1]
    for i in range(m):
        nan_check = 0.0
        for k in range(dims):
            nan_check += x[b0 + i, k] - x[b0 + i, k]
        fin[i] = nan_check == 0.0
        basis_row_nd(basis, x[b0 + i], scale, shift, exps, n_f, deg, 1.0, table, row)
        for k in range(n_f):
            feat[k, i] = row[k]


@njit(cache=True, error_model="numpy")
def denominator_block(basis, m, n_q, feat, qfeat):
    """qfeat[k, i] = eta_{k+1} of point i (k < n_q): feat[k + 1, i], or for the anchored basis
    m(t) feat[k, i] with m(t) = 1 + anchor_slope(n_q) t (see :mod:`.basis`)."""
    if basis == CHEBYSHEV_ANCHORED:
        slope = anchor_slope(n_q)
        for k in range(n_q):
            if k == 0:
                for i in range(m):
                    qfeat[0, i] = 1.0 + slope * feat[1, i]
            else:
                for i in range(m):
                    qfeat[k, i] = (1.0 + slope * feat[1, i]) * feat[k, i]
        return
    for k in range(n_q):
        for i in range(m):
            qfeat[k, i] = feat[k + 1, i]


@njit(cache=True, error_model="numpy")
def block_pq(theta2, phi2, j, jq, poff, m, feat, qfeat, col, pb, qb):
    """P and Q of head ``j`` (Q row ``jq``) over the block's points, as sums over k of point
    vectors (``pb``, ``qb``), and ``col``: the parameter index of each local Jacobian column
    (θ of head j, then φ of Q row jq starting at ``poff``)."""
    n_tp = theta2.shape[1]
    n_tq1 = phi2.shape[1]
    for k in range(n_tp):
        col[k] = j * n_tp + k
    for k in range(n_tq1):
        col[n_tp + k] = poff + k
    for i in range(m):
        pb[i] = theta2[j, 0]
        qb[i] = 1.0
    for k in range(1, n_tp):
        ck = theta2[j, k]
        for i in range(m):
            pb[i] += ck * feat[k, i]
    for k in range(n_tq1):
        ck = phi2[jq, k]
        for i in range(m):
            qb[i] += ck * qfeat[k, i]


@njit(cache=True, error_model="numpy")
def accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                     scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound,
                     kind, c, lam, inv_tau, start, stop, want_h, h, g, fs, cnt):
    """Add the points ``start:stop`` to ``h`` (n_par, n_par; upper triangle), ``g`` (n_par,),
    ``fs`` (data loss, rejection sum) and ``cnt`` (used outputs, finite targets, REAL tags).

    ``x`` (N, max(d, 1)); ``target`` and ``weight`` (N, n_out) (``weight`` normalised, or
    ``w_const`` for every output when not ``has_w``); ``deg`` = max(d_p, d_q). Points go in
    blocks of ``LS_BLOCK`` with the points innermost: the basis rows (:func:`block_features`),
    P and Q as sums over k of vector operations, the per-point rule (tag, residual, robust
    weights, dy/dP and dy/dQ from the scalar functions of :mod:`.least_squares`), the Jacobian
    block, then :func:`block_gram` adds the block's J^T diag(w omega) J and J^T w psi.
    """
    n_out, n_tp = theta2.shape
    n_qh, n_tq1 = phi2.shape
    n_theta = n_out * n_tp
    n_loc = n_tp + n_tq1
    n_f = max(n_tp, n_tq1 + 1)
    feat = np.empty((n_f, LS_BLOCK))
    qfeat = np.empty((n_tq1, LS_BLOCK))
    jac = np.empty((n_loc, LS_BLOCK))
    jw = np.empty((n_loc, LS_BLOCK))
    pb = np.empty(LS_BLOCK)
    qb = np.empty(LS_BLOCK)
    ab = np.empty(LS_BLOCK)
    bb = np.empty(LS_BLOCK)
    hwb = np.empty(LS_BLOCK)
    gw = np.empty(LS_BLOCK)
    fin = np.empty(LS_BLOCK, dtype=np.bool_)
    col = np.empty(n_loc, dtype=np.int64)
    row = np.empty(n_f)
    table = np.empty((max(d, 1), deg + 1))
    n_target = 0
    n_real = 0
    n_used = 0
    data = 0.0
    for b0 in range(start, stop, LS_BLOCK):
        m = min(LS_BLOCK, stop - b0)
        block_features(x, d, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table)
        denominator_block(basis, m, n_tq1, feat, qfeat)
        for j in range(n_out):
            jq = 0 if n_qh == 1 else j
            poff = n_theta + jq * n_tq1
            block_pq(theta2, phi2, j, jq, poff, m, feat, qfeat, col, pb, qb)
            # the per-point rule (one loop per gradient rule and loss: see rule_block)
            nt, nr, nu, dl = rule_block(mode, kind, m, b0, j, fin, pb, qb, target, weight,
                                        has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p,
                                        delta, bound, c, ab, bb, gw, hwb)
            n_target += nt
            n_real += nr
            n_used += nu
            data += dl
            # the Jacobian block (points innermost)
            for k in range(n_tp):
                for i in range(m):
                    jac[k, i] = ab[i] * feat[k, i]
                    jw[k, i] = hwb[i] * jac[k, i]
            for k in range(n_tq1):
                for i in range(m):
                    jac[n_tp + k, i] = bb[i] * qfeat[k, i]
                    jw[n_tp + k, i] = hwb[i] * jac[n_tp + k, i]
            block_gram(jac, jw, m, n_loc, col, want_h, gw, h, g)
            if lam > 0.0:
                for i in range(m):
                    q = qb[i]
                    if not (fin[i] and math.isfinite(q)):
                        continue
                    pen, dpen, sq = rejection_terms(math.isfinite(target[b0 + i, j]), q, inv_tau)
                    if pen == 0.0 and dpen == 0.0:
                        continue
                    wt = weight[b0 + i, j] if has_w else w_const
                    fs[F_REJ] += wt * pen
                    gq = lam * wt * dpen
                    for k in range(n_tq1):
                        g[poff + k] += gq * qfeat[k, i]
                    if want_h and sq > 0.0:
                        hq = lam * wt * sq * sq
                        for u in range(n_tq1):
                            hu = hq * qfeat[u, i]
                            for v2 in range(u, n_tq1):
                                h[poff + u, poff + v2] += hu * qfeat[v2, i]
    fs[F_DATA] += data
    cnt[C_USED] += n_used
    cnt[C_TARGET] += n_target
    cnt[C_REAL] += n_real


@njit(cache=True, parallel=True, error_model="numpy")
def chunk_partials(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg, scale,
                   shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound, kind, c,
                   lam, inv_tau, want_h, hp, gp, fp, cp):
    """:func:`accumulate_chunk` of chunk ``ci`` (``LS_CHUNK`` points) into the zeroed
    partials ``hp[ci]``, ``gp[ci]``, ``fp[ci]``, ``cp[ci]``, chunks in parallel. Nothing else
    runs in this function: every array statement of a ``parallel=True`` function becomes a
    parallel region of its own."""
    n = x.shape[0]
    for ci in prange(gp.shape[0]):
        start = ci * LS_CHUNK
        stop = min(n, start + LS_CHUNK)
        accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                         scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta,
                         bound, kind, c, lam, inv_tau, start, stop, want_h,
                         hp[ci], gp[ci], fp[ci], cp[ci])


@njit(cache=True, error_model="numpy")
def normal_equations(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                     scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound,
                     kind, c, lam, inv_tau, want_h, h, g, fs, cnt):
    """:func:`accumulate_chunk` over all points into ``h`` (full symmetric matrix on return),
    ``g``, ``fs``, ``cnt`` (zeroed first): in chunks of ``LS_CHUNK`` points, in parallel
    (:func:`chunk_partials`) when there are several, their partials added in chunk order."""
    n = x.shape[0]
    n_par = g.shape[0]
    n_chunks = max(1, (n + LS_CHUNK - 1) // LS_CHUNK)
    h[:, :] = 0.0
    g[:] = 0.0
    fs[:] = 0.0
    cnt[:] = 0
    if n_chunks == 1:  # one chunk: no parallel region (its start-up costs more than the work)
        accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                         scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta,
                         bound, kind, c, lam, inv_tau, 0, n, want_h, h, g, fs, cnt)
    else:
        hp = np.zeros((n_chunks, n_par, n_par)) if want_h else np.zeros((n_chunks, 1, 1))
        gp = np.zeros((n_chunks, n_par))
        fp = np.zeros((n_chunks, N_F))
        cp = np.zeros((n_chunks, N_C), dtype=np.int64)
        if n_chunks >= PARALLEL_MIN_CHUNKS:
            chunk_partials(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis,
                           deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode,
                           delta, bound, kind, c, lam, inv_tau, want_h, hp, gp, fp, cp)
        else:  # the same partials, serially: a few chunks do not pay for a parallel region
            for ci in range(n_chunks):
                accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2,
                                 basis, deg, scale, shift, has_eps, eps, has_policy, tau_q,
                                 tau_p, mode, delta, bound, kind, c, lam, inv_tau,
                                 ci * LS_CHUNK, min(n, (ci + 1) * LS_CHUNK), want_h, hp[ci],
                                 gp[ci], fp[ci], cp[ci])
        for ci in range(n_chunks):
            if want_h:
                for u in range(n_par):
                    for v in range(u, n_par):
                        h[u, v] += hp[ci, u, v]
            for u in range(n_par):
                g[u] += gp[ci, u]
            for k in range(N_F):
                fs[k] += fp[ci, k]
            for k in range(N_C):
                cnt[k] += cp[ci, k]
    if want_h:
        for u in range(n_par):
            for v in range(u):
                h[u, v] = h[v, u]


@njit(cache=True, error_model="numpy")
def add_regulariser(alpha, phi2, n_theta, h, g, want_h):
    """alpha/2 ||phi||^2 into ``g`` (and ``h``); returns its value."""
    n_qh, n_tq1 = phi2.shape
    val = 0.0
    for jq in range(n_qh):
        for k in range(n_tq1):
            u = n_theta + jq * n_tq1 + k
            val += phi2[jq, k] * phi2[jq, k]
            g[u] += alpha * phi2[jq, k]
            if want_h:
                h[u, u] += alpha
    return 0.5 * alpha * val


@njit(cache=True, error_model="numpy")
def all_finite(a):
    for v in a.ravel():
        if not math.isfinite(v):
            return False
    return True


# ------------------------------------------------------------------------------------------------
# QR accumulation (TSQR) and the Levenberg-Marquardt step from R
# ------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def tri_update(r, qtb, a, b, m):
    """Householder QR of the stack [r; A] with right-hand side [qtb; b], in place.

    ``r`` (n, n) upper triangular, ``qtb`` (n,); the m new rows are held column-wise,
    ``a[k, i]`` = row i, column k (k < n, i < m; the points innermost, so the sums over rows
    vectorise), ``b[:m]`` their right-hand sides. On return ``r`` is the R factor of the stack
    (diagonal of either sign), ``qtb`` the first n entries of Q^T [qtb; b] and ``b[:m]`` the rest
    (its sum of squares is the part of the residual that no parameter can explain); ``a`` is
    overwritten. One reflection per column k: H = I - tau v v^T, v = [r_kk - alpha; a[k, :m]]
    (the rows of r above k are not touched: r is triangular)."""
    n = r.shape[0]
    for k in range(n):
        s = 0.0
        for i in range(m):
            s += a[k, i] * a[k, i]
        if s == 0.0:
            continue
        rkk = r[k, k]
        nrm = math.sqrt(rkk * rkk + s)
        alpha = -nrm if rkk >= 0.0 else nrm
        v0 = rkk - alpha
        tau = 1.0 / (nrm * (nrm + abs(rkk)))  # 2 / ||v||^2 = 1 / (nrm (nrm + |r_kk|))
        r[k, k] = alpha
        for j in range(k + 1, n):
            w = v0 * r[k, j]
            for i in range(m):
                w += a[k, i] * a[j, i]
            w *= tau
            r[k, j] -= w * v0
            for i in range(m):
                a[j, i] -= w * a[k, i]
        w = v0 * qtb[k]
        for i in range(m):
            w += a[k, i] * b[i]
        w *= tau
        qtb[k] -= w * v0
        for i in range(m):
            b[i] -= w * a[k, i]


@njit(cache=True, error_model="numpy")
def _flush_rows(r, qtb, a, b, m, fs):
    """:func:`tri_update` of ``m`` buffered rows; their unexplained squares into fs[F_RES]."""
    if m == 0:
        return
    tri_update(r, qtb, a, b, m)
    s = 0.0
    for i in range(m):
        s += b[i] * b[i]
    fs[F_RES] += s


@njit(cache=True, error_model="numpy")
def qr_accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                        scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound,
                        kind, c, lam, inv_tau, start, stop, r, qtb, gx, fs, cnt):
    """Add the points ``start:stop`` to the QR factorisation ``r``, ``qtb`` of the weighted
    Jacobian: the rows sqrt(w omega) J_i with right-hand sides sqrt(w omega) r_i (so that
    R^T R = J^T diag(w omega) J and R^T Q^T b = J^T w psi, the Gauss-Newton matrix and gradient of
    :func:`accumulate_chunk`), then the rows of the rejection term's squares
    sqrt(lambda w) * sqrt(2)/tau * dQ with right-hand side sqrt(lambda w) dpen / (sqrt(2)/tau).
    The rejection term of a non-REAL target (|Q|, no Gauss-Newton curvature) adds its gradient
    to ``gx`` instead. ``fs`` gets the data loss, the rejection sum and the unexplained squares,
    ``cnt`` the counts of :func:`accumulate_chunk`. Blocks of ``LS_BLOCK`` points, in order."""
    n_out, n_tp = theta2.shape
    n_qh, n_tq1 = phi2.shape
    n_theta = n_out * n_tp
    n_par = n_theta + n_qh * n_tq1
    n_loc = n_tp + n_tq1
    n_f = max(n_tp, n_tq1 + 1)
    feat = np.empty((n_f, LS_BLOCK))
    qfeat = np.empty((n_tq1, LS_BLOCK))
    a = np.zeros((n_par, LS_BLOCK))
    b = np.empty(LS_BLOCK)
    a2 = np.zeros((n_par, LS_BLOCK))
    b2 = np.empty(LS_BLOCK)
    pb = np.empty(LS_BLOCK)
    qb = np.empty(LS_BLOCK)
    ab = np.empty(LS_BLOCK)
    bb = np.empty(LS_BLOCK)
    hwb = np.empty(LS_BLOCK)
    gw = np.empty(LS_BLOCK)
    fin = np.empty(LS_BLOCK, dtype=np.bool_)
    col = np.empty(n_loc, dtype=np.int64)
    row = np.empty(n_f)
    table = np.empty((max(d, 1), deg + 1))
    sq2 = math.sqrt(2.0) * inv_tau
    n_target = 0
    n_real = 0
    n_used = 0
    data = 0.0
    for b0 in range(start, stop, LS_BLOCK):
        m = min(LS_BLOCK, stop - b0)
        block_features(x, d, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table)
        denominator_block(basis, m, n_tq1, feat, qfeat)
        for j in range(n_out):
            jq = 0 if n_qh == 1 else j
            poff = n_theta + jq * n_tq1
            block_pq(theta2, phi2, j, jq, poff, m, feat, qfeat, col, pb, qb)
            nt, nr, nu, dl = rule_block(mode, kind, m, b0, j, fin, pb, qb, target, weight,
                                        has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p,
                                        delta, bound, c, ab, bb, gw, hwb)
            n_target += nt
            n_real += nr
            n_used += nu
            data += dl
            # the block's weighted rows: sqrt(w omega) J_i, rhs sqrt(w omega) r_i = w psi /
            # sqrt(w omega) (psi = omega r)
            for i in range(m):
                sw = math.sqrt(hwb[i]) if hwb[i] > 0.0 else 0.0
                b[i] = gw[i] / sw if sw > 0.0 else 0.0
                hwb[i] = sw
            if n_loc != n_par:  # several heads: the other heads' columns are 0 in these rows
                for u in range(n_par):
                    for i in range(m):
                        a[u, i] = 0.0
            for k in range(n_tp):
                u = col[k]
                for i in range(m):
                    a[u, i] = (hwb[i] * ab[i]) * feat[k, i]
            for k in range(n_tq1):
                u = col[n_tp + k]
                for i in range(m):
                    a[u, i] = (hwb[i] * bb[i]) * qfeat[k, i]
            _flush_rows(r, qtb, a, b, m, fs)
            if lam > 0.0:
                m2 = 0
                for i in range(m):
                    q = qb[i]
                    if not (fin[i] and math.isfinite(q)):
                        continue
                    pen, dpen, sq = rejection_terms(math.isfinite(target[b0 + i, j]), q, inv_tau)
                    if pen == 0.0 and dpen == 0.0:
                        continue
                    wt = weight[b0 + i, j] if has_w else w_const
                    fs[F_REJ] += wt * pen
                    if sq > 0.0:
                        sl = math.sqrt(lam * wt)
                        for u in range(n_par):
                            a2[u, m2] = 0.0
                        for k in range(n_tq1):
                            a2[poff + k, m2] = sl * sq2 * qfeat[k, i]
                        b2[m2] = sl * dpen / sq2
                        m2 += 1
                    else:
                        gq = lam * wt * dpen
                        for k in range(n_tq1):
                            gx[poff + k] += gq * qfeat[k, i]
                _flush_rows(r, qtb, a2, b2, m2, fs)
    fs[F_DATA] += data
    cnt[C_USED] += n_used
    cnt[C_TARGET] += n_target
    cnt[C_REAL] += n_real


# qr_chunk_partials and qr_equations are not cached: numba 0.68 crashes (segfault) when a cached
# function (lm_run) was compiled against a cache-loaded function that holds a parallel region,
# then loaded from the cache; compiled with lm_run, they are part of its cached library
@njit(cache=False, parallel=True, error_model="numpy")
def qr_chunk_partials(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                      scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound,
                      kind, c, lam, inv_tau, chunk, rp, qp, gp, fp, cp):
    """:func:`qr_accumulate_chunk` of chunk ``ci`` (``chunk`` points) into the zeroed partials
    ``rp[ci]``, ``qp[ci]``, ``gp[ci]``, ``fp[ci]``, ``cp[ci]``, chunks in parallel."""
    n = x.shape[0]
    for ci in prange(qp.shape[0]):
        start = ci * chunk
        stop = min(n, start + chunk)
        qr_accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis,
                            deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode,
                            delta, bound, kind, c, lam, inv_tau, start, stop, rp[ci], qp[ci],
                            gp[ci], fp[ci], cp[ci])


@njit(cache=False, error_model="numpy")
def qr_equations(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg, scale,
                 shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound, kind, c, lam,
                 inv_tau, alpha, chunk, r, qtb, gx, fs, cnt):
    """The R factor ``r`` and ``qtb`` = (Q^T b)[:n] of the weighted Jacobian of all points and
    of the regulariser rows sqrt(alpha) e_u (phi parameters, rhs sqrt(alpha) phi_u), the
    gradient-only part ``gx``, ``fs`` (data loss, rejection sum, unexplained squares) and
    ``cnt``, all zeroed first; returns alpha/2 ||phi||^2.

    TSQR: each chunk of ``chunk`` points is factorised on its own (:func:`qr_accumulate_chunk`,
    in parallel from ``PARALLEL_MIN_CHUNKS`` chunks), then the chunks' [R_c; Q_c^T b_c] are
    stacked onto the first chunk's in chunk order by :func:`tri_update`: the same bits for any
    number of threads (for a given ``chunk``)."""
    n = x.shape[0]
    n_par = qtb.shape[0]
    n_chunks = max(1, (n + chunk - 1) // chunk)
    r[:, :] = 0.0
    qtb[:] = 0.0
    gx[:] = 0.0
    fs[:] = 0.0
    cnt[:] = 0
    if n_chunks == 1:
        qr_accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                            scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta,
                            bound, kind, c, lam, inv_tau, 0, n, r, qtb, gx, fs, cnt)
    else:
        rp = np.zeros((n_chunks, n_par, n_par))
        qp = np.zeros((n_chunks, n_par))
        gp = np.zeros((n_chunks, n_par))
        fp = np.zeros((n_chunks, N_F))
        cp = np.zeros((n_chunks, N_C), dtype=np.int64)
        if n_chunks >= PARALLEL_MIN_CHUNKS:
            qr_chunk_partials(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis,
                              deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode,
                              delta, bound, kind, c, lam, inv_tau, chunk, rp, qp, gp, fp, cp)
        else:
            for ci in range(n_chunks):
                qr_accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2,
                                    basis, deg, scale, shift, has_eps, eps, has_policy, tau_q,
                                    tau_p, mode, delta, bound, kind, c, lam, inv_tau,
                                    ci * chunk, min(n, (ci + 1) * chunk), rp[ci], qp[ci],
                                    gp[ci], fp[ci], cp[ci])
        a = np.empty((n_par, n_par))
        b = np.empty(n_par)
        r[:, :] = rp[0]
        qtb[:] = qp[0]
        for ci in range(n_chunks):
            if ci > 0:
                for u in range(n_par):
                    b[u] = qp[ci, u]
                    for v in range(n_par):
                        a[v, u] = rp[ci, u, v]
                _flush_rows(r, qtb, a, b, n_par, fs)
            for u in range(n_par):
                gx[u] += gp[ci, u]
            for k in range(N_F):
                fs[k] += fp[ci, k]
            for k in range(N_C):
                cnt[k] += cp[ci, k]
    n_qh, n_tq1 = phi2.shape
    n_phi = n_qh * n_tq1
    val = 0.0
    if alpha > 0.0 and n_phi > 0:
        sa = math.sqrt(alpha)
        a = np.zeros((n_par, n_phi))
        b = np.empty(n_phi)
        n_theta = n_par - n_phi
        for jq in range(n_qh):
            for k in range(n_tq1):
                i = jq * n_tq1 + k
                a[n_theta + i, i] = sa
                b[i] = sa * phi2[jq, k]
                val += phi2[jq, k] * phi2[jq, k]
        _flush_rows(r, qtb, a, b, n_phi, fs)
    return 0.5 * alpha * val


@njit(cache=True, error_model="numpy")
def qr_gradient(r, qtb, gx, g):
    """g = R^T qtb + gx: the gradient of the objective."""
    n = qtb.shape[0]
    for u in range(n):
        s = gx[u]
        for k in range(u + 1):
            s += r[k, u] * qtb[k]
        g[u] = s


@njit(cache=True, error_model="numpy")
def qr_rhs(r, qtb, gx, cvec):
    """cvec with R^T cvec = R^T qtb + gx (= qtb when gx = 0): the right-hand side of the steps
    (a zero pivot of R takes no part of gx)."""
    n = qtb.shape[0]
    has = False
    for u in range(n):
        has = has or gx[u] != 0.0
    if not has:
        for u in range(n):
            cvec[u] = qtb[u]
        return
    for u in range(n):  # forward substitution R^T z = gx into cvec, then cvec = qtb + z
        s = gx[u]
        for k in range(u):
            s -= r[k, u] * cvec[k]
        cvec[u] = s / r[u, u] if r[u, u] != 0.0 else 0.0
    for u in range(n):
        cvec[u] += qtb[u]


@njit(cache=True, error_model="numpy")
def lm_step(r, cvec, dscale, mu, rm, cm, a, b, step):
    """The Levenberg-Marquardt step: ``step`` minimises ||R s + cvec||^2 + mu ||D s||^2
    (D^2 = ``dscale``), i.e. (R^T R + mu D^2) s = -R^T cvec, from the QR factorisation of
    [R; sqrt(mu) D] (MINPACK's approach; J^T J is never formed). ``rm``, ``cm``, ``a``, ``b``
    are work arrays. Returns False when the factor has a zero pivot."""
    n = cvec.shape[0]
    for u in range(n):
        for v in range(n):
            rm[u, v] = r[u, v]
            a[u, v] = 0.0
        cm[u] = cvec[u]
        b[u] = 0.0
    for u in range(n):
        a[u, u] = math.sqrt(mu * dscale[u])
    tri_update(rm, cm, a, b, n)
    for u in range(n - 1, -1, -1):
        if not (rm[u, u] != 0.0 and math.isfinite(rm[u, u])):
            return False
        s = -cm[u]
        for v in range(u + 1, n):
            s -= rm[u, v] * step[v]
        step[u] = s / rm[u, u]
    return True


@njit(cache=True, error_model="numpy")
def value_corrections(x, theta2, phi2, basis, deg, scale, shift, out):
    """out[i, j] = P/Q (double-double, rounded) minus the float64 value that the pass of
    this module computes for output ``j`` of point ``i`` (1-D points, no tag
    policy, no Q regularisation); 0 where that output is not REAL, and where the float64
    value is well conditioned: sum |terms of P| / |P| + sum |terms of Q| / |Q| below
    ``COMPENSATE_CONDITION`` (an error below ~1e-14 relative; only points near a pole or a
    zero need the double-double value). Blocks of ``LS_BLOCK`` points, serially (the
    refinement of :func:`lm_run` calls it; a parallel region could not be cached with its
    caller)."""
    n = x.shape[0]
    n_out, n_tp = theta2.shape
    n_qh, n_tq1 = phi2.shape
    n_f = max(n_tp, n_tq1 + 1)
    exps = np.zeros((1, 1), dtype=np.int64)
    feat = np.empty((n_f, LS_BLOCK))
    qfeat = np.empty((n_tq1, LS_BLOCK))
    fin = np.empty(LS_BLOCK, dtype=np.bool_)
    row = np.empty(n_f)
    table = np.empty((1, deg + 1))
    col = np.empty(n_tp + n_tq1, dtype=np.int64)
    pb = np.empty(LS_BLOCK)
    qb = np.empty(LS_BLOCK)
    for b0 in range(0, n, LS_BLOCK):
        m = min(LS_BLOCK, n - b0)
        block_features(x, 0, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table)
        denominator_block(basis, m, n_tq1, feat, qfeat)
        for j in range(n_out):
            jq = 0 if n_qh == 1 else j
            block_pq(theta2, phi2, j, jq, n_out * n_tp + jq * n_tq1, m, feat, qfeat, col, pb,
                     qb)
            for i in range(m):
                v, tag = output_point(pb[i], qb[i], 0.0 if fin[i] else math.nan, False, 0.0,
                                      0.0)
                out[b0 + i, j] = 0.0
                if tag != REAL:
                    continue
                sp = abs(theta2[j, 0])
                for k in range(1, n_tp):
                    sp += abs(theta2[j, k] * feat[k, i])
                sq = 1.0
                for k in range(n_tq1):
                    sq += abs(phi2[jq, k] * qfeat[k, i])
                if sp <= COMPENSATE_CONDITION * abs(pb[i]) and \
                        sq <= COMPENSATE_CONDITION * abs(qb[i]):
                    continue
                fh, fl = rational_point_dd(basis, theta2, phi2, j, jq, feat[1, i])
                if math.isfinite(fh):
                    out[b0 + i, j] = (fh - v) + fl


@njit(cache=True, error_model="numpy")
def lm_run(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg, scale, shift,
           has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound, kind, c, lam, inv_tau,
           alpha, chunk, state, max_steps, max_tries, ftol, xtol, gtol, refine_steps, corr,
           info):
    """Up to ``max_steps`` accepted Levenberg-Marquardt steps on ``theta2``, ``phi2`` (float64,
    updated in place), each solved from the QR factorisation of the weighted Jacobian
    (:func:`qr_equations` with ``chunk`` points per chunk, then :func:`lm_step`). ``state`` =
    [mu, nu, gn, D_1 .. D_n] carries the damping between calls (mu <= 0: start afresh).
    ``info`` (float64, 7) receives: status, accepted steps, passes over the data, objective
    before, objective after, used outputs, refinement steps. Returns the status code.

    Refinement (``refine_steps`` > 0, 1-D points without tag policy or Q regularisation; at
    the end of a converged run, or from the start when ``max_steps`` is 0): up to
    ``refine_steps`` Gauss-Newton steps on the residuals of the double-double values
    (:func:`value_corrections` into ``corr``, (n, n_out), the targets shifted by them), each
    kept when that objective falls and no output that took part becomes non-REAL; the
    objective after is then the compensated one."""
    n_out, n_tp = theta2.shape
    n_qh, n_tq1 = phi2.shape
    n_theta = n_out * n_tp
    n_par = n_theta + n_qh * n_tq1
    r = np.zeros((n_par, n_par))
    qtb = np.zeros(n_par)
    gx = np.zeros(n_par)
    fs = np.zeros(N_F)
    cnt = np.zeros(N_C, dtype=np.int64)
    r_c = np.zeros((n_par, n_par))
    qtb_c = np.zeros(n_par)
    gx_c = np.zeros(n_par)
    fs_c = np.zeros(N_F)
    cnt_c = np.zeros(N_C, dtype=np.int64)
    g = np.zeros(n_par)
    cvec = np.zeros(n_par)
    rm = np.zeros((n_par, n_par))
    cm = np.zeros(n_par)
    a = np.zeros((n_par, n_par))
    b = np.zeros(n_par)
    step = np.zeros(n_par)
    th_c = theta2.copy()
    ph_c = phi2.copy()
    reg = qr_equations(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                       scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta, bound,
                       kind, c, lam, inv_tau, alpha, chunk, r, qtb, gx, fs, cnt)
    passes = 1
    loss = fs[F_DATA] + lam * fs[F_REJ] + reg
    qr_gradient(r, qtb, gx, g)
    qr_rhs(r, qtb, gx, cvec)
    info[3] = loss
    info[5] = cnt[C_USED]
    if not (math.isfinite(loss) and all_finite(r) and all_finite(g) and all_finite(cvec)):
        info[0] = LM_NOT_FINITE
        info[2] = passes
        info[4] = loss
        return LM_NOT_FINITE
    mu = state[S_MU]
    nu = state[S_NU]
    try_gn = state[S_GN] != 0.0
    dscale = state[N_STATE:]
    if not mu > 0.0:
        mu = 1e-3
        nu = 2.0
        try_gn = True
        dscale[:] = 0.0
    status = LM_RUNNING
    accepted = 0
    while accepted < max_steps and status == LM_RUNNING:
        # D^2 = diag(R^T R) = diag of the Gauss-Newton matrix (Marquardt's scaling)
        hmax = 0.0
        for u in range(n_par):
            s = 0.0
            for k in range(u + 1):
                s += r[k, u] * r[k, u]
            dscale[u] = s
            hmax = max(hmax, s)
        for u in range(n_par):
            if not dscale[u] > 0.0:
                dscale[u] = max(hmax, 1.0) * 1e-12 + 1e-300
        # gradient test: max_u |g_u| / sqrt(D_u) relative to sqrt(2 loss)
        gmax = 0.0
        for u in range(n_par):
            gmax = max(gmax, abs(g[u]) / math.sqrt(dscale[u]))
        if loss == 0.0 or gmax <= gtol * math.sqrt(2.0 * loss):
            status = LM_GTOL
            break
        done = False
        # the undamped Gauss-Newton step first (the damping of the other tries also damps the
        # directions of the smallest curvature, which an ill-conditioned rational fit needs)
        gn = try_gn
        for _ in range(max_tries + int(try_gn)):
            if not lm_step(r, cvec, dscale, GN_RIDGE if gn else mu, rm, cm, a, b, step):
                if gn:
                    gn = False
                    try_gn = False
                else:
                    mu *= nu
                    nu *= 2.0
                continue
            # predicted reduction of the quadratic model ||R s + c||^2 / 2: -(c.Rs + |Rs|^2/2)
            pred = 0.0
            for u in range(n_par):
                rs = 0.0
                for v in range(u, n_par):
                    rs += r[u, v] * step[v]
                pred -= cvec[u] * rs + 0.5 * rs * rs
            # the model predicts no reduction worth another step: this one is the last (taken
            # when it does not raise the objective: near the optimum a Gauss-Newton step still
            # moves the parameters by the square root of what it gains)
            last = pred <= ftol * loss
            for jt in range(n_out):
                for k in range(n_tp):
                    th_c[jt, k] = theta2[jt, k] + step[jt * n_tp + k]
            for jq in range(n_qh):
                for k in range(n_tq1):
                    ph_c[jq, k] = phi2[jq, k] + step[n_theta + jq * n_tq1 + k]
            reg_c = qr_equations(x, d, exps, target, weight, has_w, w_const, th_c, ph_c, basis,
                                 deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode,
                                 delta, bound, kind, c, lam, inv_tau, alpha, chunk, r_c, qtb_c,
                                 gx_c, fs_c, cnt_c)
            passes += 1
            loss_c = fs_c[F_DATA] + lam * fs_c[F_REJ] + reg_c
            ok = (math.isfinite(loss_c) and loss_c < loss and cnt_c[C_USED] >= cnt[C_USED]
                  and all_finite(r_c) and all_finite(qtb_c) and all_finite(gx_c))
            if ok and last and loss - loss_c > 2.0 * pred + LAST_NOISE * loss:
                # a gain far beyond the model's prediction, at the optimum: the rounding noise
                # of the objective (P/Q near a pole), not a better fit; stay put
                ok = False
            if not ok:
                if last:
                    status = LM_FTOL
                    done = True
                    break
                if gn:
                    gn = False
                    try_gn = False
                    continue
                mu *= nu
                nu *= 2.0
                if not mu < 1e300:
                    break
                continue
            ared = loss - loss_c
            if not gn:
                rho = ared / pred if pred > 0.0 else 0.0
                mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                try_gn = mu < GN_REENABLE
            snorm = 0.0
            pnorm = 0.0
            for jt in range(n_out):
                for k in range(n_tp):
                    snorm += step[jt * n_tp + k] ** 2
                    pnorm += theta2[jt, k] ** 2
                    theta2[jt, k] = th_c[jt, k]
            for jq in range(n_qh):
                for k in range(n_tq1):
                    snorm += step[n_theta + jq * n_tq1 + k] ** 2
                    pnorm += phi2[jq, k] ** 2
                    phi2[jq, k] = ph_c[jq, k]
            r[:, :] = r_c
            qtb[:] = qtb_c
            gx[:] = gx_c
            fs[:] = fs_c
            cnt[:] = cnt_c
            qr_gradient(r, qtb, gx, g)
            qr_rhs(r, qtb, gx, cvec)
            loss = loss_c
            accepted += 1
            done = True
            if last or (ared <= ftol * (loss + ared) and pred <= ftol * (loss + ared)):
                status = LM_FTOL
            elif math.sqrt(snorm) <= xtol * (math.sqrt(pnorm) + xtol):
                status = LM_XTOL
            break
        if not done:
            status = LM_STALLED
    refined = 0
    if refine_steps > 0 and (status != LM_RUNNING or max_steps == 0):
        shifted = target.copy()
        value_corrections(x, theta2, phi2, basis, deg, scale, shift, corr)
        for i in range(shifted.shape[0]):
            for j in range(shifted.shape[1]):
                shifted[i, j] = target[i, j] - corr[i, j]
        reg = qr_equations(x, d, exps, shifted, weight, has_w, w_const, theta2, phi2, basis,
                           deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode,
                           delta, bound, kind, c, lam, inv_tau, alpha, chunk, r, qtb, gx, fs,
                           cnt)
        passes += 1
        loss = fs[F_DATA] + lam * fs[F_REJ] + reg
        if max_steps == 0:
            info[3] = loss
        used0 = cnt[C_USED]
        dref = np.zeros(n_par)
        for _ in range(refine_steps):
            if not math.isfinite(loss):
                break
            qr_rhs(r, qtb, gx, cvec)
            hmax = 0.0
            for u in range(n_par):
                s = 0.0
                for k in range(u + 1):
                    s += r[k, u] * r[k, u]
                dref[u] = s
                hmax = max(hmax, s)
            for u in range(n_par):
                if not dref[u] > 0.0:
                    dref[u] = max(hmax, 1.0) * 1e-12 + 1e-300
            if not lm_step(r, cvec, dref, GN_RIDGE, rm, cm, a, b, step):
                break
            pred = 0.0
            for u in range(n_par):
                rs = 0.0
                for v in range(u, n_par):
                    rs += r[u, v] * step[v]
                pred -= cvec[u] * rs + 0.5 * rs * rs
            if not pred > LAST_NOISE * loss:  # nothing to gain beyond rounding: no trial pass
                break
            for jt in range(n_out):
                for k in range(n_tp):
                    th_c[jt, k] = theta2[jt, k] + step[jt * n_tp + k]
            for jq in range(n_qh):
                for k in range(n_tq1):
                    ph_c[jq, k] = phi2[jq, k] + step[n_theta + jq * n_tq1 + k]
            value_corrections(x, th_c, ph_c, basis, deg, scale, shift, corr)
            for i in range(shifted.shape[0]):
                for j in range(shifted.shape[1]):
                    shifted[i, j] = target[i, j] - corr[i, j]
            reg_c = qr_equations(x, d, exps, shifted, weight, has_w, w_const, th_c, ph_c,
                                 basis, deg, scale, shift, has_eps, eps, has_policy, tau_q,
                                 tau_p, mode, delta, bound, kind, c, lam, inv_tau, alpha, chunk,
                                 r_c, qtb_c, gx_c, fs_c, cnt_c)
            passes += 1
            loss_c = fs_c[F_DATA] + lam * fs_c[F_REJ] + reg_c
            if not (math.isfinite(loss_c) and loss_c < loss and cnt_c[C_USED] >= used0
                    and all_finite(r_c) and all_finite(qtb_c) and all_finite(gx_c)):
                break
            theta2[:, :] = th_c
            phi2[:, :] = ph_c
            r[:, :] = r_c
            qtb[:] = qtb_c
            gx[:] = gx_c
            cnt[:] = cnt_c
            gain = loss - loss_c
            loss = loss_c
            refined += 1
            if gain <= ftol * loss:
                break
    info[6] = refined
    state[S_MU] = mu
    state[S_NU] = nu
    state[S_GN] = 1.0 if try_gn else 0.0
    info[0] = status
    info[1] = accepted
    info[2] = passes
    info[4] = loss
    info[5] = cnt[C_USED]
    return status


@njit(cache=True, error_model="numpy")
def irls_weights(kind, r, c, out):
    """out[i] = omega(r[i]) of :func:`~.least_squares.robust_loss` (0 for non-finite r): the
    iteratively re-weighted least-squares weights of a robust fit."""
    for i in range(r.shape[0]):
        if math.isfinite(r[i]):
            out[i] = robust_loss(kind, r[i], c)[2]
        else:
            out[i] = 0.0


@njit(cache=True, error_model="numpy")
def robust_losses(kind, r, c, out):
    """out[i] = rho(r[i]) of :func:`~.least_squares.robust_loss` (an infinite residual: inf,
    or Tukey's ceiling c²/6)."""
    for i in range(r.shape[0]):
        out[i] = robust_loss(kind, r[i], c)[0]
