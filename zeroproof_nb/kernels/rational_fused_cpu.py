"""Rational kernels, CPU loops: the block functions of the fused loss-and-gradient pass.

The degree- and dtype-independent block reduction (:func:`block_reduce_fn`, one variant per
gradient rule and loss: losses, gradient rules, overflow guard, tag counts and |Q| statistics),
the specialised gradient sums (:func:`grad_sums_fn`), the gather of pool rows, the in-order
combination of chunk partials, and the layer's phi regulariser helpers. The generic
``prange`` kernels that call them through function pointers, and the forward kernels, are in
:mod:`.rational_cpu` (which re-exports the names here); the per-point math in :mod:`.rational`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .basis import CHEBYSHEV_ANCHORED, MONOMIAL, anchor_slope, n_terms
from .numba_internals import (
    NO_NRT,
    bits_float,
    float_bits,
    jit_unique,
    memoised_pointer,
    tuple_setitem,
)
from .rational import (
    FS_DATA,
    FS_QMIN,
    FS_REJ,
    FS_SUMQ,
    FUSED_BLOCK,
    FUSED_BLOCK_WORDS,
    IS_FINQ,
    IS_MR,
    IS_NEAR,
    IS_OVERFLOW,
    IS_SAT,
    IS_TAG0,
    LOSS_TUKEY,
    backward_point,
    guard_coefficients,
)
from .tags import NINF, PINF, REAL

#: options of the small helpers
JIT_OPTS = dict(error_model="numpy")
# functions called once per block with many array arguments and no allocation: compiled without
# the NRT (numba would otherwise update the reference count of every array argument, and of every
# slice, with atomic operations on each call -- shared cache lines between threads)
BLOCK_OPTS_STRICT = dict(error_model="numpy", **NO_NRT)
BLOCK_OPTS = dict(BLOCK_OPTS_STRICT, fastmath={"reassoc"})

_U8_REAL = np.uint8(REAL)
_U8_PINF = np.uint8(PINF)
_U8_NINF = np.uint8(NINF)


# ----------------------------------------------------------------------------------------------
# block functions: not specialised (compiled once per dtype, shared by every kernel). The ones
# with reassoc may sum in any order LLVM picks for the compiled code (fixed, so deterministic).


_ABS_BITS = np.int64(0x7FFFFFFFFFFFFFFF)  # clears the sign bit of a float64 bit pattern
_INF_BITS = np.int64(0x7FF0000000000000)  # bit pattern of +inf


@njit(inline="always", fastmath={"reassoc"}, error_model="numpy")
def _block_backward_mode(
    mode, has_rej, m, j, tags, q, y, target, w, delta, bound, loss_kind, huber_delta, lam,
    inv_tau, glim, bnd, c_p, c_q, tukey=False,
):
    data = 0.0
    rej = 0.0
    s_cp = 0.0
    s_q = 0.0
    # counts packed in 16-bit fields of int64 accumulators (m < 2**16): fewer vector
    # instructions than one accumulator per count
    n_rule = 0  # 16-bit fields: Mask-REAL, Saturating, overflow-masked
    n_tag = 0  # 16-bit fields: REAL, PINF, NINF
    n_fin = 0
    n_near = 0
    q_min_bits = _INF_BITS
    for i in range(m):
        tg = tags[j, i]
        qi = q[j, i]
        cp, cq, l, r, dec = backward_point(
            bnd[i] == bnd[i], tg, qi, y[j, i], target[i], w[i], mode, delta, bound,
            loss_kind, huber_delta, has_rej, lam, inv_tau, tukey,
        )
        cp, cq, over = guard_coefficients(cp, cq, bnd[i], glim)
        c_p[j, i] = cp
        c_q[j, i] = cq
        s_cp += cp
        data += l
        rej += r
        n_rule += np.int64(dec == 1) + (np.int64(dec == 2) << 16) + (np.int64(over) << 32)
        n_tag += np.int64(tg == _U8_REAL) + (np.int64(tg == _U8_PINF) << 16) + (np.int64(tg == _U8_NINF) << 32)
        # |Q| statistics: finite sum and count, near-pole count, and the exact minimum as the
        # integer minimum of the bit patterns of |Q| (they order like the values; NaN patterns
        # lie above +inf's, so a NaN never wins over a finite value)
        a = abs(qi)
        fin = a < np.inf
        s_q += a if fin else 0.0
        n_fin += fin
        n_near += a <= delta
        bits = float_bits(qi) & _ABS_BITS
        q_min_bits = bits if bits < q_min_bits else q_min_bits
    # packed counts returned as they are: unpacking them here (shifts of the accumulators)
    # keeps LLVM from vectorising the loop
    return data, rej, s_cp, s_q, n_rule, n_tag, n_fin, n_near, q_min_bits


@njit(**JIT_OPTS)
def unpack_counts(packed):
    """The three 16-bit fields (low first) of a packed count of the block reduction's loop."""
    field = np.int64(0xFFFF)
    return packed & field, (packed >> 16) & field, (packed >> 32) & field


