"""Argument validation shared by the Python layer.

Kernels assume valid input; every public entry point validates once with these helpers and
raises ``TypeError``/``ValueError`` messages that name the offending argument.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_in_range",
    "check_bool",
    "check_int",
    "check_choice",
    "check_bounds",
    "check_config",
    "check_counts",
    "check_terms",
    "check_alloc",
    "check_no_overlap",
    "finite_float",
    "load_npz",
    "bit_generator_from_state",
    "BIT_GENERATORS",
    "MAX_TERMS",
    "MAX_DRAWS",
    "MAX_GRID_DIM",
    "check_draws",
]

#: most coefficients one polynomial (P or Q, one head) may have: C(d + degree, d) <= MAX_TERMS;
#: also the most coefficients a layer's θ (or φ) may hold over all heads
MAX_TERMS = 1 << 20
#: most indices or points one sampling call may draw (512 MiB of int64 indices); draw more in
#: several calls
MAX_DRAWS = 1 << 26
#: largest input dimension of an adaptive grid (a split makes 2**d children)
MAX_GRID_DIM = 1024


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


def check_bool(value: Any, name: str) -> bool:
    """Return ``bool(value)`` for a bool (NumPy's included); TypeError naming ``name`` for
    anything else (a 0 or a string is not taken for a flag)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_int(value: Any, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Return ``int(value)`` for an integral value (not bool), in [``minimum``, ``maximum``]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
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
    width = hi - lo
    if not (math.isfinite(width) and math.isfinite(2.0 / width)
            and math.isfinite((hi + lo) / width)):
        raise ValueError(
            f"{name} must have a width hi - lo that is finite and whose inverse is finite "
            f"(the affine map onto [-1, 1] must not overflow), got {bounds!r}"
        )
    return lo, hi


def check_config(config: Any, cls: type, name: str = "config") -> Any:
    """Return ``config``, or a default ``cls()`` when it is None; ``TypeError`` for another type."""
    if config is None:
        return cls()
    if not isinstance(config, cls):
        raise TypeError(f"{name} must be a {cls.__name__} or None, got {type(config).__name__}")
    return config


def check_counts(counts: Any, name: str = "counts") -> np.ndarray:
    """Return tag counts ``(REAL, PINF, NINF, PHI)`` as an int64 array of shape (4,).

    Integers >= 0 only: ``TypeError`` for a non-integer dtype (floats, bools), ``ValueError``
    for another shape or a negative count."""
    try:
        c = np.asarray(counts)
    except Exception as exc:
        raise TypeError(f"{name} must be 4 integer counts (REAL, PINF, NINF, PHI)") from exc
    if c.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer counts (REAL, PINF, NINF, PHI), got dtype {c.dtype}")
    if c.shape != (4,):
        raise ValueError(f"{name} must be 4 counts (REAL, PINF, NINF, PHI), got shape {c.shape}")
    if c.dtype.kind == "u" and c.dtype.itemsize == 8 and c.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must be counts below 2**63")
    c = c.astype(np.int64)
    if np.any(c < 0):
        raise ValueError(f"{name} must be >= 0, got {c.tolist()}")
    return c


def check_terms(d: int, degree: int, name: str) -> int:
    """Return C(d + degree, d), the term count of a total-degree polynomial, if it is at most
    :data:`MAX_TERMS`; ``ValueError`` naming ``name`` otherwise (checked before any
    allocation; the count is computed without building it)."""
    count = 1
    for k in range(1, min(d, degree) + 1):  # C(d+degree, k) incrementally, exact in Python ints
        count = count * (max(d, degree) + k) // k
        if count > MAX_TERMS:
            break
    if count > MAX_TERMS:
        raise ValueError(
            f"{name}: a total-degree polynomial of degree {degree} in {d} variable(s) has more "
            f"than {MAX_TERMS} coefficients (the limit)"
        )
    return count


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        return None


def check_alloc(n_items: int, itemsize: int, name: str) -> None:
    """``ValueError`` naming ``name`` when ``n_items`` entries of ``itemsize`` bytes exceed the
    machine's physical memory (checked before allocating, instead of a MemoryError or an
    allocation the system cannot back)."""
    mem = _physical_memory()
    need = int(n_items) * int(itemsize)
    if mem is not None and need > mem:
        raise ValueError(
            f"{name}={n_items} needs {need / 2**30:.3g} GiB, more than this machine's "
            f"{mem / 2**30:.3g} GiB of memory"
        )


def check_no_overlap(out: np.ndarray, inputs: dict[str, Any]) -> None:
    """``ValueError`` when the output buffer ``out`` shares memory with one of ``inputs``
    (name -> array): a kernel writing ``out`` would change input it has not read yet."""
    for name, a in inputs.items():
        if isinstance(a, np.ndarray) and np.may_share_memory(out, a):
            raise ValueError(f"out must not share memory with {name}")


def finite_float(value: Any, name: str) -> float:
    """Return ``float(value)`` for a finite real number (NumPy 0-d arrays included)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    v = _check_real(value, name)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def load_npz(path: Any, name: str = "path") -> dict[str, np.ndarray]:
    """Read every array of a ``.npz`` file written by this package into a dict.

    No pickle: object arrays are refused. A missing file raises ``FileNotFoundError``; a file
    that is empty, truncated, not a zip archive (e.g. a ``.npy`` file) or holds object arrays
    raises ``ValueError`` naming ``name``.
    """
    import zipfile

    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{name}: {path!s} is not a readable .npz file ({exc})") from exc
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{name}: {path!s} is a single .npy array, not a .npz archive")
    try:
        with f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{name}: {path!s} is damaged or holds object arrays ({exc})") from exc


#: bit generators a saved RNG state may name (NumPy's own; nothing else is looked up by name)
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def bit_generator_from_state(state: Any, name: str = "rng_state") -> np.random.BitGenerator:
    """A new bit generator holding the saved ``state`` (a ``bit_generator.state`` dict).

    The generator's name must be one of :data:`BIT_GENERATORS` (an allow-list: a name read from
    a file is never looked up in ``numpy.random``); a malformed state raises ``ValueError``
    naming ``name``. Nothing else (NumPy's global RNG included) is touched.
    """
    if not isinstance(state, dict):
        raise TypeError(f"{name} must be a dict (a bit_generator.state), got {type(state).__name__}")
    kind = state.get("bit_generator")
    if not isinstance(kind, str) or kind not in BIT_GENERATORS:
        raise ValueError(f"{name}['bit_generator'] must be one of {BIT_GENERATORS}, got {kind!r}")
    bg = getattr(np.random, kind)()
    try:
        import copy

        bg.state = copy.deepcopy(state)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"{name} is not a valid {kind} state ({exc})") from exc
    return bg


def check_draws(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return a draw count as an int in [``minimum``, :data:`MAX_DRAWS`] (``ValueError`` naming
    ``name`` above it, before anything is allocated)."""
    v = check_int(value, name, minimum=minimum)
    if v > MAX_DRAWS:
        raise ValueError(f"{name} must be at most {MAX_DRAWS} draws per call, got {v}; "
                         "draw in several calls")
    return v
