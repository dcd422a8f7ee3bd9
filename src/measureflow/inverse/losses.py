"""Fenchel-Young (suboptimality-gap) losses and their sharpened versions (arXiv 2505.07124, Sec. 3).

Generic form [R]: a parameter theta enters a convex forward problem linearly,

    P(theta) = min_pi G_theta(pi),   G_theta(pi) = <Phi theta, pi> + F(pi),

and given observed data pi_hat the FY / gap loss and its sharpened version are

    L(theta)     = G_theta(pi_hat) - min_pi G_theta(pi)                         >= 0
    L_lam(theta) = G_theta(pi_hat) - min_pi [G_theta(pi) + lam D(pi, pi_hat)]    in [0, L]

with D >= 0, D(pi_hat, pi_hat) = 0 (calibration: a minimiser of G_theta minimises the sharpened
problem too). Both are convex in theta (affine minus concave), and by Danskin's theorem their
gradient is the observed minus the model feature moments: <phi_r, pi_hat> - <phi_r, pi_theta>.

Two instances (``kind``):

``"uot"`` (iUOT): F(pi) = eps KL(pi | a (x) b) + rho KL(pi 1 | a) + rho KL(pi^T 1 | b) on an
(n, m) grid, cost C_theta = sum_r theta_r C^(r); ``rho=None`` means hard marginals (balanced).
Sharpening: D(pi, pi_hat) = KL(pi 1 | pi_hat 1) + KL(pi^T 1 | pi_hat^T 1) (the observed marginals).
The sharpened inner problem is again an unbalanced problem, with marginal weight rho + lam and
reference marginals the geometric means a^(rho/(rho+lam)) (pi_hat 1)^(lam/(rho+lam)); it is solved by
:func:`measureflow.ot.solve` after the exact change of reference measure (docs/inverse.md). As
lam -> inf it becomes the balanced problem with the observed marginals.

``"jko"`` (iJKO): one JKO step rho_{k+1} = argmin_rho W2^2(rho_k, rho) / (2 tau) + int V_theta drho,
data = independent samples x_i ~ rho_k (weights a), y_j ~ rho_{k+1} (weights b).
- plain loss (eps = 0, continuous y): L(theta) = W2^2(a, b) / (2 tau) + sum_j b_j V_theta(y_j)
  - sum_i a_i env_{tau V_theta}(x_i), env the Moreau envelope; gradient
  sum_j b_j phi(y_j) - sum_i a_i phi(prox_{tau V_theta}(x_i)).
- sharpened loss (D = KL(rho | rho_hat_{k+1}), entropic smoothing eps > 0 on the sample grid):
  L_lam(theta) = SUOT_inf(C_theta) - SUOT_lam(C_theta), C_theta,ij = |x_i - y_j|^2 / (2 tau) + V_theta(y_j),
  SUOT_lam(C) = min_{P 1 = a} <C, P> + eps KL(P | a (x) b) + lam KL(P^T 1 | b)
  (:func:`measureflow.inverse.semi_unbalanced_sinkhorn`); gradient sum_j (b_j - (P^T 1)_j) phi(y_j).
  As lam -> inf, 2 lam L_lam -> Var_b(g_c + V_theta) (the quadratic "iJKO*" surrogate).

Values are exact up to the inner solver tolerance: the inner minimum is the primal objective
evaluated at the computed plan.
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
    check_ndim,
    check_nonnegative_scalar,
    check_positive,
    check_same_dim,
    check_weights,
    report_convergence,
)
from ..core.linalg import sqdist
from .bases import PotentialBasis
from .sinkhorn import _kl, _suot_core, _suot_values

__all__ = ["FYLoss", "fy_loss", "sharpened_fy_loss"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FYLoss(SolverResult):
    """Value and gradient of a (sharpened) Fenchel-Young loss at theta.

    Attributes
    ----------
    value:
        The loss (>= 0 up to the inner tolerance). For tensor input it carries autograd: its
        gradient with respect to theta is ``grad`` (Danskin).
    grad:
        Observed minus model feature moments, same shape as theta.
    observed_moments, model_moments:
        <phi_r, pi_hat> and <phi_r, pi_theta> (shape of theta).
    plan:
        The model optimum on the grid (``"uot"``, sharpened ``"jko"``), or ``None`` (plain jko).
    prox:
        ``"jko"`` plain loss: the points prox_{tau V_theta}(x_i) (n, d); else ``None``.
    converged, n_iter, errors:
        Of the inner solver (``errors``: its stopping-error trace).
    """

    value: Any = None
    grad: Any = None
    observed_moments: Any = None
    model_moments: Any = None
    plan: Any = None
    prox: Any = None
    potential_f: Any = None
    potential_g: Any = None
    kind: str = ""
    lam: float = 0.0


# ----------------------------------------------------------------------------- UOT instance

def _ot_solve():
    from ..ot import solve
    return solve


def _uot_objective(C, plan, a, b, eps, rho):
    val = (C * plan).sum() + eps * _kl(plan, a[:, None] * b[None, :])
    if rho is not None:
        val = val + rho * (_kl(plan.sum(1), a) + _kl(plan.sum(0), b))
    return val


def _uot_inner(C, a, b, plan_hat, eps, rho, lam, max_iter, tol, init=None):
    """argmin_pi G_theta(pi) + lam D(pi, pi_hat); returns (plan, res)."""
    solve = _ot_solve()
    kw = {"eps_scaling": None} if init is not None else {}
    if max_iter is not None:
        kw["max_iter"] = max_iter
    if tol is not None:
        kw["tol"] = tol
    Cd = C.detach()
    if lam == 0.0 or rho is None:
        res = solve(a, b, Cd, eps=eps, rho=rho, init=init, **kw)
        return res.plan, res
    rho2 = rho + lam
    ah, bh = plan_hat.sum(1), plan_hat.sum(0)
    la = torch.where(ah > 0, (rho * torch.log(a) + lam * torch.log(ah.clamp_min(1e-300))) / rho2,
                     torch.full_like(a, -math.inf))
    lb = torch.where(bh > 0, (rho * torch.log(b) + lam * torch.log(bh.clamp_min(1e-300))) / rho2,
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
    return plan, res


def _uot_loss(theta, feats, plan_hat, a, b, eps, rho, lam, max_iter=None, tol=None, init=None):
    k = theta.ndim
    C = torch.tensordot(theta, feats, dims=k)
    plan, res = _uot_inner(C, a, b, plan_hat, eps, rho, lam, max_iter, tol, init)
    plan = plan.detach()
    obs = torch.tensordot(feats, plan_hat, dims=([k, k + 1], [0, 1]))
    mod = torch.tensordot(feats, plan, dims=([k, k + 1], [0, 1]))
    with torch.no_grad():
        Cd = C.detach()
        g_hat = _uot_objective(Cd, plan_hat, a, b, eps, rho)
        inner = _uot_objective(Cd, plan, a, b, eps, rho)
        if lam > 0 and rho is not None:
            inner = inner + lam * (_kl(plan.sum(1), plan_hat.sum(1)) + _kl(plan.sum(0), plan_hat.sum(0)))
        val = g_hat - inner
    lin = (C * (plan_hat - plan)).sum()
    value = lin + (val - lin.detach())
    return FYLoss(value=value, grad=(obs - mod).detach(), observed_moments=obs.detach(),
                  model_moments=mod.detach(), plan=plan, potential_f=res.potential_f,
                  potential_g=res.potential_g, kind="uot", lam=lam,
                  converged=bool(res.converged), n_iter=int(res.n_iter), errors=list(res.errors))


# ----------------------------------------------------------------------------- JKO instance

def _w2sq(x, y, a, b):
    """Exact W2^2 between the weighted clouds (measureflow.ot.solve, POT network simplex)."""
    from ..ot import solve
    with torch.no_grad():
        bb = b * (a.sum() / b.sum())
        return solve(a, bb, sqdist(x, y), eps=None).value


def _jko_plain_loss(theta, basis, x, y, a, b, tau, const=None, prox_iter=100, prox_tol=1e-12,
                    y0=None):
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
        env = ((yp - x) ** 2).sum(1) / (2 * tau) + Fp @ theta.detach()
        val = const + obs @ theta.detach() - a @ env
    lin = (obs - mod) @ theta
    value = lin + (val - lin.detach())
    return FYLoss(value=value, grad=(obs - mod), observed_moments=obs, model_moments=mod,
                  prox=yp, kind="jko", lam=0.0, converged=ok, n_iter=1, errors=[])


def _jko_cost(x, y, tau):
    return sqdist(x, y) / (2 * tau)


def _jko_sharp_loss(theta, Fy, Cxy, a, b, eps, lam, const, max_iter, tol, g0=None):
    """const = SUOT_inf(Cxy) (theta-free part of G_theta(pi_hat))."""
    V = Fy @ theta
    C = Cxy + V.detach()[None, :]
    f, g, plan, it, errors, ok = _suot_core(a, b, C, eps, lam, max_iter, tol, g0)
    primal, _ = _suot_values(a, b, C, eps, lam, f, g, plan)
    col = plan.sum(0)
    obs = b @ Fy
    mod = col @ Fy
    with torch.no_grad():
        val = const + b @ V.detach() - primal
    lin = (obs - mod) @ theta
    value = lin + (val - lin.detach())
    return FYLoss(value=value, grad=(obs - mod), observed_moments=obs, model_moments=mod,
                  plan=plan, potential_f=f, potential_g=g, kind="jko", lam=lam, converged=ok,
                  n_iter=it, errors=errors)


def _jko_balanced_const(Cxy, a, b, eps, max_iter, tol):
    f, g, plan, it, errors, ok = _suot_core(a, b, Cxy, eps, math.inf, max_iter, tol)
    report_convergence(ok, "sharpened iJKO reference (balanced Sinkhorn)", it,
                       errors[-1] if errors else math.nan, tol, stacklevel=4)
    primal, _ = _suot_values(a, b, Cxy, eps, math.inf, f, g, plan)
    return primal, g


# ----------------------------------------------------------------------------- validation

def _as_potential_basis(basis, d) -> PotentialBasis:
    if isinstance(basis, PotentialBasis):
        if basis.dim != d:
            raise InputError(f"potential_basis: built for dimension {basis.dim}, data have {d}")
        return basis
    if callable(basis):
        probe = basis(torch.zeros(1, d, dtype=torch.float64))
        if not isinstance(probe, torch.Tensor) or probe.ndim != 2:
            raise InputError("potential_basis: a callable must map (m, d) tensors to (m, R)")
        return PotentialBasis(basis, d, probe.shape[1])
    raise InputError("potential_basis: expected a PotentialBasis or a callable (m, d) -> (m, R)")


def _prepare_uot(ctx, theta, basis, observed, a, b, eps, rho, plan_name="observed",
                 basis_name="basis"):
    plan_hat = ctx.tensor(observed, plan_name)
    check_ndim(plan_hat, plan_name, 2)
    if bool((plan_hat < 0).any()):
        raise InputError(f"{plan_name}: the observed plan has negative entries")
    n, m = plan_hat.shape
    feats = ctx.tensor(basis, basis_name)
    if feats.ndim < 3 or tuple(feats.shape[-2:]) != (n, m):
        raise InputError(f"{basis_name}: expected cost features of shape (*theta.shape, {n}, {m}), got "
                         f"{tuple(feats.shape)}")
    shape = tuple(feats.shape[:-2])
    if tuple(theta.shape) != shape:
        raise InputError(f"theta: expected shape {shape} (the leading dims of basis), got "
                         f"{tuple(theta.shape)}")
    a = check_weights(None if a is None else ctx.tensor(a, "a"), n, "a", like=plan_hat)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), m, "b", like=plan_hat)
    if bool((a <= 0).any()) or bool((b <= 0).any()):
        raise InputError("a, b: reference weights must be positive")
    if eps is None:
        raise InputError("eps: the iUOT loss needs an entropic weight eps > 0")
    eps = check_positive(eps, "eps")
    if rho is not None:
        rho = check_positive(rho, "rho")
    else:
        for name, got, want in ((plan_name, plan_hat.sum(1), a), (plan_name, plan_hat.sum(0), b)):
            if float((got - want).abs().sum()) > 1e-8 * float(want.sum()):
                raise InputError(f"{name}: with rho=None (balanced) the observed plan must have "
                                 "marginals a and b")
    return feats, plan_hat, a, b, eps, rho


def _prepare_jko(ctx, theta, basis, observed, a, b, tau):
    if not isinstance(observed, (tuple, list)) or len(observed) != 2:
        raise InputError("observed: for kind='jko' pass the two snapshots (x_k, x_next)")
    x = ctx.tensor(observed[0], "x_k")
    y = ctx.tensor(observed[1], "x_next")
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    check_ndim(x, "x_k", 2)
    check_ndim(y, "x_next", 2)
    check_same_dim(x, y, ("x_k", "x_next"))
    basis = _as_potential_basis(basis, x.shape[1])
    if tuple(theta.shape) != (basis.size,):
        raise InputError(f"theta: expected shape ({basis.size},), got {tuple(theta.shape)}")
    a = check_weights(None if a is None else ctx.tensor(a, "a"), x.shape[0], "a", like=x)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), y.shape[0], "b", like=x)
    if bool((a <= 0).any()) or bool((b <= 0).any()):
        raise InputError("a, b: weights must be positive")
    if tau is None:
        raise InputError("tau: the iJKO loss needs the time step tau > 0")
    tau = check_positive(tau, "tau")
    return basis, x, y, a, b, tau


def _loss(theta, basis, observed, kind, lam, a, b, eps, rho, tau, max_iter, tol):
    kind = check_choice(kind, "kind", ("uot", "jko"))
    ctx = ArrayContext(theta, a, b, *(observed if isinstance(observed, (tuple, list)) else
                                      (observed,)),
                       basis if isinstance(basis, torch.Tensor) else None)
    theta = ctx.tensor(theta, "theta")
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter", min_value=1)
    if tol is not None:
        tol = check_positive(tol, "tol")
    if kind == "uot":
        feats, plan_hat, a, b, eps, rho = _prepare_uot(ctx, theta, basis, observed, a, b, eps, rho)
        # measureflow.ot.solve emits the ConvergenceWarning of the inner solve itself
        res = _uot_loss(theta, feats, plan_hat, a, b, eps, rho, lam, max_iter, tol)
        return ctx.wrap(res)
    if rho is not None:
        raise InputError("rho: not used by kind='jko' (the sharpening weight is lam)")
    basis, x, y, a, b, tau = _prepare_jko(ctx, theta, basis, observed, a, b, tau)
    if lam == 0.0:
        if eps is not None:
            raise InputError("eps: the plain iJKO loss is unregularised (eps is for lam > 0)")
        res = _jko_plain_loss(theta, basis, x, y, a, b, tau, prox_iter=max_iter or 100,
                              prox_tol=tol or 1e-12)
        report_convergence(res.converged, "fy_loss (prox Newton)", max_iter or 100, math.nan,
                           tol or 1e-12, stacklevel=4)
        return ctx.wrap(res)
    if eps is None:
        raise InputError("eps: the sharpened iJKO loss needs an entropic smoothing eps > 0")
    eps = check_positive(eps, "eps")
    if math.isinf(lam):
        raise InputError("lam: must be finite for kind='jko' (lam = inf makes the loss 0)")
    mi, tl = max_iter or 20000, tol or 1e-9
    b = b * (a.sum() / b.sum())
    Cxy = _jko_cost(x, y, tau)
    const, _ = _jko_balanced_const(Cxy, a, b, eps, mi, tl)
    res = _jko_sharp_loss(theta, basis.features(y), Cxy, a, b, eps, lam, const, mi, tl)
    report_convergence(res.converged, "sharpened_fy_loss (semi-unbalanced Sinkhorn)", res.n_iter,
                       res.errors[-1] if res.errors else math.nan, tl, stacklevel=4)
    return ctx.wrap(res)


def fy_loss(theta, basis, observed, *, kind: str = "uot", a=None, b=None, eps=None, rho=None,
            tau=None, max_iter: int | None = None, tol: float | None = None) -> FYLoss:
    """Fenchel-Young / suboptimality-gap loss L(theta) = G_theta(pi_hat) - min_pi G_theta(pi).

    Parameters
    ----------
    theta:
        Parameter. ``kind="uot"``: any shape S (e.g. a matrix A for bilinear costs);
        ``kind="jko"``: shape (R,).
    basis:
        ``"uot"``: cost features of shape (*S, n, m) (e.g. :func:`bilinear_cost_basis`), so that
        C_theta = sum_r theta_r C^(r). ``"jko"``: a :class:`PotentialBasis` or a torch callable
        y (m, d) -> (m, R).
    observed:
        ``"uot"``: the observed plan pi_hat (n, m) (e.g. eye(n) / n for n observed pairs on the
        grid x_i, y_j). ``"jko"``: the snapshots ``(x_k, x_next)`` of shapes (n, d), (m, d).
    a, b:
        Reference weights (``None``: uniform 1/n, 1/m). ``"uot"``: the marginal references of the
        forward problem; ``"jko"``: the sample weights of the two snapshots.
    eps, rho:
        ``"uot"``: entropic weight (required) and marginal KL weight (``None``: balanced).
    tau:
        ``"jko"``: the JKO time step (required). The plain jko loss is unregularised (eps=None).
    max_iter, tol:
        Inner solver controls (``None``: the inner solver's defaults).

    Returns
    -------
    :class:`FYLoss`: value (>= 0), grad = observed - model moments, the model plan (``"uot"``)
    or the prox points (``"jko"``). For ``"jko"``, if y -> |x-y|^2/(2 tau) + V_theta(y) has no
    minimiser the Newton prox reports it and the value is +inf (theta is outside the loss's
    domain; grad is NaN, converged=False, a ConvergenceWarning is emitted).
    Convention: cost |x-y|^2/(2 tau) in the JKO step (the usual JKO
    scaling), KL generalised (with mass terms). Reconstruction of arXiv 2505.07124, Sec. 3 [R].
    """
    return _loss(theta, basis, observed, kind, 0.0, a, b, eps, rho, tau, max_iter, tol)


def sharpened_fy_loss(theta, basis, observed, *, lam: float, kind: str = "uot", a=None, b=None,
                      eps=None, rho=None, tau=None, max_iter: int | None = None,
                      tol: float | None = None) -> FYLoss:
    """Sharpened FY loss L_lam(theta) = G_theta(pi_hat) - min_pi [G_theta(pi) + lam D(pi, pi_hat)].

    Same arguments as :func:`fy_loss`, plus ``lam`` >= 0 (``lam=0`` gives :func:`fy_loss` for
    ``"uot"``). The discrepancies D (see the module docstring):

    - ``"uot"``: D = KL(pi 1 | pi_hat 1) + KL(pi^T 1 | pi_hat^T 1) (observed marginals), solved by
      :func:`measureflow.ot.solve` with marginal weight rho + lam after an exact change of
      reference. With ``rho=None`` (balanced) D is constant and L_lam = L.
    - ``"jko"``: D = KL(rho | rho_hat_{k+1}) on the sample grid, with entropic smoothing ``eps``
      (required) and reference a (x) b: the inner problem is the semi-unbalanced OT solved by
      :func:`semi_unbalanced_sinkhorn`; the first term G_theta(pi_hat) is the balanced entropic
      cost OT_eps(a, b; |x-y|^2 / (2 tau)) + <V_theta, b>. ``lam`` must be finite (lam -> inf
      sends L_lam to 0 like Var_b(g + V_theta) / (2 lam)).

    Properties checked in the tests: 0 <= L_lam, L_lam <= L (``"uot"``), the same minimiser
    (calibration), gradient = autograd/finite differences. [R] reconstruction of arXiv 2505.07124.
    """
    lam = check_nonnegative_scalar(lam, "lam")
    return _loss(theta, basis, observed, kind, lam, a, b, eps, rho, tau, max_iter, tol)

