"""Shared helpers for the pytest-benchmark suite.

Run with ``python -m pytest bench`` (the README's test command collects ``tests/`` only). Each
benchmark times its kernel with the ``benchmark`` fixture and its NumPy (or other) reference with
:func:`reference_median` in the same run, and records the ratio in ``benchmark.extra_info``.
"""
from __future__ import annotations

import time
from typing import Callable

import numba
import pytest


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
    """Store the reference median and ``reference / kernel median`` in ``extra_info``."""
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
