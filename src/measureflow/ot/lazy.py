"""Memory-light entropic OT between point clouds (the n x m cost is never stored).

Solves the same problem as ``measureflow.ot.solve(a, b, C, eps=eps, rho=rho)`` with
C_ij = |x_i - y_j|^2 (no 1/2), by the same log-domain Sinkhorn iteration, stopping rule (L1
marginal violation) and dual ``value`` (see :mod:`measureflow.ot.sinkhorn`; course notes
arXiv 2505.06589, "Entropic regularization"; unbalanced: Chizat et al. 2018). The difference
is only in the geometry: a :class:`~measureflow.ot.geometry.PointCloud`, whose reductions
evaluate the cost inside the kernel (compiled: one fused loop per reduction, nothing of size
n x m is stored; eager: row blocks of ``chunk`` rows). Memory O((n + m) d + block), time
O(n m d) per iteration; small eager problems (n m <= 2^22) keep the cost matrix instead
(32 MiB at most in float64), unless ``chunk`` is given.

The plan is not returned (``plan=None``); the result's methods ``res.apply(v)``,
``res.plan_block(i0, i1)``, ``res.marginals()`` act with it (streamed), as do the functions
:func:`plan_block` and :func:`lazy_plan_apply` (kept for compatibility).

Gradients of ``value`` with respect to x, y, a, b use the envelope theorem (potentials held
fixed, no backprop through iterations) in a custom autograd function whose backward pass is
streamed as well: d value / dC_ij = P_ij, so d value / dx_i = 2 sum_j P_ij (x_i - y_j) and
d value / dy_j = 2 sum_i P_ij (y_j - x_i) for p = 2.
"""

from __future__ import annotations

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.progress import check_callback
from ..core.validation import (
    check_int,
    check_masses_match,
    check_points,
    check_positive,
    check_same_dim,
    check_weights,
)
from .geometry import PointCloud
from .loop import default_tol
from .result import OTResult
from .sinkhorn import check_relax, entropic_solve, resolve_schedule, rho_pair
from .solve import _check_rho, foreign_kwargs

__all__ = ["sinkhorn_points", "plan_block", "lazy_plan_apply"]


def _points(ctx, x, y, a, b):
    x = check_points(ctx.tensor(x, "x"), "x")
    y = check_points(ctx.tensor(y, "y"), "y")
    check_same_dim(x, y, ("x", "y"))
    a = check_weights(None if a is None else ctx.tensor(a, "a"), x.shape[0], "a", like=x)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), y.shape[0], "b", like=x)
    return x, y, a, b


def _cost_arg(cost):
    if callable(cost):
        return cost
    if cost in ("sqeuclidean", None):
        return 2.0
    if cost == "euclidean":
        return 1.0
    if isinstance(cost, str):
        raise InputError(f"cost: must be 'sqeuclidean', 'euclidean', a power p >= 1 or a "
                         f"callable, got {cost!r}")
    from ..core.validation import check_in_range

    return check_in_range(cost, "cost", 1.0, float("inf"), high_open=True)


