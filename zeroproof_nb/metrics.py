"""Pole metrics for 1-D rational fits: localisation, matching found to true poles, near-pole
bucketed MSE, sign consistency across poles, and residual consistency ``R = Q*y - P``.

Every function accepts array-likes; predictions may also be transreal arrays (their IEEE view is
used: REAL -> value, +-inf -> +-inf, PHI -> NaN). Results are plain floats / dicts of floats and
ints (``None`` where a quantity is undefined), ready for ``json.dump``.

Choices (upstream has several variants, see ``docs/deviations.md``):

* PLE is defined on :func:`match_poles`: the mean over the true poles of the matched distance,
  a missed pole costing ``miss_cost``; extra poles are reported beside it, not averaged in
  (upstream: a greedy matching and a mean over pairs and unpaired poles on both sides, which a
  model could lower by losing poles).
* Buckets: B0 = [e0, e1] (closed, so a point exactly at a pole counts), Bk = (e_k, e_{k+1}].
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from ._validation import as_float_array, check_finite, check_nonnegative, check_positive
from .core import is_tr_array, to_ieee

__all__ = [
    "DEFAULT_BUCKET_EDGES",
    "PoleMatch",
    "match_poles",
    "pole_localization_error",
    "distance_to_nearest_pole",
    "bucket_mse",
    "sign_consistency",
    "residual_consistency",
    "pole_set",
]

#: Most grid nodes :func:`pole_set` evaluates.
POLE_SET_MAX_NODES = 10_000_000

#: upstream's ``DEFAULT_BUCKET_EDGES`` (zp/utils/config.py): buckets B0..B4
DEFAULT_BUCKET_EDGES: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, float("inf"))


def _poles(p: Any, name: str) -> np.ndarray:
    arr = as_float_array(p, name, ndim=(0, 1), dtype=np.float64).reshape(-1)
    check_finite(arr, name)
    return arr


def _ieee(y: Any, name: str) -> np.ndarray:
    """IEEE float64 view of predictions/targets (transreal arrays via ``to_ieee``)."""
    if is_tr_array(y):
        return np.asarray(to_ieee(y), dtype=np.float64)
    return as_float_array(y, name, dtype=np.float64)


def _x_1d(x: Any, name: str = "x") -> np.ndarray:
    arr = as_float_array(x, name, ndim=1, dtype=np.float64)
    check_finite(arr, name)
    return arr


def _per_sample(y: np.ndarray, n: int, name: str) -> np.ndarray:
    """Shape (n,) or (n, m) -> (n, m)."""
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, n_outputs), got {y.shape}")
    return y


# ------------------------------------------------------------------------------------------------
# pole localisation error
# ------------------------------------------------------------------------------------------------


def pole_localization_error(
    found: Any,
    true: Any,
    max_distance: float = 1.0,
    *,
    miss_cost: float | None = None,
    return_matching: bool = False,
) -> float | tuple[float, "PoleMatch"]:
    """Pole localisation error (PLE): mean over the TRUE poles of how far the model put each.

    The poles are matched by :func:`match_poles` with ``tol = max_distance`` and the given
    ``miss_cost`` (the matching that minimises ``sum(|f - t| over pairs) + miss_cost * missed``,
    pairs at most ``max_distance`` apart). Each true pole then costs its matched distance, or
    ``miss_cost`` when it is missed::

        PLE = (sum of matched distances + miss_cost * n_missed) / n_true

    Extra (unmatched found) poles are not part of the PLE: report them beside it
    (``return_matching=True`` gives the matching, whose ``extra`` lists them). Since
    ``miss_cost >= max_distance`` and the matching is the cheapest one, losing a found pole can
    never lower the PLE (the cheapest matching of fewer poles is one of the matchings of more),
    and it lies in ``[0, miss_cost]``. Upstream averages over pairs and unpaired poles on both
    sides, which a model can lower by losing its poles (see ``docs/deviations.md``).

    Parameters
    ----------
    found, true : array-like of shape (n_found,), (n_true,)
        Pole locations (finite reals).
    max_distance : float > 0
        Largest distance of a matched pair.
    miss_cost : float >= max_distance, optional
        Cost of a missed true pole (default: ``max_distance``; e.g. the domain width).
    return_matching : bool
        Also return the :class:`PoleMatch` (pairs, distances, missed, extra).

    Returns
    -------
    float (and the PoleMatch): 0.0 when there is no true pole (nothing to localise; every found
    pole is then an extra).
    """
    md = check_positive(max_distance, "max_distance")
    if miss_cost is None:
        cost = md
    else:
        cost = check_positive(miss_cost, "miss_cost")
        if cost < md:
            raise ValueError(f"miss_cost must be >= max_distance ({md:g}): a missed pole may "
                             f"not cost less than a matched one, got {cost:g}")
    m = match_poles(found, true, md, miss_cost=cost)
    n_true = int(m.pairs.shape[0] + m.missed.size)
    ple = 0.0 if n_true == 0 else (float(m.distances.sum()) + cost * m.missed.size) / n_true
    if return_matching:
        return ple, m
    return ple


class PoleMatch(NamedTuple):
    """Result of :func:`match_poles`.

    Attributes
    ----------
    pairs : int64 array (n_matched, 2)
        (found index, true index) of each matched pair, in increasing true index.
    distances : float64 array (n_matched,)
        ``|found - true|`` of each pair (each ``<= tol``).
    missed : int64 array
        Indices of the true poles with no found pole matched to them, increasing.
    extra : int64 array
        Indices of the found poles matched to no true pole, increasing.
    """

    pairs: np.ndarray
    distances: np.ndarray
    missed: np.ndarray
    extra: np.ndarray

    @property
    def n_matched(self) -> int:
        """Number of matched pairs."""
        return int(self.pairs.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready lists and the three counts."""
        return {"pairs": self.pairs.tolist(), "distances": self.distances.tolist(),
                "missed": self.missed.tolist(), "extra": self.extra.tolist(),
                "n_matched": self.n_matched, "n_missed": int(self.missed.size),
                "n_extra": int(self.extra.size)}


