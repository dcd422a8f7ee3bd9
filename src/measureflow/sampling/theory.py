"""Expected W2^2 error of the Gaussian DSM + Langevin pipeline, split by source.

Reconstruction (the paper's text, arXiv:2503.11615, was not available; its abstract states that
the expected Wasserstein error is a kernel-type norm of the power spectrum). Derivations are
written out in ``docs/sampling.md``; summary, for a target N(0, diag(lambda)), stationary ULA:

* For the closed-form and gd scores the whole pipeline is a spectral map C = g(S) of the
  empirical covariance S, with g(mu) = (1 - sigma^2 a)^{2 delta} / (a - gamma a^2 / 2)
  (a = a(mu) the learned score eigenvalue, delta = 1 with denoising), or its finite-step version
  c_K = b^{2K} init_var + (1 - b^{2K}) c_inf, b = 1 - gamma a, before denoising.
* ``bias`` = W2^2(Sigma, g(Sigma)) = sum_i (sqrt(lambda_i) - sqrt(g(lambda_i)))^2: **exact**
  (N = infinity). It is split into ``noise`` (exact score at noise sigma, gamma -> 0),
  ``discretization`` (what the step gamma, and finite n_steps, add; exact difference) and, for gd,
  ``optimization`` (what K gd steps add; exact difference).
* ``finite_samples``: E W2^2(Sigma, g(S)) - bias to first order in 1/N (**asymptotic**): with
  Wishart moments E[E_ij^2] = (lambda_i lambda_j + delta_ij lambda_i^2)/N, second-order
  Daleckii-Krein expansion of g and second-order expansion of the Bures distance around the
  biased point c = g(lambda) (r_i = sqrt(c_i), s_i = sqrt(lambda_i)):

      finite_samples = sum_ij lambda_i lambda_j K_ij,
      K_ij = (1 + delta_ij)/N [ (1 - s_i/r_i) g[lambda_i, lambda_i, lambda_j]
                                + g[lambda_i, lambda_j]^2 s_i s_j / (2 r_i r_j (s_i r_i + s_j r_j)) ]

  (symmetrised), g[.,.] and g[.,.,.] the first and second divided differences of g.
* ``optimization`` for sgd (stationary SGD with step tau, no denoising): to first order in tau
  (**asymptotic**), A = A* + Delta with independent centred entries, Var(Delta_ij) = tau r_i,
  r_i = lambda_i / (sigma^2 (lambda_i + sigma^2)); the Langevin covariance is expanded to
  second order in Delta (discrete Lyapunov equation) and the Bures distance to second order.

``total`` = bias + finite_samples (+ optimization for sgd); for gd the optimisation term is
already inside ``bias``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..core import (
    ArrayContext,
    InputError,
    check_choice,
    check_int,
    check_nonnegative_scalar,
    check_positive,
)
from .gaussian import _check_bool, _check_spectrum, _score_eig

__all__ = ["W2ErrorTerms", "w2_error", "chain_w2_stats"]


class _Terms:
    """Shared behaviour of the error-term records (plain frozen dataclasses)."""

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def _to_caller(self, ctx):
        """Tensors to the caller's dtype/device (torch call) or to NumPy (NumPy call)."""
        if ctx.is_torch:
            return dataclasses.replace(self, **{
                k: v.to(dtype=ctx.dtype, device=ctx.device) for k, v in self.as_dict().items()
                if isinstance(v, torch.Tensor)})
        return ctx.wrap(self)


@dataclasses.dataclass(frozen=True)
class W2ErrorTerms(_Terms):
    """Expected W2^2 (squared distance) error of :func:`~measureflow.sampling.pipeline`, by source.

    total = bias + finite_samples + (optimization if score == "sgd"); bias = noise +
    discretization (+ optimization if score == "gd"), each exact. Fields are tensors for tensor
    input, floats / arrays for NumPy input; ``as_dict()`` returns them as a dict.

    Attributes
    ----------
    total : float
    bias : float
        W2^2(Sigma, g(Sigma)) at N = infinity (exact).
    noise : float
        Error of the exact score at noise sigma, gamma -> 0 (exact).
    discretization : float
        What the step gamma (and finite n_steps) add (exact difference).
    optimization : float
        gd: what K steps add (exact); sgd: first order in tau; closed form: 0.
    finite_samples : float
        First order in 1/N (asymptotic), lambda^T kernel lambda.
    kernel : array, shape (d, d)
        Symmetric K with finite_samples = lambda^T K lambda.
    per_direction : array, shape (d,)
        bias split by eigen-direction, (sqrt(lambda_i) - sqrt(g(lambda_i)))^2.
    exact, asymptotic : tuple of str
        Names of the exact terms and of the leading-order expansions.
    """

    total: Any
    bias: Any
    noise: Any
    discretization: Any
    optimization: Any
    finite_samples: Any
    kernel: Any
    per_direction: Any
    exact: tuple
    asymptotic: tuple


