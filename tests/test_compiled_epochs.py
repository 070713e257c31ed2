"""The compiled training loop (one kernel call per epoch) against the Python loop.

``TrainingConfig(compiled_epochs=False)`` runs the same trainer batch by batch through the
model's ``loss_and_grad``, the optimizer's ``step``, ``project_phi`` and
``AdaptiveLambda.update_counts``; the compiled loop must leave every piece of state with the same
bits. Sizes are small: each dtype / input layout compiles the loop once.
"""
import math

import numpy as np
import pytest

from zeroproof_nb.kernels import optim as ko
from zeroproof_nb.kernels import rational_cpu as kr
from zeroproof_nb.layers import TRRational
from zeroproof_nb.optim import SGD, Adam
from zeroproof_nb.problems import get_problem
from zeroproof_nb.rational import TRPolicy
from zeroproof_nb.training import _compiled
from zeroproof_nb.training.adaptive_loss import AdaptiveLambda, AdaptiveLossConfig
from zeroproof_nb.training.coverage import CoverageTracker
from zeroproof_nb.training.curriculum import CurriculumConfig, CurriculumScheduler
from zeroproof_nb.training.hybrid_trainer import HybridTrainer, HybridTrainingConfig
from zeroproof_nb.training.sampling_diagnostics import (
    ImportanceSampler,
    ImportanceSamplerConfig,
    create_integrated_sampler,
)
from zeroproof_nb.training.trainer import Trainer, TrainingConfig


def _pool(n=700, seed=0, dim=1):
    if dim == 1:
        return get_problem("two_poles").sample(n, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, dim))
    y = (1.0 + x[:, 0] - 0.5 * x[:, 1]) / (0.6 + 0.5 * x[:, 0] * x[:, 1])
    return x, y


def _build(compiled, case):
    model_kw = dict(case.get("model", {}))
    sampler = case.get("sampler", "importance")
    model = TRRational(**{"d_p": 3, "d_q": 2, **model_kw})
    if case.get("model_policy"):
        model.adaptive_loss_policy = AdaptiveLambda(AdaptiveLossConfig(
            target_coverage=0.8, warmup_steps=1, momentum=0.5, exponential_decay=0.9))
    cfg = TrainingConfig(**{
        "batch_size": 96, "max_epochs": 3, "learning_rate": 1e-2, "seed": 4, "verbose": False,
        "adaptive_warmup_steps": 2, "adaptive_update_frequency": 1, "target_coverage": 0.9,
        "compiled_epochs": compiled, "optimizer": "adam", "importance_weighting": False,
        "validation_fraction": 0.0, "early_stopping": False, **case.get("config", {})})
    optimizer = None
    if "optimizer" in case:
        cls, kw = case["optimizer"]
        optimizer = cls(model.parameters(), **kw)
    if sampler == "importance":
        sampler = ImportanceSampler(ImportanceSamplerConfig(seed=2))
    elif sampler == "integrated":
        sampler = create_integrated_sampler("hybrid", seed=2)
    curriculum = None
    if case.get("curriculum"):
        curriculum = CurriculumScheduler(CurriculumConfig(warmup_epochs=0, stage_duration=2))
    trainer = Trainer(model, optimizer, cfg, sampler, curriculum=curriculum)
    assert (_compiled.unavailable(trainer) is None) == compiled
    return trainer


CASES = {
    "adam+adaptive": {},
    "sgd-nesterov-decay": {"optimizer": (SGD, {"lr": 1e-2, "momentum": 0.8, "nesterov": True,
                                                "weight_decay": 1e-3})},
    "adam-decay": {"optimizer": (Adam, {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 1e-3})},
    "fixed-lambda": {"config": {"use_adaptive_loss": False, "initial_lambda": 0.3}},
    "lambda-momentum-decay": {"config": {"adaptive_momentum": 0.7,
                                         "adaptive_exponential_decay": 0.95,
                                         "adaptive_lambda_max": 3.0}},
    "projection+regulariser": {"model": {"l1_projection": 0.4, "alpha_phi": 1e-2}},
    "policy+hybrid+huber": {"model": {"policy": TRPolicy(tau_q_on=1e-3, tau_q_off=2e-3)},
                            "config": {"gradient_mode": "hybrid", "delta": 0.05,
                                       "loss": "huber", "huber_delta": 0.5}},
    "saturating+eps": {"config": {"gradient_mode": "saturating", "q_epsilon": 1e-3}},
    "uniform-ragged": {"sampler": None},  # 700 points, batches of 96: a short last batch
    "curriculum": {"sampler": None, "curriculum": True},
    "integrated": {"sampler": "integrated"},
    "model-policy": {"model_policy": True},
    "float32": {"model": {"dtype": "float32"}},
    "multi-output": {"model": {"n_outputs": 2, "shared_q": False}},
    "2-d input": {"model": {"d_p": 2, "d_q": 2, "input_dim": 2}, "dim": 2},
}


