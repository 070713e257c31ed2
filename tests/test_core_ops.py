"""Elementwise transreal ops and reductions against the reference tables (upstream_behaviour.md
§1.2-§1.5, written out here by hand), NumPy's IEEE results, and math.fsum."""
import math
from fractions import Fraction

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zeroproof_nb.core import (
    TRTag,
    from_ieee,
    to_ieee,
    tr_abs,
    tr_add,
    tr_array,
    tr_div,
    tr_dtype,
    tr_log,
    tr_mean,
    tr_mul,
    tr_neg,
    tr_pow_int,
    tr_sign,
    tr_sqrt,
    tr_sub,
    tr_sum,
)

REAL, PINF, NINF, PHI = (int(t) for t in TRTag)

# operands of the reference tables, in their order: 2, -3, +0, -0, +inf, -inf, PHI
OPERANDS = from_ieee(np.array([2.0, -3.0, 0.0, -0.0, np.inf, -np.inf, np.nan]))


def _parse(cell):
    """Expected (value, tag) of one table cell: 'PHI', '+inf', '-inf', '-0', '0' or a number
    (fractions such as '-2/3' allowed). '0' means +0 and '-0' means -0."""
    if cell == "PHI":
        return math.nan, PHI
    if cell == "+inf":
        return math.inf, PINF
    if cell == "-inf":
        return -math.inf, NINF
    if cell == "-0":
        return -0.0, REAL
    return float(Fraction(cell)), REAL


def _table(text):
    rows = [line.split() for line in text.strip().splitlines()]
    assert len(rows) == 7 and all(len(r) == 7 for r in rows)
    return rows


def _check_cell(res, cell, where):
    ev, et = _parse(cell)
    assert int(res["tag"]) == et, f"{where}: tag {int(res['tag'])}, expected {cell}"
    v = float(res["value"])
    if et == PHI:
        assert math.isnan(v), where
    else:
        assert v == ev, f"{where}: value {v}, expected {cell}"
        assert math.copysign(1.0, v) == math.copysign(1.0, ev), f"{where}: sign of zero"


def _check_table(op, text):
    table = _table(text)
    res = op(OPERANDS[:, None], OPERANDS[None, :])
    assert res.shape == (7, 7)
    names = ["2", "-3", "+0", "-0", "+inf", "-inf", "PHI"]
    for i in range(7):
        for j in range(7):
            _check_cell(res[i, j], table[i][j], f"{op.__name__}({names[i]}, {names[j]})")


# reference §1.2, ADD (row = a, column = b)
ADD_TABLE = """
 4     -1    2     2     +inf  -inf  PHI
 -1    -6    -3    -3    +inf  -inf  PHI
 2     -3    0     0     +inf  -inf  PHI
 2     -3    0     -0    +inf  -inf  PHI
 +inf  +inf  +inf  +inf  +inf  PHI   PHI
 -inf  -inf  -inf  -inf  PHI   -inf  PHI
 PHI   PHI   PHI   PHI   PHI   PHI   PHI
"""

# SUB = a + neg(b) (neg(+0) = -0), written out from the ADD rules
SUB_TABLE = """
 0     5     2     2     -inf  +inf  PHI
 -5    0     -3    -3    -inf  +inf  PHI
 -2    3     0     0     -inf  +inf  PHI
 -2    3     -0    0     -inf  +inf  PHI
 +inf  +inf  +inf  +inf  PHI   +inf  PHI
 -inf  -inf  -inf  -inf  -inf  PHI   PHI
 PHI   PHI   PHI   PHI   PHI   PHI   PHI
"""

# MUL rules of §1.2: IEEE with signed zeros for REAL x REAL; REAL != 0 x inf by sign;
# +-0 x +-inf = PHI; inf x inf by sign; PHI absorbs
MUL_TABLE = """
 4     -6    0     -0    +inf  -inf  PHI
 -6    9     -0    0     -inf  +inf  PHI
 0     -0    0     -0    PHI   PHI   PHI
 -0    0     -0    0     PHI   PHI   PHI
 +inf  -inf  PHI   PHI   +inf  -inf  PHI
 -inf  +inf  PHI   PHI   -inf  +inf  PHI
 PHI   PHI   PHI   PHI   PHI   PHI   PHI
"""

