"""CPU loops of the QR accumulation (TSQR) of the weighted Jacobian, for Levenberg-Marquardt.

Levenberg-Marquardt never forms J^T J (that squares cond J, ~1e9-1e10 for rational fits near
poles, and loses the accuracy the last steps need): :func:`qr_accumulate_chunk` adds the rows of
the Gauss-Newton pass (:mod:`.least_squares_pass_cpu`), weighted by sqrt(w omega), to a QR
factorisation (Householder, :func:`tri_update` of [R; rows] per block of ``LS_BLOCK`` points),
keeping Q^T b of the weighted residuals alongside. :func:`qr_equations` factorises chunks of
points in parallel and stacks their R factors in chunk order (TSQR), so the result is the same
bits for any number of threads.
"""
from __future__ import annotations

import math

import numpy as np
import numba
from numba import njit, prange, types

from .least_squares import rejection_terms
from .numba_internals import LazyPointer, from_address
from .least_squares_pass_cpu import (
    C_REAL,
    C_TARGET,
    C_USED,
    F_DATA,
    F_REJ,
    F_RES,
    LS_BLOCK,
    N_C,
    N_F,
    PARALLEL_MIN_CHUNKS,
    block_features,
    block_pq,
    copy_values,
    denominator_block,
    rule_block_at,
)

#: points per chunk of the QR accumulation (:func:`qr_equations`): a pool of 2*10^4 points
#: splits into enough chunks to run in parallel, and combining two R factors costs ~n^3 flops
QR_CHUNK = 2048


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
                        scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound,
                        c, lam, inv_tau, start, stop, r, qtb, gx, fs, cnt):
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
    rule_loop = rule_block_at(rule, pb)
    for b0 in range(start, stop, LS_BLOCK):
        m = min(LS_BLOCK, stop - b0)
        block_features(x, d, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table)
        denominator_block(basis, m, n_tq1, feat, qfeat)
        for j in range(n_out):
            jq = 0 if n_qh == 1 else j
            poff = n_theta + jq * n_tq1
            block_pq(theta2, phi2, j, jq, poff, m, feat, qfeat, col, pb, qb)
            nt, nr, nu, dl = rule_loop(m, b0, j, fin, pb, qb, target, weight, has_w, w_const,
                                       has_eps, eps, has_policy, tau_q, tau_p, delta, bound, c,
                                       ab, bb, gw, hwb)
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
                m2 = np.int64(0)  # not the literal 0: _flush_rows compiles for int64 only
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


# qr_chunk_partials is called through its address, compiled on its own: numba 0.68 crashes
# (segfault) when a cached function (lm_run) was compiled against a cache-loaded function that
# holds a parallel region, then loaded from the cache. The functions that call it hold none.
@njit(cache=True, parallel=True, error_model="numpy")
def qr_chunk_partials(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                      scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound,
                      c, lam, inv_tau, chunk, rp, qp, gp, fp, cp):
    """:func:`qr_accumulate_chunk` of chunk ``ci`` (``chunk`` points) into the zeroed partials
    ``rp[ci]``, ``qp[ci]``, ``gp[ci]``, ``fp[ci]``, ``cp[ci]``, chunks in parallel (the kernels
    call it through the address of :func:`qr_partials_fn`)."""
    n = x.shape[0]
    for ci in prange(qp.shape[0]):
        start = ci * chunk
        stop = min(n, start + chunk)
        qr_accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis,
                            deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule,
                            delta, bound, c, lam, inv_tau, start, stop, rp[ci], qp[ci],
                            gp[ci], fp[ci], cp[ci])


def qr_partials_signature():
    """Signature of :func:`qr_chunk_partials` as the LM kernels call it (C-contiguous writable
    float64 arrays as :func:`~zeroproof_nb.least_squares.setup_pass` makes them, the types of
    :func:`qr_equations_signature`: the block functions below are compiled once for both)."""
    f8, i8, b1 = types.float64, types.int64, types.boolean
    f2 = types.Array(f8, 2, "C")
    return types.void(
        f2, i8, types.Array(i8, 2, "C", readonly=True), f2, f2, b1, f8, f2, f2, i8, i8,
        f8, f8, b1, f8, b1, f8, f8, i8, f8, f8, f8, f8, f8, i8, types.Array(f8, 3, "C"), f2, f2,
        f2, types.Array(i8, 2, "C"),
    )


#: qr_equations calls the parallel chunk partials through this (an address, then x)
qr_partials_at = from_address(lambda dt: qr_partials_signature(),
                              "qr_chunk_partials at the address of qr_partials_fn.")

