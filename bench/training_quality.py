"""Training-quality benchmark (issue #11, item 6): does training make a rational fit better?

For each target (the built-in rational problems and special functions with real poles), noise
setting and seed, the benchmark fits the training data with

* the linearised start, :func:`zeroproof_nb.fitting.linearized_fit` with ``loss="l2"`` (and the
  robust ``"huber"`` / ``"tukey"`` fits where the installed version has them),
* the trained model: a :class:`~zeroproof_nb.layers.TRRational` set to the L2 start, then
  ``Trainer(model, config=TrainingConfig(verbose=False, seed=seed)).fit(x, y)`` (the package
  defaults otherwise), and, where available, the same from the Tukey start with
  ``TrainingConfig(loss="tukey")``,
* two peers: ``scipy.optimize.least_squares(method="lm")`` with an analytic Jacobian from the L2
  start, and SciPy's AAA of the same degree,

and scores every fit on held-out, noise-free points drawn apart from the training data: the MSE
far from the poles and near them, the pole localisation error, matched / missed / extra poles
and the wall time. A second part starts near the L2 optimum (the linearised fit of a 10%
subsample, or φ of the optimum perturbed by 5%) and asks whether the default optimizer reaches
the optimum, and how fast next to ``least_squares``.

Regenerate ``docs/training.md`` with ``python -m bench.training_quality`` (``--quick`` for the
smoke configuration, ``--out PATH``, ``--json PATH`` for the raw rows); the tables are built by
:mod:`bench.training_report`.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # ``python bench/training_quality.py`` from the repository
    sys.path.insert(0, str(_ROOT))

from scipy.optimize import least_squares  # noqa: E402

from bench.training_targets import NOISES, Noise, Target, noisy, targets  # noqa: E402
from zeroproof_nb.fitting import linearized_fit  # noqa: E402
from zeroproof_nb.layers import TRRational  # noqa: E402
from zeroproof_nb.least_squares import levenberg_marquardt  # noqa: E402
from zeroproof_nb.metrics import distance_to_nearest_pole, match_poles  # noqa: E402
from zeroproof_nb.metrics import pole_localization_error  # noqa: E402
from zeroproof_nb.problems import fit_aaa  # noqa: E402
from zeroproof_nb.rational import basis_features  # noqa: E402
from zeroproof_nb.training.trainer import Trainer, TrainingConfig  # noqa: E402

__all__ = ["Target", "Noise", "BenchConfig", "QUICK", "FULL", "targets", "run_quality",
           "run_convergence", "run_speed", "run", "main"]

#: the layers' own parametrisation: Chebyshev, with the package's default denominator (the
#: anchored one since issue #13; ``kernel_basis`` names it for the functional API)
def _basis(t: "Target") -> str:
    """The functional API's basis of the package's default Chebyshev layer at t's degrees."""
    return getattr(TRRational(*t.degrees, basis="chebyshev"), "kernel_basis", "chebyshev")
#: a run reached the L2 optimum when its held-out loss is within this relative distance of it
REACHED = 1e-6

# ------------------------------------------------------------------------------------------------
# what the installed package offers (the benchmark runs before and after the training work)
# ------------------------------------------------------------------------------------------------

_LIN_LOSSES = ("l2", "huber", "tukey") if "loss" in inspect.signature(
    linearized_fit).parameters else ("l2",)
_CFG_FIELDS = {f.name for f in dataclasses.fields(TrainingConfig)}


def _robust_training() -> bool:
    if "loss" not in _CFG_FIELDS:
        return False
    try:
        TrainingConfig(loss="tukey", verbose=False)
    except (ValueError, TypeError):
        return False
    return True


