"""The user's documents' example code runs verbatim once ``zeroproof`` becomes ``zeroproof_nb``.

The code is extracted from copies of the documents in ``tests/seed_docs/`` (checked against the
originals in ``../shared/seeds/`` when that folder exists), not retyped here.
"""
import re
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
DOCS = HERE / "seed_docs"
ORIGINALS = HERE.parents[1] / "shared" / "seeds"

TRAINING_POLICIES = "000_f611a2c1812da013.txt"
SAMPLING = "004_40c0ed543cc77b6c.txt"


def extract_example(name: str, start: str, end: str) -> str:
    """The lines of document ``name`` from the one starting with ``start`` up to (excluding) the
    first later line starting with ``end``, with ``zeroproof`` renamed to ``zeroproof_nb``."""
    lines = (DOCS / name).read_text(encoding="utf-8").splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(end))
    code = "\n".join(lines[i:j]).strip() + "\n"
    return re.sub(r"\bzeroproof\b", "zeroproof_nb", code)


@pytest.mark.parametrize("name", [TRAINING_POLICIES, SAMPLING])
def test_copies_match_originals(name):
    original = ORIGINALS / name
    if not original.exists():
        pytest.skip("the shared seeds folder is not present in this checkout")
    assert (DOCS / name).read_bytes() == original.read_bytes()


def test_training_policies_example_runs(capsys):
    code = extract_example(TRAINING_POLICIES, "from zeroproof.training.adaptive_loss", "Coverage Tracking")
    assert "policy.update(tags)" in code and "zeroproof_nb.core" in code
    namespace: dict = {}
    exec(compile(code, TRAINING_POLICIES, "exec"), namespace)
    out = capsys.readouterr().out.split()
    # one update of [REAL, PINF, REAL]: coverage 2/3; update_frequency=10, so λ is unchanged
    assert float(out[0]) == pytest.approx(2 / 3)
    assert float(out[1]) == 1.0
    assert namespace["policy"].step_count == 1


def test_sampling_example_runs():
    mod = pytest.importorskip("zeroproof_nb.training.sampling_diagnostics")
    if not hasattr(mod, "ImportanceSampler"):
        pytest.skip("ImportanceSampler is not there yet")
    code = extract_example(SAMPLING, "from zeroproof.training.sampling_diagnostics", "Active Sampling")
    assert "sampler.sample_batch(x_pool, q_pool, batch_size=128)" in code
    # "Given pools x_pool, q_pool": a 1-D pool with a pole of Q at x = 0.3
    x_pool = np.linspace(-1.0, 1.0, 2001)
    namespace = {"x_pool": x_pool, "q_pool": x_pool - 0.3}
    exec(compile(code, SAMPLING, "exec"), namespace)
    batch_x = np.asarray(namespace["batch_x"])
    assert batch_x.shape[0] == 128
    assert np.all(np.isin(batch_x, x_pool))
