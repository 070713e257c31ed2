"""Held-out residuals for any degree pair from one compiled loop (CPU).

The specialised forward of :mod:`.rational_cpu` compiles one chunk function per degree pair
(0.5–1 s each); scoring a model on a few hundred held-out points needs no vectorised inner
loops, and :func:`zeroproof_nb.fitting.fit_rational` scores up to 90 degree pairs. This loop
takes the degrees at run time and reuses the block functions the least-squares pass compiles
anyway (:func:`.least_squares_cpu.block_features`, ``denominator_block``, ``block_pq``) and the
per-point output rule (:func:`.rational.output_point`), so the held-out losses of every degree
pair cost one compilation. P and Q are sums over the basis terms (the order of the
least-squares pass), not the Horner / Clenshaw order of the forward kernels: values agree to
rounding.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .least_squares_cpu import LS_BLOCK, block_features, block_pq, denominator_block
from .rational import output_point, regularised_denominator
from .tags import REAL

__all__ = ["held_out_residuals"]


@njit(cache=True, error_model="numpy")
def held_out_residuals(x, d, exps, target, theta2, phi2, basis, deg, scale, shift, has_eps, eps,
                       has_policy, tau_q, tau_p, r):
    """r[i, j] = y_ij − target[i, j] where output (i, j) is REAL, +inf where it is not (a pole
    on a held-out point is an infinite error); float64 throughout. Arguments as the
    least-squares pass takes them: ``x`` (N, max(d, 1)), ``target`` and ``r`` (N, n_out),
    ``deg`` = max(d_p, d_q)."""
    n = x.shape[0]
    n_out, n_tp = theta2.shape
    n_qh, n_tq1 = phi2.shape
    n_f = max(n_tp, n_tq1 + 1)
    feat = np.empty((n_f, LS_BLOCK))
    qfeat = np.empty((n_tq1, LS_BLOCK))
    pb = np.empty(LS_BLOCK)
    qb = np.empty(LS_BLOCK)
    fin = np.empty(LS_BLOCK, dtype=np.bool_)
    col = np.empty(n_tp + n_tq1, dtype=np.int64)
    row = np.empty(n_f)
    table = np.empty((max(d, 1), deg + 1))
    for b0 in range(0, n, LS_BLOCK):
        m = min(LS_BLOCK, n - b0)
        block_features(x, d, exps, basis, deg, scale, shift, b0, m, n_f, feat, fin, row, table)
        denominator_block(basis, m, n_tq1, feat, qfeat)
        for j in range(n_out):
            jq = 0 if n_qh == 1 else j
            block_pq(theta2, phi2, j, jq, np.int64(0), m, feat, qfeat, col, pb, qb)
            for i in range(m):
                q = qb[i]
                if has_eps:
                    q = regularised_denominator(q, eps)
                v, tag = output_point(pb[i], q, 0.0 if fin[i] else math.nan, has_policy, tau_q,
                                      tau_p)
                r[b0 + i, j] = v - target[b0 + i, j] if tag == REAL else math.inf