_TUKEY_TRAINING = _robust_training() and "tukey" in _LIN_LOSSES


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of a benchmark run.

    Attributes
    ----------
    problems : names of :func:`targets` to run (None: all)
    noises : noise settings
    seeds : data seeds (the held-out points, splits and perturbations derive from them)
    n_train : training points, uniform on the domain
    n_far, n_near : held-out points far from the poles, and per side of each pole near it
    far_fraction : "far" is a distance to the nearest pole > far_fraction · width
    near_band : "near" is a distance in (near_band[0], near_band[1]] · width
    match_fraction : a found pole matches a true one within match_fraction · width (also the
        cost of a missed / extra pole in the PLE)
    n_val : held-out points of the convergence part (noisy, like the training data)
    conv_noise : noise of the convergence part
    speed_problems, speed_sizes, speed_rounds : the speed part (problems among the selected
        ones, training-set sizes, interleaved timing rounds)
    """

    problems: tuple[str, ...] | None = None
    noises: tuple[Noise, ...] = NOISES
    seeds: tuple[int, ...] = (100, 101, 102, 103, 104)
    n_train: int = 2000
    n_far: int = 1000
    n_near: int = 100
    far_fraction: float = 0.05
    near_band: tuple[float, float] = (1e-3, 5e-2)
    match_fraction: float = 1e-2
    n_val: int = 500
    conv_noise: Noise = Noise("additive", 1e-3)
    speed_problems: tuple[str, ...] = ("two_poles", "gamma", "tan")
    speed_sizes: tuple[int, ...] = (2000, 20000)
    speed_rounds: int = 5
    name: str = "full"


FULL = BenchConfig()
QUICK = BenchConfig(problems=("two_poles", "tan"),
                    noises=(Noise("none", 0.0), Noise("additive", 1e-3), Noise("outliers", 0.05)),
                    seeds=(100, 101), n_train=500, n_far=300, n_near=30, n_val=200,
                    speed_problems=("two_poles",), speed_sizes=(500,), speed_rounds=3,
                    name="quick")


def _selected(config: BenchConfig) -> list[Target]:
    all_t = targets()
    if config.problems is None:
        return all_t
    by_name = {t.name: t for t in all_t}
    unknown = [p for p in config.problems if p not in by_name]
    if unknown:
        raise ValueError(f"unknown problems {unknown}; known: {sorted(by_name)}")
    return [by_name[p] for p in config.problems]


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def train_data(t: Target, noise: Noise, seed: int, n: int, stream: int = 0):
    rng = rng_for(seed, stream)
    x = rng.uniform(*t.domain, n)
    with np.errstate(all="ignore"):
        y = noisy(t.func(x), noise, rng)
    keep = np.isfinite(y)  # a sample exactly on a pole (never seen in practice)
    return x[keep], y[keep]


def held_out_points(t: Target, seed: int, config: BenchConfig) -> dict[str, np.ndarray]:
    """Noise-free held-out points far from and near the true poles."""
    rng = rng_for(seed, 1)
    w, poles = t.width, np.asarray(t.poles)
    lo_b, hi_b = config.near_band[0] * w, config.near_band[1] * w
    xs = []
    while sum(a.size for a in xs) < config.n_far:
        c = rng.uniform(*t.domain, 4 * config.n_far)
        xs.append(c[distance_to_nearest_pole(c, poles) > config.far_fraction * w])
    x_far = np.concatenate(xs)[:config.n_far]
    d = np.exp(rng.uniform(np.log(lo_b), np.log(hi_b), (poles.size, 2, config.n_near)))
    x_near = (poles[:, None, None] + np.array([-1.0, 1.0])[None, :, None] * d).reshape(-1)
    dist = distance_to_nearest_pole(x_near, poles)
    x_near = x_near[(x_near >= t.domain[0]) & (x_near <= t.domain[1]) & (dist > lo_b)
                    & (dist <= hi_b)]
    with np.errstate(all="ignore"):
        return {"x_far": x_far, "y_far": t.func(x_far), "x_near": x_near, "y_near": t.func(x_near)}


# ------------------------------------------------------------------------------------------------
# fits
# ------------------------------------------------------------------------------------------------


def model_for(t: Target, dom, theta, phi, **kwargs) -> TRRational:
    m = TRRational(*t.degrees, basis="chebyshev", domain=dom, **kwargs)
    m.set_parameters([theta, phi])
    return m


def linearized_start(x, y, t: Target, dom, loss: str = "l2"):
    kw = {"loss": loss} if loss != "l2" else {}
    return linearized_fit(x, y, *t.degrees, basis=_basis(t), domain=dom, **kw)


def _denominator_features(x, d_q: int, dom, basis: str) -> np.ndarray:
    try:
        from zeroproof_nb.rational import denominator_features
    except ImportError:  # before issue #13: Q = 1 + sum phi_k psi_k
        return basis_features(x, d_q, basis=basis, domain=dom)[:, 1:]
    return denominator_features(x, d_q, basis=basis, domain=dom)


class _Rational:
    """Residuals y - P/Q and their analytic Jacobian for ``least_squares``."""

    def __init__(self, x, y, t: Target, dom):
        self.psi_p = basis_features(x, t.degrees[0], basis=_basis(t), domain=dom)
        self.psi_q = _denominator_features(x, t.degrees[1], dom, _basis(t))
        self.y = y
        self.n_p = self.psi_p.shape[1]

    def fun(self, u):
        p = self.psi_p @ u[:self.n_p]
        q = 1.0 + self.psi_q @ u[self.n_p:]
        return p / q - self.y

    def jac(self, u):
        p = self.psi_p @ u[:self.n_p]
        q = 1.0 + self.psi_q @ u[self.n_p:]
        return np.hstack([self.psi_p / q[:, None], self.psi_q * (-p / (q * q))[:, None]])


class _ExtendedResiduals:
    """The residuals P/Q - y in NumPy's longdouble (80-bit on x86: 3 more digits), from the
    package's mapped point t (float64, as the kernels compute it) and the Chebyshev
    recurrence."""

    def __init__(self, x, y, t: Target, dom):
        tt = basis_features(x, 1, basis=_basis(t), domain=dom)[:, 1].astype(np.longdouble)
        deg = max(t.degrees)
        feats = [np.ones_like(tt), tt]
        for _ in range(2, deg + 1):
            feats.append(2 * tt * feats[-1] - feats[-2])
        f = np.stack(feats[:deg + 1], axis=1)
        self.psi_p = f[:, :t.degrees[0] + 1]
        self.psi_q = f[:, 1:t.degrees[1] + 1]
        if _basis(t) == "chebyshev_anchored":  # eta_k = m(t) T_{k-1}(t), Q(t_a) = 1
            t_a = -np.cosh(np.arccosh(10.0) / t.degrees[1])
            self.psi_q = (1 - tt / np.longdouble(t_a))[:, None] * f[:, :t.degrees[1]]
        self.y = y.astype(np.longdouble)
        self.n_p = t.degrees[0] + 1

    def fun(self, u):
        u = np.asarray(u).astype(np.longdouble)
        return (self.psi_p @ u[:self.n_p]) / (1 + self.psi_q @ u[self.n_p:]) - self.y

    def loss(self, u) -> float:
        return np.sum(self.fun(u) ** 2)


def _lsq(x, y, t: Target, dom, theta, phi, **kwargs):
    """``least_squares(method="lm")`` with the analytic Jacobian from (theta, phi)."""
    r = _Rational(x, y, t, dom)
    res = least_squares(r.fun, np.concatenate([theta, phi]), jac=r.jac, method="lm", **kwargs)
    return res.x[:r.n_p].copy(), res.x[r.n_p:].copy(), int(res.nfev)


def _aaa(x, y, t: Target, dom):
    """SciPy's AAA of the model's degree (max(d_p, d_q) + 1 support points)."""
    with warnings.catch_warnings():  # "failed to converge": expected at a fixed degree
        warnings.simplefilter("ignore", RuntimeWarning)
        return fit_aaa(x, y, domain=dom, max_terms=max(t.degrees) + 1)


def _train(model: TRRational, x, y, seed: int, x_val=None, y_val=None, **cfg):
    config = TrainingConfig(verbose=False, seed=seed, **cfg)
    trainer = Trainer(model, config=config)
    kw = {} if x_val is None else {"x_val": x_val, "y_val": y_val}
    trainer.fit(x, y, **kw)
    return trainer


def predict(model, x: np.ndarray) -> np.ndarray:
    if isinstance(model, TRRational):
        out = model.forward(x)
        v = np.array(out["value"], dtype=np.float64)
        v[out["tag"] != 0] = np.inf  # a non-REAL output where the target is finite
        return v
    return model.predict(x)


def mse(pred: np.ndarray, y: np.ndarray) -> float:
    if pred.size == 0:
        return math.nan
    with np.errstate(all="ignore"):
        e = (pred - y) ** 2
    return float(np.mean(np.where(np.isfinite(e), e, np.inf)))


def _score(model, t: Target, test: dict[str, np.ndarray], config: BenchConfig) -> dict[str, Any]:
    tol = config.match_fraction * t.width
    found = np.asarray(model.poles(), dtype=np.float64)
    m = match_poles(found, t.poles, tol)
    return {
        "far_mse": mse(predict(model, test["x_far"]), test["y_far"]),
        "near_mse": mse(predict(model, test["x_near"]), test["y_near"]),
        "ple": float(pole_localization_error(found, t.poles, max_distance=tol)),
        "matched": m.n_matched, "missed": int(m.missed.size), "extra": int(m.extra.size),
        "max_pole_error": float(m.distances.max()) if m.n_matched else None,
    }


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _warm_up(t: Target) -> None:
    """Compile (or load) every kernel the timed calls use, for this target's degrees."""
    x, y = train_data(t, Noise("additive", 1e-3), 0, 400, stream=9)
    dom = (float(x.min()), float(x.max()))
    th, ph = linearized_start(x, y, t, dom)
    for loss in _LIN_LOSSES[1:]:
        linearized_start(x, y, t, dom, loss)
    _train(model_for(t, dom, th, ph), x, y, 0, max_epochs=3)
    _train(model_for(t, dom, th, ph, alpha_phi=0.0), x, y, 0, x_val=x[:50], y_val=y[:50],
           max_epochs=3, use_adaptive_loss=False, initial_lambda=0.0)
    if _TUKEY_TRAINING:
        _train(model_for(t, dom, th, ph), x, y, 0, max_epochs=3, loss="tukey")
    _lsq(x, y, t, dom, th, ph)
    _aaa(x, y, t, dom)


