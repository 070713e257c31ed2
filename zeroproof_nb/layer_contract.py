"""Upstream's scale and contract queries of a rational layer: ``estimate_local_scales`` and
``get_layer_contract`` of :class:`~zeroproof_nb.layers.TRRational` delegate here.

The basis bound ``B`` is the supremum over the layer's domain and the terms of |ψ_k| (and of
the denominator terms η_k), so that |Q(x)| <= 1 + B·‖φ‖₁ and |P(x)| <= B·‖θ‖₁ on the domain:

* Chebyshev on its domain: ``B = 1`` (|T_k| <= 1 on [-1, 1]);
* the anchored Chebyshev denominator: η_k = m(t) T_{k-1}(t) with m(t) = 1 - t/t_a, so
  ``B = 1 + 1/|t_a|`` (attained at t = 1);
* monomial (x itself, no map): ``B = max(1, r**d)`` with r = max |bound of the domain| and d
  the largest degree; 1 on upstream's default domain (-1, 1), like upstream's
  ``basis.bound = max(|a|, |b|)``, which is no bound of x^k where r > 1.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .kernels.basis import ANCHOR_GROWTH

__all__ = ["basis_bound", "local_scales", "layer_contract", "DEFAULT_CONTRACT"]

#: upstream's fallback values of the contract entries a layer does not compute
DEFAULT_CONTRACT = {"B_k": 1.0, "H_k": 1.0, "G_max": 1.0, "H_max": 1.0, "depth_hint": 4}


def basis_bound(layer: Any) -> float:
    """``B``: the bound of every basis term of ``layer`` on its domain (see the module notes)."""
    if layer.basis == "chebyshev":
        if getattr(layer, "denominator", "") == "anchored" and layer.d_q >= 1:
            t_a = math.cosh(math.acosh(ANCHOR_GROWTH) / layer.d_q)
            return 1.0 + 1.0 / t_a
        return 1.0
    r = max(abs(float(v)) for v in np.ravel(layer.domain))
    return float(max(1.0, r ** max(layer.d_p, layer.d_q)))


def local_scales(layer: Any) -> tuple[float, float]:
    """``(1 + B·‖φ‖₁, 1 + B·‖θ‖₁)``: upstream's scales of Q and P, the factors
    ``enable_policy_from_model`` multiplies the tag-policy thresholds with (every head's
    coefficients in the norms)."""
    b = basis_bound(layer)
    phi = float(np.sum(np.abs(np.asarray(layer.phi, dtype=np.float64))))
    theta = float(np.sum(np.abs(np.asarray(layer.theta, dtype=np.float64))))
    return 1.0 + b * phi, 1.0 + b * theta


def layer_contract(layer: Any) -> dict[str, Any]:
    """Upstream's layer contract ``{B_k, H_k, G_max, H_max, depth_hint}``: ``B_k`` the basis
    bound of :func:`basis_bound`, the other entries upstream's fallbacks (1, 1, 1, 4), which
    upstream's rational layer never overrides either."""
    return {**DEFAULT_CONTRACT, "B_k": basis_bound(layer)}
