"""Markdown report of the training-quality benchmark: the issue #11 target figures
(:func:`summarize`) and the per-problem tables (:func:`render_markdown`) from the rows of
:func:`bench.training_quality.run`."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.training_quality import REACHED, targets

__all__ = ["summarize", "render_markdown"]


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------


def _med(values) -> float:
    v = [float(a) for a in values if a is not None and not (isinstance(a, float) and math.isnan(a))]
    return float(np.median(v)) if v else math.nan


def _e(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if math.isinf(v):
        return "inf"
    return f"{v:.2g}" if v != 0 else "0"


def _worse(a: float, b: float) -> bool:
    """a worse than b by more than rounding (1e-9 relative); inf / NaN count as worse."""
    if not math.isfinite(a):
        return math.isfinite(b) or math.isnan(a)
    return a > b * (1.0 + 1e-9) + 1e-300


def _group(rows, *keys) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def _pairs(rows, method: str, start: str) -> list[tuple[dict, dict]]:
    """(trained row, its start row) per (problem, noise, seed)."""
    by = _group(rows, "problem", "noise", "seed")
    out = []
    for group in by.values():
        m = {r["method"]: r for r in group}
        if method in m and start in m:
            out.append((m[method], m[start]))
    return out


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's target figures from :func:`run`'s rows (counts and medians)."""
    q, c = result["quality"], result["convergence"]
    out: dict[str, Any] = {"never_worse": {}, "robust": {}, "convergence": {}, "optimum": {}}
    for method, start in (("trained", "start (L2)"), ("trained (Tukey)", "start (Tukey)")):
        pairs = _pairs(q, method, start)
        if not pairs:
            continue
        own = [p for p in pairs if p[0].get("held_start") is not None]
        out["never_worse"][method] = {
            "n": len(pairs),
            "far": sum(_worse(a["far_mse"], b["far_mse"]) for a, b in pairs),
            "near": sum(_worse(a["near_mse"], b["near_mse"]) for a, b in pairs),
            "own_split": sum(_worse(a["held_final"], a["held_start"]) for a, _ in own),
            "n_own": len(own),
            "unchanged": sum(bool(a.get("params_unchanged")) for a, _ in pairs),
            "far_better_10x": sum(a["far_mse"] * 10 <= b["far_mse"] for a, b in pairs),
        }
    outl = [r for r in q if r["noise"].startswith("outliers")]
    for (prob,), group in _group(outl, "problem").items():
        by_seed = _group(group, "seed")
        entry = {}
        for robust in ("start (Huber)", "start (Tukey)", "trained (Tukey)"):
            ratios = []
            for rs in by_seed.values():
                m = {r["method"]: r for r in rs}
                if robust in m:
                    ratios.append(m["start (L2)"]["far_mse"] / m[robust]["far_mse"])
            if ratios:
                entry[robust] = {"n": len(ratios), "ge10": sum(r >= 10 for r in ratios),
                                 "median_ratio": _med(ratios)}
        out["robust"][prob] = entry
    for (start, method), group in _group(c, "start", "method").items():
        elig = [r for r in group if r["eligible"]]
        key = "optimum" if start == "optimum" else "convergence"
        out[key][(start, method)] = {
            "n": len(group), "reached": sum(r["reached"] for r in group),
            "reached_train": sum(r["reached_train"] for r in group),
            "below": sum(r["held_out"] < r["reference"] * (1 - REACHED) for r in group),
            "n_eligible": len(elig), "reached_eligible": sum(r["reached"] for r in elig),
            "time_s": _med(r["time_s"] for r in group),
            "median_gap": _med(r["gap"] for r in group),
            "median_moved": _med(r["moved"] for r in group),
            "max_moved": max(r["moved"] for r in group),
        }
    ratios: dict[tuple[str, str], list[float]] = {}
    for (_, _, start), group in _group(c, "problem", "seed", "start").items():
        m = {r["method"]: r for r in group}
        for method in ("Trainer (defaults)", "Trainer (L2 objective)"):
            ratios.setdefault((start, method), []).append(
                m["least_squares"]["time_s"] / m[method]["time_s"])
    for key, v in ratios.items():
        out["optimum" if key[0] == "optimum" else "convergence"][key]["speedup"] = _med(v)
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def render_markdown(result: dict[str, Any], command: str) -> str:
    """``docs/training.md`` from :func:`run`'s result."""
    meta, q, c = result["meta"], result["quality"], result["convergence"]
    sm = summarize(result)
    seeds = sorted({r["seed"] for r in q})
    n_cfg = len({(r["problem"], r["noise"]) for r in q})
    lines = [
        "# Training quality",
        "",
        "Does training make a rational fit better than its start, and how does it compare with",
        "SciPy? Generated by `bench/training_quality.py` (issue #11, item 6); do not edit by hand.",
        "Whether importance batches speed up SGD / Adam training:",
        "[importance_sampling.md](importance_sampling.md) (`python -m bench.importance_quality`).",
        "",
        f"- Command: `{command}` ({meta['config']} configuration; "
        f"{meta['quality_s'] + meta['convergence_s'] + meta.get('speed_s', 0.0):.0f} s: "
        f"quality {meta['quality_s']:.0f} s, convergence {meta['convergence_s']:.0f} s, "
        f"speed {meta.get('speed_s', 0.0):.0f} s)",
        f"- Machine: {meta.get('Model name', '?')}, {meta.get('CPU(s)', '?')} CPUs, numba "
        f"threads {meta.get('numba_threads', '?')}; Python {meta['python']}, NumPy "
        f"{meta['numpy']}, SciPy {meta.get('scipy', '?')}, numba {meta.get('numba', '?')}",
        f"- Date {meta['date']}, commit `{meta.get('commit', '?')}`; linearised-fit losses "
        f"available: {', '.join(meta['lin_losses'])}; robust training: "
        f"{'yes' if meta['tukey_training'] else 'no'}",
        f"- {meta['n_targets']} targets × {n_cfg // max(1, meta['n_targets'])} noise settings × "
        f"{len(seeds)} seeds (seeds {', '.join(map(str, seeds))}); medians over seeds.",
        "",
        "## Issue #11 targets, as measured",
        "",
    ]
    nw = sm["never_worse"]
    if nw:
        rows = []
        for method, v in nw.items():
            start = "L2 start" if method == "trained" else "Tukey start"
            rows.append([method, start, f"{v['far']} of {v['n']}", f"{v['near']} of {v['n']}",
                         f"{v['own_split']} of {v['n_own']}", f"{v['unchanged']} of {v['n']}",
                         f"{v['far_better_10x']} of {v['n']}"])
        lines += ["**Never worse than the start** (target: 0 runs worse). Held-out: the",
                  "noise-free test points far from / near the poles; own split: the trainer's",
                  "held-out share of the training data (`get_training_summary()['held_out']`,",
                  "final vs start). Worse means by more than 1e-9 relative.", ""]
        lines += _table(["trained", "from", "far MSE worse", "near MSE worse",
                         "own split worse", "parameters = start", "far MSE ≥ 10× better"], rows)
        lines.append("")
    if sm["robust"]:
        rows = []
        for prob, entry in sm["robust"].items():
            row = [prob]
            for robust in ("start (Huber)", "start (Tukey)", "trained (Tukey)"):
                v = entry.get(robust)
                row.append(f"{v['ge10']} of {v['n']} ({_e(v['median_ratio'])}×)" if v else "–")
            rows.append(row)
        lines += ["**Robust fits with 5% gross outliers** (target: far MSE ≥ 10× lower than the",
                  "L2 linearised fit's in ≥ 4 of 5 seeds per problem): seeds with",
                  "far MSE(L2 start) / far MSE(robust) ≥ 10, and the median ratio.", ""]
        lines += _table(["problem", "Huber start", "Tukey start", "trained (Tukey)"], rows)
        lines.append("")
    if sm["convergence"]:
        rows = []
        for (start, method), v in sm["convergence"].items():
            rows.append([start, method, f"{v['reached']} of {v['n']}",
                         f"{v['reached_eligible']} of {v['n_eligible']}",
                         f"{v['reached_train']} of {v['n']}", f"{v['below']} of {v['n']}",
                         _e(v["median_gap"]),
                         f"{v['time_s'] * 1e3:.2g}",
                         f"{v['speedup']:.2g}×" if "speedup" in v else "–"])
        lines += ["**Convergence from a nearby start** (target: the default optimizer reaches the",
                  f"L2 optimum — held-out loss within {REACHED:g} relative — in ≥ 95% of runs,",
                  "≥ 20× faster than `least_squares(method=\"lm\")` with an analytic Jacobian",
                  "from the same start). Eligible: the start has the optimum's number of poles",
                  "in the domain and no training sample lies between a start pole and its",
                  "optimum pole. Training MSE within 1e-6: the same test on the training data",
                  "(the held-out test is stricter: off the optimum by δ, the training MSE moves by",
                  "O(δ²), the held-out MSE by O(δ)). Held-out below the optimum's: runs that end",
                  "with a lower held-out MSE than the L2 optimum's, i.e. off the optimum (the",
                  "trainer restores its best held-out epoch). Speed-up: median of least_squares time /",
                  "trainer time, the two timed one after the other on the same data (> 1: the",
                  "trainer is faster).", ""]
        lines += _table(["start", "method", "reached", "reached (eligible)",
                         "training MSE within 1e-6", "held-out below the optimum's",
                         "median gap",
                         "median time [ms]", "speed-up vs least_squares"], rows)
        lines.append("")
    if sm["optimum"]:
        rows = [[method, f"{v['reached']} of {v['n']}", _e(v["median_moved"]), _e(v["max_moved"]),
                 f"{v['time_s'] * 1e3:.2g}"] for (_, method), v in sm["optimum"].items()]
        lines += ["**A start at the optimum stays there** (target: parameters within rounding):",
                  "the L2 optimum of the training data as the start; moved is",
                  "max |Δparameter| / max |parameter|.", ""]
        lines += _table(["method", "still at the optimum", "median moved", "largest moved",
                         "median time [ms]"], rows)
        lines.append("")
    lines += _speed_lines(result)
    lines += _notes(result)
    lines += ["## Start vs trained vs peers, per problem", "",
              "far / near: MSE on noise-free held-out points at distance > "
              f"{meta['far']} / in {meta['near']} from the nearest true pole; PLE and",
              f"matched / missed / extra with the tolerance {meta['tol']}; time: the fit "
              "alone (the trained rows: `Trainer.fit`, not the start); worse: seeds where the",
              "row's held-out far / near MSE is worse than its start's.", ""]
    by_prob = _group(q, "problem")
    for (prob,), group in by_prob.items():
        desc = group[0].get("description", "")
        lines += [f"### {prob}" + (f" — {desc}" if desc else ""), ""]
        rows = []
        for (noise, method), g in _group(group, "noise", "method").items():
            n = len(g)
            worse = "–"
            start = {"trained": "start (L2)", "trained (Tukey)": "start (Tukey)",
                     "least_squares": "start (L2)"}.get(method)
            if start:
                starts = {r["seed"]: r for r in group
                          if r["noise"] == noise and r["method"] == start}
                wf = sum(_worse(r["far_mse"], starts[r["seed"]]["far_mse"]) for r in g)
                wn = sum(_worse(r["near_mse"], starts[r["seed"]]["near_mse"]) for r in g)
                worse = f"{wf}, {wn} of {n}"
            rows.append([noise, method, _e(_med(r["far_mse"] for r in g)),
                         _e(_med(r["near_mse"] for r in g)), _e(_med(r["ple"] for r in g)),
                         "/".join(f"{_med(r[k] for r in g):g}"
                                  for k in ("matched", "missed", "extra")),
                         f"{_med(r['time_s'] for r in g) * 1e3:.2g}", worse])
        lines += _table(["noise", "fit", "far MSE", "near MSE", "PLE", "matched/missed/extra",
                         "time [ms]", "worse (far, near)"], rows)
        lines.append("")
    lines += ["## Convergence runs, per problem", "",
              f"Noise: {result['meta'].get('conv_noise', '')}; gap: |held-out loss − the",
              "optimum's| / the optimum's; train gap: (training MSE − the optimum's) / the",
              "optimum's (negative: a lower training MSE than the reference, i.e. another",
              "minimum); medians over seeds.", ""]
    rows = []
    for (prob, start, method), g in _group(c, "problem", "start", "method").items():
        rows.append([prob, start, method, f"{sum(r['reached'] for r in g)} of {len(g)}",
                     f"{sum(r['eligible'] for r in g)} of {len(g)}", _e(_med(r["gap"] for r in g)),
                     _e(_med(r["train_gap"] for r in g)),
                     f"{_med(r['time_s'] for r in g) * 1e3:.2g}",
                     f"{_med(r.get('epochs', r.get('nfev')) for r in g):g}"])
    lines += _table(["problem", "start", "method", "reached", "eligible", "median gap",
                     "median train gap", "median time [ms]", "epochs / nfev"], rows)
    lines.append("")
    return "\n".join(lines)


