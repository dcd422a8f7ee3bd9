"""VarPro and two-timescale training of a mean-field two-layer network (arXiv:2504.18208).

Objective (Sec. 2, with the normalisations of the authors' reference implementation)::

    J(u, W) = 1/(2 lam) * mean_n (f(x_n) - y_n)^2 + 1/2 * mean_j (u_j - c)^2,
    f(x)    = (1/M) sum_j u_j phi(w_j, x),

with c = 0 (``regularization="biased"``, r(u) = u^2) or c = 1 (``"unbiased"``, r(u) = (u-1)^2).
Note the data term is divided by lam: time t of these dynamics is time t/lam of the usual ridge
objective "fit + lam * reg".

*VarPro* (:func:`varpro_train`): at each step u is replaced by the exact minimiser
u*(W) = argmin_u J(u, W) (a ridge regression, :func:`ridge_outer`), then one gradient step is
taken on W alone with u frozen. By the envelope (Danskin) theorem this is the exact gradient of
the reduced objective F(W) = min_u J(u, W) (:func:`reduced_objective`). The learning rate is
M * time_scale, so every particle moves by time_scale x (mean-field velocity); after the step the
features are projected on the domain (sphere or torus). Time after k steps: t = k * time_scale.

*Two-timescale* (:func:`two_timescale_train`): plain simultaneous gradient descent on (u, W),
with learning rate lam * M on u and M * time_scale on W (ratio lam / time_scale), started from
one exact ridge projection. It approximates VarPro when lam / time_scale is large.

Written by hand in torch (Cholesky solves from ``torch.linalg``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
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
    check_shape,
)
from .model import TwoLayer

__all__ = ["TrainResult", "varpro_train", "two_timescale_train", "ridge_outer",
           "reduced_objective", "ridge_readout"]

_CENTER = {"biased": 0.0, "unbiased": 1.0}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainResult(SolverResult):
    """History of a VarPro / two-timescale run (:func:`varpro_train`, :func:`two_timescale_train`).

    Attributes
    ----------
    features : array or Tensor, shape (M, d)
        Final features W (also written into the model).
    outer : array or Tensor, shape (M,)
        Final outer weights u (also written into the model).
    risk : array or Tensor, shape (steps + 1,)
        Objective at steps 0..steps: for VarPro the reduced risk F(W_k) = J(u*(W_k), W_k); for
        two-timescale the loss J(u_k, W_k).
    times : array or Tensor, shape (steps + 1,)
        Time of each entry, k x time_scale.
    snapshot_steps : list of int
        Steps at which the feature distribution was stored.
    snapshots : array or Tensor, shape (S, M, d)
        Features there (the empirical feature measure is (1/M) sum_j delta_(w_j)).
    snapshot_outer : array or Tensor, shape (S, M)
        Outer weights there.
    method : str
    lam, time_scale : float
    regularization : str
        The run's settings.
    converged : bool
        False only if the iterates became non-finite (the run then stops early with a
        ``ConvergenceWarning``): there is no stopping tolerance, the run takes ``steps`` steps.
    n_iter : int
        Steps taken.
    errors : list of float
        The risk trace, as Python floats.
    """

    features: Any
    outer: Any
    risk: Any
    times: Any
    snapshot_steps: list
    snapshots: Any
    snapshot_outer: Any
    method: str
    lam: float
    time_scale: float
    regularization: str


def _ridge(Phi: torch.Tensor, y: torch.Tensor, lam: float, c: float) -> torch.Tensor:
    """Exact minimiser in u of J(u, W) for the feature matrix Phi (N, M).

    Normal equations (K + lam I) u = Phi^T y / N + lam c with K = Phi^T Phi / (N M) when N > M;
    for N <= M the equivalent dual form
    u = c + Phi^T (Phi Phi^T/(N M) + lam I)^{-1} (y - Phi c/M) / N.
    ``y`` is (N,) (u: (M,)) or (N, k) for k outputs sharing the features (u: (M, k)).
    """
    N, M = Phi.shape
    vec = y.ndim == 1
    Y = y[:, None] if vec else y
    eye = torch.eye(min(N, M), dtype=Phi.dtype, device=Phi.device)
    if N > M:
        K = Phi.T @ Phi / (N * M) + lam * eye
        rhs = Phi.T @ Y / N + lam * c
        L = torch.linalg.cholesky(K)
        u = torch.cholesky_solve(rhs, L)
    else:
        G = Phi @ Phi.T / (N * M) + lam * eye
        Yt = Y - Phi.sum(1, keepdim=True) * (c / M) if c else Y
        L = torch.linalg.cholesky(G)
        u = c + Phi.T @ torch.cholesky_solve(Yt, L) / N
    return u[:, 0] if vec else u


def _objective(Phi: torch.Tensor, u: torch.Tensor, y: torch.Tensor, lam: float,
               c: float) -> torch.Tensor:
    M = Phi.shape[1]
    res = Phi @ u / M - y
    return 0.5 / lam * (res * res).mean() + 0.5 * ((u - c) ** 2).mean()


def _check_common(model, x, y, lam, regularization):
    if not isinstance(model, TwoLayer):
        raise InputError(f"model: expected a measureflow.meanfield.TwoLayer, got "
                         f"{type(model).__name__}")
    lam = check_positive(lam, "lam")
    check_choice(regularization, "regularization", ("biased", "unbiased"))
    W = model.features
    ctx = ArrayContext(x, y, dtype=W.dtype, device=W.device)
    xt = ctx.tensor(x, "x")
    check_ndim(xt, "x", 2)
    if xt.shape[1] != model.dim:
        raise InputError(f"x: expected {model.dim} columns (the feature dimension), "
                         f"got {xt.shape[1]}")
    if xt.shape[0] < 1:
        raise InputError("x: needs at least one sample")
    yt = ctx.tensor(y, "y")
    check_shape(yt, "y", (xt.shape[0],))
    return ctx, xt, yt, lam, _CENTER[regularization]


def ridge_outer(model: TwoLayer, x, y, *, lam: float, regularization: str = "biased"):
    """Exact outer weights u*(W) = argmin_u J(u, W) for the model's current features.

    J(u, W) = 1/(2 lam) mean_n (f(x_n) - y_n)^2 + 1/2 mean_j (u_j - c)^2 (module docstring), so
    u* solves (K + lam I) u = Phi^T y / N + lam c with K = Phi^T Phi / (N M) (c = 0 biased,
    1 unbiased), by Cholesky (dual form when N <= M) (arXiv:2504.18208, Sec. 2-3).

    Parameters
    ----------
    model : TwoLayer
        Not modified.
    x : array_like or Tensor, shape (N, d)
    y : array_like or Tensor, shape (N,)
    lam : float
        Ridge strength (> 0).
    regularization : {"biased", "unbiased"}, default "biased"
        r(u) = u^2 (c = 0) or (u - 1)^2 (c = 1).

    Returns
    -------
    array or Tensor, shape (M,)
        Differentiable w.r.t. the features and y for tensor input. NumPy in, NumPy out.

    Raises
    ------
    InputError
        ``model`` not a TwoLayer, bad shapes, ``lam`` <= 0, unknown ``regularization``.

    Examples
    --------
    The gradient of J in u vanishes at u*:

    >>> import torch
    >>> from measureflow.meanfield import ridge_outer
    >>> from measureflow.meanfield import TwoLayer, angles_to_circle, sample_circle_teacher
    >>> X = angles_to_circle(sample_circle_teacher(20, 0.0, seed=1))
    >>> y = TwoLayer(angles_to_circle(sample_circle_teacher(16, 10.0)))(X).detach()
    >>> student = TwoLayer(angles_to_circle(sample_circle_teacher(8, 0.0, seed=2)))
    >>> u = ridge_outer(student, X, y, lam=0.1).requires_grad_(True)
    >>> Phi = student.feature_matrix(X).detach()
    >>> J = 0.5 / 0.1 * ((Phi @ u / 8 - y) ** 2).mean() + 0.5 * (u ** 2).mean()
    >>> float(torch.autograd.grad(J, u)[0].abs().max()) < 1e-12
    True

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 2-3.
    """
    ctx, xt, yt, lam, c = _check_common(model, x, y, lam, regularization)
    return ctx.wrap(_ridge(model.feature_matrix(xt), yt, lam, c))


def ridge_readout(features, targets, *, lam: float, center: float = 0.0):
    """Exact mean-field readout U = argmin_U J(U) for a fixed feature matrix (multi-output).

    J(U) = 1/(2 lam) mean_(n,i) ((Phi U / M)_(n,i) - Y_(n,i))^2 + 1/2 mean_(j,i) (U_(j,i) - c)^2,
    with Phi the (N, M) feature matrix (M features, e.g. the last hidden layer of a network whose
    last layer is the mean-field layer of arXiv:2504.18208, Sec. 6.2) and Y the (N,) or (N, k)
    targets (one-hot classes for k outputs). The outputs share Phi, so each column solves the
    ridge problem of :func:`ridge_outer`: (K + lam I) U = Phi^T Y / N + lam c with
    K = Phi^T Phi / (N M) (Cholesky; dual form when N <= M).

    Parameters
    ----------
    features : array_like or Tensor, shape (N, M)
        Non-empty.
    targets : array_like or Tensor, shape (N,) or (N, k)
    lam : float
        Ridge strength (> 0).
    center : float, default 0.0
        c (0: r(u) = u^2, the "biased" regularisation; 1: "unbiased").

    Returns
    -------
    array or Tensor, shape (M,) or (M, k)
        NumPy in, NumPy out; tensors in, tensors out (differentiable).

    Raises
    ------
    InputError
        Bad shapes, ``lam`` <= 0, non-finite ``center``.

    Examples
    --------
    With Phi = I (N = M = 3) and lam = 1 the optimality condition (u/M - y)/(lam N M) + u/M = 0
    gives u = 0.3 y:

    >>> import numpy as np
    >>> from measureflow.meanfield import ridge_readout
    >>> np.round(ridge_readout(np.eye(3), np.array([1.0, 2.0, 3.0]), lam=1.0), 12).tolist()
    [0.3, 0.6, 0.9]

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 6.2.
    """
    ctx = ArrayContext(features, targets)
    Phi = ctx.tensor(features, "features")
    check_ndim(Phi, "features", 2)
    if Phi.shape[0] < 1 or Phi.shape[1] < 1:
        raise InputError(f"features: expected a non-empty (N, M) matrix, got {tuple(Phi.shape)}")
    Y = ctx.tensor(targets, "targets")
    check_ndim(Y, "targets", (1, 2))
    if Y.shape[0] != Phi.shape[0]:
        raise InputError(f"targets: expected {Phi.shape[0]} rows (one per feature row), got "
                         f"{Y.shape[0]}")
    lam = check_positive(lam, "lam")
    center = check_in_range(center, "center", -math.inf, math.inf, low_open=True, high_open=True)
    return ctx.wrap(_ridge(Phi, Y, lam, center))


def reduced_objective(model: TwoLayer, x, y, *, lam: float, regularization: str = "biased"):
    """Reduced risk F(W) = min_u J(u, W) = J(u*(W), W) (arXiv:2504.18208, Sec. 3).

    Computed with autograd *through* the ridge solve, so ``torch.autograd.grad`` of the result
    w.r.t. ``model.features`` is the full gradient of F; by the envelope theorem it equals the
    gradient of J(u, W) in W at u = u*(W) frozen, the step of :func:`varpro_train`.

    Parameters
    ----------
    model, x, y, lam, regularization :
        As in :func:`ridge_outer`.

    Returns
    -------
    float or Tensor
        A 0-d tensor for tensor input, a float for NumPy input.

    Raises
    ------
    InputError
        As :func:`ridge_outer`.

    Examples
    --------
    The envelope theorem, checked by autograd:

    >>> import torch
    >>> from measureflow.meanfield import TwoLayer, angles_to_circle, sample_circle_teacher
    >>> X = angles_to_circle(sample_circle_teacher(20, 0.0, seed=1))
    >>> y = TwoLayer(angles_to_circle(sample_circle_teacher(16, 10.0)))(X).detach()
    >>> student = TwoLayer(angles_to_circle(sample_circle_teacher(8, 0.0, seed=2)))
    >>> from measureflow.meanfield import reduced_objective, ridge_outer
    >>> (gF,) = torch.autograd.grad(reduced_objective(student, X, y, lam=0.1), student.features)
    >>> u = ridge_outer(student, X, y, lam=0.1).detach()
    >>> Phi = student.feature_matrix(X)
    >>> J = 0.5 / 0.1 * ((Phi @ u / 8 - y) ** 2).mean() + 0.5 * (u ** 2).mean()
    >>> bool(torch.allclose(gF, torch.autograd.grad(J, student.features)[0]))
    True

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 3.
    """
    ctx, xt, yt, lam, c = _check_common(model, x, y, lam, regularization)
    Phi = model.feature_matrix(xt)
    u = _ridge(Phi, yt, lam, c)
    return ctx.wrap(_objective(Phi, u, yt, lam, c))


def _steps_args(steps, time_scale, snapshot_steps):
    steps = check_int(steps, "steps", min_value=0)
    time_scale = check_positive(time_scale, "time_scale")
    if snapshot_steps is None:
        snaps = sorted({0, steps})
    else:
        try:
            snaps = sorted({int(s) for s in snapshot_steps})
        except (TypeError, ValueError):
            raise InputError("snapshot_steps: expected a sequence of integers") from None
        if snaps and (snaps[0] < 0 or snaps[-1] > steps):
            raise InputError(f"snapshot_steps: entries must lie in [0, steps={steps}]")
    return steps, time_scale, snaps


def _finish(ctx, model, W, u, risk, k_done, steps, snaps, snap_W, snap_u, method, lam,
            time_scale, regularization, ok):
    with torch.no_grad():
        model.features.copy_(W)
        model.outer.copy_(u)
    risk = risk[: k_done + 1]
    times = torch.arange(k_done + 1, dtype=risk.dtype, device=risk.device) * time_scale
    kept = [s for s in snaps if s in snap_W]
    empty_W = W.new_zeros((0,) + tuple(W.shape))
    res = TrainResult(
        features=W.clone(), outer=u.clone(), risk=risk, times=times, snapshot_steps=kept,
        snapshots=torch.stack([snap_W[s] for s in kept]) if kept else empty_W,
        snapshot_outer=(torch.stack([snap_u[s] for s in kept]) if kept
                        else u.new_zeros((0, u.numel()))),
        method=method, lam=lam, time_scale=time_scale, regularization=regularization,
        converged=ok, n_iter=k_done, errors=[float(r) for r in risk.tolist()])
    if not ok:
        warnings.warn(f"{method}: iterates became non-finite at step {k_done + 1} of {steps}; "
                      "the result has converged=False (reduce time_scale)", ConvergenceWarning,
                      stacklevel=3)
    return ctx.wrap(res)


def varpro_train(model: TwoLayer, x, y, *, lam: float, steps: int, time_scale: float = 2.0**-10,
                 regularization: str = "biased", momentum: float = 0.0,
                 snapshot_steps: Sequence[int] | None = None) -> TrainResult:
    """VarPro training of the features (arXiv:2504.18208, Alg. 1 / Sec. 3).

    At every step k = 0..steps-1:

    1. exact ridge solve u_k = u*(W_k) (:func:`ridge_outer`); with ``momentum`` m > 0 the
       reference's averaged variant u_k = m u_(k-1) + (1-m) u*(W_k) (m = 0 is exact VarPro);
    2. record the reduced risk F(W_k) = J(u_k, W_k);
    3. gradient step on the features only, with u_k frozen (the envelope gradient of F):
       W <- W - M time_scale grad_W J(u_k, W);
    4. projection on the model's domain (sphere normalisation / torus wrap).

    After the last step u*(W_steps) and F(W_steps) are computed and written into ``model``
    (trained in place). Time units: t = k x time_scale; each particle moves with velocity
    grad_w (u^2 / 2) in the mean-field limit (paper, Sec. 4).

    Parameters
    ----------
    model : TwoLayer
        Modified in place.
    x : array_like or Tensor, shape (N, d)
    y : array_like or Tensor, shape (N,)
        NumPy in gives NumPy arrays in the result.
    lam : float
        Ridge strength (> 0; the data term is divided by lam).
    steps : int
        Number of full-batch steps (>= 0).
    time_scale : float, default 2^-10
        Time per step (the learning rate on W is M x time_scale).
    regularization : {"biased", "unbiased"}, default "biased"
        r(u) = u^2 or (u - 1)^2.
    momentum : float, default 0.0
        Averaging m in [0, 1) of the ridge solutions (the reference's ResNet variant).
    snapshot_steps : sequence of int, optional
        Steps in [0, steps] at which to store the feature distribution (default {0, steps}).

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        As :func:`ridge_outer`, bad ``steps`` / ``time_scale`` / ``momentum`` /
        ``snapshot_steps``.

    Warns
    -----
    ConvergenceWarning
        Non-finite iterates (``converged=False``; reduce ``time_scale``).

    Examples
    --------
    >>> from measureflow.meanfield import TwoLayer, angles_to_circle, sample_circle_teacher
    >>> X = angles_to_circle(sample_circle_teacher(20, 0.0, seed=1))
    >>> y = TwoLayer(angles_to_circle(sample_circle_teacher(16, 10.0)))(X).detach()
    >>> student = TwoLayer(angles_to_circle(sample_circle_teacher(8, 0.0, seed=2)))
    >>> from measureflow.meanfield import varpro_train
    >>> res = varpro_train(student, X, y, lam=0.1, steps=10, time_scale=0.05)
    >>> res.n_iter, res.snapshot_steps, round(float(res.times[-1]), 6)
    (10, [0, 10], 0.5)
    >>> bool((res.risk[1:] < res.risk[:-1]).all())             # the reduced risk decreases
    True

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 3-4.
    """
    ctx, xt, yt, lam, c = _check_common(model, x, y, lam, regularization)
    steps, time_scale, snaps = _steps_args(steps, time_scale, snapshot_steps)
    momentum = check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True)
    M = model.width
    lr = M * time_scale
    W = model.features.detach().clone()
    risk = torch.empty(steps + 1, dtype=W.dtype, device=W.device)
    snap_W, snap_u = {}, {}
    snapset = set(snaps)
    u_prev = None
    ok = True
    k = 0
    for k in range(steps + 1):
        with torch.enable_grad():
            Wg = W.requires_grad_(True)
            Phi = model.feature_matrix(xt, Wg)
            with torch.no_grad():
                u = _ridge(Phi.detach(), yt, lam, c)
                if momentum > 0 and u_prev is not None:
                    u = momentum * u_prev + (1.0 - momentum) * u
                u_prev = u
            res = Phi @ u / M - yt
            data = 0.5 / lam * (res * res).mean()
            (g,) = torch.autograd.grad(data, Wg) if k < steps else (None,)
        W = Wg.detach()
        with torch.no_grad():
            risk[k] = data.detach() + 0.5 * ((u - c) ** 2).mean()
        if k in snapset:
            snap_W[k], snap_u[k] = W.clone(), u.clone()
        if not bool(torch.isfinite(risk[k])):
            ok = False
            break
        if k == steps:
            break
        with torch.no_grad():
            W = model.project(W - lr * g)
        if not bool(torch.isfinite(W).all()):
            ok = False
            break
    return _finish(ctx, model, W, u, risk, k, steps, snaps, snap_W, snap_u, "varpro_train",
                   lam, time_scale, regularization, ok)


def two_timescale_train(model: TwoLayer, x, y, *, lam: float, steps: int,
                        time_scale: float = 2.0**-10, regularization: str = "biased",
                        init_projection: bool = True,
                        snapshot_steps: Sequence[int] | None = None) -> TrainResult:
    """Two-timescale gradient descent on (u, W), the baseline of arXiv:2504.18208 (Sec. 6.1).

    Simultaneous full-batch gradient steps on J(u, W) with learning rate lam x M on the outer
    weights and M x time_scale on the features (the outer/inner ratio is lam / time_scale),
    followed by the projection of the features. It approximates VarPro when lam / time_scale is
    large. ``risk`` records J(u_k, W_k) (not the reduced risk).

    Parameters
    ----------
    model, x, y, lam, steps, time_scale, regularization, snapshot_steps :
        As in :func:`varpro_train`; the model is trained in place.
    init_projection : bool, default True
        Start u at the exact ridge solution u*(W_0), as the reference implementation does;
        otherwise at ``model.outer``.

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        As :func:`varpro_train`.

    Warns
    -----
    ConvergenceWarning
        Non-finite iterates (``converged=False``).

    Examples
    --------
    >>> from measureflow.meanfield import TwoLayer, angles_to_circle, sample_circle_teacher
    >>> X = angles_to_circle(sample_circle_teacher(20, 0.0, seed=1))
    >>> y = TwoLayer(angles_to_circle(sample_circle_teacher(16, 10.0)))(X).detach()
    >>> student = TwoLayer(angles_to_circle(sample_circle_teacher(8, 0.0, seed=2)))
    >>> from measureflow.meanfield import two_timescale_train
    >>> res = two_timescale_train(student, X, y, lam=0.1, steps=10, time_scale=0.05)
    >>> tuple(res.snapshots.shape), bool(res.risk[-1] < res.risk[0])
    ((2, 8, 2), True)

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 6.1.
    """
    ctx, xt, yt, lam, c = _check_common(model, x, y, lam, regularization)
    steps, time_scale, snaps = _steps_args(steps, time_scale, snapshot_steps)
    M = model.width
    lr_w, lr_u = M * time_scale, lam * M
    W = model.features.detach().clone()
    with torch.no_grad():
        u = _ridge(model.feature_matrix(xt, W), yt, lam, c) if init_projection \
            else model.outer.detach().clone()
    risk = torch.empty(steps + 1, dtype=W.dtype, device=W.device)
    snap_W, snap_u = {}, {}
    snapset = set(snaps)
    ok = True
    k = 0
    for k in range(steps + 1):
        with torch.enable_grad():
            Wg = W.requires_grad_(True)
            ug = u.requires_grad_(True)
            J = _objective(model.feature_matrix(xt, Wg), ug, yt, lam, c)
            gW, gu = torch.autograd.grad(J, (Wg, ug)) if k < steps else (None, None)
        W, u = Wg.detach(), ug.detach()
        risk[k] = J.detach()
        if k in snapset:
            snap_W[k], snap_u[k] = W.clone(), u.clone()
        if not bool(torch.isfinite(risk[k])):
            ok = False
            break
        if k == steps:
            break
        with torch.no_grad():
            W = model.project(W - lr_w * gW)
            u = u - lr_u * gu
        if not bool(torch.isfinite(W).all() and torch.isfinite(u).all()):
            ok = False
            break
    return _finish(ctx, model, W, u, risk, k, steps, snaps, snap_W, snap_u,
                   "two_timescale_train", lam, time_scale, regularization, ok)
