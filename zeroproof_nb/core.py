"""Transreal core: tags, structured dtypes, the IEEE bridge, tag counting.

A transreal array is a NumPy structured array with fields ``value`` (float64 or float32) and
``tag`` (uint8 code, see :class:`TRTag`).
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any, Iterable

import numpy as np

from .kernels import tags as _ktags

__all__ = [
    "TRTag",
    "tr_dtype",
    "tr_array",
    "is_tr_array",
    "from_ieee",
    "to_ieee",
    "as_tags",
    "count_tags",
]


class TRTag(IntEnum):
    """Transreal tag codes, as stored in the ``tag`` field (uint8)."""

    REAL = _ktags.REAL
    PINF = _ktags.PINF
    NINF = _ktags.NINF
    PHI = _ktags.PHI


_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_TR_DTYPES = {np.dtype(v): np.dtype([("value", v), ("tag", np.uint8)])
              for v in (np.float64, np.float32)}


def tr_dtype(value_dtype: Any = np.float64) -> np.dtype:
    """Structured dtype ``[('value', value_dtype), ('tag', uint8)]`` for float64 or float32."""
    vd = np.dtype(value_dtype)
    dt = _TR_DTYPES.get(vd)
    if dt is None:
        raise TypeError(f"value_dtype must be float64 or float32, got {vd}")
    return dt


def is_tr_array(a: Any) -> bool:
    """True if ``a`` is a NumPy array with the transreal fields ``value`` and ``tag``."""
    return (
        isinstance(a, np.ndarray)
        and a.dtype.names is not None
        and "value" in a.dtype.names
        and "tag" in a.dtype.names
    )


def tr_array(values: Any, tags: Any) -> np.ndarray:
    """Build a transreal array from a value array and a tag array of the same shape.

    Values are stored as given (float32 stays float32); non-REAL entries keep their value.
    """
    v = np.asarray(values)
    if v.dtype.kind not in "biuf":
        raise TypeError(f"values must be numeric, got dtype {v.dtype}")
    if v.dtype != np.float32:
        v = v.astype(np.float64)
    t = as_tags(tags)
    if t.shape != v.shape:
        raise ValueError(f"tags must have the shape of values {v.shape}, got {t.shape}")
    if t.size and int(t.max()) > 3:
        raise ValueError("tags must hold codes 0..3 (REAL, PINF, NINF, PHI)")
    out = np.empty(v.shape, dtype=tr_dtype(v.dtype))
    out["value"] = v
    out["tag"] = t
    return out


def from_ieee(a: Any, dtype: Any = None) -> np.ndarray:
    """Classify IEEE floats: finite -> REAL (signed zero kept), +inf -> PINF, -inf -> NINF,
    NaN -> PHI. ``dtype`` (float64/float32) defaults to float32 for float32 input, else float64.
    """
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"a must be numeric, got dtype {arr.dtype}")
    if dtype is None:
        dtype = np.float32 if arr.dtype == np.float32 else np.float64
    out = np.empty(arr.shape, dtype=tr_dtype(dtype))
    v = arr.astype(dtype, copy=False)
    out["value"] = v
    tag = np.zeros(arr.shape, dtype=np.uint8)
    tag[np.isposinf(v)] = TRTag.PINF
    tag[np.isneginf(v)] = TRTag.NINF
    tag[np.isnan(v)] = TRTag.PHI
    out["tag"] = tag
    return out


def check_tr_dtype(t: np.ndarray, name: str) -> None:
    """``TypeError`` unless ``t``'s ``value`` field is float64/float32 and its ``tag`` field
    uint8; ``ValueError`` if a tag holds a reserved code (4..255)."""
    if t.dtype["value"] not in _FLOAT_DTYPES or t.dtype["tag"] != np.dtype(np.uint8):
        raise TypeError(
            f"{name} must have a float64/float32 'value' field and a uint8 'tag' field, "
            f"got dtype {t.dtype}"
        )
    tags = t["tag"]
    if tags.size and int(tags.max()) > 3:
        raise ValueError(
            f"{name} holds reserved tag codes (4..255); tags must be 0..3 "
            "(REAL, PINF, NINF, PHI)"
        )


def to_ieee(t: np.ndarray) -> np.ndarray:
    """Map a transreal array to IEEE floats by tag: REAL -> value, PINF -> +inf,
    NINF -> -inf, PHI -> NaN (a finite value kept under a non-REAL tag is not returned).

    Raises ``TypeError`` for a ``value`` field that is not float64/float32 or a ``tag`` field
    that is not uint8, ``ValueError`` for reserved tag codes (4..255)."""
    if not is_tr_array(t):
        raise TypeError("t must be a transreal structured array with fields 'value' and 'tag'")
    check_tr_dtype(t, "t")
    v = np.array(t["value"], copy=True)
    tag = t["tag"]
    v[tag == TRTag.PINF] = np.inf
    v[tag == TRTag.NINF] = -np.inf
    v[tag == TRTag.PHI] = np.nan
    return v


def as_tags(tags: Any, name: str = "tags") -> np.ndarray:
    """Return tags as a uint8 array: accepts a uint8/integer array (fast path), a transreal
    array (its ``tag`` field) or a sequence of :class:`TRTag`. Codes must be 0..3."""
    if is_tr_array(tags):
        return np.asarray(tags["tag"])
    if isinstance(tags, np.ndarray) and tags.dtype == np.uint8:
        arr = tags
    else:
        if not isinstance(tags, np.ndarray):
            tags = list(tags) if isinstance(tags, Iterable) else tags
        try:
            arr = np.asarray(tags)
        except Exception as exc:
            raise TypeError(f"{name} must be an array of tag codes or TRTag values") from exc
        if arr.size == 0:
            return np.zeros(arr.shape, dtype=np.uint8)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer tag codes or TRTag values, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() > 3:
            raise ValueError(f"{name} must hold codes 0..3 (REAL, PINF, NINF, PHI)")
        arr = arr.astype(np.uint8)
    return arr


def count_tags(tags: Any, axis: int | None = None) -> np.ndarray:
    """Count REAL, PINF, NINF and PHI tags.

    Parameters
    ----------
    tags : uint8 array, transreal array, or sequence of TRTag
    axis : int or None
        None counts over everything and returns shape (4,); an integer reduces that axis and
        returns the remaining shape with a trailing axis of 4.

    Returns
    -------
    numpy.ndarray of int64, counts in the order REAL, PINF, NINF, PHI.
    """
    t = as_tags(tags)
    if axis is None:
        flat = np.ascontiguousarray(t).reshape(-1)
        if flat.size > _ktags.CHUNK:
            counts = _ktags.count_tags_flat(flat)
            bad = counts[4]
            counts = counts[:4]
        else:  # one chunk: NumPy's histogram is as fast, and nothing is compiled for it
            hist = np.bincount(flat, minlength=256)
            counts = hist[:4].astype(np.int64)
            bad = int(hist[4:].sum())
    else:
        if t.ndim == 0:
            raise ValueError("axis must be None for a 0-d tags array")
        from ._validation import check_int

        ax = check_int(axis, "axis")
        if not -t.ndim <= ax < t.ndim:
            raise ValueError(f"axis {axis} is out of bounds for tags with {t.ndim} dimensions")
        moved = np.moveaxis(t, ax, -1)
        rest = moved.shape[:-1]
        rows = np.ascontiguousarray(moved).reshape(int(np.prod(rest)), moved.shape[-1])
        c = _ktags.count_tags_rows(rows)
        bad = c[:, 4].sum()
        counts = c[:, :4].reshape(rest + (4,))
    if bad:
        raise ValueError("tags must hold codes 0..3 (REAL, PINF, NINF, PHI)")
    return counts


# ------------------------------------------------------------------------------------------------
# Elementwise transreal arithmetic and reductions
# ------------------------------------------------------------------------------------------------

__all__ += [
    "tr_add",
    "tr_sub",
    "tr_mul",
    "tr_div",
    "tr_neg",
    "tr_abs",
    "tr_sign",
    "tr_sqrt",
    "tr_log",
    "tr_pow_int",
    "tr_sum",
    "tr_mean",
]

_REDUCTION_MODES = ("strict", "drop_null")


def _tr_ops():
    # imported on first use: the kernels compile for explicit signatures at import (cached)
    from .kernels import tr_ops

    return tr_ops


def _as_tr_operand(x: Any, name: str) -> np.ndarray:
    """A transreal array as is, or a numeric array-like/scalar classified with ``from_ieee``."""
    if is_tr_array(x):
        check_tr_dtype(x, name)
        return x
    if isinstance(x, np.ndarray) and x.dtype.names is not None:
        raise TypeError(f"{name} must be a transreal array (fields 'value', 'tag') or numeric")
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{name} must be a transreal array or numeric array-like") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a transreal array or numeric, got dtype {arr.dtype}")
    return from_ieee(arr)


def _with_value_dtype(t: np.ndarray, value_dtype: np.dtype) -> np.ndarray:
    dt = tr_dtype(value_dtype)
    return t if t.dtype == dt else t.astype(dt)


def _flat_view(t: np.ndarray) -> np.ndarray:
    """1-D view of a (possibly broadcast) array without copying when possible."""
    if t.flags.c_contiguous:
        return t.reshape(-1)
    if t.size <= 1 or all(s == 0 for s in t.strides):
        return np.lib.stride_tricks.as_strided(t, shape=(t.size,), strides=(0,), writeable=False)
    return np.ascontiguousarray(t).reshape(-1)


def _prepare_out(
    out: Any, shape: tuple[int, ...], value_dtype: np.dtype, inputs: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Return (result array to return, contiguous buffer the kernel writes)."""
    dt = tr_dtype(value_dtype)
    if out is None:
        res = np.empty(shape, dtype=dt)
        return res, res
    if not is_tr_array(out) or out.dtype != dt:
        raise TypeError(f"out must be a transreal array of dtype {dt}, got {getattr(out, 'dtype', type(out).__name__)}")
    if out.shape != shape:
        raise ValueError(f"out must have the broadcast shape {shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    aliased = any(
        np.may_share_memory(out, x)
        and not (
            x.shape == out.shape
            and x.strides == out.strides
            and x.__array_interface__["data"][0] == out.__array_interface__["data"][0]
        )
        for x in inputs
    )
    if out.flags.c_contiguous and not aliased:
        return out, out
    return out, np.empty(shape, dtype=dt)


