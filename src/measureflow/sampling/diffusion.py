"""Diffusion sampler of a centred Gaussian from N samples: exact law of every scheme, simulation.

Setting of Hurault, Terris, Moreau, Peyre, *From score matching to diffusion: a fine-grained
error analysis in the Gaussian setting* (arXiv:2503.11615, v3), whose abstract names four error
sources: generalization and optimization of score matching, discretization and minimal noise
amplitude of the diffusion. Only the paper's abstract and the opening of its introduction were
readable here; the sampler below (process, time grid, schemes, noise parametrisation) follows
the conventions of Pierret & Galerne, *Diffusion models for Gaussian distributions: exact
solutions and Wasserstein errors* (ICML 2025), and every formula is derived in
``docs/sampling.md``.

Forward process (variance preserving, Pierret & Galerne eq. (1)):

    dx_t = -beta(t) x_t dt + sqrt(2 beta(t)) dW_t,   x_t = alpha_t x_0 + s_t z,
    alpha_t = exp(-B(t)), B(t) = int_0^t beta, s_t^2 = 1 - alpha_t^2,

with a linear schedule beta(t) = beta_min + (beta_max - beta_min) t / T on [0, T]
(``beta=(1, 1)``: constant beta = 1, the Ornstein-Uhlenbeck process; Song et al.'s VP-SDE with
beta in [0.1, 20], T = 1, is ``beta=(0.05, 10)`` in this convention).

Backward processes, in reverse time, with a score s(y, t):

    SDE: dy = [beta y + 2 beta s(y, t)] dtau + sqrt(2 beta) dW,
    ODE (probability flow): dy = [beta y + beta s(y, t)] dtau,

started at y_T ~ N(0, I) and stopped at the *minimal noise level* t_min, where
s_{t_min} = ``sigma_min`` (x_{t_min} = alpha x_0 + sigma_min z); optionally followed by the
Tweedie denoiser y -> (y + s^2 s(y, t_min)) / alpha (``denoise=True``).

Score: linear s(y, t_k) = -A_k y at each time t_k of the uniform grid
t_min = t_0 < t_1 < ... < t_K = T, fitted by denoising score matching at that level:
L_k(A) = E|-A (alpha_k x + s_k z) + z / s_k|^2 = tr(A Q_k A^T) - 2 tr A + d / s_k^2,
Q_k = alpha_k^2 S + s_k^2 I, S the empirical second moment of the N samples:
closed form A_k = Q_k^{-1}, ``gd`` (K iterations of gradient descent) or ``sgd`` (simulated).

Schemes on the grid, step k from t_k to t_{k-1} (h = t_k - t_{k-1}, beta_k = beta(t_k),
Delta_k = B(t_k) - B(t_{k-1})), each a linear map y -> M_k y + sqrt(q_k) xi:

- SDE ``"euler"`` (Euler-Maruyama): M = (1 + h beta_k) I - 2 h beta_k A_k, q = 2 h beta_k;
- SDE ``"exponential"`` (exponential integrator, score frozen on the step, linear part exact):
  M = e^Delta I - 2 (e^Delta - 1) A_k, q = e^{2 Delta} - 1;
- ODE ``"euler"``: M = (1 + h beta_k) I - h beta_k A_k;
- ODE ``"exponential"``: M = e^Delta I - (e^Delta - 1) A_k;
- ODE ``"heun"``: M = I + (h/2)(F_k + F_{k-1} + h F_{k-1} F_k), F_j = beta_j (I - A_j).

For Gaussian data every process and every scheme is linear in the state, so the output is
exactly N(0, C) with C = M_1 ... M_K M_K^T ... M_1^T + accumulated noise: computed here by the
recursion C <- M C M^T + q I, and simulated by the same maps (:func:`_simulate_linear`).
Written by hand in torch.
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
    check_in_range,
    check_int,
    check_ndim,
    check_positive,
    check_psd,
)
from ..core.linalg import sym
from ..ot import bures_wasserstein
from .gaussian import (
    _check_bool,
    _default_score_args,
    _dsm_score_matrix,
    _read_data,
    _simulate_linear,
    sgd_dsm,
)

__all__ = ["DiffusionResult", "diffusion_pipeline", "diffusion_covariance", "vp_grid", "VPGrid"]

PROCESSES = ("sde", "ode")
SCHEMES = {"sde": ("euler", "exponential"), "ode": ("euler", "exponential", "heun")}


@dataclasses.dataclass(frozen=True)
class VPGrid:
    """Uniform time grid t_0 = t_min < ... < t_K = T with the VP quantities at each t_k.

    Built by :func:`vp_grid`; tuples of K + 1 floats.

    Attributes
    ----------
    t : tuple of float
        Times.
    beta : tuple of float
        beta(t_k).
    alpha : tuple of float
        exp(-B(t_k)), B(t) = int_0^t beta.
    s : tuple of float
        Noise amplitude sqrt(1 - alpha_k^2) (s_0 = sigma_min).
    delta : tuple of float
        B(t_k) - B(t_(k-1)) (0 at k = 0).
    n_steps : int
        K (property).
    """

    t: tuple
    beta: tuple      # beta(t_k)
    alpha: tuple     # exp(-B(t_k))
    s: tuple         # sqrt(1 - alpha_k^2), the noise amplitude at t_k
    delta: tuple     # B(t_k) - B(t_{k-1}) (delta[0] = 0)

    @property
    def n_steps(self) -> int:
        """Number K of steps (len(t) - 1)."""
        return len(self.t) - 1


def _vp_B(t: float, T: float, beta: tuple) -> float:
    b0, b1 = beta
    return b0 * t + (b1 - b0) * t * t / (2.0 * T)


def _vp_time_of_B(B: float, T: float, beta: tuple) -> float:
    """Inverse of B(t) = b0 t + (b1 - b0) t^2 / (2T) (increasing on [0, T] for b0, b1 > 0)."""
    b0, b1 = beta
    a = (b1 - b0) / (2.0 * T)
    # root of a t^2 + b0 t - B = 0 in the cancellation-free form (valid for any sign of a)
    return 2.0 * B / (b0 + math.sqrt(b0 * b0 + 4.0 * a * B))


def _check_schedule(sigma_min, n_steps, T, beta):
    sigma_min = check_in_range(sigma_min, "sigma_min", 0.0, 1.0, low_open=True, high_open=True)
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    T = check_positive(T, "T")
    if not isinstance(beta, (tuple, list)) or len(beta) != 2:
        raise InputError(f"beta: expected a pair (beta_min, beta_max), got {beta!r}")
    beta = (check_positive(beta[0], "beta"), check_positive(beta[1], "beta"))
    B_min = -0.5 * math.log1p(-sigma_min**2)
    if B_min >= _vp_B(T, T, beta):
        raise InputError(f"sigma_min: the noise level {sigma_min:g} is reached only after T = "
                         f"{T:g} (increase T or beta, or decrease sigma_min)")
    return sigma_min, n_steps, T, beta


def _vp_grid(sigma_min: float, n_steps: int, T: float, beta: tuple) -> VPGrid:
    """Grid from t_min (where s_t = sigma_min) to T, uniform in t, and its VP quantities."""
    t_min = _vp_time_of_B(-0.5 * math.log1p(-sigma_min**2), T, beta)
    h = (T - t_min) / n_steps
    t = tuple(t_min + k * h for k in range(n_steps)) + (T,)
    b0, b1 = beta
    Bs = [_vp_B(u, T, beta) for u in t]
    return VPGrid(t=t, beta=tuple(b0 + (b1 - b0) * u / T for u in t),
                 alpha=tuple(math.exp(-B) for B in Bs),
                 s=tuple(math.sqrt(-math.expm1(-2.0 * B)) for B in Bs),
                 delta=(0.0,) + tuple(Bs[k] - Bs[k - 1] for k in range(1, len(t))))


def vp_grid(sigma_min: float, n_steps: int, *, T: float = 5.0, beta=(1.0, 1.0)) -> VPGrid:
    """The sampler's time grid: uniform in t from t_min (noise amplitude ``sigma_min``) to T.

    t_min solves B(t_min) = -log(1 - sigma_min^2) / 2 for the schedule beta(t) = beta_min +
    (beta_max - beta_min) t / T, B(t) = int_0^t beta (see :func:`diffusion_pipeline`).

    Parameters
    ----------
    sigma_min : float
        Minimal noise amplitude in (0, 1): the sampler stops at t_min with s_(t_min) = sigma_min
        (x_(t_min) = sqrt(1 - sigma_min^2) x_0 + sigma_min z).
    n_steps : int
        Number K of steps of the uniform grid from t_min to T (>= 1; step h = (T - t_min) / K).
    T : float, default 5.0
        Horizon (> 0).
    beta : (float, float), default (1.0, 1.0)
        (beta_min, beta_max), both > 0.

    Returns
    -------
    VPGrid

    Raises
    ------
    InputError
        ``sigma_min`` outside (0, 1) or not reached before T, bad ``n_steps`` / ``T`` / ``beta``.

    Examples
    --------
    With beta = 1, alpha_t = exp(-t) and s_t^2 + alpha_t^2 = 1:

    >>> import math
    >>> from measureflow.sampling import vp_grid
    >>> g = vp_grid(0.1, 4)
    >>> round(g.s[0], 12), len(g.t), g.t[-1]
    (0.1, 5, 5.0)
    >>> math.isclose(g.alpha[-1], math.exp(-5.0)), round(g.s[2] ** 2 + g.alpha[2] ** 2, 12)
    (True, 1.0)

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v3).
    E. Pierret, B. Galerne, "Diffusion models for Gaussian distributions: exact solutions and
    Wasserstein errors", ICML 2025.
    """
    return _vp_grid(*_check_schedule(sigma_min, n_steps, T, beta))


def _affine_step(process: str, scheme: str, grid: VPGrid, k: int):
    """(c0, c1, q) of the step t_k -> t_{k-1} written M = c0 I - c1 A_k, noise variance q.

    Euler-type and exponential schemes only (Heun is not affine in a single A_k).
    """
    sde = process == "sde"
    if scheme == "euler":
        hb = (grid.t[k] - grid.t[k - 1]) * grid.beta[k]
        return 1.0 + hb, (2.0 if sde else 1.0) * hb, (2.0 * hb if sde else 0.0)
    D = grid.delta[k]
    em1 = math.expm1(D)
    return 1.0 + em1, (2.0 if sde else 1.0) * em1, (math.expm1(2.0 * D) if sde else 0.0)


def _denoiser_coefficients(grid: VPGrid):
    """Tweedie at t_min: y -> (y - s^2 A_0 y) / alpha, as (c0, c1) of c0 I - c1 A_0."""
    return 1.0 / grid.alpha[0], grid.s[0] ** 2 / grid.alpha[0]


def _is_scalar(eye) -> bool:
    """The per-eigenvalue computation: eye = 1.0 and every A_k a vector of eigenvalues."""
    return not isinstance(eye, torch.Tensor) or eye.shape[-1] == 1


def _step_maps(A, grid: VPGrid, process: str, scheme: str, eye, denoise: bool):
    """The linear maps (M, q) of the sampler in the order they are applied.

    ``A`` lists the score matrices A_0..A_K (each (..., m, m) with ``eye`` the identity of that
    shape), or, per eigenvalue, vectors of eigenvalues a_k(mu) with ``eye = 1.0`` (then every
    product is elementwise, so that forward-mode jets can flow through).
    """
    maps = []
    for k in range(grid.n_steps, 0, -1):
        if scheme == "heun":
            h = grid.t[k] - grid.t[k - 1]
            Fk = grid.beta[k] * (eye - A[k])
            Fm = grid.beta[k - 1] * (eye - A[k - 1])
            FF = Fm * Fk if _is_scalar(eye) else Fm @ Fk
            maps.append((eye + 0.5 * h * (Fk + Fm + h * FF), 0.0))
        else:
            c0, c1, q = _affine_step(process, scheme, grid, k)
            maps.append((c0 * eye - c1 * A[k], q))
    if denoise:
        c0, c1 = _denoiser_coefficients(grid)
        maps.append((c0 * eye - c1 * A[0], 0.0))
    return maps


def _propagate(maps, C, eye):
    """Exact covariance of the output: C <- M C M^T + q I over the maps (y_T ~ N(0, C))."""
    scalar = _is_scalar(eye)
    for M, q in maps:
        C = M * C * M if scalar else M @ C @ M.mT
        if q:
            C = C + q * eye
    return C


def _output_covariance_batch(S: torch.Tensor, grid: VPGrid, process: str, scheme: str,
                             denoise: bool) -> torch.Tensor:
    """Exact output covariance of the closed-form-score sampler for a batch of second moments
    S (R, d, d): the pipeline's levels, maps and recursion, batched over datasets."""
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    A = [torch.linalg.inv(grid.alpha[k] ** 2 * S + grid.s[k] ** 2 * eye)
         for k in range(grid.n_steps + 1)]
    return sym(_propagate(_step_maps(A, grid, process, scheme, eye, denoise),
                          eye.expand(S.shape).clone(), eye))


