"""Tag-aware rational evaluation y = P(x)/Q(x) and the fused loss-and-gradient pass.

Model (upstream §2.1): P(x) = sum_{k=0..d_p} theta_k psi_k(x), Q(x) = 1 + sum_{k=1..d_q} phi_k psi_k(x)
with ``phi[k-1]`` holding phi_k. Bases: ``"monomial"`` (Horner, x used as is) and ``"chebyshev"``
(Clenshaw, x mapped affinely from ``domain`` onto [-1, 1]); ``"chebyshev_anchored"`` (1-D only)
has P as ``"chebyshev"`` and the denominator Q(t) = 1 + m(t) sum_{k=0..d_q-1} phi_k T_k(t),
m(t) = 1 - t/t_a, normalised by Q = 1 at t_a = -cosh(acosh(10)/d_q) below the domain rather than by a fixed T_0
coefficient, so that Q can vanish anywhere in the domain (see :mod:`.kernels.basis`). n-D input x of shape (N, d) uses the
total-degree products of the same 1-D bases, terms ordered as :func:`monomial_exponents` returns
them; then theta has n_terms(d, d_p) entries and phi n_terms(d, d_q) - 1.

Shapes: theta (n_terms_p,) with phi (n_terms_q - 1,) gives outputs of shape (N,); theta
(n_outputs, n_terms_p) with a shared phi (n_terms_q - 1,) or one per head (n_outputs,
n_terms_q - 1) gives (N, n_outputs). d_q = 0 (phi of length 0) means Q = 1, a polynomial.

dtype: the computation runs in the dtype of ``x`` (float32 stays float32, anything else is
float64); theta and phi are cast to it.

The kernels are specialised per (basis, degrees, input dimension, number of outputs, Q sharing)
and compiled on first use (see :mod:`zeroproof_nb.kernels.rational`).

In-package API (not exported at the top level): the validated kernel plan that the layer, the
trainers, the least-squares fits and every backend share -- :class:`KernelPlan` from
:func:`prepare_plan`, :class:`GradOptions` from :func:`grad_options`, :func:`target_array`,
:func:`kernel_target`, :func:`normalised_weights`, :func:`check_indices`,
:func:`policy_thresholds`, :data:`DTYPE_MAX`, :func:`fused_pass_addresses` and
:func:`fused_pass`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

import numpy as np

from ._validation import (
    as_float_array,
    check_bool,
    check_bounds,
    check_choice,
    check_finite,
    check_no_overlap,
    check_nonnegative,
    check_positive,
)
from .core import is_tr_array, to_ieee, tr_dtype
from .features import (  # noqa: F401  (re-exported: their former path)
    basis_features,
    denominator_features,
    exponent_table,
    monomial_exponents,
)
from .device import is_device_array, resolve_device
from .kernels import basis as _kb
from .kernels import rational as _kr
from .kernels import rational_cpu as _kc
from .kernels.tags import CHUNK
from .rational_results import LossAndGrad, RationalStats

__all__ = [
    "TRPolicy",
    "LossAndGrad",
    "rational_eval",
    "rational_loss_and_grad",
    "basis_features",
    "denominator_features",
    "monomial_exponents",
    "n_terms",
]

n_terms = _kb.n_terms


_DUMMY_EXPS = np.zeros((1, 1), dtype=np.int64)
_DUMMY_EXPS.setflags(write=False)


# ----------------------------------------------------------------------------------------------
# tag policy


@dataclass(frozen=True)
class TRPolicy:
    """Tag policy: which outputs are reported REAL (upstream §2.3, without its quirks).

    An output that transreal division tags REAL but whose |Q| < ``tau_q_on`` is reported
    non-REAL, its value kept: PINF/NINF by the IEEE signs of P and Q (+0 counts as +1) when
    |P| >= ``tau_p_on``, else PHI. With all thresholds 0 (the default) the tags are pure
    transreal division (upstream would tag exact poles REAL; we do not). ``tau_q_off`` (>=
    ``tau_q_on``) is the leave threshold of the batch-level hysteresis (see ``gradients``);
    ``tau_p_off`` is kept for parity with upstream and unused, as there. All thresholds are
    finite and >= 0, in units of |Q| and |P|.
    """

    tau_q_on: float = 0.0
    tau_q_off: float = 0.0
    tau_p_on: float = 0.0
    tau_p_off: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tau_q_on", "tau_q_off", "tau_p_on", "tau_p_off"):
            object.__setattr__(self, name, check_nonnegative(getattr(self, name), name))
        if self.tau_q_off < self.tau_q_on:
            raise ValueError(
                f"tau_q_off must be >= tau_q_on, got {self.tau_q_off!r} < {self.tau_q_on!r}"
            )

    @classmethod
    def from_ulp(
        cls, ulp_scale: float = 4.0, dtype: Any = np.float64, q_scale: float = 1.0,
        p_scale: float = 1.0,
    ) -> "TRPolicy":
        """Upstream's ``resolve_thresholds``: tau_on = ulp_scale*eps(dtype)*max(1, scale),
        tau_off = 2*tau_on (for float64 and the defaults: 8.88e-16 and 1.78e-15)."""
        ulp = check_positive(ulp_scale, "ulp_scale") * float(np.finfo(np.dtype(dtype)).eps)
        tq = ulp * max(1.0, check_nonnegative(q_scale, "q_scale"))
        tp = ulp * max(1.0, check_nonnegative(p_scale, "p_scale"))
        return cls(tau_q_on=tq, tau_q_off=2 * tq, tau_p_on=tp, tau_p_off=2 * tp)


def _check_policy(policy: Any) -> TRPolicy | None:
    if policy is None or isinstance(policy, TRPolicy):
        return policy
    raise TypeError(f"policy must be a TRPolicy or None, got {type(policy).__name__}")


# ----------------------------------------------------------------------------------------------
# shared argument handling


@dataclass
class KernelPlan:
    """The validated arrays and frozen choices of one kernel call (:func:`prepare_plan`)."""

    x: np.ndarray  # (N,) for the 1-D path, (N, d) for n-D, computation dtype
    d: int  # 0 for the 1-D path
    theta2: np.ndarray  # (n_out, n_tp)
    phi2: np.ndarray  # (n_qh, n_tq - 1)
    dp: int
    dq: int
    n_out: int
    shared_q: bool
    multi: bool  # output shape (N, n_out) rather than (N,)
    basis_code: int
    scale: Any
    shift: Any
    dtype: np.dtype
    exps: np.ndarray
    #: per (has_policy, has_eps): addresses of the fused pass's specialisations (memo)
    fused_addresses: dict = field(default_factory=dict, repr=False)

    @property
    def out_shape(self) -> tuple[int, ...]:
        n = self.x.shape[0]
        return (n, self.n_out) if self.multi else (n,)


def _degree_from_terms(count: int, d: int, name: str, offset: int) -> int:
    """Degree whose total-degree term count minus ``offset`` equals ``count``."""
    deg = 0
    while _kb.n_terms(d, deg) - offset < count:
        deg += 1
    if _kb.n_terms(d, deg) - offset != count:
        valid = [_kb.n_terms(d, k) - offset for k in range(deg + 2)]
        raise ValueError(
            f"{name} has {count} coefficients per output, which is no total-degree term count "
            f"for input dimension {d} (valid counts: {valid}, ...)"
        )
    return deg


def prepare_plan(x: Any, theta: Any, phi: Any, basis: str, domain: Any) -> KernelPlan:
    basis = check_choice(basis, "basis", tuple(_kb.BASIS_CODES))
    lo, hi = check_bounds(domain, "domain")
    # writable: the kernels are compiled for writable arrays (a read-only input would type a
    # second signature and fail the by-address calls), so a read-only x is copied
    xa = np.require(as_float_array(x, "x", ndim=(1, 2)), requirements="W")
    dtype = xa.dtype
    th = as_float_array(theta, "theta", ndim=(1, 2), dtype=dtype)
    ph = as_float_array(phi, "phi", ndim=(1, 2), dtype=dtype)
    check_finite(th, "theta")
    check_finite(ph, "phi")
    if th.shape[-1] < 1:
        raise ValueError(f"theta must have at least one coefficient per output, got shape {th.shape}")
    multi = th.ndim == 2
    if multi:
        n_out = th.shape[0]
        if n_out < 1:
            raise ValueError(f"theta must have at least one output row, got shape {th.shape}")
        if ph.ndim == 1:
            shared = True
        elif ph.shape[0] == n_out:
            shared = False
        else:
            raise ValueError(
                f"phi must have shape (d_q,) (shared Q) or ({n_out}, d_q) (one Q per output) "
                f"for theta of shape {th.shape}, got {ph.shape}"
            )
    else:
        n_out = 1
        shared = True
        if ph.ndim != 1:
            raise ValueError(f"phi must be 1-dimensional when theta is 1-dimensional, got shape {ph.shape}")
    theta2 = th.reshape(n_out, th.shape[-1])
    phi2 = ph.reshape(1 if ph.ndim == 1 else ph.shape[0], ph.shape[-1])  # d_q = 0 allowed
    if xa.ndim == 2:
        d = xa.shape[1]
        if d < 1:
            raise ValueError(f"x must have at least one column, got shape {xa.shape}")
    else:
        d = 0
    if d > 1 and basis == "chebyshev_anchored":
        raise ValueError(
            "basis 'chebyshev_anchored' is for 1-D input; x of shape (N, d > 1) needs "
            f"'chebyshev' or 'monomial', got x of shape {xa.shape}"
        )
    if d <= 1:
        # 1-D path (x of shape (N,) or (N, 1)): the total-degree terms for d = 1 are 1, x, x^2...
        xk = xa.reshape(-1)
        dp = theta2.shape[1] - 1
        dq = phi2.shape[1]
        d_kernel = 0
        exps = _DUMMY_EXPS
    else:
        xk = xa
        dp = _degree_from_terms(theta2.shape[1], d, "theta", 0)
        dq = _degree_from_terms(phi2.shape[1], d, "phi", 1)
        d_kernel = d
        exps = exponent_table(d, max(dp, dq))
    scale = dtype.type(2.0 / (hi - lo))
    shift = dtype.type(-(hi + lo) / (hi - lo))
    return KernelPlan(
        x=xk, d=d_kernel, theta2=np.require(theta2, requirements="CW"),
        phi2=np.require(phi2, requirements="CW"),
        dp=dp, dq=dq, n_out=n_out, shared_q=shared, multi=multi,
        basis_code=_kb.BASIS_CODES[basis], scale=scale, shift=shift, dtype=dtype, exps=exps,
    )


def policy_thresholds(policy: TRPolicy | None, dtype: np.dtype) -> tuple[Any, Any]:
    if policy is None:
        return dtype.type(0.0), dtype.type(0.0)
    return dtype.type(policy.tau_q_on), dtype.type(policy.tau_p_on)


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    want = tr_dtype(dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a transreal numpy array, got {type(out).__name__}")
    if out.dtype != want:
        raise TypeError(f"out must have dtype {want}, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out


def _views2(y: np.ndarray, n: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    y2 = y.reshape(n, n_out)
    return y2["value"], y2["tag"]


# ----------------------------------------------------------------------------------------------
# forward


def _backend(device: Any, x: Any, supported: bool) -> str:
    """"cpu" or "cuda" for a call with ``device`` on ``x`` (the CUDA kernels are 1-D)."""
    if device == "cpu":  # the common case: no probe of the CUDA install
        return "cpu"
    one_d = is_device_array(x) or np.ndim(x) == 1
    return resolve_device(device, x, supported=supported and one_d)


def rational_eval(
    x: Any,
    theta: Any,
    phi: Any,
    *,
    basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0),
    return_q: bool = False,
    out: np.ndarray | None = None,
    policy: TRPolicy | None = None,
    q_epsilon: float = 0.0,
    device: str = "cpu",
) -> Any:
    """Evaluate y = P(x)/Q(x) with transreal tags, in parallel over points.

    Parameters
    ----------
    x : array-like, (N,) or (N, d)
        Inputs; non-finite entries give PHI outputs with a NaN value.
    theta : array-like, (n_terms_p,) or (n_outputs, n_terms_p)
        Numerator coefficients (n_terms_p = d_p + 1 in 1-D).
    phi : array-like, (n_terms_q - 1,) or (n_outputs, n_terms_q - 1)
        Denominator coefficients phi_1..phi_dq (the constant 1 is implicit); 1-D phi is shared
        by every output.
    basis : {"monomial", "chebyshev", "chebyshev_anchored"}
        See the module notes (the anchored basis: 1-D only).
    domain : (lo, hi)
        Interval mapped onto [-1, 1] for the Chebyshev bases (ignored by the monomial basis).
    return_q : bool
        Also return the signed denominator per output (the Q actually divided by).
    out : transreal array, optional
        Reusable result buffer of the output shape and dtype ``tr_dtype(x.dtype)``.
    policy : TRPolicy, optional
        Reports outputs with |Q| < tau_q_on as non-REAL (value kept).
    q_epsilon : float >= 0
        epsilon-regularised baseline: divide by Q_eff = Q + eps*sign(Q) (sign(0) = +1); Q_eff is
        used for the value, the tag and the returned q.
    device : {"cpu", "cuda", "auto"}
        Backend (:mod:`zeroproof_nb.device`): "cuda" runs
        :func:`zeroproof_nb.rational_cuda.rational_eval_cuda` (1-D x, no ``out``) and raises
        ``CudaUnavailableError`` naming what is missing without a usable GPU; "auto" uses CUDA
        for device-resident x or a usable GPU, else the CPU. x with
        ``__cuda_array_interface__`` stays on the device and the result is a
        :class:`~zeroproof_nb.rational_cuda.DeviceRational` (value, tag, q device arrays;
        ``.to_host()`` gives the structured array).

    Returns
    -------
    y : transreal structured array of shape (N,) or (N, n_outputs)
    q : ndarray of the same shape, only with ``return_q=True``
    """
    return_q = check_bool(return_q, "return_q")
    if _backend(device, x, out is None) == "cuda":
        if out is not None:
            raise ValueError("out= is not supported with device='cuda'")
        from .rational_cuda import rational_eval_cuda

        return rational_eval_cuda(x, theta, phi, basis=basis, domain=domain, return_q=return_q,
                                  policy=policy, q_epsilon=q_epsilon)
    pb = prepare_plan(x, theta, phi, basis, domain)
    policy = _check_policy(policy)
    eps = pb.dtype.type(check_nonnegative(q_epsilon, "q_epsilon"))
    shape = pb.out_shape
    if out is None:
        y = np.empty(shape, dtype=tr_dtype(pb.dtype))
    else:
        y = _check_out(out, shape, pb.dtype)
        check_no_overlap(y, {"x": pb.x, "theta": pb.theta2, "phi": pb.phi2})
    n = pb.x.shape[0]
    q = np.empty(shape, dtype=pb.dtype) if return_q else np.empty((1, 1), dtype=pb.dtype)
    if n > 0:
        val, tag = _views2(y, n, pb.n_out)
        q2 = q.reshape(n, pb.n_out) if return_q else q
        tau_q, tau_p = policy_thresholds(policy, pb.dtype)
        fwd = _kc.eval_chunk_fn(pb.basis_code, pb.dp, pb.dq, pb.d, pb.n_out, pb.shared_q,
                                bool(return_q), policy is not None, eps > 0, pb.dtype)
        args = (pb.x.reshape(-1), n, pb.exps, pb.theta2, pb.phi2, pb.scale, pb.shift,
                pb.dtype.type(1.0), eps, tau_q, tau_p, val, tag, q2, fwd.address)
        _kc.eval_kernel(args)(*args)
    if return_q:
        return y, q
    return y


# ----------------------------------------------------------------------------------------------
# fused loss and gradient (results: rational_results.LossAndGrad, RationalStats)


def _mode_code(mode: Any) -> int:
    value = mode.value if isinstance(mode, Enum) else mode
    if not isinstance(value, str) or value not in _kr.MODE_CODES:
        raise ValueError(f"mode must be one of {tuple(_kr.MODE_CODES)} (or a GradientMode), got {mode!r}")
    return _kr.MODE_CODES[value]


def target_array(target: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if is_tr_array(target):
        t = to_ieee(target)
    else:
        t = as_float_array(target, "target")
    if t.shape != shape:
        raise ValueError(f"target must have the output shape {shape}, got {t.shape}")
    return np.require(t, dtype=np.float64, requirements="CW")  # writable, as x in prepare_plan


def normalised_weights(sample_weight: Any, shape: tuple[int, ...],
                        idx: np.ndarray | None = None) -> np.ndarray | None:
    """w / sum(w) head-major, shape (n_out, N) C-contiguous; None when no weights are given.
    With ``idx`` the sum runs over the rows ``idx`` only (the batch drawn from the pool) and
    the result is row-major, shape (N, n_out)."""
    if sample_weight is None:
        return None
    w = as_float_array(sample_weight, "sample_weight", dtype=np.float64)
    if w.shape == shape[:1] and len(shape) == 2:
        w = np.repeat(w[:, None], shape[1], axis=1)
    elif w.shape != shape:
        raise ValueError(
            f"sample_weight must have shape {shape[:1]} or the output shape {shape}, got {w.shape}"
        )
    check_finite(w, "sample_weight")
    if np.any(w < 0):
        raise ValueError("sample_weight must be >= 0")
    with np.errstate(over="ignore"):
        total = float(np.sum(w if idx is None else w[idx]))
    if total == np.inf:  # finite weights whose sum overflows: the same ratios from w / max(w)
        w = w / np.max(w)
        total = float(np.sum(w if idx is None else w[idx]))
    if w.size and not total > 0:
        raise ValueError("sample_weight must have a positive sum"
                         + ("" if idx is None else " over the rows in indices"))
    w2 = w.reshape(shape[0], shape[1] if len(shape) == 2 else 1)
    if idx is not None:
        return w2 / total
    return np.ascontiguousarray((w2 / total).T) if w.size else w2.T


def kernel_target(t: np.ndarray, n_out: int, gathered: bool) -> np.ndarray:
    """The target as the fused kernel reads it: (n_out, N) head-major (a free view for one
    output), or the pool's (N, n_out) rows when the kernel gathers rows by index."""
    t2 = t.reshape(t.shape[0], n_out)
    return t2 if gathered else np.ascontiguousarray(t2.T)