def _finish_out(res: np.ndarray, buf: np.ndarray) -> np.ndarray:
    if buf is not res:
        res[...] = buf
    return res


def _binary(op: int, a: Any, b: Any, out: Any) -> np.ndarray:
    ta = _as_tr_operand(a, "a")
    tb = _as_tr_operand(b, "b")
    f32 = np.dtype(np.float32)
    vdt = f32 if (ta.dtype["value"] == f32 and tb.dtype["value"] == f32) else np.dtype(np.float64)
    try:
        shape = np.broadcast_shapes(ta.shape, tb.shape)
    except ValueError as exc:
        raise ValueError(f"a and b do not broadcast: shapes {ta.shape} and {tb.shape}") from exc
    res, buf = _prepare_out(out, shape, vdt, (ta, tb))
    fa = _flat_view(np.broadcast_to(_with_value_dtype(ta, vdt), shape))
    fb = _flat_view(np.broadcast_to(_with_value_dtype(tb, vdt), shape))
    fo = buf.reshape(-1)
    _tr_ops().binary_flat(op, fa["value"], fa["tag"], fb["value"], fb["tag"], fo["value"], fo["tag"])
    return _finish_out(res, buf)


def _unary_prepare(t: Any, out: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ta = _as_tr_operand(t, "t")
    res, buf = _prepare_out(out, ta.shape, ta.dtype["value"], (ta,))
    return res, buf, _flat_view(ta), buf.reshape(-1)


def _unary(op: int, t: Any, out: Any) -> np.ndarray:
    res, buf, fa, fo = _unary_prepare(t, out)
    _tr_ops().unary_flat(op, fa["value"], fa["tag"], fo["value"], fo["tag"])
    return _finish_out(res, buf)


_BINARY_DOC = """Transreal ``{expr}``, elementwise with NumPy broadcasting.

    Parameters
    ----------
    a, b : transreal arrays, or numeric array-likes/scalars (classified with :func:`from_ieee`)
    out : transreal array of the broadcast shape and result dtype, optional

    Returns
    -------
    Transreal array of shape ``np.broadcast_shapes(a.shape, b.shape)``; float32 values only when
    both operands are float32, else float64. {rules}
    """


def tr_add(a: Any, b: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(_tr_ops().OP_ADD, a, b, out)


def tr_sub(a: Any, b: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(_tr_ops().OP_SUB, a, b, out)


def tr_mul(a: Any, b: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(_tr_ops().OP_MUL, a, b, out)


def tr_div(a: Any, b: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    return _binary(_tr_ops().OP_DIV, a, b, out)


tr_add.__doc__ = _BINARY_DOC.format(
    expr="a + b",
    rules="PHI absorbs; +inf + -inf = PHI; a REAL sum that overflows becomes +-inf by its sign.",
)
tr_sub.__doc__ = _BINARY_DOC.format(
    expr="a - b", rules="Defined as ``a + neg(b)``; inf - inf of the same sign is PHI."
)
tr_mul.__doc__ = _BINARY_DOC.format(
    expr="a * b",
    rules="PHI absorbs; +-0 * +-inf = PHI; signs by ``(a >= 0) == (b >= 0)``; REAL products "
    "follow IEEE (signed zeros) and overflow to +-inf.",
)
tr_div.__doc__ = _BINARY_DOC.format(
    expr="a / b",
    rules="PHI absorbs; x / +-0 = +-inf by the IEEE sign of the zero (x != 0); 0/0 and "
    "inf/inf are PHI; finite / +-inf = +0; +-inf / REAL = +-inf by the signs.",
)


def tr_neg(t: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Transreal ``-t``: neg(+0) = -0, +inf <-> -inf, PHI -> PHI. Same shape and dtype as ``t``."""
    return _unary(_tr_ops().OP_NEG, t, out)


def tr_abs(t: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Transreal ``|t|``: REAL |x| (abs(-0) = +0), +-inf -> +inf, PHI -> PHI."""
    return _unary(_tr_ops().OP_ABS, t, out)


def tr_sign(t: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Transreal sign: REAL -1/0/+1 (sign(+-0) = +0), +inf -> REAL 1, -inf -> REAL -1,
    PHI -> PHI."""
    return _unary(_tr_ops().OP_SIGN, t, out)


def tr_sqrt(t: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Transreal square root: x >= 0 -> REAL (sqrt(-0) = -0), x < 0 -> PHI, +inf -> +inf,
    -inf -> PHI, PHI -> PHI."""
    return _unary(_tr_ops().OP_SQRT, t, out)


def tr_log(t: Any, *, out: np.ndarray | None = None) -> np.ndarray:
    """Transreal natural log: x > 0 -> REAL, x <= 0 (+-0 included) -> PHI, +inf -> +inf,
    -inf -> PHI, PHI -> PHI."""
    return _unary(_tr_ops().OP_LOG, t, out)


def tr_pow_int(t: Any, k: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """Transreal integer power ``t**k``.

    k = 0 gives REAL 1 except 0**0, (+-inf)**0 and PHI**0, which are PHI; k > 0 multiplies by
    square-and-multiply with transreal mul (overflow -> +-inf, signs by parity); k < 0 is
    ``tr_div(1, t**|k|)``, so (+0)**-1 = +inf, (-0)**-1 = -inf, (+-0)**-2 = +inf and
    (+-inf)**k = +0. ``|k|`` must be below 2**62.
    """
    from ._validation import check_int

    kk = check_int(k, "k")
    if abs(kk) >= 2**62:
        raise ValueError(f"k must satisfy |k| < 2**62, got {kk}")
    res, buf, fa, fo = _unary_prepare(t, out)
    _tr_ops().pow_int_flat(fa["value"], fa["tag"], kk, fo["value"], fo["tag"])
    return _finish_out(res, buf)


def _reduce(t: Any, mode: Any, axis: Any, mean: bool) -> np.ndarray:
    ta = _as_tr_operand(t, "t")
    if not isinstance(mode, str):
        mode = getattr(mode, "name", mode)  # accept an enum with STRICT / DROP_NULL names
    if not isinstance(mode, str) or mode.lower() not in _REDUCTION_MODES:
        raise ValueError(f"mode must be one of {_REDUCTION_MODES}, got {mode!r}")
    drop_null = mode.lower() == "drop_null"
    vdt = ta.dtype["value"]
    ops = _tr_ops()
    if axis is None:
        flat = _flat_view(ta)
        v, tag = ops.sum_flat(flat["value"], flat["tag"], drop_null, mean)
        res = np.empty((), dtype=tr_dtype(vdt))
        with np.errstate(over="ignore"):
            res["value"] = v
        if tag == TRTag.REAL and not np.isfinite(res["value"]):  # float32 overflow
            tag = TRTag.PINF if res["value"] > 0 else TRTag.NINF
        res["tag"] = tag
        return res
    from ._validation import check_int

    ax = check_int(axis, "axis")
    if not -ta.ndim <= ax < ta.ndim:
        raise ValueError(f"axis {axis} is out of bounds for an array with {ta.ndim} dimensions")
    moved = np.moveaxis(ta, ax, -1)
    rest = moved.shape[:-1]
    rows = np.ascontiguousarray(moved).reshape(int(np.prod(rest, dtype=np.int64)), moved.shape[-1])
    res = np.empty(rest, dtype=tr_dtype(vdt))
    fo = res.reshape(-1)
    ops.sum_rows(rows["value"], rows["tag"], drop_null, mean, fo["value"], fo["tag"])
    return res


def tr_sum(t: Any, mode: str = "strict", axis: int | None = None) -> np.ndarray:
    """Transreal sum.

    Parameters
    ----------
    t : transreal array, or numeric array-like (classified with :func:`from_ieee`)
    mode : {"strict", "drop_null"}
        ``"strict"``: any PHI gives PHI; +inf and -inf together give PHI; one kind of infinity
        gives it; otherwise the REAL sum. ``"drop_null"``: PHI entries are discarded first, and a
        non-empty input with nothing left gives PHI; then the strict rules.
    axis : int or None
        None reduces everything to a 0-d result; an integer reduces that axis.

    Returns
    -------
    Transreal array (0-d, or ``t.shape`` without ``axis``), same value dtype as ``t``. An empty
    reduction gives REAL 0. The REAL sum is accumulated in float64 with Neumaier compensation
    over fixed chunks of ``kernels.tags.CHUNK`` entries, combined in chunk order: the result does
    not depend on the numba thread count. A REAL sum that overflows gives +-inf by its sign
    (PHI if chunks overflow to both signs).
    """
    return _reduce(t, mode, axis, False)


def tr_mean(t: Any, mode: str = "strict", axis: int | None = None) -> np.ndarray:
    """Transreal mean: :func:`tr_sum` divided by the number of REAL entries it summed.

    Same ``mode`` and ``axis`` rules as :func:`tr_sum`; a non-REAL sum is returned as is
    (PHI or +-inf). The mean of an empty reduction is PHI (0/0), not REAL 0.
    """
    return _reduce(t, mode, axis, True)
