"""Rational kernels, CPU loops: the forward y = P/Q and the fused loss-and-gradient pass.

The per-point functions they call live in :mod:`.rational`; this module holds the forward
block functions, the specialisation builders, the generic ``prange`` kernels and their compile
caches; the block functions of the fused pass (:func:`block_reduce_fn`, :func:`grad_sums_fn`,
...) are in :mod:`.rational_fused_cpu` and re-exported here.

Design
------
The per-point math is written once, as small scalar ``@njit`` functions
(:func:`tr_quotient`, :func:`policy_tag`, :func:`output_point`, :func:`data_loss_point`,
:func:`dy_coefficients`, :func:`rejection_point`, :func:`backward_point`, ...) that allocate
nothing, so a CUDA kernel can compile the same source as device functions. Loops over points are
thin wrappers around them. (The backward helpers are inlined at numba IR level into
the block reduction of :func:`block_reduce_fn`, whose loop is instantiated per gradient mode and
loss; the forward helpers are plain functions that LLVM inlines.)

LLVM vectorises a loop over points only when the inner Horner/Clenshaw loops have compile-time
trip counts, so the code that evaluates P and Q is *specialised*: factories build closures whose
basis, degrees, input dimension, number of outputs, Q sharing and optional features (tag policy,
epsilon baseline, writing Q) are frozen closure constants, compiled eagerly for the computation
dtype. Each combination compiles once per process (memoised in a dict) and is cached on disk:
numba's cache index key includes the closure-cell contents (closures capture only ints and
bools; a captured dispatcher would pickle differently in every process), and
:func:`.numba_internals.jit_unique` gives each specialisation its own index file, so concurrent processes adding
different specialisations cannot overwrite each other's entries.

The ``parallel=True`` kernels are *generic* (one per dtype, plus a serial twin for work of one
chunk) and call the specialised code through a first-class function built from its address
(:class:`.numba_internals.FunctionPointer`, passed as an int64: cheap to dispatch):

* :func:`eval_kernel` runs ``prange`` over chunks and calls the specialised chunk forward of
  :func:`eval_chunk_fn`;
* :func:`grad_kernel` (the fused loss-and-gradient pass) calls per block the specialised
  forward of :func:`forward_block_fn`, the degree- and dtype-independent block reduction of
  :func:`block_reduce_fn` (losses, gradient rules, statistics; one variant per gradient rule and
  loss, compiled when used) and the specialised gradient sums of
  :func:`grad_sums_fn`.

A parallel kernel with the heavy backward linked in costs about 5-10 s of compilation; this way
it is compiled once per dtype, and each new degree pair costs only a small serial function
(about 0.5 s), then nothing once cached.

Loop structure
--------------
``prange`` runs over chunks of ``tags.CHUNK`` points; a chunk is processed in blocks of
``BLOCK`` (forward) or :func:`fused_block_size` points (fused pass: up to ``FUSED_BLOCK``, block
buffers of about ``FUSED_BLOCK_WORDS`` float64 that stay in L2). Per block:

1. a point loop with no reductions and unit-stride access only (it vectorises) evaluates P, Q,
   the value and the tag (and, in the fused pass, the bound on |psi_k| and psi_1 = the mapped
   x, or all psi_k rows) into small contiguous block buffers (head-major in the fused pass, one
   loop per head for several heads; point-major in the forward chunks);
2. values and tags go into the structured output, 8 records at a time where the records are
   packed and contiguous (:func:`store_records8`: one byte shuffle and one unaligned vector
   store; writing the 9- or 5-byte-strided field views from step 1 would keep LLVM from
   vectorising it, and element-wise stores cost two stores per record);
3. the fused pass reduces the block: :func:`block_reduce_fn` (losses, gradient rules, overflow
   guard, tag counts and |Q| statistics in one loop), then the gradient sums
   sum_i c_i psi_k(x_i) of :func:`grad_sums_fn` (in 1-D with few sums, psi_k built from psi_1
   in registers). Float sums in these block functions are compiled with
   ``fastmath={"reassoc"}`` only (no nnan/ninf), so LLVM may vectorise them in an order fixed
   by the compiled code; the minimum of |Q| is exact (integer min over bit patterns).

The block functions allocate nothing and are compiled without the NRT (``numba_internals.NO_NRT``):
numba would otherwise update, with atomic operations, the reference count of every array
argument and slice on every call.

Block results are added to the chunk's row of the partials arrays in block order, and chunks are
combined sequentially (:func:`combine_partials`): results depend on the data and the compiled
code only, never on the number of threads.

Arrays seen by the kernels
--------------------------
* ``theta`` (n_out, n_tp), ``phi`` (n_qh, n_tq - 1) with n_qh = 1 (shared Q) or n_out; the
  constant term of Q is the fixed 1.
* outputs as 2-D views (N, n_out): ``val`` and ``tag`` are the field views of a transreal
  structured array, ``qout`` (C-contiguous) the signed denominator.
* the computation dtype is the dtype of ``x`` (float32 or float64); the backward part of the
  fused pass runs in float64.
"""
from __future__ import annotations

