"""Where kernels can run: whether numba's CUDA target is usable here, and if not, why."""
from __future__ import annotations

__all__ = ["cuda_problem"]


def cuda_problem() -> str | None:
    """``None`` if numba's CUDA target can run kernels here (a GPU, or the simulator under
    ``NUMBA_ENABLE_CUDASIM=1``), else why not, as one phrase."""
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - depends on the install
        return (f"numba-cuda is not installed ({type(exc).__name__}); "
                f"`pip install \"zeroproof-nb[cuda]\"`")
    try:
        if cuda.is_available():
            return None
        return "no usable GPU or CUDA driver"
    except Exception as exc:  # pragma: no cover - driver problems
        return f"the CUDA driver failed ({exc})"
