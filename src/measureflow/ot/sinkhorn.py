"""Entropic optimal transport on any geometry: balanced, unbalanced, symmetric.

Problem solved (cost C from a geometry, weights ``a`` (n,), ``b`` (m,), ``eps > 0``)::

    OT_eps(a, b) = min_{P >= 0} <C, P> + eps KL(P | a x b) + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b)

with KL(p | q) = sum p log(p / q) - p + q; a ``None`` (or inf) rho is a hard marginal
(``rho = None``: the balanced problem P 1 = a, P^T 1 = b). Its dual is::

    max_{f, g}  F(f; a) + F(g; b) - eps sum_ij a_i b_j (exp((f_i + g_j - C_ij) / eps) - 1)

with F(f; a) = ``<a, f>`` (hard) or -rho ``<a, exp(-f / rho) - 1>`` (KL), and the optimal plan is
P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) (course notes arXiv 2505.06589, Sec. "Entropic
regularization"; unbalanced: Chizat, Peyre, Schmitzer & Vialard 2018, Sejourne et al. 2019).

The iteration, stopping rule, eps schedules and kernels are those of the engine
(:mod:`measureflow.ot.loop`, :mod:`measureflow.ot.geometry`, :mod:`measureflow.ot.kernels`).
This module turns the engine's potentials into an :class:`~measureflow.ot.result.OTResult`:
``value`` = the dual objective at the returned potentials, differentiable in a, b and the
cost's inputs by the envelope theorem (no backpropagation through iterations);
``linear_cost`` = ``<C, P>``; ``plan`` (dense geometries) and plan products through the result's
methods.
"""

from __future__ import annotations

import math

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.results import report_convergence
from ..core.validation import check_positive, check_shape
from .geometry import Dense, Geometry
from .loop import (
    KL,
    Annealing,
    Direct,
    Hard,
    Scaling,
    Schedule,
    log_weights,
    sinkhorn_loop,
)
from .result import EngineState, OTResult

__all__ = ["sinkhorn_ot", "symmetric_sinkhorn_ot", "symmetric_sinkhorn", "entropic_dual_value",
           "entropic_solve", "rho_pair", "resolve_schedule", "check_relax"]

_log_weights = log_weights


def rho_pair(rho) -> tuple[float | None, float | None]:
    """(rho_a, rho_b) from ``rho`` = None, a number or a pair; ``None`` entries are hard marginals.

    An infinite rho is a hard marginal too (KL penalty with infinite weight). Engine helper:
    ``rho`` is assumed validated (:func:`measureflow.ot.solve` checks it).

    Parameters
    ----------
    rho : None or float or (float or None, float or None)
        Marginal penalty weight(s) of the unbalanced problem.

    Returns
    -------
    tuple
        ``(rho_a, rho_b)``, each a float or ``None`` (hard marginal).

    Examples
    --------
    >>> from measureflow.ot.sinkhorn import rho_pair
    >>> rho_pair(None), rho_pair(2), rho_pair((float("inf"), 0.5))
    ((None, None), (2.0, 2.0), (None, 0.5))
    """
    if isinstance(rho, (tuple, list)):
        return tuple(None if r is None or math.isinf(r) else float(r) for r in rho)
    if rho is None or math.isinf(rho):
        return (None, None)
    return (float(rho), float(rho))


def _block(w, r):
    return Hard(w) if r is None else KL(w, r)


