"""Targets and noise of the training-quality benchmarks (:mod:`bench.training_quality`,
:mod:`bench.importance_quality`): the built-in rational problems and special functions with
real poles, each with its domain, true poles and fitted degrees; the noise settings."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run from the repository without installing
    sys.path.insert(0, str(_ROOT))

import scipy.special as _sp  # noqa: E402

from zeroproof_nb.problems import get_problem, list_problems  # noqa: E402

__all__ = ["Target", "Noise", "NOISES", "targets", "noisy", "inv_j0"]


@dataclass(frozen=True)
class Target:
    """A 1-D target with known real poles and the degrees of its rational fit.

    Attributes
    ----------
    name : str
    func : callable, x -> y (float64 arrays)
    domain : (lo, hi)
    poles : tuple of float, the true poles inside ``domain``
    degrees : (d_p, d_q) of the fitted rational model
    kind : "rational" (exact representation of the degrees) or "special" (not rational)
    description : str
    """

    name: str
    func: Callable[[np.ndarray], np.ndarray]
    domain: tuple[float, float]
    poles: tuple[float, ...]
    degrees: tuple[int, int]
    kind: str
    description: str

    @property
    def width(self) -> float:
        return float(self.domain[1] - self.domain[0])


def inv_j0(x: np.ndarray) -> np.ndarray:
    """1/J₀(x) (inf at the zeros of J₀), a target with real poles that is not rational."""
    with np.errstate(divide="ignore"):
        return 1.0 / _sp.j0(x)


def targets() -> list[Target]:
    """The built-in problems (``list_problems()``) and four special functions with real poles.

    The degrees of the special functions were chosen by a small scan of the L2 linearised fit
    (seeds 0-3, none of them a benchmark seed): the lowest degrees that fit to about the noise
    level at noise 0, 1e-3 and 1e-2 without spurious poles at noise 0.
    """
    out = []
    for name in list_problems():
        p = get_problem(name)
        poles = ", ".join(f"{v:g}" for v in p.true_poles())
        out.append(Target(name, p.target, tuple(p.domain), tuple(float(v) for v in p.true_poles()),
                          p.degrees(), "rational", f"built-in, poles {poles}"))
    half_pi = math.pi / 2
    out += [
        Target("tan", np.tan, (-3.0, 3.0), (-half_pi, half_pi), (4, 8), "special",
               "tan x, poles ±π/2"),
        Target("gamma", _sp.gamma, (-2.5, 2.5), (-2.0, -1.0, 0.0), (4, 7), "special",
               "Γ(x), poles 0, −1, −2"),
        Target("digamma", _sp.digamma, (-2.5, 2.5), (-2.0, -1.0, 0.0), (4, 8), "special",
               "ψ(x), poles 0, −1, −2"),
        Target("inv_j0", inv_j0, (0.0, 6.0), tuple(float(v) for v in _sp.jn_zeros(0, 2)),
               (4, 4), "special", "1/J₀(x), poles at the zeros 2.405, 5.520 of J₀"),
    ]
    return out


@dataclass(frozen=True)
class Noise:
    """Noise added to the training targets.

    ``"none"``; ``"additive"``: y + level·ε; ``"multiplicative"``: y·(1 + level·ε) (ε standard
    normal); ``"outliers"``: additive noise 1e-3, then a share ``level`` of the points gets a
    gross error ±(1 + |T|), T Student-t with 2 degrees of freedom (at least 1000× the noise, with
    a heavy tail; the targets are O(1) away from their poles).
    """

    kind: str
    level: float

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "outliers":
            return f"outliers {self.level:.0%}"
        return f"{self.kind[:3]}. {self.level:g}"


NOISES = (Noise("none", 0.0), Noise("additive", 1e-3), Noise("additive", 1e-2),
          Noise("multiplicative", 1e-3), Noise("multiplicative", 1e-2), Noise("outliers", 0.05))


def noisy(y: np.ndarray, noise: Noise, rng: np.random.Generator) -> np.ndarray:
    """``y`` with ``noise`` drawn from ``rng`` (a copy; see :class:`Noise`)."""
    n = y.shape[0]
    if noise.kind == "none":
        return y.copy()
    if noise.kind == "additive":
        return y + noise.level * rng.standard_normal(n)
    if noise.kind == "multiplicative":
        return y * (1.0 + noise.level * rng.standard_normal(n))
    if noise.kind == "outliers":
        out = y + 1e-3 * rng.standard_normal(n)
        k = int(round(noise.level * n))
        idx = rng.choice(n, size=k, replace=False)
        out[idx] += rng.choice([-1.0, 1.0], size=k) * (1.0 + np.abs(rng.standard_t(2, size=k)))
        return out
    raise ValueError(f"unknown noise kind {noise.kind!r}")
