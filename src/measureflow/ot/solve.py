"""``ot.solve``: one entry point for discrete OT (exact LP, entropic, unbalanced)."""

from __future__ import annotations

import math

import numpy as np

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.progress import check_callback
from ..core.validation import (
    check_int,
    check_masses_match,
    check_ndim,
    check_positive,
    check_shape,
    check_weights,
)
from .exact import exact_ot
from .geometry import Dense
from .loop import default_tol
from .result import OTResult
from .sinkhorn import check_relax, entropic_solve, resolve_schedule

__all__ = ["solve"]

# POT / OTT / GeomLoss spellings that users bring, and the measureflow spelling to point to.
_FOREIGN_KWARGS = {
    "reg": "eps= (entropic regularisation, absolute, in cost units: POT's reg)",
    "reg_m": "rho= (marginal KL penalty; rho=(rho_a, rho_b) for two values)",
    "epsilon": "eps=",
    "blur": "eps= (GeomLoss: eps = blur**p, and its cost for p=2 is |x-y|^2/2)",
    "method": "eps=None for the exact LP, eps > 0 for Sinkhorn (no method= argument)",
    "numItermax": "max_iter=",
    "numIterMax": "max_iter=",
    "stopThr": "tol= (L1 marginal violation, mass units)",
    "threshold": "tol= (L1 marginal violation, mass units)",
    "max_iterations": "max_iter=",
    "M": "C (third positional argument: solve(a, b, C))",
    "cost_matrix": "C (third positional argument: solve(a, b, C))",
    "log": "nothing: the result always carries potentials, errors and n_iter",
    "verbose_every": "callback= (called once per iteration)",
    "unbalanced": "rho=",
    "reg_type": "nothing: the regulariser is KL(P | a x b) (POT's entropic plan is the same)",
    "warmstart": "init=(f, g)",
}


def foreign_kwargs(kwargs: dict, fn: str) -> None:
    """Raise an InputError pointing to the measureflow spelling of a POT/OTT/GeomLoss kwarg."""
    for k in kwargs:
        hint = _FOREIGN_KWARGS.get(k)
        if hint is not None:
            raise InputError(f"{k}: {fn} has no argument {k!r}; use {hint}")
        raise InputError(f"{k}: unexpected keyword argument of {fn}")


def _is_empty(x) -> bool:
    if isinstance(x, (list, tuple)):
        return len(x) == 0
    numel = getattr(x, "numel", None)
    if callable(numel):
        return numel() == 0
    size = getattr(x, "size", None)
    return isinstance(size, int) and size == 0


def _validate(ctx: ArrayContext, a, b, C):
    for name, w in (("a", a), ("b", b)):
        if w is not None and not isinstance(w, (int, float)) and _is_empty(w):
            raise InputError(f"{name}: empty weights; pass {name}=None for uniform weights "
                             "(POT's a=[] spelling)")
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


