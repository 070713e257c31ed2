"""The fused loss-and-gradient CUDA kernel against the CPU pass (its results computed by
tests/test_cuda_backend.py outside the simulator and passed in ZP_CUDA_REFERENCE, or computed
here on a real GPU machine)."""
from __future__ import annotations

import os

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    pytest.skip("no GPU: run through tests/test_cuda_backend.py (simulator)", allow_module_level=True)

from tests.cuda_sim.fused_cases import CASES, case_data  # noqa: E402
from zeroproof_nb.rational_cuda import rational_loss_and_grad_cuda  # noqa: E402


def _reference(name: str) -> dict:
    path = os.environ.get("ZP_CUDA_REFERENCE")
    if path:
        ref = np.load(path)
        return {k.split("/", 1)[1]: ref[k] for k in ref.files if k.startswith(name + "/")}
    from zeroproof_nb import rational_loss_and_grad

    d = case_data(name)
    r = rational_loss_and_grad(d["x"], d["target"], d["theta"], d["phi"], **d["kw"])
    return dict(loss=r.loss, data_loss=r.data_loss, grad_theta=r.grad_theta,
                grad_phi=r.grad_phi, value=r.y["value"], tag=r.y["tag"], q=r.q,
                tag_counts=r.stats["tag_counts"], n_saturating=r.stats["n_saturating"],
                n_mask_real=r.stats["n_mask_real"], q_min=r.stats["q_min"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_cuda_equals_the_cpu_pass(name):
    d = case_data(name)
    ref = _reference(name)
    res = rational_loss_and_grad_cuda(d["x"], d["target"], d["theta"], d["phi"], **d["kw"])
    np.testing.assert_array_equal(res.y["tag"], ref["tag"])
    np.testing.assert_allclose(res.y["value"], ref["value"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(res.q, ref["q"], rtol=1e-12, equal_nan=True)
    assert res.loss == pytest.approx(float(ref["loss"]), rel=1e-11)
    assert res.data_loss == pytest.approx(float(ref["data_loss"]), rel=1e-11)
    scale = max(np.abs(ref["grad_theta"]).max(), np.abs(ref["grad_phi"]).max())
    np.testing.assert_allclose(res.grad_theta, ref["grad_theta"], rtol=1e-10, atol=1e-13 * scale)
    np.testing.assert_allclose(res.grad_phi, ref["grad_phi"], rtol=1e-10, atol=1e-13 * scale)
    np.testing.assert_array_equal(res.stats["tag_counts"], ref["tag_counts"])
    assert res.stats["n_saturating"] == int(ref["n_saturating"])
    assert res.stats["n_mask_real"] == int(ref["n_mask_real"])
    assert res.stats["q_min"] == pytest.approx(float(ref["q_min"]), rel=1e-14)
    if name == "heads_shared_q_many_points":  # several tiles: the same bits again
        again = rational_loss_and_grad_cuda(d["x"], d["target"], d["theta"], d["phi"], **d["kw"])
        assert again.loss == res.loss and np.array_equal(again.grad_phi, res.grad_phi)
