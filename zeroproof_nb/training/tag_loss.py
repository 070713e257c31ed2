"""Tag loss: a softmax cross-entropy between predicted tag logits and the actual output tags.

Four classes in the order of the tag codes: REAL=0, PINF=1, NINF=2, PHI=3. Upstream used a cubic
Taylor "pseudo-softmax" and ``d + d^2/2`` in place of ``-log p``; here both are the real thing
(see ``docs/deviations.md``).
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np

from .._validation import as_float_array, check_finite, check_in_range, check_int, check_nonnegative
from ..core import TRTag, as_tags
from ..tag_metrics import compute_tag_accuracy, compute_tag_confusion_matrix

__all__ = [
    "TagClass",
    "N_TAG_CLASSES",
    "log_softmax",
    "tag_cross_entropy",
    "adaptive_tag_weight",
    "TagPredictionHead",
    "compute_tag_accuracy",
    "compute_tag_confusion_matrix",
]

N_TAG_CLASSES = 4

#: coverage above which the adaptive tag-loss weight starts to rise (upstream's constant)
ADAPTIVE_WEIGHT_START = 0.98


class TagClass(IntEnum):
    """Tag classes for the tag-prediction head, equal to the :class:`TRTag` codes."""

    REAL = 0
    PINF = 1
    NINF = 2
    PHI = 3

    @classmethod
    def from_tag(cls, tag: Any) -> "TagClass":
        """Class of a :class:`TRTag` (or tag code 0..3); other codes raise ``ValueError``."""
        try:
            return cls(int(TRTag(int(tag))))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"tag must be a TRTag code 0..3, got {tag!r}") from exc

    def to_onehot(self) -> np.ndarray:
        """One-hot float64 vector of length 4."""
        v = np.zeros(N_TAG_CLASSES)
        v[int(self)] = 1.0
        return v


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of an (N, K) array, stable by log-sum-exp (max subtracted)."""
    m = np.max(logits, axis=-1, keepdims=True)
    z = logits - m
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def _check_logits(logits: Any) -> np.ndarray:
    z = as_float_array(logits, "logits", ndim=2)
    if z.shape[1] != N_TAG_CLASSES:
        raise ValueError(f"logits must have shape (N, {N_TAG_CLASSES}), got {z.shape}")
    check_finite(z, "logits")
    return z


def _sample_weights(n: int, y: np.ndarray, sample_weight: Any, class_weight: Any) -> np.ndarray | None:
    """Per-sample weight ``sample_weight[i] * class_weight[y[i]]``, or None when both are None."""
    w = None
    if sample_weight is not None:
        sw = as_float_array(sample_weight, "sample_weight", ndim=1, dtype=np.float64)
        if sw.shape[0] != n:
            raise ValueError(f"sample_weight must have length {n}, got {sw.shape[0]}")
        check_finite(sw, "sample_weight")
        if np.any(sw < 0):
            raise ValueError("sample_weight must be >= 0")
        w = sw
    if class_weight is not None:
        cw = as_float_array(class_weight, "class_weight", ndim=1, dtype=np.float64)
        if cw.shape[0] != N_TAG_CLASSES:
            raise ValueError(f"class_weight must have length {N_TAG_CLASSES}, got {cw.shape[0]}")
        check_finite(cw, "class_weight")
        if np.any(cw < 0):
            raise ValueError("class_weight must be >= 0")
        w = cw[y] if w is None else w * cw[y]
    return w


