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

from ..core import (
    ArrayContext,
    InputError,
    as_tensor,
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_psd,
    check_tensor_kind,
    make_generator,
    numpy_rng,
)
from ..core.linalg import sqrtm_psd
from ..core.stats import loglog_fit
from ._heads import split_heads
from .attend import _attend, _chunks, attend
from .gaussian import gaussian_affine_map

#: attention kinds of :func:`token_sample_sweep` (the causal kind needs token positions)
_SWEEP_KINDS = ("softmax", "multihead", "l2", "sigmoid", "sinkhorn")

__all__ = ["horizon", "beta_theory", "gaussian_reference", "sphere_reference",
           "bessel_ratio", "fit_rate", "token_sample_sweep", "TokenSweepResult",
           "uniform_error"]


def horizon(cov, Q, K, heads=1, per_head=False):
    """Horizon H = ||Sigma^(1/2) A Sigma^(1/2)||_2 (spectral norm) of the tokens, A = K^T Q.

    A = sum_h K_h^T Q_h; the same singular values as L^T A L with L = chol(Sigma). It sets the
    predicted moment rate :func:`beta_theory` (arXiv:2512.10656).

    Parameters
    ----------
    cov : array_like or Tensor, shape (d, d)
        Symmetric PSD (up to round-off of its dtype).
    Q, K : array_like or Tensor, shape (k, d)
        Finite, equal shapes.
    heads : int, default 1
        Must divide k.
    per_head : bool, default False
        Return the vector of H_h = ||Sigma^(1/2) K_h^T Q_h Sigma^(1/2)||_2.

    Returns
    -------
    float or array or Tensor

    Raises
    ------
    InputError
        ``cov`` not square PSD, non-finite or mismatched Q, K, ``heads`` not dividing k.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.attention import horizon
    >>> float(horizon(np.diag([4.0, 1.0]), np.eye(2), 0.5 * np.eye(2)))   # 0.5 x 4
    2.0
    >>> horizon(np.eye(2), np.eye(2), np.eye(2), heads=2, per_head=True).tolist()
    [1.0, 1.0]

    References
    ----------
    T. Bohbot, C. Letrouit, G. Peyre, F.-X. Vialard, "Token sample complexity of attention",
    arXiv:2512.10656.
    """
    ctx = ArrayContext(cov, Q, K)
    S = ctx.tensor(cov, "cov")
    Qt, Kt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K")
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise InputError(f"cov: expected a square matrix, got shape {tuple(S.shape)}")
    check_psd(S, "cov", rtol=max(1e-8, 64 * torch.finfo(S.dtype).eps))
    check_finite(Qt, "Q")
    check_finite(Kt, "K")
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


def _real_array(x, name: str) -> np.ndarray:
    """``x`` as a float NumPy array through the core boundary (strings, bools, complex, meta
    or half tensors raise InputError naming ``name``); NaN/Inf are left to the caller."""
    return as_tensor(x, name, check_finite=False).detach().cpu().numpy().astype(float)


def beta_theory(H):
    """Predicted moment rate beta_th(H) = 1 / (2 (1 + H^2)) (arXiv:2512.10656).

    The operational prediction of the paper's reference code for |m_n - m| ~ n^-beta and
    |C_n - C| ~ n^-beta, H the :func:`horizon`.

    Parameters
    ----------
    H : float, array_like or Tensor
        Finite, >= 0.

    Returns
    -------
    float, array or Tensor
        Same kind as ``H`` (a float for a scalar).

    Raises
    ------
    InputError
        Negative or non-finite ``H``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.attention import beta_theory
    >>> beta_theory(1.0), beta_theory(np.array([0.0, 1.0])).tolist()
    (0.25, [0.5, 0.25])

    References
    ----------
    T. Bohbot, C. Letrouit, G. Peyre, F.-X. Vialard, "Token sample complexity of attention",
    arXiv:2512.10656.
    """
    if isinstance(H, torch.Tensor):
        check_tensor_kind(H, "H")
        if not bool(torch.isfinite(H).all()) or bool((H < 0).any()):
            raise InputError("H: the horizon must be finite and nonnegative")
        return 0.5 / (1.0 + H * H)
    Ha = _real_array(H, "H")
    if not np.all(np.isfinite(Ha)) or np.any(Ha < 0):
        raise InputError("H: the horizon must be finite and nonnegative")
    out = 0.5 / (1.0 + Ha * Ha)
    return float(out) if out.ndim == 0 else out


