"""TrainingConfig.device: validation, save/load with the config, resolution by the Trainer
(no GPU needed; the CUDA epochs themselves are tested in tests/cuda_sim/test_trainer_cuda.py,
run in the simulator by tests/test_cuda_backend.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zeroproof_nb import demo
from zeroproof_nb.device import CudaUnavailableError, cuda_problem, simulator_enabled
from zeroproof_nb.layers import TRRational
from zeroproof_nb.training.hybrid_trainer import HybridTrainer, HybridTrainingConfig
from zeroproof_nb.training.trainer import Trainer, TrainingConfig

no_gpu = cuda_problem() is not None


@pytest.mark.parametrize("cls", [TrainingConfig, HybridTrainingConfig])
def test_device_field_is_validated_and_defaults_to_cpu(cls):
    assert cls().device == "cpu"
    for bad in ("gpu", "CUDA", None, 0):
        with pytest.raises(ValueError, match="device must be one of"):
            cls(device=bad)
    for ok in ("cpu", "cuda", "auto"):  # validated by name only: resolved by the Trainer
        assert cls(device=ok).device == ok


@pytest.mark.parametrize("cls", [TrainingConfig, HybridTrainingConfig])
def test_device_round_trips_with_the_config(cls):
    cfg = cls(device="auto", seed=1)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["device"] == "auto"
    assert cls(**d) == cfg


def test_checkpoint_stores_the_device(tmp_path):
    layer = TRRational(1, 1, domain=(-1.0, 1.0))
    trainer = HybridTrainer(layer, config=HybridTrainingConfig(device="auto", verbose=False))
    path = trainer.save_checkpoint(tmp_path / "ck")
    meta = json.loads(str(np.load(path)["meta_json"]))
    assert meta["config"]["device"] == "auto"
    HybridTrainer(TRRational(1, 1, domain=(-1.0, 1.0)),
                  config=HybridTrainingConfig(**meta["config"])).load_checkpoint(path)


@pytest.mark.skipif(not no_gpu or simulator_enabled(), reason="a usable CUDA device is present")
def test_cuda_without_a_gpu_raises_the_device_error_and_auto_falls_back():
    layer = TRRational(2, 1, domain=(-1.0, 1.0))
    with pytest.raises(CudaUnavailableError, match="needs a usable CUDA GPU"):
        Trainer(layer, config=TrainingConfig(device="cuda"))
    trainer = Trainer(layer, config=TrainingConfig(device="auto", verbose=False))
    assert trainer.device == "cpu"
    x = np.linspace(-1, 1, 64)
    rec = trainer.train_epoch(x, (1 + x) / (2 - x))
    assert "lm" in rec  # the CPU Levenberg-Marquardt epoch


def test_cuda_needs_a_one_dimensional_rational_layer():
    with pytest.raises(ValueError, match="device='cuda' trains 1-D TRRational.*input_dim=2"):
        Trainer(TRRational(2, 1, input_dim=2), config=TrainingConfig(device="cuda"))

    class Model:
        def parameters(self):
            return [np.zeros(2)]

        def loss_and_grad(self, x, y, **kw):  # pragma: no cover - never called
            raise AssertionError

        def q_values(self, x):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ValueError, match="device='cuda' trains 1-D TRRational.*Model"):
        Trainer(Model(), config=TrainingConfig(device="cuda", optimizer="adam"))
    # "auto" takes the CPU for such models, GPU or not
    assert Trainer(TRRational(2, 1, input_dim=2),
                   config=TrainingConfig(device="auto")).device == "cpu"


def test_demo_trains_on_the_device_it_is_given(monkeypatch):
    """run_demo(device="cuda") gives the Trainers TrainingConfig(device="cuda") (the plumbing;
    the simulator is too slow for the demo's sizes)."""
    seen = []

    class Stop(Exception):
        pass

    class Recording(Trainer):
        def __init__(self, model, config=None, **kw):
            seen.append(config.device)
            raise Stop

    monkeypatch.setattr(demo, "_resolve_device", lambda device: "cuda")
    monkeypatch.setattr(demo, "Trainer", Recording)
    with pytest.raises(Stop):
        demo.run_demo(device="cuda", n_pool=60, epochs=1, out=None, verbose=False, plot=False)
    assert seen == ["cuda"]
