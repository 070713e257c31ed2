"""device="cpu" | "cuda" | "auto" without a GPU: validation, the error that names what is
missing, the CPU fallback of "auto", and the line `zeroproof-nb info` can print."""
from __future__ import annotations

import numpy as np
import pytest

from zeroproof_nb import device as dev
from zeroproof_nb import rational_eval, rational_loss_and_grad


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine where numba-cuda is missing (whatever this one has)."""
    monkeypatch.setattr(dev, "_STATUS", [(False, "numba-cuda is not installed (pip install "
                                                 "'zeroproof_nb[cuda]')")])
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)


def test_cuda_without_a_gpu_names_what_is_missing(no_cuda):
    x = np.linspace(-1, 1, 5)
    with pytest.raises(dev.CudaUnavailableError, match="numba-cuda is not installed"):
        rational_eval(x, [1.0, 2.0], [0.1], device="cuda")
    with pytest.raises(RuntimeError, match='device="cuda" needs a usable CUDA GPU'):
        rational_loss_and_grad(x, x, [1.0, 2.0], [0.1], device="cuda")
    from zeroproof_nb.training.importance_sampler import ImportanceSampler

    s = ImportanceSampler(rng=0)
    state = s.rng.bit_generator.state
    with pytest.raises(dev.CudaUnavailableError):
        s.sample_indices(np.linspace(0.1, 1, 10), 3, device="cuda")
    assert s.rng.bit_generator.state == state and s.total_samples == 0  # nothing changed


def test_auto_falls_back_to_the_cpu(no_cuda):
    x = np.linspace(-1, 1, 7)
    np.testing.assert_array_equal(rational_eval(x, [1.0, 2.0], [0.1], device="auto"),
                                  rational_eval(x, [1.0, 2.0], [0.1]))
    r = rational_loss_and_grad(x, x, [1.0, 2.0], [0.1], device="auto")
    assert r.loss == rational_loss_and_grad(x, x, [1.0, 2.0], [0.1]).loss
    assert dev.backend_report().startswith("device='auto' -> cpu (CUDA unavailable: numba-cuda")


@pytest.mark.parametrize("bad", ["gpu", "CUDA", None, 0])
def test_bad_device_values(bad):
    with pytest.raises(ValueError, match="device must be one of"):
        rational_eval(np.zeros(3), [1.0], [0.1], device=bad)


def test_the_real_probe_gives_a_reason():
    ok, why = dev.cuda_status()
    assert isinstance(ok, bool) and why
    line = dev.backend_report()
    assert line.startswith("device='auto' -> ")
    if not ok:
        with pytest.raises(dev.CudaUnavailableError, match=why.split(" (")[0]):
            dev.cuda_module()
