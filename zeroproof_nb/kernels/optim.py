"""In-place optimizer updates over flat parameter arrays (one call per parameter array).

The scalars arrive in the parameters' dtype, so a float32 parameter is updated in float32
arithmetic, exactly like the NumPy expressions the docstrings of :mod:`zeroproof_nb.optim`
give.
"""
from __future__ import annotations

import math

from numba import njit


@njit(cache=True, error_model="numpy")
def adam_update(p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bias1, bias2,
                eps, weight_decay):
    """One Adam step on flat arrays: with d = g + wd·p, m ← β1·m + (1−β1)·d,
    v ← β2·v + (1−β2)·d², p ← p − lr·(m/bias1)/(√(v/bias2) + eps)."""
    for i in range(p.shape[0]):
        d = g[i]
        if weight_decay != 0:
            d = d + weight_decay * p[i]
        m[i] = m[i] * beta1 + one_minus_beta1 * d
        v[i] = v[i] * beta2 + (one_minus_beta2 * d) * d
        p[i] = p[i] - lr * (m[i] / bias1) / (math.sqrt(v[i] / bias2) + eps)


@njit(cache=True, error_model="numpy")
def sgd_update(p, g, buf, lr, momentum, nesterov, weight_decay):
    """One SGD step on flat arrays: d = g + wd·p; with momentum buf ← μ·buf + d and the step
    d + μ·buf (Nesterov) or buf; p ← p − lr·step."""
    for i in range(p.shape[0]):
        d = g[i]
        if weight_decay != 0:
            d = d + weight_decay * p[i]
        if momentum != 0:
            buf[i] = buf[i] * momentum + d
            if nesterov:
                d = d + momentum * buf[i]
            else:
                d = buf[i]
        p[i] = p[i] - lr * d


@njit(cache=True)
def adam_bias_corrections(beta1, beta2, t):
    """Adam's bias corrections ``(1 − β1^t, 1 − β2^t)`` in float64 for step t ≥ 1 (C ``pow``,
    as Python's ``beta**t`` computes it)."""
    ft = float(t)
    return 1.0 - math.pow(beta1, ft), 1.0 - math.pow(beta2, ft)
