"""Importance weights 1/|Q|^p (clipped, tempered) and weighted index draws.

Per-point weight (written once, :func:`importance_weight`)::

    a = max(|q|, min_q_abs);  w = min(a**-p / max_weight, 1);  w = w**(1/T)

i.e. upstream's ``min(a**-p, max_weight)**(1/T)`` times the constant ``max_weight**(-1/T)``,
which cancels in the normalisation and keeps ``w**(1/T)`` in [0, 1] for small temperatures
instead of overflowing. NaN q gives weight 0 (the
Python layer raises first under ``nan_policy='raise'``). An optional per-point factor ``extra``
(e.g. curriculum weights) multiplies the weight: the draw distribution is then ∝ w·extra.

Deterministic layout (independent of the numba thread count): the pool is cut into blocks of
:data:`BLOCK` points; each block's weight sum is a fixed-order :func:`lane_sum`, and the block
sums are accumulated sequentially into ``block_cum``. A draw maps a uniform u to
``t = u·total``, binary-searches the block and rescans it (recomputing the same per-point
weights). Kernels index through slices so that numba can drop negative-index wraparound and
vectorise the loops. The prepared form builds a Walker alias table once (one uint64 word per
point, by a two-cursor sweep): O(1) per draw.

Random numbers: every draw kernel takes a 64-bit ``key`` (drawn once per batch from the
sampler's ``numpy.random.Generator``) and computes its uniforms itself from a counter-based
stream: uniform number k of a batch is SplitMix64's output k for the seed ``key``
(:func:`stream_bits`), a pure function of (key, k). So any partition of the draws over threads
gives the same indices, and no array of uniforms is generated or stored.

Where things live (this module re-exports them, so ``kernels.weights.X`` keeps working):
:mod:`.streams` (the counter-based streams), :mod:`.importance` (the per-point weight, the
block sums' lane functions and the per-draw block-CDF search: scalar functions shared with
:mod:`.weights_cuda`), :mod:`.importance_cpu` (the weight passes, normalisation, block-CDF draws
and exponential keys), :mod:`.alias` (the alias-table word and pick), :mod:`.alias_cpu` (table
build and alias draws) and :mod:`.counts_cpu` (the two-level draw counts).
"""
from __future__ import annotations

from .alias import (  # noqa: F401
    DRAW_BLOCK,
    DRAW_PART,
    alias_pick,
    alias_slot,
    leftover_row,
    pack_alias,
)
from .alias_cpu import (  # noqa: F401
    build_alias_table,
    draw_alias,
    draw_alias_batches,
    draw_alias_serial,
)
from .counts_cpu import (  # noqa: F401
    LOW_COUNT_MAX,
    SPILL,
    accumulate_counts,
    accumulate_counts_serial,
    count_all,
    count_range,
)
from .importance import (  # noqa: F401
    BLOCK,
    N_STATS,
    STAT_ABS_MIN,
    STAT_ABS_SUM,
    STAT_FINITE,
    STAT_NAN,
    STAT_POSITIVE,
    block_weights,
    cap_and_temper,
    clamp_abs,
    draw_from_block_cdf,
    exponential_key,
    extra_factor,
    importance_weight,
    lane_min,
    lane_sum,
    power_weight,
)
from .importance_cpu import (  # noqa: F401
    PARALLEL_MIN_WORK,
    abs_stats,
    abs_stats_serial,
    cumulative_sum,
    draw_block_cdf,
    draw_block_cdf_serial,
    exponential_keys,
    exponential_keys_serial,
    normalise,
    normalise_serial,
    weight_block_sums,
    weight_block_sums_serial,
)
from .streams import stream_bits, stream_exponential, stream_uniform  # noqa: F401
from .tags import CHUNK  # noqa: F401