def _state(trainer):
    alp = trainer.adaptive_lambda
    return {
        "params": [p.copy() for p in trainer.model.parameters()],
        "optimizer": trainer.optimizer.state_dict(),
        "lambda": None if alp is None else alp.state_dict(),
        "source": trainer.source.state_dict(),
        "history": trainer.history,
        "global_step": trainer.global_step,
        "records": [{k: v for k, v in r.items() if k != "bench"} for r in trainer.epoch_records],
    }


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _assert_same(u, v)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_epochs_equal_the_python_loop(name):
    case = CASES[name]
    x, y = _pool(dim=case.get("dim", 1))
    if case.get("model", {}).get("n_outputs") == 2:
        y = np.stack([y, -0.5 * y], axis=1)
    states = []
    for compiled in (True, False):
        trainer = _build(compiled, case)
        theta0 = trainer.model.theta.copy()
        trainer.fit(x, y)
        assert not np.array_equal(trainer.model.theta, theta0)  # it trained
        if trainer.adaptive_lambda is not None:  # and λ moved
            assert len(set(trainer.adaptive_lambda.lambda_history)) > 1
        states.append(_state(trainer))
    _assert_same(states[0], states[1])
    assert states[0]["global_step"] == 3 * math.ceil(700 / 96)


@pytest.mark.parametrize("sampler", ["importance", None])
def test_epochs_split_into_several_kernel_calls_give_the_same_bits(monkeypatch, caplog, sampler):
    """Long epochs run in calls of at most _COMPILED_ROWS rows (a memory bound on the index
    array); here 2 batches per call, the last call shorter."""
    import zeroproof_nb.training.trainer as trainer_module

    x, y = _pool()
    case = {"sampler": sampler, "config": {"verbose": True, "progress_bar": False,
                                           "log_interval": 3}}
    states, logged = [], []
    for compiled in (True, False):
        trainer = _build(compiled, case)
        if compiled:
            monkeypatch.setattr(trainer_module, "_COMPILED_ROWS", 2 * 96 + 5)
            calls = []

            def counted(*args, _run=_compiled.run_epoch, _calls=calls):
                _calls.append(args[-1].shape[0] - 1)  # batches in this call (offsets - 1)
                return _run(*args)

            monkeypatch.setattr(_compiled, "run_epoch", counted)
        caplog.clear()
        with caplog.at_level("INFO", logger="zeroproof_nb.training.trainer"):
            trainer.fit(x, y)
        logged.append([r.getMessage() for r in caplog.records if "batch" in r.getMessage()])
        states.append(_state(trainer))
    _assert_same(states[0], states[1])
    assert logged[0] == logged[1] and len(logged[0]) == 3 * 3
    assert calls == [2, 2, 2, 2] * 3  # 8 batches an epoch, 2 per call


def test_compiled_epochs_move_lambda_and_log(caplog):
    x, y = _pool()
    trainer = _build(True, {"config": {"verbose": True, "progress_bar": False,
                                       "log_interval": 3}})
    with caplog.at_level("INFO", logger="zeroproof_nb.training.trainer"):
        trainer.fit(x, y, epochs=1)
    lines = [r.getMessage() for r in caplog.records if "batch" in r.getMessage()]
    assert [int(s.split("batch ")[1].split("/")[0]) for s in lines] == [0, 3, 6]
    alp = trainer.adaptive_lambda
    assert alp.step_count == 8 and len(alp.coverage_history) == 8
    assert len(alp.lambda_history) == 1 + 6  # initial λ + one per step after the warm-up
    assert alp.lambda_rej != trainer.config.initial_lambda


def test_non_finite_parameters_stop_both_loops_at_the_same_batch():
    x, y = _pool()
    outcomes = []
    for compiled in (True, False):
        trainer = _build(compiled, {"optimizer": (SGD, {"lr": 1e308})})
        with pytest.raises(ValueError, match=r"lr=1e\+308: this step would make the parameters") as err:
            trainer.fit(x, y)
        # the overflowing step was undone: parameters and buffers stay finite
        assert all(np.isfinite(p).all() for p in trainer.model.parameters())
        assert all(np.isfinite(b).all() for b in trainer.optimizer.state_dict().values()
                   if isinstance(b, np.ndarray))
        outcomes.append((str(err.value), trainer.global_step, trainer.optimizer.step_count,
                         trainer.adaptive_lambda.state_dict(),
                         [p.copy() for p in trainer.model.parameters()]))
    _assert_same(outcomes[0], outcomes[1])


def test_resumed_compiled_run_equals_uninterrupted_run(tmp_path):
    x, y = _pool()
    straight = _build(True, {"config": {"max_epochs": 4}})
    straight.fit(x, y)
    first = _build(True, {"config": {"max_epochs": 4}})
    first.fit(x, y, epochs=2)
    path = first.save_checkpoint(tmp_path / "ckpt.npz")
    resumed = _build(True, {"config": {"max_epochs": 4}})
    resumed.load_checkpoint(path)
    resumed.fit(x, y)
    _assert_same(_state(resumed), _state(straight))