@njit(cache=True, **BLOCK_OPTS)
def block_dot(a, ja, f, k, m):
    """sum_{i<m} a[ja, i]*f[k, i] (float64)."""
    s = 0.0
    for i in range(m):
        s += a[ja, i] * f[k, i]
    return s


@njit(cache=True, **BLOCK_OPTS)
def block_dot2(a, b, j, f, k, m):
    """(sum_{i<m} a[j, i]*f[k, i], sum_{i<m} b[j, i]*f[k, i]) in one pass over f (float64)."""
    sa = 0.0
    sb = 0.0
    for i in range(m):
        fi = f[k, i]
        sa += a[j, i] * fi
        sb += b[j, i] * fi
    return sa, sb



@njit(cache=True, **JIT_OPTS)
def sums_in_registers(d, dp, dq, n_out):
    """Whether the gradient sums of a specialisation are accumulated in registers from psi_1
    (1-D and few sums: LLVM unrolls the loops over heads and degrees, and the point loop
    vectorises) or read from all the feature rows the block forward writes (n-D, or more sums:
    without full unrolling the register sums would go through memory)."""
    return d == 0 and n_out * max(dp, dq) <= 8


@njit(cache=True, **JIT_OPTS)
def fused_block_size(n, n_out, n_tp, n_tq, d):
    """Points per block of the fused pass: block buffers of about FUSED_BLOCK_WORDS float64
    (they stay in L2), at most FUSED_BLOCK, a multiple of 256 (fewer blocks: fewer calls)."""
    n_feat = max(n_tp, n_tq)
    rows = 1 if sums_in_registers(d, n_tp - 1, n_tq - 1, n_out) else n_feat - 1
    words = 4 * n_out + 1 + rows  # y, Q, c_p, c_q (and a tag byte) per head, bound, features
    bs = max(256, min(FUSED_BLOCK, FUSED_BLOCK_WORDS // words // 256 * 256))
    return min(n, bs)


def grad_sums_signature():
    """Explicit signature of the specialised gradient sums: ``(m, c, cpb, cqb, feat, pgrad)
    -> None`` (all arrays float64; the same for every computation dtype)."""
    f2 = types.Array(types.float64, 2, "C")
    return types.void(types.int64, types.int64, f2, f2, f2, f2)


_GRAD_SUMS: dict = {}


def grad_sums_fn(basis, dp, dq, d, n_out, shared_q):
    """Specialised gradient sums of the fused pass, compiled eagerly (cached).

    For points 0..m-1 of the block it adds theta[j, k] += sum_i cpb[j, i] psi_k(x_i) and
    phi[jq, k-1] += sum_i cqb[j, i] psi_k(x_i) for k >= 1 to row ``c`` of ``pgrad`` (the
    partials layout of :func:`grad_kernel`). In 1-D with few sums (:func:`sums_in_registers`)
    psi_k is built from psi_1 = ``feat[1]`` (the mapped x, 0 for non-finite x and where the
    bound on |psi_k| overflows) with the degrees known at compile time, so the point loop
    vectorises with one register accumulator per sum and the block forward writes one feature
    row only; otherwise the sums run over all the feature rows of the block forward.
    """
    key = (basis, dp, dq, d, n_out, shared_q)
    return memoised_pointer(_GRAD_SUMS, key, grad_sums_signature, lambda sig: _build_grad_sums(
        int(basis), int(dp), int(dq), int(d), int(n_out), bool(shared_q), sig))


def _build_grad_sums(BASIS, DP, DQ, D, NOUT, SHARED, sig):
    key = (BASIS, DP, DQ, D, NOUT, SHARED)
    NTP = DP + 1 if D == 0 else n_terms(D, DP)
    NTQ = DQ + 1 if D == 0 else n_terms(D, DQ)
    NTMAX = max(NTP, NTQ)
    NQH = 1 if SHARED else NOUT
    NTHETA = NOUT * NTP
    ANCHORED = BASIS == CHEBYSHEV_ANCHORED
    SLOPE = anchor_slope(DQ)
    if sums_in_registers(D, DP, DQ, NOUT):
        # accumulators: tuples (registers once LLVM unrolls the loops over heads and degrees);
        # slot 0 of each head is unused (theta[j, 0] is summed by block_reduce)
        zeros_p = (0.0,) * (NOUT * NTP)
        zeros_q = (0.0,) * (NQH * NTQ)

        def grad_sums_1d(m, c, cpb, cqb, feat, pgrad):
            sp = zeros_p
            sq = zeros_q
            for ii in range(m):
                psi1 = feat[1, ii]
                psi_prev = 1.0
                psi = psi1
                # anchored: the denominator feature eta_k = m(t) T_{k-1}(t) (m = 1 where
                # psi_1 was zeroed: those points have zero coefficients)
                m_anchor = 1.0 + SLOPE * psi1
                for k in range(1, NTMAX):
                    if k >= 2:  # psi_k from psi_{k-1}, psi_{k-2} (as basis_row_1d)
                        if BASIS == MONOMIAL:
                            psi_next = psi * psi1
                        else:
                            psi_next = 2.0 * psi1 * psi - psi_prev
                        psi_prev = psi
                        psi = psi_next
                    for j in range(NOUT):
                        if k < NTP:
                            ip = j * NTP + k
                            sp = tuple_setitem(sp, ip, sp[ip] + cpb[j, ii] * psi)
                        if k < NTQ:
                            iq = (0 if SHARED else j) * NTQ + k
                            eta = m_anchor * psi_prev if ANCHORED else psi
                            sq = tuple_setitem(sq, iq, sq[iq] + cqb[j, ii] * eta)
            for j in range(NOUT):
                for k in range(1, NTP):
                    pgrad[c, j * NTP + k] += sp[j * NTP + k]
            for jq in range(NQH):
                for k in range(1, NTQ):
                    pgrad[c, NTHETA + jq * (NTQ - 1) + k - 1] += sq[jq * NTQ + k]

        return jit_unique(grad_sums_1d, key, sig, cache=True, **BLOCK_OPTS)

    def grad_sums_rows(m, c, cpb, cqb, feat, pgrad):
        if ANCHORED:
            # eta_k = m(t) T_{k-1}(t): c_q scaled by m in place (not read afterwards), then the
            # sums over the rows k-1 (row 0, T_0 = 1, is not written: a plain sum)
            for j in range(NOUT):
                for ii in range(m):
                    cqb[j, ii] *= 1.0 + SLOPE * feat[1, ii]
            for j in range(NOUT):
                for k in range(1, NTP):
                    pgrad[c, j * NTP + k] += block_dot(cpb, j, feat, k, m)
            for j in range(NOUT):
                jq = 0 if SHARED else j
                for k in range(1, NTQ):
                    if k == 1:
                        s_q = 0.0
                        for ii in range(m):
                            s_q += cqb[j, ii]
                    else:
                        s_q = block_dot(cqb, j, feat, k - 1, m)
                    pgrad[c, NTHETA + jq * (NTQ - 1) + k - 1] += s_q
            return
        for k in range(1, NTMAX):
            for j in range(NOUT):
                jq = 0 if SHARED else j
                if k < NTP and k < NTQ:
                    s_p, s_q = block_dot2(cpb, cqb, j, feat, k, m)
                    pgrad[c, j * NTP + k] += s_p
                    pgrad[c, NTHETA + jq * (NTQ - 1) + k - 1] += s_q
                elif k < NTP:
                    pgrad[c, j * NTP + k] += block_dot(cpb, j, feat, k, m)
                else:
                    pgrad[c, NTHETA + jq * (NTQ - 1) + k - 1] += block_dot(cqb, j, feat, k, m)

    return jit_unique(grad_sums_rows, key, sig, cache=True, **BLOCK_OPTS)


def _build_block_reduce(MODE, TUKEY, sig):
    def block_reduce(
        c, b0, m, n_out, shared_q, n_tp, n_tq, fin, tb, pb, qb, yb, target, weight, has_weight,
        wconst, mode, delta, bound, loss_kind, huber_delta, lam, inv_tau, glim, bnd, cpb, cqb,
        feat, scratch, pgrad, pf, pi,
    ):
        n_qh = 1 if shared_q else n_out
        for j in range(n_out):
            ws = weight[j, b0:b0 + m] if has_weight else wconst
            tj = target[j, b0:b0 + m]
            # the loop of this variant (MODE and TUKEY are constants: numba types no other)
            if TUKEY == 1:
                out = _block_backward_mode(
                    mode, lam > 0.0, m, j, tb, qb, yb, tj, ws, delta, bound, loss_kind,
                    huber_delta, lam, inv_tau, glim, bnd, cpb, cqb, True,
                )
            elif lam > 0.0:
                out = _block_backward_mode(
                    MODE, True, m, j, tb, qb, yb, tj, ws, delta, bound, loss_kind, huber_delta,
                    lam, inv_tau, glim, bnd, cpb, cqb,
                )
            else:
                out = _block_backward_mode(
                    MODE, False, m, j, tb, qb, yb, tj, ws, delta, bound, loss_kind,
                    huber_delta, 0.0, inv_tau, glim, bnd, cpb, cqb,
                )
            d_sum, r_sum, s_cp, s_q, rule_counts, tag_counts, n_fin, n_near, q_min_bits = out
            n_mr, n_sat, n_over = unpack_counts(rule_counts)
            n_r, n_p, n_n = unpack_counts(tag_counts)
            pf[c, FS_DATA] += d_sum
            pf[c, FS_REJ] += r_sum
            pi[c, IS_SAT] += n_sat
            pi[c, IS_MR] += n_mr
            pi[c, IS_OVERFLOW] += n_over
            pi[c, IS_TAG0] += n_r
            pi[c, IS_TAG0 + 1] += n_p
            pi[c, IS_TAG0 + 2] += n_n
            pi[c, IS_TAG0 + 3] += m - n_r - n_p - n_n
            pgrad[c, j * n_tp] += s_cp
            if j < n_qh:
                pf[c, FS_SUMQ] += s_q
                pf[c, FS_QMIN] = min(pf[c, FS_QMIN], bits_float(min(q_min_bits, _INF_BITS)))
                pi[c, IS_FINQ] += n_fin
                pi[c, IS_NEAR] += n_near

    return jit_unique(block_reduce, (MODE, TUKEY), sig, cache=True, **BLOCK_OPTS)


@njit(**JIT_OPTS)
def gather_block(x, target, weight, has_weight, idx, b0, m, dx, xg, tg, wg):
    """Rows idx[b0:b0+m] of the pool: x (flat, dx values per point) into xg, the (N_pool, n_out)
    target (and weight, when given) rows into the head-major block buffers tg (and wg)."""
    n_out = tg.shape[0]
    if dx == 1 and n_out == 1 and not has_weight:  # the common case: one tight loop
        t0 = tg[0]
        t1 = target[:, 0]
        for ii in range(m):
            r = idx[b0 + ii]
            xg[ii] = x[r]
            t0[ii] = t1[r]
        return
    for ii in range(m):
        r = idx[b0 + ii]
        for jd in range(dx):
            xg[ii * dx + jd] = x[r * dx + jd]
        for j in range(n_out):
            tg[j, ii] = target[r, j]
            if has_weight:
                wg[j, ii] = weight[r, j]



def reduce_signature():
    f1 = types.Array(types.float64, 1, "C")
    f2 = types.Array(types.float64, 2, "C")
    u1 = types.Array(types.uint8, 1, "C")
    u2 = types.Array(types.uint8, 2, "C")
    i2 = types.Array(types.int64, 2, "C")
    i8, b1, d = types.int64, types.boolean, types.float64
    return types.void(
        i8, i8, i8, i8, b1, i8, i8, u1, u2, f2, f2, f2, f2, f2, b1, f1, i8, d, d, i8, d, d, d, d,
        f1, f2, f2, f2, f1, f2, f2, i2,
    )



_BLOCK_REDUCES: dict = {}


def block_reduce_fn(mode, loss_kind):
    """The degree- and dtype-independent part of the fused pass for block [b0, b0+m) of chunk
    c, for gradient rule ``mode`` and loss ``loss_kind``, as a
    :class:`.numba_internals.FunctionPointer` (compiled on first use).

    Per head: :func:`backward_point` and :func:`guard_coefficients` over the block (the
    coefficients c_p, c_q into ``cpb[j, i]``, ``cqb[j, i]``), the losses, tag counts, |Q|
    statistics of each distinct Q evaluation, and the gradient of theta[j, 0] (sum_i c_p, as
    psi_0 = 1), added to row c of the partials; the gradient sums for k >= 1 follow in the
    specialised :func:`grad_sums_fn`. It reads the head-major block buffers ``tb``, ``qb``,
    ``yb`` (points 0..m-1, m < 2**16), the targets, weights and bounds ``bnd`` (NaN for
    non-finite x, see :func:`forward_block_fn`). ``fin``, ``pb``, ``feat`` and ``scratch`` are
    not used (kept in the signature).

    The point loop is instantiated for the gradient rule (so that Mask-REAL blocks do not pay
    for the Saturating square root) and the rejection flag (blocks without lambda_rej do not
    pay for the rejection term); Tukey's loss has a loop of its own (rule and rejection flag at
    run time), so the other loops carry no Tukey branch (it cost the hybrid pass about 40%).
    Only the variant of the call is compiled (about 2 s each), and the fused kernel, which
    calls it through its address, is compiled once for all.
    """
    tukey = int(loss_kind == LOSS_TUKEY)
    key = (0 if tukey else int(mode), tukey)
    return memoised_pointer(_BLOCK_REDUCES, key, reduce_signature,
                            lambda sig: _build_block_reduce(*key, sig))


@njit(cache=True, error_model="numpy")
def abs_or_zero(q, out):
    """out[i] = |q[i]| for finite q[i], else 0.0 (flat arrays; ``out`` may be ``q``)."""
    for i in range(q.shape[0]):
        a = abs(q[i])
        out[i] = a if a < math.inf else 0.0


@njit(cache=True)
def combine_partials(pgrad, pf, pi):
    """Sequential (chunk order) combination of the per-chunk partials: sums, min for q_min."""
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


# ----------------------------------------------------------------------------------------------
# the layer's φ regulariser and L1 projection


@njit(cache=True, error_model="numpy")
def sum_squares(a):
    """Σ a_i² in float64, in index order (flat ``a``)."""
    s = 0.0
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        s += v * v
    return s


@njit(cache=True, error_model="numpy")
def l1_project_rows(rows, bound):
    """Rescale each row of ``rows`` (n_rows, n) in place by bound/‖row‖₁ where ‖row‖₁ > bound
    (norms summed in float64, in index order; the factor is rounded to the rows' dtype before
    multiplying). Returns the smallest factor (1.0 when no row changed)."""
    smallest = 1.0
    factor_dt = np.empty(1, dtype=rows.dtype)
    for r in range(rows.shape[0]):
        norm = 0.0
        for k in range(rows.shape[1]):
            norm += abs(np.float64(rows[r, k]))
        if norm > bound:
            factor = bound / norm
            smallest = min(smallest, factor)
            factor_dt[0] = factor
            for k in range(rows.shape[1]):
                rows[r, k] = rows[r, k] * factor_dt[0]
    return smallest
