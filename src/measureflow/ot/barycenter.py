"""Wasserstein barycenters: fixed support (iterative Bregman) and free support (point clouds).

Given measures nu_1..nu_K and weights lambda_k >= 0 summing to 1, a barycenter minimises
sum_k lambda_k OT(mu, nu_k) (Agueh & Carlier 2011; course notes arXiv 2505.06589, Sec.
"Wasserstein barycenters").

* **Fixed support** (histograms b_k on a common grid, cost matrix C between the barycenter's
  support and the grid): the entropic problem

      min_q sum_k lambda_k min_{P_k 1 = q, P_k^T 1 = b_k} <C, P_k> + eps sum_ij P_k,ij (log P_k,ij - 1)

  solved by iterative Bregman projections (Benamou, Carlier, Cuturi, Nenna & Peyre, SIAM J.
  Sci. Comput. 2015, Sec. 3.2), written here in the log domain:

      v_k = b_k / (K^T u_k),   q = prod_k (u_k * K v_k)^{lambda_k},   u_k = q / (K v_k),

  with K = exp(-C / eps). Stopping rule: sum_k lambda_k ||u_k * K v_k - q||_1 <= tol (the
  spread of the K plans' first marginals around their geometric mean, in units of mass).
  This is the same problem as POT's ``ot.bregman.barycenter`` (used in the tests).

* **Free support** (point clouds Y_k with weights b_k): the support X (N, d) of a measure with
  fixed weights w moves by the fixed-point iteration of Cuturi & Doucet (ICML 2014, Alg. 2) /
  Alvarez-Esteban et al. (2016): X <- sum_k lambda_k T_k(X), T_k(X)_i = (P_k Y_k)_i / w_i the
  barycentric projection of the optimal plan P_k between (X, w) and (Y_k, b_k) for the cost
  |x - y|^2 (exact LP by default, entropic if ``eps`` is given). Stopping rule: relative change
  ||X_new - X||_F / ||X||_F <= tol.
"""

from __future__ import annotations

import dataclasses

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.linalg import sqdist
from ..core.progress import Monitor, check_callback
from ..core.random import make_generator
from ..core.results import SolverResult, report_convergence
from ..core.validation import check_int, check_positive, check_weights
from .exact import exact_ot
from .geometry import Dense
from .loop import Coupled, Hard, SinkhornState, default_tol, sinkhorn_loop
from .sinkhorn import check_relax, entropic_solve, resolve_schedule

