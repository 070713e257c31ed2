"""Trainer: epochs of sampled batches through the fused loss-and-gradient kernel.

Unlike upstream's ``TRTrainer`` (whose batch loss was a detached constant, so the data never moved
the parameters), every step here applies the exact gradient of the composite loss
(data loss over REAL outputs + the λ_rej rejection term + the φ regulariser), then updates λ_rej
from the batch's tags.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, Callable, Iterable

import numpy as np

from .._validation import (
    check_config,
    check_int,
)
from ..core import TRTag, count_tags
from ..layers import TRRational
from ..least_squares import (
    REFINE_STEPS,
    robust_threshold,
)
from ..optim import SGD, Adam, LevenbergMarquardt, LRSchedule
from ..rational import rational_eval
from . import _compiled
from .adaptive_loss import AdaptiveLambda
from .batch_source import BatchSource
from . import dask_pool
from .checkpoints import CheckpointMixin
from .curriculum import CurriculumScheduler
from .fit_data import FitDataMixin
from .reporting import ROBUST_K, ReportingMixin
from .training_config import TrainingConfig

__all__ = ["TrainingConfig", "Trainer", "BatchSource"]

logger = logging.getLogger(__name__)

_REAL = int(TRTag.REAL)
#: most pool rows one compiled call trains on (bounds the epoch's index array: 8 MiB)
_COMPILED_ROWS = 1 << 20


class Trainer(FitDataMixin, ReportingMixin, CheckpointMixin):
    """Train a :class:`~zeroproof_nb.layers.TRRational` (or any model with the same protocol).

    Parameters
    ----------
    model : object
        Needs ``parameters()`` (list of arrays updated in place), ``loss_and_grad(x, target,
        **kernel_kwargs)`` returning a ``LossAndGrad`` whose gradients include the regulariser,
        ``q_values(x)`` (|Q| per point), ``project_phi()``, ``state_dict()`` /
        ``load_state_dict()``.
    optimizer : LevenbergMarquardt, SGD or Adam, optional
        Default: ``config.optimizer`` over ``model.parameters()``; when that is None,
        Levenberg–Marquardt for a :class:`TRRational` (Adam with ``loss="mae"`` or another
        model), SGD/Adam with ``config.learning_rate``.
    config : TrainingConfig, optional
    sampler : ImportanceSampler or IntegratedSampler, optional
        How batches are drawn from the pool (default: uniform, each point once per epoch).
    curriculum : CurriculumScheduler, optional
        Per-sample weights by |Q| band, combined with the sampler's weights; advanced each epoch
        from coverage and loss.
    adaptive_lambda : AdaptiveLambda, optional
        The λ_rej policy. Default: ``model.adaptive_loss_policy`` when set, else one built from
        the config when ``use_adaptive_loss``; without it λ_rej stays ``initial_lambda``.
    callbacks : sequence of callables ``f(trainer, record) -> bool | None``
        Called after every epoch with the epoch record; returning True stops training.

    Notes
    -----
    The objective is the loss on the training pool (with the user's ``sample_weight``): with
    Levenberg–Marquardt each epoch takes ``lm_steps_per_epoch`` accepted steps on the whole pool
    (the sampler and curriculum then do not act); with SGD/Adam, batches drawn by a sampler or
    curriculum are re-weighted by 1/(N·p_i) (``importance_weighting``). :meth:`fit` holds out
    ``validation_fraction`` of the pool (or takes ``x_val, y_val``), tracks the held-out loss and
    restores the best epoch at the end (``restore_best``), the start included.

    With a :class:`~zeroproof_nb.layers.TRRational`, :class:`SGD` or :class:`Adam` over its
    parameters, no λ policy or an :class:`AdaptiveLambda`, no safe learning rate and batches of
    at most 16384 rows and unweighted batches (uniform, or ``importance_weighting=False``), an
    epoch's batches run in one kernel call (``config.compiled_epochs``; :mod:`._compiled` says
    why not otherwise); the result is the same bits as the Python loop.

    Per-epoch bench records ``{epoch, avg_step_ms, data_time_ms, optim_time_ms, batches}``:
    ``data_time_ms`` is the mean time per batch spent preparing data (the epoch's |Q| over the
    pool and sampler preparation, amortised over its batches, plus drawing the batch's indices);
    ``optim_time_ms`` is the fused pass (which gathers the batch's rows from the pool for a
    :class:`TRRational`; other models get copied rows) + optimizer + λ update; ``avg_step_ms``
    their sum.
    """

    def __init__(self, model: Any, optimizer: Any = None, config: TrainingConfig | None = None,
                 sampler: Any = None, *, curriculum: CurriculumScheduler | None = None,
                 adaptive_lambda: AdaptiveLambda | None = None,
                 callbacks: Iterable[Callable[..., Any]] = ()) -> None:
        for attr in ("parameters", "loss_and_grad", "q_values"):
            if not callable(getattr(model, attr, None)):
                raise ValueError(f"model must provide {attr}(), got {type(model).__name__}")
        config = check_config(config, TrainingConfig)
        if optimizer is not None and not callable(getattr(optimizer, "step", None)):
            raise TypeError("optimizer must be an optimizer object (SGD, Adam, "
                            "LevenbergMarquardt) or None, got "
                            f"{type(optimizer).__name__}; to choose one by name use "
                            "TrainingConfig(optimizer='adam' | 'sgd' | 'lm')")
        self.model = model
        self.config = config
        from .device_dispatch import trainer_device

        #: the backend of the passes, "cpu" or "cuda" (config.device resolved)
        self.device = trainer_device(config.device, model)
        if optimizer is None:
            kind = config.optimizer
            if kind is None:
                kind = "lm" if isinstance(model, TRRational) and config.loss != "mae" else "adam"
            if kind == "lm":
                optimizer = LevenbergMarquardt(model.parameters(),
                                               steps_per_epoch=config.lm_steps_per_epoch)
            else:
                cls = Adam if kind == "adam" else SGD
                optimizer = cls(model.parameters(), lr=config.learning_rate)
        if isinstance(optimizer, LevenbergMarquardt):
            if not isinstance(model, TRRational):
                raise TypeError("the Levenberg–Marquardt optimizer needs a TRRational model, "
                                f"got {type(model).__name__}")
            if config.loss == "mae":
                raise ValueError("loss='mae' has no Gauss-Newton matrix: use SGD or Adam")
        self.optimizer = optimizer
        self.lr_schedule = None if config.lr_schedule is None or isinstance(
            optimizer, LevenbergMarquardt) else LRSchedule(
                config.lr_schedule, config.learning_rate, step_size=config.lr_step_size,
                gamma=config.lr_gamma, min_lr=config.lr_min, total_epochs=max(1, config.max_epochs),
                patience=config.lr_patience, threshold=config.min_delta)
        model_policy = getattr(model, "adaptive_loss_policy", None)
        if adaptive_lambda is not None and model_policy is not None and adaptive_lambda is not model_policy:
            raise ValueError("adaptive_lambda conflicts with model.adaptive_loss_policy; give one")
        # a layer holding the policy reads λ from it and reports the tags itself
        self._model_updates_lambda = model_policy is not None
        # TRRational gathers a batch's rows inside the fused kernel (loss_and_grad(indices=))
        self._model_takes_indices = isinstance(model, TRRational)
        if adaptive_lambda is None:
            adaptive_lambda = model_policy
        self._own_lambda = None
        if adaptive_lambda is None and config.use_adaptive_loss:
            adaptive_lambda = self._own_lambda = AdaptiveLambda(config.adaptive_loss_config())
        self.adaptive_lambda = adaptive_lambda
        self.rng = np.random.default_rng(config.seed)
        self.source = BatchSource(sampler, curriculum, self.rng)
        self.callbacks = list(callbacks)
        self.epoch = 0
        self.global_step = 0
        self.best_loss = math.inf
        self.patience_counter = 0
        self.history: dict[str, list[Any]] = {"loss": [], "coverage": [], "lambda_rej": []}
        self.bench_history: list[dict[str, Any]] = []
        self.epoch_records: list[dict[str, Any]] = []
        self.stopped_early = False
        #: seed of the held-out split (drawn once when config.seed is None; checkpointed)
        self.split_seed = int(np.random.SeedSequence(config.seed).generate_state(1)[0]) \
            if config.seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
        self.loss_sigma: float | None = config.loss_scale
        self.held_out: dict[str, Any] = {}
        self._best_params: list[np.ndarray] | None = None
        self._start_poles: list[float] | None = None
        #: the start's parameters, whose poles are found when first asked for (not per fit)
        self._start_params: list[np.ndarray] | None = None
        self._pool_weight: np.ndarray | None = None

    # ------------------------------------------------------------------ properties
    @property
    def sampler(self) -> Any:
        return self.source.sampler

    @property
    def curriculum(self) -> CurriculumScheduler | None:
        return self.source.curriculum

    @property
    def lambda_rej(self) -> float:
        """λ_rej used for the next batch."""
        if self.adaptive_lambda is not None:
            return float(self.adaptive_lambda.get_effective_penalty())
        return float(self.config.initial_lambda)

    @property
    def training_history(self) -> dict[str, list[Any]]:
        """Alias of :attr:`history` (upstream's name)."""
        return self.history

    # ------------------------------------------------------------------ hooks for HybridTrainer
    def _kernel_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "mode": cfg.gradient_mode,
            "delta": cfg.delta if cfg.gradient_mode == "hybrid" else None,
            "saturation_bound": cfg.saturation_bound,
        }

    def pass_options(self) -> dict[str, Any]:
        """Keyword options of the model's fused pass, except λ_rej and the batch."""
        cfg = self.config
        kw = self._kernel_kwargs()
        kw["loss"] = cfg.loss
        kw["huber_delta"] = self._loss_threshold()
        if cfg.rejection_threshold is not None:
            kw["rejection_threshold"] = cfg.rejection_threshold
        elif getattr(getattr(self.model, "policy", None), "tau_q_on", 0.0) > 0.0:
            # with a tag policy, penalise exactly the outputs it reports as non-REAL
            kw["rejection_threshold"] = float(self.model.policy.tau_q_on)
        if cfg.q_epsilon:
            kw["q_epsilon"] = cfg.q_epsilon
        return kw

    def _loss_threshold(self) -> float:
        """Threshold c of the robust loss: ``huber_delta`` if given, else k·σ (1.345 Huber,
        4.685 Tukey) with σ = ``loss_scale`` or the MAD of the start's residuals."""
        cfg = self.config
        if cfg.loss == "huber" and cfg.huber_delta is not None:
            return float(cfg.huber_delta)
        sigma = self.loss_sigma if self.loss_sigma is not None else 1.0
        if cfg.loss in ("huber", "tukey"):
            return robust_threshold(cfg.loss, sigma)
        return 1.0

    @classmethod
    def customises_batch_step(cls) -> bool:
        """Whether this class overrides the per-batch hooks (``_loss_and_grad``,
        ``_after_batch``); then its epochs cannot run compiled."""
        return cls._loss_and_grad is not Trainer._loss_and_grad \
            or cls._after_batch is not Trainer._after_batch

    def _loss_and_grad(self, x: np.ndarray, y: np.ndarray, idx: np.ndarray | None = None,
                       weight: np.ndarray | None = None) -> Any:
        """The model's fused pass with the current rule, λ_rej and loss settings, on the rows
        ``idx`` of (x, y) (all rows when None), with the pool's row weights ``weight``."""
        kw = self.pass_options()
        if idx is not None:
            if self._model_takes_indices:
                kw["indices"] = idx  # the kernel gathers the rows: no batch copies
                if weight is not None:
                    kw["sample_weight"] = weight
            else:
                x, y = x[idx], y[idx]
                if weight is not None:
                    kw["sample_weight"] = weight[idx]
        elif weight is not None:
            kw["sample_weight"] = weight
        if not self._model_updates_lambda:
            kw["lambda_rej"] = self.lambda_rej
        if self.device == "cuda":
            kw["device"] = "cuda"
        return self.model.loss_and_grad(x, y, **kw)

    def _start_epoch(self, epoch: int) -> None:
        """Called before the epoch's data preparation."""

    def _after_batch(self, result: Any, x: np.ndarray, idx: np.ndarray, acc: dict[str, Any]) -> None:
        """Called after each batch's update (outside the timed optimisation); the batch is the
        rows ``idx`` of the pool ``x``."""

    def _finish_epoch(self, record: dict[str, Any], acc: dict[str, Any]) -> None:
        """Adds subclass fields to the epoch record."""

    # ------------------------------------------------------------------ data
    def _pool_q(self, x: np.ndarray) -> np.ndarray:
        """|Q| of the model at the pool points, one value per point (min over heads)."""
        q = np.asarray(self.model.q_values(x) if self.device == "cpu" else
                       self.model.q_values(x, device=self.device), dtype=np.float64)
        if q.ndim == 2:
            q = q.min(axis=1)
        return q

    def _safe_lr(self, result: Any) -> None:
        """Upstream's safe learning rate: lr ≤ 1/L̂ with L̂ = B²/q_min²·(1 + y_max²) + α."""
        q_min = float(result.stats["q_min"]) if result.stats["q_min"] is not None else 0.0
        y = result.y["value"][result.tags == _REAL]
        y_max = float(np.max(np.abs(y))) if y.size else 0.0
        bound = float(getattr(self.model, "basis_bound", 1.0))
        alpha = float(getattr(self.model, "alpha_phi", 0.0))
        if q_min <= 0.0:
            return
        l_hat = bound**2 / q_min**2 * (1.0 + y_max**2) + alpha
        self.optimizer.lr = min(self.config.learning_rate, 1.0 / l_hat)

    # ------------------------------------------------------------------ training
    def _batch_weight(self) -> np.ndarray | None:
        """Per-pool-row weights of this epoch's batches: the user's sample weights times
        1/(N·p_i) of the draw distribution (the kernel normalises them over each batch, so the
        batch loss is the self-normalised estimate of the pool's), or None (plain means)."""
        inv = self.source.inverse_probability if self.config.importance_weighting else None
        if inv is None:
            return self._pool_weight
        return inv if self._pool_weight is None else inv * self._pool_weight

    def train_epoch(self, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """One epoch over the pool ``(x, y)`` (validated arrays); returns the epoch record."""
        if dask_pool.is_dask_array(x) or dask_pool.is_dask_array(y):
            return self._dask_epoch(x, y)
        if isinstance(self.optimizer, LevenbergMarquardt):
            return self._lm_epoch(x, y)
        cfg = self.config
        n = x.shape[0]
        n_batches = cfg.batches_per_epoch or max(1, -(-n // cfg.batch_size))
        self._start_epoch(self.epoch)

        t0 = time.perf_counter()
        q_pool = self._pool_q(x) if self.source.needs_q else None
        self.source.start_epoch(self.epoch, n, q_pool,
                                x if self.config.importance_weighting else None)
        weight = self._batch_weight()
        prep_s = time.perf_counter() - t0

        acc: dict[str, Any] = {"q_abs": [], "x": []}  # what _after_batch collects
        if weight is None and _compiled.unavailable(self) is None:
            data_s, optim_s, losses, n_real, n_out = self._compiled_batches(x, y, n_batches)
        else:
            data_s, optim_s, losses, n_real, n_out = self._python_batches(x, y, n_batches, acc,
                                                                          weight)

        data_ms = (data_s + prep_s) * 1000.0 / n_batches
        optim_ms = optim_s * 1000.0 / n_batches
        return self._epoch_record(float(losses.mean()), n_real / n_out if n_out else 1.0,
                                  data_ms, optim_ms, n_batches, acc)

    def _dask_epoch(self, x: Any, y: Any) -> dict[str, Any]:
        """One epoch from a dask pool (:mod:`.dask_pool`): the |Q| pass and the importance draws
        on the cluster, the batches gathered to the driver, then the per-batch loop over the
        gathered rows; the record adds ``dask = {seed, rows, gather_ms}``."""
        dask_pool.check_setup(self)
        x, y, _ = dask_pool.check_pool(x, y)
        cfg = self.config
        n_batches = int(cfg.batches_per_epoch)
        ep = dask_pool.gather_batches(x, y, self.model.q_values, self.sampler,
                                      n_batches=n_batches, batch_size=cfg.batch_size,
                                      sample_weight=self._pool_weight,
                                      importance_weighting=cfg.importance_weighting)
        self._start_epoch(self.epoch)  # after the gather: a failed pass changes nothing
        acc: dict[str, Any] = {"q_abs": [], "x": []}
        rows = np.arange(ep.x.shape[0], dtype=np.int64)
        data_s, optim_s, losses, n_real, n_out = self._python_batches(
            ep.x, ep.y, n_batches, acc, ep.weight, batches=(rows, ep.offsets))
        data_ms = (data_s + ep.seconds) * 1000.0 / n_batches
        record = self._epoch_record(float(losses.mean()), n_real / n_out if n_out else 1.0,
                                    data_ms, optim_s * 1000.0 / n_batches, n_batches, acc)
        record["dask"] = {"seed": ep.seed, "rows": int(rows.shape[0]),
                          "gather_ms": ep.seconds * 1000.0}
        return record

    def _epoch_record(self, loss: float, coverage: float, data_ms: float, optim_ms: float,
                      n_batches: int, acc: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "epoch": self.epoch,
            "loss": loss,
            "coverage": coverage,
            "lambda_rej": self.lambda_rej,
        }
        bench = {
            "epoch": self.epoch,
            "avg_step_ms": data_ms + optim_ms,
            "data_time_ms": data_ms,
            "optim_time_ms": optim_ms,
            "batches": int(n_batches),
        }
        self.bench_history.append(bench)
        record["bench"] = bench
        if self.curriculum is not None:
            record["curriculum"] = self.curriculum.update(self.epoch, coverage, record["loss"])
        self._finish_epoch(record, acc)
        return record

    def _lm_epoch(self, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """One epoch of Levenberg–Marquardt: ``steps_per_epoch`` accepted steps over the whole
        pool (the optimisation time), then the record: its loss is the objective the solver
        reports at the epoch's parameters, its coverage and the λ_rej policy's tag counts come
        from one forward pass over the pool. A subclass with per-batch hooks, or a layer that
        holds its own λ policy, gets one fused pass over the pool instead (one "batch": the
        pool), as in the first-order epochs; its loss is the fused pass's (so too after an L1
        projection of φ, which leaves the solver's objective behind).

        The rejection term joins the LM objective only with a threshold (``rejection_threshold``
        or the model's tag policy): its default threshold |Q| < 1e-2 would push Q away from zero
        at every REAL sample that close to a pole, biasing the poles; LM keeps coverage itself,
        since no step that makes an output that took part non-REAL is accepted."""
        model, opt = self.model, self.optimizer
        self._start_epoch(self.epoch)
        acc: dict[str, Any] = {"q_abs": [], "x": []}
        t0 = time.perf_counter()
        kw = self.pass_options()
        objective = dict(
            basis=model.kernel_basis, domain=model.domain,
            policy=model.policy, mode=kw["mode"], delta=kw["delta"],
            saturation_bound=kw["saturation_bound"], sample_weight=self._pool_weight,
            loss="l2" if kw["loss"] == "mse" else kw["loss"],
            loss_scale=self._loss_threshold() / ROBUST_K.get(kw["loss"], 1.0),
            lambda_rej=self.lambda_rej if "rejection_threshold" in kw else 0.0,
            rejection_threshold=kw.get("rejection_threshold", 1e-2),
            q_epsilon=kw.get("q_epsilon", 0.0), alpha_phi=float(model.alpha_phi))
        # once converged, the float64 optimum is refined on double-double residuals (CPU; the
        # CUDA solver steps from the normal equations and keeps the float64 optimum)
        from .device_dispatch import lm_solver

        res = lm_solver(self.device)(
            x, y, model.theta, model.phi, **objective, max_steps=opt.steps_per_epoch,
            max_tries=opt.max_tries, ftol=opt.ftol, xtol=opt.xtol, gtol=opt.gtol,
            state=opt.state, refine_steps=REFINE_STEPS if opt.refine else 0)
        projected = False
        if res.steps or res.refined:
            model.set_parameters([res.theta, res.phi])
            projected = model.project_phi() < 1.0
        opt.step_count += res.steps
        opt.last_status = res.status
        opt.converged = res.status != 0
        t1 = time.perf_counter()
        if self.customises_batch_step() or self._model_updates_lambda or projected:
            full = self._loss_and_grad(x, y, None, self._pool_weight)
            loss, counts = float(full.loss), full.stats["tag_counts"]
        else:
            # the forward pass (compiled for evaluation anyway) instead of a fused pass whose
            # gradient nobody reads: a cold first run compiles about 5 s less
            out = rational_eval(model.kernel_input(x), model.theta, model.phi,
                                basis=model.kernel_basis, domain=model.domain,
                                policy=model.policy, q_epsilon=objective["q_epsilon"],
                                device=self.device)
            loss, counts, full = float(res.loss), count_tags(out), None
        if self.adaptive_lambda is not None and not self._model_updates_lambda:
            self.adaptive_lambda.update_counts(counts)
        if full is not None:
            self._after_batch(full, x, np.arange(x.shape[0]), acc)
        self.global_step += 1
        coverage = counts[0] / max(1, int(np.sum(counts)))
        if self.config.verbose:
            self._log_batch(0, 1, loss, coverage, self.lambda_rej)
        record = self._epoch_record(loss, float(coverage), 0.0, (t1 - t0) * 1000.0, 1, acc)
        record["lm"] = {"status": res.status, "steps": res.steps, "passes": res.passes,
                        "objective": res.loss,
                        "refine_steps": res.refined}
        return record

    def _compiled_batches(self, x: np.ndarray, y: np.ndarray,
                          n_batches: int) -> tuple[float, float, np.ndarray, int, int]:
        """The epoch's batches in kernel calls of up to ``_COMPILED_ROWS`` rows (one call at
        the usual sizes; see :mod:`._compiled`): drawing their indices is the data time, the
        kernel the optimisation time."""
        cfg = self.config
        per_call = max(1, _COMPILED_ROWS // cfg.batch_size)
        data_s = optim_s = 0.0
        parts = []
        for first in range(0, n_batches, per_call):
            count = min(per_call, n_batches - first)
            t0 = time.perf_counter()
            idx, offsets = self.source.epoch_indices(x, cfg.batch_size, count)
            t1 = time.perf_counter()
            steps = _compiled.run_epoch(self, x, y, idx, offsets)
            t2 = time.perf_counter()
            data_s += t1 - t0
            optim_s += t2 - t1
            parts.append(steps)
            done = steps.losses.shape[0]
            self.global_step += done
            if cfg.verbose:
                for b in range(-first % cfg.log_interval, done, cfg.log_interval):
                    counts = steps.tag_counts[b]
                    self._log_batch(first + b, n_batches, float(steps.losses[b]),
                                    counts[0] / max(1, int(np.sum(counts))),
                                    float(steps.lambda_rej[b]))
            if steps.error is not None:
                raise ValueError(steps.error)
        losses = np.concatenate([p.losses for p in parts])
        n_real = sum(int(p.tag_counts[:, 0].sum()) for p in parts)
        n_out = sum(int(p.tag_counts.sum()) for p in parts)
        return data_s, optim_s, losses, n_real, n_out

    def _python_batches(self, x: np.ndarray, y: np.ndarray, n_batches: int,
                        acc: dict[str, Any], weight: np.ndarray | None = None,
                        batches: tuple[np.ndarray, np.ndarray] | None = None,
                        ) -> tuple[float, float, np.ndarray, int, int]:
        """The epoch's batches one by one through the model's protocol (``batches``: given
        (indices, offsets) instead of the source's draws)."""
        cfg = self.config
        data_s = optim_s = 0.0
        losses = np.empty(n_batches)
        n_real = n_out = 0
        for b in range(n_batches):
            t0 = time.perf_counter()
            if batches is None:
                idx = self.source.next_indices(x, cfg.batch_size)
            else:
                idx = batches[0][batches[1][b]:batches[1][b + 1]]
            t1 = time.perf_counter()
            res = self._loss_and_grad(x, y, idx, weight)
            if cfg.use_safe_lr:
                self._safe_lr(res)
            self.optimizer.step([res.grad_theta, res.grad_phi])
            project = getattr(self.model, "project_phi", None)
            if project is not None:
                project()
            if self.adaptive_lambda is not None and not self._model_updates_lambda:
                self.adaptive_lambda.update_counts(res.stats["tag_counts"])
            t2 = time.perf_counter()
            data_s += t1 - t0
            optim_s += t2 - t1
            losses[b] = res.loss
            counts = res.stats["tag_counts"]
            n_real += int(counts[0])
            n_out += int(np.sum(counts))
            self._after_batch(res, x, idx, acc)
            self.global_step += 1
            if cfg.verbose and b % cfg.log_interval == 0:
                self._log_batch(b, n_batches, res.loss, counts[0] / max(1, int(np.sum(counts))),
                                self.lambda_rej)
        return data_s, optim_s, losses, n_real, n_out

    def _log_batch(self, b: int, n_batches: int, loss: float, coverage: float, lam: float) -> None:
        logger.info("epoch %d batch %d/%d loss=%.6g coverage=%.4f lambda=%.4g",
                    self.epoch, b, n_batches, loss, coverage, lam)

    def fit(self, x: Any, y: Any, *, x_val: Any = None, y_val: Any = None,
            epochs: int | None = None, sample_weight: Any = None) -> dict[str, list[Any]]:
        """Train until ``epochs`` more epochs ran (default: until ``config.max_epochs`` epochs
        in total, so a resumed trainer finishes the original run), early stopping or (with
        Levenberg–Marquardt) convergence.

        The held-out data are ``(x_val, y_val)`` when given, else a seeded
        ``config.validation_fraction`` of the pool (the same split on every call with the
        same trainer seed). The held-out loss is tracked per epoch (``history["val_loss"]``);
        at the end of the run (max_epochs, early stop or convergence) the parameters of the
        kept epoch are restored (``config.restore_best``): the latest epoch, the start
        included, whose held-out loss is at most the start's and within one standard error of
        the best one, so the result is never worse on held-out data than the model it was
        given, and among fits that the held-out points cannot tell apart the most trained.

        A pool held as dask arrays (``x`` and ``y`` both ``dask.array``, the same row chunks)
        trains from the cluster (:mod:`.dask_pool`, docs/distributed.md): each epoch draws
        ``batches_per_epoch`` importance batches there and gathers them to the driver. It needs
        an :class:`ImportanceSampler`, SGD or Adam, ``config.batches_per_epoch``, and held-out
        data in memory (``x_val, y_val``) or ``validation_fraction=0`` (no split is taken
        from it); otherwise ``ValueError`` naming the option, before anything changes.

        Parameters
        ----------
        x : (N,) or (N, d) array-like or dask array, the pool of inputs
        y : (N,) or (N, n_outputs) array-like (a dask array with a dask x), targets; NaN / ±inf
            mark non-REAL targets
        x_val, y_val : optional held-out data (else the split), in memory
        epochs : int, optional
        sample_weight : (N,) array-like >= 0 (or a dask array with a dask pool), optional
            weights of the pool's points

        Returns
        -------
        dict of lists: ``loss, coverage, lambda_rej`` (+ ``val_loss`` with held-out data).
        """
        if dask_pool.is_dask_array(x) or dask_pool.is_dask_array(y):
            pool = dask_pool.fit_pool(self, x, y, x_val=x_val, y_val=y_val,
                                      sample_weight=sample_weight)  # no held-out split
            if pool.x_range is not None:
                self._domain_from_data(pool.x_range)
            xa, ya, wa, xv, yv = pool.x, pool.y, pool.sample_weight, pool.x_val, pool.y_val
        else:
            xa, ya, wa, xv, yv = self._fit_data(x, y, x_val, y_val, sample_weight)
        has_val = xv is not None
        if epochs is None:
            end = self.config.max_epochs
        else:
            end = self.epoch + check_int(epochs, "epochs", minimum=0)
        self._pool_weight = wa
        cfg = self.config
        self._scale_lambda_warmup(xa.shape[0], end)
        if cfg.loss in ("huber", "tukey") and self.loss_sigma is None:
            self.loss_sigma = self._start_sigma(xa, ya)
        if has_val and "start" not in self.held_out:
            start, se = self.held_out_loss(xv, yv, return_se=True)
            self.held_out = {"start": start, "best": start, "best_se": se, "best_epoch": -1,
                             "chosen_epoch": -1, "final": start,
                             "n": int(xv.shape[0])}
            self._best_params = [np.array(p) for p in self.model.parameters()]
            self._start_params = [np.array(p) for p in self._best_params]
            self._start_poles = None
        bar = self._progress(end)
        try:
            while self.epoch < end and not self.stopped_early:
                record = self.train_epoch(xa, ya)
                self.history["loss"].append(record["loss"])
                self.history["coverage"].append(record["coverage"])
                self.history["lambda_rej"].append(record["lambda_rej"])
                val = record["loss"]
                if has_val:
                    val, se = self.held_out_loss(xv, yv, return_se=True)
                    record["val_loss"] = val
                    self.history.setdefault("val_loss", []).append(val)
                    held = self.held_out
                    held["final"] = val
                    if val < held["best"]:
                        held.update(best=val, best_se=se, best_epoch=self.epoch)
                    # the epoch kept at the end: the latest one not worse than the start and
                    # within one standard error of the best (differences below it are noise
                    # of the held-out points, so the more trained model is kept)
                    if val <= held["start"] and val <= held["best"] + held["best_se"]:
                        held["chosen_epoch"] = self.epoch
                        held["chosen"] = val
                        self._best_params = [np.array(p) for p in self.model.parameters()]
                self.epoch_records.append(record)
                self.epoch += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3g}", cov=f"{record['coverage']:.3f}",
                                    lam=f"{record['lambda_rej']:.3g}")
                if self.lr_schedule is not None:
                    self.optimizer.lr = self.lr_schedule.lr_after(self.epoch - 1,
                                                                  self.optimizer.lr, val)
                if cfg.early_stopping:
                    # improvement: relative to the best so far (losses span many decades)
                    if val < self.best_loss - cfg.min_delta * abs(self.best_loss) \
                            or not math.isfinite(self.best_loss):
                        self.best_loss = val
                        self.patience_counter = 0
                    else:
                        self.patience_counter += 1
                        if self.patience_counter >= cfg.patience:
                            self.stopped_early = True
                if isinstance(self.optimizer, LevenbergMarquardt) and self.optimizer.converged:
                    self.stopped_early = True
                if any(cb(self, record) is True for cb in self.callbacks):
                    self.stopped_early = True
        finally:
            if bar is not None:
                bar.close()
        if (self.stopped_early or self.epoch >= self.config.max_epochs) and has_val:
            self._restore_best()
        return self.history

    def _scale_lambda_warmup(self, n: int, end: int) -> None:
        """With ``adaptive_warmup_steps=None``, the λ policy this trainer built waits a tenth
        of the run's λ updates (at least 1; upstream: a fixed 100 steps, which a short run
        never reaches)."""
        alp = self.adaptive_lambda
        if self.config.adaptive_warmup_steps is not None or alp is None or self._own_lambda is not alp:
            return
        if isinstance(self.optimizer, LevenbergMarquardt):
            per_epoch = 1
        else:
            per_epoch = self.config.batches_per_epoch or max(1, -(-n // self.config.batch_size))
        total = max(1, (end - self.epoch)) * per_epoch + alp.step_count
        alp.config.warmup_steps = max(1, total // 10)

    def _restore_best(self) -> None:
        """Put back the kept epoch's parameters (see :meth:`fit`) when it is not the last."""
        if not self.config.restore_best or self._best_params is None:
            return
        held = self.held_out
        restored = held["chosen_epoch"] != self.epoch - 1
        if restored:
            for p, best in zip(self.model.parameters(), self._best_params):
                p[...] = best
            held["final"] = held.get("chosen", held["start"])
        held["restored"] = bool(restored)

    train = fit

    def _progress(self, end: int) -> Any:
        cfg = self.config
        if not (cfg.verbose and cfg.progress_bar) or not sys.stderr.isatty():
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is optional
            return None
        return tqdm(total=end, initial=self.epoch, desc="epochs", unit="ep", leave=False)