def resolve_schedule(eps_scaling, eps: float, scale_fn, *, init=None, dtype=torch.float64,
                     symmetric: bool = False):
    """The :class:`~measureflow.ot.loop.Schedule` for an ``eps_scaling`` argument (validated).

    ``"auto"`` picks by the ratio r = eps / (max C - min C): no schedule with a warm start or
    when r >= 0.1; ``Annealing(0.81)`` when 1e-3 <= r < 0.1 (one iteration per intermediate
    eps, then the over-relaxed final stage: fewest iterations in our measurements there);
    ``Scaling(0.5)`` below (very small eps, where converging each intermediate stage pays).
    Symmetric problems (``symmetric=True``, the debiasing terms) use no schedule: their
    averaged iteration contracts by 1/2 or better and converged fastest from the start in our
    measurements (12-14 iterations at eps down to 1e-4 x the cost range).

    Parameters
    ----------
    eps_scaling : "auto" or None or False or float or Schedule
        ``"auto"`` as above; ``None`` / ``False``: :class:`~measureflow.ot.loop.Direct`; a number
        q in (0, 1): ``Scaling(q)``; a Schedule instance: itself (its factor must lie in (0, 1)).
    eps : float
        Target regularisation (cost units).
    scale_fn : callable
        ``scale_fn() -> (min C, max C)``, called only by ``"auto"`` (a geometry's
        ``cost_range``).
    init : optional
        Warm-start potentials; any value disables the automatic schedule.
    dtype : torch.dtype, default float64
        Data dtype (kept for the signature; the choice above does not depend on it).
    symmetric : bool, default False
        Whether the problem is a symmetric (debiasing) one.

    Returns
    -------
    Schedule
        ``Direct()``, ``Scaling(q)``, ``Annealing(q)`` or the given schedule.

    Raises
    ------
    InputError
        ``eps_scaling`` a string other than "auto", a number outside (0, 1), or a schedule whose
        factor is outside (0, 1).

    Examples
    --------
    >>> from measureflow.ot.sinkhorn import resolve_schedule
    >>> rng = lambda: (0.0, 1.0)          # cost range [0, 1]
    >>> [type(resolve_schedule("auto", e, rng)).__name__ for e in (0.5, 0.01, 1e-4)]
    ['Direct', 'Annealing', 'Scaling']
    >>> resolve_schedule(0.7, 1e-4, rng).q
    0.7
    """
    from ..core.validation import check_in_range

    if isinstance(eps_scaling, Schedule):
        if not 0.0 < eps_scaling.q < 1.0:
            raise InputError(f"eps_scaling: factor q must lie in (0, 1), got {eps_scaling.q}")
        return eps_scaling
    if isinstance(eps_scaling, str):
        if eps_scaling != "auto":
            raise InputError(f"eps_scaling: must be 'auto', None, a factor in (0, 1) or a "
                             f"Schedule (ot.Scaling / ot.Annealing), got {eps_scaling!r}")
        if init is not None or symmetric:
            return Direct()
        lo, hi = scale_fn()
        r = eps / (hi - lo) if hi > lo else math.inf
        if r >= 0.1:
            return Direct()
        return Annealing(0.81) if r >= 1e-3 else Scaling(0.5)
    if eps_scaling is None or eps_scaling is False:
        return Direct()
    q = check_in_range(eps_scaling, "eps_scaling", 0.0, 1.0, low_open=True, high_open=True)
    return Scaling(q)


def check_relax(relax):
    """Validate ``relax``: ``"auto"``, None / False (off) or a factor omega in [1, 2).

    Parameters
    ----------
    relax : "auto" or None or False or float
        Over-relaxation argument of the public solvers.

    Returns
    -------
    "auto" or None or float
        ``None`` when off, otherwise the validated value.

    Raises
    ------
    InputError
        A string other than "auto" or a factor outside [1, 2).

    Examples
    --------
    >>> from measureflow.ot.sinkhorn import check_relax
    >>> check_relax("auto"), check_relax(False), check_relax(1.5)
    ('auto', None, 1.5)
    """
    from ..core.validation import check_in_range

    if relax is None or relax is False:
        return None
    if isinstance(relax, str):
        if relax != "auto":
            raise InputError(f"relax: must be 'auto', None or a factor in [1, 2), got {relax!r}")
        return relax
    return check_in_range(relax, "relax", 1.0, 2.0, high_open=True)


