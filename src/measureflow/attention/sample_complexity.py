"""Token-sample complexity of attention: references, sweeps over n, rate fits, horizon.

Bohbot, Letrouit, Peyre, Vialard, "Token sample complexity of attention", arXiv:2512.10656.
For n i.i.d. tokens x_i ~ mu the finite-n object is the self-attention output measure
(Gamma_{mu_n})_# mu_n; we compare its mean m_n and population covariance C_n with the
infinite-token limits m, C of (Gamma_mu)_# mu and fit |m_n - m| ~ n^{-beta},
|C_n - C|_F ~ n^{-beta}. The operational prediction (from the paper's reference code) is
beta_th(H) = 1 / (2 (1 + H^2)), H = ||Sigma^{1/2} A Sigma^{1/2}||_2, A = K^T Q, **with A
exactly the bilinear form of the scores** (our scores have no hidden 1/sqrt(d), so H includes
any temperature put in Q -- unlike the reference code, see the docs).

References available here:
* Gaussian mu = N(alpha, Sigma): analytic (Gamma_mu is affine; :func:`gaussian_reference`).
* Uniform sphere S^{d-1}(R): Bessel ratio closed form (von Mises-Fisher mean) plus a
  Dirichlet(1/2, ..., 1/2) expectation by Monte Carlo (:func:`sphere_reference`).
* A large sample: :func:`~measureflow.attention.output_moments` of it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..core import ArrayContext, InputError, check_choice, check_int, check_positive, make_generator
from ..core.linalg import sqrtm_psd
from ..core.stats import loglog_fit
from .attend import attend, output_moments
from .gaussian import gaussian_affine_map

__all__ = ["horizon", "beta_theory", "gaussian_reference", "sphere_reference",
           "bessel_ratio", "fit_rate", "token_sample_sweep", "TokenSweepResult",
           "uniform_error"]


def horizon(cov, Q, K, heads=1, per_head=False):
    """H = ||Sigma^{1/2} A Sigma^{1/2}||_2 (spectral norm), A = K^T Q = sum_h K_h^T Q_h.

    ``per_head=True`` returns the vector of H_h = ||Sigma^{1/2} K_h^T Q_h Sigma^{1/2}||_2.
    arXiv:2512.10656 (horizon of the token distribution; same singular values as
    L^T A L with L = chol(Sigma)).
    """
    ctx = ArrayContext(cov, Q, K)
    S = ctx.tensor(cov, "cov")
    Qt, Kt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K")
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise InputError(f"cov: expected a square matrix, got shape {tuple(S.shape)}")
    d = S.shape[0]
    if Qt.ndim != 2 or Qt.shape != Kt.shape or Qt.shape[1] != d:
        raise InputError(f"Q, K: expected equal shapes (k, {d}), got {tuple(Qt.shape)} and "
                         f"{tuple(Kt.shape)}")
    h = check_int(heads, "heads", min_value=1)
    if Qt.shape[0] % h:
        raise InputError(f"heads: {h} does not divide the number of rows of Q ({Qt.shape[0]})")
    Sh = sqrtm_psd(S)
    if per_head:
        Qh = Qt.reshape(h, -1, d)
        Kh = Kt.reshape(h, -1, d)
        A = Kh.transpose(1, 2) @ Qh
        return ctx.wrap(torch.linalg.matrix_norm(Sh @ A @ Sh, ord=2))
    return ctx.wrap(torch.linalg.matrix_norm(Sh @ (Kt.T @ Qt) @ Sh, ord=2))


def beta_theory(H):
    """beta_th(H) = 1 / (2 (1 + H^2)) (arXiv:2512.10656, operational rate of the moments)."""
    if isinstance(H, torch.Tensor):
        if not bool(torch.isfinite(H).all()) or bool((H < 0).any()):
            raise InputError("H: the horizon must be finite and nonnegative")
        return 0.5 / (1.0 + H * H)
    Ha = np.asarray(H, float)
    if not np.all(np.isfinite(Ha)) or np.any(Ha < 0):
        raise InputError("H: the horizon must be finite and nonnegative")
    out = 0.5 / (1.0 + Ha * Ha)
    return float(out) if out.ndim == 0 else out


def gaussian_reference(mean, cov, Q, K, V, kind="softmax", heads=1, eps=1.0):
    """Exact infinite-token moments for mu = N(mean, cov): Gamma_mu(x) = b + J (x - mean), so
    (Gamma_mu)_# mu = N(b, J cov J^T). Returns ``(b, J cov J^T)``. For softmax
    b = V(alpha + Sigma A alpha), J = V Sigma A (arXiv:2512.10656 / 2501.18322)."""
    ctx = ArrayContext(mean, cov, Q, K, V)
    S = ctx.tensor(cov, "cov")
    b, J = gaussian_affine_map(ctx.tensor(mean, "mean"), S, ctx.tensor(Q, "Q"),
                               ctx.tensor(K, "K"), ctx.tensor(V, "V"), kind=kind, heads=heads,
                               eps=eps)
    C = J @ S @ J.transpose(-1, -2)
    return ctx.wrap((b, 0.5 * (C + C.transpose(-1, -2))))


def bessel_ratio(d: int, r):
    """A_d(r) = I_{d/2}(r) / I_{d/2-1}(r) (mean resultant length of von Mises-Fisher on
    S^{d-1}), computed with exponentially scaled Bessel functions (``scipy.special.ive``);
    A_d(0) = 0 and A_d(r) ~ r / d as r -> 0."""
    from scipy.special import ive
    r = np.asarray(r, float)
    d = check_int(d, "d", min_value=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ive(d / 2.0, r) / ive(d / 2.0 - 1.0, r)
    small = r < 1e-8
    return np.where(small, r / d, out)


def sphere_reference(Q, K, V, radius=1.0, *, n_mc=2**18, seed=0):
    """Infinite-token moments for mu uniform on the sphere S^{d-1}(R) (single head).

    Gamma_mu(x) = V R A_d(R |A x|) A x / |A x| with A = K^T Q (von Mises-Fisher mean). The
    output mean is 0 and its covariance is V U diag(lambda) U^T V^T, where A = U diag(s) W^T and
    lambda_i = R^2 E[A_d(R^2 sqrt(S))^2 s_i^2 T_i / S], S = sum_k s_k^2 T_k,
    T ~ Dirichlet(1/2, ..., 1/2) (T_k = g_k^2 / |g|^2, g Gaussian). The expectation is a Monte
    Carlo average over ``n_mc`` draws (relative error ~ n_mc^{-1/2}), averaged within groups
    of equal singular values (exact symmetry; the result is exact when A is a multiple of an
    orthogonal matrix). arXiv:2512.10656 (sphere experiment).
    Returns ``(mean, cov)``.
    """
    ctx = ArrayContext(Q, K, V)
    Qt, Kt, Vt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K"), ctx.tensor(V, "V")
    if Qt.ndim != 2 or Qt.shape != Kt.shape:
        raise InputError(f"Q, K: expected equal 2-D shapes, got {tuple(Qt.shape)}, "
                         f"{tuple(Kt.shape)}")
    d = Qt.shape[1]
    if Vt.ndim != 2 or Vt.shape[1] != d:
        raise InputError(f"V: expected shape (d_out, {d}), got {tuple(Vt.shape)}")
    R = check_positive(radius, "radius")
    n_mc = check_int(n_mc, "n_mc", min_value=16)
    A = (Kt.T @ Qt).detach().cpu().double().numpy()
    U, s, _ = np.linalg.svd(A)
    rng = np.random.default_rng(seed if not isinstance(seed, torch.Generator) else
                                int(seed.initial_seed()))
    acc = np.zeros(d)
    done = 0
    while done < n_mc:
        b = min(1 << 16, n_mc - done)
        g = rng.standard_normal((b, d))
        Tm = g * g
        Tm /= Tm.sum(1, keepdims=True)
        S = Tm @ (s * s)
        ratio = bessel_ratio(d, R * R * np.sqrt(S))
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(S > 0, ratio ** 2 / np.where(S > 0, S, 1.0), 1.0 / d ** 2 * R ** 4)
        acc += (f[:, None] * Tm).sum(0)
        done += b
    lam = R * R * (s * s) * acc / n_mc
    # exact symmetry: equal singular values have equal lambda (variance reduction)
    i = 0
    while i < d:
        j = i + 1
        while j < d and abs(s[j] - s[i]) <= 1e-12 * max(s[0], 1e-300):
            j += 1
        lam[i:j] = lam[i:j].mean()
        i = j
    cov = (U * lam) @ U.T
    Vn = Vt.detach().cpu().double().numpy()
    C = Vn @ cov @ Vn.T
    C = 0.5 * (C + C.T)
    mean = torch.zeros(Vt.shape[0], dtype=ctx.dtype, device=ctx.device)
    return ctx.wrap((mean, torch.as_tensor(C, dtype=ctx.dtype, device=ctx.device)))


def fit_rate(n, err_mean, err_std=None, k=None) -> dict:
    """Weighted log-log fit err ~ c n^{slope} with standard errors.

    Weights 1/Var(log err) with Var(log err) ~ (std / sqrt(k) / mean)^2 (delta method, as in
    the paper's reference code); ``err_std=None`` gives equal weights. Returns
    :func:`measureflow.core.loglog_fit`'s dict (slope, intercept, slope_se, intercept_se).
    """
    n = np.asarray(n, float)
    e = np.asarray(err_mean, float)
    if n.shape != e.shape or n.ndim != 1 or n.size < 2:
        raise InputError("err_mean: expected a 1-D array matching n (at least 2 points)")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(n))):
        raise InputError("err_mean: errors and n must be finite (NaN/Inf found)")
    if np.any(e <= 0) or np.any(n <= 0):
        raise InputError("err_mean: errors and n must be positive for a log-log fit")
    w = None
    if err_std is not None:
        sd = np.asarray(err_std, float)
        if sd.shape != e.shape or not np.all(np.isfinite(sd)) or np.any(sd < 0):
            raise InputError("err_std: expected finite nonnegative values, one per n")
        kk = 1 if k is None else check_int(k, "k", min_value=1)
        var = (sd / math.sqrt(kk) / e) ** 2
        w = 1.0 / np.maximum(var, 1e-12 * float(np.max(var, initial=1.0)) + 1e-300)
    return loglog_fit(n, e, w)


@dataclasses.dataclass(frozen=True)
class TokenSweepResult:
    """Errors of the finite-n output moments over a grid of n (k repetitions each).

    n_grid (L,); mean_err, cov_err (L, k): |m_n - m|_2 and |C_n - C| (Frobenius, or spectral
    with ``cov_norm="spectral"``); fit_mean, fit_cov: :func:`fit_rate` dicts (slope = -beta).
    """

    n_grid: np.ndarray
    mean_err: np.ndarray
    cov_err: np.ndarray
    fit_mean: dict
    fit_cov: dict

    @property
    def beta_mean(self) -> float:
        return -self.fit_mean["slope"]

    @property
    def beta_cov(self) -> float:
        return -self.fit_cov["slope"]


def token_sample_sweep(sampler, n_grid, k, *, Q, K, V, reference, kind="softmax", heads=1,
                       eps=1.0, seed=0, chunk=None, cov_norm="fro") -> TokenSweepResult:
    """Sweep over n: draw k fresh samples of n tokens, measure the output-moment errors.

    ``sampler(n, generator) -> (n, d)`` tensor of i.i.d. tokens; ``reference = (m, C)``:
    infinite-token moments (:func:`gaussian_reference`, :func:`sphere_reference`, or
    :func:`output_moments` of a large sample). Errors are fitted on log-log axes with
    :func:`fit_rate` (weights from the k repetitions). arXiv:2512.10656 (moment convergence).
    """
    gen = make_generator(seed)
    cov_norm = check_choice(cov_norm, "cov_norm", ("fro", "spectral"))
    k = check_int(k, "k", min_value=1)
    grid = np.asarray(sorted({int(v) for v in np.asarray(n_grid).reshape(-1)}))
    if grid.size < 2 or grid[0] < 1:
        raise InputError("n_grid: needs at least two distinct positive sizes")
    if not isinstance(reference, (tuple, list)) or len(reference) != 2:
        raise InputError("reference: expected a pair (mean, cov) of infinite-token moments")
    m_ref, C_ref = reference
    m_ref = torch.as_tensor(np.asarray(m_ref) if not isinstance(m_ref, torch.Tensor) else m_ref)
    C_ref = torch.as_tensor(np.asarray(C_ref) if not isinstance(C_ref, torch.Tensor) else C_ref)
    if m_ref.ndim != 1 or C_ref.shape != (m_ref.shape[0], m_ref.shape[0]):
        raise InputError(f"reference: mean (d_out,) and cov (d_out, d_out) expected, got "
                         f"{tuple(m_ref.shape)} and {tuple(C_ref.shape)}")
    if not (bool(torch.isfinite(m_ref).all()) and bool(torch.isfinite(C_ref).all())):
        raise InputError("reference: contains NaN or Inf")
    m_ref, C_ref = m_ref.detach(), C_ref.detach()
    em = np.zeros((grid.size, k))
    ec = np.zeros((grid.size, k))
    for i, n in enumerate(grid):
        for r in range(k):
            x = sampler(int(n), gen)
            if not isinstance(x, torch.Tensor):
                x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
            m, C = output_moments(x, Q=torch.as_tensor(Q, dtype=x.dtype),
                                  K=torch.as_tensor(K, dtype=x.dtype),
                                  V=torch.as_tensor(V, dtype=x.dtype), kind=kind, heads=heads,
                                  eps=eps, chunk=chunk)
            em[i, r] = float(torch.linalg.vector_norm(m - m_ref.to(m)).detach())
            D = C - C_ref.to(C)
            ec[i, r] = float(torch.linalg.matrix_norm(D, ord=2 if cov_norm == "spectral"
                                                      else "fro").detach())
    fm = fit_rate(grid, em.mean(1), em.std(1), k) if k > 1 else fit_rate(grid, em[:, 0])
    fc = fit_rate(grid, ec.mean(1), ec.std(1), k) if k > 1 else fit_rate(grid, ec[:, 0])
    return TokenSweepResult(n_grid=grid, mean_err=em, cov_err=ec, fit_mean=fm, fit_cov=fc)


def uniform_error(tokens, weights=None, *, Q, K, V, reference_map, radius, n_probe=512,
                  seed=0, kind="softmax", heads=1, chunk=None) -> float:
    """sup_{|x| <= R} |Gamma_{mu_n}(x) - Gamma_mu(x)|, estimated on probe points.

    Probes: ``n_probe`` uniform directions placed on the sphere |x| = R (where the error of a
    sub-Gaussian measure is largest) plus as many points uniform in the ball. ``reference_map``
    maps an (m, d) tensor to Gamma_mu at those points (e.g. the affine Gaussian map).
    arXiv:2512.10656 (uniform convergence of the attention map, rate n^{-1/2}, constant
    exponential in R). Returns a float (lower estimate of the supremum).
    """
    ctx = ArrayContext(tokens, weights, Q, K, V)
    y = ctx.tensor(tokens, "tokens")
    R = check_positive(radius, "radius")
    n_probe = check_int(n_probe, "n_probe", min_value=1)
    gen = make_generator(seed)
    d = y.shape[-1]
    g = torch.randn(2 * n_probe, d, generator=gen, dtype=torch.float64).to(y)
    g = g / g.norm(dim=1, keepdim=True)
    rad = torch.ones(2 * n_probe, 1, dtype=y.dtype, device=y.device)
    rad[n_probe:] = torch.rand(n_probe, 1, generator=gen, dtype=torch.float64).to(y) ** (1.0 / d)
    x = R * rad * g
    out = attend(x, y, weights, Q=ctx.tensor(Q, "Q"), K=ctx.tensor(K, "K"), V=ctx.tensor(V, "V"),
                 kind=kind, heads=heads, chunk=chunk)
    ref = torch.as_tensor(reference_map(x)).to(out)
    if ref.shape != out.shape:
        raise InputError(f"reference_map: returned shape {tuple(ref.shape)}, expected "
                         f"{tuple(out.shape)} (one output per probe point)")
    if not bool(torch.isfinite(ref).all()):
        raise InputError("reference_map: returned NaN or Inf")
    return float((out - ref).norm(dim=-1).max().detach())