def match_poles(found: Any, true: Any, tol: float, *,
                miss_cost: float | None = None) -> PoleMatch:
    """Match found poles to true poles within a tolerance, one to one.

    A found pole ``f`` and a true pole ``t`` may be paired when ``|f - t| <= tol``. Among the
    one-to-one pairings of admissible pairs, the one that minimises
    ``sum(|f - t| over pairs) + miss_cost * (true poles left unpaired)`` is chosen (an optimal
    assignment, ``scipy.optimize.linear_sum_assignment``). By default ``miss_cost`` is larger
    than any total distance, so the pairing with the most pairs wins, and among those the one
    with the smallest total distance. True poles left unpaired are *missed*, found poles left
    unpaired are *extra*.

    Parameters
    ----------
    found, true : array-like of shape (n_found,), (n_true,)
        Pole locations (finite reals).
    tol : float >= 0
        Largest distance of a matched pair.
    miss_cost : float >= tol, optional
        Cost of a missed true pole (default: the most pairs win). :func:`pole_localization_error`
        uses its own ``miss_cost`` here, so that its matching is the cheapest under its cost.

    Returns
    -------
    PoleMatch
        ``pairs``, ``distances``, ``missed``, ``extra`` (index arrays into ``found`` / ``true``).
    """
    f = _poles(found, "found")
    t = _poles(true, "true")
    tol = check_nonnegative(tol, "tol")
    if miss_cost is not None:
        miss_cost = check_nonnegative(miss_cost, "miss_cost")
        if miss_cost < tol:
            raise ValueError(f"miss_cost must be >= tol ({tol:g}), got {miss_cost:g}")
    nf, nt = f.size, t.size
    rows = cols = np.zeros(0, dtype=np.int64)
    with np.errstate(over="ignore"):  # poles ~1e308 apart: an infinite distance, no pair
        dist = np.abs(f[:, None] - t[None, :])
    ok = dist <= tol
    if ok.any():
        from scipy.optimize import linear_sum_assignment

        # each admissible pair earns -big, more than any total distance of a matching, so the
        # assignment maximises the number of pairs first and minimises their distance second
        if miss_cost is None:
            big = 2.0 * (min(nf, nt) + 1) * tol if tol > 0 else 1.0
        else:
            # a pair saves the miss_cost of its true pole: cost d - miss_cost <= 0
            big = miss_cost
        if np.isfinite(big):
            cost = np.where(ok, dist - big, 0.0)
        else:  # tol near the float64 range: the most pairs first, distances in units of tol
            cost = np.where(ok, dist / tol - 2.0 * (min(nf, nt) + 1), 0.0)
        r, c = linear_sum_assignment(cost)
        # a pair of cost 0 (d == miss_cost == tol) is kept: the total is the same either way
        keep = ok[r, c]
        rows, cols = r[keep].astype(np.int64), c[keep].astype(np.int64)
        order = np.argsort(cols, kind="stable")
        rows, cols = rows[order], cols[order]
    pairs = np.stack([rows, cols], axis=1) if rows.size else np.zeros((0, 2), dtype=np.int64)
    missed = np.setdiff1d(np.arange(nt, dtype=np.int64), cols)
    extra = np.setdiff1d(np.arange(nf, dtype=np.int64), rows)
    return PoleMatch(pairs.astype(np.int64), dist[rows, cols].astype(np.float64),
                     missed.astype(np.int64), extra.astype(np.int64))