def _speed_lines(result: dict[str, Any]) -> list[str]:
    """The speed table: each (problem, size) timed in interleaved rounds, medians."""
    speed = result.get("speed") or []
    if not speed:
        return []
    meta = result["meta"]
    rows = []
    for (prob, n), g in _group(speed, "problem", "n").items():
        m = {r["method"]: r for r in g}
        tr, lm = m["Trainer (defaults)"], m["levenberg_marquardt"]
        ls, ls12 = m["least_squares"], m["least_squares (tol 1e-12)"]
        rows.append([prob, f"{n}"] + [f"{r['time_s'] * 1e3:.2g}" for r in (tr, lm, ls, ls12)]
                    + [f"{ls['time_s'] / tr['time_s']:.2g}×",
                       f"{ls12['time_s'] / tr['time_s']:.2g}×",
                       f"{ls['time_s'] / lm['time_s']:.2g}×",
                       f"{ls12['time_s'] / lm['time_s']:.2g}×",
                       " / ".join("yes" if r["reached"] else f"no ({_e(r['gap'])})"
                                  for r in (tr, lm, ls, ls12))])
    load = meta.get("load_average", math.nan)
    return [
        "**Speed at realistic sizes** (target: the default Trainer ≥ 20× faster than",
        "`least_squares(method=\"lm\")`): the 10%-subsample start of the convergence part",
        f"(first seed) on N training points, {meta.get('n_val', '?')} held-out points; the four",
        "methods timed in turn, round after round, medians. Trainer: `Trainer.fit` with the",
        "defaults (held-out tracking, restore-best, summaries); levenberg_marquardt: the solver",
        "alone; least_squares with its default tolerances and with 1e-12 (MINPACK's defaults",
        "sometimes stop short of the optimum). Reached: held-out loss within",
        f"{REACHED:g} relative of the L2 optimum's (Trainer / LM / least_squares / 1e-12).",
        f"Load average at the start of this part: {load:.1f} on {meta.get('CPU(s)', '?')} CPUs "
        "(other jobs share the machine: ratios, not times, are the figures to compare).", "",
    ] + _table(["problem", "N", "Trainer [ms]", "LM alone [ms]", "least_squares [ms]",
                "least_squares 1e-12 [ms]", "speed-up Trainer", "Trainer vs 1e-12",
                "speed-up LM", "LM vs 1e-12", "reached"], rows) + [""]


