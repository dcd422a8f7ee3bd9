"""Memory-light entropic OT between point clouds (the n x m cost is never stored).

Solves the same problem as ``measureflow.ot.solve(a, b, C, eps=eps, rho=rho)`` with
C_ij = |x_i - y_j|^2 (no 1/2), by the same log-domain Sinkhorn iteration, stopping rule (L1
marginal violation) and dual ``value`` (see :mod:`measureflow.ot.sinkhorn`; course notes
arXiv 2505.06589, "Entropic regularization"; unbalanced: Chizat et al. 2018). The difference
is only in how the log-sum-exps are computed: in blocks of ``chunk`` rows x ``chunk`` columns,
each block's cost rebuilt from |x|^2 + |y|^2 - 2 x y^T, reduced with a max-shifted
log-sum-exp and merged across column blocks with ``logaddexp`` (the "online" / streamed
reduction of KeOps-style solvers, Feydy et al. 2019, written by hand here). Memory is
O((n + m) d + chunk^2), time O(n m d) per iteration.

The plan is not returned (``plan=None``); :func:`plan_block` gives a block of rows of it and
:func:`lazy_plan_apply` the products P v and P^T w, both streamed.

Gradients of ``value`` with respect to x, y, a, b use the envelope theorem (potentials held
fixed, no backprop through iterations) in a custom autograd function whose backward pass is
streamed as well: d value / dC_ij = P_ij, so d value / dx_i = 2 sum_j P_ij (x_i - y_j) and
d value / dy_j = 2 sum_i P_ij (y_j - x_i).
"""

from __future__ import annotations

import math

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.results import report_convergence
from ..core.validation import (
    check_in_range,
    check_int,
    check_masses_match,
    check_points,
    check_positive,
    check_same_dim,
    check_shape,
    check_weights,
)
from .result import OTResult
from .sinkhorn import _log_weights, _side_term, eps_schedule, rho_pair
from .solve import _check_rho

__all__ = ["sinkhorn_points", "plan_block", "lazy_plan_apply"]

_BLOCK = 2**24  # default number of entries of one block (~16M)


def _default_chunk(n: int, m: int) -> int:
    return max(1, min(max(n, m), int(math.isqrt(_BLOCK))))


def _cost_block(x, y, x2, y2):
    return (x2[:, None] + y2[None, :] - 2.0 * (x @ y.t())).clamp_min(0.0)


def _lse(x, y, x2, y2, v, eps, chunk):
    """out_i = log sum_j exp(v_j - |x_i - y_j|^2 / eps), streamed over (chunk x chunk) blocks."""
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for i0 in range(0, x.shape[0], chunk):
        xi, x2i = x[i0:i0 + chunk], x2[i0:i0 + chunk]
        acc = None
        for j0 in range(0, y.shape[0], chunk):
            T = v[None, j0:j0 + chunk] - _cost_block(xi, y[j0:j0 + chunk], x2i,
                                                     y2[j0:j0 + chunk]) / eps
            part = torch.logsumexp(T, 1)
            acc = part if acc is None else torch.logaddexp(acc, part)
        out[i0:i0 + chunk] = acc
    return out


def _cost_range(x, y, x2, y2, chunk):
    lo, hi = math.inf, -math.inf
    for i0 in range(0, x.shape[0], chunk):
        for j0 in range(0, y.shape[0], chunk):
            C = _cost_block(x[i0:i0 + chunk], y[j0:j0 + chunk], x2[i0:i0 + chunk],
                            y2[j0:j0 + chunk])
            cmin, cmax = torch.aminmax(C)
            lo, hi = min(lo, float(cmin)), max(hi, float(cmax))
    return hi - lo


