"""TrainingConfig: the settings of a :class:`~zeroproof_nb.training.trainer.Trainer` run
(upstream's fields and ours)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


from .._validation import (
    check_choice,
    check_in_range,
    check_int,
    check_nonnegative,
    check_positive,
)
from ..device import check_device
from ..optim import LRSchedule
from .adaptive_loss import AdaptiveLossConfig


@dataclass
class TrainingConfig:
    """Training configuration (upstream's fields and defaults, plus ours at the end).

    Upstream fields: ``learning_rate, use_safe_lr, batch_size, max_epochs, use_adaptive_loss,
    target_coverage, lambda_learning_rate, initial_lambda, lambda_rej (alias, unused),
    lambda_rej_min, adaptive_momentum, adaptive_warmup_steps, adaptive_update_frequency,
    adaptive_exponential_decay, adaptive_lambda_min, adaptive_lambda_max, log_interval, verbose,
    early_stopping, patience, min_delta``.

    Ours: ``seed`` (trainer RNG: uniform batches, the held-out split), ``optimizer`` ("lm" |
    "adam" | "sgd"; None: Levenberg–Marquardt for a :class:`TRRational`, Adam otherwise),
    ``loss`` ("mse" | "mae" | "huber" | "tukey"), ``huber_delta`` (Huber threshold; None:
    1.345·σ), ``loss_scale`` (σ, the residual scale of the robust losses; None: the normalised
    MAD of the start's residuals on the training pool; Tukey's threshold is 4.685·σ),
    ``validation_fraction`` (held-out share split off the pool when no validation data is
    given), ``restore_best`` (end with the parameters of the best held-out epoch, the start
    included), ``importance_weighting`` (re-weight drawn batches by 1/(N·p_i) so that they
    estimate the pool's loss; False: upstream's unweighted batches), ``lr_schedule``
    (None | "step" | "cosine" | "plateau", with ``lr_step_size``, ``lr_gamma``, ``lr_min``,
    ``lr_patience``), ``lm_steps_per_epoch``; ``adaptive_warmup_steps=None`` (default) waits a
    tenth of the run's λ updates (upstream: 100); ``gradient_mode`` (the fixed rule of a plain
    Trainer; HybridTrainer schedules it), ``delta`` (hybrid threshold for a fixed "hybrid" mode),
    ``saturation_bound``, ``batches_per_epoch`` (default ceil(N / batch_size)),
    ``rejection_threshold`` (None: the kernel's default), ``q_epsilon`` (> 0 trains the
    ε-regularised baseline Q + ε·sign(Q)), ``progress_bar`` (tqdm on a terminal when verbose),
    ``compiled_epochs`` (run an epoch's batches in one kernel call where the step allows it,
    see :class:`Trainer`; the results are the same bits either way), ``device`` ("cpu" | "cuda" |
    "auto": where the passes of a 1-D :class:`TRRational` run, see :class:`Trainer`).
    The tag policy (``TRPolicy``) belongs to the model.
    """

    learning_rate: float = 0.001
    use_safe_lr: bool = False
    batch_size: int = 32
    max_epochs: int = 100
    use_adaptive_loss: bool = True
    target_coverage: float = 0.95
    lambda_learning_rate: float = 0.01
    initial_lambda: float = 1.0
    lambda_rej: float = 1.0
    lambda_rej_min: float = 0.1
    adaptive_momentum: float = 0.9
    adaptive_warmup_steps: int | None = None
    adaptive_update_frequency: int = 10
    adaptive_exponential_decay: float | None = None
    adaptive_lambda_min: float = 0.1
    adaptive_lambda_max: float | None = None
    log_interval: int = 10
    verbose: bool = True
    early_stopping: bool = True
    patience: int = 10
    min_delta: float = 1e-4
    # --- ours
    seed: int | None = None
    optimizer: str | None = None
    loss: str = "mse"
    huber_delta: float | None = None
    loss_scale: float | None = None
    validation_fraction: float = 0.1
    restore_best: bool = True
    importance_weighting: bool = True
    lr_schedule: str | None = None
    lr_step_size: int = 10
    lr_gamma: float = 0.5
    lr_min: float = 0.0
    lr_patience: int = 5
    lm_steps_per_epoch: int = 5
    gradient_mode: str = "mask_real"
    delta: float | None = None
    saturation_bound: float = 1.0
    batches_per_epoch: int | None = None
    rejection_threshold: float | None = None
    q_epsilon: float = 0.0
    progress_bar: bool = True
    compiled_epochs: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_positive(self.learning_rate, "learning_rate")
        check_int(self.batch_size, "batch_size", minimum=1)
        check_int(self.max_epochs, "max_epochs", minimum=0)
        check_in_range(self.target_coverage, "target_coverage", 0.0, 1.0)
        check_int(self.log_interval, "log_interval", minimum=1)
        check_int(self.patience, "patience", minimum=1)
        check_nonnegative(self.min_delta, "min_delta")
        if self.optimizer is not None:
            check_choice(self.optimizer, "optimizer", ("lm", "adam", "sgd"))
        check_choice(self.loss, "loss", ("mse", "mae", "huber", "tukey"))
        if self.optimizer == "lm" and self.loss == "mae":
            raise ValueError("loss='mae' has no Gauss-Newton matrix: use optimizer 'adam' or 'sgd'")
        if self.huber_delta is not None:
            check_positive(self.huber_delta, "huber_delta")
        if self.loss_scale is not None:
            check_positive(self.loss_scale, "loss_scale")
        check_in_range(self.validation_fraction, "validation_fraction", 0.0, 0.5)
        if self.lr_schedule is not None:
            check_choice(self.lr_schedule, "lr_schedule", LRSchedule.KINDS)
        check_int(self.lr_step_size, "lr_step_size", minimum=1)
        check_in_range(self.lr_gamma, "lr_gamma", 0.0, 1.0)
        check_nonnegative(self.lr_min, "lr_min")
        check_int(self.lr_patience, "lr_patience", minimum=1)
        check_int(self.lm_steps_per_epoch, "lm_steps_per_epoch", minimum=1)
        mode = getattr(self.gradient_mode, "value", self.gradient_mode)
        check_choice(mode, "gradient_mode", ("mask_real", "saturating", "hybrid"))
        self.gradient_mode = mode
        if self.delta is not None:
            check_nonnegative(self.delta, "delta")
        check_positive(self.saturation_bound, "saturation_bound")
        if self.batches_per_epoch is not None:
            check_int(self.batches_per_epoch, "batches_per_epoch", minimum=1)
        if self.seed is not None:
            check_int(self.seed, "seed", minimum=0)
        check_nonnegative(self.q_epsilon, "q_epsilon")
        check_device(self.device, "device")

    def adaptive_loss_config(self) -> AdaptiveLossConfig:
        """The :class:`AdaptiveLossConfig` built from the ``adaptive_*`` fields."""
        return AdaptiveLossConfig(
            initial_lambda=self.initial_lambda,
            target_coverage=self.target_coverage,
            learning_rate=self.lambda_learning_rate,
            lambda_min=self.adaptive_lambda_min,
            lambda_max=self.adaptive_lambda_max,
            lambda_rej_min=self.lambda_rej_min,
            momentum=self.adaptive_momentum,
            warmup_steps=0 if self.adaptive_warmup_steps is None else self.adaptive_warmup_steps,
            update_frequency=self.adaptive_update_frequency,
            exponential_decay=self.adaptive_exponential_decay,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
