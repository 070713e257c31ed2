"""CUDA kernels of the rational forward pass (``@cuda.jit``), one thread per point.

The math is the per-point functions the CPU kernels use (:func:`.basis.poly_sum`,
:func:`.basis.denom_sum`, :func:`.rational.point_denominator`, :func:`.rational.output_point`):
numba-cuda compiles the same ``@njit`` functions as device functions, so nothing is written
twice. A kernel is specialised per (basis, degrees, outputs, Q sharing, policy, ε) as the CPU
kernels are; outputs go to separate value, tag and Q arrays (a packed 9-byte record would need
unaligned 8-byte device stores, and CuPy / PyTorch have no structured dtypes).

1-D input only in this release (n-D layers: the CPU kernels). Importing this module needs
numba-cuda; it does not need a GPU (``NUMBA_ENABLE_CUDASIM=1`` runs the kernels in the
simulator, ``numba.cuda.compile_ptx`` builds them for a compute capability without a device).
"""
from __future__ import annotations

from numba import cuda, float64

from .basis import anchor_slope, basis_row_1d, denominator_row_1d, mapped_point
from .rational import (
    backward_point,
    feature_bound,
    guard_coefficients,
    head_output,
    point_denominator,
)
from .reduce_cuda import TILE, tile_sum_rows

#: Threads per block of the forward kernel.
THREADS = 256

_FORWARD: dict = {}


def forward_kernel(basis: int, dp: int, dq: int, n_out: int, shared_q: bool, has_policy: bool,
                   has_eps: bool, write_q: bool):
    """The specialised forward kernel ``(x, theta, phi, scale, shift, one, eps, tau_q, tau_p,
    val, tag, q)``: for point i (one thread) and head j, ``val[i, j]``, ``tag[i, j]`` (uint8)
    and, when ``write_q``, ``q[i, j]`` — the same values and tags as the CPU
    :func:`~.rational.eval_chunk_fn` (x of shape (N,), theta (n_out, dp+1), phi (n_qh, dq);
    val and q (N, n_out) in the computation dtype)."""
    key = (int(basis), int(dp), int(dq), int(n_out), bool(shared_q), bool(has_policy),
           bool(has_eps), bool(write_q))
    kernel = _FORWARD.get(key)
    if kernel is not None:
        return kernel
    BASIS, DP, DQ, NOUT, SHARED, HAS_POLICY, HAS_EPS, WRITE_Q = key

    @cuda.jit
    def forward(x, theta, phi, scale, shift, one, eps, tau_q, tau_p, val, tag, q):
        i = cuda.grid(1)
        if i >= x.shape[0]:
            return
        t = mapped_point(BASIS, x[i], scale, shift)
        nan_check = t - t
        q0 = point_denominator(BASIS, phi, 0, DQ, t, one, HAS_EPS, eps)
        for j in range(NOUT):
            v, g, qj = head_output(BASIS, theta, phi, j, DP, DQ, SHARED, t, one, HAS_EPS, eps,
                                   q0, nan_check, HAS_POLICY, tau_q, tau_p)
            val[i, j] = v
            tag[i, j] = g
            if WRITE_Q:
                q[i, j] = qj

    _FORWARD[key] = forward
    return forward


