"""Pole metrics against hand-computed values, brute-force matchings and direct NumPy."""
import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeroproof_nb.core import from_ieee
from zeroproof_nb.metrics import (
    DEFAULT_BUCKET_EDGES,
    bucket_mse,
    distance_to_nearest_pole,
    match_poles,
    pole_localization_error,
    residual_consistency,
    sign_consistency,
)
from zeroproof_nb.problems import get_problem

# ----------------------------------------------------------------------------------------------
# PLE
# ----------------------------------------------------------------------------------------------


def test_ple_hand_computed():
    # exact recovery
    assert pole_localization_error([0.3, -0.55], [-0.55, 0.3]) == 0.0
    # one pair (0.1) and one missed true pole (costs max_distance): mean over the 2 true poles
    assert pole_localization_error([0.1], [0.0, 5.0]) == pytest.approx((0.1 + 1.0) / 2)
    # a spurious found pole (-0.7) is an extra: not in the PLE, which is the mean of 0.01, 0.02
    ple, m = pole_localization_error([0.01, 1.02, -0.7], [0.0, 1.0], max_distance=0.5,
                                     return_matching=True)
    assert ple == pytest.approx((0.01 + 0.02) / 2)
    assert m.extra.tolist() == [2] and m.missed.size == 0
    # the cut-off is inclusive (as match_poles'); beyond it a pole is missed
    assert pole_localization_error([2.0], [0.0], max_distance=2.0) == pytest.approx(2.0)
    assert pole_localization_error([2.0], [0.0], max_distance=1.5) == pytest.approx(1.5)
    # a missed pole costs miss_cost: (0.1 + 2.0) / 2
    assert pole_localization_error([0.1], [0.0, 5.0], max_distance=0.5,
                                   miss_cost=2.0) == pytest.approx(1.05)
    # empty sides: nothing to localise -> 0 (an extra pole is reported by the matching)
    assert pole_localization_error([], []) == 0.0
    assert pole_localization_error([0.1], [], max_distance=0.7) == 0.0
    assert pole_localization_error([], [0.1, 0.2], max_distance=0.7) == pytest.approx(0.7)
    assert pole_localization_error([], [0.1, 0.2], max_distance=0.7, miss_cost=3.0) == 3.0


def test_ple_issue_13_case_losing_poles_scores_worse():
    # issue #13: with upstream's averaging (pairs and unpaired poles on both sides) a model that
    # lost both true poles could score better than the one that found both to 1e-6 and had 4
    # tiny-residue extras (0.67). Now the extras are reported, not averaged in, and a missed
    # pole costs max_distance
    true = [0.3, -0.55]
    found_both = [0.3 + 1e-6, -0.55 - 1e-6, 0.9, -0.9, 0.1, -0.2]
    lost_both = []
    assert pole_localization_error(found_both, true) == pytest.approx(1e-6)
    assert pole_localization_error(lost_both, true) == 1.0
    # upstream's definition (mean over pairs and unpaired poles on both sides) on the same
    # input, for the record: 4 extras at cost 1 among 6 entries
    assert (1e-6 + 1e-6 + 4 * 1.0) / 6 == pytest.approx(0.6667, abs=1e-4)


def test_ple_optimal_beats_greedy():
    # upstream's greedy pass takes the true poles in order: 0.5 grabs its nearest 0.4 (0.1),
    # leaving 0.0 with 0.7 (0.7): (0.1 + 0.7) / 2 = 0.4. The optimal pairing is
    # 0.5-0.7 (0.2) and 0.0-0.4 (0.4): 0.3.
    found, true = [0.4, 0.7], [0.5, 0.0]
    ple, m = pole_localization_error(found, true, return_matching=True)
    assert ple == pytest.approx(0.3)
    assert sorted(map(tuple, m.pairs.tolist())) == [(0, 1), (1, 0)]