def _stage(x, y, x2, y2, a, la, lb, eps, rho, f, g, max_iter, tol, errors, chunk):
    """One fixed-eps Sinkhorn run (same updates and error as ``sinkhorn._run_stage``)."""
    ra, rb = rho_pair(rho)
    lam_a = 1.0 if ra is None else ra / (ra + eps)
    lam_b = 1.0 if rb is None else rb / (rb + eps)
    err = math.inf
    it = 0
    while it < max_iter:
        it += 1
        g = -lam_b * eps * _lse(y, x, y2, x2, f / eps + la, eps, chunk)
        # log r_i = log of (row marginal / a_i) of the current plan
        logr = f / eps + _lse(x, y, x2, y2, g / eps + lb, eps, chunk)
        target = torch.ones_like(f) if ra is None else torch.exp(-f / ra)
        err = float((a * (logr.exp() - target).abs()).sum())
        errors.append(err)
        if err <= tol or math.isnan(err):
            break
        f = lam_a * (f - eps * logr)
    return f, g, it, err


def _stream(x, y, a, b, f, g, eps, chunk, want_grad):
    """Streamed sums over P_ij = a_i b_j E_ij, E_ij = exp((f_i + g_j - C_ij)/eps).

    Returns (rowE = E b, colE = E^T a, <C, P>, P y, P^T x) (the last two only if ``want_grad``).
    """
    x2, y2 = (x * x).sum(1), (y * y).sum(1)
    rowE = torch.zeros_like(f)
    colE = torch.zeros_like(g)
    lin = x.new_zeros(())
    Py = torch.zeros_like(x) if want_grad else None
    PTx = torch.zeros_like(y) if want_grad else None
    for i0 in range(0, x.shape[0], chunk):
        si = slice(i0, i0 + chunk)
        for j0 in range(0, y.shape[0], chunk):
            sj = slice(j0, j0 + chunk)
            C = _cost_block(x[si], y[sj], x2[si], y2[sj])
            E = torch.exp((f[si, None] + g[None, sj] - C) / eps)
            rowE[si] += E @ b[sj]
            colE[sj] += E.t() @ a[si]
            P = a[si, None] * E * b[None, sj]
            lin = lin + (C * P).sum()
            if want_grad:
                Py[si] += P @ y[sj]
                PTx[sj] += P.t() @ x[si]
    return rowE, colE, lin, Py, PTx


class _MassTerm(torch.autograd.Function):
    """M(x, y, a, b) = sum_ij a_i b_j exp((f_i + g_j - |x_i - y_j|^2)/eps), f, g constants."""

    @staticmethod
    def forward(ctx, x, y, a, b, f, g, eps, chunk):
        rowE, colE, _, _, _ = _stream(x, y, a, b, f, g, eps, chunk, want_grad=False)
        ctx.save_for_backward(x, y, a, b, f, g)
        ctx.eps, ctx.chunk = eps, chunk
        return a @ rowE

    @staticmethod
    def backward(ctx, gout):
        x, y, a, b, f, g = ctx.saved_tensors
        eps = ctx.eps
        need = ctx.needs_input_grad
        rowE, colE, _, Py, PTx = _stream(x, y, a, b, f, g, eps, ctx.chunk, want_grad=True)
        r, c = a * rowE, b * colE  # P 1, P^T 1
        gx = gy = ga = gb = None
        if need[0]:
            gx = gout * (-2.0 / eps) * (x * r[:, None] - Py)
        if need[1]:
            gy = gout * (-2.0 / eps) * (y * c[:, None] - PTx)
        if need[2]:
            ga = gout * rowE
        if need[3]:
            gb = gout * colE
        return gx, gy, ga, gb, None, None, None, None


def _resolve_scaling(eps_scaling, eps, scale_fn):
    # Same choices as ``ot.solve`` (no init here): "auto" = 0.5 when eps < 0.1 x cost range.
    if isinstance(eps_scaling, str):
        if eps_scaling != "auto":
            raise InputError(f"eps_scaling: must be 'auto', None or a factor in (0, 1), "
                             f"got {eps_scaling!r}")
        return 0.5 if eps < 0.1 * scale_fn() else None
    if eps_scaling is None or eps_scaling is False:
        return None
    return check_in_range(eps_scaling, "eps_scaling", 0.0, 1.0, low_open=True, high_open=True)


