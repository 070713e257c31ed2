"""Series views of a 1-D TRRational: its P and Q as ``numpy.polynomial`` series, θ and φ from
given series, its poles and residues, and the re-expansion of its parameters on a new domain.

Functions of the layer (``layer`` is a :class:`~zeroproof_nb.layers.TRRational`) that its
methods :meth:`series`, :meth:`set_series`, :meth:`poles` and :meth:`set_domain` call.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.polynomial as npoly

from .._validation import check_nonnegative
from ..kernels import basis as _kb

#: A complex root counts as real when |imag| <= ROOT_IMAG_TOL * max(1, |real|) (double roots
#: come back from the companion matrix with imaginary parts ~ sqrt(machine eps)).
ROOT_IMAG_TOL = 1e-6


def series_class(basis: str) -> Any:
    return npoly.Chebyshev if basis == "chebyshev" else npoly.Polynomial


def anchor_x(domain: tuple[float, float], d_q: int) -> float:
    """The anchor t_a of the anchored denominator of degree d_q in units of x."""
    lo, hi = domain
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * _kb.anchor_point(d_q)


def series_coefficients(
    p: Any, q: Any, d_p: int, d_q: int, *, basis: str, denominator: str,
    domain: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """θ (d_p + 1,) and φ (d_q,) of the 1-D layer whose P/Q equals p/q.

    ``p`` and ``q`` are ``numpy.polynomial`` series (any kind and window: they are converted
    to the layer's basis on ``domain``); both are divided by the normaliser of Q, its constant
    term ("unit_constant") or its value at the anchor ("anchored"). Terms above the degrees are
    dropped. ``ValueError`` when the normaliser is zero (the denominator cannot be written in
    this parametrisation).
    """
    kind = series_class(basis)
    dom = list(domain)
    pc = p.convert(kind=kind, domain=dom, window=[-1, 1]) if basis == "chebyshev" else \
        p.convert(kind=kind)
    qc = q.convert(kind=kind, domain=dom, window=[-1, 1]) if basis == "chebyshev" else \
        q.convert(kind=kind)
    qcoef = np.asarray(qc.coef, dtype=np.complex128)
    scale_q = float(np.max(np.abs(qcoef))) if qcoef.size else 0.0
    if denominator == "anchored":
        norm = complex(qc(anchor_x(domain, d_q)))
    else:
        norm = complex(qcoef[0]) if qcoef.size else 0.0
    if not abs(norm) > 1e-12 * scale_q:
        raise ValueError(f"the denominator vanishes at its normalisation point ({denominator!r}"
                         f" denominator on domain {tuple(domain)}); use another domain")
    theta = np.zeros(d_p + 1, dtype=np.complex128)
    pcoef = np.asarray(pc.coef, dtype=np.complex128) / norm
    theta[:min(pcoef.size, d_p + 1)] = pcoef[:d_p + 1]
    qn = qcoef / norm
    phi = np.zeros(d_q, dtype=np.complex128)
    if denominator == "anchored":
        # (Q - 1)/m(t): exact division, since Q(t_a) = 1 is a root of Q - 1 at m's root
        rest = qn.copy()
        rest[0] -= 1.0
        quo, _ = npoly.chebyshev.chebdiv(rest, [1.0, _kb.anchor_slope(d_q)])
        phi[:min(quo.size, d_q)] = quo[:d_q]
    else:
        phi[:min(qn.size - 1, d_q)] = qn[1:d_q + 1]
    return np.ascontiguousarray(theta.real), np.ascontiguousarray(phi.real)


def q_polynomial(layer: Any, phi_row: np.ndarray) -> Any:
    """Q of the layer with the coefficient row ``phi_row`` as a ``numpy.polynomial`` series."""
    phi_row = np.asarray(phi_row, dtype=np.float64)
    if layer.denominator == "anchored":
        dom = list(layer.domain)
        m = npoly.Chebyshev([1.0, _kb.anchor_slope(max(phi_row.size, 1))], domain=dom)
        s = npoly.Chebyshev(phi_row if phi_row.size else [0.0], domain=dom)
        return 1.0 + m * s
    coef = np.concatenate(([1.0], phi_row))
    if layer.basis == "chebyshev":
        return npoly.Chebyshev(coef, domain=list(layer.domain))
    return npoly.Polynomial(coef)


def p_polynomial(layer: Any, theta_row: np.ndarray) -> Any:
    """P of the layer with the coefficient row ``theta_row`` as a ``numpy.polynomial`` series."""
    coef = np.asarray(theta_row, dtype=np.float64)
    if layer.basis == "chebyshev":
        return npoly.Chebyshev(coef, domain=list(layer.domain))
    return npoly.Polynomial(coef)


def layer_poles(layer: Any, return_residues: bool, near_axis: float | None) -> Any:
    """:meth:`TRRational.poles` of a 1-D layer (``near_axis`` not yet validated)."""
    if near_axis is not None:
        near_axis = check_nonnegative(near_axis, "near_axis")
    lo, hi = layer.domain

    def roots(row: np.ndarray) -> np.ndarray:
        if row.size == 0:
            return np.zeros(0)
        r = np.asarray(q_polynomial(layer, row).roots(), dtype=np.complex128)
        on_axis = np.abs(r.imag) <= ROOT_IMAG_TOL * np.maximum(1.0, np.abs(r.real))
        inside = (r.real >= lo) & (r.real <= hi)
        if near_axis is None:
            return np.sort(r.real[on_axis & inside])
        keep = inside & (on_axis | (np.abs(r.imag) <= near_axis))
        r = np.where(on_axis, r.real + 0j, r)[keep]
        return r[np.argsort(r.real, kind="stable")]

    def residues(theta_rows: np.ndarray, phi_row: np.ndarray, at: np.ndarray) -> np.ndarray:
        dq = q_polynomial(layer, phi_row).deriv()
        out = np.array([p_polynomial(layer, t)(at) / dq(at) for t in theta_rows])
        return out if near_axis is not None else out.real

    theta_rows = np.atleast_2d(layer.theta)
    if layer.phi.ndim == 1:
        found = roots(layer.phi)
        if not return_residues:
            return found
        res = residues(theta_rows, layer.phi, found)
        return found, (res[0] if layer.theta.ndim == 1 else res)
    found = [roots(row) for row in layer.phi]
    if not return_residues:
        return found
    return found, [residues(theta_rows[j:j + 1], row, f)[0]
                   for j, (row, f) in enumerate(zip(layer.phi, found))]


def reexpand(layer: Any, lo: float, hi: float) -> None:
    """Re-expand θ and φ of ``layer`` on the domain (lo, hi) so that P/Q stays the same
    function (:meth:`TRRational.set_domain`; the domain itself is set by the caller)."""
    if layer.denominator == "anchored" and (lo, hi) != tuple(layer.domain):
        theta_rows = np.atleast_2d(np.asarray(layer.theta, dtype=np.float64))
        phi_rows = np.atleast_2d(np.asarray(layer.phi, dtype=np.float64))
        new_theta = np.empty_like(theta_rows)
        new_phi = np.empty_like(phi_rows)
        for j in range(theta_rows.shape[0]):
            jq = 0 if phi_rows.shape[0] == 1 else j
            p = p_polynomial(layer, theta_rows[j])
            q = q_polynomial(layer, phi_rows[jq])
            new_theta[j], phi_j = series_coefficients(
                p, q, layer.d_p, layer.d_q, basis=layer.basis, denominator=layer.denominator,
                domain=(lo, hi))
            new_phi[jq] = phi_j
        layer.set_parameters([new_theta.reshape(layer.theta.shape),
                              new_phi.reshape(layer.phi.shape)])
    elif layer.basis == "chebyshev" and (lo, hi) != tuple(layer.domain):
        if layer.input_dim != 1:
            raise ValueError("set_domain re-expands 1-D Chebyshev layers only; give the "
                             "domain of an n-D Chebyshev layer to its constructor")
        old = list(layer.domain)
        phi_rows = np.atleast_2d(np.asarray(layer.phi, dtype=np.float64))
        theta_rows = np.atleast_2d(np.asarray(layer.theta, dtype=np.float64))
        new_q = [npoly.Chebyshev(np.r_[1.0, row], domain=old).convert(domain=[lo, hi]).coef
                 for row in phi_rows]
        new_p = [npoly.Chebyshev(row, domain=old).convert(domain=[lo, hi]).coef
                 for row in theta_rows]
        q0 = np.array([q[0] for q in new_q])
        if np.any(np.abs(q0) < 1e-12 * np.array([np.max(np.abs(q)) for q in new_q])):
            raise ValueError("domain: Q has no constant term on the new interval; "
                             "construct the layer with this domain instead")
        n_p, n_q = theta_rows.shape[1], phi_rows.shape[1] + 1
        theta = np.array([np.pad(p, (0, n_p - p.size))[:n_p] /
                          q0[min(i, q0.size - 1)] for i, p in enumerate(new_p)])
        phi = np.array([np.pad(q, (0, n_q - q.size))[1:n_q] / q0[i]
                        for i, q in enumerate(new_q)])
        layer.set_parameters([theta.reshape(layer.theta.shape), phi.reshape(layer.phi.shape)])
