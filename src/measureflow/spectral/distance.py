"""Spectral Wasserstein distances between discrete measures and between Gaussians.

Paper: G. Peyre, arXiv 2604.04891, Sec. 3 (static problem, Thm. "minmax"), App. A and D
(Gaussians, Prop. "gaussian", Cor. "commuting").

Definition (distance, not its square):

    W_gamma(mu, nu)^2 = inf_{pi in Pi(mu, nu)} gamma_p(Sigma_pi),
    Sigma_pi = int (y - x)(y - x)^T dpi   (the *uncentered* displacement second moment),

gamma_p(S) = ||lambda(S)||_p. p = 1 is W2 (cost |x - y|^2, no 1/2); p = inf is
lambda_max. The gauge acts on the whole matrix, so optimal plans may split mass even between
uniform clouds of equal size: plans are never restricted to maps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.results import SolverResult, report_convergence
from ..core.validation import (
    check_int,
    check_masses_match,
    check_ndim,
    check_nonnegative,
    check_positive,
    check_psd,
    check_same_dim,
    check_weights,
)
from ._maxmin import solve_maxmin
from .schatten import check_p

__all__ = ["SpectralWassersteinResult", "spectral_wasserstein", "displacement_moment",
           "gauge_value", "SpectralBuresResult", "spectral_bures"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpectralWassersteinResult(SolverResult):
    """Result of :func:`spectral_wasserstein`.

    Attributes
    ----------
    value : float or 0-d tensor
        W_gamma = gamma_p(Sigma_plan)^{1/2}: the distance attained by ``plan`` (an upper bound
        within ``gap`` of the optimum). Differentiable in x, y by the envelope theorem (plan
        fixed; for p = inf through <Q, Sigma_plan>, since lambda_max is often degenerate).
    plan : array, shape (n, m)
        Optimal coupling, a mixture of exact-LP vertex plans.
    Q : array, shape (d, d)
        The maximizing matrix of the max-min formula (Q in K_p, the certified lower bound
        <Q, Sigma_{pi_Q}> = ``lower``); I for p = 1.
    gap : float or 0-d tensor
        Certified duality gap on the *squared* scale: value^2 - lower >= 0.
    lower : float or 0-d tensor
        Certified lower bound of W_gamma^2 (max over the generated Q of W2^2 between the
        Q^{1/2}-pushed measures).
    moment : array, shape (d, d)
        Sigma_plan.
    p : float
        The Schatten index.
    converged, n_iter, errors
        Of the cutting plane (p > 1) or the LP (p = 1).
    """

    value: Any = None
    plan: Any = None
    Q: Any = None
    gap: Any = None
    lower: Any = None
    moment: Any = None
    p: float = 1.0


def gauge_value(S, p):
    """Spectral gauge gamma_p(S) = ||lambda(S)||_p of symmetric PSD matrices S (..., d, d).

    p = 1: trace, p = inf: lambda_max. gamma_p(Sigma_pi) of a displacement moment is the
    squared spectral Wasserstein cost of the plan pi (arXiv 2604.04891, Sec. 3). Negative
    round-off eigenvalues are clipped to 0.

    Parameters
    ----------
    S : array_like or Tensor, shape (..., d, d)
        Symmetric positive semidefinite matrices.
    p : float or "inf"
        Schatten index in [1/2, inf].

    Returns
    -------
    float or array, shape (...)
        NumPy in/out or torch in/out (differentiable).

    Raises
    ------
    InputError
        ``S`` not square, not symmetric or not PSD, ``p`` outside [1/2, inf].

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral import gauge_value
    >>> S = np.diag([1.0, 4.0])
    >>> gauge_value(S, 1), gauge_value(S, "inf"), round(gauge_value(S, 2), 6)
    (5.0, 4.0, 4.123106)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, Sec. 3.
    """
    ctx = ArrayContext(S)
    S = ctx.tensor(S, "S")
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise InputError(f"S: expected square matrices (..., d, d), got shape {tuple(S.shape)}")
    check_psd(S, "S")
    p = check_p(p)
    return ctx.wrap(_gauge(S, p))


def _gauge(S: torch.Tensor, p: float) -> torch.Tensor:
    """gamma_p on torch tensors, no validation (internal)."""
    if p == 1:
        return torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
    ev = torch.linalg.eigvalsh(0.5 * (S + S.transpose(-1, -2))).clamp_min(0.0)
    if math.isinf(p):
        return ev.amax(-1)
    m = ev.amax(-1, keepdim=True)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    return m.squeeze(-1) * ((ev / safe) ** p).sum(-1) ** (1.0 / p)


def _moment(x, y, a, b, P):
    """Sigma_P = sum_ij P_ij (y_j - x_i)(y_j - x_i)^T using the marginals a, b of P."""
    xPy = x.transpose(0, 1) @ P @ y
    return ((x * a[:, None]).transpose(0, 1) @ x + (y * b[:, None]).transpose(0, 1) @ y
            - xPy - xPy.transpose(0, 1))


def displacement_moment(x, y, plan):
    """Displacement second moment Sigma_pi = sum_ij plan_ij (y_j - x_i)(y_j - x_i)^T.

    Uncentered; tr Sigma_pi is the transport cost of the plan for |x - y|^2 (no 1/2) and
    gamma_p(Sigma_pi) its spectral Wasserstein cost (arXiv 2604.04891, Sec. 3).

    Parameters
    ----------
    x : array_like or Tensor, shape (n, d)
    y : array_like or Tensor, shape (m, d)
    plan : array_like or Tensor, shape (n, m)
        Nonnegative coupling (any total mass).

    Returns
    -------
    array, shape (d, d)

    Raises
    ------
    InputError
        ``x``, ``y`` not 2-D or of different dimensions, ``plan`` of the wrong shape or with a
        negative entry.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral import displacement_moment
    >>> x, y = np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 3.0]])
    >>> print(displacement_moment(x, y, np.eye(2) / 2))
    [[0. 0.]
     [0. 5.]]
    """
    ctx = ArrayContext(x, y, plan)
    x, y, P = ctx.tensor(x, "x"), ctx.tensor(y, "y"), ctx.tensor(plan, "plan")
    check_ndim(x, "x", 2)
    check_ndim(y, "y", 2)
    check_same_dim(x, y, ("x", "y"))
    if P.shape != (x.shape[0], y.shape[0]):
        raise InputError(f"plan: expected shape {(x.shape[0], y.shape[0])}, got {tuple(P.shape)}")
    check_nonnegative(P, "plan")
    return ctx.wrap(_moment(x, y, P.sum(1), P.sum(0), P))


def spectral_wasserstein(x, y, a=None, b=None, *, p, tol: float = 1e-6, max_iter: int = 200):
    """Spectral Wasserstein distance W_gamma_p between two weighted point clouds.

    W_gamma(mu, nu)^2 = min_{pi in Pi(mu, nu)} gamma_p(Sigma_pi), Sigma_pi = int (y - x)(y -
    x)^T dpi, gamma_p(S) = ||lambda(S)||_p: a distance, not its square (arXiv 2604.04891,
    Sec. 3, Thm. "minmax"). p = 1 is W2 for the cost |x - y|^2 (no 1/2); for p > 1 optimal
    plans may split mass even between uniform clouds of equal size. Comparison with W2:
    W2 / sqrt(d) <= W_gamma_inf <= W_gamma_p <= W2.

    - p = 1: the exact LP with cost |y_j - x_i|^2 (``measureflow.ot.solve(eps=None)``, POT's
      network simplex); value = W2, Q = I, gap = LP duality gap (0 up to round-off).
    - p > 1: the max-min formula W^2 = max_{Q in K_p} W2^2(Q^{1/2}#mu, Q^{1/2}#nu) (concave in
      Q; K_p = {Q >= 0, ||Q||_{S_p'} <= 1}), every inner problem an exact LP through
      ``measureflow.ot.solve``, combined with the primal problem over mixtures of the LP plans
      by the cutting plane of :mod:`measureflow.spectral._maxmin`.

    Parameters
    ----------
    x : array_like or Tensor, shape (n, d)
    y : array_like or Tensor, shape (m, d)
        Non-empty point clouds of the same dimension.
    a, b : array_like, shapes (n,) and (m,), optional
        Nonnegative weights with equal totals (relative 1e-6); default uniform.
    p : float or "inf"
        Schatten index in [1, inf] (keyword-only, required).
    tol : float, default 1e-6
        Stop when the certified gap value^2 - lower <= tol x value^2 (> 0).
    max_iter : int, default 200
        Cutting-plane iterations (>= 1).

    Returns
    -------
    SpectralWassersteinResult
        Not certified within ``max_iter`` (or an LP not converged): ``converged=False`` and a
        ``ConvergenceWarning``.

    Raises
    ------
    InputError
        Clouds not 2-D, empty or of different dimensions, bad weights or unequal masses, ``p``
        outside [1, inf], bad ``tol`` / ``max_iter``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.spectral import spectral_wasserstein
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + [2.0, 0.0]
    >>> w2 = spectral_wasserstein(x, y, p=1).value
    >>> r = spectral_wasserstein(x, y, p=math.inf)
    >>> bool(r.converged), bool(w2 / math.sqrt(2) <= r.value <= w2)
    (True, True)
    >>> bool(r.value ** 2 - r.lower <= 1e-6 * r.value ** 2)      # certified
    True

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, Sec. 3.
    """
    from .. import ot as mot

    ctx = ArrayContext(x, y, a, b)
    x, y = ctx.tensor(x, "x"), ctx.tensor(y, "y")
    check_ndim(x, "x", 2)
    check_ndim(y, "y", 2)
    check_same_dim(x, y, ("x", "y"))
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        raise InputError("x, y: empty point cloud")
    a = check_weights(None if a is None else ctx.tensor(a, "a"), n, "a", like=x)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), m, "b", like=x)
    check_masses_match(a, b, ("a", "b"))
    p = check_p(p, low=1.0)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    d = x.shape[1]
    xd, yd, ad, bd = x.detach(), y.detach(), a.detach(), b.detach()
    if p == 1:
        C = torch.cdist(xd, yd) ** 2
        res = mot.solve(ad, bd, C)
        P = torch.as_tensor(res.plan, dtype=x.dtype, device=x.device)
        S = _moment(x, y, a, b * (a.sum() / b.sum()), P)
        val2 = torch.diagonal(S).sum()
        gap = float(res.certificate.gap) if res.certificate is not None else 0.0
        out = SpectralWassersteinResult(
            value=val2.clamp_min(0).sqrt(), plan=P, Q=torch.eye(d, dtype=x.dtype, device=x.device),
            gap=torch.as_tensor(gap, dtype=x.dtype), lower=val2.detach() - gap, moment=S, p=p,
            converged=bool(res.converged), n_iter=1, errors=[gap])
        return ctx.wrap(out)

    xn = xd.cpu().numpy().astype(np.float64)
    yn = yd.cpu().numpy().astype(np.float64)
    an = ad.cpu().numpy().astype(np.float64)
    bn = bd.cpu().numpy().astype(np.float64)
    bn = bn * (an.sum() / bn.sum())
    base = (xn * an[:, None]).T @ xn + (yn * bn[:, None]).T @ yn
    lp_ok = [True]

    def oracle(Q):
        R = _sqrt_psd_np(Q)
        xq, yq = xn @ R, yn @ R
        C = np.maximum((xq ** 2).sum(1)[:, None] + (yq ** 2).sum(1)[None, :] - 2 * xq @ yq.T, 0)
        res = mot.solve(an, bn, C)
        P = np.asarray(res.plan)
        lp_ok[0] = lp_ok[0] and bool(res.converged)
        xPy = xn.T @ P @ yn
        S = base - xPy - xPy.T
        rows, cols = np.nonzero(P)
        return 0.5 * (S + S.T), (rows, cols, P[rows, cols])

    sol = solve_maxmin(oracle, d, p, tol=tol, max_iter=max_iter)
    Pn = np.zeros((n, m))
    for lk, (r, c, v) in zip(sol["lam"], sol["atoms"]):
        np.add.at(Pn, (r, c), lk * v)
    P = torch.as_tensor(Pn, dtype=x.dtype, device=x.device)
    S = _moment(x, y, P.sum(1).detach(), P.sum(0).detach(), P)
    Qt = torch.as_tensor(sol["Q"], dtype=x.dtype, device=x.device)
    val2 = _gauge(S, p)
    if math.isinf(p) and val2.requires_grad:
        # lambda_max is typically degenerate at the optimum: differentiate the saddle value
        # <Q*, Sigma_pi*> (Danskin) instead of an arbitrary top eigenvector.
        lin = (Qt * S).sum()
        val2 = val2.detach() + (lin - lin.detach())
    lower = sol["lower"]
    gap = max(float(val2.detach()) - lower, 0.0)
    converged = sol["converged"] and lp_ok[0]
    report_convergence(converged, f"spectral_wasserstein(p={p})", sol["n_iter"],
                       sol["errors"][-1] if sol["errors"] else float("nan"), tol)
    out = SpectralWassersteinResult(
        value=val2.clamp_min(0).sqrt(), plan=P,
        Q=Qt, gap=torch.as_tensor(gap, dtype=x.dtype, device=x.device),
        lower=torch.as_tensor(lower, dtype=x.dtype, device=x.device), moment=S, p=p,
        converged=converged, n_iter=sol["n_iter"], errors=sol["errors"])
    return ctx.wrap(out)


def _sqrt_psd_np(Q: np.ndarray) -> np.ndarray:
    ev, V = np.linalg.eigh(0.5 * (Q + Q.T))
    return (V * np.sqrt(np.clip(ev, 0, None))) @ V.T


# ----------------------------------------------------------------------------------------------
# Gaussians
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpectralBuresResult(SolverResult):
    """Full output of :func:`spectral_bures` (``full_output=True``).

    Attributes
    ----------
    value : float or 0-d tensor
        The distance.
    K : array, shape (d, d), or None
        Optimal cross-covariance (None for the p = 1 closed form).
    Q : array, shape (d, d), or None
        Maximizing matrix of the max-min form (I for p = 1; None for the commuting closed form
        with p > 1 and for ``"primal"``).
    gap : float or None
        Certified gap on the squared scale (0 for the closed form, None for ``"primal"``).
    lower : float or None
        Certified lower bound of W^2 (None for ``"primal"``).
    method : str
        ``"closed_form"``, ``"maxmin"`` or ``"primal"``.
    converged, n_iter, errors
        Of the iterative method (``True, 0, []`` for the closed form).
    """

    value: Any = None
    K: Any = None
    Q: Any = None
    gap: Any = None
    lower: Any = None
    method: str = ""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def spectral_bures(S0, S1, p, m0=None, m1=None, *, method: str = "auto", tol: float = 1e-8,
                   max_iter: int | None = None, full_output: bool = False):
    """Spectral Wasserstein distance between N(m0, S0) and N(m1, S1) (the distance).

        W^2 = min_K gamma_p(dm dm^T + S0 + S1 - K - K^T)  s.t.  [[S0, K], [K^T, S1]] >= 0,

    dm = m1 - m0 (means default 0); the mean enters *inside* gamma (it separates only for
    p = 1). arXiv 2604.04891, Prop. "gaussian" (App. D). p = 1 is the Bures-Wasserstein
    distance W2 (cost |x - y|^2).

    Parameters
    ----------
    S0, S1 : array_like or Tensor, shape (d, d)
        Symmetric PSD covariances.
    p : float or "inf"
        Schatten index in [1, inf].
    m0, m1 : array_like, shape (d,), optional
        Means (default 0).
    method : {"auto", "closed_form", "maxmin", "primal"}, default "auto"
        ``"closed_form"`` (Cor. "commuting": S0 S1 = S1 S0 and, unless p = 1, dm = 0):
        W^2 = gamma_p((S0^{1/2} - S1^{1/2})^2), plus |dm|^2 for p = 1 (then it is Bures-W2 for
        any S0, S1); ``"maxmin"``: the general solver, W^2 = max_{Q in K_p} [Bures^2(Q^{1/2} S0
        Q^{1/2}, Q^{1/2} S1 Q^{1/2}) + dm^T Q dm], each inner problem solved exactly through the
        polar factor of S1^{1/2} Q S0^{1/2} (K = S0^{1/2} W U^T S1^{1/2}), combined with the
        primal problem over mixtures of these K by the certified cutting plane (gap <= tol x W^2);
        ``"primal"``: an independent check, projected (accelerated) gradient on the contraction
        R of K = S0^{1/2} R S1^{1/2} (projection = clipping the singular values of R at 1;
        p = inf through the smoothing (1/beta) log tr exp(beta M), beta = 50 d / (tol^{1/2}
        scale)); it gives a feasible K, hence an upper bound, without a certificate: it stops
        when the objective changes by less than 0.01 ``tol`` (relative) in an iteration, after
        at least 10 iterations (a stall test, not a gap);
        ``"auto"``: closed form when it applies, else maxmin.
    tol : float, default 1e-8
        Relative tolerance (> 0) of the certified gap (maxmin) or of the stall test (primal).
    max_iter : int, optional
        Iteration cap, honoured exactly: cutting-plane iterations (maxmin, default 300) or
        accelerated-gradient iterations (primal, default 6000). Hitting it gives
        ``converged=False`` and a ConvergenceWarning.
    full_output : bool, default False
        Return a :class:`SpectralBuresResult` instead of the distance.

    Returns
    -------
    float, 0-d tensor or SpectralBuresResult
        NumPy in/out or torch in/out. Gradients in (S0, S1, m0, m1) are envelope gradients:
        the optimal contraction R (K = S0^{1/2} R S1^{1/2}) is held fixed (for p = inf through
        <Q*, M>); the closed form is differentiated directly.

    Raises
    ------
    InputError
        Covariances not symmetric PSD or of different shapes, means of the wrong shape, ``p``
        outside [1, inf], an unknown ``method``, ``"closed_form"`` where it does not apply
        (non-commuting S0, S1 or different means, p > 1), bad ``tol`` / ``max_iter``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.spectral import spectral_bures
    >>> S0, S1 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])   # commuting: closed form
    >>> spectral_bures(S0, S1, math.inf), round(spectral_bures(S0, S1, 1), 6)
    (1.0, 1.414214)
    >>> r = spectral_bures(np.array([[2.0, 1.0], [1.0, 2.0]]), S1, math.inf, full_output=True)
    >>> r.method, bool(r.converged), round(float(r.value), 4)
    ('maxmin', True, 0.7507)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. D.
    """
    ctx = ArrayContext(S0, S1, m0, m1)
    S0, S1 = ctx.tensor(S0, "S0"), ctx.tensor(S1, "S1")
    check_psd(S0, "S0")
    check_psd(S1, "S1")
    if S0.ndim != 2 or S0.shape != S1.shape:
        raise InputError(f"S1: expected shape {tuple(S0.shape)} like S0, got {tuple(S1.shape)}")
    d = S0.shape[0]
    m0 = ctx.zeros(d) if m0 is None else ctx.tensor(m0, "m0")
    m1 = ctx.zeros(d) if m1 is None else ctx.tensor(m1, "m1")
    for nm, mm in (("m0", m0), ("m1", m1)):
        if mm.shape != (d,):
            raise InputError(f"{nm}: expected shape ({d},), got {tuple(mm.shape)}")
    p = check_p(p, low=1.0)
    if method not in ("auto", "closed_form", "maxmin", "primal"):
        raise InputError("method: must be 'auto', 'closed_form', 'maxmin' or 'primal', "
                         f"got {method!r}")
    tol = check_positive(tol, "tol")
    if max_iter is None:
        max_iter = 6000 if method == "primal" else 300
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    dm = m1 - m0
    scale = max(float(S0.detach().abs().max()), float(S1.detach().abs().max()), 1e-300)
    commuting = float((S0 @ S1 - S1 @ S0).detach().abs().max()) <= 1e-10 * scale ** 2
    mean_zero = float(dm.detach().abs().max()) == 0.0
    applies = p == 1 or (commuting and mean_zero)
    if method == "closed_form" and not applies:
        raise InputError("method: the closed form needs commuting S0, S1 and equal means "
                         "(or p = 1)")
    from ..core.linalg import sqrtm_psd

    if method == "closed_form" or (method == "auto" and applies):
        R0, R1 = sqrtm_psd(S0), sqrtm_psd(S1)
        if p == 1:
            C = sqrtm_psd(R0 @ S1 @ R0)
            val2 = (torch.trace(S0) + torch.trace(S1) - 2 * torch.trace(C) + dm @ dm)
            K = None
            Q = torch.eye(d, dtype=S0.dtype, device=S0.device)
        else:
            D = R0 - R1
            val2 = _gauge(D @ D, p)
            K = 0.5 * (R0 @ R1 + R1 @ R0)
            Q = None
        val = val2.clamp_min(0).sqrt()
        if not full_output:
            return ctx.wrap(val)
        return ctx.wrap(SpectralBuresResult(value=val, K=K, Q=Q, gap=ctx.scalar(0.0),
                                            lower=val2, method="closed_form"))

    if method == "primal":
        return ctx.wrap(_bures_primal(S0, S1, dm, p, tol=tol, max_iter=max_iter,
                                      full_output=full_output))

    A0, A1, dmn = _np(S0), _np(S1), _np(dm)
    ev0, V0 = np.linalg.eigh(A0)
    ev1, V1 = np.linalg.eigh(A1)
    R0 = (V0 * np.sqrt(np.clip(ev0, 0, None))) @ V0.T
    R1 = (V1 * np.sqrt(np.clip(ev1, 0, None))) @ V1.T
    base = np.outer(dmn, dmn) + A0 + A1

    def oracle(Q):
        U, _, Wh = np.linalg.svd(R1 @ Q @ R0)
        O = Wh.T @ U.T
        K = R0 @ O @ R1
        S = base - K - K.T
        return 0.5 * (S + S.T), O

    sol = solve_maxmin(oracle, d, p, tol=tol, max_iter=max_iter)
    # K = S0^{1/2} R S1^{1/2} with the contraction R = sum_k lam_k O_k held fixed: the feasible
    # set {||R||_op <= 1} does not depend on (S0, S1, dm), so autograd of this expression is the
    # envelope (Danskin) gradient of W^2
    Rbar = sum(lk * Ok for lk, Ok in zip(sol["lam"], sol["atoms"]))
    Rt = torch.as_tensor(Rbar, dtype=S0.dtype, device=S0.device)
    Qt = torch.as_tensor(sol["Q"], dtype=S0.dtype, device=S0.device)
    Kt = sqrtm_psd(S0) @ Rt @ sqrtm_psd(S1)
    M = torch.outer(dm, dm) + S0 + S1 - Kt - Kt.T
    val2 = _gauge(M, p)
    if math.isinf(p) and val2.requires_grad:  # degenerate lambda_max: Danskin through <Q*, M>
        lin = (Qt * M).sum()
        val2 = val2.detach() + (lin - lin.detach())
    gap = max(float(val2.detach()) - sol["lower"], 0.0)
    report_convergence(sol["converged"], f"spectral_bures(p={p})", sol["n_iter"],
                       sol["errors"][-1] if sol["errors"] else float("nan"), tol)
    val = val2.clamp_min(0).sqrt()
    if not full_output:
        return ctx.wrap(val)
    return ctx.wrap(SpectralBuresResult(
        value=val, K=Kt, Q=Qt,
        gap=ctx.scalar(gap), lower=ctx.scalar(sol["lower"]), method="maxmin",
        converged=sol["converged"], n_iter=sol["n_iter"], errors=sol["errors"]))


def _bures_primal(S0, S1, dm, p, *, tol, max_iter, full_output):
    """Projected FISTA on R (||R||_op <= 1), K = S0^{1/2} R S1^{1/2}. Upper bound only."""
    from ..core.linalg import sqrtm_psd

    d = S0.shape[0]
    R0, R1 = sqrtm_psd(S0.detach()), sqrtm_psd(S1.detach())
    M0 = torch.outer(dm, dm).detach() + S0.detach() + S1.detach()
    scale = float(torch.linalg.eigvalsh(M0).abs().max()) or 1.0
    beta = 50.0 * d / (math.sqrt(tol) * scale)

    def obj_grad(X):
        K = R0 @ X @ R1
        M = M0 - K - K.T
        ev, V = torch.linalg.eigh(0.5 * (M + M.T))
        ev = ev.clamp_min(0.0)
        if math.isinf(p):
            e = torch.exp(beta * (ev - ev.max()))
            val = ev.max() + torch.log(e.sum()) / beta
            G = (V * (e / e.sum())) @ V.T
        elif p == 1:
            val, G = ev.sum(), torch.eye(d, dtype=M.dtype, device=M.device)
        else:
            m = ev.max().clamp_min(1e-300)
            r = ev / m
            nrm = (r ** p).sum() ** (1 / p)
            val = m * nrm
            G = (V * (r ** (p - 1) / nrm ** (p - 1))) @ V.T
        return val, -2.0 * R0 @ G @ R1

    def project(X):
        U, sv, Wh = torch.linalg.svd(X)
        return (U * sv.clamp_max(1.0)) @ Wh

    X = torch.zeros(d, d, dtype=S0.dtype, device=S0.device)
    Y, t, L = X.clone(), 1.0, 1.0
    f_prev = float("inf")
    errors, converged, it = [], False, 0
    for it in range(1, max_iter + 1):
        fy, gy = obj_grad(Y)
        while True:
            Xn = project(Y - gy / L)
            fx, _ = obj_grad(Xn)
            D = Xn - Y
            if float(fx) <= float(fy) + float((gy * D).sum()) + 0.5 * L * float((D * D).sum()) + 1e-15:
                break
            L *= 2.0
        tn = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        Y = Xn + ((t - 1) / tn) * (Xn - X)
        X, t = Xn, tn
        L *= 0.9
        rel = abs(f_prev - float(fx)) / max(abs(float(fx)), 1e-300)
        errors.append(rel)
        f_prev = float(fx)
        if rel <= 0.01 * tol and it > 10:
            converged = True
            break
    report_convergence(converged, f"spectral_bures(p={p}, method='primal')", it,
                       errors[-1], 0.01 * tol)
    K = sqrtm_psd(S0) @ X @ sqrtm_psd(S1)  # X fixed: envelope gradient in (S0, S1, dm)
    val2 = _gauge(torch.outer(dm, dm) + S0 + S1 - K - K.T, p)
    val = val2.clamp_min(0).sqrt()
    if not full_output:
        return val
    return SpectralBuresResult(value=val, K=K, Q=None, gap=None, lower=None, method="primal",
                               converged=converged, n_iter=it, errors=errors)
