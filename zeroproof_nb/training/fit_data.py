"""The data preparation of :meth:`Trainer.fit <zeroproof_nb.training.trainer.Trainer.fit>`:
checks of the arrays, the seeded held-out split, the layer's domain and the robust-loss scale
from the data (a mixin of :class:`~zeroproof_nb.training.trainer.Trainer`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array
from ..layers import TRRational
from ..least_squares import robust_scale

__all__ = ["FitDataMixin"]


class FitDataMixin:
    """Data preparation for a trainer with ``config``, ``model`` and ``split_seed``."""

    @staticmethod
    def _check_data(x: Any, y: Any, name_x: str = "x", name_y: str = "y") -> tuple[np.ndarray, np.ndarray]:
        """(x, y) as float64 arrays of 1 or 2 dimensions with the same, non-zero length."""
        xa = as_float_array(x, name_x, ndim=(1, 2), dtype=np.float64)
        ya = as_float_array(y, name_y, ndim=(1, 2), dtype=np.float64)
        if xa.shape[0] != ya.shape[0]:
            raise ValueError(f"{name_x} and {name_y} must have the same length, got {xa.shape[0]} and {ya.shape[0]}")
        if xa.shape[0] == 0:
            raise ValueError(f"{name_x} must not be empty")
        return xa, ya

    def _split(self, xa: np.ndarray, ya: np.ndarray, wa: np.ndarray | None):
        """(train x, y, w, held-out x, y) from the seeded split (``validation_fraction``)."""
        n = xa.shape[0]
        n_val = int(round(self.config.validation_fraction * n))
        if n_val < 1 or n - n_val < 1:
            return xa, ya, wa, None, None
        perm = np.random.default_rng(self.split_seed).permutation(n)
        val = np.sort(perm[:n_val])
        train = np.sort(perm[n_val:])
        return (xa[train], ya[train], None if wa is None else wa[train], xa[val], ya[val])

    def _fit_data(self, x: Any, y: Any, x_val: Any, y_val: Any, sample_weight: Any):
        """fit's in-memory data: (train x, y, w, held-out x, y), every argument checked before
        the layer's domain is set from x (nothing changes when one is bad)."""
        xa, ya = self._check_data(x, y)
        wa = None
        if sample_weight is not None:
            wa = as_float_array(sample_weight, "sample_weight", ndim=1, dtype=np.float64)
            if wa.shape[0] != xa.shape[0] or not np.all(np.isfinite(wa)) or np.any(wa < 0) \
                    or not wa.max(initial=0.0) > 0:
                raise ValueError("sample_weight must be finite, >= 0, with a positive sum and "
                                 f"one entry per point ({xa.shape[0]})")
        usable = np.isfinite(ya).reshape(ya.shape[0], -1).any(axis=1) & \
            np.isfinite(xa).reshape(xa.shape[0], -1).all(axis=1)
        if wa is not None:
            usable &= wa > 0
        if not usable.any():
            raise ValueError("x, y: no sample with a finite x and a finite y"
                             + ("" if wa is None else " and a positive weight") + " to train on")
        given = x_val is not None or y_val is not None
        if given:
            if x_val is None or y_val is None:
                raise ValueError("x_val and y_val must be given together")
            xv, yv = self._check_data(x_val, y_val, "x_val", "y_val")
        self._domain_from_data(xa)
        return (xa, ya, wa, xv, yv) if given else self._split(xa, ya, wa)

    def _domain_from_data(self, x: np.ndarray) -> None:
        """A TRRational built without a domain gets the range of the pool's finite inputs."""
        model = self.model
        if not isinstance(model, TRRational) or model.domain_given:
            return
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            return
        lo, hi = float(finite.min()), float(finite.max())
        if not hi > lo:
            lo, hi = lo - 1.0, hi + 1.0
        model.set_domain((lo, hi))

    def _start_sigma(self, x: np.ndarray, y: np.ndarray) -> float:
        """σ of the robust losses: the normalised MAD of the model's residuals on the pool
        (floored at 1e-12·max(1, median |y|) so that an exact start keeps a threshold)."""
        pred = np.asarray(self.model.forward(x)["value"], dtype=np.float64)
        sigma = robust_scale(pred - y)
        finite_y = np.abs(y[np.isfinite(y)])
        floor = 1e-12 * max(1.0, float(np.median(finite_y)) if finite_y.size else 1.0)
        return max(sigma, floor)
