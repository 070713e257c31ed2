"""Per-point basis evaluation: Horner / Clenshaw sums and basis feature rows.

Every per-point function here is a small scalar ``@njit`` function with no allocation, so that
(a) a kernel that calls it with a degree frozen at compile time gets (after LLVM inlines it)
fully unrolled loops that LLVM can vectorise across points, and (b) a CUDA kernel can compile the
same source as a device function.

Bases (codes are compile-time constants of the specialised kernels):

* ``MONOMIAL``: psi_k(x) = x**k, no domain mapping (the ``domain`` only matters for Chebyshev).
* ``CHEBYSHEV``: psi_k(x) = T_k(t) with t = x*scale + shift, the affine map of ``domain`` onto
  [-1, 1] (scale = 2/(hi-lo), shift = -(hi+lo)/(hi-lo), exactly 1 and 0 for (-1, 1)).
* ``CHEBYSHEV_ANCHORED``: P as for ``CHEBYSHEV``; the denominator is anchored at a point
  t_a < -1 below the domain instead of having its T_0 coefficient fixed:
  Q(t) = 1 + m(t) * sum_{k=0..d_q-1} phi_k T_k(t) with m(t) = 1 - t/t_a, so Q(t_a) = 1 and Q
  can vanish anywhere in [-1, 1] at every d_q >= 1 (with the T_0 coefficient fixed to 1, Q can
  never vanish at t = 0 when d_q = 1, nor at pairs of points with t_1 t_2 = -1/2 when d_q = 2).
  The anchor depends on d_q: t_a = -cosh(acosh(G)/d_q) with G = ``ANCHOR_GROWTH``, the point
  where T_{d_q} reaches G. A Q normalised at t_a can be small on the domain relative to 1 by up
  to the factor |Q(t_a)| / max_domain |Q| <= T_{d_q}(|t_a|) = G, so at most log10(G) digits are
  lost to the normalisation, at every degree (a fixed anchor at -2.5 loses 3.8 digits at
  d_q = 6). t_a = -10 (d_q = 1), -2.35 (2), -1.54 (3), -1.29 (4), -1.13 (6), -1.03 (12).
  The denominator features are eta_k = m(t) T_{k-1}(t), k = 1..d_q. 1-D only.

The denominator of the other bases is Q = 1 + sum_{k=1..d_q} phi_k psi_k (eta_k = psi_k).

n-D inputs use total-degree products psi_e(x) = prod_j b_{e_j}(x_j) of the same 1-D bases, with
the exponent rows ``e`` ordered as :func:`monomial_exponents` returns them (constant first).
"""
from __future__ import annotations

import math
from math import comb

import numpy as np
from numba import njit

MONOMIAL = 0
CHEBYSHEV = 1
CHEBYSHEV_ANCHORED = 2
BASIS_CODES = {"monomial": MONOMIAL, "chebyshev": CHEBYSHEV,
               "chebyshev_anchored": CHEBYSHEV_ANCHORED}
#: T_{d_q} at the anchor of the anchored denominator (see the module notes).
ANCHOR_GROWTH = 10.0


# ----------------------------------------------------------------------------------------------
# total-degree exponent tables (Python, cached by the caller)


def n_terms(d: int, degree: int) -> int:
    """Number of monomials of total degree <= ``degree`` in ``d`` variables: C(d+degree, d)."""
    return comb(d + degree, d)


def monomial_exponents(d: int, degree: int) -> np.ndarray:
    """Exponent rows of the total-degree monomials in ``d`` variables, shape (n_terms, d), int64.

    Ordered by total degree (constant term first), then lexicographically descending in the
    exponents, so that the first d+1 rows are 1, x_0, x_1, ..., x_{d-1}.
    """
    rows: list[list[int]] = []
    for total in range(degree + 1):
        # compositions of ``total`` into d parts, lexicographically descending (iterative: no
        # recursion depth that grows with d)
        a = [total] + [0] * (d - 1)
        while True:
            rows.append(list(a))
            j = d - 2
            while j >= 0 and a[j] == 0:
                j -= 1
            if j < 0:
                break
            rest = sum(a[j + 1:])
            a[j] -= 1
            a[j + 1] = rest + 1
            for k in range(j + 2, d):
                a[k] = 0
    out = np.array(rows, dtype=np.int64).reshape(len(rows), d)
    return out


