"""Trainer(config=TrainingConfig(device="cuda")) against the CPU trainer: the
Levenberg-Marquardt epoch (passes on the GPU, steps from the normal equations) and Adam epochs
of a Trainer and a HybridTrainer (the fused CUDA pass per batch) reach the CPU's parameters, and the LM objective does not rise.
The CPU runs come from tests/test_cuda_backend.py (ZP_CUDA_REFERENCE: the CPU kernels cannot
run here, NUMBA_DISABLE_JIT=1) or are computed here on a real GPU machine."""
from __future__ import annotations

import os

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    pytest.skip("no GPU: run through tests/test_cuda_backend.py (simulator)", allow_module_level=True)

from tests.cuda_sim.trainer_cases import PHI0, THETA0, make_trainer, problem, run  # noqa: E402
from zeroproof_nb.least_squares import LMState  # noqa: E402
from zeroproof_nb.least_squares_cuda import (  # noqa: E402
    levenberg_marquardt_cuda,
    rational_normal_equations_cuda,
)


def _reference(kind: str) -> dict:
    path = os.environ.get("ZP_CUDA_REFERENCE")
    if path:
        ref = np.load(path)
        pre = f"trainer_{kind}/"
        return {k[len(pre):]: ref[k] for k in ref.files if k.startswith(pre)}
    return run(kind, "cpu")


def test_lm_epochs_on_cuda_match_the_cpu_and_never_raise_the_objective():
    ref = _reference("lm")
    got = run("lm", "cuda")
    # normal equations square the condition number, well-conditioned here (cond(J) ~ 1e2):
    # every epoch's parameters within 1e-10 of their scale (measured in the simulator: 2e-13;
    # the CPU also refines its converged optimum on double-double residuals, the GPU does not)
    scale = max(np.abs(ref["theta"]).max(), np.abs(ref["phi"]).max())
    np.testing.assert_allclose(got["theta"], ref["theta"], rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(got["phi"], ref["phi"], rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-8)
    assert np.all(np.diff(got["objective"]) <= 0.0)
    assert np.all(np.diff(got["loss"]) <= 1e-15 * got["loss"][0])
    assert got["loss"][-1] < 1e-2 * got["loss"][0]  # it trained


@pytest.mark.parametrize("kind", ["adam", "hybrid"])
def test_adam_epochs_on_cuda_match_the_cpu(kind):
    ref = _reference(kind)
    got = run(kind, "cuda")
    for key in ("theta", "phi", "loss"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-10, atol=1e-13)


def test_cuda_trainer_takes_the_cuda_passes(monkeypatch):
    from zeroproof_nb import rational_cuda
    from zeroproof_nb.training import _compiled

    calls = []
    real = rational_cuda.rational_loss_and_grad_cuda
    monkeypatch.setattr(rational_cuda, "rational_loss_and_grad_cuda",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    trainer = make_trainer("adam", "cuda")
    assert trainer.device == "cuda"
    assert "cuda" in _compiled.unavailable(trainer)
    x, y = problem()
    rec = trainer.train_epoch(x, y)
    assert len(calls) == 3  # one fused CUDA pass per batch
    assert set(rec["bench"]) >= {"avg_step_ms", "data_time_ms", "optim_time_ms", "batches"}
    assert isinstance(trainer.model.theta, np.ndarray)


def test_lm_cuda_solver_against_its_own_normal_equations():
    """levenberg_marquardt_cuda alone: the damping state is carried between calls, and at
    its optimum the gradient of the public GPU pass vanishes and its loss is the reported one."""
    x, y = problem()
    kw = dict(basis="chebyshev_anchored", domain=(-1.0, 1.0))
    state = LMState.fresh(4)
    first = levenberg_marquardt_cuda(x, y, THETA0, PHI0, max_steps=2, state=state, **kw)
    assert first.steps == 2 and state.values[0] > 0
    res = levenberg_marquardt_cuda(x, y, first.theta, first.phi, max_steps=50, state=state, **kw)
    assert res.success and res.loss <= first.loss <= first.loss_start
    ne = rational_normal_equations_cuda(x, y, res.theta, res.phi, **kw)
    assert ne.loss == res.loss
    assert np.abs(ne.gradient).max() < 1e-10
    with pytest.raises(ValueError, match="1-D"):
        levenberg_marquardt_cuda(np.c_[x, x], y, res.theta, res.phi, **kw)
    with pytest.raises(ValueError, match="no point with a finite x and a finite target"):
        levenberg_marquardt_cuda(x, np.full_like(y, np.nan), res.theta, res.phi, **kw)