def test_ple_cheapest_matching_not_most_pairs():
    # true 0, 1; found 1 (at the true pole 1) and 2. The most-pairs matching is 1-0 and 2-1
    # (both at distance 1 = max_distance): PLE 1. Losing the found pole 2 would leave 1-1 (0)
    # and 0 missed (1): PLE 0.5, an improvement by losing a pole. The PLE's own matching is the
    # cheapest one, 1-1 with 0 missed: 0.5 with or without the found pole 2.
    ple, m = pole_localization_error([1.0, 2.0], [0.0, 1.0], max_distance=1.0,
                                     return_matching=True)
    assert ple == pytest.approx(0.5)
    assert m.pairs.tolist() == [[0, 1]] and m.missed.tolist() == [0] and m.extra.tolist() == [1]
    assert pole_localization_error([1.0], [0.0, 1.0], max_distance=1.0) == pytest.approx(0.5)
    assert match_poles([1.0, 2.0], [0.0, 1.0], tol=1.0).n_matched == 2  # the default rule


def _brute_force_ple(f, t, md, cost):
    """min over partial one-to-one matchings (pairs <= md) of sum(d) + cost * missed, / n_true."""
    if not t:
        return 0.0
    best = cost * len(t)
    for k in range(1, min(len(f), len(t)) + 1):
        for fi in itertools.combinations(range(len(f)), k):
            for tj in itertools.permutations(range(len(t)), k):
                d = [abs(f[a] - t[b]) for a, b in zip(fi, tj)]
                if all(x <= md for x in d):
                    best = min(best, sum(d) + cost * (len(t) - k))
    return best / len(t)


_poles_st = st.lists(st.floats(-2, 2), max_size=4)


@settings(max_examples=40, deadline=None)
@given(_poles_st, _poles_st, st.floats(0.05, 2.0), st.floats(1.0, 3.0))
def test_ple_equals_brute_force(found, true, md, factor):
    cost = md * factor
    got = pole_localization_error(found, true, max_distance=md, miss_cost=cost)
    assert got == pytest.approx(_brute_force_ple(found, true, md, cost), abs=1e-12)
    assert 0.0 <= got <= cost * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(_poles_st, _poles_st, st.floats(0.05, 2.0), st.floats(1.0, 3.0), st.data())
def test_ple_losing_a_found_pole_never_improves_it(found, true, md, factor, data):
    cost = md * factor
    before = pole_localization_error(found, true, max_distance=md, miss_cost=cost)
    if found:
        i = data.draw(st.integers(0, len(found) - 1))
        lost = found[:i] + found[i + 1:]
        assert pole_localization_error(lost, true, max_distance=md, miss_cost=cost) >= before - 1e-12
    # and finding one more never makes it worse
    more = found + [data.draw(st.floats(-2, 2))]
    assert pole_localization_error(more, true, max_distance=md, miss_cost=cost) <= before + 1e-12


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-0.4, 0.4), min_size=1, max_size=4),  # error of each found pole
    st.lists(st.floats(-2, 2), max_size=3),                     # extras
    st.data(),
)
def test_ple_model_that_loses_a_pole_scores_worse(errors, extras, data):
    # true poles 0, 3, 6, ... (gap 3), found within 0.4 of each, tol 1: dropping a found pole
    # that sits near a true pole with no other candidate leaves that pole missed (cost 1 > 0.4)
    true = [3.0 * k for k in range(len(errors))]
    far = [e for e in extras if min(abs(e - t) for t in true) > 1.0]
    found = [t + e for t, e in zip(true, errors)] + far
    base = pole_localization_error(found, true, max_distance=1.0)
    assert base == pytest.approx(sum(abs(e) for e in errors) / len(true))
    i = data.draw(st.integers(0, len(errors) - 1))
    lost = found[:i] + found[i + 1:]
    worse = pole_localization_error(lost, true, max_distance=1.0)
    assert worse == pytest.approx(base + (1.0 - abs(errors[i])) / len(true))
    assert worse > base


# ----------------------------------------------------------------------------------------------
# match_poles
# ----------------------------------------------------------------------------------------------


