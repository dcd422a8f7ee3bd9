"""Outer solvers of the inverse estimators: L-BFGS (smooth) and FISTA with proximal steps.

The losses are convex in theta with exact (Danskin) gradients, computed by an inner solve.
Stopping error (one rule for both): the infinity norm of the gradient mapping
G_t(theta) = (theta - prox_{t R}(theta - t grad L(theta))) / t, which is grad L(theta) when R = 0.
L-BFGS is SciPy's L-BFGS-B (a well-kept library) on the flattened parameter; FISTA (with
backtracking and function-value restart) is written by hand. With an exact Hessian
(``hess_fun``) and the l1 penalty, :func:`prox_newton_l1` is used instead: proximal Newton
(Lee, Sun, Saunders 2014) whose quadratic l1 subproblem is solved by coordinate descent, with a
backtracking line search on the true objective; it stops on the l1 optimality violation
max_r dist(-grad_r, reg_weight * subdiff|theta_r|).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["prox_l1", "prox_nuclear", "minimize_convex", "prox_newton_l1"]


def prox_l1(theta: torch.Tensor, t: float) -> torch.Tensor:
    return torch.sign(theta) * (theta.abs() - t).clamp_min(0.0)


def prox_nuclear(theta: torch.Tensor, t: float) -> torch.Tensor:
    U, s, Vh = torch.linalg.svd(theta, full_matrices=False)
    return (U * (s - t).clamp_min(0.0)[None, :]) @ Vh


def _penalty(theta: torch.Tensor, reg: str | None) -> float:
    if reg is None:
        return 0.0
    if reg == "l1":
        return float(theta.abs().sum())
    return float(torch.linalg.svdvals(theta).sum())


def minimize_convex(fun, theta0: torch.Tensor, *, reg: str | None, reg_weight: float,
                    max_iter: int, tol: float):
    """Minimise fun(theta)[0] + reg_weight * R(theta).

    ``fun(theta) -> (value: float, grad: tensor like theta)``. Returns
    (theta, converged, n_iter, errors, objective_trace).
    """
    errors: list[float] = []
    trace: list[float] = []
    if reg is None or reg_weight == 0.0:
        from scipy.optimize import minimize

        shape, dtype, device = theta0.shape, theta0.dtype, theta0.device
        state = {"n": 0}

        def f_np(v):
            th = torch.as_tensor(v, dtype=dtype, device=device).reshape(shape)
            val, g = fun(th)
            state["n"] += 1
            gn = float(g.abs().max())
            errors.append(gn)
            trace.append(val)
            return val, g.detach().cpu().numpy().astype(np.float64).ravel()

        v = theta0.detach().cpu().numpy().astype(np.float64).ravel()
        nit = 0
        err = math.inf
        # L-BFGS-B may stop on a line-search failure when the inner-solver noise dominates the
        # decrease; a restart (fresh curvature memory) usually finishes the job
        for _restart in range(4):
            out = minimize(f_np, v, jac=True, method="L-BFGS-B",
                           options={"maxiter": max(1, max_iter - nit), "gtol": tol,
                                    "ftol": 1e-15, "maxcor": 20, "maxls": 40})
            v = out.x
            nit += int(out.nit)
            theta = torch.as_tensor(v, dtype=dtype, device=device).reshape(shape)
            # the accepted iterate's gradient: re-evaluate once (cheap relative to the run)
            val, g = fun(theta)
            err = float(g.abs().max())
            errors.append(err)
            trace.append(val)
            if err <= tol or nit >= max_iter:
                break
        return theta, err <= tol, nit, errors, trace

    prox = prox_l1 if reg == "l1" else prox_nuclear
    theta = theta0.detach().clone()
    z = theta.clone()
    tk = 1.0
    step = 1.0
    val_t, _ = fun(theta)
    F_prev = val_t + reg_weight * _penalty(theta, reg)
    ok = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        fz, gz = fun(z)
        if not (math.isfinite(fz) and bool(torch.isfinite(gz).all())):
            # left the loss domain (e.g. V_theta unbounded below): restart from the last iterate
            z, tk, step = theta.clone(), 1.0, step * 0.5
            continue
        while True:
            cand = prox(z - step * gz, step * reg_weight)
            diff = cand - z
            fc, _ = fun(cand)
            if math.isfinite(fc) and fc <= fz + float((gz * diff).sum()) + float((diff * diff).sum()) / (2 * step) \
                    + 1e-12 * max(1.0, abs(fz)):
                break
            step *= 0.5
            if step < 1e-14:
                break
        err = float(diff.abs().max()) / step
        errors.append(err)
        F_new = fc + reg_weight * _penalty(cand, reg)
        trace.append(F_new)
        if err <= tol:
            # the prox-gradient residual at z is below tol: cand (within step x err of z) is
            # stationary to tol, so it is returned even when rounding puts F(cand) a hair above
            # F(theta) (otherwise a restart would discard a converged point and report an
            # error of 0 as "not converged")
            theta, ok = cand, True
            break
        if F_new > F_prev:  # adaptive restart
            tk = 1.0
            z = theta.clone()
            step *= 0.5
            continue
        tk1 = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * tk * tk))
        z = cand + ((tk - 1.0) / tk1) * (cand - theta)
        theta, tk, F_prev = cand, tk1, F_new
        step *= 1.25
    return theta, ok, it, errors, trace


def _l1_violation(theta: torch.Tensor, g: torch.Tensor, w: float) -> float:
    """max_r distance of -g_r to w * subdifferential of |theta_r| (0 at a minimiser)."""
    on = theta != 0
    v = torch.where(on, (g + w * torch.sign(theta)).abs(), (g.abs() - w).clamp_min(0.0))
    return float(v.max()) if v.numel() else 0.0


def _cd_lasso(g, H, theta, w, sweeps=500, tol=1e-14):
    """argmin_z g.(z - theta) + (z - theta)^T H (z - theta) / 2 + w |z|_1 (coordinate descent)."""
    z = theta.clone()
    d = torch.diagonal(H).clamp_min(torch.finfo(H.dtype).tiny)
    r = g.clone()  # gradient of the model at z: g + H (z - theta)
    for _ in range(sweeps):
        change = 0.0
        for k in range(z.shape[0]):
            zk = z[k]
            u = zk - r[k] / d[k]
            new = torch.sign(u) * (u.abs() - w / d[k]).clamp_min(0.0)
            delta = new - zk
            if delta != 0:
                r = r + H[:, k] * delta
                z[k] = new
                change = max(change, float(delta.abs()))
        if change <= tol * (1.0 + float(z.abs().max())):
            break
    return z


def prox_newton_l1(fun_h, theta0: torch.Tensor, *, reg_weight: float, max_iter: int, tol: float):
    """Minimise f(theta) + reg_weight |theta|_1 with f convex and ``fun_h(theta) -> (f, grad, H)``.

    Returns (theta, converged, n_iter, errors, objective_trace). Points where f is not finite
    (outside its domain) are rejected by the line search.
    """
    w = float(reg_weight)
    theta = theta0.detach().clone()
    f, g, H = fun_h(theta)
    F = f + w * float(theta.abs().sum())
    errors, trace = [], [F]
    ok = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        err = _l1_violation(theta, g, w)
        errors.append(err)
        if err <= tol:
            ok = True
            break
        Hs = 0.5 * (H + H.T)
        # a tiny ridge keeps the subproblem strictly convex when H is singular
        ridge = 1e-12 * float(torch.diagonal(Hs).abs().max().clamp_min(1e-300))
        Hs = Hs + ridge * torch.eye(Hs.shape[0], dtype=Hs.dtype, device=Hs.device)
        z = _cd_lasso(g, Hs, theta, w)
        dirn = z - theta
        decrease = float(g @ dirn) + w * (float(z.abs().sum()) - float(theta.abs().sum()))
        t = 1.0
        accepted = False
        for _ in range(40):
            cand = theta + t * dirn
            fc, gc, Hc = fun_h(cand)
            Fc = fc + w * float(cand.abs().sum())
            if math.isfinite(Fc) and Fc <= F + 0.25 * t * decrease + 1e-15 * abs(F):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        theta, f, g, H, F = cand, fc, gc, Hc, Fc
        trace.append(F)
    else:
        err = _l1_violation(theta, g, w)
        errors.append(err)
        ok = err <= tol
    return theta, ok, it, errors, trace
