"""Expected W2^2 error of the Gaussian diffusion sampler, split into the four named sources.

Hurault, Terris, Moreau, Peyre (arXiv:2503.11615, v3) state in their abstract that the sampling
error comes from "the generalization and optimization errors in score matching, and the
discretization and minimal noise amplitude in the diffusion", and that "the Wasserstein sampling
error can be expressed as a kernel-type norm of the data power spectrum, where the specific
kernel depends on the method parameters". Their theorems were not readable here: the terms
below are derived in ``docs/sampling.md`` (section "Diffusion sampler") and checked against
simulation in ``tests/sampling/test_diffusion.py``. Summary, for a target N(0, diag(lambda)):

* For the closed-form and gd scores every level's A_k is a spectral function of S, so the
  sampler output is C = g(S) with g a product of per-step scalar maps (exact).
* ``min_noise`` = W2^2(Sigma, law of x_{t_min}) (Tweedie-denoised if ``denoise``): the exact
  continuous backward process with the exact score started at p_T (exact).
* ``initialization`` = the same process started at N(0, I) instead of p_T, minus ``min_noise``
  (exact closed form; about alpha_T^4 and negligible for the default T).
* ``discretization`` = the scheme with the exact score minus the continuous process (exact).
* ``optimization``: gd: the scheme with the gd score minus the scheme with the exact score
  (exact); sgd: expected increase from the stationary SGD fluctuations, first order in tau
  (asymptotic).
* ``generalization``: E over datasets of N samples, first order in 1/N, a kernel norm
  lambda^T K_N lambda (asymptotic).

``total`` = min_noise + initialization + discretization + optimization + generalization
= lambda^T kernel lambda (the full kernel: diagonal bias part + K_N + the sgd pair term).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..core import ArrayContext, InputError, check_choice, check_int, check_positive
from .diffusion import (
    PROCESSES,
    SCHEMES,
    VPGrid,
    _affine_step,
    _check_schedule,
    _denoiser_coefficients,
    _propagate,
    _step_maps,
    _vp_grid,
)
from .gaussian import _check_bool, _check_spectrum, _score_eig
from .theory import _bures_commuting, _bures_weights, _finite_sample_kernel, _Terms

__all__ = ["DiffusionErrorTerms", "diffusion_w2_error"]


@dataclasses.dataclass(frozen=True)
class DiffusionErrorTerms(_Terms):
    """Expected W2^2 error of :func:`~measureflow.sampling.diffusion_pipeline`, by source.

    total = min_noise + initialization + discretization + optimization + generalization =
    lambda^T kernel lambda (a kernel-type norm of the spectrum). Fields are tensors for tensor
    input, floats / arrays for NumPy input; ``as_dict()`` returns them as a dict.

    Attributes
    ----------
    total : float
    bias : float
        The error at N = infinity with the deterministic score (all terms but generalization and
        the sgd optimization term), exact.
    min_noise : float
        W2^2(Sigma, law of x_(t_min)) (Tweedie-denoised if ``denoise``), exact.
    initialization : float
        Starting at N(0, I) instead of p_T (exact; ~alpha_T^4).
    discretization : float
        The scheme with the exact score minus the continuous process (exact).
    optimization : float
        gd: exact difference; sgd: first order in tau; closed form: 0.
    generalization : float
        First order in 1/N (asymptotic).
    kernel : array, shape (d, d)
        Symmetric K with total = lambda^T K lambda.
    generalization_kernel : array, shape (d, d)
        K_N with generalization = lambda^T K_N lambda.
    per_direction : array, shape (d,)
        bias split by eigen-direction.
    output_variance : array, shape (d,)
        g(lambda), the output variances at N = infinity.
    continuous_variance : array, shape (d,)
        Output variances of the continuous backward process with the exact score started at
        N(0, I) (the h -> 0 limit of every scheme).
    exact, asymptotic : tuple of str
        Names of the exact terms and of the leading-order expansions.
    """

    total: Any
    bias: Any
    min_noise: Any
    initialization: Any
    discretization: Any
    optimization: Any
    generalization: Any
    kernel: Any
    generalization_kernel: Any
    per_direction: Any
    output_variance: Any
    continuous_variance: Any
    exact: tuple
    asymptotic: tuple


def _spectral_output(mu, grid: VPGrid, process, scheme, denoise, score, tau, iters):
    """Output variance of the sampler per eigenvalue mu of S (closed-form or gd score), from
    y_T ~ N(0, 1); elementwise in mu (jets allowed: see theory._derivs)."""
    A = [_score_eig(grid.alpha[k] ** 2 * mu + grid.s[k] ** 2, score, tau, iters)
         for k in range(grid.n_steps + 1)]
    return _propagate(_step_maps(A, grid, process, scheme, 1.0, denoise), 1.0, 1.0)


def _continuous_output(lam, grid: VPGrid, process, denoise, v_T):
    """Exact-score continuous backward process from N(0, v_T) at T, read at t_min (derived).

    With Sig_t = alpha_t^2 lam + s_t^2: SDE v = Sig_0 + (alpha_T Sig_0 / (alpha_0 Sig_T))^2
    (v_T - Sig_T); ODE v = (Sig_0 / Sig_T) v_T; Tweedie multiplies by (alpha_0 lam / Sig_0)^2.
    """
    a0, aT = grid.alpha[0], grid.alpha[-1]
    S0 = a0**2 * lam + grid.s[0] ** 2
    ST = aT**2 * lam + grid.s[-1] ** 2
    if process == "sde":
        v = S0 + (aT * S0 / (a0 * ST)) ** 2 * (v_T - ST)
    else:
        v = S0 / ST * v_T
    if denoise:
        v = (a0 * lam / S0) ** 2 * v
    return v


def _sgd_pairs(lam, grid: VPGrid, process, scheme, denoise, tau):
    """First-order-in-tau E W2^2 increase from stationary SGD at every level, as pair terms.

    Returns P (d, d) with optimization = sum_ij P_ij (derivation in docs/sampling.md): each
    step M_k = b_k - c1_k Delta_k with independent levels, Var(Delta_k,ij) = tau W_k,i,
    W = 1/s^2 - 1/(alpha^2 lam + s^2); first and second order of the output covariance in Delta,
    then the second-order Bures expansion around the N = infinity output.
    """
    steps = [(k,) + _affine_step(process, scheme, grid, k) for k in range(grid.n_steps, 0, -1)]
    if denoise:
        steps.append((0,) + _denoiser_coefficients(grid) + (0.0,))
    d = lam.numel()
    c = torch.ones_like(lam)
    EC1sq = torch.zeros(d, d, dtype=lam.dtype, device=lam.device)
    EC2 = torch.zeros(d, d, dtype=lam.dtype, device=lam.device)   # (i, l): E C2_ii from c_l
    for k, c0, c1, q in steps:
        a = 1.0 / (grid.alpha[k] ** 2 * lam + grid.s[k] ** 2)
        b = c0 - c1 * a
        v = tau * (1.0 / grid.s[k] ** 2 - a)
        cb = c * b
        EC1sq = (b[:, None] * b[None, :]) ** 2 * EC1sq + c1**2 * (
            v[:, None] * cb[None, :] ** 2 + v[None, :] * cb[:, None] ** 2
            + 2 * torch.diag(v * cb**2))
        EC2 = (b**2)[:, None] * EC2 + c1**2 * v[:, None] * c[None, :]
        c = b * b * c + q
    w1, w2 = _bures_weights(lam, c)
    return w1[:, None] * EC2 + w2 * EC1sq


def diffusion_w2_error(spectrum, *, sigma_min: float, n_steps: int, n_samples: int | float,
                       process: str = "sde", scheme: str = "euler", T: float = 5.0,
                       beta=(1.0, 1.0), score: str = "closed_form",
                       score_step: float | None = None, score_iters: int | None = None,
                       denoise: bool = False) -> DiffusionErrorTerms:
    """Expected W2^2(N(0, Sigma), output law) of :func:`diffusion_pipeline`, split by source.

    The four sources named in arXiv:2503.11615 v3 (generalization and optimization of score
    matching, discretization and minimal noise of the diffusion) plus the initialization at
    N(0, I); exact spectral maps except the 1/N and tau expansions (module docstring,
    docs/sampling.md).

    Parameters
    ----------
    spectrum : array_like or Tensor, shape (d,)
        Eigenvalues lambda_i > 0 of Sigma (the data power spectrum).
    sigma_min, n_steps, process, scheme, T, beta, denoise :
        As in :func:`diffusion_pipeline`.
    n_samples : int or float
        N (``math.inf``: generalization = 0).
    score : {"closed_form", "gd", "sgd"}, default "closed_form"
        gd: ``score_step`` tau and ``score_iters`` K required; sgd: stationary SGD with step
        tau = ``score_step``, first order in tau (not for ``scheme="heun"``, whose steps share
        levels).
    score_step : float, optional
    score_iters : int, optional

    Returns
    -------
    DiffusionErrorTerms
        Tensors are detached: no gradient with respect to ``spectrum``. The average over
        datasets of W2^2 matches ``total`` up to O(N^-2) (+ O(tau^2) for sgd).

    Raises
    ------
    InputError
        Bad spectrum, schedule, process / scheme / score, missing gd/sgd arguments.

    Examples
    --------
    The minimal-noise term is W2^2 between N(0, lambda) and N(0, alpha^2 lambda + sigma_min^2),
    alpha^2 = 1 - sigma_min^2: 0 for lambda = 1, (0.5 - sqrt(0.4375))^2 for lambda = 0.25 and
    sigma_min = 0.5:

    >>> import math
    >>> from measureflow.sampling import diffusion_w2_error
    >>> t = diffusion_w2_error([1.0, 0.25], sigma_min=0.5, n_steps=50, n_samples=math.inf)
    >>> round(float(t.min_noise), 6), round((0.5 - math.sqrt(0.4375)) ** 2, 6)
    (0.026062, 0.026062)
    >>> t = diffusion_w2_error([1.0, 0.1], sigma_min=0.1, n_steps=100, n_samples=1000)
    >>> lam = [1.0, 0.1]
    >>> bool(t.total > t.generalization > 0), bool(abs(t.total - lam @ t.kernel @ lam) < 1e-12)
    (True, True)

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v3).
    E. Pierret, B. Galerne, "Diffusion models for Gaussian distributions: exact solutions and
    Wasserstein errors", ICML 2025.
    """
    ctx = ArrayContext(spectrum)
    lam = _check_spectrum(ctx, spectrum).detach().to(torch.float64)
    check_choice(process, "process", PROCESSES)
    check_choice(scheme, "scheme", SCHEMES[process])
    check_choice(score, "score", ("closed_form", "gd", "sgd"))
    sigma_min, n_steps, T, beta = _check_schedule(sigma_min, n_steps, T, beta)
    N = check_positive(n_samples, "n_samples", allow_inf=True)
    denoise = _check_bool(denoise, "denoise")
    grid = _vp_grid(sigma_min, n_steps, T, beta)
    qmax = max(grid.alpha[k] ** 2 * float(lam.max()) + grid.s[k] ** 2
               for k in range(n_steps + 1))
    if score in ("gd", "sgd"):
        if score_step is None:
            raise InputError(f"score_step: required for score={score!r}")
        score_step = check_positive(score_step, "score_step")
        if score_step * qmax >= 1.0:
            raise InputError(f"score_step: (stochastic) gradient descent diverges for "
                             f"score_step >= 1 / max_k lambda_max(Q_k) = {1 / qmax:.4g}")
    if score == "gd":
        if score_iters is None:
            raise InputError("score_iters: required for score='gd'")
        score_iters = check_int(score_iters, "score_iters", min_value=0)
    if score == "sgd" and scheme == "heun":
        raise InputError("scheme: the sgd term is derived for schemes with one score level per "
                         "step (euler, exponential), not heun")
    base = "gd" if score == "gd" else "closed_form"

    def g(mu):
        return _spectral_output(mu, grid, process, scheme, denoise, base, score_step,
                                score_iters)

    if math.isfinite(N):
        gv, K_N = _finite_sample_kernel(lam, g, N)
    else:
        gv = g(lam)
        K_N = torch.zeros(lam.numel(), lam.numel(), dtype=lam.dtype, device=lam.device)
    if not bool(torch.isfinite(gv).all()) or bool((gv <= 0).any()):
        raise InputError("n_steps: the scheme is unstable or collapses a direction at this "
                         "step size (non-positive or non-finite output variance)")
    per_dir = _bures_commuting(lam, gv)
    bias = per_dir.sum()

    def err(v):
        return _bures_commuting(lam, v).sum()

    aT, sT = grid.alpha[-1], grid.s[-1]
    e_noise = err(_continuous_output(lam, grid, process, denoise, aT**2 * lam + sT**2))
    v_cont = _continuous_output(lam, grid, process, denoise, torch.ones_like(lam))
    e_cont = err(v_cont)
    e_disc = err(_spectral_output(lam, grid, process, scheme, denoise, "closed_form", None,
                                  None))
    zero = torch.zeros((), dtype=lam.dtype, device=lam.device)
    optimization = bias - e_disc if score == "gd" else zero
    pairs = torch.zeros_like(K_N)
    if score == "sgd":
        pairs = _sgd_pairs(lam, grid, process, scheme, denoise, score_step)
        optimization = pairs.sum()
    generalization = lam @ K_N @ lam
    kernel = torch.diag(per_dir / lam**2) + K_N + pairs / (lam[:, None] * lam[None, :])
    total = bias + generalization + (optimization if score == "sgd" else 0.0)
    exact = ("bias", "min_noise", "initialization", "discretization") + (
        ("optimization",) if score != "sgd" else ())
    asym = ("generalization",) + (("optimization",) if score == "sgd" else ())
    out = DiffusionErrorTerms(
        total=total, bias=bias, min_noise=e_noise, initialization=e_cont - e_noise,
        discretization=e_disc - e_cont, optimization=optimization,
        generalization=generalization, kernel=kernel, generalization_kernel=K_N,
        per_direction=per_dir, output_variance=gv, continuous_variance=v_cont, exact=exact,
        asymptotic=asym)
    return out._to_caller(ctx)
