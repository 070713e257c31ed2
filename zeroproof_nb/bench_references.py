"""NumPy references for the benchmarks: the same outputs as the package's kernels, written with
NumPy (and the bandwidth bound of the forward pass). Used by ``zeroproof-nb bench`` and by the
repository's ``bench/`` suite (through ``bench/references.py``); not part of the numeric API."""
from __future__ import annotations

import numpy as np

from .core import tr_dtype
from .kernels.bandwidth import copy_value_tag as parallel_copy

__all__ = ["numpy_eval", "numpy_loss_and_grad", "numpy_adam_epoch", "numpy_weights",
           "parallel_copy"]


def numpy_eval(x, theta, phi, out):
    """NumPy vectorised forward with the same outputs (value and transreal tag)."""
    with np.errstate(all="ignore"):
        p = np.full_like(x, theta[-1])
        for c in theta[-2::-1]:
            p *= x
            p += c
        q = np.ones_like(x)
        if len(phi):
            q = np.full_like(x, phi[-1])
            for c in phi[-2::-1]:
                q *= x
                q += c
            q *= x
            q += 1
        y = p / q
    tag = np.zeros(x.shape, np.uint8)
    tag[np.isposinf(y)] = 1
    tag[np.isneginf(y)] = 2
    tag[np.isnan(y) | ~np.isfinite(x)] = 3
    y[~np.isfinite(x)] = np.nan
    out["value"] = y
    out["tag"] = tag
    return out


def numpy_loss_and_grad(x, t, theta, phi, mode="mask_real", delta=None, bound=1.0):
    """NumPy implementation of the fused pass (1-D monomial, one output, mse, no weights)."""
    n = x.shape[0]
    with np.errstate(all="ignore"):
        V = np.vander(x, max(len(theta), len(phi) + 1), increasing=True)
        p = V[:, :len(theta)] @ theta
        q = 1.0 + V[:, 1:len(phi) + 1] @ phi
        y = p / q
        tag = np.zeros(n, np.uint8)
        tag[np.isposinf(y)] = 1
        tag[np.isneginf(y)] = 2
        tag[np.isnan(y)] = 3
        real = (tag == 0) & np.isfinite(t)
        r = np.where(real, y - t, 0.0)
        loss = 0.5 * np.sum(r * r) / n
        g = r / n
        absq = np.abs(q)
        if mode == "saturating":
            sat = np.ones(n, bool)
        elif mode == "hybrid" and delta is not None:
            sat = absq <= delta
        else:
            sat = np.zeros(n, bool)
        inv_q = 1.0 / np.where(real, q, 1.0)
        den = q * q + bound * bound
        dp = np.where(sat, np.sign(q) / np.sqrt(den), inv_q)
        dq = np.where(sat, -p / den, -y * inv_q)
        grad_theta = np.where(real, g * dp, 0.0) @ V[:, :len(theta)]
        grad_phi = np.where(real, g * dq, 0.0) @ V[:, 1:len(phi) + 1]
        fin = np.isfinite(absq)
        stats = dict(q_min=absq[fin].min(), q_mean=absq[fin].mean(),
                     n_saturating=int(np.sum(sat & real)), n_mask_real=int(np.sum(~sat & real)),
                     near_pole_ratio=float(np.mean(absq <= delta)) if delta is not None else 0.0,
                     tag_counts=np.bincount(tag, minlength=4))
    out = np.empty(n, tr_dtype(x.dtype))
    out["value"] = y
    out["tag"] = tag
    return loss, grad_theta, grad_phi, out, q, stats


def numpy_adam_epoch(x, y, theta, phi, batches, *, lr=1e-6, betas=(0.9, 0.999), eps=1e-8,
                     seed=0, p=2.0):
    """NumPy reference for one first-order epoch over a pool: |Q| of the pool, importance
    weights 1/|Q|^p (clipped as :func:`numpy_weights`), ``batches`` batches drawn with
    ``Generator.choice``, the fused pass of each (:func:`numpy_loss_and_grad`) and an Adam step.
    Returns the parameters after the epoch."""
    rng = np.random.default_rng(seed)
    theta, phi = theta.copy(), phi.copy()
    n, b = x.shape[0], batches[1]
    q = 1.0 + np.vander(x, len(phi) + 1, increasing=True)[:, 1:] @ phi
    w = numpy_weights(q, p)
    m = np.zeros(len(theta) + len(phi))
    v = np.zeros_like(m)
    for step in range(1, batches[0] + 1):
        idx = rng.choice(n, b, p=w)
        _, g_t, g_p, *_ = numpy_loss_and_grad(x[idx], y[idx], theta, phi)
        g = np.concatenate([g_t, g_p])
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        step_ = lr * (m / (1 - betas[0] ** step)) / (np.sqrt(v / (1 - betas[1] ** step)) + eps)
        theta -= step_[:len(theta)]
        phi -= step_[len(theta):]
    return theta, phi


def numpy_weights(q, p=2.0, min_q=1e-6, max_w=100.0):
    """Importance weights 1/max(|Q|, min_q)^p clipped at ``max_w``, normalised to sum 1."""
    w = np.minimum(np.maximum(np.abs(q), min_q) ** (-p), max_w)
    return w / w.sum()
