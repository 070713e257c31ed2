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


def tr_dtype(value_dtype: Any = np.float64) -> np.dtype:
    """Structured dtype ``[('value', value_dtype), ('tag', uint8)]`` for float64 or float32."""
    vd = np.dtype(value_dtype)
    if vd not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise TypeError(f"value_dtype must be float64 or float32, got {vd}")
    return np.dtype([("value", vd), ("tag", np.uint8)])


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


def to_ieee(t: np.ndarray) -> np.ndarray:
    """Map a transreal array to IEEE floats by tag: REAL -> value, PINF -> +inf,
    NINF -> -inf, PHI -> NaN (a finite value kept under a non-REAL tag is not returned)."""
    if not is_tr_array(t):
        raise TypeError("t must be a transreal structured array with fields 'value' and 'tag'")
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
        counts = _ktags.count_tags_flat(np.ascontiguousarray(t).reshape(-1))
        bad = counts[4]
        counts = counts[:4]
    else:
        if t.ndim == 0:
            raise ValueError("axis must be None for a 0-d tags array")
        ax = int(axis)
        if not -t.ndim <= ax < t.ndim:
            raise ValueError(f"axis {axis} is out of bounds for tags with {t.ndim} dimensions")
        moved = np.moveaxis(t, ax, -1)
        rest = moved.shape[:-1]
        rows = np.ascontiguousarray(moved).reshape(-1, moved.shape[-1])
        c = _ktags.count_tags_rows(rows)
        bad = c[:, 4].sum()
        counts = c[:, :4].reshape(rest + (4,))
    if bad:
        raise ValueError("tags must hold codes 0..3 (REAL, PINF, NINF, PHI)")
    return counts