def sinkhorn_points(x, y, a=None, b=None, *, eps=None, rho=None, max_iter: int = 10_000,
                    tol: float | None = None, chunk: int | None = None, eps_scaling="auto",
                    cost="sqeuclidean", init=None, relax="auto", recenter: bool = False,
                    callback=None, verbose: bool = False, **kwargs) -> OTResult:
    """Entropic OT between point clouds x (n, d), y (m, d) without storing the n x m cost.

    Same problem, iteration, stopping rule and outputs as ``ot.solve(a, b, C, eps=eps,
    rho=rho, ...)`` with C_ij = |x_i - y_j|^2 (squared Euclidean, no 1/2) by default:

        OT_eps = min_P <C, P> + eps KL(P | a x b) [+ rho KL(P1 | a) + rho KL(P^T1 | b)],

    ``value`` = OT_eps (dual objective at the returned potentials), ``linear_cost`` = ``<C, P>``,
    potentials (f, g) with P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps). The geometry is a
    :class:`~measureflow.ot.geometry.PointCloud`: memory O((n + m) d + block), time O(n m d) per
    iteration (course notes arXiv 2505.06589, Sec. "Entropic regularization"). One exception,
    for speed: when the eager kernels run (small problems, or no compiler) and n m <=
    ``kernels.DENSE_NUMEL`` (2^22 entries, 32 MiB in float64) the cost matrix is built once and
    kept for the solve (no cost block rebuilt at every iteration); ``chunk`` forces
    streaming.

    Parameters
    ----------
    x, y : array_like or Tensor
        Point clouds (n, d), (m, d); 1-D arrays are points on the line.
    a, b : array_like or Tensor, optional
        Weights (uniform 1/n, 1/m if ``None``).
    eps : float
        Regularisation > 0 in cost units (required).
    rho : None or float or pair, optional
        Marginal KL penalties as in :func:`~measureflow.ot.solve`; ``None``: balanced (masses
        must match).
    max_iter : int, default 10000
        Iteration cap.
    tol : float, optional
        L1 marginal violation (mass units); default :func:`~measureflow.ot.loop.default_tol`
        (1e-8 x mass in float64, 1e-5 x mass in float32).
    chunk : int, optional
        Rows per block on the eager path, never storing the cost (default: the stored matrix
        up to 2^22 entries, then blocks of about 2^18 entries); the compiled
        path (:mod:`measureflow.ot.kernels`) evaluates the cost inside a fused kernel and stores
        no block at all.
    eps_scaling, init, relax, recenter :
        As in :func:`~measureflow.ot.solve`.
    cost : {"sqeuclidean", "euclidean"} or float or callable, default "sqeuclidean"
        |x - y|^2, |x - y|, |x - y|^p (p >= 1), or ``cost(xb, yb)`` returning the (len(xb),
        len(yb)) cost block (torch ops; evaluated on row blocks, differentiable for gradients).
    callback, verbose :
        Progress hooks (docs/ot.md, "Progress and callbacks").
    **kwargs
        Only to catch POT / GeomLoss spellings (InputError naming the measureflow spelling).

    Returns
    -------
    OTResult
        ``method = "sinkhorn_points"``, ``plan = None``: use the result's methods
        (``res.apply(v)``, ``res.apply(w, axis=0)``, ``res.plan_block(i0, i1)``,
        ``res.marginals()``, ``res.dense_plan()``), streamed. Gradients of ``value`` w.r.t. x,
        y, a, b (tensor inputs with requires_grad) by the envelope theorem, computed in a
        streamed backward pass; potentials and ``linear_cost`` are detached. NumPy in -> NumPy
        out, tensors in -> tensors out. Not converged: ``converged=False`` and a
        ``ConvergenceWarning``.

    Raises
    ------
    InputError
        Missing or non-positive ``eps``, bad point clouds, weights, ``rho``, ``max_iter``,
        ``tol``, ``chunk``, ``init`` or ``cost``, unequal masses in a balanced problem, or a
        foreign keyword argument.

    Examples
    --------
    Same value and plan as :func:`~measureflow.ot.solve` on the dense cost
    :func:`~measureflow.ot.dist`:

    >>> import numpy as np
    >>> from measureflow import ot
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> y = np.array([[0.5, 0.5], [1.5, 1.0]])
    >>> res = ot.sinkhorn_points(x, y, eps=0.5)
    >>> dense = ot.solve(None, None, ot.dist(x, y), eps=0.5)
    >>> res.plan is None, bool(abs(res.value - dense.value) < 1e-9)
    (True, True)
    >>> bool(np.allclose(res.dense_plan(), dense.plan, atol=1e-9))
    True
    """
    if kwargs:
        foreign_kwargs(kwargs, "ot.sinkhorn_points")
    if eps is None:
        raise InputError("eps: required (entropic regularisation > 0, in units of the cost)")
    callback = check_callback(callback)
    ctx = ArrayContext(x, y, a, b)
    x, y, a, b = _points(ctx, x, y, a, b)
    eps = check_positive(eps, "eps")
    rho = _check_rho(rho)
    if rho_pair(rho) == (None, None):
        rho = None
        check_masses_match(a, b, ("a", "b"))
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = (default_tol(x.dtype, float(a.detach().sum())) if tol is None
           else check_positive(tol, "tol"))
    if chunk is not None:
        check_int(chunk, "chunk", min_value=1)
    n, m = x.shape[0], y.shape[0]
    if init is not None:
        from ..core.validation import check_shape

        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise InputError("init: expected a pair (f, g) of potentials")
        init = (check_shape(ctx.tensor(init[0], "init"), "init", (n,)),
                check_shape(ctx.tensor(init[1], "init"), "init", (m,)))
    geom = PointCloud(x, y, cost=_cost_arg(cost), _validated=True)
    if chunk is not None:
        geom.block_rows = chunk
    schedule = resolve_schedule(eps_scaling, eps, geom.cost_range, init=init, dtype=x.dtype)
    res = entropic_solve(geom, a, b, eps=eps, rho=rho, tol=tol, max_iter=max_iter, init=init,
                         schedule=schedule, recenter=bool(recenter), relax=check_relax(relax),
                         callback=callback, verbose=verbose, want_plan=False,
                         method="sinkhorn_points",
                         description="ot.sinkhorn_points")
    res.engine.numpy = ctx.is_numpy
    return ctx.wrap(res)