# ----------------------------------------------------------------------------------------------
# 1-D sums. ``c`` is a 2-D coefficient array, ``j`` its row (the output head).


@njit(error_model="numpy")
def poly_sum(basis, c, j, deg, t):
    """sum_{k=0..deg} c[j, k] * psi_k(t) (Horner for monomials, Clenshaw for Chebyshev)."""
    if basis == MONOMIAL:
        acc = c[j, deg]
        for k in range(deg - 1, -1, -1):
            acc = acc * t + c[j, k]
        return acc
    else:
        b1 = c[j, deg] - c[j, deg]  # typed zero
        b2 = b1
        t2 = t + t
        for k in range(deg, 0, -1):
            b0 = c[j, k] + t2 * b1 - b2
            b2 = b1
            b1 = b0
        return c[j, 0] + t * b1 - b2


@njit(error_model="numpy")
def mapped_point(basis, x, scale, shift):
    """The basis coordinate t of x: x*scale + shift (the domain onto [-1, 1]) for the Chebyshev
    bases, x itself for the monomial basis."""
    if basis != MONOMIAL:
        return x * scale + shift
    return x


@njit(error_model="numpy")
def anchor_point(deg):
    """The anchor t_a = -cosh(acosh(G)/deg) of the anchored denominator of degree deg >= 1."""
    return -math.cosh(math.acosh(ANCHOR_GROWTH) / max(deg, 1))


@njit(error_model="numpy")
def anchor_slope(deg):
    """-1/t_a: the anchor factor is m(t) = 1 + anchor_slope(deg) * t."""
    return -1.0 / anchor_point(deg)


@njit(error_model="numpy")
def anchor_factor(t, deg, one):
    """m(t) = 1 - t/t_a of the anchored denominator of degree ``deg`` (float64 arithmetic:
    with a float32 ``t`` the denominator is summed in float64)."""
    return one + t * anchor_slope(deg)


@njit(error_model="numpy")
def denom_sum(basis, c, j, deg, t, one):
    """The denominator Q at t: 1 + sum_{k=1..deg} c[j, k-1] * eta_k(t) (see the module notes;
    eta_k = psi_k, or m(t) T_{k-1}(t) for the anchored basis)."""
    if deg == 0:
        return one
    if basis == CHEBYSHEV_ANCHORED:
        return one + anchor_factor(t, deg, one) * poly_sum(CHEBYSHEV, c, j, deg - 1, t)
    if basis == MONOMIAL:
        acc = c[j, deg - 1]
        for k in range(deg - 2, -1, -1):
            acc = acc * t + c[j, k]
        return acc * t + one
    else:
        b1 = c[j, 0] - c[j, 0]
        b2 = b1
        t2 = t + t
        for k in range(deg, 0, -1):
            b0 = c[j, k - 1] + t2 * b1 - b2
            b2 = b1
            b1 = b0
        return one + t * b1 - b2


@njit(error_model="numpy")
def basis_row_1d(basis, t, deg, one, row, off):
    """row[off + k] = psi_k(t) for k = 0..deg."""
    row[off] = one
    if deg >= 1:
        row[off + 1] = t
    if basis == MONOMIAL:
        for k in range(2, deg + 1):
            row[off + k] = row[off + k - 1] * t
    else:
        t2 = t + t
        for k in range(2, deg + 1):
            row[off + k] = t2 * row[off + k - 1] - row[off + k - 2]


