"""Semi-unbalanced log-domain Sinkhorn: the inner solver of the sharpened iJKO loss.

Problem (arXiv 2505.07124, v3 Sec. 3, "the sharpened iJKO objective reduces to an unbalanced
transport problem"; reconstruction documented in ``docs/inverse.md``)::

    SUOT(C) = min_{P >= 0, P 1 = a}  <C, P> + eps KL(P | a (x) b) + lam KL(P^T 1 | b)

with the generalised KL(p | q) = sum p log(p / q) - p + q. The first marginal is hard, the second
is penalised (``lam = inf`` gives the balanced entropic problem). Dual::

    max_{f, g}  <a, f> - lam <b, exp(-g / lam) - 1> - eps <a (x) b, exp((f + g - C) / eps) - 1>

and the plan is P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps). Updates (log domain)::

    f_i <- -eps log sum_j b_j exp((g_j - C_ij) / eps)                       (hard marginal)
    g_j <- -(lam / (lam + eps)) eps log sum_i a_i exp((f_i - C_ij) / eps)   (KL marginal)

Solved on the transport engine (:func:`measureflow.ot.loop.sinkhorn_loop`: a :class:`Hard`
row block and a :class:`KL` column block on a :class:`Dense` geometry, with the
translation-invariant step of Sejourne, Vialard & Peyre (2022) that keeps it fast when ``lam``
is large). The same problem is ``measureflow.ot.solve(a, b, C, eps=eps, rho=(math.inf, lam))``;
tests check that both agree, and that the engine reproduces the former hand-written loop.
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
    check_int,
    check_ndim,
    check_positive,
    check_weights,
    report_convergence,
)
from ..ot.geometry import Dense, potential_dtype
from ..ot.loop import KL, Direct, Hard, Scaling, sinkhorn_loop

__all__ = ["semi_unbalanced_sinkhorn", "SemiUnbalancedResult"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SemiUnbalancedResult(SolverResult):
    """Result of :func:`semi_unbalanced_sinkhorn`.

    ``value`` is the primal objective evaluated at ``plan`` (after a final exact update of f, so
    the first marginal is exact to round-off); ``dual_value`` the dual objective at (f, g); their difference
    is the duality gap. ``errors`` traces the stopping error of the engine,
    ||P 1 - a||_1 + ||P^T 1 - b exp(-g / lam)||_1 (``lam = inf``: b), once per iteration; its
    last entry is re-measured at the returned pair (first term 0 after the final f-update).
    """

    value: Any = None
    dual_value: Any = None
    plan: Any = None
    potential_f: Any = None
    potential_g: Any = None
    eps: float = 0.0
    lam: float = math.inf


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Generalised KL(p | q) = sum p log(p/q) - p + q with 0 log 0 = 0 (q > 0 where p > 0)."""
    ratio = torch.where(p > 0, p / torch.where(q > 0, q, torch.ones_like(q)), torch.ones_like(p))
    return (torch.xlogy(p, ratio) - p + q).sum()


