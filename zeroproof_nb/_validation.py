"""Argument validation shared by the Python layer.

Kernels assume valid input; every public entry point validates once with these helpers and
raises ``TypeError``/``ValueError`` messages that name the offending argument.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_in_range",
    "check_int",
    "check_choice",
    "check_bounds",
    "check_config",
]


def as_float_array(
    a: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: Any = None,
    allow_float32: bool = True,
) -> np.ndarray:
    """Return ``a`` as a contiguous float64 (or float32) array, validating dtype and ndim.

    float32 input stays float32 when ``allow_float32`` and ``dtype`` is None; every other numeric
    dtype becomes float64. Non-numeric input raises ``TypeError`` naming ``name``.
    """
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like of numbers, got {type(a).__name__}") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric dtype, got dtype {arr.dtype}")
    if dtype is None:
        dtype = np.float32 if (allow_float32 and arr.dtype == np.float32) else np.float64
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must be {want}-dimensional, got shape {arr.shape}")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless every entry of ``arr`` is finite."""
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must contain only finite values")


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if v != v:
        raise ValueError(f"{name} must not be NaN")
    return v


def check_positive(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """Return ``float(value)`` if it is > 0 (and finite unless ``allow_inf``)."""
    v = _check_real(value, name)
    if not v > 0 or (not allow_inf and not np.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``float(value)`` if it is finite and >= 0."""
    v = _check_real(value, name)
    if not (v >= 0 and np.isfinite(v)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_in_range(value: Any, name: str, lo: float, hi: float) -> float:
    """Return ``float(value)`` if ``lo <= value <= hi``."""
    v = _check_real(value, name)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}")
    return v


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``int(value)`` for an integral value (not bool), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_bounds(bounds: Any, name: str) -> tuple[float, float]:
    """Return ``(lo, hi)`` as floats, requiring finite values and ``lo < hi``."""
    try:
        lo, hi = bounds
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a pair (lo, hi), got {bounds!r}") from exc
    lo = _check_real(lo, f"{name}[0]")
    hi = _check_real(hi, f"{name}[1]")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {bounds!r}")
    if not lo < hi:
        raise ValueError(f"{name} must satisfy lo < hi, got {bounds!r}")
    return lo, hi


def check_config(config: Any, cls: type, name: str = "config") -> Any:
    """Return ``config``, or a default ``cls()`` when it is None; ``TypeError`` for another type."""
    if config is None:
        return cls()
    if not isinstance(config, cls):
        raise TypeError(f"{name} must be a {cls.__name__} or None, got {type(config).__name__}")
    return config
