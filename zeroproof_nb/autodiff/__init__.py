"""Upstream's ``zeroproof.autodiff`` path for the gradient-mode names that exist here (the
objects live in :mod:`zeroproof_nb.gradients`; there is no per-scalar autodiff graph: the
gradients come from the fused kernels)."""
from .hybrid_gradient import (
    GradientMode,
    HybridGradientContext,
    HybridGradientSchedule,
    ScheduleType,
    create_default_schedule,
)

__all__ = ["GradientMode", "HybridGradientContext", "HybridGradientSchedule", "ScheduleType",
           "create_default_schedule"]
