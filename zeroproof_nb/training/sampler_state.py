"""Validation, generator and saved-state helpers shared by the samplers.

The importance, active and integrated samplers (:mod:`.importance_sampler`,
:mod:`.active_sampler`, :mod:`.integrated_sampler`) use these to build their
``numpy.random.Generator`` objects, check pools, and validate ``load_state_dict`` input.
"""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import fields
from typing import Any, NamedTuple

import numpy as np

from .._validation import as_float_array, bit_generator_from_state, check_int

def make_rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise ValueError(f"seed must be None, an int >= 0, a SeedSequence or a Generator, got {seed!r}")


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return copy.deepcopy(rng.bit_generator.state)


def restore_rng(rng: np.random.Generator, state: dict[str, Any],
                 name: str = "rng_state") -> np.random.Generator:
    """``rng`` continuing the saved ``state`` (the same object when its bit generator is of
    the saved kind, else a new Generator). The kind goes through an allow-list and the state
    is validated on a fresh bit generator first: on an error ``rng`` is unchanged."""
    bg = bit_generator_from_state(state, name)
    if type(rng.bit_generator) is type(bg):
        rng.bit_generator.state = bg.state
        return rng
    return np.random.Generator(bg)


def check_seed(seed: Any) -> None:
    if seed is not None:
        check_int(seed, "seed", minimum=0)


def as_pool_x(x_pool: Any, n: int) -> np.ndarray:
    x = x_pool if isinstance(x_pool, np.ndarray) else np.asarray(x_pool)
    if x.ndim == 0:
        raise ValueError("x_pool must be an array of shape (N,) or (N, d), got a scalar")
    if x.shape[0] != n:
        raise ValueError(f"x_pool has {x.shape[0]} points but q_pool has {n}")
    return x


def as_pool_q(q_pool: Any, name: str = "q_pool") -> np.ndarray:
    q = as_float_array(q_pool, name, ndim=1)
    if q.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    return q


def state_mapping(state: Any, required: tuple[str, ...], name: str = "state") -> dict[str, Any]:
    """``state`` if it is a dict holding every key of ``required`` (``ValueError`` naming the
    first missing one, ``TypeError`` for a non-dict)."""
    if not isinstance(state, dict):
        raise TypeError(f"{name} must be a dict, got {type(state).__name__}")
    for key in required:
        if key not in state:
            raise ValueError(f"{name} is missing {key!r}")
    return state


def config_fields(cfg: Any, cls: type) -> dict[str, Any]:
    """The saved config dict, with only ``cls``'s field names (``ValueError`` for others)."""
    if not isinstance(cfg, dict):
        raise TypeError(f"config must be a dict, got {type(cfg).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - names)
    if unknown:
        raise ValueError(f"config has unknown fields {unknown} for {cls.__name__}")
    return dict(cfg)


def scalar_item(v: Any) -> Any:
    return v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v


def int_array(a: Any, name: str) -> np.ndarray:
    """A 1-D array of integers >= 0 as int64."""
    arr = np.asarray(a)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise TypeError(f"{name} must be a 1-D array of integers, got dtype {arr.dtype}, "
                        f"shape {arr.shape}")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0")
    return arr


def stat_float(v: Any, name: str) -> float:
    """A saved statistic: a finite float, or NaN meaning 'none' (never ±inf)."""
    v = scalar_item(v)
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    f = float(v)
    if f in (math.inf, -math.inf):
        raise ValueError(f"{name} must be finite (or NaN for none), got {f}")
    return f


class SampledBatch(NamedTuple):
    """One batch from any sampler's ``draw``: the batch inputs, their pool indices and the
    sampler's ``info`` (``"strategy"``, ``"indices"`` and the statistics of the samplers
    involved). ``sample_batch`` keeps upstream's shapes: ``(x, idx)`` for
    :class:`ImportanceSampler`, ``(x, info)`` for :class:`IntegratedSampler`."""

    x: np.ndarray
    indices: np.ndarray
    info: dict[str, Any]
