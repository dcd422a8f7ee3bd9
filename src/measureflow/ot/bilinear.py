"""A batched bilinear geometry: C_hij = -<x_hi, y_hj>, computed on the fly in blocks.

The cost of doubly-stochastic (Sinkhorn) attention (Sander, Ablin, Blondel & Peyre 2022,
"Sinkformers", AISTATS; Castin et al. 2025, arXiv:2501.18322, Sec. 2) is minus the attention
score, C_ij = -<Q y_i, K y_j>, one cost per head. :class:`Bilinear` holds the per-head
projected points x (h, n, k) and y (h, m, k) and answers the engine's reductions
(:class:`measureflow.ot.geometry.Geometry`) without forming the (h, n, m) cost: potentials
carry the leading head dimension, u (h, n), v (h, m), and

    lse(u, v, eps, axis=1)_hi = log sum_j exp(u_hi + v_hj + <x_hi, y_hj> / eps),

(``axis=0`` reduces over i), evaluated block by block with the engine's log-sum-exp kernel
(:func:`measureflow.ot.kernels.dense_lse`, the one-pass stabilised sum with its two-pass
fallback; blocks of at most ``kernels.EAGER_BLOCK`` entries per head, key blocks combined by
``logaddexp``), or, when the engine compiles (:func:`measureflow.ot.kernels.use_compiled`)
and nothing requires a gradient, by the fused point-cloud kernel with the bilinear cost
(:func:`measureflow.ot.kernels.points_lse` with ``p = DOT``, one head at a time, nothing
n x m stored). The tensors are used as given (not detached): called under autograd, the
reductions are differentiable in x, y, u and v (the attention pillar differentiates one
Sinkhorn sweep at the fixed point, see :func:`sinkhorn_fixed_point`); inside
:func:`measureflow.ot.loop.sinkhorn_loop` (``no_grad``) nothing is recorded.
"""

from __future__ import annotations

import math

import torch

from . import kernels
from .geometry import Geometry, potential_dtype

__all__ = ["Bilinear", "sinkhorn_fixed_point"]


