import numpy as np
import pytest

from zeroproof_nb.fitting import linearized_fit
from zeroproof_nb.layers import TRRational
from zeroproof_nb.problems import get_problem
from zeroproof_nb.rational import TRPolicy
from zeroproof_nb.training.curriculum import CurriculumConfig, CurriculumScheduler
from zeroproof_nb.training.hybrid_trainer import HybridTrainer, HybridTrainingConfig
from zeroproof_nb.training.sampling_diagnostics import (
    ImportanceSampler,
    ImportanceSamplerConfig,
    create_integrated_sampler,
)
from zeroproof_nb.training.trainer import Trainer, TrainingConfig


def _smooth_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    y = (1.0 + 2.0 * x) / (1.0 + 0.5 * x)  # pole at -2, outside the domain
    return x, y


def test_trainer_actually_trains():
    """Upstream's trainers never moved the parameters; ours reduce the loss and fit the data."""
    x, y = _smooth_data()
    model = TRRational(1, 1, basis="monomial")
    cfg = TrainingConfig(batch_size=128, max_epochs=40, learning_rate=0.05, seed=0, verbose=False,
                         optimizer="adam", validation_fraction=0.0, early_stopping=False)
    trainer = Trainer(model, config=cfg)
    first = trainer.evaluate(x, y)["data_loss"]
    trainer.fit(x, y)
    last = trainer.evaluate(x, y)["data_loss"]
    assert last < 1e-3 * first
    # the exact rational is (1 + 2x)/(1 + 0.5x): θ = (1, 2), φ = (0.5,)
    np.testing.assert_allclose(model.theta, [1.0, 2.0], atol=2e-2)
    np.testing.assert_allclose(model.phi, [0.5], atol=2e-2)
    summary = trainer.get_training_summary()
    assert summary["epochs_trained"] == 40
    assert summary["global_steps"] == 40 * 16
    assert set(summary) >= {"epochs_trained", "global_steps", "final_metrics", "bench_history"}


def test_bench_history_is_measured():
    x, y = _smooth_data(600)
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=1))
    trainer = Trainer(TRRational(1, 1, basis="monomial"), config=TrainingConfig(
        batch_size=64, max_epochs=3, seed=0, verbose=False, optimizer="adam",
        validation_fraction=0.0), sampler=sampler)
    trainer.fit(x, y)
    bench = trainer.bench_history
    assert [b["epoch"] for b in bench] == [0, 1, 2]
    for b in bench:
        assert set(b) == {"epoch", "avg_step_ms", "data_time_ms", "optim_time_ms", "batches"}
        assert b["avg_step_ms"] > 0 and b["optim_time_ms"] > 0 and b["data_time_ms"] > 0
        assert b["batches"] == 10
        assert b["avg_step_ms"] == pytest.approx(b["data_time_ms"] + b["optim_time_ms"])


def _resumable_trainer(model, seed=3):
    cfg = HybridTrainingConfig(batch_size=256, max_epochs=6, learning_rate=1e-3, seed=seed,
                               use_hybrid_gradient=True, hybrid_warmup_epochs=1,
                               hybrid_transition_epochs=3, adaptive_warmup_steps=2,
                               adaptive_update_frequency=1, verbose=False, loss="huber",
                               use_pole_head=True, optimizer="adam", early_stopping=False)
    sampler = create_integrated_sampler("hybrid", seed=seed, grid_size=50)
    curriculum = CurriculumScheduler(CurriculumConfig(n_stages=3, stage_duration=2, warmup_epochs=1),
                                     pole_locations=None)
    return HybridTrainer(model, config=cfg, sampler=sampler, curriculum=curriculum)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    pr = get_problem("two_poles")
    x, y = pr.sample(3000, seed=0)
    theta0, phi0 = linearized_fit(x[:500], y[:500] * 1.01, 3, 2)

    def fresh():
        m = TRRational(3, 2, basis="monomial")
        m.set_parameters([theta0.copy(), phi0.copy()])
        return m

    full_model = fresh()
    full = _resumable_trainer(full_model)
    full.fit(x, y)

    half_model = fresh()
    half = _resumable_trainer(half_model)
    half.fit(x, y, epochs=3)
    path = half.save_checkpoint(tmp_path / "ckpt.npz")

    resumed_model = TRRational(3, 2, basis="monomial")
    resumed = _resumable_trainer(resumed_model, seed=99)  # state comes from the checkpoint
    resumed.load_checkpoint(path)
    resumed.fit(x, y)

    assert resumed.epoch == full.epoch == 6
    np.testing.assert_array_equal(resumed_model.theta, full_model.theta)
    np.testing.assert_array_equal(resumed_model.phi, full_model.phi)
    assert resumed.history["lambda_rej"] == full.history["lambda_rej"]
    assert resumed.history["loss"] == full.history["loss"]
    np.testing.assert_array_equal(resumed.pole_head.weights, full.pole_head.weights)