def entropic_solve(geom: Geometry, a: torch.Tensor, b: torch.Tensor, *, eps: float, rho=None,
                   tol: float, max_iter: int, init=None, schedule: Schedule | None = None,
                   recenter: bool = False, relax="auto", callback=None, verbose: bool = False,
                   want_plan: bool = True, method: str | None = None,
                   description: str = "sinkhorn", label: str = "",
                   warn_stacklevel: int = 4) -> OTResult:
    """Entropic OT on a geometry (tensor-only; inputs validated by the public faces).

    Solves OT_eps = min_P ``<C, P>`` + eps KL(P | a x b) + rho_a KL(P1 | a) + rho_b KL(P^T1 | b) (a
    ``None`` rho: hard marginal) with the engine's one loop
    (:func:`measureflow.ot.loop.sinkhorn_loop`) and wraps the potentials as an
    :class:`~measureflow.ot.result.OTResult`. The balanced problem needs equal masses (already
    checked to 1e-6; ``b`` is rescaled to ``a``'s exact mass).

    Parameters
    ----------
    geom : Geometry
        Cost (``Dense``, ``PointCloud``, ``Grid``); the cost is used as given.
    a, b : Tensor
        Weights (n,), (m,) in the data dtype (may require grad).
    eps : float
        Regularisation (cost units).
    rho : None or float or pair, optional
        Marginal penalties (see :func:`rho_pair`).
    tol, max_iter : float, int
        Stopping rule (L1 marginal violation, mass units) and iteration cap.
    init : (f, g), optional
        Warm-start potentials.
    schedule : Schedule, optional
        eps schedule (see :func:`resolve_schedule`); ``None``: direct.
    recenter : bool
        Translation-invariant iteration (unbalanced).
    relax : "auto" or None or float
        Over-relaxation (``"auto"`` only acts on balanced problems).
    callback, verbose :
        Progress hooks (docs/ot.md, "Progress and callbacks").
    want_plan : bool, default True
        Materialise ``plan`` (dense geometries); ``False`` keeps only the potentials.
    method, description, label, warn_stacklevel :
        Result method name, progress-bar text, callback label, stack level of the warning.

    Returns
    -------
    OTResult
        ``value`` (the dual objective at the returned potentials, differentiable in a, b and the
        geometry's inputs by the envelope theorem), ``linear_cost``, ``plan``, potentials,
        ``converged``, ``n_iter``, ``errors``; a ``ConvergenceWarning`` if not converged.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.geometry import Dense
    >>> from measureflow.ot.sinkhorn import entropic_solve
    >>> a = torch.full((2,), 0.5, dtype=torch.float64)
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> res = entropic_solve(Dense(C), a, a, eps=0.5, tol=1e-10, max_iter=100)
    >>> bool(res.converged), bool(torch.allclose(res.plan.sum(1), a))
    (True, True)
    """
    pd = geom.pdtype
    ra, rb = rho_pair(rho)
    balanced = ra is None and rb is None
    ad, bd = a.detach(), b.detach()
    if balanced and float(bd.sum()) != float(ad.sum()):
        # Validated to match within 1e-6: make them equal so the marginal error can reach 0.
        b = b * (a.sum() / b.sum())
        bd = b.detach()
    row, col = _block(ad.to(pd), ra), _block(bd.to(pd), rb)
    if relax == "auto" and not balanced:
        relax = None   # automatic over-relaxation only for balanced problems
    out = sinkhorn_loop(geom, row, col, eps, tol=tol, max_iter=max_iter, schedule=schedule,
                        init=init, recenter=recenter, relax=relax, callback=callback,
                        verbose=verbose, description=description, label=label)
    if not out.stopped or not out.converged:
        what = " (stopped by callback)" if out.stopped else ""
        report_convergence(out.converged, f"Sinkhorn{what} (eps={eps:.3g}, rho={rho})",
                           out.n_iter, out.error, tol, stacklevel=warn_stacklevel)
    f, g = out.f, out.g
    dt = geom.dtype
    with torch.no_grad():
        u, v = f / eps + row.logw, g / eps + col.logw
        lin = geom.linear_cost(u, v, eps)
        plan = geom.block(u, v, eps).to(dt) if want_plan else None
    mass = geom.mass(a, b, f, g, eps)
    value = (row.dual(f, a.to(pd)) + col.dual(g, b.to(pd))
             - eps * (mass - a.to(pd).sum() * b.to(pd).sum())).to(dt)
    if method is None:
        method = "sinkhorn" if balanced else "sinkhorn_unbalanced"
    return OTResult(value=value, linear_cost=lin.to(dt), plan=plan, potential_f=f.to(dt),
                    potential_g=g.to(dt), certificate=None, method=method, eps=eps, rho=rho,
                    converged=out.converged, n_iter=out.n_iter, errors=out.errors,
                    engine=EngineState(geom=geom, u=u, v=v, eps=eps, dtype=dt, la=row.logw,
                                       lb=col.logw))