def check_indices(indices: Any, n_pool: int) -> np.ndarray:
    """``indices`` as a 1-D int64 array of rows in [0, n_pool)."""
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be an array of integers, got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"indices must be 1-dimensional, got shape {idx.shape}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_pool):
        raise ValueError(f"indices must lie in [0, {n_pool}) (rows of x), got values in "
                         f"[{idx.min()}, {idx.max()}]")
    return idx


def rational_loss_and_grad(
    x: Any,
    target: Any,
    theta: Any,
    phi: Any,
    *,
    basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0),
    mode: Any = "mask_real",
    delta: float | None = None,
    saturation_bound: float = 1.0,
    sample_weight: Any = None,
    loss: str = "mse",
    huber_delta: float = 1.0,
    lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2,
    policy: TRPolicy | None = None,
    q_epsilon: float = 0.0,
    indices: Any = None,
    device: str = "cpu",
) -> LossAndGrad:
    """Loss, gradients w.r.t. theta and phi, tags and |Q| statistics in one pass over the points.

    The exact loss (data term normalised by the total weight, the rejection term) and gradient
    rules are in ``docs/losses.md``. Summary: the data loss sums w*l(y, t) over outputs whose
    value and target are both REAL and divides by the sum of all weights (mse 1/2 r^2, mae |r|,
    real Huber); gradients follow ``mode`` ("mask_real", "saturating", "hybrid" with threshold
    ``delta`` on |Q|; delta None = Mask-REAL everywhere), non-REAL outputs contribute no data
    gradient in any mode; ``lambda_rej`` adds lambda*(1 - |Q|/rejection_threshold)^2 for REAL
    targets with |Q| < rejection_threshold and lambda*|Q| for non-REAL targets (NaN/+-inf floats
    or non-REAL tags), both weighted and normalised like the data term.

    Arguments shared with :func:`rational_eval` have the same meaning; ``target`` has the output
    shape; ``sample_weight`` has shape (N,) or the output shape. Sums are deterministic (same
    bits for any number of numba threads).

    ``indices`` (B,) integers in [0, N), optional: the pass runs on the rows ``x[indices]``,
    ``target[indices]`` (and weights) without copying them, e.g. a batch drawn from a pool;
    outputs, tags and Q then have B rows, and weights are normalised over those rows.

    ``device`` ("cpu", "cuda", "auto") as in :func:`rational_eval`: "cuda" runs the fused CUDA
    kernel (:func:`zeroproof_nb.rational_cuda.rational_loss_and_grad_cuda`: 1-D x, which may
    be on the device, no ``indices``; the result is on the host and agrees with the CPU to
    rounding); "auto" falls back to the CPU where CUDA cannot run the call.
    """
    if _backend(device, x, indices is None) == "cuda":
        if indices is not None:
            raise ValueError("indices= is not supported with device='cuda'")
        from .rational_cuda import rational_loss_and_grad_cuda

        return rational_loss_and_grad_cuda(
            x, target, theta, phi, basis=basis, domain=domain, mode=mode, delta=delta,
            saturation_bound=saturation_bound, sample_weight=sample_weight, loss=loss,
            huber_delta=huber_delta, lambda_rej=lambda_rej,
            rejection_threshold=rejection_threshold, policy=policy, q_epsilon=q_epsilon)
    pb = prepare_plan(x, theta, phi, basis, domain)
    opt = grad_options(pb.dtype, mode, delta, saturation_bound, loss, huber_delta, lambda_rej,
                        rejection_threshold, policy, q_epsilon)
    shape = pb.out_shape
    idx = None if indices is None else check_indices(indices, shape[0])
    tgt = kernel_target(target_array(target, shape, pb.dtype), pb.n_out, idx is not None)
    return fused_pass(pb, pb.x, tgt, normalised_weights(sample_weight, shape, idx), opt, idx)