def _pipeline_map(score, sigma, gamma, score_step, score_iters, n_steps, init_var, denoise):
    """g(mu): output variance of the pipeline as a function of an eigenvalue mu of S."""

    def g(mu):
        a = _score_eig(mu + sigma**2, score, score_step, score_iters)
        cinf = 1.0 / (a - 0.5 * gamma * a * a)
        if n_steps is None:
            c = cinf
        else:
            b2 = (1.0 - gamma * a) ** (2 * n_steps)
            c = b2 * init_var + (1.0 - b2) * cinf
        if denoise:
            c = (1.0 - sigma**2 * a) ** 2 * c
        return c

    return g


class _Jet:
    """Second-order Taylor jet (v, v', v'') of an elementwise function: forward-mode
    differentiation by hand for the arithmetic of the spectral maps (+, -, *, /, **)."""

    __slots__ = ("v", "d1", "d2")

    def __init__(self, v, d1, d2):
        self.v, self.d1, self.d2 = v, d1, d2

    def __add__(self, o):
        if not isinstance(o, _Jet):                    # constant: derivatives unchanged
            return _Jet(self.v + o, self.d1, self.d2)
        return _Jet(self.v + o.v, self.d1 + o.d1, self.d2 + o.d2)

    __radd__ = __add__

    def __neg__(self):
        return _Jet(-self.v, -self.d1, -self.d2)

    def __sub__(self, o):
        return self + (-o)

    def __rsub__(self, o):
        return (-self) + o

    def __mul__(self, o):
        if not isinstance(o, _Jet):                    # constant factor
            return _Jet(self.v * o, self.d1 * o, self.d2 * o)
        return _Jet(self.v * o.v, self.d1 * o.v + self.v * o.d1,
                    self.d2 * o.v + 2 * self.d1 * o.d1 + self.v * o.d2)

    __rmul__ = __mul__

    def _inv(self):
        r = 1.0 / self.v
        r2 = r * r
        return _Jet(r, -self.d1 * r2, (2 * self.d1 * self.d1 * r - self.d2) * r2)

    def __truediv__(self, o):
        if not isinstance(o, _Jet):
            return self * (1.0 / o)
        return self * o._inv()

    def __rtruediv__(self, o):
        return self._inv() * o

    def __pow__(self, p):
        if isinstance(p, _Jet):
            raise TypeError("_Jet: only constant exponents")
        if p == 0:
            return _Jet(self.v**0, 0.0, 0.0)
        vp1 = self.v ** (p - 1)
        vp2 = self.v ** (p - 2) if p != 1 else 0.0
        return _Jet(vp1 * self.v, p * vp1 * self.d1,
                    p * vp1 * self.d2 + p * (p - 1) * vp2 * self.d1 * self.d1)


def _derivs(g, x):
    """g(x), g'(x), g''(x) for an elementwise g written with + - * / ** (float64).

    Forward mode through :class:`_Jet`: a few primal evaluations whatever the length of g's
    computation (the diffusion map is a product over hundreds of steps).
    """
    x = x.detach()
    out = g(_Jet(x, torch.ones_like(x), torch.zeros_like(x)))
    if not isinstance(out, _Jet):        # g constant
        out = _Jet(out, 0.0, 0.0)
    z = torch.zeros_like(x)
    return out.v + z, out.d1 + z, out.d2 + z


_GL_X, _GL_W = None, None


def _gauss_legendre(n=24, dtype=torch.float64):
    global _GL_X, _GL_W
    if _GL_X is None:
        import numpy as np
        x, w = np.polynomial.legendre.leggauss(n)
        _GL_X = torch.as_tensor((x + 1) / 2, dtype=dtype)
        _GL_W = torch.as_tensor(w / 2, dtype=dtype)
    return _GL_X, _GL_W


