"""Weighted ultra-fast diffusion, the lam -> 0 limit of VarPro (arXiv:2504.18208, Sec. 4-5).

    d_t mu = -1/2 div( mu grad( (mu*/mu)^2 ) )                                    (UFD)

on the circle R / (L Z) or the torus R^2 / (L Z)^2. It is the Wasserstein-2 gradient flow of
E(mu) = 1/2 int (mu*)^2 / mu = 1/2 (chi^2(mu* | mu) + 1) (unit masses), whose first variation is
psi = -1/2 (mu*/mu)^2; expanding, d_t mu = div((mu*)^2 mu^{-2} grad mu) - 1/2 div(mu grad((mu*)^2)
mu^{-2}): a fast diffusion with exponent m = -1 weighted by (mu*)^2. Time units are those of
:func:`~measureflow.meanfield.varpro_train` (t = steps * time_scale).

Scheme (written here; sparse linear algebra from SciPy): finite volumes on a uniform periodic
grid, cell values rho_i (densities w.r.t. Lebesgue), face fluxes F = -m_f (psi_b - psi_a) / h
with mobility m_f = (rho_a + rho_b)/2, and *fully implicit* (backward) Euler steps solved by
Newton's method with an adaptive step. Properties, exact up to the Newton tolerance:

- mass: sum_i h^d rho_i is conserved (the update is a discrete divergence);
- energy: E_h(rho) = 1/2 sum_i h^d (mu*_i)^2 / rho_i decreases at every step, for any step size:
  E_h is convex, so E_h(rho^{n+1}) - E_h(rho^n) <= <psi^{n+1}, rho^{n+1} - rho^n>
  = -dt sum_f m_f (psi_b - psi_a)^2 / h^2 <= 0; hence chi^2(mu*|mu) decreases;
- positivity: a step producing rho <= 0 is rejected and retried with dt / 2.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from ..core import (
    ArrayContext,
    ConvergenceWarning,
    InputError,
    SolverResult,
    check_int,
    check_masses_match,
    check_ndim,
    check_nonnegative,
    check_positive,
)

__all__ = ["DiffusionResult", "ultrafast_diffusion", "periodic_grid"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionResult(SolverResult):
    """Solution of the weighted ultra-fast diffusion (result of :func:`ultrafast_diffusion`).

    Attributes
    ----------
    times : array or Tensor, shape (K,)
        Requested output times.
    densities : array or Tensor, shape (K, *grid_shape)
        Density of mu(t) at those times (w.r.t. Lebesgue on the grid).
    grid : array or Tensor, or tuple of two
        Cell centres, (n,) on the circle or a tuple of two (n,) axes on the torus.
    cell_volume : float
        h (circle) or h^2 (torus); masses are sum(density) x cell_volume.
    chi2 : array or Tensor, shape (K,)
        chi^2(mu* | mu(t)) = int (mu*/mu - 1)^2 dmu at the output times.
    mass : array or Tensor, shape (K,)
        Total mass at the output times.
    errors : list of float
        Newton residual (max-norm, relative) of each accepted step.
    converged : bool
        False if the adaptive step fell below ``min_dt`` or ``max_steps`` attempts were used
        (integration stopped early; the densities after that time are the last accepted state).
    n_iter : int
        Number of accepted time steps.
    """

    times: Any
    densities: Any
    grid: Any
    cell_volume: float
    chi2: Any
    mass: Any


def periodic_grid(n: int, length: float = 2.0 * math.pi) -> np.ndarray:
    """Cell centres -L/2 + (i + 1/2) h, i = 0..n-1, of the uniform grid of [-L/2, L/2), h = L/n.

    The grid of :func:`ultrafast_diffusion` (per axis).

    Parameters
    ----------
    n : int
        Number of cells (>= 1).
    length : float, default 2 pi
        L > 0, finite.

    Returns
    -------
    numpy.ndarray, shape (n,)
        float64.

    Raises
    ------
    InputError
        Bad ``n`` / ``length``.

    Examples
    --------
    >>> from measureflow.meanfield import periodic_grid
    >>> periodic_grid(4, 4.0).tolist()
    [-1.5, -0.5, 0.5, 1.5]
    """
    n = check_int(n, "n", min_value=1)
    length = check_positive(length, "length")
    h = length / n
    return -0.5 * length + (np.arange(n) + 0.5) * h


def _faces(shape: tuple[int, ...]):
    """Index pairs (a, b) of neighbouring cells (b = a + e_k, periodic) for each axis k."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    return [(idx.ravel(), np.roll(idx, -1, axis=k).ravel()) for k in range(len(shape))]


