"""Built-in 1-D rational regression problems with known poles, and the AAA peer.

A problem's target is ``y(x) = s(x) + sum_i r_i / (x - p_i)`` with distinct real poles ``p_i``,
non-zero residues ``r_i`` and a smooth polynomial part ``s`` (coefficients in increasing degree,
the ``numpy.polynomial`` convention). It is the rational function ``P/Q`` with the monic
``Q(x) = prod_i (x - p_i)`` and ``P = s*Q + sum_i r_i prod_{j != i} (x - p_j)``.

Nothing is downloaded; every problem is defined by a few numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from numpy.polynomial import polynomial as npoly

from ._validation import as_float_array, check_bounds, check_finite, check_int, check_nonnegative

__all__ = [
    "DEFAULT_SMOOTH",
    "RationalProblem",
    "make_problem",
    "get_problem",
    "list_problems",
    "AAAPeer",
    "fit_aaa",
]

#: smooth part of the built-in problems and of :func:`make_problem`: ``0.1 + 0.5 x``
DEFAULT_SMOOTH: tuple[float, ...] = (0.1, 0.5)


def _float_tuple(values: Any, name: str) -> tuple[float, ...]:
    arr = as_float_array(values, name, ndim=(0, 1), dtype=np.float64).reshape(-1)
    check_finite(arr, name)
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class RationalProblem:
    """A rational target with known poles on a 1-D domain.

    Attributes
    ----------
    poles : tuple of float
        Distinct real poles ``p_i`` (they may lie outside ``domain``; :meth:`true_poles` keeps
        the ones inside).
    residues : tuple of float
        Non-zero residue ``r_i`` of each pole.
    smooth : tuple of float
        Polynomial part, coefficients in increasing degree (``(0.0,)`` for none).
    domain : (lo, hi)
        Sampling interval.
    noise : float
        Standard deviation of the Gaussian noise :meth:`sample` adds (absolute units of y).
    name : str
        Label used in reports.
    """

    poles: tuple[float, ...]
    residues: tuple[float, ...]
    smooth: tuple[float, ...] = DEFAULT_SMOOTH
    domain: tuple[float, float] = (-1.0, 1.0)
    noise: float = 0.0
    name: str = field(default="custom")

    def __post_init__(self) -> None:
        poles = _float_tuple(self.poles, "poles")
        residues = _float_tuple(self.residues, "residues")
        smooth = _float_tuple(self.smooth, "smooth")
        if len(poles) == 0:
            raise ValueError("poles must hold at least one pole")
        if len(residues) != len(poles):
            raise ValueError(
                f"residues must have one entry per pole ({len(poles)}), got {len(residues)}"
            )
        if len(set(poles)) != len(poles):
            raise ValueError(f"poles must be distinct, got {poles}")
        if any(r == 0.0 for r in residues):
            raise ValueError(f"residues must be non-zero (a zero residue is no pole), got {residues}")
        if len(smooth) == 0:
            smooth = (0.0,)
        domain = check_bounds(self.domain, "domain")
        noise = check_nonnegative(self.noise, "noise")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {type(self.name).__name__}")
        object.__setattr__(self, "poles", poles)
        object.__setattr__(self, "residues", residues)
        object.__setattr__(self, "smooth", smooth)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "noise", noise)

    # -- exact functions ---------------------------------------------------------------------

    def target(self, x: Any) -> np.ndarray:
        """Exact target values, float64 with the shape of ``x`` (finite x required).

        At a pole the value is ``r / (+0.0)`` = ``sign(r) * inf``; elsewhere finite (or +-inf
        if the quotient overflows within ~1e-308 of a pole). Never NaN.
        """
        xs = as_float_array(x, "x", dtype=np.float64)
        check_finite(xs, "x")
        y = npoly.polyval(xs, self.smooth) * np.ones_like(xs)
        with np.errstate(divide="ignore", over="ignore"):
            for p, r in zip(self.poles, self.residues):
                y = y + r / (xs - p)
        return y

    def q_true(self, x: Any) -> np.ndarray:
        """Monic denominator ``Q(x) = prod_i (x - p_i)``; its zeros are the poles."""
        xs = as_float_array(x, "x", dtype=np.float64)
        q = np.ones_like(xs)
        for p in self.poles:
            q = q * (xs - p)
        return q

    def p_true(self, x: Any) -> np.ndarray:
        """Numerator ``P(x) = s(x) Q(x) + sum_i r_i prod_{j != i} (x - p_j)``, so that
        ``target = P / Q`` away from the poles."""
        xs = as_float_array(x, "x", dtype=np.float64)
        out = npoly.polyval(xs, self.smooth) * self.q_true(xs)
        for i, r in enumerate(self.residues):
            term = np.full_like(xs, r)
            for j, p in enumerate(self.poles):
                if j != i:
                    term = term * (xs - p)
            out = out + term
        return out

    def rational_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """Monomial coefficients ``(p_coef, q_coef)`` of P and the monic Q, increasing degree."""
        q = npoly.polyfromroots(self.poles)
        p = npoly.polymul(self.smooth, q)
        for i, r in enumerate(self.residues):
            others = [pj for j, pj in enumerate(self.poles) if j != i]
            p = npoly.polyadd(p, r * npoly.polyfromroots(others) if others else np.array([r]))
        return npoly.polytrim(p), q

    def degrees(self) -> tuple[int, int]:
        """Degrees ``(deg P, deg Q)`` of the exact rational representation."""
        p, q = self.rational_coefficients()
        return len(p) - 1, len(q) - 1

    def true_poles(self) -> np.ndarray:
        """The poles inside the closed domain, sorted, float64 array."""
        lo, hi = self.domain
        p = np.sort(np.asarray(self.poles, dtype=np.float64))
        return p[(p >= lo) & (p <= hi)]

    # -- data --------------------------------------------------------------------------------

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points drawn uniformly on the domain and their targets plus Gaussian noise of
        standard deviation ``noise``. Returns ``(x, y)``, float64 arrays of shape (n,)."""
        n = check_int(n, "n", minimum=0)
        rng = np.random.default_rng(seed)
        lo, hi = self.domain
        x = rng.uniform(lo, hi, n)
        y = self.target(x)
        if self.noise > 0:
            y = y + self.noise * rng.standard_normal(n)
        return x, y

    def grid(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n >= 2`` equispaced points over the closed domain and the exact (noise-free)
        targets. Returns ``(x, y)``."""
        n = check_int(n, "n", minimum=2)
        lo, hi = self.domain
        x = np.linspace(lo, hi, n)
        return x, self.target(x)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (name, poles, residues, smooth, domain, noise)."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def make_problem(
    poles: Sequence[float],
    residues: Sequence[float],
    domain: tuple[float, float] = (-1.0, 1.0),
    smooth: Sequence[float] = DEFAULT_SMOOTH,
    noise: float = 0.0,
    name: str = "custom",
) -> RationalProblem:
    """Build a :class:`RationalProblem` from poles, residues, a domain and a smooth part."""
    return RationalProblem(
        poles=poles, residues=residues, smooth=smooth, domain=domain, noise=noise, name=name
    )


_BUILTIN: dict[str, dict[str, Any]] = {
    # the default: two poles with residues of opposite sign
    "two_poles": {"poles": (0.3, -0.55), "residues": (1.0, -2.0)},
    # 1/(x - 0.3) + x
    "simple_pole": {"poles": (0.3,), "residues": (1.0,), "smooth": (0.0, 1.0)},
    # a pole 0.05 inside the right edge of the domain
    "edge_pole": {"poles": (0.95,), "residues": (0.5,)},
}


def list_problems() -> tuple[str, ...]:
    """Names accepted by :func:`get_problem` (the first is the default)."""
    return tuple(_BUILTIN)


def get_problem(name: str = "two_poles", *, noise: float = 0.0) -> RationalProblem:
    """A built-in problem by name: ``"two_poles"`` (default; poles 0.3 and -0.55, residues 1 and
    -2), ``"simple_pole"`` (1/(x-0.3) + x) or ``"edge_pole"`` (pole at 0.95); domain (-1, 1)."""
    if not isinstance(name, str) or name not in _BUILTIN:
        raise ValueError(f"name must be one of {list_problems()}, got {name!r}")
    return make_problem(name=name, noise=noise, **_BUILTIN[name])


# ------------------------------------------------------------------------------------------------
# AAA peer (non-trainable baseline)
# ------------------------------------------------------------------------------------------------


class AAAPeer:
    """A fitted ``scipy.interpolate.AAA`` approximant restricted to real inputs.

    Attributes
    ----------
    approx : scipy.interpolate.AAA
        The fitted approximant.
    domain : (lo, hi)
        Interval whose real poles :meth:`poles` reports.
    imag_tol : float
        A pole counts as real when ``|Im p| <= imag_tol * max(1, |Re p|)``.
    """

    def __init__(self, approx: Any, domain: tuple[float, float], imag_tol: float) -> None:
        self.approx = approx
        self.domain = domain
        self.imag_tol = imag_tol

    def predict(self, x: Any) -> np.ndarray:
        """Real part of the approximant at ``x`` (float64, shape of ``x``)."""
        xs = as_float_array(x, "x", dtype=np.float64)
        return np.real(self.approx(xs)).astype(np.float64)

    def poles(self) -> np.ndarray:
        """Sorted real parts of the (numerically) real poles inside the closed domain."""
        p = np.asarray(self.approx.poles())
        real = np.abs(p.imag) <= self.imag_tol * np.maximum(1.0, np.abs(p.real))
        lo, hi = self.domain
        r = p.real[real]
        return np.sort(r[(r >= lo) & (r <= hi)])

    @property
    def n_terms(self) -> int:
        """Number of support points of the barycentric form."""
        return int(np.asarray(self.approx.support_points).size)


def fit_aaa(
    x: Any,
    y: Any,
    domain: tuple[float, float] | None = None,
    *,
    rtol: float | None = None,
    max_terms: int = 100,
    imag_tol: float = 1e-8,
) -> AAAPeer:
    """Fit ``scipy.interpolate.AAA`` (SciPy >= 1.15) to samples ``(x, y)``.

    Non-finite targets (samples exactly at a pole) are dropped, repeated x keep their first
    sample. ``domain`` (default: the range of x) bounds the poles reported by
    :meth:`AAAPeer.poles`. ``rtol`` and ``max_terms`` go to AAA; with noisy data pass an
    ``rtol`` near the relative noise level to avoid spurious poles.
    """
    try:
        from scipy.interpolate import AAA
    except ImportError as exc:  # pragma: no cover - depends on the SciPy version
        raise ImportError("fit_aaa needs scipy >= 1.15 (scipy.interpolate.AAA)") from exc
    xs = as_float_array(x, "x", ndim=1, dtype=np.float64)
    ys = as_float_array(y, "y", ndim=1, dtype=np.float64)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same shape, got {xs.shape} and {ys.shape}")
    check_finite(xs, "x")
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    xs, first = np.unique(xs, return_index=True)
    ys = ys[first]
    if xs.size < 2:
        raise ValueError("x and y must hold at least 2 distinct points with finite y")
    dom = check_bounds(domain, "domain") if domain is not None else (float(xs[0]), float(xs[-1]))
    max_terms = check_int(max_terms, "max_terms", minimum=1)
    kwargs: dict[str, Any] = {"max_terms": max_terms}
    if rtol is not None:
        kwargs["rtol"] = check_nonnegative(rtol, "rtol")
    approx = AAA(xs, ys, **kwargs)
    return AAAPeer(approx, dom, check_nonnegative(imag_tol, "imag_tol"))
