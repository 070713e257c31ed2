"""Adversarial state and files (issue #12, items 5–13): every file the package writes is strict
JSON or an npz without object arrays; every ``load_*`` is atomic (state unchanged after a
failed load) and refuses non-finite values; a resumed HybridTrainer's diagnostics equal the
uninterrupted run's; λ overflow and optimizer overflow stop both training paths alike; a pool
with NaN x trips ``nan_policy='raise'``."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from zeroproof_nb.layers import TRRational
from zeroproof_nb.optim import SGD, Adam
from zeroproof_nb.problems import get_problem
from zeroproof_nb.training.adaptive_loss import AdaptiveLambda, AdaptiveLossConfig
from zeroproof_nb.training.coverage import CoverageTracker
from zeroproof_nb.training.curriculum import CurriculumConfig, CurriculumScheduler
from zeroproof_nb.training.diagnostics import DiagnosticConfig, DiagnosticMonitor
from zeroproof_nb.training.hybrid_trainer import HybridTrainer, HybridTrainingConfig
from zeroproof_nb.training.sampling_diagnostics import (
    ActiveSampler,
    ActiveSamplerConfig,
    ImportanceSampler,
    ImportanceSamplerConfig,
    create_integrated_sampler,
)
from zeroproof_nb.training.trainer import Trainer, TrainingConfig

ALLOWED = (ValueError, TypeError)


def _pool(n=600, seed=0):
    return get_problem("two_poles").sample(n, seed=seed)


def _strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def _same(a, b, where="state"):
    """Structural equality with NaN == NaN and arrays compared bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _same(u, v, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype.names:
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype, where
        for name in a.dtype.names:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{where}.{name}")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, np.asarray(b), err_msg=where)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ------------------------------------------------------------------------- trainers
def _trainer(hybrid=False, seed=0, epochs=4):
    model = TRRational(3, 2, basis="monomial")
    if hybrid:
        cfg = HybridTrainingConfig(batch_size=128, max_epochs=epochs, learning_rate=1e-3,
                                   seed=seed, use_hybrid_gradient=True, hybrid_warmup_epochs=1,
                                   hybrid_transition_epochs=2, adaptive_warmup_steps=1,
                                   adaptive_update_frequency=1, verbose=False, optimizer="adam")
        return HybridTrainer(model, config=cfg,
                             sampler=create_integrated_sampler("hybrid", seed=seed, grid_size=20),
                             monitor=DiagnosticMonitor(DiagnosticConfig(auto_export=False,
                                                                        export_frequency=1)))
    cfg = TrainingConfig(batch_size=128, max_epochs=epochs, learning_rate=1e-3, seed=seed,
                         verbose=False, adaptive_warmup_steps=1, adaptive_update_frequency=1,
                         adaptive_momentum=0.5, target_coverage=0.9, optimizer="adam")
    return Trainer(model, config=cfg, sampler=ImportanceSampler(ImportanceSamplerConfig(seed=1)),
                   curriculum=CurriculumScheduler(CurriculumConfig(warmup_epochs=0,
                                                                   stage_duration=1)))


def _trainer_state(t):
    state = {
        "params": [p.copy() for p in t.model.parameters()],
        "optimizer": t.optimizer.state_dict(),
        "lambda": t.adaptive_lambda.state_dict(),
        "counters": (t.epoch, t.global_step, t.best_loss, t.patience_counter, t.stopped_early),
        "history": copy.deepcopy(t.history), "records": copy.deepcopy(t.epoch_records),
        "rng": copy.deepcopy(t.rng.bit_generator.state),
        "source": copy.deepcopy(t.source.state_dict()),
        "extra": copy.deepcopy(t._extra_state()),
    }
    return state


def _checkpoint_doc(path):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, json.loads(str(arrays["meta_json"]))


def _write(path, arrays, doc):
    arrays = dict(arrays, meta_json=np.array(json.dumps(doc, allow_nan=False)))
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory):
    x, y = _pool()
    t = _trainer()
    t.fit(x, y, epochs=2)
    t.history["loss"].append(float("inf"))  # non-finite records must still be strict JSON
    t.epoch_records.append({"loss": float("nan"), "note": -float("inf")})
    path = t.save_checkpoint(tmp_path_factory.mktemp("ck") / "plain.npz")
    return path, t