def test_match_poles_hand_computed():
    # found 0.31 -> true 0.3 (0.01); found 1.5 is extra; true -0.55 is missed
    m = match_poles([1.5, 0.31], [0.3, -0.55], tol=0.05)
    assert m.pairs.tolist() == [[1, 0]]
    assert m.distances == pytest.approx([0.01])
    assert m.missed.tolist() == [1] and m.extra.tolist() == [0]
    assert m.n_matched == 1
    # the distance bound is inclusive, and every index array is int64
    m = match_poles([0.5], [0.25], tol=0.25)
    assert m.pairs.tolist() == [[0, 0]] and m.distances.tolist() == [0.25]
    assert m.pairs.dtype == m.missed.dtype == m.extra.dtype == np.int64
    assert match_poles([0.5], [0.25], tol=0.2499).n_matched == 0
    # exact matches with tol = 0
    m = match_poles([2.0, -1.0], [-1.0, 2.0, 3.0], tol=0.0)
    assert m.pairs.tolist() == [[1, 0], [0, 1]] and m.missed.tolist() == [2]
    assert m.distances.tolist() == [0.0, 0.0] and m.extra.size == 0


def test_match_poles_most_pairs_then_least_distance():
    # found 0.0 is nearest to true 0.05 (0.05) but then true -0.1 is left out; pairing
    # 0.0 -> -0.1 (0.1) and 0.14 -> 0.05 (0.09) matches both: 2 pairs beat 1 closer pair
    m = match_poles([0.0, 0.14], [-0.1, 0.05], tol=0.1)
    assert m.pairs.tolist() == [[0, 0], [1, 1]]
    assert m.distances == pytest.approx([0.1, 0.09])
    assert m.missed.size == 0 and m.extra.size == 0
    # with the same number of pairs, the smaller total distance wins: 0.01-0.0 and 1.02-1.0
    # (0.03 in all) rather than the crossed pairing 0.01-1.0, 1.02-0.0 (2.01)
    m = match_poles([1.02, 0.01], [0.0, 1.0], tol=1.5)
    assert m.pairs.tolist() == [[1, 0], [0, 1]]
    assert m.distances == pytest.approx([0.01, 0.02])


def test_match_poles_empty_and_json():
    m = match_poles([], [0.1, 0.2], tol=1.0)
    assert m.pairs.shape == (0, 2) and m.missed.tolist() == [0, 1] and m.extra.size == 0
    m = match_poles([0.3], [], tol=1.0)
    assert m.pairs.shape == (0, 2) and m.extra.tolist() == [0] and m.missed.size == 0
    d = match_poles([0.3, 0.9], [0.31], tol=0.1).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert (d["n_matched"], d["n_missed"], d["n_extra"]) == (1, 0, 1)
    assert d["pairs"] == [[0, 0]] and d["extra"] == [1]


def _brute_force_match(f, t, tol):
    """(most pairs, least total distance) over all partial one-to-one matchings."""
    best = (0, 0.0)
    for k in range(1, min(len(f), len(t)) + 1):
        for fi in itertools.combinations(range(len(f)), k):
            for tj in itertools.permutations(range(len(t)), k):
                d = [abs(f[a] - t[b]) for a, b in zip(fi, tj)]
                # k only grows, so a larger k always replaces the best so far
                if all(x <= tol for x in d) and (k > best[0] or sum(d) < best[1] - 1e-12):
                    best = (k, sum(d))
    return best


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-2, 2), max_size=4),
    st.lists(st.floats(-2, 2), max_size=4),
    st.floats(0.0, 2.0),
)
def test_match_poles_equals_brute_force(found, true, tol):
    m = match_poles(found, true, tol)
    k, total = _brute_force_match(found, true, tol)
    assert m.n_matched == k
    assert float(m.distances.sum()) == pytest.approx(total, abs=1e-9)
    assert np.all(m.distances <= tol)
    assert m.missed.size == len(true) - k and m.extra.size == len(found) - k
    assert sorted(m.pairs[:, 1].tolist() + m.missed.tolist()) == list(range(len(true)))
    assert sorted(m.pairs[:, 0].tolist() + m.extra.tolist()) == list(range(len(found)))


def test_match_poles_bad_arguments():
    with pytest.raises(ValueError, match="tol"):
        match_poles([0.1], [0.1], tol=-1.0)
    with pytest.raises(ValueError, match="found"):
        match_poles([np.nan], [0.1], tol=1.0)
    with pytest.raises(ValueError, match="true"):
        match_poles([0.1], [[0.1, 0.2]], tol=1.0)