class Bilinear(Geometry):
    """Per-head bilinear cost C_hij = -<x_hi, y_hj> (h heads), computed in blocks.

    Parameters
    ----------
    x : torch.Tensor
        Row points, (h, n, k) (e.g. the projected queries Q y / eps of each head).
    y : torch.Tensor
        Column points, (h, m, k) (the projected keys K y).
    rows, cols : int, optional
        Upper bounds on the block sizes (query and key chunks); the blocks also hold at most
        ``kernels.EAGER_BLOCK`` entries per head.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(2, 5, 3, dtype=torch.float64)
    >>> g = Bilinear(x, x)
    >>> u = torch.zeros(2, 5, dtype=torch.float64)
    >>> ref = torch.logsumexp(x @ x.transpose(1, 2), -1)
    >>> bool(torch.allclose(g.lse(u, u, 1.0, axis=1), ref))
    True

    References
    ----------
    Sander, Ablin, Blondel & Peyre (2022), "Sinkformers: transformers with doubly stochastic
    attention", AISTATS.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, rows: int | None = None,
                 cols: int | None = None):
        self.x, self.y = x, y
        self.dtype = x.dtype
        self.device = x.device
        self.pdtype = potential_dtype(x.dtype, x.device)
        h, n, m = x.shape[0], x.shape[1], y.shape[1]
        self.shape = ((h, n), (h, m))
        self.symmetric = False
        cols = m if cols is None else max(1, min(cols, m))
        self.cols = max(1, min(cols, kernels.EAGER_BLOCK))
        r = max(1, kernels.EAGER_BLOCK // self.cols)
        self.rows = max(1, min(n if rows is None else rows, r))
        self._range = None

    @property
    def numel(self) -> int:
        h, n = self.shape[0]
        return h * n * self.shape[1][1]

    def _reduce(self, x, y, u, v, eps, rows, cols):
        """log sum_j exp(u_hi + v_hj + <x_hi, y_hj> / eps), blocks (rows x cols)."""
        # the kernel reduces u + v - s M; M = the scores <x, y> = -C with s = -1 / eps
        h, n, m = x.shape[0], x.shape[1], y.shape[1]
        xs = x.to(u.dtype)                    # the fused kernels take clouds in u's dtype
        if (x.shape[-1] <= kernels.INLINE_DIM and not kernels._needs_grad(x, y, u, v)
                and kernels.use_compiled(h * n * m,
                                         kernels.points_variant(xs, kernels.DOT, self.dtype))):
            # fused per head: C_hij = -<x_hi, y_hj> inline, reduced with s = 1 / eps
            sp = torch.tensor(1.0 / eps, dtype=u.dtype, device=u.device)
            ys = y.to(u.dtype)
            return torch.stack([kernels.points_lse(xs[k], ys[k], u[k], v[k], sp, kernels.DOT,
                                                   ed=self.dtype, compiled=True)
                                for k in range(h)])
        s = torch.tensor(-1.0 / eps, dtype=u.dtype, device=u.device)
        out = []
        for i0 in range(0, x.shape[1], rows):
            xb, ub = x[:, i0:i0 + rows], u[:, i0:i0 + rows]
            acc = None
            for j0 in range(0, y.shape[1], cols):
                S = torch.bmm(xb, y[:, j0:j0 + cols].transpose(1, 2))
                part = kernels.dense_lse(S, ub, v[:, j0:j0 + cols], s, ed=self.dtype,
                                         compiled=False)
                acc = part if acc is None else torch.logaddexp(acc, part)
            out.append(acc)
        return out[0] if len(out) == 1 else torch.cat(out, 1)

    def lse(self, u, v, eps, axis):
        if axis == 1:
            return self._reduce(self.x, self.y, u, v, eps, self.rows, self.cols)
        return self._reduce(self.y, self.x, v, u, eps, self.cols, self.rows)

    def cost(self, rows=None, cols=None):
        r = slice(None) if rows is None else rows
        c = slice(None) if cols is None else cols
        return -torch.bmm(self.x[:, r], self.y[:, c].transpose(1, 2))

    def block(self, u, v, eps, rows=None, cols=None):
        r = slice(None) if rows is None else rows
        c = slice(None) if cols is None else cols
        C = self.cost(r, c).to(self.pdtype)
        return torch.exp(u[:, r, None] + v[:, None, c] - C / eps)

    def apply(self, u, v, eps, w, axis=1):
        """sum_j exp(u_hi + v_hj - C_hij / eps) w_hj. for w (h, m) or (h, m, k) (``axis=1``)."""
        vec = w.ndim == 2
        W = (w[..., None] if vec else w).to(self.pdtype)
        x, y, a, b = (self.x, self.y, u, v) if axis == 1 else (self.y, self.x, v, u)
        outs = []
        for i0 in range(0, x.shape[1], self.rows):
            S = torch.bmm(x[:, i0:i0 + self.rows], y.transpose(1, 2)).to(self.pdtype)
            outs.append(torch.exp(a[:, i0:i0 + self.rows, None] + b[:, None, :] + S / eps) @ W)
        out = torch.cat(outs, 1)
        return out[..., 0] if vec else out

    def cost_range(self):
        if self._range is None:
            lo, hi = math.inf, -math.inf
            for i0 in range(0, self.x.shape[1], self.rows):
                cmin, cmax = torch.aminmax(self.cost(slice(i0, i0 + self.rows), None))
                lo, hi = min(lo, float(cmin)), max(hi, float(cmax))
            self._range = (lo, hi)
        return self._range

    def transpose(self):
        return Bilinear(self.y, self.x, rows=self.cols, cols=self.rows)


class _FixedPoint(torch.autograd.Function):
    """v* = T(v*; x, y, la, lb), T one Sinkhorn sweep in units of eps = 1 (see
    :func:`sinkhorn_fixed_point`); backward by the adjoint fixed-point iteration."""

    @staticmethod
    def forward(ctx, v, x, y, la, lb, rows, cols, max_iter, tol):
        ctx.save_for_backward(v, x, y, la, lb)
        ctx.opts = (rows, cols, max_iter, tol)
        return v.clone()

    @staticmethod
    def backward(ctx, gv):
        v, x, y, la, lb = ctx.saved_tensors
        rows, cols, max_iter, tol = ctx.opts
        need = ctx.needs_input_grad
        with torch.enable_grad():
            vv = v.detach().requires_grad_(True)
            ins = [t.detach().requires_grad_(k) for t, k in zip((x, y, la, lb), need[1:5])]
            Tv = _sweep(vv, *ins, rows, cols)
            # T(v + c) = T(v) + c: the adjoint series converges on zero-sum cotangents, which
            # are those of every function of v invariant under that shift
            g = (gv - gv.mean(-1, keepdim=True)).to(Tv.dtype)
            w = g
            for _ in range(max_iter):
                (Jw,) = torch.autograd.grad(Tv, vv, w, retain_graph=True)
                w_new = g + Jw
                done = float((w_new - w).abs().max()) <= tol * max(float(w_new.abs().max()),
                                                                    1e-300)
                w = w_new
                if done:
                    break
            wrt = [t for t in ins if t.requires_grad]
            grads = iter(torch.autograd.grad(Tv, wrt, w) if wrt else ())
        out = [next(grads) if t.requires_grad else None for t in ins]
        return (None, *out, None, None, None, None)


def _sweep(v, x, y, la, lb, rows, cols):
    """One Sinkhorn sweep (eps = 1): u = -lse_j(v_j + lb_j + <x_i, y_j>), then
    v' = -lse_i(u_i + la_i + <x_i, y_j>)."""
    g = Bilinear(x, y, rows=rows, cols=cols)
    zu = torch.zeros_like(la)
    zv = torch.zeros_like(lb)
    u = -g.lse(zu, v + lb, 1.0, axis=1)
    return -g.lse(u + la, zv, 1.0, axis=0)


