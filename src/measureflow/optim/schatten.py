"""Schatten-p normalized optimizers (Muon = p = inf) as ``torch.optim.Optimizer`` subclasses.

Paper: G. Peyre, arXiv 2604.04891, Sec. 2 and App. B (Muon, Newton-Schulz, momentum): the
discrete step X_{k+1} = X_k + lr * J_p(A_k) of the Schatten-p normalized (spectral Wasserstein)
flow, with A_k a momentum average of the gradients. The matrix LMO J_p comes from
:func:`measureflow.spectral.schatten_lmo`.

Conventions (all documented in docs/spectral.md, "Optimizers"):

* **Matrices.** A parameter with ndim >= 2 is viewed as the matrix (shape[0], prod(shape[1:]))
  (conv kernels flattened per output channel). A parameter with ndim <= 1 (bias, gain, scalar)
  is the 1 x n matrix; it has one singular value, so every Schatten step on it is the gradient
  step (``scale="schatten"``) or the normalized gradient g / |g| (``scale="unit"``).
* **Momentum** (same as ``torch.optim.Muon``): B <- momentum B + (1 - momentum) g (an EMA), the
  step direction is A = (1 - momentum) g + momentum B with ``nesterov=True``, else A = B.
* **Scale.** ``scale="unit"``: the unit-ball LMO of ||.||_{S_2p}, U diag(s^{q-1}) W^T / ||s||_q^{q-1}
  (p = inf: the raw polar factor U W^T, Muon's update). ``scale="schatten"``: the paper's
  trace-scaled step -J_p(A) = ||A||_{S_q}^{2-q} U diag(s^{q-1}) W^T (p = 1: plain momentum SGD).
  Both trace the same paths for p = inf on different clocks.
* **Polar solver** (p = inf): ``"newton_schulz"`` is Keller Jordan's quintic iteration in
  bfloat16 with ``ns_coefficients``/``ns_steps`` exactly as ``torch.optim.Muon`` (it returns
  U S' W^T with S' roughly in [0.5, 1.5], not the exact polar factor); ``"fast"`` is the convergent
  scaled Newton-Schulz of :func:`measureflow.spectral.polar_factor` (full precision); ``"svd"``
  is the SVD reference. For finite p ``"svd"`` or ``"fast"`` (see ``schatten_lmo``).
* **Learning-rate scaling** (``adjust_lr_fn``, as in torch): ``"original"`` multiplies lr by
  sqrt(max(1, A/B)) for an A x B matrix, ``"match_rms_adamw"`` by 0.2 sqrt(max(A, B)), ``"none"``
  by 1. ``None`` means ``"original"`` (torch's default); ``Schatten`` defaults to ``"none"``.
* **Weight decay** is decoupled: X <- (1 - lr * weight_decay) X before the step (unadjusted lr).

Reproducing ``torch.optim.Muon``: ``Muon(params, lr=..., weight_decay=..., momentum=...,
nesterov=..., ns_coefficients=..., eps=..., ns_steps=..., adjust_lr_fn=...)`` with the default
``polar="newton_schulz"`` performs the same floating-point operations as
``torch.optim.Muon`` with the same arguments (defaults included: lr=1e-3, weight_decay=0.1),
so its updates agree to the last bit on CPU for 2-D parameters.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from ..core.errors import InputError
from ..core.validation import check_in_range, check_nonnegative_scalar, check_positive
from ..spectral.schatten import check_p, schatten_lmo

__all__ = ["Schatten", "Muon", "newton_schulz_quintic"]

_NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz_quintic(G: torch.Tensor, coefficients=_NS_COEFFS, steps: int = 5,
                          eps: float = 1e-7) -> torch.Tensor:
    """Keller Jordan's quintic Newton-Schulz "orthogonalization" in bfloat16 (2-D ``G``).

    X <- G / max(||G||_F, eps) (transposed so that rows <= cols), then ``steps`` times
    X <- a X + (b A + c A^2) X with A = X X^T. The coefficients maximise the slope at 0 and the
    iteration does not converge to U W^T (singular values end roughly in [0.5, 1.5]); this is the
    update of ``torch.optim.Muon`` and of the Muon reference, reproduced operation by operation.
    Returns a bfloat16 tensor.
    """
    a, b, c = coefficients
    X = G.bfloat16()
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T
    X.div_(X.norm().clamp(min=eps))
    for _ in range(steps):
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)
        X = torch.addmm(X, B, X, beta=a)
    if tall:
        X = X.T
    return X


def _lr_ratio(adjust_lr_fn: str | None, shape) -> float:
    A, B = shape
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1.0, A / B))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(A, B))
    return 1.0


def _as_matrix(t: torch.Tensor) -> torch.Tensor:
    if t.ndim >= 2:
        return t.reshape(t.shape[0], -1)
    return t.reshape(1, -1)


class Schatten(Optimizer):
    """Schatten-p normalized steps with momentum (arXiv 2604.04891; Muon is p = inf).

    Parameters
    ----------
    params:
        Iterable of parameters or parameter groups.
    lr:
        Learning rate (step size tau of X <- X + tau J).
    p:
        Schatten index of the gauge, in [1/2, inf] (1: gradient descent, inf: Muon).
    momentum, nesterov:
        EMA momentum as in ``torch.optim.Muon`` (see the module docstring); momentum = 0 uses the
        raw gradient.
    weight_decay:
        Decoupled weight decay.
    scale:
        ``"unit"`` (unit-norm update in S_2p; Muon) or ``"schatten"`` (the paper's -J_p).
    polar:
        ``"svd"``, ``"fast"`` or (p = inf only) ``"newton_schulz"``.
    ns_coefficients, ns_steps, eps:
        Parameters of the quintic Newton-Schulz iteration (``polar="newton_schulz"``).
    adjust_lr_fn:
        ``"none"``, ``"original"`` (= ``None``) or ``"match_rms_adamw"``.
    """

    def __init__(self, params, lr: float, p: float = math.inf, momentum: float = 0.95,
                 nesterov: bool = True, weight_decay: float = 0.0, *, scale: str = "unit",
                 polar: str = "svd", ns_coefficients=_NS_COEFFS, ns_steps: int = 5,
                 eps: float = 1e-7, adjust_lr_fn: str | None = "none"):
        if isinstance(lr, torch.Tensor):
            if lr.numel() != 1:
                raise InputError("lr: a tensor learning rate must have one element")
        elif not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
            raise InputError(f"lr: must be a finite number >= 0, got {lr!r}")
        p = check_p(p)
        momentum = check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True)
        weight_decay = check_nonnegative_scalar(weight_decay, "weight_decay")
        eps = check_positive(eps, "eps")
        if not isinstance(nesterov, bool):
            raise InputError(f"nesterov: must be a bool, got {nesterov!r}")
        if scale not in ("unit", "schatten"):
            raise InputError(f"scale: must be 'unit' or 'schatten', got {scale!r}")
        if polar not in ("svd", "fast", "newton_schulz"):
            raise InputError(f"polar: must be 'svd', 'fast' or 'newton_schulz', got {polar!r}")
        if polar == "newton_schulz" and not math.isinf(p):
            raise InputError("polar: 'newton_schulz' computes the p = inf (polar) step only")
        if adjust_lr_fn not in (None, "none", "original", "match_rms_adamw"):
            raise InputError("adjust_lr_fn: must be None, 'none', 'original' or "
                             f"'match_rms_adamw', got {adjust_lr_fn!r}")
        ns_coefficients = tuple(ns_coefficients)
        if len(ns_coefficients) != 3 or not all(
                isinstance(c, (int, float)) and math.isfinite(c) for c in ns_coefficients):
            raise InputError("ns_coefficients: expected three finite numbers (a, b, c)")
        if not (isinstance(ns_steps, int) and 0 <= ns_steps < 100):
            raise InputError(f"ns_steps: must be an integer in [0, 100), got {ns_steps!r}")
        defaults = dict(lr=lr, p=p, momentum=momentum, nesterov=nesterov,
                        weight_decay=weight_decay, scale=scale, polar=polar,
                        ns_coefficients=tuple(ns_coefficients), ns_steps=ns_steps, eps=eps,
                        adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults)

    def _direction(self, A: torch.Tensor, group) -> torch.Tensor:
        """Update direction D (the parameter moves by -lr * D) for the 2-D momentum matrix A."""
        p, scale, polar = group["p"], group["scale"], group["polar"]
        if polar == "newton_schulz":
            D = newton_schulz_quintic(A, group["ns_coefficients"], group["ns_steps"],
                                      group["eps"])
            if scale == "schatten":  # trace-scaled: ||A||_* ~ <D, A>
                D = D.to(A.dtype) * (D.to(A.dtype) * A).sum()
            return D
        J = schatten_lmo(A, p, method=polar)
        if scale == "schatten":
            return -J
        nq = (-(A * J).sum()).clamp_min(0).sqrt()  # ||A||_{S_q} = N(J)
        return torch.where(nq > 0, -J / torch.where(nq > 0, nq, torch.ones_like(nq)),
                           torch.zeros_like(J))

    @torch.no_grad()
    def step(self, closure=None):
        """One step: momentum, Schatten-p direction per matrix, weight decay, update."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            lr = float(lr) if isinstance(lr, torch.Tensor) else lr
            mom, wd = group["momentum"], group["weight_decay"]
            params, grads, bufs = [], [], []
            for prm in group["params"]:
                if prm.grad is None:
                    continue
                if torch.is_complex(prm) or prm.grad.is_sparse:
                    raise RuntimeError("Schatten: complex parameters / sparse gradients "
                                       "are not supported")
                state = self.state[prm]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(
                        prm.grad, memory_format=torch.preserve_format)
                params.append(prm)
                grads.append(prm.grad)
                bufs.append(state["momentum_buffer"])
            if not params:
                continue
            if mom > 0:
                torch._foreach_lerp_(bufs, grads, 1 - mom)
            for prm, g, buf in zip(params, grads, bufs):
                if mom > 0:
                    upd = g.lerp(buf, mom) if group["nesterov"] else buf
                else:
                    upd = g
                A = _as_matrix(upd)
                D = self._direction(A, group)
                ratio = _lr_ratio(group["adjust_lr_fn"], A.shape)
                if wd != 0:
                    prm.mul_(1 - lr * wd)
                prm.add_(D.reshape(prm.shape) if D.shape != prm.shape else D, alpha=-lr * ratio)
        return loss


class Muon(Schatten):
    """Muon = the Schatten p = inf normalized step with momentum, torch-compatible defaults.

    With the default ``polar="newton_schulz"`` and ``scale="unit"``, ``Muon(params, **kw)``
    reproduces ``torch.optim.Muon(params, **kw)`` (same defaults: lr=1e-3, weight_decay=0.1,
    momentum=0.95, nesterov=True, quintic coefficients, 5 steps, eps=1e-7,
    adjust_lr_fn=None = "original"). ``polar="fast"`` / ``"svd"`` use the exact polar factor;
    ``scale="schatten"`` gives the paper's trace-scaled step -J_inf = ||A||_* U W^T.
    Unlike torch's, non-2-D parameters are accepted (1 x n rule of :class:`Schatten`).
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients=_NS_COEFFS, eps: float = 1e-7, ns_steps: int = 5,
                 adjust_lr_fn: str | None = None, *, polar: str = "newton_schulz",
                 scale: str = "unit"):
        super().__init__(params, lr, p=math.inf, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay, scale=scale, polar=polar,
                         ns_coefficients=ns_coefficients, ns_steps=ns_steps, eps=eps,
                         adjust_lr_fn=adjust_lr_fn)
