"""How well predicted tags match the actual output tags: accuracy and the confusion matrix.

Upstream's ``zeroproof.training.tag_loss.compute_tag_accuracy`` and
``compute_tag_confusion_matrix`` (also importable from ``zeroproof_nb.training.tag_loss`` and
``zeroproof_nb.training``). A prediction is the argmax of a row of four logits (or
probabilities) in the order of the tag codes REAL=0, PINF=1, NINF=2, PHI=3 (the output of
:class:`~zeroproof_nb.training.tag_loss.TagPredictionHead`), or a tag code itself.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .core import TRTag, as_tags

__all__ = ["TAG_CLASS_NAMES", "predicted_tag_classes", "compute_tag_accuracy",
           "compute_tag_confusion_matrix"]

#: class names in code order, the keys of :func:`compute_tag_confusion_matrix`
TAG_CLASS_NAMES = tuple(t.name for t in sorted(TRTag, key=int))


def predicted_tag_classes(predictions: Any) -> np.ndarray:
    """The predicted class codes (uint8) of ``predictions``.

    Parameters
    ----------
    predictions : (N, 4) array-like of logits or probabilities (argmax per row; the first of
        tied maxima; ±inf allowed, NaN refused), or (N,) tag codes 0..3 / :class:`TRTag` values.

    Raises
    ------
    ValueError
        A 2-D input without 4 columns, NaN logits, codes outside 0..3.
    TypeError
        Non-numeric input.
    """
    if isinstance(predictions, np.ndarray) and predictions.ndim == 2 or (
            not isinstance(predictions, np.ndarray) and len(predictions) > 0
            and np.ndim(predictions[0]) == 1):
        try:
            logits = np.asarray(predictions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"predictions must be numeric logits, got {exc}") from None
        if logits.ndim != 2 or logits.shape[1] != len(TAG_CLASS_NAMES):
            raise ValueError(f"predictions must have shape (N, 4) (one logit per tag class), "
                             f"got {logits.shape}")
        if np.isnan(logits).any():
            raise ValueError("predictions must not contain NaN logits")
        return np.argmax(logits, axis=1).astype(np.uint8)
    return as_tags(predictions, "predictions").reshape(-1)


def _pair(predictions: Any, true_tags: Any) -> tuple[np.ndarray, np.ndarray]:
    pred = predicted_tag_classes(predictions)
    true = as_tags(true_tags, "true_tags").reshape(-1)
    if pred.size != true.size:
        raise ValueError(f"predictions and true_tags must have the same length, got "
                         f"{pred.size} and {true.size}")
    return pred, true


def compute_tag_accuracy(predictions: Any, true_tags: Any) -> float:
    """Fraction of samples whose predicted tag class equals the actual tag.

    Parameters
    ----------
    predictions : (N, 4) logits / probabilities, or (N,) tag codes (see
        :func:`predicted_tag_classes`)
    true_tags : (N,) uint8 tag codes or a sequence of :class:`~zeroproof_nb.core.TRTag`

    Returns
    -------
    float in [0, 1]; NaN when N = 0 (no sample, no accuracy).
    """
    pred, true = _pair(predictions, true_tags)
    if true.size == 0:
        return float("nan")
    return float(np.count_nonzero(pred == true) / true.size)


def compute_tag_confusion_matrix(predictions: Any, true_tags: Any, *,
                                 as_array: bool = False) -> Any:
    """Counts of (actual tag, predicted tag) pairs.

    Parameters
    ----------
    predictions, true_tags : as in :func:`compute_tag_accuracy`
    as_array : bool, return a (4, 4) int64 array ``m[true, predicted]`` instead

    Returns
    -------
    ``{true_name: {predicted_name: count}}`` over the names ``REAL, PINF, NINF, PHI`` (every
    pair present, zeros included), as upstream; or the array.
    """
    pred, true = _pair(predictions, true_tags)
    k = len(TAG_CLASS_NAMES)
    m = np.bincount(true.astype(np.int64) * k + pred, minlength=k * k).reshape(k, k)
    if as_array:
        return m.astype(np.int64)
    return {a: {b: int(m[i, j]) for j, b in enumerate(TAG_CLASS_NAMES)}
            for i, a in enumerate(TAG_CLASS_NAMES)}
