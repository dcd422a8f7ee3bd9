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
    """History of a VarPro / two-timescale run.

    Attributes
    ----------
    features, outer:
        Final features W (M, d) and outer weights u (M,) (also written into the model).
    risk:
        (steps + 1,) objective at steps 0..steps: for VarPro the reduced risk
        F(W_k) = J(u*(W_k), W_k); for two-timescale the loss J(u_k, W_k).
    times:
        (steps + 1,) time of each entry, k * time_scale.
    snapshot_steps, snapshots, snapshot_outer:
        Steps at which the feature distribution was stored, features (S, M, d) and outer
        weights (S, M) there (the empirical feature measure is (1/M) sum_j delta_{w_j}).
    method, lam, time_scale, regularization:
        The run's settings.

    There is no stopping tolerance: the run takes ``steps`` steps. ``errors`` holds the same
    risk trace as ``risk`` (as Python floats); ``converged`` is False only if the iterates became
    non-finite (the run then stops early and a ``ConvergenceWarning`` is emitted).
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

    Solves (K + lam I) u = Phi^T y / N + lam c, K = Phi^T Phi / (N M) (c = 0 biased, 1 unbiased),
    by Cholesky (dual form when N <= M). Differentiable w.r.t. the features and y for tensor
    input. NumPy in, NumPy out. The model is not modified.
    """
    ctx, xt, yt, lam, c = _check_common(model, x, y, lam, regularization)
    return ctx.wrap(_ridge(model.feature_matrix(xt), yt, lam, c))


def ridge_readout(features, targets, *, lam: float, center: float = 0.0):
    """Exact mean-field readout U = argmin_U J(U) for a fixed feature matrix (multi-output).

        J(U) = 1/(2 lam) mean_(n,i) ((Phi U / M)_(n,i) - Y_(n,i))^2 + 1/2 mean_(j,i) (U_(j,i) - c)^2

    with Phi the (N, M) feature matrix (M features, e.g. the last hidden layer of a network whose
    last layer is the mean-field layer of arXiv:2504.18208, Sec. 6.2) and Y the (N,) or (N, k)
    targets (one-hot classes for k outputs). The outputs share Phi, so each column solves the
    ridge problem of :func:`ridge_outer`: (K + lam I) U = Phi^T Y / N + lam c with
    K = Phi^T Phi / (N M) (Cholesky; dual form when N <= M). Returns (M,) or (M, k). NumPy in,
    NumPy out; tensors in, tensors out (differentiable). ``center`` is c (0: r(u) = u^2, the
    "biased" regularisation; 1: "unbiased").
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
    w.r.t. ``model.features`` is the full gradient of F (used to check the envelope gradient of
    :func:`varpro_train`). Returns a 0-d tensor for tensor input, a float for NumPy input.
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
       reference's averaged variant u_k = m u_{k-1} + (1-m) u*(W_k) (m = 0 is exact VarPro);
    2. record the reduced risk F(W_k) = J(u_k, W_k);
    3. gradient step on the features only, with u_k frozen (the envelope gradient of F):
       W <- W - M * time_scale * grad_W J(u_k, W);
    4. projection on the model's domain (sphere normalisation / torus wrap).

    After the last step u*(W_steps) and F(W_steps) are computed and written into ``model``
    (trained in place). Time units: t = k * time_scale; each particle moves with velocity
    grad_w (u^2 / 2) in the mean-field limit (paper, Sec. 4).

    Parameters
    ----------
    model: :class:`TwoLayer` (modified in place).
    x, y: data (N, d) and targets (N,). NumPy in gives NumPy arrays in the result.
    lam: ridge strength lam > 0 (the data term is divided by lam).
    steps: number of full-batch steps.
    time_scale: time per step (learning rate on W is M * time_scale). Default 2^-10.
    regularization: ``"biased"`` (r(u) = u^2) or ``"unbiased"`` (r(u) = (u-1)^2).
    momentum: averaging m in [0, 1) of the ridge solutions (reference's ResNet variant).
    snapshot_steps: steps at which to store the feature distribution (default {0, steps}).
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

    Simultaneous full-batch gradient steps on J(u, W) with learning rate lam * M on the outer
    weights and M * time_scale on the features (the outer/inner ratio is lam / time_scale),
    followed by the projection of the features. With ``init_projection`` (default, as in the
    reference implementation) u starts at the exact ridge solution u*(W_0); otherwise at
    ``model.outer``. ``risk`` records J(u_k, W_k) (not the reduced risk). Same arguments and
    result as :func:`varpro_train`; the model is trained in place.
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