class _Operator:
    """L(rho) = div_h(m grad_h psi(rho)) and its Jacobian on a periodic grid."""

    def __init__(self, mu_star: np.ndarray, h: float):
        self.shape = mu_star.shape
        self.s2 = (mu_star ** 2).ravel()
        self.faces = _faces(self.shape)
        self.w = 1.0 / h**2
        self.n = self.s2.size

    def psi(self, rho):
        return -0.5 * self.s2 / rho**2

    def apply(self, rho):
        psi = self.psi(rho)
        out = np.zeros_like(rho)
        for a, b in self.faces:
            flux = self.w * 0.5 * (rho[a] + rho[b]) * (psi[b] - psi[a])
            out += np.bincount(a, flux, self.n) - np.bincount(b, flux, self.n)
        return out

    def jacobian(self, rho):
        psi = self.psi(rho)
        dpsi = self.s2 / rho**3
        rows, cols, vals = [], [], []
        for a, b in self.faces:
            m = 0.5 * (rho[a] + rho[b])
            g = psi[b] - psi[a]
            da = self.w * (0.5 * g - m * dpsi[a])   # d flux / d rho_a
            db = self.w * (0.5 * g + m * dpsi[b])   # d flux / d rho_b
            # L_a += flux, L_b -= flux
            rows += [a, a, b, b]
            cols += [a, b, a, b]
            vals += [da, db, -da, -db]
        return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(self.n, self.n))


def _chi2(rho, s, vol):
    return float(vol * np.sum((s / rho - 1.0) ** 2 * rho))