def sinkhorn_fixed_point(v: torch.Tensor, x: torch.Tensor, y: torch.Tensor, la: torch.Tensor,
                         lb: torch.Tensor, *, rows: int | None = None, cols: int | None = None,
                         max_iter: int = 1000, tol: float | None = None) -> torch.Tensor:
    """Attach implicit-function gradients to converged Sinkhorn column potentials.

    For the problem on :class:`Bilinear` (x, y) at eps = 1 with log-weights la (h, n), lb
    (h, m), the column potential is a fixed point of one Sinkhorn sweep,
    v = T(v) = -lse_i(la_i + <x_i, y_j> + u_i(v)), u_i(v) = -lse_j(lb_j + <x_i, y_j> + v_j).
    Given a converged ``v`` (computed without gradient, e.g. by
    :func:`measureflow.ot.loop.sinkhorn_loop`), returns ``v`` itself (same values) whose
    backward pass is the implicit-function derivative of the fixed point:
    d L / d theta = (dT / d theta)^T w with w = sum_k (dT / dv)^(T k) g, g the incoming
    cotangent made zero-sum per head (T commutes with v -> v + c, so the derivative is that of
    the shift-invariant functions of v, e.g. every attention output). The series is summed
    until its increment is below ``tol`` (default 100 x machine epsilon) relative, at most
    ``max_iter`` terms; it is the limit of backpropagating through the unrolled iterations.

    Parameters
    ----------
    v : torch.Tensor
        Converged column potentials (h, m), eps units.
    x, y : torch.Tensor
        The geometry's points (h, n, k), (h, m, k) (may require grad).
    la, lb : torch.Tensor
        Log-weights (h, n), (h, m) (may require grad).
    rows, cols, max_iter, tol
        Block sizes, and the controls of the adjoint series.

    Returns
    -------
    torch.Tensor
        ``v`` (values unchanged), differentiable in x, y, la, lb.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    >>> la = torch.full((1, 4), -torch.log(torch.tensor(4.0)), dtype=torch.float64)
    >>> v = torch.zeros(1, 4, dtype=torch.float64)
    >>> for _ in range(200):
    ...     v = _sweep(v, x.detach(), x.detach(), la, la, None, None)
    >>> vs = sinkhorn_fixed_point(v, x, x, la, la)
    >>> vs.grad_fn is not None
    True

    References
    ----------
    Eisenberger et al. (2022), "A unified framework for implicit Sinkhorn differentiation",
    CVPR; Cuturi, Teboul & Vert (2019), "Differentiable ranking and sorting using optimal
    transport", NeurIPS (Sinkhorn Jacobians).
    """
    tol = 100.0 * torch.finfo(v.dtype).eps if tol is None else float(tol)
    return _FixedPoint.apply(v.detach(), x, y, la, lb, rows, cols, int(max_iter), tol)
