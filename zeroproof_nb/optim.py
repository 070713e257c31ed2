"""Small NumPy optimizers that update parameter arrays in place.

The parameters are a list of float arrays (e.g. ``layer.parameters()`` = ``[theta, phi]``); each
``step(grads)`` takes a list of gradient arrays of the same shapes and updates the parameters in
place, so the layer sees the new values without copying. State is plain arrays and numbers
(``state_dict()``), savable with ``numpy.savez`` or JSON (after ``tolist()``), no pickle.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._validation import (
    check_bool,
    check_choice,
    check_finite,
    check_in_range,
    check_int,
    check_nonnegative,
    check_positive,
)
from .least_squares import FTOL, GTOL, XTOL, LMState
from .kernels import optim as _ko

__all__ = ["SGD", "Adam", "LevenbergMarquardt", "LRSchedule"]


def step_overflow_message(lr: float) -> str:
    """Message of the ``ValueError`` raised when an optimizer step (Python or compiled epochs)
    would leave the parameters or the optimizer state non-finite."""
    return (f"lr={lr!r}: this step would make the parameters or the optimizer state "
            "non-finite (overflow); they were left unchanged")


class _Optimizer:
    """Shared parameter/gradient validation and state helpers."""

    _kind = "optimizer"
    _buffers: tuple[str, ...] = ()

    def __init__(self, params: Sequence[np.ndarray], lr: float) -> None:
        if isinstance(params, np.ndarray):
            params = [params]
        params = list(params)
        if not params:
            raise ValueError("params must be a non-empty list of arrays")
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"params[{i}] must be a numpy.ndarray, got {type(p).__name__}")
            if p.dtype not in (np.float64, np.float32):
                raise TypeError(f"params[{i}] must have dtype float64 or float32, got {p.dtype}")
            if not p.flags.writeable:
                raise ValueError(f"params[{i}] must be writeable (it is updated in place)")
            if not p.flags.c_contiguous:
                raise ValueError(f"params[{i}] must be C-contiguous (it is updated in place)")
        self.params: list[np.ndarray] = params
        self.lr = lr
        self.step_count = 0
        self._state: dict[str, list[np.ndarray]] = {
            name: [np.zeros_like(p) for p in params] for name in self._buffers
        }

    @property
    def lr(self) -> float:
        """Learning rate (settable, e.g. by a scheduler)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = check_nonnegative(value, "lr")

    def buffers(self, name: str) -> list[np.ndarray]:
        """The live per-parameter buffers ``name`` (one array per parameter, updated in place;
        e.g. ``"momentum_buffer"``, ``"exp_avg"``), for code that steps them outside Python."""
        return self._state[name]

    def _check_grads(self, grads: Sequence[Any]) -> list[np.ndarray]:
        if isinstance(grads, np.ndarray):
            grads = [grads]
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"grads must have {len(self.params)} arrays, got {len(grads)}")
        out = []
        for i, (g, p) in enumerate(zip(grads, self.params)):
            if not (type(g) is np.ndarray and g.dtype == p.dtype and g.flags.c_contiguous):
                g = np.asarray(g)
                if g.dtype.kind not in "biuf":
                    raise TypeError(f"grads[{i}] must be numeric, got dtype {g.dtype}")
                g = np.ascontiguousarray(g, dtype=p.dtype)
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}] must have shape {p.shape}, got {g.shape}")
            check_finite(g, f"grads[{i}]")
            out.append(g)
        return out

    def _hyper(self) -> dict[str, float]:
        raise NotImplementedError

    def _set_hyper(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, step count and buffers as plain numbers and arrays.

        Buffers are stored under flat keys ``"<buffer>.<i>"`` (one array per parameter), so the
        dict can be written with ``numpy.savez(path, **opt.state_dict())``.
        """
        state: dict[str, Any] = {"kind": self._kind, "step_count": int(self.step_count)}
        state.update(self._hyper())
        for name, arrays in self._state.items():
            for i, a in enumerate(arrays):
                state[f"{name}.{i}"] = a.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (also one read back from ``.npz`` or JSON lists).

        Everything is validated before anything is assigned (kind, hyper-parameters, step
        count, buffer shapes, buffers finite in the parameters' dtype, Adam's second moments
        >= 0); on an error (``ValueError``/``TypeError`` naming the entry) nothing changes."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        kind = state.get("kind", self._kind)
        kind = np.asarray(kind).item() if isinstance(kind, np.ndarray) else kind
        if kind != self._kind:
            raise ValueError(f"state is for a {kind!r} optimizer, not {self._kind!r}")
        if "step_count" not in state:
            raise ValueError("state is missing 'step_count'")
        step_count = check_int(_item(state["step_count"]), "step_count", minimum=0)
        new: dict[str, list[np.ndarray]] = {}
        for name in self._buffers:
            arrays = []
            for i, p in enumerate(self.params):
                key = f"{name}.{i}"
                if key not in state:
                    raise ValueError(f"state is missing {key!r}")
                try:
                    raw = np.asarray(state[key])
                except Exception as exc:
                    raise TypeError(f"state[{key!r}] must be an array of numbers") from exc
                if raw.dtype.kind not in "biuf":
                    raise TypeError(f"state[{key!r}] must be numeric, got dtype {raw.dtype}")
                with np.errstate(over="ignore"):
                    a = raw.astype(p.dtype)
                if a.shape != p.shape:
                    raise ValueError(f"state[{key!r}] must have shape {p.shape}, got {a.shape}")
                check_finite(a, f"state[{key!r}]")
                if name == "exp_avg_sq" and np.any(a < 0):
                    raise ValueError(f"state[{key!r}] must be >= 0 (second moments)")
                arrays.append(a.copy())
            new[name] = arrays
        expected = {f"{name}.{i}" for name in self._buffers for i in range(len(self.params))}
        extra = sorted(k for k in state
                       if any(k.startswith(f"{name}.") for name in self._buffers)
                       and k not in expected)
        if extra:
            raise ValueError(f"state has buffers this optimizer does not: {extra}")
        self._set_hyper(state)  # validates every value before assigning any
        self.step_count = step_count
        self._state = new

    def _guarded_step(self, update: Any) -> None:
        """Run ``update()`` (the in-place kernel updates); if it leaves a parameter or buffer
        non-finite (e.g. ``lr=1e308``), restore them all and raise ``ValueError``."""
        saved = [p.copy() for p in self.params]
        saved_state = {k: [a.copy() for a in v] for k, v in self._state.items()}
        update()
        if all(np.isfinite(p).all() for p in self.params) and all(
                np.isfinite(a).all() for v in self._state.values() for a in v):
            return
        for p, s in zip(self.params, saved):
            p[...] = s
        for k, v in self._state.items():
            for a, s in zip(v, saved_state[k]):
                a[...] = s
        raise ValueError(step_overflow_message(self.lr))

    def step(self, grads: Sequence[Any]) -> None:
        raise NotImplementedError


def _item(v: Any) -> Any:
    return v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v


def _scalar(state: dict[str, Any], key: str) -> Any:
    if key not in state:
        raise ValueError(f"state is missing {key!r}")
    a = np.asarray(state[key])
    if a.shape != ():
        raise ValueError(f"state[{key!r}] must be a single number, got shape {a.shape}")
    return a.item()


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    With g = grad + weight_decay·p and velocity v (zero at start)::

        v ← momentum·v + g
        p ← p − lr·(g + momentum·v)   if nesterov
        p ← p − lr·v                  otherwise (plain SGD when momentum = 0)

    Parameters
    ----------
    params : list of ndarray
        Arrays updated in place (float64 or float32).
    lr : float
        Learning rate ≥ 0.
    momentum : float
        In [0, 1).
    nesterov : bool
        Nesterov momentum (requires momentum > 0).
    weight_decay : float
        L2 coefficient ≥ 0 added to the gradient.
    """

    _kind = "SGD"
    _buffers = ("momentum_buffer",)

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = check_in_range(momentum, "momentum", 0.0, 1.0)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True requires momentum > 0")
        self.weight_decay = check_nonnegative(weight_decay, "weight_decay")

    def _hyper(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": int(self.nesterov),
                "weight_decay": self.weight_decay}

    def _set_hyper(self, state: dict[str, Any]) -> None:
        lr = check_nonnegative(_scalar(state, "lr"), "lr")
        momentum = check_in_range(_scalar(state, "momentum"), "momentum", 0.0, 1.0)
        if momentum >= 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        nesterov = _scalar(state, "nesterov")
        if nesterov not in (0, 1, True, False):
            raise ValueError(f"nesterov must be 0 or 1, got {nesterov!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov=True requires momentum > 0")
        weight_decay = check_nonnegative(_scalar(state, "weight_decay"), "weight_decay")
        self.lr, self.momentum = lr, momentum
        self.nesterov, self.weight_decay = bool(nesterov), weight_decay

    def step(self, grads: Sequence[Any]) -> None:
        """Apply one update to every parameter in place."""
        grads = self._check_grads(grads)

        def update() -> None:
            for p, g, v in zip(self.params, grads, self._state["momentum_buffer"]):
                c = p.dtype.type  # scalars in the parameter's dtype, as NumPy would cast them
                _ko.sgd_update(p.reshape(-1), g.reshape(-1), v.reshape(-1), c(self.lr),
                               c(self.momentum), self.nesterov, c(self.weight_decay))

        self._guarded_step(update)
        self.step_count += 1


class Adam(_Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and optional L2 weight decay.

    With g = grad + weight_decay·p and t the step number (1-based)::

        m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
        p ← p − lr·(m/(1−β1^t)) / (√(v/(1−β2^t)) + eps)

    Weight decay is the classic L2 term added to the gradient (not AdamW's decoupled decay).

    Parameters
    ----------
    params : list of ndarray
        Arrays updated in place (float64 or float32).
    lr : float
        Step size ≥ 0.
    betas : (float, float)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float
        Denominator floor > 0.
    weight_decay : float
        L2 coefficient ≥ 0.
    """

    _kind = "Adam"
    _buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Sequence[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError) as exc:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from exc
        self.betas = (self._check_beta(b1, "betas[0]"), self._check_beta(b2, "betas[1]"))
        self.eps = check_positive(eps, "eps")
        self.weight_decay = check_nonnegative(weight_decay, "weight_decay")

    @staticmethod
    def _check_beta(value: Any, name: str) -> float:
        v = check_in_range(value, name, 0.0, 1.0)
        if v >= 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        return v

    def _hyper(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _set_hyper(self, state: dict[str, Any]) -> None:
        lr = check_nonnegative(_scalar(state, "lr"), "lr")
        betas = (self._check_beta(_scalar(state, "beta1"), "beta1"),
                 self._check_beta(_scalar(state, "beta2"), "beta2"))
        eps = check_positive(_scalar(state, "eps"), "eps")
        weight_decay = check_nonnegative(_scalar(state, "weight_decay"), "weight_decay")
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay

    def step(self, grads: Sequence[Any]) -> None:
        """Apply one update to every parameter in place."""
        grads = self._check_grads(grads)
        t = self.step_count + 1
        b1, b2 = self.betas
        bc1, bc2 = _ko.adam_bias_corrections(b1, b2, t)

        def update() -> None:
            for p, g, m, v in zip(self.params, grads, self._state["exp_avg"],
                                  self._state["exp_avg_sq"]):
                c = p.dtype.type  # scalars in the parameter's dtype, as NumPy would cast them
                _ko.adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                                c(self.lr), c(b1), c(1.0 - b1), c(b2), c(1.0 - b2), c(bc1),
                                c(bc2), c(self.eps), c(self.weight_decay))

        self._guarded_step(update)
        self.step_count = t


class LevenbergMarquardt:
    """Levenberg–Marquardt for a rational layer: the settings and the damping state of
    :func:`zeroproof_nb.least_squares.levenberg_marquardt`, carried across training epochs.

    It does not take gradients: the :class:`~zeroproof_nb.training.trainer.Trainer` runs
    ``steps_per_epoch`` accepted steps over the whole training pool per epoch (J^T J and J^T r
    accumulated in one pass), so the learning rate has no role (``lr`` is kept for the
    HybridTrainer's bookkeeping only).

    Parameters
    ----------
    params : [theta, phi] of the layer (shapes define the state)
    steps_per_epoch : int >= 1
    max_tries : int >= 1, damping increases per step before the step is given up
    ftol, xtol, gtol : float >= 0, convergence tolerances (see ``levenberg_marquardt``)
    refine : bool, once converged, take the float64 optimum to the model's own with
        :func:`zeroproof_nb.least_squares.refine_optimum` (residuals in double-double; near a
        pole float64 rounding moves the optimum by up to ~1e-9 relative)
    """

    _kind = "LevenbergMarquardt"

    def __init__(self, params: Sequence[np.ndarray], steps_per_epoch: int = 5,
                 max_tries: int = 30, ftol: float = FTOL, xtol: float = XTOL,
                 gtol: float = GTOL, refine: bool = True) -> None:
        params = [params] if isinstance(params, np.ndarray) else list(params)
        if not params or not all(isinstance(p, np.ndarray) for p in params):
            raise TypeError("params must be a non-empty list of numpy arrays")
        self.params = params
        self.steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
        self.max_tries = check_int(max_tries, "max_tries", minimum=1)
        self.ftol = check_nonnegative(ftol, "ftol")
        self.xtol = check_nonnegative(xtol, "xtol")
        self.gtol = check_nonnegative(gtol, "gtol")
        self.refine = check_bool(refine, "refine")
        self.state = LMState.fresh(sum(int(p.size) for p in params))
        self.step_count = 0
        self.converged = False
        self.lr = 0.0
        self.last_status: int | None = None

    def reset(self) -> None:
        """Forget the damping (e.g. after the objective changed)."""
        self.state.values[:] = 0.0
        self.converged = False

    def state_dict(self) -> dict[str, Any]:
        """Settings, damping state and counters (plain numbers and one array)."""
        return {"kind": self._kind, "step_count": int(self.step_count),
                "converged": int(self.converged), "steps_per_epoch": self.steps_per_epoch,
                "max_tries": self.max_tries, "ftol": self.ftol, "xtol": self.xtol,
                "gtol": self.gtol, "refine": int(self.refine),
                "damping": self.state.values.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (validated before anything changes)."""
        kind = state.get("kind", self._kind)
        kind = str(np.asarray(kind).item()) if not isinstance(kind, str) else kind
        if kind != self._kind:
            raise ValueError(f"state is for a {kind!r} optimizer, not {self._kind!r}")
        damping = np.asarray(state.get("damping"), dtype=np.float64)
        if damping.shape != self.state.values.shape:
            raise ValueError(f"state['damping'] must have shape {self.state.values.shape}, "
                             f"got {damping.shape}")
        check_finite(damping, "state['damping']")
        step_count = check_int(_scalar(state, "step_count"), "step_count", minimum=0)
        steps = check_int(_scalar(state, "steps_per_epoch"), "steps_per_epoch", minimum=1)
        tries = check_int(_scalar(state, "max_tries"), "max_tries", minimum=1)
        tols = [check_nonnegative(_scalar(state, k), k) for k in ("ftol", "xtol", "gtol")]
        refine = bool(_scalar(state, "refine")) if "refine" in state else self.refine
        self.state.values[:] = damping
        self.step_count = step_count
        self.converged = bool(_scalar(state, "converged"))
        self.steps_per_epoch, self.max_tries = steps, tries
        self.ftol, self.xtol, self.gtol = tols
        self.refine = refine


class LRSchedule:
    """Learning-rate schedule of SGD/Adam, applied by the Trainer after each epoch.

    Kinds: ``"step"`` (lr = base·gamma^floor(epoch/step_size)), ``"cosine"`` (from base to
    ``min_lr`` over ``total_epochs``), ``"plateau"`` (lr·gamma when the held-out loss has not
    improved by the relative ``threshold`` for ``patience`` epochs, floored at ``min_lr``).

    Parameters
    ----------
    kind : {"step", "cosine", "plateau"}
    base_lr : float > 0
    step_size, patience : int >= 1
    gamma : float in (0, 1)
    min_lr : float >= 0
    total_epochs : int >= 1 (cosine)
    threshold : float >= 0 (plateau)
    """

    KINDS = ("step", "cosine", "plateau")

    def __init__(self, kind: str, base_lr: float, *, step_size: int = 10, gamma: float = 0.5,
                 min_lr: float = 0.0, total_epochs: int = 100, patience: int = 5,
                 threshold: float = 1e-4) -> None:
        self.kind = check_choice(kind, "lr_schedule", self.KINDS)
        self.base_lr = check_positive(base_lr, "base_lr")
        self.step_size = check_int(step_size, "lr_step_size", minimum=1)
        self.gamma = check_in_range(gamma, "lr_gamma", 0.0, 1.0)
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"lr_gamma must lie in (0, 1), got {gamma!r}")
        self.min_lr = check_nonnegative(min_lr, "lr_min")
        self.total_epochs = check_int(total_epochs, "total_epochs", minimum=1)
        self.patience = check_int(patience, "lr_patience", minimum=1)
        self.threshold = check_nonnegative(threshold, "threshold")
        self.best = float("inf")
        self.bad_epochs = 0

    def lr_after(self, epoch: int, lr: float, val_loss: float | None = None) -> float:
        """Learning rate for the epoch after ``epoch`` (0-based), given the current ``lr``
        and, for "plateau", the held-out loss of ``epoch``."""
        if self.kind == "step":
            return max(self.min_lr, self.base_lr * self.gamma ** ((epoch + 1) // self.step_size))
        if self.kind == "cosine":
            frac = min(1.0, (epoch + 1) / self.total_epochs)
            return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + np.cos(np.pi * frac))
        if val_loss is None or not np.isfinite(val_loss):
            return lr
        if val_loss < self.best * (1.0 - self.threshold):
            self.best = val_loss
            self.bad_epochs = 0
            return lr
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.bad_epochs = 0
            return max(self.min_lr, lr * self.gamma)
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best if np.isfinite(self.best) else None,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (validated before anything changes)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        best = state.get("best")
        if best is not None:
            best = check_positive(best, "best") if best != 0 else 0.0
        bad = check_int(state.get("bad_epochs", 0), "bad_epochs", minimum=0)
        self.best = float("inf") if best is None else float(best)
        self.bad_epochs = bad
