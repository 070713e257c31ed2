"""Upstream's import lines work after renaming ``zeroproof`` to ``zeroproof_nb`` (issue #15)."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

UPSTREAM_IMPORTS = [
    "from zeroproof_nb.training import AdaptiveLambda, AdaptiveLossConfig, AdaptiveLossPolicy, create_adaptive_loss",
    "from zeroproof_nb.training import CoverageTracker, CoverageMetrics",
    "from zeroproof_nb.training import TrainingConfig, HybridTrainingConfig, TRTrainer, HybridTRTrainer",
    "from zeroproof_nb.training import create_integrated_sampler, ImportanceSampler, ActiveSampler",
    "from zeroproof_nb.training import DiagnosticMonitor, CurriculumScheduler, TagPredictionHead",
    "from zeroproof_nb.autodiff.hybrid_gradient import HybridGradientSchedule, HybridGradientContext, ScheduleType, create_default_schedule",
    "from zeroproof_nb.autodiff import GradientMode",
    "from zeroproof_nb.policy import TRPolicy",
    "from zeroproof_nb.bridge import from_ieee, to_ieee",
    "from zeroproof_nb.core import TRTag",
]


@pytest.mark.parametrize("line", UPSTREAM_IMPORTS)
def test_upstream_import_line_runs(line):
    subprocess.run([sys.executable, "-c", line], check=True)


def test_reexports_are_the_same_objects():
    import zeroproof_nb.training as tr
    from zeroproof_nb.training.hybrid_trainer import HybridTrainer
    from zeroproof_nb.training.trainer import Trainer

    assert tr.TRTrainer is Trainer and tr.HybridTRTrainer is HybridTrainer
    for name in tr.__all__:
        obj = getattr(tr, name)
        home = importlib.import_module(obj.__module__) if hasattr(obj, "__module__") else None
        assert home is not None and (getattr(home, getattr(obj, "__name__", name), None) is obj)
    with pytest.raises(AttributeError, match="no attribute"):
        tr.NoSuchName  # noqa: B018
