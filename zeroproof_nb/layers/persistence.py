"""TRRational persistence: the configuration stored with the parameters, and the checks that
a loaded state or file passes before a layer is built from it (every field named in its error).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._validation import check_bool, check_int, check_terms, finite_float, load_npz
from ..rational import TRPolicy

POLICY_FIELDS = ("tau_q_on", "tau_q_off", "tau_p_on", "tau_p_off")


def stored_item(value: Any, name: str) -> Any:
    """The Python scalar of a stored 0-d entry (``ValueError`` for an array of another size)."""
    a = np.asarray(value)
    if a.shape != ():
        raise ValueError(f"{name} must be a single value, got shape {a.shape}")
    return a.item()


def stored_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value



def layer_config(layer: Any) -> dict[str, Any]:
    """The configuration entries of :meth:`TRRational.state_dict` (plain numbers, strings and
    a float64 domain array; the tag policy's four thresholds when it has one)."""
    cfg: dict[str, Any] = {
        "d_p": layer.d_p, "d_q": layer.d_q, "basis": layer.basis,
        "denominator": layer.denominator,
        "domain": np.array(layer.domain, dtype=np.float64), "n_outputs": layer.n_outputs,
        "shared_q": layer.shared_q, "input_dim": layer.input_dim, "alpha_phi": layer.alpha_phi,
        "init": layer.init, "dtype": layer.dtype.name,
    }
    if layer.l1_projection is not None:
        cfg["l1_projection"] = layer.l1_projection
    if layer.policy is not None:
        for f in POLICY_FIELDS:
            cfg[f"policy.{f}"] = float(getattr(layer.policy, f))
    return cfg


def load_layer_state(layer: Any, state: dict[str, Any]) -> None:
    """:meth:`TRRational.load_state_dict`: check ``state`` against ``layer``, then copy θ, φ."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    for key in ("d_p", "d_q", "n_outputs", "input_dim"):
        if key in state:
            v = check_int(stored_item(state[key], key), f"state[{key!r}]")
            if v != getattr(layer, key):
                raise ValueError(f"state has {key}={v}, this layer {getattr(layer, key)}")
    if "basis" in state and str(stored_item(state["basis"], "basis")) != layer.basis:
        raise ValueError(f"state has basis={stored_item(state['basis'], 'basis')!r}, this layer {layer.basis!r}")
    # a state without the field predates the anchored denominator: upstream's normalisation
    stored = str(stored_item(state["denominator"], "denominator")) if "denominator" in state \
        else "unit_constant"
    if stored != layer.denominator:
        raise ValueError(f"state has denominator={stored!r}, this layer {layer.denominator!r}")
    if "theta" not in state or "phi" not in state:
        raise ValueError("state must contain 'theta' and 'phi'")
    layer.set_parameters([state["theta"], state["phi"]])


def load_layer(cls: Any, path: str | os.PathLike, **kwargs: Any) -> Any:
    """:meth:`TRRational.load`: check every stored field of the file, then build ``cls``."""
    state = load_npz(path, "path")

    def item(key: str) -> Any:
        if key not in state:
            raise ValueError(f"path: the file has no {key!r} entry (not a TRRational.save file?)")
        return stored_item(state[key], key)

    ints = {k: check_int(item(k), k, minimum=1 if k in ("n_outputs", "input_dim") else 0)
            for k in ("d_p", "d_q", "n_outputs", "input_dim")}
    domain = np.asarray(state["domain"]) if "domain" in state else item("domain")
    if domain.shape != (2,) or domain.dtype.kind not in "iuf":
        raise ValueError(f"domain must be 2 numbers, got {domain!r}")
    cfg: dict[str, Any] = dict(
        ints, basis=stored_str(item("basis"), "basis"),
        domain=tuple(float(v) for v in domain),
        shared_q=check_bool(item("shared_q"), "shared_q"),
        alpha_phi=finite_float(item("alpha_phi"), "alpha_phi"),
        init=stored_str(item("init"), "init"), dtype=stored_str(item("dtype"), "dtype"),
        # files written before the anchored denominator hold upstream's normalisation
        denominator=(stored_str(item("denominator"), "denominator") if "denominator" in state
                     else "unit_constant"),
    )
    if cfg["dtype"] not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {cfg['dtype']!r}")
    # shapes of θ and φ from the stored degrees, checked before anything is allocated
    n_p = check_terms(ints["input_dim"], ints["d_p"], "d_p")
    n_q = check_terms(ints["input_dim"], ints["d_q"], "d_q") - 1
    multi = ints["n_outputs"] > 1
    want = {"theta": (ints["n_outputs"], n_p) if multi else (n_p,),
            "phi": (ints["n_outputs"], n_q) if (multi and not cfg["shared_q"]) else (n_q,)}
    for key, shape in want.items():
        if key not in state:
            raise ValueError(f"path: the file has no {key!r} entry")
        if np.asarray(state[key]).shape != shape:
            raise ValueError(f"{key} must have shape {shape} for the stored degrees, got "
                             f"{np.asarray(state[key]).shape}")
    if "l1_projection" in state:
        cfg["l1_projection"] = finite_float(item("l1_projection"), "l1_projection")
    if all(f"policy.{f}" in state for f in POLICY_FIELDS):
        cfg["policy"] = TRPolicy(**{f: finite_float(item(f"policy.{f}"), f"policy.{f}")
                                    for f in POLICY_FIELDS})
    cfg.update(kwargs)
    layer = cls(**cfg)
    layer.load_state_dict(state)
    return layer
