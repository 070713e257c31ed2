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
    "from zeroproof_nb.training import compute_tag_accuracy, compute_tag_confusion_matrix, TagClass",
    "from zeroproof_nb.training.tag_loss import compute_tag_accuracy, compute_tag_confusion_matrix",
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


# --- the four small pieces upstream code calls ---------------------------------------------

def _ref_argmax(rows):
    """First index of the largest entry, by a plain loop (independent of numpy.argmax)."""
    out = []
    for row in rows:
        best = 0
        for j, v in enumerate(row):
            if v > row[best]:
                best = j
        out.append(best)
    return out


def test_tag_accuracy_and_confusion_against_loops():
    import numpy as np

    from zeroproof_nb.core import TRTag
    from zeroproof_nb.training import compute_tag_accuracy, compute_tag_confusion_matrix

    rng = np.random.default_rng(3)
    logits = rng.standard_normal((500, 4))
    logits[::7, 2] = np.inf
    true = rng.integers(0, 4, 500).astype(np.uint8)
    pred = _ref_argmax(logits.tolist())
    acc = sum(int(p == t) for p, t in zip(pred, true)) / len(true)
    assert compute_tag_accuracy(logits, true) == acc
    names = ["REAL", "PINF", "NINF", "PHI"]
    ref = {a: {b: 0 for b in names} for a in names}
    for p, t in zip(pred, true):
        ref[names[t]][names[p]] += 1
    assert compute_tag_confusion_matrix(logits, true) == ref
    m = compute_tag_confusion_matrix(logits, [TRTag(int(t)) for t in true], as_array=True)
    assert m.shape == (4, 4) and m.sum() == 500 and m[1, 2] == ref["PINF"]["NINF"]
    # upstream's unit test: 3 of 4 right
    four = [[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [5, 0, 0, 0]]
    assert compute_tag_accuracy(four, [TRTag.REAL, TRTag.PINF, TRTag.NINF, TRTag.PHI]) == 0.75
    # codes as predictions, empty input, bad input
    assert compute_tag_accuracy(np.array([0, 1, 3], dtype=np.uint8), [0, 1, 2]) == 2 / 3
    assert np.isnan(compute_tag_accuracy([], []))
    with pytest.raises(ValueError, match="same length"):
        compute_tag_accuracy(logits[:3], true[:4])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        compute_tag_accuracy(np.zeros((3, 3)), [0, 0, 0])
    with pytest.raises(ValueError, match="NaN"):
        compute_tag_accuracy([[np.nan, 0, 0, 0]], [0])
    with pytest.raises(ValueError, match="0..3"):
        compute_tag_accuracy([0, 7], [0, 0])


@pytest.mark.parametrize("basis,domain,d_p,d_q", [("chebyshev", (-2.0, 3.0), 3, 2),
                                                  ("chebyshev", (-1.0, 1.0), 2, 1),
                                                  ("monomial", (-1.0, 1.0), 3, 2),
                                                  ("monomial", (-0.5, 2.0), 2, 3)])
def test_local_scales_bound_p_and_q_on_the_domain(basis, domain, d_p, d_q):
    import numpy as np

    from zeroproof_nb.core import to_ieee
    from zeroproof_nb.layers import TRRational

    layer = TRRational(d_p, d_q, basis=basis, domain=domain)
    rng = np.random.default_rng(0)
    layer.set_parameters([rng.standard_normal(layer.theta.shape),
                          0.3 * rng.standard_normal(layer.phi.shape)])
    sq, sp = layer.estimate_local_scales()
    b = layer.get_layer_contract()["B_k"]
    x = np.linspace(*domain, 20001)
    _, q = layer.forward(x), layer.q_values(x)
    assert np.max(np.abs(q)) <= sq * (1 + 1e-12)
    # |P| = |y * Q| where REAL
    y = to_ieee(layer.forward(x))
    fin = np.isfinite(y)
    assert np.max(np.abs(y[fin] * q[fin])) <= sp * (1 + 1e-9)
    assert sq == 1 + b * np.abs(layer.phi).sum() and sp == 1 + b * np.abs(layer.theta).sum()
    # B is the sup of |psi_k| over the domain and the terms, here from numpy.polynomial
    if basis == "chebyshev" and layer.denominator == "unit_constant":
        assert b == 1.0
    elif basis == "monomial":
        vander = np.polynomial.polynomial.polyvander(x, max(d_p, d_q))
        assert b == pytest.approx(np.abs(vander).max(), rel=1e-12)
    else:  # anchored: eta_k = (1 - t/t_a) T_{k-1}(t), largest at t = 1
        t_a = -np.cosh(np.arccosh(10.0) / d_q)
        assert b == pytest.approx(1 - 1 / t_a)


def test_layer_contract_keys_and_upstream_fallbacks():
    from zeroproof_nb.layers import TRRational

    c = TRRational(2, 2, basis="chebyshev").get_layer_contract()
    assert c == {"B_k": 1.0, "H_k": 1.0, "G_max": 1.0, "H_max": 1.0, "depth_hint": 4}


# --- sampler names and return shapes ------------------------------------------------------

def test_factory_takes_config_field_names_and_upstream_spellings():
    from zeroproof_nb.training import create_integrated_sampler

    short = create_integrated_sampler("hybrid", importance_ratio=0.6, grid_size=40,
                                      max_refinement=3, seed=0)
    long = create_integrated_sampler("hybrid", importance_batch_ratio=0.6, initial_grid_size=40,
                                     max_refinement_level=3, seed=0)
    for s in (short, long):
        assert s.importance_sampler.config.importance_batch_ratio == 0.6
        assert s.active_sampler.config.initial_grid_size == 40
        assert s.active_sampler.config.max_refinement_level == 3
    with pytest.raises(TypeError, match="both 'grid_size' and 'initial_grid_size'"):
        create_integrated_sampler(grid_size=10, initial_grid_size=10)
    with pytest.raises(TypeError, match="unexpected"):
        create_integrated_sampler(grid_sise=10)


def test_every_sampler_draws_the_same_shape_and_sample_batch_keeps_upstreams():
    import numpy as np

    from zeroproof_nb.training import (ActiveSampler, ActiveSamplerConfig, ImportanceSampler,
                                       ImportanceSamplerConfig, SampledBatch,
                                       create_integrated_sampler)

    x = np.linspace(-1, 1, 501)
    q = x - 0.3
    samplers = [ImportanceSampler(ImportanceSamplerConfig(seed=1)),
                ActiveSampler(ActiveSamplerConfig(grid_bounds=(-1.0, 1.0), seed=1)),
                create_integrated_sampler("hybrid", seed=1),
                create_integrated_sampler("importance", seed=1)]
    for s in samplers:
        b = s.draw(x, q, 64)
        assert isinstance(b, SampledBatch) and b.x.shape == (64,) and b.indices.shape == (64,)
        np.testing.assert_array_equal(b.x, x[b.indices])
        assert b.info["indices"] is b.indices and isinstance(b.info["strategy"], str)
    # upstream's shapes, same draws for the same seed
    imp_x, imp_idx = ImportanceSampler(ImportanceSamplerConfig(seed=1)).sample_batch(x, q, 64)
    np.testing.assert_array_equal(imp_idx, samplers[0].__class__(
        ImportanceSamplerConfig(seed=1)).draw(x, q, 64).indices)
    int_x, info = create_integrated_sampler("hybrid", seed=1).sample_batch(x, q, 64)
    assert isinstance(info, dict)
    np.testing.assert_array_equal(info["indices"],
                                  create_integrated_sampler("hybrid", seed=1).draw(x, q, 64).indices)