def test_checkpoint_is_strict_json_without_object_arrays(plain_ckpt):
    path, t = plain_ckpt
    arrays, _ = _checkpoint_doc(path)  # allow_pickle=False reads every array
    assert all(not a.dtype.hasobject for a in arrays.values())
    doc = _strict_json(str(arrays["meta_json"]))
    assert doc["history"]["loss"][-1] == {"__float__": "inf"}
    fresh = _trainer()
    fresh.load_checkpoint(path)
    _same(_trainer_state(t), _trainer_state(fresh))


def _mutations():
    """(name, function(arrays, doc) that damages a checkpoint)."""
    def set_(keypath, value):
        def f(arrays, doc):
            d = doc
            for k in keypath[:-1]:
                d = d[k]
            d[keypath[-1]] = value
        return f

    def drop(key):
        def f(arrays, doc):
            del doc[key]
        return f

    def param(fill):
        def f(arrays, doc):
            k = doc["params"][0]["__ndarray__"]
            arrays[k] = np.full_like(arrays[k], fill)
        return f

    def adam_buffer(fill, name="exp_avg_sq.0"):
        def f(arrays, doc):
            k = doc["optimizer"][name]["__ndarray__"]
            arrays[k] = np.full_like(arrays[k], fill)
        return f

    nan = {"__float__": "nan"}
    return [
        ("missing key", drop("optimizer")),
        ("missing rng", drop("rng")),
        ("bad epoch", set_(["epoch"], -1)),
        ("float epoch", set_(["epoch"], 2.5)),
        ("optimizer kind", set_(["optimizer", "kind"], "SGD")),
        ("rng name 'seed'", set_(["rng", "bit_generator"], "seed")),
        ("rng garbage", set_(["rng", "state"], {"state": "x"})),
        ("NaN parameter", param(np.nan)),
        ("infinite parameter", param(np.inf)),
        ("NaN Adam buffer", adam_buffer(np.nan, "exp_avg.0")),
        ("negative Adam buffer", adam_buffer(-1.0)),
        ("NaN lr", set_(["optimizer", "lr"], nan)),
        ("NaN lambda", set_(["adaptive_lambda", "lambda_rej"], nan)),
        ("infinite velocity", set_(["adaptive_lambda", "velocity"], {"__float__": "inf"})),
        ("lambda below its floor", set_(["adaptive_lambda", "lambda_rej"], -5.0)),
        ("negative coverage count", set_(["adaptive_lambda", "coverage_tracker", "cumulative",
                                          "real_samples"], -1)),
        ("sampler rng 'seed'", set_(["source", "sampler", "rng_state", "bit_generator"], "seed")),
        ("sampler counts negative", set_(["source", "sampler", "total_samples"], -3)),
        ("curriculum stage", set_(["source", "curriculum", "current_stage"], 99)),
        ("curriculum NaN coverage", set_(["source", "curriculum", "coverage_history"], [nan])),
        ("missing source part", set_(["source"], {})),
        ("params count", set_(["params"], [])),
        ("dangling array", set_(["params", 0], {"__ndarray__": "nope"})),
        ("foreign extra", set_(["extra"], {"context": 1})),
        ("history type", set_(["history"], [1, 2])),
    ]


