"""Basis features of the rational model, as NumPy matrices, and the total-degree exponent table.

:func:`basis_features` gives psi_k(x), :func:`denominator_features` the denominator features
eta_k(x) (Q = 1 + features @ phi), both from the basis kernels of :mod:`.kernels.basis`; the
linearised fits and the tag-loss head build their least-squares problems from them.
:func:`monomial_exponents` orders the total-degree terms of n-D inputs (the kernels take the
read-only :func:`exponent_table`). Also importable from :mod:`zeroproof_nb.rational`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ._validation import (
    MAX_TERMS,
    as_float_array,
    check_alloc,
    check_bounds,
    check_choice,
    check_int,
    check_terms,
)
from .kernels import basis as _kb

__all__ = ["basis_features", "denominator_features", "exponent_table", "monomial_exponents"]


@lru_cache(maxsize=256)
def exponent_table(d: int, degree: int) -> np.ndarray:
    """The (read-only, memoised) exponent table of :func:`monomial_exponents`, as the kernels
    take it (unchecked arguments)."""
    e = _kb.monomial_exponents(d, degree)
    e.setflags(write=False)
    return e


def monomial_exponents(d: int, degree: int) -> np.ndarray:
    """Exponents of the total-degree monomials in ``d`` variables up to ``degree``.

    Returns an int64 array of shape (n_terms, d), n_terms = C(d + degree, d), constant term
    first, then by increasing total degree (lexicographically descending within a degree):
    for d=2, degree=2 the rows are 1, x0, x1, x0^2, x0 x1, x1^2.
    """
    d = check_int(d, "d", minimum=1)
    degree = check_int(degree, "degree", minimum=0)
    n = check_terms(d, degree, "degree")
    if n * d > 8 * MAX_TERMS:
        raise ValueError(f"d, degree: the exponent table would have {n} x {d} entries, more "
                         f"than {8 * MAX_TERMS} (the limit)")
    return exponent_table(d, degree).copy()


def basis_features(
    x: Any, degree: int, *, basis: str = "monomial", domain: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """Basis values psi_k(x) as a feature matrix.

    x of shape (N,) gives (N, degree+1) with columns psi_0..psi_degree; x of shape (N, d) gives
    (N, n_terms(d, degree)) with the total-degree products ordered as
    :func:`monomial_exponents`. dtype follows x (float32 stays float32).
    """
    degree = check_int(degree, "degree", minimum=0)
    basis = check_choice(basis, "basis", tuple(_kb.BASIS_CODES))
    lo, hi = check_bounds(domain, "domain")
    xa = as_float_array(x, "x", ndim=(1, 2))
    n_cols = check_terms(1 if xa.ndim == 1 else max(1, xa.shape[1]), degree, "degree")
    check_alloc(xa.shape[0] * n_cols, xa.dtype.itemsize, "len(x) * n_terms")
    dt = xa.dtype
    scale = dt.type(2.0 / (hi - lo))
    shift = dt.type(-(hi + lo) / (hi - lo))
    code = _kb.BASIS_CODES[basis]
    if xa.ndim == 1:
        out = np.empty((xa.shape[0], degree + 1), dtype=dt)
        if xa.shape[0]:
            _kb.features_1d(xa, code, degree, scale, shift, dt.type(1.0), out)
        return out
    d = xa.shape[1]
    if d < 1:
        raise ValueError(f"x must have at least one column, got shape {xa.shape}")
    exps = exponent_table(d, degree)
    out = np.empty((xa.shape[0], exps.shape[0]), dtype=dt)
    if xa.shape[0]:
        _kb.features_nd(xa, code, exps, degree, scale, shift, dt.type(1.0), out)
    return out


def denominator_features(
    x: Any, degree: int, *, basis: str = "monomial", domain: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """Denominator features eta_k(x), k = 1..degree, so that Q = 1 + features @ phi.

    eta_k = psi_k (the columns 1.. of :func:`basis_features`), except for the
    ``"chebyshev_anchored"`` basis (1-D x only): eta_k = m(t) T_{k-1}(t). Shape (N, n_q) with
    n_q = degree in 1-D, n_terms(d, degree) - 1 in n-D; dtype follows x.
    """
    degree = check_int(degree, "degree", minimum=0)
    basis = check_choice(basis, "basis", tuple(_kb.BASIS_CODES))
    if basis != "chebyshev_anchored":
        return basis_features(x, degree, basis=basis, domain=domain)[:, 1:]
    lo, hi = check_bounds(domain, "domain")
    xa = as_float_array(x, "x", ndim=(1, 2))
    if xa.ndim == 2:
        if xa.shape[1] != 1:
            raise ValueError(
                f"basis 'chebyshev_anchored' is for 1-D input, got x of shape {xa.shape}"
            )
        xa = xa[:, 0]
    xa = np.ascontiguousarray(xa)
    check_alloc(xa.shape[0] * max(degree, 1), xa.dtype.itemsize, "len(x) * degree")
    dt = xa.dtype
    out = np.empty((xa.shape[0], degree), dtype=dt)
    if xa.shape[0] and degree:
        _kb.denominator_features_1d(xa, _kb.CHEBYSHEV_ANCHORED, degree, dt.type(2.0 / (hi - lo)),
                                    dt.type(-(hi + lo) / (hi - lo)), dt.type(1.0), out)
    return out
