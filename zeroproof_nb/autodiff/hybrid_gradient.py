"""Upstream's ``zeroproof.autodiff.hybrid_gradient`` path (see :mod:`zeroproof_nb.gradients`)."""
from ..gradients import (
    GradientMode,
    HybridGradientContext,
    HybridGradientSchedule,
    ScheduleType,
    create_default_schedule,
)

__all__ = ["GradientMode", "HybridGradientContext", "HybridGradientSchedule", "ScheduleType",
           "create_default_schedule"]
