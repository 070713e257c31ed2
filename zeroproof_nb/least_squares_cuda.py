"""The Gauss-Newton pass on a CUDA GPU: :func:`rational_normal_equations_cuda`, beside the CPU
:func:`zeroproof_nb.least_squares.rational_normal_equations` (same arguments, same result to
rounding: the summation orders differ), and :func:`levenberg_marquardt_cuda`, the
Levenberg-Marquardt iteration over it.

One kernel (:mod:`zeroproof_nb.kernels.least_squares_cuda`) computes every point's terms;
tiles of 128 points reduce them by a fixed tree and the tile rows are added here in tile order,
so the result is the same bits for every run on a given device. The regulariser is added as on
the CPU (:func:`~zeroproof_nb.kernels.least_squares_cpu.add_regulariser`). 1-D x only.

Levenberg-Marquardt on the GPU solves its steps from the normal equations J^T J that this pass
accumulates, on the host (a Cholesky factorisation of the few-parameter matrix), where the CPU
solver (:func:`zeroproof_nb.least_squares.levenberg_marquardt`) solves them from the QR factor R
of the weighted Jacobian. Forming J^T J squares the condition number: a fit whose Jacobian has
condition 1e7 has normal equations of condition 1e14, and the step then carries a relative
error of about cond(J)^2 * 1e-16. On well-conditioned problems (a low degree, poles not
crowding the data) both reach the same optimum to ~1e-8 relative; on ill-conditioned ones
(cond(J) above ~1e6, e.g. high degrees or a pole within 1e-4 of many samples) the GPU result
stops short of the CPU's last digits, and ``device="cpu"`` is the accurate choice.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_int, check_nonnegative
from .device import cuda_module, is_device_array
from .kernels import least_squares_cpu as _klc
from .least_squares import (
    FTOL,
    GTOL,
    LM_MESSAGES,
    XTOL,
    LMResult,
    LMState,
    NormalEquations,
    PassSetup,
    check_usable_points,
    setup_pass,
)
from .rational import TRPolicy

__all__ = ["rational_normal_equations_cuda", "levenberg_marquardt_cuda", "DevicePass"]


def rational_normal_equations_cuda(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "l2", loss_scale: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
    alpha_phi: float = 0.0, hessian: bool = True,
) -> NormalEquations:
    """L, its gradient and Gauss-Newton matrix in one GPU pass.

    Parameters
    ----------
    x : (N,) array-like (host; 1-D: the CUDA kernels are 1-D)
    target, theta, phi, ... : as in :func:`zeroproof_nb.least_squares.rational_normal_equations`

    Returns
    -------
    NormalEquations
        ``hessian`` (n, n) float64 symmetric (None without ``hessian``), ``gradient`` (n,),
        losses and counts as on the CPU.
    """
    cuda, s, alpha = _host_setup("rational_normal_equations_cuda", x, target, theta, phi,
                                 basis, domain, mode, delta, saturation_bound, sample_weight,
                                 loss, loss_scale, lambda_rej, rejection_threshold, policy,
                                 q_epsilon, alpha_phi)
    return DevicePass(cuda, s, alpha, bool(hessian))(s.pb.theta2, s.pb.phi2)


def _host_setup(name, x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
                sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
                q_epsilon, alpha_phi):
    """(cuda module, validated pass set-up, alpha) for the GPU solvers: host, 1-D ``x``."""
    cuda = cuda_module()
    if is_device_array(x):
        raise TypeError(f"{name} takes host x (copy it with copy_to_host() first)")
    s = setup_pass(x, target, theta, phi, basis, domain, mode, delta, saturation_bound,
                   sample_weight, loss, loss_scale, lambda_rej, rejection_threshold, policy,
                   q_epsilon)
    alpha = check_nonnegative(alpha_phi, "alpha_phi")
    if s.pb.d != 0:
        raise ValueError(f"{name} takes 1-D x (CUDA kernels are 1-D in this release)")
    return cuda, s, alpha


class DevicePass:
    """One Gauss-Newton pass set up on the GPU: x, targets and weights copied once, the kernel
    compiled once; calling it with (theta2, phi2) (float64, the plan's layout) runs the pass at
    those parameters and returns the :class:`NormalEquations` (on the host)."""

    def __init__(self, cuda: Any, s: PassSetup, alpha: float, want_h: bool) -> None:
        from .kernels import least_squares_cuda as _kgc

        pb = s.pb
        self.cuda, self.s, self.alpha, self.want_h, self.kgc = cuda, s, alpha, want_h, _kgc
        self.n = s.x2.shape[0]
        self.n_par = pb.theta2.size + pb.phi2.size
        self.n_tri = _kgc.n_triangle(self.n_par) if want_h else 0
        self.tiles = _kgc.n_tiles(self.n)
        if self.n > 0:
            self.kernel = _kgc.normal_equations_kernel(s.scalars[0], pb.dp, pb.dq, pb.n_out,
                                                       pb.shared_q, want_h)
            self.x_d = cuda.to_device(np.ascontiguousarray(s.x2[:, 0]))
            self.t_d = cuda.to_device(s.target)
            self.w_d = cuda.to_device(s.weight)

    def __call__(self, theta2: np.ndarray, phi2: np.ndarray) -> NormalEquations:
        cuda, s, _kgc = self.cuda, self.s, self.kgc
        want_h, n, n_par, n_tri, tiles = self.want_h, self.n, self.n_par, self.n_tri, self.tiles
        theta2 = np.ascontiguousarray(theta2, dtype=np.float64)
        phi2 = np.ascontiguousarray(phi2, dtype=np.float64)
        if n > 0:
            (_basis, _deg, scale, shift, has_eps, eps, has_policy, tau_q, tau_p, mode_code,
             delta_v, bound, kind, c, lam, inv_tau) = s.scalars
            partial = cuda.device_array((tiles, n_tri + n_par + _kgc.N_SUM_SLOTS),
                                        dtype=np.float64)
            counts = cuda.to_device(np.zeros((tiles, _kgc.N_COUNTS), dtype=np.int64))
            self.kernel[tiles, _kgc.TILE](
                self.x_d, self.t_d, self.w_d, s.has_w, s.w_const, cuda.to_device(theta2),
                cuda.to_device(phi2), scale, shift, has_eps, eps, has_policy, tau_q, tau_p,
                mode_code, delta_v, bound, kind, c, lam, inv_tau, partial, counts)
            part = partial.copy_to_host()
            cnt = counts.copy_to_host().sum(axis=0)
        else:
            part = np.zeros((1, n_tri + n_par + _kgc.N_SUM_SLOTS))
            cnt = np.zeros(_kgc.N_COUNTS, dtype=np.int64)
        total = np.zeros(part.shape[1])
        for row in part:  # tile order: the same bits for every launch
            total += row
        h = np.zeros((n_par, n_par) if want_h else (1, 1))
        if want_h:
            iu = np.triu_indices(n_par)
            h[iu] = total[:n_tri]
            h.T[iu] = total[:n_tri]
        g = total[n_tri:n_tri + n_par].copy()
        reg = _klc.add_regulariser(self.alpha, phi2, s.pb.theta2.size, h, g, want_h)
        data = float(total[n_tri + n_par])
        rej = s.scalars[-2] * float(total[n_tri + n_par + 1])
        return NormalEquations(
            hessian=h if want_h else None, gradient=g, loss=data + rej + reg, data_loss=data,
            rejection_loss=rej, n_used=int(cnt[_klc.C_USED]),
            n_finite_target=int(cnt[_klc.C_TARGET]), n_real=int(cnt[_klc.C_REAL]),
        )


def damped_step(h: np.ndarray, g: np.ndarray, dscale: np.ndarray, mu: float) -> np.ndarray | None:
    """The step s with (H + mu D^2) s = -g (D^2 = ``dscale``) from the Cholesky factor of the
    damped matrix, or None when it is not positive definite or the step is not finite."""
    a = h + np.diag(mu * dscale)
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return None
    step = np.linalg.solve(low.T, np.linalg.solve(low, -g))
    return step if np.isfinite(step).all() else None


def marquardt_diagonal(h: np.ndarray, dscale: np.ndarray) -> None:
    """dscale = diag(H) (Marquardt's scaling), zero entries raised to 1e-12 of the largest (at
    least 1) plus 1e-300: :func:`~zeroproof_nb.kernels.lm_cpu.marquardt_scale` from H."""
    dscale[:] = np.diag(h)
    hmax = max(float(dscale.max()) if dscale.size else 0.0, 0.0)
    bad = ~(dscale > 0.0)
    dscale[bad] = max(hmax, 1.0) * 1e-12 + 1e-300


def levenberg_marquardt_cuda(
    x: Any, target: Any, theta: Any, phi: Any, *, basis: str = "monomial",
    domain: tuple[float, float] = (-1.0, 1.0), mode: Any = "mask_real",
    delta: float | None = None, saturation_bound: float = 1.0, sample_weight: Any = None,
    loss: str = "l2", loss_scale: float = 1.0, lambda_rej: float = 0.0,
    rejection_threshold: float = 1e-2, policy: TRPolicy | None = None, q_epsilon: float = 0.0,
    alpha_phi: float = 0.0, max_steps: int = 100, max_tries: int = 30, ftol: float = FTOL,
    xtol: float = XTOL, gtol: float = GTOL, state: LMState | None = None,
    chunk: int | None = None, refine_steps: int = 0,
) -> LMResult:
    """:func:`zeroproof_nb.least_squares.levenberg_marquardt` with every pass on the GPU.

    The same iteration as the CPU solver: Marquardt's scaling D^2 = diag(J^T J), an undamped
    Gauss-Newton try first, a step kept only when L falls and no output that took part became
    non-REAL, Nielsen's damping update, the same ftol / xtol / gtol tests and status codes, and
    the same :class:`LMState` (damping carried between calls). The steps are solved on the host
    from the normal equations of :func:`rational_normal_equations_cuda` (Cholesky of
    J^T J + mu D^2), not from a QR factor: see the module doc for what squaring the condition
    number costs. x, targets and weights go to the GPU once per call; each pass sends the
    parameters and brings back one row of sums per tile of 128 points.

    Arguments as in ``levenberg_marquardt`` (1-D host x); ``chunk`` is accepted and ignored (the
    GPU sums by tiles), and ``refine_steps`` too: the double-double refinement has no CUDA
    kernel, so ``refined`` is 0 and the result is the float64 optimum.

    Returns
    -------
    LMResult (the input arrays are not modified)
    """
    max_steps = check_int(max_steps, "max_steps", minimum=1)
    max_tries = check_int(max_tries, "max_tries", minimum=1)
    check_int(refine_steps, "refine_steps", minimum=0)
    if chunk is not None:
        check_int(chunk, "chunk", minimum=1)
    ftol, xtol, gtol = [check_nonnegative(v, name) for v, name in (
        (ftol, "ftol"), (xtol, "xtol"), (gtol, "gtol"))]
    cuda, s, alpha = _host_setup("levenberg_marquardt_cuda", x, target, theta, phi, basis,
                                 domain, mode, delta, saturation_bound, sample_weight, loss,
                                 loss_scale, lambda_rej, rejection_threshold, policy, q_epsilon,
                                 alpha_phi)
    check_usable_points(s)
    pb = s.pb
    n_theta = pb.theta2.size
    n_par = n_theta + pb.phi2.size
    if state is None:
        state = LMState.fresh(n_par)
    elif not isinstance(state, LMState) or state.values.shape != (_klc.N_STATE + n_par,):
        raise ValueError(f"state must be an LMState for {n_par} parameters")
    theta2 = pb.theta2.astype(np.float64)  # copies: the inputs stay as they are
    phi2 = pb.phi2.astype(np.float64)
    run = DevicePass(cuda, s, alpha, True)
    status, accepted, passes, loss0, ne = _lm_loop(run, theta2, phi2, state, max_steps,
                                                   max_tries, ftol, xtol, gtol)
    return LMResult(
        theta=theta2.reshape(np.shape(theta)), phi=phi2.reshape(np.shape(phi)),
        loss_start=loss0, loss=ne.loss, status=status, message=LM_MESSAGES[status],
        success=status in (_klc.LM_FTOL, _klc.LM_XTOL, _klc.LM_GTOL, _klc.LM_STALLED),
        steps=accepted, passes=passes, n_used=ne.n_used, refined=0,
    )


def _finite(ne: NormalEquations) -> bool:
    return bool(math.isfinite(ne.loss) and np.isfinite(ne.hessian).all()
                and np.isfinite(ne.gradient).all())


def _lm_loop(run: DevicePass, theta2: np.ndarray, phi2: np.ndarray, state: LMState,
             max_steps: int, max_tries: int, ftol: float, xtol: float, gtol: float,
             ) -> tuple[int, int, int, float, NormalEquations]:
    """The step loop of :func:`~zeroproof_nb.kernels.lm_cpu.lm_run` over normal equations:
    updates theta2, phi2 and ``state`` in place; returns (status, accepted steps, passes,
    the objective at the start, the normal equations at the end)."""
    n_theta = theta2.size
    ne = run(theta2, phi2)
    passes = 1
    loss0 = ne.loss
    if not _finite(ne):
        return _klc.LM_NOT_FINITE, 0, passes, loss0, ne
    v = state.values
    mu, nu, try_gn = float(v[_klc.S_MU]), float(v[_klc.S_NU]), v[_klc.S_GN] != 0.0
    dscale = v[_klc.N_STATE:]
    if not mu > 0.0:
        mu, nu, try_gn = 1e-3, 2.0, True
        dscale[:] = 0.0
    status = _klc.LM_RUNNING
    accepted = 0
    while accepted < max_steps and status == _klc.LM_RUNNING:
        h, g, loss = ne.hessian, ne.gradient, ne.loss
        marquardt_diagonal(h, dscale)
        gmax = float(np.max(np.abs(g) / np.sqrt(dscale))) if g.size else 0.0
        if loss == 0.0 or gmax <= gtol * math.sqrt(2.0 * loss):
            status = _klc.LM_GTOL
            break
        done = False
        gn = try_gn
        for _ in range(max_tries + int(try_gn)):
            step = damped_step(h, g, dscale, _klc.GN_RIDGE if gn else mu)
            if step is None:
                if gn:
                    gn = try_gn = False
                else:
                    mu *= nu
                    nu *= 2.0
                continue
            # the reduction of the quadratic model L + g.s + s.H.s / 2
            pred = -(float(g @ step) + 0.5 * float(step @ (h @ step)))
            last = pred <= ftol * loss
            th_c = theta2 + step[:n_theta].reshape(theta2.shape)
            ph_c = phi2 + step[n_theta:].reshape(phi2.shape)
            ne_c = run(th_c, ph_c)
            passes += 1
            ok = _finite(ne_c) and ne_c.loss < loss and ne_c.n_used >= ne.n_used
            if ok and last and loss - ne_c.loss > 2.0 * pred + _klc.LAST_NOISE * loss:
                ok = False  # rounding noise of the objective at the optimum: stay put
            if not ok:
                if last:
                    status = _klc.LM_FTOL
                    done = True
                    break
                if gn:
                    gn = try_gn = False
                    continue
                mu *= nu
                nu *= 2.0
                if not mu < 1e300:
                    break
                continue
            ared = loss - ne_c.loss
            if not gn:
                rho = ared / pred if pred > 0.0 else 0.0
                mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                try_gn = mu < _klc.GN_REENABLE
            snorm = float(step @ step)
            pnorm = float(np.sum(theta2 ** 2) + np.sum(phi2 ** 2))
            theta2[...] = th_c
            phi2[...] = ph_c
            ne = ne_c
            accepted += 1
            done = True
            if last or (ared <= ftol * (ne.loss + ared) and pred <= ftol * (ne.loss + ared)):
                status = _klc.LM_FTOL
            elif math.sqrt(snorm) <= xtol * (math.sqrt(pnorm) + xtol):
                status = _klc.LM_XTOL
            break
        if not done:
            status = _klc.LM_STALLED
    v[_klc.S_MU], v[_klc.S_NU], v[_klc.S_GN] = mu, nu, 1.0 if try_gn else 0.0
    return status, accepted, passes, loss0, ne
