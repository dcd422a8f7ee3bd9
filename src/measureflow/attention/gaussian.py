"""Closed-form attention of a Gaussian measure and the Gaussian moment ODEs of the Transformer PDE.

For mu = N(alpha, Sigma) the softmax, multi-head, L2 and Sinkhorn attention maps are affine,
Gamma_mu(x) = b + J (x - alpha), so the Transformer PDE d_t mu + div(mu Gamma_mu) = 0 keeps
Gaussians Gaussian with

    d alpha / dt = b = Gamma_mu(alpha),      d Sigma / dt = J Sigma + Sigma J^T.

Castin, Ablin, Carrillo, Peyre, arXiv:2501.18322 (Sec. 4, Gaussian initial data). The
formulas below were derived by hand (Gaussian tilting; Gaussian entropic OT) and are checked
against Monte Carlo and against our Sinkhorn solver in the tests. Per head j with
A_j = K_j^T Q_j and output map C_j (see :mod:`measureflow.attention._heads`):

* softmax:  J_j = C_j Sigma A_j,   b_j = C_j (alpha + Sigma A_j alpha)
  (tilting N(alpha, Sigma) by e^{y^T A x} gives N(alpha + Sigma A x, Sigma)).
* L2 (score -|Qx - Ky|^2):  M_j = I + 2 Sigma K_j^T K_j,
  J_j = 2 C_j M_j^{-1} Sigma K_j^T Q_j,   b_j = C_j M_j^{-1} (alpha + 2 Sigma K_j^T Q_j alpha).
* Sinkhorn (regularisation eps, B_j = A_j / eps):
  N_j = Sigma^{1/2} B_j Sigma B_j^T Sigma^{1/2},  R_j = 2 (I + (I + 4 N_j)^{1/2})^{-1},
  J_j = C_j Sigma^{1/2} R_j Sigma^{1/2} B_j,   b_j = C_j alpha.
  (The conditional y | x of the Gaussian plan has covariance S = Sigma^{1/2} R Sigma^{1/2},
  the solution of S B Sigma B^T S + S = Sigma; no inverse of A or Sigma is needed; for small A
  it reduces to the softmax J.)
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..core import (
    ArrayContext,
    InputError,
    check_choice,
    check_int,
    check_positive,
    report_convergence,
)
from ..core.linalg import sqrtm_psd, sym
from ..ot.integrate import FlowResult, ode_step, project_psd, result_alias, symmetrize
from ._heads import split_heads

__all__ = ["GAUSSIAN_KINDS", "gaussian_affine_map", "gaussian_velocity", "integrate_gaussian",
           "GaussianFlowResult"]

#: attention kinds with a closed-form Gaussian map (:func:`gaussian_affine_map`)
GAUSSIAN_KINDS = ("softmax", "multihead", "l2", "sinkhorn")


def _affine(mean, cov, Qh, Kh, Ch, kind, eps):
    """Batched core: mean (..., d), cov (..., d, d), Qh/Kh (..., h, k, d), Ch (..., h, o, d)."""
    d = cov.shape[-1]
    S = cov.unsqueeze(-3)                        # (..., 1, d, d)
    al = mean.unsqueeze(-2).unsqueeze(-1)         # (..., 1, d, 1)
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    if kind in ("softmax", "multihead"):
        A = Kh.transpose(-1, -2) @ Qh             # (..., h, d, d)
        J = Ch @ S @ A
        b = Ch @ (al + S @ A @ al)
    elif kind == "l2":
        KK = Kh.transpose(-1, -2) @ Kh
        KQ = Kh.transpose(-1, -2) @ Qh
        M = eye + 2.0 * S @ KK
        J = 2.0 * Ch @ torch.linalg.solve(M, S @ KQ)
        b = Ch @ torch.linalg.solve(M, al + 2.0 * S @ KQ @ al)
    else:  # sinkhorn
        B = (Kh.transpose(-1, -2) @ Qh) / eps
        Sh = sqrtm_psd(cov).unsqueeze(-3)
        N = sym(Sh @ B @ S @ B.transpose(-1, -2) @ Sh)
        R = 2.0 * torch.linalg.inv(eye + sqrtm_psd(eye + 4.0 * N))
        J = Ch @ Sh @ R @ Sh @ B
        b = Ch @ al
    return b.sum(-3).squeeze(-1), J.sum(-3)


def _parse(mean, cov, Q, K, V, kind, heads, eps, ctx):
    kind = check_choice(kind, "kind", GAUSSIAN_KINDS)
    m = ctx.tensor(mean, "mean")
    S = ctx.tensor(cov, "cov")
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise InputError(f"cov: expected square matrices (..., d, d), got shape {tuple(S.shape)}")
    d = S.shape[-1]
    if m.shape[-1:] != (d,):
        raise InputError(f"mean: expected shape (..., {d}), got {tuple(m.shape)}")
    Sd = S.detach()
    if float((Sd - Sd.transpose(-1, -2)).abs().max()) > 1e-8 * max(float(Sd.abs().max()), 1e-300):
        raise InputError("cov: matrix is not symmetric")
    ev = torch.linalg.eigvalsh(sym(Sd))
    if float(ev.min()) < -1e-8 * max(float(ev.abs().max()), 1e-300):
        raise InputError(f"cov: not positive semi-definite (smallest eigenvalue "
                         f"{float(ev.min()):.3g})")
    Qt, Kt, Vt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K"), ctx.tensor(V, "V")
    Qh, Kh, Ch = split_heads(Qt, Kt, Vt, heads, d, batch=True)
    eps = check_positive(eps, "eps")
    return kind, m, S, Qh, Kh, Ch, eps


def gaussian_affine_map(mean, cov, Q, K, V, kind="softmax", heads=1, eps=1.0):
    """Affine attention map of mu = N(mean, cov): Gamma_mu(x) = offset + J (x - mean).

    For a Gaussian measure the softmax, multi-head, L2 and Sinkhorn attention maps are affine
    (Gaussian tilting; Gaussian entropic OT). Softmax: J = V Sigma A, offset = V (alpha + Sigma A
    alpha); the other kinds are in the module docstring (arXiv:2501.18322, Sec. 4; derived and
    checked against Monte Carlo and the Sinkhorn solver).

    Parameters
    ----------
    mean : array_like or Tensor, shape (..., d)
    cov : array_like or Tensor, shape (..., d, d)
        Symmetric PSD.
    Q, K : array_like or Tensor, shape (k, d)
        Score <Q x, K y> = y^T A x, A = K^T Q (no hidden 1/sqrt(d)); ``heads`` splits the rows.
    V : array_like or Tensor, shape (d_out, d)
        Output map (rows split per head with ``heads`` > 1).
    kind : {"softmax", "multihead", "l2", "sinkhorn"}, default "softmax"
    heads : int, default 1
    eps : float, default 1.0
        Entropic regularisation of the Sinkhorn kind (> 0).

    Returns
    -------
    (array or Tensor, array or Tensor)
        ``(offset, J)``: offset = Gamma_mu(mean) of shape (..., d_out), J of shape
        (..., d_out, d). Leading batch dimensions of mean/cov/Q/K/V broadcast.

    Raises
    ------
    InputError
        Bad shapes, a non-symmetric or non-PSD ``cov``, an unknown ``kind``, ``eps`` <= 0.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.attention import gaussian_affine_map
    >>> offset, J = gaussian_affine_map(np.ones(2), 0.5 * np.eye(2), np.eye(2), np.eye(2),
    ...                                 np.eye(2))
    >>> offset.tolist(), J.tolist()                     # alpha + Sigma alpha, Sigma
    ([1.5, 1.5], [[0.5, 0.0], [0.0, 0.5]])

    For small scores the Sinkhorn map reduces to the softmax one:

    >>> Js = gaussian_affine_map(np.zeros(2), np.eye(2), 1e-3 * np.eye(2), np.eye(2), np.eye(2),
    ...                          kind="sinkhorn")[1]
    >>> bool(np.allclose(Js, 1e-3 * np.eye(2), rtol=1e-5))
    True

    References
    ----------
    V. Castin, P. Ablin, J. A. Carrillo, G. Peyre, "A unified perspective on the dynamics of
    deep Transformers", arXiv:2501.18322, Sec. 4.
    """
    ctx = ArrayContext(mean, cov, Q, K, V)
    kind, m, S, Qh, Kh, Ch, eps = _parse(mean, cov, Q, K, V, kind, heads, eps, ctx)
    return ctx.wrap(_affine(m, S, Qh, Kh, Ch, kind, eps))


def gaussian_velocity(mean, cov, Q, K, V, kind="softmax", heads=1, eps=1.0):
    """Right-hand side of the Gaussian moment ODEs of the Transformer PDE.

    For mu = N(alpha, Sigma), d_t mu + div(mu Gamma_mu) = 0 keeps mu Gaussian with
    d alpha/dt = Gamma_mu(alpha) and d Sigma/dt = J Sigma + Sigma J^T, J the Jacobian of the
    affine map (:func:`gaussian_affine_map`; arXiv:2501.18322, Sec. 4).

    Parameters
    ----------
    mean, cov, Q, K, V, kind, heads, eps :
        As in :func:`gaussian_affine_map`; V must map R^d to R^d (square per head).

    Returns
    -------
    (array or Tensor, array or Tensor)
        ``(mean_dot, cov_dot)``, shapes (..., d) and (..., d, d). NumPy in -> NumPy out, tensor
        in -> tensor out (autograd kept).

    Raises
    ------
    InputError
        As :func:`gaussian_affine_map`, and V not square.

    Examples
    --------
    Softmax with Q = K = V = I at N(0, I): J = I, so cov_dot = 2 I:

    >>> import numpy as np
    >>> from measureflow.attention import gaussian_velocity
    >>> mean_dot, cov_dot = gaussian_velocity(np.zeros(2), np.eye(2), np.eye(2), np.eye(2),
    ...                                       np.eye(2))
    >>> mean_dot.tolist(), cov_dot.tolist()
    ([0.0, 0.0], [[2.0, 0.0], [0.0, 2.0]])

    References
    ----------
    V. Castin, P. Ablin, J. A. Carrillo, G. Peyre, "A unified perspective on the dynamics of
    deep Transformers", arXiv:2501.18322, Sec. 4.
    """
    ctx = ArrayContext(mean, cov, Q, K, V)
    kind, m, S, Qh, Kh, Ch, eps = _parse(mean, cov, Q, K, V, kind, heads, eps, ctx)
    if Ch.shape[-2] != S.shape[-1]:
        raise InputError(f"V: must map R^d to R^d for a flow (got {Ch.shape[-2]} output rows)")
    b, J = _affine(m, S, Qh, Kh, Ch, kind, eps)
    JS = J @ S
    return ctx.wrap((b, JS + JS.transpose(-1, -2)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianFlowResult(FlowResult):
    """Trajectory of the Gaussian moment ODEs (result of :func:`integrate_gaussian`).

    Attributes
    ----------
    times : array or Tensor, shape (T_rec,)
    trajectory : (array or Tensor, array or Tensor)
        Recorded means (T_rec, ..., d) and covariances (T_rec, ..., d, d) (every
        ``record_every`` steps plus the final one).
    final : (array or Tensor, array or Tensor)
        Last (mean, cov) of each member.
    status : str or list of str
        Per member: ``"converged"`` (|cov_dot|_F < tol), ``"blow-up"`` (trace cov > blowup),
        ``"final_time"`` (reached T) or ``"max_iter"``.
    stop_iter : int or Tensor
        Step at which each member stopped.
    converged : bool
        Every member has status "converged" or "final_time".
    n_iter : int
    errors : list of float
        Max over members of |cov_dot|_F at each recorded step.
    means, covs, final_mean, final_cov :
        Aliases of the components of ``trajectory`` and ``final``.
    """

    status: object = None
    stop_iter: object = None
    means = result_alias("trajectory", 0)
    covs = result_alias("trajectory", 1)
    final_mean = result_alias("final", 0)
    final_cov = result_alias("final", 1)


def integrate_gaussian(mean, cov, Q, K, V, kind="softmax", heads=1, eps=1.0, *, step=0.01,
                       T=None, max_iter=10000, tol=1e-6, blowup=1e3, method="rk4",
                       record_every=1) -> GaussianFlowResult:
    """Integrate the Gaussian moment ODEs d alpha/dt = b, d Sigma/dt = J Sigma + Sigma J^T.

    Steps by :func:`measureflow.ot.integrate.ode_step`: ``method="rk4"`` (classical Runge-Kutta,
    then symmetrised) or ``"projected_euler"`` (Sigma <- Sigma + step x rhs, then projection onto
    the PSD cone, eigenvalues clamped at 1e-14: the reference implementation's scheme). Each
    member of a batch (leading dims of cov) stops, and is frozen, at the first of:
    |cov_dot|_F < ``tol`` ("converged"), trace Sigma > ``blowup`` ("blow-up"), time ``T``
    reached ("final_time", if T is given), ``max_iter`` steps ("max_iter"). With T: ceil(T / step)
    steps of size T / ceil(T / step). arXiv:2501.18322, Sec. 4 and its 2-D / histogram
    experiments.

    Parameters
    ----------
    mean, cov, Q, K, V, kind, heads, eps :
        As in :func:`gaussian_velocity`.
    step : float, default 0.01
        Time step (> 0).
    T : float, optional
        Final time (> 0); None: run until every member stops.
    max_iter : int, default 10000
    tol : float, default 1e-6
        Stationarity threshold on |cov_dot|_F (> 0).
    blowup : float, default 1e3
        Blow-up threshold on trace Sigma (> 0).
    method : {"rk4", "projected_euler"}, default "rk4"
    record_every : int, default 1

    Returns
    -------
    GaussianFlowResult

    Raises
    ------
    InputError
        As :func:`gaussian_velocity`, bad scalars or ``method``.

    Warns
    -----
    ConvergenceWarning
        A member reached ``max_iter`` without T given.

    Examples
    --------
    Softmax with A = a I, V = I at N(0, s I): J = a s I, so s' = 2 a s^2,
    s(t) = s0 / (1 - 2 a s0 t); with a = 0.1, s0 = 1, s(1) = 1.25:

    >>> import numpy as np
    >>> from measureflow.attention import integrate_gaussian
    >>> res = integrate_gaussian(np.zeros(2), np.eye(2), 0.1 * np.eye(2), np.eye(2), np.eye(2),
    ...                          T=1.0, step=0.1)
    >>> res.status, np.round(res.final_cov, 6).tolist(), res.times.shape
    ('final_time', [[1.25, 0.0], [0.0, 1.25]], (11,))

    References
    ----------
    V. Castin, P. Ablin, J. A. Carrillo, G. Peyre, "A unified perspective on the dynamics of
    deep Transformers", arXiv:2501.18322, Sec. 4.
    """
    ctx = ArrayContext(mean, cov, Q, K, V)
    kind, m, S, Qh, Kh, Ch, eps = _parse(mean, cov, Q, K, V, kind, heads, eps, ctx)
    method = check_choice(method, "method", ("rk4", "projected_euler"))
    step = check_positive(step, "step")
    tol = check_positive(tol, "tol")
    blowup = check_positive(blowup, "blowup")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    record_every = check_int(record_every, "record_every", min_value=1)
    d = S.shape[-1]
    if Ch.shape[-2] != d:
        raise InputError(f"V: must map R^d to R^d for a flow (got {Ch.shape[-2]} output rows)")
    if T is not None:
        T = check_positive(T, "T")
        n_steps = max(1, math.ceil(T / step - 1e-12))
        step = T / n_steps
        max_iter = n_steps
    batch = torch.broadcast_shapes(S.shape[:-2], m.shape[:-1], Qh.shape[:-3], Ch.shape[:-3])
    S = S.expand(*batch, d, d).clone()
    m = m.expand(*batch, d).clone()

    def rhs(t, state):
        b, J = _affine(state[0], state[1], Qh, Kh, Ch, kind, eps)
        JS = J @ state[1]
        return b, JS + JS.transpose(-1, -2)

    active = torch.ones(batch, dtype=torch.bool, device=S.device)
    status = torch.full(batch, 3, dtype=torch.long, device=S.device)  # 3 = max_iter / final
    stop_iter = torch.full(batch, max_iter, dtype=torch.long, device=S.device)
    times, means, covs, errors = [0.0], [m.clone()], [S.clone()], []
    t = 0.0
    it = 0
    for it in range(1, max_iter + 1):
        bm, dS = rhs(t, (m, S))
        err = torch.linalg.matrix_norm(dS)
        done_conv = active & (err < tol)
        if bool(done_conv.any()):
            status[done_conv] = 0
            stop_iter[done_conv] = it - 1
            active = active & ~done_conv
        if not bool(active.any()):
            it -= 1
            if times[-1] != t:                # record the final state whatever record_every
                times.append(t)
                means.append(m.clone())
                covs.append(S.clone())
                errors.append(float(err.max()) if err.numel() else 0.0)
            break
        m_new, S_new = ode_step(rhs, t, (m, S), step, "euler" if method == "projected_euler"
                                else "rk4", k1=(bm, dS))
        S_new = project_psd(S_new) if method == "projected_euler" else symmetrize(S_new)
        finite = torch.isfinite(S_new).all(-1).all(-1) & torch.isfinite(m_new).all(-1)
        take = active & finite                    # non-finite members keep their last state
        m = torch.where(take[..., None], m_new, m)
        S = torch.where(take[..., None, None], S_new, S)
        t += step
        tr = torch.diagonal(S, dim1=-2, dim2=-1).sum(-1)
        blown = active & (~finite | (tr > blowup))
        if bool(blown.any()):
            status[blown] = 1
            stop_iter[blown] = it
            active = active & ~blown
        if it % record_every == 0 or not bool(active.any()) or it == max_iter:
            times.append(t)
            means.append(m.clone())
            covs.append(S.clone())
            errors.append(float(err.max()) if err.numel() else 0.0)
        if not bool(active.any()):
            break
    if T is not None:
        status[status == 3] = 2
    names = ["converged", "blow-up", "final_time", "max_iter"]
    st_list = [names[int(s)] for s in status.reshape(-1)]
    st = st_list[0] if len(batch) == 0 else st_list
    n_max = sum(s == "max_iter" for s in st_list)
    converged = n_max == 0 and all(s in ("converged", "final_time") for s in st_list)
    if n_max:
        report_convergence(False, "integrate_gaussian", it, errors[-1] if errors else math.nan,
                           tol)
    res = GaussianFlowResult(
        times=torch.tensor(times, dtype=S.dtype, device=S.device),
        trajectory=(torch.stack(means), torch.stack(covs)), final=(m, S), status=st,
        stop_iter=int(stop_iter) if len(batch) == 0 else stop_iter,
        converged=converged, n_iter=it, errors=errors)
    return ctx.wrap(res)
