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
from .device import backend_report, cuda_module, cuda_status, is_device_array
from .rational import (
    LossAndGrad,
    RationalStats,
    TRPolicy,
    grad_options,
    kernel_target,
    normalised_weights,
    prepare_plan,
    target_array,
)

__all__ = ["DeviceRational", "backend_report", "count_tags_cuda", "cuda_available",
           "rational_eval_cuda", "rational_loss_and_grad_cuda"]


class DeviceRational(NamedTuple):
    """Device result of :func:`rational_eval_cuda`: ``value`` and ``q`` in the computation
    dtype and ``tag`` (uint8 codes), each of shape (N,) or (N, n_outputs); ``q`` is None
    unless requested. :meth:`to_host` assembles the structured array on request."""

    value: Any
    tag: Any
    q: Any

    def to_host(self) -> Any:
        """The transreal structured array on the host (and q, when it was requested), as
        :func:`zeroproof_nb.rational_eval` returns it."""
        value = self.value.copy_to_host()
        out = np.empty(value.shape, dtype=tr_dtype(value.dtype))
        out["value"] = value
        out["tag"] = self.tag.copy_to_host()
        if self.q is not None:
            return out, self.q.copy_to_host()
        return out


def cuda_available() -> bool:
    """Whether numba-cuda is installed and a GPU (or the simulator) can run kernels."""
    return cuda_status()[0]


def count_tags_cuda(tags: Any) -> np.ndarray:
    """Counts of REAL, PINF, NINF, PHI and invalid codes of a uint8 tag array (any shape; a
    device array is read in place), shape (5,) int64 on the host (the first four are what
    :func:`zeroproof_nb.count_tags` returns for valid tags)."""
    cuda = cuda_module()
    from .kernels import tags_cuda as _ktc

    if is_device_array(tags):
        td = cuda.as_cuda_array(tags) if hasattr(tags, "__cuda_array_interface__") and \
            hasattr(cuda, "as_cuda_array") else tags
        if np.dtype(td.dtype) != np.uint8:
            raise TypeError(f"tags must be uint8 on the device, got {td.dtype}")
        if not td.is_c_contiguous():
            raise ValueError("tags must be C-contiguous on the device")
        td = td.reshape(td.size)
    else:
        t = np.asarray(tags)
        if t.dtype != np.uint8:
            raise TypeError(f"tags must be a uint8 array, got dtype {t.dtype}")
        td = cuda.to_device(np.ascontiguousarray(t).reshape(-1))
    counts = cuda.to_device(np.zeros(_ktc.N_BINS, dtype=np.int64))
    if td.shape[0]:
        blocks, threads = _ktc.launch_config(td.shape[0])
        _ktc.count_tags_kernel[blocks, threads](td, counts)
    return counts.copy_to_host()


