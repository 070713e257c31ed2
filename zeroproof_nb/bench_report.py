"""``zeroproof-nb bench`` and the BENCHMARKS.md renderer.

:func:`run_quick` times one case of each kernel family beside its reference (NumPy, SciPy,
``numpy.random.Generator.choice``, a parallel copy of the same bytes as the forward pass's
bandwidth bound), kernel and references alternating round by round; the ratio is the
reference's fastest round over the kernel's. :func:`format_table` prints them in the terminal's
width. :func:`render_markdown` turns a pytest-benchmark JSON file of the repository's ``bench/``
suite into the tables of BENCHMARKS.md (``python -m bench.report`` runs the suite and writes it).
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["QuickResult", "interleaved_ratios", "quick_cases", "run_quick", "format_table",
           "machine_line", "render_markdown"]


@dataclass
class QuickResult:
    """One case of ``zeroproof-nb bench``: the kernel's fastest round and, per reference, its
    fastest round and the ratio (reference / kernel; above 1: the kernel is faster)."""

    case: str
    size: str
    kernel_s: float
    references: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    rounds: int = 0


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved_ratios(kernel: Callable[[], object], references: Mapping[str, Callable[[], object]],
                       *, budget_s: float = 1.0, min_rounds: int = 3,
                       max_rounds: int = 200) -> tuple[float, dict[str, float], int]:
    """Fastest rounds of ``kernel`` and of each reference, run alternately.

    Parameters
    ----------
    kernel : callable
        No arguments; called once untimed first (compilation, caches).
    references : mapping
        Name -> no-argument callable, each called once untimed first.
    budget_s : float
        Seconds of rounds to aim for.
    min_rounds, max_rounds : int
        Bounds on the number of rounds.

    Returns
    -------
    kernel_s : float
        The kernel's fastest round in seconds.
    reference_s : dict
        Each reference's fastest round in seconds.
    rounds : int
    """
    kernel()
    for ref in references.values():
        ref()
    one = _timed(kernel)
    single = {name: _timed(ref) for name, ref in references.items()}
    # a much shorter reference runs several times per sample (as zeroproof_nb.testing does)
    reps = {name: max(1, min(64, int(one / max(t, 1e-9)))) if t < one / 2 else 1
            for name, t in single.items()}
    per_round = one + sum(single[n] * reps[n] for n in references)
    rounds = int(min(max_rounds, max(min_rounds, budget_s / max(per_round, 1e-9))))
    best_k = math.inf
    best = {name: math.inf for name in references}
    for _ in range(rounds):
        for name, ref in references.items():
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                ref()
            best[name] = min(best[name], (time.perf_counter() - t0) / reps[name])
        best_k = min(best_k, _timed(kernel))
    return best_k, best, rounds


def quick_cases() -> list[tuple[str, str, Callable[[], object], dict[str, Callable[[], object]]]]:
    """The cases of ``zeroproof-nb bench``: (name, size, kernel, references), one per family."""
    import warnings

    from scipy.interpolate import AAA
    from scipy.optimize import least_squares

    from . import bench_references as R
    from .core import from_ieee, tr_dtype, tr_div, to_ieee
    from .fitting import fit_rational, linearized_fit
    from .least_squares import levenberg_marquardt, rational_normal_equations
    from .problems import get_problem
    from .rational import basis_features, rational_eval, rational_loss_and_grad
    from .training.sampling_diagnostics import (
        ActiveSampler,
        ActiveSamplerConfig,
        ImportanceSampler,
        ImportanceSamplerConfig,
    )

    rng = np.random.default_rng(0)
    cases = []

    n = 1_000_000
    a = from_ieee(rng.uniform(-2, 2, n))
    b = from_ieee(rng.uniform(-2, 2, n))
    tout = np.empty_like(a)

    def numpy_div() -> object:
        with np.errstate(all="ignore"):
            y = to_ieee(a) / to_ieee(b)
        tag = np.zeros(n, np.uint8)
        tag[np.isposinf(y)] = 1
        tag[np.isneginf(y)] = 2
        tag[np.isnan(y)] = 3
        return y, tag

    cases.append(("tr_div", "1e6", lambda: tr_div(a, b, out=tout), {"numpy": numpy_div}))

    x = rng.uniform(-1, 1, n)
    theta, phi = np.array([0.1, -0.3, 0.2, 0.05]), np.array([0.3, -0.2])
    out, ref, copy = (np.empty(n, tr_dtype()) for _ in range(3))
    from numpy.polynomial import polynomial as P

    def polyval() -> object:
        with np.errstate(all="ignore"):
            return P.polyval(x, theta) / (1.0 + x * P.polyval(x, phi))

    cases.append(("rational forward (3,2)", "1e6", lambda: rational_eval(x, theta, phi, out=out),
                  {"numpy": lambda: R.numpy_eval(x, theta, phi, ref),
                   "numpy.polynomial": polyval,
                   "parallel copy (bound)": lambda: R.parallel_copy(x, copy["value"],
                                                                    copy["tag"])}))
    t = np.sin(3 * x)
    cases.append(("loss and gradient (3,2)", "1e6",
                  lambda: rational_loss_and_grad(x, t, theta, phi),
                  {"numpy": lambda: R.numpy_loss_and_grad(x, t, theta, phi)}))

    xs, ys = get_problem("two_poles").sample(100_000, seed=0)
    th0, ph0 = linearized_fit(xs[:2000], ys[:2000], 3, 2)
    f = basis_features(xs, 3)

    def numpy_jtj() -> object:
        q = 1.0 + f[:, 1:3] @ ph0
        yh = (f @ th0) / q
        j = np.hstack([f / q[:, None], -(yh / q)[:, None] * f[:, 1:3]])
        r = yh - ys
        return j.T @ j, j.T @ r

    cases.append(("JtJ pass (3,2)", "1e5", lambda: rational_normal_equations(xs, ys, th0, ph0),
                  {"numpy": numpy_jtj}))

    q = rng.normal(size=n)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    p = R.numpy_weights(q)
    choice_rng = np.random.default_rng(2)
    cases.append(("weights + 4096 draws", "1e6", lambda: sampler.sample_indices(q, 4096),
                  {"Generator.choice": lambda: choice_rng.choice(n, 4096, p=p)}))
    pool = sampler.prepare(q)
    cases.append(("prepared pool, 65536 draws", "1e6", lambda: sampler.sample_indices(pool, 65536),
                  {"Generator.choice": lambda: choice_rng.choice(n, 65536, p=pool.weights)}))

    cfg = ActiveSamplerConfig(initial_grid_size=200_000, grid_bounds=(-1.0, 1.0),
                              refinement_ratio=3, max_grid_points=1_400_000,
                              refinement_threshold=0.1, relative_threshold=False)
    zeros = np.zeros(200_000)
    c = ActiveSampler(cfg).cells["center"][:, 0].copy()

    def numpy_grid_and_split() -> object:
        edges = np.linspace(-1.0, 1.0, c.size + 1)
        centers, halves = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
        child = halves / 6
        return (centers[:, None] - halves[:, None]
                + (2 * np.arange(6) + 1) * child[:, None]).ravel(), np.repeat(child, 6)

    cases.append(("grid + refinement 1-D", "2e5", lambda: ActiveSampler(cfg).refine(zeros),
                  {"numpy grid + split": numpy_grid_and_split}))

    xl, yl = get_problem("two_poles").sample(2000, seed=0)
    yl = yl * (1 + 1e-3 * np.random.default_rng(1).standard_normal(yl.size))
    tl, pl = linearized_fit(xl[:200], yl[:200], 3, 2)
    fl = basis_features(xl, 3)

    def fun(v: np.ndarray) -> np.ndarray:
        return (fl @ v[:4]) / (1.0 + fl[:, 1:3] @ v[4:]) - yl

    def jac(v: np.ndarray) -> np.ndarray:
        qq = 1.0 + fl[:, 1:3] @ v[4:]
        return np.hstack([fl / qq[:, None], -((fl @ v[:4]) / qq / qq)[:, None] * fl[:, 1:3]])

    p0 = np.r_[tl, pl]
    cases.append(("Levenberg-Marquardt fit", "2e3", lambda: levenberg_marquardt(xl, yl, tl, pl),
                  {"scipy least_squares": lambda: least_squares(
                      fun, p0, jac=jac, method="lm", ftol=1e-12, xtol=1e-12, gtol=1e-12)}))

    xf = np.random.default_rng(0).uniform(-3, 3, 500)
    yf = np.tan(xf) * (1 + 0.01 * np.random.default_rng(1).standard_normal(500))

    def aaa() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return AAA(xf, yf, rtol=0.01)

    cases.append(("fit_rational (tan, 1% noise)", "500",
                  lambda: fit_rational(xf, yf, max_degree=6), {"scipy AAA rtol=0.01": aaa}))
    return cases


def run_quick(*, budget_s: float = 0.5,
              progress: Callable[[str], None] | None = None) -> list[QuickResult]:
    """Run :func:`quick_cases`; ``progress`` is called with each case's name before it runs."""
    results = []
    for name, size, kernel, refs in quick_cases():
        if progress is not None:
            progress(name)
        k, best, rounds = interleaved_ratios(kernel, refs, budget_s=budget_s)
        results.append(QuickResult(case=name, size=size, kernel_s=k, references=best,
                                   ratios={r: best[r] / k for r in refs}, rounds=rounds))
    return results


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


