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
from ..core.progress import IterState, Monitor, check_callback
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

    B^2(S0, S1) = tr S0 + tr S1 - 2 tr (S0^{1/2} S1 S0^{1/2})^{1/2} (Bures metric squared);
    a squared distance, for the cost |x - y|^2 without 1/2. Singular (PSD) covariances are
    allowed.

    Parameters
    ----------
    m0, m1 : array_like or Tensor
        Means (..., d).
    S0, S1 : array_like or Tensor
        Covariances (..., d, d), symmetric PSD.

    Returns
    -------
    float or ndarray or Tensor
        W2^2, batched over leading dimensions. NumPy in -> float/array out; tensors keep
        autograd.

    Raises
    ------
    InputError
        Mismatched dimensions, non-symmetric or non-PSD covariances.

    Examples
    --------
    For commuting covariances B^2 = sum_i (sqrt(s0_i) - sqrt(s1_i))^2: here 3^2 + (5 - 1)^2:

    >>> import numpy as np
    >>> from measureflow import ot
    >>> print(round(ot.bures_wasserstein2([0.0, 0.0], np.eye(2), [3.0, 0.0],
    ...                                   np.diag([25.0, 1.0])), 10))
    25.0

    Its square root is :func:`bures_wasserstein`:

    >>> print(round(ot.bures_wasserstein([0.0, 0.0], np.eye(2), [3.0, 0.0],
    ...                                  np.diag([25.0, 1.0])), 10))
    5.0

    References
    ----------
    OT course notes, arXiv 2505.06589, Sec. "Gaussian case / Bures". D. C. Dowson, B. V. Landau,
    "The Frechet distance between multivariate normal distributions", J. Multivariate Anal.
    12(3), 1982.
    """
    ctx = ArrayContext(m0, S0, m1, S1)
    m0, S0, m1, S1 = _gauss_args(ctx, m0, S0, m1, S1)
    return ctx.wrap(((m0 - m1) ** 2).sum(-1) + _bures2(S0, S1))


def bures_wasserstein(m0, S0, m1, S1):
    """W2 distance (not its square) between N(m0, S0) and N(m1, S1), cost |x - y|^2.

    W2 = sqrt(|m0 - m1|^2 + tr S0 + tr S1 - 2 tr (S0^{1/2} S1 S0^{1/2})^{1/2}). Singular (PSD)
    covariances are allowed. Differentiable away from W2 = 0 (the square root is not
    differentiable at 0; use :func:`bures_wasserstein2` there).

    Parameters
    ----------
    m0, m1 : array_like or Tensor
        Means (..., d).
    S0, S1 : array_like or Tensor
        Covariances (..., d, d), symmetric PSD.

    Returns
    -------
    float or ndarray or Tensor
        W2, batched over leading dimensions.

    Raises
    ------
    InputError
        Mismatched dimensions, non-symmetric or non-PSD covariances.

    Examples
    --------
    In 1-D, W2 = sqrt((m0 - m1)^2 + (s0 - s1)^2) with s the standard deviations:

    >>> from measureflow import ot
    >>> print(round(ot.bures_wasserstein([0.0], [[1.0]], [4.0], [[16.0]]), 10))
    5.0

    References
    ----------
    OT course notes, arXiv 2505.06589, Sec. "Gaussian case / Bures".
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
    N(m0, S0) to N(m1, S1) and is optimal for the cost |x - y|^2. See also
    :class:`measureflow.ot.GaussianMap` (the same map under the ``TransportMap`` interface).

    Parameters
    ----------
    m0, m1 : array_like or Tensor
        Means (..., d).
    S0, S1 : array_like or Tensor
        Covariances (..., d, d), symmetric PSD.
        S0 must be positive definite (the map is not unique otherwise).

    Returns
    -------
    (A, shift)
        A (..., d, d) symmetric PSD, shift (..., d).

    Raises
    ------
    InputError
        Mismatched dimensions, non-PSD covariances or a singular S0.

    Examples
    --------
    A pushes S0 to S1: A S0 A = S1.

    >>> import numpy as np
    >>> from measureflow import ot
    >>> S0, S1 = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, -0.3], [-0.3, 3.0]])
    >>> A, shift = ot.gaussian_map([0.0, 0.0], S0, [1.0, 2.0], S1)
    >>> bool(np.allclose(A @ S0 @ A, S1)), bool(np.allclose(A, A.T)), shift.tolist()
    (True, True, [1.0, 2.0])

    References
    ----------
    OT course notes, arXiv 2505.06589, Sec. "Gaussian case / Bures".
    """
    ctx = ArrayContext(m0, S0, m1, S1)
    m0, S0, m1, S1 = _gauss_args(ctx, m0, S0, m1, S1)
    check_psd(S0, "S0", strict=True, rtol=1e-12)
    A = _map_matrix(S0, S1)
    shift = m1 - (A @ m0.unsqueeze(-1)).squeeze(-1)
    return ctx.wrap((A, shift))


def gaussian_geodesic(m0, S0, m1, S1, t):
    """McCann interpolation between N(m0, S0) and N(m1, S1) at time(s) t in [0, 1].

    m_t = (1 - t) m0 + t m1 and S_t = ((1 - t) I + t A) S0 ((1 - t) I + t A), A the Brenier map
    matrix (:func:`gaussian_map`); W2(mu_0, mu_t) = t W2(mu_0, mu_1) (constant-speed geodesic,
    cost |x - y|^2).

    Parameters
    ----------
    m0, m1 : array_like or Tensor
        Means (..., d).
    S0, S1 : array_like or Tensor
        Covariances (..., d, d), symmetric PSD.
        S0 must be positive definite.
    t : float or array_like
        A scalar or a 1-D array of times in [0, 1] (stacked on a new leading axis).

    Returns
    -------
    (m_t, S_t)
        Means and covariances at the times ``t``.

    Raises
    ------
    InputError
        Bad Gaussians (as :func:`gaussian_map`) or times outside [0, 1].

    Examples
    --------
    In 1-D the standard deviation interpolates linearly: s_t = (1 - t) 1 + t 3 = 2 at t = 1/2.

    >>> from measureflow import ot
    >>> m, S = ot.gaussian_geodesic([0.0], [[1.0]], [2.0], [[9.0]], 0.5)
    >>> print(m.round(10).tolist(), S.round(10).tolist())
    [1.0] [[4.0]]
    >>> m, S = ot.gaussian_geodesic([0.0], [[1.0]], [2.0], [[9.0]], [0.0, 1.0])
    >>> S.ravel().round(10).tolist()
    [1.0, 9.0]

    References
    ----------
    R. J. McCann, "A convexity principle for interacting gases", Adv. Math. 128(1), 1997;
    OT course notes, arXiv 2505.06589, Sec. "Gaussian case / Bures".
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
    """Result of :func:`gaussian_barycenter`.

    Attributes
    ----------
    mean : ndarray or Tensor
        (d,) barycenter mean sum_k w_k m_k.
    cov : ndarray or Tensor
        (d, d) barycenter covariance.
    converged, n_iter : bool, int
        See :class:`measureflow.core.results.SolverResult`.
    errors : list of float
        ||S_{k+1} - S_k||_F / ||S_k||_F per iteration.
    """

    mean: object = None
    cov: object = None