def _points(ctx, x, y, a, b):
    x = check_points(ctx.tensor(x, "x"), "x")
    y = check_points(ctx.tensor(y, "y"), "y")
    check_same_dim(x, y, ("x", "y"))
    a = check_weights(None if a is None else ctx.tensor(a, "a"), x.shape[0], "a", like=x)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), y.shape[0], "b", like=x)
    return x, y, a, b


def _chunk(chunk, n, m):
    return _default_chunk(n, m) if chunk is None else check_int(chunk, "chunk", min_value=1)


def sinkhorn_points(x, y, a=None, b=None, *, eps, rho=None, max_iter: int = 10_000,
                    tol: float = 1e-8, chunk: int | None = None, eps_scaling="auto") -> OTResult:
    """Entropic OT between point clouds x (n, d), y (m, d) without storing the n x m cost.

    Same problem, iteration, stopping rule and outputs as
    ``ot.solve(a, b, C, eps=eps, rho=rho, ...)`` with C_ij = |x_i - y_j|^2 (squared Euclidean,
    no 1/2): ``value`` = OT_eps (dual objective at the returned potentials),
    ``linear_cost`` = <C, P>, potentials (f, g) with P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps),
    stop when the L1 marginal violation is <= ``tol``; ``eps_scaling`` as in ``ot.solve``
    ("auto": factor 0.5 from the cost range when eps < 0.1 x range). 1-D arrays are read as
    points on the line; ``a``/``b`` default to uniform 1/n, 1/m; ``rho`` a number, a pair or
    None (balanced; masses must match).

    ``plan`` is ``None`` (use :func:`plan_block` / :func:`lazy_plan_apply`). ``chunk``: rows
    and columns per block (default: blocks of about 16M entries, i.e. 4096 x 4096).
    ``method = "sinkhorn_points"``.

    Gradients of ``value`` w.r.t. x, y, a, b (tensor inputs with requires_grad) by the envelope
    theorem, computed in a streamed backward pass; potentials and ``linear_cost`` are detached.
    NumPy in -> NumPy out, tensors in -> tensors out.
    """
    ctx = ArrayContext(x, y, a, b)
    x, y, a, b = _points(ctx, x, y, a, b)
    eps = check_positive(eps, "eps")
    rho = _check_rho(rho)
    if rho_pair(rho) == (None, None):
        rho = None
        check_masses_match(a, b, ("a", "b"))
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    n, m = x.shape[0], y.shape[0]
    chunk = _chunk(chunk, n, m)
    xd, yd, ad, bd = x.detach(), y.detach(), a.detach(), b.detach()
    if rho is None and float(bd.sum()) != float(ad.sum()):
        b = b * (a.sum() / b.sum())  # as ot.solve: equal masses so the error can reach 0
        bd = b.detach()
    x2, y2 = (xd * xd).sum(1), (yd * yd).sum(1)
    factor = _resolve_scaling(eps_scaling, eps, lambda: _cost_range(xd, yd, x2, y2, chunk))
    stages = (eps_schedule(_cost_range(xd, yd, x2, y2, chunk), eps, factor)
              if factor is not None else [eps])
    la, lb = _log_weights(ad), _log_weights(bd)
    f = xd.new_zeros(n)
    g = xd.new_zeros(m)
    errors: list[float] = []
    mass = float(ad.sum())
    used = 0
    with torch.no_grad():
        for e in stages[:-1]:
            f, g, k, _ = _stage(xd, yd, x2, y2, ad, la, lb, e, rho, f, g,
                                min(100, max(max_iter - used - 1, 0)), max(tol, 1e-3 * mass),
                                errors, chunk)
            used += k
        f, g, k, err = _stage(xd, yd, x2, y2, ad, la, lb, eps, rho, f, g,
                              max(max_iter - used, 1), tol, errors, chunk)
        used += k
        _, _, lin, _, _ = _stream(xd, yd, ad, bd, f, g, eps, chunk, want_grad=False)
    converged = bool(err <= tol)
    report_convergence(converged, f"sinkhorn_points (eps={eps:.3g}, rho={rho})", used, err, tol,
                       stacklevel=3)
    ra, rb = rho_pair(rho)
    M = _MassTerm.apply(x, y, a, b, f, g, eps, chunk)
    value = _side_term(a, f, ra) + _side_term(b, g, rb) - eps * (M - a.sum() * b.sum())
    return ctx.wrap(OTResult(value=value, linear_cost=lin, plan=None, potential_f=f,
                             potential_g=g, certificate=None, method="sinkhorn_points", eps=eps,
                             rho=rho, converged=converged, n_iter=used, errors=errors))