# ------------------------------------------------------------------------------------------------
# near-pole bucketed MSE
# ------------------------------------------------------------------------------------------------


def distance_to_nearest_pole(x: Any, poles: Any) -> np.ndarray:
    """``min_j |x_i - p_j|`` per point, shape (N,); +inf everywhere when there are no poles."""
    xs = _x_1d(x)
    p = _poles(poles, "poles")
    if p.size == 0:
        return np.full(xs.shape, np.inf)
    ps = np.sort(p)
    # nearest pole by bisection: O(N log P) and no (N, P) temporary
    k = np.searchsorted(ps, xs)
    left = ps[np.clip(k - 1, 0, ps.size - 1)]
    right = ps[np.clip(k, 0, ps.size - 1)]
    return np.minimum(np.abs(xs - left), np.abs(xs - right))


def _check_edges(edges: Any) -> np.ndarray:
    e = as_float_array(edges, "edges", ndim=1, dtype=np.float64)
    if e.size < 2:
        raise ValueError(f"edges must hold at least 2 values, got {e.size}")
    if np.any(np.isnan(e)) or e[0] < 0 or not np.isfinite(e[0]):
        raise ValueError(f"edges must start at a finite value >= 0, got {e.tolist()}")
    if np.any(np.diff(e) <= 0):
        raise ValueError(f"edges must be strictly increasing, got {e.tolist()}")
    return e


