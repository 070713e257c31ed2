"""Layers: parameters held as NumPy arrays, math in :mod:`zeroproof_nb.kernels`."""
from .rational import TRRational

__all__ = ["TRRational"]