def _result_inputs(res, x, y, a, b):
    ctx = ArrayContext(x, y, a, b)
    x, y, a, b = _points(ctx, x, y, a, b)
    if res.potential_f is None or res.eps is None:
        raise InputError("res: expected an entropic OTResult (from sinkhorn_points)")
    f = check_shape(ctx.tensor(res.potential_f, "res"), "res.potential_f", (x.shape[0],))
    g = check_shape(ctx.tensor(res.potential_g, "res"), "res.potential_g", (y.shape[0],))
    return ctx, x.detach(), y.detach(), a.detach(), b.detach(), f.detach(), g.detach()


def plan_block(res: OTResult, x, y, a=None, b=None, i0: int = 0, i1: int | None = None):
    """Rows ``i0:i1`` of the plan P_ij = a_i b_j exp((f_i + g_j - |x_i - y_j|^2)/eps), shape
    (i1 - i0, m), from a :func:`sinkhorn_points` result and the same x, y, a, b."""
    ctx, x, y, a, b, f, g = _result_inputs(res, x, y, a, b)
    n = x.shape[0]
    i1 = n if i1 is None else i1
    i0, i1 = check_int(i0, "i0", min_value=0), check_int(i1, "i1", min_value=0)
    if not i0 < i1 <= n:
        raise InputError(f"i1: need 0 <= i0 < i1 <= n = {n}, got i0={i0}, i1={i1}")
    s = slice(i0, i1)
    C = _cost_block(x[s], y, (x[s] * x[s]).sum(1), (y * y).sum(1))
    P = a[s, None] * b[None, :] * torch.exp((f[s, None] + g[None, :] - C) / res.eps)
    return ctx.wrap(P)


def lazy_plan_apply(res: OTResult, x, y, v, a=None, b=None, *, transpose: bool = False,
                    chunk: int | None = None):
    """P v (v of shape (m,) or (m, k)), or P^T v (v (n,) or (n, k)) if ``transpose``, streamed
    over blocks, for the plan of a :func:`sinkhorn_points` result (same x, y, a, b)."""
    ctx, x, y, a, b, f, g = _result_inputs(res, x, y, a, b)
    v = ctx.tensor(v, "v").detach()
    k = (y if not transpose else x).shape[0]
    if v.ndim not in (1, 2) or v.shape[0] != k:
        raise InputError(f"v: expected shape ({k},) or ({k}, k), got {tuple(v.shape)}")
    vec = v.ndim == 1
    V = v[:, None] if vec else v
    n, m = x.shape[0], y.shape[0]
    chunk = _chunk(chunk, n, m)
    x2, y2 = (x * x).sum(1), (y * y).sum(1)
    out = V.new_zeros((m if transpose else n, V.shape[1]))
    with torch.no_grad():
        for i0 in range(0, n, chunk):
            si = slice(i0, i0 + chunk)
            for j0 in range(0, m, chunk):
                sj = slice(j0, j0 + chunk)
                C = _cost_block(x[si], y[sj], x2[si], y2[sj])
                P = a[si, None] * b[None, sj] * torch.exp((f[si, None] + g[None, sj] - C) / res.eps)
                if transpose:
                    out[sj] += P.t() @ V[si]
                else:
                    out[si] += P @ V[sj]
    return ctx.wrap(out[:, 0] if vec else out)
