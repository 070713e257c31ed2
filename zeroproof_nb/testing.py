"""Ratio gates for pytest-benchmark suites: speed as a ratio to a reference run beside it.

Absolute times move with the machine and with whatever else runs on it; the ratio of a kernel's
time to a reference's (NumPy, SciPy, a bandwidth bound) timed in the same rounds moves much
less. This module measures such ratios with pytest-benchmark's ``benchmark`` fixture, records
them in ``benchmark.extra_info`` (so they land in ``--benchmark-json`` files) and checks them
against floors: in the test itself, or afterwards from the JSON file.

Use it in a suite by registering the plugin in a ``conftest.py``::

    pytest_plugins = ["zeroproof_nb.testing"]

and calling the ``ratio_gate`` fixture in a benchmark::

    def test_my_kernel(ratio_gate):
        ratio_gate(lambda: my_kernel(x), {"numpy": lambda: numpy_version(x)},
                   floors={"numpy": 3.0})

How it measures: every round runs each reference once (untimed by pytest-benchmark, timed
here) and then the kernel once (timed by pytest-benchmark), so kernel and references share the
machine's state round by round. The ratio is ``min(reference times) / min(kernel times)``: on a
shared machine noise only ever adds time, and the fastest round of each is the one least
disturbed. A reference much shorter than the kernel is called several times per sample, so
that the two samples last about as long (a long sample on a loaded machine is always
interrupted, a short one often not). Under ``--benchmark-disable`` the kernel runs once and no ratio is measured or
checked (a smoke run).

Floors come from the ``floors=`` argument or from a strict-JSON floors file given with
``--ratio-floors PATH``::

    {"floors": {"test_file.py::test_my_kernel": {"ratio_vs_numpy": 3.0}}}

A key matches a test whose node id ends with it (at a ``/`` boundary). A ratio below its floor
fails the test with one line naming the benchmark, the ratio and the floor.
:func:`check_benchmark_json` applies the same floors to a pytest-benchmark JSON file.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

__all__ = [
    "RatioResult",
    "GateReport",
    "load_floors",
    "floors_for",
    "below_floor",
    "check_benchmark_json",
    "measure_ratios",
    "ratio_gate",
    "DEFAULT_BUDGET_S",
]

#: seconds of rounds per gated benchmark when neither the call nor ``--ratio-budget`` says
DEFAULT_BUDGET_S = 0.5
MIN_ROUNDS = 5
MAX_ROUNDS = 400
#: most calls of a reference per timed sample (see :func:`measure_ratios`)
MAX_REPEATS = 64

_STASH_KEY = pytest.StashKey[list]()


@dataclass
class RatioResult:
    """One gated benchmark's measurement.

    Attributes
    ----------
    name : str
        The benchmark (test node id).
    kernel_s : float or None
        Fastest kernel round in seconds (None when timing was disabled).
    reference_s : dict
        Fastest round of each reference in seconds.
    ratios : dict
        ``"ratio_vs_<reference>"`` -> reference time / kernel time.
    rounds : int
        Number of interleaved rounds.
    failures : list of str
        One line per ratio below its floor.
    """

    name: str
    kernel_s: float | None = None
    reference_s: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class GateReport:
    """The result of checking measured ratios against floors.

    Attributes
    ----------
    checked : int
        Number of (benchmark, ratio) pairs that had a floor and a measurement.
    failures : list of str
        One line per ratio below its floor, or per floored ratio that a benchmark did not record.
    unmatched : list of str
        Floor keys that matched no benchmark in the data (not run, e.g. another size or no GPU).
    """

    checked: int = 0
    failures: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no ratio fell below its floor."""
        return not self.failures


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token!r} (floors files are strict JSON)")


def load_floors(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a floors file: ``{"floors": {benchmark key: {ratio name: floor}}}``.

    Parameters
    ----------
    path : str or Path
        Strict JSON (no ``NaN``/``Infinity``); other top-level keys (comments) are ignored.

    Returns
    -------
    dict
        Benchmark key -> ratio name -> floor (a positive float).

    Raises
    ------
    ValueError
        If the file is not strict JSON or a floor is not a positive finite number.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f, parse_constant=_reject_constant)
    floors = data.get("floors") if isinstance(data, dict) else None
    if not isinstance(floors, dict):
        raise ValueError(f"{path}: expected an object with a 'floors' object")
    out: dict[str, dict[str, float]] = {}
    for key, ratios in floors.items():
        if not isinstance(ratios, dict) or not ratios:
            raise ValueError(f"{path}: floors[{key!r}] must be a non-empty object")
        out[key] = {}
        for name, value in ratios.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"{path}: floors[{key!r}][{name!r}] must be a positive number, "
                                 f"got {value!r}")
            out[key][name] = float(value)
    return out


