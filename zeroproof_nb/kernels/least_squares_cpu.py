"""CPU loops of the Gauss-Newton pass and the Levenberg-Marquardt driver (float64).

:func:`accumulate_chunk` evaluates P, Q and the tag of every output of a chunk of points and
adds, for the outputs that take part (finite x, REAL output, finite target), the weighted
robust loss, the gradient J^T psi(r) and the Gauss-Newton matrix J^T diag(omega) J (upper
triangle) of the data term, then the rejection term and its Gauss-Newton curvature
(:func:`normal_equations`, the public ``rational_normal_equations``).

Levenberg-Marquardt never forms J^T J (that squares cond J, ~1e9-1e10 for rational fits near
poles, and loses the accuracy the last steps need): :func:`qr_accumulate_chunk` adds the same
rows, weighted by sqrt(w omega), to a QR factorisation (Householder, :func:`tri_update` of
[R; rows] per block of ``LS_BLOCK`` points), keeping Q^T b of the weighted residuals alongside.
:func:`qr_equations` factorises chunks of points in parallel and stacks their R factors in
chunk order (TSQR), so the result is the same bits for any number of threads.

:func:`lm_run` is the whole iteration in one call: each step solves the damped problem
min ||R s + c||^2 + mu ||D s||^2 from the QR factorisation of [R; sqrt(mu) D] (as MINPACK does;
D^2 = diag(R^T R), Marquardt's scaling), evaluates the candidate (one more pass, which also
gives its R), accepts it when the objective falls and no output that took part became
non-REAL, and adapts mu (Nielsen's rule). Each step first tries the Gauss-Newton step (a ridge
of ``GN_RIDGE`` D, far below rounding): damping also damps the directions of smallest
curvature, so that damped steps crawl where Gauss-Newton converges in a few steps; after a
failed Gauss-Newton try, steps are damped until mu falls below ``GN_REENABLE``. The parameter
layout is ``[theta2.ravel(), phi2.ravel()]``.

The loops live in three modules by concern, re-exported here under their former path:
:mod:`.least_squares_pass_cpu` (the normal-equations pass and the shared block functions),
:mod:`.least_squares_qr_cpu` (the QR accumulation) and :mod:`.lm_cpu` (the LM driver).
"""
from __future__ import annotations

from .least_squares_pass_cpu import (  # noqa: F401
    C_REAL,
    C_TARGET,
    C_USED,
    F_DATA,
    F_REJ,
    F_RES,
    LS_BLOCK,
    LS_CHUNK,
    N_C,
    N_F,
    PARALLEL_MIN_CHUNKS,
    accumulate_chunk,
    add_regulariser,
    all_finite,
    block_features,
    block_gram,
    block_pq,
    chunk_partials,
    denominator_block,
    irls_weights,
    normal_equations,
    robust_losses,
    rule_block_at,
    rule_block_fn,
    rule_block_signature,
)
from .least_squares_qr_cpu import (  # noqa: F401
    QR_CHUNK,
    qr_accumulate_at,
    qr_accumulate_chunk,
    qr_accumulate_fn,
    qr_accumulate_signature,
    qr_chunk_partials,
    qr_equations,
    qr_equations_at,
    qr_equations_fn,
    qr_equations_signature,
    qr_gradient,
    qr_partials_at,
    qr_partials_fn,
    qr_partials_signature,
    qr_rhs,
    tri_update,
    use_parallel,
)
from .lm_cpu import (  # noqa: F401
    COMPENSATE_CONDITION,
    GN_REENABLE,
    GN_RIDGE,
    LAST_NOISE,
    LM_FTOL,
    LM_GTOL,
    LM_NOT_FINITE,
    LM_RUNNING,
    LM_STALLED,
    LM_XTOL,
    N_STATE,
    S_GN,
    S_MU,
    S_NU,
    corrected_targets,
    corrected_targets_fn,
    lm_run,
    lm_step,
    value_corrections,
)

__all__ = [
    "C_REAL",
    "C_TARGET",
    "C_USED",
    "F_DATA",
    "F_REJ",
    "F_RES",
    "LS_BLOCK",
    "LS_CHUNK",
    "N_C",
    "N_F",
    "PARALLEL_MIN_CHUNKS",
    "accumulate_chunk",
    "add_regulariser",
    "all_finite",
    "block_features",
    "block_gram",
    "block_pq",
    "chunk_partials",
    "denominator_block",
    "irls_weights",
    "normal_equations",
    "robust_losses",
    "rule_block_at",
    "rule_block_fn",
    "rule_block_signature",
    "QR_CHUNK",
    "qr_accumulate_at",
    "qr_accumulate_chunk",
    "qr_accumulate_fn",
    "qr_accumulate_signature",
    "qr_chunk_partials",
    "qr_equations",
    "qr_equations_at",
    "qr_equations_fn",
    "qr_equations_signature",
    "qr_gradient",
    "qr_partials_at",
    "qr_partials_fn",
    "qr_partials_signature",
    "qr_rhs",
    "tri_update",
    "use_parallel",
    "GN_REENABLE",
    "GN_RIDGE",
    "LAST_NOISE",
    "LM_FTOL",
    "LM_GTOL",
    "LM_NOT_FINITE",
    "COMPENSATE_CONDITION",
    "LM_RUNNING",
    "LM_STALLED",
    "LM_XTOL",
    "N_STATE",
    "S_GN",
    "S_MU",
    "S_NU",
    "corrected_targets",
    "corrected_targets_fn",
    "lm_run",
    "lm_step",
    "value_corrections",
]
