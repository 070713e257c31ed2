"""Upstream's ``zeroproof.policy`` path for the tag policy (:class:`zeroproof_nb.rational.TRPolicy`).

Upstream's global ``TRPolicyConfig`` singleton has no counterpart: a policy is an object passed
to the layer or the kernels (two runs in one process must not interact)."""
from .rational import TRPolicy

__all__ = ["TRPolicy"]