import hashlib

import numba
import numpy as np
from numba import njit, prange, types

from .basis import (
    MONOMIAL,
    anchor_slope,
    basis_row_nd,
    mapped_point,
    feature_dot,
    n_terms,
    poly_sum,
)
from .numba_internals import (
    from_address,
    jit_unique,
    memoised_pointer,
    store_records8,
)
from .rational import (
    BLOCK,
    feature_bound,
    head_output,
    output_point,
    point_denominator,
    psi_bound,
    row_denominator,
)
from .rational_fused_cpu import (  # noqa: F401  (re-exported: the fused pass's block functions)
    BLOCK_OPTS_STRICT,
    abs_or_zero,
    block_dot,
    block_dot2,
    block_reduce_fn,
    combine_partials,
    fused_block_size,
    gather_block,
    grad_sums_fn,
    grad_sums_signature,
    l1_project_rows,
    reduce_signature,
    sum_squares,
    sums_in_registers,
    unpack_counts,
)
from .tags import CHUNK

_KERNEL = dict(cache=True, parallel=True, error_model="numpy")
_BLOCK_OPTS_STRICT = BLOCK_OPTS_STRICT


# ----------------------------------------------------------------------------------------------
# forward kernels (specialised)


# the signature functions are looked up when a kernel is typed (they are defined below)
eval_chunk_from_address = from_address(
    lambda dt: _eval_chunk_signature(dt), "A specialised forward chunk (eval_chunk_fn).")
forward_block_from_address = from_address(
    lambda dt: _forward_block_signature(dt), "A specialised block forward (forward_block_fn).")
block_reduce_from_address = from_address(
    lambda dt: reduce_signature(), "A block reduction of block_reduce_fn (dtype-independent).")
grad_sums_from_address = from_address(
    lambda dt: grad_sums_signature(), "A specialised gradient sum (grad_sums_fn).")


def _view_types(dtype):
    """numba types of the ``value`` and ``tag`` field views of an (N, n_out) transreal array
    (layout 'A'; a C-contiguous view, e.g. of a single element, converts to it)."""
    views = np.empty((2, 2), dtype=[("value", np.dtype(dtype)), ("tag", np.uint8)])
    return numba.typeof(views["value"]), numba.typeof(views["tag"])


def _kernel_arg_types(args, dtype, view_pos):
    """numba types of ``args`` with the field views at ``view_pos`` typed by
    :func:`_view_types`, so that the compiled signature does not depend on the batch."""
    arg_types = [numba.typeof(a) for a in args]
    arg_types[view_pos], arg_types[view_pos + 1] = _view_types(dtype)
    return tuple(arg_types)


def _eval_chunk_signature(dtype):
    """Signature of a specialised forward chunk: ``(x_flat, n, c, exps, theta, phi, scale,
    shift, one, eps, tau_q, tau_p, val, tag, qout) -> None`` (val and tag the strided field
    views of the (N, n_out) transreal output, exps read-only int64)."""
    dt = numba.from_dtype(np.dtype(dtype))
    a1 = types.Array(dt, 1, "C")
    a2 = types.Array(dt, 2, "C")
    i2 = types.Array(types.int64, 2, "C", readonly=True)
    val_t, tag_t = _view_types(dtype)
    i8 = types.int64
    return types.void(a1, i8, i8, i2, a2, a2, dt, dt, dt, dt, dt, dt, val_t, tag_t, a2)


_EVAL_CHUNKS: dict = {}


