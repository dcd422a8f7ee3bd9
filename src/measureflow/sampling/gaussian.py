"""Score matching + Langevin sampling of a centred Gaussian, exactly and by simulation.

Setting of Hurault, Terris, Moreau, Peyre, *From denoising score matching to Langevin sampling:
a fine-grained error analysis in the Gaussian setting* (arXiv:2503.11615, v1). The paper's text
was not available to us: the pipeline below is reconstructed from its abstract (see
``docs/sampling.md`` for which formulas are exact and which are asymptotic).

Pipeline (data x ~ N(0, Sigma) on R^d, known zero mean):

1. empirical covariance  S = (1/N) sum_n x_n x_n^T  (not centred);
2. linear denoising score matching at noise sigma: the score model s(y) = -A y minimises
   L(A) = E |-A (x + sigma z) + z / sigma|^2 = tr(A (S + sigma^2) A^T) - 2 tr A + d / sigma^2
   (x uniform over the data, z ~ N(0, I)):

   - ``"closed_form"``: A = (S + sigma^2 I)^{-1} (Tweedie);
   - ``"gd"``: K steps of gradient descent A <- A - tau (2 A (S + sigma^2) - 2 I) from A = 0,
     i.e. spectrally a_K(mu) = (1 - (1 - 2 tau (mu + sigma^2))^K) / (mu + sigma^2) (exact);
   - ``"sgd"``: K steps A <- A - 2 tau (A y - z / sigma) y^T with one fresh (x_n, z) per step,
     y = x_n + sigma z, from A = 0 (simulated);

3. unadjusted Langevin (ULA) y_{k+1} = y_k - gamma A y_k + sqrt(2 gamma) xi_k, from
   y_0 ~ N(0, init_var I). Every step is linear, so y_k ~ N(0, C_k) exactly with
   C_{k+1} = B C_k B^T + 2 gamma I, B = I - gamma A; stationary C solves C = B C B^T + 2 gamma I,
   for symmetric A: C = (A - gamma A^2 / 2)^{-1}. Stable iff the spectral radius of B is < 1
   (symmetric A: 0 < gamma a < 2 for each eigenvalue a);
4. optional final Tweedie denoising y -> (I - sigma^2 A) y (``denoise=True``);
5. error W2(N(0, Sigma), N(0, C)) by the Bures formula (:func:`measureflow.ot.bures_wasserstein`).

Written by hand in torch (no external sampler).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import torch

from ..core import (
    ArrayContext,
    ConvergenceWarning,
    InputError,
    SolverResult,
    check_choice,
    check_int,
    check_ndim,
    check_nonnegative_scalar,
    check_positive,
    check_psd,
    make_generator,
)
from ..core.linalg import sym
from ..ot import bures_wasserstein

__all__ = ["PipelineResult", "pipeline", "ula_covariance", "dsm_score_matrix", "score_function",
           "empirical_second_moments", "langevin_stationary_covariance"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineResult(SolverResult):
    """Output of :func:`pipeline`.

    Attributes
    ----------
    target_covariance : array or Tensor, shape (d, d), or None
        Sigma; None when raw samples were given without ``covariance``.
    empirical_covariance : array or Tensor, shape (d, d)
        S = X^T X / N.
    score_matrix : array or Tensor, shape (d, d)
        A; the learned score is s(y) = -A y.
    mean : array or Tensor, shape (d,)
        Mean of the law reached (zero: every step is linear and centred).
    covariance : array or Tensor, shape (d, d)
        Covariance of the law reached after ``n_steps`` ULA steps (and denoising), exact.
    stationary_covariance : array or Tensor, shape (d, d)
        The n_steps -> infinity limit (and denoising); inf when ULA is unstable.
    samples : array or Tensor, shape (n_chains, d), or None
        Simulated outputs of independent ULA chains.
    w2 : float or None
        W2(N(0, Sigma), N(0, covariance)) (a distance, Bures formula); None without target.
    w2_stationary : float or None
        The same for the stationary covariance.
    w2_samples : float or None
        W2 between the target and the Gaussian with the chains' second moment
        samples^T samples / n_chains; None without target or with fewer than 2 chains.
    stable : bool
        The ULA iteration matrix I - gamma A has spectral radius < 1.
    converged : bool
        False when the Langevin iteration is unstable or SGD diverged (a ``ConvergenceWarning``
        is then emitted; the stationary covariance and the W2 errors that need it are inf).
    n_iter : int
        Score iterations (0 for the closed form).
    errors : list of float
        The DSM loss gap L(A) - L(A_closed_form) at the end (exact for gd, evaluated on the final
        iterate for sgd).
    """

    target_covariance: Any
    empirical_covariance: Any
    score_matrix: Any
    mean: Any
    covariance: Any
    stationary_covariance: Any
    samples: Any
    w2: Any
    w2_stationary: Any
    w2_samples: Any
    stable: bool


def _score_eig(q: torch.Tensor, score: str, score_step, score_iters) -> torch.Tensor:
    """Eigenvalue of the learned A for an eigenvalue q of the DSM Hessian/2, Q = E[y y^T]."""
    if score == "gd":
        return (1.0 - (1.0 - 2.0 * score_step * q) ** score_iters) / q
    return 1.0 / q


def score_function(mu, *, sigma: float, score: str = "closed_form",
                   score_step: float | None = None, score_iters: int | None = None):
    """Eigenvalue a(mu) of the learned score matrix A for an eigenvalue mu >= 0 of S.

    The linear score s(y) = -A y minimises the DSM loss L(A) = tr(A Q A^T) - 2 tr A + d/sigma^2 with
    Q = S + sigma^2 I (see :func:`pipeline`). With q = mu + sigma^2:

    - ``"closed_form"``: a = 1 / q (the exact minimiser, Tweedie);
    - ``"gd"``: a = (1 - (1 - 2 tau q)^K) / q, K steps of size tau = ``score_step`` of
      A <- A - tau (2 A Q - 2 I) from A = 0 (``score_iters`` = K; both required).

    Parameters
    ----------
    mu : array_like or Tensor
        Eigenvalues of the empirical covariance (finite, >= 0).
    sigma : float
        DSM noise level (> 0).
    score : {"closed_form", "gd"}, default "closed_form"
    score_step : float, optional
        tau (> 0), required for gd.
    score_iters : int, optional
        K (>= 0), required for gd.

    Returns
    -------
    array or Tensor
        a(mu), same kind (NumPy or tensor) and shape as ``mu``.

    Raises
    ------
    InputError
        Negative ``mu``, ``sigma`` <= 0, unknown ``score``, missing or bad gd arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.sampling import score_function
    >>> score_function(np.array([0.0, 1.0]), sigma=1.0).tolist()          # 1 / (mu + 1)
    [1.0, 0.5]
    >>> score_function(np.array([1.0]), sigma=1.0, score="gd", score_step=0.25,
    ...                score_iters=1).tolist()                              # (1 - 0) / 2
    [0.5]

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v1: Langevin).
    """
    ctx = ArrayContext(mu)
    m = ctx.tensor(mu, "mu")
    if m.numel() and bool((m.detach() < 0).any()):
        raise InputError("mu: eigenvalues of a covariance must be >= 0")
    sigma = check_positive(sigma, "sigma")
    check_choice(score, "score", ("closed_form", "gd"))
    if score == "gd":
        if score_step is None or score_iters is None:
            raise InputError("score_step, score_iters: both are required for score='gd'")
        score_step = check_positive(score_step, "score_step")
        score_iters = check_int(score_iters, "score_iters", min_value=0)
    return ctx.wrap(_score_eig(m + sigma**2, score, score_step, score_iters))


def _doubling(B: torch.Tensor, Q: torch.Tensor, K: int | None, tol: float = 1e-15,
              max_doublings: int = 200):
    """S_K = sum_{k<K} B^k Q (B^k)^T and B^K (K=None: the limit, by doubling to convergence)."""
    S, P = Q.clone(), B.clone()      # S_1 = Q, P = B^1
    n = 1
    if K is not None:
        # binary powering: accumulate S over the bits of K
        acc_S = torch.zeros_like(Q)
        acc_P = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
        k = K
        while k > 0:
            if k & 1:
                # acc covers m steps; append n steps: S_{m+n} = S_m + B^m S_n B^m^T
                acc_S = acc_S + acc_P @ S @ acc_P.T
                acc_P = P @ acc_P
            k >>= 1
            if k:
                S = S + P @ S @ P.T
                P = P @ P
                n *= 2
        return sym(acc_S), acc_P
    for _ in range(max_doublings):
        inc = P @ S @ P.T
        S = S + inc
        P = P @ P
        if float(inc.detach().abs().max()) <= tol * float(S.detach().abs().max()):
            return sym(S), P
    return sym(S), P


def ula_covariance(A, *, gamma: float, n_steps: int | None = None, init_var: float = 1.0):
    """Exact covariance of ULA y_(k+1) = (I - gamma A) y_k + sqrt(2 gamma) xi_k after ``n_steps``.

    From y_0 ~ N(0, init_var I), C_K = init_var B^K (B^K)^T + sum_(k<K) 2 gamma B^k (B^k)^T with
    B = I - gamma A; ``n_steps=None`` gives the stationary covariance, the solution of
    C = B C B^T + 2 gamma I (for symmetric A: C = (A - gamma A^2 / 2)^(-1)). Matrix recursion by
    binary powering / doubling, no sampling.

    Parameters
    ----------
    A : array_like or Tensor, shape (d, d)
        Score matrix (s(y) = -A y), non-empty square.
    gamma : float
        Langevin step (> 0).
    n_steps : int, optional
        Number of steps (>= 0); None: the stationary law.
    init_var : float, default 1.0
        Variance of the initial law (>= 0).

    Returns
    -------
    array or Tensor, shape (d, d)
        NumPy in, NumPy out.

    Raises
    ------
    InputError
        ``A`` not square, bad ``gamma`` / ``n_steps`` / ``init_var``; ``n_steps=None`` with an
        unstable iteration (spectral radius of B >= 1).

    Examples
    --------
    For A = I: stationary variance 1 / (1 - gamma / 2); one step from variance 1 gives
    (1 - gamma)^2 + 2 gamma:

    >>> import numpy as np
    >>> from measureflow.sampling import ula_covariance
    >>> round(float(ula_covariance(np.eye(2), gamma=0.5)[0, 0]), 12)
    1.333333333333
    >>> float(ula_covariance(np.eye(1), gamma=0.5, n_steps=1)[0, 0])
    1.25

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v1: Langevin).
    """
    ctx = ArrayContext(A)
    A = ctx.tensor(A, "A")
    check_ndim(A, "A", 2)
    if A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise InputError(f"A: expected a non-empty square matrix, got {tuple(A.shape)}")
    gamma = check_positive(gamma, "gamma")
    init_var = check_nonnegative_scalar(init_var, "init_var")
    d = A.shape[0]
    eye = torch.eye(d, dtype=A.dtype, device=A.device)
    B = eye - gamma * A
    if n_steps is None:
        rho = float(torch.linalg.eigvals(B.detach()).abs().max())
        if rho >= 1:
            raise InputError(f"gamma: ULA is unstable (spectral radius of I - gamma A = "
                             f"{rho:.4g} >= 1); no stationary law")
        C, _ = _doubling(B, 2 * gamma * eye, None)
    else:
        n_steps = check_int(n_steps, "n_steps", min_value=0)
        S, P = _doubling(B, 2 * gamma * eye, n_steps)
        C = sym(init_var * P @ P.T + S)
    return ctx.wrap(C)


def dsm_score_matrix(S, *, sigma: float, score: str = "closed_form",
                     score_step: float | None = None, score_iters: int | None = None,
                     samples=None, seed=0):
    """Linear DSM score matrix A (s(y) = -A y) at noise ``sigma`` from a second-moment matrix S.

    Minimises L(A) = E|-A(x + sigma z) + z/sigma|^2 = tr(A Q A^T) - 2 tr A + d/sigma^2,
    Q = S + sigma^2 I, S = E[x x^T] (arXiv:2503.11615; the formulas are derived in
    docs/sampling.md):

    - ``"closed_form"``: A = Q^(-1);
    - ``"gd"``: K = ``score_iters`` steps A <- A - tau (2 A Q - 2 I) from 0, tau = ``score_step``
      (evaluated spectrally; requires tau < 1 / lambda_max(Q), else the iteration diverges);
    - ``"sgd"``: K steps A <- A - 2 tau (A y - z/sigma) y^T, y = x_n + sigma z, one fresh sample
      x_n of ``samples`` (N, d) and z ~ N(0, I) per step (simulated with ``seed``).

    Parameters
    ----------
    S : array_like or Tensor, shape (d, d)
        PSD second-moment matrix.
    sigma : float
        DSM noise level (> 0).
    score : {"closed_form", "gd", "sgd"}, default "closed_form"
    score_step : float, optional
        tau (defaults: 0.5 / lambda_max(Q) for gd, 0.05 / tr(Q) for sgd).
    score_iters : int, optional
        K (default ceil(8 / (2 tau lambda_min(Q))): the initial error decays by e^-8).
    samples : array_like or Tensor, shape (N, d), optional
        Data for sgd (required there).
    seed : int or torch.Generator, default 0
        Randomness of sgd.

    Returns
    -------
    (array or Tensor, int, float)
        ``(A, n_iter, loss_gap)``: the matrix (same kind as S), the number of score iterations and
        the excess loss L(A) - L(Q^(-1)) = tr((A - Q^(-1)) Q (A - Q^(-1))^T) (0 for the closed
        form).

    Raises
    ------
    InputError
        ``S`` not square PSD, ``sigma`` <= 0, unknown ``score``, ``samples`` missing or of the
        wrong shape for sgd, ``score_step`` >= 1 / lambda_max(Q).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.sampling import dsm_score_matrix
    >>> A, n_iter, gap = dsm_score_matrix(np.diag([1.0, 3.0]), sigma=1.0)
    >>> np.diag(A).tolist(), n_iter, gap                      # (S + I)^-1
    ([0.5, 0.25], 0, 0.0)
    >>> A, n_iter, gap = dsm_score_matrix(np.diag([1.0, 3.0]), sigma=1.0, score="gd",
    ...                                   score_step=0.1, score_iters=50)
    >>> np.round(np.diag(A), 6).tolist(), n_iter, gap < 1e-12
    ([0.5, 0.25], 50, True)

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v1: Langevin).
    """
    ctx = ArrayContext(S, samples)
    St = ctx.tensor(S, "S")
    check_ndim(St, "S", 2)
    if St.shape[0] != St.shape[1] or St.shape[0] == 0:
        raise InputError(f"S: expected a non-empty square matrix, got {tuple(St.shape)}")
    check_psd(St, "S")
    sigma = check_positive(sigma, "sigma")
    check_choice(score, "score", ("closed_form", "gd", "sgd"))
    X = None
    if score == "sgd":
        if samples is None:
            raise InputError("samples: required for score='sgd'")
        X = ctx.tensor(samples, "samples")
        check_ndim(X, "samples", 2)
        if X.shape[0] < 1 or X.shape[1] != St.shape[0]:
            raise InputError(f"samples: expected shape (N, {St.shape[0]}) with N >= 1, got "
                             f"{tuple(X.shape)}")
    q = torch.linalg.eigvalsh(sym(St.detach())).clamp_min(0) + sigma**2
    score_step, score_iters = _default_score_args(score, score_step, score_iters, q)
    A, n_iter, gap = _dsm_score_matrix(St, sigma=sigma, score=score, score_step=score_step,
                                       score_iters=score_iters, samples=X,
                                       generator=make_generator(seed))
    return ctx.wrap(A), n_iter, gap


def _loss_gap(A: torch.Tensor, Q: torch.Tensor) -> float:
    """L(A) - L(Q^{-1}) = tr((A - Q^{-1}) Q (A - Q^{-1})^T) (L quadratic with Hessian 2 Q)."""
    D = A - torch.linalg.inv(Q)
    return float(torch.trace(D @ Q @ D.T))


def _dsm_score_matrix(S: torch.Tensor, *, sigma: float, score: str, score_step, score_iters,
                      samples: torch.Tensor | None = None, generator=None, alpha: float = 1.0):
    """Tensor-only core of :func:`dsm_score_matrix` for the signal y = alpha x + sigma z.

    Q = alpha^2 S + sigma^2 I. Returns (A, n_iter, loss_gap).
    """
    d = S.shape[0]
    eye = torch.eye(d, dtype=S.dtype, device=S.device)
    Q = alpha**2 * S + sigma**2 * eye
    if score == "closed_form":
        return torch.linalg.inv(Q), 0, 0.0
    if score == "gd":
        mu, U = torch.linalg.eigh(sym(Q))
        A = (U * _score_eig(mu, "gd", score_step, score_iters)) @ U.T
        return A, score_iters, _loss_gap(A, Q)
    A = sgd_dsm(samples, sigma=sigma, alpha=alpha, score_step=score_step,
                score_iters=score_iters, generator=generator)[0]
    return A, score_iters, _loss_gap(A, Q)


def sgd_dsm(samples: torch.Tensor, *, sigma, score_step: float, score_iters: int,
            generator, replicates: int = 1, alpha=1.0, chunk: int = 4096) -> torch.Tensor:
    """``replicates`` independent SGD runs on the DSM loss (batched); returns (R, d, d).

    Step: A <- A - 2 tau (A y - z / sigma) y^T with y = alpha x_n + sigma z, x_n drawn uniformly
    from ``samples`` and z ~ N(0, I), from A = 0. ``sigma`` and ``alpha`` are scalars or
    tensors of shape (R,): replicate r then fits the DSM loss at its own noise level (the
    diffusion pipeline trains every level of its time grid at once this way). Internal helper:
    no input validation (callers validate).
    """
    N, d = samples.shape
    kw = dict(dtype=samples.dtype, device=samples.device)
    s = torch.as_tensor(sigma, **kw).reshape(-1, 1).expand(replicates, 1)
    a = torch.as_tensor(alpha, **kw).reshape(-1, 1).expand(replicates, 1)
    A = torch.zeros(replicates, d, d, **kw)
    done = 0
    while done < score_iters:
        m = min(chunk, score_iters - done)
        # random draws on the generator's (CPU) device, then moved to the data's device
        idx = torch.randint(0, N, (m, replicates), generator=generator).to(samples.device)
        z = torch.randn(m, replicates, d, generator=generator, dtype=samples.dtype).to(
            samples.device)
        y = a * samples[idx] + s * z
        w = z / s
        for k in range(m):
            yk = y[k]
            r = torch.einsum("rij,rj->ri", A, yk) - w[k]
            A = A - (2.0 * score_step) * r[:, :, None] * yk[:, None, :]
        done += m
    return A


def _simulate_linear(maps, y: torch.Tensor, generator) -> torch.Tensor:
    """Monte Carlo of the linear-Gaussian recursion y <- M y + sqrt(q) xi, xi ~ N(0, I).

    ``maps`` is an iterable of (M, q) with M (d, d) and q >= 0 a scalar noise variance; ``y``
    holds the chains as rows (n, d). The one simulator of the samplers of this package (ULA,
    and every diffusion scheme): each is a sequence of such steps for a linear score.
    """
    for M, q in maps:
        y = y @ M.T
        if q:
            y = y + math.sqrt(q) * torch.randn(y.shape, generator=generator,
                                               dtype=y.dtype).to(y.device)
    return y


def _read_data(data, covariance, seed):
    """Parse ``data`` = samples (N, d) or (spectrum, n_samples); returns (ctx, X, Sigma, gen).

    With a spectrum the target is N(0, diag(spectrum)) and N samples are drawn with ``seed``.
    """
    gen = make_generator(seed)
    if isinstance(data, tuple):
        if len(data) != 2:
            raise InputError("data: expected samples (N, d) or a pair (spectrum, n_samples)")
        spectrum, n_samples = data
        ctx = ArrayContext(spectrum, covariance)
        lam = _check_spectrum(ctx, spectrum)
        if covariance is not None:
            raise InputError("covariance: not used with data=(spectrum, n_samples) (the "
                             "target is diag(spectrum))")
        n_samples = check_int(n_samples, "n_samples", min_value=1)
        z = torch.randn(n_samples, lam.numel(), generator=gen, dtype=lam.dtype).to(lam.device)
        return ctx, z * lam.sqrt(), torch.diag(lam), gen
    ctx = ArrayContext(data, covariance)
    X = ctx.tensor(data, "data")
    check_ndim(X, "data", 2)
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise InputError(f"data: expected samples (N, d) with N, d >= 1, got {tuple(X.shape)}")
    Sigma = None
    if covariance is not None:
        Sigma = ctx.tensor(covariance, "covariance")
        if Sigma.shape != (X.shape[1], X.shape[1]):
            raise InputError(f"covariance: expected shape ({X.shape[1]}, {X.shape[1]}), "
                             f"got {tuple(Sigma.shape)}")
        check_psd(Sigma, "covariance")
    return ctx, X, Sigma, gen


def _second_moments(lam: torch.Tensor, n_samples: int, reps: int, generator,
                    max_elements: int = 2**22) -> torch.Tensor:
    """(reps, d, d) second moments X^T X / N of ``reps`` datasets of N samples of
    N(0, diag(lam)), drawn in chunks of at most ``max_elements`` random numbers (the batched
    form of the data step of :func:`pipeline` and :func:`diffusion_pipeline`)."""
    d = lam.numel()
    per = max(1, max_elements // (n_samples * d))
    out = []
    for start in range(0, reps, per):
        m = min(per, reps - start)
        X = torch.randn(m, n_samples, d, generator=generator, dtype=lam.dtype).to(lam.device)
        X = X * lam.sqrt()
        out.append(X.mT @ X / n_samples)
    return torch.cat(out)


def _stationary_covariance_batch(S: torch.Tensor, sigma: float, gamma: float,
                                 denoise: bool) -> torch.Tensor:
    """Stationary ULA law of the closed-form pipeline for a batch of second moments S:
    A = (S + sigma^2)^{-1}, C = (A - gamma A^2 / 2)^{-1} (A symmetric), then Tweedie."""
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    A = torch.linalg.inv(S + sigma**2 * eye)
    C = torch.linalg.inv(A - 0.5 * gamma * A @ A)
    if denoise:
        D = eye - sigma**2 * A
        C = D @ C @ D.mT
    return sym(C)


def empirical_second_moments(spectrum, n_samples: int, reps: int | None = None, *, seed=0):
    """Second moments S = X^T X / N of ``reps`` datasets of N samples of N(0, diag(spectrum)).

    The data step of :func:`pipeline` and :func:`diffusion_pipeline`, batched. X is drawn in chunks
    from ``seed``.

    Parameters
    ----------
    spectrum : array_like or Tensor, shape (d,)
        Positive variances.
    n_samples : int
        N (>= 1).
    reps : int, optional
        Number of datasets (>= 1); None: one, without the batch axis.
    seed : int or torch.Generator, default 0

    Returns
    -------
    array or Tensor, shape (reps, d, d) or (d, d)
        NumPy in, NumPy out.

    Raises
    ------
    InputError
        ``spectrum`` not a non-empty vector of positive entries, bad ``n_samples`` / ``reps``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.sampling import empirical_second_moments
    >>> S = empirical_second_moments([1.0, 0.5], 10, reps=3)
    >>> S.shape, bool(np.allclose(S, S.transpose(0, 2, 1)))
    ((3, 2, 2), True)
    >>> S = empirical_second_moments([1.0, 0.5], 10**5)
    >>> bool(np.allclose(np.diag(S), [1.0, 0.5], atol=0.03))     # 0.03 = ~7 standard errors
    True
    """
    ctx = ArrayContext(spectrum)
    lam = _check_spectrum(ctx, spectrum)
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    R = 1 if reps is None else check_int(reps, "reps", min_value=1)
    S = _second_moments(lam.detach(), n_samples, R, make_generator(seed))
    return ctx.wrap(S[0] if reps is None else S)


def langevin_stationary_covariance(second_moment, *, sigma: float, gamma: float,
                                   denoise: bool = False):
    """Stationary law of the closed-form Langevin pipeline for a second moment S (or a batch).

    A = (S + sigma^2 I)^(-1), C = (A - gamma A^2 / 2)^(-1) (A symmetric), then the Tweedie step
    (I - sigma^2 A) C (I - sigma^2 A) if ``denoise``: what :func:`pipeline` returns as
    ``stationary_covariance``, batched over datasets.

    Parameters
    ----------
    second_moment : array_like or Tensor, shape (d, d) or (R, d, d)
        PSD.
    sigma : float
        DSM noise level (> 0).
    gamma : float
        Langevin step, 0 < gamma < 2 (lambda_min(S) + sigma^2) (stable ULA).
    denoise : bool, default False

    Returns
    -------
    array or Tensor
        Shape of ``second_moment``; NumPy in, NumPy out.

    Raises
    ------
    InputError
        Bad shapes, non-PSD input, ``sigma`` / ``gamma`` out of range, non-bool ``denoise``.

    Examples
    --------
    For S = I and gamma = 2 sigma^2 the denoised stationary law is exactly N(0, I):
    a = 1 / (1 + sigma^2), C = 1 / (a (1 - sigma^2 a)) and (1 - sigma^2 a)^2 C = 1.

    >>> import numpy as np
    >>> from measureflow.sampling import langevin_stationary_covariance
    >>> C = langevin_stationary_covariance(np.eye(2), sigma=0.1, gamma=0.02, denoise=True)
    >>> np.round(C, 12).tolist()
    [[1.0, 0.0], [0.0, 1.0]]

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v1: Langevin).
    """
    ctx = ArrayContext(second_moment)
    S = ctx.tensor(second_moment, "second_moment")
    check_ndim(S, "second_moment", (2, 3))
    if S.shape[-1] != S.shape[-2] or S.shape[-1] == 0:
        raise InputError(f"second_moment: expected (d, d) or (R, d, d), got {tuple(S.shape)}")
    check_psd(S, "second_moment")
    sigma = check_positive(sigma, "sigma")
    gamma = check_positive(gamma, "gamma")
    denoise = _check_bool(denoise, "denoise")
    qmin = float(torch.linalg.eigvalsh(sym(S.detach())).min()) + sigma**2
    if gamma >= 2 * qmin:
        raise InputError(f"gamma: ULA unstable (need gamma < 2 (lambda_min(S) + sigma^2) = "
                         f"{2 * qmin:.4g})")
    return ctx.wrap(_stationary_covariance_batch(S, sigma, gamma, denoise))


def _check_spectrum(ctx: ArrayContext, spectrum) -> torch.Tensor:
    """A non-empty vector of positive variances, as a tensor of the call's kind."""
    lam = ctx.tensor(spectrum, "spectrum")
    check_ndim(lam, "spectrum", 1)
    if lam.numel() == 0 or bool((lam.detach() <= 0).any()):
        raise InputError("spectrum: must be a non-empty vector of positive variances")
    return lam


