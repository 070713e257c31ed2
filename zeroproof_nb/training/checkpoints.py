"""Trainer checkpoints: the whole training state in one .npz (arrays and one strict-JSON
document, no pickle).

:class:`CheckpointMixin` holds :meth:`save_checkpoint` / :meth:`load_checkpoint` and the checks of a
loaded state; :class:`~zeroproof_nb.training.trainer.Trainer` inherits it.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .._jsonutil import dumps_strict, restore_nonfinite
from .._validation import (
    bit_generator_from_state,
    check_bounds,
    check_int,
    finite_float,
    load_npz,
)
from ..layers import TRRational
from .adaptive_loss import AdaptiveLambda


def _split_arrays(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Copy of ``obj`` with every ndarray moved into ``arrays`` (replaced by a reference)."""
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        return {k: _split_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_arrays(v, arrays) for v in obj]
    return obj


def _join_arrays(obj: Any, data: Any) -> Any:
    """Inverse of :func:`_split_arrays` (``ValueError`` for a reference to a missing array)."""
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            key = obj["__ndarray__"]
            if not isinstance(key, str) or key not in data or key == "meta_json":
                raise ValueError(f"checkpoint: meta_json refers to a missing array {key!r}")
            return np.array(data[key])
        return {k: _join_arrays(v, data) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_arrays(v, data) for v in obj]
    return obj