def tag_cross_entropy(
    logits: Any,
    tags: Any,
    sample_weight: Any = None,
    class_weight: Any = None,
) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy between tag logits and actual tags, and its gradient.

    ``loss = (1/N) * sum_i w_i * (-log softmax(logits_i)[tags_i])`` with
    ``w_i = sample_weight[i] * class_weight[tags[i]]`` (1 when not given).

    Parameters
    ----------
    logits : (N, 4) array of finite floats
    tags : (N,) uint8 array, transreal array or list of TRTag (the target classes)
    sample_weight : (N,) array >= 0, optional
    class_weight : (4,) array >= 0, optional
        e.g. ``[1, 2, 2, 2]`` reproduces upstream's doubling for non-REAL tags.

    Returns
    -------
    loss : float (0.0 for N = 0)
    grad_logits : (N, 4) array, ``w_i * (softmax(logits_i) - onehot(tags_i)) / N``
    """
    z = _check_logits(logits)
    y = as_tags(tags).reshape(-1)
    n = z.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"tags must have length {n} (rows of logits), got {y.shape[0]}")
    if n == 0:
        return 0.0, np.zeros_like(z)
    w = _sample_weights(n, y, sample_weight, class_weight)
    logp = log_softmax(z)
    rows = np.arange(n)
    nll = -logp[rows, y]
    grad = np.exp(logp)
    grad[rows, y] -= 1.0
    if w is None:
        loss = float(np.sum(nll)) / n
        grad /= n
    else:
        loss = float(np.dot(w, nll)) / n
        grad *= (w / n)[:, None].astype(grad.dtype, copy=False)
    return loss, grad


def adaptive_tag_weight(coverage: float, w0: float = 0.05, wmax: float = 0.2) -> float:
    """Tag-loss weight that rises linearly from ``w0`` to ``wmax`` as coverage goes 0.98 -> 1.0.

    ``w0`` for ``coverage <= 0.98``; else ``min(w0 + (coverage - 0.98)/0.02 * (wmax - w0), wmax)``
    (upstream's rule: the tag loss grows when almost every output is REAL).
    """
    c = check_in_range(coverage, "coverage", 0.0, 1.0)
    w0 = check_nonnegative(w0, "w0")
    wmax = check_nonnegative(wmax, "wmax")
    if c > ADAPTIVE_WEIGHT_START:
        scale = (c - ADAPTIVE_WEIGHT_START) / (1.0 - ADAPTIVE_WEIGHT_START)
        return min(w0 + scale * (wmax - w0), wmax)
    return w0


class TagPredictionHead:
    """A one-hidden-layer ReLU MLP from basis features to 4 tag logits.

    ``logits = relu(F @ W1.T + b1) @ W2.T + b2``. The parameters are NumPy arrays updated in place by
    the project's optimizers (``zeroproof_nb.optim``), in the order of :meth:`parameters`.

    Parameters
    ----------
    n_features : int >= 1
        Width F of the feature matrix, e.g. of ``zeroproof_nb.rational.basis_features(x, ...)``.
    hidden_dim : int >= 1
    seed : int, numpy.random.Generator or None
        He-normal initialisation of W1 and W2 (biases start at 0).
    """

    def __init__(self, n_features: int, hidden_dim: int = 8, seed: Any = None) -> None:
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1)
        rng = np.random.default_rng(seed)
        self.W1 = rng.standard_normal((self.hidden_dim, self.n_features)) * np.sqrt(2.0 / self.n_features)
        self.b1 = np.zeros(self.hidden_dim)
        self.W2 = rng.standard_normal((N_TAG_CLASSES, self.hidden_dim)) * np.sqrt(2.0 / self.hidden_dim)
        self.b2 = np.zeros(N_TAG_CLASSES)

    def parameters(self) -> list[np.ndarray]:
        """``[W1 (H, F), b1 (H,), W2 (4, H), b2 (4,)]``, the live arrays."""
        return [self.W1, self.b1, self.W2, self.b2]

    def _features(self, features: Any) -> np.ndarray:
        f = as_float_array(features, "features", ndim=2, dtype=np.float64)
        if f.shape[1] != self.n_features:
            raise ValueError(f"features must have shape (N, {self.n_features}), got {f.shape}")
        check_finite(f, "features")
        return f

    def _forward(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pre = f @ self.W1.T + self.b1
        h = np.maximum(pre, 0.0)
        return pre, h @ self.W2.T + self.b2

    def forward(self, features: Any) -> np.ndarray:
        """Tag logits, shape (N, 4), for a feature matrix of shape (N, F)."""
        return self._forward(self._features(features))[1]

    __call__ = forward

    def predict_proba(self, features: Any) -> np.ndarray:
        """Softmax probabilities, shape (N, 4)."""
        return np.exp(log_softmax(self.forward(features)))

    def predict(self, features: Any) -> np.ndarray:
        """Most likely tag per row, uint8 codes of shape (N,)."""
        return np.argmax(self.forward(features), axis=1).astype(np.uint8)

    def loss_and_grad(
        self,
        features: Any,
        tags: Any,
        sample_weight: Any = None,
        class_weight: Any = None,
    ) -> tuple[float, list[np.ndarray]]:
        """Tag cross-entropy (see :func:`tag_cross_entropy`) and its gradients.

        Returns
        -------
        loss : float
        grads : list of arrays shaped like :meth:`parameters` (dW1, db1, dW2, db2)
        """
        f = self._features(features)
        pre, logits = self._forward(f)
        loss, g = tag_cross_entropy(logits, tags, sample_weight=sample_weight, class_weight=class_weight)
        h = np.maximum(pre, 0.0)
        dW2 = g.T @ h
        db2 = g.sum(axis=0)
        dh = (g @ self.W2) * (pre > 0.0)
        dW1 = dh.T @ f
        db1 = dh.sum(axis=0)
        return loss, [dW1, db1, dW2, db2]
