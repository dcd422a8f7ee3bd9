"""Optimal transport between Gaussian measures (Bures-Wasserstein geometry).

For N(m0, S0), N(m1, S1) on R^d with quadratic cost |x - y|^2 (no 1/2):

    W2^2 = |m0 - m1|^2 + B^2(S0, S1),
    B^2(S0, S1) = tr S0 + tr S1 - 2 tr (S0^{1/2} S1 S0^{1/2})^{1/2}       (Bures metric).

The Brenier map is T(x) = m1 + A (x - m0) with
A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2} (symmetric PD when S0 is PD); McCann's
interpolation pushes N(m0, S0) by (1 - t) Id + t T; the barycenter of N(m_k, S_k) with weights
w_k has mean sum_k w_k m_k and covariance the unique PD fixed point of
S = sum_k w_k (S^{1/2} S_k S^{1/2})^{1/2}, found by the Alvarez-Esteban et al. (2016) iteration
S <- S^{-1/2} (sum_k w_k (S^{1/2} S_k S^{1/2})^{1/2})^2 S^{-1/2} (monotone, converges).

Course notes arXiv 2505.06589, Sec. "Gaussian case / Bures". All functions are batched over
leading dimensions and differentiable (eigh-based matrix square roots).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.linalg import invsqrtm_psd, sqrtm_psd, sym
from ..core.results import SolverResult, report_convergence
from ..core.validation import (
    check_int,
    check_ndim,
    check_positive,
    check_psd,
    check_shape,
    check_weights,
)

__all__ = ["bures_wasserstein", "bures_wasserstein2", "gaussian_map", "gaussian_geodesic",
           "gaussian_barycenter", "GaussianBarycenterResult"]


def _gauss_args(ctx, m0, S0, m1, S1):
    m0, m1 = ctx.tensor(m0, "m0"), ctx.tensor(m1, "m1")
    S0, S1 = ctx.tensor(S0, "S0"), ctx.tensor(S1, "S1")
    for name, S in (("S0", S0), ("S1", S1)):
        check_ndim(S, name, range(2, 10))
        check_psd(S, name, rtol=1e-7)
    d = S0.shape[-1]
    if S1.shape[-1] != d:
        raise InputError(f"S1: dimension {S1.shape[-1]} differs from S0's {d}")
    for name, m in (("m0", m0), ("m1", m1)):
        if m.ndim < 1 or m.shape[-1] != d:
            raise InputError(f"{name}: expected a mean of dimension {d}, got shape {tuple(m.shape)}")
    return m0, sym(S0), m1, sym(S1)


def _bures2(S0, S1):
    r0 = sqrtm_psd(S0)
    cross = sqrtm_psd(sym(r0 @ S1 @ r0))
    tr = lambda M: torch.diagonal(M, dim1=-2, dim2=-1).sum(-1)
    return (tr(S0) + tr(S1) - 2 * tr(cross)).clamp_min(0.0)


def bures_wasserstein2(m0, S0, m1, S1):
    """Squared W2 between N(m0, S0) and N(m1, S1): |m0 - m1|^2 + B^2(S0, S1) (cost |x-y|^2).

    Batched over leading dimensions. NumPy in -> float/array out; tensors keep autograd.
    """
    ctx = ArrayContext(m0, S0, m1, S1)
    m0, S0, m1, S1 = _gauss_args(ctx, m0, S0, m1, S1)
    return ctx.wrap(((m0 - m1) ** 2).sum(-1) + _bures2(S0, S1))


def bures_wasserstein(m0, S0, m1, S1):
    """W2 distance (not its square) between N(m0, S0) and N(m1, S1), cost |x - y|^2.

    W2 = sqrt(|m0 - m1|^2 + tr S0 + tr S1 - 2 tr (S0^{1/2} S1 S0^{1/2})^{1/2}).
    Singular (PSD) covariances are allowed. Batched; differentiable away from W2 = 0 (the square
    root is not differentiable at 0; use :func:`bures_wasserstein2` there).
    """
    ctx = ArrayContext(m0, S0, m1, S1)
    m0, S0, m1, S1 = _gauss_args(ctx, m0, S0, m1, S1)
    return ctx.wrap((((m0 - m1) ** 2).sum(-1) + _bures2(S0, S1)).sqrt())


def _map_matrix(S0, S1):
    r0 = sqrtm_psd(S0)
    ir0 = invsqrtm_psd(S0)
    return sym(ir0 @ sqrtm_psd(sym(r0 @ S1 @ r0)) @ ir0)


def gaussian_map(m0, S0, m1, S1):
    """Brenier map between Gaussians, returned as ``(A, shift)`` with T(x) = A x + shift.

    A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2}, shift = m1 - A m0, so that T pushes
    N(m0, S0) to N(m1, S1). S0 must be positive definite (the map is not unique otherwise).
    """
    ctx = ArrayContext(m0, S0, m1, S1)
    m0, S0, m1, S1 = _gauss_args(ctx, m0, S0, m1, S1)
    check_psd(S0, "S0", strict=True, rtol=1e-12)
    A = _map_matrix(S0, S1)
    shift = m1 - (A @ m0.unsqueeze(-1)).squeeze(-1)
    return ctx.wrap((A, shift))


def gaussian_geodesic(m0, S0, m1, S1, t):
    """McCann interpolation between N(m0, S0) and N(m1, S1) at time(s) t in [0, 1].

    Returns ``(m_t, S_t)`` with m_t = (1 - t) m0 + t m1 and
    S_t = ((1 - t) I + t A) S0 ((1 - t) I + t A), A the Brenier map matrix; W2(mu_0, mu_t) =
    t W2(mu_0, mu_1) (constant-speed geodesic). ``t`` may be a scalar or a 1-D array (stacked
    on a new leading axis). S0 must be positive definite.
    """
    ctx = ArrayContext(m0, S0, m1, S1, t if not isinstance(t, (int, float)) else None)
    m0, S0, m1, S1 = _gauss_args(ctx, m0, S0, m1, S1)
    check_psd(S0, "S0", strict=True, rtol=1e-12)
    tt = ctx.tensor(t, "t")
    if tt.numel() and (bool((tt < 0).any()) or bool((tt > 1).any())):
        raise InputError("t: times must lie in [0, 1]")
    A = _map_matrix(S0, S1)
    eye = torch.eye(S0.shape[-1], dtype=S0.dtype, device=S0.device)
    # (core's as_tensor turns 0-d NumPy input into shape (1,): decide from the input itself)
    scalar = (t.ndim == 0) if isinstance(t, torch.Tensor) else (np.ndim(t) == 0)
    ts = tt.reshape(-1)
    ms, Ss = [], []
    for ti in ts:
        M = (1 - ti) * eye + ti * A
        ms.append((1 - ti) * m0 + ti * m1)
        Ss.append(sym(M @ S0 @ M.transpose(-1, -2)))
    if scalar:
        return ctx.wrap((ms[0], Ss[0]))
    return ctx.wrap((torch.stack(ms), torch.stack(Ss)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianBarycenterResult(SolverResult):
    """``mean`` (d,), ``cov`` (d, d); ``errors``: ||S_{k+1} - S_k||_F / ||S_k||_F per iteration."""

    mean: object = None
    cov: object = None


def gaussian_barycenter(means, covs, weights=None, *, max_iter: int = 500, tol: float = 1e-12,
                        init=None) -> GaussianBarycenterResult:
    """W2 (Bures) barycenter of Gaussians N(means[k], covs[k]) with weights w_k (sum 1).

    Minimises sum_k w_k W2^2(nu, N(m_k, S_k)) over Gaussians nu (cost |x-y|^2). The mean is
    sum_k w_k m_k; the covariance is the fixed point of S = sum_k w_k (S^{1/2} S_k S^{1/2})^{1/2},
    computed by the Alvarez-Esteban, del Barrio, Cuesta-Albertos & Matran (2016) iteration,
    stopped when the relative Frobenius change is below ``tol``. Covariances must be PD for the
    fixed point to be unique (at least one PD is required).
    """
    ctx = ArrayContext(means, covs, weights)
    M = ctx.tensor(means, "means")
    S = ctx.tensor(covs, "covs")
    check_ndim(M, "means", 2)
    check_ndim(S, "covs", 3)
    K, d = M.shape
    check_shape(S, "covs", (K, d, d))
    check_psd(S, "covs", rtol=1e-7)
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"), K, "weights",
                      like=M)
    w = w / w.sum()
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    mean = (w[:, None] * M).sum(0)
    if init is None:
        Sb = sym((w[:, None, None] * S).sum(0))
    else:
        Sb = check_shape(ctx.tensor(init, "init"), "init", (d, d))
        check_psd(Sb, "init", rtol=1e-7)
        Sb = sym(Sb)
    check_psd(Sb, "init" if init is not None else "covs", strict=True, rtol=1e-12)
    errors = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - it is reported after the loop
        r = sqrtm_psd(Sb)
        ir = invsqrtm_psd(Sb)
        T = (w[:, None, None] * sqrtm_psd(sym(r @ S @ r))).sum(0)
        Snew = sym(ir @ T @ T @ ir)
        err = float((Snew - Sb).norm() / Sb.norm())
        errors.append(err)
        Sb = Snew
        if err < tol:
            converged = True
            break
    report_convergence(converged, "gaussian_barycenter", it, errors[-1], tol)
    return ctx.wrap(GaussianBarycenterResult(mean=mean, cov=Sb, converged=converged, n_iter=it,
                                             errors=errors))
