"""One Trainer epoch at batch 4096: how much of it is spent outside the numba kernels.

``loop="compiled"`` is what a Trainer of a TRRational with SGD/Adam runs: the epoch's batches
in one kernel call (:mod:`zeroproof_nb.training._compiled`); ``loop="python"``
(``TrainingConfig(compiled_epochs=False)``) runs the same batches one by one through the
model's protocol, for comparison. Every numba dispatcher reachable from the Python layer (kernel modules' attributes and the
kernels the rational factories return) is wrapped in a timer after a warm-up epoch; the
Python layer's share of an epoch is 1 − (time inside kernels)/(epoch time), and the median over
the rounds is reported (the time inside a wrapped dispatcher includes numba's argument
dispatch).

``test_trainer_epoch_vs_numpy``: the compiled epoch beside the same epoch written in NumPy, the
ratio in ``extra_info`` (gated).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import zeroproof_nb.kernels.rational_cpu as kr
from bench.references import numpy_adam_epoch  # noqa: I001 (the repository's bench package)
from zeroproof_nb.layers import TRRational
from zeroproof_nb.problems import get_problem
from zeroproof_nb.training.sampling_diagnostics import ImportanceSampler, ImportanceSamplerConfig
from zeroproof_nb.training.trainer import Trainer, TrainingConfig

N_POOL = 1 << 16
BATCH = 4096


class _KernelClock:
    def __init__(self):
        self.seconds = 0.0
        self.calls = 0
        self.by_name: dict[str, float] = {}

    def reset(self):
        self.seconds, self.calls, self.by_name = 0.0, 0, {}

    def wrap(self, fn, name):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.seconds += dt
                self.calls += 1
                self.by_name[name] = self.by_name.get(name, 0.0) + dt
        return timed


def _instrument(monkeypatch, clock):
    import importlib
    import pkgutil

    import zeroproof_nb.kernels as kpkg

    for info in pkgutil.iter_modules(kpkg.__path__):
        mod = importlib.import_module(f"zeroproof_nb.kernels.{info.name}")
        for name, obj in list(vars(mod).items()):
            if isinstance(obj, CPUDispatcher):
                monkeypatch.setattr(mod, name, clock.wrap(obj, f"{info.name}.{name}"))
    for factory in ("grad_kernel", "eval_kernel"):
        orig = getattr(kr, factory)
        monkeypatch.setattr(kr, factory, lambda *a, _o=orig, _n=factory: clock.wrap(_o(*a), _n))


@pytest.mark.parametrize("loop", ["compiled", "python"])
@pytest.mark.parametrize("degrees", [(3, 2), (10, 10)])
def test_trainer_epoch_python_share(benchmark, monkeypatch, degrees, loop):
    pr = get_problem("two_poles")
    x, y = pr.sample(N_POOL, seed=0)
    d_p, d_q = degrees
    model = TRRational(d_p, d_q).fit_linearized(x[:4000], y[:4000])
    # the first-order path with unweighted importance batches (the compiled epoch takes no
    # per-row weights); the default optimizer of a TRRational, LM, has no batches at all
    cfg = TrainingConfig(batch_size=BATCH, max_epochs=10**6, learning_rate=1e-6, seed=0,
                         verbose=False, compiled_epochs=loop == "compiled", optimizer="adam",
                         importance_weighting=False, validation_fraction=0.0,
                         early_stopping=False, restore_best=False)
    trainer = Trainer(model, config=cfg, sampler=ImportanceSampler(ImportanceSamplerConfig(seed=0)))
    trainer.fit(x, y, epochs=1)  # compile everything before instrumenting
    clock = _KernelClock()
    _instrument(monkeypatch, clock)
    trainer.fit(x, y, epochs=1)  # warm the instrumented path
    clock.reset()
    epochs_before = trainer.epoch

    shares: list[float] = []
    kernel_per_epoch: list[float] = []

    def one_epoch():
        k0 = clock.seconds
        t0 = time.perf_counter()
        trainer.fit(x, y, epochs=1)
        wall = time.perf_counter() - t0
        kernel_per_epoch.append(clock.seconds - k0)
        shares.append(1.0 - kernel_per_epoch[-1] / wall)

    benchmark.pedantic(one_epoch, rounds=15, iterations=1, warmup_rounds=0)
    n_epochs = trainer.epoch - epochs_before
    shares.sort()
    kernel_per_epoch.sort()
    benchmark.extra_info.update(
        degrees=list(degrees), loop=loop, batches_per_epoch=N_POOL // BATCH, batch_size=BATCH,
        kernel_s_per_epoch_median=kernel_per_epoch[len(kernel_per_epoch) // 2],
        kernel_calls_per_epoch=clock.calls / n_epochs,
        python_share_median=shares[len(shares) // 2],
        python_share_min=shares[0], python_share_max=shares[-1],
        kernel_s_by_name={k: v / n_epochs for k, v in clock.by_name.items()},
    )
    assert n_epochs == (15 if benchmark.enabled else 1)  # --benchmark-disable: one call


@pytest.mark.parametrize("degrees", [(3, 2), (10, 10)], ids=["deg3-2", "deg10-10"])
def test_trainer_epoch_vs_numpy(benchmark, ratio_gate, degrees):
    """A compiled Adam epoch (16 importance batches of 4096 from a pool of 65536) beside the
    same epoch in NumPy (pool |Q|, weights, ``Generator.choice``, fused pass, Adam)."""
    pr = get_problem("two_poles")
    x, y = pr.sample(N_POOL, seed=0)
    d_p, d_q = degrees
    model = TRRational(d_p, d_q).fit_linearized(x[:4000], y[:4000])
    cfg = TrainingConfig(batch_size=BATCH, max_epochs=10**6, learning_rate=1e-6, seed=0,
                         verbose=False, optimizer="adam", importance_weighting=False,
                         validation_fraction=0.0, early_stopping=False, restore_best=False)
    trainer = Trainer(model, config=cfg, sampler=ImportanceSampler(ImportanceSamplerConfig(seed=0)))
    theta0 = np.asarray(model.theta, float).ravel()
    phi0 = np.asarray(model.phi, float).ravel()
    th, ph = numpy_adam_epoch(x, y, theta0, phi0, (N_POOL // BATCH, BATCH))
    assert np.all(np.isfinite(th)) and np.all(np.isfinite(ph))
    benchmark.group = "trainer-epoch"
    benchmark.extra_info.update(degrees=list(degrees), batches_per_epoch=N_POOL // BATCH,
                                batch_size=BATCH, pool=N_POOL)
    ratio_gate(lambda: trainer.fit(x, y, epochs=1),
               {"numpy": lambda: numpy_adam_epoch(x, y, theta0, phi0, (N_POOL // BATCH, BATCH))})
