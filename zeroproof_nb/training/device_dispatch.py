"""Where a Trainer's passes run: ``TrainingConfig.device`` resolved once per trainer.

``"cpu"`` (default) runs everything on the CPU kernels. ``"cuda"`` runs the passes over the
pool and the batches of a 1-D :class:`~zeroproof_nb.layers.TRRational` on the GPU: the
Levenberg-Marquardt epoch's passes (:func:`zeroproof_nb.least_squares_cuda.levenberg_marquardt_cuda`,
steps solved on the host from the normal equations, and the forward pass of its epoch record),
the fused loss-and-gradient pass of the first-order batches and of their epoch record, and |Q|
on the pool for the samplers; the
optimizer steps, the draws, the held-out evaluation and the histories stay on the host, so the
per-epoch records and timings keep their CPU meaning. It raises the
:class:`~zeroproof_nb.device.CudaUnavailableError` of :mod:`zeroproof_nb.device` when no GPU
is usable, and ``ValueError`` for a model the CUDA kernels do not cover. ``"auto"`` picks
CUDA where ``device="cuda"`` would run on a real GPU, else the CPU (the simulator counts only
for an explicit ``"cuda"``).
"""
from __future__ import annotations

from typing import Any, Callable

from ..device import check_device, resolve_device
from ..layers import TRRational
from ..least_squares import levenberg_marquardt

__all__ = ["trainer_device", "lm_solver"]


def trainer_device(device: Any, model: Any) -> str:
    """"cpu" or "cuda": the backend of a Trainer of ``model`` with ``config.device``."""
    device = check_device(device, "device")
    if device == "cpu":
        return "cpu"
    one_d = isinstance(model, TRRational) and model.input_dim == 1
    if device == "cuda" and not one_d:
        what = (f"a TRRational with input_dim={model.input_dim}"
                if isinstance(model, TRRational) else type(model).__name__)
        raise ValueError(f"device='cuda' trains 1-D TRRational models (the CUDA kernels are "
                         f"1-D), got {what}; use device='cpu'")
    return resolve_device(device, supported=one_d)


def lm_solver(device: str) -> Callable[..., Any]:
    """The Levenberg-Marquardt solver of ``device`` ("cpu" or "cuda"; same arguments)."""
    if device == "cuda":
        from ..least_squares_cuda import levenberg_marquardt_cuda

        return levenberg_marquardt_cuda
    return levenberg_marquardt
