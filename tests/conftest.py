import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# Keep hypothesis fast: numba compiles per new type signature, not per example, but CI starts cold.
try:
    from hypothesis import settings

    settings.register_profile("zp", max_examples=60, deadline=None)
    settings.register_profile("ci", max_examples=40, deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "zp")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def run_fresh():
    """``run(code)``: ``code`` (dedented) in a fresh interpreter with the repository on the
    path, where numba's per-process compile caches start empty; asserts that it exits 0 and
    prints "ok" last."""
    def run(code: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]

    return run