def _suot_core(a, b, C, eps, lam, max_iter, tol, g0=None):
    """Tensor-only core on the engine: ``(f, g, plan, n_iter, errors, ok)``.

    The problem is :func:`measureflow.ot.loop.sinkhorn_loop` on a :class:`Dense` geometry with
    a :class:`Hard` row block (P 1 = a) and a :class:`KL` column block (lam KL(P^T 1 | b);
    :class:`Hard` for ``lam = inf``), with the translation-invariant step for finite ``lam``.
    ``tol`` is relative to the mass of a. The returned f is one exact row update after the
    loop's last measured pair (as in the former loop: P 1 = a to round-off), and the last entry
    of ``errors`` the column violation ||P^T 1 - b exp(-g / lam)||_1 of the returned pair
    (``ok`` requires it below the tolerance too). Cold starts (``g0=None``) with eps below a quarter of
    the cost range use eps-scaling (factor 1/2 from the cost range, at most 30 iterations per
    intermediate eps); a warm start ``g0`` starts from f = the row update of (0, g0).
    Potentials and plan are detached, in C's dtype (computed in the engine's potential dtype).
    """
    geom = Dense(C, _validated=True)
    pd = geom.pdtype
    row = Hard(a.detach().to(pd))
    col = Hard(b.detach().to(pd)) if math.isinf(lam) else KL(b.detach().to(pd), lam)
    if g0 is None:
        lo, hi = geom.cost_range()
        schedule = Scaling(0.5, stage_iter=30) if eps < (hi - lo) / 4.0 else Direct()
        init = None
    else:
        schedule = Direct()
        g = g0.detach().to(pd)
        zero = torch.zeros(row.w.shape, dtype=pd, device=geom.device)
        init = (row.update(zero, geom.lse(zero, g / eps + col.logw, eps, axis=1), eps), g)
    out = sinkhorn_loop(geom, row, col, eps, tol=tol * row.mass, max_iter=max_iter,
                        schedule=schedule, init=init, recenter=not math.isinf(lam),
                        description="semi_unbalanced_sinkhorn")
    errors = list(out.errors)
    with torch.no_grad():
        # the final exact row projection (P 1 = a to round-off): the primal is then evaluated
        # at a feasible plan (error second order in the dual error); the last stopping error
        # is re-measured at the returned pair
        f = row.update(out.f, out.logr, eps)
        logc = geom.lse(f / eps + row.logw, out.g / eps, eps, axis=0)
        errors[-1] = float(col.violation(out.g, logc))
        plan = geom.block(f / eps + row.logw, out.g / eps + col.logw, eps)
    ok = bool(out.converged) and errors[-1] <= tol * row.mass
    dt = C.dtype
    return f.to(dt), out.g.to(dt), plan.to(dt), out.n_iter, errors, ok


def _suot_values(a, b, C, eps, lam, f, g, plan):
    """(primal, dual) objective values of the semi-unbalanced problem.

    The primal is evaluated at ``plan`` (detached); the returned primal carries the gradient
    of the dual in (a, b, C) at the fixed potentials (envelope theorem: d/dC = plan), the
    value being the primal's.
    """
    pd = potential_dtype(C.dtype, C.device)
    ap, bp, Cp = a.to(pd), b.to(pd), C.detach().to(pd)
    fp, gp, P = f.detach().to(pd), g.detach().to(pd), plan.detach().to(pd)
    with torch.no_grad():
        ab = ap[:, None] * bp[None, :]
        primal = (Cp * P).sum() + eps * _kl(P, ab)
        if not math.isinf(lam):
            primal = primal + lam * _kl(P.sum(0), bp)
    dual_g = (bp * gp).sum() if math.isinf(lam) else -lam * (bp * torch.expm1(-gp / lam)).sum()
    mass = Dense(C, _validated=True).mass(ap, bp, fp, gp, eps)
    dual = (ap * fp).sum() + dual_g - eps * (mass - ap.sum() * bp.sum())
    primal = primal + (dual - dual.detach())
    return primal.to(C.dtype), dual.to(C.dtype)


