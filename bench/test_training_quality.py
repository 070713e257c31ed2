"""The training-quality benchmark's quick configuration, and the issue #11 targets it can check.

Asserted: the trainer never ends worse than its start on its own held-out data; a start at the
L2 optimum stays there under the L2 objective; with 5% gross outliers the Tukey linearised fit is
>= 10x better far from the poles than the L2 one in >= 80% of the seeds; the report renders.
Measured but not asserted here (see docs/training.md): the near-pole held-out MSE, the
convergence rate from nearby starts (an expected failure until it meets the target) and the
speed next to least_squares (wall times on a shared machine are no gate).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import training_quality as tq  # noqa: E402
from bench.training_report import render_markdown, summarize  # noqa: E402


@pytest.fixture(scope="module")
def result():
    return tq.run(tq.QUICK)


def test_rows_cover_every_case(result):
    q = result["quality"]
    cases = {(r["problem"], r["noise"], r["seed"]) for r in q}
    assert len(cases) == len(tq.QUICK.problems) * len(tq.QUICK.noises) * len(tq.QUICK.seeds)
    methods = {r["method"] for r in q}
    assert {"start (L2)", "trained", "least_squares", "AAA"} <= methods
    for r in q:
        assert r["time_s"] >= 0 and r["matched"] + r["missed"] == len(
            next(t for t in tq.targets() if t.name == r["problem"]).poles)
    # a noise-free rational problem: the start recovers its poles
    exact = [r for r in q if r["problem"] == "two_poles" and r["noise"] == "none"
             and r["method"] == "start (L2)"]
    assert exact and all(r["matched"] == 2 and r["extra"] == 0 and r["ple"] < 1e-10
                         for r in exact)


def test_trained_never_worse_on_its_held_out_split(result):
    trained = [r for r in result["quality"] if r["method"].startswith("trained")]
    assert trained
    for r in trained:
        if r["held_start"] is None:  # a trainer without a held-out split
            continue
        assert r["held_final"] <= r["held_start"] * (1 + 1e-12), r


def test_start_at_the_optimum_stays_there(result):
    rows = [r for r in result["convergence"]
            if r["start"] == "optimum" and r["method"] == "Trainer (L2 objective)"]
    assert rows
    # within the rounding of the objective: near a pole P/Q loses ~|Q terms|/|Q| digits, so
    # the kernel's and NumPy's evaluations (the reference) differ by ~1e-11 relative there, and
    # the trainer's double-double refinement takes the start to the optimum of the exactly
    # rounded residuals; along the flat directions of an ill-conditioned fit (tan at (4, 8),
    # cond ~1e10) that moves the parameters by ~cond·eps ~1e-6 relative (docs/training.md's
    # "largest moved") while the training loss moves by ~1e-10 relative
    for r in rows:
        assert r["reached"] and abs(r["train_gap"]) <= 1e-9 and r["moved"] <= 1e-5, r


@pytest.mark.skipif("tukey" not in tq._LIN_LOSSES, reason="linearized_fit has no robust loss")
def test_robust_start_with_outliers(result):
    summary = summarize(result)["robust"]
    assert set(summary) == set(tq.QUICK.problems)
    for prob, entry in summary.items():
        v = entry["start (Tukey)"]
        assert v["ge10"] >= math.ceil(0.8 * v["n"]), (prob, v)


@pytest.mark.xfail(reason="issue #11 target: the default optimizer reaches the L2 optimum from "
                          "a 10% subsample start in >= 95% of runs (not met yet)", strict=False)
def test_convergence_from_a_subsample_start(result):
    v = summarize(result)["convergence"][("subsample 10%", "Trainer (defaults)")]
    assert v["reached"] >= 0.95 * v["n"]


def test_speed_rows_time_every_method_and_reach_the_optimum(result):
    rows = result["speed"]
    assert {(r["problem"], r["n"]) for r in rows} == {
        (p, n) for p in tq.QUICK.speed_problems for n in tq.QUICK.speed_sizes}
    assert {r["method"] for r in rows} == set(tq._SPEED_METHODS)
    for r in rows:
        assert r["time_s"] > 0 and math.isfinite(r["gap"])
        if r["problem"] == "two_poles" and r["method"] != "least_squares":
            assert r["reached"], r  # an exact-degree rational: every solver gets there


def test_report_renders(result):
    text = render_markdown(result, "python -m bench.training_quality --quick")
    for heading in ("# Training quality", "Never worse than the start", "Robust fits",
                    "Convergence from a nearby start", "Speed at realistic sizes",
                    "## Start vs trained vs peers",
                    "## Convergence runs"):
        assert heading in text
    for name in tq.QUICK.problems:
        assert f"### {name}" in text
