"""Small dense linear-algebra and cost helpers shared across pillars (torch, batched).

- :func:`sym`                symmetric part (M + M^T) / 2
- :func:`psd_power`          S^t for symmetric PSD S through eigh (eigenvalues clamped at 0)
- :func:`sqrtm_psd`          principal square root S^{1/2}
- :func:`invsqrtm_psd`       S^{-1/2} (eigenvalues below ``rcond`` x max are treated as 0 -> pseudo-inverse)
- :func:`sqdist`             pairwise squared Euclidean distances |x_i - y_j|^2 (no 1/2 factor)
- :func:`cost_matrix`        |x_i - y_j|^p (p = 2 gives ``sqdist``)

Autograd: ``psd_power`` differentiates through ``torch.linalg.eigh``; gradients are undefined at
repeated eigenvalues (a property of the matrix functions, not of the code).

Inputs: these are building blocks of the pillars' inner computations, so they check only what
is free or negligible next to the work: tensors of a kind the library computes with
(:func:`~measureflow.core.arrays.check_tensor_kind`), square matrices, and, for the matrix
functions (O(d^3) already), finite entries and positive semi-definiteness up to
sqrt(eps) x max|eigenvalue| (clearly negative eigenvalues raise instead of being clamped).
``sqdist`` / ``cost_matrix`` do not scan their inputs: NaN and Inf propagate to the output.
"""

from __future__ import annotations

import math

import torch

from .arrays import check_tensor_kind
from .errors import InputError

__all__ = ["sym", "psd_power", "sqrtm_psd", "invsqrtm_psd", "sqdist", "cost_matrix"]


def _square(S, name: str) -> torch.Tensor:
    if not isinstance(S, torch.Tensor):
        raise InputError(f"{name}: expected a torch tensor, got {type(S).__name__}")
    check_tensor_kind(S, name)
    if not S.is_floating_point():
        raise InputError(f"{name}: expected a floating tensor, got {S.dtype}")
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise InputError(f"{name}: expected square matrices (..., d, d), got {tuple(S.shape)}")
    return S


def sym(M: torch.Tensor) -> torch.Tensor:
    """Symmetric part (M + M^T) / 2 of square matrices (batched).

    Parameters
    ----------
    M : Tensor
        (..., d, d).

    Returns
    -------
    Tensor

    Raises
    ------
    InputError
        Not a floating tensor of square matrices.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core.linalg import sym
    >>> sym(torch.tensor([[1.0, 2.0], [0.0, 3.0]])).tolist()
    [[1.0, 1.0], [1.0, 3.0]]
    """
    _square(M, "M")
    return 0.5 * (M + M.transpose(-1, -2))


def psd_power(S: torch.Tensor, t: float, *, rcond: float = 0.0) -> torch.Tensor:
    """S^t for symmetric PSD ``S`` (batched), through ``torch.linalg.eigh`` of (S + S^T) / 2.

    S^t = U diag(lambda^t) U^T; negative round-off eigenvalues are clamped to 0. For t < 0
    eigenvalues <= ``rcond`` x max eigenvalue are mapped to 0 (pseudo-inverse power).
    Differentiable (gradients undefined at repeated eigenvalues).

    Parameters
    ----------
    S : Tensor
        (..., d, d) symmetric PSD, finite.
    t : float
        Finite exponent.
    rcond : float, default 0
        Relative threshold of the pseudo-inverse (t < 0).

    Returns
    -------
    Tensor
        (..., d, d).

    Raises
    ------
    InputError
        Non-square or non-finite ``S``, eigenvalues below -sqrt(eps) x max|eigenvalue| (not
        round-off), a non-finite ``t`` or a bad ``rcond``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core.linalg import psd_power
    >>> S = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)     # eigenvalues 1, 3
    >>> R = psd_power(S, 0.5)
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> bool(torch.allclose(R @ R, S)), bool(torch.allclose(psd_power(S, -1.0) @ S, I))
    (True, True)
    """
    _square(S, "S")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise InputError(f"t: expected a finite real exponent, got {t!r}")
    if isinstance(rcond, bool) or not isinstance(rcond, (int, float)) or not 0 <= rcond < math.inf:
        raise InputError(f"rcond: expected a finite number >= 0, got {rcond!r}")
    if S.numel() and not bool(torch.isfinite(S.detach()).all()):
        raise InputError("S: contains NaN or Inf")
    ev, U = torch.linalg.eigh(sym(S))
    if ev.numel():
        evd = ev.detach()
        floor = -math.sqrt(torch.finfo(ev.dtype).eps) * evd.abs().amax(-1)
        if bool((evd.amin(-1) < floor).any()):
            raise InputError(f"S: not positive semi-definite (smallest eigenvalue "
                             f"{float(evd.min()):.3g})")
    ev = ev.clamp_min(0.0)
    if t < 0:
        thr = rcond * ev.amax(-1, keepdim=True)
        pos = ev > thr
        evt = torch.where(pos, ev.clamp_min(torch.finfo(ev.dtype).tiny) ** t, torch.zeros_like(ev))
    elif t == 0.5:
        evt = ev.sqrt()
    else:
        evt = ev ** t
    return (U * evt.unsqueeze(-2)) @ U.transpose(-1, -2)


