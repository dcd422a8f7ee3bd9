"""Inverse unbalanced OT (iUOT): estimate a cost from observed couplings (arXiv 2505.07124).

Minimises the (sharpened) Fenchel-Young loss of entropic unbalanced OT (see
:mod:`measureflow.inverse.losses`) over theta, plus an optional l1 / nuclear penalty:

    theta_hat = argmin_theta L_lam(theta; pi_hat) + reg_weight * R(theta).

The loss equals min_{f,g} J(theta, f, g) for a jointly convex J (its dual form); we minimise it
by alternating an (warm-started) unbalanced Sinkhorn solve in (f, g) (:func:`measureflow.ot.solve`)
with L-BFGS steps in theta (no penalty) or FISTA proximal steps (l1 / nuclear).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..core import (
    ArrayContext,
    InputError,
    SolverResult,
    check_choice,
    check_int,
    check_nonnegative_scalar,
    check_points,
    check_positive,
    report_convergence,
)
from ._optim import minimize_convex
from .bases import bilinear_cost_basis
from .losses import _prepare_uot, _uot_loss

__all__ = ["IUOTResult", "iuot"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class IUOTResult(SolverResult):
    """Result of :func:`iuot`.

    ``theta`` (shape of the basis' leading dims; a (dx, dy) matrix A for the bilinear basis,
    cost -x^T A y), ``plan`` the fitted model plan pi_theta_hat on the grid, ``loss`` the
    (sharpened) FY loss at theta, ``objective`` loss + penalty, ``grad`` the loss gradient,
    ``objective_trace`` the objective at each evaluation. ``errors`` traces the stopping error
    (infinity norm of the gradient mapping; the gradient itself without penalty).
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
    """Estimate the cost parameter theta of entropic unbalanced OT from observed couplings.

    Parameters
    ----------
    x, y:
        Grid points (n, dx), (m, dy). With ``plan=None`` they are n observed pairs (x_i, y_i)
        (needs n == m) and pi_hat = I / n.
    cost_basis:
        ``"bilinear"`` (C_theta(x, y) = -x^T A y, theta = A of shape (dx, dy)), a callable
        (x, y) -> features (*S, n, m), or the features themselves (*S, n, m).
    eps, rho:
        Entropic weight (> 0) and marginal KL weight of the forward problem (``None``: balanced,
        then ``plan`` must have marginals a, b).
    lam:
        Sharpening weight (>= 0): D = KL(pi 1 | pi_hat 1) + KL(pi^T 1 | pi_hat^T 1).
    reg, reg_weight:
        ``None``, ``"l1"`` or ``"nuclear"`` (needs a matrix theta) penalty and its weight.
    a, b:
        Reference marginals of the forward problem (``None``: uniform 1/n, 1/m).
    plan:
        Observed plan pi_hat (n, m) (e.g. edge counts normalised to the known mass).
    theta0:
        Starting point (default 0).
    max_iter, tol:
        Outer iterations and tolerance on the gradient-mapping infinity norm.
    inner_max_iter, inner_tol:
        Passed to :func:`measureflow.ot.solve` (marginal-violation tolerance).

    Returns
    -------
    :class:`IUOTResult`. Non-convergence warns (ConvergenceWarning) and sets converged=False.
    """
    ctx = ArrayContext(x, y, a, b, plan, theta0,
                       cost_basis if isinstance(cost_basis, torch.Tensor) else None)
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
    if isinstance(cost_basis, str):
        check_choice(cost_basis, "cost_basis", ("bilinear",))
        feats = bilinear_cost_basis(x, y)
    elif callable(cost_basis):
        feats = ctx.tensor(cost_basis(x, y), "cost_basis")
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
    feats, plan_hat, a, b, eps, rho = _prepare_uot(ctx, theta, feats, plan_hat, a, b, eps, rho,
                                                   plan_name="plan", basis_name="cost_basis")
    lam = check_nonnegative_scalar(lam, "lam")
    if reg is not None:
        check_choice(reg, "reg", ("l1", "nuclear"))
        if reg == "nuclear" and len(shape) != 2:
            raise InputError("reg: 'nuclear' needs a matrix parameter (a basis of shape (p, q, n, m))")
    reg_weight = check_nonnegative_scalar(reg_weight, "reg_weight")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    inner_max_iter = check_int(inner_max_iter, "inner_max_iter", min_value=1)
    inner_tol = check_positive(inner_tol, "inner_tol")

    feats_d, plan_d = feats.detach(), plan_hat.detach()
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

    import warnings

    from ..core import ConvergenceWarning
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
