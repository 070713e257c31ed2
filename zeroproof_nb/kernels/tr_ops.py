"""Transreal elementwise arithmetic and reductions (kernels).

Per-point functions (``*_point``) take ``(value, tag)`` pairs and return ``(value, tag)``; they
are plain ``@njit`` functions without allocation, so a CUDA kernel can compile the same bodies as
device functions. The ``prange`` loops below are thin wrappers around them.

Rules (reference: upstream ``core/tr_ops.py``, tables in ``upstream_behaviour.md`` §1.2-§1.5):

* PHI absorbs everything; ``inf - inf``, ``0 * inf``, ``inf / inf``, ``0 / 0`` give PHI.
* A REAL result that overflows becomes +-inf: by the sign of the float result for add/sub, by
  ``(a >= 0) == (b >= 0)`` for mul/div (the same sign for every overflowing case).
* Division by a REAL zero reads the IEEE sign of the zero; finite / +-inf is +0.
* Non-REAL results are stored as +inf, -inf or NaN in the value field.
* A REAL tag over a NaN value reads as PHI and over +-inf as PINF/NINF (robust to hand-made
  arrays); any tag code above 3 reads as PHI.

Every kernel is compiled for explicit signatures over ``'A'``-layout, unaligned arrays, so
structured-array field views, contiguous arrays and broadcast (stride-0) views all share one
compiled specialisation per value dtype (float64, float32).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types

from .tags import CHUNK, NINF, PHI, PINF, REAL, real_div

# elementwise op codes (the kernels dispatch on these; the branch is loop-invariant)
OP_ADD = 0
OP_SUB = 1
OP_MUL = 2
OP_DIV = 3

OP_NEG = 0
OP_ABS = 1
OP_SIGN = 2
OP_SQRT = 3
OP_LOG = 4


# --------------------------------------------------------------------------------------------
# per-point functions
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def canon_point(v, t):
    """Canonical ``(float64 value, tag)`` of one entry: REAL NaN -> PHI, REAL +-inf -> PINF/NINF,
    non-REAL values replaced by +inf / -inf / NaN, codes > 3 -> PHI."""
    x = float(v)
    if t == REAL:
        if math.isnan(x):
            return math.nan, PHI
        if math.isinf(x):
            if x > 0.0:
                return math.inf, PINF
            return -math.inf, NINF
        return x, REAL
    if t == PINF:
        return math.inf, PINF
    if t == NINF:
        return -math.inf, NINF
    return math.nan, PHI


@njit(cache=True)
def real_result_point(x):
    """Tag a float result of REAL operands: finite -> REAL, +-inf -> PINF/NINF, NaN -> PHI."""
    if math.isnan(x):
        return math.nan, PHI
    if math.isinf(x):
        if x > 0.0:
            return math.inf, PINF
        return -math.inf, NINF
    return x, REAL


@njit(cache=True)
def _inf_of_sign(positive):
    if positive:
        return math.inf, PINF
    return -math.inf, NINF


@njit(cache=True)
def add_point(av, at, bv, bt):
    """Transreal ``a + b``."""
    a, ta = canon_point(av, at)
    b, tb = canon_point(bv, bt)
    if ta == PHI or tb == PHI:
        return math.nan, PHI
    if ta != REAL:
        if tb != REAL and tb != ta:
            return math.nan, PHI  # +inf + -inf
        return a, ta
    if tb != REAL:
        return b, tb
    return real_result_point(a + b)


@njit(cache=True)
def neg_point(v, t):
    """Transreal ``-a``: neg(+0) = -0, +inf <-> -inf, PHI stays PHI."""
    a, ta = canon_point(v, t)
    if ta == REAL:
        return -a, REAL
    if ta == PINF:
        return -math.inf, NINF
    if ta == NINF:
        return math.inf, PINF
    return math.nan, PHI


@njit(cache=True)
def sub_point(av, at, bv, bt):
    """Transreal ``a - b`` defined as ``a + neg(b)``."""
    nb, ntb = neg_point(bv, bt)
    return add_point(av, at, nb, ntb)


@njit(cache=True)
def mul_point(av, at, bv, bt):
    """Transreal ``a * b``: +-0 * +-inf = PHI; signs by ``(a >= 0) == (b >= 0)``."""
    a, ta = canon_point(av, at)
    b, tb = canon_point(bv, bt)
    if ta == PHI or tb == PHI:
        return math.nan, PHI
    if ta != REAL or tb != REAL:
        if (ta == REAL and a == 0.0) or (tb == REAL and b == 0.0):
            return math.nan, PHI
        return _inf_of_sign((a > 0.0) == (b > 0.0))
    return real_result_point(a * b)


@njit(cache=True)
def div_point(av, at, bv, bt):
    """Transreal ``a / b``: x/+-0 by the IEEE sign of the zero, 0/0 = inf/inf = PHI,
    finite/+-inf = +0, +-inf/REAL = +-inf by the signs (zero's IEEE sign included)."""
    a, ta = canon_point(av, at)
    b, tb = canon_point(bv, bt)
    if ta == PHI or tb == PHI:
        return math.nan, PHI
    if ta != REAL:
        if tb != REAL:
            return math.nan, PHI
        return _inf_of_sign((a > 0.0) == (math.copysign(1.0, b) > 0.0))
    if tb != REAL:
        return 0.0, REAL
    return real_div(a, b)


@njit(cache=True)
def abs_point(v, t):
    """Transreal ``|a|``: +-inf -> +inf, PHI -> PHI."""
    a, ta = canon_point(v, t)
    if ta == REAL:
        return abs(a), REAL
    if ta == PHI:
        return math.nan, PHI
    return math.inf, PINF


@njit(cache=True)
def sign_point(v, t):
    """Transreal sign: REAL -1/0/+1 (sign(+-0) = +0), +-inf -> REAL +-1, PHI -> PHI."""
    a, ta = canon_point(v, t)
    if ta == PHI:
        return math.nan, PHI
    if a > 0.0:
        return 1.0, REAL
    if a < 0.0:
        return -1.0, REAL
    return 0.0, REAL


@njit(cache=True)
def sqrt_point(v, t):
    """Transreal sqrt: x >= 0 (``-0`` included, sqrt(-0) = -0) -> REAL, x < 0 -> PHI,
    +inf -> +inf, -inf and PHI -> PHI."""
    a, ta = canon_point(v, t)
    if ta == REAL:
        if a >= 0.0:
            return math.sqrt(a), REAL
        return math.nan, PHI
    if ta == PINF:
        return math.inf, PINF
    return math.nan, PHI


@njit(cache=True)
def log_point(v, t):
    """Transreal natural log: x > 0 -> REAL, x <= 0 (+-0 included) -> PHI, +inf -> +inf,
    -inf and PHI -> PHI."""
    a, ta = canon_point(v, t)
    if ta == REAL:
        if a > 0.0:
            return math.log(a), REAL
        return math.nan, PHI
    if ta == PINF:
        return math.inf, PINF
    return math.nan, PHI


@njit(cache=True)
def pow_int_point(v, t, k):
    """Transreal ``a**k`` for an integer k: k = 0 gives 1 for REAL a != 0 and PHI otherwise
    (0**0, inf**0, PHI**0); k > 0 by square-and-multiply with transreal mul; k < 0 as
    ``1 / a**|k|`` in transreal division."""
    a, ta = canon_point(v, t)
    if k == 0:
        if ta == REAL and a != 0.0:
            return 1.0, REAL
        return math.nan, PHI
    e = k if k > 0 else -k
    rv = 1.0
    rt = REAL
    bv = a
    bt = ta
    first = True
    while e > 0:
        if e & 1:
            if first:
                rv = bv
                rt = bt
                first = False
            else:
                rv, rt = mul_point(rv, rt, bv, bt)
        e >>= 1
        if e > 0:
            bv, bt = mul_point(bv, bt, bv, bt)
    if k < 0:
        return div_point(1.0, REAL, rv, rt)
    return rv, rt


@njit(cache=True)
def binary_point(op, av, at, bv, bt):
    """Dispatch one binary op code (``OP_ADD`` .. ``OP_DIV``)."""
    if op == OP_ADD:
        return add_point(av, at, bv, bt)
    if op == OP_SUB:
        return sub_point(av, at, bv, bt)
    if op == OP_MUL:
        return mul_point(av, at, bv, bt)
    return div_point(av, at, bv, bt)


@njit(cache=True)
def unary_point(op, v, t):
    """Dispatch one unary op code (``OP_NEG`` .. ``OP_LOG``)."""
    if op == OP_NEG:
        return neg_point(v, t)
    if op == OP_ABS:
        return abs_point(v, t)
    if op == OP_SIGN:
        return sign_point(v, t)
    if op == OP_SQRT:
        return sqrt_point(v, t)
    return log_point(v, t)


@njit(cache=True)
def store_point(ov, ot, i, v, t):
    """Write ``(v, t)`` at ``i``; a REAL value that overflows the output dtype (float32) becomes
    +-inf with the matching tag."""
    ov[i] = v
    if t == REAL and math.isinf(ov[i]):
        if ov[i] > 0:
            ot[i] = PINF
        else:
            ot[i] = NINF
    else:
        ot[i] = t


# --------------------------------------------------------------------------------------------
# elementwise loops
# --------------------------------------------------------------------------------------------


def _arr(dtype, ndim=1, readonly=False):
    return types.Array(dtype, ndim, "A", readonly=readonly, aligned=False)


_U8_RO = _arr(types.uint8, readonly=True)
_U8 = _arr(types.uint8)
_FLOATS = (types.float64, types.float32)

_BINARY_SIGS = [
    (types.int64, _arr(f, readonly=True), _U8_RO, _arr(f, readonly=True), _U8_RO, _arr(f), _U8)
    for f in _FLOATS
]
_UNARY_SIGS = [(types.int64, _arr(f, readonly=True), _U8_RO, _arr(f), _U8) for f in _FLOATS]
_POW_SIGS = [(_arr(f, readonly=True), _U8_RO, types.int64, _arr(f), _U8) for f in _FLOATS]


@njit(_BINARY_SIGS, cache=True, parallel=True)
def binary_flat(op, av, at, bv, bt, ov, ot):
    """``out[i] = a[i] (op) b[i]`` over 1-D value/tag arrays of equal length (broadcast views
    with stride 0 allowed for the inputs)."""
    for i in prange(ov.shape[0]):
        v, t = binary_point(op, av[i], at[i], bv[i], bt[i])
        store_point(ov, ot, i, v, t)


@njit(_UNARY_SIGS, cache=True, parallel=True)
def unary_flat(op, av, at, ov, ot):
    """``out[i] = op(a[i])`` over 1-D value/tag arrays."""
    for i in prange(ov.shape[0]):
        v, t = unary_point(op, av[i], at[i])
        store_point(ov, ot, i, v, t)


@njit(_POW_SIGS, cache=True, parallel=True)
def pow_int_flat(av, at, k, ov, ot):
    """``out[i] = a[i] ** k`` for an integer k, over 1-D value/tag arrays."""
    for i in prange(ov.shape[0]):
        v, t = pow_int_point(av[i], at[i], k)
        store_point(ov, ot, i, v, t)


# --------------------------------------------------------------------------------------------
# reductions: Neumaier-compensated REAL sum per fixed chunk, chunks folded in order
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def neumaier_step(s, c, x):
    """One Neumaier step: returns the new running sum and compensation for ``s + x``."""
    u = s + x
    if abs(s) >= abs(x):
        c += (s - u) + x
    else:
        c += (x - u) + s
    return u, c


@njit(cache=True)
def chunk_sum(vals, tags, lo, hi, acc):
    """Reduce entries ``lo:hi`` into ``acc`` (float64, length 6): [sum, compensation, n_real,
    n_pinf, n_ninf, n_phi]. The REAL sum is Neumaier-compensated and sequential."""
    s = 0.0
    c = 0.0
    n_real = 0
    n_pinf = 0
    n_ninf = 0
    n_phi = 0
    for i in range(lo, hi):
        v, t = canon_point(vals[i], tags[i])
        if t == REAL:
            n_real += 1
            s, c = neumaier_step(s, c, v)
        elif t == PINF:
            n_pinf += 1
        elif t == NINF:
            n_ninf += 1
        else:
            n_phi += 1
    acc[0] = s
    acc[1] = c
    acc[2] = n_real
    acc[3] = n_pinf
    acc[4] = n_ninf
    acc[5] = n_phi


@njit(cache=True)
def fold_chunk(state, acc):
    """Fold one chunk's ``acc`` into the running ``state`` (same layout as ``acc``): the chunk
    sums are added with a Neumaier step, the compensations and counts are summed."""
    s, c = neumaier_step(state[0], state[1], acc[0])
    state[0] = s
    state[1] = c + acc[1]
    for k in range(2, 6):
        state[k] += acc[k]


@njit(cache=True)
def finish_sum(state, drop_null, mean):
    """Transreal result ``(value, tag)`` of a folded reduction ``state``.

    STRICT: any PHI -> PHI; both infinities -> PHI; one infinity -> it; else the REAL sum
    (overflow -> +-inf by its sign; opposite overflows -> PHI). DROP_NULL first discards PHI and
    gives PHI when nothing is left. Empty input: sum 0 (REAL), mean PHI. The mean divides a
    REAL sum by the number of REAL entries.
    """
    n_real = state[2]
    n_pinf = state[3]
    n_ninf = state[4]
    n_phi = state[5]
    n_kept = n_real + n_pinf + n_ninf
    if n_kept + n_phi == 0:
        if mean:
            return math.nan, PHI
        return 0.0, REAL
    if n_phi > 0 and (not drop_null or n_kept == 0):
        return math.nan, PHI
    if n_pinf > 0 and n_ninf > 0:
        return math.nan, PHI
    if n_pinf > 0:
        return math.inf, PINF
    if n_ninf > 0:
        return -math.inf, NINF
    s = state[0]
    if math.isfinite(s):
        s = s + state[1]
    v, t = real_result_point(s)
    if mean and t == REAL:
        v = v / n_real
    return v, t


_SUM_FLAT_SIGS = [(_arr(f, readonly=True), _U8_RO, types.boolean, types.boolean) for f in _FLOATS]
_SUM_ROWS_SIGS = [
    (
        _arr(f, 2, readonly=True),
        _arr(types.uint8, 2, readonly=True),
        types.boolean,
        types.boolean,
        _arr(f),
        _U8,
    )
    for f in _FLOATS
]


@njit(_SUM_FLAT_SIGS, cache=True, parallel=True)
def sum_flat(vals, tags, drop_null, mean):
    """Transreal sum (or mean) of a 1-D value/tag array, returns ``(value float64, tag)``.

    Chunks of ``CHUNK`` entries are reduced in parallel, then folded in chunk order, so the
    result does not depend on the thread count.
    """
    n = vals.shape[0]
    n_chunks = max(1, (n + CHUNK - 1) // CHUNK)
    partial = np.zeros((n_chunks, 6), dtype=np.float64)
    for ch in prange(n_chunks):
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        chunk_sum(vals, tags, lo, hi, partial[ch])
    state = np.zeros(6, dtype=np.float64)
    for ch in range(n_chunks):
        fold_chunk(state, partial[ch])
    return finish_sum(state, drop_null, mean)


@njit(_SUM_ROWS_SIGS, cache=True, parallel=True)
def sum_rows(vals, tags, drop_null, mean, ov, ot):
    """Transreal sum (or mean) of each row of 2-D value/tag arrays into ``ov``/``ot``; each row
    uses the same chunking and fold order as :func:`sum_flat` (bit-identical results)."""
    n_rows = vals.shape[0]
    n = vals.shape[1]
    n_chunks = max(1, (n + CHUNK - 1) // CHUNK)
    for r in prange(n_rows):
        acc = np.zeros(6, dtype=np.float64)
        state = np.zeros(6, dtype=np.float64)
        for ch in range(n_chunks):
            lo = ch * CHUNK
            hi = min(n, lo + CHUNK)
            chunk_sum(vals[r], tags[r], lo, hi, acc)
            fold_chunk(state, acc)
        v, t = finish_sum(state, drop_null, mean)
        store_point(ov, ot, r, v, t)