# reference §1.2, DIV (finite / +-inf is +0, even -3/+inf; x / -0 reads the zero's sign)
DIV_TABLE = """
 1     -2/3  +inf  -inf  0     0     PHI
 -3/2  1     -inf  +inf  0     0     PHI
 0     -0    PHI   PHI   0     0     PHI
 -0    0     PHI   PHI   0     0     PHI
 +inf  -inf  +inf  -inf  PHI   PHI   PHI
 -inf  +inf  -inf  +inf  PHI   PHI   PHI
 PHI   PHI   PHI   PHI   PHI   PHI   PHI
"""


@pytest.mark.parametrize(
    "op, text",
    [(tr_add, ADD_TABLE), (tr_sub, SUB_TABLE), (tr_mul, MUL_TABLE), (tr_div, DIV_TABLE)],
    ids=["add", "sub", "mul", "div"],
)
def test_binary_tables(op, text):
    _check_table(op, text)


# §1.3 unary ops over 2, -3, +0, -0, +inf, -inf, PHI
UNARY_ROWS = {
    tr_neg: "-2 3 -0 0 -inf +inf PHI",
    tr_abs: "2 3 0 0 +inf +inf PHI",
    tr_sign: "1 -1 0 0 1 -1 PHI",
    tr_sqrt: f"{Fraction(math.sqrt(2.0))} PHI 0 -0 +inf PHI PHI",
    tr_log: f"{Fraction(math.log(2.0))} PHI PHI PHI +inf PHI PHI",
}


@pytest.mark.parametrize("op", list(UNARY_ROWS), ids=lambda f: f.__name__)
def test_unary_table(op):
    res = op(OPERANDS)
    for j, cell in enumerate(UNARY_ROWS[op].split()):
        _check_cell(res[j], cell, f"{op.__name__} operand {j}")


# §1.3 pow_int: k=0 -> 1 except 0^0, inf^0, PHI^0 = PHI; k<0 = 1 / x^|k|
POW_ROWS = {
    0: "1 1 PHI PHI PHI PHI PHI",
    1: "2 -3 0 -0 +inf -inf PHI",
    2: "4 9 0 0 +inf +inf PHI",
    3: "8 -27 0 -0 +inf -inf PHI",
    -1: "1/2 -1/3 +inf -inf 0 0 PHI",
    -2: "1/4 1/9 +inf +inf 0 0 PHI",
    -3: "1/8 -1/27 +inf -inf 0 0 PHI",
}


@pytest.mark.parametrize("k", list(POW_ROWS))
def test_pow_int_table(k):
    res = tr_pow_int(OPERANDS, k)
    for j, cell in enumerate(POW_ROWS[k].split()):
        _check_cell(res[j], cell, f"pow_int operand {j}, k={k}")


def test_pow_int_values_and_overflow():
    x = np.array([1.5, -1.1, 0.3, -7.0])
    for k in (5, 6, 17, -4, -9):
        got = to_ieee(tr_pow_int(x, k))
        np.testing.assert_allclose(got, x**k, rtol=1e-14)
    assert int(tr_pow_int(10.0, 400)["tag"]) == PINF
    assert int(tr_pow_int(-10.0, 401)["tag"]) == NINF
    r = tr_pow_int(10.0, -400)
    assert int(r["tag"]) == REAL and float(r["value"]) == 0.0 and not np.signbit(r["value"])
    with pytest.raises(TypeError, match="k"):
        tr_pow_int(OPERANDS, 2.0)
    with pytest.raises(ValueError, match="k"):
        tr_pow_int(OPERANDS, 2**63)


def test_overflow_to_infinity_by_sign_rules():
    big = 1e308
    assert int(tr_add(big, big)["tag"]) == PINF
    assert int(tr_sub(-big, big)["tag"]) == NINF
    assert int(tr_mul(1e200, -1e200)["tag"]) == NINF
    assert int(tr_mul(-1e200, -1e200)["tag"]) == PINF
    assert int(tr_div(-1e300, 1e-300)["tag"]) == NINF
    assert int(tr_div(-1e300, -1e-300)["tag"]) == PINF
    # float32 results overflow at the float32 range, not float64's
    f = np.float32
    r = tr_mul(np.array([3e38, -3e38], f), np.array([10.0, 10.0], f))
    assert r.dtype == tr_dtype(np.float32)
    assert list(r["tag"]) == [PINF, NINF] and np.all(np.isinf(r["value"]))


