"""Trainer / HybridTrainer from a dask pool (zeroproof_nb.training.dask_pool) on a LocalCluster
(2 worker processes, loopback): the same parameters as an in-core loop over the same draws,
independent of chunking and worker count, statistically the in-core trainer's fit, a killed
worker that does not change a retried result, and the errors before any state changes.

The in-core Trainer draws its batches from a prepared pool's alias table; the dask pool draws by
inversion of the cumulative weights (zeroproof_nb.distributed.sample_indices): the same
distribution, other indices. So the exact reference below is an in-core loop over
``ImportanceSampler.sample_indices`` of the unprepared pool (inversion, the same stream), and the
comparison with the in-core Trainer itself is statistical."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from scipy import stats

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

import cloudpickle  # noqa: E402  (a dependency of distributed)
import dask  # noqa: E402

from zeroproof_nb import distributed as zd  # noqa: E402
from zeroproof_nb.layers import TRRational  # noqa: E402
from zeroproof_nb.optim import Adam  # noqa: E402
from zeroproof_nb.training import dask_pool  # noqa: E402
from zeroproof_nb.training.curriculum import CurriculumScheduler  # noqa: E402
from zeroproof_nb.training.hybrid_trainer import (  # noqa: E402
    HybridTrainer,
    HybridTrainingConfig,
)
from zeroproof_nb.training.importance_sampler import (  # noqa: E402
    ImportanceSampler,
    ImportanceSamplerConfig,
)
from zeroproof_nb.training.integrated_sampler import create_integrated_sampler  # noqa: E402
from zeroproof_nb.training.trainer import Trainer, TrainingConfig  # noqa: E402

# _slow below runs on the workers, which cannot import this test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 12_000
B, NB = 256, 6
SCFG = dict(weight_power=2.0, max_weight=1e3)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def data(n=N, seed=0):
    """y = 1/(1.3 - x) on [-1, 1]: a pole just outside the pool, weights largest near x = 1."""
    r = np.random.default_rng(seed)
    x = r.uniform(-1.0, 1.0, n)
    return x, 1.0 / (1.3 - x), r.uniform(0.5, 1.5, n)


def config(**kw):
    base = dict(optimizer="adam", learning_rate=2e-2, batch_size=B, batches_per_epoch=NB,
                max_epochs=3, validation_fraction=0.0, verbose=False, use_adaptive_loss=False,
                early_stopping=False, seed=0)
    base.update(kw)
    return TrainingConfig(**base)


def model():
    return TRRational(1, 1, basis="monomial")


def trainer(cfg=None, seed=5, cls=Trainer, m=None):
    return cls(m if m is not None else model(), config=cfg or config(),
               sampler=ImportanceSampler(ImportanceSamplerConfig(seed=seed, **SCFG)))


def pool_loss(m, x, y, w):
    """Weighted mean squared error of the model on the whole pool (in-core forward)."""
    r = m.forward(x)["value"] - y
    return float(np.sum(w * r * r) / np.sum(w))


# --------------------------------------------------------------------------- exactness
def test_fit_equals_in_core_loop_over_the_same_draws(client):
    x, y, w = data()
    t = trainer()
    xd, yd, wd = (da.from_array(a, chunks=128 * 20) for a in (x, y, w))
    t.fit(xd, yd, sample_weight=wd)
    assert t.epoch == 3 and t.global_step == 3 * NB
    # independent in-core reference: the same seeds (the sampler's generator), in-core |Q|,
    # in-core weights and draws, the layer's fused pass and Adam, one batch after the other
    ref = model()
    ref.set_domain((float(x.min()), float(x.max())))
    assert tuple(t.model.domain) == tuple(ref.domain)
    opt = Adam(ref.parameters(), lr=2e-2)
    gen = np.random.default_rng(5)
    kw = t.pass_options()
    for e in range(3):
        seed = int(gen.integers(0, 2 ** 63, dtype=np.int64))
        assert t.epoch_records[e]["dask"] == pytest.approx(
            {"seed": seed, "rows": NB * B, "gather_ms": t.epoch_records[e]["dask"]["gather_ms"]})
        q = ref.q_values(x)
        idx = ImportanceSampler(ImportanceSamplerConfig(seed=seed, **SCFG)).sample_indices(
            q, NB * B)
        p = ImportanceSampler(ImportanceSamplerConfig(**SCFG)).compute_weights(q)
        rw = w[idx] / (N * p[idx])
        losses = []
        for b in range(NB):
            s = slice(b * B, (b + 1) * B)
            res = ref.loss_and_grad(x[idx[s]], y[idx[s]], sample_weight=rw[s], lambda_rej=1.0,
                                    **kw)
            opt.step([res.grad_theta, res.grad_phi])
            ref.project_phi()
            losses.append(res.loss)
        assert t.history["loss"][e] == pytest.approx(np.mean(losses), rel=1e-11)
    # the weights' normaliser is summed in another order on the cluster: agreement to rounding
    np.testing.assert_allclose(t.model.theta, ref.theta, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(t.model.phi, ref.phi, rtol=1e-11, atol=1e-14)
    assert not np.allclose(ref.theta, model().theta)  # it trained


def test_same_parameters_for_any_chunking_and_worker_count(client):
    x, y, w = data(seed=1)
    x2 = np.stack([x, np.random.default_rng(2).uniform(-1, 1, N)], axis=1)

    def run(chunks, scheduler=None, two_d=False):
        m = TRRational(1, 1, basis="monomial", input_dim=2) if two_d else model()
        t = trainer(m=m)
        xs = x2 if two_d else x
        xd = da.from_array(xs, chunks=(chunks, 1) if two_d else chunks)
        args = (xd, da.from_array(y, chunks=chunks))
        if scheduler is None:
            t.fit(*args, sample_weight=da.from_array(w, chunks=chunks))
        else:
            with dask.config.set(scheduler=scheduler):
                t.fit(*args, sample_weight=da.from_array(w, chunks=chunks))
        return np.concatenate([t.model.theta.ravel(), t.model.phi.ravel()]), t.history["loss"]

    want, loss = run(N)  # one chunk, 2 worker processes
    for chunks, sched in ((128 * 7, None), (1000, "synchronous"), (3001, "threads")):
        got, got_loss = run(chunks, sched)
        np.testing.assert_array_equal(got, want, err_msg=f"chunks={chunks} scheduler={sched}")
        assert got_loss == loss
    want2, _ = run(N, two_d=True)  # an (N, 2) pool, its columns chunked apart
    np.testing.assert_array_equal(run(1000, two_d=True)[0], want2)


def test_epoch_draws_chisquare_and_correction_against_numpy(client):
    x, y, w = data(seed=3)
    m = model()
    m.set_domain((-1.0, 1.0))
    m.phi[:] = [-0.7]
    xd, yd, wd = (da.from_array(a, chunks=2000) for a in (x, y, w))
    sampler = ImportanceSampler(ImportanceSamplerConfig(seed=0, **SCFG))
    ep = dask_pool.gather_batches(xd, yd, m.q_values, sampler, n_batches=40, batch_size=2000,
                                  sample_weight=wd)
    np.testing.assert_array_equal(ep.x, x[ep.indices])
    np.testing.assert_array_equal(ep.y, y[ep.indices])
    # independent NumPy weights: min(max(|Q|, 1e-6)^-2, 1e3), Q from rational_eval's q
    qa = np.abs(m.q_values(x))
    raw = np.minimum(np.maximum(qa, 1e-6) ** -2.0, 1e3)
    p = raw / raw.sum()
    np.testing.assert_allclose(ep.weight, w[ep.indices] / (N * p[ep.indices]), rtol=1e-9)
    bins = np.minimum(((x + 1.0) * 20).astype(int), 39)  # 40 bins along x
    got = np.bincount(bins[ep.indices], minlength=40)
    exp = np.bincount(bins, weights=p, minlength=40) * ep.indices.size
    assert stats.chisquare(got, exp).pvalue > 1e-3
    flat = np.bincount(bins, minlength=40) / N * ep.indices.size
    assert stats.chisquare(got, flat).pvalue < 1e-6  # the test has power
    # the corrected rows estimate the pool's weighted mean of y; the uncorrected are biased
    est = [np.mean(ep.weight[a:b] * ep.y[a:b]) for a, b in zip(ep.offsets[:-1], ep.offsets[1:])]
    se = np.std(est, ddof=1) / np.sqrt(len(est))
    assert abs(np.mean(est) - np.mean(w * y)) < 5 * se
    # importance_weighting=False: the user's weights only (upstream's unweighted batches)
    ep2 = dask_pool.gather_batches(xd, yd, m.q_values, sampler, n_batches=1, batch_size=10,
                                   sample_weight=wd, importance_weighting=False)
    np.testing.assert_array_equal(ep2.weight, w[ep2.indices])
    assert ep2.seed != ep.seed


def test_fits_like_the_in_core_trainer(client):
    """Other indices (alias vs inversion draws), the same objective: both fits bring the pool
    loss down by orders of magnitude and end within a factor 2 of each other."""
    x, y, w = data(seed=4)
    cfg = config(max_epochs=12, learning_rate=5e-2)
    t_dask, t_core = trainer(cfg, seed=11), trainer(cfg, seed=11)
    start = pool_loss(t_core.model, x, y, w)
    t_dask.fit(*(da.from_array(a, chunks=4000) for a in (x, y)),
               sample_weight=da.from_array(w, chunks=4000))
    t_core.fit(x, y, sample_weight=w)
    l_dask, l_core = pool_loss(t_dask.model, x, y, w), pool_loss(t_core.model, x, y, w)
    assert l_dask < 0.02 * start and l_core < 0.02 * start
    assert 0.5 < l_dask / l_core < 2.0
    assert not np.array_equal(t_dask.model.theta, t_core.model.theta)  # other draws


def test_hybrid_trainer_with_held_out_data(client):
    x, y, w = data(seed=6)
    xv, yv, _ = data(2000, seed=7)
    cfg = HybridTrainingConfig(optimizer="adam", learning_rate=5e-2, batch_size=B,
                               batches_per_epoch=NB, max_epochs=3, verbose=False, seed=0,
                               use_hybrid_gradient=True, early_stopping=False)
    runs = []
    for chunks in (1500, 128 * 9):
        t = trainer(cfg, cls=HybridTrainer)
        t.fit(da.from_array(x, chunks=chunks), da.from_array(y, chunks=chunks), x_val=xv,
              y_val=yv)
        runs.append(t)
    a, b = runs
    np.testing.assert_array_equal(a.model.theta, b.model.theta)
    assert a.history["val_loss"] == b.history["val_loss"] and len(a.history["val_loss"]) == 3
    assert a.held_out["n"] == 2000 and a.held_out["final"] <= a.held_out["start"]
    assert a.held_out["final"] < 0.1 * a.held_out["start"]
    rec = a.epoch_records[-1]
    assert rec["gradient_mode"] and rec["q_min"] is not None and rec["bench"]["batches"] == NB
    assert len(a.gradient_mode_history) == 3


def test_checkpoint_resumes_the_same_epochs(client, tmp_path):
    x, y, _ = data(seed=10)
    xd, yd = da.from_array(x, chunks=3000), da.from_array(y, chunks=3000)
    whole = trainer(config(max_epochs=2))
    whole.fit(xd, yd)
    first = trainer(config(max_epochs=2))
    first.fit(xd, yd, epochs=1)
    path = first.save_checkpoint(tmp_path / "ck.npz")
    resumed = trainer(config(max_epochs=2), seed=999)  # the checkpoint's generator replaces it
    resumed.load_checkpoint(path)
    resumed.fit(xd, yd)
    assert resumed.epoch == 2
    assert resumed.epoch_records[-1]["dask"]["seed"] == whole.epoch_records[-1]["dask"]["seed"]
    np.testing.assert_array_equal(resumed.model.theta, whole.model.theta)
    np.testing.assert_array_equal(resumed.model.phi, whole.model.phi)


# --------------------------------------------------------------------------- failures
def _slow(b):
    time.sleep(0.04)
    return b


def _kill_one_worker_soon(client, delay):
    pids = sorted(client.run(os.getpid).values())

    def kill():
        time.sleep(delay)
        os.kill(pids[0], signal.SIGKILL)

    th = threading.Thread(target=kill)
    th.start()
    return th


def test_killed_worker_does_not_change_the_result(client):
    """A worker process killed (SIGKILL) while gather_epoch and a trainer epoch run: the
    nanny restarts it, the lost tasks are recomputed, and the result -- or, if the call failed,
    the retried call's -- is the uninterrupted one (computed on the same values, not slowed)."""
    x, y, w = data(seed=8)
    fast = da.from_array(x, chunks=400)
    xd = fast.map_blocks(_slow, dtype=x.dtype)  # 30 chunks, 40 ms each, in every pass
    yd = da.from_array(y, chunks=400)
    m = model()
    m.set_domain((-1.0, 1.0))
    m.phi[:] = [-0.7]
    cfg = ImportanceSamplerConfig(**SCFG)
    want = zd.gather_epoch(fast, yd, m.q_values, n_batches=4, batch_size=500, config=cfg, seed=3)
    pids = set(client.run(os.getpid).values())
    killer = _kill_one_worker_soon(client, 0.5)  # the call takes ~2.5 s on 2 workers
    try:
        got = zd.gather_epoch(xd, yd, m.q_values, n_batches=4, batch_size=500, config=cfg,
                              seed=3)
    except Exception:  # lost for good: retried
        got = zd.gather_epoch(xd, yd, m.q_values, n_batches=4, batch_size=500, config=cfg,
                              seed=3)
    killer.join()
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.weight, want.weight)
    np.testing.assert_array_equal(got.x, x[want.indices])
    client.wait_for_workers(2, timeout=120)
    assert set(client.run(os.getpid).values()) != pids  # a worker was killed and replaced

    ref = trainer(config(max_epochs=1))
    ref.fit(fast, yd)
    t = trainer(config(max_epochs=1))
    killer = _kill_one_worker_soon(client, 0.7)
    try:
        t.fit(xd, yd)
    except Exception:  # the failed epoch changed nothing: fit again finishes the run
        t.fit(xd, yd)
    killer.join()
    client.wait_for_workers(2, timeout=120)
    assert t.epoch == 1 and t.global_step == NB
    np.testing.assert_array_equal(t.model.theta, ref.model.theta)
    np.testing.assert_array_equal(t.model.phi, ref.model.phi)


