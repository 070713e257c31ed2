import numpy as np
import pytest

import zeroproof_nb as zp
from zeroproof_nb.core import TRTag, as_tags, count_tags, from_ieee, to_ieee, tr_array, tr_dtype


def test_tag_codes():
    assert [int(t) for t in TRTag] == [0, 1, 2, 3]
    assert [t.name for t in TRTag] == ["REAL", "PINF", "NINF", "PHI"]


def test_tr_dtype_fields():
    for vd in (np.float64, np.float32):
        dt = tr_dtype(vd)
        assert dt.names == ("value", "tag")
        assert dt["value"] == np.dtype(vd) and dt["tag"] == np.dtype(np.uint8)
    with pytest.raises(TypeError, match="value_dtype"):
        tr_dtype(np.int32)


def test_from_ieee_roundtrip_keeps_signed_zero():
    a = np.array([1.5, -0.0, 0.0, np.inf, -np.inf, np.nan])
    t = from_ieee(a)
    assert list(t["tag"]) == [0, 0, 0, 1, 2, 3]
    assert np.signbit(t["value"][1]) and not np.signbit(t["value"][2])
    back = to_ieee(t)
    np.testing.assert_array_equal(back, a)  # NaN == NaN under assert_array_equal
    assert np.signbit(back[1])
    assert from_ieee(a.astype(np.float32))["value"].dtype == np.float32


def test_to_ieee_uses_tag_not_value():
    t = tr_array([1.0, 2.0, 3.0, 4.0], [0, 1, 2, 3])
    out = to_ieee(t)
    assert out[0] == 1.0 and out[1] == np.inf and out[2] == -np.inf and np.isnan(out[3])


def test_count_tags_against_bincount(rng):
    tags = rng.integers(0, 4, size=50_001).astype(np.uint8)
    np.testing.assert_array_equal(count_tags(tags), np.bincount(tags, minlength=4))
    as_list = [TRTag(int(t)) for t in tags[:100]]
    np.testing.assert_array_equal(count_tags(as_list), np.bincount(tags[:100], minlength=4))


def test_count_tags_axis(rng):
    tags = rng.integers(0, 4, size=(3, 7, 5)).astype(np.uint8)
    for axis in (0, 1, 2, -1):
        got = count_tags(tags, axis=axis)
        want = np.stack([(tags == k).sum(axis=axis) for k in range(4)], axis=-1)
        np.testing.assert_array_equal(got, want)


def test_count_tags_empty_and_bad_codes():
    np.testing.assert_array_equal(count_tags(np.zeros(0, np.uint8)), [0, 0, 0, 0])
    np.testing.assert_array_equal(count_tags([]), [0, 0, 0, 0])
    with pytest.raises(ValueError, match="codes 0..3"):
        count_tags(np.array([0, 4], dtype=np.uint8))
    with pytest.raises(ValueError, match="codes 0..3"):
        as_tags([0, 7])
    with pytest.raises(TypeError, match="tags"):
        as_tags([0.5, 1.0])


def test_top_level_lazy_names():
    assert zp.TRTag is TRTag
    with pytest.raises(AttributeError):
        zp.no_such_name


def test_count_tags_empty_axis():
    got = count_tags(np.zeros((3, 0), dtype=np.uint8), axis=1)
    np.testing.assert_array_equal(got, np.zeros((3, 4), dtype=np.int64))