def launch_config(n: int) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` points."""
    return max(1, (n + THREADS - 1) // THREADS), THREADS


# TILE (from .reduce_cuda): points per tile of the fused kernel, one block of this many threads
# per tile whatever the grid, so that the tile sums (in thread order) and their combination on
# the host in tile order give the same bits for every launch.
#: slots after the gradient in a tile's partial row: the data loss and the rejection sum
N_LOSS_SLOTS = 2
#: columns of a tile's counts: tags REAL..PHI (0..3), then these
COUNT_MASK_REAL, COUNT_SATURATING, COUNT_OVERFLOW, COUNT_NEAR = 4, 5, 6, 7
N_COUNTS = 8

_FUSED: dict = {}


def fused_kernel(basis: int, dp: int, dq: int, n_out: int, shared_q: bool, has_policy: bool,
                 has_eps: bool, tukey: bool):
    """The specialised fused loss-and-gradient kernel, launched as ``[n_tiles, TILE]``:
    ``(x, target, weight, has_w, wconst, theta, phi, scale, shift, one, eps, tau_q, tau_p, mode,
    delta, bound, loss_kind, huber_delta, lam, inv_tau, glim, val, tag, q, partial, tags)``.

    Thread i evaluates point i (the forward of :func:`forward_kernel`), then per head
    :func:`~.rational.backward_point` and :func:`~.rational.guard_coefficients` (the CPU pass's
    functions), and adds c_P·psi_k and c_Q·eta_k (the denominator features of the basis) to
    its row of contributions; each tile sums them in thread order
    (:func:`.reduce_cuda.tile_sum_rows`) into
    ``partial[tile]`` (float64, n_theta + n_phi gradient slots, then data loss and rejection
    sum); ``tags[tile]`` (int64, ``N_COUNTS``) counts the REAL, PINF, NINF, PHI tags, the
    Mask-REAL and Saturating outputs, the overflow-masked ones and the distinct Q evaluations
    with |Q| <= delta. ``target`` and ``weight`` are
    head-major (n_out, N) float64 (``weight`` read when ``has_w``, else every output weighs
    ``wconst``)."""
    key = (int(basis), int(dp), int(dq), int(n_out), bool(shared_q), bool(has_policy),
           bool(has_eps), bool(tukey))
    kernel = _FUSED.get(key)
    if kernel is not None:
        return kernel
    BASIS, DP, DQ, NOUT, SHARED, HAS_POLICY, HAS_EPS, TUKEY = key
    DMAX = max(DP, DQ)
    NTP = DP + 1
    NQH = 1 if SHARED else NOUT
    NTHETA = NOUT * NTP
    NPAR = NTHETA + NQH * DQ
    NSLOT = NPAR + N_LOSS_SLOTS
    NQROW = DQ + 1
    SLOPE = anchor_slope(DQ)
    NPSI = DMAX + 1

    @cuda.jit
    def fused(x, target, weight, has_w, wconst, theta, phi, scale, shift, one, eps, tau_q, tau_p,
              mode, delta, bound, loss_kind, huber_delta, lam, inv_tau, glim, val, tag, q,
              partial, tags):
        tid = cuda.threadIdx.x
        tile = cuda.blockIdx.x
        i = tile * TILE + tid
        contrib = cuda.local.array(NSLOT, float64)
        psi = cuda.local.array(NPSI, float64)
        qrow = cuda.local.array(NQROW, float64)
        for s in range(NSLOT):
            contrib[s] = 0.0
        if i < x.shape[0]:
            t = mapped_point(BASIS, x[i], scale, shift)
            nan_check = t - t
            finite = nan_check == nan_check
            t64 = float64(t) if finite else 0.0
            bnd = feature_bound(BASIS, t64, DMAX, SLOPE)
            # psi_k(t) in float64, the recurrence of the CPU pass's feature rows
            basis_row_1d(BASIS, t64, DMAX, 1.0, psi, 0)
            denominator_row_1d(BASIS, psi, DQ, SLOPE, qrow)  # eta_k, as the CPU pass
            q0 = point_denominator(BASIS, phi, 0, DQ, t, one, HAS_EPS, eps)
            for j in range(NOUT):
                jq = 0 if SHARED else j
                v, g, qj = head_output(BASIS, theta, phi, j, DP, DQ, SHARED, t, one, HAS_EPS,
                                       eps, q0, nan_check, HAS_POLICY, tau_q, tau_p)
                val[i, j] = v
                tag[i, j] = g
                q[i, j] = qj
                w = weight[j, i] if has_w else wconst
                cp, cq, l, r, dec = backward_point(
                    finite, g, float64(qj), float64(v), target[j, i], w, mode, delta, bound,
                    loss_kind, huber_delta, lam > 0.0, lam, inv_tau, TUKEY)
                cp, cq, over = guard_coefficients(cp, cq, bnd, glim)
                cuda.atomic.add(tags, (tile, g), 1)
                if dec > 0:
                    cuda.atomic.add(tags, (tile, COUNT_MASK_REAL + dec - 1), 1)
                if over:
                    cuda.atomic.add(tags, (tile, COUNT_OVERFLOW), 1)
                if j < NQH and abs(float64(qj)) <= delta:
                    cuda.atomic.add(tags, (tile, COUNT_NEAR), 1)
                for k in range(NTP):
                    contrib[j * NTP + k] += cp * psi[k]
                for k in range(DQ):
                    contrib[NTHETA + jq * DQ + k] += cq * qrow[k + 1]
                contrib[NPAR] += l
                contrib[NPAR + 1] += r
        tile_sum_rows(contrib, NSLOT, partial, tile)

    _FUSED[key] = fused
    return fused


def n_tiles(n: int) -> int:
    """Tiles (blocks of :data:`TILE` threads) of the fused kernel for ``n`` points."""
    return max(1, (int(n) + TILE - 1) // TILE)
