"""Linearised least-squares fit of a rational model (Sanathanan–Koerner iterations).

Gradient descent on ½(P/Q − y)² from a pole-free start rarely moves poles into the data: the
loss has a barrier wherever a pole would cross a sample. The linearised residual P − y·Q is
linear in (θ, φ), so a least-squares solve finds the poles directly; a few re-weighted solves
(weights 1/|Q_prev|, Sanathanan & Koerner 1963) remove the linearisation's bias toward small Q.
Use it to initialise a model, then refine with the Trainer.

Robust fits (``loss="huber"`` or ``"tukey"``) start from the least-median fit (the best of the
fit of all points and seeded subset fits by the median residual over all points: a fit of all
points can absorb gross outliers with pole-zero pairs) and iterate: residuals y − P/Q of the current fit,
their scale σ (the normalised MAD, unless ``loss_scale`` is given), IRLS weights ω(r) of the
robust loss with threshold 1.345σ (Huber) or 4.685σ (Tukey), and a new re-weighted solve, so
that gross outliers lose their pull on the poles (Tukey: outliers beyond 4.685σ get weight 0).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import (
    as_float_array,
    check_bounds,
    check_choice,
    check_in_range,
    check_int,
    check_nonnegative,
    check_positive,
)
from .kernels import basis as _kb
from .kernels import least_squares as _kls
from .kernels import least_squares_cpu as _klc
from .least_squares import (
    held_out_point_losses,
    levenberg_marquardt,
    robust_scale,
    robust_threshold,
)
from .rational import basis_features, denominator_features

__all__ = ["linearized_fit", "fit_rational", "RationalFit"]


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
    """Fit θ, φ of y ≈ P/Q with Q = 1 + Σ_{k≥1} φ_k η_k by re-weighted linear least squares
    (η_k the denominator features of ``basis``: :func:`zeroproof_nb.rational.denominator_features`).

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
    iterations = check_int(iterations, "iterations", minimum=1, maximum=MAX_SK_ITERATIONS)
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
    finite_x = np.isfinite(xa) if xa.ndim == 1 else np.all(np.isfinite(xa), axis=1)
    keep = np.isfinite(ya) & finite_x & (w > 0)
    if not keep.any():
        raise ValueError("x, y: no point with a finite x and a finite y (and a positive weight) "
                         "to fit")
    xa, ya, w = xa[keep], ya[keep], w[keep]
    psi_p = basis_features(xa, d_p, basis=basis, domain=domain)
    psi_q = denominator_features(xa, d_q, basis=basis, domain=domain)
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
    n_distinct = np.unique(xa, axis=0).shape[0]
    if n_distinct < n_unknown:
        raise ValueError(f"x has {n_distinct} distinct points with a finite y; a ({d_p}, {d_q}) "
                         f"fit has {n_unknown} coefficients and needs at least as many")
    # P(x) − y·(Σ φ_k ψ_k) = y
    a = np.hstack([psi_p, -ya[:, None] * psi_q])
    theta, phi = _sk_solve(a, ya, w, psi_q, psi_p.shape[1], iterations)
    if loss != "l2":
        # IRLS from the fit of all points and from the least-median start; the robust loss is
        # not convex, so the fit with the lower robust loss (at the scale of the least-median
        # run, the cleaner estimate) is kept
        runs = [_irls(a, ya, w, psi_p, psi_q, theta, phi, loss, loss_scale, robust_iterations,
                      iterations, n_unknown)]
        median_start = _least_median_start(a, ya, w, psi_p, psi_q, iterations, theta, phi)
        if median_start[0] is not theta:
            runs.append(_irls(a, ya, w, psi_p, psi_q, *median_start, loss, loss_scale,
                              robust_iterations, iterations, n_unknown))
        sigma = runs[-1][2]
        if len(runs) > 1 and sigma > 0:
            c = robust_threshold(loss, sigma)
            totals = []
            for th, ph, _ in runs:
                with np.errstate(all="ignore"):
                    r = ya - (psi_p @ th) / (1.0 + psi_q @ ph)
                r = np.where(np.isfinite(r), r, np.inf)
                rho = np.empty_like(r)
                _klc.robust_losses(_kls.ROBUST_CODES[loss], np.ascontiguousarray(r), c, rho)
                totals.append(float(np.sum(w * rho)))
            theta, phi = runs[int(np.argmin(totals))][:2]
        else:
            theta, phi = runs[-1][:2]
    return np.ascontiguousarray(theta), np.ascontiguousarray(phi)


