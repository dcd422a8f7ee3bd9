"""``ot.solve``: one entry point for discrete OT (exact LP, entropic, unbalanced)."""

from __future__ import annotations

import math

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.validation import (
    check_in_range,
    check_int,
    check_masses_match,
    check_ndim,
    check_positive,
    check_shape,
    check_weights,
)
from .exact import exact_ot
from .result import OTResult
from .sinkhorn import sinkhorn_ot

__all__ = ["solve"]


def _validate(ctx: ArrayContext, a, b, C):
    C = ctx.tensor(C, "C")
    check_ndim(C, "C", 2)
    n, m = C.shape
    if n == 0 or m == 0:
        raise InputError(f"C: empty cost matrix of shape {(n, m)}")
    a = check_weights(None if a is None else ctx.tensor(a, "a"), n, "a", like=C)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), m, "b", like=C)
    return a, b, C


def _check_rho(rho):
    """None | rho > 0 | (rho_a, rho_b) with entries > 0, inf or None (inf / None = hard)."""
    if rho is None:
        return None
    if isinstance(rho, (tuple, list)):
        if len(rho) != 2:
            raise InputError(f"rho: expected a number or a pair (rho_a, rho_b), got {rho!r}")
        pair = tuple(None if r is None else check_positive(r, "rho", allow_inf=True) for r in rho)
        pair = tuple(None if r is not None and math.isinf(r) else r for r in pair)
        if pair[0] == pair[1]:
            return pair[0]
        return pair
    r = check_positive(rho, "rho", allow_inf=True)
    return None if math.isinf(r) else r