def sinkhorn_ot(a: torch.Tensor, b: torch.Tensor, C: torch.Tensor, *, eps: float,
                rho: float | None = None, max_iter: int = 10_000, tol: float = 1e-8,
                init=None, eps_scaling: float | Schedule | None = None, stage_iter: int = 100,
                recenter: bool = False, relax="auto", callback=None,
                verbose: bool = False) -> OTResult:
    """Entropic OT for a dense cost on validated tensors (the tensor core of :func:`ot.solve`).

    Same problem and result as :func:`measureflow.ot.solve` with ``eps`` (cost ``C`` used as
    given, regulariser eps KL(P | a x b)), without validation.

    Parameters
    ----------
    a, b : Tensor
        Weights (n,), (m,).
    C : Tensor
        Cost (n, m).
    eps : float
        Regularisation (cost units).
    rho : float, optional
        Marginal KL penalty (``None``: balanced).
    max_iter : int, default 10000
        Iteration cap.
    tol : float, default 1e-8
        L1 marginal violation (mass units).
    init : (f, g), optional
        Warm-start potentials.
    eps_scaling : None or float or Schedule, optional
        ``None``: solve at ``eps`` directly; a factor q in (0, 1): ``Scaling(q)`` with
        ``stage_iter`` iterations per intermediate stage at most; or a Schedule.
    stage_iter : int, default 100
        See ``eps_scaling``.
    recenter, relax, callback, verbose :
        As in :func:`measureflow.ot.solve`.

    Returns
    -------
    OTResult

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.sinkhorn import sinkhorn_ot
    >>> a = torch.full((2,), 0.5, dtype=torch.float64)
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> res = sinkhorn_ot(a, a, C, eps=0.5, tol=1e-10)
    >>> P = res.plan   # symmetric 2 x 2 plan: diagonal weight 1 / (2 (1 + exp(-1 / eps)))
    >>> bool(abs(float(P[0, 0]) - 0.5 / (1 + torch.exp(torch.tensor(-2.0)).item())) < 1e-9)
    True
    """
    if isinstance(eps_scaling, (int, float)) and not isinstance(eps_scaling, bool):
        schedule = Scaling(float(eps_scaling), stage_iter=stage_iter)
    else:
        schedule = eps_scaling
    return entropic_solve(Dense(C, _validated=True), a, b, eps=eps, rho=rho, tol=tol, max_iter=max_iter,
                          init=init, schedule=schedule, recenter=recenter, relax=relax,
                          callback=callback, verbose=verbose, warn_stacklevel=5)


def symmetric_sinkhorn(geom: Geometry, a: torch.Tensor, *, eps: float, tol: float,
                       max_iter: int, schedule: Schedule | None = None, callback=None,
                       verbose: bool = False, label: str = "", description="sinkhorn"):
    """OT_eps(a, a) for a symmetric geometry (balanced), by the averaged symmetric iteration.

    f <- (f + T(f)) / 2 with T(f)_i = -eps log sum_j a_j exp((f_j - C_ij)/eps) (Feydy et al.
    2019, Sec. 3); the optimal pair is (f, f). Stopping rule: the L1 marginal violation of
    P_ij = a_i a_j exp((f_i + f_j - C_ij)/eps), both marginals counted: 2 ||P 1 - a||_1.

    Parameters
    ----------
    geom : Geometry
        A symmetric geometry (C = C^T).
    a : Tensor
        Weights (n,).
    eps, tol, max_iter :
        Regularisation (cost units), stopping tolerance (mass units), iteration cap.
    schedule : Schedule, optional
        eps schedule (default: none).
    callback, verbose, label, description :
        Progress hooks (docs/ot.md, "Progress and callbacks").

    Returns
    -------
    tuple
        ``(value, f, converged, n_iter, errors)``, value differentiable in a and the geometry's
        inputs (envelope theorem); a ``ConvergenceWarning`` if not converged.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.geometry import Dense
    >>> from measureflow.ot.sinkhorn import symmetric_sinkhorn
    >>> a = torch.full((2,), 0.5, dtype=torch.float64)
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> value, f, ok, n_iter, errors = symmetric_sinkhorn(Dense(C, symmetric=True), a, eps=0.5,
    ...                                                    tol=1e-10, max_iter=100)
    >>> bool(ok), bool(torch.allclose(f, f.flip(0)))   # both points play the same role
    (True, True)
    """
    pd = geom.pdtype
    row = Hard(a.detach().to(pd))
    out = sinkhorn_loop(geom, row, None, eps, tol=tol, max_iter=max_iter, schedule=schedule,
                        symmetric=True, callback=callback, verbose=verbose, label=label,
                        description=description)
    if not out.stopped or not out.converged:
        report_convergence(out.converged, f"symmetric Sinkhorn (eps={eps:.3g})", out.n_iter,
                           out.error, tol, stacklevel=4)
    f = out.f
    ap = a.to(pd)
    value = (2.0 * row.dual(f, ap) - eps * (geom.mass(a, a, f, f, eps) - ap.sum() ** 2))
    return value.to(geom.dtype), f.to(geom.dtype), out.converged, out.n_iter, out.errors