def gaussian_reference(mean, cov, Q, K, V, kind="softmax", heads=1, eps=1.0):
    """Exact infinite-token output moments for mu = N(mean, cov).

    Gamma_mu(x) = b + J (x - mean) is affine (:func:`gaussian_affine_map`), so
    (Gamma_mu)_# mu = N(b, J cov J^T). For softmax b = V (alpha + Sigma A alpha), J = V Sigma A
    (arXiv:2512.10656 / 2501.18322).

    Parameters
    ----------
    mean, cov, Q, K, V, kind, heads, eps :
        As in :func:`gaussian_affine_map`.

    Returns
    -------
    (array or Tensor, array or Tensor)
        ``(b, J cov J^T)``.

    Raises
    ------
    InputError
        As :func:`gaussian_affine_map`.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.attention import gaussian_reference
    >>> m, C = gaussian_reference(np.zeros(2), np.eye(2), 0.5 * np.eye(2), np.eye(2), np.eye(2))
    >>> m.tolist(), C.tolist()                           # J = 0.5 I
    ([0.0, 0.0], [[0.25, 0.0], [0.0, 0.25]])

    References
    ----------
    T. Bohbot, C. Letrouit, G. Peyre, F.-X. Vialard, "Token sample complexity of attention",
    arXiv:2512.10656.
    """
    ctx = ArrayContext(mean, cov, Q, K, V)
    S = ctx.tensor(cov, "cov")
    b, J = gaussian_affine_map(ctx.tensor(mean, "mean"), S, ctx.tensor(Q, "Q"),
                               ctx.tensor(K, "K"), ctx.tensor(V, "V"), kind=kind, heads=heads,
                               eps=eps)
    C = J @ S @ J.transpose(-1, -2)
    return ctx.wrap((b, 0.5 * (C + C.transpose(-1, -2))))


