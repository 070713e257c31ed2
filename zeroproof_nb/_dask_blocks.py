"""Chunk-level work of :mod:`zeroproof_nb.distributed` (plain NumPy in, plain NumPy out).

These functions run inside Dask tasks on the workers (one chunk of the pool each) or on the
driver (the segment table); none imports Dask. Every loop over points is a kernel of
:mod:`.kernels.weights` or :mod:`.kernels.segments_cpu`, called on the chunk's slice with the
chunk's global offsets, so a chunk computes exactly what the in-core pass computes for the
same points.

Terms: a *block* is :data:`BLOCK` consecutive points (the in-core kernels' unit of weight
sums); a *segment* is :data:`SEGMENT_BLOCKS` consecutive blocks at a fixed global position; a
*piece* is the part of one segment that one chunk holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .kernels import segments_cpu as _ks
from .kernels import weights as _kw
from .kernels.tags import CHUNK

__all__ = [
    "BLOCK",
    "SEGMENT_BLOCKS",
    "ChunkScan",
    "SegmentTable",
    "chunk_block_sums",
    "chunk_draws",
    "chunk_scan",
    "chunk_smallest_keys",
    "chunk_weights",
    "merge_smallest",
    "route_draws",
    "segment_table",
]

BLOCK = _kw.BLOCK
SEGMENT_BLOCKS = _ks.SEGMENT_BLOCKS
_DUMMY = np.zeros(1, dtype=np.float64)


def _extra(extra: Any, top: float) -> tuple[np.ndarray, bool]:
    """The chunk's sample-weight factors divided by the global largest one (as in-core)."""
    if extra is None:
        return _DUMMY, False
    ex = np.asarray(extra, dtype=np.float64)
    return (ex / top if top > 0 else np.ascontiguousarray(ex)), True


