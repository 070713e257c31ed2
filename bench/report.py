"""Regenerate BENCHMARKS.md: run the speed benchmarks, keep the JSON, render the tables.

Usage (from the repository root)::

    python -m bench.report                    # all sizes, numba's default threads
    python -m bench.report --sizes small      # quicker
    python -m bench.report --json run.json    # render an existing run only

Writes ``bench/results/<date>-<sizes>.json`` (pytest-benchmark's file without the per-round
times) and ``BENCHMARKS.md``
(:func:`zeroproof_nb.bench_report.render_markdown`, with the floors of ``bench/floors.json``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from bench.gate import FLOORS, ROOT, SIZES, run_benchmarks
from zeroproof_nb.bench_report import render_markdown
from zeroproof_nb.testing import load_floors


def strip_round_times(path: Path) -> None:
    """Drop the per-round times (``stats.data``) from a pytest-benchmark file: the statistics
    and ``extra_info`` stay, the file shrinks from megabytes to tens of kilobytes."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for bench in data.get("benchmarks", []):
        bench.get("stats", {}).pop("data", None)
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--threads", type=int, default=None,
                        help="numba threads (default: numba's, all logical CPUs)")
    parser.add_argument("--json", type=Path, default=None, help="render this run instead")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    path = args.json
    if path is None:
        stamp = datetime.date.today().isoformat()
        path = ROOT / "bench" / "results" / f"{stamp}-{'-'.join(args.sizes)}.json"
        threads = args.threads or int(os.environ.get("NUMBA_NUM_THREADS", 0)) or os.cpu_count() or 1
        rc, summary = run_benchmarks(path, args.sizes, threads)
        print(summary)
        if rc != 0:
            return rc
        strip_round_times(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    floors = load_floors(FLOORS) if FLOORS.exists() else {}
    gate_threads = json.loads(FLOORS.read_text(encoding="utf-8")).get("numba_threads") \
        if FLOORS.exists() else None
    run_threads = {b.get("extra_info", {}).get("numba_threads") for b in data["benchmarks"]}
    note = ""
    if run_threads != {gate_threads}:
        floors = {}
        note = (f" The gate's floors (`bench/floors.json`, `python -m bench.gate`) are for "
                f"{gate_threads} numba thread(s) and are not shown beside this run's ratios.")
    if args.json is None and hasattr(os, "getloadavg"):
        note += f" Load average when the run ended: {os.getloadavg()[0]:.1f}."
    rel = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    text = render_markdown(data, floors=floors, command="python -m bench.report")
    text = text.replace("\n\nEach row", f" Raw data: `{rel}`.{note}\n\nEach row", 1)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out} from {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
