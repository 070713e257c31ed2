"""JSON helpers shared by the exporters (history, checkpoints, sampling history, demo)."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["json_default"]


def json_default(o: Any) -> Any:
    """``json.dump(default=...)`` hook: NumPy scalars and arrays become Python values; anything
    else its ``str``."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
