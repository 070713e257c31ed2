"""Strict JSON for every file the package writes (history, checkpoints, diagnostics, demo).

JSON has no NaN or infinities (``json.dumps`` would write the non-standard tokens ``NaN`` and
``Infinity``). Files written here are strict JSON (``allow_nan=False``); a non-finite float is
written as

* ``null`` in exported reports (diagnostics, sampling history, demo summary and history), where
  it means "undefined" (e.g. a loss that overflowed, |Q| statistics of an empty set); or
* ``{"__float__": "nan" | "inf" | "-inf"}`` in the JSON document inside a checkpoint
  (``meta_json``), which :func:`restore_nonfinite` turns back into the float, so a restored
  run's records equal the saved ones.
"""
from __future__ import annotations

import json
import math
from typing import IO, Any

import numpy as np

__all__ = ["json_default", "to_jsonable", "dumps_strict", "dump_strict", "restore_nonfinite"]

#: key of the tagged form of a non-finite float in checkpoint JSON
FLOAT_KEY = "__float__"
_NONFINITE_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def json_default(o: Any) -> Any:
    """``json.dump(default=...)`` hook: NumPy scalars and arrays become Python values; anything
    else its ``str``."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _nonfinite(v: float, tagged: bool) -> Any:
    if not tagged:
        return None
    return {FLOAT_KEY: "nan" if v != v else ("inf" if v > 0 else "-inf")}


def to_jsonable(obj: Any, *, tagged: bool = False) -> Any:
    """Copy of ``obj`` with only JSON types: NumPy scalars and arrays become Python values,
    tuples lists, other objects their ``str``; a non-finite float becomes ``None`` (or its
    tagged form with ``tagged=True``)."""
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else _nonfinite(v, tagged)
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, tagged=tagged) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, tagged=tagged) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), tagged=tagged)
    return str(obj)


def dumps_strict(obj: Any, *, tagged: bool = False, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` ``(obj)`` with ``allow_nan=False``."""
    return json.dumps(to_jsonable(obj, tagged=tagged), allow_nan=False, **kwargs)


def dump_strict(obj: Any, f: IO[str], *, tagged: bool = False, **kwargs: Any) -> None:
    """``json.dump`` of :func:`to_jsonable` ``(obj)`` with ``allow_nan=False``."""
    json.dump(to_jsonable(obj, tagged=tagged), f, allow_nan=False, **kwargs)


def restore_nonfinite(obj: Any) -> Any:
    """Inverse of ``to_jsonable(..., tagged=True)`` for non-finite floats (other values as is)."""
    if isinstance(obj, dict):
        if set(obj) == {FLOAT_KEY} and obj[FLOAT_KEY] in _NONFINITE_NAMES:
            return _NONFINITE_NAMES[obj[FLOAT_KEY]]
        return {k: restore_nonfinite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [restore_nonfinite(v) for v in obj]
    return obj
