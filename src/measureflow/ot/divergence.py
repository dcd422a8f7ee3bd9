"""Debiased Sinkhorn divergence between point clouds.

    S_eps(mu, nu) = OT_eps(mu, nu) - OT_eps(mu, mu) / 2 - OT_eps(nu, nu) / 2,

OT_eps the entropic cost of :func:`measureflow.ot.solve` (KL(P | a x b) regularisation) with
ground cost |x - y|^p (p = 2: squared Euclidean, no 1/2 -- GeomLoss uses |x - y|^2 / 2 and
eps = blur^p, so its value is half of ours at eps_ours = 2 blur^2). For probability measures
and p in [1, 2] (exp(-|x - y|^p / eps) is then a positive-definite kernel; Feydy et al.,
Thm 1) S_eps >= 0 and S_eps = 0 iff mu = nu; for p > 2 this is not guaranteed. S_eps -> W_p^p
as eps -> 0 and -> MMD with kernel -|x - y|^p as eps -> inf (Feydy, Sejourne, Vialard, Amari, Trouve & Peyre,
AISTATS 2019; Genevay, Peyre & Cuturi 2018; course notes arXiv 2505.06589, Sec. "Entropic
regularization"). Its sample complexity is O(n^{-1/2}) (with eps-dependent constants) instead
of W_p's O(n^{-1/d}).
"""

from __future__ import annotations

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.progress import check_callback
from ..core.validation import (
    check_in_range,
    check_int,
    check_masses_match,
    check_positive,
    check_weights,
)
from .geometry import PointCloud
from .loop import default_tol
from .sinkhorn import entropic_solve, resolve_schedule, symmetric_sinkhorn

__all__ = ["sinkhorn_divergence"]

#: The divergence's default tolerance in float32 (and lower precisions) is this multiple of
#: the engine's (see the ``tol`` entry of :func:`sinkhorn_divergence`).
FLOAT32_TOL_FACTOR = 10.0


def _cloud(ctx, x, name):
    t = ctx.tensor(x, name)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] == 0:
        raise InputError(f"{name}: expected a non-empty (n, d) point cloud, got shape "
                         f"{tuple(t.shape)}")
    return t