DTYPE_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float32, np.float64)}


class GradOptions(NamedTuple):
    """Validated options of the fused pass (kernel codes and float64 scalars)."""

    mode: int
    delta: float  # -1.0 for None (Mask-REAL everywhere in hybrid mode)
    bound: float
    loss: int
    huber_delta: float
    lam: float
    inv_tau: float
    eps: Any  # computation dtype
    policy: TRPolicy | None


def grad_options(
    dtype: np.dtype, mode: Any = "mask_real", delta: float | None = None,
    saturation_bound: float = 1.0, loss: str = "mse", huber_delta: float = 1.0,
    lambda_rej: float = 0.0, rejection_threshold: float = 1e-2, policy: TRPolicy | None = None,
    q_epsilon: float = 0.0,
) -> GradOptions:
    """Validate the keyword options of :func:`rational_loss_and_grad` (same names)."""
    loss_code = _kr.LOSS_CODES.get(loss) if isinstance(loss, str) else None
    if loss_code is None:
        raise ValueError(f"loss must be one of {tuple(_kr.LOSS_CODES)}, got {loss!r}")
    return GradOptions(
        mode=_mode_code(mode),
        delta=-1.0 if delta is None else check_nonnegative(delta, "delta"),
        bound=check_positive(saturation_bound, "saturation_bound"),
        loss=loss_code,
        huber_delta=check_positive(huber_delta, "huber_delta"),
        lam=check_nonnegative(lambda_rej, "lambda_rej"),
        inv_tau=1.0 / check_positive(rejection_threshold, "rejection_threshold"),
        eps=dtype.type(check_nonnegative(q_epsilon, "q_epsilon")),
        policy=_check_policy(policy),
    )


