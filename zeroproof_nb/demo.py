"""The ``zeroproof-nb demo`` main job: where are the poles of noisy data, model by model.

A rational target with known simple poles is sampled on its domain with multiplicative noise
(1% by default). Seven models are fitted to the same samples — the linearised start, the default
:class:`~zeroproof_nb.training.trainer.Trainer` from that start, :func:`zeroproof_nb.fit_rational`,
SciPy's AAA at its default tolerance and at the noise level, an ε-regularised rational and a
polynomial — and each is scored on noise-free test points: matched / missed / extra poles, the
pole localisation error, the MSE far from and near the poles, and its wall time. The metrics are
defined in the README ("The demo and its metrics").
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np

from .device import cuda_problem
from ._jsonutil import dump_strict
from ._validation import as_float_array, check_alloc, check_finite, check_int
from .core import to_ieee
from .fitting import fit_rational
from .layers import TRRational
from .metrics import bucket_mse, distance_to_nearest_pole, pole_localization_error
from .problems import RationalProblem, fit_aaa, make_problem
from .rational import rational_eval
from .training.trainer import Trainer, TrainingConfig

__all__ = ["run_demo", "check_demo_arguments", "demo_test_points", "DEMO_EPSILON",
           "MATCH_FRACTION", "FAR_FRACTION", "NEAR_BAND", "MODEL_NAMES"]

#: ε of the ε-regularised baseline, Q_eff = Q + ε·sign(Q)
DEMO_EPSILON = 1e-3
#: a found pole matches a true one within MATCH_FRACTION · width of the domain
MATCH_FRACTION = 1e-2
#: "far" test points: distance to the nearest true pole > FAR_FRACTION · width
FAR_FRACTION = 5e-2
#: "near" test points: distance to the nearest true pole in (NEAR_BAND[0], NEAR_BAND[1]] · width
NEAR_BAND = (1e-3, 5e-2)
#: the rows of the table, in order (``aaa_noise`` only when noise > 0)
#: memory the demo needs per training sample, in bytes, rounded up (peak resident set 233 MB at
#: 4000 samples and 455 MB at 40000 on the dev box: about 6 KB per sample, mostly AAA's Loewner
#: matrices of up to 100 columns): an n_pool the machine cannot hold is refused up front
DEMO_BYTES_PER_POINT = 8192

MODEL_NAMES = ("start", "trained", "fit_rational", "aaa", "aaa_noise", "eps_rational", "polynomial")
_BUCKETS = ("B0", "B1", "B2", "B3", "B4")


def check_demo_arguments(
    poles: Any = (0.3, -0.55),
    residues: Any = (1.0, -2.0),
    domain: Any = (-1.0, 1.0),
    noise: Any = 0.01,
    epochs: Any = 30,
    seed: Any = 0,
    n_pool: Any = 4000,
    out: str | Path | None = None,
    device: str = "cpu",
    log_every: Any = 5,
) -> dict[str, Any]:
    """Validate the demo's arguments before any work; return them normalised.

    Raises ``ValueError`` / ``TypeError`` naming the argument and what was expected: poles and
    residues finite, as many of each, poles distinct, none within the match tolerance
    (``MATCH_FRACTION`` · width) of a domain edge, residues non-zero; ``domain`` two finite
    numbers lo < hi; ``noise`` finite >= 0; ``epochs`` int >= 0 (0: no training);
    ``log_every`` int >= 1; ``seed`` int >= 0; ``n_pool`` int >= 50; ``out`` a directory that
    exists and is writable or can be created (checked without creating anything); ``device``
    "cpu", "auto" or "cuda" (CUDA usable: numba-cuda and a GPU, else
    ``ValueError("device: CUDA not available: <reason>")``).

    Returns
    -------
    dict of the normalised arguments, ``device`` resolved to "cpu" or "cuda", and ``warnings``:
    one line per pole outside the domain (it shapes the target but is not scored).
    """
    p = as_float_array(poles, "poles", ndim=(0, 1), dtype=np.float64).reshape(-1)
    check_finite(p, "poles")
    r = as_float_array(residues, "residues", ndim=(0, 1), dtype=np.float64).reshape(-1)
    check_finite(r, "residues")
    if p.size == 0:
        raise ValueError("poles must hold at least one pole")
    if r.size != p.size:
        raise ValueError(f"poles and residues must have the same length, got {p.size} poles "
                         f"and {r.size} residues")
    if np.unique(p).size != p.size:
        raise ValueError(f"poles must be distinct, got {p.tolist()}")
    if np.any(r == 0):
        raise ValueError(f"residues must be non-zero (a zero residue is no pole), got {r.tolist()}")
    d = as_float_array(domain, "domain", ndim=1, dtype=np.float64)
    if d.size != 2 or not np.all(np.isfinite(d)) or not d[0] < d[1]:
        raise ValueError(f"domain must be two finite numbers lo < hi, got {d.tolist()}")
    lo, hi = float(d[0]), float(d[1])
    tol = MATCH_FRACTION * (hi - lo)
    edge = [float(v) for v in p if min(abs(v - lo), abs(v - hi)) <= tol]
    if edge:
        raise ValueError(f"poles must not lie within {tol:g} (the match tolerance) of a domain "
                         f"edge, got {edge} for the domain ({lo:g}, {hi:g}): a model's pole "
                         f"there may fall on either side of the edge")
    warns = [f"pole {v:g} lies outside the domain ({lo:g}, {hi:g}): it shapes the target but "
             f"is not scored (no sample is near it)" for v in p if not lo < v < hi]
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)):
        raise TypeError(f"noise must be a number, got {type(noise).__name__}")
    if not (math.isfinite(float(noise)) and float(noise) >= 0):
        raise ValueError(f"noise must be a finite number >= 0 (the relative noise level, "
                         f"0.01 = 1%), got {noise!r}")
    epochs = check_int(epochs, "epochs", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    n_pool = check_int(n_pool, "n_pool", minimum=50)
    check_alloc(n_pool, DEMO_BYTES_PER_POINT, "n_pool")
    log_every = check_int(log_every, "log_every", minimum=1)
    device = _resolve_device(device)
    out_path = None if out is None else Path(out)
    if out_path is not None:
        _check_writable_dir(out_path)
    return {"poles": tuple(float(v) for v in p), "residues": tuple(float(v) for v in r),
            "domain": (lo, hi), "noise": float(noise), "epochs": epochs, "seed": seed,
            "n_pool": n_pool, "out": out_path, "device": device, "log_every": log_every,
            "warnings": warns}


def _resolve_device(device: Any) -> str:
    """"cpu" or "cuda" for ``device`` in ("cpu", "auto", "cuda"); ValueError naming
    ``device`` when CUDA is asked for and not usable."""
    if device not in ("cpu", "auto", "cuda"):
        raise ValueError(f"device must be 'cpu', 'auto' or 'cuda', got {device!r}")
    if device == "cpu":
        return "cpu"
    problem = cuda_problem()
    if problem is None:
        return "cuda"
    if device == "auto":
        return "cpu"
    raise ValueError(f"device: CUDA not available: {problem}")


def _check_writable_dir(path: Path) -> None:
    """ValueError unless ``path`` is a writable directory or can be created as one.

    Tried, not judged from permission bits (``os.access`` says yes to root everywhere, /proc
    included): a temporary file in ``path``, or a temporary directory in its nearest existing
    ancestor, made and removed at once, so nothing is left behind."""
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"out must be a directory, {str(path)!r} is a file")
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise ValueError(f"out directory {str(path)!r} is not writable ({exc.strerror})") from None
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"out {str(path)!r} cannot be created: {str(parent)!r} is not a directory")
    try:
        tempfile.TemporaryDirectory(dir=parent).cleanup()
    except OSError as exc:
        raise ValueError(f"out {str(path)!r} cannot be created in {str(parent)!r} "
                         f"({exc.strerror})") from None


def demo_test_points(problem: RationalProblem, n_far: int = 4001,
                     n_near: int = 200) -> dict[str, np.ndarray]:
    """Noise-free test points: ``far`` (a uniform grid, distance to the nearest true pole >
    FAR_FRACTION·width), ``near`` (n_near log-spaced distances per side of each pole in
    NEAR_BAND·width) and ``buckets`` (a grid plus distances 1e-6 … 1e-1 on both sides of every
    pole, for the bucketed MSE)."""
    lo, hi = problem.domain
    width = hi - lo
    poles = problem.true_poles()
    grid = np.linspace(lo, hi, n_far)
    far = grid[distance_to_nearest_pole(grid, poles) > FAR_FRACTION * width]
    dist = np.geomspace(NEAR_BAND[0] * width, NEAR_BAND[1] * width, n_near)
    near = np.concatenate([poles[:, None] + s * dist[None, :] for s in (-1.0, 1.0)]).ravel()
    dn = distance_to_nearest_pole(near, poles)
    near = np.unique(near[(near >= lo) & (near <= hi) & (dn > NEAR_BAND[0] * width * (1 - 1e-12))
                          & (dn <= NEAR_BAND[1] * width * (1 + 1e-12))])
    xs = [grid]
    d6 = np.logspace(-6, -1, 101)
    for p in poles:
        xs += [p - d6, p + d6]
    b = np.unique(np.concatenate(xs))
    b = b[(b >= lo) & (b <= hi) & (distance_to_nearest_pole(b, poles) >= 1e-6 * (1 - 1e-9))]
    return {"far": far, "near": near, "buckets": b}


def _mse(pred: np.ndarray, truth: np.ndarray) -> tuple[float | None, int]:
    """(MSE, number of non-finite predictions); the MSE is None when one is not finite."""
    bad = int(np.sum(~np.isfinite(pred)))
    if bad or pred.size == 0:
        return None, bad
    with np.errstate(over="ignore"):
        v = float(np.mean((pred - truth) ** 2))
    return (v if math.isfinite(v) else None), bad


def _score(predict: Callable[[np.ndarray], np.ndarray], found: Any, residues: Any,
           problem: RationalProblem, test: dict[str, np.ndarray], truth: dict[str, np.ndarray],
           seconds: float) -> dict[str, Any]:
    lo, hi = problem.domain
    width = hi - lo
    found = np.asarray(found, dtype=np.float64).ravel()
    order = np.argsort(found)
    found = found[order]
    true = problem.true_poles()
    ple, m = pole_localization_error(found, true, max_distance=MATCH_FRACTION * width,
                                     miss_cost=width, return_matching=True)
    out: dict[str, Any] = {
        "matched": m.n_matched, "missed": int(m.missed.size), "extra": int(m.extra.size),
        "ple": float(ple),
        "max_pole_error": float(m.distances.max()) if m.n_matched else None,
        "poles": found.tolist(),
        "residues": None if residues is None else np.asarray(residues, dtype=np.float64).ravel()[order].tolist(),
        "extra_poles": found[m.extra].tolist(),
        "time_s": float(seconds),
    }
    for key in ("far", "near"):
        mse, bad = _mse(predict(test[key]), truth[key])
        out[f"{key}_mse"] = mse
        out[f"n_nonfinite_{key}"] = bad
    out["bucket_mse"] = bucket_mse(test["buckets"], predict(test["buckets"]), truth["buckets"], true)
    return out


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0


def _aaa(x: np.ndarray, y: np.ndarray, domain: tuple[float, float],
         rtol: float | None) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peer = fit_aaa(x, y, domain=domain, rtol=rtol)
    return peer, sorted({str(w.message) for w in caught})


def _aaa_residues(peer: Any) -> np.ndarray:
    """Residues of the poles :meth:`AAAPeer.poles` reports, in the same (sorted) order."""
    p = np.asarray(peer.approx.poles())
    res = np.asarray(peer.approx.residues())
    real = np.abs(p.imag) <= peer.imag_tol * np.maximum(1.0, np.abs(p.real))
    lo, hi = peer.domain
    keep = real & (p.real >= lo) & (p.real <= hi)
    order = np.argsort(p.real[keep])
    return np.real(res[keep][order])


def run_demo(
    poles: Sequence[float] = (0.3, -0.55),
    residues: Sequence[float] = (1.0, -2.0),
    domain: tuple[float, float] = (-1.0, 1.0),
    noise: float = 0.01,
    epochs: int = 30,
    seed: int = 0,
    device: str = "cpu",
    log_every: int = 5,
    out: str | Path | None = "zeroproof_demo",
    n_pool: int = 4000,
    batch_size: int | None = None,
    verbose: bool = True,
    plot: bool = True,
    stream: IO[str] | None = None,
) -> dict[str, Any]:
    """Run the demo and return ``summary`` (also written to ``out/summary.json``).

    Parameters
    ----------
    poles, residues : the target's simple poles (strictly inside ``domain``) and residues
    domain : (lo, hi) of the inputs
    noise : relative noise of the training targets, ``y·(1 + noise·N(0, 1))`` (0: clean)
    epochs : most epochs of every trained model (Levenberg–Marquardt may stop earlier; 0: no
        training, the trained rows keep their start)
    seed : seed of the samples, the noise, the trainers and fit_rational's held-out split
    device : where the Trainers' passes run (``TrainingConfig.device``) and the models are
        evaluated on the test points: "cpu", "cuda"
        (:func:`zeroproof_nb.rational_cuda.rational_eval_cuda`; ValueError when CUDA is not
        usable) or "auto" (cuda when usable); fit_rational and AAA run on the CPU
    log_every : print a progress line every this many epochs (when verbose)
    out : output directory (None: write nothing)
    n_pool : number of training samples, uniform on the domain
    batch_size : the Trainers' batch size (None: the TrainingConfig default; Levenberg–Marquardt,
        the default optimizer for a TRRational, uses the whole pool)
    verbose : print progress and the table
    plot : write ``out/demo.png`` (needs matplotlib)
    stream : where the progress lines and the table go (default ``sys.stdout``)

    Returns
    -------
    dict with ``problem``, ``models`` (one entry per row of the table, see
    :data:`MODEL_NAMES`), ``definitions`` (what each metric means) and ``wall_time_s``.
    """
    args = check_demo_arguments(poles, residues, domain, noise, epochs, seed, n_pool, out,
                                device, log_every)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1)
    t_start = time.perf_counter()
    domain, noise, epochs, seed, n_pool = (args["domain"], args["noise"], args["epochs"],
                                           args["seed"], args["n_pool"])
    def say(*a: Any) -> None:
        if verbose:
            print(*a, file=sys.stdout if stream is None else stream)

    device = args["device"]
    problem = make_problem(args["poles"], args["residues"], domain=domain)
    rng = np.random.default_rng(seed)
    x_pool = rng.uniform(domain[0], domain[1], n_pool)
    y_pool = problem.target(x_pool) * (1.0 + noise * rng.standard_normal(n_pool))
    test = demo_test_points(problem)
    truth = {k: problem.target(v) for k, v in test.items()}
    d_p, d_q = problem.degrees()
    say(f"problem: poles {list(problem.poles)}, residues {list(problem.residues)}, domain "
        f"{problem.domain}, {noise:.3g} relative noise; {n_pool} samples, degrees ({d_p}, {d_q}), "
        f"at most {epochs} epochs")

    def progress(label: str) -> Callable[[Any, dict[str, Any]], None]:
        def cb(trainer: Any, rec: dict[str, Any]) -> None:
            e = rec["epoch"]
            if verbose and (e % args["log_every"] == 0 or e == epochs - 1):
                say(f"  [{label}] epoch {e + 1:3d}/{epochs} loss={rec['loss']:.4g}")
        return cb

    config = dict(max_epochs=epochs, seed=seed, verbose=False, progress_bar=False, device=device)
    if batch_size is not None:
        config["batch_size"] = batch_size

    def train(layer: TRRational, label: str, **extra: Any) -> tuple[Trainer, float]:
        trainer = Trainer(layer, config=TrainingConfig(**config, **extra),
                          callbacks=[progress(label)])
        _, seconds = _timed(lambda: trainer.fit(x_pool, y_pool))
        return trainer, seconds

    def layer_from(theta: np.ndarray, phi: np.ndarray) -> TRRational:
        layer = TRRational(d_p, d_q, domain=domain)
        layer.set_parameters([theta.copy(), phi.copy()])
        return layer

    def linearised(dp: int, dq: int) -> TRRational:
        # in the layer's own parametrisation (Chebyshev on the domain, Q anchored below it)
        return TRRational(dp, dq, domain=domain).fit_linearized(x_pool, y_pool)

    # the linearised start (Sanathanan–Koerner least squares at the true degrees)
    start, t_lin = _timed(lambda: linearised(d_p, d_q))
    theta0, phi0 = start.theta, start.phi
    trained = layer_from(theta0, phi0)
    tr_trainer, t_tr = train(trained, "trained")
    fit, t_fit = _timed(lambda: fit_rational(x_pool, y_pool, domain=domain, seed=seed))
    (aaa, aaa_warn), t_aaa = _timed(lambda: _aaa(x_pool, y_pool, domain, None))
    aaa_n = None
    if noise > 0:
        (aaa_n, aaa_n_warn), t_aaa_n = _timed(lambda: _aaa(x_pool, y_pool, domain, noise))
    eps = layer_from(theta0, phi0)
    eps_trainer, t_eps = train(eps, "eps-rational", q_epsilon=DEMO_EPSILON)
    deg_poly = d_p + d_q
    poly, t_plin = _timed(lambda: linearised(deg_poly, 0))
    poly_trainer, t_poly = train(poly, "polynomial")

    def tr_predict(layer: Any) -> Callable[[np.ndarray], np.ndarray]:
        if device == "cuda":
            from .rational_cuda import rational_eval_cuda

            return lambda x: np.asarray(to_ieee(rational_eval_cuda(
                x, layer.theta, layer.phi, basis=layer.kernel_basis, domain=layer.domain)),
                dtype=np.float64)
        return lambda x: np.asarray(to_ieee(layer.forward(x)), dtype=np.float64)

    def eps_predict(x: np.ndarray) -> np.ndarray:
        if device == "cuda":
            from .rational_cuda import rational_eval_cuda

            y = rational_eval_cuda(x, eps.theta, eps.phi, basis=eps.kernel_basis, domain=domain,
                                   q_epsilon=DEMO_EPSILON)
        else:
            y = rational_eval(x, eps.theta, eps.phi, basis=eps.kernel_basis, domain=domain,
                              q_epsilon=DEMO_EPSILON)
        return np.asarray(to_ieee(y), dtype=np.float64)

    def with_res(layer: TRRational) -> tuple[np.ndarray, np.ndarray]:
        return layer.poles(return_residues=True)

    models: dict[str, dict[str, Any]] = {}
    models["start"] = _score(tr_predict(start), *with_res(start), problem, test, truth, t_lin)
    models["trained"] = _score(tr_predict(trained), *with_res(trained), problem, test, truth, t_tr)
    models["fit_rational"] = _score(tr_predict(fit.model), fit.poles, fit.residues, problem, test,
                                    truth, t_fit)
    models["aaa"] = _score(aaa.predict, aaa.poles(), _aaa_residues(aaa), problem, test, truth, t_aaa)
    if aaa_n is not None:
        models["aaa_noise"] = _score(aaa_n.predict, aaa_n.poles(), _aaa_residues(aaa_n), problem,
                                     test, truth, t_aaa_n)
    # the ε-rational has no pole (|Q + ε·sign Q| >= ε): its "poles" are the zeros of Q, where its
    # output jumps
    models["eps_rational"] = _score(eps_predict, *with_res(eps), problem, test, truth, t_eps)
    models["polynomial"] = _score(tr_predict(poly), [], None, problem, test, truth, t_plin + t_poly)

    for key, trainer in (("trained", tr_trainer), ("eps_rational", eps_trainer),
                         ("polynomial", poly_trainer)):
        summ = trainer.get_training_summary()
        models[key]["held_out"] = summ["held_out"]
        models[key]["epochs_trained"] = trainer.epoch
        models[key]["optimizer"] = summ.get("optimizer")
    models["trained"]["degrees"] = models["start"]["degrees"] = [d_p, d_q]
    models["eps_rational"]["degrees"] = [d_p, d_q]
    models["eps_rational"]["epsilon"] = DEMO_EPSILON
    models["polynomial"]["degrees"] = [deg_poly, 0]
    models["fit_rational"]["degrees"] = list(fit.degrees)
    models["fit_rational"]["removed"] = fit.removed
    models["fit_rational"]["n_degrees_tried"] = len(fit.report["held_out"])
    models["aaa"]["rtol"] = None
    models["aaa"]["n_support_points"] = aaa.n_terms
    models["aaa"]["warnings"] = aaa_warn
    if aaa_n is not None:
        models["aaa_noise"]["rtol"] = noise
        models["aaa_noise"]["n_support_points"] = aaa_n.n_terms
        models["aaa_noise"]["warnings"] = aaa_n_warn
    width = domain[1] - domain[0]
    summary: dict[str, Any] = {
        "problem": problem.to_dict() | {
            "noise": noise, "noise_model": "multiplicative: y * (1 + noise * N(0, 1))",
            "n_pool": n_pool, "seed": seed, "epochs": epochs, "device": device,
            "not_scored": [float(v) for v in args["poles"] if not domain[0] < v < domain[1]]},
        "definitions": {
            "match_tol": MATCH_FRACTION * width, "miss_cost": width,
            "far": f"distance to the nearest true pole > {FAR_FRACTION:g}*width "
                   f"({test['far'].size} points)",
            "near": f"distance to the nearest true pole in ({NEAR_BAND[0]:g}, {NEAR_BAND[1]:g}]"
                    f"*width ({test['near'].size} points)",
            "null": "JSON has no inf/NaN: null means undefined or infinite (an MSE with a "
                    "non-finite prediction; see n_nonfinite_far / n_nonfinite_near)",
        },
        "models": models,
    }
    summary["wall_time_s"] = time.perf_counter() - t_start
    _print_table(summary, say)

    if args["out"] is not None:
        out_dir = args["out"]
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [out_dir / "summary.json", out_dir / "history.json"]
        history = {k: {"history": t.history} for k, t in (
            ("trained", tr_trainer), ("eps_rational", eps_trainer), ("polynomial", poly_trainer))}
        with open(out_dir / "history.json", "w", encoding="utf-8") as f:
            dump_strict(history, f, indent=2)
        if plot:
            preds = {"trained": tr_predict(trained), "fit_rational": tr_predict(fit.model),
                     "AAA (default rtol)": aaa.predict, f"ε-rational (ε={DEMO_EPSILON:g})": eps_predict}
            if aaa_n is not None:
                preds[f"AAA (rtol={noise:g})"] = aaa_n.predict
            png = _plot(out_dir / "demo.png", problem, preds, summary)
            if png is None:
                say("matplotlib is not installed: `python -m pip install \"zeroproof-nb[plot]\"` "
                    "to get demo.png")
            else:
                written.append(png)
        summary["wall_time_s"] = time.perf_counter() - t_start
        with open(out_dir / "summary.json", "w", encoding="utf-8") as f:
            dump_strict(summary, f, indent=2)
        say("wrote " + ", ".join(str(p) for p in written))
    say(f"total wall time {summary['wall_time_s']:.1f} s")
    return summary


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if math.isfinite(v) else str(v)
    return str(v)


def _print_table(summary: dict[str, Any], say: Any) -> None:
    cols = ["model", "matched", "missed", "extra", "PLE", "max |Δp|", "far MSE", "near MSE",
            "time s"]
    rows = []
    for name, m in summary["models"].items():
        far = "inf" if m["far_mse"] is None and m["n_nonfinite_far"] else _fmt(m["far_mse"])
        near = "inf" if m["near_mse"] is None and m["n_nonfinite_near"] else _fmt(m["near_mse"])
        rows.append([name, str(m["matched"]), str(m["missed"]), str(m["extra"]), _fmt(m["ple"]),
                     _fmt(m["max_pole_error"]), far, near, f"{m['time_s']:.3f}"])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    d = summary["definitions"]
    n_true = len(summary["problem"]["poles"])
    say("")
    say("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    say("  ".join("-" * w for w in widths))
    for r in rows:
        say("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    say(f"{n_true} true poles; a found pole matches within {d['match_tol']:g}; PLE = mean over "
        f"the true poles of |Δp|, a missed pole costing {d['miss_cost']:g}; extra poles are not "
        f"in the PLE")
    say(f"far: {d['far']}; near: {d['near']}; noise-free targets; time: the model's own fit")
    say("")


def _plot(path: Path, problem: RationalProblem, preds: dict[str, Callable[[np.ndarray], np.ndarray]],
          summary: dict[str, Any]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    poles = problem.true_poles()
    lo, hi = problem.domain
    n_p = len(poles)
    fig = plt.figure(figsize=(4.2 * max(2, n_p) + 1, 8.0), constrained_layout=True)
    grid = fig.add_gridspec(2, max(2, n_p))
    w = 0.02 * (hi - lo)
    for i, p in enumerate(poles):
        ax = fig.add_subplot(grid[0, i])
        x = np.linspace(max(lo, p - w), min(hi, p + w), 2001)
        ax.plot(x, problem.target(x), color="k", lw=3, alpha=0.25, label="truth")
        for j, (name, f) in enumerate(preds.items()):
            ax.plot(x, f(x), lw=1.2, ls=("-", "--", ":", "-.")[j % 4], label=name)
        ax.set_yscale("symlog", linthresh=10)
        ax.axvline(p, color="grey", lw=0.5)
        ax.set_title(f"within ±{w:g} of the pole x = {p:g}", fontsize=10)
        ax.set_xlabel("x")
        if i == 0:
            ax.set_ylabel("y (symlog)")
            ax.legend(fontsize=7, loc="best")
    ax = fig.add_subplot(grid[1, :])
    names = list(summary["models"])
    for k, name in enumerate(names):
        m = summary["models"][name]
        found = np.asarray(m["poles"], dtype=np.float64)
        extra = np.isin(found, np.asarray(m["extra_poles"], dtype=np.float64))
        ax.plot(found[extra], np.full(extra.sum(), k), "x", color="C3", ms=6)
        ax.plot(found[~extra], np.full((~extra).sum(), k), "o", color="C0", ms=6)
    for p in poles:
        ax.axvline(p, color="k", lw=0.6, alpha=0.5)
    ax.plot([], [], "o", color="C0", label="matched")
    ax.plot([], [], "x", color="C3", label="extra")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(lo, hi)
    ax.invert_yaxis()
    ax.set_xlabel("x (vertical lines: true poles)")
    ax.set_title("real poles each model reports in the domain", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"zeroproof_nb demo: {summary['problem']['noise']:g} relative noise, "
                 f"{summary['problem']['n_pool']} samples")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