def _check_same_inputs(res, x, y, a, b):
    """The (x, y, a, b) passed again must be the solve's own (results carry their inputs)."""
    st = getattr(res, "engine", None)
    if st is None or st.geom is None or res.eps is None:
        raise InputError("res: expected an entropic OTResult (from sinkhorn_points)")
    geom = st.geom
    ctx = ArrayContext(x, y, a, b)
    xt, yt, at, bt = _points(ctx, x, y, a, b)
    pd = geom.pdtype
    if not isinstance(geom, PointCloud):
        raise InputError("res: expected a result of sinkhorn_points")
    for name, given, kept in (("x", xt, geom.x), ("y", yt, geom.y)):
        if given.shape != kept.shape or not torch.equal(given.detach().to(pd), kept):
            raise InputError(f"{name}: differs from the points of the solve; the result keeps "
                             "its inputs -- use res.plan_block(...) / res.apply(...)")
    for name, given, kept in (("a", at, st.la), ("b", bt, st.lb)):
        if kept is None or not torch.allclose(torch.exp(kept), given.detach().to(pd),
                                              rtol=1e-6, atol=0.0):
            raise InputError(f"{name}: differs from the weights of the solve; the result keeps "
                             "its inputs -- use res.plan_block(...) / res.apply(...)")
    return ctx


def _check_result(res, x, y, a, b) -> None:
    """``res`` carries a plan; re-passed inputs, if any, must be the solve's own."""
    if x is not None or y is not None:
        if x is None or y is None:
            raise InputError("x, y: give both or neither (the result keeps its inputs)")
        _check_same_inputs(res, x, y, a, b)
    if getattr(res, "engine", None) is None:
        raise InputError("res: expected an entropic OTResult (from sinkhorn_points)")


def plan_block(res: OTResult, x=None, y=None, a=None, b=None, i0: int = 0,
               i1: int | None = None):
    """Rows ``i0:i1`` of the plan of a :func:`sinkhorn_points` result (same as ``res.plan_block(i0, i1)``).

    P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), C_ij = |x_i - y_j|^2 for the default cost;
    the block has shape (i1 - i0, m). Kept for compatibility.

    Parameters
    ----------
    res : OTResult
        A result of :func:`sinkhorn_points`.
    x, y, a, b : optional
        May be omitted (the result keeps its inputs); if given they must be those of the solve
        (``InputError`` otherwise: a plan block for other weights is not a plan).
    i0, i1 : int
        Row range (``i1=None``: to the last row).

    Returns
    -------
    ndarray or Tensor
        (i1 - i0, m) block.

    Raises
    ------
    InputError
        ``res`` not an entropic point-cloud result, re-passed inputs that differ, bad range.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> x, y = np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5])
    >>> res = ot.sinkhorn_points(x, y, eps=1.0)
    >>> bool(np.allclose(ot.lazy.plan_block(res, i0=1, i1=3), res.dense_plan()[1:3]))
    True
    """
    _check_result(res, x, y, a, b)
    i0 = check_int(i0, "i0", min_value=0)
    i1 = None if i1 is None else check_int(i1, "i1", min_value=0)
    return res.plan_block(i0, i1)


def lazy_plan_apply(res: OTResult, x=None, y=None, v=None, a=None, b=None, *,
                    transpose: bool = False, chunk: int | None = None):
    """P v, or P^T v if ``transpose``, streamed, for the plan of a :func:`sinkhorn_points` result.

    The same as ``res.apply(v, axis=1 or 0)``; kept for compatibility.

    Parameters
    ----------
    res : OTResult
        A result of :func:`sinkhorn_points`.
    x, y, a, b : optional
        May be omitted (the result keeps its inputs); if given they must be those of the solve.
    v : array_like or Tensor
        Shape (m,) or (m, k); (n,) or (n, k) with ``transpose``.
    transpose : bool, default False
        Apply P^T instead of P.
    chunk : int, optional
        Accepted for compatibility (validated, unused: the result's geometry sets the blocks).

    Returns
    -------
    ndarray or Tensor
        (n,) / (n, k), or (m,) / (m, k) with ``transpose``.

    Raises
    ------
    InputError
        Missing ``v``, bad ``chunk``, ``res`` not an entropic point-cloud result, re-passed
        inputs that differ.

    Examples
    --------
    P 1 = a and P^T 1 = b (uniform weights here) at convergence:

    >>> import numpy as np
    >>> from measureflow import ot
    >>> x, y = np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5])
    >>> res = ot.sinkhorn_points(x, y, eps=1.0)
    >>> print(np.round(ot.lazy_plan_apply(res, v=np.ones(2)), 6))
    [0.333333 0.333333 0.333333]
    >>> print(np.round(ot.lazy_plan_apply(res, v=np.ones(3), transpose=True), 6))
    [0.5 0.5]
    """
    if v is None:
        raise InputError("v: missing vector")
    chunk = None if chunk is None else check_int(chunk, "chunk", min_value=1)
    _check_result(res, x, y, a, b)
    return res.apply(v, axis=0 if transpose else 1)
