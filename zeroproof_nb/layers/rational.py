"""TRRational: a rational layer y = P(x)/Q(x) whose parameters are NumPy arrays.

P(x) = Σ_{k=0..d_p} θ_k ψ_k(x), Q(x) = 1 + Σ_{k=1..d_q} φ_k η_k(x) (``phi[k-1]`` holds φ_k),
with η_k = ψ_k (upstream's "unit_constant" denominator) or, for the "anchored" denominator
(the default of a 1-D Chebyshev layer with d_q = 1), η_k = m(t) T_{k-1}(t) with
m(t) = 1 − t/t_a, so that Q = 1 at the anchor t_a = −cosh(acosh(10)/d_q) below the domain and
Q can vanish anywhere inside it (see :mod:`zeroproof_nb.kernels.basis`). Evaluated by the kernels behind :func:`zeroproof_nb.rational_eval` and
:func:`zeroproof_nb.rational_loss_and_grad`. The layer holds the parameters, the basis, the
domain, an optional tag policy and the φ regulariser; it has no hidden state and no side effects
in ``forward``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .._validation import (
    MAX_TERMS,
    as_float_array,
    check_bool,
    check_bounds,
    check_choice,
    check_finite,
    check_int,
    check_nonnegative,
    check_terms,
)
from ..device import is_device_array, resolve_device
from ..kernels import rational_cpu as _kc
from ..rational import (
    LossAndGrad,
    TRPolicy,
    check_indices,
    fused_pass,
    grad_options,
    kernel_target,
    normalised_weights,
    prepare_plan,
    target_array,
    n_terms,
    rational_eval,
    rational_loss_and_grad,
)
from .persistence import layer_config, load_layer, load_layer_state
from .series import layer_poles, p_polynomial, q_polynomial, reexpand, series_coefficients

__all__ = ["TRRational", "series_coefficients"]

_BASES = ("monomial", "chebyshev")
_DENOMINATORS = ("anchored", "unit_constant")
_INITS = ("upstream", "random")


def _alternating(n: int, amplitude: float, first: int) -> np.ndarray:
    """Upstream's deterministic init: amplitude·2√3·((i mod 2) − 0.5)/√n for i = first..first+n−1
    (θ uses first = 0: −, +, −, …; φ uses first = 1: +, −, …)."""
    if n == 0:
        return np.zeros(0)
    i = np.arange(first, first + n)
    return amplitude * 2.0 * np.sqrt(3.0) * ((i % 2) - 0.5) / np.sqrt(n)


class TRRational:
    """Transreal rational layer y = P(x)/Q(x).

    Parameters
    ----------
    d_p, d_q : int
        Degrees of P (≥ 0) and Q (≥ 0; d_q = 0 gives Q ≡ 1, a polynomial).
    basis : {"chebyshev", "monomial"} or None
        ψ_k; the Chebyshev basis maps ``domain`` onto [−1, 1], the monomial basis uses x as is.
        None (default): Chebyshev for 1-D input, monomial (upstream's default) for n-D input,
        whose single ``domain`` would have to cover every coordinate.
    denominator : {"anchored", "unit_constant"} or None
        Normalisation of Q. None (default): "anchored" for a 1-D Chebyshev layer with d_q = 1,
        else "unit_constant" (with the T_0 coefficient fixed, d_q = 1 cannot put its pole at the
        domain centre; from d_q = 2 on a pole can sit anywhere, with the other roots free).
        "anchored": Q = 1 at a point
        t_a = −cosh(acosh(10)/d_q) below the domain (in the mapped coordinate t ∈ [−1, 1]:
        −10 for d_q = 1, −1.54 for 3, −1.13 for 6), Q = 1 + (1 − t/t_a) Σ_{k<d_q} φ_{k+1} T_k(t),
        so that a
        pole can sit anywhere in the domain at every d_q ≥ 1. "unit_constant" (upstream; the
        only choice for the monomial basis and n-D inputs): Q = 1 + Σ φ_k ψ_k, which cannot
        put a pole at x = 0 (monomial) or at the domain centre with d_q = 1 (Chebyshev).
    domain : (lo, hi) or None
        Input interval: Chebyshev mapping and the window in which :meth:`poles` reports roots.
        None (default): (−1, 1) until a :class:`~zeroproof_nb.training.trainer.Trainer` fits the
        layer, which then sets it to the range of the data (:meth:`set_domain`, the function
        unchanged); ``domain_given`` says which.
    n_outputs : int
        Number of heads. With n_outputs = 1, θ has shape (n_p,), else (n_outputs, n_p).
    shared_q : bool
        One Q for every head (φ of shape (n_q,)) or one per head (φ of shape (n_outputs, n_q)).
    input_dim : int
        Dimension d of x; d > 1 uses total-degree products, n_p = C(d+d_p, d),
        n_q = C(d+d_q, d) − 1. For d = 1: n_p = d_p + 1, n_q = d_q.
    alpha_phi : float
        Weight α of the regulariser α/2·‖φ‖² (default 0; upstream 1e-3, which against a
        well-fitted data loss of 1e-5 pulls every pole toward φ = 0).
    l1_projection : float or None
        Bound B of :meth:`project_phi` (None or ≤ 0: off).
    init : {"upstream", "random"}
        "upstream": the deterministic alternating init (θ_i = 0.1·2√3·((i mod 2) − 0.5)/√n_p,
        φ_i = 0.01·2√3·((i mod 2) − 0.5)/√n_q, the same for every head); "random": normal draws
        with those scales from ``numpy.random.default_rng(seed)``.
    seed : int or None
        Seed for init="random".
    dtype : float64 or float32
        Parameter and computation dtype (inputs are cast to it).
    adaptive_loss_policy : object or None
        Duck-typed AdaptiveLambda (``.lambda_rej``, ``.update(tags)``): :meth:`loss_and_grad`
        reads λ_rej from it and reports the batch's tags to it.
    policy : TRPolicy or None
        Tag policy used by :meth:`forward` and :meth:`loss_and_grad`.
    """

    def __init__(
        self,
        d_p: int,
        d_q: int,
        basis: str | None = None,
        domain: tuple[float, float] | None = None,
        n_outputs: int = 1,
        shared_q: bool = True,
        input_dim: int = 1,
        alpha_phi: float = 0.0,
        l1_projection: float | None = None,
        init: str = "upstream",
        seed: int | None = None,
        dtype: Any = np.float64,
        adaptive_loss_policy: Any = None,
        policy: TRPolicy | None = None,
        denominator: str | None = None,
    ) -> None:
        self.d_p = check_int(d_p, "d_p", minimum=0)
        self.d_q = check_int(d_q, "d_q", minimum=0)
        one_d = check_int(input_dim, "input_dim", minimum=1) == 1
        if basis is None:
            basis = "chebyshev" if one_d else "monomial"
        self.basis = check_choice(basis, "basis", _BASES)
        if denominator is None:
            # anchored where it costs nothing: at d_q = 1 the anchor lies 4.5 domain widths
            # away (t_a = -10); at higher degrees it comes close to the domain, and a true pole
            # near it (gamma's at -4 on [-3.5, 3]) blows the coefficients up
            denominator = "anchored" if (self.basis == "chebyshev" and one_d and self.d_q == 1) \
                else "unit_constant"
        self.denominator = check_choice(denominator, "denominator", _DENOMINATORS)
        if self.denominator == "anchored" and not (self.basis == "chebyshev" and one_d):
            raise ValueError("denominator='anchored' needs basis='chebyshev' and input_dim=1, "
                             f"got basis={self.basis!r}, input_dim={input_dim}")
        self.domain_given = domain is not None
        self.domain = check_bounds(domain, "domain") if domain is not None else (-1.0, 1.0)
        self.n_outputs = check_int(n_outputs, "n_outputs", minimum=1)
        self.shared_q = bool(shared_q)
        self.input_dim = check_int(input_dim, "input_dim", minimum=1)
        self.alpha_phi = check_nonnegative(alpha_phi, "alpha_phi")
        self.l1_projection = (
            None if l1_projection is None else check_nonnegative(l1_projection, "l1_projection")
        )
        self.init = check_choice(init, "init", _INITS)
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise TypeError(f"dtype must be float64 or float32, got {dt}")
        self.dtype = dt
        for name, deg in (("d_p", self.d_p), ("d_q", self.d_q)):
            if check_terms(self.input_dim, deg, name) * self.n_outputs > MAX_TERMS:
                raise ValueError(f"{name}, n_outputs: the layer would hold more than {MAX_TERMS} "
                                 "coefficients in one parameter array (the limit)")
        if policy is not None and not isinstance(policy, TRPolicy):
            raise TypeError(f"policy must be a TRPolicy or None, got {type(policy).__name__}")
        self.policy = policy
        if adaptive_loss_policy is not None and not (
            hasattr(adaptive_loss_policy, "lambda_rej") and hasattr(adaptive_loss_policy, "update")
        ):
            raise TypeError("adaptive_loss_policy must have a .lambda_rej attribute and .update(tags)")
        self.adaptive_loss_policy = adaptive_loss_policy
        if seed is not None:
            check_int(seed, "seed", minimum=0)
        self.seed = seed

        n_p, n_q = self.n_theta_terms, self.n_phi_terms
        multi = self.n_outputs > 1
        theta_shape = (self.n_outputs, n_p) if multi else (n_p,)
        phi_shape = (self.n_outputs, n_q) if (multi and not self.shared_q) else (n_q,)
        if self.init == "upstream":
            theta = np.broadcast_to(_alternating(n_p, 0.1, 0), theta_shape)
            phi = np.broadcast_to(_alternating(n_q, 0.01, 1), phi_shape)
        else:
            rng = np.random.default_rng(seed)
            theta = rng.normal(0.0, 0.1 / np.sqrt(n_p), size=theta_shape)
            phi = rng.normal(0.0, 0.01 / np.sqrt(max(n_q, 1)), size=phi_shape)
        # C order: optimizers update the arrays in place through flat views
        self.theta = np.array(theta, dtype=dt, order="C")
        self.phi = np.array(phi, dtype=dt, order="C")

    # ------------------------------------------------------------------ shapes
    @property
    def n_theta_terms(self) -> int:
        """Coefficients of P per head."""
        return n_terms(self.input_dim, self.d_p)

    @property
    def n_phi_terms(self) -> int:
        """Coefficients φ_1.. of Q per Q (the constant 1 is fixed)."""
        return n_terms(self.input_dim, self.d_q) - 1

    def num_parameters(self) -> int:
        """Total number of scalars in θ and φ."""
        return int(self.theta.size + self.phi.size)

    def parameters(self) -> list[np.ndarray]:
        """``[theta, phi]``: the arrays themselves (optimizers update them in place)."""
        return [self.theta, self.phi]

    def set_parameters(self, params: Sequence[Any]) -> None:
        """Copy ``[theta, phi]`` into the layer's arrays (in place; shapes must match).

        Both are validated first (shape, and finite after rounding to the layer's dtype: a
        float64 value beyond float32's range is rejected for a float32 layer); on an error
        neither array changes."""
        try:
            params = list(params)
        except TypeError as exc:
            raise TypeError(f"params must be a sequence [theta, phi], got {type(params).__name__}") from exc
        if len(params) != 2:
            raise ValueError(f"params must be [theta, phi], got {len(params)} arrays")
        cast = []
        for name, new, cur in zip(("theta", "phi"), params, (self.theta, self.phi)):
            a = as_float_array(new, name, dtype=np.float64)
            if a.shape != cur.shape:
                raise ValueError(f"{name} must have shape {cur.shape}, got {a.shape}")
            check_finite(a, name)
            with np.errstate(over="ignore"):
                c = a.astype(self.dtype)
            if not np.isfinite(c).all():
                raise ValueError(f"{name} must be finite in the layer's dtype {self.dtype}; "
                                 f"some values exceed its range")
            cast.append(c)
        np.copyto(self.theta, cast[0])
        np.copyto(self.phi, cast[1])

    # ------------------------------------------------------------------ evaluation
    def kernel_input(self, x: Any) -> np.ndarray:
        xa = as_float_array(x, "x", dtype=self.dtype)
        if self.input_dim == 1:
            if xa.ndim == 0:
                xa = xa.reshape(1)
            elif xa.ndim == 2 and xa.shape[1] == 1:
                xa = xa.reshape(-1)
            if xa.ndim != 1:
                raise ValueError(f"x must have shape (N,) or (N, 1) for input_dim=1, got {xa.shape}")
        else:
            if xa.ndim == 1 and xa.shape[0] == self.input_dim:
                xa = xa.reshape(1, -1)
            if xa.ndim != 2 or xa.shape[1] != self.input_dim:
                raise ValueError(
                    f"x must have shape (N, {self.input_dim}) for input_dim={self.input_dim}, "
                    f"got {xa.shape}"
                )
        return xa

    @property
    def kernel_basis(self) -> str:
        """The ``basis`` name of the functional API (:func:`zeroproof_nb.rational_eval`, the
        least-squares functions) for this layer's basis and denominator."""
        return "chebyshev_anchored" if self.denominator == "anchored" else self.basis

    def _kw(self) -> dict[str, Any]:
        return {"basis": self.kernel_basis, "domain": self.domain, "policy": self.policy}

    def forward(self, x: Any, device: str = "cpu") -> Any:
        """Transreal outputs, shape (N,) or (N, n_outputs).

        ``device`` ("cpu", "cuda", "auto") as in :func:`zeroproof_nb.rational_eval`: x on a
        GPU (``__cuda_array_interface__``, 1-D layers) stays there and the result is a
        :class:`~zeroproof_nb.rational_cuda.DeviceRational` (``.to_host()``: this array)."""
        if device != "cpu" and is_device_array(x):
            return rational_eval(x, self.theta, self.phi, device=device, **self._kw())
        return rational_eval(self.kernel_input(x), self.theta, self.phi, device=device,
                             **self._kw())

    __call__ = forward

    def q_values(self, x: Any, device: str = "cpu") -> np.ndarray:
        """|Q(x)| per point: shape (N,) when Q is shared, (N, n_outputs) with one Q per head.

        A NaN Q (NaN input, or inf·0 for an infinite input) is reported as NaN, so that an
        importance sampler's ``nan_policy`` sees it (upstream reported 0.0, the largest
        importance weight); an infinite Q as inf. ``device`` as in :meth:`forward` (the result
        is a host array).
        """
        _, q = rational_eval(self.kernel_input(x), self.theta, self.phi, return_q=True,
                             device=device, **self._kw())
        if q.ndim == 2 and self.phi.ndim == 1:
            q = np.ascontiguousarray(q[:, 0])
        np.abs(q, out=q)  # in place (q is this call's array)
        return q

    def q_min(self, x: Any) -> float:
        """Smallest |Q| over the inputs with a finite Q (``inf`` if there are none)."""
        _, q = rational_eval(self.kernel_input(x), self.theta, self.phi, return_q=True, **self._kw())
        qa = np.abs(q)
        qa = qa[np.isfinite(qa)]
        return float(qa.min()) if qa.size else float("inf")

    def series(self, head: int = 0) -> tuple[Any, Any]:
        """(P, Q) of output ``head`` as ``numpy.polynomial`` series in x (Chebyshev series on
        ``domain``, or power series for the monomial basis). 1-D layers only."""
        if self.input_dim != 1:
            raise ValueError("series() is defined for input_dim=1")
        head = check_int(head, "head", minimum=0)
        if head >= self.n_outputs:
            raise ValueError(f"head must be < n_outputs={self.n_outputs}, got {head}")
        theta_rows = np.atleast_2d(self.theta)
        phi_rows = np.atleast_2d(self.phi)
        return (p_polynomial(self, theta_rows[head]),
                q_polynomial(self, phi_rows[0 if phi_rows.shape[0] == 1 else head]))

    def set_series(self, p: Any, q: Any) -> None:
        """Set θ and φ of a single-output 1-D layer so that P/Q = p/q (``numpy.polynomial``
        series of degrees ≤ d_p and ≤ d_q; higher terms are dropped); see
        :func:`series_coefficients`."""
        if self.input_dim != 1 or self.n_outputs != 1:
            raise ValueError("set_series() is defined for single-output 1-D layers")
        theta, phi = series_coefficients(p, q, self.d_p, self.d_q, basis=self.basis,
                                         denominator=self.denominator, domain=self.domain)
        self.set_parameters([theta, phi])

    def poles(self, return_residues: bool = False, near_axis: float | None = None) -> Any:
        """Poles of the layer inside ``domain``, from the roots of Q (``numpy.polynomial``).
        1-D input only (n-D: use :func:`zeroproof_nb.metrics` on a grid of |Q| instead).

        Parameters
        ----------
        return_residues : bool
            Also return the residue P(p)/Q'(p) of each pole (that of a simple pole; it is
            large or meaningless at a double root).
        near_axis : float >= 0, optional
            Also return complex poles whose imaginary part is at most this (in units of x),
            real part in ``domain``: the result is then complex, sorted by real part. Default:
            real poles only (roots within 1e-6 relative of the axis).

        Returns
        -------
        poles : (k,) array, or a list of them (one per head) when each head has its own Q
        residues : with ``return_residues``: (k,) for one output, (n_outputs, k) for a shared
            Q and several heads, or a list per head
        """
        if self.input_dim != 1:
            raise ValueError("poles() is defined for input_dim=1; the poles of an n-D layer form "
                             "hypersurfaces: use zeroproof_nb.metrics.pole_set(layer, axes), "
                             "the points where Q changes sign on a grid")
        check_finite(self.theta, "theta")
        check_finite(self.phi, "phi")
        return layer_poles(self, check_bool(return_residues, "return_residues"), near_axis)

    def set_domain(self, domain: tuple[float, float]) -> None:
        """Set the domain (and mark it given) without changing the function.

        Monomial basis: only the window of :meth:`poles` changes. Chebyshev basis (1-D input):
        P and Q are re-expanded on the new interval (``numpy.polynomial`` conversion) and both
        divided by Q's new normaliser (its constant term, or its value at the new anchor), so
        P/Q is the same function.
        """
        lo, hi = check_bounds(domain, "domain")
        reexpand(self, lo, hi)
        self.domain = (lo, hi)
        self.domain_given = True

    def fit_linearized(self, x: Any, y: Any, **kwargs: Any) -> "TRRational":
        """Set θ and φ of a single-output layer to :func:`zeroproof_nb.fitting.linearized_fit`
        of (x, y) in this layer's own basis, denominator and domain (a layer built without a
        domain first gets the range of the finite x, as a Trainer would give it).

        ``kwargs`` go to ``linearized_fit`` (``iterations``, ``sample_weight``, ``loss``,
        ``loss_scale``, ``robust_iterations``). Returns the layer.
        """
        from ..fitting import linearized_fit

        if self.n_outputs != 1:
            raise ValueError("fit_linearized() is defined for single-output layers")
        for key in ("basis", "domain"):
            if key in kwargs:
                raise TypeError(f"fit_linearized() takes the layer's {key}; got {key}=")
        xa = as_float_array(x, "x", ndim=(1, 2), dtype=np.float64)
        if self.input_dim == 1 and xa.ndim == 2 and xa.shape[1] != 1:
            raise ValueError(f"x must have shape (N,) or (N, 1) for input_dim=1, got {xa.shape}")
        domain, given = tuple(self.domain), self.domain_given
        if not given and self.input_dim == 1:
            finite = xa[np.isfinite(xa)]
            if finite.size:
                lo, hi = float(finite.min()), float(finite.max())
                domain = check_bounds((lo, hi) if hi > lo else (lo - 1.0, hi + 1.0), "x range")
                given = True
        theta, phi = linearized_fit(xa, y, self.d_p, self.d_q, basis=self.kernel_basis,
                                    domain=domain, **kwargs)
        # θ and φ are replaced: the domain changes without re-expansion
        self.set_parameters([theta, phi])
        self.domain, self.domain_given = domain, given
        return self

    # ------------------------------------------------------------------ regularisation
    def regularization(self) -> tuple[float, np.ndarray]:
        """``(α/2·‖φ‖², α·φ)``: value and gradient w.r.t. φ (shape of φ).

        φ is counted once when Q is shared (upstream's TRRationalMulti).
        """
        value = 0.5 * self.alpha_phi * float(_kc.sum_squares(self.phi.reshape(-1)))
        return value, self.alpha_phi * self.phi

    def project_phi(self) -> float:
        """Upstream's L1 rule: if ‖φ‖₁ > B, rescale φ by B/‖φ‖₁ (in place; per head when each
        head has its own Q). Call it after each optimizer step. Returns the smallest factor
        applied (1.0 when nothing changed or the projection is off)."""
        bound = self.l1_projection
        if bound is None or bound <= 0 or self.phi.size == 0:
            return 1.0
        rows = self.phi.reshape(-1, self.phi.shape[-1])
        return float(_kc.l1_project_rows(rows, float(bound)))

    # ------------------------------------------------------------------ training
    def kernel_plan(self, xa: np.ndarray) -> Any:
        """The validated kernel set-up for inputs laid out like ``xa`` (memoised per layout and
        parameter arrays; θ and φ are read in place and checked for finite values every call)."""
        memo = self.__dict__.setdefault("_problems", {})
        key = (xa.ndim, self.kernel_basis, tuple(self.domain))
        entry = memo.get(key)
        if entry is not None and entry[1] is self.theta and entry[2] is self.phi:
            check_finite(self.theta, "theta")
            check_finite(self.phi, "phi")
            return entry[0]
        pb = prepare_plan(xa[:0], self.theta, self.phi, self.kernel_basis, self.domain)
        if np.shares_memory(pb.theta2, self.theta) and np.shares_memory(pb.phi2, self.phi):
            memo.clear()
            memo[key] = (pb, self.theta, self.phi)
        return pb

    def kernel_options(self, kwargs: dict[str, Any]) -> Any:
        """Validated options of the fused pass for ``kwargs`` (memoised, except λ_rej)."""
        lam = check_nonnegative(kwargs.pop("lambda_rej", 0.0), "lambda_rej")
        memo = self.__dict__.setdefault("_options", {})
        try:
            key: Any = (self.policy, *sorted(kwargs.items()))
            opt = memo.get(key)
        except TypeError:  # an unhashable option value: validate without memo
            key = opt = None
        if opt is None:
            opt = grad_options(self.dtype, policy=self.policy, **kwargs)
            if key is not None:
                if len(memo) >= 64:
                    memo.clear()
                memo[key] = opt
        return opt._replace(lam=lam)

    def _loss_and_grad_cuda(self, xa: np.ndarray, target: Any, sample_weight: Any,
                            indices: Any, kwargs: dict[str, Any]) -> LossAndGrad:
        """The fused pass on the GPU (no regulariser, no λ policy update), the rows
        ``indices`` gathered on the host."""
        n_pool = xa.shape[0]
        shape = (n_pool, self.n_outputs) if self.n_outputs > 1 else (n_pool,)
        if indices is not None:
            idx = check_indices(indices, n_pool)
            xa = xa[idx]
            target = target_array(target, shape, self.dtype)[idx]
            if sample_weight is not None:
                sample_weight = np.asarray(sample_weight)[idx]
        return rational_loss_and_grad(xa, target, self.theta, self.phi, device="cuda",
                                      **self._kw(), **kwargs)

    def loss_and_grad(self, x: Any, target: Any, **kwargs: Any) -> LossAndGrad:
        """Fused loss and gradients for this layer plus the φ regulariser.

        Keyword arguments go to :func:`zeroproof_nb.rational_loss_and_grad` (``mode``,
        ``delta``, ``saturation_bound``, ``sample_weight``, ``loss``, ``huber_delta``,
        ``lambda_rej``, ``rejection_threshold``, ``q_epsilon``, ``indices``); the layer supplies basis, domain
        and policy. With ``adaptive_loss_policy`` and no explicit ``lambda_rej``, λ_rej is the
        policy's effective penalty (``get_effective_penalty()`` if it has one, else
        ``.lambda_rej``), and ``policy.update(tags)`` is called with the batch's tags after the
        pass. The returned ``loss`` and ``grad_phi`` include α/2·‖φ‖² (``data_loss`` and
        ``rejection_loss`` do not). ``device`` ("cpu", "cuda", "auto") as in
        :func:`zeroproof_nb.rational_loss_and_grad`; on CUDA the rows ``indices`` (and their
        targets and weights) are gathered on the host first, with the same result to rounding.
        """
        for key in ("basis", "domain", "policy"):
            if key in kwargs:
                raise TypeError(f"{key} is set by the layer; pass it to TRRational instead")
        alp = self.adaptive_loss_policy
        if alp is not None and "lambda_rej" not in kwargs:
            getter = getattr(alp, "get_effective_penalty", None)
            kwargs["lambda_rej"] = float(getter() if callable(getter) else alp.lambda_rej)
        sample_weight = kwargs.pop("sample_weight", None)
        indices = kwargs.pop("indices", None)
        device = kwargs.pop("device", "cpu")
        xa = self.kernel_input(x)
        if device != "cpu" and resolve_device(device, supported=self.input_dim == 1) == "cuda":
            res = self._loss_and_grad_cuda(xa, target, sample_weight, indices, kwargs)
        else:
            pb = self.kernel_plan(xa)
            opt = self.kernel_options(kwargs)
            n_pool = xa.shape[0]
            shape = (n_pool, pb.n_out) if pb.multi else (n_pool,)
            idx = None if indices is None else check_indices(indices, n_pool)
            tgt = kernel_target(target_array(target, shape, self.dtype), pb.n_out,
                                idx is not None)
            res = fused_pass(pb, xa.reshape(-1) if pb.d == 0 else xa, tgt,
                             normalised_weights(sample_weight, shape, idx), opt, idx)
        if self.alpha_phi:
            reg, reg_grad = self.regularization()
            res.loss += reg
            res.grad_phi += reg_grad
        if alp is not None:
            update_counts = getattr(alp, "update_counts", None)
            if callable(update_counts):  # counts from the fused pass: no second count
                update_counts(res.stats["tag_counts"])
            else:
                alp.update(res.tags)
        return res

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return layer_config(self)

    def state_dict(self) -> dict[str, Any]:
        """Parameters (copies) and configuration as plain arrays, numbers and strings."""
        state = self._config()
        state["theta"] = self.theta.copy()
        state["phi"] = self.phi.copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load θ and φ (in place) from a :meth:`state_dict`; the structural configuration
        stored with it (degrees, basis, outputs, input_dim) must match this layer. Everything
        is checked before θ and φ change."""
        load_layer_state(self, state)

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to a ``.npz`` file (no pickle, no object arrays)."""
        np.savez(path, **self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> "TRRational":
        """Build a layer from a file written by :meth:`save`. ``kwargs`` (e.g.
        ``adaptive_loss_policy``) are passed to the constructor.

        Every stored field is checked (present, of the right type, θ and φ of the shapes the
        stored degrees give, finite) before the layer is built: a damaged or foreign file
        raises ``ValueError``/``TypeError`` naming the field."""
        return load_layer(cls, path, **kwargs)

    # -- upstream's scale queries (zeroproof_nb.layer_contract) -------------------------------

    def estimate_local_scales(self) -> tuple[float, float]:
        """Upstream's ``(1 + B·‖φ‖₁, 1 + B·‖θ‖₁)``, B the basis bound on the domain
        (:func:`zeroproof_nb.layer_contract.local_scales`)."""
        from ..layer_contract import local_scales

        return local_scales(self)

    def get_layer_contract(self) -> dict[str, Any]:
        """Upstream's ``{B_k, H_k, G_max, H_max, depth_hint}``
        (:func:`zeroproof_nb.layer_contract.layer_contract`)."""
        from ..layer_contract import layer_contract

        return layer_contract(self)

    def __repr__(self) -> str:
        return (
            f"TRRational(d_p={self.d_p}, d_q={self.d_q}, basis={self.basis!r}, "
            f"denominator={self.denominator!r}, domain={self.domain}, n_outputs={self.n_outputs}, shared_q={self.shared_q}, "
            f"input_dim={self.input_dim}, dtype={self.dtype.name})"
        )
