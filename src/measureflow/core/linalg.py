"""Small dense linear-algebra and cost helpers shared across pillars (torch, batched).

- :func:`sym`                symmetric part (M + M^T) / 2
- :func:`psd_power`          S^t for symmetric PSD S through eigh (eigenvalues clamped at 0)
- :func:`sqrtm_psd`          principal square root S^{1/2}
- :func:`invsqrtm_psd`       S^{-1/2} (eigenvalues below ``rcond`` x max are treated as 0 -> pseudo-inverse)
- :func:`sqdist`             pairwise squared Euclidean distances |x_i - y_j|^2 (no 1/2 factor)
- :func:`cost_matrix`        |x_i - y_j|^p (p = 2 gives ``sqdist``)

Autograd: ``psd_power`` differentiates through ``torch.linalg.eigh``; gradients are undefined at
repeated eigenvalues (a property of the matrix functions, not of the code).
"""

from __future__ import annotations

import torch

__all__ = ["sym", "psd_power", "sqrtm_psd", "invsqrtm_psd", "sqdist", "cost_matrix"]


def sym(M: torch.Tensor) -> torch.Tensor:
    return 0.5 * (M + M.transpose(-1, -2))


def psd_power(S: torch.Tensor, t: float, *, rcond: float = 0.0) -> torch.Tensor:
    """S^t for symmetric PSD ``S`` (batched). Negative round-off eigenvalues are clamped to 0.

    For t < 0 eigenvalues <= ``rcond`` x max eigenvalue are mapped to 0 (pseudo-inverse power).
    """
    ev, U = torch.linalg.eigh(sym(S))
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
    """Principal square root of a symmetric PSD matrix (batched)."""
    return psd_power(S, 0.5)


def invsqrtm_psd(S: torch.Tensor, *, rcond: float = 1e-12) -> torch.Tensor:
    """S^{-1/2} (pseudo-inverse on the numerical kernel, threshold ``rcond`` x max eigenvalue)."""
    return psd_power(S, -0.5, rcond=rcond)


def sqdist(x, y):
    """C_ij = |x_i - y_j|^2 for x (..., n, d), y (..., m, d). Clamped at 0 against round-off.

    Uses the expansion |x|^2 + |y|^2 - 2 <x, y> (one matmul); exact zeros on the diagonal of
    sqdist(x, x) are restored. Tensors in -> tensor out (differentiable); NumPy arrays or lists
    in -> NumPy out. For a validated public cost builder (and a cancellation-free squared
    distance) use :func:`measureflow.ot.dist`.
    """
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        from .arrays import ArrayContext

        ctx = ArrayContext(x, y)
        xt = ctx.tensor(x, "x")
        yt = xt if y is x else ctx.tensor(y, "y")
        return ctx.wrap(sqdist(xt, yt))
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True).transpose(-1, -2)
    C = (x2 + y2 - 2.0 * x @ y.transpose(-1, -2)).clamp_min(0.0)
    if x is y and C.shape[-1] == C.shape[-2]:
        C = C - torch.diag_embed(torch.diagonal(C, dim1=-2, dim2=-1))
    return C


def cost_matrix(x: torch.Tensor, y: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """C_ij = |x_i - y_j|^p (Euclidean norm). p = 2 is the squared distance (no 1/2)."""
    if p == 2:
        return sqdist(x, y)
    d = torch.cdist(x, y)
    return d if p == 1 else d ** p
