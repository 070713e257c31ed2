"""The results of a loss-and-gradient pass: :class:`LossAndGrad` and its statistics
mapping :class:`RationalStats` (shared by the CPU pass of :mod:`.rational` and the CUDA pass of
:mod:`.rational_cuda`; both re-exported by :mod:`.rational`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

__all__ = ["LossAndGrad", "RationalStats"]


class RationalStats(Mapping):
    """Read-only mapping of the batch statistics of one loss-and-gradient pass.

    Counts and q_min/q_mean come from the kernel's pass; the |Q| percentiles (q_p10, q_p50,
    q_p90: numpy "linear" percentiles of |Q| over the finite Q evaluations) are computed from the
    returned Q on first access, since a selection costs more than the whole fused pass.
    ``dict(stats)`` materialises everything.
    """

    _LAZY = ("q_p10", "q_p50", "q_p90")

    def __init__(self, eager: dict[str, Any], abs_q_source: np.ndarray):
        self._d = dict(eager)
        self._src = abs_q_source
        self._keys = (*eager.keys(), *self._LAZY)

    def _fill(self) -> None:
        a = np.abs(self._src.reshape(-1))
        a = a[np.isfinite(a)]
        if a.size:
            p = np.percentile(a, [10.0, 50.0, 90.0], method="linear")
            vals = [float(v) for v in p]
        else:
            vals = [float("nan")] * 3
        self._d.update(zip(self._LAZY, vals))

    def __getitem__(self, key: str) -> Any:
        if key in self._LAZY and key not in self._d:
            self._fill()
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"RationalStats({dict(self)!r})"


@dataclass
class LossAndGrad:
    """Result of :func:`rational_loss_and_grad`.

    Attributes
    ----------
    loss : float
        data_loss + rejection_loss.
    data_loss, rejection_loss : float
    grad_theta, grad_phi : ndarray
        Gradients of ``loss`` with the shapes of theta and phi (computation dtype).
    tags : ndarray of uint8
        Output tags (a view of ``y["tag"]``), shape of the output.
    y : transreal array
        Outputs, bit-identical to :func:`rational_eval` with the same arguments.
    q : ndarray
        Signed denominator (Q_eff) per output.
    stats : Mapping
        See :class:`RationalStats` and ``docs/losses.md``.
    """

    loss: float
    data_loss: float
    rejection_loss: float
    grad_theta: np.ndarray
    grad_phi: np.ndarray
    tags: np.ndarray
    y: np.ndarray
    q: np.ndarray
    stats: Mapping = field(repr=False)