def test_which_trainers_run_compiled():
    model = TRRational(2, 1, basis="monomial")
    cfg = TrainingConfig(verbose=False, optimizer="adam")
    assert _compiled.unavailable(Trainer(model, config=cfg)) is None
    assert "use_safe_lr" in _compiled.unavailable(Trainer(model, config=TrainingConfig(
        verbose=False, optimizer="adam", use_safe_lr=True)))
    assert "batch_size" in _compiled.unavailable(Trainer(model, config=TrainingConfig(
        verbose=False, optimizer="adam", batch_size=kr.CHUNK + 1)))
    # the default optimizer of a TRRational is Levenberg–Marquardt: no batches at all
    assert "optimizer" in _compiled.unavailable(Trainer(model, config=TrainingConfig(verbose=False)))
    other = Adam([model.theta.copy(), model.phi.copy()])
    assert "optimizer" in _compiled.unavailable(Trainer(model, other, cfg))
    hybrid = HybridTrainer(TRRational(2, 1, basis="monomial"), config=HybridTrainingConfig(verbose=False))
    assert "HybridTrainer" in _compiled.unavailable(hybrid)


# ---------------------------------------------------------------------------------------------
# the shared pieces against independent references


def _reference_lambda(counts_seq, cfg, lam0):
    """The λ rule written out in plain Python (upstream's rule with our velocity reset)."""
    lam, vel, real, total = lam0, 0.0, 0, 0
    lams = [lam]
    for step, c in enumerate(counts_seq, start=1):
        real += int(c[0])
        total += int(sum(c))
        batch = c[0] / sum(c)
        if step <= cfg.warmup_steps or (step - cfg.warmup_steps) % cfg.update_frequency:
            continue
        gap = cfg.target_coverage - (real / total if step <= 2 else batch)
        if abs(gap) < cfg.dead_band:
            lams.append(lam)
            continue
        rate = cfg.learning_rate * (cfg.exponential_decay ** (step - cfg.warmup_steps)
                                    if cfg.exponential_decay else 1.0)
        s = rate * gap
        if cfg.momentum > 0:
            vel = (0.0 if vel * s < 0 else vel) * cfg.momentum + s
            s = vel
        s *= 2.0 if gap < 0 else 0.5
        lam = min(max(lam + s, cfg.lambda_min, cfg.lambda_rej_min),
                  cfg.lambda_max if cfg.lambda_max is not None else math.inf)
        lams.append(lam)
    return lams


@pytest.mark.parametrize("kw", [
    {},
    {"momentum": 0.9, "warmup_steps": 3, "update_frequency": 2},
    {"exponential_decay": 0.9, "lambda_max": 1.5, "learning_rate": 0.5, "dead_band": 0.0},
])
def test_lambda_rule_matches_a_plain_python_reference(kw):
    rng = np.random.default_rng(1)
    cfg = AdaptiveLossConfig(target_coverage=0.9, **kw)
    seq = [(int(r), *rng.integers(0, 5, 3)) for r in rng.integers(60, 100, 40)]
    alp = AdaptiveLambda(cfg)
    for c in seq:
        alp.update_counts(c)
    np.testing.assert_allclose(alp.lambda_history, _reference_lambda(seq, cfg, 1.0),
                               rtol=1e-12, atol=0)


def test_adam_bias_corrections_are_python_pow():
    for t in (1, 2, 7, 1000, 123457):
        assert ko.adam_bias_corrections(0.9, 0.999, t) == (1.0 - 0.9**t, 1.0 - 0.999**t)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_l1_projection_and_regulariser_against_numpy(dtype):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 20)).astype(dtype)
    rows[1] *= 1e-3  # inside the ball: unchanged
    ref = rows.astype(np.float64)
    norms = np.abs(ref).sum(axis=1)
    factor = np.where(norms > 2.0, 2.0 / norms, 1.0)
    got = rows.copy()
    smallest = kr.l1_project_rows(got, 2.0)
    assert smallest == pytest.approx(factor.min(), rel=1e-12)
    np.testing.assert_array_equal(got[1], rows[1])
    np.testing.assert_allclose(got, ref * factor[:, None], rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_allclose(np.abs(got.astype(np.float64)).sum(axis=1)[[0, 2]], 2.0,
                               rtol=20 * np.finfo(dtype).eps)
    assert kr.sum_squares(rows.reshape(-1)) == pytest.approx(float(ref.ravel() @ ref.ravel()),
                                                              rel=1e-13)


@pytest.mark.parametrize("window", [None, 3])
def test_coverage_tracker_update_counts_many_equals_one_by_one(window):
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 50, (7, 4))
    one, many = CoverageTracker(0.9, window), CoverageTracker(0.9, window)
    for c in counts:
        one.update_counts(c)
    many.update_counts_many(counts)
    assert one.get_statistics() == many.get_statistics()
