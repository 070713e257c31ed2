"""Rational kernels, CPU loops: the forward y = P/Q and the fused loss-and-gradient pass.

The per-point functions they call live in :mod:`.rational`; this module holds the block
functions, the specialisation builders, the generic ``prange`` kernels and their compile caches.

Design
------
The per-point math is written once, as small scalar ``@njit`` functions
(:func:`tr_quotient`, :func:`policy_tag`, :func:`output_point`, :func:`data_loss_point`,
:func:`dy_coefficients`, :func:`rejection_point`, :func:`backward_point`, ...) that allocate
nothing, so a CUDA kernel can compile the same source as device functions. Loops over points are
thin wrappers around them. (The backward helpers are inlined at numba IR level into
:func:`block_backward`, which instantiates its loop once per gradient mode; the forward helpers
are plain functions that LLVM inlines.)

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
  forward of :func:`forward_block_fn`, the degree- and dtype-independent :func:`block_reduce`
  (losses, gradient rules, statistics) and the specialised gradient sums of
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
3. the fused pass reduces the block: :func:`block_backward` (losses, gradient rules, overflow
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
import math

import numba
import numpy as np
from numba import njit, prange, types

from .basis import (
    CHEBYSHEV_ANCHORED,
    MONOMIAL,
    anchor_slope,
    basis_row_nd,
    mapped_point,
    feature_dot,
    n_terms,
    poly_sum,
)
from .numba_internals import (
    NO_NRT,
    FunctionPointer,
    bits_float,
    float_bits,
    from_address,
    jit_unique,
    store_records8,
    tuple_setitem,
)
from .rational import (
    BLOCK,
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
    MODE_HYBRID,
    MODE_MASK_REAL,
    MODE_SATURATING,
    backward_point,
    feature_bound,
    guard_coefficients,
    head_output,
    output_point,
    point_denominator,
    psi_bound,
    row_denominator,
)
from .tags import CHUNK, NINF, PINF, REAL

_U8_REAL = np.uint8(REAL)
_U8_PINF = np.uint8(PINF)
_U8_NINF = np.uint8(NINF)

_JIT = dict(error_model="numpy")
_KERNEL = dict(cache=True, parallel=True, error_model="numpy")
# functions called once per block with many array arguments and no allocation: compiled without
# the NRT (numba would otherwise update the reference count of every array argument, and of every
# slice, with atomic operations on each call -- shared cache lines between threads)
_BLOCK_OPTS_STRICT = dict(error_model="numpy", **NO_NRT)
_BLOCK_OPTS = dict(_BLOCK_OPTS_STRICT, fastmath={"reassoc"})


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


@njit(**_JIT)
def unpack_counts(packed):
    """The three 16-bit fields (low first) of a packed count from :func:`block_backward`."""
    field = np.int64(0xFFFF)
    return packed & field, (packed >> 16) & field, (packed >> 32) & field


@njit(cache=True, **_BLOCK_OPTS)
def block_backward(
    m, j, tags, q, y, target, w, mode, delta, bound, loss_kind, huber_delta, lam,
    inv_tau, glim, bnd, c_p, c_q,
):
    """:func:`backward_point` and :func:`guard_coefficients` over one block of output head
    ``j``, with the block's tag counts and |Q| statistics from the same loop.

    Reads row ``j`` of the head-major block buffers ``tags``, ``p``, ``q``, ``y`` (points
    0..m-1, m < 2**16), the block's ``target[i]``, weights ``w[i]`` and bounds ``bnd[i]`` (NaN
    for non-finite x, see :func:`forward_block_fn`); writes ``c_p[j, i]``,
    ``c_q[j, i]``. Returns ``(data_loss_sum, rejection_sum, sum_c_p, sum_abs_q_finite,
    rule_counts, tag_counts, n_finite_q, n_near, q_min_bits)``: ``rule_counts`` packs the
    numbers of Mask-REAL, Saturating and overflow-masked outputs and ``tag_counts`` those of
    REAL, PINF and NINF tags in 16-bit fields (see :func:`unpack_counts`); ``q_min_bits`` is the
    bit pattern of the least finite |Q| (that of +inf if none, or a NaN pattern above it).
    none). The loop is instantiated once per gradient mode and rejection flag, so Mask-REAL
    blocks do not pay for the Saturating square root, nor blocks without lambda_rej for the
    rejection term; Tukey's loss has one loop of its own (rule and rejection flag at run time),
    so the other loops carry no Tukey branch (it cost the hybrid pass about 40%).
    """
    if loss_kind == LOSS_TUKEY:
        return _block_backward_mode(
            mode, lam > 0.0, m, j, tags, q, y, target, w, delta, bound, loss_kind, huber_delta,
            lam, inv_tau, glim, bnd, c_p, c_q, True,
        )
    if lam > 0.0:
        if mode == MODE_MASK_REAL:
            return _block_backward_mode(
                MODE_MASK_REAL, True, m, j, tags, q, y, target, w, delta, bound, loss_kind,
                huber_delta, lam, inv_tau, glim, bnd, c_p, c_q,
            )
        if mode == MODE_SATURATING:
            return _block_backward_mode(
                MODE_SATURATING, True, m, j, tags, q, y, target, w, delta, bound, loss_kind,
                huber_delta, lam, inv_tau, glim, bnd, c_p, c_q,
            )
        return _block_backward_mode(
            MODE_HYBRID, True, m, j, tags, q, y, target, w, delta, bound, loss_kind,
            huber_delta, lam, inv_tau, glim, bnd, c_p, c_q,
        )
    if mode == MODE_MASK_REAL:
        return _block_backward_mode(
            MODE_MASK_REAL, False, m, j, tags, q, y, target, w, delta, bound, loss_kind,
            huber_delta, 0.0, inv_tau, glim, bnd, c_p, c_q,
        )
    if mode == MODE_SATURATING:
        return _block_backward_mode(
            MODE_SATURATING, False, m, j, tags, q, y, target, w, delta, bound, loss_kind,
            huber_delta, 0.0, inv_tau, glim, bnd, c_p, c_q,
        )
    return _block_backward_mode(
        MODE_HYBRID, False, m, j, tags, q, y, target, w, delta, bound, loss_kind,
        huber_delta, 0.0, inv_tau, glim, bnd, c_p, c_q,
    )


@njit(cache=True, **_BLOCK_OPTS)
def block_dot(a, ja, f, k, m):
    """sum_{i<m} a[ja, i]*f[k, i] (float64)."""
    s = 0.0
    for i in range(m):
        s += a[ja, i] * f[k, i]
    return s


@njit(cache=True, **_BLOCK_OPTS)
def block_dot2(a, b, j, f, k, m):
    """(sum_{i<m} a[j, i]*f[k, i], sum_{i<m} b[j, i]*f[k, i]) in one pass over f (float64)."""
    sa = 0.0
    sb = 0.0
    for i in range(m):
        fi = f[k, i]
        sa += a[j, i] * fi
        sb += b[j, i] * fi
    return sa, sb


# ----------------------------------------------------------------------------------------------
# forward kernels (specialised)


# the signature functions are looked up when a kernel is typed (they are defined below)
eval_chunk_from_address = from_address(
    lambda dt: _eval_chunk_signature(dt), "A specialised forward chunk (eval_chunk_fn).")
forward_block_from_address = from_address(
    lambda dt: _forward_block_signature(dt), "A specialised block forward (forward_block_fn).")
block_reduce_from_address = from_address(
    lambda dt: _reduce_signature(), "block_reduce (dtype-independent).")
grad_sums_from_address = from_address(
    lambda dt: _grad_sums_signature(), "A specialised gradient sum (grad_sums_fn).")


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
    f = _EVAL_CHUNKS.get(key)
    if f is None:
        sig = _eval_chunk_signature(dtype)
        f = FunctionPointer(_build_eval_chunk(int(basis), int(dp), int(dq), int(d), int(n_out),
                                              bool(shared_q), bool(write_q), bool(has_policy),
                                              bool(has_eps), np.dtype(dtype).name, sig), sig)
        _EVAL_CHUNKS[key] = f
    return f


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
                    q0 = point_denominator(BASIS, phi, 0, DQ, t, one, HAS_EPS, eps)
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
    f = _FORWARD_BLOCKS.get(key)
    if f is None:
        sig = _forward_block_signature(dtype)
        f = FunctionPointer(_build_forward_block(int(basis), int(dp), int(dq), int(d), int(n_out),
                                                 bool(shared_q), bool(has_policy), bool(has_eps),
                                                 sig), sig)
        _FORWARD_BLOCKS[key] = f
    return f


def _build_forward_block(BASIS, DP, DQ, D, NOUT, SHARED, HAS_POLICY, HAS_EPS, sig):
    key = (BASIS, DP, DQ, D, NOUT, SHARED, HAS_POLICY, HAS_EPS, sig.args[0].dtype)
    DMAX = max(DP, DQ)
    BSCALE = 2.0 if BASIS != MONOMIAL else 1.0
    SLOPE = anchor_slope(DQ)
    SUMS_IN_REGISTERS = _sums_in_registers(D, DP, DQ, NOUT)
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
                    q = point_denominator(BASIS, phi, 0, DQ, t, one, HAS_EPS, eps)
                    p = poly_sum(BASIS, theta, 0, DP, t)
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


@njit(cache=True, **_JIT)
def _sums_in_registers(d, dp, dq, n_out):
    """Whether the gradient sums of a specialisation are accumulated in registers from psi_1
    (1-D and few sums: LLVM unrolls the loops over heads and degrees, and the point loop
    vectorises) or read from all the feature rows the block forward writes (n-D, or more sums:
    without full unrolling the register sums would go through memory)."""
    return d == 0 and n_out * max(dp, dq) <= 8


@njit(cache=True, **_JIT)
def fused_block_size(n, n_out, n_tp, n_tq, d):
    """Points per block of the fused pass: block buffers of about FUSED_BLOCK_WORDS float64
    (they stay in L2), at most FUSED_BLOCK, a multiple of 256 (fewer blocks: fewer calls)."""
    n_feat = max(n_tp, n_tq)
    rows = 1 if _sums_in_registers(d, n_tp - 1, n_tq - 1, n_out) else n_feat - 1
    words = 4 * n_out + 1 + rows  # y, Q, c_p, c_q (and a tag byte) per head, bound, features
    bs = max(256, min(FUSED_BLOCK, FUSED_BLOCK_WORDS // words // 256 * 256))
    return min(n, bs)


def _grad_sums_signature():
    """Explicit signature of the specialised gradient sums: ``(m, c, cpb, cqb, feat, pgrad)
    -> None`` (all arrays float64; the same for every computation dtype)."""
    f2 = types.Array(types.float64, 2, "C")
    return types.void(types.int64, types.int64, f2, f2, f2, f2)


_GRAD_SUMS: dict = {}


def grad_sums_fn(basis, dp, dq, d, n_out, shared_q):
    """Specialised gradient sums of the fused pass, compiled eagerly (cached).

    For points 0..m-1 of the block it adds theta[j, k] += sum_i cpb[j, i] psi_k(x_i) and
    phi[jq, k-1] += sum_i cqb[j, i] psi_k(x_i) for k >= 1 to row ``c`` of ``pgrad`` (the
    partials layout of :func:`grad_kernel`). In 1-D with few sums (:func:`_sums_in_registers`)
    psi_k is built from psi_1 = ``feat[1]`` (the mapped x, 0 for non-finite x and where the
    bound on |psi_k| overflows) with the degrees known at compile time, so the point loop
    vectorises with one register accumulator per sum and the block forward writes one feature
    row only; otherwise the sums run over all the feature rows of the block forward.
    """
    key = (basis, dp, dq, d, n_out, shared_q)
    f = _GRAD_SUMS.get(key)
    if f is None:
        sig = _grad_sums_signature()
        f = FunctionPointer(_build_grad_sums(int(basis), int(dp), int(dq), int(d), int(n_out),
                                             bool(shared_q), sig), sig)
        _GRAD_SUMS[key] = f
    return f


def _build_grad_sums(BASIS, DP, DQ, D, NOUT, SHARED, sig):
    key = (BASIS, DP, DQ, D, NOUT, SHARED)
    NTP = DP + 1 if D == 0 else n_terms(D, DP)
    NTQ = DQ + 1 if D == 0 else n_terms(D, DQ)
    NTMAX = max(NTP, NTQ)
    NQH = 1 if SHARED else NOUT
    NTHETA = NOUT * NTP
    ANCHORED = BASIS == CHEBYSHEV_ANCHORED
    SLOPE = anchor_slope(DQ)
    if _sums_in_registers(D, DP, DQ, NOUT):
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

        return jit_unique(grad_sums_1d, key, sig, cache=True, **_BLOCK_OPTS)

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

    return jit_unique(grad_sums_rows, key, sig, cache=True, **_BLOCK_OPTS)


@njit(cache=True, **_BLOCK_OPTS_STRICT)
def block_reduce(
    c, b0, m, n_out, shared_q, n_tp, n_tq, fin, tb, pb, qb, yb, target, weight, has_weight,
    wconst, mode, delta, bound, loss_kind, huber_delta, lam, inv_tau, glim, bnd, cpb, cqb, feat,
    scratch, pgrad, pf, pi,
):
    """Degree- and dtype-independent part of the fused pass for block [b0, b0+m) of chunk c.

    Per head, :func:`block_backward`: losses, gradient rules and guard (the coefficients c_p,
    c_q into ``cpb``, ``cqb``), tag counts, |Q| statistics of each distinct Q evaluation, and
    the gradient of theta[j, 0] (sum_i c_p, as psi_0 = 1). Results are added to row c of the
    partials; the gradient sums for k >= 1 follow in the specialised :func:`grad_sums_fn`.
    Called through a function pointer by the fused kernel, so it is compiled once and not
    re-optimised inside every kernel that uses it. ``fin``, ``pb``, ``feat`` and ``scratch`` are
    not used (kept in the signature).
    """
    n_qh = 1 if shared_q else n_out
    for j in range(n_out):
        ws = weight[j, b0:b0 + m] if has_weight else wconst
        d_sum, r_sum, s_cp, s_q, rule_counts, tag_counts, n_fin, n_near, q_min_bits = (
            block_backward(
                m, j, tb, qb, yb, target[j, b0:b0 + m], ws, mode, delta, bound,
                loss_kind, huber_delta, lam, inv_tau, glim, bnd, cpb, cqb,
            )
        )
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


@njit(**_JIT)
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


def _rational_grad(
    x, n, exps, target, weight, has_weight, theta, phi, scale, shift, one, eps, tau_q, tau_p,
    mode, delta, bound, loss_kind, huber_delta, lam, inv_tau, glim, val, tag, qout, pgrad, pf,
    pi, n_out, shared_q, n_tp, n_tq, d, idx, has_idx, forward_address, reduce_address,
    sums_address,
):
    """Generic fused pass (compiled once per argument types by :func:`grad_kernel`): per
    block, ``forward`` (specialised), the copy into the structured output, ``reduce``
    (:func:`block_reduce`), ``sums`` (specialised gradient sums); all given by address. With
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


def _reduce_signature():
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


_GRAD_KERNELS: dict = {}


_BLOCK_REDUCE: list = []


def block_reduce_fn():
    """:func:`block_reduce` as a :class:`FunctionPointer` (compiled on first use)."""
    if not _BLOCK_REDUCE:
        sig = _reduce_signature()
        block_reduce.compile(sig)
        _BLOCK_REDUCE.append(FunctionPointer(block_reduce, sig))
    return _BLOCK_REDUCE[0]


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


#: :func:`_rational_grad` compiled for one thread and called from other kernels (the compiled
#: training loop of :mod:`.train`, whose batches fit in one chunk)
rational_grad_serial = njit(cache=True, error_model="numpy")(_rational_grad)
