"""The Gauss-Newton pass on a CUDA GPU: :func:`rational_normal_equations_cuda`, beside the CPU
:func:`zeroproof_nb.least_squares.rational_normal_equations` (same arguments, same result to
rounding: the summation orders differ).

One kernel (:mod:`zeroproof_nb.kernels.least_squares_cuda`) computes every point's terms;
tiles of 128 points reduce them by a fixed tree and the tile rows are added here in tile order,
so the result is the same bits for every run on a given device. The regulariser is added as on
the CPU (:func:`~zeroproof_nb.kernels.least_squares_cpu.add_regulariser`). 1-D x only.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_nonnegative
from .device import cuda_module, is_device_array
from .kernels import least_squares_cpu as _klc
from .least_squares import NormalEquations, setup_pass
from .rational import TRPolicy

__all__ = ["rational_normal_equations_cuda"]


def rational_normal_equations_cuda(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "l2", loss_scale: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
    alpha_phi: float = 0.0, hessian: bool = True,
) -> NormalEquations:
    """L, its gradient and Gauss-Newton matrix in one GPU pass.

    Parameters
    ----------
    x : (N,) array-like (host; 1-D: the CUDA kernels are 1-D)
    target, theta, phi, ... : as in :func:`zeroproof_nb.least_squares.rational_normal_equations`

    Returns
    -------
    NormalEquations
        ``hessian`` (n, n) float64 symmetric (None without ``hessian``), ``gradient`` (n,),
        losses and counts as on the CPU.
    """
    cuda = cuda_module()
    from .kernels import least_squares_cuda as _kgc

    if is_device_array(x):
        raise TypeError("rational_normal_equations_cuda takes host x (copy it with "
                        "copy_to_host() first)")
    s = setup_pass(x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
                   sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
                   q_epsilon)
    alpha = check_nonnegative(alpha_phi, "alpha_phi")
    pb = s.pb
    if pb.d != 0:
        raise ValueError("rational_normal_equations_cuda takes 1-D x (CUDA kernels are 1-D in "
                         "this release)")
    want_h = bool(hessian)
    n = s.x2.shape[0]
    n_par = pb.theta2.size + pb.phi2.size
    n_tri = _kgc.n_triangle(n_par) if want_h else 0
    theta2 = np.ascontiguousarray(pb.theta2, dtype=np.float64)
    phi2 = np.ascontiguousarray(pb.phi2, dtype=np.float64)
    tiles = _kgc.n_tiles(n)
    if n > 0:
        (basis_code, _deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode_code,
         delta_v, bound, kind, c, lam, inv_tau) = s.scalars
        kernel = _kgc.normal_equations_kernel(basis_code, pb.dp, pb.dq, pb.n_out, pb.shared_q,
                                              want_h)
        partial = cuda.device_array((tiles, n_tri + n_par + _kgc.N_SUM_SLOTS), dtype=np.float64)
        counts = cuda.to_device(np.zeros((tiles, _kgc.N_COUNTS), dtype=np.int64))
        kernel[tiles, _kgc.TILE](
            cuda.to_device(np.ascontiguousarray(s.x2[:, 0])), cuda.to_device(s.target),
            cuda.to_device(s.weight), s.has_w, s.w_const, cuda.to_device(theta2),
            cuda.to_device(phi2), scale, shift, has_eps, eps, has_policy, tau_q, tau_p,
            mode_code, delta_v, bound, kind, c, lam, inv_tau, partial, counts)
        part = partial.copy_to_host()
        cnt = counts.copy_to_host().sum(axis=0)
    else:
        part = np.zeros((1, n_tri + n_par + _kgc.N_SUM_SLOTS))
        cnt = np.zeros(_kgc.N_COUNTS, dtype=np.int64)
    total = np.zeros(part.shape[1])
    for row in part:  # tile order: the same bits for every launch
        total += row
    h = np.zeros((n_par, n_par) if want_h else (1, 1))
    if want_h:
        iu = np.triu_indices(n_par)
        h[iu] = total[:n_tri]
        h.T[iu] = total[:n_tri]
    g = total[n_tri:n_tri + n_par].copy()
    reg = _klc.add_regulariser(alpha, phi2, pb.theta2.size, h, g, want_h)
    data = float(total[n_tri + n_par])
    rej = s.scalars[-2] * float(total[n_tri + n_par + 1])
    return NormalEquations(
        hessian=h if want_h else None, gradient=g, loss=data + rej + reg, data_loss=data,
        rejection_loss=rej, n_used=int(cnt[_klc.C_USED]),
        n_finite_target=int(cnt[_klc.C_TARGET]), n_real=int(cnt[_klc.C_REAL]),
    )