# ------------------------------------------------------------------------------------------------
# part 1: start vs trained vs peers
# ------------------------------------------------------------------------------------------------


def _quality_case(t: Target, noise: Noise, seed: int, config: BenchConfig) -> list[dict[str, Any]]:
    x, y = train_data(t, noise, seed, config.n_train)
    test = held_out_points(t, seed, config)
    dom = (float(x.min()), float(x.max()))
    base = {"problem": t.name, "kind": t.kind, "description": t.description,
            "noise": noise.label, "seed": seed}
    rows = []

    def add(method, model, seconds, **extra):
        rows.append({**base, "method": method, **_score(model, t, test, config),
                     "time_s": seconds, **extra})

    starts = {}
    for loss in _LIN_LOSSES:
        (th, ph), dt = _timed(lambda: linearized_start(x, y, t, dom, loss))
        starts[loss] = (th, ph)
        add(f"start ({loss.upper() if loss == 'l2' else loss.capitalize()})",
            model_for(t, dom, th, ph), dt)

    def trained(method, start, **cfg):
        model = model_for(t, dom, *start)
        trainer, dt = _timed(lambda: _train(model, x, y, seed, **cfg))
        s = trainer.get_training_summary()
        held = s.get("held_out") or {}
        unchanged = all(np.array_equal(a, b) for a, b in zip(model.parameters(), start))
        add(method, model, dt, epochs=int(s.get("epochs_trained", 0)),
            optimizer=s.get("optimizer"), held_start=held.get("start"),
            held_final=held.get("final"), restored=held.get("restored"),
            params_unchanged=bool(unchanged))

    trained("trained", starts["l2"])
    if _TUKEY_TRAINING:
        trained("trained (Tukey)", starts["tukey"], loss="tukey")
    (th, ph, nfev), dt = _timed(lambda: _lsq(x, y, t, dom, *starts["l2"]))
    add("least_squares", model_for(t, dom, th, ph), dt, nfev=nfev)
    peer, dt = _timed(lambda: _aaa(x, y, t, dom))
    add("AAA", peer, dt)
    return rows