def _matches(name: str, key: str) -> bool:
    return name == key or (name.endswith(key) and name[-len(key) - 1] in "/:")


def floors_for(name: str, floors: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The floors whose key matches benchmark ``name`` (a node id ending with the key)."""
    found: dict[str, float] = {}
    for key, ratios in floors.items():
        if _matches(name, key):
            found.update(ratios)
    return found


def below_floor(name: str, ratios: Mapping[str, float], floors: Mapping[str, float]) -> list[str]:
    """One line per floored ratio of benchmark ``name`` that is below its floor or missing."""
    lines = []
    for ratio_name, floor in floors.items():
        value = ratios.get(ratio_name)
        if value is None or not isinstance(value, (int, float)) or math.isnan(value):
            lines.append(f"FAIL {name}: {ratio_name} not recorded (floor {floor:g})")
        elif value < floor:
            lines.append(f"FAIL {name}: {ratio_name} = {value:.3g} < floor {floor:g}")
    return lines


def check_benchmark_json(data: Mapping[str, Any] | str | Path,
                         floors: Mapping[str, Mapping[str, float]] | str | Path) -> GateReport:
    """Check the ratios in a pytest-benchmark JSON document against floors.

    Parameters
    ----------
    data : mapping, str or Path
        The parsed ``--benchmark-json`` document, or its path.
    floors : mapping, str or Path
        Benchmark key -> ratio name -> floor, or the path of a floors file.

    Returns
    -------
    GateReport
        Failures (one line each), the number of checked ratios and the unmatched floor keys.
    """
    if not isinstance(data, Mapping):
        with open(data, encoding="utf-8") as f:
            data = json.load(f)
    if not isinstance(floors, Mapping):
        floors = load_floors(floors)
    report = GateReport()
    seen: set[str] = set()
    for bench in data.get("benchmarks", []):
        name = bench.get("fullname") or bench.get("name", "?")
        wanted = {}
        for key, ratios in floors.items():
            if _matches(name, key):
                seen.add(key)
                wanted.update(ratios)
        if not wanted:
            continue
        extra = bench.get("extra_info", {})
        report.failures += below_floor(name, extra, wanted)
        report.checked += len(wanted)
    report.unmatched = sorted(set(floors) - seen)
    return report


def _time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_ratios(benchmark: Any, kernel: Callable[..., object],
                   references: Mapping[str, Callable[[], object]], *,
                   setup: Callable[[], Any] | None = None, budget_s: float | None = None,
                   rounds: int | None = None) -> RatioResult:
    """Time ``kernel`` with pytest-benchmark and each reference beside it, round by round.

    Parameters
    ----------
    benchmark : pytest_benchmark.fixture.BenchmarkFixture
        The test's ``benchmark`` fixture (used once, through ``benchmark.pedantic``).
    kernel : callable
        The code under test; called with the arguments ``setup`` returns, else with none.
    references : mapping
        Name -> zero-argument callable (``"numpy"`` -> the NumPy version of the same work).
    setup : callable, optional
        Untimed, before every kernel call: returns ``(args, kwargs)`` for it, or None.
    budget_s : float, optional
        Seconds of rounds to aim for (default :data:`DEFAULT_BUDGET_S`); the number of rounds is
        this over the time of one round, between 5 and 400. A reference that takes less than
        half the kernel's time runs that many times per sample (at most 64), its time per call
        recorded, so that kernel and reference samples last about as long.
    rounds : int, optional
        A fixed number of rounds instead of the budget.

    Returns
    -------
    RatioResult
        Also recorded in ``benchmark.extra_info``: ``ratio_vs_<name>`` (min over min),
        ``ratio_vs_<name>_median`` (median over median), ``<name>_min_s``, ``<name>_median_s``,
        ``ratio_rounds``. With timing disabled the kernel runs once and nothing is recorded.
    """
    result = RatioResult(name=getattr(benchmark, "fullname", "?"))
    if not getattr(benchmark, "enabled", True):
        benchmark.pedantic(kernel, setup=setup, rounds=1)
        return result
    def call() -> None:
        args, kwargs = (setup() or ((), {})) if setup is not None else ((), {})
        t0 = time.perf_counter()
        kernel(*args, **kwargs)
        timed.append(time.perf_counter() - t0)

    timed: list[float] = []
    call()  # warm-up (compilation, caches), then one timed call
    call()
    one = timed[-1]
    for ref in references.values():
        ref()
    single = {name: _time_once(ref) for name, ref in references.items()}
    # a reference much shorter than the kernel runs several times per sample, so that both
    # samples span about as many of the scheduler's time slices (under sustained load a long
    # sample is always stretched and a short one often not, which skews a min/min ratio)
    repeats = {name: max(1, min(MAX_REPEATS, int(one / max(t, 1e-9)))) if t < one / 2 else 1
               for name, t in single.items()}
    if rounds is None:
        per_round = one + sum(single[n] * repeats[n] for n in references)
        budget = DEFAULT_BUDGET_S if budget_s is None else budget_s
        rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, budget / max(per_round, 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in references}

    def interleaved():
        for name, ref in references.items():
            k = repeats[name]
            t0 = time.perf_counter()
            for _ in range(k):
                ref()
            times[name].append((time.perf_counter() - t0) / k)
        return setup() if setup is not None else None

    benchmark.pedantic(kernel, setup=interleaved, rounds=rounds, warmup_rounds=1)
    kernel_min = benchmark.stats.stats.min
    kernel_median = benchmark.stats.stats.median
    result.kernel_s, result.rounds = kernel_min, rounds
    info = benchmark.extra_info
    info["kernel_min_s"] = kernel_min
    info["ratio_rounds"] = rounds
    info["reference_repeats"] = repeats
    for name, ts in times.items():
        ts = sorted(ts[1:])  # the first call was the warm-up round's
        ref_min, ref_median = ts[0], ts[len(ts) // 2]
        result.reference_s[name] = ref_min
        result.ratios[f"ratio_vs_{name}"] = ref_min / kernel_min
        info[f"{name}_min_s"] = ref_min
        info[f"{name}_median_s"] = ref_median
        info[f"ratio_vs_{name}"] = ref_min / kernel_min
        info[f"ratio_vs_{name}_median"] = ref_median / kernel_median
    return result


class RatioGate:
    """The ``ratio_gate`` fixture's value: measure, record, check (see :func:`measure_ratios`).

    Call it once per test as
    ``ratio_gate(kernel, references, floors=None, setup=None, budget_s=None, rounds=None)``;
    ``floors`` maps a reference name (``"numpy"``) or a ratio name (``"ratio_vs_numpy"``) to its
    floor; the ``--ratio-floors`` file's entries for this test take precedence (so a pipeline
    can tune its floors without editing tests). Returns the ratios (empty under
    ``--benchmark-disable``).
    """

    def __init__(self, request: pytest.FixtureRequest):
        self._request = request

    def __call__(self, kernel: Callable[..., object],
                 references: Mapping[str, Callable[[], object]], *,
                 floors: Mapping[str, float] | None = None,
                 setup: Callable[[], Any] | None = None, budget_s: float | None = None,
                 rounds: int | None = None) -> dict[str, float]:
        request = self._request
        benchmark = request.getfixturevalue("benchmark")
        if budget_s is None:
            budget_s = request.config.getoption("ratio_budget", None)
        result = measure_ratios(benchmark, kernel, references, setup=setup, budget_s=budget_s,
                                rounds=rounds)
        result.name = request.node.nodeid
        if result.kernel_s is None:
            return {}
        wanted = {key if key.startswith("ratio_vs_") else f"ratio_vs_{key}": float(floor)
                  for key, floor in (floors or {}).items()}
        wanted.update(floors_for(result.name, request.config.stash.get(_FLOORS_KEY, {})))
        result.failures = below_floor(result.name, result.ratios, wanted)
        request.config.stash.setdefault(_STASH_KEY, []).append(result)
        if result.failures:
            pytest.fail("\n".join(result.failures), pytrace=False)
        return dict(result.ratios)


_FLOORS_KEY = pytest.StashKey[dict]()


@pytest.fixture
def ratio_gate(request: pytest.FixtureRequest) -> RatioGate:
    """Measure a kernel beside references and fail when a ratio is below its floor."""
    return RatioGate(request)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ratio gate (zeroproof_nb.testing)")
    group.addoption("--ratio-floors", dest="ratio_floors", default=None, metavar="PATH",
                    help="strict-JSON floors file; a ratio below its floor fails the test")
    group.addoption("--ratio-budget", dest="ratio_budget", type=float, default=None,
                    metavar="SECONDS",
                    help=f"seconds of interleaved rounds per gated benchmark "
                         f"(default {DEFAULT_BUDGET_S})")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("ratio_floors", None)
    if path:
        config.stash[_FLOORS_KEY] = load_floors(path)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_STASH_KEY, [])
    if not results:
        return
    failures = [line for r in results for line in r.failures]
    terminalreporter.write_sep("-", "ratio gate")
    terminalreporter.write_line(f"{len(results)} gated benchmarks, {len(failures)} ratios below "
                                f"their floors")
    for line in failures:
        terminalreporter.write_line(line)