_NO_INDICES = np.zeros(0, dtype=np.int64)


def fused_pass_addresses(pb: KernelPlan, opt: GradOptions) -> tuple[int, int, int]:
    """Addresses of the fused pass's forward, reduce and gradient-sum functions for ``pb``
    and ``opt`` (compiled on first use, memoised on ``pb``)."""
    key = (opt.policy is not None, bool(opt.eps > 0), opt.mode, opt.loss)
    addresses = pb.fused_addresses.get(key)
    if addresses is None:
        fwd = _kc.forward_block_fn(pb.basis_code, pb.dp, pb.dq, pb.d, pb.n_out, pb.shared_q,
                                   key[0], key[1], pb.dtype)
        sums = _kc.grad_sums_fn(pb.basis_code, pb.dp, pb.dq, pb.d, pb.n_out, pb.shared_q)
        addresses = (fwd.address, _kc.block_reduce_fn(opt.mode, opt.loss).address, sums.address)
        pb.fused_addresses[key] = addresses
    return addresses


def fused_pass(pb: KernelPlan, xk: np.ndarray, tgt_hm: np.ndarray, wn: np.ndarray | None,
               opt: GradOptions, idx: np.ndarray | None = None) -> LossAndGrad:
    """The fused pass on validated input: ``xk`` the kernel's x ((N,) on the 1-D path, else
    (N, d)) with the layout ``pb`` was prepared for, ``tgt_hm`` the float64 target and ``wn``
    the weights as :func:`kernel_target` and :func:`normalised_weights` give them, ``idx``
    valid rows of the pool or None (all rows). ``pb.x`` is not used."""
    n = xk.shape[0] if idx is None else idx.shape[0]
    shape = (n, pb.n_out) if pb.multi else (n,)
    policy = opt.policy
    eps = opt.eps
    y = np.empty(shape, dtype=tr_dtype(pb.dtype))
    q = np.empty(shape, dtype=pb.dtype)
    n_tp = pb.theta2.shape[1]
    n_tq1 = pb.phi2.shape[1]
    n_theta = pb.n_out * n_tp
    n_phi = pb.phi2.shape[0] * n_tq1
    n_chunks = max(1, (n + CHUNK - 1) // CHUNK)
    pgrad = np.zeros((n_chunks, n_theta + n_phi), dtype=np.float64)
    pf = np.zeros((n_chunks, _kr.N_FSTATS), dtype=np.float64)
    pf[:, _kr.FS_QMIN] = np.inf
    pi = np.zeros((n_chunks, _kr.N_ISTATS), dtype=np.int64)
    if n > 0:
        val, tag = _views2(y, n, pb.n_out)
        tau_q, tau_p = policy_thresholds(policy, pb.dtype)
        n_total = float(n * pb.n_out)
        glim = DTYPE_MAX[pb.dtype] / n_total
        has_w = wn is not None
        w_arg = wn if has_w else np.full((1, 1), 1.0 / n_total)
        addresses = fused_pass_addresses(pb, opt)
        args = (
            xk.reshape(-1), n, pb.exps, tgt_hm, w_arg, has_w, pb.theta2, pb.phi2, pb.scale,
            pb.shift, pb.dtype.type(1.0), eps, tau_q, tau_p, opt.mode, opt.delta, opt.bound,
            opt.loss, opt.huber_delta, opt.lam, opt.inv_tau, glim, val, tag,
            q.reshape(n, pb.n_out), pgrad, pf, pi, pb.n_out, pb.shared_q, n_tp, n_tq1 + 1, pb.d,
            _NO_INDICES if idx is None else idx, idx is not None, *addresses,
        )
        _kc.grad_kernel(args)(*args)
    if n_chunks == 1:  # nothing to combine (+ 0.0 as in the combination: -0.0 becomes +0.0)
        g, f, s = pgrad[0] + 0.0, pf[0] + 0.0, pi[0]
    else:
        g, f, s = _kc.combine_partials(pgrad, pf, pi)

    th_shape = (pb.n_out, n_tp) if pb.multi else (n_tp,)
    ph_shape = pb.phi2.shape if (pb.multi and not pb.shared_q) else (n_tq1,)
    grad_theta = g[:n_theta].astype(pb.dtype).reshape(th_shape)
    grad_phi = g[n_theta:].astype(pb.dtype).reshape(ph_shape)
    data_loss = float(f[_kr.FS_DATA])
    rej_loss = opt.lam * float(f[_kr.FS_REJ])
    n_finq = int(s[_kr.IS_FINQ])
    n_qeval = n * pb.phi2.shape[0]
    eager = {
        "q_min": float(f[_kr.FS_QMIN]) if n_finq else float("nan"),
        "q_mean": float(f[_kr.FS_SUMQ]) / n_finq if n_finq else float("nan"),
        "n_saturating": int(s[_kr.IS_SAT]),
        "n_mask_real": int(s[_kr.IS_MR]),
        "near_pole_ratio": (int(s[_kr.IS_NEAR]) / n_qeval) if (n_qeval and opt.delta >= 0) else 0.0,
        "n_overflow_masked": int(s[_kr.IS_OVERFLOW]),
        "tag_counts": s[_kr.IS_TAG0:_kr.IS_TAG0 + 4].copy(),
        "n_outputs": n * pb.n_out,
    }
    q_src = q[:, 0] if (pb.multi and pb.shared_q) else q  # each Q evaluation once
    stats = RationalStats(eager, q_src)
    return LossAndGrad(
        loss=data_loss + rej_loss,
        data_loss=data_loss,
        rejection_loss=rej_loss,
        grad_theta=grad_theta,
        grad_phi=grad_phi,
        tags=y["tag"],
        y=y,
        q=q,
        stats=stats,
    )