def _divided_differences(g, lam):
    """G1[i, j] = g[l_i, l_j], G2[i, j] = g[l_i, l_i, l_j] (Hermite divided differences)."""
    gv, d1, d2 = _derivs(g, lam)
    a, b = lam[:, None], lam[None, :]
    diff = b - a
    scale = torch.maximum(a.abs(), b.abs())
    far = diff.abs() > 1e-2 * scale
    safe = torch.where(far, diff, torch.ones_like(diff))
    G1_far = (gv[None, :] - gv[:, None]) / safe
    G2_far = (G1_far - d1[:, None]) / safe
    # equal points: g[a, a] = g'(a), g[a, a, a] = g''(a) / 2
    G1 = torch.where(far, G1_far, d1[:, None].expand_as(diff))
    G2 = torch.where(far, G2_far, 0.5 * d2[:, None].expand_as(diff))
    # near but distinct points: g[a, b] = int_0^1 g'(a + t (b - a)) dt,
    # g[a, a, b] = int_0^1 (1 - t) g''(a + t (b - a)) dt, Gauss-Legendre (g analytic there)
    near = (~far) & (diff != 0)
    if bool(near.any()):
        t, w = _gauss_legendre()
        t, w = t.to(lam.device), w.to(lam.device)
        pts = a.expand_as(diff)[near][:, None] + t * diff[near][:, None]
        _, p1, p2 = _derivs(g, pts.reshape(-1))
        p1, p2 = p1.reshape(pts.shape), p2.reshape(pts.shape)
        G1 = G1.clone()
        G2 = G2.clone()
        G1[near] = (p1 * w).sum(-1)
        G2[near] = (p2 * (1 - t) * w).sum(-1)
    return gv, G1, G2


def _bures_commuting(lam, c):
    return (lam.sqrt() - c.sqrt()) ** 2


def _bures_weights(lam, c):
    """Second-order expansion of W2^2(diag(lam), diag(c) + D) in D (derived, docs/sampling.md).

    W2^2 ~ W2^2(lam, c) + sum_i w1_i D_ii + sum_ij w2_ij D_ij^2, with s = sqrt(lam),
    r = sqrt(c): w1_i = 1 - s_i / r_i and w2_ij = s_i s_j / (2 r_i r_j (s_i r_i + s_j r_j)).
    """
    s, r = lam.sqrt(), c.sqrt()
    w1 = 1 - s / r
    sr = s * r
    w2 = 0.5 * s[:, None] * s[None, :] / (r[:, None] * r[None, :] * (sr[:, None] + sr[None, :]))
    return w1, w2


def _finite_sample_kernel(lam, g, N):
    """(g(lam), K) with E W2^2(diag(lam), g(S)) - W2^2(diag(lam), g(lam)) ~ lam^T K lam.

    S the empirical second moment of N Gaussian samples of N(0, diag(lam)) (Wishart moments
    E[E_ij^2] = (lam_i lam_j + delta_ij lam_i^2) / N), g a smooth spectral map; second-order
    Daleckii-Krein expansion of g(S) and of the Bures distance around the biased point g(lam).
    First order in 1/N (derived here, docs/sampling.md).
    """
    gv, G1, G2 = _divided_differences(g, lam)
    w1, w2 = _bures_weights(lam, gv)
    K = w1[:, None] * G2 + G1**2 * w2
    eye = torch.eye(lam.numel(), dtype=lam.dtype, device=lam.device)
    K = (1 + eye) * K
    K = 0.5 * (K + K.T) / N if math.isfinite(N) else torch.zeros_like(K)
    return gv, K


def chain_w2_stats(spectrum, variances, n_chains: int):
    """Sampling error of W2^2 computed from n simulated chains instead of the exact law.

    For a target N(0, diag(spectrum)) and chains of N(0, diag(variances)), returns
    E W2^2(target, C_n) - W2^2(target, diag(variances)) and the standard deviation of
    W2^2(target, C_n), C_n the chains' second moment; first order in 1/n (second-order Bures
    expansion, derived in docs/sampling.md). Used to compare ``w2_samples`` of the pipelines with
    their exact ``w2``.

    Parameters
    ----------
    spectrum : array_like or Tensor, shape (d,)
        Positive target variances.
    variances : array_like or Tensor, shape (d,)
        Positive variances of the chains' law.
    n_chains : int
        n (>= 1).

    Returns
    -------
    (float, float)
        ``(bias, sd)``.

    Raises
    ------
    InputError
        Non-positive or mismatched variances, bad ``n_chains``.

    Examples
    --------
    >>> from measureflow.sampling import chain_w2_stats
    >>> bias, sd = chain_w2_stats([1.0, 0.5], [1.0, 0.5], 1000)
    >>> bool(0 < bias < 2e-3 and sd > 0)
    True
    >>> bias2, _ = chain_w2_stats([1.0, 0.5], [1.0, 0.5], 2000)     # first order in 1/n
    >>> round(bias / bias2, 6)
    2.0
    """
    ctx = ArrayContext(spectrum, variances)
    lam = _check_spectrum(ctx, spectrum).detach().to(torch.float64)
    c = ctx.tensor(variances, "variances").detach().to(torch.float64)
    if c.shape != lam.shape or bool((c <= 0).any()):
        raise InputError(f"variances: expected {tuple(lam.shape)} positive entries")
    n = check_int(n_chains, "n_chains", min_value=1)
    return _chain_sampling_stats(lam, c, n)


