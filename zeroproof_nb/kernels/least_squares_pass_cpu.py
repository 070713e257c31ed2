"""CPU loops of the Gauss-Newton pass (float64): the normal equations J^T J, J^T r.

:func:`accumulate_chunk` evaluates P, Q and the tag of every output of a chunk of points and
adds, for the outputs that take part (finite x, REAL output, finite target), the weighted
robust loss, the gradient J^T psi(r) and the Gauss-Newton matrix J^T diag(omega) J (upper
triangle) of the data term, then the rejection term and its Gauss-Newton curvature
(:func:`normal_equations`, the public ``rational_normal_equations``). The block functions
(:func:`block_features`, :func:`block_pq`, the rule loops of :func:`rule_block_fn`, ...) are
shared with the QR accumulation of :mod:`.least_squares_qr_cpu`; :mod:`.least_squares_cpu`
re-exports everything.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types

from .basis import CHEBYSHEV_ANCHORED, MONOMIAL, anchor_slope, basis_row_nd, mapped_point
from .least_squares import rejection_terms, robust_loss, rule_point
from .numba_internals import from_address, jit_unique, memoised_pointer
from .tags import REAL

# per-chunk float and count partials
F_DATA, F_REJ, F_RES = 0, 1, 2
N_F = 3
C_USED, C_TARGET, C_REAL = 0, 1, 2
N_C = 3

#: points per block of :func:`accumulate_chunk` (its Jacobian buffer stays in L1/L2)
LS_BLOCK = 256
#: points per parallel chunk (fixed: the sums do not depend on the thread count); smaller than
#: ``tags.CHUNK`` so that pools of a few 10^4 points still split evenly over threads
LS_CHUNK = 4096
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
        tj = target[b0 + i, j]
        wt = weight[b0 + i, j] if has_w else w_const
        q, tag, use, a, bq, drho, gwi, hw = rule_point(
            MODE, KIND, fin[i], pb[i], qb[i], tj, wt, has_eps, eps, has_policy, tau_q, tau_p,
            delta, bound, c)
        if has_eps:
            qb[i] = q
        n_target += fin[i] and math.isfinite(tj)
        n_real += tag == REAL
        n_used += use
        data += drho
        ab[i] = a
        bb[i] = bq
        gw[i] = gwi
        hwb[i] = hw
    return n_target, n_real, n_used, data


def rule_block_signature():
    """Signature of a rule loop (:func:`rule_block_fn`): ``(m, b0, j, fin, pb, qb, target,
    weight, has_w, w_const, has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c, ab, bb,
    gw, hwb) -> (n_target, n_real, n_used, data)``; target and weight any 2-D float64 layout."""
    i8, b1, f8 = types.int64, types.boolean, types.float64
    f1 = types.Array(f8, 1, "C")
    f2 = types.Array(f8, 2, "A", readonly=True)
    fin = types.Array(b1, 1, "C")
    return types.Tuple((i8, i8, i8, f8))(i8, i8, i8, fin, f1, f1, f2, f2, b1, f8, b1, f8, b1,
                                        f8, f8, f8, f8, f8, f1, f1, f1, f1)


#: the kernels call a rule loop through this (its address, then any float64 array)
rule_block_at = from_address(lambda dt: rule_block_signature(),
                             "The rule loop at an address of rule_block_fn.")

_RULE_BLOCKS: dict = {}


def rule_block_fn(mode, kind):
    """The rule loop of gradient rule ``mode`` and loss ``kind`` as a
    :class:`.numba_internals.FunctionPointer` (compiled on first use; the kernels take its
    ``address``).

    Per point of a block of head ``j``: the output and its tag (``rational.output_point``),
    the Jacobian coefficients dy/dP, dy/dQ into ``ab``, ``bb`` and the robust-loss weights
    w psi and w omega into ``gw``, ``hwb`` (0 for outputs that do not take part); returns the
    block's (finite targets, REAL tags, used outputs, data loss). Mode and loss are constants to
    the compiler (half the time per point of a loop that reads them at run time), and only the
    loops that are used get compiled (each about a second): the kernels that call one are
    compiled once for all nine."""
    key = (int(mode), int(kind))
    return memoised_pointer(_RULE_BLOCKS, key, rule_block_signature,
                            lambda sig: _build_rule_block(*key, sig))


def _build_rule_block(MODE, KIND, sig):
    def rule_block(m, b0, j, fin, pb, qb, target, weight, has_w, w_const, has_eps, eps,
                   has_policy, tau_q, tau_p, delta, bound, c, ab, bb, gw, hwb):
        return _rule_loop(MODE, KIND, m, b0, j, fin, pb, qb, target, weight, has_w, w_const,
                          has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c, ab, bb, gw,
                          hwb)

    return jit_unique(rule_block, (MODE, KIND), sig, cache=True, error_model="numpy")


@njit(cache=True, error_model="numpy")
def block_features(x, d, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table):
    """feat[k, i] = psi_k of point b0 + i (k < n_f, i < m), fin[i] = the point is finite.
    A non-finite point gets the features of t = 0 (it takes no part, and its Jacobian
    coefficients, 0, times NaN features would put NaN into every sum).

    1-D: the recurrences run over k with the points innermost (unit stride: they vectorise);
    n-D: :func:`~.basis.basis_row_nd` per point into ``row``, copied into the column."""
    if d == 0:
        for i in range(m):
            t = x[b0 + i, 0]
            fin[i] = (t - t) == 0.0
            t = mapped_point(basis, t, scale, shift)
            feat[0, i] = 1.0
            if n_f > 1:
                feat[1, i] = t if fin[i] else 0.0  # no NaN features: 0 * NaN is NaN
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
            feat[k, i] = row[k] if fin[i] else 0.0


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
                     scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound,
                     c, lam, inv_tau, start, stop, want_h, h, g, fs, cnt):
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
    rule_loop = rule_block_at(rule, pb)
    for b0 in range(start, stop, LS_BLOCK):
        m = min(LS_BLOCK, stop - b0)
        block_features(x, d, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table)
        denominator_block(basis, m, n_tq1, feat, qfeat)
        for j in range(n_out):
            jq = 0 if n_qh == 1 else j
            poff = n_theta + jq * n_tq1
            block_pq(theta2, phi2, j, jq, poff, m, feat, qfeat, col, pb, qb)
            # the per-point rule (the loop of the gradient rule and loss: rule_block_fn)
            nt, nr, nu, dl = rule_loop(m, b0, j, fin, pb, qb, target, weight, has_w, w_const,
                                       has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c,
                                       ab, bb, gw, hwb)
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
                   shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound, c,
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
                         scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta,
                         bound, c, lam, inv_tau, start, stop, want_h,
                         hp[ci], gp[ci], fp[ci], cp[ci])


@njit(cache=True, error_model="numpy")
def normal_equations(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                     scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound,
                     c, lam, inv_tau, want_h, h, g, fs, cnt):
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
                         scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta,
                         bound, c, lam, inv_tau, 0, n, want_h, h, g, fs, cnt)
    else:
        hp = np.zeros((n_chunks, n_par, n_par)) if want_h else np.zeros((n_chunks, 1, 1))
        gp = np.zeros((n_chunks, n_par))
        fp = np.zeros((n_chunks, N_F))
        cp = np.zeros((n_chunks, N_C), dtype=np.int64)
        if n_chunks >= PARALLEL_MIN_CHUNKS:
            chunk_partials(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis,
                           deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule,
                           delta, bound, c, lam, inv_tau, want_h, hp, gp, fp, cp)
        else:  # the same partials, serially: a few chunks do not pay for a parallel region
            for ci in range(n_chunks):
                accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2,
                                 basis, deg, scale, shift, has_eps, eps, has_policy, tau_q,
                                 tau_p, rule, delta, bound, c, lam, inv_tau,
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

@njit(cache=True)
def copy_values(src, dst):
    """dst = src element by element (C-contiguous arrays of one size, any shape): a copy
    without the broadcasting checks of ``dst[:] = src``, whose error message formatting
    costs seconds of compilation."""
    s = src.reshape(src.size)
    t = dst.reshape(dst.size)
    for i in range(s.shape[0]):
        t[i] = s[i]


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