def test_non_real_values_stored_as_ieee():
    res = tr_div(OPERANDS[:, None], OPERANDS[None, :])
    tags, vals = res["tag"], res["value"]
    assert np.all(vals[tags == PINF] == np.inf)
    assert np.all(vals[tags == NINF] == -np.inf)
    assert np.all(np.isnan(vals[tags == PHI]))
    assert np.all(np.isfinite(vals[tags == REAL]))


def test_hand_made_real_nan_and_inf_are_read_as_phi_and_inf():
    t = tr_array(np.array([np.nan, np.inf, 1.0]), np.array([REAL, REAL, PHI], np.uint8))
    assert list(tr_add(t, 1.0)["tag"]) == [PHI, PINF, PHI]


def test_dtype_rules_and_plain_inputs():
    f32 = np.ones(3, np.float32)
    assert tr_add(f32, f32).dtype == tr_dtype(np.float32)
    assert tr_add(f32, np.ones(3)).dtype == tr_dtype(np.float64)
    assert tr_add(f32, 1.0).dtype == tr_dtype(np.float64)
    assert tr_add([1, 2], 3).dtype == tr_dtype(np.float64)
    assert tr_sqrt(f32).dtype == tr_dtype(np.float32)
    r = tr_div(2, 0.0)
    assert r.shape == () and int(r["tag"]) == PINF


def test_out_argument_and_aliasing():
    a = from_ieee(np.arange(6.0).reshape(2, 3))
    b = from_ieee(np.array([1.0, -0.0, np.inf]))
    out = np.empty((2, 3), dtype=tr_dtype(np.float64))
    r = tr_mul(a, b, out=out)
    assert r is out
    np.testing.assert_array_equal(to_ieee(out), to_ieee(tr_mul(a, b)))
    # in place, and an overlapping reversed view (must not read already-written entries)
    x = from_ieee(np.arange(8.0))
    expected = to_ieee(tr_sub(x.copy(), x[::-1].copy()))
    tr_sub(x, x[::-1], out=x)
    np.testing.assert_array_equal(to_ieee(x), expected)
    # non-contiguous out
    big = np.empty((2, 6), dtype=tr_dtype(np.float64))
    tr_neg(a, out=big[:, ::2])
    np.testing.assert_array_equal(to_ieee(big[:, ::2]), -np.arange(6.0).reshape(2, 3))


def test_bad_arguments():
    a = from_ieee(np.ones(3))
    with pytest.raises(ValueError, match="broadcast"):
        tr_add(a, np.ones(4))
    with pytest.raises(TypeError, match="b"):
        tr_add(a, np.array(["x", "y", "z"]))
    with pytest.raises(TypeError, match="out"):
        tr_add(a, a, out=np.empty(3, dtype=tr_dtype(np.float32)))
    with pytest.raises(ValueError, match="out"):
        tr_add(a, a, out=np.empty(4, dtype=tr_dtype(np.float64)))
    with pytest.raises(ValueError, match="mode"):
        tr_sum(a, mode="lenient")
    with pytest.raises(ValueError, match="axis"):
        tr_sum(a, axis=1)
    with pytest.raises(TypeError, match="axis"):
        tr_sum(a, axis=0.5)


# ----------------------------------------------------------------------------------------------
# hypothesis properties
# ----------------------------------------------------------------------------------------------

SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -2.5, 1e308, -1e308, 5e-324]
_elem = st.one_of(st.sampled_from(SPECIALS), st.floats(allow_nan=True, allow_infinity=True))


def _pair(shape_strategy=hnp.array_shapes(max_dims=2, max_side=6)):
    return shape_strategy.flatmap(
        lambda s: st.tuples(
            hnp.arrays(np.float64, s, elements=_elem), hnp.arrays(np.float64, s, elements=_elem)
        )
    )


def _same(x, y):
    """Bitwise-equal IEEE arrays (NaN == NaN, signed zeros distinguished)."""
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    np.testing.assert_array_equal(x, y)
    num = ~np.isnan(x)
    np.testing.assert_array_equal(np.signbit(x[num]), np.signbit(y[num]))