def test_hybrid_trainer_epoch_records():
    pr = get_problem("simple_pole")
    x, y = pr.sample(2000, seed=0)
    d_p, d_q = pr.degrees()
    model = TRRational(d_p, d_q, basis="monomial")
    model.set_parameters(list(linearized_fit(x, y, d_p, d_q)))
    cfg = HybridTrainingConfig(batch_size=500, max_epochs=5, learning_rate=1e-4, seed=0,
                               use_hybrid_gradient=True, hybrid_warmup_epochs=2,
                               hybrid_transition_epochs=2, hybrid_delta_init=0.5,
                               hybrid_delta_final=0.05, hybrid_adaptive_delta=False,
                               sat_shrink_on_ratio=False, verbose=False, optimizer="adam",
                               early_stopping=False)
    trainer = HybridTrainer(model, config=cfg)
    trainer.fit(x, y)
    recs = trainer.epoch_records
    assert [r["delta"] for r in recs[:2]] == [None, None]
    assert [r["saturating_ratio"] for r in recs[:2]] == [0.0, 0.0]
    q = np.abs(1.0 + model.phi[0] * x)  # Q of a (1, 1) model, nearly unchanged by lr 1e-4
    assert recs[2]["delta"] == pytest.approx(0.5)
    # δ = 0.5: the saturating share is about the share of points with |Q| <= 0.5
    assert recs[2]["saturating_ratio"] == pytest.approx(np.mean(q <= 0.5), abs=0.03)
    assert recs[-1]["delta"] == pytest.approx(0.05)
    for r in recs:
        assert r["q_p10"] <= r["q_p50"] <= r["q_p90"]
        assert r["flip_rate"] == 0.0
    summary = trainer.get_training_summary()
    assert summary["warmup_epochs"] == 2
    assert summary["transition_complete"] is True
    assert len(trainer.monitor.history["epoch"]) == 5


def test_coverage_follows_target_with_tag_policy():
    """λ_rej really acts: with a policy that reports |Q| < 0.2 as non-REAL, a higher target
    ends with higher coverage, each within ±0.02 of its target."""
    pr = get_problem("simple_pole")
    x, y = pr.sample(4000, seed=0)
    d_p, d_q = (d + 1 for d in pr.degrees())
    reached, lambdas = [], []
    for target in (0.93, 0.96):
        model = TRRational(d_p, d_q, policy=TRPolicy(tau_q_on=0.2, tau_q_off=0.4), basis="monomial")
        model.set_parameters(list(linearized_fit(x, y, d_p, d_q)))
        cfg = TrainingConfig(batch_size=500, max_epochs=50, learning_rate=1e-2, seed=0,
                             target_coverage=target, lambda_learning_rate=1.0,
                             adaptive_momentum=0.0, adaptive_warmup_steps=0,
                             adaptive_update_frequency=1, verbose=False, optimizer="adam",
                             early_stopping=False, restore_best=False)
        trainer = Trainer(model, config=cfg)
        trainer.fit(x, y)
        coverage = trainer.evaluate(x, y)["coverage"]
        assert abs(coverage - target) <= 0.02
        reached.append(coverage)
        lambdas.append(trainer.lambda_rej)
    assert reached[1] > reached[0]
    assert lambdas[1] > lambdas[0]


