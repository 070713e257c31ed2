"""The ``zeroproof-nb`` command as a Unix tool: BLAS threads, ``python -m zeroproof_nb``, one-line
errors with exit status 2 (a test per misuse), help with defaults, ``--version``, ``info``,
the cold-cache notice, warnings, ``--epochs 0`` and ``--json`` (issue #15)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    base.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_blas_threads_default_to_one_unless_set_or_too_late():
    probe = ("import os, sys; from zeroproof_nb import cli; cli.limit_blas_threads(); "
             "print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'))")
    assert _run(probe) == "1 1"
    assert _run(probe, OPENBLAS_NUM_THREADS="3") == "3 1"
    late = "import numpy; " + probe  # numpy loaded: the setting would be ignored, so none is made
    assert _run(late) == "None None"


def test_python_dash_m_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "zeroproof_nb", "demo", "--noise", "-1"],
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    assert out.returncode == 2 and "noise" in out.stderr and "Traceback" not in out.stderr


# --- misuse: exit status 2, one line on stderr naming the option, before any work -------------

def _cuda_unusable() -> bool:
    from zeroproof_nb.device import cuda_problem

    return cuda_problem() is not None


MISUSES = [
    (["demo", "--noise", "-1"], "--noise", ">= 0"),
    (["demo", "--noise", "nan"], "--noise", "finite"),
    (["demo", "--noise", "1%"], "--noise", "invalid float"),
    (["demo", "--domain", "1,-1"], "--domain", "lo < hi"),
    (["demo", "--domain", "0,1,2"], "--domain", "two"),
    (["demo", "--domain", "-1,inf"], "--domain", "finite"),
    (["demo", "--epochs", "-3"], "--epochs", ">= 0"),
    (["demo", "--epochs", "2.5"], "--epochs", "invalid int"),
    (["demo", "--poles", ""], "--poles", "at least one"),
    (["demo", "--poles", ","], "--poles", "comma-separated"),
    (["demo", "--poles", "0.3,x"], "--poles", "comma-separated"),
    (["demo", "--poles", "0.3,0.3", "--residues", "1,1"], "--poles", "distinct"),
    (["demo", "--poles", "nan,0.3"], "--poles", "finite"),
    (["demo", "--poles", "0.3", "--residues", "1,2"], "--poles", "same length"),
    (["demo", "--poles", "0.3,0.995", "--residues", "1,1"], "--poles", "edge"),
    (["demo", "--poles", "-1,0.3", "--residues", "1,1"], "--poles", "edge"),
    (["demo", "--residues", "1,0"], "--residues", "non-zero"),
    (["demo", "--seed", "-1"], "--seed", ">= 0"),
    (["demo", "--n-pool", "10"], "--n-pool", ">= 50"),
    (["demo", "--log-every", "0"], "--log-every", ">= 1"),
    (["demo", "--device", "tpu"], "--device", "invalid choice"),
    (["demo", "--bogus"], "demo: error: unrecognized", "--bogus"),
    (["demo", "--version"], "demo: error: unrecognized", "--version"),
    (["demo", "--domain", "-inf,1"], "--domain", "finite"),
    (["demo", "--poles", "-inf"], "--poles", "finite"),
    (["demo", "--n-pool", "20000000000"], "--n-pool", "GiB"),
    (["demo", "--n-pool", "99999999999999999999"], "--n-pool", "GiB"),
    (["bench", "--threads", "-1"], "--threads", "between 1 and"),
    (["bench", "--threads", "0"], "--threads", "between 1 and"),
    (["bench", "--budget", "-1"], "--budget", "> 0"),
    (["bench", "--budget", "nan"], "--budget", "finite"),
    (["bench", "--width", "-5"], "--width", "40 columns"),
    (["bench", "--json", "/proc/x/y.json"], "--json", "cannot write"),
    (["bench", "--json", "/"], "--json", "directory"),
    (["info", "--bogus"], "info: error: unrecognized", "--bogus"),
    (["frob"], "invalid choice", "frob"),
    ([], "required", "info,demo"),
]


@pytest.mark.parametrize("argv,flag,words", MISUSES, ids=[" ".join(m[0]) or "none" for m in MISUSES])
def test_misuse_is_one_line_and_exit_status_2(argv, flag, words, monkeypatch, capsys, tmp_path):
    from zeroproof_nb import cli

    monkeypatch.setattr("zeroproof_nb.demo.run_demo", lambda **k: pytest.fail("work started"))
    monkeypatch.setattr("zeroproof_nb.bench_report.run_quick",
                        lambda **k: pytest.fail("work started"))
    out = ["--out", str(tmp_path / "o")] if argv[:1] == ["demo"] else []
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, *out])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert flag in lines[0] and words in lines[0] and "error:" in lines[0]
    assert captured.out == "" and not (tmp_path / "o").exists()


@pytest.mark.skipif(not _cuda_unusable(), reason="CUDA is usable here")
def test_device_cuda_without_cuda_says_why(monkeypatch, capsys, tmp_path):
    from zeroproof_nb import cli

    monkeypatch.setattr("zeroproof_nb.demo.run_demo", lambda **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--device", "cuda", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--device: CUDA not available: " in line


@pytest.mark.parametrize("kind", ["file", "under_file", "proc"])
def test_unwritable_out_is_refused_first(kind, monkeypatch, capsys, tmp_path):
    from zeroproof_nb import cli

    monkeypatch.setattr("zeroproof_nb.demo.run_demo", lambda **k: pytest.fail("work started"))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    if kind == "proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc")
    out = {"file": blocker, "under_file": blocker / "sub", "proc": Path("/proc/zeroproof_x")}[kind]
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--out", str(out)])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--out" in line


@pytest.mark.parametrize("argv", [["demo", "--noise", "-1"], ["demo", "--poles", "0.3,0.3"],
                                  ["demo", "--out", "/proc/zeroproof_x"], ["nope"]])
def test_misuse_in_a_fresh_process_has_no_traceback(argv):
    res = subprocess.run([sys.executable, "-m", "zeroproof_nb", *argv], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr


# --- help, version, info ------------------------------------------------------------------

def test_every_option_has_help_and_shows_its_default():
    from zeroproof_nb import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    for name, p in sub.choices.items():
        text = p.format_help()
        for action in p._actions:  # noqa: SLF001
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            assert "(default:" in p._get_formatter()._expand_help(action), (name, action.dest)  # noqa: SLF001
        assert "usage:" in text
    demo_help = sub.choices["demo"].format_help()
    for shown in ("0.3,-0.55", "1,-2", "-1,1", "0.01", "4000", "zeroproof_demo"):
        assert shown in demo_help
    top = parser.format_help()
    assert "info" in top and "demo" in top and "examples:" in top


def test_version(capsys):
    from zeroproof_nb import __version__, cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"zeroproof-nb {__version__}")


def test_info_json_reports_the_started_threading_layer():
    res = subprocess.run([sys.executable, "-m", "zeroproof_nb", "info", "--json"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         check=True)
    info = json.loads(res.stdout)
    import numba

    assert info["numba"] == numba.__version__
    assert info["threading_layer"] in ("tbb", "omp", "workqueue")
    assert info["threads"] >= 1 and info["kernel_cache"] in ("warm", "cold")
    assert info["cuda"].startswith(("usable", "not usable"))


# --- the compile notice, warnings, --epochs 0, --json ------------------------------------------

def test_kernel_cache_probe(tmp_path):
    """The probe reads the index file numba writes for a cached kernel: absent in a fresh
    cache, present once a kernel was compiled (a small one here), and the demo's probe follows
    the index file of lm_run."""
    code = textwrap.dedent("""
        from pathlib import Path
        import numpy as np
        from zeroproof_nb import cli
        from zeroproof_nb.kernels.lm_cpu import lm_run
        from zeroproof_nb.kernels.numba_internals import disk_cache_index
        from zeroproof_nb.kernels.least_squares_pass_cpu import all_finite
        small = Path(disk_cache_index(all_finite))
        assert not small.exists() and not cli.kernel_cache_is_warm()
        all_finite(np.zeros(3))
        assert small.exists() and small.parent.is_relative_to(Path(r"{cache}"))
        index = Path(disk_cache_index(lm_run))
        assert index.name.startswith("lm_cpu.lm_run-") and not cli.kernel_cache_is_warm()
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_bytes(b"")
        assert cli.kernel_cache_is_warm()
        print("ok")
    """).format(cache=tmp_path)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cold_cache_notice_is_one_line_on_stderr(monkeypatch, capsys, tmp_path):
    from zeroproof_nb import cli

    monkeypatch.setattr("zeroproof_nb.demo.run_demo", lambda **k: {"ok": True})
    monkeypatch.setattr(cli, "kernel_cache_is_warm", lambda: False)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err == (f"zeroproof-nb demo: compiling kernels (first run only, about "
                   f"{cli.COLD_COMPILE_SECONDS} s on 2 cores)\n")
    assert cli.main(["demo", "--quiet", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli, "kernel_cache_is_warm", lambda: True)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_pole_outside_the_domain_is_warned_and_passed_on(monkeypatch, capsys, tmp_path):
    from zeroproof_nb import cli

    seen = {}
    monkeypatch.setattr("zeroproof_nb.demo.run_demo", lambda **k: seen.update(k))
    monkeypatch.setattr(cli, "kernel_cache_is_warm", lambda: True)
    assert cli.main(["demo", "--poles", "0.3,1.5", "--residues", "1,1", "--out", str(tmp_path)]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("zeroproof-nb demo: warning: pole 1.5 lies outside the domain")
    assert "not scored" in line and seen["poles"] == [0.3, 1.5]


def _no_nonfinite(token):
    raise AssertionError(f"non-standard JSON token {token!r}")


def test_demo_epochs_0_json_and_outside_pole(tmp_path, capsys):
    """A real small run: --epochs 0 keeps the start, --json is strict JSON on stdout with the
    table on stderr, a pole outside the domain is not scored (only the inside one counts)."""
    from zeroproof_nb import cli

    out = tmp_path / "o"
    assert cli.main(["demo", "--epochs", "0", "--n-pool", "400", "--poles", "0.3,1.5",
                     "--residues", "1,1", "--json", "--no-plot", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    s = json.loads(captured.out, parse_constant=_no_nonfinite)
    assert "model" in captured.err and "matched" in captured.err  # the table went to stderr
    assert s["problem"]["not_scored"] == [1.5] and s["problem"]["epochs"] == 0
    for name, m in s["models"].items():
        assert m["matched"] + m["missed"] == 1, name  # one scored pole
    start, trained = s["models"]["start"], s["models"]["trained"]
    assert trained["epochs_trained"] == 0 and trained["poles"] == start["poles"]
    assert trained["far_mse"] == start["far_mse"]
    written = json.loads((out / "summary.json").read_text(), parse_constant=_no_nonfinite)
    assert written["models"].keys() == s["models"].keys()


@pytest.mark.cuda
def test_device_cuda_predictor_matches_the_cpu_in_the_simulator(tmp_path):
    """What ``demo --device cuda`` evaluates on the GPU equals the CPU forward (run in
    numba-cuda's simulator, where CUDA counts as usable)."""
    pytest.importorskip("numba.cuda")
    probe = ROOT / "tests" / "cuda_sim" / "demo_device_probe.py"
    out = tmp_path / "gpu.npz"
    sim = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_ENABLE_CUDASIM="1", NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, str(probe), "gpu", str(out)], env=sim, check=True,
                   capture_output=True, timeout=600)
    res = subprocess.run([sys.executable, str(probe), "cpu", str(out)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["chebyshev_anchored", "ok", "chebyshev", "ok"]