def sqrtm_psd(S: torch.Tensor) -> torch.Tensor:
    """Principal square root S^{1/2} of a symmetric PSD matrix (batched; see :func:`psd_power`).

    Parameters
    ----------
    S : Tensor
        (..., d, d) symmetric PSD.

    Returns
    -------
    Tensor
        Symmetric PSD R with R R = S.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core.linalg import sqrtm_psd
    >>> S = torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64))
    >>> sqrtm_psd(S).diagonal().round(decimals=12).tolist()
    [2.0, 3.0]
    """
    return psd_power(S, 0.5)


def invsqrtm_psd(S: torch.Tensor, *, rcond: float = 1e-12) -> torch.Tensor:
    """S^{-1/2} (pseudo-inverse on the numerical kernel, threshold ``rcond`` x max eigenvalue).

    Parameters
    ----------
    S : Tensor
        (..., d, d) symmetric PSD.
    rcond : float, default 1e-12
        Eigenvalues <= rcond x max eigenvalue are treated as 0.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import torch
    >>> from measureflow.core.linalg import invsqrtm_psd
    >>> S = torch.diag(torch.tensor([4.0, 0.0], dtype=torch.float64))     # singular: pseudo-inverse
    >>> invsqrtm_psd(S).diagonal().round(decimals=12).add(0.0).tolist()
    [0.5, 0.0]
    """
    return psd_power(S, -0.5, rcond=rcond)


def _points(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch tensor, got {type(x).__name__}")
    check_tensor_kind(x, name)
    if x.ndim < 2 or not x.is_floating_point():
        raise InputError(f"{name}: expected floating points (..., n, d), got {x.dtype} "
                         f"{tuple(x.shape)}")


def sqdist(x, y):
    """C_ij = |x_i - y_j|^2 for x (..., n, d), y (..., m, d). Clamped at 0 against round-off.

    Squared Euclidean distance, no 1/2. Uses the expansion |x|^2 + |y|^2 - 2 ``<x, y>`` (one
    matmul), which loses relative accuracy for nearby points far from the origin; exact zeros on
    the diagonal of sqdist(x, x) are restored. An internal building block: the public,
    validated and cancellation-free cost builder is :func:`measureflow.ot.dist`. Inputs are not
    scanned: NaN and Inf propagate.

    Parameters
    ----------
    x : Tensor or array_like
        (..., n, d).
    y : Tensor or array_like
        (..., m, d).

    Returns
    -------
    Tensor or ndarray
        (..., n, m). Tensors in -> tensor out (differentiable); NumPy arrays or lists in ->
        NumPy out.

    Raises
    ------
    InputError
        Not floating point clouds, or different dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.core.linalg import sqdist
    >>> sqdist(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]]))
    array([[25.,  1.]])
    """
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        from .arrays import ArrayContext

        ctx = ArrayContext(x, y)
        xt = ctx.tensor(x, "x")
        yt = xt if y is x else ctx.tensor(y, "y")
        return ctx.wrap(sqdist(xt, yt))
    _points(x, "x")
    _points(y, "y")
    if x.shape[-1] != y.shape[-1]:
        raise InputError(f"x, y: point dimensions differ ({x.shape[-1]} vs {y.shape[-1]})")
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True).transpose(-1, -2)
    C = (x2 + y2 - 2.0 * x @ y.transpose(-1, -2)).clamp_min(0.0)
    if x is y and C.shape[-1] == C.shape[-2]:
        C = C - torch.diag_embed(torch.diagonal(C, dim1=-2, dim2=-1))
    return C


def cost_matrix(x: torch.Tensor, y: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """C_ij = |x_i - y_j|^p (Euclidean norm). p = 2 is the squared distance (no 1/2).

    p = 2 is :func:`sqdist`; other p use ``torch.cdist``. Internal building block; the public
    cost builder is :func:`measureflow.ot.dist`.

    Parameters
    ----------
    x, y : Tensor
        (..., n, d), (..., m, d).
    p : float, default 2
        Finite exponent > 0.

    Returns
    -------
    Tensor
        (..., n, m).

    Raises
    ------
    InputError
        Bad ``p`` or point clouds.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core.linalg import cost_matrix
    >>> x = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    >>> y = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    >>> cost_matrix(x, y, 1).tolist(), cost_matrix(x, y, 3).tolist()
    ([[5.0]], [[125.0]])
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < math.inf:
        raise InputError(f"p: expected a finite exponent > 0, got {p!r}")
    if p == 2:
        return sqdist(x, y)
    _points(x, "x")
    _points(y, "y")
    d = torch.cdist(x, y)
    return d if p == 1 else d ** p
