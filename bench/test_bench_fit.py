"""``fit_rational`` (data -> degrees, poles, residues) beside SciPy's AAA on the same samples.

tan on [-3, 3] with 1% multiplicative noise, N = 500 / 2000 points (small / medium);
``fit_rational(x, y, max_degree=6)`` against ``scipy.interpolate.AAA(x, y, rtol=0.01)`` (the
tolerance of the noise: AAA's default on noisy data runs to 100 support points and Froissart
doublets, see docs/fit_rational.md). Both must find each of the two poles ±π/2 within 1e-2; the ratio
(AAA's time over ours) is in ``extra_info``. Quality is compared in bench/fit_quality.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.interpolate import AAA

import zeroproof_nb as zp
from bench.conftest import sized


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, n)
    return x, np.tan(x) * (1 + 0.01 * rng.standard_normal(n))


def _aaa(x: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return AAA(x, y, rtol=0.01)


@pytest.mark.parametrize("n", sized(small=500, medium=2000))
def test_fit_rational_vs_aaa(benchmark, ratio_gate, n):
    x, y = _data(n)
    fit = zp.fit_rational(x, y, max_degree=6)
    true = np.array([-np.pi / 2, np.pi / 2])
    ours = np.asarray(fit.poles, float).ravel()
    assert np.min(np.abs(ours[:, None] - true), axis=0).max() < 1e-2
    aaa_poles = _aaa(x, y).poles()
    aaa_real = aaa_poles[np.abs(aaa_poles.imag) < 1e-8].real
    assert np.min(np.abs(aaa_real[:, None] - true), axis=0).max() < 1e-2
    benchmark.group = f"fit-rational-n{n}"
    benchmark.extra_info.update(n=n, degrees=list(fit.degrees))
    ratio_gate(lambda: zp.fit_rational(x, y, max_degree=6), {"scipy_aaa": lambda: _aaa(x, y)},
               budget_s=2.0)