@pytest.mark.parametrize("name,damage", _mutations(), ids=[m[0] for m in _mutations()])
def test_load_checkpoint_is_atomic(plain_ckpt, tmp_path, name, damage):
    path, _ = plain_ckpt
    arrays, doc = _checkpoint_doc(path)
    damage(arrays, doc)
    bad = _write(tmp_path / "bad.npz", arrays, doc)
    x, y = _pool()
    t = _trainer()
    t.fit(x, y, epochs=1)
    before = _trainer_state(t)
    global_rng = copy.deepcopy(np.random.get_state(legacy=False))
    with pytest.raises(ALLOWED):
        t.load_checkpoint(bad)
    _same(before, _trainer_state(t))
    _same(global_rng, np.random.get_state(legacy=False))  # 'seed' never reseeded NumPy


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", None, "npy"])
def test_damaged_checkpoint_files(plain_ckpt, tmp_path, content):
    path, _ = plain_ckpt
    bad = tmp_path / "bad.npz"
    if content is None:  # truncated
        bad.write_bytes(Path(path).read_bytes()[:200])
    elif content == "npy":
        bad = tmp_path / "bad.npy"
        np.save(bad, np.arange(3))
    else:
        bad.write_bytes(content)
    t = _trainer()
    before = _trainer_state(t)
    with pytest.raises(ValueError, match="path"):
        t.load_checkpoint(bad)
    _same(before, _trainer_state(t))
    with pytest.raises(ValueError, match="path"):
        TRRational.load(bad)


def test_hybrid_checkpoint_resumes_the_diagnostics(tmp_path):
    x, y = _pool()
    straight = _trainer(hybrid=True)
    straight.fit(x, y)
    first = _trainer(hybrid=True)
    first.fit(x, y, epochs=2)
    path = first.save_checkpoint(tmp_path / "h.npz")
    arrays, _ = _checkpoint_doc(path)
    _strict_json(str(arrays["meta_json"]))
    resumed = _trainer(hybrid=True)
    resumed.load_checkpoint(path)
    resumed.fit(x, y)
    _same(straight.monitor.state_dict(), resumed.monitor.state_dict())
    _same(straight.history, resumed.history)
    # and its diagnostics export strict JSON, NaN metrics included
    resumed.monitor.update(9, {"loss_train": float("nan"), "lambda_rej": float("inf")},
                           p_values=np.ones(3), q_values=np.array([np.nan, 1.0, 2.0]))
    written = resumed.monitor.export_diagnostics(9, tmp_path / "diag")
    sampler_files = resumed.sampler.export_all(9, tmp_path / "diag")
    for p in {**written, **sampler_files}.values():
        if p.suffix == ".json":
            _strict_json(p.read_text())
        else:
            with np.load(p, allow_pickle=False) as f:
                assert all(not f[k].dtype.hasobject for k in f.files)


def test_demo_writes_strict_files(tmp_path):
    from zeroproof_nb.demo import run_demo

    out = tmp_path / "demo"
    run_demo(epochs=1, n_pool=1500, batch_size=512, out=out, verbose=False, plot=False)
    files = list(out.rglob("*"))
    assert any(p.suffix == ".json" for p in files)
    for p in files:
        if p.suffix == ".json":
            _strict_json(p.read_text())
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                assert all(not f[k].dtype.hasobject for k in f.files)