def semi_unbalanced_sinkhorn(a, b, C, *, eps: float, lam: float = math.inf,
                             max_iter: int = 10000, tol: float = 1e-9, init=None,
                             warn: bool = True) -> SemiUnbalancedResult:
    r"""Semi-unbalanced entropic OT: hard first marginal, KL-penalised second marginal.

    Solves (arXiv 2505.07124, v3 Sec. 3; cost used as given, no 1/2)::

        min_{P >= 0, P 1 = a}  <C, P> + eps KL(P | a (x) b) + lam KL(P^T 1 | b)

    with KL(p | q) = sum p log(p / q) - p + q, by the engine's log-domain Sinkhorn loop
    (:func:`measureflow.ot.loop.sinkhorn_loop`; translation-invariant step for finite ``lam``,
    eps-scaling from the cost range on cold starts). The plan is
    P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).

    Parameters
    ----------
    a, b : array or tensor or None
        Weights (n,), (m,) (``None``: uniform). Must be positive (log-domain references).
    C : array or tensor
        Cost matrix (n, m).
    eps : float
        Entropic weight > 0 (reference measure a (x) b), in cost units.
    lam : float, default inf
        Weight of KL(P^T 1 | b) (> 0; ``math.inf`` for the balanced problem).
    max_iter : int, default 10000
        Bound on the total number of Sinkhorn iterations (all eps stages).
    tol : float, default 1e-9
        Stop when the L1 violation of the optimality conditions,
        ||P 1 - a||_1 + ||P^T 1 - b exp(-g / lam)||_1, is at most ``tol * sum(a)`` (checked
        every iteration, and again at the returned pair after a final exact f-update; raised to 100 x machine epsilon of the data dtype, so float32
        converges with the default).
    init : array or tensor, optional
        Initial second potential g (m,) (warm start; f starts from its exact update).
    warn : bool, default True
        Emit :class:`~measureflow.ConvergenceWarning` on non-convergence.

    Returns
    -------
    SemiUnbalancedResult
        ``value`` (primal objective at ``plan``; differentiable in a, b, C by the envelope
        theorem on the dual, d value / d C = plan), ``dual_value``, ``plan``,
        ``potential_f``, ``potential_g`` (detached) and ``converged``, ``n_iter``, ``errors``
        (the stopping error above, mass units). NumPy in, NumPy out.

    Examples
    --------
    >>> import numpy as np, math
    >>> from measureflow.inverse import semi_unbalanced_sinkhorn
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> r = semi_unbalanced_sinkhorn([0.5, 0.5], [0.5, 0.5], C, eps=0.1, lam=1.0)
    >>> r.converged, np.allclose(r.plan.sum(1), 0.5)
    (True, True)

    References
    ----------
    Chizat, Peyre, Schmitzer & Vialard (2018), "Scaling algorithms for unbalanced optimal
    transport problems", Math. Comp. Sejourne, Vialard & Peyre (2022), "Faster unbalanced
    optimal transport: translation invariant Sinkhorn and 1-D Frank-Wolfe", AISTATS.
    arXiv 2505.07124 (sharpened iJKO, Sec. 3).
    """
    from .fenchel_young import check_compute_dtype
    ctx = ArrayContext(a, b, C)
    check_compute_dtype(ctx, "C")
    C = ctx.tensor(C, "C")
    check_ndim(C, "C", 2)
    n, m = C.shape
    a = check_weights(None if a is None else ctx.tensor(a, "a"), n, "a", like=C)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), m, "b", like=C)
    if bool((a <= 0).any()) or bool((b <= 0).any()):
        raise InputError("a, b: weights must be positive (log-domain reference measure)")
    eps = check_positive(eps, "eps")
    lam = check_positive(lam, "lam", allow_inf=True)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    g0 = None if init is None else ctx.tensor(init, "init")
    if g0 is not None and tuple(g0.shape) != (m,):
        raise InputError(f"init: expected shape ({m},), got {tuple(g0.shape)}")
    if not isinstance(warn, bool):
        raise InputError(f"warn: expected True or False, got {warn!r}")
    tol = max(tol, 100 * torch.finfo(C.dtype).eps)  # float32: a float64 tol is never met
    f, g, plan, it, errors, ok = _suot_core(a, b, C, eps, lam, max_iter, tol, g0)
    primal, dual = _suot_values(a, b, C, eps, lam, f, g, plan)
    if warn:
        report_convergence(ok, "semi_unbalanced_sinkhorn", it, errors[-1] if errors else math.nan,
                           tol * float(a.detach().sum()))
    return ctx.wrap(SemiUnbalancedResult(value=primal, dual_value=dual, plan=plan, potential_f=f,
                                         potential_g=g, eps=eps, lam=lam, converged=ok,
                                         n_iter=it, errors=errors))