def _notes(result: dict[str, Any]) -> list[str]:
    m = result["meta"]
    return [
        "## How it is measured",
        "",
        "- Targets: the built-in rational problems (`zeroproof_nb.problems`, their exact",
        "  degrees) and four special functions that are not rational: "
        + "; ".join(f"{t.name}: {t.description} on [{t.domain[0]:g}, {t.domain[1]:g}], "
                    f"(d_p, d_q) = {t.degrees}" for t in targets() if t.kind == "special") + ".",
        "  Every fit uses the Chebyshev basis on the range of the training x.",
        f"- Training data: {m.get('n_train', '?')} points uniform on the domain. Noise: additive",
        "  y + σε, multiplicative y(1 + σε) (ε standard normal), and 5% gross outliers: additive",
        "  1e-3 noise, then 5% of the points get ±(1 + |T|), T Student-t with 2 degrees of",
        "  freedom.",
        "- Held-out test data: separate, noise-free draws (far: uniform on the domain; near:",
        "  log-uniform distances on both sides of each pole).",
        "- start: `linearized_fit` of the training data (`loss=` l2 / huber / tukey where",
        "  available). trained: `TRRational` set to the start, then `Trainer(model,",
        "  config=TrainingConfig(verbose=False, seed=seed)).fit(x, y)`: every other setting is the",
        "  package default (the layer's α_φ, the adaptive λ_rej, the held-out split, the",
        "  optimizer). trained (Tukey): the same from the Tukey start with `loss=\"tukey\"`.",
        "  least_squares: `scipy.optimize.least_squares(method=\"lm\")` of the residuals P/Q − y",
        "  with the analytic Jacobian, from the L2 start, default tolerances. AAA:",
        "  `zeroproof_nb.problems.fit_aaa` (SciPy's AAA) with max_terms = max(d_p, d_q) + 1, i.e.",
        "  a rational function of the same degree.",
        "- Convergence: the L2 optimum is `least_squares` from the full linearised fit with",
        "  tolerances 1e-15, then Gauss-Newton steps on residuals in extended precision (NumPy's",
        "  longdouble), kept while that loss falls: float64 residuals near a pole are known to",
        "  ~1e-9 relative only, and a float64 reference missed the optimum by 1e-5 in the",
        "  held-out loss in some runs (the linearised fit itself is not the L2 optimum: see its",
        "  gap below).",
        "  Starts: the linearised fit of a random 10% subsample; θ of the optimum with φ·(1 + 0.05ε)",
        "  (ε standard normal per coefficient); the same on 'gap' data: the training data less the",
        "  samples between the perturbed start's poles and the optimum's, with the optimum of that",
        "  data as the reference (only where the start's poles pair up with the optimum's); and",
        "  the optimum itself. The trainer gets the convergence run's held-out data as",
        "  `x_val, y_val`, so it trains on all of the training data. 'Trainer (defaults)' is",
        "  `TrainingConfig()` on a default `TRRational`; 'Trainer (L2 objective)' has α_φ = 0 and",
        "  no λ_rej term (`use_adaptive_loss=False, initial_lambda=0`), so that its objective is",
        "  the plain L2 loss that least_squares minimises.",
        "- Local descent cannot carry a pole across a sample: the loss is infinite where a pole sits",
        "  on one. A start whose poles have a training sample between them and the optimum's poles",
        "  cannot be expected to reach the optimum (see 'eligible'); with the uniform samples here",
        "  a 5% perturbation of φ moves poles across samples in almost every run.",
        "- The LM solver (`zeroproof_nb.least_squares.levenberg_marquardt`) solves each step from",
        "  a QR factorisation of the weighted Jacobian (TSQR over chunks of points, then QR of",
        "  [R; √μ D] as MINPACK does), never from JᵀJ: cond(J) is 1e6–1e11 on these fits, and",
        "  JᵀJ's cond(J)² left the Gauss-Newton steps without the accuracy the last steps need",
        "  (with Cholesky of JᵀJ and its 1e-14 ridge, 500-step crawls on gamma, digamma, inv_j0",
        "  and tan). Its tolerances (ftol 1e-14) sit below the 1e-12 relative change of the",
        "  training loss that a 1e-6 change of the held-out loss corresponds to.",
        "- What the trainer keeps: the optimum of its training objective. Restore-best only",
        "  overrules the last epoch when its held-out loss is worse than the start's or more than",
        "  one standard error above the best epoch's: both guard against a fit that is",
        "  measurably worse, and neither is met by differences of 1e-6 relative. So a run that",
        "  reaches the optimum keeps it, and 'held-out below the optimum's' counts runs that",
        "  stopped off the optimum (a lower held-out loss there is noise of the held-out points,",
        "  not a better fit).",
        "- The runs still counted as not reached, where the start is eligible, are of two kinds",
        "  (see the per-problem table): another local minimum (training MSE above the",
        "  reference's by ~1e-10 relative, least_squares from the same start ends there too),",
        "  and the rounding floor of float64 (near a pole P/Q is evaluated with a relative error",
        "  of rounding times |terms of Q| / |Q|, so the training loss is known to ~1e-9",
        "  relative only, and no float64 solver pins its optimum to 1e-6 in the held-out loss).",
        "",
    ]
