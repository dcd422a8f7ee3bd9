"""Spectral Wasserstein (Schatten-p normalized) gradient flows.

Paper: G. Peyre, arXiv 2604.04891. Sec. 2 and 5 (particle flows, Prop. "particle"), App. F
(Gaussian-preserving flows, linear two-layer networks, Prop. "boundary"), App. H (Gaussian KL
flow), Sec. 4 (geodesics = displacement interpolation along an optimal plan).

Clock convention: the particle flow is the mean-field ODE  dx_i/dt = v(x_i), v = J^mu_p(g_mu)
with g_mu = grad_x dF/dmu, i.e. time is the time of the PDE  d_t mu + div(mu v) = 0. Autograd
of F(X) = Fcal(mu_X) returns rows w_i g(x_i), which are divided by w_i (see ``particle_lmo``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..core.arrays import ArrayContext, as_tensor
from ..core.errors import InputError
from ..core.validation import (
    check_choice,
    check_in_range,
    check_int,
    check_ndim,
    check_nonnegative,
    check_nonnegative_scalar,
    check_positive,
    check_psd,
    check_shape,
    check_weights,
)
from ..ot.integrate import (
    FlowResult,
    ParticleFlow,
    autograd_force,
    odeint,
    project_nonnegative,
    result_alias,
)
from .schatten import _particle_lmo, _schatten_lmo, check_p, dual_exponent

__all__ = ["ParticleFlowResult", "particle_flow", "affine_covariance_rhs", "gaussian_kl_rhs",
           "gaussian_kl", "gaussian_kl_flow", "GaussianFlowResult", "modal_rhs", "modal_flow",
           "ModalFlowResult", "rank_loss_threshold", "modal_invariant",
           "displacement_interpolation", "interpolation_action"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParticleFlowResult(FlowResult):
    """Result of :func:`particle_flow`.

    Attributes
    ----------
    trajectory : array, shape (T+1, n, d)
        Recorded positions (``positions`` is kept as an alias, its name before 0.2).
    times : array, shape (T+1,)
    final : array, shape (n, d)
    energies : array, shape (T+1,)
        The energy at the recorded positions.
    dual_norms : array, shape (T+1,)
        N*_mu(g)^2, the dissipation rate -dE/dt of the continuous flow.
    converged, n_iter, errors
        ``True``, the number of steps, ``[]`` (a fixed-horizon integrator).
    """

    energies: Any = None
    dual_norms: Any = None
    positions = result_alias("trajectory", doc="recorded positions (T+1, n, d)")


def particle_flow(energy: Callable, x0, *, p=math.inf, weights=None, step: float,
                  n_steps: int, max_displacement: float | None = None, record_every: int = 1):
    """Explicit Euler for the Schatten-p normalized flow of a particle energy.

    The force is g(x_i) = dE/dX_i / w_i (the Wasserstein gradient of Fcal) and each step is
    X <- X + step * v with v = :func:`~measureflow.spectral.particle_lmo` (g, w, p): the
    mean-field ODE dx_i/dt = J_p^mu(g)(x_i) of the PDE d_t mu + div(mu v) = 0. p = 1 is the
    Wasserstein-2 gradient flow, p = inf the mean-field Muon flow (arXiv 2604.04891, Sec. 2 and
    5, Prop. "particle"). Integrated by :class:`measureflow.ot.integrate.ParticleFlow`.

    Parameters
    ----------
    energy : callable
        ``energy(X) -> scalar tensor``, Fcal(mu_X) for mu_X = sum_i w_i delta_{X_i}
        (differentiable by torch autograd).
    x0 : array_like or Tensor, shape (n, d)
        Initial positions.
    p : float or "inf", default inf
        Schatten index in [1/2, inf].
    weights : array_like, shape (n,), optional
        Positive particle weights (default uniform 1/n).
    step : float
        Time step (> 0).
    n_steps : int
        Number of steps (>= 0).
    max_displacement : float, optional
        Cap on ||Delta X||_F per step (> 0; the paper's experiments use such a cap; None = no
        cap).
    record_every : int, default 1
        Record every that many steps (>= 1).

    Returns
    -------
    ParticleFlowResult
        Always ``converged=True`` (a fixed-horizon integrator). NumPy in -> NumPy out.

    Raises
    ------
    InputError
        ``x0`` not 2-D, non-positive weights, ``energy`` not callable, bad ``p`` / ``step`` /
        ``n_steps`` / ``record_every`` / ``max_displacement``.
    FloatingPointError
        The energy became non-finite (reduce the step or cap the displacement).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral.flows import particle_flow
    >>> x0 = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    >>> energy = lambda X: 0.5 * (X ** 2).sum(1).mean()   # Fcal(mu) = int |x|^2 / 2 dmu
    >>> r = particle_flow(energy, x0, step=0.1, n_steps=10)   # Muon flow (p = inf)
    >>> r.trajectory.shape, bool(np.all(np.diff(r.energies) < 0))
    ((11, 3, 2), True)
    >>> bool(np.allclose(particle_flow(energy, x0, p=1, step=0.1, n_steps=10).final,
    ...                  0.9 ** 10 * x0))               # p = 1: Euler for dx/dt = -x
    True

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, Sec. 2 and 5.
    """
    ctx = ArrayContext(x0, weights)
    X = ctx.tensor(x0, "x0").detach().clone()
    check_ndim(X, "x0", 2)
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"), X.shape[0],
                      "weights", like=X)
    if bool((w <= 0).any()):
        raise InputError("weights: must be > 0 (forces are gradients divided by w)")
    if not callable(energy):
        raise InputError("energy: must be a callable energy(X) -> scalar tensor")
    p = check_p(p)
    step = check_positive(step, "step")
    n_steps = check_int(n_steps, "n_steps", min_value=0)
    record_every = check_int(record_every, "record_every", min_value=1)
    cap = None if max_displacement is None else check_positive(max_displacement,
                                                               "max_displacement")
    q = dual_exponent(p)

    def velocity(Z, wz):
        E, g = autograd_force(energy, Z, wz)
        if not math.isfinite(float(E)):
            raise FloatingPointError("particle_flow: the energy became non-finite; reduce the "
                                     "step or cap the displacement")
        V = _particle_lmo(g, wz, p)
        if cap is not None:
            nrm = step * float(torch.linalg.matrix_norm(V))
            if nrm > cap:
                V = V * (cap / nrm)
        return V, (E, g)

    res = ParticleFlow(velocity, X, w, method="euler", has_aux=True).steps(
        n_steps, step, record_every=record_every)
    duals = []
    for _, g in res.aux:
        sv = torch.linalg.svdvals(w.sqrt()[:, None] * g)
        nq = float(sv.max()) if math.isinf(q) else float((sv ** q).sum() ** (1 / q))
        duals.append(nq ** 2)
    kw = dict(dtype=X.dtype, device=X.device)
    out = ParticleFlowResult(final=res.final, trajectory=res.trajectory, times=res.times,
                             energies=torch.tensor([float(E) for E, _ in res.aux], **kw),
                             dual_norms=torch.tensor(duals, **kw), converged=True,
                             n_iter=res.n_iter, errors=[])
    return ctx.wrap(out)


# ----------------------------------------------------------------------------------------------
# Gaussian-preserving flows
# ----------------------------------------------------------------------------------------------


def affine_covariance_rhs(H, Sigma, p):
    """dSigma/dt of N(0, Sigma) moved by the normalized velocity of the force g(x) = H x.

    K = H Sigma^{1/2}, B = J_p(K) (:func:`~measureflow.spectral.schatten_lmo`), dSigma/dt =
    B Sigma^{1/2} + (B Sigma^{1/2})^T: the selected velocity is v(x) = A x with A Sigma^{1/2} =
    J_p(H Sigma^{1/2}), computed without inverses (arXiv 2604.04891, App. F).

    Parameters
    ----------
    H : array_like or Tensor, shape (d, d)
        Linear force.
    Sigma : array_like or Tensor, shape (d, d)
        Symmetric PSD covariance.
    p : float or "inf"
        Schatten index in [1/2, inf].

    Returns
    -------
    array, shape (d, d)
        Symmetric dSigma/dt.

    Raises
    ------
    InputError
        ``Sigma`` not symmetric PSD, ``H`` of another shape, bad ``p``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.spectral.flows import affine_covariance_rhs
    >>> H, S = np.diag([1.0, 2.0]), np.eye(2)
    >>> print(affine_covariance_rhs(H, S, 1))             # p = 1: v = -H x
    [[-2.  0.]
     [ 0. -4.]]
    >>> print(affine_covariance_rhs(H, S, math.inf))      # Muon: -||H||_* times the polar factor
    [[-6.  0.]
     [ 0. -6.]]

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. F.
    """
    from ..core.linalg import sqrtm_psd

    ctx = ArrayContext(H, Sigma)
    H, S = ctx.tensor(H, "H"), ctx.tensor(Sigma, "Sigma")
    check_psd(S, "Sigma")
    check_shape(H, "H", tuple(S.shape))
    p = check_p(p)
    R = sqrtm_psd(S)
    B = _schatten_lmo(H @ R, p)[0]
    M = B @ R
    return ctx.wrap(M + M.transpose(-1, -2))


def _gaussian_args(ctx, m, S, m_bar, S_bar):
    S, Sb = ctx.tensor(S, "S"), ctx.tensor(S_bar, "S_bar")
    check_psd(S, "S", strict=True)
    check_psd(Sb, "S_bar", strict=True)
    d = S.shape[0]
    check_shape(Sb, "S_bar", (d, d))
    m, mb = ctx.tensor(m, "m"), ctx.tensor(m_bar, "m_bar")
    check_shape(m, "m", (d,))
    check_shape(mb, "m_bar", (d,))
    return m, S, mb, Sb


def gaussian_kl(m, S, m_bar, S_bar):
    """Kullback-Leibler divergence KL(N(m, S) || N(m_bar, S_bar)) (natural log).

    KL = 1/2 [tr(S_bar^{-1} S) + (m - m_bar)^T S_bar^{-1} (m - m_bar) - d + log det S_bar
    - log det S].

    Parameters
    ----------
    m, m_bar : array_like or Tensor, shape (d,)
        Means.
    S, S_bar : array_like or Tensor, shape (d, d)
        Positive definite covariances.

    Returns
    -------
    float or 0-d tensor
        NumPy in/out or torch in/out (differentiable).

    Raises
    ------
    InputError
        Covariances not symmetric positive definite, shapes that do not match.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral.flows import gaussian_kl
    >>> gaussian_kl(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))     # |m - m_bar|^2 / 2
    1.0
    """
    ctx = ArrayContext(m, S, m_bar, S_bar)
    return ctx.wrap(_gaussian_kl(*_gaussian_args(ctx, m, S, m_bar, S_bar)))


def _gaussian_kl(m, S, m_bar, S_bar):
    d = S.shape[-1]
    Sb_inv = torch.linalg.inv(S_bar)
    dm = m - m_bar
    return 0.5 * (torch.trace(Sb_inv @ S) + dm @ Sb_inv @ dm - d
                  + torch.logdet(S_bar) - torch.logdet(S))


def gaussian_kl_rhs(m, S, m_bar, S_bar, p, *, rtol: float = 1e-12):
    """(dm/dt, dS/dt) of the Schatten-p flow of KL(. || N(m_bar, S_bar)) on Gaussians (App. H).

    H = S_bar^{-1} - S^{-1}, b = S_bar^{-1}(m - m_bar), F = H S H + b b^T (the force covariance),
    P = N^{2-q} F^{(q-2)/2} with N^q = tr F^{q/2} (P = I for p = 1, tr(F^{1/2}) F^{+1/2} for
    p = inf); dm/dt = -P b, dS/dt = P (I - S_bar^{-1} S) + (I - S S_bar^{-1}) P.

    Parameters
    ----------
    m, m_bar : array_like or Tensor, shape (d,)
        Current and target means.
    S, S_bar : array_like or Tensor, shape (d, d)
        Current and target covariances, positive definite.
    p : float or "inf"
        Schatten index in [1/2, inf].
    rtol : float, default 1e-12
        Relative eigenvalue cutoff on F (>= 0): powers are taken on its range.

    Returns
    -------
    (dm, dS) : tuple of arrays, shapes (d,) and (d, d)
        NumPy in/out or torch in/out.

    Raises
    ------
    InputError
        Covariances not positive definite, shapes that do not match, bad ``p`` or ``rtol``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral.flows import gaussian_kl_rhs
    >>> dm, dS = gaussian_kl_rhs(np.zeros(2), 2 * np.eye(2), np.zeros(2), np.eye(2), 1)
    >>> print(dm, dS.diagonal())                          # p = 1: dS = 2 (I - S)
    [0. 0.] [-2. -2.]

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. H.
    """
    ctx = ArrayContext(m, S, m_bar, S_bar)
    args = _gaussian_args(ctx, m, S, m_bar, S_bar)
    p = check_p(p)
    rtol = check_nonnegative_scalar(rtol, "rtol")
    return ctx.wrap(_gaussian_kl_rhs(*args, p, rtol=rtol))


def _force_preconditioner(F: torch.Tensor, p: float, rtol: float) -> torch.Tensor:
    """P = N^{2-q} F^{(q-2)/2}, N^q = tr F^{q/2}, for a PSD F (d, d) and q = (2p)'.

    Computed on F / lambda_max(F) (scale-free: P is 0-homogeneous in F), so no power overflows
    for q large (p near 1/2); at p = 1/2 (q = inf) the limit is the projector on the top
    eigenspace divided by its dimension (ties within max(rtol, 1e-12), as in ``schatten_lmo``).
    Eigenvalues <= rtol x lambda_max are cut (powers on the range of F). P = 0 when F = 0.
    """
    d = F.shape[-1]
    ev, V = torch.linalg.eigh(F)
    ev = ev.clamp_min(0.0)
    lam = ev.max()
    if not bool(lam > 0):
        return torch.zeros(d, d, dtype=F.dtype, device=F.device)
    t = ev / lam                                   # in [0, 1], max = 1
    keep = t > rtol
    if p == 0.5:
        top = t >= 1.0 - max(rtol, 1e-12)
        pw = torch.where(top, 1.0 / top.sum(), torch.zeros_like(t))
    else:
        q = dual_exponent(p)
        tiny = torch.finfo(F.dtype).tiny
        nt = (torch.where(keep, t, torch.zeros_like(t)) ** (q / 2)).sum() ** (1.0 / q)  # >= 1
        r = torch.where(keep, t / nt ** 2, torch.ones_like(t))
        pw = torch.where(keep, r.clamp_min(tiny) ** ((q - 2) / 2), torch.zeros_like(t))
    return (V * pw) @ V.T


def _gaussian_kl_rhs(m, S, m_bar, S_bar, p, *, rtol: float = 1e-12):
    d = S.shape[-1]
    I = torch.eye(d, dtype=S.dtype, device=S.device)
    Sb_inv = torch.linalg.inv(S_bar)
    H = Sb_inv - torch.linalg.inv(S)
    b = Sb_inv @ (m - m_bar)
    F = H @ S @ H + torch.outer(b, b)
    F = 0.5 * (F + F.T)
    P = I if p == 1 else _force_preconditioner(F, p, rtol)
    dm = -P @ b
    dS = P @ (I - Sb_inv @ S) + (I - S @ Sb_inv) @ P
    return dm, 0.5 * (dS + dS.T)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianFlowResult(FlowResult):
    """Result of :func:`gaussian_kl_flow`.

    Attributes
    ----------
    final : (array (d,), array (d, d))
        (m, S) at time T.
    trajectory : (array (T+1, d), array (T+1, d, d))
        Recorded means and covariances (also as the aliases ``means`` and ``covs``).
    times : array, shape (T+1,)
    kl : array, shape (T+1,)
        KL(N(m, S) || N(m_bar, S_bar)) along the path.
    converged, n_iter, errors
        ``True``, the number of steps, ``[]``.
    """

    kl: Any = None
    means = result_alias("trajectory", 0, "recorded means")
    covs = result_alias("trajectory", 1, "recorded covariances")


def gaussian_kl_flow(m0, S0, m_bar, S_bar, p, *, T: float, dt: float, method: str = "rk4"):
    """Schatten-p flow of KL(. || N(m_bar, S_bar)) on Gaussians, integrated on [0, T].

    Integrates :func:`gaussian_kl_rhs` with n = max(1, round(T / dt)) steps of T / n by
    :func:`measureflow.ot.integrate.odeint`, recording every step (arXiv 2604.04891, App. H).

    Parameters
    ----------
    m0, m_bar : array_like or Tensor, shape (d,)
        Initial and target means.
    S0, S_bar : array_like or Tensor, shape (d, d)
        Initial and target covariances, positive definite.
    p : float or "inf"
        Schatten index in [1/2, inf].
    T, dt : float
        Horizon and step (> 0).
    method : {"rk4", "euler"}, default "rk4"

    Returns
    -------
    GaussianFlowResult
        ``kl`` decreases along the path.

    Raises
    ------
    InputError
        Covariances not positive definite, shapes that do not match, bad ``p`` / ``T`` /
        ``dt`` / ``method``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.spectral.flows import gaussian_kl_flow
    >>> r = gaussian_kl_flow(np.ones(2), np.diag([2.0, 0.5]), np.zeros(2), np.eye(2), math.inf,
    ...                      T=1.0, dt=0.05)
    >>> r.means.shape, bool(np.all(np.diff(r.kl) <= 0)), bool(r.kl[-1] < 0.1 * r.kl[0])
    ((21, 2), True, True)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. H.
    """
    ctx = ArrayContext(m0, S0, m_bar, S_bar)
    S0, Sb = ctx.tensor(S0, "S0"), ctx.tensor(S_bar, "S_bar")
    check_psd(S0, "S0", strict=True)
    check_psd(Sb, "S_bar", strict=True)
    d = S0.shape[0]
    check_shape(Sb, "S_bar", (d, d))
    m0, mb = ctx.tensor(m0, "m0"), ctx.tensor(m_bar, "m_bar")
    check_shape(m0, "m0", (d,))
    check_shape(mb, "m_bar", (d,))
    p = check_p(p)
    T, dt = check_positive(T, "T"), check_positive(dt, "dt")
    method = check_choice(method, "method", ("rk4", "euler"))
    n = max(1, int(round(T / dt)))
    res = odeint(lambda t, y: _gaussian_kl_rhs(y[0], y[1], mb, Sb, p), (m0, S0), T=T,
                    n_steps=n, method=method, name="gaussian_kl_flow",
                    observe=lambda t, y: {"kl": _gaussian_kl(y[0], y[1], mb, Sb)})
    return ctx.wrap(GaussianFlowResult(final=res.final, trajectory=res.trajectory,
                                       times=res.times, kl=res.observations["kl"],
                                       converged=True, n_iter=res.n_iter, errors=[]))


# ----------------------------------------------------------------------------------------------
# Linear two-layer network: modal ODE
# ----------------------------------------------------------------------------------------------


def rank_loss_threshold(p, alpha: float) -> float:
    """Rank-loss threshold R_p = alpha 2^{p/(p-1)} of the modal ODE (App. F, Prop. "boundary").

    The largest |r| reachable before a balanced mode (a = b = alpha at t = 0) loses rank:
    R_inf = 2 alpha, R_1 = inf (gradient flow never loses rank).

    Parameters
    ----------
    p : float or "inf"
        Schatten index in [1, inf].
    alpha : float
        Initial balanced scale (> 0).

    Returns
    -------
    float

    Raises
    ------
    InputError
        ``p`` outside [1, inf], ``alpha`` not positive.

    Examples
    --------
    >>> import math
    >>> from measureflow.spectral.flows import rank_loss_threshold
    >>> rank_loss_threshold(math.inf, 1.0), rank_loss_threshold(2, 1.0), rank_loss_threshold(1, 1.0)
    (2.0, 4.0, inf)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. F.
    """
    p = check_p(p, low=1.0)
    alpha = check_positive(alpha, "alpha")
    if p == 1:
        return math.inf
    e = 1.0 if math.isinf(p) else p / (p - 1.0)
    return float(alpha) * 2.0 ** e


def modal_invariant(a, b, p):
    """Conserved quantity of one mode of the modal ODE while a, b > 0 (App. F).

    a b for p = 1; a^eta + b^eta with eta = (p - 1)/(2p - 1) for p > 1 (eta = 1/2 at p = inf).

    Parameters
    ----------
    a, b : array_like
        Nonnegative mode variables (a = s + r, b = s - r), broadcastable.
    p : float or "inf"
        Schatten index in [1, inf].

    Returns
    -------
    ndarray

    Raises
    ------
    InputError
        Negative or non-finite ``a`` / ``b``, shapes that do not broadcast, bad ``p``.

    Examples
    --------
    >>> import math
    >>> from measureflow.spectral.flows import modal_invariant
    >>> float(modal_invariant(1.0, 4.0, math.inf)), float(modal_invariant(1.0, 4.0, 1))
    (3.0, 4.0)
    """
    p = check_p(p, low=1.0)
    a, b = _modal_arrays(a=a, b=b)
    for nm, v in (("a", a), ("b", b)):
        if np.any(v < 0):
            raise InputError(f"{nm}: must be finite and >= 0")
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise InputError(f"b: shape {b.shape} does not broadcast with a's {a.shape}") from None
    if p == 1:
        return a * b
    eta = 0.5 if math.isinf(p) else 0.5 - 0.5 / (2.0 * p - 1.0)  # (p - 1)/(2p - 1)
    return a ** eta + b ** eta


def modal_rhs(a, b, beta, p):
    """(da/dt, db/dt) of the modal ODE (App. F), a = s + r, b = s - r, arrays over modes.

    N^q = sum_j |r_j - beta_j|^q (a_j^{q/2} + b_j^{q/2});
    da_i/dt = -2 N^{2-q} psi_q(r_i - beta_i) a_i^{q/2},  db_i/dt = +2 N^{2-q} psi_q(.) b_i^{q/2},
    psi_q(e) = e |e|^{q-2}, q = 2p / (2p - 1). Energy 1/2 sum (r - beta)^2 decreases at rate
    N^2 (linear two-layer network, one mode per singular value of the target beta).

    Parameters
    ----------
    a, b : array_like
        Mode variables a = s + r, b = s - r, >= 0 (negative round-off, down to -1e-12 x
        max(1, |a|), is clipped).
    beta : array_like
        Target singular values; ``a``, ``b``, ``beta`` broadcast to (..., modes) (the sum runs
        over the last axis, at least one mode).
    p : float or "inf"
        Schatten index in [1, inf].

    Returns
    -------
    (da, db) : tuple of ndarrays
        NumPy out.

    Raises
    ------
    InputError
        Negative ``a`` / ``b``, non-finite input, shapes that do not broadcast, no mode, bad
        ``p``.

    Examples
    --------
    >>> import math
    >>> from measureflow.spectral.flows import modal_rhs
    >>> da, db = modal_rhs([1.0], [1.0], [1.0], math.inf)      # r = 0 < beta: a grows
    >>> da.tolist(), db.tolist()
    ([4.0], [-4.0])

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. F.
    """
    p = check_p(p, low=1.0)
    a, b, beta = _modal_arrays(a=a, b=b, beta=beta)
    a, b, beta = _broadcast_modes(a=a, b=b, beta=beta)
    for nm, v in (("a", a), ("b", b)):
        if np.any(v < -1e-12 * max(1.0, float(np.max(np.abs(v), initial=0.0)))):
            raise InputError(f"{nm}: must be >= 0 (a = s + r and b = s - r)")
    return _modal_rhs(a, b, beta, p)


def _modal_arrays(**arrays):
    # the core boundary: rejects strings, bools, complex, meta/half tensors, NaN/Inf
    return [as_tensor(v, nm).detach().cpu().numpy().astype(float) for nm, v in arrays.items()]


def _broadcast_modes(**arrays):
    try:
        out = np.broadcast_arrays(*arrays.values())
    except ValueError as exc:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items())
        raise InputError(f"{next(iter(arrays))}: shapes do not broadcast ({shapes})") from exc
    out = [np.atleast_1d(v) for v in out]
    if out[0].shape[-1] == 0:
        raise InputError(f"{next(iter(arrays))}: needs at least one mode")
    return out


def _modal_rhs(a: np.ndarray, b: np.ndarray, beta: np.ndarray, p: float):
    q = dual_exponent(p)
    a, b = np.clip(a, 0, None), np.clip(b, 0, None)
    e = 0.5 * (a - b) - beta
    ae = np.abs(e)
    Nq = (ae ** q * (a ** (q / 2) + b ** (q / 2))).sum(-1, keepdims=True)
    N = Nq ** (1.0 / q)
    psi = np.sign(e) * ae ** (q - 1.0)
    fac = np.where(N > 0, N ** (2.0 - q), 0.0)
    return -2 * fac * psi * a ** (q / 2), 2 * fac * psi * b ** (q / 2)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModalFlowResult(FlowResult):
    """Result of :func:`modal_flow`.

    Attributes
    ----------
    trajectory : (array, array), shapes (T+1, ..., modes)
        Recorded r = (a - b)/2 and s = (a + b)/2 (also as the aliases ``r`` and ``s``).
    final : (array, array)
        (r, s) at time T.
    times : array, shape (T+1,)
    energy : array, shape (T+1, ...)
        1/2 sum (r - beta)^2.
    extinction_r, extinction_time : arrays, shape (..., modes)
        r and the time at the first step where a mode's a or b reached 0 (NaN if never).
    converged, n_iter, errors
        ``True``, the number of steps, ``[]``.
    """

    energy: Any = None
    extinction_r: Any = None
    extinction_time: Any = None
    r = result_alias("trajectory", 0, "recorded r = (a - b)/2")
    s = result_alias("trajectory", 1, "recorded s = (a + b)/2")


def modal_flow(r0, s0, beta, p, *, T: float, dt: float, record_every: int = 1):
    """RK4 for the modal ODE (:func:`modal_rhs`) with rank-loss handling (App. F).

    n = max(1, round(T / dt)) steps of T / n by :func:`measureflow.ot.integrate.odeint` (RK4,
    then a, b <- max(a, b, 0): :func:`~measureflow.ot.integrate.project_nonnegative`; extinct
    eigenvalues stay 0). A balanced mode whose target exceeds :func:`rank_loss_threshold` loses
    rank near r = R_p.

    Parameters
    ----------
    r0, s0, beta : array_like
        Initial r, s and the targets, broadcast to (..., modes); s0 >= |r0|.
    p : float or "inf"
        Schatten index in [1, inf].
    T, dt : float
        Horizon and step (> 0).
    record_every : int, default 1
        Record every that many steps (>= 1).

    Returns
    -------
    ModalFlowResult
        NumPy out.

    Raises
    ------
    InputError
        s0 < |r0|, shapes that do not broadcast, non-finite input, bad ``p`` / ``T`` / ``dt``
        / ``record_every``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.spectral.flows import modal_flow
    >>> r = modal_flow([0.0], [1.0], [3.0], math.inf, T=3.0, dt=0.01)   # beta > R_inf = 2
    >>> round(float(r.extinction_r[0]), 1), round(float(r.final[0][0]), 4)
    (2.0, 3.0)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. F.
    """
    r0, s0, beta = _modal_arrays(r0=r0, s0=s0, beta=beta)
    r0, s0, beta = _broadcast_modes(r0=r0, s0=s0, beta=beta)
    if np.any(s0 < np.abs(r0)):
        raise InputError("s0: must satisfy s0 >= |r0| (a = s + r and b = s - r are >= 0)")
    p = check_p(p, low=1.0)
    T, dt = check_positive(T, "T"), check_positive(dt, "dt")
    record_every = check_int(record_every, "record_every", min_value=1)
    n = max(1, int(round(T / dt)))
    a, b = s0 + r0, s0 - r0
    ext_r = np.full(a.shape, np.nan)
    ext_t = np.full(a.shape, np.nan)
    dead = (a <= 0) | (b <= 0)

    def extinction(info):
        nonlocal dead
        aa, bb = info.y
        now = ((aa <= 0) | (bb <= 0)) & ~dead
        if now.any():
            ext_r[now] = 0.5 * (aa - bb)[now]
            ext_t[now] = info.t
            dead = dead | now

    def observe(t, y):
        r = 0.5 * (y[0] - y[1])
        return {"r": r, "s": 0.5 * (y[0] + y[1]), "energy": 0.5 * ((r - beta) ** 2).sum(-1)}

    res = odeint(lambda t, y: _modal_rhs(y[0], y[1], beta, p), (a, b), T=T, n_steps=n,
                    method="rk4", project=(project_nonnegative, project_nonnegative),
                    record_every=record_every, observe=observe, callback=extinction,
                    name="modal_flow")
    ob = res.observations
    return ModalFlowResult(final=(ob["r"][-1], ob["s"][-1]), trajectory=(ob["r"], ob["s"]),
                           times=res.times, energy=ob["energy"], extinction_r=ext_r,
                           extinction_time=ext_t, converged=True, n_iter=res.n_iter, errors=[])


# ----------------------------------------------------------------------------------------------
# Geodesics
# ----------------------------------------------------------------------------------------------


def displacement_interpolation(x, y, plan, t: float, *, threshold: float = 0.0):
    """Displacement interpolation mu_t = ((1 - t) x + t y)_# pi of a plan.

    Atoms z_ij = (1 - t) x_i + t y_j with weights pi_ij. For an optimal plan of W_gamma
    (monotone gauge) this is a constant-speed geodesic (arXiv 2604.04891, Sec. 4, static =
    dynamic).

    Parameters
    ----------
    x : array_like or Tensor, shape (n, d)
    y : array_like or Tensor, shape (m, d)
    plan : array_like or Tensor, shape (n, m)
        Nonnegative coupling.
    t : float
        Time in [0, 1].
    threshold : float, default 0.0
        Keep the atoms with pi_ij > threshold (>= 0).

    Returns
    -------
    (points, weights) : arrays, shapes (k, d) and (k,)

    Raises
    ------
    InputError
        Shapes that do not match, a negative plan entry, ``t`` outside [0, 1], negative
        ``threshold``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral.flows import displacement_interpolation
    >>> x, y = np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 3.0]])
    >>> z, w = displacement_interpolation(x, y, np.eye(2) / 2, 0.5)
    >>> z.tolist(), w.tolist()
    ([[0.0, 0.5], [1.0, 1.5]], [0.5, 0.5])
    """
    ctx = ArrayContext(x, y, plan)
    x, y, P = ctx.tensor(x, "x"), ctx.tensor(y, "y"), ctx.tensor(plan, "plan")
    check_ndim(x, "x", 2)
    check_ndim(y, "y", 2)
    check_shape(y, "y", (None, x.shape[1]))
    check_shape(P, "plan", (x.shape[0], y.shape[0]))
    check_nonnegative(P, "plan")
    t = check_in_range(t, "t", 0.0, 1.0)
    threshold = check_nonnegative_scalar(threshold, "threshold")
    i, j = torch.nonzero(P > threshold, as_tuple=True)
    z = (1 - t) * x[i] + t * y[j]
    return ctx.wrap((z, P[i, j]))


def interpolation_action(x, y, plan, p, *, n_times: int = 16):
    """Benamou-Brenier action int_0^1 gamma_p(int v_t v_t^T dmu_t) dt of a displacement path.

    Velocities from finite differences of the atom positions of
    :func:`displacement_interpolation` on ``n_times`` intervals (midpoint rule). Equals
    gamma_p(Sigma_plan) for any plan; for an optimal plan it equals W_gamma^2 (a square; static
    = dynamic, arXiv 2604.04891, Thm. in Sec. 4).

    Parameters
    ----------
    x, y, plan :
        As in :func:`displacement_interpolation`.
    p : float or "inf"
        Schatten index in [1, inf].
    n_times : int, default 16
        Number of time intervals (>= 1).

    Returns
    -------
    float or 0-d tensor

    Raises
    ------
    InputError
        As :func:`displacement_interpolation`, and bad ``p`` / ``n_times``.

    Examples
    --------
    >>> import math
    >>> import numpy as np
    >>> from measureflow.spectral import displacement_moment, gauge_value
    >>> from measureflow.spectral.flows import interpolation_action
    >>> x, y = np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 3.0]])
    >>> P = np.eye(2) / 2
    >>> a = interpolation_action(x, y, P, math.inf)
    >>> bool(np.isclose(a, gauge_value(displacement_moment(x, y, P), math.inf)))
    True

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, Sec. 4.
    """
    from .distance import _gauge

    ctx = ArrayContext(x, y, plan)
    x, y, P = ctx.tensor(x, "x"), ctx.tensor(y, "y"), ctx.tensor(plan, "plan")
    check_ndim(x, "x", 2)
    check_ndim(y, "y", 2)
    check_shape(y, "y", (None, x.shape[1]))
    check_shape(P, "plan", (x.shape[0], y.shape[0]))
    check_nonnegative(P, "plan")
    p = check_p(p, low=1.0)
    n_times = check_int(n_times, "n_times", min_value=1)
    i, j = torch.nonzero(P > 0, as_tuple=True)
    w = P[i, j]
    total = ctx.scalar(0.0)
    ts = torch.linspace(0, 1, n_times + 1, dtype=x.dtype, device=x.device)
    for k in range(n_times):
        t0, t1 = float(ts[k]), float(ts[k + 1])
        z0 = (1 - t0) * x[i] + t0 * y[j]
        z1 = (1 - t1) * x[i] + t1 * y[j]
        v = (z1 - z0) / (t1 - t0)
        S = (v * w[:, None]).T @ v
        total = total + (t1 - t0) * _gauge(S, p)
    return ctx.wrap(total)
