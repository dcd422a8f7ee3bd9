"""Conservation laws along discrete training trajectories (arXiv 2506.06194 Sec. 5, Thm 2.1).

Gradient *flow* conserves the laws exactly; discrete optimizers do not. This module

* tracks laws along GD / SGD / momentum / Adam trajectories, or along the trajectory of any
  ``torch.optim.Optimizer`` instance (e.g. ``measureflow.optim.Schatten``) of any torch model
  (:func:`track_laws`);
* gives the exact one-step identity for quadratic laws: if h is quadratic and
  <grad h(theta), g> = 0 (g = any minibatch gradient, because h is a law for every dataset),
  then h(theta - tau g) - h(theta) = 1/2 tau^2 g^T Hess h g (:func:`one_step_change`), with
  weight decay (theta <- (1 - tau lam) theta - tau g, h homogeneous quadratic):
  h_new = (1 - tau lam)^2 h + 1/2 tau^2 g^T Hess h g [derived from a degree-2 Taylor expansion;
  this is the mechanism behind the O(sum tau_k^2) bound of arXiv 2506.06194 Prop. 5.1];
* rescales laws for weight decay: under theta' + lambda(t) theta = -grad L, the conserved
  functions are H(theta exp(Lambda(t))), Lambda(t) = int_0^t lambda (arXiv 2506.06194 Thm 2.1)
  (:func:`weight_decay_rescaling`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import jvp

from ..core import (
    InputError,
    check_choice,
    check_int,
    check_nonnegative_scalar,
    check_positive,
    check_tensor_kind,
)

__all__ = ["DriftResult", "track_laws", "one_step_change", "weight_decay_rescaling"]


@dataclasses.dataclass(frozen=True)
class DriftResult:
    """Laws along a trajectory (result of :func:`track_laws`).

    Attributes
    ----------
    values : torch.Tensor, shape (n_steps + 1, n_laws)
        Law values at theta_0..theta_K.
    losses : torch.Tensor, shape (n_steps,)
        Minibatch losses at the iterates where the steps were taken.
    abs_drift : torch.Tensor, shape (n_steps + 1, n_laws)
        |h(theta_k) - h(theta_0)| per law.
    relative_drift : torch.Tensor, shape (n_steps + 1,)
        |h(theta_k) - h(theta_0)|_2 / |h(theta_0)|_2.
    sum_relative_drift : torch.Tensor, shape (n_steps + 1,)
        |H_k - H_0| / |H_0| for H = sum of the laws (the quantity of arXiv 2506.06194 Fig. 1,
        eq. 17).
    grad_sq_norms : torch.Tensor, shape (n_steps,)
        Squared norm of the minibatch gradient at each step (the C_L of Prop. 5.1 along the
        run).
    optimizer : str
        The optimizer's class name.
    """

    values: torch.Tensor
    losses: torch.Tensor
    abs_drift: torch.Tensor
    relative_drift: torch.Tensor
    sum_relative_drift: torch.Tensor
    grad_sq_norms: torch.Tensor
    optimizer: str


def _make_optimizer(kind: str, params, lr, momentum, betas, weight_decay):
    if kind in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if kind == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)


def track_laws(model: nn.Module, laws: Callable[[nn.Module], torch.Tensor],
               loss_fn: Callable[[nn.Module, Any], torch.Tensor], batches, *,
               optimizer: str | torch.optim.Optimizer = "sgd", lr: float = 1e-2,
               n_steps: int | None = None, momentum: float = 0.9,
               betas: tuple = (0.9, 0.999), weight_decay: float = 0.0,
               lr_schedule: Callable[[int], float] | None = None) -> DriftResult:
    """Train ``model`` in place and record ``laws(model)`` after every step.

    Gradient flow conserves the laws exactly; a discrete step changes a quadratic law by
    O(lr^2 |grad|^2) (arXiv 2506.06194, Sec. 5, Prop. 5.1): this records that drift.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place.
    laws : callable
        model -> tensor of law values (flattened), e.g.
        :func:`~measureflow.conservation.architectures.mlp_laws_torch`.
    loss_fn : callable
        (model, batch) -> scalar loss (a non-finite loss raises).
    batches : sequence, iterable or callable
        Non-empty batches (GD: pass the full batch each time), cycled, or a callable k ->
        batch.
    optimizer : {"gd", "sgd", "momentum", "adam"} or torch.optim.Optimizer, default "sgd"
        Plain steps, heavy ball (``momentum``), Adam (``betas``), or any optimizer instance
        already built on the model's parameters (then ``lr``/``momentum``/``betas``/
        ``weight_decay`` are ignored).
    lr : float, default 1e-2
        Learning rate (> 0).
    n_steps : int, optional
        Number of steps (default ``len(batches)``; required with a callable).
    momentum : float, default 0.9
    betas : (float, float), default (0.9, 0.999)
        Adam's, each in [0, 1).
    weight_decay : float, default 0.0
    lr_schedule : callable, optional
        k -> factor; step k uses the learning rate factor * (the optimizer's initial lr), e.g.
        ``lambda k: 1 / (k + 1)`` for the decaying steps tau_k = tau_0 / (k + 1) of arXiv
        2506.06194 Prop. 5.1.

    Returns
    -------
    DriftResult

    Raises
    ------
    InputError
        ``model`` not a Module, non-callable ``laws`` / ``loss_fn`` / ``lr_schedule``, an
        unknown optimizer, bad ``lr`` / ``betas`` / ``weight_decay`` / ``n_steps``, empty
        ``batches``, a non-finite loss.

    Examples
    --------
    The drift of the ReLU laws shrinks like lr^2 at a fixed horizon lr x n_steps:

    >>> import torch
    >>> from measureflow.conservation.architectures import mlp_laws_torch
    >>> from measureflow.conservation.drift import track_laws
    >>> def make():
    ...     torch.manual_seed(0)
    ...     return torch.nn.Sequential(torch.nn.Linear(2, 3, bias=False), torch.nn.ReLU(),
    ...                                torch.nn.Linear(3, 1, bias=False)).double()
    >>> X = torch.linspace(-1, 1, 32, dtype=torch.float64).reshape(16, 2)
    >>> y = X[:, :1] ** 2
    >>> loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
    >>> big = track_laws(make(), mlp_laws_torch, loss, [(X, y)], n_steps=10, lr=0.1)
    >>> small = track_laws(make(), mlp_laws_torch, loss, [(X, y)], n_steps=100, lr=0.01)
    >>> big.values.shape, big.optimizer, bool(small.relative_drift[-1] < big.relative_drift[-1])
    (torch.Size([11, 3]), 'SGD', True)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Sec. 5.
    """
    if not isinstance(model, nn.Module):
        raise InputError("model: expected a torch.nn.Module")
    if not callable(laws):
        raise InputError("laws: expected a callable model -> tensor")
    if not callable(loss_fn):
        raise InputError("loss_fn: expected a callable (model, batch) -> loss")
    if isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    else:
        kind = check_choice(optimizer, "optimizer", ("gd", "sgd", "momentum", "adam"))
        lr = check_positive(lr, "lr")
        weight_decay = check_nonnegative_scalar(weight_decay, "weight_decay")
        momentum = check_nonnegative_scalar(momentum, "momentum")
        try:
            betas = tuple(float(b) for b in betas)
        except (TypeError, ValueError):
            betas = ()
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise InputError("betas: expected two numbers in [0, 1)")
        opt = _make_optimizer(kind, model.parameters(), lr, momentum, betas, weight_decay)
    if callable(batches):
        if n_steps is None:
            raise InputError("n_steps: required when batches is a callable")
        get = batches
    else:
        seq = list(batches) if not isinstance(batches, (list, tuple)) else batches
        if n_steps is None:
            n_steps = len(seq)
        if len(seq) == 0:
            raise InputError("batches: empty")
        get = lambda k: seq[k % len(seq)]
    n_steps = check_int(n_steps, "n_steps", min_value=0)
    if lr_schedule is not None and not callable(lr_schedule):
        raise InputError("lr_schedule: expected a callable k -> learning-rate factor")
    base_lrs = [grp["lr"] for grp in opt.param_groups]

    def snap():
        with torch.no_grad():
            return laws(model).detach().reshape(-1).clone()

    vals = [snap()]
    losses, gsq = [], []
    for k in range(n_steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, get(k))
        if not torch.isfinite(loss):
            raise InputError(f"loss_fn: non-finite loss at step {k}")
        loss.backward()
        gsq.append(sum(float((p.grad.detach() ** 2).sum()) for p in model.parameters()
                       if p.grad is not None))
        if lr_schedule is not None:
            f = check_positive(lr_schedule(k), "lr_schedule")
            for grp, lr0 in zip(opt.param_groups, base_lrs):
                grp["lr"] = lr0 * f
        opt.step()
        losses.append(float(loss.detach()))
        vals.append(snap())
    V = torch.stack(vals)
    ad = (V - V[0]).abs()
    n0 = V[0].norm()
    rel = (V - V[0]).norm(dim=1) / n0 if n0 > 0 else (V - V[0]).norm(dim=1)
    s0 = V[0].sum()
    srel = (V.sum(1) - s0).abs() / s0.abs() if s0 != 0 else (V.sum(1) - s0).abs()
    return DriftResult(values=V, losses=torch.tensor(losses, dtype=V.dtype), abs_drift=ad,
                       relative_drift=rel, sum_relative_drift=srel,
                       grad_sq_norms=torch.tensor(gsq, dtype=V.dtype),
                       optimizer=type(opt).__name__)


def one_step_change(law: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor,
                    grad: torch.Tensor, lr: float, *, weight_decay: float = 0.0) -> torch.Tensor:
    """Predicted change h(theta') - h(theta) of a quadratic law over one step.

    theta' = (1 - lr * weight_decay) theta - lr * grad. For a quadratic law h with
    <grad h(theta), grad> = 0 the change is exactly 1/2 lr^2 grad^T Hess h(theta) grad; with
    weight decay (h homogeneous quadratic) it is ((1 - lr wd)^2 - 1) h(theta) +
    1/2 lr^2 grad^T Hess h grad [derived from a degree-2 Taylor expansion; the mechanism
    behind arXiv 2506.06194 Prop. 5.1]. The Hessian term is a second directional derivative
    by nested ``torch.func.jvp``.

    Parameters
    ----------
    law : callable
        Maps the flat parameters to a scalar or a vector of laws.
    theta, grad : torch.Tensor, shape (D,)
        Finite tensors of the same shape (``grad`` is cast to theta's dtype).
    lr : float
        Step size (> 0).
    weight_decay : float, default 0.0
        Decoupled weight decay (>= 0).

    Returns
    -------
    torch.Tensor
        The change, shaped like ``law(theta)``.

    Raises
    ------
    InputError
        ``law`` not callable, ``theta`` / ``grad`` not tensors, of different shapes or
        non-finite, bad ``lr`` / ``weight_decay``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.drift import one_step_change
    >>> law = lambda t: t[0] ** 2 - t[1] ** 2
    >>> theta = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> grad = torch.tensor([2.0, 1.0], dtype=torch.float64)   # <grad h, grad> = 0
    >>> pred = one_step_change(law, theta, grad, 0.1)
    >>> round(float(pred), 6), bool(torch.isclose(pred, law(theta - 0.1 * grad) - law(theta)))
    (0.03, True)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Prop. 5.1.
    """
    if not callable(law):
        raise InputError("law: expected a callable on flat parameters")
    if not isinstance(theta, torch.Tensor) or not isinstance(grad, torch.Tensor):
        raise InputError("theta, grad: expected torch tensors")
    check_tensor_kind(theta, "theta")
    check_tensor_kind(grad, "grad")
    grad = grad.to(theta.dtype)  # theta fixes the dtype (the core's rule)
    if theta.shape != grad.shape:
        raise InputError(f"grad: shape {tuple(grad.shape)} differs from theta "
                         f"{tuple(theta.shape)}")
    for x, nm in ((theta, "theta"), (grad, "grad")):
        if not bool(torch.isfinite(x.detach()).all()):
            raise InputError(f"{nm}: contains NaN or Inf")
    lr = check_positive(lr, "lr")
    weight_decay = check_nonnegative_scalar(weight_decay, "weight_decay")
    th, g = theta.detach(), grad.detach()
    first = lambda t: jvp(law, (t,), (g,))[1]
    second = jvp(first, (th,), (g,))[1]
    change = 0.5 * lr * lr * second
    if weight_decay:
        change = change + ((1 - lr * weight_decay) ** 2 - 1) * law(th)
    return change


def weight_decay_rescaling(law: Callable[[torch.Tensor], torch.Tensor],
                           weight_decay: float | Callable[[float], float]) -> Callable:
    """The conserved function under gradient flow with weight decay (arXiv 2506.06194 Thm 2.1).

    Under theta' + lambda(t) theta = -grad L the function h_t(theta) = law(theta exp(Lambda(t))),
    Lambda(t) = int_0^t lambda, is conserved. For a homogeneous quadratic law this is
    exp(2 Lambda(t)) law(theta).

    Parameters
    ----------
    law : callable
        A law of the flow without weight decay (flat torch parameters -> value).
    weight_decay : float or callable
        A constant rate lambda >= 0 (then Lambda(t) = lambda t), or Lambda itself as a callable
        t -> float (the integral of a time-varying rate).

    Returns
    -------
    callable
        ``h_t(theta, t)``.

    Raises
    ------
    InputError
        ``law`` not callable, a negative constant ``weight_decay``.

    Examples
    --------
    >>> import math
    >>> import torch
    >>> from measureflow.conservation.drift import weight_decay_rescaling
    >>> law = lambda t: t[0] ** 2 - t[1] ** 2
    >>> h = weight_decay_rescaling(law, 0.5)
    >>> theta = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> bool(torch.isclose(h(theta, 1.0), math.e * law(theta)))   # exp(2 x 0.5 x 1)
    True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Thm 2.1.
    """
    if not callable(law):
        raise InputError("law: expected a callable on flat parameters")
    if callable(weight_decay):
        Lam = weight_decay
    else:
        lam = check_nonnegative_scalar(weight_decay, "weight_decay")
        Lam = lambda t: lam * t

    def h_t(theta: torch.Tensor, t: float) -> torch.Tensor:
        return law(theta * torch.exp(torch.as_tensor(Lam(t), dtype=theta.dtype)))

    return h_t