def use_parallel(n, chunk):
    """Whether :func:`qr_equations` runs the ``chunk``-point chunks of ``n`` points in parallel:
    from ``PARALLEL_MIN_CHUNKS`` chunks (below, the start-up of a parallel region costs more
    than it saves)."""
    return max(1, -(-n // chunk)) >= PARALLEL_MIN_CHUNKS


def _start_threads():
    if not numba.config.DISABLE_JIT:
        numba.get_num_threads()  # the threading layer starts before the first call


#: :func:`qr_chunk_partials` by address, compiled on first use: pools of fewer than
#: ``PARALLEL_MIN_CHUNKS`` chunks never pay for compiling its parallel region (about 6 s)
qr_partials_fn = LazyPointer(
    qr_chunk_partials, qr_partials_signature,
    "qr_chunk_partials as a FunctionPointer, compiled on first use (the threading layer "
    "started).", after_build=_start_threads)


def qr_accumulate_signature():
    """Signature of :func:`qr_accumulate_chunk` as :func:`qr_equations` calls it by address
    (the types of :func:`qr_equations_signature`; ``r`` .. ``cnt`` one chunk's rows of the
    partials)."""
    f8, i8, b1 = types.float64, types.int64, types.boolean
    f1 = types.Array(f8, 1, "C")
    f2 = types.Array(f8, 2, "C")
    return types.void(
        f2, i8, types.Array(i8, 2, "C", readonly=True), f2, f2, b1, f8, f2, f2, i8, i8, f8, f8,
        b1, f8, b1, f8, f8, i8, f8, f8, f8, f8, f8, i8, i8, f2, f1, f1, f1,
        types.Array(i8, 1, "C"),
    )


#: qr_equations calls qr_accumulate_chunk through this (an address, then x)
qr_accumulate_at = from_address(lambda dt: qr_accumulate_signature(),
                                "qr_accumulate_chunk at the address of qr_accumulate_fn.")

#: :func:`qr_accumulate_chunk` by address (compiled on first use): :func:`qr_equations` runs
#: the chunks of a small pool through it, so its code is optimised once, on its own, not again
#: inside each caller
qr_accumulate_fn = LazyPointer(qr_accumulate_chunk, qr_accumulate_signature,
                               "qr_accumulate_chunk as a FunctionPointer, compiled on first use.")


def qr_equations_signature():
    """Signature of :func:`qr_equations` (C-contiguous writable float64 arrays as
    :func:`~zeroproof_nb.least_squares.setup_pass` makes them, ``exps`` read-only), the one
    that Python callers and :func:`.lm_cpu.lm_run` (by address) share."""
    f8, i8, b1 = types.float64, types.int64, types.boolean
    f1 = types.Array(f8, 1, "C")
    f2 = types.Array(f8, 2, "C")
    return f8(
        f2, i8, types.Array(i8, 2, "C", readonly=True), f2, f2, b1, f8, f2, f2, i8, i8, f8, f8,
        b1, f8, b1, f8, f8, i8, f8, f8, f8, f8, f8, f8, i8, i8, i8, f2, f1, f1, f1,
        types.Array(i8, 1, "C"),
    )


#: lm_run calls qr_equations through this (an address, then x)
qr_equations_at = from_address(lambda dt: qr_equations_signature(),
                               "qr_equations at the address of qr_equations_fn.")

@njit(cache=True, error_model="numpy")
def qr_equations(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg, scale,
                 shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound, c, lam,
                 inv_tau, alpha, chunk, accumulate, partials, r, qtb, gx, fs, cnt):
    """The R factor ``r`` and ``qtb`` = (Q^T b)[:n] of the weighted Jacobian of all points and
    of the regulariser rows sqrt(alpha) e_u (phi parameters, rhs sqrt(alpha) phi_u), the
    gradient-only part ``gx``, ``fs`` (data loss, rejection sum, unexplained squares) and
    ``cnt``, all zeroed first; returns alpha/2 ||phi||^2.

    TSQR: each chunk of ``chunk`` points is factorised on its own (:func:`qr_accumulate_chunk`
    at the address ``accumulate`` of :func:`qr_accumulate_fn`, chunk after chunk; in parallel
    by the :func:`qr_chunk_partials` at the address ``partials`` unless it is 0, which
    :func:`use_parallel` decides), then the chunks' [R_c; Q_c^T b_c] are
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
    # one chunk too goes through the partials (qr_accumulate_chunk is then compiled for one
    # set of argument types only)
    rp = np.zeros((n_chunks, n_par, n_par))
    qp = np.zeros((n_chunks, n_par))
    gp = np.zeros((n_chunks, n_par))
    fp = np.zeros((n_chunks, N_F))
    cp = np.zeros((n_chunks, N_C), dtype=np.int64)
    if partials != 0:
        chunks_in_parallel = qr_partials_at(partials, x)
        chunks_in_parallel(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                           scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta,
                           bound, c, lam, inv_tau, chunk, rp, qp, gp, fp, cp)
    else:  # the same partials in chunk order, in this thread
        accumulate_chunk = qr_accumulate_at(accumulate, x)
        for ci in range(n_chunks):
            accumulate_chunk(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis,
                             deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule,
                             delta, bound, c, lam, inv_tau, ci * chunk, min(n, (ci + 1) * chunk),
                             rp[ci], qp[ci], gp[ci], fp[ci], cp[ci])
    a = np.empty((n_par, n_par))
    b = np.empty(n_par)
    copy_values(rp[0], r)
    copy_values(qp[0], qtb)
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



#: :func:`qr_equations` by address (compiled on first use): :func:`.lm_cpu.lm_run` calls it
#: so, and its code is optimised once, on its own, not again inside the driver
qr_equations_fn = LazyPointer(qr_equations, qr_equations_signature,
                              "qr_equations as a FunctionPointer, compiled on first use.")


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
