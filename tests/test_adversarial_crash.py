"""Crash candidates (issue #12, items 1–3): each runs in a child interpreter, so a segfault or
heap corruption (which may only show at exit) fails the test through a negative return code
instead of killing pytest. Every candidate must end in a ValueError/TypeError/AttributeError
raised before a kernel runs, or in a correct result."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import numpy as np
from dataclasses import replace
from zeroproof_nb.training.sampling_diagnostics import (
    ActiveSampler, ActiveSamplerConfig, ImportanceSampler, ImportanceSamplerConfig, PreparedPool)
import zeroproof_nb as zp

done = []

def expect(name, fn, errors=(ValueError, TypeError)):
    try:
        fn()
    except errors as exc:
        done.append(name)
        return
    raise AssertionError(f"{name}: no error")

rng = np.random.default_rng(0)
q = rng.normal(size=4096)
s = ImportanceSampler(ImportanceSamplerConfig(seed=0))
pool = s.prepare(q)
"""

# each group runs in one child; it prints the names of the candidates that behaved
GROUPS = {
    "prepared_pool": """
def edit_table():
    pool.table[0] = np.uint64(10**12) << np.uint64(32)
expect("table is read-only", edit_table)
def edit_weights():
    pool.weights[:] = 0.0
expect("weights are read-only", edit_weights)
bad_table = np.array(pool.table); bad_table[5] = np.uint64(10**6) << np.uint64(32)
expect("alias index out of range", lambda: replace(pool, table=bad_table))
expect("valid_index 10**12", lambda: replace(pool, n_nan=4095, valid_index=np.array([10**12])))
expect("weights shorter than table", lambda: replace(pool, weights=np.array(pool.weights[:100])))
expect("n_positive inconsistent", lambda: replace(pool, n_positive=1))
expect("valid_index without NaN", lambda: replace(pool, valid_index=np.arange(4096)))
expect("params not numbers", lambda: replace(pool, params=("a", 1, 2, 3)))
expect("float table", lambda: replace(pool, table=pool.table.astype(np.float64)))
# a pool built from the user's writeable arrays is a frozen copy: later edits cannot reach it
w = np.array(pool.weights); t = np.array(pool.table)
own = PreparedPool(weights=w, table=t, n_positive=pool.n_positive, n_nan=0,
                   q_abs_mean=pool.q_abs_mean, q_abs_min=pool.q_abs_min, valid_index=None,
                   params=pool.params)
t[:] = np.uint64(2**63)
idx = s.sample_indices(own, 10000)
assert idx.min() >= 0 and idx.max() < 4096
x, idx = s.hybrid_sample(np.arange(4096.0), own, 512)
assert idx.max() < 4096
done.append("draws from a hand-built pool stay in range")
print("OK", len(done))
""",
    "active_sampler": """
a = ActiveSampler(ActiveSamplerConfig(initial_grid_size=16, max_grid_points=4000), input_dim=2)
def set_dim():
    a.input_dim = 64
expect("input_dim is read-only", set_dim, errors=(AttributeError,))
def bad_cfg():
    a.config = "not a config"
expect("config type", bad_cfg)
a.config.refinement_ratio = 0  # edited in place: refine re-validates before splitting
expect("edited config", lambda: a.refine(np.zeros(a.n_cells)))
a.config.refinement_ratio = 3
for _ in range(6):
    a.refine(lambda p: np.abs(p[:, 0] - 0.1))
assert a.n_cells <= 4000
pts = a.sample(1000)
assert pts.shape == (1000, 2) and np.all(np.abs(pts) <= 3.0)
big = ActiveSampler(ActiveSamplerConfig(initial_grid_size=8), input_dim=64)
big.refine(np.zeros(big.n_cells))
assert big.sample(10).shape == (10, 64)
done.append("64-D grid")
print("OK", len(done))
""",
    "overlap": """
x = np.linspace(-1, 1, 5000)
theta, phi = np.array([1.0, 0.5]), np.array([-1 / 0.3])
ref = zp.rational_eval(x, theta, phi)
raw = np.zeros(5000 * zp.tr_dtype().itemsize, dtype=np.uint8)
buf = raw.view(zp.tr_dtype())                   # the output records ...
xv = raw[:5000 * 8].view(np.float64)             # ... and a contiguous x in the same bytes
xv[:] = x
expect("out overlaps x", lambda: zp.rational_eval(xv, theta, phi, out=buf))
np.testing.assert_array_equal(xv, x)  # untouched
raw2 = np.zeros(2 * zp.tr_dtype().itemsize, dtype=np.uint8)
tv = raw2[:16].view(np.float64); tv[:] = theta
expect("out overlaps theta", lambda: zp.rational_eval(x[:2], tv, phi, out=raw2.view(zp.tr_dtype())))
out = np.empty(5000, dtype=zp.tr_dtype())
zp.rational_eval(x, theta, phi, out=out)
np.testing.assert_array_equal(out, ref)
# reserved tag codes never reach the kernels
t = zp.from_ieee(x); t["tag"][::7] = 255
for op in (lambda: zp.tr_add(t, t), lambda: zp.tr_sqrt(t), lambda: zp.to_ieee(t),
           lambda: zp.tr_sum(t, "drop_null"), lambda: zp.count_tags(t), lambda: zp.tr_pow_int(t, 3)):
    expect("reserved tag", op)
print("OK", len(done))
""",
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_crash_candidates_in_a_child_interpreter(group):
    code = PRELUDE + textwrap.dedent(GROUPS[group])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(ROOT), timeout=300)
    assert proc.returncode >= 0, f"child crashed with signal {-proc.returncode}:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("OK"), proc.stdout