def ultrafast_diffusion(mu0, mu_star, T: float, *, times=None, length: float = 2.0 * math.pi,
                        dt0: float | None = None, max_dt: float | None = None,
                        tol: float = 1e-10, min_dt: float = 1e-14, max_newton: int = 30,
                        max_steps: int | None = None) -> DiffusionResult:
    """Solve d_t mu = -1/2 div(mu grad((mu*/mu)^2)) (weighted ultra-fast diffusion) on a 1-D/2-D torus.

    The lam -> 0 limit of VarPro (arXiv:2504.18208, Sec. 4-5): the Wasserstein-2 gradient flow
    of E(mu) = 1/2 int (mu*)^2 / mu. Finite volumes on a uniform periodic grid, fully implicit
    Euler steps solved by Newton with an adaptive step: mass is conserved and the discrete energy
    (hence chi^2(mu* | mu)) decreases at every step, for any step size (module docstring).

    Parameters
    ----------
    mu0, mu_star : array_like or Tensor, shape (n,) or (n, n)
        Initial and target densities on the grid with cell centres :func:`periodic_grid` -- the
        circle R/(L Z) -- or the square torus grid, cells of side h = length / n (n >= 3).
        ``mu0`` must be > 0, ``mu_star`` >= 0, with equal masses (sum x h^d, relative tolerance
        1e-6).
    T : float
        Final time (> 0), in the time units of :func:`varpro_train` (t = steps x time_scale).
    times : array_like, optional
        Output times in [0, T] (default ``[T]``); the scheme steps exactly onto each.
    length : float, default 2 pi
        Period L of the domain (2 pi: angles in [-pi, pi)).
    dt0 : float, optional
        First step (default 1e-4 min(T, 1)).
    max_dt : float, optional
        Largest step (default T / 200; backward Euler is first-order in time, so this bounds the
        time-discretisation error).
    tol : float, default 1e-10
        Newton tolerance on the relative max-norm residual.
    min_dt : float, default 1e-14
        Smallest step allowed before giving up (``converged=False`` + ``ConvergenceWarning``).
    max_newton : int, default 30
        Newton iteration cap per step. The step is multiplied by 1.5 after a Newton solve in <= 4
        iterations, halved on failure or loss of positivity.
    max_steps : int, optional
        Cap on the attempted time steps, accepted or rejected (default 20 ceil(T / max_dt) + 200);
        reaching it stops the integration with ``converged=False`` and a ``ConvergenceWarning``.

    Returns
    -------
    DiffusionResult
        NumPy in, NumPy out; tensor in, tensors out on the same dtype/device but *detached* (the
        Newton solves run in float64 SciPy: no autograd through the PDE).

    Raises
    ------
    InputError
        Bad shapes (fewer than 3 cells per axis, a non-square torus), ``mu0`` not positive,
        ``mu_star`` negative, mismatched masses, ``times`` outside [0, T], bad scalars.

    Examples
    --------
    From the uniform law towards a teacher density: mass is kept and chi^2 decreases.

    >>> import numpy as np
    >>> from measureflow.meanfield import circle_teacher_density, periodic_grid, ultrafast_diffusion
    >>> grid = periodic_grid(12)
    >>> target = circle_teacher_density(grid, 4.0)
    >>> target, mu0 = target / (target.sum() * 2 * np.pi / 12), np.full(12, 1 / (2 * np.pi))
    >>> res = ultrafast_diffusion(mu0, target, 0.2, times=[0.0, 0.1, 0.2], max_dt=0.05)
    >>> np.round(res.mass, 10).tolist(), bool(np.all(np.diff(res.chi2) < 0)), res.converged
    ([1.0, 1.0, 1.0], True, True)

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 4-5.
    """
    ctx = ArrayContext(mu0, mu_star)
    m0 = ctx.tensor(mu0, "mu0")
    ms = ctx.tensor(mu_star, "mu_star")
    check_ndim(m0, "mu0", (1, 2))
    if ms.shape != m0.shape:
        raise InputError(f"mu_star: expected the grid shape of mu0 {tuple(m0.shape)}, "
                         f"got {tuple(ms.shape)}")
    if min(m0.shape) < 3:
        raise InputError(f"mu0: needs at least 3 cells per axis, got shape {tuple(m0.shape)}")
    if m0.ndim == 2 and m0.shape[0] != m0.shape[1]:
        raise InputError(f"mu0: torus grids must be square (n, n), got {tuple(m0.shape)}")
    if bool((m0.detach() <= 0).any()):
        raise InputError("mu0: the initial density must be positive everywhere")
    check_nonnegative(ms, "mu_star")
    T = check_positive(T, "T")
    length = check_positive(length, "length")
    tol = check_positive(tol, "tol")
    min_dt = check_positive(min_dt, "min_dt")
    max_newton = check_int(max_newton, "max_newton", min_value=1)
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", min_value=1)
    h = length / m0.shape[0]
    vol = h ** m0.ndim
    check_masses_match(m0 * vol, ms * vol, ("mu0", "mu_star"))
    if times is None:
        out_times = np.array([T])
    else:
        out_times = np.sort(np.asarray(ctx.tensor(times, "times").detach().cpu().numpy(),
                                       float).ravel())
        # a float32 times = T rounds above T: allow the input dtype's rounding, then clip
        teps = (torch.finfo(times.dtype).eps if isinstance(times, torch.Tensor)
                and times.is_floating_point() else 1e-12)
        if out_times.size == 0 or out_times[0] < 0 or out_times[-1] > T * (1 + 4 * teps):
            raise InputError(f"times: must be non-empty and lie in [0, T={T}]")
        out_times = np.minimum(out_times, T)
    rho = m0.detach().cpu().numpy().astype(float).ravel().copy()
    s = ms.detach().cpu().numpy().astype(float).ravel()
    op = _Operator(ms.detach().cpu().numpy().astype(float), h)
    eye = sp.identity(op.n, format="csc")
    dt = dt0 if dt0 is not None else 1e-4 * min(T, 1.0)
    dt = check_positive(dt, "dt0")
    max_dt = check_positive(max_dt if max_dt is not None else T / 200.0, "max_dt")
    dt = min(dt, max_dt)
    if max_steps is None:
        max_steps = 20 * math.ceil(T / max_dt) + 200

    t = 0.0
    out, errs = [], []
    ok = True
    why = ""
    n_acc = n_try = 0
    for t_out in out_times:
        while t < t_out - 1e-14 * max(1.0, T) and ok:
            if n_try >= max_steps:
                ok, why = False, f"max_steps={max_steps} attempted steps reached"
                break
            n_try += 1
            step = min(dt, t_out - t)
            new, res = _newton(rho, step, op, eye, tol, max_newton)
            if new is None:
                dt = 0.5 * step
                if dt < min_dt:
                    ok, why = False, f"time step fell below min_dt={min_dt:g}"
                continue
            rho, t = new, t + step
            n_acc += 1
            errs.append(res[1])
            if res[0] <= 4 and step >= dt * (1 - 1e-12):
                dt = min(1.5 * dt, max_dt)
        out.append(rho.copy())
    if not ok:
        warnings.warn(f"ultrafast_diffusion: {why} at t={t:.4g} < T={T:g} (outputs after t are "
                      "the last accepted state); the result has converged=False",
                      ConvergenceWarning, stacklevel=2)
    dens = np.stack(out).reshape((len(out_times),) + tuple(m0.shape))
    grid1 = periodic_grid(m0.shape[0], length)
    grid = grid1 if m0.ndim == 1 else (grid1, grid1.copy())
    chi2 = np.array([_chi2(r.ravel(), s, vol) for r in dens])
    mass = dens.reshape(len(out_times), -1).sum(1) * vol

    def t_(a):
        return torch.as_tensor(a, dtype=ctx.dtype, device=ctx.device)

    grid_t = t_(grid) if m0.ndim == 1 else tuple(t_(g) for g in grid)
    result = DiffusionResult(times=t_(out_times), densities=t_(dens), grid=grid_t,
                             cell_volume=vol, chi2=t_(chi2), mass=t_(mass), converged=ok,
                             n_iter=n_acc, errors=errs)
    return ctx.wrap(result)


def _newton(rho_old, dt, op: _Operator, eye, tol, max_newton):
    """Backward Euler step rho - rho_old - dt L(rho) = 0 by Newton; None on failure."""
    rho = rho_old.copy()
    scale = float(np.max(np.abs(rho_old)))
    for it in range(1, max_newton + 1):
        R = rho - rho_old - dt * op.apply(rho)
        err = float(np.max(np.abs(R))) / scale
        if not math.isfinite(err):
            return None, None
        if err <= tol:
            return rho, (it - 1, err)
        J = eye - dt * op.jacobian(rho)
        try:
            delta = spla.spsolve(J, -R)
        except RuntimeError:  # pragma: no cover - singular Jacobian
            return None, None
        if not np.all(np.isfinite(delta)):
            return None, None
        # damped step keeping positivity
        step = 1.0
        while np.any(rho + step * delta <= 0):
            step *= 0.5
            if step < 1e-4:
                return None, None
        rho = rho + step * delta
    return None, None
