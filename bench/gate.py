"""The ratio gate: run the speed benchmarks and fail when a ratio falls below its floor.

Usage (from the repository root)::

    python -m bench.gate                       # small sizes, bench/floors.json, exit 1 on a failure
    python -m bench.gate --sizes small medium  # more sizes (their floors are in the file too)
    python -m bench.gate --json run.json       # check an existing --benchmark-json file instead
    python -m bench.gate --runs 10             # ten gates in a row (the robustness check)
    python -m bench.gate --smoke               # each benchmark once, untimed: what CI runs
    python -m bench.gate --calibrate 6         # six runs -> floors 0.6 x median (to --floors)

Every speed benchmark times its kernel and its references round by round (the ``ratio_gate``
fixture of :mod:`zeroproof_nb.testing`) and records ``ratio_vs_<reference>``, the reference's
fastest round over the kernel's. The gate runs ``bench/test_bench_*.py`` at the chosen sizes
with numba on one thread (``--threads``; a parallel region on a busy 2-core machine waits for
the other core, which makes multi-thread ratios swing by several times) and BLAS on one thread,
writes pytest-benchmark's JSON, and checks it with
:func:`zeroproof_nb.testing.check_benchmark_json`. A benchmark below a floor runs again (up to
``--retries`` times, default 2) and passes if an attempt meets its floors: a kernel made slower
fails every attempt, while a burst of load from other jobs on a shared machine (which can halve
a ratio for seconds) rarely lasts through the next. Then one ``FAIL`` line per ratio still below
its floor (or floored and not recorded), exit status 1 then or when pytest itself fails, else 0.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from zeroproof_nb.testing import check_benchmark_json, load_floors

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ROOT / "bench" / "floors.json"
SIZES = ("small", "medium", "large")

#: the recorded ratios a floor can be calibrated for: the min-over-min ratios of ratio_gate
GATED = re.compile(r"^ratio_vs_(?!.*(_median|_without_count_tracking)$)[A-Za-z0-9_.-]+$")


def size_expression(sizes: Sequence[str]) -> str:
    """The ``-m`` expression for the chosen sizes; unsized benchmarks always run."""
    chosen = " or ".join(sizes)
    return f"({chosen}) or not ({' or '.join(SIZES)})"


def run_benchmarks(json_path: Path | None, sizes: Sequence[str], threads: int,
                   node_ids: Sequence[str] = (), smoke: bool = False) -> tuple[int, str]:
    """Run the speed benchmarks (or only ``node_ids``) into ``json_path``; returns pytest's exit
    status and its summary line."""
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["NUMBA_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    files = list(node_ids) or sorted(str(p.relative_to(ROOT))
                                     for p in (ROOT / "bench").glob("test_bench_*.py"))
    cmd = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider",
           "-m", size_expression(sizes)]
    if smoke:
        cmd.append("--benchmark-disable")
    else:
        cmd += [f"--benchmark-json={json_path}", "--benchmark-columns=min,median,rounds",
                "--benchmark-sort=name"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    if proc.returncode != 0:
        tail = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR", "E "))]
        summary = "\n".join([*tail[-20:], summary])
    return proc.returncode, summary


def _merge_best(data: dict[str, Any], retry: dict[str, Any]) -> None:
    """Keep, per benchmark and gated ratio, the better of the two runs' values (in ``data``)."""
    by_name = {b["fullname"]: b for b in data.get("benchmarks", [])}
    for bench in retry.get("benchmarks", []):
        old = by_name.get(bench["fullname"])
        if old is None:
            data.setdefault("benchmarks", []).append(bench)
            continue
        extra, new = old.setdefault("extra_info", {}), bench.get("extra_info", {})
        for name, value in new.items():
            if GATED.match(name) and isinstance(value, (int, float)):
                if not isinstance(extra.get(name), (int, float)) or value > extra[name]:
                    extra[name] = value
        extra["gate_attempts"] = extra.get("gate_attempts", 1) + 1


def gate_once(floors_path: Path, sizes: Sequence[str], threads: int, json_out: Path | None,
              retries: int = 2) -> tuple[bool, list[str], dict[str, Any]]:
    """Run and check once; a benchmark with a ratio below its floor is run again, up to
    ``retries`` times, and passes when one attempt meets each floor (a kernel made slower fails
    every attempt; a burst of load on a shared machine rarely lasts through the next).
    Returns (passed, output lines, the benchmark JSON with each ratio's best attempt)."""
    floors = load_floors(floors_path)
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = json_out or Path(tmp) / "bench.json"
        t0 = time.perf_counter()
        rc, summary = run_benchmarks(path, sizes, threads)
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"benchmarks": []}
        report = check_benchmark_json(data, floors)
        for attempt in range(retries):
            if rc != 0 or report.ok:
                break
            failing = sorted({line.split(" ", 2)[1].rstrip(":") for line in report.failures})
            lines.append(f"retry {attempt + 1}/{retries}: {len(failing)} benchmark(s) below a floor: "
                         + ", ".join(f.split("::")[-1] for f in failing))
            retry_path = Path(tmp) / f"retry-{attempt + 1}.json"
            retry_rc, _ = run_benchmarks(retry_path, sizes, threads, failing)
            if retry_path.exists():
                _merge_best(data, json.loads(retry_path.read_text(encoding="utf-8")))
            report = check_benchmark_json(data, floors)
            rc = rc or retry_rc
        wall = time.perf_counter() - t0
        if json_out is not None:
            json_out.write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    lines = report.failures + lines
    lines.append(f"pytest: {summary.splitlines()[-1] if summary else rc} ({wall:.0f} s in all)")
    if rc != 0:
        lines[-1:-1] = summary.splitlines()[:-1]
    ok = report.ok and rc == 0
    lines.append(f"gate {'passed' if ok else 'FAILED'}: {report.checked} ratios checked against "
                 f"{floors_path.name}, {len(report.failures)} below their floors")
    return ok, lines, data


