"""The Levenberg-Marquardt driver on the CPU (float64): :func:`lm_run`, the whole iteration in
one call.

Each step solves the damped problem min ||R s + c||^2 + mu ||D s||^2 from the QR factorisation
of [R; sqrt(mu) D] (as MINPACK does; D^2 = diag(R^T R), Marquardt's scaling; R from
:func:`.least_squares_qr_cpu.qr_equations`), evaluates the candidate (one more pass, which also
gives its R), accepts it when the objective falls and no output that took part became non-REAL,
and adapts mu (Nielsen's rule). Each step first tries the Gauss-Newton step (a ridge of
``GN_RIDGE`` D, far below rounding): damping also damps the directions of smallest curvature,
so that damped steps crawl where Gauss-Newton converges in a few steps; after a failed
Gauss-Newton try, steps are damped until mu falls below ``GN_REENABLE``. The parameter layout
is ``[theta2.ravel(), phi2.ravel()]``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .compensated import rational_point_dd
from .numba_internals import LazyPointer, from_address
from .least_squares_pass_cpu import (
    C_USED,
    F_DATA,
    F_REJ,
    LS_BLOCK,
    N_C,
    N_F,
    all_finite,
    copy_values,
    block_features,
    block_pq,
    denominator_block,
)
from .rational import output_point
from .tags import REAL
from .least_squares_qr_cpu import qr_equations_at, qr_gradient, qr_rhs, tri_update

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
def value_corrections(x, exps, theta2, phi2, basis, deg, scale, shift, out):
    """out[i, j] = P/Q (double-double, rounded) minus the float64 value that the pass of
    this module computes for output ``j`` of point ``i`` (1-D points, no tag
    policy, no Q regularisation); 0 where that output is not REAL, and where the float64
    value is well conditioned: sum |terms of P| / |P| + sum |terms of Q| / |Q| below
    ``COMPENSATE_CONDITION`` (an error below ~1e-14 relative; only points near a pole or a
    zero need the double-double value). Blocks of ``LS_BLOCK`` points, serially (the
    refinement of :func:`lm_run` calls it; a parallel region could not be cached with its
    caller). ``exps`` is the pass's read-only exponent table (not read for 1-D points; passed
    so that the block functions keep the one signature the pass compiles)."""
    n = x.shape[0]
    n_out, n_tp = theta2.shape
    n_qh, n_tq1 = phi2.shape
    n_f = max(n_tp, n_tq1 + 1)
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
        block_features(x, np.int64(0), exps, basis, deg, scale, shift, b0, m, n_f, feat, fin,
                       row, table)
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
def marquardt_scale(r, dscale):
    """dscale = diag(R^T R), the diagonal of the Gauss-Newton matrix (Marquardt's scaling),
    with zero entries raised to 1e-12 of the largest (at least 1) plus 1e-300."""
    n_par = dscale.shape[0]
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


@njit(cache=True, error_model="numpy")
def predicted_reduction(r, cvec, step):
    """The reduction of the quadratic model ||R s + c||^2 / 2 that ``step`` predicts:
    -(c.Rs + |Rs|^2/2)."""
    n_par = cvec.shape[0]
    pred = 0.0
    for u in range(n_par):
        rs = 0.0
        for v in range(u, n_par):
            rs += r[u, v] * step[v]
        pred -= cvec[u] * rs + 0.5 * rs * rs
    return pred


@njit(cache=True, error_model="numpy")
def candidate(theta2, phi2, step, th_c, ph_c):
    """th_c, ph_c = theta2, phi2 + step (parameter layout [theta2.ravel(), phi2.ravel()])."""
    n_out, n_tp = theta2.shape
    n_qh, n_tq1 = phi2.shape
    n_theta = n_out * n_tp
    for jt in range(n_out):
        for k in range(n_tp):
            th_c[jt, k] = theta2[jt, k] + step[jt * n_tp + k]
    for jq in range(n_qh):
        for k in range(n_tq1):
            ph_c[jq, k] = phi2[jq, k] + step[n_theta + jq * n_tq1 + k]


@njit(cache=True, error_model="numpy")
def corrected_targets(x, exps, theta2, phi2, basis, deg, scale, shift, target, corr, shifted):
    """shifted = target - corr, corr from :func:`value_corrections` at (theta2, phi2): the
    targets whose residuals v - shifted are the double-double residuals rounded once."""
    value_corrections(x, exps, theta2, phi2, basis, deg, scale, shift, corr)
    for i in range(shifted.shape[0]):
        for j in range(shifted.shape[1]):
            shifted[i, j] = target[i, j] - corr[i, j]


def corrected_targets_signature():
    """Signature of :func:`corrected_targets` as :func:`lm_run` calls it (C-contiguous writable
    float64 arrays)."""
    f8, i8 = types.float64, types.int64
    f2 = types.Array(f8, 2, "C")
    return types.void(f2, types.Array(i8, 2, "C", readonly=True), f2, f2, i8, i8, f8, f8, f2, f2,
                      f2)


#: lm_run calls corrected_targets through this (an address, then x)
corrected_targets_at = from_address(lambda dt: corrected_targets_signature(),
                                    "corrected_targets at the address of corrected_targets_fn.")

#: :func:`corrected_targets` by address, compiled on first use: runs without refinement never
#: compile the double-double evaluation
corrected_targets_fn = LazyPointer(corrected_targets, corrected_targets_signature,
                                   "corrected_targets as a FunctionPointer, compiled on first "
                                   "use.")


@njit(cache=True, error_model="numpy")
def lm_run(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg, scale, shift,
           has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound, c, lam, inv_tau,
           alpha, chunk, accumulate, partials, qr, state, max_steps, max_tries, ftol, xtol,
           gtol, refine_steps, refine, corr, info):
    """Up to ``max_steps`` accepted Levenberg-Marquardt steps on ``theta2``, ``phi2`` (float64,
    updated in place), each solved from the QR factorisation of the weighted Jacobian
    (:func:`.least_squares_qr_cpu.qr_equations` at the address ``qr`` of ``qr_equations_fn``,
    with ``chunk`` points per chunk, chunk after chunk by the ``qr_accumulate_fn`` at the
    address ``accumulate`` or in parallel by the ``qr_partials_fn`` at ``partials`` unless it
    is 0; then :func:`lm_step`). ``state`` = [mu, nu, gn, D_1 .. D_n] carries
    the damping between calls (mu <= 0: start afresh).
    ``info`` (float64, 7) receives: status, accepted steps, passes over the data, objective
    before, objective after, used outputs, refinement steps. Returns the status code.

    Refinement (``refine_steps`` > 0 and ``refine`` the address of :func:`corrected_targets_fn`;
    1-D points without tag policy or Q regularisation; at the end of a converged run, or from
    the start when ``max_steps`` is 0): up to
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
    qr_equations = qr_equations_at(qr, x)
    reg = qr_equations(x, d, exps, target, weight, has_w, w_const, theta2, phi2, basis, deg,
                       scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule, delta, bound,
                       c, lam, inv_tau, alpha, chunk, accumulate, partials, r, qtb, gx, fs, cnt)
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
        marquardt_scale(r, dscale)  # D^2 = diag(R^T R)
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
            pred = predicted_reduction(r, cvec, step)
            # the model predicts no reduction worth another step: this one is the last (taken
            # when it does not raise the objective: near the optimum a Gauss-Newton step still
            # moves the parameters by the square root of what it gains)
            last = pred <= ftol * loss
            candidate(theta2, phi2, step, th_c, ph_c)
            reg_c = qr_equations(x, d, exps, target, weight, has_w, w_const, th_c, ph_c, basis,
                                 deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule,
                                 delta, bound, c, lam, inv_tau, alpha, chunk, accumulate,
                                 partials, r_c, qtb_c, gx_c, fs_c, cnt_c)
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
            copy_values(r_c, r)
            copy_values(qtb_c, qtb)
            copy_values(gx_c, gx)
            copy_values(fs_c, fs)
            copy_values(cnt_c, cnt)
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
    if refine_steps > 0 and refine != 0 and (status != LM_RUNNING or max_steps == 0):
        corrected_targets = corrected_targets_at(refine, x)
        shifted = np.empty_like(target)
        corrected_targets(x, exps, theta2, phi2, basis, deg, scale, shift, target, corr,
                          shifted)
        reg = qr_equations(x, d, exps, shifted, weight, has_w, w_const, theta2, phi2, basis,
                           deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, rule,
                           delta, bound, c, lam, inv_tau, alpha, chunk, accumulate, partials,
                           r, qtb, gx, fs, cnt)
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
            marquardt_scale(r, dref)
            if not lm_step(r, cvec, dref, GN_RIDGE, rm, cm, a, b, step):
                break
            if not predicted_reduction(r, cvec, step) > LAST_NOISE * loss:
                break  # nothing to gain beyond rounding: no trial pass
            candidate(theta2, phi2, step, th_c, ph_c)
            corrected_targets(x, exps, th_c, ph_c, basis, deg, scale, shift, target, corr, shifted)
            reg_c = qr_equations(x, d, exps, shifted, weight, has_w, w_const, th_c, ph_c,
                                 basis, deg, scale, shift, has_eps, eps, has_policy, tau_q,
                                 tau_p, rule, delta, bound, c, lam, inv_tau, alpha, chunk,
                                 accumulate, partials,
                                 r_c, qtb_c, gx_c, fs_c, cnt_c)
            passes += 1
            loss_c = fs_c[F_DATA] + lam * fs_c[F_REJ] + reg_c
            if not (math.isfinite(loss_c) and loss_c < loss and cnt_c[C_USED] >= used0
                    and all_finite(r_c) and all_finite(qtb_c) and all_finite(gx_c)):
                break
            copy_values(th_c, theta2)
            copy_values(ph_c, phi2)
            copy_values(r_c, r)
            copy_values(qtb_c, qtb)
            copy_values(gx_c, gx)
            copy_values(cnt_c, cnt)
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
