"""Inverse JKO (iJKO): the FY losses of one JKO step and the estimator :func:`ijko`
(arXiv 2505.07124; reconstruction documented in ``docs/inverse.md``).

Forward problem: rho_{k+1} = argmin_rho W2^2(rho_k, rho) / (2 tau) + int V_theta drho with
V_theta = sum_r theta_r phi_r. Data: independent samples x_i ~ rho_k (weights a) and
y_j ~ rho_{k+1} (weights b); no pairing is observed.

Losses (``eps`` selects the forward model):

- ``eps=None`` -- unregularised, continuous y. The minimum over rho is the Moreau envelope, so
  L(theta) = W2^2(a, b) / (2 tau) + sum_j b_j V_theta(y_j) - sum_i a_i env_{tau V_theta}(x_i),
  gradient sum_j b_j phi(y_j) - sum_i a_i phi(prox_{tau V_theta}(x_i)); Hessian
  sum_i a_i Dphi(y*_i) (I / tau + D^2 V_theta(y*_i))^{-1} Dphi(y*_i)^T at y*_i = prox(x_i).
  Only ``lam = 0``.
- ``eps > 0`` -- entropic model on the sample grid, C_ij = |x_i - y_j|^2 / (2 tau) + V_theta(y_j),
  SUOT_lam(C) = min_{P 1 = a} <C, P> + eps KL(P | a (x) b) + lam KL(P^T 1 | b)
  (:func:`measureflow.inverse.semi_unbalanced_sinkhorn`; ``lam = 0``: free second marginal,
  closed form f_i = -eps log sum_j b_j exp(-C_ij / eps)), and
  L_lam(theta) = SUOT_inf(C_theta) - SUOT_lam(C_theta) >= 0, gradient sum_j (b_j - q_j) phi(y_j)
  with q = P^T 1. ``lam = 0`` is the plain FY loss of this model (the log-sum-exp "exponential
  functional"), ``lam > 0`` its sharpening by D = KL(rho | rho_hat_{k+1}). Hessian (derived, see
  ``docs/inverse.md``): Phi^T J (lam J + Q)^{-1} Q Phi with Q = diag(q) and
  J = (Q - P^T diag(1/a) P) / eps (the row-conditional covariance operator of the plan); it tends
  to Cov_b(phi) / lam (the quadratic iJKO* surrogate's) as lam -> inf.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import torch

from ..core import (
    ArrayContext,
    ConvergenceWarning,
    InputError,
    SolverResult,
    check_choice,
    check_int,
    check_nonnegative_scalar,
    check_points,
    check_positive,
    check_same_dim,
    report_convergence,
)
from ..core.linalg import sqdist
from ..ot.geometry import Dense
from ..ot.loop import Hard, log_weights
from ._optim import minimize_convex, prox_newton_l1
from .bases import PotentialBasis, quadratic_potential_basis
from .fenchel_young import FYLoss, check_compute_dtype, dtype_tol, positive_weights, wide
from .sinkhorn import _kl, _suot_core

__all__ = ["IJKOResult", "ijko"]

_PROX_MAX_ITER, _PROX_TOL = 100, 1e-12
_SINKHORN_MAX_ITER, _SINKHORN_TOL = 20000, 1e-9


# ----------------------------------------------------------------------------- kernels

def _jko_cost(x, y, tau):
    return sqdist(x, y) / (2 * tau)


def _w2sq(x, y, a, b):
    """Exact W2^2 between the weighted clouds (measureflow.ot.solve, POT network simplex)."""
    from ..ot import solve
    with torch.no_grad():
        x, y, a, b = wide(x, y, a, b)
        bb = b * (a.sum() / b.sum())
        return float(solve(a, bb, sqdist(x, y), eps=None).value)


def _moreau_hessian(theta, basis, yp, a, tau):
    """sum_i a_i Dphi(y_i) (I / tau + D^2 V(y_i))^{-1} Dphi(y_i)^T at the prox points y_i."""
    Jf = basis.jacobian(yp)                                       # (n, R, d)
    _, hV = basis.grad_hess(theta, yp)                            # (n, d, d)
    d = yp.shape[1]
    H = torch.eye(d, dtype=yp.dtype, device=yp.device) / tau + hV
    Z = torch.linalg.solve(H, Jf.transpose(1, 2))                 # (n, d, R)
    Hs = torch.einsum("i,ird,ids->rs", a, Jf, Z)
    return 0.5 * (Hs + Hs.T)


def _jko_plain_loss(theta, basis, x, y, a, b, tau, const=None, prox_iter=_PROX_MAX_ITER,
                    prox_tol=_PROX_TOL, y0=None, hessian=False):
    Fy = basis.features(y)
    yp, ok = basis.prox(theta, x, tau, max_iter=prox_iter, tol=prox_tol, y0=y0)
    if not ok and y0 is not None:
        yp, ok = basis.prox(theta, x, tau, max_iter=prox_iter, tol=prox_tol)
    if not ok:
        # y -> |x - y|^2 / (2 tau) + V_theta(y) has no (computable) minimiser: theta is outside
        # the domain of the loss, whose value is +inf there
        nan = torch.full_like(theta.detach(), math.nan)
        inf = theta.sum() * 0 + math.inf
        return FYLoss(value=inf, grad=nan, observed_moments=nan, model_moments=nan, prox=yp,
                      kind="jko", lam=0.0, converged=False, n_iter=1, errors=[])
    Fp = basis.features(yp).detach()
    Fy = Fy.detach()
    obs = b @ Fy
    mod = a @ Fp
    if const is None:
        const = _w2sq(x.detach(), y.detach(), a, b) / (2 * tau)
    with torch.no_grad():
        ypw, xw, Fpw, thw, obsw, aw = wide(yp, x, Fp, theta, obs, a)
        env = ((ypw - xw) ** 2).sum(1) / (2 * tau) + Fpw @ thw
        val = (const + obsw @ thw - aw @ env).to(theta.dtype)
    lin = (obs - mod) @ theta
    value = lin + (val - lin.detach())
    H = _moreau_hessian(theta.detach(), basis, yp, a, tau) if hessian else None
    return FYLoss(value=value, grad=(obs - mod), observed_moments=obs, model_moments=mod,
                  hessian=H, prox=yp, kind="jko", lam=0.0, converged=ok, n_iter=1, errors=[])


def _free_marginal_plan(a, b, C, eps):
    """argmin_{P 1 = a} <C, P> + eps KL(P | a (x) b) (second marginal free): closed form.

    One Sinkhorn half-step from g = 0 on the engine's geometry:
    f_i = -eps log sum_j b_j exp(-C_ij / eps), P_ij = a_i b_j exp((f_i - C_ij) / eps).
    """
    geom = Dense(C, _validated=True)
    pd = geom.pdtype
    row = Hard(a.detach().to(pd))
    logb = log_weights(b.detach().to(pd))
    zero = torch.zeros(row.w.shape, dtype=pd, device=geom.device)
    with torch.no_grad():
        f = row.update(zero, geom.lse(zero, logb, eps, axis=1), eps)
        plan = geom.block(f / eps + row.logw, logb, eps)
    return f.to(C.dtype), torch.zeros_like(b), plan.to(C.dtype)


def _grid_hessian(Fy, plan, a, eps, lam):
    """Hessian of L_lam on the grid: Phi^T J (lam J + Q)^{-1} Q Phi (docs/inverse.md)."""
    q = plan.sum(0)
    keep = q > torch.finfo(q.dtype).tiny / torch.finfo(q.dtype).eps
    P, F, q = plan[:, keep], Fy[keep], q[keep]
    J = (torch.diag(q) - P.T @ (P / a[:, None])) / eps
    J = 0.5 * (J + J.T)
    if lam == 0.0:
        H = F.T @ (J @ F)
    else:
        X = torch.linalg.solve(lam * J + torch.diag(q), q[:, None] * F)
        H = F.T @ (J @ X)
    return 0.5 * (H + H.T)


def _jko_grid_loss(theta, Fy, Cxy, a, b, eps, lam, const, max_iter, tol, g0=None,
                   hessian=False):
    """L_lam on the sample grid (lam >= 0); const = SUOT_inf(Cxy), the theta-free part."""
    V = Fy @ theta
    C = Cxy + V.detach()[None, :]
    if lam == 0.0:
        f, g, plan = _free_marginal_plan(a, b, C, eps)
        it, errors, ok = 1, [], True
    else:
        f, g, plan, it, errors, ok = _suot_core(a, b, C, eps, lam, max_iter, tol, g0)
    col = plan.sum(0)
    obs = b @ Fy
    mod = col @ Fy
    with torch.no_grad():
        aw, bw, Cw, Pw, Vw = wide(a, b, C, plan, V)
        primal = _primal(aw, bw, Cw, eps, lam, Pw)
        val = (const + bw @ Vw - primal).to(theta.dtype)
    lin = (obs - mod) @ theta
    value = lin + (val - lin.detach())
    H = _grid_hessian(Fy.detach(), plan, a, eps, lam) if hessian else None
    return FYLoss(value=value, grad=(obs - mod).detach(), observed_moments=obs.detach(),
                  model_moments=mod.detach(), hessian=H, plan=plan, potential_f=f,
                  potential_g=g, kind="jko", lam=lam, converged=ok, n_iter=it, errors=errors)


def _primal(a, b, C, eps, lam, plan):
    """<C, P> + eps KL(P | a (x) b) [+ lam KL(P^T 1 | b)] (lam = 0: no marginal term)."""
    val = (C * plan).sum() + eps * _kl(plan, a[:, None] * b[None, :])
    if lam > 0 and not math.isinf(lam):
        val = val + lam * _kl(plan.sum(0), b)
    return val


def _jko_balanced_const(Cxy, a, b, eps, max_iter, tol):
    """(SUOT_inf(Cxy) as a float64 scalar, g_c): the balanced entropic cost, second potential."""
    f, g, plan, it, errors, ok = _suot_core(a, b, Cxy, eps, math.inf, max_iter, tol)
    report_convergence(ok, "iJKO reference term (balanced Sinkhorn)", it,
                       errors[-1] if errors else math.nan, tol, stacklevel=4)
    aw, bw, Cw, Pw = wide(a, b, Cxy, plan)
    return _primal(aw, bw, Cw, eps, math.inf, Pw), g


# ----------------------------------------------------------------------------- validation

def _as_potential_basis(basis, d, dtype=torch.float64, device=None) -> PotentialBasis:
    if isinstance(basis, PotentialBasis):
        if basis.dim != d:
            raise InputError(f"potential_basis: built for dimension {basis.dim}, data have {d}")
        return basis
    if callable(basis):
        try:
            probe = basis(torch.zeros(1, d, dtype=dtype, device=device))
        except Exception as exc:
            raise InputError(f"potential_basis: calling it on a (1, {d}) tensor failed "
                             f"({type(exc).__name__}: {exc})") from None
        if not isinstance(probe, torch.Tensor) or probe.ndim != 2 or probe.shape[0] != 1:
            raise InputError("potential_basis: a callable must map (m, d) tensors to (m, R)")
        return PotentialBasis(basis, d, probe.shape[1])
    raise InputError("potential_basis: expected a PotentialBasis or a callable (m, d) -> (m, R)")


def _prepare_jko(ctx, theta, basis, observed, a, b, tau):
    if not isinstance(observed, (tuple, list)) or len(observed) != 2:
        raise InputError("observed: for kind='jko' pass the two snapshots (x_k, x_next)")
    x = check_points(ctx.tensor(observed[0], "x_k"), "x_k")
    y = check_points(ctx.tensor(observed[1], "x_next"), "x_next")
    check_same_dim(x, y, ("x_k", "x_next"))
    basis = _as_potential_basis(basis, x.shape[1], ctx.dtype, ctx.device)
    if theta is not None and tuple(theta.shape) != (basis.size,):
        raise InputError(f"theta: expected shape ({basis.size},), got {tuple(theta.shape)}")
    a = positive_weights(ctx, a, x.shape[0], "a", x, "sample")
    b = positive_weights(ctx, b, y.shape[0], "b", x, "sample")
    if tau is None:
        raise InputError("tau: the iJKO loss needs the time step tau > 0")
    tau = check_positive(tau, "tau")
    return basis, x, y, a, b, tau


def _jko_face(ctx, theta, basis, observed, lam, a, b, eps, rho, tau, max_iter, tol, hessian):
    """Validated body of fy_loss / sharpened_fy_loss for kind='jko' (tensors in and out)."""
    if rho is not None:
        raise InputError("rho: not used by kind='jko' (the sharpening weight is lam)")
    basis, x, y, a, b, tau = _prepare_jko(ctx, theta, basis, observed, a, b, tau)
    if eps is None:
        if lam != 0.0:
            raise InputError("eps: the sharpened iJKO loss needs an entropic smoothing eps > 0")
        it = max_iter or _PROX_MAX_ITER
        tl = dtype_tol(tol or _PROX_TOL, x.dtype)
        res = _jko_plain_loss(theta, basis, x, y, a, b, tau, prox_iter=it, prox_tol=tl,
                              hessian=hessian)
        report_convergence(res.converged, "fy_loss (prox Newton)", it, math.nan, tl,
                           stacklevel=5)
        return res
    eps = check_positive(eps, "eps")
    mi = max_iter or _SINKHORN_MAX_ITER
    tl = dtype_tol(tol or _SINKHORN_TOL, x.dtype)
    b = b * (a.sum() / b.sum())
    Cxy = _jko_cost(x, y, tau)
    const, _ = _jko_balanced_const(Cxy, a, b, eps, mi, tl)
    res = _jko_grid_loss(theta, basis.features(y), Cxy, a, b, eps, lam, const, mi, tl,
                         hessian=hessian)
    report_convergence(res.converged, "sharpened_fy_loss (semi-unbalanced Sinkhorn)", res.n_iter,
                       res.errors[-1] if res.errors else math.nan, tl, stacklevel=5)
    return res


# ----------------------------------------------------------------------------- estimator

@dataclasses.dataclass(frozen=True, kw_only=True)
class IJKOResult(SolverResult):
    """Result of :func:`ijko`: ``theta`` (R,), the loss and objective at theta, the loss
    gradient, ``plan`` (grid losses: the model plan on the sample grid) or ``prox``
    (unregularised loss: the points prox_{tau V}(x_i)), ``basis`` (the :class:`PotentialBasis`
    used) and the traces. ``errors`` traces the outer stopping error (gradient infinity norm, or
    the l1 optimality violation with ``reg="l1"``)."""

    theta: Any = None
    loss: Any = None
    objective: Any = None
    grad: Any = None
    plan: Any = None
    prox: Any = None
    basis: Any = None
    objective_trace: list = dataclasses.field(default_factory=list)


def ijko(x_k, x_next, tau: float, potential_basis="quadratic", *, lam: float = 0.0,
         eps: float | None = None, reg: str | None = None, reg_weight: float = 0.0, a=None,
         b=None, theta0=None, max_iter: int = 300, tol: float = 1e-7,
         inner_max_iter: int = 20000, inner_tol: float = 1e-9) -> IJKOResult:
    """Estimate theta of V_theta from snapshots x_k (n, d) ~ rho_k and x_next (m, d) ~ rho_{k+1}.

    Minimises L_lam(theta) + reg_weight * ||theta||_1 (see the module docstring for the losses)
    with L-BFGS (no penalty) or proximal Newton on the exact Hessian (l1; exact zeros from the
    coordinate-descent subproblem).

    Parameters
    ----------
    x_k, x_next:
        The two snapshots, (n, d) and (m, d) (1-D arrays are n points on the line).
    tau:
        JKO step (cost |x - y|^2 / (2 tau)).
    potential_basis:
        :class:`PotentialBasis`, a torch callable (m, d) -> (m, R), or ``"quadratic"``
        (:func:`quadratic_potential_basis`: V = b^T y + y^T Q y / 2). No constant feature.
    lam:
        Sharpening weight >= 0 (finite). ``lam > 0`` needs ``eps``.
    eps:
        ``None``: unregularised loss (Moreau envelope, ``lam = 0`` only). ``eps > 0``: entropic
        model on the sample grid (calibrated for the entropic JKO step; on data of the
        unregularised step it biases theta by O(eps)).
    reg, reg_weight:
        ``None`` or ``"l1"``, with its weight.
    a, b:
        Sample weights (``None``: uniform).
    theta0:
        Starting point (default 0).
    max_iter, tol:
        Outer iterations; tolerance on the infinity norm of the gradient (no penalty) or of the
        l1 optimality violation (raised to 100 x machine epsilon x the feature scale in float32).
    inner_max_iter, inner_tol:
        Semi-unbalanced Sinkhorn controls (grid losses) / Newton prox iterations (at most 100) and
        tolerance (unregularised loss). Raised to the dtype's floor like ``tol``.

    Returns
    -------
    :class:`IJKOResult`; non-convergence warns (ConvergenceWarning) and sets converged=False.

    Examples
    --------
    >>> import numpy as np, measureflow.inverse as inv
    >>> x = np.random.default_rng(0).normal(size=(50, 1))
    >>> y = (x - 0.5 * 0.3) / (1 + 0.5 * 2.0)          # JKO step of V = y^2 + 0.3 y, tau = 0.5
    >>> r = inv.ijko(x, y, 0.5)                        # V = b y + Q y^2 / 2
    >>> np.round(r.theta, 6).tolist()
    [0.3, 2.0]
    """
    ctx = ArrayContext(x_k, x_next, a, b, theta0)
    check_compute_dtype(ctx, "x_k")
    xk = check_points(ctx.tensor(x_k, "x_k"), "x_k")
    d = xk.shape[1]
    if isinstance(potential_basis, str):
        check_choice(potential_basis, "potential_basis", ("quadratic",))
        potential_basis = quadratic_potential_basis(d)
    basis = _as_potential_basis(potential_basis, d, ctx.dtype, ctx.device)
    lam = check_nonnegative_scalar(lam, "lam")
    theta = ctx.zeros(basis.size) if theta0 is None else ctx.tensor(theta0, "theta0")
    if tuple(theta.shape) != (basis.size,):
        raise InputError(f"theta0: expected shape ({basis.size},), got {tuple(theta.shape)}")
    basis, x, y, a, b, tau = _prepare_jko(ctx, None, basis, (x_k, x_next), a, b, tau)
    if reg is not None:
        if not isinstance(reg, str):
            raise InputError(f"reg: expected None or one of ('l1',), got {type(reg).__name__}")
        check_choice(reg, "reg", ("l1",))
    reg_weight = check_nonnegative_scalar(reg_weight, "reg_weight")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    inner_max_iter = check_int(inner_max_iter, "inner_max_iter", min_value=1)
    inner_tol = dtype_tol(check_positive(inner_tol, "inner_tol"), x.dtype)
    x, y, a, b = x.detach(), y.detach(), a.detach(), b.detach()
    Fy = basis.features(y).detach()
    tol = dtype_tol(tol, x.dtype, scale=1.0 + float(Fy.abs().max()))
    state: dict[str, Any] = {"inner_ok": True, "g": None}
    if eps is None:
        if lam != 0.0:
            raise InputError("eps: the sharpened iJKO loss (lam > 0) needs eps > 0")
        const = _w2sq(x, y, a, b) / (2 * tau)
        prox_tol = dtype_tol(_PROX_TOL, x.dtype)

        def fun(th, hessian=False):
            r = _jko_plain_loss(th, basis, x, y, a, b, tau, const=const,
                                prox_iter=min(inner_max_iter, _PROX_MAX_ITER), prox_tol=prox_tol,
                                y0=state.get("yp"), hessian=hessian)
            if not math.isfinite(float(r.value)):
                return math.inf, torch.zeros_like(th), None
            state["yp"] = r.prox
            state["inner_ok"], state["last"] = r.converged, r
            return float(r.value), r.grad, r.hessian
    else:
        eps = check_positive(eps, "eps")
        b = b * (a.sum() / b.sum())
        Cxy = _jko_cost(x, y, tau)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            const, _ = _jko_balanced_const(Cxy, a, b, eps, inner_max_iter, inner_tol)

        def fun(th, hessian=False):
            r = _jko_grid_loss(th, Fy, Cxy, a, b, eps, lam, const, inner_max_iter, inner_tol,
                               state["g"], hessian=hessian)
            state["inner_ok"], state["last"] = r.converged, r
            state["g"] = r.potential_g
            return float(r.value), r.grad, r.hessian

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if reg == "l1":
            theta_hat, ok, it, errors, trace = prox_newton_l1(
                lambda th: fun(th, True), theta.detach(), reg_weight=reg_weight,
                max_iter=max_iter, tol=tol)
        else:
            theta_hat, ok, it, errors, trace = minimize_convex(
                lambda th: fun(th)[:2], theta.detach(), reg=None, reg_weight=0.0,
                max_iter=max_iter, tol=tol)
        fun(theta_hat)
    final = state.get("last")
    if final is None:  # every evaluation left the loss's domain
        nan = torch.full_like(theta, math.nan)
        report_convergence(False, "ijko (no finite loss value reached)", it, math.nan, tol)
        return ctx.wrap(IJKOResult(theta=theta_hat, loss=math.inf, objective=math.inf, grad=nan,
                                   basis=basis, objective_trace=trace, converged=False,
                                   n_iter=it, errors=errors))
    inner_ok = bool(state["inner_ok"])
    ok = bool(ok and inner_ok)
    report_convergence(ok, "ijko" + ("" if inner_ok else " (inner solver not converged)"), it,
                       errors[-1] if errors else math.nan, tol)
    pen = reg_weight * float(theta_hat.abs().sum()) if reg == "l1" else 0.0
    loss = final.value.detach()
    res = IJKOResult(theta=theta_hat, loss=loss, objective=loss + pen, grad=final.grad,
                     plan=final.plan, prox=final.prox, basis=basis, objective_trace=trace,
                     converged=ok, n_iter=it, errors=errors)
    return ctx.wrap(res)