def test_early_stopping_and_callbacks():
    x, y = _smooth_data(300)
    cfg = TrainingConfig(batch_size=100, max_epochs=50, learning_rate=1e-12, seed=0, verbose=False,
                         early_stopping=True, patience=3, min_delta=1.0, optimizer="adam")
    trainer = Trainer(TRRational(1, 1, basis="monomial"), config=cfg)
    trainer.fit(x, y)
    # the first epoch sets best; three more without an improvement of min_delta stop it
    assert trainer.epoch == 4 and trainer.stopped_early

    seen = []
    cfg2 = TrainingConfig(batch_size=100, max_epochs=50, seed=0, verbose=False, optimizer="adam")
    t2 = Trainer(TRRational(1, 1, basis="monomial"), config=cfg2,
                 callbacks=[lambda tr, rec: seen.append(rec["epoch"]) or rec["epoch"] >= 2])
    t2.fit(x, y)
    assert seen == [0, 1, 2] and t2.epoch == 3


def test_trainer_bad_input():
    x, y = _smooth_data(50)
    trainer = Trainer(TRRational(1, 1, basis="monomial"), config=TrainingConfig(verbose=False))
    with pytest.raises(ValueError, match="same length"):
        trainer.fit(x, y[:-1])
    with pytest.raises(ValueError, match="must not be empty"):
        trainer.fit(x[:0], y[:0])
    with pytest.raises(TypeError, match="config"):
        Trainer(TRRational(1, 1, basis="monomial"), config={"batch_size": 3})
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainingConfig(optimizer="lbfgs")
    with pytest.raises(TypeError, match="sampler"):
        Trainer(TRRational(1, 1, basis="monomial"), sampler=object())
    with pytest.raises(ValueError, match="model must provide"):
        Trainer(object())


@pytest.mark.parametrize("optimizer", ["lm", "adam"])
def test_training_is_identical_for_one_and_two_threads(optimizer):
    import numba

    # batches of several kernel chunks, so that the gradient sums really are split across threads
    pr = get_problem("two_poles")
    x, y = pr.sample(40000, seed=0)
    theta0, phi0 = linearized_fit(x[:500], y[:500] * 1.01, 3, 2)
    results = []
    saved = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            model = TRRational(3, 2, basis="monomial")
            model.set_parameters([theta0.copy(), phi0.copy()])
            cfg = TrainingConfig(batch_size=40000, max_epochs=3, learning_rate=1e-3, seed=0,
                                 loss="huber", verbose=False, optimizer=optimizer)
            Trainer(model, config=cfg, sampler=ImportanceSampler(ImportanceSamplerConfig(seed=0))
                    ).fit(x, y)
            results.append((model.theta.copy(), model.phi.copy()))
    finally:
        numba.set_num_threads(saved)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


class _DelegatingModel:
    """The Trainer's model protocol without being a TRRational: batches are copied rows."""

    def __init__(self, layer):
        self.layer = layer
        self.alpha_phi = layer.alpha_phi

    def parameters(self):
        return self.layer.parameters()

    def loss_and_grad(self, x, y, **kwargs):
        assert "indices" not in kwargs
        return self.layer.loss_and_grad(x, y, **kwargs)

    def q_values(self, x):
        return self.layer.q_values(x)


