"""Gaussian ground truths for the inverse problems (arXiv 2505.07124, Gaussian experiments).

- :func:`gaussian_entropic_ot`     entropic (balanced or unbalanced) OT between Gaussians,
                                    cost |x - y|^2 (no 1/2), entropic term eps KL(pi | alpha (x) beta),
                                    marginal terms rho KL(pi_i | .).
- :func:`gaussian_bilinear_plan`   balanced entropic plan between centred Gaussians for the
                                    bilinear cost c_A(x, y) = -x^T A y (closed form through an SVD).
- :func:`gaussian_bilinear_inverse` the population inverse: A from the joint covariance.
- :func:`gaussian_jko_step`        one JKO step of a quadratic potential (+ optional entropy).

Derivations are in ``docs/inverse.md``; the [R] (reconstructed) parts are checked numerically in
``tests/inverse/test_gaussian.py``. All of this is written by hand in torch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..core import (
    ArrayContext,
    InputError,
    SolverResult,
    check_choice,
    check_int,
    check_ndim,
    check_nonnegative_scalar,
    check_positive,
    check_psd,
    check_shape,
    report_convergence,
)
from ..core.linalg import psd_power, sqrtm_psd, sym
from .fenchel_young import check_compute_dtype

__all__ = ["GaussianEntropicOT", "gaussian_entropic_ot", "gaussian_bilinear_plan",
           "gaussian_bilinear_inverse", "gaussian_jko_step"]

_LOG2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianEntropicOT(SolverResult):
    """Entropic (unbalanced) OT between scaled Gaussians (result of :func:`gaussian_entropic_ot`).

    Attributes
    ----------
    value : float
        The primal objective <c, pi> + eps KL(pi | alpha (x) beta) [+ rho KL(pi_1 | alpha) +
        rho KL(pi_2 | beta)], cost |x - y|^2.
    plan_mean : array or Tensor, shape (2d,)
    plan_cov : array or Tensor, shape (2d, 2d)
    plan_mass : float
        The optimal plan is plan_mass N(plan_mean, plan_cov) on R^(2d) (x first, y second).
    cross_cov : array or Tensor, shape (d, d)
        Its (x, y) covariance block.
    method : str
        ``"closed_form"`` (balanced) or ``"gaussian_sinkhorn"`` (Sinkhorn iterated exactly on
        quadratic potentials).
    converged, n_iter : bool, int
    errors : list of float
        Trace of the parameter change of the fixed point (empty for the closed form).
    """

    value: Any = None
    plan_mean: Any = None
    plan_cov: Any = None
    plan_mass: Any = None
    cross_cov: Any = None
    method: str = ""


def _gkl(m1, mu1, S1, m2, mu2, S2):
    """Generalised KL(m1 N(mu1, S1) | m2 N(mu2, S2))."""
    d = S1.shape[-1]
    S2inv = torch.linalg.inv(S2)
    dm = mu2 - mu1
    kl = 0.5 * (torch.trace(S2inv @ S1) + dm @ S2inv @ dm - d + torch.logdet(S2) - torch.logdet(S1))
    return m1 * torch.log(m1 / m2) - m1 + m2 + m1 * kl


def _plan_value(mass, mu, S, a, A, ma, b, B, mb, eps, rho):
    d = A.shape[0]
    mx, my = mu[:d], mu[d:]
    Sxx, Syy, Sxy = S[:d, :d], S[d:, d:], S[:d, d:]
    lin = mass * ((mx - my) @ (mx - my) + torch.trace(Sxx) + torch.trace(Syy) - 2 * torch.trace(Sxy))
    Z = torch.zeros_like(A)
    ref = torch.cat([torch.cat([A, Z], 1), torch.cat([Z.T, B], 1)], 0)
    val = lin + eps * _gkl(mass, mu, S, ma * mb, torch.cat([a, b]), ref)
    if rho is not None:
        val = val + rho * (_gkl(mass, mx, Sxx, ma, a, A) + _gkl(mass, my, Syy, mb, b, B))
    return val


def _gaussian_sinkhorn(a, A, ma, b, B, mb, eps, rho, max_iter, tol):
    """Sinkhorn on quadratic potentials f/eps = -x^T F x / 2 + hf.x + sf (same for g).

    Each update is the exact Gaussian integral f(x) = -kappa eps log int exp((g(y) - |x-y|^2)/eps)
    dbeta(y), kappa = rho / (rho + eps) (1 when balanced).
    """
    d = A.shape[0]
    I = torch.eye(d, dtype=A.dtype, device=A.device)
    kappa = 1.0 if rho is None else rho / (rho + eps)
    Ainv, Binv = torch.linalg.inv(A), torch.linalg.inv(B)

    def update(G, hg, sg, mu, Sinv, logdetS, m):
        P = sym(G + (2.0 / eps) * I + Sinv)
        Pinv = torch.linalg.inv(P)
        q0 = hg + Sinv @ mu
        M = (2.0 / eps) * I - (4.0 / eps**2) * Pinv
        n = (2.0 / eps) * (Pinv @ q0)
        k = (math.log(m) - 0.5 * logdetS - 0.5 * torch.logdet(P) + sg - 0.5 * mu @ Sinv @ mu
             + 0.5 * q0 @ Pinv @ q0)
        return sym(-kappa * M), -kappa * n, -kappa * k

    ldA, ldB = torch.logdet(A), torch.logdet(B)
    F = torch.zeros_like(A)
    G = torch.zeros_like(B)
    hf, hg = torch.zeros_like(a), torch.zeros_like(b)
    sf = sg = torch.zeros((), dtype=A.dtype, device=A.device)
    errors, ok, it = [], False, 0
    for it in range(1, max_iter + 1):  # noqa: B007
        F1, hf1, sf1 = update(G, hg, sg, b, Binv, ldB, mb)
        G1, hg1, sg1 = update(F1, hf1, sf1, a, Ainv, ldA, ma)
        err = float(max((F1 - F).abs().max(), (G1 - G).abs().max(), (hf1 - hf).abs().max(),
                        (hg1 - hg).abs().max(), (sf1 + sg1 - sf - sg).abs()))
        F, hf, sf, G, hg, sg = F1, hf1, sf1, G1, hg1, sg1
        errors.append(err)
        if err <= tol:
            ok = True
            break
    # plan: log density = f/eps + g/eps - |x - y|^2/eps + log alpha(x) + log beta(y)
    K = torch.cat([torch.cat([F + Ainv + (2 / eps) * I, -(2 / eps) * I], 1),
                   torch.cat([-(2 / eps) * I, G + Binv + (2 / eps) * I], 1)], 0)
    K = sym(K)
    lvec = torch.cat([hf + Ainv @ a, hg + Binv @ b])
    const = (sf + sg + math.log(ma) + math.log(mb) - 0.5 * ldA - 0.5 * ldB - 0.5 * a @ Ainv @ a
             - 0.5 * b @ Binv @ b - d * _LOG2PI)
    S = torch.linalg.inv(K)
    mu = S @ lvec
    logmass = const + 0.5 * lvec @ mu + d * _LOG2PI - 0.5 * torch.logdet(K)
    return torch.exp(logmass), mu, sym(S), it, errors, ok


def _check_representable(val, S, m0, m1, eps):
    """A non-finite objective comes from inputs out of the dtype's range: say which."""
    if bool(torch.isfinite(val.detach()).all()) and bool(torch.isfinite(S.detach()).all()):
        return
    if not math.isfinite(float(((m0 - m1) ** 2).sum())):
        raise InputError("m1: |m0 - m1|^2 overflows; centre or rescale the problem")
    raise InputError(f"eps: {eps:.3g} is out of the range this dtype resolves for these "
                     "covariances (the plan or its entropy is not finite); rescale the problem")