def test_ple_bad_arguments():
    with pytest.raises(ValueError, match="max_distance"):
        pole_localization_error([0.0], [0.0], max_distance=0.0)
    with pytest.raises(ValueError, match="found"):
        pole_localization_error([np.nan], [0.0])
    with pytest.raises(ValueError, match="true"):
        pole_localization_error([0.0], [[0.0, 1.0]])
    with pytest.raises(TypeError, match="found"):
        pole_localization_error(["a"], [0.0])
    with pytest.raises(ValueError, match="miss_cost"):
        pole_localization_error([0.0], [0.0], max_distance=0.5, miss_cost=0.4)
    with pytest.raises(ValueError, match="miss_cost"):
        match_poles([0.0], [0.0], tol=0.5, miss_cost=0.1)


# ----------------------------------------------------------------------------------------------
# bucketed MSE
# ----------------------------------------------------------------------------------------------


def test_bucket_mse_against_direct_numpy(rng):
    poles = np.array([0.3, -0.55])
    # points at controlled distances, both sides of both poles, plus an exact hit
    offsets = np.concatenate([[0.0], 10.0 ** rng.uniform(-7, 0, 400)]) * np.where(
        rng.random(401) < 0.5, -1, 1
    )
    x = np.concatenate([0.3 + offsets[:200], -0.55 + offsets[200:]])
    y_true = rng.standard_normal(x.size)
    y_pred = y_true + rng.standard_normal(x.size) * 0.1
    y_pred[5] = np.inf
    y_pred[17] = np.nan
    res = bucket_mse(x, y_pred, y_true, poles)
    assert list(res) == ["B0", "B1", "B2", "B3", "B4"]
    d = np.min(np.abs(x[:, None] - poles[None, :]), axis=1)
    edges = DEFAULT_BUCKET_EDGES
    finite = np.isfinite(y_pred)
    total = 0
    for k, key in enumerate(res):
        lo, hi = edges[k], edges[k + 1]
        m = (d > lo) & (d <= hi)
        if k == 0:
            m |= d == 0.0
        assert res[key]["count"] == m.sum()
        assert res[key]["n_nonreal"] == (m & ~finite).sum()
        sel = m & finite
        expected = np.mean((y_pred[sel] - y_true[sel]) ** 2) if sel.any() else None
        if expected is None:
            assert res[key]["mse"] is None
        else:
            assert res[key]["mse"] == pytest.approx(expected, rel=1e-12)
        assert (res[key]["lo"], res[key]["hi"]) == (lo, hi)
        total += res[key]["count"]
    assert total == x.size
    assert res["B0"]["count"] >= 1  # the exact hit (distance 0) is in B0
    json.dumps(res)  # JSON-ready (None -> null)


def test_bucket_mse_empty_buckets_multi_output_and_tr_input():
    x = np.array([0.5, 0.9])
    yt = np.array([[1.0, 2.0], [3.0, 4.0]])
    yp = np.array([[1.5, 2.0], [3.0, 3.0]])
    res = bucket_mse(x, yp, yt, [0.0], edges=(0.0, 0.1, 0.6, np.inf))
    assert res["B0"] == {"lo": 0.0, "hi": 0.1, "count": 0, "n_nonreal": 0, "mse": None}
    assert res["B1"]["count"] == 1 and res["B1"]["mse"] == pytest.approx(0.25 / 2)
    assert res["B2"]["count"] == 1 and res["B2"]["mse"] == pytest.approx(1.0 / 2)
    # transreal predictions: a PINF entry is non-REAL and excluded
    res = bucket_mse(x, from_ieee([np.inf, 2.0]), [1.0, 1.0], [])
    assert res["B4"]["count"] == 2 and res["B4"]["n_nonreal"] == 1 and res["B4"]["mse"] == 1.0