def _irls(a: np.ndarray, ya: np.ndarray, w: np.ndarray, psi_p: np.ndarray, psi_q: np.ndarray,
          theta: np.ndarray, phi: np.ndarray, loss: str, loss_scale: float | None,
          robust_iterations: int, iterations: int, n_unknown: int
          ) -> tuple[np.ndarray, np.ndarray, float]:
    """Iteratively re-weighted linearised solves of a robust loss from (theta, phi):
    (theta, phi, the last residual scale σ)."""
    omega = np.empty_like(ya)
    sigma = 0.0
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
    return theta, phi, float(sigma)


#: Random subsets of a robust fit's least-median start, each of ``ROBUST_SUBSET_FACTOR``
#: points per unknown, drawn from a fixed seed (the fit is deterministic).
ROBUST_SUBSETS = 30
ROBUST_SUBSET_FACTOR = 3
ROBUST_SEED = 20261207


def _least_median_start(a: np.ndarray, y: np.ndarray, w: np.ndarray, psi_p: np.ndarray,
                        psi_q: np.ndarray, iterations: int, theta: np.ndarray,
                        phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The start of a robust fit: among the fit of all points (theta, phi) and the fits of
    ``ROBUST_SUBSETS`` random subsets of ``ROBUST_SUBSET_FACTOR`` points per unknown, the one
    with the least median |y − P/Q| over all points (least median of squares, Rousseeuw 1984).

    A rational fit of all points can absorb gross outliers with pole-zero pairs placed at
    them, so that their residuals are small and re-weighting never finds them; a subset
    without outliers (with 5% outliers and 13 unknowns, one subset in seven) has no such
    pairs, and the median residual over all points prefers it."""
    n, m = a.shape
    size = ROBUST_SUBSET_FACTOR * m
    if n < 2 * size:
        return theta, phi
    n_p = psi_p.shape[1]

    def median_residual(th: np.ndarray, ph: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            r = np.abs(y - (psi_p @ th) / (1.0 + psi_q @ ph))
        r[~np.isfinite(r)] = np.inf
        return float(np.median(r))

    best, best_fit = median_residual(theta, phi), (theta, phi)
    rng = np.random.default_rng(ROBUST_SEED)
    for _ in range(ROBUST_SUBSETS):
        idx = np.sort(rng.choice(n, size=size, replace=False))
        try:
            fit = _sk_solve(a[idx], y[idx], w[idx], psi_q[idx], n_p, iterations)
        except ValueError:
            continue
        value = median_residual(*fit)
        if value < best:
            best, best_fit = value, fit
    return best_fit


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


# ----------------------------------------------------------------------------------------------
# from data to a model, its poles and residues


@dataclass
class RationalFit:
    """Result of :func:`fit_rational`.

    Attributes
    ----------
    model : TRRational (Chebyshev basis on the data's domain; total degree for n-D x)
    degrees : (d_p, d_q) chosen
    poles : 1-D x: (k,) real poles in the domain, sorted. n-D x of shape (N, d): (k, d) points
        of the pole set Q = 0, where Q changes sign along the lines of a grid over the data's
        bounding box (:func:`zeroproof_nb.metrics.pole_set`; about 2e5 nodes, at most 129 per
        axis)
    residues : (k,) residue of each pole (P/Q′); empty for n-D x
    removed : list of dicts ``{"pole", "residue", "reason"}`` of spurious poles taken out
        (1-D x only)
    report : dict: ``"held_out"`` (list of ``{"degrees", "held_out_loss", "standard_error",
        "n_real_poles"}`` per degree pair tried), ``"chosen"``, ``"best"`` (the least held-out
        loss) and ``"best_degrees"``, ``"held_out_loss"`` (the chosen model's), ``"loss"``,
        ``"loss_scale"``, ``"n_train"``, ``"n_held_out"``, ``"input_dim"``, ``"y_scale"`` (the fit runs on y / y_scale, the rms of y: the held-out losses are those of
        y / y_scale; residues are in the units of y), ``"seconds"``
    """

    model: Any
    degrees: tuple[int, int]
    poles: np.ndarray
    residues: np.ndarray
    removed: list
    report: dict = field(default_factory=dict)

    def predict(self, x: Any) -> np.ndarray:
        """The model's values at ``x`` as plain floats (shape (N,)): REAL outputs as they are,
        ±∞ at a pole, NaN for PHI (the IEEE view of ``model.forward(x)``)."""
        from .core import to_ieee

        return np.asarray(to_ieee(self.model.forward(x)), dtype=np.float64)

    __call__ = predict


#: Held-out loss, relative to the mean y², below which :func:`fit_rational` counts two models
#: as equal: (1e-12)²/2, the loss r²/2 of a relative error of 1e-12 (rounding on clean data).
ROUNDING_LOSS = 0.5e-24

#: Relative held-out loss difference that :func:`fit_rational` accepts, on top of the paired
#: standard error, for a model without a spurious pole (a doublet costs little even where the
#: difference is significant). Not used to choose degrees: on noisy data the held-out loss is
#: mostly noise, and a few percent of it can hide a large error of the function.
DOUBLET_TOLERANCE = 0.05

#: A pole within ``TIGHT_DOUBLET_GAP`` times the domain's width of a zero of P, with a residue
#: at most ``TIGHT_DOUBLET_RESIDUE`` times the model's largest, is a doublet by its shape (beside
#: a true pole it buys the fit near that pole a little curvature, like a higher degree would):
#: its removal is kept at up to ``TIGHT_DOUBLET_TOLERANCE`` more held-out loss, on top of the
#: paired standard error.
TIGHT_DOUBLET_GAP = 1e-3
TIGHT_DOUBLET_RESIDUE = 0.1
TIGHT_DOUBLET_TOLERANCE = 0.5

#: Held-out loss, relative to the mean y², below which a model without a spurious pole is kept
#: however it compares: (1e-10)²/2, a relative error of 1e-10 (clean data, where the doublet
#: costs nothing and the refit at the lower degree loses digits only at the level of rounding).
DOUBLET_LOSS = 0.5e-20

#: Levenberg–Marquardt steps at most per candidate of :func:`fit_rational` (on noisy data the
#: last of 100 steps crawl along directions the held-out points cannot tell apart: 25 give the
#: same poles and far-from-pole errors in the fit-quality benchmark in about half the time).
SCAN_LM_STEPS = 25

#: Most Sanathanan–Koerner solves :func:`linearized_fit` accepts (its default is 3; beyond a
#: few dozen the iteration has long stopped changing the fit).
MAX_SK_ITERATIONS = 1000

#: Fewest points (finite x and y, weight > 0) :func:`fit_rational` accepts.
MIN_POINTS = 10


def _chebyshev_layer(d_p: int, d_q: int, domain: tuple[float, float], theta: np.ndarray,
                     phi: np.ndarray, input_dim: int = 1) -> Any:
    from .layers import TRRational

    layer = TRRational(d_p, d_q, basis="chebyshev", domain=domain, alpha_phi=0.0,
                       input_dim=input_dim)  # the layers' default denominator
    layer.set_parameters([theta, phi])
    return layer


def _deflate(layer: Any, pole: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """θ, φ of the (d_p − 1, d_q − 1) layer without ``pole`` and the zero of P nearest it
    (a Froissart doublet taken out) and that zero's distance to the pole, or None when that is
    not possible (no zero of P, or the deflated Q vanishes at its normalisation point)."""
    from numpy.polynomial import Chebyshev

    from .layers.rational import series_coefficients

    dom = list(layer.domain)
    p, q = layer.series()
    # on a domain of width ~1e-200 the series' coefficients under- or overflow: no deflation
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.RankWarning)
            lin = Chebyshev.fit([pole - 1.0, pole + 1.0], [-1.0, 1.0], 1, domain=dom)  # x − pole
            q_new = q // lin
            zeros = p.roots()
            if layer.d_p == 0 or zeros.size == 0:
                return None
            z = zeros[np.argmin(np.abs(zeros - pole))]
            p_new = p // Chebyshev.fit([z.real - 1.0, z.real + 1.0], [-1.0, 1.0], 1, domain=dom)
    except (ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError):
        return None
    try:
        target = _chebyshev_layer(layer.d_p - 1, layer.d_q - 1, layer.domain,
                                  np.zeros(layer.d_p), np.zeros(layer.d_q - 1))
        theta, phi = series_coefficients(p_new, q_new, layer.d_p - 1, layer.d_q - 1,
                                         basis=target.basis, denominator=target.denominator,
                                         domain=layer.domain)
        return theta, phi, float(abs(z - pole))
    except ValueError:
        return None


def fit_rational(
    x: Any,
    y: Any,
    *,
    max_degree: int = 12,
    domain: tuple[float, float] | None = None,
    loss: str = "l2",
    loss_scale: float | None = None,
    sample_weight: Any = None,
    train: bool = True,
    seed: int = 0,
    validation_fraction: float = 0.2,
    se_rule: float = 1.0,
    patience: int | None = 3,
) -> RationalFit:
    """From samples to a rational model, its poles and their residues, in one call.

    1. A seeded ``validation_fraction`` of the points is held out.
    2. For every degree pair (d_p, d_q), d_q = 0..max_degree, d_p ∈ {d_q − 1, d_q, d_q + 1}, a
       (robust) linearised fit in the Chebyshev basis on ``domain`` (default: the data's range),
       refined by Levenberg–Marquardt on the training points when ``train`` (at most
       ``SCAN_LM_STEPS`` steps); each is scored by
       its held-out loss (:func:`zeroproof_nb.least_squares.held_out_loss`).
    3. Parsimony (the paired one-standard-error rule): the pair with the fewest coefficients
       whose held-out losses exceed the best pair's, point by point on the same held-out
       points, by at most ``se_rule`` standard errors of the mean difference (pairing cancels
       the noise of the targets, which near a pole dominates an unpaired standard error);
       held-out losses below ``ROUNDING_LOSS`` times the mean y² (a relative error of 1e-12)
       count as equal.
    4. Spurious poles: each real pole, smallest |residue| first, is taken out with the zero of P
       nearest it (a Froissart doublet), the model refitted at (d_p − 1, d_q − 1) from there
       (the deflated model as it is, or refitted: the one with the lower held-out loss);
       the removal is kept when that model is no worse than the model before it by
       the same rule with ``DOUBLET_TOLERANCE`` (5%) added (``TIGHT_DOUBLET_TOLERANCE``, 50%,
       for a pole within ``TIGHT_DOUBLET_GAP`` of the domain's width of its zero and with at
       most ``TIGHT_DOUBLET_RESIDUE`` of the largest residue: beside a true pole such a
       doublet buys a little accuracy near it at the price of a wrong extra pole), or its
       held-out loss is below ``DOUBLET_LOSS`` times the mean y² (a relative error of 1e-10).

    Parameters
    ----------
    x : (N,) or (N, d) array-like; points with a non-finite coordinate are skipped. For d > 1
        the model uses total-degree Chebyshev products on one interval covering every
        coordinate, with upstream's Q = 1 + Σφψ; degree pairs with more coefficients than half
        the training points are not tried, and there is no doublet removal.
    y : (N,) array-like; non-finite targets are skipped
    max_degree : int >= 0
    domain : (lo, hi), optional
    loss : {"l2", "huber", "tukey"}; ``loss_scale``: σ of a robust loss (default: MAD)
    sample_weight : (N,) array-like >= 0, optional
    train : bool, refine each candidate with Levenberg–Marquardt
    seed : int, the held-out split
    validation_fraction : float in (0, 0.5]
    se_rule : float >= 0, standard errors of held-out loss that buy a simpler model
    patience : int >= 1 or None, stop trying higher degrees after this many denominator
        degrees in a row without a lower held-out loss (None: try every d_q <= max_degree)

    Returns
    -------
    RationalFit
    """
    t0 = time.perf_counter()
    max_degree = check_int(max_degree, "max_degree", minimum=0)
    loss = check_choice(loss, "loss", ("l2", "huber", "tukey"))
    check_int(seed, "seed", minimum=0)
    frac = check_in_range(validation_fraction, "validation_fraction", 0.0, 0.5)
    if not frac > 0:
        raise ValueError("validation_fraction must be > 0: degrees are chosen on held-out data")
    n_se = check_nonnegative(se_rule, "se_rule")
    if patience is not None:
        patience = check_int(patience, "patience", minimum=1)
    if loss_scale is not None:
        check_positive(loss_scale, "loss_scale")
    xa = as_float_array(x, "x", ndim=(1, 2), dtype=np.float64)
    if xa.ndim == 2 and xa.shape[1] == 1:
        xa = xa[:, 0]
    if xa.ndim == 2 and xa.shape[1] < 1:
        raise ValueError(f"x must have at least one column, got shape {xa.shape}")
    dim = 1 if xa.ndim == 1 else xa.shape[1]
    def basis_of(d_q: int) -> str:
        """The functional API's basis of the default layer at this d_q (anchored at d_q = 1)."""
        return "chebyshev_anchored" if (dim == 1 and d_q == 1) else "chebyshev"
    ya = as_float_array(y, "y", ndim=1, dtype=np.float64)
    if ya.shape[0] != xa.shape[0]:
        raise ValueError(f"y must have one value per point of x ({xa.shape[0]}), got {ya.shape}")
    w = None if sample_weight is None else as_float_array(sample_weight, "sample_weight",
                                                          ndim=1, dtype=np.float64)
    if w is not None and (w.shape != ya.shape or not np.all(np.isfinite(w)) or np.any(w < 0)):
        raise ValueError("sample_weight must be finite, >= 0, with the length of x")
    finite_x = np.isfinite(xa) if dim == 1 else np.all(np.isfinite(xa), axis=1)
    keep = finite_x & np.isfinite(ya) & (True if w is None else w > 0)
    xa, ya = xa[keep], ya[keep]
    w = None if w is None else w[keep]
    if ya.size < MIN_POINTS:
        raise ValueError(f"x, y: fit_rational needs at least {MIN_POINTS} points with finite x "
                         f"and y (and weight > 0), got {ya.size}")
    if domain is None:
        lo, hi = float(xa.min()), float(xa.max())
        if not hi > lo:
            raise ValueError(f"x: every point has the same coordinates ({lo}); a rational fit "
                             "needs x with a range (or pass a domain)")
        domain = (lo, hi)
    domain = check_bounds(domain, "domain")
    # the fit runs on y / y_scale (rms of y): the same degrees and poles for any units of y,
    # and no overflow or underflow of the squared residuals at |y| ~ 1e±300
    y_max = float(np.max(np.abs(ya)))
    y_scale = y_max * float(np.sqrt(np.mean((ya / y_max) ** 2))) if y_max > 0 else 1.0
    ya = ya / y_scale
    if loss_scale is not None:
        loss_scale = float(loss_scale) / y_scale
    n_terms = _kb.n_terms
    perm = np.random.default_rng(seed).permutation(ya.size)
    n_val = max(1, int(round(frac * ya.size)))
    val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    xt, yt, xv, yv = xa[tr], ya[tr], xa[val], ya[val]
    wt = None if w is None else w[tr]
    if loss_scale is None and loss != "l2":
        start = linearized_fit(xt, yt, min(max_degree, 3), min(max_degree, 2),
                               basis=basis_of(min(max_degree, 2)), domain=domain, loss="tukey",
                               sample_weight=wt)
        layer = _chebyshev_layer(min(max_degree, 3), min(max_degree, 2), domain, *start,
                                 input_dim=dim)
        sigma = robust_scale(layer.forward(xt)["value"] - yt)
        loss_scale = max(sigma, 1e-12 * max(1.0, float(np.median(np.abs(yt)))))
    scale = 1.0 if loss_scale is None else float(loss_scale)

    def refine(d_p: int, d_q: int, theta: np.ndarray, phi: np.ndarray, fit: bool = True
               ) -> tuple[Any, np.ndarray]:
        """(layer, its per-point held-out losses); ``fit=False`` scores (theta, phi) as
        given."""
        if train and fit:
            res = levenberg_marquardt(xt, yt, theta, phi, basis=basis_of(d_q), domain=domain,
                                      sample_weight=wt, loss=loss, loss_scale=scale,
                                      max_steps=SCAN_LM_STEPS)
            theta, phi = res.theta, res.phi
        layer = _chebyshev_layer(d_p, d_q, domain, theta, phi, input_dim=dim)
        rho = held_out_point_losses(xv, yv, layer.theta, layer.phi, basis=layer.kernel_basis,
                                    domain=domain, loss=loss, loss_scale=scale)
        return layer, rho

    def mean_se(rho: np.ndarray) -> tuple[float, float]:
        mean = float(rho.mean())
        return mean, (float(rho.std() / np.sqrt(rho.size)) if np.isfinite(mean) else np.inf)

    floor = ROUNDING_LOSS * float(np.mean(yt * yt))

    def no_worse(rho: np.ndarray, ref: np.ndarray, tolerance: float = 0.0) -> bool:
        """The paired one-standard-error rule: the mean loss difference to ``ref`` on the same
        held-out points is at most se_rule standard errors of that difference plus
        ``tolerance`` times ref's mean loss (or at the level of rounding). Pairing cancels
        the noise both models see, which dominates the unpaired standard error near poles."""
        with np.errstate(invalid="ignore"):
            diff = rho - ref
        if not np.all(np.isfinite(diff)):
            return False
        mean = float(diff.mean())
        return mean <= n_se * float(diff.std() / np.sqrt(diff.size)) + \
            tolerance * float(ref.mean()) or float(rho.mean()) <= floor

    tried = []
    models: dict[tuple[int, int], tuple[Any, np.ndarray]] = {}
    best_mean = np.inf
    stale = 0
    for d_q in range(max_degree + 1):
        if patience is not None and stale >= patience:
            break  # no better held-out loss at the last ``patience`` denominator degrees
        improved = False
        for d_p in (d_q - 1, d_q, d_q + 1):
            if not 0 <= d_p <= max_degree:
                continue
            n_coef = n_terms(dim, d_p) + n_terms(dim, d_q) - 1
            # at least two training points per coefficient in n-D, where the term counts grow
            if n_coef > (tr.size if dim == 1 else tr.size // 2):
                continue
            try:
                start = linearized_fit(xt, yt, d_p, d_q, basis=basis_of(d_q), domain=domain,
                                       loss=loss, loss_scale=loss_scale, sample_weight=wt)
            except ValueError:
                continue
            layer, rho = refine(d_p, d_q, *start)
            models[(d_p, d_q)] = (layer, rho)
            score, se = mean_se(rho)
            tried.append({"degrees": [d_p, d_q], "held_out_loss": score, "standard_error": se,
                          "n_real_poles": int(layer.poles().size) if dim == 1 else None})
            # an improvement counts until the loss is at the level of rounding
            if score < best_mean and best_mean > floor:
                improved = True
            best_mean = min(best_mean, score)
        stale = 0 if improved else stale + 1
    finite = [k for k, v in models.items() if np.isfinite(v[1].mean())]
    if not finite:
        raise ValueError("no degree pair gives a finite held-out loss (poles on held-out points "
                         "at every degree); check the data or pass a domain")
    best_key = min(finite, key=lambda k: models[k][1].mean())
    best_rho = models[best_key][1]
    best = float(best_rho.mean())
    chosen = min((k for k in finite if no_worse(models[k][1], best_rho)),
                 key=lambda k: (k[0] + k[1], k[1], k[0]))
    layer, rho_layer = models[chosen]
    removed = []
    while dim == 1 and layer.d_q > 0:
        poles, res = layer.poles(return_residues=True)
        if poles.size == 0:
            break
        for i in np.argsort(np.abs(res)):
            deflated = _deflate(layer, float(poles[i]))
            if deflated is None:
                continue
            *deflated, gap = deflated
            # the deflated model as it is, and refitted: near a true pole, noise lets the
            # refit trade held-out accuracy for training loss; the lower held-out loss is kept
            cand, cand_rho = min((refine(layer.d_p - 1, layer.d_q - 1, *deflated, fit=f)
                                  for f in ((False, True) if train else (False,))),
                                 key=lambda c: float(np.mean(c[1])))
            tight = gap <= TIGHT_DOUBLET_GAP * (domain[1] - domain[0]) and \
                abs(res[i]) <= TIGHT_DOUBLET_RESIDUE * float(np.max(np.abs(res)))
            if no_worse(cand_rho, rho_layer, TIGHT_DOUBLET_TOLERANCE if tight
                        else DOUBLET_TOLERANCE) or \
                    float(cand_rho.mean()) <= DOUBLET_LOSS * float(np.mean(yt * yt)):
                why = (f"a doublet by its shape (the zero of P {gap:.2g} away, residue "
                       f"{abs(res[i]) / float(np.max(np.abs(res))):.2g} of the largest): "
                       f"removed at up to {TIGHT_DOUBLET_TOLERANCE:.0%} more held-out loss "
                       "beyond the paired one-SE rule" if tight else
                       "removed with the nearest zero of P; the held-out loss is no worse by "
                       "the paired one-SE rule")
                removed.append({"pole": float(poles[i]), "residue": float(res[i]),
                                "reason": f"{why} ({rho_layer.mean():.3g} -> "
                                          f"{cand_rho.mean():.3g}, best {best:.3g})"})
                layer, rho_layer = cand, cand_rho
                break
        else:
            break
    # back to the units of y: P times y_scale (the losses stay those of y / y_scale: in the
    # units of y they would overflow or underflow for |y| ~ 1e±300)
    layer.set_parameters([layer.theta * y_scale, layer.phi])
    if dim == 1:
        poles, res = layer.poles(return_residues=True)
    else:
        from .metrics import pole_set

        lo_x, hi_x = xa.min(axis=0), xa.max(axis=0)
        n_axis = max(8, min(129, int(round(2e5 ** (1.0 / dim)))))
        poles = pole_set(layer, [np.linspace(a, b, n_axis) for a, b in zip(lo_x, hi_x)])
        res = np.zeros(0)
    for entry in removed:
        entry["residue"] *= y_scale
    report = {"held_out": tried, "chosen": [layer.d_p, layer.d_q], "best": best,
              "best_degrees": list(best_key), "held_out_loss": float(rho_layer.mean()),
              "loss": loss, "loss_scale": None if loss_scale is None else loss_scale * y_scale,
              "y_scale": y_scale, "n_train": int(tr.size),
              "n_held_out": int(val.size), "input_dim": dim,
              "seconds": time.perf_counter() - t0}
    return RationalFit(model=layer, degrees=(layer.d_p, layer.d_q), poles=poles, residues=res,
                       removed=removed, report=report)