def gaussian_entropic_ot(m0, S0, m1, S1, *, eps: float, rho: float | None = None,
                         mass0: float = 1.0, mass1: float = 1.0, max_iter: int = 10000,
                         tol: float = 1e-13, method: str = "auto") -> GaussianEntropicOT:
    """Entropic OT between alpha = mass0 N(m0, S0) and beta = mass1 N(m1, S1), cost |x - y|^2.

    Problem (eps > 0; ``rho=None`` balanced, else KL-penalised marginals)::

        min_pi <|x-y|^2, pi> + eps KL(pi | alpha (x) beta) + rho KL(pi_1 | alpha) + rho KL(pi_2 | beta)

    with the generalised KL(p | q) = int p log(dp/dq) - dp + dq. The optimal plan is a scaled
    Gaussian (Janati, Muzellec, Peyre, Cuturi 2020, who write the entropic weight as 2 sigma^2 =
    eps and the marginal weight gamma = rho).

    - Balanced (``rho=None``, needs mass0 == mass1): closed form. With sigma^2 = eps / 2,
      D = (4 S0^(1/2) S1 S0^(1/2) + sigma^4 I)^(1/2) and the cross-covariance
      C = (S0^(1/2) D S0^(-1/2) - sigma^2 I) / 2.
    - Unbalanced: the dual potentials stay quadratic, so each Sinkhorn half-step (exponent
      rho / (rho + eps)) is an exact Gaussian integral, iterated on the O(d^2) parameters until
      they change by less than ``tol``. The value is the primal objective at the Gaussian plan.

    Parameters
    ----------
    m0, m1 : array_like or Tensor, shape (d,)
    S0, S1 : array_like or Tensor, shape (d, d)
        Positive definite.
    eps : float
        Entropic weight (> 0).
    rho : float, optional
        Marginal KL weight (> 0); None: balanced.
    mass0, mass1 : float, default 1.0
        Masses (> 0; equal when balanced).
    max_iter : int, default 10000
    tol : float, default 1e-13
        Of the fixed point (change of the potential parameters; floored at 100 x machine eps).
    method : {"auto", "fixed_point"}, default "auto"
        ``"auto"``: closed form when balanced, fixed point otherwise; ``"fixed_point"``: the
        Gaussian Sinkhorn iteration in both cases (an independent check of the closed form).

    Returns
    -------
    GaussianEntropicOT

    Raises
    ------
    InputError
        Bad shapes, non-positive-definite covariances, unequal masses without ``rho``, bad
        scalars.

    Examples
    --------
    In 1-D with unit variances and eps = 2 sigma^2 = 1 the cross-covariance is
    (sqrt(4 + sigma^4) - sigma^2) / 2; the fixed point agrees with the closed form:

    >>> import math
    >>> import numpy as np
    >>> from measureflow.inverse import gaussian_entropic_ot
    >>> r = gaussian_entropic_ot(np.zeros(1), np.eye(1), np.ones(1), np.eye(1), eps=1.0)
    >>> round(float(r.cross_cov[0, 0]), 10), round((math.sqrt(4.25) - 0.5) / 2, 10)
    (0.7807764064, 0.7807764064)
    >>> f = gaussian_entropic_ot(np.zeros(1), np.eye(1), np.ones(1), np.eye(1), eps=1.0,
    ...                          method="fixed_point")
    >>> math.isclose(f.value, r.value, rel_tol=1e-10), r.method
    (True, 'closed_form')

    References
    ----------
    H. Janati, B. Muzellec, G. Peyre, M. Cuturi, "Entropic optimal transport between unbalanced
    Gaussian measures has a closed form", NeurIPS 2020.
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md).
    """
    ctx = ArrayContext(m0, S0, m1, S1)
    check_compute_dtype(ctx, "m0")
    m0, m1 = ctx.tensor(m0, "m0"), ctx.tensor(m1, "m1")
    S0, S1 = ctx.tensor(S0, "S0"), ctx.tensor(S1, "S1")
    check_ndim(m0, "m0", 1)
    d = m0.shape[0]
    check_shape(m1, "m1", (d,))
    check_shape(S0, "S0", (d, d))
    check_shape(S1, "S1", (d, d))
    check_psd(S0, "S0", strict=True)
    check_psd(S1, "S1", strict=True)
    eps = check_positive(eps, "eps")
    mass0, mass1 = check_positive(mass0, "mass0"), check_positive(mass1, "mass1")
    if rho is not None:
        rho = check_positive(rho, "rho")
    elif abs(mass0 - mass1) > 1e-12 * max(mass0, mass1):
        raise InputError("mass0, mass1: balanced OT needs equal masses; give rho for unbalanced")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = max(check_positive(tol, "tol"), 100 * torch.finfo(S0.dtype).eps)
    check_choice(method, "method", ("auto", "fixed_point"))
    S0, S1 = sym(S0), sym(S1)
    if rho is None and method == "auto":
        s2 = eps / 2.0
        I = torch.eye(d, dtype=S0.dtype, device=S0.device)
        R = sqrtm_psd(S0)
        Rinv = psd_power(S0, -0.5)
        D = sqrtm_psd(4.0 * R @ S1 @ R + (s2 * I) @ (s2 * I))
        Cxy = 0.5 * (R @ D @ Rinv - s2 * I)
        S = torch.cat([torch.cat([S0, Cxy], 1), torch.cat([Cxy.T, S1], 1)], 0)
        mass = torch.as_tensor(mass0, dtype=S0.dtype, device=S0.device)
        mu = torch.cat([m0, m1])
        val = _plan_value(mass, mu, S, m0, S0, mass0, m1, S1, mass1, eps, None)
        _check_representable(val, S, m0, m1, eps)
        res = GaussianEntropicOT(value=val, plan_mean=mu, plan_cov=S, plan_mass=mass,
                                 cross_cov=Cxy, method="closed_form", converged=True, n_iter=0)
        return ctx.wrap(res)
    try:
        mass, mu, S, it, errors, ok = _gaussian_sinkhorn(m0, S0, mass0, m1, S1, mass1, eps, rho,
                                                         max_iter, tol)
    except (ArithmeticError, torch.linalg.LinAlgError):
        raise InputError(f"eps: {eps:.3g} is out of the range this dtype resolves for these "
                         "covariances (overflow in the Gaussian Sinkhorn); rescale the problem") \
            from None
    report_convergence(ok, "gaussian_entropic_ot", it, errors[-1] if errors else math.nan, tol)
    val = _plan_value(mass, mu, S, m0, S0, mass0, m1, S1, mass1, eps, rho)
    _check_representable(val, S, m0, m1, eps)
    res = GaussianEntropicOT(value=val, plan_mean=mu, plan_cov=S, plan_mass=mass,
                             cross_cov=S[:d, d:], method="gaussian_sinkhorn", converged=ok,
                             n_iter=it, errors=errors)
    return ctx.wrap(res)


