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

from numba import cuda

from .basis import MONOMIAL, poly_sum
from .rational import output_point, point_denominator

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
        t = x[i]
        if BASIS != MONOMIAL:
            t = t * scale + shift
        nan_check = t - t
        q0 = point_denominator(BASIS, phi, 0, DQ, t, one, HAS_EPS, eps)
        for j in range(NOUT):
            qj = q0 if (SHARED or j == 0) else point_denominator(BASIS, phi, j, DQ, t, one,
                                                                 HAS_EPS, eps)
            p = poly_sum(BASIS, theta, j, DP, t)
            v, g = output_point(p, qj, nan_check, HAS_POLICY, tau_q, tau_p)
            val[i, j] = v
            tag[i, j] = g
            if WRITE_Q:
                q[i, j] = qj

    _FORWARD[key] = forward
    return forward


def launch_config(n: int) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` points."""
    return max(1, (n + THREADS - 1) // THREADS), THREADS
