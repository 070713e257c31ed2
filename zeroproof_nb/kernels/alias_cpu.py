"""CPU loops of the alias method: the table build (one sweep) and the O(1) draws.

The table word and the per-draw pick are in :mod:`.alias`, the random streams in
:mod:`.streams`, the optional draw counts in :mod:`.counts_cpu`; see :mod:`.weights`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .alias import DRAW_BLOCK, DRAW_PART, alias_pick, alias_slot, leftover_row, pack_alias
from .counts_cpu import count_all, count_range
from .streams import stream_uniform


@njit(cache=True, error_model="numpy")
def build_alias_table(weights, total, fallback, table):
    """Walker alias table of ``weights`` (sum ``total`` > 0; N < 2**32), by a sweep.

    ``table`` is an (N,) uint64 output, one word per row (:func:`pack_alias`): the alias
    index in the high 32 bits, the acceptance probability in 32-bit fixed point in the low bits
    (draw probabilities exact to 2**-32 per row; half the memory of a float64 + int64 table, so
    random draws miss the cache less).

    With scaled weights s_i = w_i·N/total (mean 1), the rows are first split, without
    branches, into a light list (s < 1) and a heavy list (s >= 1), both in index order. Then one
    sweep: each light row keeps s_i and takes the current heavy row as its alias, whose residual
    drops by 1 − s_i; a heavy row whose residual falls below 1 becomes a light row at once (it
    keeps the residual and takes the next heavy row as its alias). O(N), deterministic. Rows
    left when the other kind runs out (rounding) get probability 1 and alias themselves; zero
    weights left over get probability 0 and alias ``fallback`` (a positive-weight index).
    """
    n = weights.shape[0]
    scale = n / total
    light = np.empty(n, dtype=np.uint32)
    heavy = np.empty(n, dtype=np.uint32)
    n_light = 0
    n_heavy = 0
    for i in range(n):
        is_light = weights[i] * scale < 1.0
        light[n_light] = i
        heavy[n_heavy] = i
        n_light += 1 if is_light else 0
        n_heavy += 0 if is_light else 1
    if n_heavy == 0:  # rounding left no heavy row
        for t in range(n_light):
            table[light[t]] = leftover_row(weights, light[t], fallback)
        return
    a = 0  # next light row
    b = 0  # position of the current heavy row in the heavy list
    h = heavy[0]
    r = weights[h] * scale  # residual of the current heavy row
    while a < n_light:
        i = light[a]
        s = weights[i] * scale
        table[i] = pack_alias(s, h)
        r += s - 1.0
        a += 1
        while r < 1.0:  # used up: light now, aliasing the next heavy row
            b += 1
            if b >= n_heavy:
                break
            g = heavy[b]
            table[h] = pack_alias(r, g)
            r += weights[g] * scale - 1.0
            h = g
        if b >= n_heavy:
            break
    if b >= n_heavy:  # no heavy row left: h and the light rows not reached are leftovers
        table[h] = pack_alias(1.0, h)
        for t in range(a, n_light):
            table[light[t]] = leftover_row(weights, light[t], fallback)
    else:  # the current heavy row keeps what is left, as do those never reached
        for t in range(b, n_heavy):
            table[heavy[t]] = pack_alias(1.0, heavy[t])


@njit(cache=True)
def _alias_range(table, key, out, lo, hi, rows, fracs, words):
    """Draws lo..hi-1 of the stream into ``out[lo:hi]``, DRAW_BLOCK at a time (the buffers
    hold DRAW_BLOCK entries). The table loads of a block are independent (unsigned rows: no
    wraparound branch), so their cache misses overlap; a loop that loads and picks in one step
    runs ~5x slower on a table larger than the cache."""
    n_rows = table.shape[0]
    for a in range(lo, hi, DRAW_BLOCK):
        m = min(DRAW_BLOCK, hi - a)
        for t in range(m):
            rows[t], fracs[t] = alias_slot(n_rows, stream_uniform(key, a + t))
        for t in range(m):
            words[t] = table[rows[t]]
        for t in range(m):
            out[a + t] = alias_pick(rows[t], fracs[t], words[t])


@njit(cache=True)
def _alias_part(table, key, out, lo, hi):
    rows = np.empty(DRAW_BLOCK, dtype=np.uint64)
    fracs = np.empty(DRAW_BLOCK, dtype=np.float64)
    words = np.empty(DRAW_BLOCK, dtype=np.uint64)
    _alias_range(table, key, out, lo, hi, rows, fracs, words)


@njit(cache=True, parallel=True)
def draw_alias(table, key, out, low, high, track, n_parts):
    """Alias-method draws with replacement, optionally counted.

    ``out[k]`` is the index drawn by u_k = ``stream_uniform(key, k)``: row j = floor(u_k·N),
    kept if the fraction is below the row's acceptance probability, else its alias. O(1) per
    draw; the draws run in parallel tasks of DRAW_PART. With ``track`` the draws are added to
    the two-level counts as in :func:`accumulate_counts` (``n_parts`` ranges) and the number of
    indices drawn for the first time is returned (else 0). Indices and counts do not depend on
    the thread count (:func:`draw_alias_serial` gives the same on one thread).
    """
    n_draws = out.shape[0]
    for p in prange((n_draws + DRAW_PART - 1) // DRAW_PART):
        _alias_part(table, key, out, p * DRAW_PART, min(n_draws, (p + 1) * DRAW_PART))
    if not track:
        return 0
    n = low.shape[0]
    new = np.zeros(n_parts, dtype=np.int64)
    for p in prange(n_parts):
        new[p] = count_range(low, high, out, (p * n) // n_parts, ((p + 1) * n) // n_parts)
    return new.sum()


@njit(cache=True)
def draw_alias_serial(table, key, out, low, high, track, n_parts=1):
    """Single-threaded :func:`draw_alias` (one call draws and counts a batch)."""
    _alias_part(table, key, out, 0, out.shape[0])
    if not track:
        return 0
    return count_all(low, high, out)


@njit(cache=True)
def draw_alias_batches(table, keys, out, low, high, track):
    """Row b of ``out`` (n_batches, B) = what :func:`draw_alias_serial` draws with key
    ``keys[b]``; with ``track``, all draws are counted. Returns the number of new indices."""
    for b in range(keys.shape[0]):
        _alias_part(table, keys[b], out[b], 0, out.shape[1])
    if not track:
        return 0
    return count_all(low, high, out.reshape(-1))