def eval_chunk_fn(basis, dp, dq, d, n_out, shared_q, write_q, has_policy, has_eps, dtype):
    """Specialised forward of chunk ``c`` (points c*CHUNK .. min(n, (c+1)*CHUNK) - 1), block by
    block: the vectorised point loop into head-major buffers, then the copy into the strided
    structured output (and Q into ``qout`` when ``write_q``). Compiled eagerly for ``dtype``
    (cached); d = 0 is the 1-D path and ``x_flat`` is x raveled (N*d values)."""
    key = (basis, dp, dq, d, n_out, shared_q, write_q, has_policy, has_eps, dtype)
    return memoised_pointer(
        _EVAL_CHUNKS, key, lambda: _eval_chunk_signature(dtype),
        lambda sig: _build_eval_chunk(int(basis), int(dp), int(dq), int(d), int(n_out),
                                      bool(shared_q), bool(write_q), bool(has_policy),
                                      bool(has_eps), np.dtype(dtype).name, sig))


def _build_eval_chunk(BASIS, DP, DQ, D, NOUT, SHARED, WRITE_Q, HAS_POLICY, HAS_EPS, name, sig):
    key = (BASIS, DP, DQ, D, NOUT, SHARED, WRITE_Q, HAS_POLICY, HAS_EPS, name)
    DMAX = max(DP, DQ)
    if D == 0:

        def eval_chunk_1d(x, n, c, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, val,
                          tag, qout):
            # point-major block buffers (the order of the output records): the stores of all
            # heads form one interleaved group per buffer, which LLVM vectorises
            yb = np.empty(NOUT * BLOCK, dtype=x.dtype)
            tb = np.empty(NOUT * BLOCK, dtype=np.uint8)
            hi = min(n, (c + 1) * CHUNK)
            for b0 in range(c * CHUNK, hi, BLOCK):
                m = min(BLOCK, hi - b0)
                xs = x[b0:b0 + m]
                qs = qout[b0:b0 + m]
                for ii in range(m):
                    t = mapped_point(BASIS, xs[ii], scale, shift)
                    nan_check = t - t
                    q0 = point_denominator(BASIS, phi, np.int64(0), DQ, t, one, HAS_EPS, eps)
                    for j in range(NOUT):
                        v, g, q = head_output(BASIS, theta, phi, j, DP, DQ, SHARED, t, one,
                                              HAS_EPS, eps, q0, nan_check, HAS_POLICY, tau_q,
                                              tau_p)
                        yb[ii * NOUT + j] = v
                        tb[ii * NOUT + j] = g
                        if WRITE_Q:
                            qs[ii, j] = q
                copy_records_out(val, tag, b0, m, NOUT, yb, tb)

        return jit_unique(eval_chunk_1d, key, sig, cache=True, error_model="numpy")

    NTP = n_terms(D, DP)
    NTQ = n_terms(D, DQ)
    NTMAX = max(NTP, NTQ)

    def eval_chunk_nd(x, n, c, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, val, tag,
                      qout):
        table = np.empty((D, DMAX + 1), dtype=x.dtype)
        row = np.empty(NTMAX, dtype=x.dtype)
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            xi = x[i * D:(i + 1) * D]
            nan_check = one - one
            for jd in range(D):
                nan_check = nan_check + (xi[jd] - xi[jd])
            basis_row_nd(BASIS, xi, scale, shift, exps, NTMAX, DMAX, one, table, row)
            q0 = row_denominator(phi, 0, row, NTQ, one, HAS_EPS, eps)
            for j in range(NOUT):
                q = q0 if (SHARED or j == 0) else row_denominator(phi, j, row, NTQ, one, HAS_EPS, eps)
                p = feature_dot(theta, j, row, NTP)
                v, g = output_point(p, q, nan_check, HAS_POLICY, tau_q, tau_p)
                val[i, j] = v
                tag[i, j] = g
                if WRITE_Q:
                    qout[i, j] = q

    return jit_unique(eval_chunk_nd, key, sig, cache=True, error_model="numpy")