def test_bucket_mse_bad_arguments():
    with pytest.raises(ValueError, match="edges"):
        bucket_mse([0.0], [0.0], [0.0], [0.0], edges=(0.0, 1.0, 0.5))
    with pytest.raises(ValueError, match="edges"):
        bucket_mse([0.0], [0.0], [0.0], [0.0], edges=(-1.0, 1.0))
    with pytest.raises(ValueError, match="y_pred"):
        bucket_mse([0.0, 1.0], [0.0], [0.0, 1.0], [0.0])
    with pytest.raises(ValueError, match="x"):
        bucket_mse([np.nan], [0.0], [0.0], [0.0])


def test_distance_to_nearest_pole(rng):
    x = rng.uniform(-2, 2, 500)
    p = rng.uniform(-2, 2, 7)
    np.testing.assert_array_equal(
        distance_to_nearest_pole(x, p), np.min(np.abs(x[:, None] - p[None, :]), axis=1)
    )
    assert np.all(np.isinf(distance_to_nearest_pole(x, [])))


# ----------------------------------------------------------------------------------------------
# sign consistency
# ----------------------------------------------------------------------------------------------


def test_sign_consistency():
    prob = get_problem("two_poles")  # residues +1 at 0.3 and -2 at -0.55
    x, y = prob.grid(2001)
    res = sign_consistency(x, y, prob.true_poles(), y_true=y)
    assert res["rate"] == 1.0 and res["checked"] == 2
    assert [(p["pred_left"], p["pred_right"]) for p in res["per_pole"]] == [(1, -1), (-1, 1)]
    # a prediction with no sign change at 0.3 (|y| instead of y there), and one with the flip
    # reversed at -0.55
    bad = np.where(np.abs(x - 0.3) < 0.1, np.abs(y), y)
    bad = np.where(np.abs(x + 0.55) < 0.1, -bad, bad)
    res = sign_consistency(x, bad, prob.true_poles(), y_true=y)
    assert res["rate"] == 0.0 and res["checked"] == 2
    # without y_true only the flip is checked: the reversed flip still counts as consistent
    res = sign_consistency(x, bad, prob.true_poles())
    assert res["consistent"] == 1 and res["rate"] == 0.5
    # no points near a pole: nothing checked
    res = sign_consistency([0.9, 0.95], [1.0, 2.0], [0.0])
    assert res["rate"] is None and res["checked"] == 0 and res["per_pole"][0]["consistent"] is None
    json.dumps(res)


def test_sign_consistency_window_shrinks_between_close_poles():
    # poles 0 and 0.02 with window 0.05: the windows stop half-way (0.01)
    x = np.array([-0.005, 0.005, 0.015, 0.025])
    y = np.array([-1.0, 1.0, -1.0, 1.0])  # flips at both poles
    res = sign_consistency(x, y, [0.0, 0.02], window=0.05)
    assert res["rate"] == 1.0 and res["checked"] == 2


# ----------------------------------------------------------------------------------------------
# residual consistency
# ----------------------------------------------------------------------------------------------


def test_residual_consistency_exact_rational(rng):
    prob = get_problem("two_poles")
    x = rng.uniform(-1, 1, 2000)
    P, Q = prob.p_true(x), prob.q_true(x)
    y = P / Q
    res = residual_consistency(P, Q, y, near_threshold=0.2)
    assert res["count"] == np.sum(np.abs(Q) < 0.2) > 0
    assert res["max_abs"] < 1e-13 and res["mean_abs"] <= res["max_abs"]
    # a wrong prediction near the poles shows up
    res2 = residual_consistency(P, Q, y + 1.0)
    sel = np.abs(Q) < 0.2
    assert res2["mean_abs"] == pytest.approx(np.mean(np.abs(Q[sel])), rel=1e-9)
    # non-REAL outputs are skipped; no near points -> None
    yt = from_ieee(np.where(sel, np.inf, y))
    assert residual_consistency(P, Q, yt) == {"mean_abs": None, "max_abs": None, "count": 0}
    with pytest.raises(ValueError, match="near_threshold"):
        residual_consistency(P, Q, y, near_threshold=-1)
    with pytest.raises(ValueError, match="shape"):
        residual_consistency(P[:3], Q, y)
