"""Inverse unbalanced OT (iUOT): the FY losses of entropic unbalanced OT and the estimator
:func:`iuot` (arXiv 2505.07124; reconstruction documented in ``docs/inverse.md``).

Forward problem on an (n, m) grid, cost C_theta = sum_r theta_r C^(r)::

    UOT(C) = min_pi <C, pi> + eps KL(pi | a (x) b) + rho KL(pi 1 | a) + rho KL(pi^T 1 | b)

(``rho=None``: hard marginals), solved by :func:`measureflow.ot.solve`. Losses for an observed
plan pi_hat: L(theta) = G_theta(pi_hat) - UOT(C_theta) and its sharpening with
D(pi, pi_hat) = KL(pi 1 | pi_hat 1) + KL(pi^T 1 | pi_hat^T 1) (the observed marginals): the
sharpened inner problem is again unbalanced OT, with marginal weight rho + lam and reference
marginals the geometric means a^(rho/(rho+lam)) (pi_hat 1)^(lam/(rho+lam)) after an exact change of
reference measure. As lam -> inf it becomes the balanced problem with the observed marginals.

Hessian (derived, ``docs/inverse.md``): with the model plan P, r = P 1, c = P^T 1, the marginals
m_r = ((P * C^(r)) 1, (P * C^(r))^T 1) of each feature and
S = [[(1 + eps/rho) diag(r), P], [P^T, (1 + eps/rho) diag(c)]],

    H_rs = (1/eps) [ sum_ij P_ij C^(r)_ij C^(s)_ij - m_r^T S^+ m_s ],

the covariance of the cost features under P minus the part explained by the marginal potentials
(for rho = None, S is singular along (1, -1), which every m_r is orthogonal to).
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
    check_ndim,
    check_nonnegative_scalar,
    check_points,
    check_positive,
    report_convergence,
)
from ._optim import minimize_convex
from .bases import bilinear_cost_basis
from .fenchel_young import FYLoss, check_compute_dtype, dtype_tol, positive_weights, wide
from .sinkhorn import _kl

__all__ = ["IUOTResult", "iuot"]


# ----------------------------------------------------------------------------- kernels

def _uot_objective(C, plan, a, b, eps, rho):
    val = (C * plan).sum() + eps * _kl(plan, a[:, None] * b[None, :])
    if rho is not None:
        val = val + rho * (_kl(plan.sum(1), a) + _kl(plan.sum(0), b))
    return val


def _uot_inner(C, a, b, plan_hat, eps, rho, lam, max_iter, tol, init=None):
    """argmin_pi G_theta(pi) + lam D(pi, pi_hat); returns (plan, res, rows, cols, rho_eff)."""
    from ..ot import solve
    kw = {"eps_scaling": None} if init is not None else {}
    if max_iter is not None:
        kw["max_iter"] = max_iter
    if tol is not None:
        kw["tol"] = tol
    Cd = C.detach()
    if lam == 0.0 or rho is None:
        res = solve(a, b, Cd, eps=eps, rho=rho, init=init, **kw)
        return res.plan, res, None, None, rho
    rho2 = rho + lam
    ah, bh = plan_hat.sum(1), plan_hat.sum(0)
    tiny = torch.finfo(a.dtype).tiny
    la = torch.where(ah > 0, (rho * torch.log(a) + lam * torch.log(ah.clamp_min(tiny))) / rho2,
                     torch.full_like(a, -math.inf))
    lb = torch.where(bh > 0, (rho * torch.log(b) + lam * torch.log(bh.clamp_min(tiny))) / rho2,
                     torch.full_like(b, -math.inf))
    ri, ci = torch.isfinite(la), torch.isfinite(lb)
    ma, mb = torch.exp(la[ri]), torch.exp(lb[ci])
    Cs = Cd[ri][:, ci] + eps * ((la[ri] - torch.log(a[ri]))[:, None]
                                + (lb[ci] - torch.log(b[ci]))[None, :])
    if init is not None and (init[0].shape[0] != ma.shape[0] or init[1].shape[0] != mb.shape[0]):
        init = None
        kw.pop("eps_scaling", None)
    res = solve(ma, mb, Cs, eps=eps, rho=rho2, init=init, **kw)
    plan = torch.zeros_like(Cd)
    plan[torch.nonzero(ri)[:, 0][:, None], torch.nonzero(ci)[:, 0][None, :]] = res.plan
    return plan, res, ri, ci, rho2


def _uot_hessian(feats, plan, eps, rho):
    """Hessian of the (sharpened) UOT loss in theta (module docstring), shape S + S."""
    shape = tuple(feats.shape[:-2])
    F = feats.reshape(-1, *feats.shape[-2:])                      # (R, n, m)
    n, m = plan.shape
    r, c = plan.sum(1), plan.sum(0)
    k = 1.0 if rho is None else 1.0 + eps / rho
    S = torch.zeros(n + m, n + m, dtype=plan.dtype, device=plan.device)
    S[:n, :n] = torch.diag(k * r)
    S[n:, n:] = torch.diag(k * c)
    S[:n, n:] = plan
    S[n:, :n] = plan.T
    PF = plan[None] * F
    Mk = torch.cat([PF.sum(2), PF.sum(1)], 1)                     # (R, n + m)
    if rho is None:  # null direction (1, -1): every marginal pair m_r is orthogonal to it
        u = torch.cat([torch.ones(n, dtype=plan.dtype, device=plan.device),
                       -torch.ones(m, dtype=plan.dtype, device=plan.device)])
        S = S + torch.outer(u, u) * (float(plan.sum()) / (n + m))
    # S is PSD; rows/columns of P that underflowed make it singular: pseudo-inverse (eigh)
    ev, U = torch.linalg.eigh(0.5 * (S + S.T))
    cut = ev.abs().max() * (n + m) * torch.finfo(S.dtype).eps
    inv_ev = torch.where(ev > cut, 1.0 / ev.clamp_min(torch.finfo(S.dtype).tiny), torch.zeros_like(ev))
    X = U @ (inv_ev[:, None] * (U.T @ Mk.T))                       # (n + m, R)
    H = (torch.einsum("rij,sij->rs", PF, F) - Mk @ X) / eps
    H = 0.5 * (H + H.T)
    return H.reshape(shape + shape)


def _uot_loss(theta, feats, plan_hat, a, b, eps, rho, lam, max_iter=None, tol=None, init=None,
              hessian=False):
    k = theta.ndim
    C = torch.tensordot(theta, feats, dims=k)
    plan, res, ri, ci, rho_eff = _uot_inner(C, a, b, plan_hat, eps, rho, lam, max_iter, tol,
                                            init)
    plan = plan.detach()
    obs = torch.tensordot(feats, plan_hat, dims=([k, k + 1], [0, 1]))
    mod = torch.tensordot(feats, plan, dims=([k, k + 1], [0, 1]))
    with torch.no_grad():
        Cw, Pw, Hw, aw, bw = wide(C, plan, plan_hat, a, b)
        g_hat = _uot_objective(Cw, Hw, aw, bw, eps, rho)
        inner = _uot_objective(Cw, Pw, aw, bw, eps, rho)
        if lam > 0 and rho is not None:
            inner = inner + lam * (_kl(Pw.sum(1), Hw.sum(1)) + _kl(Pw.sum(0), Hw.sum(0)))
        val = (g_hat - inner).to(C.dtype)
    lin = (C * (plan_hat - plan)).sum()
    value = lin + (val - lin.detach())
    H = None
    if hessian:
        fd = feats.detach()
        if ri is None:
            H = _uot_hessian(fd, plan, eps, rho_eff)
        else:
            H = _uot_hessian(fd[..., ri, :][..., ci], plan[ri][:, ci], eps, rho_eff)
    return FYLoss(value=value, grad=(obs - mod).detach(), observed_moments=obs.detach(),
                  model_moments=mod.detach(), hessian=H, plan=plan, potential_f=res.potential_f,
                  potential_g=res.potential_g, kind="uot", lam=lam,
                  converged=bool(res.converged), n_iter=int(res.n_iter), errors=list(res.errors))


# ----------------------------------------------------------------------------- validation

def _prepare_uot(ctx, theta, basis, observed, a, b, eps, rho, plan_name="observed",
                 basis_name="basis"):
    if isinstance(observed, (tuple, list)) and len(observed) == 2 and not isinstance(
            observed[0], (int, float)):
        raise InputError(f"{plan_name}: kind='uot' needs the observed plan (n, m), not a pair of "
                         "snapshots (use kind='jko')")
    plan_hat = ctx.tensor(observed, plan_name)
    check_ndim(plan_hat, plan_name, 2)
    if bool((plan_hat < 0).any()):
        raise InputError(f"{plan_name}: the observed plan has negative entries")
    n, m = plan_hat.shape
    if n == 0 or m == 0:
        raise InputError(f"{plan_name}: empty plan of shape {(n, m)}")
    if not float(plan_hat.detach().sum()) > 0:
        raise InputError(f"{plan_name}: the observed plan has zero mass")
    if basis is None or callable(basis):
        raise InputError(f"{basis_name}: expected cost features of shape (*theta.shape, {n}, {m})")
    feats = ctx.tensor(basis, basis_name)
    if feats.ndim < 3 or tuple(feats.shape[-2:]) != (n, m):
        raise InputError(f"{basis_name}: expected cost features of shape (*theta.shape, {n}, {m}), "
                         f"got {tuple(feats.shape)}")
    shape = tuple(feats.shape[:-2])
    if theta is not None and tuple(theta.shape) != shape:
        raise InputError(f"theta: expected shape {shape} (the leading dims of basis), got "
                         f"{tuple(theta.shape)}")
    a = positive_weights(ctx, a, n, "a", plan_hat, "reference")
    b = positive_weights(ctx, b, m, "b", plan_hat, "reference")
    if eps is None:
        raise InputError("eps: the iUOT loss needs an entropic weight eps > 0")
    eps = check_positive(eps, "eps")
    if rho is not None:
        rho = check_positive(rho, "rho")
    else:
        rt = max(1e-8, 100 * torch.finfo(plan_hat.dtype).eps)
        for got, want in ((plan_hat.sum(1), a), (plan_hat.sum(0), b)):
            if float((got - want).abs().sum()) > rt * float(want.sum()):
                raise InputError(f"{plan_name}: with rho=None (balanced) the observed plan must "
                                 "have marginals a and b")
    return feats, plan_hat, a, b, eps, rho


def _uot_face(ctx, theta, basis, observed, lam, a, b, eps, rho, tau, max_iter, tol, hessian):
    """Validated body of fy_loss / sharpened_fy_loss for kind='uot' (tensors in and out)."""
    if tau is not None:
        raise InputError("tau: not used by kind='uot' (it is the JKO time step)")
    feats, plan_hat, a, b, eps, rho = _prepare_uot(ctx, theta, basis, observed, a, b, eps, rho)
    if tol is not None:
        tol = dtype_tol(tol, plan_hat.dtype, scale=float(a.sum()))
    # measureflow.ot.solve emits the ConvergenceWarning of the inner solve itself
    return _uot_loss(theta, feats, plan_hat, a, b, eps, rho, lam, max_iter, tol,
                     hessian=hessian)


# ----------------------------------------------------------------------------- estimator

@dataclasses.dataclass(frozen=True, kw_only=True)
class IUOTResult(SolverResult):
    """Result of :func:`iuot`.

    Attributes
    ----------
    theta : array or Tensor
        Shape of the basis' leading dims; a (dx, dy) matrix A for the bilinear basis (cost
        -x^T A y).
    plan : array or Tensor, shape (n, m)
        The fitted model plan pi_theta_hat on the grid.
    loss : float
        The (sharpened) FY loss at theta.
    objective : float
        loss + penalty.
    grad : array or Tensor
        The loss gradient at theta.
    objective_trace : list of float
        The objective at each evaluation.
    converged, n_iter : bool, int
    errors : list of float
        The stopping error per iteration (infinity norm of the gradient mapping; the gradient
        itself without penalty).
    """

    theta: Any = None
    plan: Any = None
    loss: Any = None
    objective: Any = None
    grad: Any = None
    objective_trace: list = dataclasses.field(default_factory=list)


def iuot(x, y, cost_basis="bilinear", *, eps: float, rho: float | None, lam: float = 0.0,
         reg: str | None = None, reg_weight: float = 0.0, a=None, b=None, plan=None,
         theta0=None, max_iter: int = 300, tol: float = 1e-6, inner_max_iter: int = 10000,
         inner_tol: float = 1e-10) -> IUOTResult:
    """Inverse unbalanced OT: estimate the cost parameter theta of entropic OT from observed plans.

    Minimises L_lam(theta; pi_hat) + reg_weight R(theta), L_lam the (sharpened) FY loss of the
    forward problem min_pi <C_theta, pi> + eps KL(pi | a (x) b) + rho KL(pi 1 | a) +
    rho KL(pi^T 1 | b) (module docstring). The loss equals min_(f,g) J(theta, f, g) for a jointly
    convex J (its dual form); a warm-started unbalanced Sinkhorn solve in (f, g)
    (:func:`measureflow.ot.solve`) alternates with L-BFGS steps in theta (no penalty) or FISTA
    proximal steps (l1 / nuclear).

    Parameters
    ----------
    x : array_like or Tensor, shape (n, dx)
    y : array_like or Tensor, shape (m, dy)
        Grid points. With ``plan=None`` they are n observed pairs (x_i, y_i) (needs n == m) and
        pi_hat = I / n.
    cost_basis : "bilinear", callable or array_like, default "bilinear"
        ``"bilinear"`` (C_theta(x, y) = -x^T A y, theta = A of shape (dx, dy)), a callable
        (x, y) -> features (*S, n, m), or the features themselves (*S, n, m).
    eps : float
        Entropic weight (> 0).
    rho : float or None
        Marginal KL weight of the forward problem (``None``: balanced, then ``plan`` must have
        marginals a, b).
    lam : float, default 0.0
        Sharpening weight (>= 0): D = KL(pi 1 | pi_hat 1) + KL(pi^T 1 | pi_hat^T 1).
    reg : {None, "l1", "nuclear"}, default None
        Penalty (``"nuclear"`` needs a matrix theta).
    reg_weight : float, default 0.0
    a, b : array_like or Tensor, optional
        Reference marginals of the forward problem (default uniform 1/n, 1/m).
    plan : array_like or Tensor, shape (n, m), optional
        Observed plan pi_hat (e.g. edge counts normalised to the known mass).
    theta0 : array_like or Tensor, optional
        Starting point (default 0).
    max_iter : int, default 300
    tol : float, default 1e-6
        Outer iterations and tolerance on the gradient-mapping infinity norm (raised to 100 x
        machine epsilon x the feature scale in float32).
    inner_max_iter : int, default 10000
    inner_tol : float, default 1e-10
        Passed to :func:`measureflow.ot.solve` (marginal-violation tolerance, raised to 100 x
        machine epsilon x mass in float32).

    Returns
    -------
    IUOTResult

    Raises
    ------
    InputError
        Bad shapes, n != m without ``plan``, a failing ``cost_basis`` callable, bad scalars or
        weights, an unknown ``reg``.

    Warns
    -----
    ConvergenceWarning
        Outer or inner non-convergence (``converged=False``).

    Examples
    --------
    The parameter is recovered from the model's own optimal plan (theta = 1, eps = rho = 1):

    >>> import numpy as np
    >>> import measureflow.inverse as inv
    >>> x = np.array([[-1.0], [0.0], [1.0]])
    >>> F = inv.bilinear_cost_basis(x, x)
    >>> plan = inv.fy_loss(np.ones((1, 1)), F, np.eye(3) / 3, eps=1.0, rho=1.0).plan
    >>> res = inv.iuot(x, x, eps=1.0, rho=1.0, plan=plan)
    >>> round(float(res.theta[0, 0]), 4), res.converged
    (1.0, True)

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md).
    """
    ctx = ArrayContext(x, y, a, b, plan, theta0,
                       cost_basis if isinstance(cost_basis, torch.Tensor) else None)
    check_compute_dtype(ctx, "x")
    x, y = ctx.tensor(x, "x"), ctx.tensor(y, "y")
    x, y = check_points(x, "x"), check_points(y, "y")
    n, m = x.shape[0], y.shape[0]
    if plan is None:
        if n != m:
            raise InputError(f"plan: without an observed plan x and y must be n pairs (got {n} "
                             f"and {m} points)")
        plan_hat = torch.eye(n, dtype=x.dtype, device=x.device) / n
    else:
        plan_hat = ctx.tensor(plan, "plan")
        if tuple(plan_hat.shape) != (n, m):
            raise InputError(f"plan: expected shape ({n}, {m}) (the grid x, y), got "
                             f"{tuple(plan_hat.shape)}")
    if isinstance(cost_basis, str):
        check_choice(cost_basis, "cost_basis", ("bilinear",))
        feats = bilinear_cost_basis(x, y)
    elif callable(cost_basis):
        try:
            out = cost_basis(x, y)
        except Exception as exc:
            raise InputError(f"cost_basis: calling it on (x, y) failed ({type(exc).__name__}: "
                             f"{exc})") from None
        feats = ctx.tensor(out, "cost_basis")
    else:
        feats = ctx.tensor(cost_basis, "cost_basis")
    if feats.ndim < 3:
        raise InputError(f"cost_basis: expected features of shape (*S, {n}, {m}), got "
                         f"{tuple(feats.shape)}")
    shape = tuple(feats.shape[:-2])
    theta = torch.zeros(shape, dtype=x.dtype, device=x.device) if theta0 is None else \
        ctx.tensor(theta0, "theta0")
    if tuple(theta.shape) != shape:
        raise InputError(f"theta0: expected shape {shape}, got {tuple(theta.shape)}")
    feats, plan_hat, a, b, eps, rho = _prepare_uot(ctx, None, feats, plan_hat, a, b, eps, rho,
                                                   plan_name="plan", basis_name="cost_basis")
    lam = check_nonnegative_scalar(lam, "lam")
    if reg is not None:
        if not isinstance(reg, str):
            raise InputError(f"reg: expected None or one of ('l1', 'nuclear'), got {type(reg).__name__}")
        check_choice(reg, "reg", ("l1", "nuclear"))
        if reg == "nuclear" and len(shape) != 2:
            raise InputError("reg: 'nuclear' needs a matrix parameter (a basis of shape (p, q, n, m))")
    reg_weight = check_nonnegative_scalar(reg_weight, "reg_weight")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    inner_max_iter = check_int(inner_max_iter, "inner_max_iter", min_value=1)
    inner_tol = check_positive(inner_tol, "inner_tol")
    dt = plan_hat.dtype
    inner_tol = dtype_tol(inner_tol, dt, scale=float(a.sum()))
    feats_d, plan_d = feats.detach(), plan_hat.detach()
    tol = dtype_tol(tol, dt, scale=(1.0 + float(feats_d.abs().max())) * float(plan_d.sum()))
    state: dict[str, Any] = {"init": None, "inner_ok": True}

    def fun(th):
        res = _uot_loss(th.detach(), feats_d, plan_d, a.detach(), b.detach(), eps, rho, lam,
                        inner_max_iter, inner_tol, state["init"])
        if res.potential_f is not None and res.plan.shape == plan_d.shape and \
                res.potential_f.shape[0] == plan_d.shape[0] and \
                res.potential_g.shape[0] == plan_d.shape[1]:
            state["init"] = (res.potential_f.detach(), res.potential_g.detach())
        state["inner_ok"] = bool(res.converged)
        state["last"] = res
        return float(res.value), res.grad

    with warnings.catch_warnings():
        # inner warnings during the outer search are summarised by the final check below
        warnings.simplefilter("ignore", ConvergenceWarning)
        theta_hat, ok, it, errors, trace = minimize_convex(
            fun, theta.detach(), reg=reg, reg_weight=reg_weight, max_iter=max_iter, tol=tol)
        fun(theta_hat)
    final = state["last"]
    inner_ok = state["inner_ok"]
    ok = bool(ok and inner_ok)
    report_convergence(ok, "iuot" + ("" if inner_ok else " (inner Sinkhorn not converged)"), it,
                       errors[-1] if errors else math.nan, tol)
    pen = 0.0
    if reg == "l1":
        pen = reg_weight * float(theta_hat.abs().sum())
    elif reg == "nuclear":
        pen = reg_weight * float(torch.linalg.svdvals(theta_hat).sum())
    loss = final.value.detach()
    res = IUOTResult(theta=theta_hat, plan=final.plan, loss=loss, objective=loss + pen,
                     grad=final.grad, objective_trace=trace, converged=ok, n_iter=it,
                     errors=errors)
    return ctx.wrap(res)
