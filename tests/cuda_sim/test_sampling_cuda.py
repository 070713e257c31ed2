"""CUDA weights, draws with and without replacement, refinement marking and tag counting in the
simulator: the same values and indices as the CPU functions (which run as Python here,
NUMBA_DISABLE_JIT=1) for the same stream key, and closed-form / NumPy references. (That the CPU
draws follow the weights is tested on the CPU: equal indices carry it over.)"""
from __future__ import annotations

import os

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    pytest.skip("no GPU: run through tests/test_cuda_backend.py (simulator)", allow_module_level=True)

from zeroproof_nb.kernels import refine as kref  # noqa: E402
from zeroproof_nb.rational_cuda import count_tags_cuda  # noqa: E402
from zeroproof_nb.training import sampling as smp  # noqa: E402
from zeroproof_nb.training.sampling_cuda import (  # noqa: E402
    alias_draws_cuda,
    cdf_draws_cuda,
    importance_weights_cuda,
    mark_cells_cuda,
    smallest_keys_cuda,
)

PARAMS = (1e-6, 2.0, 1.0 / 100.0, 1.0)  # min_q_abs, power, 1/max_weight, 1/temperature


def _pool(n=700, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.uniform(-1, 1, n)
    q[::53] = np.nan
    q[7] = 0.0
    return q


@pytest.mark.parametrize("params", [PARAMS, (1e-3, 1.5, 0.5, 0.7)])
def test_weights_equal_the_cpu_pass(params):
    q = _pool()
    extra = np.random.default_rng(1).uniform(0, 2, q.size)
    extra[::11] = 0.0
    # exact in the simulator; a GPU's pow may round the last bit differently (p = 1.5, 1/T)
    exact = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or params[1] == 2.0
    for ex in (None, extra):
        cpu = smp.scan_weights(q, ex, params, True).weights
        got = importance_weights_cuda(q, params, ex).copy_to_host()
        if exact:
            np.testing.assert_array_equal(got, cpu)
        else:
            np.testing.assert_allclose(got, cpu, rtol=4 * np.finfo(float).eps, atol=0)
    q32 = q.astype(np.float32)
    got = importance_weights_cuda(q32, params).copy_to_host()
    np.testing.assert_allclose(got, smp.scan_weights(q32, None, params, True).weights,
                               rtol=0 if exact else 4 * np.finfo(float).eps, atol=0)


def test_draws_with_replacement_equal_the_cpu():
    q = _pool(900)
    scan = smp.scan_weights(q, None, PARAMS, False)
    key = np.uint64(987654321)
    cpu = smp.cdf_draws(scan, PARAMS, key, 400)
    got = cdf_draws_cuda(cuda.to_device(q), PARAMS, key, 400).copy_to_host()
    np.testing.assert_array_equal(got, cpu)


def test_alias_draws_equal_the_cpu():
    q = _pool(500, seed=4)
    scan = smp.scan_weights(q, None, PARAMS, True)
    table = smp.alias_table(scan)
    key = np.uint64(2 ** 40 + 3)
    cpu, _ = smp.alias_draws(table, key, 700, np.zeros(1, np.uint16), np.zeros(1, np.int64),
                             False)
    got = alias_draws_cuda(cuda.to_device(table), key, 700).copy_to_host()
    np.testing.assert_array_equal(got, cpu)
    assert np.all(scan.weights[got] > 0)


@pytest.mark.parametrize("k,key", [(1, 3), (37, 2 ** 63 + 11), (150, 5)])
def test_draws_without_replacement_equal_the_cpu(k, key):
    q = _pool(300, seed=k)
    w = smp.scan_weights(q, None, PARAMS, True).weights
    for key in (np.uint64(key),):
        cpu = smp.smallest_keys(w, key, k, None)
        got = smallest_keys_cuda(w, key, k).copy_to_host()
        np.testing.assert_array_equal(got, cpu)
        assert np.unique(got).size == k and np.all(w[got] > 0)
    excluded = np.arange(0, 300, 3)
    cpu = smp.smallest_keys(w, np.uint64(5), k, excluded)
    got = smallest_keys_cuda(cuda.to_device(w), np.uint64(5), k, excluded).copy_to_host()
    np.testing.assert_array_equal(got, cpu)
    assert not np.isin(got, excluded).any()


def test_without_replacement_takes_every_positive_weight_and_no_more():
    w = np.array([0.0, 1.0, 0.5, 0.0, 2.0, 1e-300])
    got = smallest_keys_cuda(w, np.uint64(1), 4).copy_to_host()
    assert sorted(got) == [1, 2, 4, 5]
    with pytest.raises(ValueError, match="positive"):
        smallest_keys_cuda(w, np.uint64(1), 5)
    with pytest.raises(ValueError, match=">= 0"):
        smallest_keys_cuda(w, np.uint64(1), -1)
    assert smallest_keys_cuda(w, np.uint64(1), 0).copy_to_host().size == 0


def test_refinement_marking_equals_the_cpu():
    rng = np.random.default_rng(2)
    n = 300
    q = rng.normal(scale=0.5, size=n)
    q[::17] = np.nan
    refined = rng.uniform(size=n) < 0.2
    level = rng.integers(0, 6, n).astype(np.int32)
    cpu = np.empty(n, dtype=np.bool_)
    kref.mark_cells(refined, level, np.abs(q), 4, 0.3, cpu)
    q_abs, mask = mark_cells_cuda(q, refined, level, 4, 0.3)
    np.testing.assert_array_equal(mask.copy_to_host().astype(bool), cpu)
    np.testing.assert_array_equal(q_abs.copy_to_host(), np.abs(q))
    ref = (~refined) & (level < 4) & (np.abs(q) < 0.3)
    np.testing.assert_array_equal(cpu, ref)


def test_tag_counts():
    rng = np.random.default_rng(3)
    tags = rng.integers(0, 6, 1500).astype(np.uint8)
    ref = np.bincount(np.minimum(tags, 4), minlength=5)
    np.testing.assert_array_equal(count_tags_cuda(tags), ref)
    np.testing.assert_array_equal(count_tags_cuda(cuda.to_device(tags.reshape(30, 50))), ref)
    np.testing.assert_array_equal(count_tags_cuda(np.zeros(0, dtype=np.uint8)), np.zeros(5))
    with pytest.raises(TypeError, match="uint8"):
        count_tags_cuda(np.zeros(3))