def gaussian_barycenter(means, covs, weights=None, *, max_iter: int = 500, tol: float = 1e-12,
                        init=None, callback=None,
                        verbose: bool = False) -> GaussianBarycenterResult:
    """W2 (Bures) barycenter of Gaussians N(means[k], covs[k]) with weights w_k.

    Minimises sum_k w_k W2^2(nu, N(m_k, S_k)) over Gaussians nu (cost |x-y|^2). The mean is
    sum_k w_k m_k; the covariance is the fixed point of S = sum_k w_k (S^{1/2} S_k S^{1/2})^{1/2},
    computed by the Alvarez-Esteban, del Barrio, Cuesta-Albertos & Matran (2016) iteration
    S <- S^{-1/2} (sum_k w_k (S^{1/2} S_k S^{1/2})^{1/2})^2 S^{-1/2}.

    Parameters
    ----------
    means : array_like or Tensor
        (K, d) means.
    covs : array_like or Tensor
        (K, d, d) PSD covariances; at least one must be PD for the fixed point to be unique.
    weights : array_like or Tensor, optional
        (K,) nonnegative weights (default uniform); normalised to sum 1 (the barycenter of a
        weighted family does not depend on the total weight).
    max_iter : int, default 500
        Iteration cap.
    tol : float, default 1e-12
        Stop when the relative Frobenius change ||S_{k+1} - S_k||_F / ||S_k||_F < tol.
    init : array_like or Tensor, optional
        (d, d) PD starting covariance (default sum_k w_k S_k).
    callback : callable, optional
        ``callback(state) -> bool | None`` once per iteration with a
        :class:`~measureflow.core.progress.IterState`: ``state.error`` the relative change just
        recorded in ``errors``, ``state.iterate`` the new covariance S_{k+1} (internal tensor,
        do not modify). Returning True stops after that iteration; the result holds that
        covariance and ``converged`` says whether the stopping rule held (docs/ot.md, "Progress
        and callbacks").
    verbose : bool, default False
        Show a progress bar (iteration, error) on stderr.

    Returns
    -------
    GaussianBarycenterResult
        ``mean``, ``cov``, ``converged``, ``n_iter``, ``errors``; not converged:
        ``converged=False`` and a ``ConvergenceWarning``.

    Raises
    ------
    InputError
        Bad shapes, non-PSD covariances, a singular start, bad weights, ``max_iter`` or ``tol``.

    Examples
    --------
    For commuting covariances the barycenter's square root is the mean of the square roots:
    sqrt(S) = (diag(1, 2) + diag(3, 4)) / 2 = diag(2, 3).

    >>> import numpy as np
    >>> from measureflow import ot
    >>> res = ot.gaussian_barycenter([[0.0, 0.0], [2.0, 4.0]],
    ...                              [np.diag([1.0, 4.0]), np.diag([9.0, 16.0])])
    >>> print(res.mean.tolist(), (np.round(res.cov, 8) + 0.0).tolist(), bool(res.converged))
    [1.0, 2.0] [[4.0, 0.0], [0.0, 9.0]] True

    References
    ----------
    P. C. Alvarez-Esteban, E. del Barrio, J. A. Cuesta-Albertos, C. Matran, "A fixed-point
    approach to barycenters in Wasserstein space", J. Math. Anal. Appl. 441(2), 2016. M. Agueh,
    G. Carlier, "Barycenters in the Wasserstein space", SIAM J. Math. Anal. 43(2), 2011.
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
    callback = check_callback(callback)
    mean = (w[:, None] * M).sum(0)
    if init is None:
        Sb = sym((w[:, None, None] * S).sum(0))
    else:
        Sb = check_shape(ctx.tensor(init, "init"), "init", (d, d))
        check_psd(Sb, "init", rtol=1e-7)
        Sb = sym(Sb)
    check_psd(Sb, "init" if init is not None else "covs", strict=True, rtol=1e-12)
    errors = []
    converged = stopped = False
    it = 0
    mon = Monitor(callback, verbose, tol, "ot.gaussian_barycenter")
    with mon:
        for it in range(1, max_iter + 1):  # noqa: B007 - it is reported after the loop
            r = sqrtm_psd(Sb)
            ir = invsqrtm_psd(Sb)
            T = (w[:, None, None] * sqrtm_psd(sym(r @ S @ r))).sum(0)
            Snew = sym(ir @ T @ T @ ir)
            err = float((Snew - Sb).norm() / Sb.norm())
            errors.append(err)
            Sb = Snew
            converged = err < tol
            if mon.active and mon(IterState(it, err, Snew, "fixed point")):
                stopped = True
                break
            if converged:
                break
    what = " (stopped by callback)" if stopped else ""
    report_convergence(converged, f"gaussian_barycenter{what}", it, errors[-1], tol)
    return ctx.wrap(GaussianBarycenterResult(mean=mean, cov=Sb, converged=converged, n_iter=it,
                                             errors=errors))