# --------------------------------------------------------------------------- bad input
def test_errors_before_any_state_changes(client):
    x, y, w = data(1024, seed=9)
    xd, yd, wd = (da.from_array(a, chunks=256) for a in (x, y, w))
    t = trainer()
    before = (t.model.theta.copy(), t.model.phi.copy(), t.sampler.rng.bit_generator.state,
              t.model.domain_given)

    def unchanged():
        assert np.array_equal(t.model.theta, before[0]) and np.array_equal(t.model.phi, before[1])
        assert t.sampler.rng.bit_generator.state == before[2]
        assert t.model.domain_given == before[3] and t.epoch == 0 and t.history["loss"] == []

    cases = [
        (TypeError, "y must be a dask array", lambda: t.fit(xd, y)),
        (TypeError, "x must be a dask array", lambda: t.fit(x, yd)),
        (ValueError, "same length", lambda: t.fit(xd, yd[:1000])),
        (ValueError, "row chunks", lambda: t.fit(xd, yd.rechunk(300))),
        (ValueError, "known chunk sizes", lambda: t.fit(xd[xd > 0], yd[xd > 0])),
        (ValueError, "3-dimensional|2-dimensional", lambda: t.fit(xd.reshape(4, 16, 16), yd)),
        (TypeError, "numeric", lambda: t.fit(da.from_array(np.array(["a"] * 1024)), yd)),
        (ValueError, "sample_weight", lambda: t.fit(xd, yd, sample_weight=-wd)),
        (ValueError, "sample_weight", lambda: t.fit(xd, yd, sample_weight=np.ones(5))),
        (ValueError, "row chunks", lambda: t.fit(xd, yd, sample_weight=wd.rechunk(300))),
        (TypeError, "x_val must be in memory", lambda: t.fit(xd, yd, x_val=xd, y_val=y)),
        (ValueError, "together", lambda: t.fit(xd, yd, x_val=x)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
        unchanged()
    setups = [
        (config(optimizer="lm"), "optimizer='adam'", ImportanceSampler()),
        (config(optimizer=None), "Levenberg", ImportanceSampler()),
        (config(), "ImportanceSampler", None),
        (config(), "ImportanceSampler", create_integrated_sampler("importance", seed=0)),
        (config(), "replacement=True",
         ImportanceSampler(ImportanceSamplerConfig(replacement=False))),
        (config(batches_per_epoch=None), "batches_per_epoch", ImportanceSampler()),
        (config(validation_fraction=0.1), "x_val, y_val", ImportanceSampler()),
        (config(loss="huber", huber_delta=0.5), "loss_scale", ImportanceSampler()),
    ]
    for cfg, match, sampler in setups:
        u = Trainer(model(), config=cfg, sampler=sampler)
        with pytest.raises(ValueError, match=match):
            u.fit(xd, yd)
        assert u.epoch == 0 and not u.model.domain_given
    u = Trainer(model(), config=config(), sampler=ImportanceSampler(),
                curriculum=CurriculumScheduler())
    with pytest.raises(ValueError, match="curriculum"):
        u.fit(xd, yd)
    # with held-out data given, validation_fraction > 0 is fine; robust loss with a scale too
    u = Trainer(model(), config=config(validation_fraction=0.1, loss="huber", loss_scale=0.1,
                                       max_epochs=1),
                sampler=ImportanceSampler(ImportanceSamplerConfig(seed=0)))
    u.fit(xd, yd, x_val=x[:100], y_val=y[:100])
    assert u.epoch == 1 and len(u.history["val_loss"]) == 1


def test_trainer_module_does_not_import_dask():
    import subprocess

    code = ("import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
            "import numpy as np\n"
            "from zeroproof_nb.training.trainer import Trainer\n"
            "from zeroproof_nb.training.hybrid_trainer import HybridTrainer\n"
            "from zeroproof_nb.training import dask_pool\n"
            "print('OK', dask_pool.is_dask_array(np.zeros(3)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ})
    assert "OK False" in out.stdout, out.stderr[-2000:]
    assert dask_pool.is_dask_array(da.zeros(3)) and not dask_pool.is_dask_array([1.0])