__all__ = ["barycenter", "BarycenterResult"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BarycenterResult(SolverResult):
    """Result of :func:`barycenter`.

    ``weights``: barycenter weights (histogram q for fixed support, the fixed weights w for
    free support); ``support``: its support points (``None`` when only a cost matrix was given);
    ``value``: sum_k lambda_k <C_k, P_k> (transport part of the objective at the returned
    plans); ``errors``: trace of the documented stopping error.
    """

    weights: object = None
    support: object = None
    value: object = None


def _lambdas(ctx, weights, K, like):
    lam = check_weights(None if weights is None else ctx.tensor(weights, "weights"), K,
                        "weights", like=like)
    return lam / lam.sum()


def _fixed_support(ctx, hists, C, support, lam, eps, max_iter, tol, callback, verbose):
    Bh = ctx.tensor(hists, "measures")
    if Bh.ndim != 2:
        raise InputError(f"measures: expected a (K, n) array of histograms, got shape "
                         f"{tuple(Bh.shape)}")
    K, n = Bh.shape
    if K == 0 or n == 0:
        raise InputError("measures: empty")
    if bool((Bh.detach() < 0).any()):
        raise InputError("measures: histograms have negative entries")
    mass = Bh.detach().sum(1)
    if bool((mass <= 0).any()):
        raise InputError("measures: every histogram needs positive mass")
    if float((mass - mass[0]).abs().max()) > 1e-6 * float(mass[0]):
        raise InputError("measures: histograms must have equal total masses")
    if C is None:
        if support is None:
            raise InputError("cost: give the cost matrix C (N, n) or the support points (n, d)")
        X = ctx.tensor(support, "support")
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[0] != n:
            raise InputError(f"support: expected ({n}, d) points, got shape {tuple(X.shape)}")
        C = sqdist(X, X)
    else:
        C = ctx.tensor(C, "cost")
        if C.ndim != 2 or C.shape[1] != n:
            raise InputError(f"cost: expected shape (N, {n}), got {tuple(C.shape)}")
    if eps is None:
        raise InputError("eps: the fixed-support barycenter is entropic; give eps > 0")
    eps = check_positive(eps, "eps")
    lam = _lambdas(ctx, lam, K, C)
    geom = Dense(C, _validated=True)
    pd = geom.pdtype
    Nb = C.shape[0]
    # Plans P_k = exp((f_k + g_k - C) / eps) diag(b_k): rows coupled (common marginal q),
    # columns hard (b_k). Same iterates as the log-domain iterative Bregman projections.
    row = Coupled(torch.ones(Nb, dtype=pd, device=C.device), lam.detach().to(pd))
    col = Hard(Bh.detach().to(pd))
    init = (torch.zeros(K, Nb, dtype=pd, device=C.device),
            torch.zeros(K, n, dtype=pd, device=C.device))
    out = sinkhorn_loop(geom, row, col, eps, tol=tol, max_iter=max_iter, init=init,
                        callback=callback, verbose=verbose, description="ot.barycenter")
    if not out.stopped or not out.converged:
        report_convergence(out.converged, "barycenter (iterative Bregman)", out.n_iter,
                           out.error, tol)
    with torch.no_grad():
        q = row.barycenter(out.logr)
        # one more row projection and column projection, so the plans' rows match q
        f = row.update(out.f, out.logr, eps)
        g = col.update(out.g, geom.lse(f / eps, out.g / eps, eps, axis=0), eps)
        lv = g / eps + col.logw
        P = torch.exp(f[:, :, None] / eps + lv[:, None, :] - C.detach().to(pd)[None] / eps)
        value = (lam.detach().to(pd) * (P * C.detach().to(pd)[None]).sum((1, 2))).sum()
    dt = C.dtype
    return BarycenterResult(weights=q.to(dt), support=None if support is None else ctx.tensor(
        support, "support"), value=value.to(dt), converged=out.converged, n_iter=out.n_iter,
        errors=out.errors)


def _inner_plan(w, b, C, eps):
    """The plan of ``ot.solve(w, b, C, eps=eps)`` with its defaults, on validated tensors
    (the tensor-only internals the public face calls: no validation inside the loop)."""
    if eps is None:
        return exact_ot(w, b, C, tol=1e-9)
    geom = Dense(C, _validated=True)
    schedule = resolve_schedule("auto", eps, geom.cost_range, dtype=C.dtype)
    return entropic_solve(geom, w, b, eps=eps, tol=default_tol(C.dtype, float(w.sum())),
                          max_iter=10_000, schedule=schedule, relax=check_relax("auto"),
                          description="ot.barycenter (free support)")


def _free_support(ctx, clouds, lam, eps, n_points, init, init_weights, max_iter, tol, seed,
                  callback, verbose):
    Ys, Bs = [], []
    for k, item in enumerate(clouds):
        if isinstance(item, (tuple, list)) and len(item) == 2 and not isinstance(item[0], float):
            pts, w = item
        else:
            pts, w = item, None
        Y = ctx.tensor(pts, f"measures[{k}]")
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or Y.shape[0] == 0:
            raise InputError(f"measures[{k}]: expected a non-empty (n, d) point cloud, got shape "
                             f"{tuple(Y.shape)}")
        b = check_weights(None if w is None else ctx.tensor(w, f"measures[{k}] weights"),
                          Y.shape[0], f"measures[{k}] weights", like=Y)
        Ys.append(Y)
        Bs.append(b / b.sum())
    if not Ys:
        raise InputError("measures: empty list")
    d = Ys[0].shape[1]
    for k, Y in enumerate(Ys):
        if Y.shape[1] != d:
            raise InputError(f"measures[{k}]: dimension {Y.shape[1]} differs from {d}")
    K = len(Ys)
    lam = _lambdas(ctx, lam, K, Ys[0])
    if init is not None:
        X = ctx.tensor(init, "init").clone()
        if X.ndim != 2 or X.shape[1] != d:
            raise InputError(f"init: expected (N, {d}) points, got shape {tuple(X.shape)}")
        N = X.shape[0]
    else:
        N = Ys[0].shape[0] if n_points is None else check_int(n_points, "n_points", min_value=1)
        gen = make_generator(seed)
        idx = torch.randint(Ys[0].shape[0], (N,), generator=gen)
        X = Ys[0][idx].detach().clone()
        X = X + 1e-6 * X.detach().std() * torch.randn(X.shape, generator=gen).to(X)
    w = check_weights(None if init_weights is None else ctx.tensor(init_weights, "init_weights"),
                      N, "init_weights", like=X)
    w = w / w.sum()
    errors: list[float] = []
    converged = False
    it = 0
    value = None
    mon = Monitor(callback, verbose, tol, "ot.barycenter (free support)")
    mon.__enter__()
    for it in range(1, max_iter + 1):  # noqa: B007
        Xn = torch.zeros_like(X)
        value = X.new_zeros(())
        inner_ok = True
        for k in range(K):
            r = _inner_plan(w.detach(), Bs[k].detach(), sqdist(X.detach(), Ys[k].detach()),
                            eps)
            inner_ok = inner_ok and bool(r.converged)
            Xn = Xn + lam[k] * (r.plan @ Ys[k].detach()) / w.detach()[:, None]
            value = value + lam[k] * r.linear_cost
        err = float((Xn - X).norm() / max(float(X.norm()), 1e-300))
        errors.append(err)
        X = Xn
        if err <= tol:
            # A fixed point of non-converged inner plans is not reported as converged.
            converged = inner_ok
            break
        if mon.active and mon(SinkhornState(it, err, eps, None, None, 0, "free support")):
            break
    mon.__exit__(None, None, None)
    report_convergence(converged, "barycenter (free support)", it, errors[-1], tol)
    return BarycenterResult(weights=w, support=X, value=value, converged=converged, n_iter=it,
                            errors=errors)


def barycenter(measures, weights=None, *, cost=None, support=None, eps=None,
               n_points: int | None = None, init=None, init_weights=None,
               max_iter: int | None = None, tol: float | None = None,
               seed=None, callback=None, verbose: bool = False) -> BarycenterResult:
    """Wasserstein barycenter of ``measures`` with barycentric ``weights`` (uniform if None).

    Minimises sum_k lambda_k OT(mu, nu_k) over measures mu, cost |x - y|^2 (squared
    distance, no 1/2) unless a cost matrix is given. Two modes, chosen by the type of
    ``measures``:

    * a 2-D array or tensor (K, n) of histograms on a common support -> **fixed support**,
      entropic, iterative Bregman projections (Benamou et al. 2015, Sec. 3.2), run by the
      engine's loop (:func:`measureflow.ot.loop.sinkhorn_loop` with a :class:`Coupled` row
      block). Give the cost matrix ``cost`` (N, n) or the common ``support`` points (n, d)
      (then cost = |x - y|^2, N = n). ``eps > 0`` is required (in cost units).
      Defaults: ``max_iter=5000``, ``tol=1e-9`` (stopping error sum_k lambda_k
      ||P_k 1 - q||_1).
    * a list (or tuple) of point clouds, each an (n_k, d) array or a pair (points, weights)
      -> **free support** (Cuturi & Doucet 2014, Alg. 2): ``n_points`` support points
      (default n_1), initialised from ``init`` or drawn from the first cloud (``seed``),
      weights ``init_weights`` (uniform), moved by the barycentric-projection fixed point
      X <- sum_k lambda_k (P_k Y_k) / w; plans exact (``eps=None``, network simplex) or
      entropic (``ot.solve``'s defaults), solved by the engine's tensor internals. Defaults:
      ``max_iter=100``, ``tol=1e-7`` (relative change ||X_new - X||_F / ||X||_F).

    Parameters
    ----------
    measures : (K, n) array or list of point clouds
        The measures nu_k (see above).
    weights : (K,) array, optional
        Barycentric weights lambda_k >= 0 (normalised; default uniform).
    cost, support : array, optional
        Fixed support only: cost matrix (N, n) or support points (n, d).
    eps : float, optional
        Entropic regularisation (cost units); required for fixed support.
    n_points, init, init_weights, seed
        Free support only: number of support points, initial points (N, d), their weights,
        seed of the random initialisation.
    max_iter : int, optional
        Iteration cap (defaults above).
    tol : float, optional
        Stopping tolerance (defaults above).
    callback : callable, optional
        ``callback(state) -> bool | None`` once per iteration (fixed support: a
        :class:`~measureflow.ot.loop.SinkhornState` of the Bregman loop; free support: one
        per fixed-point step, ``state.error`` the relative change of X); True stops.
    verbose : bool, default False
        Show a progress bar.

    Returns
    -------
    BarycenterResult
        ``weights``, ``support``, ``value`` (sum_k lambda_k <C_k, P_k>), ``converged``,
        ``n_iter``, ``errors``. NumPy in -> NumPy out.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.ot.barycenter import barycenter
    >>> r = barycenter([np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])], n_points=2,
    ...                init=np.array([[0.0], [3.0]]))
    >>> r.converged, np.sort(r.support[:, 0]).tolist()
    (True, [1.0, 2.0])

    References
    ----------
    Agueh & Carlier (2011), "Barycenters in the Wasserstein space", SIAM J. Math. Anal.
    Cuturi & Doucet (2014), "Fast computation of Wasserstein barycenters", ICML.
    Benamou, Carlier, Cuturi, Nenna & Peyre (2015), "Iterative Bregman projections for
    regularized transportation problems", SIAM J. Sci. Comput.
    """
    callback = check_callback(callback)
    is_list = isinstance(measures, (list, tuple))
    flat = []
    if is_list:
        for m in measures:
            flat.extend(m if isinstance(m, (list, tuple)) else [m])
    else:
        flat.append(measures)
    ctx = ArrayContext(*flat, cost, support, weights, init)
    if is_list:
        if cost is not None or support is not None:
            raise InputError("cost: free-support barycenters use |x - y|^2 between the points")
        max_iter = 100 if max_iter is None else check_int(max_iter, "max_iter", min_value=1)
        tol = 1e-7 if tol is None else check_positive(tol, "tol")
        if eps is not None:
            eps = check_positive(eps, "eps")
        res = _free_support(ctx, measures, weights, eps, n_points, init, init_weights, max_iter,
                            tol, seed, callback, verbose)
    else:
        max_iter = 5000 if max_iter is None else check_int(max_iter, "max_iter", min_value=1)
        tol = 1e-9 if tol is None else check_positive(tol, "tol")
        res = _fixed_support(ctx, measures, cost, support, weights, eps, max_iter, tol, callback,
                             verbose)
    return ctx.wrap(res)