def _pass(q: np.ndarray, extra: Any, top: float, params: tuple[float, ...],
          write_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One weights pass over a chunk: (block sums, chunk stats, weights or a dummy)."""
    q = np.ascontiguousarray(q)
    n = q.shape[0]
    ex, use = _extra(extra, top)
    bs = np.empty((n + BLOCK - 1) // BLOCK, dtype=np.float64)
    stats = np.zeros(((n + CHUNK - 1) // CHUNK, _kw.N_STATS), dtype=np.float64)
    w = np.empty(n, dtype=np.float64) if write_weights else _DUMMY
    if n:
        _kw.weight_block_sums_serial(q, ex, use, *params, w, write_weights, bs, stats)
    return bs, stats, w


def _segments(bs: np.ndarray, first_block: int) -> tuple[np.ndarray, np.ndarray, int]:
    cum = np.empty_like(bs)
    last = np.empty(bs.shape[0] // SEGMENT_BLOCKS + 2, dtype=np.int64)
    n_pieces = int(_ks.segment_cumsums(bs, first_block % SEGMENT_BLOCKS, cum, last))
    return cum, last, n_pieces


@dataclass
class ChunkScan:
    """What one chunk sends to the driver after the weights pass (a few KiB).

    ``complete``: (segment id, piece index, total) of the segments wholly inside the chunk;
    ``partial``: (segment id, first global block, raw block sums) of the pieces of segments cut
    by a chunk boundary (at most two per chunk, < SEGMENT_BLOCKS blocks each).
    """

    chunk: int
    n_nan: int
    n_positive: int
    complete_ids: np.ndarray
    complete_pieces: np.ndarray
    complete_totals: np.ndarray
    partial: list


def chunk_scan(q: np.ndarray, extra: Any, top: float, params: tuple[float, ...], chunk: int,
               first_block: int, n_blocks_total: int) -> ChunkScan:
    """Weights pass over chunk number ``chunk`` (first global block ``first_block`` of
    ``n_blocks_total``): NaN / positive counts and its segment pieces."""
    bs, stats, _ = _pass(q, extra, top, params, False)
    nb = bs.shape[0]
    cum, _, n_pieces = _segments(bs, first_block)
    off = first_block % SEGMENT_BLOCKS
    first_seg = first_block // SEGMENT_BLOCKS
    ids, pieces, totals, partial = [], [], [], []
    for p in range(n_pieces):
        b0 = int(_ks.piece_start(p, off, nb))
        b1 = int(_ks.piece_start(p + 1, off, nb))
        seg = first_seg + p
        seg_end = min((seg + 1) * SEGMENT_BLOCKS, n_blocks_total)
        if first_block + b0 == seg * SEGMENT_BLOCKS and first_block + b1 == seg_end:
            ids.append(seg)
            pieces.append(p)
            totals.append(cum[b1 - 1])
        else:
            partial.append((seg, first_block + b0, bs[b0:b1].copy()))
    return ChunkScan(chunk=chunk, n_nan=int(stats[:, _kw.STAT_NAN].sum()),
                     n_positive=int(stats[:, _kw.STAT_POSITIVE].sum()),
                     complete_ids=np.asarray(ids, dtype=np.int64),
                     complete_pieces=np.asarray(pieces, dtype=np.int64),
                     complete_totals=np.asarray(totals, dtype=np.float64), partial=partial)


@dataclass
class SegmentTable:
    """The driver's view of a pool after the weights pass.

    ``prefix`` (n_segments,) is the sequential prefix sum of the segment totals, ``total`` its
    last entry, ``last_segment`` the last segment with a positive total; ``owner`` /
    ``piece`` give the chunk and piece of each whole segment (owner -1 for a cut segment,
    whose block prefix sums ``cut[seg] = (first global block, prefix sums, last positive)``
    the driver holds); ``chunk_blocks`` (n_chunks + 1,) the first global block of each chunk.
    """

    prefix: np.ndarray
    total: float
    last_segment: int
    owner: np.ndarray
    piece: np.ndarray
    cut: dict
    chunk_blocks: np.ndarray
    n_nan: int
    n_positive: int


def segment_table(scans: list[ChunkScan], chunk_blocks: np.ndarray) -> SegmentTable:
    """Assemble the chunks' scans (any order) into the :class:`SegmentTable`."""
    n_blocks = int(chunk_blocks[-1])
    n_seg = (n_blocks + SEGMENT_BLOCKS - 1) // SEGMENT_BLOCKS
    totals = np.zeros(n_seg, dtype=np.float64)
    owner = np.full(n_seg, -1, dtype=np.int64)
    piece = np.zeros(n_seg, dtype=np.int64)
    pieces: dict[int, list] = {}
    for s in scans:
        owner[s.complete_ids] = s.chunk
        piece[s.complete_ids] = s.complete_pieces
        totals[s.complete_ids] = s.complete_totals
        for seg, first, sums in s.partial:
            pieces.setdefault(seg, []).append((first, sums))
    cut = {}
    for seg, parts in pieces.items():
        parts.sort(key=lambda fs: fs[0])
        sums = np.concatenate([p[1] for p in parts])
        cum = np.empty_like(sums)
        last = int(_kw.cumulative_sum(sums, cum))
        cut[seg] = (parts[0][0], cum, last)
        totals[seg] = cum[-1]
    prefix = np.empty_like(totals)
    last_segment = int(_kw.cumulative_sum(totals, prefix)) if n_seg else -1
    return SegmentTable(prefix=prefix, total=float(prefix[-1]) if n_seg else 0.0,
                        last_segment=last_segment, owner=owner, piece=piece, cut=cut,
                        chunk_blocks=chunk_blocks,
                        n_nan=sum(s.n_nan for s in scans),
                        n_positive=sum(s.n_positive for s in scans))


def route_draws(table: SegmentTable, key: np.uint64, k: int) -> dict[int, tuple[np.ndarray, ...]]:
    """Draws 0..k-1 of the stream ``key`` as jobs per chunk: ``{chunk: (positions, kind,
    where, target)}`` for :func:`chunk_draws`.

    Draw j takes t = u_j·total with u_j = ``stream_uniform(key, j)`` (as in-core), its segment
    by the prefix of segment totals, and its target measured from the segment's start; a cut
    segment's draws are also resolved to their block here (the driver holds its block sums).
    """
    u = np.empty(k, dtype=np.float64)
    _ks.uniforms_at(key, 0, u)
    t = u * table.total
    seg = np.searchsorted(table.prefix, t, side="right")
    seg[seg >= table.prefix.shape[0]] = table.last_segment
    prev = np.where(seg > 0, table.prefix[np.maximum(seg - 1, 0)], 0.0)
    r = t - prev
    chunk = table.owner[seg].copy()
    kind = np.zeros(k, dtype=np.int64)
    where = table.piece[seg].copy()
    target = r.copy()
    for s in np.unique(seg[chunk < 0]):
        sel = np.flatnonzero(seg == s)
        first, cum, last = table.cut[int(s)]
        b = np.searchsorted(cum, r[sel], side="right")
        b[b >= cum.shape[0]] = last
        target[sel] = r[sel] - np.where(b > 0, cum[np.maximum(b - 1, 0)], 0.0)
        gb = first + b
        c = np.searchsorted(table.chunk_blocks, gb, side="right") - 1
        chunk[sel] = c
        kind[sel] = 1
        where[sel] = gb - table.chunk_blocks[c]
    jobs = {}
    order = np.argsort(chunk, kind="stable")
    bounds = np.searchsorted(chunk[order], np.arange(table.chunk_blocks.shape[0]))
    for c in range(table.chunk_blocks.shape[0] - 1):
        pos = order[bounds[c]:bounds[c + 1]]
        if pos.size:
            jobs[c] = (pos, kind[pos], where[pos], target[pos])
    return jobs


def chunk_draws(q: np.ndarray, extra: Any, top: float, params: tuple[float, ...],
                first_block: int, kind: np.ndarray, where: np.ndarray,
                target: np.ndarray) -> np.ndarray:
    """Global indices of the draws routed to one chunk (:func:`route_draws`)."""
    bs, _, _ = _pass(q, extra, top, params, False)
    cum, last, _ = _segments(bs, first_block)
    q = np.ascontiguousarray(q)
    ex, use = _extra(extra, top)
    out = np.empty(kind.shape[0], dtype=np.int64)
    _ks.draw_routed(q, ex, use, *params, bs, cum, last, first_block % SEGMENT_BLOCKS,
                    kind, where, target, out)
    return out + first_block * BLOCK


def chunk_weights(q: np.ndarray, extra: Any, top: float, params: tuple[float, ...],
                  total: float) -> np.ndarray:
    """Normalised weights of a chunk, w / total (the pool's total)."""
    _, _, w = _pass(q, extra, top, params, True)
    return w / total


def chunk_block_sums(q: np.ndarray, extra: Any, top: float,
                     params: tuple[float, ...]) -> np.ndarray:
    """The chunk's block sums (the in-core kernel's, block by block)."""
    return _pass(q, extra, top, params, False)[0]


def chunk_smallest_keys(q: np.ndarray, extra: Any, top: float, params: tuple[float, ...],
                        first: int, key: np.uint64, k: int) -> tuple[np.ndarray, np.ndarray,
                                                                      int, int]:
    """(keys, global indices) of the chunk's k smallest Efraimidis–Spirakis keys, its NaN
    count and its positive-weight count."""
    bs, stats, w = _pass(q, extra, top, params, True)
    n = w.shape[0]
    keys = np.empty(n, dtype=np.float64)
    _ks.exponential_keys_at(w[:n], key, first, keys)
    m = min(k, n)
    part = np.argpartition(keys, m - 1)[:m] if 0 < m < n else np.arange(m)
    return (keys[part], part.astype(np.int64) + first, int(stats[:, _kw.STAT_NAN].sum()),
            int(stats[:, _kw.STAT_POSITIVE].sum()))


def merge_smallest(parts: list, k: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Merge :func:`chunk_smallest_keys` results: the k smallest keys over all (ties by
    index), NaN and positive counts summed."""
    keys = np.concatenate([p[0] for p in parts])
    idx = np.concatenate([p[1] for p in parts])
    order = np.lexsort((idx, keys))[:k]
    return keys[order], idx[order], sum(p[2] for p in parts), sum(p[3] for p in parts)