def bessel_ratio(d: int, r):
    """Bessel ratio A_d(r) = I_(d/2)(r) / I_(d/2-1)(r) (von Mises-Fisher mean resultant length).

    Computed with exponentially scaled Bessel functions (``scipy.special.ive``); A_d(0) = 0 and
    A_d(r) ~ r / d as r -> 0 (used below r = 1e-8). For d = 3, A_3(r) = coth(r) - 1/r.

    Parameters
    ----------
    d : int
        Ambient dimension (>= 2).
    r : float or array_like
        Finite, >= 0.

    Returns
    -------
    numpy.ndarray
        Shape of ``r``.

    Raises
    ------
    InputError
        Bad ``d``, negative or non-finite ``r``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.attention import bessel_ratio
    >>> a = bessel_ratio(3, np.array([0.0, 1.0]))
    >>> float(a[0]), round(float(a[1]), 10), round(1 / math.tanh(1.0) - 1.0, 10)
    (0.0, 0.3130352855, 0.3130352855)
    """
    from scipy.special import ive
    r = _real_array(r, "r")
    d = check_int(d, "d", min_value=2)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise InputError("r: must be finite and >= 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ive(d / 2.0, r) / ive(d / 2.0 - 1.0, r)
    small = r < 1e-8
    return np.where(small, r / d, out)


def sphere_reference(Q, K, V, radius=1.0, *, n_mc=2**18, seed=0):
    """Infinite-token output moments for mu uniform on the sphere S^(d-1)(R) (single head).

    Gamma_mu(x) = V R A_d(R |A x|) A x / |A x| with A = K^T Q (von Mises-Fisher mean,
    :func:`bessel_ratio`). The output mean is 0 and its covariance is V U diag(lambda) U^T V^T,
    where A = U diag(s) W^T and lambda_i = R^2 E[A_d(R^2 sqrt(S))^2 s_i^2 T_i / S],
    S = sum_k s_k^2 T_k, T ~ Dirichlet(1/2, ..., 1/2) (T_k = g_k^2 / |g|^2, g Gaussian). The
    expectation is a Monte Carlo average over ``n_mc`` draws (relative error ~ n_mc^(-1/2)),
    averaged within groups of equal singular values (exact symmetry; the result is exact when A is
    a multiple of an orthogonal matrix). arXiv:2512.10656 (sphere experiment).

    Parameters
    ----------
    Q, K : array_like or Tensor, shape (k, d)
        Score <Q x, K y> = y^T A x, A = K^T Q (no hidden 1/sqrt(d)); ``heads`` splits the rows.
    V : array_like or Tensor, shape (d_out, d)
        Output map (rows split per head with ``heads`` > 1).
    radius : float, default 1.0
        R (> 0).
    n_mc : int, default 2^18
        Monte Carlo draws (>= 16).
    seed : int, None, numpy.random.Generator or torch.Generator, default 0

    Returns
    -------
    (array or Tensor, array or Tensor)
        ``(mean, cov)`` of shapes (d_out,) and (d_out, d_out).

    Raises
    ------
    InputError
        Bad shapes, ``radius`` <= 0, ``n_mc`` < 16.

    Examples
    --------
    For A = I (exact case) lambda_i = A_d(R^2)^2 / d:

    >>> import numpy as np
    >>> from measureflow.attention import bessel_ratio, sphere_reference
    >>> m, C = sphere_reference(np.eye(3), np.eye(3), np.eye(3), n_mc=2**12)
    >>> lam = float(bessel_ratio(3, 1.0) ** 2 / 3)
    >>> m.tolist(), bool(np.allclose(C, lam * np.eye(3), rtol=1e-12, atol=0)), round(lam, 6)
    ([0.0, 0.0, 0.0], True, 0.032664)

    References
    ----------
    T. Bohbot, C. Letrouit, G. Peyre, F.-X. Vialard, "Token sample complexity of attention",
    arXiv:2512.10656.
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
    rng = numpy_rng(seed if not isinstance(seed, torch.Generator) else
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
    """Weighted log-log fit err ~ c n^slope, with standard errors.

    Weights 1/Var(log err) with Var(log err) ~ (std / sqrt(k) / mean)^2 (delta method, as in the
    paper's reference code); ``err_std=None`` gives equal weights. The slope's standard error
    ``slope_se`` comes from the residual variance; ``slope_se_sampling`` from the sampling variances
    alone, sqrt([(X^T W X)^-1]_11) (NaN without ``err_std``). With few n the residual-based SE is
    itself noisy; ``max(slope_se, slope_se_sampling)`` is a conservative standard error.

    Parameters
    ----------
    n : array_like, shape (L,)
        Positive sizes, L >= 2.
    err_mean : array_like, shape (L,)
        Positive mean errors.
    err_std : array_like, shape (L,), optional
        Their standard deviations over the k repetitions (>= 0).
    k : int, optional
        Number of repetitions (default 1).

    Returns
    -------
    dict
        :func:`measureflow.core.loglog_fit`'s keys (``slope``, ``intercept``, ``slope_se``,
        ``intercept_se``) plus ``slope_se_sampling``.

    Raises
    ------
    InputError
        Fewer than two points, mismatched shapes, non-positive or non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.attention import fit_rate
    >>> n = np.array([10.0, 100.0, 1000.0])
    >>> fit = fit_rate(n, 2.0 * n ** -0.5)
    >>> round(fit["slope"], 10), round(fit["intercept"], 10)       # log 2
    (-0.5, 0.6931471806)
    """
    n = _real_array(n, "n")
    e = _real_array(err_mean, "err_mean")
    if n.ndim != 1 or n.size < 2:
        raise InputError(f"n: expected a 1-D array of at least 2 sizes, got shape {n.shape}")
    if n.shape != e.shape:
        raise InputError("err_mean: expected a 1-D array matching n (at least 2 points)")
    for arr, nm in ((n, "n"), (e, "err_mean")):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{nm}: must be finite (NaN/Inf found)")
    if np.any(e <= 0) or np.any(n <= 0):
        raise InputError("err_mean: errors and n must be positive for a log-log fit")
    w = None
    if err_std is not None:
        sd = _real_array(err_std, "err_std")
        if sd.shape != e.shape or not np.all(np.isfinite(sd)) or np.any(sd < 0):
            raise InputError("err_std: expected finite nonnegative values, one per n")
        kk = 1 if k is None else check_int(k, "k", min_value=1)
        var = (sd / math.sqrt(kk) / e) ** 2
        w = 1.0 / np.maximum(var, 1e-12 * float(np.max(var, initial=1.0)) + 1e-300)
    out = loglog_fit(n, e, w)
    out["slope_se_sampling"] = math.nan
    if w is not None:
        X = np.stack([np.log(n), np.ones_like(n)], 1)
        out["slope_se_sampling"] = float(math.sqrt(np.linalg.inv(X.T @ (w[:, None] * X))[0, 0]))
    return out


@dataclasses.dataclass(frozen=True)
class TokenSweepResult:
    """Errors of the finite-n output moments over a grid of n (:func:`token_sample_sweep`).

    Attributes
    ----------
    n_grid : numpy.ndarray, shape (L,)
    mean_err : numpy.ndarray, shape (L, k)
        |m_n - m|_2 per size and repetition.
    cov_err : numpy.ndarray, shape (L, k)
        |C_n - C| (Frobenius, or spectral with ``cov_norm="spectral"``).
    fit_mean, fit_cov : dict
        :func:`fit_rate` dicts (slope = -beta).
    beta_mean, beta_cov : float
        -slope of each fit (properties).
    """

    n_grid: np.ndarray
    mean_err: np.ndarray
    cov_err: np.ndarray
    fit_mean: dict
    fit_cov: dict

    @property
    def beta_mean(self) -> float:
        """Fitted rate beta of the mean error (-slope)."""
        return -self.fit_mean["slope"]

    @property
    def beta_cov(self) -> float:
        """Fitted rate beta of the covariance error (-slope)."""
        return -self.fit_cov["slope"]


def _split_factor(n: int) -> float:
    """a(n) = h n / (h n - 1), h = (1/n1 + 1/n2) / 2 for the halves n1 = n // 2, n2 = n - n1."""
    n1 = n // 2
    h = 0.5 * (1.0 / n1 + 1.0 / (n - n1))
    return h * n / (h * n - 1.0)


def _moments(x, heads_qkv, kind, eps, chunk, bias_correction):
    """Finite-n output moments (m_n, C_n) of the tokens x (tensor-only, validated inputs).

    m_n and C_n are the mean and population covariance of the self-attention outputs
    Gamma_{mu_n}(x_i) (as :func:`~measureflow.attention.output_moments`).
    ``heads_qkv = (Qh, Kh, Ch, V)`` from ``split_heads``. ``bias_correction="split"`` (delete-half jackknife): with m_h1, m_h2
    (C_h1, C_h2) the moments recomputed on the halves x[:n1], x[n1:] (self-attention within
    each half), returns a m_n - (a - 1)(m_h1 + m_h2) / 2 with a = :func:`_split_factor`. If the
    bias of a statistic over m i.i.d. tokens is B / m + O(m^-2), the combination has bias
    O(n^-2) (a = 2 for even n): it removes the 1/n bias of the population covariance and of
    the self-normalised attention outputs, whatever its constant B (derived here; tested
    exactly on a two-atom measure).
    """
    Qh, Kh, Ch, Vt = heads_qkv

    def mom(z):
        n = z.shape[0]
        mc, nc = _chunks(chunk, n, n, Qh.shape[0])
        w = z.new_full((n,), 1.0 / n)
        out = _attend(z, z, w, Qh, Kh, Ch, Vt, kind=kind, eps=eps, bias=0.0, mc=mc, nc=nc)
        m = out.mean(0)
        c = out - m
        C = c.T @ c / n
        return m, 0.5 * (C + C.T)

    m, C = mom(x)
    if bias_correction is None:
        return m, C
    n1 = x.shape[0] // 2
    m1, C1 = mom(x[:n1])
    m2, C2 = mom(x[n1:])
    a = _split_factor(x.shape[0])
    return a * m - (a - 1.0) * 0.5 * (m1 + m2), a * C - (a - 1.0) * 0.5 * (C1 + C2)


def _sweep_heads(Q, K, V, heads, d, dtype):
    """Validate Q, K, V once for a sweep and split them per head (tensors of ``dtype``)."""
    Qt, Kt, Vt = (as_tensor(M, nm, dtype=dtype).detach()
                  for M, nm in ((Q, "Q"), (K, "K"), (V, "V")))  # kinds, NaN: the core
    Qh, Kh, Ch = split_heads(Qt, Kt, Vt, heads, d)
    return Qh, Kh, Ch, Vt


def token_sample_sweep(sampler, n_grid, k, *, Q, K, V, reference, kind="softmax", heads=1,
                       eps=1.0, seed=0, chunk=None, cov_norm="fro",
                       bias_correction=None) -> TokenSweepResult:
    """Sweep over n: draw k fresh samples of n tokens and measure the output-moment errors.

    For n i.i.d. tokens the finite-n object is the self-attention output measure
    (Gamma_(mu_n))_# mu_n; its mean m_n and population covariance C_n are compared with the
    infinite-token ``reference`` (m, C), and the errors are fitted on log-log axes by
    :func:`fit_rate` (weights from the k repetitions; arXiv:2512.10656, moment convergence,
    predicted rate :func:`beta_theory`). Q, K, V and ``chunk`` are validated once, then every sample goes
    through the tensor core of :func:`attend`.

    Parameters
    ----------
    sampler : callable
        ``sampler(n, generator) -> (n, d)`` tensor of i.i.d. tokens.
    n_grid : array_like of int
        At least two distinct positive sizes.
    k : int
        Repetitions per size (>= 1).
    Q, K : array_like or Tensor, shape (k, d)
        Score <Q x, K y> = y^T A x, A = K^T Q (no hidden 1/sqrt(d)); ``heads`` splits the rows.
    V : array_like or Tensor, shape (d_out, d)
        Output map (rows split per head with ``heads`` > 1).
    reference : (array_like, array_like)
        Infinite-token moments (m, C): :func:`gaussian_reference`, :func:`sphere_reference`, or
        :func:`~measureflow.attention.output_moments` of a large sample.
    kind : {"softmax", "multihead", "l2", "sigmoid", "sinkhorn"}, default "softmax"
    heads : int, default 1
    eps : float, default 1.0
    seed : int or torch.Generator, default 0
    chunk : int, optional
    cov_norm : {"fro", "spectral"}, default "fro"
    bias_correction : {None, "split"}, default None
        None: the plain estimator (as in the paper); ``"split"``: a delete-half jackknife that
        removes the O(1/n) bias of the finite-n moments (needs n >= 4), so that a slope is not
        steepened by a 1/n bias term at small n.

    Returns
    -------
    TokenSweepResult

    Raises
    ------
    InputError
        ``sampler`` not callable or returning a wrong shape, a bad grid, ``reference`` not a
        finite (mean, cov) pair, bad options.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from measureflow.attention import gaussian_reference, token_sample_sweep
    >>> A = 0.3 * np.eye(2)
    >>> ref = gaussian_reference(np.zeros(2), np.eye(2), A, np.eye(2), np.eye(2))
    >>> sampler = lambda n, g: torch.randn(n, 2, generator=g, dtype=torch.float64)
    >>> res = token_sample_sweep(sampler, [8, 32, 128], 2, Q=A, K=np.eye(2), V=np.eye(2),
    ...                          reference=ref)
    >>> res.mean_err.shape, bool(0 < res.beta_mean < 1)
    ((3, 2), True)

    References
    ----------
    T. Bohbot, C. Letrouit, G. Peyre, F.-X. Vialard, "Token sample complexity of attention",
    arXiv:2512.10656.
    """
    if not callable(sampler):
        raise InputError("sampler: expected a callable sampler(n, generator) -> (n, d) tokens")
    gen = make_generator(seed)
    kind = check_choice(kind, "kind", _SWEEP_KINDS)
    eps = check_positive(eps, "eps")
    if chunk is not None:
        _chunks(chunk, 1, 1, 1)                        # validates the chunk argument
    cov_norm = check_choice(cov_norm, "cov_norm", ("fro", "spectral"))
    bias_correction = check_choice(bias_correction, "bias_correction", (None, "split"))
    k = check_int(k, "k", min_value=1)
    grid = np.asarray(sorted({int(v) for v in np.asarray(n_grid).reshape(-1)}))
    if grid.size < 2 or grid[0] < 1:
        raise InputError("n_grid: needs at least two distinct positive sizes")
    if bias_correction is not None and grid[0] < 4:
        raise InputError("n_grid: the split bias correction needs n >= 4")
    if not isinstance(reference, (tuple, list)) or len(reference) != 2:
        raise InputError("reference: expected a pair (mean, cov) of infinite-token moments")
    m_ref, C_ref = reference
    m_ref = as_tensor(m_ref, "reference", check_finite=False)
    C_ref = as_tensor(C_ref, "reference", check_finite=False)
    if m_ref.ndim != 1 or C_ref.shape != (m_ref.shape[0], m_ref.shape[0]):
        raise InputError(f"reference: mean (d_out,) and cov (d_out, d_out) expected, got "
                         f"{tuple(m_ref.shape)} and {tuple(C_ref.shape)}")
    if not (bool(torch.isfinite(m_ref).all()) and bool(torch.isfinite(C_ref).all())):
        raise InputError("reference: contains NaN or Inf")
    m_ref, C_ref = m_ref.detach(), C_ref.detach()
    em = np.zeros((grid.size, k))
    ec = np.zeros((grid.size, k))
    heads_qkv = None
    for i, n in enumerate(grid):
        for r in range(k):
            x = sampler(int(n), gen)
            if not isinstance(x, torch.Tensor):
                x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
            if x.ndim != 2 or x.shape[0] != n:
                raise InputError(f"sampler: returned shape {tuple(x.shape)}, expected ({n}, d)")
            if heads_qkv is None:
                heads_qkv = _sweep_heads(Q, K, V, heads, x.shape[1], x.dtype)
            m, C = _moments(x, heads_qkv, kind, eps, chunk, bias_correction)
            em[i, r] = float(torch.linalg.vector_norm(m - m_ref.to(m)).detach())
            D = C - C_ref.to(C)
            ec[i, r] = float(torch.linalg.matrix_norm(D, ord=2 if cov_norm == "spectral"
                                                      else "fro").detach())
    fm = fit_rate(grid, em.mean(1), em.std(1), k) if k > 1 else fit_rate(grid, em[:, 0])
    fc = fit_rate(grid, ec.mean(1), ec.std(1), k) if k > 1 else fit_rate(grid, ec[:, 0])
    return TokenSweepResult(n_grid=grid, mean_err=em, cov_err=ec, fit_mean=fm, fit_cov=fc)


def uniform_error(tokens, weights=None, *, Q, K, V, reference_map, radius, n_probe=512,
                  seed=0, kind="softmax", heads=1, chunk=None) -> float:
    """Uniform error sup_(|x| <= R) |Gamma_(mu_n)(x) - Gamma_mu(x)|, estimated on probe points.

    Probes: ``n_probe`` uniform directions on the sphere |x| = R (where the error of a
    sub-Gaussian measure is largest) plus as many points uniform in the ball (arXiv:2512.10656:
    uniform convergence at rate n^(-1/2), with a constant exponential in R).

    Parameters
    ----------
    tokens : array_like or Tensor, shape (n, d)
    weights : array_like or Tensor, shape (n,), optional
    Q, K : array_like or Tensor, shape (k, d)
        Score <Q x, K y> = y^T A x, A = K^T Q (no hidden 1/sqrt(d)); ``heads`` splits the rows.
    V : array_like or Tensor, shape (d_out, d)
        Output map (rows split per head with ``heads`` > 1).
    reference_map : callable
        Maps an (m, d) tensor of points to Gamma_mu there (e.g. the affine Gaussian map).
    radius : float
        R (> 0).
    n_probe : int, default 512
    seed : int or torch.Generator, default 0
    kind : str, default "softmax"
    heads : int, default 1
    chunk : int, optional

    Returns
    -------
    float
        A lower estimate of the supremum.

    Raises
    ------
    InputError
        ``reference_map`` not callable or returning a wrong shape / non-finite values, bad
        ``tokens`` / ``radius`` / ``n_probe``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from measureflow.attention import gaussian_affine_map, uniform_error
    >>> A = 0.3 * np.eye(2)
    >>> b, J = (torch.as_tensor(t) for t in gaussian_affine_map(np.zeros(2), np.eye(2), A,
    ...                                                         np.eye(2), np.eye(2)))
    >>> y = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> err = uniform_error(y, Q=A, K=np.eye(2), V=np.eye(2), reference_map=lambda x: b + x @ J.T,
    ...                     radius=1.0, n_probe=64)
    >>> bool(0 < err < 0.3)
    True

    References
    ----------
    T. Bohbot, C. Letrouit, G. Peyre, F.-X. Vialard, "Token sample complexity of attention",
    arXiv:2512.10656.
    """
    if not callable(reference_map):
        raise InputError("reference_map: expected a callable mapping (m, d) points to outputs")
    ctx = ArrayContext(tokens, weights, Q, K, V)
    y = ctx.tensor(tokens, "tokens")
    if y.ndim != 2:
        raise InputError(f"tokens: expected an (n, d) array, got shape {tuple(y.shape)}")
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
