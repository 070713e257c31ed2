"""Fit-quality benchmark of ``zeroproof_nb.fit_rational`` against SciPy's AAA (issue #13 targets).

For each target (non-rational functions with real poles, a Lorentzian with none), noise setting
(none, 1% multiplicative) and seed, N uniform random samples are drawn on the domain (samples
within ``drop`` of a true pole are dropped) and fitted by

* ``fit_rational(x, y, seed=seed)`` (the package defaults otherwise),
* ``scipy.interpolate.AAA(x, y)`` at its default tolerance,
* ``AAA(x, y, rtol=noise level)`` (noisy rows only).

Each fit is scored on its real poles in the domain (for AAA: ``|imag| <= 1e-6·max(1, |real|)``
and the real part in the domain) against the true poles with
:func:`zeroproof_nb.metrics.match_poles`, and on noise-free test points of a fine grid farther
than ``far_fraction`` of the domain width from every true pole (relative MSE: MSE / mean(f²)).
Wall times are warm (each method runs once before the first timed fit) and taken alternately:
the order of the methods flips from seed to seed.

Regenerate ``docs/fit_rational.md`` with ``python -m bench.fit_quality`` (``--quick`` for the
smoke configuration, printed only; ``--out PATH``; ``--json PATH`` for the raw rows).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # ``python bench/fit_quality.py`` from the repository
    sys.path.insert(0, str(_ROOT))

import scipy  # noqa: E402
import scipy.special as _sp  # noqa: E402
from scipy.interpolate import AAA  # noqa: E402

from bench.training_targets import inv_j0  # noqa: E402

import zeroproof_nb  # noqa: E402
from zeroproof_nb.metrics import match_poles  # noqa: E402

__all__ = ["Target", "BenchConfig", "QUICK", "FULL", "targets", "aaa_real_poles", "run",
           "summarize", "render_markdown", "main"]

METHODS = ("fit_rational", "AAA (default)", "AAA (rtol = noise)")
#: a pole is "found" within this distance; extra poles are those unmatched at this tolerance
TOL_FOUND = 1e-3
#: clean rows: every true pole within this distance
TOL_CLEAN = 1e-8
#: an AAA pole is real when |imag| <= IMAG_REL * max(1, |real|)
IMAG_REL = 1e-6


# ------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A 1-D target: ``func`` on ``domain`` with the true real poles ``poles`` inside it."""

    name: str
    func: Callable[[np.ndarray], np.ndarray]
    domain: tuple[float, float]
    poles: tuple[float, ...]
    kind: str  # "special" (non-rational with poles) or "lorentzian" (no real pole)
    description: str

    @property
    def width(self) -> float:
        return float(self.domain[1] - self.domain[0])


def _lorentzian(x: np.ndarray) -> np.ndarray:
    return 1.0 / ((x - 0.2) ** 2 + 0.01)


