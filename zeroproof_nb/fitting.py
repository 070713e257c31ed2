"""Linearised least-squares fit of a rational model (Sanathanan–Koerner iterations).

Gradient descent on ½(P/Q − y)² from a pole-free start rarely moves poles into the data: the
loss has a barrier wherever a pole would cross a sample. The linearised residual P − y·Q is
linear in (θ, φ), so a least-squares solve finds the poles directly; a few re-weighted solves
(weights 1/|Q_prev|, Sanathanan & Koerner 1963) remove the linearisation's bias toward small Q.
Use it to initialise a model, then refine with the Trainer.

Robust fits (``loss="huber"`` or ``"tukey"``) iterate: residuals y − P/Q of the current fit,
their scale σ (the normalised MAD, unless ``loss_scale`` is given), IRLS weights ω(r) of the
robust loss with threshold 1.345σ (Huber) or 4.685σ (Tukey), and a new re-weighted solve, so
that gross outliers lose their pull on the poles (Tukey: outliers beyond 4.685σ get weight 0).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import as_float_array, check_choice, check_int, check_positive
from .kernels import least_squares as _kls
from .kernels import least_squares_cpu as _klc
from .least_squares import robust_scale, robust_threshold
from .rational import basis_features

__all__ = ["linearized_fit"]


def linearized_fit(
    x: Any,
    y: Any,
    d_p: int,
    d_q: int,
    *,
    basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0),
    iterations: int = 3,
    sample_weight: Any = None,
    loss: str = "l2",
    loss_scale: float | None = None,
    robust_iterations: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit θ, φ of y ≈ P/Q with Q = 1 + Σ_{k≥1} φ_k ψ_k by re-weighted linear least squares.

    Parameters
    ----------
    x : (N,) or (N, d) array-like
    y : (N,) array-like; non-finite targets (labelled poles) are skipped
    d_p, d_q : degrees of P and Q (total degree for n-D input)
    basis, domain : as in :func:`zeroproof_nb.rational_eval`
    iterations : int >= 1, number of Sanathanan–Koerner solves (1 = plain linearisation)
    sample_weight : (N,) array-like >= 0, optional
    loss : {"l2", "huber", "tukey"}
    loss_scale : float > 0, optional, residual scale σ of a robust loss (default: the MAD of
        each iterate's residuals)
    robust_iterations : int >= 1, IRLS rounds of a robust fit (each of ``iterations`` solves)

    Returns
    -------
    theta : (n_terms(d_p),) float64
    phi : (n_terms(d_q) − 1,) float64
    """
    d_p = check_int(d_p, "d_p", minimum=0)
    d_q = check_int(d_q, "d_q", minimum=0)
    iterations = check_int(iterations, "iterations", minimum=1)
    loss = check_choice(loss, "loss", ("l2", "huber", "tukey"))
    if loss_scale is not None:
        check_positive(loss_scale, "loss_scale")
    robust_iterations = check_int(robust_iterations, "robust_iterations", minimum=1)
    xa = as_float_array(x, "x", ndim=(1, 2), dtype=np.float64)
    ya = as_float_array(y, "y", ndim=1, dtype=np.float64)
    if ya.shape[0] != xa.shape[0]:
        raise ValueError(f"y must have length {xa.shape[0]}, got {ya.shape[0]}")
    w = np.ones_like(ya) if sample_weight is None else as_float_array(
        sample_weight, "sample_weight", ndim=1, dtype=np.float64)
    if w.shape != ya.shape or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite, >= 0, with the length of y")
    keep = np.isfinite(ya) & np.all(np.isfinite(xa.reshape(xa.shape[0], -1)), axis=1) & (w > 0)
    xa, ya, w = xa[keep], ya[keep], w[keep]
    psi_p = basis_features(xa, d_p, basis=basis, domain=domain)
    psi_q = basis_features(xa, d_q, basis=basis, domain=domain)[:, 1:]
    n_unknown = psi_p.shape[1] + psi_q.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):
        finite_rows = np.all(np.isfinite(psi_p), axis=1) & np.all(np.isfinite(psi_q), axis=1) \
            & np.all(np.isfinite(ya[:, None] * psi_q), axis=1)
    if not finite_rows.all():
        raise ValueError(
            f"x: the basis features of {int((~finite_rows).sum())} points overflow (|x|^degree "
            "or |y|·|x|^d_q beyond the float64 range); rescale x and y, or use the Chebyshev "
            "basis with a domain that covers x")
    if ya.shape[0] < n_unknown:
        raise ValueError(f"need at least {n_unknown} finite samples, got {ya.shape[0]}")
    # P(x) − y·(Σ φ_k ψ_k) = y
    a = np.hstack([psi_p, -ya[:, None] * psi_q])
    theta, phi = _sk_solve(a, ya, w, psi_q, psi_p.shape[1], iterations)
    if loss != "l2":
        omega = np.empty_like(ya)
        for _ in range(robust_iterations):
            r = ya - (psi_p @ theta) / (1.0 + psi_q @ phi)
            sigma = loss_scale if loss_scale is not None else robust_scale(r)
            if not sigma > 0:  # an exact fit: nothing to down-weight
                break
            _klc.irls_weights(_kls.ROBUST_CODES[loss], np.ascontiguousarray(r),
                              robust_threshold(loss, sigma), omega)
            if np.count_nonzero(omega) < n_unknown:
                break
            new = _sk_solve(a, ya, w * omega, psi_q, psi_p.shape[1], iterations)
            step = max(np.max(np.abs(new[0] - theta), initial=0.0),
                       np.max(np.abs(new[1] - phi), initial=0.0))
            theta, phi = new
            if step <= 1e-12 * max(1.0, np.max(np.abs(theta)), np.max(np.abs(phi), initial=0.0)):
                break
    return np.ascontiguousarray(theta), np.ascontiguousarray(phi)


def _sk_solve(a: np.ndarray, y: np.ndarray, w: np.ndarray, psi_q: np.ndarray, n_p: int,
              iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """``iterations`` Sanathanan–Koerner solves of the weighted linearised system."""
    row_w = np.sqrt(w)
    theta = phi = None
    for _ in range(iterations):
        try:
            sol, *_ = np.linalg.lstsq(a * row_w[:, None], y * row_w, rcond=None)
        except np.linalg.LinAlgError as exc:
            raise ValueError(f"x, y: the linearised least-squares system has no solution "
                             f"({exc}); rescale x and y") from exc
        theta, phi = sol[:n_p], sol[n_p:]
        q = 1.0 + psi_q @ phi
        # SK re-weighting: divide each residual by |Q_prev|, floored to keep rows bounded
        row_w = np.sqrt(w) / np.maximum(np.abs(q), 1e-8 * max(1.0, float(np.max(np.abs(q)))))
    return theta, phi
