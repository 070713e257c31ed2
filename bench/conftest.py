"""Shared helpers for the pytest-benchmark suite.

Run with ``python -m pytest bench`` (the README's test command collects ``tests/`` only), or the
speed benchmarks alone through the ratio gate, ``python -m bench.gate``. Each speed benchmark
times its kernel with the ``ratio_gate`` fixture of :mod:`zeroproof_nb.testing`: the kernel under
pytest-benchmark and its NumPy (or other) references in the same rounds, the ratios in
``benchmark.extra_info``; ``bench/floors.json`` holds the floors that ``bench.gate`` checks.

Sizes: benchmarks parametrised over problem size carry the id ``small``, ``medium`` or
``large`` and the marker of the same name (``-m small`` runs the small ones: the CI gate).
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numba
import pytest

pytest_plugins = ["zeroproof_nb.testing"]

SIZE_NAMES = ("small", "medium", "large")


def pytest_configure(config: pytest.Config) -> None:
    for size in SIZE_NAMES:
        config.addinivalue_line("markers", f"{size}: a {size}-size benchmark case")


def sized(**cases: Any) -> list[Any]:
    """``sized(small=1e4, medium=1e6)`` -> pytest params with ids and markers by size."""
    out = []
    for size, value in cases.items():
        if size not in SIZE_NAMES:
            raise ValueError(f"size must be one of {SIZE_NAMES}, got {size!r}")
        out.append(pytest.param(value, id=size, marks=getattr(pytest.mark, size)))
    return out


def reference_median(fn: Callable[[], object], *, rounds: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``rounds`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def record_ratio(benchmark, reference_s: float, name: str = "numpy") -> float:
    """Store the reference median and ``reference / kernel median`` in ``extra_info``.

    For benchmarks whose kernel is timed by ``benchmark(...)`` and whose reference cannot run
    round by round beside it; gated ratios come from the ``ratio_gate`` fixture instead.
    """
    if benchmark.stats is None:  # --benchmark-disable: the kernel ran once, untimed
        return float("nan")
    kernel_s = benchmark.stats.stats.median
    ratio = reference_s / kernel_s
    benchmark.extra_info[f"{name}_median_s"] = reference_s
    benchmark.extra_info[f"ratio_vs_{name}"] = ratio
    benchmark.extra_info["numba_threads"] = numba.get_num_threads()
    return ratio


@pytest.fixture
def ratio_recorder():
    return record_ratio


@pytest.fixture(autouse=True)
def _threads_in_extra_info(request: pytest.FixtureRequest) -> None:
    if {"benchmark", "ratio_gate"} & set(request.fixturenames):
        request.getfixturevalue("benchmark").extra_info["numba_threads"] = numba.get_num_threads()
