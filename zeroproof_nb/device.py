"""Which backend runs a call: ``device="cpu" | "cuda" | "auto"``.

``"cpu"`` runs the numba CPU kernels; ``"cuda"`` the numba-cuda kernels, and raises
:class:`CudaUnavailableError` (a ``RuntimeError``) naming what is missing when they cannot run
(numba-cuda not installed, no CUDA driver, no GPU); ``"auto"`` picks CUDA for input that is
already on a GPU (anything with ``__cuda_array_interface__``) or when a GPU is usable and the
call is one the CUDA kernels implement, else the CPU. The simulator
(``NUMBA_ENABLE_CUDASIM=1``) counts as usable for ``"cuda"`` (that is how CI tests the
kernels) but not for ``"auto"`` (it is orders of magnitude slower than the CPU kernels).

:func:`backend_report` is the line ``zeroproof-nb info`` prints.
"""
from __future__ import annotations

import os
from typing import Any

__all__ = ["DEVICES", "CudaUnavailableError", "backend_report", "check_device", "cuda_module",
           "cuda_status", "is_device_array", "resolve_device", "cuda_problem"]

#: accepted values of ``device=``
DEVICES = ("cpu", "cuda", "auto")


class CudaUnavailableError(RuntimeError):
    """``device="cuda"`` was asked for but CUDA kernels cannot run here (the message says
    why)."""


def simulator_enabled() -> bool:
    """Whether numba-cuda's simulator is selected (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


_STATUS: list = []


def cuda_status() -> tuple[bool, str]:
    """``(usable, description)``: whether CUDA kernels can run, and the GPU's name, the
    simulator, or what is missing. Probed once per process."""
    if _STATUS:
        return _STATUS[0]
    _STATUS.append(_probe())
    return _STATUS[0]


def cuda_problem() -> str | None:
    """``None`` when CUDA kernels can run here (a GPU, or the simulator under
    ``NUMBA_ENABLE_CUDASIM=1``), else what is missing, as one phrase."""
    ok, why = cuda_status()
    return None if ok else why


def _probe() -> tuple[bool, str]:
    try:
        from numba import cuda
    except ImportError:
        return False, "numba-cuda is not installed (pip install 'zeroproof_nb[cuda]')"
    if simulator_enabled():
        return True, "numba-cuda simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        from numba.cuda.cudadrv.driver import driver

        n_devices = driver.get_device_count()
    except Exception as exc:  # the driver library is missing or fails to initialise
        return False, f"no usable CUDA driver ({type(exc).__name__}: {_one_line(exc)})"
    if n_devices < 1:
        return False, "the CUDA driver reports no GPU"
    try:
        if not cuda.is_available():
            return False, "no usable CUDA GPU (numba.cuda.is_available() is False)"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        cc = ".".join(str(v) for v in dev.compute_capability)
    except Exception as exc:  # pragma: no cover - driver problems
        return False, f"CUDA initialisation failed ({type(exc).__name__}: {_one_line(exc)})"
    return True, f"{name} (compute capability {cc})"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()).rstrip(": ")


def cuda_module() -> Any:
    """``numba.cuda``, or :class:`CudaUnavailableError` naming what is missing."""
    ok, why = cuda_status()
    if not ok:
        raise CudaUnavailableError(f'device="cuda" needs a usable CUDA GPU: {why}')
    from numba import cuda

    return cuda


def is_device_array(x: Any) -> bool:
    """Whether ``x`` lives on a GPU (has ``__cuda_array_interface__``, or is a simulator
    array)."""
    if hasattr(x, "__cuda_array_interface__"):
        return True
    return type(x).__name__ == "FakeCUDAArray"


def check_device(device: Any, name: str = "device") -> str:
    """``device`` validated: one of :data:`DEVICES`."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"{name} must be one of {DEVICES}, got {device!r}")
    return device


def resolve_device(device: Any, *arrays: Any, supported: bool = True, name: str = "device") -> str:
    """The backend, ``"cpu"`` or ``"cuda"``, that runs a call with ``device`` and inputs
    ``arrays``: ``"cuda"`` raises :class:`CudaUnavailableError` when CUDA cannot run;
    ``"auto"`` gives ``"cuda"`` for device-resident input or a usable real GPU when
    ``supported`` (the call is one the CUDA kernels implement), else ``"cpu"``."""
    device = check_device(device, name)
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        cuda_module()
        return "cuda"
    on_device = any(is_device_array(a) for a in arrays)
    if on_device:
        cuda_module()
        return "cuda"
    if supported and not simulator_enabled() and cuda_status()[0]:
        return "cuda"
    return "cpu"


def backend_report() -> str:
    """One line for ``zeroproof-nb info``: the backend ``device="auto"`` picks and why."""
    ok, why = cuda_status()
    if ok and not simulator_enabled():
        return f"device='auto' -> cuda: {why}"
    if ok:
        return f"device='auto' -> cpu ({why}; device='cuda' runs the kernels in the simulator)"
    return f"device='auto' -> cpu (CUDA unavailable: {why})"