def _chain_sampling_stats(lam, c, n):
    """(bias, sd) of W2^2(diag(lam), C_n) - W2^2(diag(lam), diag(c)), C_n the second moment of
    n samples of N(0, diag(c)) (D = C_n - diag(c) Wishart: Var D_ii = 2 c_i^2 / n,
    Var D_ij = c_i c_j / n), from the second-order Bures expansion with D's entries treated as
    independent Gaussians: bias = E[quadratic part]; sd combines the linear part
    sum_i w1_i D_ii and the chi-square spread of the quadratic part (which dominates when
    c ~ lam, where w1 ~ 0). First order in 1/n (derived, docs/sampling.md)."""
    w1, w2 = _bures_weights(lam, c)
    eye = torch.eye(lam.numel(), dtype=lam.dtype, device=lam.device)
    v = (1 + eye) * c[:, None] * c[None, :] / n                # Var D_ij
    bias = float((w2 * v).sum())
    mult = torch.where(eye.bool(), torch.ones_like(v), 2 * torch.ones_like(v))  # i<j twice
    quad = torch.triu(mult**2 * w2**2 * 2 * v**2).sum()
    lin = (w1**2 * torch.diagonal(v)).sum()
    return bias, float((lin + quad).sqrt())


def _sgd_term(lam, sigma, gamma, tau):
    """First-order-in-tau expected W2^2 increase from SGD fluctuations of A (stationary ULA)."""
    q = lam + sigma**2
    a = 1.0 / q
    b = 1.0 - gamma * a
    c = 1.0 / (a - 0.5 * gamma * a * a)
    v = tau * lam / (sigma**2 * q)                 # Var(Delta_ij) = v_i
    w1, w2 = _bures_weights(lam, c)
    bb = b[:, None] * b[None, :]
    one_m = 1.0 - bb
    # E[Delta_ik C1_ik] = -gamma (v_i c_k b_k + delta_ik v_i b_i c_i) / (1 - b_i b_k)
    e_dc = -gamma * (v[:, None] * (c * b)[None, :] + torch.diag(v * b * c)) / one_m
    EC2 = (-2 * gamma * b * e_dc.sum(1) + gamma**2 * v * c.sum()) / (1 - b * b)
    EC1sq = gamma**2 * (v[:, None] * (c * b)[None, :] ** 2 + v[None, :] * (c * b)[:, None] ** 2
                        + 2 * torch.diag(v * (c * b) ** 2)) / one_m**2
    first = (w1 * EC2).sum()
    second = (w2 * EC1sq).sum()
    return first + second


