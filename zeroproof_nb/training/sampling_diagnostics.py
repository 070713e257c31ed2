"""Near-pole sampling: importance sampling 1/|Q|^p, an adaptive grid, and their integration.

Public names (upstream's, ``zeroproof.training.sampling_diagnostics``):

* :class:`ImportanceSamplerConfig`, :class:`ImportanceSampler` — weights
  ``min(max(|q|, min_q_abs)^-p, max_weight)^(1/T)`` normalised; draws with replacement
  (inverse CDF over a block prefix sum, or an alias table after :meth:`ImportanceSampler.prepare`)
  and without replacement (exponential keys); hybrid importance + uniform batches.
* :class:`ActiveSamplerConfig`, :class:`ActiveSampler` — a structured array of axis-aligned
  cells refined where |Q| is small (see ``docs/sampling.md`` for the split rule).
* :class:`SamplingStrategy`, :class:`IntegratedSampler`, :func:`create_integrated_sampler`.
* re-exported: :class:`DiagnosticConfig`, :class:`DiagnosticMonitor` (from ``diagnostics``) and
  :class:`CurriculumConfig`, :class:`CurriculumScheduler`, :func:`combine_sample_weights`
  (from ``curriculum``).

Randomness comes only from ``numpy.random.Generator`` objects the samplers hold (seeded from the
config's ``seed`` or passed in as ``rng``). An importance batch takes one 64-bit key from the
generator; the kernels compute draw k's uniform from (key, k) (``kernels.weights.stream_bits``),
so the same seed gives the same indices whatever the numba thread count. ``state_dict()``
includes the generator's state: a restored sampler continues the same stream.

This module only re-exports; the code lives in :mod:`.sampling` (the importance sampler's array
work as plain functions: weights, probabilities, alias tables, draws), :mod:`.sampler_state`
(generator and saved-state helpers), :mod:`.importance_sampler`, :mod:`.active_sampler` and
:mod:`.integrated_sampler`.
"""
from __future__ import annotations

from .active_sampler import ActiveSampler, ActiveSamplerConfig
from .curriculum import CurriculumConfig, CurriculumScheduler, combine_sample_weights
from .diagnostics import DiagnosticConfig, DiagnosticMonitor
from .importance_sampler import ImportanceSampler, ImportanceSamplerConfig, PreparedPool
from .integrated_sampler import IntegratedSampler, SamplingStrategy, create_integrated_sampler
from .sampler_state import SampledBatch

__all__ = [
    "SamplingStrategy",
    "SampledBatch",
    "ImportanceSamplerConfig",
    "ImportanceSampler",
    "PreparedPool",
    "ActiveSamplerConfig",
    "ActiveSampler",
    "IntegratedSampler",
    "create_integrated_sampler",
    "DiagnosticConfig",
    "DiagnosticMonitor",
    "CurriculumConfig",
    "CurriculumScheduler",
    "combine_sample_weights",
]