def calibrate(runs: list[dict[str, Any]], factor: float,
              cap: float | None = None) -> dict[str, dict[str, float]]:
    """Floors from repeated runs: ``factor * median`` of every gated ratio (with ``cap``:
    at most ``cap * min``), rounded down to two significant digits."""
    seen: dict[str, dict[str, list[float]]] = {}
    for data in runs:
        for bench in data.get("benchmarks", []):
            key = bench["fullname"].split("/")[-1]
            for name, value in bench.get("extra_info", {}).items():
                if GATED.match(name) and isinstance(value, (int, float)) and math.isfinite(value):
                    seen.setdefault(key, {}).setdefault(name, []).append(float(value))
    floors: dict[str, dict[str, float]] = {}
    for key in sorted(seen):
        for name, values in sorted(seen[key].items()):
            floor = factor * statistics.median(values)
            if cap is not None:
                floor = min(floor, cap * min(values))
            digits = 1 - int(math.floor(math.log10(floor)))
            floors.setdefault(key, {})[name] = math.floor(floor * 10**digits) / 10**digits
    return floors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__.split("\n")[0])
    parser.add_argument("--floors", type=Path, default=FLOORS, help="floors file (strict JSON)")
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=["small"])
    parser.add_argument("--threads", type=int, default=1, help="numba threads (default 1)")
    parser.add_argument("--json", type=Path, nargs="+", default=None,
                        help="check these pytest-benchmark JSON files instead of running")
    parser.add_argument("--save", type=Path, default=None,
                        help="keep the run's JSON here (with --calibrate: a directory)")
    parser.add_argument("--runs", type=int, default=1, help="run the gate this many times")
    parser.add_argument("--smoke", action="store_true",
                        help="run every benchmark once, untimed (--benchmark-disable), no floors")
    parser.add_argument("--retries", type=int, default=2,
                        help="run a benchmark below a floor again, up to this many times (2)")
    parser.add_argument("--calibrate", type=int, default=0, metavar="RUNS",
                        help="run RUNS times (or read --json) and write floors to --floors")
    parser.add_argument("--factor", type=float, default=0.6,
                        help="calibration: floor = factor * median over the runs (0.6: a kernel "
                             "made 2x slower halves its ratio and fails)")
    parser.add_argument("--cap", type=float, default=None,
                        help="calibration: also at most cap * min over the runs (default: none)")
    args = parser.parse_args(argv)

    if args.calibrate or (args.json and not args.floors.exists()):
        runs = [json.loads(p.read_text(encoding="utf-8")) for p in args.json or []]
        for i in range(args.calibrate):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bench.json"
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    path = args.save / f"calibration-{i + 1}.json"
                rc, summary = run_benchmarks(path, args.sizes, args.threads)
                print(f"calibration run {i + 1}/{args.calibrate}: {summary.splitlines()[-1]}")
                if rc != 0:
                    print(summary)
                    return 1
                runs.append(json.loads(path.read_text(encoding="utf-8")))
        old = load_floors(args.floors) if args.floors.exists() else {}
        new = calibrate(runs, args.factor, args.cap)
        merged = {**old, **new}
        rule = f"{args.factor} x median over {len(runs)} runs"
        if args.cap is not None:
            rule += f", at most {args.cap} x min"
        doc = {"comment": "Ratio floors for python -m bench.gate: benchmark (node id suffix) -> "
                          "ratio name -> floor. Calibrated with python -m bench.gate --calibrate "
                          f"(floor = {rule}), numba on {args.threads} thread(s).",
               "numba_threads": args.threads, "floors": merged}
        args.floors.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        print(f"wrote {sum(len(v) for v in new.values())} floors for {len(new)} benchmarks "
              f"from {len(runs)} runs to {args.floors}")
        return 0

    if args.smoke:
        t0 = time.perf_counter()
        rc, summary = run_benchmarks(None, args.sizes, args.threads, smoke=True)
        print(f"{summary}\nbenchmark smoke run ({', '.join(args.sizes)} sizes, untimed): "
              f"{'passed' if rc == 0 else 'FAILED'} in {time.perf_counter() - t0:.0f} s")
        return rc

    if args.json:
        failed = 0
        for path in args.json:
            report = check_benchmark_json(path, args.floors)
            for line in report.failures:
                print(line)
            print(f"{path}: {report.checked} ratios checked, {len(report.failures)} below their "
                  f"floors")
            failed += not report.ok
        return 1 if failed else 0

    failures = 0
    for i in range(args.runs):
        ok, lines, _ = gate_once(args.floors, args.sizes, args.threads, args.save, args.retries)
        prefix = f"[run {i + 1}/{args.runs}] " if args.runs > 1 else ""
        for line in lines:
            print(prefix + line, flush=True)
        failures += not ok
    if args.runs > 1:
        print(f"{args.runs - failures}/{args.runs} gate runs passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