def _check_bool(x, name: str) -> bool:
    if not isinstance(x, bool):
        raise InputError(f"{name}: expected True or False, got {x!r}")
    return x


def _default_score_args(score, score_step, score_iters, Q_eigs):
    """Defaults and checks of (tau, K) from the eigenvalues of Q over every fitted level."""
    qmax, qmin = float(Q_eigs.max()), float(Q_eigs.min())
    if score in ("closed_form", "exact"):
        return None, None
    if score_step is None:
        score_step = 0.5 / qmax if score == "gd" else 0.05 / float(Q_eigs.sum())
    score_step = check_positive(score_step, "score_step")
    if score_step * qmax >= 1.0:
        # gd: |1 - 2 tau q| >= 1 in the top direction; sgd: its mean follows the same recursion
        raise InputError(f"score_step: {'stochastic ' if score == 'sgd' else ''}gradient "
                         f"descent diverges for score_step >= 1 / lambda_max(Q) = {1 / qmax:.4g}")
    if score_iters is None:
        score_iters = int(math.ceil(8.0 / (2.0 * score_step * qmin)))
    score_iters = check_int(score_iters, "score_iters", min_value=0)
    return score_step, score_iters


def pipeline(data, *, sigma: float, gamma: float, n_steps: int, score: str = "closed_form",
             score_step: float | None = None, score_iters: int | None = None,
             n_chains: int = 1000, init_var: float = 1.0, denoise: bool = False,
             covariance=None, seed=0) -> PipelineResult:
    """Langevin sampling of a centred Gaussian: empirical covariance -> linear DSM -> ULA -> exact law.

    1. S = X^T X / N; 2. linear DSM score s(y) = -A y at noise ``sigma`` (:func:`dsm_score_matrix`);
    3. ULA y_(k+1) = (I - gamma A) y_k + sqrt(2 gamma) xi_k from N(0, init_var I); 4. optional
    Tweedie denoising y -> (I - sigma^2 A) y; 5. W2 to the target by the Bures formula. Every step
    is linear, so the law reached is exactly N(0, C) (:func:`ula_covariance`); chains simulate it
    (arXiv:2503.11615 v1, reconstructed, see the module docstring and docs/sampling.md).

    Parameters
    ----------
    data : array_like or Tensor of shape (N, d), or (spectrum, n_samples)
        Samples X of the centred target, or a pair: the target is N(0, diag(spectrum)) and N
        samples are drawn with ``seed`` (the pipeline is rotation-equivariant, so a diagonal
        target loses no generality).
    sigma : float
        DSM noise level (> 0).
    gamma : float
        Langevin step (> 0).
    n_steps : int
        Number of ULA steps (>= 0).
    score : {"closed_form", "gd", "sgd"}, default "closed_form"
    score_step : float, optional
        tau for gd/sgd (defaults: 0.5 / lambda_max(S + sigma^2 I) for gd, 0.05 / tr(S + sigma^2 I)
        for sgd).
    score_iters : int, optional
        K for gd/sgd (default ceil(8 / (2 tau lambda_min(S + sigma^2 I))), so the initial error
        has decayed by e^-8 in every direction).
    n_chains : int, default 1000
        Independent simulated ULA chains (0: no simulation).
    init_var : float, default 1.0
        Variance of the initial law (>= 0).
    denoise : bool, default False
        Apply the final Tweedie step.
    covariance : array_like or Tensor, shape (d, d), optional
        The true target covariance when ``data`` are raw samples (for the W2 errors).
    seed : int or torch.Generator, default 0
        Data draw, SGD, chains.

    Returns
    -------
    PipelineResult
        NumPy in, NumPy out; a tensor in gives tensors (autograd kept through the closed-form
        path).

    Raises
    ------
    InputError
        Bad ``data`` / ``covariance`` shapes, bad scalars, unknown ``score``, a diverging
        ``score_step``.

    Warns
    -----
    ConvergenceWarning
        Unstable ULA (spectral radius of I - gamma A >= 1) or diverged SGD (``converged=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.sampling import pipeline
    >>> r = pipeline(([1.0, 0.25], 10**4), sigma=0.05, gamma=0.01, n_steps=100, n_chains=0)
    >>> Q = r.empirical_covariance + 0.05 ** 2 * np.eye(2)
    >>> bool(np.allclose(r.score_matrix @ Q, np.eye(2))), r.stable, r.n_iter
    (True, True, 0)
    >>> bool(r.w2_stationary < 0.05)
    True

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v1: Langevin).
    """
    check_choice(score, "score", ("closed_form", "gd", "sgd"))
    sigma = check_positive(sigma, "sigma")
    gamma = check_positive(gamma, "gamma")
    n_steps = check_int(n_steps, "n_steps", min_value=0)
    n_chains = check_int(n_chains, "n_chains", min_value=0)
    init_var = check_nonnegative_scalar(init_var, "init_var")
    denoise = _check_bool(denoise, "denoise")
    ctx, X, Sigma, gen = _read_data(data, covariance, seed)
    N, d = X.shape
    S = X.T @ X / N
    eye = torch.eye(d, dtype=S.dtype, device=S.device)
    q = torch.linalg.eigvalsh(S.detach()).clamp_min(0) + sigma**2
    score_step, score_iters = _default_score_args(score, score_step, score_iters, q)
    A, n_iter, gap = _dsm_score_matrix(S, sigma=sigma, score=score, score_step=score_step,
                                       score_iters=score_iters, samples=X, generator=gen)
    if not bool(torch.isfinite(A.detach()).all()):
        msg = ("pipeline: SGD on the DSM loss diverged (non-finite score matrix); "
                          "reduce score_step")
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        nan = torch.full_like(S, math.nan)
        res = PipelineResult(
            target_covariance=Sigma, empirical_covariance=S, score_matrix=A,
            mean=torch.zeros(d, dtype=S.dtype, device=S.device), covariance=nan,
            stationary_covariance=nan, samples=None, w2=None if Sigma is None else math.nan,
            w2_stationary=None if Sigma is None else math.nan, w2_samples=None, stable=False,
            converged=False, n_iter=n_iter, errors=[math.inf])
        return ctx.wrap(res)
    B = eye - gamma * A
    rho = float(torch.linalg.eigvals(B.detach()).abs().max())
    stable = rho < 1
    if not stable:
        warnings.warn(f"pipeline: ULA is unstable (spectral radius of I - gamma A = {rho:.4g} >= 1;"
                      " reduce gamma or increase sigma); the result has converged=False and "
                      "infinite stationary covariance", ConvergenceWarning, stacklevel=2)
    Sk, P = _doubling(B, 2 * gamma * eye, n_steps)
    C = sym(init_var * P @ P.T + Sk)
    if stable:
        Cinf, _ = _doubling(B, 2 * gamma * eye, None)
    else:
        Cinf = torch.full_like(S, math.inf)
    Dn = eye - sigma**2 * A if denoise else eye
    C = sym(Dn @ C @ Dn.T)
    Cinf = sym(Dn @ Cinf @ Dn.T) if stable else Cinf
    samples = None
    if n_chains:
        with torch.no_grad():
            y = math.sqrt(init_var) * torch.randn(n_chains, d, generator=gen, dtype=S.dtype).to(
                S.device)
            Bd = B.detach()
            y = _simulate_linear((((Bd, 2 * gamma) for _ in range(n_steps))), y, gen)
            samples = y @ Dn.detach().T
    w2 = w2_inf = w2_s = None
    if Sigma is not None:
        zero = torch.zeros(d, dtype=S.dtype, device=S.device)
        inf = S.new_tensor(math.inf)
        w2 = bures_wasserstein(zero, Sigma, zero, C) if bool(torch.isfinite(C).all()) else inf
        w2_inf = bures_wasserstein(zero, Sigma, zero, Cinf) if stable else inf
        if samples is not None and n_chains >= 2:
            w2_s = bures_wasserstein(zero, Sigma, zero, samples.T @ samples / n_chains)
    res = PipelineResult(
        target_covariance=Sigma, empirical_covariance=S, score_matrix=A,
        mean=torch.zeros(d, dtype=S.dtype, device=S.device), covariance=C,
        stationary_covariance=Cinf, samples=samples, w2=w2, w2_stationary=w2_inf,
        w2_samples=w2_s, stable=stable, converged=stable, n_iter=n_iter, errors=[gap])
    return ctx.wrap(res)