# ------------------------------------------------------------------ component loads
def _component_cases():
    rng = np.random.default_rng(0)
    q = rng.normal(size=200)

    def importance():
        s = ImportanceSampler(ImportanceSamplerConfig(seed=0))
        s.sample_indices(q, 50)
        return s

    def active():
        a = ActiveSampler(ActiveSamplerConfig(initial_grid_size=10), rng=0)
        a.refine(lambda p: np.abs(p[:, 0] - 0.5))
        return a

    def integrated():
        s = create_integrated_sampler("hybrid", seed=0, grid_size=10)
        s.sample_batch(np.linspace(-1, 1, 200), q, 32)
        return s

    def monitor():
        m = DiagnosticMonitor(DiagnosticConfig(auto_export=False, export_frequency=1))
        m.update(0, {"loss_train": 1.0}, p_values=q, q_values=q, tag_counts=[5, 1, 0, 0])
        m.update_batch(0, q_min=0.1, loss=1.0, tag_counts=[3, 0, 0, 1])
        return m

    def tracker():
        c = CoverageTracker(window_size=3)
        c.update_counts([3, 1, 0, 0])
        return c

    def curriculum():
        c = CurriculumScheduler(CurriculumConfig(warmup_epochs=0, stage_duration=1))
        c.update(1, 0.9, 0.1)
        return c

    def lam():
        a = AdaptiveLambda(AdaptiveLossConfig(momentum=0.5))
        a.update_counts([3, 1, 0, 0])
        a.update_counts([1, 3, 0, 0])
        return a

    def adam():
        opt = Adam([np.ones(3), np.ones(2)], lr=0.1)
        opt.step([np.ones(3), np.ones(2)])
        return opt

    def sgd():
        opt = SGD([np.ones(3)], lr=0.1, momentum=0.5)
        opt.step([np.ones(3)])
        return opt

    def layer():
        m = TRRational(2, 1, dtype=np.float32, basis="monomial")
        m.set_parameters([[1.0, 2.0, 3.0], [0.5]])
        return m

    nan = float("nan")
    return {
        "importance": (importance, [
            ("rng_state", {"bit_generator": "seed"}), ("rng_state", {"bit_generator": "PCG64",
                                                                     "state": 3}),
            ("sample_counts", np.array([-1, 2])), ("total_samples", 1.5),
            ("config", {"max_weight": -1.0}), ("q_abs_min", float("inf"))]),
        "active": (active, [
            ("input_dim", 64), ("rng_state", {"bit_generator": "seed"}),
            ("cells", np.zeros(3)), ("refinement_history", [{"n_refined": -1}]),
            ("config", {"grid_bounds": (0.0, 1e-308)})]),
        "integrated": (integrated, [
            ("strategy", "nope"), ("last_refined_epoch", -2), ("rng_state", None),
            ("importance", {"config": {}})]),
        "monitor": (monitor, [
            ("main", {"epoch": []}), ("pq_snapshots", [{"epoch": 0}]),
            ("config", {"export_frequency": 0}), ("batch_metrics", None)]),
        "tracker": (tracker, [
            ("cumulative", {"total_samples": 5, "real_samples": 9, "pinf_samples": 0,
                            "ninf_samples": 0, "phi_samples": 0}),
            ("window_coverage", nan), ("history", [{"total_samples": 1.5}])]),
        "curriculum": (curriculum, [
            ("current_stage", 50), ("loss_history", [nan]), ("config", {"n_stages": 0}),
            ("pole_locations", [nan])]),
        "lambda": (lam, [
            ("lambda_rej", nan), ("velocity", float("inf")), ("step_count", -1),
            ("lambda_history", [1.0, nan]), ("coverage_tracker", {})]),
        "adam": (adam, [
            ("exp_avg_sq.0", -np.ones(3)), ("exp_avg.1", np.full(2, np.nan)),
            ("step_count", 2.5), ("eps", 0.0), ("kind", "SGD"), ("lr", nan)]),
        "sgd": (sgd, [("momentum_buffer.0", np.full(3, np.inf)), ("momentum", 1.0),
                      ("lr", -1.0)]),
        "layer": (layer, [("theta", np.full(3, 1e300)), ("phi", np.array([nan])),
                          ("d_p", 3.7), ("theta", np.zeros(5))]),
    }


def _component_state(obj):
    if isinstance(obj, TRRational):
        return obj.state_dict()
    return copy.deepcopy(obj.state_dict())


_CASES = [(name, i) for name, (_, muts) in _component_cases().items() for i in range(len(muts))]


