"""Schatten norms, the Schatten-p normalized step (matrix LMO) and its measure version.

Paper: G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv 2604.04891, Sec. 2 and
App. A (Prop. "schatten", Cor. "selectors").

Conventions
-----------
The gauge gamma_p(S) = ||lambda(S)||_p on PSD matrices (p = 1: trace, p = inf: lambda_max)
induces the velocity norm N(V) = gamma_p(V^T V)^{1/2} = ||V||_{S_{2p}} and the dual norm
N_*(G) = ||G||_{S_q} with q = (2p)' = 2p / (2p - 1). The *normalized step* (the matrix LMO) is

    J_p(G) = argmin_V <G, V>_F + 1/2 N(V)^2 = -||G||_{S_q}^{2-q} U diag(s^{q-1}) W^T,

for the compact SVD G = U diag(s) W^T. p = 1 gives -G (gradient descent) and p = inf gives
-||G||_* U W^T (Muon, *trace-scaled*: the raw polar step -U W^T runs the same paths on another
clock). The identities <G, J_p(G)> = -||G||_{S_q}^2 and N(J_p(G)) = ||G||_{S_q} hold exactly.

Numerics: the reference path uses ``torch.linalg.svd`` (LAPACK). Singular values
<= ``rtol`` x s_max are treated as 0 (default rtol = machine eps x max(m, n)): at rank deficiency
the argmin is not unique and the selector takes 0 on the kernel. The fast path (``method="fast"``)
computes the polar factor U W^T by a scaled Newton-Schulz iteration (matrix products only), see
:func:`polar_factor`; it assumes G has full rank and reports its orthogonality error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.results import SolverResult, report_convergence
from ..core.validation import (
    check_int,
    check_ndim,
    check_nonnegative_scalar,
    check_positive,
    check_weights,
)

__all__ = ["schatten_norm", "schatten_lmo", "polar_factor", "particle_lmo", "velocity_norm",
           "dual_norm", "PolarResult", "LMOResult", "dual_exponent", "check_p"]


def check_p(p, name: str = "p", *, low: float = 0.5) -> float:
    """Validate a Schatten index p in [low, inf] (``math.inf`` / ``float('inf')`` allowed)."""
    if isinstance(p, str) and p.lower() in ("inf", "infinity"):
        return math.inf
    v = check_positive(p, name, allow_inf=True)
    if v < low:
        raise InputError(f"{name}: must lie in [{low}, inf], got {v}")
    return v


def dual_exponent(p: float) -> float:
    """q = (2p)' = 2p / (2p - 1): the dual-norm exponent of the velocity norm ||.||_{S_2p}.

    The velocity norm N(V) = ||V||_{S_2p} has the dual norm ||G||_{S_q}: q = 2 at p = 1
    (Frobenius, gradient descent), q = 1 at p = inf (nuclear norm, Muon), q = inf at p = 1/2.

    Parameters
    ----------
    p : float or "inf"
        Schatten index of the gauge, in [1/2, inf].

    Returns
    -------
    float

    Raises
    ------
    InputError
        ``p`` not a number in [1/2, inf].

    Examples
    --------
    >>> import math
    >>> from measureflow.spectral import dual_exponent
    >>> dual_exponent(1), dual_exponent(math.inf), dual_exponent(2)
    (2.0, 1.0, 1.3333333333333333)
    """
    p = check_p(p)
    if math.isinf(p):
        return 1.0
    if p == 0.5:
        return math.inf
    return 1.0 + 1.0 / (2.0 * p - 1.0)  # = 2p / (2p - 1), finite for p up to the float max


def _default_rtol(G: torch.Tensor) -> float:
    return torch.finfo(G.dtype).eps * max(G.shape[-2], G.shape[-1])


def schatten_norm(M, p) -> Any:
    """Schatten norm ||M||_{S_p} = (sum_i s_i(M)^p)^{1/p}, batched over leading dimensions.

    p = inf is the operator norm, p = 1 the nuclear norm, p = 2 the Frobenius norm (computed
    without an SVD); p < 1 gives a quasi-norm. Singular values come from
    ``torch.linalg.svdvals`` (differentiable away from repeated singular values).

    Parameters
    ----------
    M : array_like or Tensor, shape (..., m, n)
        Matrix or batch of matrices.
    p : float or "inf"
        Index in (0, inf].

    Returns
    -------
    float or array, shape (...)
        NumPy in -> NumPy out (a Python float for one matrix); a tensor in -> a tensor.

    Raises
    ------
    InputError
        ``M`` with fewer than 2 dimensions, ``p`` not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral import schatten_norm
    >>> M = np.diag([3.0, 4.0])
    >>> schatten_norm(M, 1), schatten_norm(M, 2), schatten_norm(M, "inf")
    (7.0, 5.0, 4.0)
    >>> schatten_norm(np.stack([M, 2 * M]), 1).tolist()
    [7.0, 14.0]
    """
    ctx = ArrayContext(M)
    M = ctx.tensor(M, "M")
    if M.ndim < 2:
        raise InputError(f"M: expected a matrix (..., m, n), got shape {tuple(M.shape)}")
    if isinstance(p, str) and p.lower() in ("inf", "infinity"):
        p = math.inf
    p = check_positive(p, "p", allow_inf=True)
    if p == 2:
        return ctx.wrap(torch.linalg.matrix_norm(M, "fro"))
    s = torch.linalg.svdvals(M)
    return ctx.wrap(_vec_pnorm(s, p))


def _vec_pnorm(s: torch.Tensor, p: float) -> torch.Tensor:
    """l_p norm of nonnegative vectors over the last dim, scaled to avoid overflow."""
    if math.isinf(p):
        return s.amax(-1) if s.shape[-1] else s.sum(-1)
    if p == 1:
        return s.sum(-1)
    smax = s.amax(-1, keepdim=True)
    safe = torch.where(smax > 0, smax, torch.ones_like(smax))
    r = (s / safe)
    r = torch.where(r > 0, r, torch.zeros_like(r))
    return smax.squeeze(-1) * (r ** p).sum(-1) ** (1.0 / p)


def _singular_response(s: torch.Tensor, p: float, rtol: float) -> torch.Tensor:
    """phi(s) with J_p(G) = -U diag(phi(s)) W^T (s sorted in decreasing order, batched)."""
    smax = s[..., :1]
    keep = s > rtol * smax
    zero = torch.zeros_like(s)
    if math.isinf(p):  # q = 1: ||s||_1 on the kept singular values
        nuc = torch.where(keep, s, zero).sum(-1, keepdim=True)
        return torch.where(keep, nuc.expand_as(s), zero)
    if p == 0.5:  # q = inf: s_max, averaged over the (numerically) tied top values
        top = s >= smax * (1.0 - max(rtol, 1e-12))
        k = top.sum(-1, keepdim=True).clamp_min(1)
        return torch.where(top & keep, (smax / k).expand_as(s), zero)
    q = dual_exponent(p)
    safe = torch.where(smax > 0, smax, torch.ones_like(smax))
    t = torch.where(keep, s / safe, zero)  # s / s_max in [0, 1]
    tq = torch.where(keep, t.clamp_min(torch.finfo(s.dtype).tiny) ** q, zero)
    nq = tq.sum(-1, keepdim=True) ** (1.0 / q)  # ||t||_q >= 1 where any kept
    nq_safe = torch.where(nq > 0, nq, torch.ones_like(nq))
    ratio = torch.where(keep, t / nq_safe, zero)
    pw = torch.where(keep, ratio.clamp_min(torch.finfo(s.dtype).tiny) ** (q - 1.0), zero)
    return smax * nq * pw


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolarResult(SolverResult):
    """Result of :func:`polar_factor`.

    Attributes
    ----------
    polar : array, shape (..., m, n)
        Z ~ U W^T.
    orth_error : float or array, shape (...)
        ||Z Z^T - I_k||_F over the smaller side (k = min(m, n)), the stopping error (it bounds
        max_i |s_i(Z)^2 - 1|); ``errors`` is its trace (max over the batch).
    nuclear_norm : float or array, shape (...)
        tr(Z^T G) ~ ||G||_*.
    converged, n_iter, errors
        As every :class:`~measureflow.core.results.SolverResult`.
    """

    polar: Any = None
    orth_error: Any = None
    nuclear_norm: Any = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LMOResult(SolverResult):
    """Normalized step with diagnostics (``schatten_lmo(..., return_info=True)``).

    Attributes
    ----------
    direction : array, shape (..., m, n)
        J_p(G).
    orth_error : float or array
        The polar factor's orthogonality error for the fast path (0.0 for the SVD path).
    method : str
        The path used (``"svd"`` or ``"fast"``).
    converged, n_iter, errors
        Of the Newton-Schulz iteration (``True, 0, []`` for the SVD path).
    """

    direction: Any = None
    orth_error: Any = None
    method: str = ""


def _polar_ns(G: torch.Tensor, *, tol: float, max_iter: int, lower: float):
    """Chen-Chow scaled Newton-Schulz on the wide orientation. Returns (Z, err, n_iter, trace)."""
    wide = G.shape[-2] <= G.shape[-1]
    Z = G if wide else G.transpose(-1, -2)
    k = Z.shape[-2]
    eye = torch.eye(k, dtype=Z.dtype, device=Z.device)
    A = Z @ Z.transpose(-1, -2)
    # ||Z Z^T||_F^{1/2} = (sum s^4)^{1/4} >= s_max: after this scaling all s lie in (0, 1].
    scale = torch.linalg.matrix_norm(A, "fro").clamp_min(torch.finfo(Z.dtype).tiny)
    Z = Z / scale.sqrt()[..., None, None]
    A = A / scale[..., None, None]
    ell = float(lower)
    trace = []
    n_iter = 0
    err = torch.linalg.matrix_norm(A - eye, "fro")
    while True:
        e = float(err.detach().amax()) if err.numel() else 0.0
        trace.append(e)
        if e <= tol or n_iter >= max_iter or not math.isfinite(e):
            break
        # Optimal scaling of the cubic on [ell, 1] (Chen & Chow 2014): p(x) = a x (3 - a^2 x^2)/2.
        alpha = math.sqrt(3.0 / (1.0 + ell + ell * ell))
        Z = (1.5 * alpha) * Z - (0.5 * alpha ** 3) * (A @ Z)
        ell = min(1.0, 0.5 * alpha * ell * (3.0 - alpha * alpha * ell * ell))
        n_iter += 1
        A = Z @ Z.transpose(-1, -2)
        err = torch.linalg.matrix_norm(A - eye, "fro")
    if not wide:
        Z = Z.transpose(-1, -2)
    return Z, err, n_iter, trace


def _default_polar_tol(G: torch.Tensor) -> float:
    k = min(G.shape[-2], G.shape[-1])
    return 50.0 * torch.finfo(G.dtype).eps * k


def polar_factor(G, *, tol: float | None = None, max_iter: int = 60, lower: float = 1e-3):
    """Polar factor U W^T of a full-rank G (..., m, n) by matrix products only.

    For the compact SVD G = U diag(s) W^T the polar factor is U W^T (the Muon direction up to
    sign and scale). Scaled Newton-Schulz (Chen & Chow, SIAM J. Matrix Anal. Appl. 2014): after
    dividing G by ||G G^T||_F^{1/2} (>= s_max), iterate Z <- a Z (3 I - a^2 Z^T Z) / 2 with the
    scaling a = sqrt(3 / (1 + l + l^2)) optimal for singular values in [l, 1], l updated by the
    same cubic. Singular values that are exactly 0 stay 0 and tiny ones converge slowly, so the
    error is reported, never hidden: use ``schatten_lmo(method="svd")`` for rank-deficient
    input. Written by hand (torch matmuls).

    Parameters
    ----------
    G : array_like or Tensor, shape (..., m, n)
        Full-rank matrix or batch.
    tol : float, optional
        Stop when ||Z Z^T - I||_F <= tol (> 0; default 50 x eps x min(m, n)).
    max_iter : int, default 60
        Maximum number of iterations (>= 0).
    lower : float, default 1e-3
        Initial guess of s_min / s_max (> 0; values above 1 are read as 1); a wrong guess only
        costs iterations.

    Returns
    -------
    PolarResult
        Not converged within ``max_iter``: ``converged=False`` and a ``ConvergenceWarning``.

    Raises
    ------
    InputError
        ``G`` with fewer than 2 dimensions, bad ``tol`` / ``max_iter`` / ``lower``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral import polar_factor
    >>> G = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    >>> r = polar_factor(G)
    >>> U, s, Wt = np.linalg.svd(G, full_matrices=False)
    >>> bool(r.converged), bool(np.allclose(r.polar, U @ Wt))
    (True, True)
    >>> bool(np.isclose(r.nuclear_norm, s.sum()))                 # tr(Z^T G) = ||G||_*
    True
    """
    ctx = ArrayContext(G)
    G = ctx.tensor(G, "G")
    if G.ndim < 2:
        raise InputError(f"G: expected a matrix (..., m, n), got shape {tuple(G.shape)}")
    tol = _default_polar_tol(G) if tol is None else check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", min_value=0)
    lower = check_positive(lower, "lower")
    Z, err, n_iter, trace = _polar_ns(G, tol=tol, max_iter=max_iter, lower=min(lower, 1.0))
    converged = trace[-1] <= tol
    report_convergence(converged, "polar_factor (Newton-Schulz)", n_iter, trace[-1], tol)
    nuc = (Z * G).sum((-2, -1))
    return ctx.wrap(PolarResult(polar=Z, orth_error=err, nuclear_norm=nuc, converged=converged,
                                n_iter=n_iter, errors=trace))


def schatten_lmo(G, p, *, method: str = "svd", rtol: float | None = None,
                 tol: float | None = None, max_iter: int = 60, return_info: bool = False):
    """Schatten-p normalized step J_p(G) = -||G||_{S_q}^{2-q} U diag(s^{q-1}) W^T, q = 2p/(2p-1).

    For the compact SVD G = U diag(s) W^T, J_p(G) is the minimizer of <G, V>_F + ||V||_{S_2p}^2
    / 2 (the matrix LMO; arXiv 2604.04891, App. A, Prop. "schatten"); p = 1 returns -G
    (gradient descent), p = inf returns -||G||_* U W^T (trace-scaled Muon direction), p = 1/2
    returns -s_max x (average of u_i w_i^T over the tied top singular values). Exact identities:
    <G, J_p(G)> = -||G||_{S_q}^2 and ||J_p(G)||_{S_2p} = ||G||_{S_q}.

    Parameters
    ----------
    G : array_like or Tensor, shape (..., m, n)
        Gradient matrix or batch (leading dimensions are batched).
    p : float or "inf"
        Schatten index of the gauge, in [1/2, inf].
    method : {"svd", "fast"}, default "svd"
        ``"svd"`` (reference, LAPACK SVD) or ``"fast"``: the polar factor Z = U W^T by
        :func:`polar_factor` (matmuls only), then for p = inf J = -tr(Z^T G) Z; for finite p
        the small symmetric factor H = Z^T G = W diag(s) W^T (or G Z^T) is diagonalised with
        ``torch.linalg.eigh`` and J = -Z phi(H). The fast path assumes full rank and reports
        the orthogonality error of Z (``return_info=True``).
    rtol : float, optional
        Relative rank cutoff: singular values <= rtol x s_max count as 0 (>= 0; default
        eps x max(m, n)); J is 0 on the numerical kernel.
    tol, max_iter : float, int
        Newton-Schulz stopping rule of the fast path (see :func:`polar_factor`).
    return_info : bool, default False
        If True return an :class:`LMOResult` (direction, orth_error, converged, n_iter, method).

    Returns
    -------
    array or LMOResult
        J_p(G), shape of ``G`` (NumPy in -> NumPy out, a tensor in -> a tensor with autograd).

    Raises
    ------
    InputError
        ``G`` with fewer than 2 dimensions, ``p`` outside [1/2, inf], an unknown ``method``,
        negative ``rtol``, bad ``tol`` / ``max_iter``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.spectral import dual_exponent, schatten_lmo, schatten_norm
    >>> G = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    >>> J = schatten_lmo(G, math.inf)                  # -||G||_* U W^T: all s_i equal
    >>> print(np.round(np.linalg.svd(J, compute_uv=False) / schatten_norm(G, 1), 6))
    [1. 1.]
    >>> bool(np.allclose(schatten_lmo(G, 1), -G))
    True
    >>> q = dual_exponent(3)
    >>> J3 = schatten_lmo(G, 3)
    >>> bool(np.isclose((G * J3).sum(), -schatten_norm(G, q) ** 2))
    True
    >>> bool(np.isclose(schatten_norm(J3, 6), schatten_norm(G, q)))
    True

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. A.
    """
    ctx = ArrayContext(G)
    G = ctx.tensor(G, "G")
    if G.ndim < 2:
        raise InputError(f"G: expected a matrix (..., m, n), got shape {tuple(G.shape)}")
    p = check_p(p)
    if method not in ("svd", "fast"):
        raise InputError(f"method: must be 'svd' or 'fast', got {method!r}")
    rtol = None if rtol is None else check_nonnegative_scalar(rtol, "rtol")
    max_iter = check_int(max_iter, "max_iter", min_value=0)
    tol = None if tol is None else check_positive(tol, "tol")
    J, info = _schatten_lmo(G, p, method, rtol=rtol, tol=tol, max_iter=max_iter)
    if return_info:
        err, converged, n_iter, trace = info
        return ctx.wrap(LMOResult(direction=J, orth_error=err, method=method,
                                  converged=converged, n_iter=n_iter, errors=trace))
    return ctx.wrap(J)


def _schatten_lmo(G: torch.Tensor, p: float, method: str = "svd", *, rtol: float | None = None,
                  tol: float | None = None, max_iter: int = 60):
    """Tensor-only :func:`schatten_lmo`: returns (J, (orth_error, converged, n_iter, trace)).

    Arguments already validated (``p`` checked, ``method`` in svd/fast); inner loops (the
    optimizers) call this directly.
    """
    rtol = _default_rtol(G) if rtol is None else rtol
    if G.numel() == 0 or not bool((G.detach() != 0).any()):
        return torch.zeros_like(G), (0.0, True, 0, [])  # J_p(0) = 0
    if p == 1:
        return -G, (0.0, True, 0, [])
    if method == "svd":
        U, s, Wh = torch.linalg.svd(G, full_matrices=False)
        phi = _singular_response(s, p, rtol)
        return -(U * phi.unsqueeze(-2)) @ Wh, (0.0, True, 0, [])
    tol = _default_polar_tol(G) if tol is None else tol
    Z, err, n_iter, trace = _polar_ns(G, tol=tol, max_iter=max_iter, lower=1e-3)
    converged = trace[-1] <= tol
    report_convergence(converged, "schatten_lmo(method='fast')", n_iter, trace[-1], tol,
                       stacklevel=4)
    if math.isinf(p):
        nuc = (Z * G).sum((-2, -1))
        J = -nuc[..., None, None] * Z
    else:
        tall = G.shape[-2] >= G.shape[-1]
        H = Z.transpose(-1, -2) @ G if tall else G @ Z.transpose(-1, -2)
        H = 0.5 * (H + H.transpose(-1, -2))
        ev, V = torch.linalg.eigh(H)
        s = ev.flip(-1).clamp_min(0.0)
        V = V.flip(-1)
        phi = _singular_response(s, p, rtol)
        F = (V * phi.unsqueeze(-2)) @ V.transpose(-1, -2)
        J = -(Z @ F if tall else F @ Z)
    return J, (err, converged, n_iter, trace)


def _particle_args(ctx, G, weights, from_gradient, name="G"):
    G = ctx.tensor(G, name)
    check_ndim(G, name, 2)
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"), G.shape[0],
                      "weights", like=G)
    if from_gradient:
        if bool((w <= 0).any()):
            raise InputError("weights: must be > 0 with from_gradient=True (rows are divided by w)")
        G = G / w[:, None]
    return G, w


def particle_lmo(G, weights=None, p=math.inf, *, rtol: float | None = None,
                 from_gradient: bool = False):
    """Measure-level normalized step for weighted particles (arXiv 2604.04891, Cor. "selectors").

    For mu = sum_i w_i delta_{x_i} and a force field g (rows ``G[i] = g(x_i)``, shape (n, d)), the
    minimizer of  int g.v dmu + gamma_p(int v v^T dmu) / 2  is

        v(x) = -||S^{1/2}||_{S_q}^{2-q} S^{(q-2)/2} g(x),   S = sum_i w_i g(x_i) g(x_i)^T,

    powers taken on range(S) (eigenvalues below ``rtol`` x max cut). Computed from the SVD of
    diag(sqrt w) G, never by forming S (that would square the condition number). Equivalently
    v_i = J_p(diag(sqrt w) G)_i / sqrt(w_i). p = 1 gives v = -g; p = inf gives
    v = -tr(S^{1/2}) S^{+1/2} g (Muon whitens the force covariance).

    Parameters
    ----------
    G : array_like or Tensor, shape (n, d)
        Force per particle (or the autograd gradient with ``from_gradient=True``).
    weights : array_like, shape (n,), optional
        Nonnegative particle weights (default uniform 1/n).
    p : float or "inf", default inf
        Schatten index in [1/2, inf].
    rtol : float, optional
        Relative eigenvalue cutoff on S (>= 0; default eps x max(n, d)).
    from_gradient : bool, default False
        Clock convention: autograd of F(X) = Fcal(mu_X) returns rows w_i g(x_i); pass True to
        divide by w first (weights must then be > 0); otherwise, with uniform weights 1/n,
        time is rescaled by n.

    Returns
    -------
    array, shape (n, d)
        The velocities v(x_i).

    Raises
    ------
    InputError
        ``G`` not 2-D, bad weights (shape, negative, zero with ``from_gradient``), ``p``
        outside [1/2, inf], negative ``rtol``.

    Examples
    --------
    The dual pairing equals minus the squared dual norm, int g.v dmu = -N*_mu(g)^2:

    >>> import numpy as np
    >>> from measureflow.spectral import dual_norm, particle_lmo, velocity_norm
    >>> G = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> V = particle_lmo(G)                               # p = inf, weights 1/3
    >>> round(float((G * V).sum(1).mean()), 6), round(dual_norm(G) ** 2, 6)
    (-4.333333, 4.333333)
    >>> bool(np.isclose(velocity_norm(V), dual_norm(G)))
    True
    >>> bool(np.allclose(particle_lmo(G, p=1), -G))
    True

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026,
    Cor. "selectors".
    """
    ctx = ArrayContext(G, weights)
    p = check_p(p)
    G, w = _particle_args(ctx, G, weights, from_gradient)
    rtol = None if rtol is None else check_nonnegative_scalar(rtol, "rtol")
    return ctx.wrap(_particle_lmo(G, w, p, rtol))


def _particle_lmo(G: torch.Tensor, w: torch.Tensor, p: float,
                  rtol: float | None = None) -> torch.Tensor:
    """Tensor-only :func:`particle_lmo` (forces G (n, d), weights w (n,), p checked)."""
    if p == 1:
        return -G
    B = w.sqrt()[:, None] * G
    _, s, Wh = torch.linalg.svd(B, full_matrices=False)
    rtol = _default_rtol(B) if rtol is None else rtol
    phi = _singular_response(s, p, rtol)  # J(B) = -U phi W^T ; v = -W (phi / s) W^T g
    keep = phi > 0
    safe = torch.where(keep, s, torch.ones_like(s))
    ratio = torch.where(keep, phi / safe, torch.zeros_like(s))
    Wt = Wh.transpose(-1, -2)
    M = (Wt * ratio) @ Wh
    return -G @ M


def velocity_norm(V, weights=None, p=math.inf):
    """Velocity norm N_mu(v) = gamma_p(int v v^T dmu)^{1/2} = ||diag(sqrt w) V||_{S_2p}.

    gamma_p(S) = ||lambda(S)||_p; p = 1 gives the L2(mu) norm of v (Wasserstein-2 geometry),
    p = inf the square root of lambda_max of the velocity second moment (Muon geometry).

    Parameters
    ----------
    V : array_like or Tensor, shape (n, d)
        Velocity per particle.
    weights : array_like, shape (n,), optional
        Nonnegative particle weights (default uniform 1/n).
    p : float or "inf", default inf
        Schatten index in [1/2, inf].

    Returns
    -------
    float or 0-d tensor

    Raises
    ------
    InputError
        ``V`` not 2-D, bad weights, ``p`` outside [1/2, inf].

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral import velocity_norm
    >>> V = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> round(velocity_norm(V, p=1), 6), round(velocity_norm(V), 6)   # sqrt(tr), sqrt(lambda_max)
    (1.0, 0.707107)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, Sec. 2.
    """
    ctx = ArrayContext(V, weights)
    p = check_p(p)
    V, w = _particle_args(ctx, V, weights, False, "V")
    s = torch.linalg.svdvals(w.sqrt()[:, None] * V)
    return ctx.wrap(_vec_pnorm(s, 2 * p))


def dual_norm(G, weights=None, p=math.inf):
    """Dual norm N*_mu(g) = ||diag(sqrt w) G||_{S_q}, q = 2p/(2p-1), of :func:`velocity_norm`.

    N*_mu(g)^2 is the dissipation rate of the normalized flow: int g.v dmu = -N*_mu(g)^2 for
    v = :func:`particle_lmo` (g). p = 1 gives the L2(mu) norm of g, p = inf the nuclear norm.

    Parameters
    ----------
    G : array_like or Tensor, shape (n, d)
        Force per particle.
    weights : array_like, shape (n,), optional
        Nonnegative particle weights (default uniform 1/n).
    p : float or "inf", default inf
        Schatten index in [1/2, inf].

    Returns
    -------
    float or 0-d tensor

    Raises
    ------
    InputError
        ``G`` not 2-D, bad weights, ``p`` outside [1/2, inf].

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral import dual_norm
    >>> G = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> round(dual_norm(G, p=1), 6), round(dual_norm(G), 6)          # L2(mu), nuclear
    (2.0, 2.828427)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, Sec. 2.
    """
    ctx = ArrayContext(G, weights)
    p = check_p(p)
    G, w = _particle_args(ctx, G, weights, False)
    s = torch.linalg.svdvals(w.sqrt()[:, None] * G)
    return ctx.wrap(_vec_pnorm(s, dual_exponent(p)))
