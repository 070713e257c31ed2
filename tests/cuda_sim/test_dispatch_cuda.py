"""device="cuda" / "auto" through the public functions, in the simulator: rational_eval,
rational_loss_and_grad, TRRational.forward and ImportanceSampler.sample_indices run the CUDA
kernels, device-resident input stays on the device, and the sampler gives the CPU's indices
for the same generator state. (The CPU fused / forward kernels cannot run here,
NUMBA_DISABLE_JIT=1: references are closed forms and the CUDA functions called directly.)"""
from __future__ import annotations

import os

import numpy as np
import pytest
from numpy.polynomial import polynomial as Pn

cuda = pytest.importorskip("numba.cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    pytest.skip("no GPU: run through tests/test_cuda_backend.py (simulator)", allow_module_level=True)

from zeroproof_nb import rational_eval, rational_loss_and_grad  # noqa: E402
from zeroproof_nb.device import resolve_device  # noqa: E402
from zeroproof_nb.layers.rational import TRRational  # noqa: E402
from zeroproof_nb.rational_cuda import DeviceRational, rational_loss_and_grad_cuda  # noqa: E402
from zeroproof_nb.training.importance_sampler import (  # noqa: E402
    ImportanceSampler,
    ImportanceSamplerConfig,
)

TH, PH = np.array([0.5, 1.0, -0.3]), np.array([-1.4, 0.2])


def test_rational_eval_on_cuda_host_and_device_input():
    x = np.linspace(-1, 1, 301)
    ref = Pn.polyval(x, TH) / Pn.polyval(x, np.r_[1.0, PH])
    y = rational_eval(x, TH, PH, device="cuda")
    assert y.dtype.names == ("value", "tag")
    np.testing.assert_allclose(y["value"], ref, rtol=1e-12)
    for device in ("cuda", "auto"):
        dev = rational_eval(cuda.to_device(x), TH, PH, device=device, return_q=True)
        assert isinstance(dev, DeviceRational)
        host, q = dev.to_host()
        np.testing.assert_array_equal(host, y)
        np.testing.assert_allclose(q, Pn.polyval(x, np.r_[1.0, PH]), rtol=1e-12)
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    # the simulator is not picked for host input; a real GPU is
    assert resolve_device("auto", x) == ("cpu" if sim else "cuda")
    with pytest.raises(ValueError, match="out="):
        rational_eval(x, TH, PH, device="cuda", out=np.empty_like(y))
    with pytest.raises(ValueError, match="device must be one of"):
        rational_eval(x, TH, PH, device="gpu")


def test_loss_and_grad_on_cuda_with_device_x():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 200)
    t = rng.normal(size=200)
    kw = dict(mode="hybrid", delta=0.1, lambda_rej=0.2)
    a = rational_loss_and_grad(x, t, TH, PH, device="cuda", **kw)
    b = rational_loss_and_grad_cuda(x, t, TH, PH, **kw)
    c = rational_loss_and_grad(cuda.to_device(x), t, TH, PH, device="auto", **kw)
    for r in (b, c):
        assert r.loss == a.loss
        np.testing.assert_array_equal(r.grad_theta, a.grad_theta)
        np.testing.assert_array_equal(r.grad_phi, a.grad_phi)
        np.testing.assert_array_equal(r.y, a.y)
    with pytest.raises(ValueError, match="indices"):
        rational_loss_and_grad(x, t, TH, PH, device="cuda", indices=[0, 1])


def test_layer_forward_on_cuda():
    layer = TRRational(2, 2, basis="monomial")
    layer.theta[:] = TH
    layer.phi[:] = PH
    x = np.linspace(-0.9, 0.9, 50)
    ref = Pn.polyval(x, TH) / Pn.polyval(x, np.r_[1.0, layer.phi])
    y = layer.forward(x, device="cuda")
    np.testing.assert_allclose(y["value"], ref, rtol=1e-12)
    dev = layer(cuda.to_device(x), device="cuda")
    assert isinstance(dev, DeviceRational)
    np.testing.assert_array_equal(dev.to_host(), y)


@pytest.mark.parametrize("replacement", [True, False])
def test_sampler_draws_on_cuda_equal_the_cpu(replacement):
    q = np.random.default_rng(1).uniform(-1, 1, 400)
    cfg = ImportanceSamplerConfig(replacement=replacement)
    cpu = ImportanceSampler(cfg, rng=7)
    gpu = ImportanceSampler(cfg, rng=7)
    for _ in range(2):
        a = cpu.sample_indices(q, 64)
        b = gpu.sample_indices(q, 64, device="cuda")
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(cpu.sample_counts, gpu.sample_counts)
    with pytest.raises(ValueError, match="device"):
        gpu.sample_indices(q, 4, device="tpu")


def test_prepared_pool_draws_on_cuda_equal_the_cpu():
    q = np.random.default_rng(2).uniform(-1, 1, 300)
    cpu = ImportanceSampler(rng=11)
    gpu = ImportanceSampler(rng=11)
    pool_c, pool_g = cpu.prepare(q), gpu.prepare(q)
    for _ in range(2):
        np.testing.assert_array_equal(cpu.sample_indices(pool_c, 50),
                                      gpu.sample_indices(pool_g, 50, device="cuda"))
    np.testing.assert_array_equal(cpu.sample_counts, gpu.sample_counts)
    assert cpu.get_statistics() == gpu.get_statistics()