def symmetric_sinkhorn_ot(a: torch.Tensor, C: torch.Tensor, *, eps: float,
                          max_iter: int = 10_000, tol: float = 1e-8,
                          eps_scaling: float | Schedule | None = None, stage_iter: int = 100):
    """:func:`symmetric_sinkhorn` for a dense symmetric cost matrix.

    Parameters
    ----------
    a : Tensor
        Weights (n,).
    C : Tensor
        Symmetric cost (n, n).
    eps : float
        Regularisation (cost units).
    max_iter, tol :
        Iteration cap and L1 marginal tolerance (mass units).
    eps_scaling, stage_iter :
        As in :func:`sinkhorn_ot`.

    Returns
    -------
    tuple
        ``(value, f, converged, n_iter, errors)`` as :func:`symmetric_sinkhorn`.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.sinkhorn import symmetric_sinkhorn_ot
    >>> a = torch.ones(1, dtype=torch.float64)
    >>> value, f, ok, _, _ = symmetric_sinkhorn_ot(a, torch.zeros(1, 1, dtype=torch.float64),
    ...                                            eps=1.0)
    >>> float(value), bool(ok)         # one point: OT_eps = C = 0
    (0.0, True)
    """
    if isinstance(eps_scaling, (int, float)) and not isinstance(eps_scaling, bool):
        schedule = Scaling(float(eps_scaling), stage_iter=stage_iter)
    else:
        schedule = eps_scaling
    return symmetric_sinkhorn(Dense(C, symmetric=True, _validated=True), a, eps=eps, tol=tol, max_iter=max_iter,
                              schedule=schedule)


def entropic_dual_value(a, b, C, f, g, eps: float, rho=None):
    """Dual objective of entropic OT at potentials (f, g), differentiable in a, b, C.

        D(f, g) = F(f; a) + F(g; b) - eps sum_ij a_i b_j (exp((f_i + g_j - C_ij) / eps) - 1)

    with F(f; a) = ``<a, f>`` (hard marginal) or -rho ``<a, exp(-f / rho) - 1>`` (KL penalty rho); the
    cost C is used as given (no 1/2). With f, g detached this is the envelope-theorem value: its
    gradient is the gradient of OT_eps at the optimum (d/dC = P, d/da_i = f_i - eps (sum_j b_j
    E_ij - sum_j b_j) for the balanced problem, ...). Course notes arXiv 2505.06589, Sec.
    "Entropic regularization".

    Parameters
    ----------
    a, b : array_like or Tensor
        Nonnegative weights (n,), (m,).
    C : array_like or Tensor
        Cost (n, m).
    f, g : array_like or Tensor
        Potentials (n,), (m,).
    eps : float
        Regularisation > 0 (cost units).
    rho : None or float or pair, optional
        None (balanced), a number (both marginals KL-penalised) or a pair (rho_a, rho_b) whose
        None / inf entries are hard marginals.

    Returns
    -------
    float or Tensor
        NumPy in -> float out; tensors in -> 0-d tensor out.

    Raises
    ------
    InputError
        Shapes that do not match ``C``, negative weights, non-positive ``eps`` or bad ``rho``.

    Examples
    --------
    At the potentials of :func:`measureflow.ot.solve` the dual value is the solver's ``value``:

    >>> import numpy as np
    >>> from measureflow import ot
    >>> a, b = np.array([0.2, 0.8]), np.array([0.5, 0.5])
    >>> C = np.array([[0.0, 1.0], [2.0, 0.5]])
    >>> res = ot.solve(a, b, C, eps=0.5)
    >>> f, g = res.potential_f, res.potential_g
    >>> bool(abs(ot.entropic_dual_value(a, b, C, f, g, 0.5) - res.value) < 1e-10)
    True
    """
    from ..core.validation import check_nonnegative
    from .solve import _check_rho

    ctx = ArrayContext(a, b, C, f, g)
    C = ctx.tensor(C, "C")
    if C.ndim != 2:
        raise InputError(f"C: expected a 2-D cost matrix, got shape {tuple(C.shape)}")
    n, m = C.shape
    a = check_nonnegative(check_shape(ctx.tensor(a, "a"), "a", (n,)), "a")
    b = check_nonnegative(check_shape(ctx.tensor(b, "b"), "b", (m,)), "b")
    f = check_shape(ctx.tensor(f, "f"), "f", (n,))
    g = check_shape(ctx.tensor(g, "g"), "g", (m,))
    eps = check_positive(eps, "eps")
    ra, rb = rho_pair(_check_rho(rho))
    P = a[:, None] * b[None, :] * torch.exp((f[:, None] + g[None, :] - C) / eps)
    mass = eps * (P.sum() - a.sum() * b.sum())
    val = _block(a, ra).dual(f, a) + _block(b, rb).dual(g, b) - mass
    return ctx.wrap(val)
