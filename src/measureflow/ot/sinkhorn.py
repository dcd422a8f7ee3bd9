"""Entropic optimal transport: log-domain Sinkhorn, balanced and unbalanced.

Problem solved (cost ``C`` (n, m), weights ``a`` (n,), ``b`` (m,), ``eps > 0``)::

    OT_eps(a, b) = min_{P >= 0} <C, P> + eps KL(P | a x b) + rho KL(P 1 | a) + rho KL(P^T 1 | b)

with KL(p | q) = sum p log(p / q) - p + q. ``rho = None`` (or inf) is the balanced problem
(marginal constraints P 1 = a, P^T 1 = b instead of the two penalties). Its dual is::

    max_{f, g}  F(f; a) + F(g; b) - eps sum_ij a_i b_j (exp((f_i + g_j - C_ij) / eps) - 1)

with F(f; a) = <a, f> (balanced) or -rho <a, exp(-f / rho) - 1> (unbalanced), and the optimal
plan is P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) (course notes arXiv 2505.06589, Sec.
"Entropic regularization"; unbalanced: Chizat, Peyre, Schmitzer & Vialard 2018, Sejourne et
al. 2019).

Iteration (alternating dual maximisation, log domain), lambda = rho / (rho + eps) (1 if
balanced)::

    g_j <- -lambda eps log sum_i a_i exp((f_i - C_ij) / eps)
    f_i <- -lambda eps log sum_j b_j exp((g_j - C_ij) / eps)

Each log-sum-exp is stabilised by the *previous* potential (the row sums computed are then the
marginals of the current plan divided by the weights, so the stopping error comes for free);
if these sums leave the floating-point range, that half-step is redone with a max-shifted
``torch.logsumexp``. Both are written by hand here (no POT code); POT is used only in tests.

Stopping rule (one for the family): the L1 marginal violation of the returned plan with
respect to the first-order optimality marginals a~ = a exp(-f / rho), b~ = b exp(-g / rho)
(a~ = a, b~ = b when balanced)::

    err = ||P 1 - a~||_1 + ||P^T 1 - b~||_1      (in units of mass; the second term is 0
                                                  because every error is measured right
                                                  after a g-update)
"""

from __future__ import annotations

import math

import torch

from ..core.results import report_convergence
from ..core.threads import serial_if_small as _serial_if_small
from .result import OTResult

__all__ = ["sinkhorn_ot", "entropic_dual_value"]


def _log_weights(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, w.clamp_min(torch.finfo(w.dtype).tiny).log(),
                       torch.full_like(w, -math.inf))


