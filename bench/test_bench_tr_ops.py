"""Elementwise transreal operations beside NumPy, in the same rounds (``ratio_gate``).

``tr_add``, ``tr_mul``, ``tr_div`` (binary, two transreal arrays of N = 10^4 / 10^6 / 10^7
entries, mostly REAL with every tag present), ``tr_log`` (unary) and ``tr_sum`` (the
compensated, chunked reduction) into reused ``out`` buffers, each beside a NumPy version of
the same outputs: the IEEE operation on the values, then the tag of every entry (REAL, +inf,
-inf or PHI, from the input tags and the IEEE result). ``tr_sum``'s reference is ``np.sum`` of
the REAL values plus the tag counts it needs.
"""
from __future__ import annotations

import numpy as np
import pytest

import zeroproof_nb as zp
from bench.conftest import sized

BINARY = {"add": (zp.tr_add, np.add), "mul": (zp.tr_mul, np.multiply),
          "div": (zp.tr_div, np.divide)}


def _operand(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.uniform(-2, 2, n)
    special = rng.random(n)
    v[special < 0.01] = np.inf
    v[(special >= 0.01) & (special < 0.02)] = -np.inf
    v[(special >= 0.02) & (special < 0.03)] = np.nan
    v[(special >= 0.03) & (special < 0.04)] = 0.0
    return zp.from_ieee(v)


def numpy_tags(a: np.ndarray, b: np.ndarray | None, y: np.ndarray, tag: np.ndarray) -> None:
    """Tags of an elementwise result: PHI from a PHI input or a NaN result, else by the sign of
    an infinite result, else REAL (written into ``tag``)."""
    phi = (a["tag"] == 3) | np.isnan(y)
    if b is not None:
        phi |= b["tag"] == 3
    tag[...] = 0
    tag[np.isposinf(y)] = 1
    tag[np.isneginf(y)] = 2
    tag[phi] = 3


def numpy_binary(ufunc, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The IEEE operation on the values (infinities from the tags), then the tags."""
    with np.errstate(all="ignore"):
        y = ufunc(zp.to_ieee(a), zp.to_ieee(b))
    numpy_tags(a, b, y, out["tag"])
    out["value"] = np.where(out["tag"] == 0, y, 0.0)
    return out


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000, large=10_000_000))
def test_binary(benchmark, ratio_gate, n, op):
    kernel, ufunc = BINARY[op]
    a, b = _operand(n, 0), _operand(n, 1)
    out = np.empty_like(a)
    ref = np.empty_like(a)
    kernel(a, b, out=out)
    numpy_binary(ufunc, a, b, ref)
    both_real = (a["tag"] == 0) & (b["tag"] == 0) & (ref["tag"] == 0)
    np.testing.assert_allclose(out["value"][both_real], ref["value"][both_real], rtol=1e-15)
    benchmark.group = f"tr-ops-n{n}"
    benchmark.extra_info.update(n=n, op=op)
    ratio_gate(lambda: kernel(a, b, out=out), {"numpy": lambda: numpy_binary(ufunc, a, b, ref)})


def numpy_log(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        y = np.log(zp.to_ieee(a))
    numpy_tags(a, None, y, out["tag"])
    out["value"] = np.where(out["tag"] == 0, y, 0.0)
    return out


@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000, large=10_000_000))
def test_log(benchmark, ratio_gate, n):
    a = _operand(n, 0)
    out, ref = np.empty_like(a), np.empty_like(a)
    zp.tr_log(a, out=out)
    numpy_log(a, ref)
    real = ref["tag"] == 0
    np.testing.assert_allclose(out["value"][real], ref["value"][real], rtol=1e-14)
    benchmark.group = f"tr-ops-n{n}"
    benchmark.extra_info.update(n=n, op="log")
    ratio_gate(lambda: zp.tr_log(a, out=out), {"numpy": lambda: numpy_log(a, ref)})


def numpy_sum(a: np.ndarray) -> tuple[float, int]:
    tags = np.bincount(a["tag"], minlength=4)
    return float(np.sum(a["value"][a["tag"] == 0])), int(tags.argmax())


@pytest.mark.parametrize("n", sized(small=10_000, medium=1_000_000, large=10_000_000))
def test_sum(benchmark, ratio_gate, n):
    a = zp.from_ieee(np.random.default_rng(0).uniform(-1, 1, n))
    total = zp.tr_sum(a)
    assert total["tag"] == 0
    np.testing.assert_allclose(total["value"], numpy_sum(a)[0], rtol=1e-9)
    benchmark.group = f"tr-ops-n{n}"
    benchmark.extra_info.update(n=n, op="sum")
    ratio_gate(lambda: zp.tr_sum(a), {"numpy": lambda: numpy_sum(a)})