def _check_bilinear_inputs(ctx, Sa, Sb):
    Sa, Sb = ctx.tensor(Sa, "Sa"), ctx.tensor(Sb, "Sb")
    check_ndim(Sa, "Sa", 2)
    check_ndim(Sb, "Sb", 2)
    check_psd(Sa, "Sa", strict=True)
    check_psd(Sb, "Sb", strict=True)
    return sym(Sa), sym(Sb)


def gaussian_bilinear_plan(A, Sa, Sb, *, eps: float):
    """Cross-covariance Gamma of the balanced entropic plan for the bilinear cost -x^T A y.

    Problem: min_pi <-x^T A y, pi> + eps KL(pi | N(0, Sa) (x) N(0, Sb)) over couplings (means only
    add terms linear in x or y, absorbed by the potentials). The optimal plan is
    N(0, [[Sa, Gamma], [Gamma^T, Sb]]) with A = eps Sa^(-1) Gamma S^(-1),
    S = Sb - Gamma^T Sa^(-1) Gamma. Writing Gamma = Sa^(1/2) K Sb^(1/2) this reads
    Sa^(1/2) A Sb^(1/2) / eps = K (I - K^T K)^(-1); with the SVD U diag(s) V^T of the left side,
    K = U diag(k) V^T, k = (sqrt(1 + 4 s^2) - 1) / (2 s) (k = 0 where s = 0). [R] derived in
    ``docs/inverse.md``.

    Parameters
    ----------
    A : array_like or Tensor, shape (da, db)
    Sa : array_like or Tensor, shape (da, da)
    Sb : array_like or Tensor, shape (db, db)
        Positive definite.
    eps : float
        Entropic weight (> 0).

    Returns
    -------
    array or Tensor, shape (da, db)
        Gamma.

    Raises
    ------
    InputError
        Bad shapes, non-positive-definite covariances, ``eps`` <= 0.

    Examples
    --------
    :func:`gaussian_bilinear_inverse` undoes it:

    >>> import numpy as np
    >>> from measureflow.inverse import gaussian_bilinear_inverse, gaussian_bilinear_plan
    >>> A, Sa, Sb = np.array([[1.0, 0.5], [0.0, 0.3]]), np.eye(2), np.diag([1.0, 2.0])
    >>> G = gaussian_bilinear_plan(A, Sa, Sb, eps=0.5)
    >>> bool(np.allclose(gaussian_bilinear_inverse(Sa, Sb, G, eps=0.5), A))
    True

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md).
    """
    ctx = ArrayContext(A, Sa, Sb)
    check_compute_dtype(ctx, "A")
    A = ctx.tensor(A, "A")
    Sa, Sb = _check_bilinear_inputs(ctx, Sa, Sb)
    check_shape(A, "A", (Sa.shape[0], Sb.shape[0]))
    eps = check_positive(eps, "eps")
    Ra, Rb = sqrtm_psd(Sa), sqrtm_psd(Sb)
    U, s, Vh = torch.linalg.svd(Ra @ A @ Rb / eps, full_matrices=False)
    k = torch.where(s > 0, 2.0 * s / (1.0 + torch.sqrt(1.0 + 4.0 * s * s)), torch.zeros_like(s))
    K = (U * k[None, :]) @ Vh
    return ctx.wrap(Ra @ K @ Rb)


