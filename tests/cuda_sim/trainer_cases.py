"""Trainer epochs run on the CPU and on CUDA for the parity tests of
tests/cuda_sim/test_trainer_cuda.py (the CPU runs are made by tests/test_cuda_backend.py outside
the simulator and passed in ZP_CUDA_REFERENCE, or here on a real GPU machine).

A well-conditioned problem: 96 points on [-1, 1], the target (1 + x/2)/(1 - 0.4 x) + 0.01 x^2
(its pole at 2.5 lies outside the data; not a (2, 1) rational, so the optimum keeps a residual),
a (2, 1) Chebyshev layer from a fixed start."""
from __future__ import annotations

import numpy as np

#: case -> epochs run ("hybrid": Adam under a HybridTrainer)
CASES = {"lm": 3, "adam": 2, "hybrid": 2}
THETA0 = np.array([0.9, 0.6, 0.05])
PHI0 = np.array([-0.3])


def problem() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, 96)
    return x, (1.0 + 0.5 * x) / (1.0 - 0.4 * x) + 0.01 * x * x


def make_trainer(kind: str, device: str):
    from zeroproof_nb.layers import TRRational
    from zeroproof_nb.training import Trainer, TrainingConfig
    from zeroproof_nb.training.hybrid_trainer import HybridTrainer, HybridTrainingConfig

    layer = TRRational(2, 1, domain=(-1.0, 1.0))
    layer.set_parameters([THETA0, PHI0])
    if kind == "lm":
        return Trainer(layer, config=TrainingConfig(optimizer="lm", seed=0, verbose=False,
                                                    progress_bar=False, device=device))
    cls, config = (HybridTrainer, HybridTrainingConfig) if kind == "hybrid" else \
        (Trainer, TrainingConfig)
    return cls(layer, config=config(optimizer="adam", learning_rate=1e-2, batch_size=32,
                                    batches_per_epoch=3, seed=0, verbose=False,
                                    progress_bar=False, device=device))


def run(kind: str, device: str) -> dict[str, np.ndarray]:
    """theta, phi after each epoch (rows), the epoch losses and, for LM, the objectives."""
    x, y = problem()
    trainer = make_trainer(kind, device)
    thetas, phis, losses, objectives = [], [], [], []
    for _ in range(CASES[kind]):
        rec = trainer.train_epoch(x, y)
        trainer.epoch += 1
        thetas.append(trainer.model.theta.copy())
        phis.append(trainer.model.phi.copy())
        losses.append(rec["loss"])
        objectives.append(rec["lm"]["objective"] if "lm" in rec else np.nan)
    return dict(theta=np.array(thetas), phi=np.array(phis), loss=np.array(losses),
                objective=np.array(objectives))


def cpu_reference() -> dict[str, np.ndarray]:
    """Every case on the CPU, keyed ``trainer_<kind>/<field>``."""
    out = {}
    for kind in CASES:
        out.update({f"trainer_{kind}/{k}": v for k, v in run(kind, "cpu").items()})
    return out
