"""Parsing of (Q, K, V, heads) into per-head tensors (shared by attend and the Gaussian ODEs).

Convention used across ``measureflow.attention``
------------------------------------------------
* ``Q`` and ``K`` have shape ``(k, d)``: the score of query x against token y is
  ``<Q x, K y> = y^T A x`` with ``A = K^T Q``. **No hidden 1/sqrt(d) factor**: put any
  temperature into ``Q``.
* ``heads = h > 1`` splits the rows of ``Q`` and ``K`` into ``h`` equal consecutive blocks
  (``k`` divisible by ``h``); head ``j`` uses ``A_j = K_j^T Q_j``.
* ``V`` of shape ``(d_out, d)`` with ``h > 1`` is split the same way by rows and the head
  outputs are concatenated (identity output projection, as in the reference implementations);
  equivalently head ``j`` has the output map ``C_j`` = ``V`` with the rows of the other blocks
  set to zero, and the result is ``sum_j C_j (...)``. ``attend`` also accepts per-head output
  maps ``V`` of shape ``(h, d_out, d)`` (sum of heads).
"""

from __future__ import annotations

import torch

from ..core import InputError, check_int

__all__ = ["split_heads"]


def split_heads(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, heads, d: int, *,
                batch: bool = False):
    """Return ``(Qh, Kh, Ch)`` of shapes ``(..., h, k_h, d)``, ``(..., h, k_h, d)``,
    ``(..., h, d_out, d)``.

    ``batch=True`` allows leading batch dimensions on Q, K, V (used by the Gaussian ODEs);
    then V must be ``(..., d_out, d)`` (row-split convention).
    """
    h = check_int(heads, "heads", min_value=1)
    for M, name in ((Q, "Q"), (K, "K")):
        if M.ndim < 2 or (not batch and M.ndim != 2):
            raise InputError(f"{name}: expected a 2-D matrix (k, d), got shape {tuple(M.shape)}")
        if M.shape[-1] != d:
            raise InputError(f"{name}: has {M.shape[-1]} columns but the tokens have dimension {d}")
    if Q.shape[-2] != K.shape[-2]:
        raise InputError(f"Q, K: row counts differ ({Q.shape[-2]} vs {K.shape[-2]})")
    k = Q.shape[-2]
    if k % h:
        raise InputError(f"heads: {h} does not divide the number of rows of Q and K ({k})")
    Qh = Q.reshape(*Q.shape[:-2], h, k // h, d)
    Kh = K.reshape(*K.shape[:-2], h, k // h, d)
    if V.ndim == 3 and not batch:
        if V.shape[0] != h or V.shape[-1] != d:
            raise InputError(f"V: per-head form must have shape ({h}, d_out, {d}), "
                             f"got {tuple(V.shape)}")
        return Qh, Kh, V
    if V.ndim < 2 or (not batch and V.ndim != 2):
        raise InputError(f"V: expected a (d_out, d) matrix, got shape {tuple(V.shape)}")
    if V.shape[-1] != d:
        raise InputError(f"V: has {V.shape[-1]} columns but the tokens have dimension {d}")
    d_out = V.shape[-2]
    if h == 1:
        return Qh, Kh, V.unsqueeze(-3)
    if d_out % h:
        raise InputError(f"V: {d_out} output rows cannot be split into heads={h} blocks "
                         "(give per-head maps of shape (heads, d_out, d))")
    r = d_out // h
    mask = torch.zeros(h, d_out, 1, dtype=V.dtype, device=V.device)
    for j in range(h):
        mask[j, j * r:(j + 1) * r] = 1.0
    return Qh, Kh, V.unsqueeze(-3) * mask
