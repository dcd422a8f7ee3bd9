"""Inverse JKO (iJKO): recover a potential from two snapshots of a JKO step (arXiv 2505.07124).

Data: independent samples x_i ~ rho_k and y_j ~ rho_{k+1}, where
rho_{k+1} = argmin_rho W2^2(rho_k, rho) / (2 tau) + int V_theta drho, V_theta = sum_r theta_r phi_r.
No trajectories (pairings) are observed.

- ``lam = 0``: plain FY loss through the Moreau envelope (continuous y, Newton prox);
- ``lam > 0``: sharpened loss, inner semi-unbalanced Sinkhorn on the sample grid (entropic
  smoothing ``eps``), see :mod:`measureflow.inverse.losses`.

The loss is convex in theta; we minimise it (+ optional l1 penalty) with L-BFGS or FISTA.
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
    check_positive,
    report_convergence,
)
from ._optim import minimize_convex
from .bases import quadratic_potential_basis
from .losses import (
    _jko_balanced_const,
    _jko_cost,
    _jko_plain_loss,
    _jko_sharp_loss,
    _prepare_jko,
    _w2sq,
)

__all__ = ["IJKOResult", "ijko"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class IJKOResult(SolverResult):
    """Result of :func:`ijko`: ``theta`` (R,), the loss and objective at theta, the loss
    gradient, ``plan`` (sharpened: the model plan on the sample grid) or ``prox`` (plain: the
    points prox_{tau V}(x_i)), ``basis`` (the :class:`PotentialBasis` used) and the traces.
    ``errors`` traces the infinity norm of the gradient mapping."""

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

    Parameters
    ----------
    tau:
        JKO step (cost |x - y|^2 / (2 tau)).
    potential_basis:
        :class:`PotentialBasis`, a torch callable (m, d) -> (m, R), or ``"quadratic"``
        (:func:`quadratic_potential_basis`: V = b^T y + y^T Q y / 2). No constant feature.
    lam:
        0 (plain Moreau-envelope loss) or > 0 (sharpened, semi-unbalanced; needs ``eps``).
    eps:
        Entropic smoothing of the sharpened loss (its bias on theta is O(eps)).
    reg, reg_weight:
        ``None`` or ``"l1"``, with its weight.
    a, b:
        Sample weights (``None``: uniform).
    max_iter, tol:
        Outer iterations; tolerance on the infinity norm of the gradient mapping.
    inner_max_iter, inner_tol:
        Semi-unbalanced Sinkhorn controls (sharpened) / Newton prox iterations and tolerance
        (plain, at most 100 Newton steps).
    """
    ctx = ArrayContext(x_k, x_next, a, b, theta0)
    xk = ctx.tensor(x_k, "x_k")
    d = xk.shape[1] if xk.ndim == 2 else 1
    if isinstance(potential_basis, str):
        check_choice(potential_basis, "potential_basis", ("quadratic",))
        potential_basis = quadratic_potential_basis(d)
    lam = check_nonnegative_scalar(lam, "lam")
    size_probe = potential_basis.size if hasattr(potential_basis, "size") else None
    theta = None if theta0 is None else ctx.tensor(theta0, "theta0")
    if theta is None:
        if size_probe is None:
            probe = potential_basis(torch.zeros(1, d, dtype=ctx.dtype, device=ctx.device))
            size_probe = probe.shape[-1]
        theta = torch.zeros(size_probe, dtype=ctx.dtype, device=ctx.device)
    basis, x, y, a, b, tau = _prepare_jko(ctx, theta, potential_basis, (x_k, x_next), a, b, tau)
    if reg is not None:
        check_choice(reg, "reg", ("l1",))
    reg_weight = check_nonnegative_scalar(reg_weight, "reg_weight")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    inner_max_iter = check_int(inner_max_iter, "inner_max_iter", min_value=1)
    inner_tol = check_positive(inner_tol, "inner_tol")
    x, y, a, b = x.detach(), y.detach(), a.detach(), b.detach()
    state: dict[str, Any] = {"inner_ok": True, "g": None}
    if lam == 0.0:
        if eps is not None:
            raise InputError("eps: only used by the sharpened loss (lam > 0)")
        const = _w2sq(x, y, a, b) / (2 * tau)

        def fun(th):
            r = _jko_plain_loss(th, basis, x, y, a, b, tau, const=const,
                                prox_iter=min(inner_max_iter, 100), prox_tol=1e-12,
                                y0=state.get("yp"))
            if not math.isfinite(float(r.value)):
                return math.inf, torch.zeros_like(th)
            state["yp"] = r.prox
            state["inner_ok"], state["last"] = r.converged, r
            return float(r.value), r.grad
    else:
        if eps is None:
            raise InputError("eps: the sharpened iJKO loss (lam > 0) needs eps > 0")
        eps = check_positive(eps, "eps")
        b = b * (a.sum() / b.sum())
        Cxy = _jko_cost(x, y, tau)
        Fy = basis.features(y).detach()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            const, g_c = _jko_balanced_const(Cxy, a, b, eps, inner_max_iter, inner_tol)

        def fun(th):
            r = _jko_sharp_loss(th, Fy, Cxy, a, b, eps, lam, const, inner_max_iter, inner_tol,
                                state["g"])
            state["inner_ok"], state["last"] = r.converged, r
            state["g"] = r.potential_g
            return float(r.value), r.grad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theta_hat, ok, it, errors, trace = minimize_convex(
            fun, theta.detach(), reg=reg, reg_weight=reg_weight, max_iter=max_iter, tol=tol)
        fun(theta_hat)
    final = state["last"]
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