@settings(max_examples=40, deadline=None)
@given(_pair())
def test_commutativity_of_add_and_mul(pair):
    a, b = (from_ieee(v) for v in pair)
    for op in (tr_add, tr_mul):
        r1, r2 = op(a, b), op(b, a)
        np.testing.assert_array_equal(r1["tag"], r2["tag"])
        _same(to_ieee(r1), to_ieee(r2))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=6), elements=_elem))
def test_phi_absorbs(x):
    a = from_ieee(x)
    phi = from_ieee(np.full(x.shape, np.nan))
    for op in (tr_add, tr_sub, tr_mul, tr_div):
        assert np.all(op(a, phi)["tag"] == PHI)
        assert np.all(op(phi, a)["tag"] == PHI)
    for op in (tr_neg, tr_abs, tr_sign, tr_sqrt, tr_log):
        assert np.all(op(phi)["tag"] == PHI)
    assert np.all(tr_pow_int(phi, 3)["tag"] == PHI)


@settings(max_examples=30, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4), st.data())
def test_broadcasting_like_numpy(shapes, data):
    sa, sb = shapes.input_shapes
    a = data.draw(hnp.arrays(np.float64, sa, elements=_elem))
    b = data.draw(hnp.arrays(np.float64, sb, elements=_elem))
    expected_shape = np.broadcast_shapes(sa, sb)
    for op in (tr_add, tr_div):
        r = op(a, b)
        assert r.shape == expected_shape
        ab, bb = np.broadcast_arrays(a, b)
        full = op(np.ascontiguousarray(ab), np.ascontiguousarray(bb))
        np.testing.assert_array_equal(r["tag"], full["tag"])
        _same(to_ieee(r), to_ieee(full))


@settings(max_examples=40, deadline=None)
@given(_pair())
def test_real_results_match_ieee(pair):
    a, b = pair
    finite = np.isfinite(a) & np.isfinite(b)
    with np.errstate(all="ignore"):
        expected = {tr_add: a + b, tr_sub: a - b, tr_mul: a * b, tr_div: a / b}
    for op, ref in expected.items():
        got = to_ieee(op(a, b))
        # finite operands: transreal results equal IEEE exactly, overflow and x/0 included
        _same(got[finite], ref[finite])


@settings(max_examples=25, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(1, 20), elements=st.floats(width=32, allow_nan=False)),
    hnp.arrays(np.float32, st.integers(1, 20), elements=st.floats(width=32, allow_nan=False)),
)
def test_float32_matches_numpy_float32(a, b):
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    finite = np.isfinite(a) & np.isfinite(b)
    with np.errstate(all="ignore"):
        for op, ref in ((tr_add, a + b), (tr_mul, a * b), (tr_div, a / b)):
            got = op(a, b)
            assert got.dtype == tr_dtype(np.float32)
            _same(to_ieee(got)[finite], ref[finite])


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 30), elements=_elem))
def test_unary_real_results_match_numpy(x):
    with np.errstate(all="ignore"):
        refs = {tr_neg: -x, tr_abs: np.abs(x), tr_sqrt: np.sqrt(x), tr_log: np.log(x)}
    for op, ref in refs.items():
        got = to_ieee(op(x))
        both = np.isfinite(got) & np.isfinite(ref)
        _same(got[both], ref[both])
        # where NumPy is finite on a finite input, so are we (log(0) = -inf in NumPy, PHI here)
        assert np.all(np.isfinite(got[np.isfinite(x) & np.isfinite(ref)]))


# ----------------------------------------------------------------------------------------------
# reductions
# ----------------------------------------------------------------------------------------------


def _tv(r):
    return int(r["tag"]), float(r["value"])


@pytest.mark.parametrize(
    "values, strict, drop_null",
    [
        ([], "0", "0"),
        ([1.0, 2.0], "3", "3"),
        ([1.0, np.nan], "PHI", "1"),
        ([np.nan, np.nan], "PHI", "PHI"),
        ([1.0, np.inf], "+inf", "+inf"),
        ([np.inf, np.inf, -5.0], "+inf", "+inf"),
        ([-np.inf, 2.0, np.nan], "PHI", "-inf"),
        ([np.inf, -np.inf], "PHI", "PHI"),
        ([np.inf, -np.inf, np.nan], "PHI", "PHI"),
        ([1e308, 1e308], "+inf", "+inf"),
        ([-0.0], "0", "0"),
    ],
)
def test_sum_modes(values, strict, drop_null):
    x = np.array(values, dtype=np.float64)
    for mode, cell in (("strict", strict), ("drop_null", drop_null)):
        r = tr_sum(x, mode=mode)
        assert r.shape == ()
        _check_cell(r, cell, f"tr_sum({values}, {mode})")