class _Kernel:
    """Holds K = -C / eps and a work buffer; computes the two stabilised half-steps."""

    def __init__(self, C: torch.Tensor, eps: float):
        self.eps = eps
        self.K = C / (-eps)
        self.T = torch.empty_like(self.K)
        self.E = torch.empty_like(self.K)
        n, m = C.shape
        kw = dict(dtype=C.dtype, device=C.device)
        self.one_n = torch.ones(n, **kw)
        self.one_m = torch.ones(m, **kw)
        fi = torch.finfo(C.dtype)
        self.lo = fi.tiny ** 0.8
        self.hi = fi.max ** 0.8
        self.small = n * m < 2**16

    def _fill(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # T_ij = K_ij + u_i + v_j. Large problems: one pass (rank-2 update through BLAS);
        # small ones: two elementwise passes (BLAS threading overhead dominates there).
        if self.small:
            torch.add(self.K, u[:, None], out=self.T)
            return self.T.add_(v[None, :])
        U = torch.stack([u, self.one_n], 1)
        V = torch.stack([self.one_m, v], 0)
        return torch.addmm(self.K, U, V, out=self.T)

    def _sum(self, T: torch.Tensor, dim: int) -> torch.Tensor:
        if self.small:
            return T.sum(dim)
        return torch.mv(T, self.one_m) if dim == 1 else torch.mv(T.t(), self.one_n)

    def log_rowsum(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log sum_j exp(K_ij + u_i + v_j)."""
        # (exp out of place: in-place exp_ is very slow with several torch threads on tiny
        # tensors in some torch builds)
        T = torch.exp(self._fill(u, v), out=self.E)
        r = self._sum(T, 1)
        rmin, rmax = torch.aminmax(r)
        if not (float(rmin) >= self.lo and float(rmax) <= self.hi):
            return torch.logsumexp(self._fill(u, v), 1)
        return r.log()

    def log_colsum(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log sum_i exp(K_ij + u_i + v_j)."""
        T = torch.exp(self._fill(u, v), out=self.E)
        c = self._sum(T, 0)
        cmin, cmax = torch.aminmax(c)
        if not (float(cmin) >= self.lo and float(cmax) <= self.hi):
            return torch.logsumexp(self._fill(u, v), 0)
        return c.log()


def rho_pair(rho) -> tuple[float | None, float | None]:
    """(rho_a, rho_b) from ``rho`` = None, a number or a pair; ``None`` entries are hard marginals."""
    if isinstance(rho, (tuple, list)):
        return tuple(None if r is None or math.isinf(r) else float(r) for r in rho)
    if rho is None or math.isinf(rho):
        return (None, None)
    return (float(rho), float(rho))


def _side_term(w, h, r):
    """F(h; w) = <w, h> (hard marginal, r = None) or -r <w, exp(-h / r) - 1> (KL penalty r)."""
    return w @ h if r is None else -r * (w @ torch.expm1(-h / r))


def _run_stage(C, a, b, la, lb, eps, rho, f, g, max_iter, tol, errors):
    """Sinkhorn at fixed eps from (f, g). Returns (f, g, n_iter, err) with g fitted to f."""
    ker = _Kernel(C, eps)
    ra, rb = rho_pair(rho)
    lam_a = 1.0 if ra is None else ra / (ra + eps)
    lam_b = 1.0 if rb is None else rb / (rb + eps)
    err = math.inf
    it = 0
    while it < max_iter:
        it += 1
        # g-step: log c_j = log sum_i a_i exp((f_i + g_j - C_ij)/eps) (column marginal / b_j).
        logc = ker.log_colsum(f / eps + la, g / eps)
        g = lam_b * (g - eps * logc)
        # f-step: log r_i = log sum_j b_j exp((f_i + g_j - C_ij)/eps) (row marginal / a_i).
        logr = ker.log_rowsum(f / eps, g / eps + lb)
        target = torch.ones_like(f) if ra is None else torch.exp(-f / ra)
        err = float((a * (logr.exp() - target).abs()).sum())
        errors.append(err)
        if err <= tol or math.isnan(err) or it >= max_iter:
            # Stop here, before the f-step, so that the returned (f, g) is the pair whose
            # marginal violation was just measured (never a newer, unmeasured iterate).
            break
        f = lam_a * (f - eps * logr)
    return f, g, it, err


def entropic_dual_value(a, b, C, f, g, eps: float, rho=None) -> torch.Tensor:
    """Dual objective at (f, g) (see the module docstring), differentiable in a, b, C.

    ``rho``: None (balanced), a number (both marginals KL-penalised) or a pair (rho_a, rho_b)
    whose None / inf entries are hard marginals.

    With f, g detached this is the envelope-theorem value: its gradient is the gradient of
    OT_eps at the optimum (d/dC = P, d/da_i = f_i - eps (sum_j b_j E_ij - sum_j b_j) for the
    balanced problem, ...).
    """
    P = a[:, None] * b[None, :] * torch.exp((f[:, None] + g[None, :] - C) / eps)
    mass = eps * (P.sum() - a.sum() * b.sum())
    ra, rb = rho_pair(rho)
    return _side_term(a, f, ra) + _side_term(b, g, rb) - mass


def eps_schedule(scale: float, eps: float, factor: float | None) -> list[float]:
    """Decreasing eps values from ``scale`` (cost range) down to ``eps`` (last entry)."""
    if factor is None or scale <= eps:
        return [eps]
    out = []
    e = scale
    while e > eps:
        out.append(e)
        e *= factor
    out.append(eps)
    return out


def sinkhorn_ot(a: torch.Tensor, b: torch.Tensor, C: torch.Tensor, *, eps: float,
                rho: float | None = None, max_iter: int = 10_000, tol: float = 1e-8,
                init=None, eps_scaling: float | None = None, stage_iter: int = 100) -> OTResult:
    """Entropic OT by log-domain Sinkhorn on validated tensors (see :func:`ot.solve`).

    ``eps_scaling``: None (solve at ``eps`` directly) or a factor q in (0, 1): the solver first
    runs at eps_0 = max C - min C, eps_1 = q eps_0, ..., each intermediate stage for at most
    ``stage_iter`` iterations or until its marginal violation is below max(tol, 1e-3 mass),
    carrying the potentials over (Schmitzer 2019, Sec. 3.2). ``max_iter`` bounds the total.
    """
    Cd, ad, bd = C.detach(), a.detach(), b.detach()
    if rho_pair(rho) == (None, None) and float(bd.sum()) != float(ad.sum()):
        # Validated to match within 1e-6: make them equal so the marginal error can reach 0.
        b = b * (a.sum() / b.sum())
        bd = b.detach()
    la, lb = _log_weights(ad), _log_weights(bd)
    n, m = Cd.shape
    if init is None:
        f = torch.zeros(n, dtype=Cd.dtype, device=Cd.device)
        g = torch.zeros(m, dtype=Cd.dtype, device=Cd.device)
    else:
        f, g = (t.detach().clone() for t in init)
    errors: list[float] = []
    scale = float(Cd.max() - Cd.min())
    stages = eps_schedule(scale, eps, eps_scaling)
    mass = float(ad.sum())
    used = 0
    with torch.no_grad(), _serial_if_small(n * m):
        for e in stages[:-1]:
            f, g, k, _ = _run_stage(Cd, ad, bd, la, lb, e, rho, f, g,
                                    min(stage_iter, max(max_iter - used - 1, 0)),
                                    max(tol, 1e-3 * mass), errors)
            used += k
        f, g, k, err = _run_stage(Cd, ad, bd, la, lb, eps, rho, f, g, max(max_iter - used, 1),
                                  tol, errors)
        used += k
        P = ad[:, None] * bd[None, :] * torch.exp((f[:, None] + g[None, :] - Cd) / eps)
    converged = bool(err <= tol)
    report_convergence(converged, f"Sinkhorn (eps={eps:.3g}, rho={rho})", used, err, tol,
                       stacklevel=4)
    value = entropic_dual_value(a, b, C, f, g, eps, rho)
    lin = (Cd * P).sum()
    return OTResult(value=value, linear_cost=lin, plan=P, potential_f=f, potential_g=g,
                    certificate=None, method="sinkhorn" if rho_pair(rho) == (None, None) else "sinkhorn_unbalanced",
                    eps=eps, rho=rho, converged=converged, n_iter=used, errors=errors)


def symmetric_sinkhorn_ot(a: torch.Tensor, C: torch.Tensor, *, eps: float,
                          max_iter: int = 10_000, tol: float = 1e-8,
                          eps_scaling: float | None = None, stage_iter: int = 100):
    """OT_eps(a, a) for a symmetric cost C (balanced), by the averaged symmetric iteration.

    f <- (f + T(f)) / 2 with T(f)_i = -eps log sum_j a_j exp((f_j - C_ij)/eps) (Feydy et al.
    2019, Sec. 3); the optimal pair is (f, f). Stopping rule as in :func:`sinkhorn_ot`: L1
    marginal violation sum_i |(P 1)_i - a_i| of P_ij = a_i a_j exp((f_i + f_j - C_ij)/eps).
    Returns ``(value, f, converged, n_iter, errors)``, value differentiable in a and C.
    """
    Cd, ad = C.detach(), a.detach()
    la = _log_weights(ad)
    f = torch.zeros(Cd.shape[0], dtype=Cd.dtype, device=Cd.device)
    errors: list[float] = []
    stages = eps_schedule(float(Cd.max() - Cd.min()), eps, eps_scaling)
    mass = float(ad.sum())
    used = 0
    err = math.inf
    with torch.no_grad(), _serial_if_small(Cd.numel()):
        for s, e in enumerate(stages):
            last = s == len(stages) - 1
            cap = max(max_iter - used, 1) if last else min(stage_iter, max(max_iter - used - 1, 0))
            stol = tol if last else max(tol, 1e-3 * mass)
            ker = _Kernel(Cd, e)
            k = 0
            while k < cap:
                k += 1
                logr = ker.log_rowsum(f / e, f / e + la)
                err = float((ad * (logr.exp() - 1.0).abs()).sum())
                errors.append(err)
                if err <= stol or math.isnan(err) or k >= cap:
                    break  # keep the measured iterate (see _run_stage)
                f = f - 0.5 * e * logr
            used += k
    converged = bool(err <= tol)
    report_convergence(converged, f"symmetric Sinkhorn (eps={eps:.3g})", used, err, tol,
                       stacklevel=4)
    value = entropic_dual_value(a, a, C, f, f, eps, None)
    return value, f, converged, used, errors