def device_x(cuda: Any, x: Any) -> tuple[Any, Any]:
    """``(device array, dtype probe)`` for x on the device (read in place; 1-D float64 or
    float32 checked), ``(None, x)`` for host x."""
    if not is_device_array(x):
        return None, x
    xd = cuda.as_cuda_array(x) if hasattr(cuda, "as_cuda_array") and \
        hasattr(x, "__cuda_array_interface__") else x
    if xd.ndim != 1:
        raise ValueError(f"x must be 1-D on the device (CUDA kernels are 1-D), got shape "
                         f"{tuple(xd.shape)}")
    if np.dtype(xd.dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise TypeError(f"x must be float64 or float32 on the device, got {xd.dtype}")
    return xd, np.empty(0, dtype=xd.dtype)


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
    cuda = cuda_module()
    from .kernels import rational_cuda as _kc

    xd, probe = device_x(cuda, x)
    on_device = xd is not None
    pb = prepare_plan(probe, theta, phi, basis, domain)
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


def rational_loss_and_grad_cuda(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "mse", huber_delta: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
) -> LossAndGrad:
    """:func:`zeroproof_nb.rational_loss_and_grad` on the GPU: the same loss, gradients, tags
    and statistics, computed by one fused kernel.

    ``x`` is (N,) on the host or the device (read in place); target and weights are host
    arrays, and the result (:class:`~zeroproof_nb.rational.LossAndGrad`) is on the host. Each
    tile of 128 points sums its contributions in thread order and the tile partials are added
    on the host in tile order, so the result is the same bits for every run; it agrees with the
    CPU pass to rounding (the summation orders differ).
    """
    cuda = cuda_module()
    from .kernels import rational as _kr
    from .kernels import rational_cuda as _kc

    xd, probe = device_x(cuda, x)
    pb = prepare_plan(probe, theta, phi, basis, domain)
    if pb.d != 0 or (xd is None and np.asarray(pb.x).ndim != 1):
        raise ValueError("rational_loss_and_grad_cuda takes 1-D x (CUDA kernels are 1-D in "
                         "this release)")
    opt = grad_options(pb.dtype, mode, delta, saturation_bound, loss, huber_delta, lambda_rej,
                        rejection_threshold, policy, q_epsilon)
    n = xd.shape[0] if xd is not None else pb.x.shape[0]
    shape = (n, pb.n_out) if pb.multi else (n,)
    tgt = np.ascontiguousarray(kernel_target(target_array(target, shape, pb.dtype), pb.n_out,
                                              False), dtype=np.float64)
    wn = normalised_weights(sample_weight, shape)
    dt = pb.dtype
    n_tp = pb.theta2.shape[1]
    n_tq1 = pb.phi2.shape[1]
    n_theta = pb.n_out * n_tp
    n_par = n_theta + pb.phi2.shape[0] * n_tq1
    tiles = _kc.n_tiles(n)
    partial = cuda.device_array((tiles, n_par + _kc.N_LOSS_SLOTS), dtype=np.float64)
    counts = cuda.to_device(np.zeros((tiles, _kc.N_COUNTS), dtype=np.int64))
    val = cuda.device_array((max(n, 1), pb.n_out), dtype=dt)
    tag = cuda.device_array((max(n, 1), pb.n_out), dtype=np.uint8)
    qd = cuda.device_array((max(n, 1), pb.n_out), dtype=dt)
    n_total = float(max(n, 1) * pb.n_out)
    if n > 0:
        tau_q = dt.type(opt.policy.tau_q_on) if opt.policy is not None else dt.type(0.0)
        tau_p = dt.type(opt.policy.tau_p_on) if opt.policy is not None else dt.type(0.0)
        kernel = _kc.fused_kernel(pb.basis_code, pb.dp, pb.dq, pb.n_out, pb.shared_q,
                                  opt.policy is not None, opt.eps > 0,
                                  opt.loss == _kr.LOSS_TUKEY)
        glim = float(np.finfo(dt).max) / n_total
        weight = wn if wn is not None else np.zeros((1, 1))
        kernel[tiles, _kc.TILE](
            xd if xd is not None else cuda.to_device(np.ascontiguousarray(pb.x)),
            cuda.to_device(tgt),
            cuda.to_device(np.ascontiguousarray(weight, dtype=np.float64)), wn is not None,
            1.0 / n_total, cuda.to_device(pb.theta2), cuda.to_device(pb.phi2), pb.scale,
            pb.shift, dt.type(1.0), opt.eps, tau_q, tau_p, opt.mode, opt.delta, opt.bound,
            opt.loss, opt.huber_delta, opt.lam, opt.inv_tau, glim, val, tag, qd, partial,
            counts)
        part = partial.copy_to_host()
        cnt = counts.copy_to_host().sum(axis=0)
    else:
        part = np.zeros((1, n_par + _kc.N_LOSS_SLOTS))
        cnt = np.zeros(_kc.N_COUNTS, dtype=np.int64)
    total = np.zeros(part.shape[1])
    for row in part:  # tile order: the same bits for every launch
        total += row
    y = np.empty(shape, dtype=tr_dtype(dt))
    q = np.empty(shape, dtype=dt)
    if n > 0:
        y["value"] = val.copy_to_host().reshape(shape)
        y["tag"] = tag.copy_to_host().reshape(shape)
        q[...] = qd.copy_to_host().reshape(shape)
    th_shape = (pb.n_out, n_tp) if pb.multi else (n_tp,)
    ph_shape = pb.phi2.shape if (pb.multi and not pb.shared_q) else (n_tq1,)
    data_loss = float(total[n_par])
    rej_loss = opt.lam * float(total[n_par + 1])
    q_src = q[:, 0] if (pb.multi and pb.shared_q) else q
    aq = np.abs(np.asarray(q_src, dtype=np.float64)).reshape(-1)
    fin = aq[np.isfinite(aq)]
    n_qeval = n * pb.phi2.shape[0]
    eager = {
        "q_min": float(fin.min()) if fin.size else float("nan"),
        "q_mean": float(fin.sum()) / fin.size if fin.size else float("nan"),
        "n_saturating": int(cnt[_kc.COUNT_SATURATING]),
        "n_mask_real": int(cnt[_kc.COUNT_MASK_REAL]),
        "near_pole_ratio": (int(cnt[_kc.COUNT_NEAR]) / n_qeval)
        if (n_qeval and opt.delta >= 0) else 0.0,
        "n_overflow_masked": int(cnt[_kc.COUNT_OVERFLOW]),
        "tag_counts": cnt[:4].copy(),
        "n_outputs": n * pb.n_out,
    }
    return LossAndGrad(
        loss=data_loss + rej_loss, data_loss=data_loss, rejection_loss=rej_loss,
        grad_theta=total[:n_theta].astype(dt).reshape(th_shape),
        grad_phi=total[n_theta:n_par].astype(dt).reshape(ph_shape),
        tags=y["tag"], y=y, q=q, stats=RationalStats(eager, q_src),
    )