@njit(error_model="numpy")
def denominator_row_1d(basis, psi, dq, slope, out):
    """out[k] = eta_k for k = 1..dq from the basis row ``psi`` (psi_0 .. psi_max(1, dq)): psi_k,
    or for the anchored basis m(t) psi_{k-1} with m(t) = 1 + slope psi_1 (``slope`` =
    :func:`anchor_slope` (dq)); out[0] is not written. Q = 1 + sum_k phi_{k-1} out[k]."""
    if dq < 1:
        return
    if basis == CHEBYSHEV_ANCHORED:
        m = 1.0 + slope * psi[1]
        for k in range(1, dq + 1):
            out[k] = m * psi[k - 1]
    else:
        for k in range(1, dq + 1):
            out[k] = psi[k]


# ----------------------------------------------------------------------------------------------
# n-D features: per-dimension tables, then products over the exponent rows


@njit(error_model="numpy")
def basis_row_nd(basis, xrow, scale, shift, exps, n_t, deg, one, table, row):
    """row[k] = prod_j b_{exps[k, j]}(t_j) for k < n_t, t_j = x_j (monomial) or the mapped x_j.

    ``table`` is scratch of shape (d, deg+1).
    """
    d = exps.shape[1]
    for jd in range(d):
        basis_row_1d(basis, mapped_point(basis, xrow[jd], scale, shift), deg, one, table[jd], 0)
    for k in range(n_t):
        acc = one
        for jd in range(d):
            acc = acc * table[jd, exps[k, jd]]
        row[k] = acc


@njit(error_model="numpy")
def feature_dot(c, j, row, n_t):
    """sum_{k < n_t} c[j, k] * row[k] (left to right)."""
    acc = c[j, 0] * row[0]
    for k in range(1, n_t):
        acc = acc + c[j, k] * row[k]
    return acc


@njit(error_model="numpy")
def feature_denom(c, j, row, n_t, one):
    """1 + sum_{1 <= k < n_t} c[j, k-1] * row[k] (left to right)."""
    acc = one
    for k in range(1, n_t):
        acc = acc + c[j, k - 1] * row[k]
    return acc


# ----------------------------------------------------------------------------------------------
# feature matrices


# The feature matrices are a utility (layers, diagnostics), serial: memory-bound, and a parallel
# kernel would cost a second of compile time per signature.


@njit(cache=True)
def features_1d(x, basis, deg, scale, shift, one, out):
    """out[i, k] = psi_k(x_i), out of shape (N, deg+1)."""
    for i in range(x.shape[0]):
        basis_row_1d(basis, mapped_point(basis, x[i], scale, shift), deg, one, out[i], 0)


@njit(cache=True)
def denominator_features_1d(x, basis, deg, scale, shift, one, out):
    """out[i, k-1] = eta_k(x_i), k = 1..deg (Q = 1 + out @ phi), out of shape (N, deg)."""
    row = np.empty(deg + 1, dtype=out.dtype)
    for i in range(x.shape[0]):
        t = mapped_point(basis, x[i], scale, shift)
        basis_row_1d(basis, t, deg, one, row, 0)
        if basis == CHEBYSHEV_ANCHORED:
            m = anchor_factor(t, deg, one)
            for k in range(1, deg + 1):
                out[i, k - 1] = m * row[k - 1]
        else:
            for k in range(1, deg + 1):
                out[i, k - 1] = row[k]


@njit(cache=True)
def features_nd(x, basis, exps, deg, scale, shift, one, out):
    """out[i, k] = prod_j b_{exps[k, j]}(x_ij), out of shape (N, n_terms)."""
    n = x.shape[0]
    d = x.shape[1]
    n_t = exps.shape[0]
    table = np.empty((d, deg + 1), dtype=out.dtype)
    for i in range(n):
        basis_row_nd(basis, x[i], scale, shift, exps, n_t, deg, one, table, out[i])