class CheckpointMixin:
    """save_checkpoint / load_checkpoint of a Trainer (its attributes: model, optimizer,
    adaptive_lambda, source, config, rng, counters, histories and the held-out record)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the whole training state to ``path`` (.npz: arrays + one JSON document, no
        pickle).

        Parameters, optimizer buffers, λ policy, sampler/curriculum state, RNG state, counters
        and histories: a trainer restored with :meth:`load_checkpoint` continues exactly as
        the uninterrupted run would.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {}
        meta = {
            "params": [np.array(p) for p in self.model.parameters()],
            # the parameters of a Chebyshev layer mean something only on their domain
            "model_domain": ({"domain": [float(v) for v in self.model.domain],
                              "given": bool(self.model.domain_given)}
                             if isinstance(self.model, TRRational) else None),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "patience_counter": self.patience_counter,
            "stopped_early": self.stopped_early,
            "history": self.history,
            "bench_history": self.bench_history,
            "epoch_records": self.epoch_records,
            "optimizer": self.optimizer.state_dict(),
            "adaptive_lambda": None if self.adaptive_lambda is None else self.adaptive_lambda.state_dict(),
            "rng": self.rng.bit_generator.state,
            "source": self.source.state_dict(),
            "config": self.config.to_dict(),
            "extra": self._extra_state(),
            "training": self._held_out_state(),
        }
        doc = _split_arrays(meta, arrays)
        # strict JSON: a non-finite float is written as {"__float__": "nan" | "inf" | "-inf"}
        # and restored on load (see zeroproof_nb._jsonutil)
        arrays["meta_json"] = np.array(dumps_strict(doc, tagged=True))
        for key, a in arrays.items():
            if a.dtype.hasobject:
                raise TypeError(f"checkpoint: state array {key} has an object dtype")
        np.savez(path, **arrays)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a state written by :meth:`save_checkpoint` into this trainer (same model
        architecture, optimizer kind, sampler kind).

        Atomic: the whole file is read and validated first (parameters of the model's shapes
        and finite in its dtype, counters, histories, the optimizer, λ policy, sampler,
        curriculum, RNG and subclass states, each loaded into a copy); only then is anything
        assigned. A damaged or foreign file raises ``ValueError``/``TypeError`` and leaves the
        trainer as it was.
        """
        data = load_npz(Path(path), "path")
        if "meta_json" not in data:
            raise ValueError(f"path: {path!s} has no 'meta_json' entry (not a checkpoint)")
        try:
            doc = json.loads(str(data["meta_json"]))
        except ValueError as exc:
            raise ValueError(f"path: the checkpoint's meta_json is not valid JSON ({exc})") from exc
        meta = restore_nonfinite(_join_arrays(doc, data))
        if not isinstance(meta, dict):
            raise ValueError("checkpoint: meta_json must hold an object")
        plan = self._check_checkpoint(meta)
        # commit: everything below was validated (or dry-run) above
        for p, saved in zip(self.model.parameters(), plan["params"]):
            p[...] = saved
        if plan["model_domain"] is not None:
            self.model.domain, self.model.domain_given = plan["model_domain"]
        self.optimizer.load_state_dict(meta["optimizer"])
        self.epoch = plan["epoch"]
        self.global_step = plan["global_step"]
        self.best_loss = plan["best_loss"]
        self.patience_counter = plan["patience_counter"]
        self.stopped_early = plan["stopped_early"]
        self.history = meta["history"]
        self.bench_history = meta["bench_history"]
        self.epoch_records = meta["epoch_records"]
        if meta["adaptive_lambda"] is not None:
            if self.adaptive_lambda is None:
                self.adaptive_lambda = AdaptiveLambda()
            self.adaptive_lambda.load_state_dict(meta["adaptive_lambda"])
        self.rng.bit_generator.state = plan["rng"].state
        self.source.load_state_dict(meta["source"])
        self._load_extra_state(meta["extra"])
        self._load_held_out_state(plan["training"])

    def _held_out_state(self) -> dict[str, Any]:
        """Split seed, robust scale, held-out record, best parameters, LR schedule."""
        held = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                for k, v in self.held_out.items()}
        return {"split_seed": str(self.split_seed), "loss_sigma": self.loss_sigma,
                "held_out": held, "best_params": self._best_params,
                "start_poles": self._start_pole_list(),
                "lr_schedule": None if self.lr_schedule is None else self.lr_schedule.state_dict()}

    def _check_held_out_state(self, state: Any) -> dict[str, Any] | None:
        """Validate the checkpoint's held-out state (None for a checkpoint without one)
        without changing anything; returns the values to assign."""
        if state is None:
            return None
        if not isinstance(state, dict):
            raise ValueError("checkpoint 'training' must be a dict")
        for key in ("split_seed", "loss_sigma", "held_out", "best_params", "start_poles",
                    "lr_schedule"):
            if key not in state:
                raise ValueError(f"checkpoint 'training' is missing {key!r}")
        try:
            split_seed = int(state["split_seed"])
        except (TypeError, ValueError):
            raise ValueError("checkpoint split_seed must be an integer") from None
        sigma = state["loss_sigma"]
        if sigma is not None:
            sigma = finite_float(sigma, "loss_sigma")
        held = state["held_out"]
        if not isinstance(held, dict):
            raise ValueError("checkpoint held_out must be a dict")
        parsed = {}
        for k, v in held.items():
            if isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    raise ValueError(f"checkpoint held_out[{k!r}] must be a number") from None
            if not isinstance(v, (bool, int, float)):
                raise ValueError(f"checkpoint held_out[{k!r}] must be a number")
            parsed[k] = v
        best = state["best_params"]
        if best is not None:
            params = self.model.parameters()
            if not isinstance(best, list) or len(best) != len(params) or any(
                    not isinstance(b, np.ndarray) or b.shape != p.shape or b.dtype.kind not in "biuf"
                    or not np.isfinite(b).all() for b, p in zip(best, params)):
                raise ValueError("checkpoint best_params do not match the model's parameters")
            best = [np.array(b, dtype=p.dtype) for b, p in zip(best, params)]
        poles = state["start_poles"]
        if poles is not None and (not isinstance(poles, list)
                                  or not all(isinstance(v, (int, float)) for v in poles)):
            raise ValueError("checkpoint start_poles must be a list of numbers")
        schedule = state["lr_schedule"]
        if schedule is not None and self.lr_schedule is not None:
            copy.deepcopy(self.lr_schedule).load_state_dict(schedule)
        return {"split_seed": split_seed, "loss_sigma": sigma, "held_out": parsed,
                "best_params": best, "start_poles": poles, "lr_schedule": schedule}

    def _load_held_out_state(self, state: dict[str, Any] | None) -> None:
        """Assign what :meth:`_check_held_out_state` returned."""
        if state is None:
            return
        self.split_seed = state["split_seed"]
        self.loss_sigma = state["loss_sigma"]
        self.held_out = state["held_out"]
        self._best_params = state["best_params"]
        self._start_poles = state["start_poles"]
        self._start_params = None
        if self.lr_schedule is not None and state["lr_schedule"] is not None:
            self.lr_schedule.load_state_dict(state["lr_schedule"])

    def _check_checkpoint(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Validate a checkpoint's document without changing anything; returns the values
        :meth:`load_checkpoint` assigns."""
        keys = ("params", "epoch", "global_step", "best_loss", "patience_counter",
                "stopped_early", "history", "bench_history", "epoch_records", "optimizer",
                "adaptive_lambda", "rng", "source", "extra")
        for key in keys:
            if key not in meta:
                raise ValueError(f"checkpoint is missing {key!r}")
        params = self.model.parameters()
        saved_params = meta["params"]
        if not isinstance(saved_params, list) or len(saved_params) != len(params):
            raise ValueError("checkpoint does not match the model's parameters")
        cast = []
        for i, (p, saved) in enumerate(zip(params, saved_params)):
            if not isinstance(saved, np.ndarray) or saved.dtype.kind not in "biuf":
                raise TypeError(f"checkpoint parameter {i} must be a numeric array")
            if saved.shape != p.shape:
                raise ValueError(f"checkpoint parameter {i} has shape {saved.shape}, model has {p.shape}")
            with np.errstate(over="ignore"):
                c = saved.astype(p.dtype)
            if not np.isfinite(c).all():
                raise ValueError(f"checkpoint parameter {i} must contain only finite values")
            cast.append(c)
        plan: dict[str, Any] = {"params": cast, "model_domain": None}
        saved_domain = meta.get("model_domain")  # absent in older checkpoints
        if saved_domain is not None and isinstance(self.model, TRRational):
            if not isinstance(saved_domain, dict) or not isinstance(saved_domain.get("given"), bool):
                raise ValueError("checkpoint: model_domain must be {'domain': [lo, hi], 'given': bool}")
            plan["model_domain"] = (check_bounds(saved_domain.get("domain"), "model_domain"),
                                    saved_domain["given"])
        for key in ("epoch", "global_step", "patience_counter"):
            plan[key] = check_int(meta[key], key, minimum=0)
        if not isinstance(meta["stopped_early"], bool):
            raise TypeError("stopped_early must be a bool")
        plan["stopped_early"] = meta["stopped_early"]
        best = meta["best_loss"]
        plan["best_loss"] = math.inf if best is None else finite_float(best, "best_loss")
        hist = meta["history"]
        if not isinstance(hist, dict) or not all(isinstance(v, list) for v in hist.values()):
            raise ValueError("history must be a dict of lists")
        for key in ("bench_history", "epoch_records"):
            if not isinstance(meta[key], list) or not all(isinstance(r, dict) for r in meta[key]):
                raise ValueError(f"{key} must be a list of dicts")
        copy.deepcopy(self.optimizer).load_state_dict(meta["optimizer"])
        if meta["adaptive_lambda"] is not None:
            trial = copy.deepcopy(self.adaptive_lambda) if self.adaptive_lambda is not None \
                else AdaptiveLambda()
            trial.load_state_dict(meta["adaptive_lambda"])
        plan["rng"] = bit_generator_from_state(meta["rng"], "rng")
        if type(plan["rng"]) is not type(self.rng.bit_generator):
            raise ValueError(f"rng: the checkpoint's {type(plan['rng']).__name__} state does not "
                             f"fit this trainer's {type(self.rng.bit_generator).__name__}")
        copy.deepcopy(self.source).load_state_dict(meta["source"])
        self._check_extra_state(meta["extra"])
        plan["training"] = self._check_held_out_state(meta.get("training"))
        return plan

    def _check_extra_state(self, state: dict[str, Any]) -> None:
        """Validate a subclass state (raise on a bad one) without changing anything."""
        if state not in ({}, None):
            raise ValueError("checkpoint: extra state given for a plain Trainer")
