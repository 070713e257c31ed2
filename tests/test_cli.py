"""The command's process-level defaults: BLAS threads and ``python -m zeroproof_nb``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
