"""The ``zeroproof-nb demo`` main job: fit a rational target with poles, compare with baselines.

TR-rational (transreal tags, hybrid gradient schedule, importance + active sampling, curriculum,
adaptive λ_rej) against an ε-regularised rational (Q + ε·sign(Q)), a polynomial, both trained by
the same Trainer from the same kind of start, and SciPy's AAA as a non-trainable peer.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._jsonutil import dump_strict
from .core import to_ieee
from .fitting import linearized_fit
from .layers import TRRational
from .metrics import bucket_mse, pole_localization_error
from .problems import RationalProblem, fit_aaa, make_problem
from .rational import rational_eval
from .training.curriculum import CurriculumConfig, CurriculumScheduler
from .training.diagnostics import DiagnosticConfig, DiagnosticMonitor
from .training.hybrid_trainer import HybridTrainer, HybridTrainingConfig
from .training.sampling_diagnostics import create_integrated_sampler
from .training.trainer import Trainer, TrainingConfig

__all__ = ["run_demo", "DEMO_EPSILON"]

#: ε of the ε-regularised baseline, Q_eff = Q + ε·sign(Q)
DEMO_EPSILON = 1e-3
_BUCKETS = ("B0", "B1", "B2", "B3", "B4")


def _test_points(problem: RationalProblem, n_grid: int = 4001) -> np.ndarray:
    """A uniform grid plus points at distances 1e-6 … 1e-1 on both sides of every pole.

    B0 of the bucket MSE starts at 1e-6: closer than that, any trained model's error is set by
    where float rounding puts its pole (a pole off by 1e-7 gives errors of r·1e-7/d² ≈ 1e7 at
    d = 1e-7), not by how well it learned the function.
    """
    lo, hi = problem.domain
    xs = [np.linspace(lo, hi, n_grid)]
    dist = np.logspace(-6, -1, 101)
    for p in problem.poles:
        xs.append(p - dist)
        xs.append(p + dist)
    x = np.unique(np.concatenate(xs))
    # drop grid points nearer than 1e-6 to a pole (one ulp away, say, the target is 1e16)
    near = np.min(np.abs(x[:, None] - np.asarray(problem.poles)[None, :]), axis=1)
    return x[(x >= lo) & (x <= hi) & (near >= 1e-6 * (1 - 1e-9))]


def _evaluate(y_pred: np.ndarray, poles_found: Any, x_test: np.ndarray,
              y_true: np.ndarray, problem: RationalProblem) -> dict[str, Any]:
    found = np.asarray(poles_found, dtype=np.float64).ravel()
    return {
        "ple": float(pole_localization_error(found, problem.true_poles(), max_distance=1.0)),
        "poles": [float(p) for p in np.sort(found)],
        "bucket_mse": bucket_mse(x_test, y_pred, y_true, problem.true_poles()),
    }


def run_demo(
    poles: Sequence[float] = (0.3, -0.55),
    residues: Sequence[float] = (1.0, -2.0),
    domain: tuple[float, float] = (-1.0, 1.0),
    noise: float = 0.0,
    epochs: int = 30,
    seed: int = 0,
    device: str = "cpu",
    log_every: int = 5,
    out: str | Path | None = "zeroproof_demo",
    n_pool: int = 20000,
    batch_size: int = 2048,
    rejection_threshold: float = 1e-6,
    verbose: bool = True,
    plot: bool = True,
) -> dict[str, Any]:
    """Run the demo and return ``summary`` (also written to ``out/summary.json``).

    Parameters
    ----------
    poles, residues : the target's simple poles and residues (same length)
    domain : (lo, hi) of the inputs
    noise : standard deviation of the Gaussian noise on the training targets
    epochs : training epochs for every trained model
    seed : seed of the data, samplers and trainers
    device : "cpu" ("auto" means cpu; CUDA kernels are not part of this release)
    log_every : print a progress line every this many epochs (when verbose)
    out : output directory (None: write nothing)
    n_pool, batch_size : training pool size and batch size
    rejection_threshold : |Q| below which a REAL-target output pays the λ_rej penalty; the
        demo's targets are exact near the poles, so only the outputs right at a pole should pay
    """
    if device not in ("cpu", "auto"):
        raise ValueError(f"device must be 'cpu' or 'auto' (CUDA kernels are not available yet), got {device!r}")
    t_start = time.perf_counter()
    problem = make_problem(poles, residues, domain=domain, noise=noise)
    say = print if verbose else (lambda *a, **k: None)
    x_pool, y_pool = problem.sample(n_pool, seed=seed)
    x_test = _test_points(problem)
    y_true = problem.target(x_test)
    d_p, d_q = problem.degrees()
    say(f"problem: poles {list(problem.poles)}, residues {list(problem.residues)}, domain "
        f"{problem.domain}, noise {noise}; pool {n_pool}, degrees ({d_p}, {d_q}), {epochs} epochs")

    # the layers' default parametrisation: Chebyshev on the domain, Q anchored outside it
    basis = TRRational(d_p, d_q, domain=domain).kernel_basis
    theta0, phi0 = linearized_fit(x_pool, y_pool, d_p, d_q, basis=basis, domain=domain)

    def progress(label: str):
        def cb(trainer: Any, rec: dict[str, Any]) -> None:
            e = rec["epoch"]
            if verbose and (e % max(1, log_every) == 0 or e == epochs - 1):
                extra = f" δ={rec['delta']:.2e}" if rec.get("delta") is not None else ""
                say(f"  [{label}] epoch {e + 1:3d}/{epochs} loss={rec['loss']:.4g} "
                    f"coverage={rec['coverage']:.4f} λ={rec['lambda_rej']:.3f}{extra} "
                    f"step={rec['bench']['avg_step_ms']:.2f} ms")
        return cb

    # --- TR-rational: hybrid schedule + importance/active sampling + curriculum + adaptive λ
    tr_model = TRRational(d_p, d_q, domain=domain)
    tr_model.set_parameters([theta0.copy(), phi0.copy()])
    # the trainers' default optimizer for a TRRational: Levenberg–Marquardt over the pool, with
    # a held-out split and restore-best (training never ends worse than its start)
    common = dict(batch_size=batch_size, max_epochs=epochs, seed=seed, loss="huber",
                  verbose=verbose, progress_bar=verbose)
    hcfg = HybridTrainingConfig(
        **common, use_hybrid_gradient=True, hybrid_warmup_epochs=max(1, epochs // 10),
        hybrid_transition_epochs=max(1, epochs // 2), target_coverage=0.95,
        adaptive_warmup_steps=10, adaptive_update_frequency=5, sat_shrink_on_ratio=False,
        lambda_rej_min=0.0, adaptive_lambda_min=0.0, rejection_threshold=rejection_threshold,
    )
    sampler = create_integrated_sampler(
        "hybrid", seed=seed, grid_bounds=tuple(domain), grid_size=200, adapt_frequency=5,
        refinement_threshold=0.05)
    curriculum = CurriculumScheduler(CurriculumConfig(n_stages=3, stage_duration=max(2, epochs // 4),
                                                      warmup_epochs=max(1, epochs // 10)))
    # the sampler aims at |Q| ~ 1e-5 on purpose: warn only when q_min means a pole sits on a sample
    monitor = DiagnosticMonitor(DiagnosticConfig(auto_export=False, q_min_warning_threshold=1e-10))
    tr_trainer = HybridTrainer(tr_model, config=hcfg, sampler=sampler, curriculum=curriculum,
                               callbacks=[progress("tr-rational")], monitor=monitor)
    tr_trainer.fit(x_pool, y_pool)

    # --- ε-rational baseline: same start, same trainer, Q + ε·sign(Q)
    eps_model = TRRational(d_p, d_q, domain=domain)
    eps_model.set_parameters([theta0.copy(), phi0.copy()])
    eps_trainer = Trainer(eps_model, config=TrainingConfig(**common, q_epsilon=DEMO_EPSILON,
                                                            use_adaptive_loss=False),
                          callbacks=[progress("eps-rational")])
    eps_trainer.fit(x_pool, y_pool)

    # --- polynomial baseline (Q ≡ 1) of the same number of parameters
    deg_poly = d_p + d_q
    poly_model = TRRational(deg_poly, 0, domain=domain)
    poly_model.set_parameters(list(linearized_fit(x_pool, y_pool, deg_poly, 0, basis=basis,
                                                         domain=domain)))
    poly_trainer = Trainer(poly_model, config=TrainingConfig(**common, use_adaptive_loss=False),
                           callbacks=[progress("polynomial")])
    poly_trainer.fit(x_pool, y_pool)

    # --- AAA peer on the same samples
    aaa = fit_aaa(x_pool, y_pool, domain=domain, rtol=noise if noise > 0 else None)

    y_tr = to_ieee(tr_model.forward(x_test))
    y_eps = to_ieee(rational_eval(x_test, eps_model.theta, eps_model.phi, basis=basis,
                                  domain=domain, q_epsilon=DEMO_EPSILON))
    y_poly = to_ieee(poly_model.forward(x_test))
    y_aaa = np.asarray(aaa.predict(x_test), dtype=np.float64)
    start_model = TRRational(d_p, d_q, domain=domain)
    start_model.set_parameters([theta0, phi0])
    models = {
        "start": _evaluate(to_ieee(start_model.forward(x_test)), start_model.poles(), x_test,
                           y_true, problem),
        "tr_rational": _evaluate(y_tr, tr_model.poles(), x_test, y_true, problem),
        "eps_rational": _evaluate(y_eps, eps_model.poles(), x_test, y_true, problem),
        "polynomial": _evaluate(y_poly, [], x_test, y_true, problem),
        "aaa": _evaluate(y_aaa, aaa.poles(), x_test, y_true, problem),
    }
    for key, trainer in (("tr_rational", tr_trainer), ("eps_rational", eps_trainer),
                         ("polynomial", poly_trainer)):
        bench = trainer.bench_history
        models[key]["avg_step_ms"] = float(np.median([b["avg_step_ms"] for b in bench])) if bench else None
        models[key]["coverage"] = trainer.history["coverage"][-1] if trainer.history["coverage"] else None
        models[key]["held_out"] = trainer.get_training_summary()["held_out"]
        models[key]["epochs_trained"] = trainer.epoch
    models["tr_rational"]["lambda_rej"] = tr_trainer.lambda_rej
    models["tr_rational"]["bench"] = tr_trainer.bench_history
    models["eps_rational"]["epsilon"] = DEMO_EPSILON
    models["aaa"]["n_support_points"] = aaa.n_terms
    summary = {
        "problem": problem.to_dict() | {"n_pool": n_pool, "seed": seed, "epochs": epochs},
        "models": models,
        "wall_time_s": time.perf_counter() - t_start,
    }
    _print_table(summary, say)

    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "summary.json", "w", encoding="utf-8") as f:
            dump_strict(summary, f, indent=2)
        history = {"tr_rational": {"history": tr_trainer.history, "epochs": tr_trainer.epoch_records},
                   "eps_rational": {"history": eps_trainer.history},
                   "polynomial": {"history": poly_trainer.history}}
        with open(out_dir / "history.json", "w", encoding="utf-8") as f:
            dump_strict(history, f, indent=2)
        if tr_trainer.monitor is not None:
            tr_trainer.monitor.export_diagnostics(tr_trainer.epoch - 1, out_dir / "diagnostics")
        if plot:
            png = _plot(out_dir / "demo.png", problem, x_test, y_true,
                        {"TR-rational": y_tr, f"ε-rational (ε={DEMO_EPSILON:g})": y_eps,
                         "polynomial": y_poly, "AAA": y_aaa},
                        tr_trainer, x_pool, summary)
            if png is None:
                say("matplotlib is not installed: `python -m pip install \"zeroproof-nb[plot]\"` "
                    "to get demo.png")
            else:
                say(f"figure: {png}")
        say(f"wrote {out_dir / 'summary.json'}, {out_dir / 'history.json'}, {out_dir / 'diagnostics'}/")
    say(f"total wall time {time.perf_counter() - t_start:.1f} s")
    return summary


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3g}"
    return str(v)


def _print_table(summary: dict[str, Any], say: Any) -> None:
    cols = ["model", "PLE", *_BUCKETS, "coverage", "λ_rej", "step ms"]
    rows = []
    for name, m in summary["models"].items():
        rows.append([name, _fmt(m["ple"]), *(_fmt(m["bucket_mse"][b]["mse"]) for b in _BUCKETS),
                     _fmt(m.get("coverage")), _fmt(m.get("lambda_rej")), _fmt(m.get("avg_step_ms"))])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    say("")
    say("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    say("  ".join("-" * w for w in widths))
    for r in rows:
        say("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    edges = summary["models"]["tr_rational"]["bucket_mse"]
    say("buckets by distance to the nearest true pole: " + ", ".join(
        f"{b} [{edges[b]['lo']:g}, {edges[b]['hi']:g}) n={edges[b]['count']}" for b in _BUCKETS))
    say("")


def _plot(path: Path, problem: RationalProblem, x_test: np.ndarray, y_true: np.ndarray,
          preds: dict[str, np.ndarray], trainer: HybridTrainer, x_pool: np.ndarray,
          summary: dict[str, Any]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    poles = problem.true_poles()
    n_p = len(poles)
    fig = plt.figure(figsize=(4.2 * max(2, n_p) + 1, 8.5), constrained_layout=True)
    grid = fig.add_gridspec(2, max(2, n_p) + 1)
    styles = {"TR-rational": dict(color="C0", lw=2.0), "AAA": dict(color="C2", lw=1.0, ls=":")}
    for i, p in enumerate(poles):
        ax = fig.add_subplot(grid[0, i])
        w = 3e-3
        sel = (x_test > p - w) & (x_test < p + w)
        ax.plot(x_test[sel], y_true[sel], color="k", lw=3, alpha=0.25, label="truth")
        for name, y in preds.items():
            if name == "polynomial":
                continue
            st = styles.get(name, dict(color="C3", lw=1.2, ls="--"))
            ax.plot(x_test[sel], y[sel], label=name, **st)
        ax.set_yscale("symlog", linthresh=10)
        ax.axvline(p, color="grey", lw=0.5)
        ax.set_title(f"fit within ±{w:g} of the pole x = {p:g}", fontsize=10)
        ax.set_xlabel("x")
        if i == 0:
            ax.set_ylabel("y (symlog)")
            ax.legend(fontsize=8, loc="best")
    ax = fig.add_subplot(grid[0, -1])
    names = list(summary["models"])
    xs = np.arange(len(_BUCKETS))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        vals = [summary["models"][name]["bucket_mse"][b]["mse"] for b in _BUCKETS]
        vals = [np.nan if v is None else max(v, 1e-30) for v in vals]
        ax.bar(xs + j * width, vals, width, label=name)
    ax.set_yscale("log")
    ax.set_xticks(xs + 0.4 - width / 2, [f"{b}\n<{summary['models'][names[0]]['bucket_mse'][b]['hi']:g}"
                                          for b in _BUCKETS], fontsize=8)
    ax.set_title("MSE by distance to the nearest pole", fontsize=10)
    ax.legend(fontsize=7)
    recs = trainer.epoch_records
    ep = [r["epoch"] + 1 for r in recs]
    ax = fig.add_subplot(grid[1, 0])
    ax.plot(ep, [r["lambda_rej"] for r in recs], color="C1", label="λ_rej")
    ax.set_xlabel("epoch")
    ax.set_ylabel("λ_rej", color="C1")
    ax2 = ax.twinx()
    ax2.plot(ep, [r["coverage"] for r in recs], color="C0", label="coverage")
    ax2.set_ylabel("coverage (REAL share)", color="C0")
    ax.set_title("TR-rational: λ_rej, coverage", fontsize=10)
    ax = fig.add_subplot(grid[1, 1])
    ax.semilogy(ep, [r["q_min"] if r["q_min"] else np.nan for r in recs], label="q_min")
    ax.semilogy(ep, [r["q_p10"] if r["q_p10"] else np.nan for r in recs], label="|Q| p10")
    ax.semilogy(ep, [r["delta"] if r["delta"] else np.nan for r in recs], label="hybrid δ")
    ax.set_xlabel("epoch")
    ax.set_title("|Q| in batches, hybrid δ", fontsize=10)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, 2:] if max(2, n_p) + 1 > 3 else grid[1, 2])
    counts = trainer.sampler.importance_sampler.sample_counts
    lo, hi = problem.domain
    bins = np.linspace(lo, hi, 201)
    if counts is not None and counts.size == x_pool.size:
        ax.hist(x_pool, bins=bins, weights=counts, color="C0", alpha=0.7, label="drawn for training")
    ax.hist(x_pool, bins=bins, histtype="step", color="k", label="pool (uniform)")
    for p in poles:
        ax.axvline(p, color="C3", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("x")
    ax.set_title("where the training samples landed", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(f"zeroproof_nb demo: poles {[float(p) for p in poles]}; TR-rational PLE "
                 f"{summary['models']['tr_rational']['ple']:.2e}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
