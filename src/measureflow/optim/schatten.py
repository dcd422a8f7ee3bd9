"""Schatten-p normalized optimizers (Muon = p = inf) as ``torch.optim.Optimizer`` subclasses.

Paper: G. Peyre, arXiv 2604.04891, Sec. 2 and App. B (Muon, Newton-Schulz, momentum): the
discrete step X_{k+1} = X_k + lr * J_p(A_k) of the Schatten-p normalized (spectral Wasserstein)
flow, with A_k a momentum average of the gradients. The matrix LMO J_p comes from
:func:`measureflow.spectral.schatten_lmo`.

Conventions (all documented in docs/spectral.md, "Optimizers"):

* **Matrices.** A parameter with ndim >= 2 is viewed as the matrix (shape[0], prod(shape[1:]))
  (conv kernels flattened per output channel). A parameter with ndim <= 1 (bias, gain, scalar)
  is the 1 x n matrix. A matrix with a side of length 1 has one singular value, so every
  Schatten step on it is exactly the gradient step (``scale="schatten"``) or the normalized
  gradient g / |g| (``scale="unit"``), whatever ``polar`` (no iteration is run: the quintic
  Newton-Schulz would return about 0.69 g / |g|).
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
so its updates agree to the last bit on CPU for 2-D parameters with both sides >= 2 (for a
1 x n or n x 1 matrix measureflow takes the exact g / |g|, see above).

Options are validated per parameter group when the group is added (at construction for the
groups given to the constructor): a bad option raises :class:`InputError` naming it. The step
calls the tensor-only kernels (``_newton_schulz_quintic``, ``spectral.schatten._schatten_lmo``),
not the validating public faces.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from ..core.arrays import check_tensor_kind
from ..core.errors import InputError
from ..core.validation import check_in_range, check_nonnegative_scalar, check_positive
from ..spectral.schatten import _schatten_lmo, check_p

__all__ = ["Schatten", "Muon", "newton_schulz_quintic"]

_NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz_quintic(G: torch.Tensor, coefficients=_NS_COEFFS, steps: int = 5,
                          eps: float = 1e-7) -> torch.Tensor:
    """Keller Jordan's quintic Newton-Schulz "orthogonalization" in bfloat16 (2-D ``G``).

    X <- G / max(||G||_F, eps) (transposed so that rows <= cols), then ``steps`` times
    X <- a X + (b A + c A^2) X with A = X X^T. The coefficients maximise the slope at 0 and the
    iteration does not converge to U W^T (singular values end roughly in [0.5, 1.5]); this is the
    update of ``torch.optim.Muon`` and of the Muon reference, reproduced operation by operation.

    Parameters
    ----------
    G : torch.Tensor
        A real finite matrix (m, n) (any float dtype; computed in bfloat16).
    coefficients : tuple of 3 floats, default (3.4445, -4.7750, 2.0315)
        Finite (a, b, c).
    steps : int, default 5
        Number of iterations, in [0, 100).
    eps : float, default 1e-7
        Floor of the Frobenius norm, finite and > 0.

    Returns
    -------
    torch.Tensor
        The bfloat16 (m, n) matrix.

    Raises
    ------
    InputError
        ``G`` not a 2-D real torch tensor or with NaN/Inf, bad ``coefficients`` / ``steps`` /
        ``eps``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.optim import newton_schulz_quintic
    >>> X = newton_schulz_quintic(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
    >>> s = torch.linalg.svdvals(X.float())
    >>> X.dtype, bool(((s > 0.5) & (s < 1.5)).all())     # roughly orthogonal, not exactly
    (torch.bfloat16, True)

    References
    ----------
    K. Jordan et al., "Muon: an optimizer for hidden layers in neural networks", 2024
    (https://kellerjordan.github.io/posts/muon/); G. Peyre, "Muon dynamics as a spectral
    Wasserstein flow", arXiv:2604.04891, 2026, App. B.
    """
    if not isinstance(G, torch.Tensor):
        raise InputError(f"G: expected a torch tensor, got {type(G).__name__}")
    if G.ndim != 2:
        raise InputError(f"G: expected a matrix (m, n), got shape {tuple(G.shape)}")
    if not (G.is_floating_point() or G.dtype == torch.bfloat16):
        raise InputError(f"G: expected a real floating tensor, got {G.dtype}")
    if G.device.type != "meta" and not bool(torch.isfinite(G).all()):
        raise InputError("G: contains NaN or Inf")
    coefficients = _check_coefficients(coefficients, "coefficients")
    steps = _check_steps(steps, "steps")
    eps = check_positive(eps, "eps")
    return _newton_schulz_quintic(G, coefficients, steps, eps)


def _check_coefficients(coefficients, name: str = "ns_coefficients") -> tuple:
    try:
        coefficients = tuple(coefficients)
    except TypeError:
        raise InputError(f"{name}: expected three finite numbers (a, b, c)") from None
    if len(coefficients) != 3 or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            for c in coefficients):
        raise InputError(f"{name}: expected three finite numbers (a, b, c)")
    return coefficients


def _check_steps(steps, name: str = "ns_steps") -> int:
    if not (isinstance(steps, int) and not isinstance(steps, bool) and 0 <= steps < 100):
        raise InputError(f"{name}: must be an integer in [0, 100), got {steps!r}")
    return steps


def _newton_schulz_quintic(G: torch.Tensor, coefficients, steps: int, eps: float):
    """Tensor-only :func:`newton_schulz_quintic` (the optimizer's inner loop)."""
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


def _check_group(g: dict) -> dict:
    """Validate the options of one parameter group (the defaults or a group given by the user)."""
    g = dict(g)
    lr = g["lr"]
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise InputError("lr: a tensor learning rate must have one element")
        check_tensor_kind(lr, "lr")
        if not (math.isfinite(float(lr)) and float(lr) >= 0):
            raise InputError(f"lr: must be finite and >= 0, got {float(lr)!r}")
    elif not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr)
              and lr >= 0):
        raise InputError(f"lr: must be a finite number >= 0, got {lr!r}")
    g["p"] = check_p(g["p"])
    g["momentum"] = check_in_range(g["momentum"], "momentum", 0.0, 1.0, high_open=True)
    g["weight_decay"] = check_nonnegative_scalar(g["weight_decay"], "weight_decay")
    if not math.isfinite(g["weight_decay"]):
        raise InputError(f"weight_decay: must be finite, got {g['weight_decay']}")
    g["eps"] = check_positive(g["eps"], "eps")
    if not isinstance(g["nesterov"], bool):
        raise InputError(f"nesterov: must be a bool, got {g['nesterov']!r}")
    if g["scale"] not in ("unit", "schatten"):
        raise InputError(f"scale: must be 'unit' or 'schatten', got {g['scale']!r}")
    if g["polar"] not in ("svd", "fast", "newton_schulz"):
        raise InputError(f"polar: must be 'svd', 'fast' or 'newton_schulz', got {g['polar']!r}")
    if g["polar"] == "newton_schulz" and not math.isinf(g["p"]):
        raise InputError("polar: 'newton_schulz' computes the p = inf (polar) step only")
    if g["adjust_lr_fn"] not in (None, "none", "original", "match_rms_adamw"):
        raise InputError("adjust_lr_fn: must be None, 'none', 'original' or "
                         f"'match_rms_adamw', got {g['adjust_lr_fn']!r}")
    g["ns_coefficients"] = _check_coefficients(g["ns_coefficients"])
    g["ns_steps"] = _check_steps(g["ns_steps"])
    return g


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

    Each matrix parameter X (a parameter of ndim >= 2 viewed as (shape[0], prod(shape[1:])), a
    bias or scalar as 1 x n) moves by X <- (1 - lr wd) X - lr r D, with D the unit-ball LMO of
    ||.||_{S_2p} at the momentum average A (``scale="unit"``; the polar factor U W^T for
    p = inf) or the paper's trace-scaled step -J_p(A) = ||A||_{S_q}^{2-q} U diag(s^{q-1}) W^T
    (``scale="schatten"``; plain momentum SGD for p = 1), q = 2p / (2p - 1), and r the
    learning-rate ratio of ``adjust_lr_fn``: the explicit Euler step of the Schatten-p
    normalized flow (Sec. 2, App. B). Details: the module docstring and docs/spectral.md.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups (dicts; their options are validated when added).
    lr : float or 0-d Tensor
        Learning rate (step size tau of X <- X + tau J), finite and >= 0.
    p : float or "inf", default inf
        Schatten index of the gauge, in [1/2, inf] (1: gradient descent, inf: Muon).
    momentum : float, default 0.95
        EMA momentum in [0, 1) as in ``torch.optim.Muon`` (B <- momentum B + (1 - momentum) g);
        0 uses the raw gradient.
    nesterov : bool, default True
        Step along (1 - momentum) g + momentum B instead of B.
    weight_decay : float, default 0.0
        Decoupled weight decay (finite, >= 0).
    scale : {"unit", "schatten"}, default "unit"
        Unit-norm update in S_2p (Muon) or the paper's -J_p.
    polar : {"svd", "fast", "newton_schulz"}, default "svd"
        LMO solver; ``"newton_schulz"`` (the quintic iteration of
        :func:`newton_schulz_quintic`) for p = inf only.
    ns_coefficients, ns_steps, eps : tuple, int, float
        Parameters of the quintic Newton-Schulz iteration (``polar="newton_schulz"``).
    adjust_lr_fn : {"none", "original", "match_rms_adamw", None}, default "none"
        Learning-rate ratio for an A x B matrix: 1, sqrt(max(1, A/B)) (``"original"`` =
        ``None``), 0.2 sqrt(max(A, B)).

    Raises
    ------
    InputError
        A bad option (at construction, or when a parameter group is added), naming it;
        ``polar="newton_schulz"`` with a finite p.

    Examples
    --------
    >>> import torch
    >>> from measureflow.optim import Schatten
    >>> W = torch.nn.Parameter(torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    >>> opt = Schatten([W], lr=0.1, momentum=0.0)            # p = inf, unit scale
    >>> W.grad = torch.tensor([[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    >>> opt.step()
    >>> print(W.detach())                                  # W - lr U W^T: both directions move 0.1
    tensor([[1.9000, 0.0000],
            [0.0000, 0.9000],
            [0.0000, 0.0000]])

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, Sec. 2
    and App. B.
    """

    def __init__(self, params, lr: float, p: float = math.inf, momentum: float = 0.95,
                 nesterov: bool = True, weight_decay: float = 0.0, *, scale: str = "unit",
                 polar: str = "svd", ns_coefficients=_NS_COEFFS, ns_steps: int = 5,
                 eps: float = 1e-7, adjust_lr_fn: str | None = "none"):
        defaults = _check_group(dict(lr=lr, p=p, momentum=momentum, nesterov=nesterov,
                                     weight_decay=weight_decay, scale=scale, polar=polar,
                                     ns_coefficients=ns_coefficients, ns_steps=ns_steps,
                                     eps=eps, adjust_lr_fn=adjust_lr_fn))
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group; its options (merged with the defaults) are validated here.

        A bad per-group option raises :class:`~measureflow.InputError` naming it at
        construction, not at ``step()``; an unknown option is an ``InputError`` too.

        Parameters
        ----------
        param_group : dict
            ``{"params": [...], <option>: value, ...}`` with options among the constructor's.
        """
        if not isinstance(param_group, dict):
            raise InputError(f"params: a parameter group must be a dict, got "
                             f"{type(param_group).__name__}")
        unknown = set(param_group) - set(self.defaults) - {"params", "name"}
        if unknown:
            raise InputError(f"{sorted(unknown)[0]}: unknown option of a parameter group "
                             f"(known: {', '.join(sorted(self.defaults))})")
        merged = {**self.defaults, **{k: v for k, v in param_group.items()
                                      if k in self.defaults}}
        checked = _check_group(merged)
        param_group = dict(param_group)
        for k in self.defaults:
            if k in param_group:
                param_group[k] = checked[k]
        super().add_param_group(param_group)

    def _direction(self, A: torch.Tensor, group) -> torch.Tensor:
        """Update direction D (the parameter moves by -lr * D) for the 2-D momentum matrix A."""
        p, scale, polar = group["p"], group["scale"], group["polar"]
        if min(A.shape) == 1:
            # one singular value: U W^T = A / |A| exactly (for every p), and the trace-scaled
            # step -J_p(A) = A; no iteration (Newton-Schulz would return ~0.69 A / |A|)
            if scale == "schatten":
                return A
            nrm = torch.linalg.vector_norm(A)
            return torch.where(nrm > 0, A / torch.where(nrm > 0, nrm, torch.ones_like(nrm)),
                               torch.zeros_like(A))
        if polar == "newton_schulz":
            D = _newton_schulz_quintic(A, group["ns_coefficients"], group["ns_steps"],
                                       group["eps"])
            if scale == "schatten":  # trace-scaled: ||A||_* ~ <D, A>
                D = D.to(A.dtype) * (D.to(A.dtype) * A).sum()
            return D
        J, _ = _schatten_lmo(A, p, polar)
        if scale == "schatten":
            return -J
        nq = (-(A * J).sum()).clamp_min(0).sqrt()  # ||A||_{S_q} = N(J)
        return torch.where(nq > 0, -J / torch.where(nq > 0, nq, torch.ones_like(nq)),
                           torch.zeros_like(J))

    @torch.no_grad()
    def step(self, closure=None):
        """One step: momentum, Schatten-p direction per matrix, weight decay, update.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (run with gradients enabled).

        Returns
        -------
        The closure's loss, or None.

        Raises
        ------
        RuntimeError
            Complex parameters or sparse gradients.
        """
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
    Unlike torch's, non-2-D parameters are accepted (1 x n rule of :class:`Schatten`), and a
    matrix with a side of length 1 moves by the exact g / |g| (torch's quintic iteration gives
    about 0.69 g / |g| there): the one case where the two differ.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups.
    lr : float, default 1e-3
    weight_decay : float, default 0.1
        Decoupled weight decay.
    momentum : float, default 0.95
    nesterov : bool, default True
    ns_coefficients, eps, ns_steps :
        Quintic Newton-Schulz parameters (see :func:`newton_schulz_quintic`).
    adjust_lr_fn : {None, "none", "original", "match_rms_adamw"}, default None
        ``None`` = ``"original"``: lr x sqrt(max(1, A/B)) for an A x B matrix.
    polar : {"newton_schulz", "fast", "svd"}, default "newton_schulz"
    scale : {"unit", "schatten"}, default "unit"

    Raises
    ------
    InputError
        A bad option, naming it (see :class:`Schatten`).

    Examples
    --------
    >>> import torch
    >>> from measureflow.optim import Muon
    >>> W = torch.nn.Parameter(torch.zeros(3, 2))
    >>> opt = Muon([W], lr=0.1, weight_decay=0.0, momentum=0.0, polar="svd")
    >>> W.grad = torch.tensor([[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    >>> opt.step()
    >>> print(W.detach())              # -lr sqrt(3/2) U W^T ("original" lr adjustment)
    tensor([[-0.1225,  0.0000],
            [ 0.0000, -0.1225],
            [ 0.0000,  0.0000]])

    References
    ----------
    K. Jordan et al., "Muon: an optimizer for hidden layers in neural networks", 2024;
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. B.
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