def _fmt_ratio(r: float) -> str:
    return f"{r:.3g}x" if r >= 1 else f"{r:.2f}x"


def machine_line() -> str:
    """CPU, logical CPUs, numba threads and threading layer, versions and today's date."""
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "threading layer not initialised"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, numba {numba.__version__} "
            f"({numba.get_num_threads()} threads, {layer}), numpy {np.__version__}, "
            f"Python {platform.python_version()}, {datetime.date.today().isoformat()}")


def format_table(results: Sequence[QuickResult], width: int | None = None) -> str:
    """The results as a plain-text table no wider than ``width`` (default: the terminal's)."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    rows = []
    for r in results:
        first = True
        for ref, ref_s in r.references.items():
            rows.append([r.case if first else "", r.size if first else "",
                         _fmt_time(r.kernel_s) if first else "", ref, _fmt_time(ref_s),
                         _fmt_ratio(r.ratios[ref])])
            first = False
    head = ["kernel", "N", "ours", "reference", "ref time", "ratio"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    spare = width - (sum(widths) + 2 * (len(head) - 1))
    for col in (3, 0):  # shrink the reference, then the kernel name, to fit the width
        if spare >= 0:
            break
        cut = min(-spare, widths[col] - 8)
        widths[col] -= cut
        spare += cut
    right = {1, 2, 4, 5}

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            cell = cell if len(cell) <= widths[i] else cell[:widths[i] - 1] + "~"
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    text = [line(head), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    return "\n".join(text)


def quick_json(results: Sequence[QuickResult]) -> dict[str, Any]:
    """Strict-JSON-ready dict of the results and the machine line."""
    return {"machine": machine_line(), "results": [asdict(r) for r in results]}


def _ratio_items(extra: Mapping[str, Any]) -> list[tuple[str, float]]:
    return [(k[len("ratio_vs_"):], v) for k, v in extra.items()
            if k.startswith("ratio_vs_") and not k.endswith("_median")
            and isinstance(v, (int, float))]


def render_markdown(data: Mapping[str, Any], *, floors: Mapping[str, Mapping[str, float]] | None = None,
                    command: str = "python -m bench.report") -> str:
    """BENCHMARKS.md from a pytest-benchmark JSON document of the ``bench/`` suite.

    Parameters
    ----------
    data : mapping
        The parsed ``--benchmark-json`` file (ratios in each benchmark's ``extra_info``).
    floors : mapping, optional
        The gate's floors (benchmark key -> ratio name -> floor), shown beside the ratios.
    command : str
        The command that regenerates the page, named at its top.

    Returns
    -------
    str
        Markdown: machine and date, then one table per benchmark group with the median and
        fastest time, every recorded ratio (and its floor) and, for the forward pass, the
        kernel's time over the parallel copy's (the bandwidth bound).
    """
    from .testing import floors_for

    info = data.get("machine_info", {})
    cpu = info.get("cpu", {})
    threads = {b.get("extra_info", {}).get("numba_threads") for b in data.get("benchmarks", [])}
    lines = [
        "# Benchmarks",
        "",
        f"Regenerated by `{command}`. Machine: {cpu.get('brand_raw', '?')}, "
        f"{cpu.get('count', '?')} logical CPUs, numba threads {sorted(t for t in threads if t)}, "
        f"Python {info.get('python_version', '?')}; run {data.get('datetime', '?')}.",
        "",
        "Each row is one pytest-benchmark case: the kernel's median and fastest round, and for "
        "each reference timed in the same rounds the ratio reference / kernel of the fastest "
        "rounds (above 1: ours is faster), with the gate's floor where `bench/floors.json` has "
        "one. `bound` is the forward kernel's time over a parallel copy of the same bytes "
        "(1.0 = at the memory-bandwidth bound).",
        "",
    ]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for bench in data.get("benchmarks", []):
        groups.setdefault(bench.get("group") or bench["name"].split("[")[0], []).append(bench)
    for group in sorted(groups):
        lines += [f"## {group}", "", "| benchmark | median | min | ratios (floor) | bound |",
                  "|---|---|---|---|---|"]
        for bench in groups[group]:
            extra = bench.get("extra_info", {})
            key = bench["fullname"].split("/")[-1]
            fl = floors_for(key, floors or {})
            ratios = ", ".join(
                f"{name} {_fmt_ratio(v)}" + (f" ({fl['ratio_vs_' + name]:g})"
                                            if "ratio_vs_" + name in fl else "")
                for name, v in _ratio_items(extra))
            bound = extra.get("kernel_over_copy")
            bound_s = f"{bound:.2f}" if isinstance(bound, (int, float)) else ""
            stats = bench["stats"]
            lines.append(f"| {bench['name']} | {_fmt_time(stats['median'])} | "
                         f"{_fmt_time(stats['min'])} | {ratios} | {bound_s} |")
        lines.append("")
    return "\n".join(lines)


def cmd_bench(args: Any) -> int:
    """``zeroproof-nb bench``: run :func:`run_quick`, print the table (and write JSON)."""
    import json
    import sys

    t0 = time.perf_counter()
    quiet = getattr(args, "quiet", False)

    def progress(name: str) -> None:
        if not quiet and sys.stderr.isatty():
            print(f"\r  {name} ...".ljust(50), end="", file=sys.stderr, flush=True)

    threads = getattr(args, "threads", None)
    if threads:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    results = run_quick(budget_s=getattr(args, "budget", 0.5), progress=progress)
    if not quiet and sys.stderr.isatty():
        print("\r" + " " * 50 + "\r", end="", file=sys.stderr)
    print(machine_line())
    print(format_table(results, getattr(args, "width", None)))
    print(f"ratio = reference time / ours, fastest of alternating rounds; {time.perf_counter() - t0:.0f} s")
    path = getattr(args, "json", None)
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(quick_json(results), fh, indent=1, allow_nan=False)
            fh.write("\n")
    return 0


def add_bench_parser(sub: Any) -> Any:
    """Add the ``bench`` subcommand to the ``zeroproof-nb`` parser's subparsers."""
    p = sub.add_parser(
        "bench", help="time each kernel family beside NumPy/SciPy (10-30 s)",
        description="Time one case of each kernel family beside its reference (NumPy, "
                    "numpy.polynomial, Generator.choice, scipy least_squares and AAA, a parallel "
                    "copy as the bandwidth bound), alternating round by round, and print the "
                    "ratios in the terminal's width. The full suite with the ratio gate is "
                    "bench/ in the repository (python -m bench.gate).")
    p.add_argument("--budget", type=float, default=0.5, metavar="SECONDS",
                   help="seconds of rounds per case (default: 0.5)")
    p.add_argument("--threads", type=int, default=None,
                   help="numba threads; 1 gives steadier ratios on a busy machine (default: "
                        "numba's, all CPUs)")
    p.add_argument("--width", type=int, default=None, help="table width (default: terminal)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the results here (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress line (default: off)")
    p.set_defaults(func=cmd_bench)
    return p
