"""The compiled training loop: every batch of an epoch, in one call.

Per batch, in the order of :meth:`zeroproof_nb.training.trainer.Trainer.train_epoch`'s Python
loop, and with the same functions it calls: the fused loss-and-gradient pass on the batch's
pool rows (:func:`.rational.rational_grad_serial`), the φ regulariser, the optimizer step
(:mod:`.optim`), the L1 projection of φ (:func:`.rational.l1_project_rows`) and the adaptive
λ_rej rule (:func:`.policy.lambda_rule`). Bit-identical to that loop.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .optim import adam_bias_corrections, adam_update, sgd_update
from .policy import RULE_OVERFLOW, lambda_rule
from .rational import FS_DATA, FS_QMIN, FS_REJ, IS_TAG0, N_FSTATS, N_ISTATS
from .rational_cpu import l1_project_rows, rational_grad_serial, sum_squares

OPT_SGD, OPT_ADAM = 0, 1
#: float64 optimizer hyper-parameters, in this order
HYPER_LR, HYPER_BETA1, HYPER_BETA2, HYPER_EPS, HYPER_WEIGHT_DECAY, HYPER_MOMENTUM, \
    HYPER_NESTEROV = range(7)
N_HYPER = 7
#: statuses: all batches ran, or the batch that stopped on non-finite parameters / gradients
OK, THETA_NOT_FINITE, PHI_NOT_FINITE, GRAD_THETA_NOT_FINITE, GRAD_PHI_NOT_FINITE, \
    LAMBDA_OVERFLOW, STEP_NOT_FINITE = range(7)
#: int64 state of the λ policy: steps, cumulative REAL outputs, cumulative outputs
LAM_STEPS, LAM_REAL, LAM_TOTAL = range(3)


@njit(cache=True, error_model="numpy")
def _all_finite(a):
    for i in range(a.shape[0]):
        if not abs(a[i]) < math.inf:
            return False
    return True


@njit(cache=True)
def _save_buffers(save, a, b, c, d, restore):
    """Copy the four flat buffers into ``save`` (back from it when ``restore``)."""
    o = 0
    for buf in (a, b, c, d):
        m = buf.shape[0]
        if restore:
            buf[:] = save[o:o + m]
        else:
            save[o:o + m] = buf
        o += m


@njit(cache=True, error_model="numpy")
def train_batches(
    x, target, idx, offsets, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, mode, delta,
    bound, loss_kind, huber_delta, inv_tau, dtype_max, n_out, shared_q, n_tp, n_tq, d,
    forward_address, reduce_address, sums_address, alpha_phi, l1_bound, optimizer, hyper,
    step_count, buf_theta_a, buf_theta_b, buf_phi_a, buf_phi_b, lam_state, lam_counts,
    adaptive, rule, losses, tag_counts, lam_after, codes, applied, coverages,
):
    """Train on the batches ``idx[offsets[b]:offsets[b + 1]]`` (pool rows, each batch 1 to
    CHUNK rows), b = 0 .. len(offsets) − 2, updating θ and φ in place.

    Parameters
    ----------
    x ... sums_address
        As :func:`.rational.grad_kernel` takes them (``target`` the pool's (N, n_out) rows,
        ``theta``/``phi`` the (n_out, n_tp)/(n_qh, n_tq − 1) parameter arrays), without the
        per-batch ones; ``dtype_max`` the largest finite value of the computation dtype.
    alpha_phi : float, φ regulariser weight (α/2·‖φ‖² joins loss and gradient)
    l1_bound : float, φ's L1 projection bound per row (<= 0: off)
    optimizer : OPT_SGD or OPT_ADAM; ``hyper`` (N_HYPER,) float64 its settings
    step_count : int, the optimizer's steps so far
    buf_theta_a, buf_theta_b, buf_phi_a, buf_phi_b : flat optimizer buffers (Adam: exp_avg
        and exp_avg_sq of θ, then of φ; SGD: the momentum buffers of θ and φ as ``_a``)
    lam_state : (2,) float64, λ_rej and the velocity (updated in place)
    lam_counts : (3,) int64, see LAM_* (updated in place)
    adaptive : bool, run the λ rule (else λ_rej = lam_state[0] throughout)
    rule : the λ rule's configuration, :meth:`AdaptiveLambda.rule_parameters`
    losses, tag_counts (n_batches, 4), lam_after, codes, applied, coverages : per-batch
        outputs: total loss, tag counts, λ_rej after the batch's rule, the rule's code and
        change, the batch coverage

    Returns
    -------
    (batches done, status, optimizer step count)
    """
    n_batches = offsets.shape[0] - 1
    n_theta = theta.shape[0] * theta.shape[1]
    n_phi = phi.shape[0] * phi.shape[1]
    theta_flat = theta.reshape(-1)
    phi_flat = phi.reshape(-1)
    max_rows = 1
    for b in range(n_batches):
        max_rows = max(max_rows, offsets[b + 1] - offsets[b])
    val = np.empty((max_rows, n_out), dtype=theta.dtype)
    tag = np.empty((max_rows, n_out), dtype=np.uint8)
    qout = np.empty((max_rows, n_out), dtype=theta.dtype)
    pgrad = np.empty((1, n_theta + n_phi), dtype=np.float64)
    pf = np.empty((1, N_FSTATS), dtype=np.float64)
    pi = np.empty((1, N_ISTATS), dtype=np.int64)
    weight = np.empty((1, 1), dtype=np.float64)
    g_theta = np.empty(n_theta, dtype=theta.dtype)
    g_phi = np.empty(n_phi, dtype=theta.dtype)
    # scalars rounded to the parameters' dtype, as the Python optimizers pass them
    sc = np.empty(10, dtype=theta.dtype)
    sc[0] = hyper[HYPER_LR]
    sc[1] = hyper[HYPER_BETA1]
    sc[2] = 1.0 - hyper[HYPER_BETA1]
    sc[3] = hyper[HYPER_BETA2]
    sc[4] = 1.0 - hyper[HYPER_BETA2]
    sc[5] = hyper[HYPER_EPS]
    sc[6] = hyper[HYPER_WEIGHT_DECAY]
    sc[7] = hyper[HYPER_MOMENTUM]
    sc[8] = alpha_phi
    nesterov = hyper[HYPER_NESTEROV] != 0.0
    lam_floor = rule[8]
    # copies taken before each optimizer step: a step that leaves anything non-finite is undone
    # (as the Python optimizers do) and the loop stops with STEP_NOT_FINITE
    save_theta = np.empty(n_theta, dtype=theta.dtype)
    save_phi = np.empty(n_phi, dtype=theta.dtype)
    save_bufs = np.empty(buf_theta_a.shape[0] + buf_theta_b.shape[0] + buf_phi_a.shape[0]
                         + buf_phi_b.shape[0], dtype=theta.dtype)
    for b in range(n_batches):
        if not _all_finite(theta_flat):
            return b, THETA_NOT_FINITE, step_count
        if not _all_finite(phi_flat):
            return b, PHI_NOT_FINITE, step_count
        o0 = offsets[b]
        n = offsets[b + 1] - o0
        n_total = float(n * n_out)
        weight[0, 0] = 1.0 / n_total
        lam = max(lam_state[0], lam_floor) if adaptive else lam_state[0]
        pgrad[:] = 0.0
        pf[:] = 0.0
        pf[0, FS_QMIN] = np.inf
        pi[:] = 0
        rational_grad_serial(
            x, n, exps, target, weight, False, theta, phi, scale, shift, one, eps, tau_q, tau_p,
            mode, delta, bound, loss_kind, huber_delta, lam, inv_tau, dtype_max / n_total,
            val[:n], tag[:n], qout[:n], pgrad, pf, pi, n_out, shared_q, n_tp, n_tq, d,
            idx[o0:o0 + n], True, forward_address, reduce_address, sums_address,
        )
        # as the Python layer: partials + 0.0 (one chunk), gradients rounded to the dtype
        loss = (pf[0, FS_DATA] + 0.0) + lam * (pf[0, FS_REJ] + 0.0)
        for k in range(n_theta):
            g_theta[k] = pgrad[0, k] + 0.0
        for k in range(n_phi):
            g_phi[k] = pgrad[0, n_theta + k] + 0.0
        if alpha_phi != 0.0:
            loss += 0.5 * alpha_phi * sum_squares(phi_flat)
            for k in range(n_phi):
                g_phi[k] = g_phi[k] + sc[8] * phi_flat[k]
        if not _all_finite(g_theta):
            return b, GRAD_THETA_NOT_FINITE, step_count
        if not _all_finite(g_phi):
            return b, GRAD_PHI_NOT_FINITE, step_count
        save_theta[:] = theta_flat
        save_phi[:] = phi_flat
        _save_buffers(save_bufs, buf_theta_a, buf_theta_b, buf_phi_a, buf_phi_b, False)
        steps_before = step_count
        if optimizer == OPT_ADAM:
            step_count += 1
            bias1, bias2 = adam_bias_corrections(hyper[HYPER_BETA1], hyper[HYPER_BETA2],
                                                 step_count)
            sc[9] = bias1
            bias1_dt = sc[9]
            sc[9] = bias2
            bias2_dt = sc[9]
            adam_update(theta_flat, g_theta, buf_theta_a, buf_theta_b, sc[0], sc[1], sc[2],
                        sc[3], sc[4], bias1_dt, bias2_dt, sc[5], sc[6])
            adam_update(phi_flat, g_phi, buf_phi_a, buf_phi_b, sc[0], sc[1], sc[2], sc[3],
                        sc[4], bias1_dt, bias2_dt, sc[5], sc[6])
        else:
            sgd_update(theta_flat, g_theta, buf_theta_a, sc[0], sc[7], nesterov, sc[6])
            sgd_update(phi_flat, g_phi, buf_phi_a, sc[0], sc[7], nesterov, sc[6])
            step_count += 1
        if not (_all_finite(theta_flat) and _all_finite(phi_flat) and _all_finite(buf_theta_a)
                and _all_finite(buf_theta_b) and _all_finite(buf_phi_a)
                and _all_finite(buf_phi_b)):
            theta_flat[:] = save_theta
            phi_flat[:] = save_phi
            _save_buffers(save_bufs, buf_theta_a, buf_theta_b, buf_phi_a, buf_phi_b, True)
            return b, STEP_NOT_FINITE, steps_before
        if l1_bound > 0.0 and n_phi > 0:
            l1_project_rows(phi, l1_bound)
        n_real = pi[0, IS_TAG0]
        n_all = 0
        for k in range(4):
            tag_counts[b, k] = pi[0, IS_TAG0 + k]
            n_all += pi[0, IS_TAG0 + k]
        if adaptive:
            steps_new = lam_counts[LAM_STEPS] + 1
            real_new = lam_counts[LAM_REAL] + n_real
            total_new = lam_counts[LAM_TOTAL] + n_all
            batch_cov = n_real / n_all if n_all > 0 else 1.0
            cum_cov = real_new / total_new if total_new > 0 else 1.0
            new, velocity, code, change = lambda_rule(
                steps_new, batch_cov, cum_cov, lam_state[0], lam_state[1], *rule)
            if code == RULE_OVERFLOW:
                # as AdaptiveLambda.update_counts: the policy is left as before this batch
                return b, LAMBDA_OVERFLOW, step_count
            lam_counts[LAM_STEPS] = steps_new
            lam_counts[LAM_REAL] = real_new
            lam_counts[LAM_TOTAL] = total_new
            lam_state[0] = new
            lam_state[1] = velocity
            codes[b] = code
            applied[b] = change
            coverages[b] = batch_cov
        lam_after[b] = lam_state[0]
        losses[b] = loss
    return n_batches, OK, step_count