def test_mean_rules():
    assert _tv(tr_mean(np.array([1.0, 2.0, 6.0]))) == (REAL, 3.0)
    assert _tv(tr_mean(np.array([1.0, np.nan, 6.0]), mode="drop_null")) == (REAL, 3.5)
    assert int(tr_mean(np.array([1.0, np.nan]))["tag"]) == PHI
    assert int(tr_mean(np.array([1.0, -np.inf]))["tag"]) == NINF
    assert int(tr_mean(np.zeros(0))["tag"]) == PHI  # documented: mean of nothing is 0/0
    assert int(tr_mean(np.zeros((2, 0)), axis=1)["tag"][1]) == PHI


def _fsum_tolerance(x, s):
    eps = np.finfo(np.float64).eps
    return 2 * np.spacing(abs(s)) + x.size * eps * eps * np.sum(np.abs(x))


def test_sum_matches_fsum(rng):
    n = 3 * 16384 + 123  # several chunks
    well = rng.standard_normal(n)
    ill = np.concatenate([rng.standard_normal(n // 2) * 1e12, rng.standard_normal(n // 2)])
    ill = np.concatenate([ill, -ill[: n // 4]])  # heavy cancellation
    rng.shuffle(ill)
    for x in (well, ill):
        ref = math.fsum(x)
        tag, got = _tv(tr_sum(x))
        assert tag == REAL
        assert abs(got - ref) <= _fsum_tolerance(x, ref)
        tag, m = _tv(tr_mean(x))
        assert abs(m - ref / x.size) <= _fsum_tolerance(x, ref) / x.size + np.spacing(abs(m))


def test_sum_float32_input(rng):
    x = rng.standard_normal(1000).astype(np.float32)
    r = tr_sum(x)
    assert r.dtype == tr_dtype(np.float32)
    assert float(r["value"]) == np.float32(math.fsum(x.astype(np.float64)))
    big = np.full(4, 3e38, np.float32)
    assert int(tr_sum(big)["tag"]) == PINF


def test_sum_axis(rng):
    x = rng.standard_normal((3, 40000, 2))
    x[1, 5, 0] = np.nan
    x[2, 7, 1] = -np.inf
    t = from_ieee(x)
    for mode in ("strict", "drop_null"):
        r = tr_sum(t, mode=mode, axis=1)
        assert r.shape == (3, 2)
        for i in range(3):
            for j in range(2):
                flat = tr_sum(np.ascontiguousarray(x[i, :, j]), mode=mode)
                assert int(r[i, j]["tag"]) == int(flat["tag"])
                _same(np.array(r[i, j]["value"]), np.array(flat["value"]))
        assert abs(float(r[0, 0]["value"]) - math.fsum(x[0, :, 0])) <= _fsum_tolerance(
            x[0, :, 0], math.fsum(x[0, :, 0])
        )
    assert int(tr_sum(t, axis=1)[1, 0]["tag"]) == PHI
    assert int(tr_sum(t, mode="drop_null", axis=1)[1, 0]["tag"]) == REAL
    assert int(tr_sum(t, axis=-2)[2, 1]["tag"]) == NINF
    assert tr_sum(t, axis=0).shape == (40000, 2)
    e = tr_sum(np.zeros((2, 0)), axis=1)
    assert list(e["tag"]) == [REAL, REAL] and list(e["value"]) == [0.0, 0.0]


def test_sum_independent_of_thread_count(rng):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs at least 2 numba threads")
    x = rng.standard_normal(5 * 16384 + 7) * np.exp(rng.uniform(-20, 20, 5 * 16384 + 7))
    rows = x[: 4 * 16384].reshape(4, -1)
    before = numba.get_num_threads()
    try:
        results = []
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            results.append(
                (tr_sum(x)["value"].tobytes(), tr_mean(x)["value"].tobytes(),
                 tr_sum(rows, axis=1)["value"].tobytes())
            )
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