def sinkhorn_divergence(x, y, a=None, b=None, *, eps=None, p: float = 2, max_iter: int = 10_000,
                        tol: float | None = None, eps_scaling="auto", callback=None,
                        verbose: bool = False, **kwargs):
    """Debiased Sinkhorn divergence S_eps between sum_i a_i delta_{x_i} and sum_j b_j delta_{y_j}.

    S_eps(mu, nu) = OT_eps(mu, nu) - OT_eps(mu, mu) / 2 - OT_eps(nu, nu) / 2, OT_eps the
    entropic cost of :func:`measureflow.ot.solve` (regulariser eps KL(P | a x b)) for the
    ground cost |x - y|^p (p = 2: squared Euclidean, no 1/2). One balanced Sinkhorn solve for
    (x, y) and two symmetric (averaged) solves for (x, x), (y, y), all on point-cloud
    geometries (the cost is computed on the fly, by compiled kernels for large problems; see
    :mod:`measureflow.ot.kernels`). For probability measures and p in [1, 2], S_eps >= 0 with
    equality iff mu = nu (Feydy et al. 2019, Thm 1).

    Parameters
    ----------
    x, y : array_like or Tensor
        Point clouds (n, d), (m, d) (1-D arrays are treated as d = 1).
    a, b : array_like or Tensor, optional
        Nonnegative weights (uniform 1/n, 1/m if ``None``); equal total masses required.
    eps : float
        Entropic regularisation > 0, in units of the cost |x - y|^p (required). GeomLoss's
        ``blur`` for p = 2 corresponds to eps = 2 blur^2 here, and its value is half of ours.
    p : float, default 2
        Exponent of the ground cost |x - y|^p, p >= 1.
    max_iter : int, default 10000
        Iteration cap of each of the three solves.
    tol : float, optional
        L1 marginal violation of each solve (mass units); default 1e-8 x mass in float64
        (:func:`~measureflow.ot.loop.default_tol`) and 1e-4 x mass in float32 (and lower
        precisions), 10 x the engine's float32 default. Why: at small eps, Sinkhorn's slowest
        modes are nearly constant potential offsets between separated groups of points, which
        move neither S_eps nor its gradient much. Measured on the 1000-point float32 gradient
        flow of ``benchmarks/divergence_flow.py`` at a mid-flow state: tol 1e-4 took 37
        iterations (value error 5e-6 relative, gradient error 1e-3 relative L2 against a
        float64 solve at tol 1e-10); tol 1e-5 took 1479 iterations (6e-9, 8e-6). Pass
        ``tol`` for more.
    eps_scaling : default "auto"
        Schedule of the (x, y) solve, as in :func:`~measureflow.ot.solve`; the symmetric solves
        run without schedule (see :func:`~measureflow.ot.sinkhorn.resolve_schedule`).
    callback : callable, optional
        ``callback(state) -> bool | None`` sees the states of the three solves
        (``state.label`` = ``"xy"``, ``"xx"``, ``"yy"``); returning True stops the current
        solve (docs/ot.md, "Progress and callbacks").
    verbose : bool, default False
        Show progress bars.
    **kwargs
        Only to catch POT / GeomLoss spellings (``reg``, ``blur``, ...), each an InputError
        naming the measureflow spelling.

    Returns
    -------
    float or Tensor
        S_eps: a float for NumPy input, a 0-d tensor for tensor input, differentiable in x, y,
        a, b (envelope theorem: no backpropagation through the iterations). A
        ``ConvergenceWarning`` is emitted if one of the solves does not converge.

    Raises
    ------
    InputError
        Missing or non-positive ``eps``, bad point clouds or weights, unequal masses, ``p < 1``,
        bad ``max_iter`` / ``tol``, or a foreign keyword argument.

    Examples
    --------
    Between two Diracs the only plan is the product and S_eps = |x - y|^2 for every eps:

    >>> import numpy as np
    >>> from measureflow import ot
    >>> print(round(ot.sinkhorn_divergence(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]),
    ...                                    eps=0.1), 8))
    25.0

    The definition, term by term with :func:`~measureflow.ot.solve`, and S_eps(mu, mu) = 0:

    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> y = np.array([[0.5, 0.5], [1.5, 1.0]])
    >>> S = ot.sinkhorn_divergence(x, y, eps=0.5)
    >>> ot_eps = lambda u, v: ot.solve(None, None, ot.dist(u, v), eps=0.5).value
    >>> bool(abs(S - (ot_eps(x, y) - ot_eps(x, x) / 2 - ot_eps(y, y) / 2)) < 1e-7)
    True
    >>> bool(abs(ot.sinkhorn_divergence(x, x, eps=0.5)) < 1e-10)
    True

    References
    ----------
    J. Feydy, T. Sejourne, F.-X. Vialard, S. Amari, A. Trouve, G. Peyre, "Interpolating between
    optimal transport and MMD using Sinkhorn divergences", AISTATS 2019. A. Genevay, G. Peyre,
    M. Cuturi, "Learning generative models with Sinkhorn divergences", AISTATS 2018.
    """
    if kwargs:
        from .solve import foreign_kwargs

        foreign_kwargs(kwargs, "ot.sinkhorn_divergence")
    if eps is None:
        raise InputError("eps: required (entropic regularisation > 0, in units of the cost)")
    callback = check_callback(callback)
    ctx = ArrayContext(x, y, a, b)
    xt, yt = _cloud(ctx, x, "x"), _cloud(ctx, y, "y")
    if xt.shape[1] != yt.shape[1]:
        raise InputError(f"x, y: point dimensions differ ({xt.shape[1]} vs {yt.shape[1]})")
    eps = check_positive(eps, "eps")
    p = check_in_range(p, "p", 1.0, float("inf"), high_open=True)
    at = check_weights(None if a is None else ctx.tensor(a, "a"), xt.shape[0], "a", like=xt)
    bt = check_weights(None if b is None else ctx.tensor(b, "b"), yt.shape[0], "b", like=xt)
    check_masses_match(at, bt, ("a", "b"))
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    if tol is None:
        tol = default_tol(xt.dtype, float(at.detach().sum()))
        if xt.dtype != torch.float64:
            tol *= FLOAT32_TOL_FACTOR
    else:
        tol = check_positive(tol, "tol")

    gxy = PointCloud(xt, yt, cost=p, _validated=True)
    sched = resolve_schedule(eps_scaling, eps, gxy.cost_range, dtype=xt.dtype)
    oxy = entropic_solve(gxy, at, bt, eps=eps, tol=tol, max_iter=max_iter, schedule=sched,
                         callback=callback, verbose=verbose, want_plan=False, label="xy",
                         description="ot.sinkhorn_divergence").value
    sym = []
    for u, wu, lab in ((xt, at, "xx"), (yt, bt, "yy")):
        g = PointCloud(u, cost=p, _validated=True)
        sched = resolve_schedule(eps_scaling, eps, g.cost_range, dtype=xt.dtype, symmetric=True)
        sym.append(symmetric_sinkhorn(g, wu, eps=eps, tol=tol, max_iter=max_iter,
                                      schedule=sched, callback=callback, verbose=verbose,
                                      label=lab, description="ot.sinkhorn_divergence")[0])
    s = oxy - 0.5 * sym[0] - 0.5 * sym[1]
    return ctx.wrap(s)