def bucket_mse(
    x: Any,
    y_pred: Any,
    y_true: Any,
    poles: Any,
    edges: Sequence[float] = DEFAULT_BUCKET_EDGES,
) -> dict[str, dict[str, Any]]:
    """MSE bucketed by the distance of each point to the nearest true pole.

    Parameters
    ----------
    x : array-like (N,)
        Input points (finite).
    y_pred, y_true : array-like or transreal array, (N,) or (N, n_outputs)
        Predictions and targets. The per-sample error is the mean over outputs of
        ``(pred - true)**2``.
    poles : array-like (P,)
        True poles (the distance is +inf for every point when P = 0).
    edges : increasing sequence, default ``(0, 1e-5, 1e-4, 1e-3, 1e-2, inf)``
        Bucket k covers ``(edges[k], edges[k+1]]``; B0 is closed on the left, ``[e0, e1]``.
        Points beyond a finite last edge belong to no bucket.

    Returns
    -------
    dict ``{"B0": {...}, "B1": {...}, ...}`` in bucket order; each value has ``lo``, ``hi``,
    ``count`` (points in the bucket), ``n_nonreal`` (of those, points whose prediction or target
    has a non-finite entry: excluded from the MSE) and ``mse`` (float, or ``None`` when no point
    of the bucket has a finite prediction and target).
    """
    xs = _x_1d(x)
    n = xs.size
    yp = _per_sample(_ieee(y_pred, "y_pred"), n, "y_pred")
    yt = _per_sample(_ieee(y_true, "y_true"), n, "y_true")
    if yp.shape != yt.shape:
        raise ValueError(f"y_pred and y_true must have the same shape, got {yp.shape} and {yt.shape}")
    e = _check_edges(edges)
    d = distance_to_nearest_pole(xs, poles)
    ok = np.all(np.isfinite(yp), axis=1) & np.all(np.isfinite(yt), axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.mean((yp - yt) ** 2, axis=1)
    out: dict[str, dict[str, Any]] = {}
    for k in range(e.size - 1):
        lo, hi = e[k], e[k + 1]
        in_b = (d >= lo) & (d <= hi) if k == 0 else (d > lo) & (d <= hi)
        used = in_b & ok
        n_used = int(used.sum())
        out[f"B{k}"] = {
            "lo": float(lo),
            "hi": float(hi),
            "count": int(in_b.sum()),
            "n_nonreal": int(in_b.sum()) - n_used,
            "mse": float(err[used].mean()) if n_used else None,
        }
    return out


# ------------------------------------------------------------------------------------------------
# sign consistency
# ------------------------------------------------------------------------------------------------


def _side_sign(y: np.ndarray) -> int:
    """Majority sign of the non-NaN, non-zero entries (+-inf count): +1, -1, or 0 (tie/none)."""
    s = np.sign(y[~np.isnan(y)])
    total = int(s.sum())
    return (total > 0) - (total < 0)


def sign_consistency(
    x: Any,
    y_pred: Any,
    poles: Any,
    *,
    y_true: Any = None,
    window: float = 0.05,
) -> dict[str, Any]:
    """Does the prediction change sign across each true pole the way the truth does?

    For a pole p let ``w = min(window, half the gap to the neighbouring poles)``; the left side is
    ``p - w <= x < p`` and the right side ``p < x <= p + w``. A side's sign is the majority sign of
    the predictions there (+-inf count with their sign; NaN/PHI and exact zeros are ignored; a
    tie gives 0). A pole is *checked* when both predicted side signs are non-zero (and, with
    ``y_true``, both true side signs too). It is *consistent* when the predicted pair of signs
    equals the true pair; without ``y_true`` the truth is taken to flip (a simple pole), so the
    pole is consistent when the two predicted signs differ.

    Returns
    -------
    dict with ``rate`` (consistent / checked, ``None`` when nothing was checked), ``checked``,
    ``consistent``, and ``per_pole``: a list of ``{"pole", "pred_left", "pred_right",
    "true_left", "true_right", "consistent"}`` (``consistent`` is None for unchecked poles).
    """
    xs = _x_1d(x)
    n = xs.size
    yp = _ieee(y_pred, "y_pred")
    if yp.shape != (n,):
        raise ValueError(f"y_pred must have shape ({n},), got {yp.shape}")
    yt = None
    if y_true is not None:
        yt = _ieee(y_true, "y_true")
        if yt.shape != (n,):
            raise ValueError(f"y_true must have shape ({n},), got {yt.shape}")
    w0 = check_positive(window, "window")
    p = np.sort(_poles(poles, "poles"))
    per_pole = []
    checked = consistent = 0
    for i, pole in enumerate(p):
        w = w0
        if i > 0:
            w = min(w, 0.5 * (pole - p[i - 1]))
        if i + 1 < p.size:
            w = min(w, 0.5 * (p[i + 1] - pole))
        left = (xs >= pole - w) & (xs < pole)
        right = (xs > pole) & (xs <= pole + w)
        pl, pr = _side_sign(yp[left]), _side_sign(yp[right])
        if yt is None:
            tl, tr = None, None
            ok = pl != 0 and pr != 0
            good = ok and pl != pr
        else:
            tl, tr = _side_sign(yt[left]), _side_sign(yt[right])
            ok = pl != 0 and pr != 0 and tl != 0 and tr != 0
            good = ok and (pl, pr) == (tl, tr)
        checked += ok
        consistent += good
        per_pole.append(
            {
                "pole": float(pole),
                "pred_left": pl,
                "pred_right": pr,
                "true_left": tl,
                "true_right": tr,
                "consistent": bool(good) if ok else None,
            }
        )
    return {
        "rate": consistent / checked if checked else None,
        "checked": int(checked),
        "consistent": int(consistent),
        "per_pole": per_pole,
    }


# ------------------------------------------------------------------------------------------------
# residual consistency
# ------------------------------------------------------------------------------------------------


def residual_consistency(P: Any, Q: Any, y: Any, near_threshold: float = 0.2) -> dict[str, Any]:
    """Residual ``R = Q*y - P`` over the near-pole REAL points.

    Parameters
    ----------
    P, Q : array-like (N,)
        Numerator and denominator values of the model at the points.
    y : array-like or transreal array (N,)
        The model's output at the same points.
    near_threshold : float
        A point is near a pole when ``|Q| < near_threshold`` (upstream default 0.2).

    Returns
    -------
    dict with ``mean_abs`` and ``max_abs`` of |R| over near-pole points where y, P and Q are
    finite (``None`` when there is none) and ``count``, the number of such points.
    """
    p = as_float_array(P, "P", ndim=1, dtype=np.float64)
    q = as_float_array(Q, "Q", ndim=1, dtype=np.float64)
    yy = _ieee(y, "y")
    if not (p.shape == q.shape == yy.shape):
        raise ValueError(f"P, Q and y must have the same shape (N,), got {p.shape}, {q.shape}, {yy.shape}")
    thr = check_positive(near_threshold, "near_threshold")
    sel = (np.abs(q) < thr) & np.isfinite(yy) & np.isfinite(p) & np.isfinite(q)
    count = int(sel.sum())
    if count == 0:
        return {"mean_abs": None, "max_abs": None, "count": 0}
    r = np.abs(q[sel] * yy[sel] - p[sel])
    return {"mean_abs": float(r.mean()), "max_abs": float(r.max()), "count": count}


def pole_set(model: Any, axes: Sequence[Any], *, head: int = 0) -> np.ndarray:
    """Points of the pole set {Q = 0} of a rational layer, located on a tensor grid.

    Q (signed, of output ``head``) is evaluated at every node of the grid spanned by ``axes``;
    wherever it changes sign between two neighbouring nodes along an axis, the zero is placed
    on that grid line by linear interpolation. For n-D layers (whose poles form hypersurfaces,
    :meth:`TRRational.poles` being 1-D only) this samples the pole set with a spacing of the
    grid's; in 1-D it brackets the real poles of odd multiplicity (double poles, where Q does
    not change sign, are not found: use ``model.poles()``).

    Parameters
    ----------
    model : a TRRational (its ``theta``, ``phi``, ``kernel_basis``, ``domain``, ``input_dim``)
    axes : sequence of ``input_dim`` increasing 1-D arrays (a 1-D array for a 1-D layer); at
        most ``POLE_SET_MAX_NODES`` nodes in all
    head : output whose Q is used (for one Q per head)

    Returns
    -------
    (k, d) float64 array of points, sorted lexicographically; nodes where Q is exactly 0 are
    included as they are.
    """
    from .rational import rational_eval

    for attr in ("theta", "phi", "kernel_basis", "domain", "input_dim"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a TRRational-like layer (no {attr!r} attribute)")
    d = int(model.input_dim)
    if isinstance(axes, np.ndarray) and axes.ndim == 1:
        axes = [axes]
    if not isinstance(axes, (list, tuple)) or len(axes) != d:
        raise ValueError(f"axes must be a sequence of {d} 1-D arrays (one per input "
                         f"dimension), got {type(axes).__name__} of length "
                         f"{len(axes) if hasattr(axes, '__len__') else '?'}")
    grid = []
    for i, a in enumerate(axes):
        a = as_float_array(a, f"axes[{i}]", ndim=1, dtype=np.float64)
        check_finite(a, f"axes[{i}]")
        if a.size < 2 or not np.all(np.diff(a) > 0):
            raise ValueError(f"axes[{i}] must hold at least 2 strictly increasing values")
        grid.append(a)
    shape = tuple(a.size for a in grid)
    n_nodes = int(np.prod(shape, dtype=np.float64))
    if n_nodes > POLE_SET_MAX_NODES:
        raise ValueError(f"axes span {n_nodes} grid nodes, more than POLE_SET_MAX_NODES = "
                         f"{POLE_SET_MAX_NODES}")
    n_out = int(getattr(model, "n_outputs", 1))
    if not 0 <= int(head) < n_out:
        raise ValueError(f"head must be in [0, {n_out}), got {head}")
    mesh = np.meshgrid(*grid, indexing="ij")
    pts = np.stack([m.reshape(-1) for m in mesh], axis=1)
    _, q = rational_eval(pts if d > 1 else pts[:, 0], model.theta, model.phi,
                         basis=model.kernel_basis, domain=model.domain, return_q=True)
    q = (q if q.ndim == 1 else q[:, int(head)]).reshape(shape)
    found = [pts[(q == 0).reshape(-1)]]
    for ax in range(d):
        lo = [slice(None)] * d
        hi = [slice(None)] * d
        lo[ax] = slice(0, -1)
        hi[ax] = slice(1, None)
        q0, q1 = q[tuple(lo)], q[tuple(hi)]
        cross = (q0 * q1 < 0) & np.isfinite(q0) & np.isfinite(q1)
        if not cross.any():
            continue
        idx = np.nonzero(cross)
        p = np.empty((idx[0].size, d))
        for k in range(d):
            if k == ax:
                a0 = grid[k][idx[k]]
                a1 = grid[k][idx[k] + 1]
                f0, f1 = q0[idx], q1[idx]
                p[:, k] = a0 + (a1 - a0) * (f0 / (f0 - f1))
            else:
                p[:, k] = grid[k][idx[k]]
        found.append(p)
    out = np.concatenate(found, axis=0)
    order = np.lexsort(out.T[::-1]) if out.size else np.zeros(0, dtype=np.int64)
    return np.ascontiguousarray(out[order])