def solve(a, b, C, *, eps=None, rho=None, max_iter: int | None = None, tol: float | None = None,
          init=None, eps_scaling="auto") -> OTResult:
    """Discrete optimal transport between weights ``a`` (n,) and ``b`` (m,) for the cost ``C`` (n, m).

    ``a``/``b`` ``None`` mean uniform weights 1/n, 1/m. NumPy in -> NumPy out; tensors in ->
    tensors out (same dtype/device), with ``value`` differentiable.

    **Exact** (``eps=None``, balanced only): the Kantorovich LP
    min_{P >= 0, P1 = a, P^T1 = b} <C, P>, solved by POT's network simplex with an iteration cap
    scaled to the problem. ``value = linear_cost = <C, P>``; ``certificate`` holds primal
    feasibility, dual feasibility max(f_i + g_j - C_ij)_+ and the duality gap. Masses must match
    (relative 1e-6). ``tol`` (default 1e-9) is the relative tolerance of the certificate.

    **Entropic** (``eps > 0``): log-domain Sinkhorn (:mod:`measureflow.ot.sinkhorn`) for

        OT_eps = min_P <C, P> + eps KL(P | a x b) [+ rho KL(P1 | a) + rho KL(P^T1 | b)],

    KL(p | q) = sum p log(p/q) - p + q; the bracket only when ``rho`` is given (unbalanced,
    KL-penalised marginals; ``rho=None`` or ``inf`` is balanced and needs equal masses).
    ``rho=(rho_a, rho_b)`` penalises the two marginals separately; an entry ``inf`` (or ``None``)
    keeps that marginal hard, e.g. ``rho=(inf, lam)`` is the semi-unbalanced problem
    min_{P1 = a} <C, P> + eps KL(P | a x b) + lam KL(P^T1 | b).
    ``value`` is OT_eps, evaluated as the dual objective at the returned potentials (equal to
    the primal objective of ``plan`` at convergence); ``linear_cost = <C, P>``; ``plan``
    P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps). For probability weights, balanced:
    0 <= value - OT_0 <= eps min(H(a), H(b)) <= eps log min(n, m) (H = Shannon entropy), and the
    same bound holds for ``linear_cost - OT_0``.

    Stopping rule: L1 marginal violation ||P1 - a~||_1 + ||P^T1 - b~||_1 <= ``tol`` (default
    1e-8, in units of mass, floored at 100 x machine-eps x mass so float32 can reach it),
    a~ = a exp(-f/rho_a) (= a for a hard marginal). If ``max_iter`` is hit first, the result
    has ``converged=False``, a ``ConvergenceWarning`` is emitted, and ``errors[-1]`` is the
    violation of the returned plan itself (not of an earlier iterate). ``max_iter`` (default
    10000) bounds the total number of Sinkhorn iterations (one g- and one f-update each).
    ``init=(f, g)``: warm-start potentials (the first update is the g-step from ``f``; ``g``
    only stabilises it). ``eps_scaling``: ``"auto"`` (factor 0.5 when eps < 0.1 x cost range
    and no ``init``), ``None`` (off) or a factor in (0, 1).

    Gradients (envelope theorem on the dual, no backprop through iterations): d value / dC = P,
    d value / da = the partial derivative of the dual in a at (f, g) (= f up to an additive
    constant for balanced probability weights), likewise for b; gradients with respect to
    points flow through a ``C`` built from them. ``plan``, potentials and ``linear_cost`` are
    returned detached for entropic solves.

    Notes
    -----
    Cost convention: ``C`` is used as given (no 1/2); for W_2 pass C_ij = |x_i - y_j|^2 and
    ``value`` is W_2^2 (a squared distance), as in POT's ``emd2`` -- GeomLoss and OTT-JAX's
    ``PointCloud`` defaults differ by factors of 1/2 or in eps units. The entropic term is
    KL(P | a x b); in the balanced case it gives the same plan as POT's entropy -H(P) (they
    differ by a constant on the constraint set), and POT's ``sinkhorn2`` returns <C, P>, i.e.
    our ``linear_cost``, not ``value``. The exact LP uses POT (network simplex); the Sinkhorn
    solver is written here.
    """
    ctx = ArrayContext(a, b, C)
    a, b, C = _validate(ctx, a, b, C)
    if eps is None:
        if rho is not None:
            raise InputError("rho: the exact solver is balanced; give eps > 0 for unbalanced OT")
        if init is not None:
            raise InputError("init: warm starts are only used by the entropic solver (eps > 0)")
        check_masses_match(a, b, ("a", "b"))
        if max_iter is not None:
            max_iter = check_int(max_iter, "max_iter", min_value=1)
        tol = 1e-9 if tol is None else check_positive(tol, "tol")
        return ctx.wrap(exact_ot(a, b, C, max_iter=max_iter, tol=tol))
    eps = check_positive(eps, "eps")
    rho = _check_rho(rho)
    if rho is None or (isinstance(rho, tuple) and rho == (None, None)):
        rho = None
        check_masses_match(a, b, ("a", "b"))
    max_iter = 10_000 if max_iter is None else check_int(max_iter, "max_iter", min_value=1)
    if tol is None:
        # 1e-8 (mass units), floored at what the dtype can resolve (float32: ~1e-5 x mass).
        tol = max(1e-8, 100 * torch.finfo(C.dtype).eps * float(a.detach().sum()))
    else:
        tol = check_positive(tol, "tol")
    n, m = C.shape
    if init is not None:
        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise InputError("init: expected a pair (f, g) of potentials")
        f0 = check_shape(ctx.tensor(init[0], "init"), "init", (n,))
        g0 = check_shape(ctx.tensor(init[1], "init"), "init", (m,))
        init = (f0, g0)
    scale = float(C.detach().max() - C.detach().min())
    if isinstance(eps_scaling, str):
        if eps_scaling != "auto":
            raise InputError(f"eps_scaling: must be 'auto', None or a factor in (0, 1), "
                             f"got {eps_scaling!r}")
        factor = 0.5 if (init is None and eps < 0.1 * scale) else None
    elif eps_scaling is None or eps_scaling is False:
        factor = None
    else:
        factor = check_in_range(eps_scaling, "eps_scaling", 0.0, 1.0, low_open=True,
                                high_open=True)
    res = sinkhorn_ot(a, b, C, eps=eps, rho=rho, max_iter=max_iter, tol=tol, init=init,
                      eps_scaling=factor)
    return ctx.wrap(res)

