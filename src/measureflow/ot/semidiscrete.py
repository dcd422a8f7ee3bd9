"""Semi-discrete optimal transport: a density (samplable or on a grid) to a discrete measure.

Problem (cost |x - y|^2, no 1/2). Given a source probability density rho on R^d and a discrete
target nu = sum_j b_j delta_{y_j}, the semi-dual (course notes arXiv 2505.06589, Sec.
"Semi-discrete OT"; Kitagawa, Merigot & Thibert 2019, Sec. 1) is the concave maximisation

    Phi(psi) = sum_j psi_j b_j + int min_j (|x - y_j|^2 - psi_j) drho(x),

whose gradient is dPhi/dpsi_j = b_j - rho(Lag_j(psi)), with the Laguerre cells

    Lag_j(psi) = {x : |x - y_j|^2 - psi_j <= |x - y_k|^2 - psi_k for all k}.

At the maximiser every cell carries mass b_j, the Laguerre map T(x) = y_{j(x)} is the optimal
(Brenier) map and max Phi = W_2^2(rho, nu) (the *squared* distance).

Two solvers (one stopping rule each, documented on :func:`semidiscrete`):

- ``method="newton"`` (grid densities): damped Newton of Kitagawa-Merigot-Thibert (2019,
  Algorithm 1: step tau = 2^-l, the largest keeping every cell mass >= eps0 and decreasing the
  error by the factor 1 - tau/2). Cell masses are computed deterministically on the grid: a
  pixel goes to its best cell, except that a pixel whose runner-up scores are within
  T = 2 h delta of the best (h: pixel size, delta: median nearest-neighbour distance of the
  y_j, i.e. a band about one pixel wide around each facet) is split linearly between them. The
  masses are then continuous, piecewise smooth functions of psi and Newton uses their exact
  Jacobian (the grid version of the KMT Hessian, whose entries approximate the facet integrals
  int_{Lag_i cap Lag_j} rho / (2 |y_i - y_j|) ds). Without the split the masses would be
  piecewise constant and Newton would stall at the scale of one pixel's mass.
- ``method="sgd"`` (any samplable density): averaged stochastic gradient ascent of Genevay,
  Cuturi, Peyre & Bach (2016, "Stochastic optimization for large-scale OT", Alg. 2):
  psi_{k+1} = psi_k + lr / sqrt(k) (b - mean_batch 1[x in Lag(psi_k)]), Polyak averaging.

Everything is written here by hand in torch (no library ships a general semi-discrete solver;
POT only has the circle case). The iterations are not differentiated; for torch input the Newton
``value`` carries envelope-theorem gradients w.r.t. ``y`` and ``b``:
dW/dy_j = 2 (b_j y_j - int_{Lag_j} x drho) (the Lloyd / quantisation gradient) and
dW/db_j = psi_j + const.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from ..core.arrays import ArrayContext, as_tensor
from ..core.errors import InputError
from ..core.progress import IterState, Monitor, check_callback
from ..core.random import make_generator
from ..core.results import SolverResult, report_convergence
from ..core.validation import (
    check_choice,
    check_int,
    check_ndim,
    check_nonnegative,
    check_positive,
    check_shape,
    check_weights,
)

__all__ = ["semidiscrete", "SemiDiscreteResult", "laguerre_assign"]

_CHUNK = 2 ** 21  # entries of a (points x cells) score block


def _scores(x: torch.Tensor, y: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """s_ij = |x_i - y_j|^2 - psi_j (no clamping: psi shifts may make it negative)."""
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return d2 - psi[None, :]


def _chunks(n: int, m: int):
    step = max(1, _CHUNK // max(m, 1))
    for s in range(0, n, step):
        yield slice(s, min(n, s + step))


def laguerre_assign(x, y, psi):
    """Index j(x) = argmin_j |x - y_j|^2 - psi_j of the Laguerre cell containing each point.

    Cost |x - y|^2 (no 1/2), so psi are the weights of :func:`semidiscrete`; psi = 0 gives the
    Voronoi cells (nearest neighbour).

    Parameters
    ----------
    x : array_like or Tensor
        Points (n, d) (1-D: d = 1).
    y : array_like or Tensor
        Sites (m, d) (1-D: d = 1).
    psi : array_like or Tensor
        Weights (m,).

    Returns
    -------
    ndarray or Tensor
        int64, shape (n,).

    Raises
    ------
    InputError
        Bad point clouds, different dimensions, or ``psi`` not of shape (m,).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> ot.laguerre_assign(np.array([0.2, 0.7]), np.array([0.0, 1.0]), np.zeros(2)).tolist()
    [0, 1]
    >>> ot.laguerre_assign(np.array([0.2, 0.7]), np.array([0.0, 1.0]), np.array([0.0, 0.8])).tolist()
    [1, 1]
    """
    ctx = ArrayContext(x, y, psi)
    x = ctx.tensor(x, "x")
    y = ctx.tensor(y, "y")
    if y.ndim == 1:  # 1-D support, as accepted by semidiscrete
        y = y[:, None]
    if x.ndim == 1 and y.ndim == 2 and y.shape[1] == 1:
        x = x[:, None]
    check_ndim(x, "x", 2)
    check_ndim(y, "y", 2)
    if x.shape[1] != y.shape[1]:
        raise InputError(f"x: dimension {x.shape[1]} differs from y's {y.shape[1]}")
    psi = check_shape(ctx.tensor(psi, "psi"), "psi", (y.shape[0],))
    with torch.no_grad():
        out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        for sl in _chunks(x.shape[0], y.shape[0]):
            out[sl] = _scores(x[sl], y, psi).argmin(1)
    return ctx.wrap(out)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SemiDiscreteResult(SolverResult):
    """Result of :func:`semidiscrete`.

    Attributes
    ----------
    weights:
        Dual (Laguerre) weights psi (m,), defined up to an additive constant (normalised to
        sum_j b_j psi_j = 0 is *not* imposed; compare after centring).
    cell_masses:
        rho(Lag_j(psi)) (m,): exact on the grid (newton) or a Monte-Carlo estimate (sgd).
    value:
        Phi(psi), the semi-dual objective: for every psi a lower bound on W_2^2 (squared, cost
        |x-y|^2), tight at the optimum. For ``newton`` it is evaluated exactly on the grid
        measure (pixel centres); for ``sgd`` it is a Monte-Carlo estimate from ``n_eval``
        samples, so it can exceed W_2^2 by the sampling error.
    primal_cost:
        Transport cost int |x - T(x)|^2 drho of the Laguerre map (an upper bound on W_2^2 of the
        grid measure once cell_masses = b; Monte-Carlo for sgd).
    points:
        The target support y (m, d), kept so that :meth:`assign` and :meth:`map` work.
    method:
        ``"newton"`` or ``"sgd"``.
    """

    weights: Any = None
    cell_masses: Any = None
    value: Any = None
    primal_cost: Any = None
    points: Any = None
    method: str = ""

    def assign(self, x):
        """Laguerre cell index of each point of ``x`` (n, d) (see :func:`laguerre_assign`).

        Returns
        -------
        ndarray or Tensor
            int64, shape (n,).
        """
        return laguerre_assign(x, self.points, self.weights)

    def map(self, x):
        """The Laguerre (semi-discrete Brenier) map T(x) = y_{j(x)}, shape (n, d).

        Returns
        -------
        ndarray or Tensor
            (n, d) images.
        """
        idx = self.assign(x)
        if isinstance(idx, torch.Tensor):
            return torch.as_tensor(self.points, device=idx.device)[idx]
        return self.points[idx]


# ----------------------------------------------------------------------------- grid part
def _grid(density: torch.Tensor, extent, ctx: ArrayContext):
    d = density.ndim
    if extent is None:
        extent = [(0.0, 1.0)] * d
    try:
        ext = [(float(lo), float(hi)) for lo, hi in extent]
    except (TypeError, ValueError):
        raise InputError("extent: expected a sequence of (low, high) pairs, one per axis") from None
    if len(ext) != d:
        raise InputError(f"extent: expected {d} (low, high) pairs, got {len(ext)}")
    for lo, hi in ext:
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise InputError(f"extent: each axis needs finite low < high, got {(lo, hi)}")
    axes = []
    spacing = []
    for (lo, hi), n in zip(ext, density.shape):
        h = (hi - lo) / n
        axes.append(lo + h * (torch.arange(n, dtype=ctx.dtype, device=ctx.device) + 0.5))
        spacing.append(h)
    mesh = torch.meshgrid(*axes, indexing="ij")
    X = torch.stack([g.reshape(-1) for g in mesh], 1)
    return X, ext, spacing


def _grid_pass(X, w, y, psi, T, *, hessian: bool):
    """Cell masses with a linear split of pixels near facets, dual/primal values, Jacobian.

    A pixel x with scores s_k = |x - y_k|^2 - psi_k and best score s_min gives cell k the share
    r_k / sum_l r_l with r_k = (1 - (s_k - s_min) / T)_+ (so a pixel whose second-best cell is
    more than T behind goes wholly to its best cell). The shares, hence the masses, are
    continuous and piecewise smooth in psi; ``J = dM/dpsi`` is their exact derivative.
    """
    m = y.shape[0]
    masses = torch.zeros(m, dtype=X.dtype, device=X.device)
    J = torch.zeros(m, m, dtype=X.dtype, device=X.device) if hessian else None
    dual = X.new_zeros(())
    primal = X.new_zeros(())
    for sl in _chunks(X.shape[0], m):
        s = _scores(X[sl], y, psi)
        ws = w[sl]
        smin, best = s.min(1)
        r = (1.0 - (s - smin[:, None]) / T).clamp_min(0.0)
        S = r.sum(1)
        share = r / S[:, None]
        masses += ws @ share
        dual = dual + (ws * smin).sum()
        primal = primal + (ws[:, None] * share * (s + psi[None, :])).sum()
        if hessian:
            E = (r > 0).to(X.dtype)
            onehot = torch.zeros_like(E)
            onehot[torch.arange(E.shape[0], device=X.device), best] = 1.0
            c = ws / (T * S)
            J += torch.diag(c @ E) - (E * c[:, None]).T @ onehot
            J -= (share * c[:, None]).T @ (E - E.sum(1, keepdim=True) * onehot)
    return masses, dual, primal, J


def _grid_moments(X, w, y, psi, T):
    """First moments sum_x w_x share_j(x) x of the (split) Laguerre cells, shape (m, d)."""
    out = torch.zeros_like(y)
    for sl in _chunks(X.shape[0], y.shape[0]):
        s = _scores(X[sl], y, psi)
        r = (1.0 - (s - s.min(1, keepdim=True).values) / T).clamp_min(0.0)
        share = r / r.sum(1, keepdim=True)
        out += share.T @ (w[sl, None] * X[sl])
    return out


def _typical_spacing(y: torch.Tensor) -> float:
    """Median nearest-neighbour distance of the target points (1 for a single point)."""
    if y.shape[0] < 2:
        return 1.0
    nn = torch.cdist(y, y).fill_diagonal_(float("inf")).min(1).values
    pos = nn[nn > 0]
    return float(pos.median()) if pos.numel() else 1.0


def _init_weights(X, w, y, T):
    """Contracted-Voronoi start: psi_j = (1 - s)|y_j - c|^2 gives the Voronoi cells of
    c + s (y_j - c); pick s maximising the smallest initial cell mass."""
    c = (w[:, None] * X).sum(0) / w.sum()
    r_x = (X - c).norm(dim=1).max()
    r_y = (y - c).norm(dim=1).max().clamp_min(1e-300)
    best, best_psi = -1.0, None
    for f in (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05):
        s = min(1.0, float(f * r_x / r_y))
        psi = (1.0 - s) * ((y - c) ** 2).sum(1)
        masses = _grid_pass(X, w, y, psi, T, hessian=False)[0]
        mn = float(masses.min())
        if mn > best:
            best, best_psi = mn, psi
        if s == 1.0 and f < 1.0:
            break
    return best_psi, best


def _newton(X, w, y, b, T, psi, max_iter, tol, mon):
    m = y.shape[0]
    mass = float(b.sum())
    if psi is None or float(_grid_pass(X, w, y, psi, T, hessian=False)[0].min()) <= 0:
        psi, mn = _init_weights(X, w, y, T)
        if mn <= 0:
            raise InputError("density: the grid is too coarse (or its support too small) to give "
                             f"every one of the {m} Laguerre cells a positive mass; refine the grid")
    masses, dual, primal, J = _grid_pass(X, w, y, psi, T, hessian=True)
    eps0 = 0.5 * min(float(masses.min()), float(b.min()))
    errors = []
    err = float((masses - b).abs().sum()) / mass
    errors.append(err)
    n_iter = 0
    ones = torch.ones(m, dtype=X.dtype, device=X.device)
    while err > tol and n_iter < max_iter:
        scale = float(J.diagonal().abs().max().clamp_min(1e-300))
        A = J + (scale / m) * torch.outer(ones, ones) + 1e-13 * scale * torch.eye(
            m, dtype=X.dtype, device=X.device)
        r = b - masses
        d = torch.linalg.solve(A, r - r.mean())
        tau, accepted = 1.0, False
        for _ in range(40):
            psi_new = psi + tau * d
            m_new, dual_n, primal_n, J_n = _grid_pass(X, w, y, psi_new, T, hessian=True)
            err_new = float((m_new - b).abs().sum()) / mass
            if float(m_new.min()) >= eps0 and err_new <= (1 - tau / 2) * err:
                accepted = True
                break
            tau *= 0.5
        n_iter += 1
        if not accepted:
            break
        psi, masses, dual, primal, J, err = psi_new, m_new, dual_n, primal_n, J_n, err_new
        errors.append(err)
        if mon.active and mon(IterState(n_iter, err, psi, "newton")):
            break
    return psi, masses, dual + (psi * b).sum(), primal, err <= tol, n_iter, errors


# ----------------------------------------------------------------------------- sampling part
def _draw(sampler, n, gen, d, ctx):
    x = sampler(n, gen)
    x = as_tensor(x, "sampler output", dtype=ctx.dtype, device=ctx.device)
    if x.ndim == 1 and d == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape != (n, d):
        raise InputError(f"sampler: must return an array of shape ({n}, {d}), got "
                         f"{tuple(x.shape)}")
    return x


def _grid_sampler(X, w, spacing):
    p = w / w.sum()
    hs = torch.as_tensor(spacing, dtype=X.dtype, device=X.device)

    def sample(n, gen):
        k = torch.multinomial(p.cpu(), n, replacement=True, generator=gen).to(X.device)
        u = torch.rand(n, X.shape[1], generator=gen, dtype=X.dtype).to(X.device) - 0.5
        return X[k] + u * hs

    return sample


def _mc_eval(sampler, n_eval, gen, d, ctx, y, b, psi):
    m = y.shape[0]
    counts = torch.zeros(m, dtype=ctx.dtype, device=ctx.device)
    dual = ctx.scalar(0.0)
    primal = ctx.scalar(0.0)
    done = 0
    while done < n_eval:
        k = min(n_eval - done, max(1, _CHUNK // m))
        x = _draw(sampler, k, gen, d, ctx)
        s = _scores(x, y, psi)
        smin, idx = s.min(1)
        counts += torch.bincount(idx, minlength=m).to(ctx.dtype)
        dual = dual + smin.sum()
        primal = primal + (smin + psi[idx]).sum()
        done += k
    mass = b.sum()
    masses = counts / n_eval * mass
    return masses, dual / n_eval * mass + (psi * b).sum(), primal / n_eval * mass


def _sgd(sampler, d, ctx, y, b, psi, gen, max_iter, tol, batch_size, lr, n_eval, check_every,
         mon):
    m = y.shape[0]
    mass = float(b.sum())
    if lr is None:
        if m > 1:
            d2 = torch.cdist(y, y).fill_diagonal_(float("inf")).min(1).values ** 2
            lr = 2.0 * float(d2.mean()) / float(b.max() / mass)
        else:
            lr = 1.0
    lr = check_positive(lr, "lr")
    psi = torch.zeros(m, dtype=ctx.dtype, device=ctx.device) if psi is None else psi.clone()
    avg = psi.clone()
    errors = []
    converged = False
    masses = dual = primal = None
    k = 0
    while k < max_iter:
        k += 1
        x = _draw(sampler, batch_size, gen, d, ctx)
        idx = _scores(x, y, psi).argmin(1)
        frac = torch.bincount(idx, minlength=m).to(ctx.dtype) / batch_size * mass
        psi = psi + (lr / math.sqrt(k)) * (b - frac) / mass
        avg = avg + (psi - avg) / (k + 1)
        if k % check_every == 0 or k == max_iter:
            masses, dual, primal = _mc_eval(sampler, n_eval, gen, d, ctx, y, b, avg)
            err = float((masses - b).abs().sum()) / mass
            errors.append(err)
            converged = err <= tol
            if mon.active and mon(IterState(k, err, avg, "sgd")):
                break
            if converged:
                break
    return avg, masses, dual, primal, converged, k, errors


# ----------------------------------------------------------------------------- public
def semidiscrete(y, b=None, *, density=None, extent=None, sampler: Callable | None = None,
                 method: str | None = None, max_iter: int | None = None,
                 tol: float | None = None, init=None, batch_size: int = 256,
                 lr: float | None = None, n_eval: int = 100_000, check_every: int = 200,
                 seed=None, callback=None, verbose: bool = False) -> SemiDiscreteResult:
    """Semi-discrete OT from a density to nu = sum_j b_j delta_{y_j} (cost |x - y|^2).

    Parameters
    ----------
    y, b:
        Target support (m, d) (1-D input is read as (m, 1)) and weights (m,) (``None``: 1/m).
    density:
        Source density sampled on a regular cell-centred grid over ``extent``, an array of shape
        (n_1,), (n_1, n_2) or (n_1, n_2, n_3) with d = its number of axes. Values are densities up
        to a constant factor: the grid measure is normalised to the total mass of ``b``.
    extent:
        ((low_1, high_1), ..., (low_d, high_d)) of the grid (default the unit cube).
    sampler:
        Alternative source: a callable ``sampler(n, generator) -> (n, d)`` array of i.i.d.
        samples of a probability density (only for ``method="sgd"``; ``b`` must then sum to 1).
    method:
        ``"newton"`` (default for ``density``) or ``"sgd"`` (default for ``sampler``; also works
        on a grid density, sampling uniformly inside pixels).
    max_iter, tol:
        Stopping rule (both methods): the relative L1 marginal error
        ``sum_j |rho(Lag_j(psi)) - b_j| / sum_j b_j <= tol``. Newton evaluates it exactly on the
        grid (defaults ``tol=1e-9``, ``max_iter=100``; it also stops, unconverged, if the damped
        line search cannot reduce the error). SGD estimates it every ``check_every`` steps from
        ``n_eval`` fresh samples at the averaged weights (defaults ``tol=0.05``,
        ``max_iter=20000``); the estimate has a Monte-Carlo floor of about
        ``sum_j sqrt(b_j / n_eval)``, so ``tol`` must stay above it.
    init:
        Optional initial weights psi (m,). Newton's default start is the contracted-Voronoi
        weights of KMT (2019, Sec. 6) that give every cell positive mass (also used instead of
        an ``init`` that leaves some cell empty, which Newton cannot start from); SGD starts
        at 0.
    batch_size, lr:
        SGD minibatch and base step (step ``lr / sqrt(k)`` on (b - batch cell fractions)/mass;
        default ``lr = 2 mean_j (nearest-neighbour distance of y_j)^2 / max_j b_j``).
    seed:
        Seed or ``torch.Generator`` for the SGD samples.
    callback : callable, optional
        ``callback(state) -> bool | None`` with a
        :class:`~measureflow.core.progress.IterState` after every accepted Newton step
        (``state.label = "newton"``) or every SGD check (``"sgd"``, ``state.iteration`` the
        step of the check): ``state.error`` the relative L1 marginal error just appended to
        ``errors`` (Newton's ``errors[0]``, the error of the start, precedes the first call),
        ``state.iterate`` the weights psi the result would hold now (the averaged weights for
        SGD; internal tensor, do not modify). Returning True stops there; ``converged`` then
        says whether the error met ``tol`` (docs/ot.md, "Progress and callbacks").
    verbose : bool, default False
        Show a progress bar (iteration, marginal error) on stderr.

    Returns
    -------
    SemiDiscreteResult
        ``weights`` psi, ``cell_masses``, ``value`` = Phi(psi) (W_2^2 lower bound, tight at the
        optimum; a Monte-Carlo estimate for ``sgd``), ``primal_cost`` of the Laguerre map,
        ``converged``, ``n_iter``, ``errors``;
        ``result.map(x)`` applies the Laguerre map. Not converged: ``converged=False`` and a
        ``ConvergenceWarning``.

    Raises
    ------
    InputError
        Neither or both of ``density`` / ``sampler``, a bad grid, extent, target or weights
        (with a sampler ``b`` must sum to 1), ``method="newton"`` with a sampler, bad
        ``max_iter`` / ``tol`` / ``init`` / ``batch_size`` / ``lr`` / ``n_eval`` /
        ``check_every``.

    Examples
    --------
    Uniform density on [0, 1] to 1/4 delta_{1/4} + 3/4 delta_{3/4}: the cell boundary is at
    1/4, so psi_2 - psi_1 = (1/4 - 3/4)^2 = 1/4 and W_2^2 = (1/4^3 + 1/4^3 + 1/2^3) / 3 =
    5/96 (the 100-pixel grid measure is within 1e-4 of it):

    >>> import numpy as np
    >>> from measureflow import ot
    >>> res = ot.semidiscrete(np.array([0.25, 0.75]), np.array([0.25, 0.75]),
    ...                       density=np.ones(100))
    >>> bool(res.converged)
    True
    >>> print(np.round(res.cell_masses, 9))
    [0.25 0.75]
    >>> print(round(float(res.weights[1] - res.weights[0]), 9), abs(res.value - 5 / 96) < 1e-4)
    0.25 True

    References
    ----------
    J. Kitagawa, Q. Merigot, B. Thibert, "Convergence of a Newton algorithm for semi-discrete
    optimal transport", J. Eur. Math. Soc. 21(9), 2019. A. Genevay, M. Cuturi, G. Peyre, F.
    Bach, "Stochastic optimization for large-scale optimal transport", NeurIPS 2016.
    """
    ctx = ArrayContext(y, b, density, init)
    y = ctx.tensor(y, "y")
    if y.ndim == 1:
        y = y[:, None]
    check_ndim(y, "y", 2)
    m, d = y.shape
    if m == 0:
        raise InputError("y: empty target support")
    b = check_weights(None if b is None else ctx.tensor(b, "b"), m, "b", like=y)
    if (density is None) == (sampler is None):
        raise InputError("density: give exactly one of density (grid) or sampler")
    if method is None:
        method = "newton" if density is not None else "sgd"
    check_choice(method, "method", ("newton", "sgd"))
    if init is not None:
        init = check_shape(ctx.tensor(init, "init"), "init", (m,))
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    n_eval = check_int(n_eval, "n_eval", min_value=1)
    check_every = check_int(check_every, "check_every", min_value=1)
    callback = check_callback(callback)

    y_in, b_in = y, b
    with torch.no_grad():
        y = y.detach()
        b = b.detach()
        init = None if init is None else init.detach()
        if density is not None:
            rho = check_nonnegative(ctx.tensor(density, "density").detach(), "density")
            check_ndim(rho, "density", (1, 2, 3))
            if rho.ndim != d:
                raise InputError(f"density: has {rho.ndim} axes but y has dimension {d}")
            if not float(rho.sum()) > 0:
                raise InputError("density: total mass must be positive")
            X, ext, spacing = _grid(rho, extent, ctx)
            w = rho.reshape(-1) / rho.sum() * b.sum()
            keep = w > 0
            X, w = X[keep], w[keep]
            if method == "newton":
                max_iter = 100 if max_iter is None else check_int(max_iter, "max_iter",
                                                                  min_value=1)
                tol = 1e-9 if tol is None else check_positive(tol, "tol")
                T = 2.0 * max(spacing) * _typical_spacing(y)
                mon = Monitor(callback, verbose, tol, "ot.semidiscrete (newton)")
                with mon:
                    psi, masses, value, primal, conv, n_iter, errors = _newton(
                        X, w, y, b, T, init, max_iter, tol, mon)
                what = " (stopped by callback)" if mon.stopped else ""
                report_convergence(conv, f"semidiscrete(newton){what}", n_iter, errors[-1],
                                   tol)
                if y_in.requires_grad or b_in.requires_grad:
                    # envelope theorem: dW/db_j = psi_j + (dual part per unit mass, since the
                    # grid density is normalised to sum(b)); dW/dy_j = 2 (b_j y_j - int_Lag_j x)
                    mom = _grid_moments(X, w, y, psi, T)
                    phibar = (value - (psi * b).sum()) / b.sum()
                    gy = 2.0 * (masses[:, None] * y - mom)
                    with torch.enable_grad():
                        value = (value + ((psi + phibar) * (b_in - b)).sum()
                                 + (gy * (y_in - y)).sum())
                return ctx.wrap(SemiDiscreteResult(
                    weights=psi, cell_masses=masses, value=value, primal_cost=primal, points=y,
                    method="newton", converged=bool(conv), n_iter=n_iter, errors=errors))
            sampler = _grid_sampler(X, w, spacing)
        else:
            if not callable(sampler):
                raise InputError("sampler: must be a callable sampler(n, generator)")
            if method == "newton":
                raise InputError("method: 'newton' needs a grid density; use method='sgd' with "
                                 "a sampler")
            if abs(float(b.sum()) - 1.0) > 1e-6:
                raise InputError(f"b: must sum to 1 to match a probability sampler "
                                 f"(sum {float(b.sum()):.6g})")
        max_iter = 20000 if max_iter is None else check_int(max_iter, "max_iter", min_value=1)
        tol = 0.05 if tol is None else check_positive(tol, "tol")
        gen = make_generator(seed)
        mon = Monitor(callback, verbose, tol, "ot.semidiscrete (sgd)")
        with mon:
            psi, masses, value, primal, conv, n_iter, errors = _sgd(
                sampler, d, ctx, y, b, init, gen, max_iter, tol, batch_size, lr, n_eval,
                check_every, mon)
        what = " (stopped by callback)" if mon.stopped else ""
        report_convergence(conv, f"semidiscrete(sgd){what}", n_iter, errors[-1], tol)
        return ctx.wrap(SemiDiscreteResult(
            weights=psi, cell_masses=masses, value=value, primal_cost=primal, points=y,
            method="sgd", converged=bool(conv), n_iter=n_iter, errors=errors))
