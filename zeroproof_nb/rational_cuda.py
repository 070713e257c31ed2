"""Rational evaluation on a CUDA GPU: :func:`rational_eval_cuda`, beside the CPU
:func:`zeroproof_nb.rational_eval` (same arguments, same values and tags).

Needs the ``cuda`` extra (numba-cuda). Host NumPy input is copied to the device and the result
comes back as the transreal structured array; input that is already on the device (anything
with ``__cuda_array_interface__``: numba device arrays, CuPy, PyTorch CUDA tensors) is read in
place and the result stays there, as separate value, tag and Q device arrays.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._validation import check_nonnegative
from .core import tr_dtype
from .rational import TRPolicy, _prepare

__all__ = ["DeviceRational", "cuda_available", "rational_eval_cuda"]


class DeviceRational(NamedTuple):
    """Device result of :func:`rational_eval_cuda`: ``value`` and ``q`` in the computation
    dtype and ``tag`` (uint8 codes), each of shape (N,) or (N, n_outputs); ``q`` is None
    unless requested."""

    value: Any
    tag: Any
    q: Any


def cuda_available() -> bool:
    """Whether numba-cuda is installed and a GPU (or the simulator) can run kernels."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # pragma: no cover - driver problems
        return False


def _cuda() -> Any:
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("rational_eval_cuda needs numba-cuda: pip install 'zeroproof_nb[cuda]'") \
            from exc
    return cuda


def _is_device_array(cuda: Any, x: Any) -> bool:
    if hasattr(cuda, "is_cuda_array"):
        return bool(cuda.is_cuda_array(x))
    return type(x).__name__ == "FakeCUDAArray"  # the simulator has no is_cuda_array


def rational_eval_cuda(
    x: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), return_q: bool = False,
    policy: TRPolicy | None = None, q_epsilon: float = 0.0,
) -> Any:
    """Evaluate y = P(x)/Q(x) with transreal tags on the GPU, one thread per point.

    Parameters
    ----------
    x : (N,) float64/float32 NumPy array, or a device array of that shape and dtype
    theta, phi, basis, domain, policy, q_epsilon : as in :func:`zeroproof_nb.rational_eval`
        (1-D input only: n-D layers run on the CPU)
    return_q : bool, also return the signed Q divided by

    Returns
    -------
    Host x: the transreal structured array of :func:`zeroproof_nb.rational_eval` (and q).
    Device x: :class:`DeviceRational` of device arrays (``q`` None without ``return_q``).
    """
    cuda = _cuda()
    from .kernels import rational_cuda as _kc

    on_device = _is_device_array(cuda, x)
    if on_device:
        xd = cuda.as_cuda_array(x) if hasattr(cuda, "as_cuda_array") else x
        if xd.ndim != 1:
            raise ValueError(f"x must be 1-D on the device (CUDA kernels are 1-D), got shape "
                             f"{xd.shape}")
        if xd.dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise TypeError(f"x must be float64 or float32 on the device, got {xd.dtype}")
        probe = np.empty(0, dtype=xd.dtype)
    else:
        probe = x
    pb = _prepare(probe, theta, phi, basis, domain)
    if pb.d != 0 or (not on_device and np.asarray(pb.x).ndim != 1):
        raise ValueError("rational_eval_cuda takes 1-D x (CUDA kernels are 1-D in this release)")
    if policy is not None and not isinstance(policy, TRPolicy):
        raise TypeError(f"policy must be a TRPolicy or None, got {type(policy).__name__}")
    dt = pb.dtype
    eps = dt.type(check_nonnegative(q_epsilon, "q_epsilon"))
    if not on_device:
        xd = cuda.to_device(np.ascontiguousarray(pb.x))
    n = xd.shape[0]
    val = cuda.device_array((n, pb.n_out), dtype=dt)
    tag = cuda.device_array((n, pb.n_out), dtype=np.uint8)
    q = cuda.device_array((n, pb.n_out) if return_q else (1, 1), dtype=dt)
    if n:
        tau_q = dt.type(policy.tau_q_on) if policy is not None else dt.type(0.0)
        tau_p = dt.type(policy.tau_p_on) if policy is not None else dt.type(0.0)
        kernel = _kc.forward_kernel(pb.basis_code, pb.dp, pb.dq, pb.n_out, pb.shared_q,
                                    policy is not None, eps > 0, return_q)
        blocks, threads = _kc.launch_config(n)
        kernel[blocks, threads](xd, cuda.to_device(pb.theta2), cuda.to_device(pb.phi2),
                                pb.scale, pb.shift, dt.type(1.0), eps, tau_q, tau_p, val, tag, q)
    shape = pb.out_shape if not on_device else ((n, pb.n_out) if pb.multi else (n,))
    if on_device:
        def view(a: Any) -> Any:
            return a if pb.multi else a.reshape(n)

        return DeviceRational(view(val), view(tag), view(q) if return_q else None)
    out = np.empty(shape, dtype=tr_dtype(dt))
    out["value"] = val.copy_to_host().reshape(shape)
    out["tag"] = tag.copy_to_host().reshape(shape)
    if return_q:
        return out, q.copy_to_host().reshape(shape)
    return out
