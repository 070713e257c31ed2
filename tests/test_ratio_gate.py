"""The ratio gate (zeroproof_nb.testing, bench.gate) on synthetic data, and the pytest plugin
end to end in a subprocess. No speed is asserted: the timed runs check the mechanism with floors
no measurement can meet (1e9) or miss (1e-9)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zeroproof_nb.testing import (
    below_floor,
    check_benchmark_json,
    floors_for,
    load_floors,
)

ROOT = Path(__file__).resolve().parents[1]


def _run_json(ratios: dict[str, dict[str, float]]) -> dict:
    return {"benchmarks": [{"name": name.split("::")[-1], "fullname": f"bench/{name}",
                            "extra_info": extra} for name, extra in ratios.items()]}


def test_floors_match_by_node_id_suffix():
    floors = {"test_a.py::test_x[small]": {"ratio_vs_numpy": 2.0},
              "test_x[small]": {"ratio_vs_copy": 0.5}}
    assert floors_for("bench/test_a.py::test_x[small]", floors) == {
        "ratio_vs_numpy": 2.0, "ratio_vs_copy": 0.5}
    assert floors_for("bench/test_b.py::test_x[small]", floors) == {"ratio_vs_copy": 0.5}
    assert floors_for("bench/test_a.py::test_xx[small]", floors) == {}   # not a boundary
    assert floors_for("bench/test_a.py::test_x[medium]", floors) == {}


def test_check_fails_below_floor_and_on_missing_ratio_only():
    floors = {"f.py::test_fast": {"ratio_vs_numpy": 10.0},
              "f.py::test_slow": {"ratio_vs_numpy": 10.0},
              "f.py::test_missing": {"ratio_vs_scipy": 1.0},
              "f.py::test_not_run": {"ratio_vs_numpy": 1.0}}
    data = _run_json({"f.py::test_fast": {"ratio_vs_numpy": 25.0},
                      "f.py::test_slow": {"ratio_vs_numpy": 9.99},
                      "f.py::test_missing": {"ratio_vs_numpy": 3.0},
                      "f.py::test_unfloored": {"ratio_vs_numpy": 0.01}})
    report = check_benchmark_json(data, floors)
    assert not report.ok
    assert report.checked == 3
    assert len(report.failures) == 2
    assert report.failures[0].startswith("FAIL bench/f.py::test_slow: ratio_vs_numpy = 9.99")
    assert "ratio_vs_scipy not recorded" in report.failures[1]
    assert report.unmatched == ["f.py::test_not_run"]


def test_a_halved_ratio_fails_a_floor_at_60_percent_of_it():
    # the calibration rule (floor = 0.6 x median): a kernel made 2x slower halves its ratio
    floors = {"f.py::test_k": {"ratio_vs_numpy": 0.6 * 20.0}}
    assert check_benchmark_json(_run_json({"f.py::test_k": {"ratio_vs_numpy": 20.0}}), floors).ok
    slowed = check_benchmark_json(_run_json({"f.py::test_k": {"ratio_vs_numpy": 10.0}}), floors)
    assert slowed.failures == ["FAIL bench/f.py::test_k: ratio_vs_numpy = 10 < floor 12"]


def test_below_floor_treats_nan_as_missing():
    assert below_floor("t", {"ratio_vs_numpy": float("nan")}, {"ratio_vs_numpy": 1.0}) == [
        "FAIL t: ratio_vs_numpy not recorded (floor 1)"]
    assert below_floor("t", {"ratio_vs_numpy": 1.0}, {"ratio_vs_numpy": 1.0}) == []


@pytest.mark.parametrize("text,message", [
    ('{"floors": {"t": {"ratio_vs_numpy": NaN}}}', "non-standard"),
    ('{"floors": {"t": {"ratio_vs_numpy": -1}}}', "positive"),
    ('{"floors": {"t": {"ratio_vs_numpy": true}}}', "positive"),
    ('{"floors": {"t": {}}}', "non-empty"),
    ('{"t": {"ratio_vs_numpy": 1}}', "'floors'"),
])
def test_load_floors_rejects_bad_files(tmp_path, text, message):
    path = tmp_path / "floors.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_floors(path)


def test_checked_in_floors_file_is_strict_and_complete():
    floors = load_floors(ROOT / "bench" / "floors.json")
    assert floors
    # every floored benchmark exists in bench/ (a renamed benchmark would never be checked)
    for key in floors:
        file, _, test = key.partition("::")
        source = (ROOT / "bench" / file).read_text(encoding="utf-8")
        assert f"def {test.split('[')[0]}(" in source, key


def test_gate_calibration_rule():
    sys.path.insert(0, str(ROOT))
    try:
        from bench.gate import calibrate, size_expression
    finally:
        sys.path.remove(str(ROOT))
    runs = [_run_json({"f.py::test_k": {"ratio_vs_numpy": v, "ratio_vs_numpy_median": 1.0,
                                        "kernel_min_s": 1e-3}}) for v in (10.0, 11.0, 12.0)]
    # 0.6 * median 11 = 6.6 (capped: 0.7 * min 10 = 7 > 6.6, 0.5 * 10 = 5); medians and times
    # are not gated
    assert calibrate(runs, 0.6) == {"f.py::test_k": {"ratio_vs_numpy": 6.6}}
    assert calibrate(runs, 0.6, 0.7) == {"f.py::test_k": {"ratio_vs_numpy": 6.6}}
    assert calibrate(runs, 0.6, 0.5) == {"f.py::test_k": {"ratio_vs_numpy": 5.0}}
    assert size_expression(["small"]) == "(small) or not (small or medium or large)"


def test_gate_retry_keeps_the_better_attempt_per_ratio():
    sys.path.insert(0, str(ROOT))
    try:
        from bench.gate import _merge_best
    finally:
        sys.path.remove(str(ROOT))
    first = _run_json({"f.py::test_k": {"ratio_vs_numpy": 5.0, "ratio_vs_copy": 0.9}})
    retry = _run_json({"f.py::test_k": {"ratio_vs_numpy": 9.0, "ratio_vs_copy": 0.7}})
    _merge_best(first, retry)
    extra = first["benchmarks"][0]["extra_info"]
    assert extra == {"ratio_vs_numpy": 9.0, "ratio_vs_copy": 0.9, "gate_attempts": 2}
    floors = {"f.py::test_k": {"ratio_vs_numpy": 6.0, "ratio_vs_copy": 0.8}}
    assert check_benchmark_json(first, floors).ok


EXAMPLE = re.compile(r"```python\n(# test_pipeline_bench\.py.*?)```", re.S)


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def example_suite(tmp_path):
    """The README's example benchmark, as a user's suite: conftest + test file."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = EXAMPLE.search(text)
    assert block, "README has no '# test_pipeline_bench.py' example"
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["zeroproof_nb.testing"]\n')
    (tmp_path / "test_pipeline_bench.py").write_text(block.group(1))
    return tmp_path


def test_readme_example_runs_as_a_smoke_test(example_suite):
    proc = _pytest(example_suite, "--benchmark-disable")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_plugin_fails_a_test_below_its_floors_file(example_suite, tmp_path_factory):
    floors = tmp_path_factory.mktemp("floors") / "floors.json"
    key = "test_pipeline_bench.py::test_forward_beats_numpy_polynomial"
    floors.write_text(json.dumps({"floors": {key: {"ratio_vs_numpy_polynomial": 1e9}}}))
    out = example_suite / "run.json"
    proc = _pytest(example_suite, f"--ratio-floors={floors}", "--ratio-budget=0.05",
                   f"--benchmark-json={out}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"FAIL .*test_forward_beats_numpy_polynomial: ratio_vs_numpy_polynomial = "
                     r"\S+ < floor 1e\+09", proc.stdout)
    assert "1 gated benchmarks, 1 ratios below their floors" in proc.stdout
    # the ratio is in the JSON too, where the same floors fail it again
    assert not check_benchmark_json(out, floors).ok
    data = json.loads(out.read_text())
    extra = data["benchmarks"][0]["extra_info"]
    assert extra["ratio_rounds"] >= 5 and extra["numpy_polynomial_min_s"] > 0