def _inv_x_cos(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / x + np.cos(x)


def targets() -> list[Target]:
    """The six issue #13 targets."""
    hp = math.pi / 2
    j0z = tuple(float(v) for v in _sp.jn_zeros(0, 3))
    return [
        Target("tan", np.tan, (-3.0, 3.0), (-hp, hp), "special", "tan x on [−3, 3], poles ±π/2"),
        Target("gamma", _sp.gamma, (-3.5, 3.0), (-3.0, -2.0, -1.0, 0.0), "special",
               "Γ(x) on [−3.5, 3], poles 0, −1, −2, −3"),
        Target("digamma", _sp.digamma, (-2.7, 2.5), (-2.0, -1.0, 0.0), "special",
               "ψ(x) on [−2.7, 2.5], poles 0, −1, −2"),
        Target("inv_j0", inv_j0, (0.0, 9.0), j0z, "special",
               "1/J₀(x) on [0, 9], poles at the zeros " + ", ".join(f"{v:.3f}" for v in j0z)),
        Target("lorentzian", _lorentzian, (-1.0, 1.0), (), "lorentzian",
               "1/((x−0.2)²+0.01) on [−1, 1], poles 0.2 ± 0.1i (no real pole)"),
        Target("inv_x_cos", _inv_x_cos, (-2.0, 2.0), (0.0,), "special",
               "1/x + cos x on [−2, 2], a pole at the centre 0"),
    ]


@dataclass(frozen=True)
class BenchConfig:
    name: str = "full"
    targets: tuple[str, ...] = ("tan", "gamma", "digamma", "inv_j0", "lorentzian", "inv_x_cos")
    noises: tuple[float, ...] = (0.0, 0.01)
    seeds: tuple[int, ...] = tuple(range(10))
    n: int = 2000
    drop: float = 1e-3
    n_grid: int = 4001
    far_fraction: float = 0.05
    fit_kwargs: dict[str, Any] = field(default_factory=dict)


FULL = BenchConfig()
QUICK = BenchConfig(name="quick", targets=("tan", "lorentzian"), seeds=(0, 1))


# ------------------------------------------------------------------------------------------------
# one case
# ------------------------------------------------------------------------------------------------


def sample(t: Target, noise: float, seed: int, n: int, drop: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """N uniform random x on the domain (sorted), those within ``drop`` of a pole dropped;
    y = f(x)·(1 + noise·ε), ε standard normal."""
    rng = np.random.default_rng([13, seed])
    x = np.sort(rng.uniform(t.domain[0], t.domain[1], n))
    eps = rng.standard_normal(n)
    if t.poles:
        keep = np.min(np.abs(x[:, None] - np.asarray(t.poles)[None, :]), axis=1) > drop
        x, eps = x[keep], eps[keep]
    y = t.func(x)
    if noise > 0:
        y = y * (1.0 + noise * eps)
    return x, y


def far_grid(t: Target, n_grid: int, far_fraction: float) -> np.ndarray:
    """The fine grid's points farther than ``far_fraction·width`` from every true pole."""
    g = np.linspace(t.domain[0], t.domain[1], n_grid)
    if t.poles:
        d = np.min(np.abs(g[:, None] - np.asarray(t.poles)[None, :]), axis=1)
        g = g[d > far_fraction * t.width]
    return g


def aaa_real_poles(approx: Any, domain: tuple[float, float]) -> np.ndarray:
    """The real poles of a SciPy AAA approximant in ``domain``, sorted."""
    p = np.asarray(approx.poles(), dtype=complex)
    p = p[np.isfinite(p)]
    re = p.real
    real = np.abs(p.imag) <= IMAG_REL * np.maximum(1.0, np.abs(re))
    inside = (re >= domain[0]) & (re <= domain[1])
    return np.sort(re[real & inside])


def _fit(method: str, x: np.ndarray, y: np.ndarray, t: Target, noise: float, seed: int,
         cfg: BenchConfig) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, float, dict]:
    """Fit, time (data to real poles), and return (predict, real poles, seconds, extras)."""
    extra: dict[str, Any] = {}
    if method == "fit_rational":
        t0 = time.perf_counter()
        fit = zeroproof_nb.fit_rational(x, y, seed=seed, **cfg.fit_kwargs)
        poles = np.sort(np.asarray(fit.poles, dtype=float))
        sec = time.perf_counter() - t0
        model = fit.model
        extra["degrees"] = list(fit.degrees)
        extra["removed"] = len(fit.removed) if fit.removed is not None else 0
        rep = fit.report
        extra["best_degrees"] = list(rep.get("best_degrees", []))
        best = float(rep.get("best", math.nan))
        extra["held_out_vs_best"] = (float(rep.get("held_out_loss", math.nan)) / best
                                     if best > 0 else math.nan)

        def predict(g: np.ndarray) -> np.ndarray:
            return np.asarray(model.forward(g)["value"], dtype=float)
        return predict, poles, sec, extra
    kwargs = {} if method == "AAA (default)" else {"rtol": noise}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        approx = AAA(x, y, **kwargs)
        poles = aaa_real_poles(approx, t.domain)
        sec = time.perf_counter() - t0
    extra["not_converged"] = any("converge" in str(w.message) for w in caught)
    extra["n_support"] = int(np.asarray(approx.support_points).size)

    def predict(g: np.ndarray) -> np.ndarray:
        v = np.asarray(approx(g))
        return v.real.astype(float) if np.iscomplexobj(v) else v.astype(float)
    return predict, poles, sec, extra


def _score(t: Target, poles: np.ndarray, predict: Callable, grid: np.ndarray, f_grid: np.ndarray
           ) -> dict[str, Any]:
    true = np.asarray(t.poles, dtype=float)
    m = match_poles(poles, true, TOL_FOUND)
    if true.size:
        if poles.size:
            max_err = float(np.max(np.min(np.abs(true[:, None] - poles[None, :]), axis=1)))
        else:
            max_err = math.inf
        m8 = match_poles(poles, true, TOL_CLEAN)
        all_8 = int(m8.missed.size) == 0
    else:
        max_err, all_8 = None, True
    with np.errstate(all="ignore"):
        pred = predict(grid)
        err = pred - f_grid
        mse = float(np.mean(err * err)) if np.all(np.isfinite(pred)) else math.inf
    return {"n_real": int(poles.size), "all_1e3": int(m.missed.size) == 0, "all_1e8": all_8,
            "extra": int(m.extra.size), "max_pole_err": max_err,
            "far_rel_mse": mse / float(np.mean(f_grid * f_grid)),
            "poles": [float(p) for p in poles]}


def run(config: BenchConfig = FULL, progress: Callable[[str], None] | None = None
        ) -> dict[str, Any]:
    """All cases: ``{"rows": [...], "meta": {...}}``, one row per (target, noise, seed, method)."""
    t_start = time.perf_counter()
    by_name = {t.name: t for t in targets()}
    sel = [by_name[n] for n in config.targets]
    # warm-up: every method once (numba compilation / cache load, SciPy imports)
    t0 = sel[0]
    xw, yw = sample(t0, 0.01, 10_000, config.n, config.drop)
    for method in METHODS:
        _fit(method, xw, yw, t0, 0.01, 0, config)
    warm_s = time.perf_counter() - t_start
    rows: list[dict[str, Any]] = []
    for t in sel:
        grid = far_grid(t, config.n_grid, config.far_fraction)
        f_grid = t.func(grid)
        for noise in config.noises:
            methods = list(METHODS if noise > 0 else METHODS[:2])
            for seed in config.seeds:
                x, y = sample(t, noise, seed, config.n, config.drop)
                order = methods if seed % 2 == 0 else methods[::-1]  # alternate the order
                for method in order:
                    predict, poles, sec, extra = _fit(method, x, y, t, noise, seed, config)
                    row = {"target": t.name, "noise": noise, "seed": seed, "method": method,
                           "n_samples": int(x.size), "seconds": sec, **extra,
                           **_score(t, poles, predict, grid, f_grid)}
                    rows.append(row)
            if progress:
                progress(f"{t.name} noise {noise:g}: done ({time.perf_counter() - t_start:.0f} s)")
    return {"rows": rows, "meta": {**_machine(), "config": config.name,
                                   "targets": list(config.targets),
                                   "noises": list(config.noises), "seeds": list(config.seeds),
                                   "n": config.n, "drop": config.drop, "n_grid": config.n_grid,
                                   "far_fraction": config.far_fraction,
                                   "warmup_s": warm_s,
                                   "total_s": time.perf_counter() - t_start}}


def _machine() -> dict[str, Any]:
    import numba

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(), "processor": platform.processor() or "unknown",
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
        "numba": numba.__version__, "numba_threads": numba.get_num_threads(),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset")}
    try:
        info["Model name"] = next(
            (line.partition(":")[2].strip() for line in subprocess.run(
                ["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines()
             if line.startswith("Model name")), info["processor"])
    except (OSError, subprocess.SubprocessError):
        info["Model name"] = info["processor"]
    try:
        git = ["git", "-C", str(_ROOT)]
        info["commit"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no",
                                      "--", "zeroproof_nb"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        info["dirty"] = sorted(line[3:] for line in dirty if line.strip())
    except (OSError, subprocess.SubprocessError):
        info["commit"], info["dirty"] = "unknown", []
    return info


# ------------------------------------------------------------------------------------------------
# summary and report
# ------------------------------------------------------------------------------------------------


def _med(values) -> float:
    v = [float(a) for a in values if a is not None]
    return float(np.median(v)) if v else math.nan


def _e(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.2g}" if v != 0 else "0"


def _noise_label(noise: float) -> str:
    return "0" if noise == 0 else f"{100 * noise:g}%"


def summarize(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (target, noise, method): counts over seeds and medians."""
    groups: dict[tuple, list[dict]] = {}
    for r in result["rows"]:
        groups.setdefault((r["target"], r["noise"], r["method"]), []).append(r)
    order = {n: i for i, n in enumerate(result["meta"]["targets"])}
    out = []
    for (tname, noise, method), rs in sorted(groups.items(), key=lambda kv: (
            order[kv[0][0]], kv[0][1], METHODS.index(kv[0][2]))):
        out.append({"target": tname, "noise": noise, "method": method, "n_seeds": len(rs),
                    "all_1e3": sum(r["all_1e3"] for r in rs),
                    "all_1e8": sum(r["all_1e8"] for r in rs),
                    "zero_extra": sum(r["extra"] == 0 for r in rs),
                    "no_real": sum(r["n_real"] == 0 for r in rs),
                    "med_extra": _med(r["extra"] for r in rs),
                    "med_max_err": _med(r["max_pole_err"] for r in rs),
                    "med_far": _med(r["far_rel_mse"] for r in rs),
                    "med_s": _med(r["seconds"] for r in rs),
                    "not_converged": sum(bool(r.get("not_converged")) for r in rs),
                    "degrees": sorted({tuple(r["degrees"]) for r in rs if "degrees" in r}),
                    "best_degrees": sorted({tuple(r["best_degrees"]) for r in rs
                                            if r.get("best_degrees")}),
                    "med_held_ratio": _med(r["held_out_vs_best"] for r in rs
                                           if "held_out_vs_best" in r)})
    by = {(s["target"], s["noise"], s["method"]): s for s in out}
    for s in out:
        if s["method"] == "fit_rational":
            a = by.get((s["target"], s["noise"], "AAA (default)"))
            s["time_ratio"] = s["med_s"] / a["med_s"] if a and a["med_s"] > 0 else math.nan
    return out


def _targets_section(result: dict[str, Any], summ: list[dict[str, Any]]) -> list[str]:
    kinds = {t.name: t.kind for t in targets()}
    by = {(s["target"], s["noise"], s["method"]): s for s in summ}
    fr = [s for s in summ if s["method"] == "fit_rational"]
    noisy = [s for s in fr if s["noise"] > 0 and kinds[s["target"]] == "special"]
    clean = [s for s in fr if s["noise"] == 0 and kinds[s["target"]] == "special"]
    lor = [s for s in fr if kinds[s["target"]] == "lorentzian"]
    L = ["## Issue #13 targets, as measured", ""]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    if noisy:
        ok = all(s["zero_extra"] >= math.ceil(0.9 * s["n_seeds"])
                 and s["all_1e3"] == s["n_seeds"] for s in noisy)
        parts = []
        for s in noisy:
            a = by.get((s["target"], s["noise"], "AAA (default)"))
            b = by.get((s["target"], s["noise"], "AAA (rtol = noise)"))
            parts.append(f"{s['target']} {s['zero_extra']}/{s['n_seeds']} with 0 extra, "
                         f"all poles within 1e-3 in {s['all_1e3']}/{s['n_seeds']} "
                         f"(AAA default: median {_e(a['med_extra'])} extra; "
                         f"AAA rtol: {b['zero_extra']}/{b['n_seeds']} with 0 extra)")
        miss = [s["target"] for s in noisy if not (
            s["zero_extra"] >= math.ceil(0.9 * s["n_seeds"]) and s["all_1e3"] == s["n_seeds"])]
        L.append(f"- **Noisy non-rational targets** (1% noise; every true pole within 1e-3 and "
                 f"0 extra real poles in ≥ 9 of 10 seeds): {verdict(ok)}"
                 + (f" (missed on {', '.join(miss)})" if miss else "") + ". "
                 + "; ".join(parts) + ".")
    if lor:
        ok = all(s["no_real"] == s["n_seeds"] for s in lor)
        parts = [f"noise {_noise_label(s['noise'])}: no real pole in "
                 f"{s['no_real']}/{s['n_seeds']} seeds (median {_e(s['med_extra'])} real poles; "
                 f"AAA default {_e(by[(s['target'], s['noise'], 'AAA (default)')]['med_extra'])})"
                 for s in lor]
        L.append(f"- **Lorentzian, no real pole** at noise 0 and 1%: {verdict(ok)}. "
                 + "; ".join(parts) + ".")
    if clean:
        ok_p = all(s["all_1e8"] == s["n_seeds"] for s in clean)
        ratios = {}
        for s in clean:
            a = by[(s["target"], 0.0, "AAA (default)")]
            ratios[s["target"]] = s["med_far"] / a["med_far"] if a["med_far"] > 0 else math.inf
        ok_m = all(r <= 100 for r in ratios.values())
        parts = [f"{s['target']} {s['all_1e8']}/{s['n_seeds']} seeds all poles within 1e-8 "
                 f"(median max error {_e(s['med_max_err'])}), far MSE {_e(s['med_far'])} vs AAA "
                 f"{_e(by[(s['target'], 0.0, 'AAA (default)')]['med_far'])} "
                 f"({_e(ratios[s['target']])}×)" for s in clean]
        L.append(f"- **Clean samples**: every true pole within 1e-8 in every seed: {verdict(ok_p)}; "
                 f"median far-from-pole relative MSE within 100× of AAA's: {verdict(ok_m)}. "
                 + "; ".join(parts) + ".")
        bad = [s for s in clean if ratios[s["target"]] > 100]
        if bad:
            L.append("  What limits it, as far as this run shows: " + "; ".join(
                f"on {s['target']} fit_rational chose "
                + ", ".join(f"({p},{q})" for p, q in s["degrees"])
                + " while the least held-out loss was at "
                + ", ".join(f"({p},{q})" for p, q in s["best_degrees"])
                + f", the chosen model's held-out loss {s['med_held_ratio']:.3g}× the best's "
                f"(median)" for s in bad) + "."
                + (" The held-out loss (all held-out points, near the poles included) does not "
                   "tell these pairs apart, so the parsimony rule keeps the smaller one; the far-"
                   "from-pole error it leaves is not seen by the selection."
                   if all(s["med_held_ratio"] <= 2 for s in bad) else ""))
    if fr:
        ok = all(s["time_ratio"] <= 0.1 for s in fr)
        n_ok = sum(s["time_ratio"] <= 0.1 for s in fr)
        rs = [s["time_ratio"] for s in fr]
        parts = [f"{s['target']} {_noise_label(s['noise'])} {_e(s['time_ratio'])}" for s in fr]
        L.append(f"- **Speed** (fit_rational median time ≤ 1/10 of AAA's at its default "
                 f"tolerance, {result['meta']['n']} points, both warm): {verdict(ok)} — "
                 f"{n_ok} of {len(fr)} rows; ratio median {_e(_med(rs))}, range "
                 f"{_e(min(rs))}–{_e(max(rs))}. Per row: " + ", ".join(parts) + ".")
    return L


def render_markdown(result: dict[str, Any], command: str) -> str:
    meta = result["meta"]
    summ = summarize(result)
    tmap = {t.name: t for t in targets()}
    dirty = meta.get("dirty") or []
    L = ["# fit_rational: poles and accuracy next to SciPy's AAA", "",
         "Generated by `bench/fit_quality.py` (issue #13 targets); do not edit by hand.", "",
         f"- Command: `{command}` ({meta['config']} configuration; {meta['total_s']:.0f} s, "
         f"warm-up {meta['warmup_s']:.0f} s)",
         f"- Machine: {meta['Model name']}, {meta['cpu_count']} CPUs ({meta['platform']}); "
         f"numba threads {meta['numba_threads']}, OPENBLAS_NUM_THREADS {meta['openblas_threads']}",
         f"- Python {meta['python']}, NumPy {meta['numpy']}, SciPy {meta['scipy']}, "
         f"numba {meta['numba']}",
         f"- Date {meta['date']}, commit `{meta['commit']}`"
         + (f" (with uncommitted changes in {', '.join(f'`{d}`' for d in dirty)})"
            if dirty else ""),
         f"- {len(meta['targets'])} targets × noise "
         f"{', '.join(_noise_label(n) for n in meta['noises'])} × {len(meta['seeds'])} seeds "
         f"(seeds {', '.join(str(s) for s in meta['seeds'])}); N = {meta['n']} uniform random "
         f"samples per seed, those within {meta['drop']:g} of a true pole dropped; noise "
         "multiplicative, y·(1 + σ·ε), ε standard normal.",
         ""]
    L += _targets_section(result, summ)
    L += ["", "## Definitions", "",
          "- *Real poles*: `fit_rational(...).poles`; for AAA the poles with "
          f"|imag| ≤ {IMAG_REL:g}·max(1, |real|) whose real part lies in the domain.",
          "- *all ≤ 1e-3 / all ≤ 1e-8*: seeds in which `match_poles(found, true, tol)` misses "
          "no true pole at that tolerance (one-to-one matching).",
          f"- *extra*: real poles left unmatched by `match_poles(found, true, {TOL_FOUND:g})`; "
          "*0 extra*: seeds with none.",
          "- *max pole err*: the largest distance from a true pole to its nearest found real pole "
          "(inf when none is found), median over seeds.",
          f"- *far rel MSE*: on a {meta['n_grid']}-point grid, the noise-free points farther than "
          f"{meta['far_fraction']:g}·width from every true pole: mean((fit − f)²) / mean(f²); "
          "inf when a prediction is not finite.",
          "- *time*: wall seconds from the samples to the real poles (`fit_rational(x, y, "
          "seed=seed)`; `AAA(x, y[, rtol])` plus `.poles()`), warm; the methods run in "
          "alternating order from seed to seed on the same data; medians over seeds. "
          "*ratio*: fit_rational's median time / AAA default's.",
          "- `fit_rational` runs with the package defaults (max_degree 12, train=True) and its "
          "held-out split seeded by the seed; AAA with `max_terms` 100 (SciPy's default). "
          "*AAA not conv.*: seeds where AAA warned that it did not converge.",
          "", "## Targets", ""]
    for name in meta["targets"]:
        L.append(f"- `{name}`: {tmap[name].description}")
    L += ["", "## Full table", "",
          "| target | noise | method | all ≤ 1e-3 | all ≤ 1e-8 | 0 extra | median extra | "
          "max pole err | far rel MSE | time (s) | ratio | notes |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summ:
        n = s["n_seeds"]
        has_poles = bool(tmap[s["target"]].poles)
        notes = []
        if s["degrees"]:
            notes.append("degrees " + ", ".join(f"({p},{q})" for p, q in s["degrees"]))
        if s["best_degrees"]:
            notes.append("least held-out loss at " + ", ".join(
                f"({p},{q})" for p, q in s["best_degrees"]))
        if s["not_converged"]:
            notes.append(f"AAA not conv. {s['not_converged']}/{n}")
        L.append("| " + " | ".join([
            s["target"], _noise_label(s["noise"]), s["method"],
            f"{s['all_1e3']}/{n}" if has_poles else "–",
            f"{s['all_1e8']}/{n}" if has_poles and s["noise"] == 0 else "–",
            f"{s['zero_extra']}/{n}", _e(s["med_extra"]),
            _e(s["med_max_err"]) if has_poles else "–", _e(s["med_far"]),
            f"{s['med_s']:.3g}", _e(s.get("time_ratio")) if "time_ratio" in s else "",
            "; ".join(notes)]) + " |")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the benchmark and write the markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small smoke configuration")
    ap.add_argument("--out", default=None, help="markdown report (default: docs/fit_rational.md; "
                    "with --quick: print only)")
    ap.add_argument("--json", default=None, help="also write the raw rows as JSON")
    args = ap.parse_args(argv)
    config = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else
                                                 str(_ROOT / "docs" / "fit_rational.md"))
    command = "python -m bench.fit_quality" + (" --quick" if args.quick else "")
    if args.out is not None:
        command += f" --out {args.out}"
    result = run(config, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
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