def solve(a, b, C=None, *, eps=None, rho=None, max_iter: int | None = None,
          tol: float | None = None, init=None, eps_scaling="auto", relax="auto",
          recenter: bool = False, callback=None, verbose: bool = False, **kwargs) -> OTResult:
    """Discrete optimal transport between weights ``a`` (n,) and ``b`` (m,) for the cost ``C`` (n, m).

    **Exact** (``eps=None``, balanced only): the Kantorovich LP
    min_{P >= 0, P1 = a, P^T1 = b} ``<C, P>``, solved by POT's network simplex with an iteration cap
    scaled to the problem. ``value = linear_cost = <C, P>``; ``certificate`` holds primal
    feasibility, dual feasibility max(f_i + g_j - C_ij)_+ and the duality gap.

    **Entropic** (``eps > 0``): log-domain Sinkhorn on the transport engine
    (:mod:`measureflow.ot.loop`) for

        OT_eps = min_P <C, P> + eps KL(P | a x b) [+ rho KL(P1 | a) + rho KL(P^T1 | b)],

    KL(p | q) = sum p log(p/q) - p + q; the bracket only when ``rho`` is given (unbalanced,
    KL-penalised marginals). ``value`` is OT_eps, evaluated as the dual objective at the
    returned potentials (equal to the primal objective of ``plan`` at convergence);
    ``linear_cost = <C, P>``; the plan is P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps). For
    probability weights, balanced: 0 <= value - OT_0 <= eps min(H(a), H(b)) <= eps log min(n, m)
    (H = Shannon entropy), and the same bound holds for ``linear_cost - OT_0``.

    Cost convention: ``C`` is used as given (no 1/2); for W_2 pass C_ij = |x_i - y_j|^2
    (:func:`measureflow.ot.dist`) and ``value`` is W_2^2, a squared distance (OT course notes,
    arXiv 2505.06589, Sec. "Kantorovich" and "Entropic regularization").

    Parameters
    ----------
    a, b : array_like or Tensor or None
        Nonnegative weights of shapes (n,) and (m,); ``None`` means uniform 1/n, 1/m. Masses
        are never renormalised: balanced problems need equal masses (relative 1e-6).
    C : array_like or Tensor
        Cost matrix (n, m), used as given. The order is ``solve(a, b, C)`` (POT's
        ``ot.solve(M, a, b)`` order is rejected with a hint).
    eps : float, optional
        Entropic regularisation (absolute, in cost units; POT's ``reg``). ``None``: exact LP.
    rho : float or (float, float), optional
        Marginal KL penalty (unbalanced OT, needs ``eps``). ``None`` or ``inf``: balanced.
        ``rho=(rho_a, rho_b)`` penalises the two marginals separately; an entry ``inf`` (or
        ``None``) keeps that marginal hard, e.g. ``rho=(inf, lam)`` is the semi-unbalanced
        problem min_{P1 = a} ``<C, P>`` + eps KL(P | a x b) + lam KL(P^T1 | b).
    max_iter : int, optional
        Entropic: total number of Sinkhorn iterations (one g- and one f-update each), default
        10000. Exact: cap on the network-simplex iterations (default scaled to the problem).
    tol : float, optional
        Entropic stopping rule: L1 marginal violation ||P1 - a~||_1 + ||P^T1 - b~||_1 <= tol,
        a~ = a exp(-f / rho_a) (= a for a hard marginal); default
        :func:`measureflow.ot.loop.default_tol` (1e-8 x mass in float64, 1e-5 x mass in
        float32). Exact: relative tolerance of the certificate, default 1e-9.
    init : (f, g), optional
        Warm-start potentials (entropic only); the first update is the g-step from ``f``, ``g``
        only stabilises it.
    eps_scaling : "auto" or None or float or schedule, default "auto"
        ``"auto"``: eps-scaling by tolerance with factor 0.5 in float64, annealing with factor
        0.81 in float32, when eps < 0.1 x cost range and no ``init``; ``None``: off; a factor
        in (0, 1): scaling by tolerance; or ``ot.Scaling(q, stage_tol, stage_iter)`` /
        ``ot.Annealing(q)`` (see :mod:`measureflow.ot.loop`).
    relax : "auto" or None or float, default "auto"
        Over-relaxation of the final eps stage, f <- f + omega (T(f) - f) (Thibault et al.
        2017; Lehmann et al. 2021). ``"auto"`` (balanced problems only): omega from the
        observed convergence rate, with a safeguard that falls back to omega = 1; ``None``:
        plain Sinkhorn; a factor in [1, 2).
    recenter : bool, default False
        Translation-invariant iteration for unbalanced problems (Sejourne et al. 2022).
    callback : callable, optional
        ``callback(state) -> bool | None``, called once per iteration with an
        ``ot.SinkhornState``; returning True stops (docs/ot.md, "Progress and callbacks").
    verbose : bool, default False
        Show a progress bar (iteration, error, eps) on stderr.
    **kwargs
        Only to catch POT / OTT-JAX / GeomLoss spellings (``reg``, ``method``, ``M``,
        ``numItermax``, ...): each raises an ``InputError`` naming the measureflow spelling.

    Returns
    -------
    OTResult
        ``value``, ``linear_cost``, ``plan``, ``potential_f``, ``potential_g``, ``converged``,
        ``n_iter``, ``errors`` (and ``certificate`` for the LP). NumPy in -> NumPy out;
        tensors in -> tensors out (same dtype/device). If ``max_iter`` is hit first: ``converged=False``, a
        ``ConvergenceWarning``, and ``errors[-1]`` is the violation of the returned plan
        itself. The result keeps its geometry: ``res.apply(v)`` (P v), ``res.apply(w,
        axis=0)`` (P^T w), ``res.marginals()``, ``res.plan_block(i0, i1)``.

        Gradients (envelope theorem on the dual, no backprop through iterations): d value /
        dC = P, d value / da = the partial derivative of the dual in a at (f, g) (= f up to an
        additive constant for balanced probability weights), likewise for b; gradients with
        respect to points flow through a ``C`` built from them. ``plan``, potentials and
        ``linear_cost`` are returned detached for entropic solves.

    Raises
    ------
    InputError
        Bad shapes or weights (``a``, ``b``, ``C``), unequal masses in a balanced problem,
        ``rho`` or ``init`` without ``eps``, non-positive ``eps`` / ``rho`` / ``tol``, bad
        ``max_iter``, ``eps_scaling`` or ``relax``, or a foreign keyword argument.

    Notes
    -----
    GeomLoss and OTT-JAX's ``PointCloud`` defaults differ by factors of 1/2 in the cost or in
    eps units. The entropic term is KL(P | a x b); in the balanced case it gives the same plan
    as POT's entropy -H(P) (they differ by a constant on the constraint set), and POT's
    ``sinkhorn2`` returns ``<C, P>``, i.e. our ``linear_cost``, not ``value``. The float32 path
    computes exponents in float64 (mixed precision, see :mod:`measureflow.ot.kernels`). The
    exact LP uses POT (network simplex); the Sinkhorn solver is written here.

    Examples
    --------
    Exact W_2^2 between two 2-point measures on the line: the monotone coupling sends 0 to 0.5
    and 1 to 2, so W_2^2 = (0.5^2 + 1^2) / 2 = 0.625.

    >>> import numpy as np
    >>> from measureflow import ot
    >>> C = ot.dist(np.array([0.0, 1.0]), np.array([0.5, 2.0]))
    >>> res = ot.solve(None, None, C)
    >>> print(round(res.value, 10), res.plan.tolist())
    0.625 [[0.5, 0.0], [0.0, 0.5]]

    Entropic, against POT (``sinkhorn`` / ``sinkhorn2`` give the same plan and ``<C, P>``):

    >>> import ot as pot
    >>> a, b = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.5])
    >>> C = ot.dist(np.array([0.0, 1.0, 2.0]), np.array([0.2, 1.5]))
    >>> res = ot.solve(a, b, C, eps=0.5)
    >>> bool(res.converged), bool(np.allclose(res.plan.sum(1), a, atol=1e-8))
    (True, True)
    >>> P = pot.sinkhorn(a, b, C, 0.5, stopThr=1e-12, numItermax=10_000)
    >>> bool(np.abs(res.plan - P).max() < 1e-7)
    True
    >>> bool(abs(res.linear_cost - float((C * P).sum())) < 1e-7)
    True

    References
    ----------
    G. Peyre, M. Cuturi, "Computational Optimal Transport", 2019, Ch. 3-4; OT course notes,
    arXiv 2505.06589. T. Sejourne, F.-X. Vialard, G. Peyre, "Faster unbalanced optimal transport:
    translation invariant Sinkhorn and 1-D Frank-Wolfe", AISTATS 2022.
    """
    if kwargs:
        foreign_kwargs(kwargs, "ot.solve")
    if a is not None and (a.ndim if hasattr(a, "ndim") else np.asarray(a, dtype=object).ndim) == 2:
        raise InputError("a: got a 2-D first argument; the order is solve(a, b, C) with a, b "
                         "the weights (None for uniform), e.g. solve(None, None, M) -- POT's "
                         "ot.solve(M, a, b) order is not supported")
    if C is None:
        raise InputError("C: missing cost matrix; the order is solve(a, b, C) (a, b may be "
                         "None for uniform weights)")
    callback = check_callback(callback)
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
        res = exact_ot(a, b, C, max_iter=max_iter, tol=tol)
        if res.engine is not None:
            res.engine.numpy = ctx.is_numpy
        return ctx.wrap(res)
    eps = check_positive(eps, "eps")
    rho = _check_rho(rho)
    if rho is None or (isinstance(rho, tuple) and rho == (None, None)):
        rho = None
        check_masses_match(a, b, ("a", "b"))
    max_iter = 10_000 if max_iter is None else check_int(max_iter, "max_iter", min_value=1)
    if tol is None:
        tol = default_tol(C.dtype, float(a.detach().sum()))
    else:
        tol = check_positive(tol, "tol")
    n, m = C.shape
    if init is not None:
        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise InputError("init: expected a pair (f, g) of potentials")
        f0 = check_shape(ctx.tensor(init[0], "init"), "init", (n,))
        g0 = check_shape(ctx.tensor(init[1], "init"), "init", (m,))
        init = (f0, g0)
    geom = Dense(C, _validated=True)
    schedule = resolve_schedule(eps_scaling, eps, geom.cost_range, init=init, dtype=C.dtype)
    res = entropic_solve(geom, a, b, eps=eps, rho=rho, tol=tol, max_iter=max_iter, init=init,
                         schedule=schedule, recenter=bool(recenter), relax=check_relax(relax),
                         callback=callback, verbose=verbose, description="ot.solve")
    res.engine.numpy = ctx.is_numpy
    return ctx.wrap(res)
