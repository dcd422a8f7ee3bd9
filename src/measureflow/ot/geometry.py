"""Geometries: how the transport engine sees a cost (dense matrix, point clouds, grids).

A geometry answers the few questions every Sinkhorn / KL-projection iteration asks about a
cost C (n, m) (OTT-JAX's ``Geometry.apply_lse_kernel`` and GeomLoss's ``softmin`` play the same
role; measureflow's code is its own):

* ``lse(u, v, eps, axis)`` -- the log-sum-exp reduction of (u_i + v_j - C_ij / eps):
  ``axis=1`` gives out_i = log sum_j exp(u_i + v_j - C_ij / eps) (shape of u),
  ``axis=0`` gives out_j = log sum_i exp(u_i + v_j - C_ij / eps) (shape of v).
  With u = f / eps (+ log a), v = g / eps (+ log b) this is the log of a marginal of the plan
  P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) divided by the weights.
* ``apply(u, v, eps, w, axis)`` -- the products sum_j exp(u_i + v_j - C_ij / eps) w_j
  (``axis=1``, w (m,) or (m, k)) and sum_i exp(...) w_i (``axis=0``): plan-vector products.
* ``block(u, v, eps, rows, cols)`` -- a dense block of exp(u_i + v_j - C_ij / eps) (plan blocks).
* ``cost(rows, cols)`` -- a dense block of C; ``cost_range()`` -- (min C, max C), cached.
* ``mass(a, b, f, g, eps)`` -- sum_ij a_i b_j exp((f_i + g_j - C_ij) / eps) with (f, g) held
  fixed, differentiable in a, b and in the tensors the cost is built from (C, or x and y): the
  envelope-theorem gradient of the entropic OT value.
* ``transpose()`` -- the geometry of C^T.

Implementations: :class:`Dense` (C in memory), :class:`PointCloud` (C_ij = |x_i - y_j|^p or a
user cost on blocks, computed on the fly: memory O((n + m) d + block)), :class:`Grid`
(regular grids with the separable cost |x - y|^2 = sum_k (x_k - y_k)^2: the reduction is one
small matrix product per axis) and :class:`Graph` (sparse arcs with lengths: a cost matrix
that is +inf off the arcs, or, signed, flows on the arcs through the incidence matrix:
flow-Sinkhorn). :func:`log_marginal` and :func:`scatter_lse` are the reductions of an iterate
stored in the log domain (the K-block cyclic projections of :mod:`measureflow.ot.loop`).
Potentials may carry leading batch dimensions on :class:`Dense` (u (..., n), v (..., m)),
which the fixed-support barycenter uses.

**Adding a geometry.** Subclass :class:`Geometry`, set ``shape`` (the row and column index
shapes), ``dtype`` (data), ``pdtype`` (potentials: :func:`potential_dtype`), ``device``, and
implement ``lse`` and ``apply`` (the loop needs only ``lse``; results use ``apply``, ``block``,
``cost``; ``cost_range`` feeds eps schedules; ``mass`` gives gradients). Kernels for the hot
reduction go in :mod:`measureflow.ot.kernels` (eager body + compiled wrapper). A sparse-graph
geometry (flow-Sinkhorn) has nodes as rows and arcs as columns: its ``lse`` is a
scatter-log-sum-exp over the incidence (signed incidences return one reduction per sign,
stacked, and the marginal block that consumes them interprets the stack; see
:mod:`measureflow.ot.loop`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import kernels

__all__ = ["Geometry", "Dense", "PointCloud", "Grid", "Graph", "potential_dtype", "log_marginal",
           "scatter_lse"]


def _check_tensor(t, name: str, ndims, validated: bool):
    """Public-constructor validation of a geometry's data tensor (skipped for internal calls)."""
    if validated:
        return t
    from ..core.errors import InputError

    if not isinstance(t, torch.Tensor):
        raise InputError(f"{name}: expected a torch tensor (the geometries are the engine's "
                         f"tensor layer; NumPy users call ot.solve / ot.sinkhorn_points), got "
                         f"{type(t).__name__}")
    if t.device.type == "meta":
        raise InputError(f"{name}: meta tensors carry no data")
    if t.is_complex() or not t.is_floating_point():
        raise InputError(f"{name}: expected a real floating tensor, got {t.dtype}")
    if t.dtype in (torch.float16, torch.bfloat16):
        raise InputError(f"{name}: {t.dtype} is not supported (exponents underflow); use "
                         "float32 or float64")
    if t.ndim not in ndims:
        raise InputError(f"{name}: expected a {' or '.join(map(str, ndims))}-D tensor, got "
                         f"shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise InputError(f"{name}: empty")
    if not bool(torch.isfinite(t.detach()).all()):
        raise InputError(f"{name}: contains NaN or Inf")
    return t


def potential_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """dtype of the potentials for data of ``dtype``: float64 (mixed precision) unless the
    device has no float64 (MPS), in which case the data dtype."""
    if device.type == "mps":
        return dtype
    return torch.float64


def _scalar(x: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(x, dtype=like.dtype, device=like.device)


def _rows_cols(rows, cols):
    return (slice(None) if rows is None else rows), (slice(None) if cols is None else cols)


class Geometry:
    """Base class (see the module docstring for the interface)."""

    shape: tuple
    dtype: torch.dtype
    pdtype: torch.dtype
    device: torch.device
    #: True when rows and columns are the same points and C is symmetric (C = C^T).
    symmetric: bool = False

    @property
    def numel(self) -> int:
        return math.prod(self.shape[0]) * math.prod(self.shape[1])

    def lse(self, u, v, eps: float, axis: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, u, v, eps: float, w, axis: int = 1):  # pragma: no cover - abstract
        raise NotImplementedError

    def cost(self, rows=None, cols=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def block(self, u, v, eps: float, rows=None, cols=None):
        """exp(u_i + v_j - C_ij / eps) for the given row and column index ranges."""
        r, c = _rows_cols(rows, cols)
        C = self.cost(r, c).to(self.pdtype)
        return torch.exp(u[r][:, None] + v[c][None, :] - C / eps)

    def cost_range(self) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def transpose(self) -> Geometry:  # pragma: no cover - abstract
        raise NotImplementedError

    def linear_cost(self, u, v, eps: float):
        """sum_ij exp(u_i + v_j - C_ij / eps) C_ij, by row blocks (detached)."""
        n = self.shape[0][0]
        step = max(1, kernels.EAGER_BLOCK // max(self.shape[1][0], 1))
        tot = torch.zeros((), dtype=self.pdtype, device=self.device)
        for i0 in range(0, n, step):
            sl = slice(i0, min(i0 + step, n))
            C = self.cost(sl, None).to(self.pdtype)
            tot = tot + (torch.exp(u[sl, None] + v[None, :] - C / eps) * C).sum()
        return tot

    def mass(self, a, b, f, g, eps: float):  # pragma: no cover - abstract
        raise NotImplementedError


# ------------------------------------------------------------------------------------------
# Dense
# ------------------------------------------------------------------------------------------

class Dense(Geometry):
    """A cost matrix C (n, m) held in memory.

    The compiled kernels reduce rows contiguously; the column reduction runs on a contiguous
    copy of C^T made on first use (memory 2 n m; the eager path needs no copy).

    A float32 C on CPU with at most ``WIDE_NUMEL`` entries (2^25, 256 MiB in float64) is
    reduced through a float64 copy made on first use: the kernels form their exponents in the
    potentials' float64 anyway (mixed precision), and converting each entry inside the loop
    made float32 passes ~3x slower than float64 ones (compiled, 4000 x 4000, one thread: 3.7
    against 1.25 ns per entry). Above that size the conversion happens in the loop.
    """

    #: Narrow (float32) CPU costs up to this many entries are reduced through a float64 copy.
    WIDE_NUMEL = 2**25

    def __init__(self, C: torch.Tensor, *, symmetric: bool = False, _validated: bool = False):
        _check_tensor(C, "C", (2,), _validated)
        self.C_in = C                      # as given (may carry autograd, used by ``mass``)
        self.C = C.detach()
        self.dtype = self.C.dtype
        self.device = self.C.device
        self.pdtype = potential_dtype(self.dtype, self.device)
        self.shape = ((self.C.shape[-2],), (self.C.shape[-1],))
        self.symmetric = symmetric
        self._CT = None
        self._range = None
        self._Cw = None

    def _kernel_C(self):
        """The matrix the reductions read: C, or its float64 copy (see the class docstring)."""
        C = self.C
        if (C.device.type == "cpu" and C.dtype.itemsize < self.pdtype.itemsize
                and C.numel() <= self.WIDE_NUMEL):
            if self._Cw is None:
                self._Cw = C.to(self.pdtype, memory_format=torch.contiguous_format)
            return self._Cw
        return C

    def _Ct(self, C):
        if self.symmetric:
            return C
        if self._CT is None or self._CT.dtype != C.dtype:
            self._CT = C.t().contiguous()
        return self._CT

    def lse(self, u, v, eps, axis):
        s = _scalar(1.0 / eps, u)
        C = self._kernel_C()
        compiled = kernels.dense_compiled(C, u)
        if axis == 1:
            return kernels.dense_lse(C, u, v, s, compiled=compiled)
        M = self._Ct(C) if compiled else C.t()
        return kernels.dense_lse(M, v, u, s, compiled=compiled)

    def apply(self, u, v, eps, w, axis=1):
        s = _scalar(1.0 / eps, u)
        if axis == 1:
            return kernels.dense_apply(self.C, u, v, s, w)
        return kernels.dense_apply(self.C.t(), v, u, s, w)

    def cost(self, rows=None, cols=None):
        r, c = _rows_cols(rows, cols)
        return self.C[r][:, c]

    def block(self, u, v, eps, rows=None, cols=None):
        r, c = _rows_cols(rows, cols)
        return torch.exp(u[r][:, None] + v[c][None, :] - self.C[r][:, c].to(self.pdtype) / eps)

    def cost_range(self):
        if self._range is None:
            lo, hi = torch.aminmax(self.C)
            self._range = (float(lo), float(hi))
        return self._range

    def transpose(self):
        t = Dense(self.C_in.transpose(-1, -2), symmetric=self.symmetric, _validated=True)
        t._range = self._range
        # the transpose's C^T is our C and its C is our C^T: hand over the copies made
        if self._Cw is not None:
            t._CT, t._Cw = self._Cw, self._CT
        elif self._CT is not None:
            t._CT = self.C
        return t

    def mass(self, a, b, f, g, eps):
        C = self.C_in.to(self.pdtype)
        E = torch.exp((f[:, None] + g[None, :] - C) / eps)
        return (a.to(self.pdtype)[:, None] * E * b.to(self.pdtype)[None, :]).sum()


# ------------------------------------------------------------------------------------------
# Point clouds
# ------------------------------------------------------------------------------------------

CostFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PointCloud(Geometry):
    """C_ij = c(x_i, y_j) computed on the fly from x (n, d), y (m, d).

    ``cost``: ``p`` >= 1 for |x - y|^p (Euclidean norm; p = 2 is the squared distance, no 1/2)
    or a callable ``cost(xb, yb) -> (len(xb), len(yb))`` evaluated on row blocks (torch ops,
    differentiable if gradients in the points are wanted). For p in {1, 2} and d <= 16 the
    compiled kernel evaluates the cost inside the reduction (no block is ever stored); the
    coordinates are kept in the potentials' dtype, so float32 clouds get their costs computed
    in float64 (exact differences of the given points).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
                 cost: float | CostFn = 2.0, _validated: bool = False):
        _check_tensor(x, "x", (2,), _validated)
        if y is not None:
            _check_tensor(y, "y", (2,), _validated)
            if not _validated and y.shape[1] != x.shape[1]:
                from ..core.errors import InputError

                raise InputError(f"x, y: point dimensions differ ({x.shape[1]} vs "
                                 f"{y.shape[1]})")
        if not _validated and not callable(cost):
            from ..core.errors import InputError
            from ..core.validation import check_in_range

            if isinstance(cost, str) or isinstance(cost, bool):
                raise InputError(f"cost: expected a power p >= 1 or a callable, got {cost!r}")
            cost = check_in_range(cost, "cost", 1.0, math.inf, high_open=True)
        self.x_in = x
        self.y_in = x if y is None else y
        self.symmetric = y is None or y is x
        self.dtype = x.dtype
        self.device = x.device
        self.pdtype = potential_dtype(self.dtype, self.device)
        self.x = x.detach().to(self.pdtype)
        self.y = self.x if self.symmetric else self.y_in.detach().to(self.pdtype)
        self.shape = ((self.x.shape[0],), (self.y.shape[0],))
        self.cost_fn = cost if callable(cost) else None
        self.p = None if callable(cost) else float(cost)
        self._range = None
        #: rows per block on the eager path (None: blocks of about ``kernels.EAGER_BLOCK``)
        self.block_rows: int | None = None
        self._C: torch.Tensor | None = None  # cost matrix kept for the eager kernels

    def _eager_matrix(self, ed, kind: tuple = ()) -> torch.Tensor | None:
        """The full cost matrix when the eager kernels run on a problem of at most
        ``kernels.DENSE_NUMEL`` entries (built once, then reused), else None.

        Eager on-the-fly reductions rebuild every cost block at each iteration (measured: 18 ns
        per entry and reduction for 1000 x 1000 points in 2-D, float64, one thread); below
        ``DENSE_NUMEL`` entries (32 MiB: the cost is held in the potentials' dtype, float64 on
        CPU) the matrix is kept, as OTT's un-batched ``PointCloud`` does. Compiled kernels
        compute the cost inside the reduction and never need it; ``block_rows`` (an explicit
        streaming request) also disables it.
        """
        if self.cost_fn is not None or self.block_rows is not None:
            return None
        n, m = self.shape[0][0], self.shape[1][0]
        if n * m > kernels.DENSE_NUMEL or kernels.use_compiled(
                n * m, kind + kernels.points_variant(self.x, self.p, ed)):
            return None
        if self._C is None:
            self._C = kernels.points_cost(self.x, self.y, self.p)
        return self._C

    # -- blocks of the cost
    def cost(self, rows=None, cols=None):
        r, c = _rows_cols(rows, cols)
        if self.cost_fn is not None:
            return self.cost_fn(self.x[r], self.y[c]).to(self.pdtype)
        return kernels.points_cost(self.x[r], self.y[c], self.p)

    def _blocks(self):
        n, m = self.shape[0][0], self.shape[1][0]
        step = self.block_rows or max(1, kernels.EAGER_BLOCK // max(m, 1))
        for i0 in range(0, n, step):
            yield slice(i0, min(i0 + step, n))

    def lse(self, u, v, eps, axis):
        s = _scalar(1.0 / eps, u)
        x, y = (self.x, self.y) if axis == 1 else (self.y, self.x)
        uu, vv = (u, v) if axis == 1 else (v, u)
        if self.cost_fn is None:
            C = self._eager_matrix(self.dtype)
            if C is not None:
                return kernels.dense_lse(C if axis == 1 else C.t(), uu, vv, s, ed=self.dtype,
                                         compiled=False)
            return kernels.points_lse(x, y, uu, vv, s, self.p, ed=self.dtype,
                                      rows=self.block_rows)
        compiled = kernels.use_compiled(x.shape[0] * y.shape[0],
                                        kernels.dense_variant(x, uu, self.dtype))
        out = torch.empty(uu.shape, dtype=uu.dtype, device=uu.device)
        step = self.block_rows or max(
            1, (2**22 if compiled else kernels.EAGER_BLOCK) // max(y.shape[0], 1))
        for i0 in range(0, x.shape[0], step):
            sl = slice(i0, min(i0 + step, x.shape[0]))
            C = self.cost_fn(x[sl], y) if axis == 1 else self.cost_fn(y, x[sl]).t()
            out[sl] = kernels.dense_lse(C.detach().to(self.pdtype), uu[sl], vv, s,
                                        ed=self.dtype, compiled=compiled)
        return out

    def apply(self, u, v, eps, w, axis=1):
        s = _scalar(1.0 / eps, u)
        if self.cost_fn is None:
            C = self._eager_matrix(self.dtype, ("apply",))
            if C is not None:
                return (kernels.dense_apply(C, u, v, s, w) if axis == 1
                        else kernels.dense_apply(C.t(), v, u, s, w))
            if axis == 1:
                return kernels.points_apply(self.x, self.y, u, v, s, self.p, w,
                                            rows=self.block_rows, ed=self.dtype)
            return kernels.points_apply(self.y, self.x, v, u, s, self.p, w,
                                        rows=self.block_rows, ed=self.dtype)
        n = self.shape[0][0] if axis == 1 else self.shape[1][0]
        W = (w[:, None] if w.ndim == 1 else w).to(self.pdtype)
        out = torch.empty((n, W.shape[1]), dtype=self.pdtype, device=self.device)
        other = self.shape[1][0] if axis == 1 else self.shape[0][0]
        step = self.block_rows or max(1, kernels.EAGER_BLOCK // max(other, 1))
        for i0 in range(0, n, step):
            sl = slice(i0, min(i0 + step, n))
            if axis == 1:
                C = self.cost(sl, None)
                out[sl] = torch.exp(u[sl, None] + v[None, :] - C / eps) @ W
            else:
                C = self.cost(None, sl)
                out[sl] = torch.exp(u[:, None] + v[None, sl] - C / eps).t() @ W
        return out[:, 0] if w.ndim == 1 else out

    def cost_range(self):
        if self._range is None:
            if self.cost_fn is None:
                self._range = kernels.points_cost_range(self.x, self.y, self.p)
            else:
                lo, hi = math.inf, -math.inf
                for sl in self._blocks():
                    cmin, cmax = torch.aminmax(self.cost(sl, None))
                    lo, hi = min(lo, float(cmin)), max(hi, float(cmax))
                self._range = (lo, hi)
        return self._range

    def transpose(self):
        if self.symmetric:
            return self
        cf = self.cost_fn
        t = PointCloud(self.y_in, self.x_in, _validated=True,
                       cost=self.p if cf is None else (lambda yb, xb: cf(xb, yb).t()))
        t._range = self._range
        return t

    def mass(self, a, b, f, g, eps):
        return _PointsMass.apply(self.x_in, self.y_in, a, b, f, g, self, eps)

    def _cost_on(self, xb, yb):
        """The cost as a differentiable function of the given (data-dtype) point blocks."""
        xb, yb = xb.to(self.pdtype), yb.to(self.pdtype)
        if self.cost_fn is not None:
            return self.cost_fn(xb, yb).to(self.pdtype)
        return kernels.points_cost(xb, yb, self.p)


def _safe_log(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, w.clamp_min(torch.finfo(w.dtype).tiny).log(),
                       torch.full_like(w, -math.inf))


class _PointsMass(torch.autograd.Function):
    """M = sum_ij a_i b_j exp((f_i + g_j - C_ij(x, y)) / eps), f, g held fixed; streamed
    forward (the engine's stabilised reduction) and backward (blocked vector-Jacobian products
    of the cost: dM / dC_ij = -P_ij / eps)."""

    @staticmethod
    def forward(ctx, x, y, a, b, f, g, geom, eps):
        pd = geom.pdtype
        ap, bp = a.detach().to(pd), b.detach().to(pd)
        fp, gp = f.detach().to(pd), g.detach().to(pd)
        logr = geom.lse(fp / eps, gp / eps + _safe_log(bp), eps, axis=1)
        ctx.save_for_backward(x, y, a, b)
        ctx.geom, ctx.eps, ctx.fg = geom, eps, (fp, gp)
        return (ap * torch.exp(logr)).sum()

    @staticmethod
    def backward(ctx, gout):
        x, y, a, b = ctx.saved_tensors
        geom, eps = ctx.geom, ctx.eps
        fp, gp = ctx.fg
        pd = geom.pdtype
        need = ctx.needs_input_grad
        ap, bp = a.detach().to(pd), b.detach().to(pd)
        la, lb = _safe_log(ap), _safe_log(bp)
        u, v = fp / eps + la, gp / eps + lb
        gx = gy = ga = gb = None
        go = gout.to(pd)
        if need[2]:
            ga = (go * torch.exp(geom.lse(fp / eps, v, eps, axis=1))).to(a.dtype)
        if need[3]:
            gb = (go * torch.exp(geom.lse(u, gp / eps, eps, axis=0))).to(b.dtype)
        if (need[0] or need[1]) and geom.cost_fn is None and geom.p == 2.0:
            # d M / dx_i = -(2 / eps) (x_i r_i - (P y)_i), r = P 1: one fused product each
            if need[0]:
                W = torch.cat([torch.ones_like(geom.y[:, :1]), geom.y], 1)
                R = geom.apply(u, v, eps, W, axis=1)
                gx = ((-2.0 * go / eps) * (geom.x * R[:, :1] - R[:, 1:])).to(x.dtype)
            if need[1]:
                W = torch.cat([torch.ones_like(geom.x[:, :1]), geom.x], 1)
                R = geom.apply(u, v, eps, W, axis=0)
                gy = ((-2.0 * go / eps) * (geom.y * R[:, :1] - R[:, 1:])).to(y.dtype)
        elif need[0] or need[1]:
            xs = x.detach()
            ys = y.detach()
            gxa = torch.zeros_like(xs, dtype=pd) if need[0] else None
            gya = torch.zeros_like(ys, dtype=pd) if need[1] else None
            for sl in geom._blocks():
                with torch.enable_grad():
                    xb = xs[sl].clone().requires_grad_(need[0])
                    yb = ys.clone().requires_grad_(need[1]) if need[1] else ys
                    C = geom._cost_on(xb, yb)
                    P = torch.exp(u[sl, None] + v[None, :] - C.detach() / eps)
                    wrt = [t for t, k in ((xb, need[0]), (yb, need[1])) if k]
                    grads = torch.autograd.grad(C, wrt, grad_outputs=P * (-go / eps))
                k = 0
                if need[0]:
                    gxa[sl] += grads[k]
                    k += 1
                if need[1]:
                    gya += grads[k]
            if need[0]:
                gx = gxa.to(x.dtype)
            if need[1]:
                gy = gya.to(y.dtype)
        return gx, gy, ga, gb, None, None, None, None


# ------------------------------------------------------------------------------------------
# Regular grids with the separable squared-Euclidean cost
# ------------------------------------------------------------------------------------------

class Grid(Geometry):
    """A regular grid (cell centres ``axes[k]`` per axis) with C = sum_k (x_k - y_k)^2 / scale.

    Rows and columns are both the grid (shape ``(n_1, ..., n_d)``); potentials have the grid's
    shape. The reduction is separable: log sum_j exp(v_j - C_ij / eps) is one log-domain product
    with the per-axis Gibbs kernel exp(-(x_k - y_k)^2 / eps) per axis (Solomon et al. 2015's
    convolutional Wasserstein distances; Peyre 2015 for JKO), i.e. O(N sum_k n_k) per reduction
    instead of O(N^2). Fast path: each line of v is shifted by its max and multiplied by the
    Gibbs kernel (a matmul); lines whose sum falls below 1e-280 (float64 underflow risk) are
    recomputed with an exact ``logsumexp``.
    """

    symmetric = True

    def __init__(self, axes, *, scale: float = 1.0, _validated: bool = False):
        if not _validated:
            from ..core.errors import InputError
            from ..core.validation import check_positive

            if not isinstance(axes, (list, tuple)) or not axes:
                raise InputError("axes: expected a non-empty list of 1-D coordinate tensors")
            for k, t in enumerate(axes):
                _check_tensor(t, f"axes[{k}]", (1,), False)
            if len({t.dtype for t in axes}) > 1:
                raise InputError("axes: all axes need the same dtype")
            scale = check_positive(scale, "scale")
        self.axes = [t.detach() for t in axes]
        self.scale = float(scale)
        ref = self.axes[0]
        self.dtype = ref.dtype
        self.device = ref.device
        self.pdtype = ref.dtype
        grid = tuple(int(t.shape[0]) for t in self.axes)
        self.shape = (grid, grid)
        self._kernels: dict[float, tuple[list, list]] = {}

    def _per_axis(self, eps):
        k = self._kernels.get(eps)
        if k is None:
            Ks = [(t[:, None] - t[None, :]) ** 2 / (self.scale * eps) for t in self.axes]
            k = (Ks, [torch.exp(-K) for K in Ks])
            if len(self._kernels) > 8:
                self._kernels.clear()
            self._kernels[eps] = k
        return k

    def _lse_conv(self, v, eps):
        """log sum_j exp(v_j - C_ij / eps), one axis at a time."""
        Ks, xis = self._per_axis(eps)
        for a, (K, xi) in enumerate(zip(Ks, xis)):
            x = torch.movedim(v, a, -1)
            mx = x.amax(-1, keepdim=True)
            fin = torch.isfinite(mx)
            mxf = torch.where(fin, mx, torch.zeros_like(mx))
            ssum = torch.exp(x - mxf) @ xi.T
            bad = (ssum < 1e-280) & fin
            out = torch.where(fin, torch.log(ssum) + mxf, mx)
            if bool(bad.any()):
                exact = torch.logsumexp(x.unsqueeze(-2) - K, dim=-1)
                out = torch.where(bad, exact, out)
            v = torch.movedim(out, -1, a)
        return v

    def lse(self, u, v, eps, axis):
        if axis == 1:
            return u + self._lse_conv(v, eps)
        return v + self._lse_conv(u, eps)

    def _conv(self, w, eps):
        """sum_j exp(-C_ij / eps) w_j (separable product; w has the grid's shape)."""
        _, xis = self._per_axis(eps)
        for a, xi in enumerate(xis):
            w = torch.movedim(torch.movedim(w, a, -1) @ xi.T, -1, a)
        return w

    def apply(self, u, v, eps, w, axis=1):
        src, dst = (v, u) if axis == 1 else (u, v)
        fin = torch.isfinite(src)
        mx = src[fin].max() if bool(fin.any()) else src.new_zeros(())
        return torch.exp(dst + mx) * self._conv(torch.exp(src - mx) * w, eps)

    def cost(self, rows=None, cols=None):
        pts = self.points()
        r, c = _rows_cols(rows, cols)
        P, Q = pts[r], pts[c]
        return ((P[:, None, :] - Q[None, :, :]) ** 2).sum(-1) / self.scale

    def points(self):
        """Cell centres, (N, d) in row-major grid order."""
        mesh = torch.meshgrid(*self.axes, indexing="ij")
        return torch.stack([g.reshape(-1) for g in mesh], 1)

    def block(self, u, v, eps, rows=None, cols=None):
        r, c = _rows_cols(rows, cols)
        return torch.exp(u.reshape(-1)[r][:, None] + v.reshape(-1)[c][None, :]
                         - self.cost(r, c) / eps)

    def linear_cost(self, u, v, eps):
        # sum_ij exp(u_i + v_j - C_ij/eps) C_ij, C separable: sum over axes of the per-axis
        # cost weighted by the kernel (exact for separable costs).
        tot = torch.zeros((), dtype=self.pdtype, device=self.device)
        Ks, xis = self._per_axis(eps)
        fu, fv = torch.isfinite(u), torch.isfinite(v)
        mu = u[fu].max() if bool(fu.any()) else u.new_zeros(())
        mv = v[fv].max() if bool(fv.any()) else v.new_zeros(())
        eu, ev = torch.exp(u - mu), torch.exp(v - mv)
        for a in range(len(self.axes)):
            w = ev
            for b, xi in enumerate(xis):
                M = xi * (Ks[b] * eps) if b == a else xi
                w = torch.movedim(torch.movedim(w, b, -1) @ M.T, -1, b)
            tot = tot + (eu * w).sum()
        return tot * torch.exp(mu + mv)

    def cost_range(self):
        hi = sum(float((t.max() - t.min()) ** 2) for t in self.axes) / self.scale
        return (0.0, hi)

    def transpose(self):
        return self

    def mass(self, a, b, f, g, eps):
        la, lb = _safe_log(a.to(self.pdtype)), _safe_log(b.to(self.pdtype))
        return torch.exp(self.lse(f / eps + la, g / eps + lb, eps, axis=1)).sum()


# ------------------------------------------------------------------------------------------
# Stored log-domain iterates and sparse graphs
# ------------------------------------------------------------------------------------------

def log_marginal(logx: torch.Tensor, axis: int) -> torch.Tensor:
    """Log of the sums of a nonnegative iterate held as its logarithm, along ``axis``.

    out = log sum_axis exp(logx), max-shifted; a line of -inf only gives -inf with a zero
    gradient (``torch.logsumexp`` backpropagates NaN there). The reduction of
    the cyclic KL projections whose primal iterate is stored in the log domain
    (:func:`measureflow.bregman.kl_projections`: the marginal blocks of a plan (n, m) or of a
    stack (K, n, m)); differentiable.

    Parameters
    ----------
    logx : Tensor
        log x, any shape; -inf entries are zeros of x.
    axis : int
        The axis summed over.

    Returns
    -------
    Tensor
        ``logx``'s shape without ``axis``.

    Examples
    --------
    >>> import math, torch
    >>> out = log_marginal(torch.log(torch.tensor([[1.0, 3.0], [2.0, 2.0]])), 0)
    >>> [round(float(v), 6) for v in out.exp()]
    [3.0, 5.0]
    """
    m = logx.detach().amax(axis, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.exp(logx - m).sum(axis)
    live = s > 0
    # dead lines (all -inf) give -inf with a zero gradient (not NaN, as log(0) backward would)
    return torch.where(live, m.squeeze(axis) + torch.log(torch.where(live, s, torch.ones_like(s))),
                       torch.full_like(s, -math.inf))


def scatter_lse(vals: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Grouped log-sum-exp: out[i] = log sum_{k : index[k] = i} exp(vals[k]).

    The reduction of sparse geometries (:class:`Graph`): per node, over the arcs that end (or
    start) there. Max-shifted per group (two passes: ``scatter_reduce(amax)`` then
    ``index_add``), -inf for a group with no entry or only -inf entries; differentiable.

    Parameters
    ----------
    vals : Tensor, shape (p,) or (p, c)
        Values per arc (c independent columns reduced at once).
    index : LongTensor, shape (p,)
        Group of each arc, in [0, n).
    n : int
        Number of groups.

    Returns
    -------
    Tensor, shape (n,) or (n, c)

    Examples
    --------
    >>> import torch
    >>> v = torch.log(torch.tensor([1.0, 2.0, 4.0]))
    >>> scatter_lse(v, torch.tensor([0, 0, 2]), 3).exp()
    tensor([3., 0., 4.])
    """
    shape = (n,) + tuple(vals.shape[1:])
    idx = index.reshape(-1, *([1] * (vals.ndim - 1))).expand_as(vals)
    m = torch.full(shape, -math.inf, dtype=vals.dtype, device=vals.device)
    m = m.scatter_reduce(0, idx, vals, reduce="amax", include_self=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.zeros(shape, dtype=vals.dtype, device=vals.device)
    s = s.index_add(0, index, torch.exp(vals - m[index]))
    return m + torch.log(s)


class Graph(Geometry):
    """A sparse graph: n nodes, p directed arcs k = (tail_k -> head_k), lengths w_k >= 0.

    **Unsigned** (default): the cost matrix C (n, n) with C_ij = w_k on the arc k = (i -> j)
    and +inf off the arcs, so the plan P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) lives on
    the arcs (weighted by the arcs' reference masses z_k, default 1). The reductions are
    scatter-log-sum-exps, O(p) per pass:

        lse(u, v, eps, axis=1)_i = log sum_{k: tail_k = i} z_k exp(u_i + v_{head_k} - w_k / eps)

    (``axis=0``: over the arcs entering j). Sinkhorn on a sparse support (OT restricted to the
    arcs) runs on it unchanged.

    **Signed** (``signed=True``): the arcs carry flows through the signed incidence matrix D
    (D_{tail_k, k} = +1, D_{head_k, k} = -1),

        x_k = z_k exp(u_{tail_k} - v_{head_k} - w_k / eps),

    and ``lse(u, v, eps, axis=1)`` returns the stacked pair (2, n) of log outflow
    log sum_{tail_k = i} x_k and log inflow log sum_{head_k = i} x_k of every node (its
    divergence is exp(out) - exp(in)). This is flow-Sinkhorn's geometry (Peyre 2026, arXiv
    2602.01372, Sec. 5): with u = v = phi / gamma the flow is z exp((phi_tail - phi_head - w) /
    gamma), and :class:`measureflow.ot.loop.Divergence` consumes the pair. ``apply`` gives
    D (x * w) for arc weights w (``w = 1``: div x).

    Potentials are kept in the lengths' dtype (``pdtype = dtype``: flow-Sinkhorn in float32
    stays in float32, with its dtype-aware tolerance in :func:`measureflow.bregman.graph_w1`).

    Parameters
    ----------
    tail, head : LongTensor, shape (p,)
        Arc end points, node indices in [0, n).
    lengths : Tensor, shape (p,)
        Arc lengths (the cost on the arcs), finite.
    n : int
        Number of nodes.
    log_z : Tensor or float, optional
        log of the reference mass z_k of every arc (default 0: z = 1).
    signed : bool, default False
        Signed incidence (flows) instead of a sparse cost matrix.

    Examples
    --------
    Sinkhorn restricted to the arcs of a complete graph is Sinkhorn on the dense cost:

    >>> import torch
    >>> from measureflow.ot.geometry import Dense, Graph
    >>> C = torch.tensor([[0.0, 1.0], [2.0, 0.5]])
    >>> i, j = torch.meshgrid(torch.arange(2), torch.arange(2), indexing="ij")
    >>> G = Graph(i.reshape(-1), j.reshape(-1), C.reshape(-1), 2)
    >>> u, v = torch.tensor([0.1, -0.2]), torch.tensor([0.3, 0.0])
    >>> bool(torch.allclose(G.lse(u, v, 0.5, 1), Dense(C).lse(u, v, 0.5, 1)))
    True

    Flows and divergence on the path 0 - 1 (both orientations, unit lengths):

    >>> G = Graph(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.ones(2), 2, signed=True)
    >>> out, inn = G.lse(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]), 1.0, 1).exp()
    >>> [round(float(t), 4) for t in out - inn]        # div x: e^0 - e^-2 out of node 0
    [0.8647, -0.8647]

    References
    ----------
    G. Peyre, "Robust sublinear rates for iterative Bregman projections", arXiv:2602.01372,
    2026, Sec. 5 (flow-Sinkhorn).
    """

    def __init__(self, tail: torch.Tensor, head: torch.Tensor, lengths: torch.Tensor, n: int,
                 *, log_z=0.0, signed: bool = False, _validated: bool = False):
        if not _validated:
            from ..core.errors import InputError

            _check_tensor(lengths, "lengths", (1,), False)
            for t, name in ((tail, "tail"), (head, "head")):
                if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int32, torch.int64):
                    raise InputError(f"{name}: expected an integer tensor of node indices")
                if t.shape != lengths.shape:
                    raise InputError(f"{name}: shape {tuple(t.shape)} differs from lengths' "
                                     f"{tuple(lengths.shape)}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputError(f"n: expected a positive int, got {n!r}")
            if int(torch.minimum(tail.min(), head.min())) < 0 or \
                    int(torch.maximum(tail.max(), head.max())) >= n:
                raise InputError(f"tail, head: node indices must lie in [0, {n})")
            if bool((lengths < 0).any()):
                raise InputError("lengths: must be >= 0")
        self.w_in = lengths
        self.w = lengths.detach()
        self.tail, self.head = tail.long(), head.long()
        self.n = int(n)
        self.dtype = self.w.dtype
        self.device = self.w.device
        self.pdtype = self.dtype
        self.shape = ((self.n,), (self.n,))
        self.signed = bool(signed)
        self.log_z = log_z
        self.symmetric = False

    @property
    def numel(self) -> int:
        return int(self.w.shape[0])

    def _logk(self, eps):
        """log z_k - w_k / eps."""
        return self.log_z - self.w / eps

    def log_flow(self, u, v, eps):
        """log x_k per arc: log z_k + u_tail -/+ v_head - w_k / eps (signed: minus)."""
        vh = v[self.head]
        return self._logk(eps) + u[self.tail] + (-vh if self.signed else vh)

    def lse(self, u, v, eps, axis):
        if axis == 0:
            return self.transpose().lse(v, u, eps, 1)
        lx = self.log_flow(u, v, eps)
        if self.signed:
            return torch.stack([scatter_lse(lx, self.tail, self.n),
                                scatter_lse(lx, self.head, self.n)])
        return scatter_lse(lx, self.tail, self.n)

    def apply(self, u, v, eps, w, axis=1):
        if axis == 0:
            return self.transpose().apply(v, u, eps, w, 1)
        x = torch.exp(self.log_flow(u, v, eps))
        if self.signed:
            xw = x * w
            z = torch.zeros((self.n,) + tuple(xw.shape[1:]), dtype=xw.dtype, device=xw.device)
            return z.index_add(0, self.tail, xw) - z.index_add(0, self.head, xw)
        W = w[self.head]
        xw = x.reshape(-1, *([1] * (W.ndim - 1))) * W
        z = torch.zeros((self.n,) + tuple(W.shape[1:]), dtype=xw.dtype, device=xw.device)
        return z.index_add(0, self.tail, xw)

    def cost(self, rows=None, cols=None):
        C = torch.full((self.n, self.n), math.inf, dtype=self.dtype, device=self.device)
        C = C.index_put((self.tail, self.head), self.w)
        r, c = _rows_cols(rows, cols)
        return C[r][:, c]

    def block(self, u, v, eps, rows=None, cols=None):
        if self.signed:
            raise NotImplementedError("a signed graph has flows on arcs: use log_flow")
        r, c = _rows_cols(rows, cols)
        P = torch.zeros((self.n, self.n), dtype=self.pdtype, device=self.device)
        P = P.index_put((self.tail, self.head), torch.exp(self.log_flow(u, v, eps)),
                        accumulate=True)
        return P[r][:, c]

    def linear_cost(self, u, v, eps):
        return (torch.exp(self.log_flow(u, v, eps)) * self.w).sum()

    def cost_range(self):
        if self.w.numel() == 0:
            return (0.0, 0.0)
        lo, hi = torch.aminmax(self.w)
        return (float(lo), float(hi))

    def transpose(self):
        return Graph(self.head, self.tail, self.w_in, self.n, log_z=self.log_z,
                     signed=self.signed, _validated=True)

    def mass(self, a, b, f, g, eps):
        """sum_k z_k a_tail b_head exp((f_tail +- g_head - w_k) / eps), (f, g) fixed;
        differentiable in a, b and the lengths."""
        pd = self.pdtype
        gh = g.to(pd)[self.head]
        lx = self.log_z + (f.to(pd)[self.tail] + (-gh if self.signed else gh)
                           - self.w_in.to(pd)) / eps
        return (a.to(pd)[self.tail] * b.to(pd)[self.head] * torch.exp(lx)).sum()