def _rational_eval(x, n, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, val, tag, qout,
                   forward_chunk_address):
    """Generic forward kernel: ``prange`` over chunks, each done by the specialised forward
    chunk (:func:`eval_chunk_fn`) whose address is the last argument."""
    forward_chunk = eval_chunk_from_address(forward_chunk_address, x)
    for c in prange((n + CHUNK - 1) // CHUNK):
        forward_chunk(x, n, np.int64(c), exps, theta, phi, scale, shift, one, eps, tau_q, tau_p,
                      val, tag, qout)


@njit(**_BLOCK_OPTS_STRICT)
def copy_records_out(val, tag, b0, m, n_out, yb, tb):
    """val[b0+i, j] = yb[i*n_out + j], tag[b0+i, j] = tb[i*n_out + j] for i < m (point-major
    buffers, the order of the output records).

    With the fields of packed contiguous records (the arrays this package allocates), 8
    records at a time with :func:`store_records8`; else element by element."""
    vs = val[b0:b0 + m]
    ts = tag[b0:b0 + m]
    k = m * n_out
    i0 = 0
    rec = vs.itemsize + 1
    dst = np.int64(vs.ctypes.data)
    if (k >= 8 and vs.strides[1] == rec and vs.strides[0] == n_out * rec
            and np.int64(ts.ctypes.data) == dst + vs.itemsize):
        while i0 + 8 <= k:
            store_records8(vs, dst + rec * i0, yb, tb, i0)
            i0 += 8
    for r in range(i0, k):
        ii = r // n_out
        j = r - ii * n_out
        vs[ii, j] = yb[r]
        ts[ii, j] = tb[r]


@njit(**_BLOCK_OPTS_STRICT)
def copy_block_out(val, tag, b0, m, n_out, yb, tb):
    """val[b0+i, j] = yb[j, i], tag[b0+i, j] = tb[j, i] for i < m (the strided field views).

    With one output and the fields of packed contiguous records (the arrays this package
    allocates), 8 records at a time with :func:`store_records8`; else element by element."""
    vs = val[b0:b0 + m]
    ts = tag[b0:b0 + m]
    if n_out == 1:
        vs1 = vs[:, 0]
        ts1 = ts[:, 0]
        yb1 = yb[0]
        tb1 = tb[0]
        i0 = 0
        rec = vs1.itemsize + 1
        dst = np.int64(vs1.ctypes.data)
        if m >= 8 and vs1.strides[0] == rec and np.int64(ts1.ctypes.data) == dst + vs1.itemsize:
            while i0 + 8 <= m:
                store_records8(vs1, dst + rec * i0, yb1, tb1, i0)
                i0 += 8
        for ii in range(i0, m):
            vs1[ii] = yb1[ii]
            ts1[ii] = tb1[ii]
    else:
        for ii in range(m):
            for j in range(n_out):
                vs[ii, j] = yb[j, ii]
                ts[ii, j] = tb[j, ii]


_EVAL_KERNELS: dict = {}


def _generic_kernel(cache, py_func, args, dtype, view_pos):
    """``py_func`` compiled for the types of ``args``: parallel when ``args[1]`` (the number
    of points) spans several chunks, else a serial twin (one chunk runs on one thread anyway,
    and a parallel region would only add its start-up cost). Memoised per (dtype, parallel)."""
    parallel = args[1] > CHUNK
    key = (dtype, parallel)  # the argument types depend on the dtype only
    k = cache.get(key)
    if k is None:
        sig = types.void(*_kernel_arg_types(args, dtype, view_pos))
        digest = hashlib.sha1(str(sig).encode()).hexdigest()[:16]
        options = dict(_KERNEL, parallel=parallel)
        k = jit_unique(py_func, (dtype.name, int(parallel), digest), sig, **options)
        cache[key] = k
    return k


def eval_kernel(args):
    """The generic forward kernel for ``args`` = ``(x_flat, n, exps, theta, phi, scale, shift,
    one, eps, tau_q, tau_p, val, tag, qout, forward_chunk_address)`` (the address of an
    :func:`eval_chunk_fn` specialisation last)."""
    return _generic_kernel(_EVAL_KERNELS, _rational_eval, args, args[3].dtype, 11)


# ----------------------------------------------------------------------------------------------
# fused loss-and-gradient pass: specialised block forward + generic kernel


def _forward_block_signature(dtype):
    """Explicit signature of the specialised block forward for computation dtype ``dtype``:
    ``(x_flat, b0, m, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p, qout, yb, tb, pb,
    qb, fin, bnd, feat, table, row) -> None`` (exps read-only int64; yb, pb, qb, bnd, feat
    float64; tb, fin uint8; table, row scratch of the computation dtype)."""
    dt = numba.from_dtype(np.dtype(dtype))
    a1 = types.Array(dt, 1, "C")
    a2 = types.Array(dt, 2, "C")
    f1 = types.Array(types.float64, 1, "C")
    f2 = types.Array(types.float64, 2, "C")
    u1 = types.Array(types.uint8, 1, "C")
    u2 = types.Array(types.uint8, 2, "C")
    i2 = types.Array(types.int64, 2, "C", readonly=True)
    return types.void(
        a1, types.int64, types.int64, i2, a2, a2, dt, dt, dt, dt, dt, dt,
        a2, f2, u2, f2, f2, u1, f1, f2, a2, a1,
    )


_FORWARD_BLOCKS: dict = {}


def forward_block_fn(basis, dp, dq, d, n_out, shared_q, has_policy, has_eps, dtype):
    """Specialised block forward of the fused pass, compiled eagerly for ``dtype`` (cached).

    For points b0..b0+m-1 it writes the exact forward of ``rational_eval`` (value ``yb``, tag
    ``tb``, Q into ``qout``) and, for the backward, Q in float64 (``qb``, head-major), the bound
    on |psi_k| (``bnd``; NaN for non-finite x) and psi_k(x) in float64 (``feat``, terms x block,
    rows k >= 1; zero for non-finite x and where the bound overflows; only row 1 when
    :func:`grad_sums_fn` keeps its sums in registers). ``pb`` and ``fin`` are not used (kept in
    the signature). ``x_flat`` is x raveled (N*d values, d = 1 in 1-D).
    """
    key = (basis, dp, dq, d, n_out, shared_q, has_policy, has_eps, dtype)
    return memoised_pointer(
        _FORWARD_BLOCKS, key, lambda: _forward_block_signature(dtype),
        lambda sig: _build_forward_block(int(basis), int(dp), int(dq), int(d), int(n_out),
                                         bool(shared_q), bool(has_policy), bool(has_eps), sig))


def _build_forward_block(BASIS, DP, DQ, D, NOUT, SHARED, HAS_POLICY, HAS_EPS, sig):
    key = (BASIS, DP, DQ, D, NOUT, SHARED, HAS_POLICY, HAS_EPS, sig.args[0].dtype)
    DMAX = max(DP, DQ)
    BSCALE = 2.0 if BASIS != MONOMIAL else 1.0
    SLOPE = anchor_slope(DQ)
    SUMS_IN_REGISTERS = sums_in_registers(D, DP, DQ, NOUT)
    if D == 0:

        def forward_block_1d(x, b0, m, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p,
                             qout, yb, tb, pb, qb, fin, bnd, feat, table, row):
            xs = x[b0:b0 + m]
            qs = qout[b0:b0 + m]
            for ii in range(m):
                t = mapped_point(BASIS, xs[ii], scale, shift)
                nan_check = t - t
                finite = nan_check == nan_check
                t64 = np.float64(t) if finite else 0.0
                b = feature_bound(BASIS, t64, DMAX, SLOPE)
                bnd[ii] = b if finite else np.nan
                if DMAX >= 1:
                    # psi_1 = t for grad_sums_fn; with b = inf some psi_k overflow, but such
                    # points get zero coefficients (guard_coefficients), so it is set to 0 there
                    # (0*inf would be NaN)
                    feat[1, ii] = t64 if b < np.inf else 0.0
                if NOUT == 1:
                    # the head index as int64, not the literal 0: the per-point functions
                    # compile once for the head loops and this one
                    q = point_denominator(BASIS, phi, np.int64(0), DQ, t, one, HAS_EPS, eps)
                    p = poly_sum(BASIS, theta, np.int64(0), DP, t)
                    v, g = output_point(p, q, nan_check, HAS_POLICY, tau_q, tau_p)
                    yb[0, ii] = v
                    tb[0, ii] = g
                    qs[ii, 0] = q
                    qb[0, ii] = q
            if NOUT > 1:
                # one point loop per head: a single loop over all heads has too many streams
                # for LLVM to vectorise it (Q is recomputed per head: cheaper than a load)
                for j in range(NOUT):
                    jq = 0 if SHARED else j
                    for ii in range(m):
                        t = mapped_point(BASIS, xs[ii], scale, shift)
                        nan_check = t - t
                        q = point_denominator(BASIS, phi, jq, DQ, t, one, HAS_EPS, eps)
                        p = poly_sum(BASIS, theta, j, DP, t)
                        v, g = output_point(p, q, nan_check, HAS_POLICY, tau_q, tau_p)
                        yb[j, ii] = v
                        tb[j, ii] = g
                        qb[j, ii] = q
                for ii in range(m):
                    for j in range(NOUT):
                        qs[ii, j] = qb[j, ii]
            if not SUMS_IN_REGISTERS:
                # psi_k rows k >= 2 from the psi_1 row (as basis_row_1d; separate unit-stride
                # loops vectorise); row 0 (psi_0 = 1) is not read
                for k in range(2, DMAX + 1):
                    if BASIS == MONOMIAL:
                        for ii in range(m):
                            feat[k, ii] = feat[k - 1, ii] * feat[1, ii]
                    elif k == 2:
                        for ii in range(m):
                            feat[2, ii] = 2.0 * feat[1, ii] * feat[1, ii] - 1.0
                    else:
                        for ii in range(m):
                            feat[k, ii] = 2.0 * feat[1, ii] * feat[k - 1, ii] - feat[k - 2, ii]

        return jit_unique(forward_block_1d, key, sig, cache=True, **_BLOCK_OPTS_STRICT)

    NTP = n_terms(D, DP)
    NTQ = n_terms(D, DQ)
    NTMAX = max(NTP, NTQ)

    def forward_block_nd(x, b0, m, exps, theta, phi, scale, shift, one, eps, tau_q, tau_p,
                         qout, yb, tb, pb, qb, fin, bnd, feat, table, row):
        for ii in range(m):
            i = b0 + ii
            xi = x[i * D:(i + 1) * D]
            nan_check = one - one
            tmax = 1.0
            for jd in range(D):
                nan_check = nan_check + (xi[jd] - xi[jd])
                tj = mapped_point(BASIS, xi[jd], scale, shift)
                tmax = max(tmax, BSCALE * abs(np.float64(tj)))
            finite = nan_check == nan_check
            bnd[ii] = psi_bound(tmax, DMAX) if finite else np.nan
            basis_row_nd(BASIS, xi, scale, shift, exps, NTMAX, DMAX, one, table, row)
            q0 = row_denominator(phi, 0, row, NTQ, one, HAS_EPS, eps)
            for j in range(NOUT):
                q = q0 if (SHARED or j == 0) else row_denominator(phi, j, row, NTQ, one, HAS_EPS, eps)
                p = feature_dot(theta, j, row, NTP)
                v, g = output_point(p, q, nan_check, HAS_POLICY, tau_q, tau_p)
                yb[j, ii] = v
                tb[j, ii] = g
                qout[i, j] = q
                qb[j, ii] = q
            keep = bnd[ii] < np.inf  # see forward_block_1d
            for k in range(NTMAX):
                feat[k, ii] = np.float64(row[k]) if keep else 0.0

    return jit_unique(forward_block_nd, key, sig, cache=True, **_BLOCK_OPTS_STRICT)



def _rational_grad(
    x, n, exps, target, weight, has_weight, theta, phi, scale, shift, one, eps, tau_q, tau_p,
    mode, delta, bound, loss_kind, huber_delta, lam, inv_tau, glim, val, tag, qout, pgrad, pf,
    pi, n_out, shared_q, n_tp, n_tq, d, idx, has_idx, forward_address, reduce_address,
    sums_address,
):
    """Generic fused pass (compiled once per argument types by :func:`grad_kernel`): per
    block, ``forward`` (specialised), the copy into the structured output, ``reduce``
    (:func:`block_reduce_fn`), ``sums`` (specialised gradient sums); all given by address. With
    ``has_idx`` the n points are the pool rows ``idx`` of x, target and weight, gathered block
    by block (outputs follow idx)."""
    forward = forward_block_from_address(forward_address, x)
    reduce = block_reduce_from_address(reduce_address, x)
    sums = grad_sums_from_address(sums_address, x)
    n_feat = max(n_tp, n_tq)
    bs = fused_block_size(n, n_out, n_tp, n_tq, d)
    wconst = np.full(bs, weight[0, 0])  # the weight of every point when there are no weights
    dx = max(d, 1)
    gb = bs if has_idx else 0
    for c in prange(pgrad.shape[0]):
        yb = np.empty((n_out, bs), dtype=np.float64)
        tb = np.empty((n_out, bs), dtype=np.uint8)
        pb = np.empty((n_out, 1), dtype=np.float64)  # not used by forward and reduce any more
        qb = np.empty((n_out, bs), dtype=np.float64)
        cpb = np.empty((n_out, bs), dtype=np.float64)
        cqb = np.empty((n_out, bs), dtype=np.float64)
        bnd = np.empty(bs, dtype=np.float64)
        feat = np.empty((n_feat, bs), dtype=np.float64)
        table = np.empty((max(d, 1), n_feat), dtype=theta.dtype)
        row = np.empty(n_feat, dtype=theta.dtype)
        fin = np.empty(1, dtype=np.uint8)  # (as pb)
        scratch = np.empty(1, dtype=np.float64)  # (as pb)
        xg = np.empty(gb * dx, dtype=x.dtype)
        tg = np.empty((n_out, gb), dtype=np.float64)
        wg = np.empty((n_out, gb if has_weight else 0), dtype=np.float64)
        hi = min(n, (c + 1) * CHUNK)
        for b0 in range(c * CHUNK, hi, bs):
            m = min(bs, hi - b0)
            if has_idx:
                gather_block(x, target, weight, has_weight, idx, b0, m, dx, xg, tg, wg)
                wsrc = wg if has_weight else weight
                forward(xg, np.int64(0), np.int64(m), exps, theta, phi, scale, shift, one, eps,
                        tau_q, tau_p, qout[b0:b0 + m], yb, tb, pb, qb, fin, bnd, feat, table, row)
                copy_block_out(val, tag, b0, m, n_out, yb, tb)
                reduce(np.int64(c), np.int64(0), np.int64(m), n_out, shared_q, n_tp, n_tq, fin, tb,
                       pb, qb, yb, tg, wsrc, has_weight, wconst, mode,
                       delta, bound, loss_kind, huber_delta, lam, inv_tau, glim, bnd, cpb, cqb,
                       feat, scratch, pgrad, pf, pi)
                sums(np.int64(m), np.int64(c), cpb, cqb, feat, pgrad)
                continue
            forward(x, np.int64(b0), np.int64(m), exps, theta, phi, scale, shift, one, eps, tau_q,
                    tau_p, qout, yb, tb, pb, qb, fin, bnd, feat, table, row)
            # values (exactly representable in the computation dtype) and tags
            copy_block_out(val, tag, b0, m, n_out, yb, tb)
            reduce(np.int64(c), np.int64(b0), np.int64(m), n_out, shared_q, n_tp, n_tq, fin, tb, pb, qb, yb, target, weight,
                   has_weight, wconst, mode, delta, bound, loss_kind, huber_delta, lam, inv_tau,
                   glim, bnd, cpb, cqb, feat, scratch, pgrad, pf, pi)
            sums(np.int64(m), np.int64(c), cpb, cqb, feat, pgrad)



_GRAD_KERNELS: dict = {}


def grad_kernel(args):
    """The generic fused kernel for ``args`` = ``(x_flat, n, exps, target, weight, has_weight,
    theta, phi, scale, shift, one, eps, tau_q, tau_p, mode, delta, bound, loss_kind,
    huber_delta, lam, inv_tau, glim, val, tag, qout, pgrad, pf, pi, n_out, shared_q, n_tp, n_tq,
    d, idx, has_idx, forward_address, block_reduce_address, sums_address)`` (the addresses of
    a :func:`forward_block_fn` specialisation, of :func:`block_reduce_fn` and of a
    :func:`grad_sums_fn` specialisation last); ``target`` and ``weight`` are (n_out, N_pool)
    C-contiguous float64 (head-major); without weights ``weight`` is (1, 1) holding
    1/(n n_out); with ``has_idx`` the n points are the rows ``idx`` (int64, valid) of the pool
    x, and target/weight are the pool's (N_pool, n_out) row-major arrays; else ``idx`` is
    ignored; ``pgrad`` (n_chunks, n_params), ``pf`` (n_chunks, N_FSTATS, FS_QMIN column
    +inf) and ``pi`` (n_chunks, N_ISTATS) are the zero-initialised partials.
    """
    return _generic_kernel(_GRAD_KERNELS, _rational_grad, args, args[6].dtype, 22)




#: :func:`_rational_grad` compiled for one thread and called from other kernels (the compiled
#: training loop of :mod:`.train`, whose batches fit in one chunk)
rational_grad_serial = njit(cache=True, error_model="numpy")(_rational_grad)