def w2_error(spectrum, *, sigma: float, gamma: float, n_samples: int | float,
             score: str = "closed_form", score_step: float | None = None,
             score_iters: int | None = None, n_steps: int | None = None, init_var: float = 1.0,
             denoise: bool = False) -> W2ErrorTerms:
    """Expected W2^2(N(0, Sigma), law reached) of :func:`pipeline`, split into named sources.

    For the closed-form and gd scores the pipeline is a spectral map C = g(S) of the empirical
    covariance; the bias terms are exact (commuting Bures formula), the finite-sample term is a
    kernel norm lambda^T K lambda of the spectrum to first order in 1/N (Daleckii-Krein and Bures
    expansions); see the module docstring and docs/sampling.md (a reconstruction of arXiv:2503.11615
    v1 from its abstract).

    Parameters
    ----------
    spectrum : array_like or Tensor, shape (d,)
        Eigenvalues lambda_i > 0 of Sigma (the data power spectrum).
    sigma : float
        DSM noise level (> 0).
    gamma : float
        Langevin step (> 0; stability needs gamma a < 2 for every learned eigenvalue a).
    n_samples : int or float
        N (``math.inf`` allowed: finite_samples = 0).
    score : {"closed_form", "gd", "sgd"}, default "closed_form"
        gd: K = ``score_iters`` steps of size tau = ``score_step`` (both required); sgd:
        stationary SGD with step tau = ``score_step`` (required; first order in tau; requires
        ``n_steps=None`` and ``denoise=False``).
    score_step : float, optional
    score_iters : int, optional
    n_steps : int, optional
        None for the stationary ULA law, else the exact K-step law from N(0, init_var I).
    init_var : float, default 1.0
    denoise : bool, default False
        Final Tweedie step.

    Returns
    -------
    W2ErrorTerms
        Tensor outputs are *detached*: no gradient w.r.t. ``spectrum`` (use :func:`pipeline`).
        The average over datasets of W2^2 matches ``total`` up to O(N^-2) (+ O(tau^2)).

    Raises
    ------
    InputError
        Bad spectrum or scalars, missing gd/sgd arguments, a diverging ``score_step``, an
        unstable ``gamma``, sgd with ``n_steps`` or ``denoise``.

    Examples
    --------
    At gamma -> 0 and N = infinity the exact score at noise sigma samples N(0, Sigma + sigma^2 I):
    the noise term is (sqrt(lambda) - sqrt(lambda + sigma^2))^2.

    >>> import math
    >>> from measureflow.sampling import w2_error
    >>> t = w2_error([1.0], sigma=0.5, gamma=1e-3, n_samples=math.inf)
    >>> round(t.noise, 6), round((1 - math.sqrt(1.25)) ** 2, 6), t.finite_samples
    (0.013932, 0.013932, 0.0)
    >>> t = w2_error([1.0, 0.25], sigma=0.05, gamma=0.01, n_samples=10**5)
    >>> math.isclose(t.total, t.noise + t.discretization + t.finite_samples), t.asymptotic
    (True, ('finite_samples',))

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v1: Langevin).
    """
    ctx = ArrayContext(spectrum)
    lam = _check_spectrum(ctx, spectrum).detach().to(torch.float64)
    sigma = check_positive(sigma, "sigma")
    gamma = check_positive(gamma, "gamma")
    N = check_positive(n_samples, "n_samples", allow_inf=True)
    check_choice(score, "score", ("closed_form", "gd", "sgd"))
    if n_steps is not None:
        n_steps = check_int(n_steps, "n_steps", min_value=0)
    init_var = check_nonnegative_scalar(init_var, "init_var")
    denoise = _check_bool(denoise, "denoise")
    if score in ("gd", "sgd"):
        if score_step is None:
            raise InputError(f"score_step: required for score={score!r}")
        score_step = check_positive(score_step, "score_step")
        if score_step * float(lam.max() + sigma**2) >= 1.0:
            raise InputError("score_step: (stochastic) gradient descent diverges (tau >= "
                             "1/(lambda_max + sigma^2))")
    if score == "gd":
        if score_iters is None:
            raise InputError("score_iters: required for score='gd'")
        score_iters = check_int(score_iters, "score_iters", min_value=0)
    if score == "sgd" and (n_steps is not None or denoise):
        raise InputError("score: the sgd term is derived for the stationary law without "
                         "denoising (n_steps=None, denoise=False)")
    base = "gd" if score == "gd" else "closed_form"
    g = _pipeline_map(base, sigma, gamma, score_step, score_iters, n_steps, init_var, denoise)
    # stability of every direction met by the pipeline (at N = inf)
    a = _score_eig(lam + sigma**2, base, score_step, score_iters)
    if bool(((gamma * a) >= 2).any()) or bool((a <= 0).any()):
        raise InputError(f"gamma: ULA unstable for the learned score (need gamma < 2 / a, "
                         f"max gamma a = {float((gamma * a).max()):.4g})")
    gv, Kmat = _finite_sample_kernel(lam, g, N)
    per_dir = _bures_commuting(lam, gv)
    bias = per_dir.sum()
    g_noise = _pipeline_map("closed_form", sigma, 0.0, None, None, None, init_var, denoise)
    noise = _bures_commuting(lam, g_noise(lam)).sum()
    if score == "gd":
        g_cf = _pipeline_map("closed_form", sigma, gamma, None, None, n_steps, init_var, denoise)
        bias_cf = _bures_commuting(lam, g_cf(lam)).sum()
        optimization = bias - bias_cf
        discretization = bias_cf - noise
    else:
        discretization = bias - noise
        optimization = _sgd_term(lam, sigma, gamma, score_step) if score == "sgd" \
            else torch.zeros((), dtype=lam.dtype, device=lam.device)
    finite = lam @ Kmat @ lam
    total = bias + finite + (optimization if score == "sgd" else 0.0)
    exact = ("bias", "noise", "discretization") + (("optimization",) if score != "sgd" else ())
    asym = ("finite_samples",) + (("optimization",) if score == "sgd" else ())
    out = W2ErrorTerms(total=total, bias=bias, noise=noise, discretization=discretization,
                       optimization=optimization, finite_samples=finite, kernel=Kmat,
                       per_direction=per_dir, exact=exact, asymptotic=asym)
    return out._to_caller(ctx)
