"""zeroproof_nb: Numba-accelerated transreal kernels for training rational models near poles.

Top-level names are imported lazily from their modules (numba compiles on first call anyway),
so ``import zeroproof_nb`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # core: tags, dtypes, IEEE bridge, elementwise ops, reductions
    **{
        name: "zeroproof_nb.core"
        for name in (
            "TRTag", "tr_dtype", "tr_array", "is_tr_array", "from_ieee", "to_ieee", "as_tags",
            "count_tags", "tr_add", "tr_sub", "tr_mul", "tr_div", "tr_neg", "tr_abs", "tr_sign",
            "tr_sqrt", "tr_log", "tr_pow_int", "tr_sum", "tr_mean",
        )
    },
    # rational evaluation, fused loss and gradient, tag policy
    **{
        name: "zeroproof_nb.rational"
        for name in (
            "rational_eval", "rational_loss_and_grad", "monomial_exponents", "TRPolicy",
            "LossAndGrad",
        )
    },
    # gradient modes and the hybrid schedule
    **{
        name: "zeroproof_nb.gradients"
        for name in (
            "GradientMode", "ScheduleType", "HybridGradientSchedule", "create_default_schedule",
            "HybridGradientContext",
        )
    },
    "TRRational": "zeroproof_nb.layers",
    "fit_rational": "zeroproof_nb.fitting",
    "RationalFit": "zeroproof_nb.fitting",
    "linearized_fit": "zeroproof_nb.fitting",
    "SGD": "zeroproof_nb.optim",
    "Adam": "zeroproof_nb.optim",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zeroproof_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