def run_quality(config: BenchConfig = FULL, progress: Callable[[str], None] | None = None
                ) -> list[dict[str, Any]]:
    """Part 1: one row per (problem, noise, seed, method); see the module docstring."""
    rows = []
    for t in _selected(config):
        _warm_up(t)
        for noise in config.noises:
            for seed in config.seeds:
                rows += _quality_case(t, noise, seed, config)
        if progress:
            progress(f"quality: {t.name} done")
    return rows


# ------------------------------------------------------------------------------------------------
# part 2: convergence from a nearby start, and speed next to least_squares
# ------------------------------------------------------------------------------------------------


def _held_out_mse(t: Target, dom, theta, phi, xv, yv) -> float:
    return mse(predict(model_for(t, dom, theta, phi), xv), yv)


def _between(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether any sample lies between a start pole and its optimum pole (pairs a_i, b_i)."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return bool(np.any((x[:, None] > lo[None, :]) & (x[:, None] < hi[None, :])))


def l2_optimum(x, y, t: Target, dom, theta, phi):
    """The L2 optimum of (x, y) reached by ``least_squares`` from (theta, phi), tolerances
    1e-15."""
    th, ph, _ = _lsq(x, y, t, dom, theta, phi, xtol=1e-15, ftol=1e-15, gtol=1e-15,
                     max_nfev=5000)
    # MINPACK stops at its tolerance floor, and near a pole its float64 residuals are known
    # to ~1e-9 relative only: a few Gauss-Newton steps on residuals evaluated in extended
    # precision (NumPy's longdouble; the Jacobian in float64, column-scaled for NumPy's SVD
    # least squares), each kept only when the extended-precision loss falls, take the
    # reference to the optimum of the model function itself
    r = _Rational(x, y, t, dom)
    ext = _ExtendedResiduals(x, y, t, dom)
    u = np.concatenate([th, ph])
    loss = ext.loss(u)
    for _ in range(10):
        jac = r.jac(u)
        cs = np.linalg.norm(jac, axis=0)
        cs[cs == 0] = 1.0
        step, *_ = np.linalg.lstsq(jac / cs, -ext.fun(u).astype(np.float64), rcond=None)
        step /= cs
        new = ext.loss(u + step)
        if not new < loss:
            break
        u, loss = u + step, new
    return u[:r.n_p].copy(), u[r.n_p:].copy()


def _eligible(x, p0: np.ndarray, p_opt: np.ndarray, width: float) -> bool:
    """Same number of poles as the optimum, each matched, no sample between a matched pair."""
    m = match_poles(p0, p_opt, 0.1 * width)
    return (p0.size == p_opt.size and m.n_matched == p_opt.size
            and not _between(x, p0[m.pairs[:, 0]], p_opt[m.pairs[:, 1]]))


def _gap_data(x, y, t: Target, dom, start, opt):
    """The training data without the samples between the start's poles and the optimum's
    (None when the start's poles do not pair up with the optimum's)."""
    p0 = model_for(t, dom, *start).poles()
    p_opt = model_for(t, dom, *opt).poles()
    m = match_poles(p0, p_opt, 0.1 * t.width)
    if p0.size != p_opt.size or m.n_matched != p_opt.size:
        return None
    a, b = p0[m.pairs[:, 0]], p_opt[m.pairs[:, 1]]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    drop = np.any((x[:, None] >= lo[None, :]) & (x[:, None] <= hi[None, :]), axis=1)
    return x[~drop], y[~drop]


_VARIANTS = {
    "Trainer (defaults)": ({}, {}),
    "Trainer (L2 objective)": ({"alpha_phi": 0.0},
                               {"use_adaptive_loss": False, "initial_lambda": 0.0}),
}


def _conv_case(t: Target, seed: int, config: BenchConfig) -> list[dict[str, Any]]:
    x, y = train_data(t, config.conv_noise, seed, config.n_train, stream=2)
    xv, yv = train_data(t, config.conv_noise, seed, config.n_val, stream=3)
    dom = (float(x.min()), float(x.max()))
    full = linearized_start(x, y, t, dom)
    opt = l2_optimum(x, y, t, dom, *full)
    rng = rng_for(seed, 4)
    sub = rng.choice(x.size, size=max(x.size // 10, sum(t.degrees) + 2), replace=False)

    def perturbed():
        return opt[0].copy(), opt[1] * (1.0 + 0.05 * rng.standard_normal(opt[1].size))

    # start name -> (start, training data, its optimum)
    starts = {
        "subsample 10%": (linearized_start(x[sub], y[sub], t, dom), (x, y), opt),
        "φ·(1 + 5%)": (perturbed(), (x, y), opt),
    }
    gap_start = perturbed()
    gap = _gap_data(x, y, t, dom, gap_start, opt)
    if gap is not None:
        starts["φ·(1 + 5%), gap"] = (gap_start, gap, l2_optimum(*gap, t, dom, *opt))
    starts["optimum"] = ((opt[0].copy(), opt[1].copy()), (x, y), opt)
    rows = []
    for start_name, ((th0, ph0), (xs, ys), (oth, oph)) in starts.items():
        ref = _held_out_mse(t, dom, oth, oph, xv, yv)
        train = (xs, ys, _held_out_mse(t, dom, oth, oph, xs, ys))
        held = (xv, yv, ref)
        eligible = _eligible(xs, model_for(t, dom, th0, ph0).poles(),
                             model_for(t, dom, oth, oph).poles(), t.width)
        start = {"problem": t.name, "seed": seed, "start": start_name, "reference": ref,
                 "n_train": int(xs.size), "eligible": bool(eligible),
                 "full_lin_gap": abs(_held_out_mse(t, dom, *full, xv, yv) - ref) / ref,
                 "start_gap": abs(_held_out_mse(t, dom, th0, ph0, xv, yv) - ref) / ref}
        for method, (mkw, ckw) in _VARIANTS.items():
            model = model_for(t, dom, th0, ph0, **mkw)
            trainer, dt = _timed(lambda: _train(model, xs, ys, seed, x_val=xv, y_val=yv, **ckw))
            th, ph = model.parameters()
            rows.append({**start, "method": method, "time_s": dt,
                         "epochs": int(trainer.get_training_summary()["epochs_trained"]),
                         **_conv_score(t, dom, th, ph, th0, ph0, train, held)})
        (th, ph, nfev), dt = _timed(lambda: _lsq(xs, ys, t, dom, th0, ph0))
        rows.append({**start, "method": "least_squares", "time_s": dt, "nfev": nfev,
                     **_conv_score(t, dom, th, ph, th0, ph0, train, held)})
    return rows


def _conv_score(t, dom, th, ph, th0, ph0, train, held) -> dict[str, Any]:
    """Held-out gap |L_val - L*_val| / L*_val (reached: <= 1e-6), the training-loss gap
    (L_train - L*_train) / L*_train, and the largest parameter change relative to the start's
    largest parameter."""
    val = _held_out_mse(t, dom, th, ph, held[0], held[1])
    tr = _held_out_mse(t, dom, th, ph, train[0], train[1])
    scale = max(np.max(np.abs(th0)), np.max(np.abs(ph0), initial=0.0))
    moved = max(np.max(np.abs(th - th0)), np.max(np.abs(ph - ph0), initial=0.0)) / scale
    gap = abs(val - held[2]) / held[2]
    train_gap = (tr - train[2]) / train[2]
    return {"held_out": val, "gap": gap, "reached": bool(gap <= REACHED),
            "train_gap": train_gap, "reached_train": bool(abs(train_gap) <= REACHED),
            "moved": float(moved)}


def run_convergence(config: BenchConfig = FULL, progress: Callable[[str], None] | None = None
                    ) -> list[dict[str, Any]]:
    """Part 2: one row per (problem, seed, start, method)."""
    rows = []
    for t in _selected(config):
        _warm_up(t)
        for seed in config.seeds:
            rows += _conv_case(t, seed, config)
        if progress:
            progress(f"convergence: {t.name} done")
    return rows


# ------------------------------------------------------------------------------------------------
# part 3: speed at realistic sizes
# ------------------------------------------------------------------------------------------------

_SPEED_METHODS = ("Trainer (defaults)", "levenberg_marquardt", "least_squares",
                  "least_squares (tol 1e-12)")


def _speed_case(t: Target, n: int, config: BenchConfig) -> list[dict[str, Any]]:
    """The four methods from the 10%-subsample start on ``n`` points, timed in interleaved
    rounds (medians), each with its held-out gap to the L2 optimum."""
    seed = config.seeds[0]
    x, y = train_data(t, config.conv_noise, seed, n, stream=2)
    xv, yv = train_data(t, config.conv_noise, seed, config.n_val, stream=3)
    dom = (float(x.min()), float(x.max()))
    opt = l2_optimum(x, y, t, dom, *linearized_start(x, y, t, dom))
    ref = _held_out_mse(t, dom, *opt, xv, yv)
    sub = rng_for(seed, 4).choice(x.size, size=max(x.size // 10, sum(t.degrees) + 2),
                               replace=False)
    th0, ph0 = linearized_start(x[sub], y[sub], t, dom)

    def trainer():
        model = model_for(t, dom, th0, ph0)
        _train(model, x, y, seed, x_val=xv, y_val=yv)
        return model.parameters()

    def lm():
        r = levenberg_marquardt(x, y, th0, ph0, basis=_basis(t), domain=dom)
        return r.theta, r.phi

    fns = {"Trainer (defaults)": trainer, "levenberg_marquardt": lm,
           "least_squares": lambda: _lsq(x, y, t, dom, th0, ph0)[:2],
           "least_squares (tol 1e-12)": lambda: _lsq(x, y, t, dom, th0, ph0, ftol=1e-12,
                                                     xtol=1e-12, gtol=1e-12)[:2]}
    times: dict[str, list[float]] = {k: [] for k in fns}
    gaps = {}
    for name, fn in fns.items():  # warm-up, and the result
        th, ph = fn()
        gaps[name] = abs(_held_out_mse(t, dom, th, ph, xv, yv) - ref) / ref
    for _ in range(config.speed_rounds):
        for name, fn in fns.items():
            times[name].append(_timed(fn)[1])
    return [{"problem": t.name, "n": n, "method": name, "time_s": float(np.median(times[name])),
             "gap": gaps[name], "reached": bool(gaps[name] <= REACHED)} for name in fns]


def run_speed(config: BenchConfig = FULL, progress: Callable[[str], None] | None = None
              ) -> list[dict[str, Any]]:
    """Part 3: one row per (problem, size, method)."""
    rows = []
    for t in _selected(config):
        if t.name not in config.speed_problems:
            continue
        for n in config.speed_sizes:
            rows += _speed_case(t, n, config)
        if progress:
            progress(f"speed: {t.name} done")
    return rows


def run(config: BenchConfig = FULL, progress: Callable[[str], None] | None = None
        ) -> dict[str, Any]:
    """Both parts and the run's metadata: ``{"quality": rows, "convergence": rows, "meta"}``."""
    t0 = time.perf_counter()
    quality = run_quality(config, progress)
    t1 = time.perf_counter()
    conv = run_convergence(config, progress)
    t2 = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    speed = run_speed(config, progress)
    t3 = time.perf_counter()
    return {"quality": quality, "convergence": conv, "speed": speed,
            "meta": {**_machine(), "config": config.name, "quality_s": t1 - t0,
                     "convergence_s": t2 - t1, "speed_s": t3 - t2, "load_average": load, "lin_losses": list(_LIN_LOSSES),
                     "tukey_training": _TUKEY_TRAINING, "n_targets": len(_selected(config)),
                     "n_train": config.n_train, "n_val": config.n_val,
                     "conv_noise": config.conv_noise.label,
                     "far": f"{config.far_fraction:g}·width",
                     "near": f"({config.near_band[0]:g}, {config.near_band[1]:g}]·width",
                     "tol": f"{config.match_fraction:g}·width"}}


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"date": datetime.date.today().isoformat(),
                            "python": platform.python_version(), "numpy": np.__version__}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)"):
                info[key.strip()] = val.strip()
    except (OSError, subprocess.SubprocessError):
        info["Model name"] = platform.processor() or "unknown"
    try:
        import numba
        import scipy
        info.update(numba=numba.__version__, scipy=scipy.__version__,
                    numba_threads=numba.get_num_threads())
    except ImportError:  # pragma: no cover
        pass
    try:
        info["commit"] = subprocess.run(["git", "-C", str(_ROOT), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["commit"] = "unknown"
    return info


def main(argv: list[str] | None = None) -> int:
    """Command line: run the benchmark and write the markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small smoke configuration")
    ap.add_argument("--out", default=None, help="markdown report (default: docs/training.md; "
                    "with --quick: print only)")
    ap.add_argument("--json", default=None, help="also write the raw rows as JSON")
    args = ap.parse_args(argv)
    config = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else
                                                 str(_ROOT / "docs" / "training.md"))
    command = "python -m bench.training_quality" + (" --quick" if args.quick else "")
    if args.out is not None:
        command += f" --out {args.out}"
    result = run(config, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    from bench.training_report import render_markdown

    text = render_markdown(result, command)
    if out is None:
        print(text)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n",
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
