"""`zeroproof-nb bench` pieces without timing anything: the parser, the table's width, the
Markdown renderer on a synthetic pytest-benchmark document."""
from __future__ import annotations

from zeroproof_nb.bench_report import QuickResult, format_table, render_markdown
from zeroproof_nb.cli import build_parser


def _results() -> list[QuickResult]:
    return [QuickResult("rational forward (3,2)", "1e6", 4.5e-4,
                        {"numpy": 1.36e-2, "parallel copy (bound)": 2.1e-4},
                        {"numpy": 30.2, "parallel copy (bound)": 0.467}, 40),
            QuickResult("a kernel with a very long descriptive name", "1e3", 2.0,
                        {"a reference with an even longer descriptive name": 1.0},
                        {"a reference with an even longer descriptive name": 0.5}, 3)]


def test_bench_subcommand_parses():
    args = build_parser().parse_args(["bench", "--budget", "0.1", "--width", "70"])
    assert args.budget == 0.1 and args.width == 70 and callable(args.func)


def test_table_fits_the_width_and_keeps_every_row():
    for width in (60, 80, 200):
        text = format_table(_results(), width)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width, (width, text)
        assert len(lines) == 2 + 3                       # header, rule, one row per reference
    wide = format_table(_results(), 200)
    assert "30.2x" in wide and "0.47x" in wide and "450 us" in wide and "13.6 ms" in wide


def test_markdown_lists_groups_ratios_floors_and_bound():
    data = {"machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2},
                             "python_version": "3.11"},
            "datetime": "2026-12-07T12:00:00",
            "benchmarks": [{"name": "test_forward[small]", "group": "forward-n10000",
                            "fullname": "bench/test_bench_rational.py::test_forward[small]",
                            "stats": {"median": 3e-5, "min": 2.5e-5},
                            "extra_info": {"ratio_vs_numpy": 2.2, "ratio_vs_numpy_median": 2.0,
                                           "kernel_over_copy": 4.4, "numba_threads": 1}}]}
    floors = {"test_bench_rational.py::test_forward[small]": {"ratio_vs_numpy": 1.3}}
    text = render_markdown(data, floors=floors)
    assert "Test CPU, 2 logical CPUs" in text and "## forward-n10000" in text
    row = next(line for line in text.splitlines() if line.startswith("| test_forward"))
    assert "numpy 2.2x (1.3)" in row and "4.40" in row and "30 us" in row
    assert "numpy_median" not in row