@pytest.mark.parametrize("name,i", _CASES, ids=[f"{n}-{i}" for n, i in _CASES])
def test_component_loads_are_atomic(name, i):
    make, muts = _component_cases()[name]
    key, value = muts[i]
    obj = make()
    good = obj.state_dict()
    bad = copy.deepcopy(good)
    if isinstance(bad.get(key), dict) and isinstance(value, dict) and key == "config":
        bad[key].update(value)
    else:
        bad[key] = value
    before = _component_state(obj)
    with pytest.raises(ALLOWED):
        obj.load_state_dict(bad)
    _same(before, _component_state(obj))
    obj.load_state_dict(good)  # the intact state still loads
    _same(before, _component_state(obj))


def test_trrational_load_validates_before_building(tmp_path):
    m = TRRational(2, 1, basis="monomial")
    path = tmp_path / "m.npz"
    m.save(path)
    with np.load(path) as f:
        state = {k: f[k] for k in f.files}
    for key, value, match in (("d_p", np.array(3.7), "d_p"), ("d_p", np.array(10**9), "d_p"),
                              ("theta", np.full(3, np.nan), "theta"),
                              ("basis", np.array(7), "basis")):
        np.savez(tmp_path / "bad.npz", **dict(state, **{key: value}))
        with pytest.raises(ALLOWED, match=match):
            TRRational.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", **{k: v for k, v in state.items() if k != "d_q"})
    with pytest.raises(ValueError, match="d_q"):
        TRRational.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        TRRational.load(tmp_path / "missing.npz")


def test_float32_set_parameters_overflow_is_refused():
    m = TRRational(2, 1, dtype=np.float32, basis="monomial")
    before = [p.copy() for p in m.parameters()]
    with pytest.raises(ValueError, match="theta"):
        m.set_parameters([[1.0, 1e39, 0.0], [0.5]])
    _same(before, m.parameters())


# ---------------------------------------------------- both training paths, overflow
@pytest.mark.parametrize("what", ["lambda", "optimizer"])
def test_overflow_stops_both_paths_alike(what):
    x, y = _pool(400)
    outcomes = []
    for compiled in (True, False):
        cfg = TrainingConfig(batch_size=100, max_epochs=2, seed=0, verbose=False,
                             compiled_epochs=compiled, adaptive_warmup_steps=0,
                             adaptive_update_frequency=1, adaptive_momentum=0.5,
                             target_coverage=0.0,
                             lambda_learning_rate=1e308 if what == "lambda" else 0.01)
        model = TRRational(3, 2, basis="monomial")
        opt = SGD(model.parameters(), lr=1e308 if what == "optimizer" else 1e-3)
        t = Trainer(model, opt, cfg)
        with pytest.raises(ValueError, match="learning_rate" if what == "lambda" else "lr="):
            # λ: coverage ~1 above target 0, so each step is 2·1e308·(0 - coverage): overflow
            t.fit(x, y)
        assert all(np.isfinite(p).all() for p in model.parameters())
        assert math.isfinite(t.adaptive_lambda.lambda_rej)
        assert math.isfinite(t.adaptive_lambda.velocity)
        outcomes.append((t.global_step, opt.step_count, t.adaptive_lambda.state_dict(),
                         [p.copy() for p in model.parameters()]))
    _same(outcomes[0], outcomes[1])


def test_nan_x_in_the_pool_trips_nan_policy():
    x, y = _pool(400)
    x = x.copy()
    x[::2] = np.nan
    model = TRRational(3, 2, basis="monomial")
    q = model.q_values(x)
    assert np.isnan(q[::2]).all()  # not 0.0, the largest importance weight
    t = Trainer(model, config=TrainingConfig(batch_size=64, max_epochs=1, verbose=False,
                                             optimizer="adam"),
                sampler=ImportanceSampler(ImportanceSamplerConfig(seed=0)))
    with pytest.raises(ValueError, match="NaN"):
        t.fit(x, y)
    omit = ImportanceSampler(ImportanceSamplerConfig(seed=0, nan_policy="omit"))
    idx = omit.sample_indices(q, 5000)
    assert not np.isnan(x[idx]).any()
