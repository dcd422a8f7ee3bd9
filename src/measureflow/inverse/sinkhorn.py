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

Written by hand: it is the paper's specialised algorithm, with a translation-invariant step
that keeps it fast when ``lam`` is large. The same problem is solved by the library's general
solver as ``measureflow.ot.solve(a, b, C, eps=eps, rho=(math.inf, lam))``; a test checks that
both agree (plans to 1e-9).
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
from ..core.threads import serial_if_small

__all__ = ["semi_unbalanced_sinkhorn", "SemiUnbalancedResult"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SemiUnbalancedResult(SolverResult):
    """Result of :func:`semi_unbalanced_sinkhorn`.

    ``value`` is the primal objective evaluated at ``plan`` (after the last f-update, so the first
    marginal is exact to round-off); ``dual_value`` the dual objective at (f, g); their difference
    is the duality gap. ``errors`` traces the stopping error
    ||P^T 1 - b exp(-g / lam)||_1 (``lam = inf``: ||P^T 1 - b||_1), the violation of the only
    optimality condition not enforced by the last update.
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


def _translate(g, logb, mass_a, lam):
    """Exact dual ascent along (f, g) -> (f - c, g + c) (translation-invariant Sinkhorn,
    Sejourne et al. 2022): the plan is unchanged and the dual term -c |a| - lam <b, e^{-(g+c)/lam}>
    is maximised at c = lam log(<b, e^{-g/lam}> / |a|). Removes the slow mode of large lam."""
    if math.isinf(lam):
        return g
    c = lam * (torch.logsumexp(logb - g / lam, dim=0) - math.log(mass_a))
    return g + c


def _suot_core(a, b, C, eps, lam, max_iter, tol, g0=None):
    """Unvalidated core (tensors in, tensors out); see :func:`_suot_core_loop`."""
    if C.device.type != "cpu":
        return _suot_core_loop(a, b, C, eps, lam, max_iter, tol, g0)
    with serial_if_small(C.numel()):
        return _suot_core_loop(a, b, C, eps, lam, max_iter, tol, g0)


def _suot_core_loop(a, b, C, eps, lam, max_iter, tol, g0=None):
    """Unvalidated core (tensors in, tensors out). Returns (f, g, plan, n_iter, errors, ok).

    Cold starts (``g0=None``) with eps < cost range / 20 first run an eps-scaling warm-up:
    stages eps_k = range / 2^k (30 iterations each, counted in n_iter) down to eps.
    """
    loga = torch.log(a)
    logb = torch.log(b)
    mass_a = float(a.sum())
    g = torch.zeros_like(b) if g0 is None else g0.clone()
    errors: list[float] = []
    ok = False
    it = 0
    used = 0
    if g0 is None:
        scale = float(C.max() - C.min())
        e = scale / 2.0
        while e > 2 * eps and used + 30 < max_iter:
            ka = 1.0 if math.isinf(lam) else lam / (lam + e)
            for _ in range(30):
                f = -e * torch.logsumexp(logb[None, :] + (g[None, :] - C) / e, dim=1)
                g = -ka * e * torch.logsumexp(loga[:, None] + (f[:, None] - C) / e, dim=0)
                g = _translate(g, logb, mass_a, lam)
            used += 30
            e /= 2.0
    kappa = 1.0 if math.isinf(lam) else lam / (lam + eps)
    f = torch.zeros_like(a)
    check_every = 10
    for it in range(used + 1, max_iter + 1):
        f = -eps * torch.logsumexp(logb[None, :] + (g[None, :] - C) / eps, dim=1)
        g = -kappa * eps * torch.logsumexp(loga[:, None] + (f[:, None] - C) / eps, dim=0)
        g = _translate(g, logb, mass_a, lam)
        if it % check_every == 0 or it == max_iter:
            f = -eps * torch.logsumexp(logb[None, :] + (g[None, :] - C) / eps, dim=1)
            logP = loga[:, None] + logb[None, :] + (f[:, None] + g[None, :] - C) / eps
            col = torch.exp(torch.logsumexp(logP, dim=0))
            target = b if math.isinf(lam) else b * torch.exp(-g / lam)
            err = float((col - target).abs().sum())
            errors.append(err)
            if not math.isfinite(err):
                break
            if err <= tol * float(a.sum()):
                ok = True
                break
    f = -eps * torch.logsumexp(logb[None, :] + (g[None, :] - C) / eps, dim=1)
    plan = torch.exp(loga[:, None] + logb[None, :] + (f[:, None] + g[None, :] - C) / eps)
    return f, g, plan, it, errors, ok


def _suot_values(a, b, C, eps, lam, f, g, plan):
    """(primal, dual) objective values of the semi-unbalanced problem."""
    ab = a[:, None] * b[None, :]
    primal = (C * plan).sum() + eps * _kl(plan, ab)
    if not math.isinf(lam):
        primal = primal + lam * _kl(plan.sum(0), b)
        dual_g = -lam * (b * torch.expm1(-g / lam)).sum()
    else:
        dual_g = (b * g).sum()
    dual = (a * f).sum() + dual_g - eps * (plan.sum() - ab.sum())
    return primal, dual


def semi_unbalanced_sinkhorn(a, b, C, *, eps: float, lam: float = math.inf,
                             max_iter: int = 10000, tol: float = 1e-9, init=None,
                             warn: bool = True) -> SemiUnbalancedResult:
    """Solve the semi-unbalanced entropic OT problem above (hard first, KL second marginal).

    Parameters
    ----------
    a, b:
        Weights (n,), (m,) (``None``: uniform). Must be positive (log-domain references).
    C:
        Cost matrix (n, m).
    eps:
        Entropic weight > 0 (reference measure a (x) b).
    lam:
        Weight of KL(P^T 1 | b) (> 0, ``math.inf`` for the balanced problem).
    max_iter, tol:
        Stop when ||P^T 1 - b exp(-g/lam)||_1 <= tol * sum(a) (checked every 10 iterations).
    init:
        Optional initial second potential g (m,) (warm start).
    warn:
        Emit :class:`~measureflow.ConvergenceWarning` on non-convergence (default True).

    Returns
    -------
    SemiUnbalancedResult with ``value`` (primal objective at the plan), ``dual_value``, ``plan``,
    ``potential_f``, ``potential_g`` and the convergence fields.
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
                           tol)
    return ctx.wrap(SemiUnbalancedResult(value=primal, dual_value=dual, plan=plan, potential_f=f,
                                         potential_g=g, eps=eps, lam=lam, converged=ok,
                                         n_iter=it, errors=errors))