def test_protocol_model_gets_copied_batches_with_the_same_result():
    """A TRRational gathers the batch inside the kernel; any other model gets x[idx], y[idx].
    Both must train to the same bits."""
    x, y = _smooth_data(600)
    runs = []
    for wrap in (False, True):
        layer = TRRational(2, 1, basis="monomial")
        cfg = TrainingConfig(batch_size=64, max_epochs=3, learning_rate=0.01, seed=5,
                             verbose=False, optimizer="adam")
        model = _DelegatingModel(layer) if wrap else layer
        Trainer(model, config=cfg, sampler=ImportanceSampler(ImportanceSamplerConfig(seed=2))).fit(x, y)
        runs.append((layer.theta.copy(), layer.phi.copy()))
    assert not np.allclose(runs[0][0], TRRational(2, 1, basis="monomial").theta)  # it did train
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_curriculum_weights_reach_an_integrated_sampler():
    """The curriculum's weights multiply the importance weights of an IntegratedSampler's
    draws: points the curriculum weights 0 are never drawn."""
    x, y = _smooth_data(800)
    model = TRRational(1, 1, basis="monomial")
    # during warm-up "hard" means |Q| <= easy_distance; with easy_ratio 0 the other points get
    # curriculum weight 0
    curriculum = CurriculumScheduler(CurriculumConfig(
        n_stages=1, warmup_epochs=5, easy_distance=1.0, initial_easy_ratio=0.0,
        final_easy_ratio=0.0, use_importance_weights=False))
    q = model.q_values(x)
    hard = q <= 1.0
    assert 0 < hard.sum() < x.size
    sampler = create_integrated_sampler("importance", seed=0)
    cfg = TrainingConfig(batch_size=64, max_epochs=1, seed=0, verbose=False, optimizer="adam",
                         validation_fraction=0.0)
    Trainer(model, config=cfg, sampler=sampler, curriculum=curriculum).fit(x, y)
    counts = sampler.importance_sampler.sample_counts
    assert counts.sum() == 13 * 64
    assert counts[~hard].sum() == 0


def test_curriculum_needs_importance_draws():
    with pytest.raises(ValueError, match="curriculum"):
        Trainer(TRRational(1, 1, basis="monomial"), config=TrainingConfig(verbose=False),
                sampler=create_integrated_sampler("active", seed=0),
                curriculum=CurriculumScheduler(CurriculumConfig()))


def test_lm_epoch_record_from_the_forward_pass(run_fresh):
    """A Levenberg–Marquardt epoch of the plain Trainer takes its record from the solver's
    objective and a forward pass (no fused loss-and-gradient pass is compiled: about 5 s of a
    cold first run); its loss is the data loss of rational_loss_and_grad at the epoch's
    parameters, its coverage the REAL fraction of rational_eval. A HybridTrainer (per-batch
    hooks) still gets the fused pass. A fresh process, so that other tests' kernels do not
    count."""
    run_fresh("""
        import numpy as np
        import zeroproof_nb as zp
        from zeroproof_nb.core import count_tags
        from zeroproof_nb.kernels import rational_cpu as kc
        from zeroproof_nb.layers import TRRational
        from zeroproof_nb.training.hybrid_trainer import HybridTrainer, HybridTrainingConfig
        from zeroproof_nb.training.trainer import Trainer, TrainingConfig
        rng = np.random.default_rng(3)
        x = rng.uniform(-1, 1, 600)
        y = 1.0 / (x - 0.3) + 0.2 * x + 1e-3 * rng.standard_normal(600)
        layer = TRRational(1, 1).fit_linearized(x, y)
        tr = Trainer(layer, config=TrainingConfig(max_epochs=3, seed=0, verbose=False,
                                                  progress_bar=False))
        xv = rng.uniform(-1, 1, 100)
        tr.fit(x, y, x_val=xv, y_val=1.0 / (xv - 0.3) + 0.2 * xv)  # trains on all of x
        assert not kc._GRAD_KERNELS and not kc._FORWARD_BLOCKS, (kc._GRAD_KERNELS, kc._FORWARD_BLOCKS)
        rec = tr.epoch_records[-1]
        ref = zp.rational_loss_and_grad(x, y, layer.theta, layer.phi, basis=layer.kernel_basis,
                                        domain=layer.domain, lambda_rej=0.0)
        # 1e-8: after the double-double refinement the solver's objective takes the compensated
        # residuals (near the pole they differ from the float64 ones by ~1e-10 relative)
        assert abs(rec["loss"] - ref.data_loss) <= 1e-8 * ref.data_loss, (rec["loss"], ref.data_loss)
        counts = count_tags(zp.rational_eval(x, layer.theta, layer.phi, basis=layer.kernel_basis,
                                             domain=layer.domain))
        assert rec["coverage"] == counts[0] / counts.sum()
        hy = HybridTrainer(TRRational(1, 1).fit_linearized(x, y), config=HybridTrainingConfig(
            max_epochs=1, seed=0, verbose=False, progress_bar=False))
        hy.fit(x, y)
        assert kc._GRAD_KERNELS
        print("ok")
    """)