def gaussian_bilinear_inverse(Sa, Sb, Gamma, *, eps: float):
    """Population inverse for bilinear costs: A = eps Sa^-1 Gamma (Sb - Gamma^T Sa^-1 Gamma)^-1.

    Given the joint covariance Sigma = [[Sa, Gamma], [Gamma^T, Sb]] (positive definite) of the
    observed pairs, returns the matrix A of the cost -x^T A y whose balanced entropic plan (weight
    eps) it is: A = -eps (Sigma^(-1))_xy. Inverse of :func:`gaussian_bilinear_plan`.

    Parameters
    ----------
    Sa : array_like or Tensor, shape (da, da)
    Sb : array_like or Tensor, shape (db, db)
    Gamma : array_like or Tensor, shape (da, db)
        The joint covariance must be positive definite.
    eps : float
        Entropic weight (> 0).

    Returns
    -------
    array or Tensor, shape (da, db)

    Raises
    ------
    InputError
        Bad shapes, a joint covariance that is not positive definite, ``eps`` <= 0.

    Examples
    --------
    In 1-D: A = eps gamma / (sb - gamma^2 / sa):

    >>> import numpy as np
    >>> from measureflow.inverse import gaussian_bilinear_inverse
    >>> A = gaussian_bilinear_inverse(np.eye(1), np.array([[0.73]]), np.array([[0.8]]), eps=1.0)
    >>> round(float(A[0, 0]), 10), round(0.8 / (0.73 - 0.64), 10)
    (8.8888888889, 8.8888888889)

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md).
    """
    ctx = ArrayContext(Sa, Sb, Gamma)
    check_compute_dtype(ctx, "Sa")
    Sa, Sb = _check_bilinear_inputs(ctx, Sa, Sb)
    G = ctx.tensor(Gamma, "Gamma")
    check_shape(G, "Gamma", (Sa.shape[0], Sb.shape[0]))
    eps = check_positive(eps, "eps")
    full = torch.cat([torch.cat([Sa, G], 1), torch.cat([G.T, Sb], 1)], 0)
    check_psd(full, "Gamma", strict=True)
    Sainv_G = torch.linalg.solve(Sa, G)
    Schur = sym(Sb - G.T @ Sainv_G)
    return ctx.wrap(eps * torch.linalg.solve(Schur, Sainv_G.T).T)


