"""Upstream's ``zeroproof.bridge`` path for the IEEE bridge (:mod:`zeroproof_nb.core`): arrays
of float ↔ transreal structured arrays, −0.0 kept."""
from .core import count_tags, from_ieee, to_ieee

__all__ = ["from_ieee", "to_ieee", "count_tags"]
