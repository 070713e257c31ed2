"""The thin policy layer: adaptive λ_rej, coverage, tag loss, samplers, diagnostics, trainers.

The names live in the submodules, at the paths the user's documents name (e.g.
``from zeroproof_nb.training.adaptive_loss import AdaptiveLambda``); this package also re-exports
them at upstream's ``zeroproof.training`` path (imported lazily on first use), with upstream's
trainer names ``TRTrainer`` and ``HybridTRTrainer`` as aliases of ``Trainer`` and
``HybridTrainer``.
"""
from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "adaptive_loss": ("AdaptiveLossConfig", "AdaptiveLambda", "AdaptiveLossPolicy", "PolicyLoss",
                      "create_adaptive_loss"),
    "coverage": ("CoverageMetrics", "CoverageTracker", "MultiOutputCoverageTracker"),
    "curriculum": ("CurriculumConfig", "CurriculumScheduler", "combine_sample_weights"),
    "diagnostics": ("DiagnosticConfig", "DiagnosticMonitor"),
    "hybrid_trainer": ("HybridTrainingConfig", "HybridTrainer", "PoleScoreHead"),
    "sampling_diagnostics": ("SamplingStrategy", "ImportanceSamplerConfig", "ImportanceSampler",
                             "PreparedPool", "ActiveSamplerConfig", "ActiveSampler",
                             "IntegratedSampler", "create_integrated_sampler", "SampledBatch"),
    "tag_loss": ("TagClass", "tag_cross_entropy", "adaptive_tag_weight", "TagPredictionHead",
                 "compute_tag_accuracy", "compute_tag_confusion_matrix"),
    "trainer": ("TrainingConfig", "Trainer", "BatchSource"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}
#: upstream's names for the same objects
_ALIASES = {"TRTrainer": "Trainer", "HybridTRTrainer": "HybridTrainer"}

__all__ = sorted([*_LAZY, *_ALIASES])


def __getattr__(name: str) -> Any:
    target = _ALIASES.get(name, name)
    module = _LAZY.get(target)
    if module is None:
        raise AttributeError(f"module 'zeroproof_nb.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), target)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