def diffusion_covariance(second_moment=None, *, score_matrices=None, sigma_min: float,
                         n_steps: int, process: str = "sde", scheme: str = "euler",
                         T: float = 5.0, beta=(1.0, 1.0), denoise: bool = False):
    """Exact covariance of the sampler's output, from N(0, I) at T, for given linear scores.

    C <- M_k C M_k^T + q_k I over the scheme's step maps y -> M_k y + sqrt(q_k) xi (module
    docstring). Either closed-form scores A_k = (alpha_k^2 S + s_k^2 I)^(-1) at every level from a
    second moment S (what :func:`diffusion_pipeline` does with S = X^T X / N, batched over
    datasets), or the matrices A_0..A_K of any fitted linear score.

    Parameters
    ----------
    second_moment : array_like or Tensor, shape (d, d) or (R, d, d), optional
        PSD S (exactly one of ``second_moment`` and ``score_matrices``).
    score_matrices : array_like or Tensor, shape (K + 1, d, d) or (R, K + 1, d, d), optional
    sigma_min : float
        Minimal noise amplitude in (0, 1): the sampler stops at t_min with s_(t_min) = sigma_min
        (x_(t_min) = sqrt(1 - sigma_min^2) x_0 + sigma_min z).
    n_steps : int
        Number K of steps of the uniform grid from t_min to T (>= 1; step h = (T - t_min) / K).
    process : {"sde", "ode"}, default "sde"
    scheme : {"euler", "exponential", "heun"}, default "euler"
        ``"heun"`` for the ODE only.
    T : float, default 5.0
    beta : (float, float), default (1.0, 1.0)
    denoise : bool, default False
        Tweedie denoiser at t_min.

    Returns
    -------
    array or Tensor, shape (d, d) or (R, d, d)
        Same kind as the input (NumPy or tensor).

    Raises
    ------
    InputError
        Both or neither of ``second_moment`` / ``score_matrices``, bad shapes, non-PSD S, an
        unknown process or scheme, a bad schedule.

    Examples
    --------
    The probability-flow ODE with the exact score of N(0, I) (S = I) keeps N(0, I):

    >>> import numpy as np
    >>> from measureflow.sampling import diffusion_covariance
    >>> C = diffusion_covariance(np.eye(2), sigma_min=0.01, n_steps=400, process="ode",
    ...                          scheme="heun")
    >>> bool(np.allclose(C, np.eye(2), atol=1e-6))
    True

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v3).
    E. Pierret, B. Galerne, "Diffusion models for Gaussian distributions: exact solutions and
    Wasserstein errors", ICML 2025.
    """
    if (second_moment is None) == (score_matrices is None):
        raise InputError("second_moment: give exactly one of second_moment and score_matrices")
    check_choice(process, "process", PROCESSES)
    check_choice(scheme, "scheme", SCHEMES[process])
    denoise = _check_bool(denoise, "denoise")
    grid = _vp_grid(*_check_schedule(sigma_min, n_steps, T, beta))
    ctx = ArrayContext(second_moment, score_matrices)
    if second_moment is not None:
        S = ctx.tensor(second_moment, "second_moment")
        check_ndim(S, "second_moment", (2, 3))
        if S.shape[-1] != S.shape[-2] or S.shape[-1] == 0:
            raise InputError(f"second_moment: expected (d, d) or (R, d, d), got {tuple(S.shape)}")
        check_psd(S, "second_moment")
        return ctx.wrap(_output_covariance_batch(S, grid, process, scheme, denoise))
    A = ctx.tensor(score_matrices, "score_matrices")
    check_ndim(A, "score_matrices", (3, 4))
    if A.shape[-3] != grid.n_steps + 1 or A.shape[-1] != A.shape[-2] or A.shape[-1] == 0:
        raise InputError(f"score_matrices: expected ({grid.n_steps + 1}, d, d) or (R, "
                         f"{grid.n_steps + 1}, d, d), got {tuple(A.shape)}")
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    maps = _step_maps([A[..., k, :, :] for k in range(grid.n_steps + 1)], grid, process, scheme,
                      eye, denoise)
    C0 = eye.expand(A.shape[:-3] + eye.shape).clone()
    return ctx.wrap(sym(_propagate(maps, C0, eye)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionResult(SolverResult):
    """Output of :func:`diffusion_pipeline`.

    Attributes
    ----------
    target_covariance : array or Tensor, shape (d, d), or None
        Sigma; None for raw samples without ``covariance``.
    empirical_covariance : array or Tensor, shape (d, d)
        S = X^T X / N.
    times : array or Tensor, shape (K + 1,)
        The grid t_0 = t_min < ... < t_K = T.
    noise_levels : array or Tensor, shape (K + 1,)
        s_k = sqrt(1 - alpha_k^2) at the grid times (s_0 = sigma_min).
    score_matrices : array or Tensor, shape (K + 1, d, d)
        A_k, the learned score is s(y, t_k) = -A_k y.
    covariance : array or Tensor, shape (d, d)
        Covariance of the output law (exact; the mean is 0).
    samples : array or Tensor, shape (n_chains, d), or None
        Simulated outputs (None when n_chains = 0).
    w2 : float or None
        W2(N(0, Sigma), N(0, covariance)) (a distance, Bures formula); None without target.
    w2_samples : float or None
        W2 between the target and N(0, samples^T samples / n_chains) (carries the chains' own
        sampling error); None without target or with fewer than 2 chains.
    n_iter : int
        Score iterations per level (0 for the closed form).
    errors : list of float
        The DSM loss gap L_k(A_k) - min L_k per level k = 0..K.
    converged : bool
        False when SGD diverged or the output covariance overflowed (a ``ConvergenceWarning``
        is then emitted).
    """

    target_covariance: Any
    empirical_covariance: Any
    times: Any
    noise_levels: Any
    score_matrices: Any
    covariance: Any
    samples: Any
    w2: Any
    w2_samples: Any


def _level_scores(S, grid, score, score_step, score_iters, X, gen, Sigma):
    """A_0..A_K (list of (d, d)), iterations and loss gaps, for every score kind."""
    L = grid.n_steps + 1
    if score == "sgd":
        alpha = torch.tensor(grid.alpha, dtype=S.dtype, device=S.device)
        s = torch.tensor(grid.s, dtype=S.dtype, device=S.device)
        with torch.no_grad():
            A = sgd_dsm(X.detach(), sigma=s, alpha=alpha, score_step=score_step,
                        score_iters=score_iters, generator=gen, replicates=L)
        eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
        gaps = []
        for k in range(L):
            Q = grid.alpha[k] ** 2 * S.detach() + grid.s[k] ** 2 * eye
            D = A[k] - torch.linalg.inv(Q)
            gaps.append(float(torch.trace(D @ Q @ D.T)) if bool(torch.isfinite(D).all())
                        else math.inf)
        return list(A), score_iters, gaps
    base = Sigma if score == "exact" else S
    kind = "closed_form" if score == "exact" else score
    out, gaps, n_iter = [], [], 0
    for k in range(L):
        A, n_iter, gap = _dsm_score_matrix(base, sigma=grid.s[k], alpha=grid.alpha[k],
                                           score=kind, score_step=score_step,
                                           score_iters=score_iters)
        out.append(A)
        gaps.append(gap)
    return out, n_iter, gaps


def diffusion_pipeline(data, *, sigma_min: float, n_steps: int, process: str = "sde",
                       scheme: str = "euler", T: float = 5.0, beta=(1.0, 1.0),
                       score: str = "closed_form", score_step: float | None = None,
                       score_iters: int | None = None, denoise: bool = False,
                       n_chains: int = 1000, covariance=None, seed=0) -> DiffusionResult:
    """Diffusion sampler of a centred Gaussian: DSM at every level -> VP backward SDE/ODE -> exact law.

    Every process and scheme is linear in the state for a linear score, so the output is exactly
    N(0, C) (:func:`diffusion_covariance`); chains simulate it. Hurault et al., arXiv:2503.11615
    (v3, diffusion sampler); conventions of Pierret & Galerne (ICML 2025); formulas in the module
    docstring and ``docs/sampling.md``.

    Parameters
    ----------
    data : array_like or Tensor of shape (N, d), or (spectrum, n_samples)
        Samples X of the centred target, or a pair: the target is N(0, diag(spectrum)) and N
        samples are drawn with ``seed`` (every step commutes with rotations, so a diagonal target
        loses no generality).
    sigma_min : float
        Minimal noise amplitude in (0, 1): the sampler stops at t_min with s_(t_min) = sigma_min
        (x_(t_min) = sqrt(1 - sigma_min^2) x_0 + sigma_min z).
    n_steps : int
        Number K of steps of the uniform grid from t_min to T (>= 1; step h = (T - t_min) / K).
    process : {"sde", "ode"}, default "sde"
        Backward SDE or probability-flow ODE.
    scheme : {"euler", "exponential", "heun"}, default "euler"
        Euler(-Maruyama), exponential integrator, or (ODE only) Heun.
    T : float, default 5.0
        Horizon of the forward process.
    beta : (float, float), default (1.0, 1.0)
        Linear schedule (beta_min, beta_max).
    score : {"closed_form", "gd", "sgd", "exact"}, default "closed_form"
        Fitted on the samples at every level, or the true score of the target
        -(alpha^2 Sigma + s^2 I)^(-1) y (no score-matching error; needs the target covariance).
    score_step, score_iters : float, int, optional
        tau and K of gd/sgd, the same at every level (defaults: tau = 0.5 / max lambda_max(Q_k)
        for gd, 0.05 / max tr(Q_k) for sgd; K = ceil(8 / (2 tau min lambda_min(Q_k)))).
    denoise : bool, default False
        Apply the Tweedie denoiser at t_min.
    n_chains : int, default 1000
        Simulated chains (0: none).
    covariance : array_like or Tensor, shape (d, d), optional
        The true target covariance when ``data`` are raw samples.
    seed : int or torch.Generator, default 0
        Data, SGD, chains.

    Returns
    -------
    DiffusionResult
        NumPy in, NumPy out; tensors in give tensors (autograd kept on the closed-form path).

    Raises
    ------
    InputError
        Bad ``data`` / ``covariance``, an unknown process / scheme / score, a bad schedule,
        ``score="exact"`` without a target covariance.

    Warns
    -----
    ConvergenceWarning
        SGD diverged or the output covariance overflowed (``converged=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.sampling import diffusion_covariance, diffusion_pipeline
    >>> r = diffusion_pipeline(([1.0, 0.25], 1000), sigma_min=0.05, n_steps=50, n_chains=0)
    >>> C = diffusion_covariance(r.empirical_covariance, sigma_min=0.05, n_steps=50)
    >>> r.score_matrices.shape, bool(np.allclose(r.covariance, C)), bool(r.w2 < 0.2)
    ((51, 2, 2), True, True)

    References
    ----------
    N. Hurault, M. Terris, T. Moreau, G. Peyre, "From score matching to diffusion: a
    fine-grained error analysis in the Gaussian setting", arXiv:2503.11615 (v3).
    E. Pierret, B. Galerne, "Diffusion models for Gaussian distributions: exact solutions and
    Wasserstein errors", ICML 2025.
    """
    check_choice(process, "process", PROCESSES)
    check_choice(scheme, "scheme", SCHEMES[process])
    check_choice(score, "score", ("closed_form", "gd", "sgd", "exact"))
    sigma_min, n_steps, T, beta = _check_schedule(sigma_min, n_steps, T, beta)
    n_chains = check_int(n_chains, "n_chains", min_value=0)
    denoise = _check_bool(denoise, "denoise")
    ctx, X, Sigma, gen = _read_data(data, covariance, seed)
    if score == "exact" and Sigma is None:
        raise InputError("score: 'exact' needs the target covariance (data=(spectrum, N) or "
                         "covariance=...)")
    grid = _vp_grid(sigma_min, n_steps, T, beta)
    N, d = X.shape
    S = X.T @ X / N
    mu = torch.linalg.eigvalsh(sym(S.detach())).clamp_min(0)
    q = torch.cat([grid.alpha[k] ** 2 * mu + grid.s[k] ** 2 for k in range(n_steps + 1)])
    if score == "sgd":
        # the sgd default step uses the largest trace over the levels
        if score_step is None:
            score_step = 0.05 / max(float(grid.alpha[k] ** 2 * mu.sum() + d * grid.s[k] ** 2)
                                    for k in range(n_steps + 1))
    score_step, score_iters = _default_score_args(score, score_step, score_iters, q)
    A, n_iter, gaps = _level_scores(S, grid, score, score_step, score_iters, X, gen, Sigma)
    eye = torch.eye(d, dtype=S.dtype, device=S.device)
    ok = all(bool(torch.isfinite(a.detach()).all()) for a in A)
    C = torch.full_like(S, math.nan)
    samples = None
    if ok:
        maps = _step_maps(A, grid, process, scheme, eye, denoise)
        C = sym(_propagate(maps, eye.clone(), eye))
        ok = bool(torch.isfinite(C.detach()).all())
        if n_chains:
            with torch.no_grad():
                y0 = torch.randn(n_chains, d, generator=gen, dtype=S.dtype).to(S.device)
                samples = _simulate_linear([(M.detach(), qk) for M, qk in maps], y0, gen)
    if not ok:
        warnings.warn("diffusion_pipeline: non-finite score matrices or output covariance (SGD "
                      "diverged or the scheme is unstable at this step size); converged=False",
                      ConvergenceWarning, stacklevel=2)
    w2 = w2_s = None
    if Sigma is not None:
        zero = torch.zeros(d, dtype=S.dtype, device=S.device)
        w2 = bures_wasserstein(zero, Sigma, zero, C) if ok else S.new_tensor(math.nan)
        if ok and samples is not None and n_chains >= 2:
            w2_s = bures_wasserstein(zero, Sigma, zero, samples.T @ samples / n_chains)
    kw = dict(dtype=S.dtype, device=S.device)
    res = DiffusionResult(
        target_covariance=Sigma, empirical_covariance=S, times=torch.tensor(grid.t, **kw),
        noise_levels=torch.tensor(grid.s, **kw), score_matrices=torch.stack(A), covariance=C,
        samples=samples, w2=w2, w2_samples=w2_s, converged=ok, n_iter=n_iter, errors=gaps)
    return ctx.wrap(res)
