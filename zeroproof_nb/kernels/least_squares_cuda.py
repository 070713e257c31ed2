"""CUDA kernel of the Gauss-Newton pass (``@cuda.jit``, float64): J^T diag(w omega) J, the
gradient J^T w psi(r), the data loss, the rejection sum and the counts, one thread per point.

The per-point math is the CPU pass's (:mod:`.least_squares_pass_cpu`): the basis row
:func:`.basis.basis_row_1d` and denominator row :func:`.basis.denominator_row_1d`, P and Q as
the left-to-right feature sums :func:`.basis.feature_dot` / :func:`.basis.feature_denom` (the
CPU's :func:`~.least_squares_pass_cpu.block_pq` sums in the same order), the output, rule and
robust weights of :func:`.least_squares.rule_point`, and :func:`.least_squares.rejection_terms`.

Sums are deterministic for any launch: the kernel runs ``[n_tiles, TILE]`` with ``TILE`` fixed;
each thread adds its point's terms to a local row (the packed upper triangle of the matrix, then
the gradient, then the data loss and the rejection sum), each tile sums the rows in thread order
(:func:`.reduce_cuda.tile_sum_rows`) into ``partial[tile]``, and the host adds the tile rows in
tile order. The
three counts are integers (atomic adds into the tile's row: exact in any order).

1-D input only (n-D pools: the CPU pass).
"""
from __future__ import annotations

import math

from numba import cuda, float64, int64

from .basis import (
    anchor_slope,
    basis_row_1d,
    denominator_row_1d,
    feature_denom,
    feature_dot,
    mapped_point,
)
from .least_squares import rejection_terms, rule_point
from .reduce_cuda import TILE, tile_sum_rows
from .tags import REAL

#: slots after the matrix and the gradient in a tile's partial row: data loss, rejection sum
N_SUM_SLOTS = 2
#: columns of a tile's counts: used outputs, finite targets, REAL tags (the CPU's C_* order)
N_COUNTS = 3

_KERNELS: dict = {}


def n_triangle(n_par: int) -> int:
    """Entries of the packed upper triangle of an (n_par, n_par) matrix."""
    return n_par * (n_par + 1) // 2


def n_tiles(n: int) -> int:
    """Tiles of :data:`TILE` points covering ``n`` points (at least one)."""
    return max(1, (int(n) + TILE - 1) // TILE)


def normal_equations_kernel(basis: int, dp: int, dq: int, n_out: int, shared_q: bool,
                            want_h: bool):
    """The specialised kernel, launched as ``[n_tiles, TILE]``: ``(x, target, weight, has_w,
    w_const, theta2, phi2, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode, delta,
    bound, kind, c, lam, inv_tau, partial, counts)``.

    ``x`` (N,) float64; ``target`` and ``weight`` (N, n_out) float64 (``weight`` read when
    ``has_w``, else every output weighs ``w_const``); ``theta2`` (n_out, dp+1), ``phi2``
    (n_qh, dq); ``partial`` (n_tiles, n_tri + n_par + 2) float64 with the packed upper triangle
    (row-major: (u, v) for v >= u) first, written by the kernel; ``counts`` (n_tiles, 3) int64,
    zeroed by the caller. Without ``want_h`` the triangle slots stay 0.
    """
    key = (int(basis), int(dp), int(dq), int(n_out), bool(shared_q), bool(want_h))
    kernel = _KERNELS.get(key)
    if kernel is not None:
        return kernel
    BASIS, DP, DQ, NOUT, SHARED, WANT_H = key
    NTP = DP + 1
    NQH = 1 if SHARED else NOUT
    NTHETA = NOUT * NTP
    NPAR = NTHETA + NQH * DQ
    NTRI = n_triangle(NPAR) if WANT_H else 0
    NSLOT = NTRI + NPAR + N_SUM_SLOTS
    NLOC = NTP + DQ
    NF = max(NTP, DQ + 1)
    NQROW = DQ + 1
    SLOPE = anchor_slope(DQ)

    @cuda.jit
    def normal_equations(x, target, weight, has_w, w_const, theta2, phi2, scale, shift, has_eps,
                         eps, has_policy, tau_q, tau_p, mode, delta, bound, kind, c, lam,
                         inv_tau, partial, counts):
        tid = cuda.threadIdx.x
        tile = cuda.blockIdx.x
        i = tile * TILE + tid
        acc = cuda.local.array(NSLOT, float64)
        psi = cuda.local.array(NF, float64)
        qrow = cuda.local.array(NQROW, float64)
        jac = cuda.local.array(NLOC, float64)
        col = cuda.local.array(NLOC, int64)
        for s in range(NSLOT):
            acc[s] = 0.0
        if i < x.shape[0]:
            xi = x[i]
            fin = (xi - xi) == 0.0
            t = mapped_point(BASIS, xi, scale, shift) if fin else 0.0  # as the CPU pass
            basis_row_1d(BASIS, t, NF - 1, 1.0, psi, 0)
            denominator_row_1d(BASIS, psi, DQ, SLOPE, qrow)
            for j in range(NOUT):
                jq = 0 if SHARED else j
                poff = NTHETA + jq * DQ
                p = feature_dot(theta2, j, psi, NTP)
                q = feature_denom(phi2, jq, qrow, NQROW, 1.0)
                tj = target[i, j]
                wt = weight[i, j] if has_w else w_const
                q, tag, use, a, bq, drho, gwi, hw = rule_point(
                    mode, kind, fin, p, q, tj, wt, has_eps, eps, has_policy, tau_q, tau_p,
                    delta, bound, c)
                if fin and math.isfinite(tj):
                    cuda.atomic.add(counts, (tile, 1), 1)
                if tag == REAL:
                    cuda.atomic.add(counts, (tile, 2), 1)
                if use:
                    cuda.atomic.add(counts, (tile, 0), 1)
                acc[NTRI + NPAR] += drho
                for k in range(NTP):
                    jac[k] = a * psi[k]
                    col[k] = j * NTP + k
                for k in range(DQ):
                    jac[NTP + k] = bq * qrow[k + 1]
                    col[NTP + k] = poff + k
                for u in range(NLOC):
                    cu = col[u]
                    acc[NTRI + cu] += gwi * jac[u]
                    if WANT_H:
                        ju = hw * jac[u]
                        for v in range(u, NLOC):
                            cv = col[v]
                            acc[cu * NPAR - (cu * (cu - 1)) // 2 + cv - cu] += ju * jac[v]
                if lam > 0.0 and fin and math.isfinite(q):
                    pen, dpen, sq = rejection_terms(math.isfinite(tj), q, inv_tau)
                    if pen != 0.0 or dpen != 0.0:
                        acc[NTRI + NPAR + 1] += wt * pen
                        gq = lam * wt * dpen
                        for k in range(DQ):
                            acc[NTRI + poff + k] += gq * qrow[k + 1]
                        if WANT_H and sq > 0.0:
                            hq = lam * wt * sq * sq
                            for u in range(DQ):
                                hu = hq * qrow[u + 1]
                                cu = poff + u
                                for v in range(u, DQ):
                                    acc[cu * NPAR - (cu * (cu - 1)) // 2 + v - u] += \
                                        hu * qrow[v + 1]
        tile_sum_rows(acc, NSLOT, partial, tile)

    _KERNELS[key] = normal_equations
    return normal_equations