def gaussian_jko_step(m, S, Q, b, tau: float, *, beta: float = 0.0):
    """One JKO step from N(m, S) for V(y) = y^T Q y / 2 + b^T y (+ beta x entropy).

    rho_(k+1) = argmin_rho W2^2(N(m, S), rho) / (2 tau) + int V drho + beta int rho log rho.

    - beta = 0: rho_(k+1) = N((I + tau Q)^(-1) (m - tau b), (I + tau Q)^(-1) S (I + tau Q)^(-1))
      (the prox of tau V pushes the measure forward).
    - beta > 0: the optimal map is T(x) = m' + M (x - m) with M symmetric positive definite,
      M^(-1) = I + tau Q - tau beta S'^(-1) and S' = M S M. With H = I + tau Q, c = tau beta,
      K0 = H^(-1/2) S H^(-1/2): S' = H^(-1/2) Z H^(-1/2),
      Z = (K0 + 2c I + (K0^2 + 4c K0)^(1/2)) / 2.
      [R] derived in ``docs/inverse.md``, checked against the optimality condition in the tests.

    Parameters
    ----------
    m : array_like or Tensor, shape (d,)
    S : array_like or Tensor, shape (d, d)
        Positive definite.
    Q : array_like or Tensor, shape (d, d)
        Symmetric (I + tau Q must be positive definite).
    b : array_like or Tensor, shape (d,)
    tau : float
        Step (> 0).
    beta : float, default 0.0
        Entropy weight (>= 0).

    Returns
    -------
    (array or Tensor, array or Tensor)
        ``(m_next, S_next)``.

    Raises
    ------
    InputError
        Bad shapes, S not positive definite, I + tau Q not positive definite, an overflowing
        result.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.inverse import gaussian_jko_step
    >>> m, S = gaussian_jko_step(np.ones(2), np.eye(2), np.eye(2), np.zeros(2), 1.0)
    >>> m.tolist(), np.diag(S).tolist()                    # (I + Q)^-1 m, (I + Q)^-2
    ([0.5, 0.5], [0.25, 0.25])

    The Gibbs law exp(-V / beta) is a fixed point (here V = y^2 / 2, beta = 1: N(0, 1)):

    >>> m, S = gaussian_jko_step(np.zeros(1), np.eye(1), np.eye(1), np.zeros(1), 0.5, beta=1.0)
    >>> float(m[0]), round(float(S[0, 0]), 12)
    (0.0, 1.0)

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md).
    """
    ctx = ArrayContext(m, S, Q, b)
    check_compute_dtype(ctx, "m")
    m, S, Q, b = (ctx.tensor(v, n) for v, n in ((m, "m"), (S, "S"), (Q, "Q"), (b, "b")))
    check_ndim(m, "m", 1)
    d = m.shape[0]
    for v, n, shp in ((S, "S", (d, d)), (Q, "Q", (d, d)), (b, "b", (d,))):
        check_shape(v, n, shp)
    check_psd(S, "S", strict=True)
    Q = ctx.tensor(Q, "Q")
    tau = check_positive(tau, "tau")
    beta = check_nonnegative_scalar(beta, "beta")
    I = torch.eye(d, dtype=S.dtype, device=S.device)
    H = sym(I + tau * sym(Q))
    if float(torch.linalg.eigvalsh(H.detach()).min()) <= 0:
        raise InputError("tau: I + tau Q must be positive definite (step too large for V)")
    m_next = torch.linalg.solve(H, m - tau * b)
    Hinv = torch.linalg.inv(H)
    S_next = sym(Hinv @ S @ Hinv)
    if beta > 0:
        # closed form: with W = S', M^{-1} = H - c W^{-1}, c = tau beta, and W = M S M,
        # H W H - 2 c H + c^2 W^{-1} = S; W = H^{-1/2} Z H^{-1/2} with Z a function of
        # K0 = H^{-1/2} S H^{-1/2}: Z = (K0 + 2c + (K0^2 + 4 c K0)^{1/2}) / 2 (the root with Z > c I,
        # i.e. M positive definite).
        c = tau * beta
        Hm = psd_power(H, -0.5)
        K0 = sym(Hm @ S @ Hm)
        Z = 0.5 * (K0 + 2 * c * I + sqrtm_psd(sym(K0 @ K0 + 4 * c * K0)))
        S_next = sym(Hm @ Z @ Hm)
    if not (bool(torch.isfinite(m_next).all()) and bool(torch.isfinite(S_next).all())):
        raise InputError("S: the next covariance overflows this dtype; rescale the problem")
    return ctx.wrap((m_next, S_next))
