"""Entropic JKO steps for Wasserstein gradient flows of free energies on grids.

JKO scheme (Jordan, Kinderlehrer & Otto 1998; course notes arXiv 2505.06589, Sec. "Wasserstein
gradient flows"): with cost |x - y|^2 (no 1/2),

    rho_{k+1} = argmin_rho  W_2^2(rho_k, rho) / (2 tau) + F(rho),

a first-order (implicit Euler) time discretisation of d_t rho = div(rho grad F'(rho)).

Entropic version (Peyre 2015, "Entropic approximation of Wasserstein gradient flows", SIAM J.
Imaging Sci., Secs. 2-3): on a grid with cell masses, W_2^2 is replaced by
min_{pi 1 = p} ``<C, pi>`` + eps sum pi (log pi - 1), so that one step is

    min_pi KL(pi | xi) + (2 tau / eps) F(pi^T 1)   s.t.  pi 1 = rho_k,   xi = exp(-C / eps),

solved by Peyre's generalised Sinkhorn iterations (his Sec. 3.2), here in the log domain:
u = log p - LSE_C(v), w = LSE_C(u), log rho = log prox^KL_{sigma F}(e^w) (sigma = 2 tau/eps),
v = log rho - w. The kernel is separable on the grid, so LSE_C is applied axis by axis.

Free energies (densities rho on the grid, integrals as sums x cell volume):

- ``"heat"``:          F = D int rho log rho                     (d_t rho = D Lap rho)
- ``"fokker_planck"``: F = D int rho log rho + int V rho          (d_t rho = D Lap rho + div(rho grad V))
- ``"porous_medium"``: F = D/(m-1) int rho^m + int V rho          (d_t rho = D Lap rho^m + ...)
- ``"crowd"``:         F = int V rho + i{rho <= cap}             (Maury, Roudneff-Chupin &
  Santambrogio 2010; Peyre 2015 Sec. 4.3)

Entropic blur: the eps-term adds diffusion. For the heat flow of a Gaussian we derived (by
minimising the entropic step over Gaussian couplings) that one step acts like an implicit Euler
step with D replaced by D + eps / (4 tau); so keep eps << 4 tau D, and eps >~ h^2 for the grid
to resolve the kernel. Written by hand in torch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.progress import check_callback
from ..core.results import SolverResult, report_convergence
from ..core.validation import (
    check_choice,
    check_in_range,
    check_int,
    check_ndim,
    check_nonnegative,
    check_positive,
    check_shape,
)
from ._grid import check_extent
from .geometry import Grid
from .loop import Hard, Prox, sinkhorn_loop

__all__ = ["jko", "JKOResult"]

_ENERGIES = ("heat", "fokker_planck", "porous_medium", "crowd")


@dataclasses.dataclass(frozen=True, kw_only=True)
class JKOResult(SolverResult):
    """Result of :func:`jko`.

    Attributes
    ----------
    densities:
        rho_k at times k tau, k = 0..n_steps, shape (n_steps + 1, *grid) (densities: mass =
        sum x cell volume).
    times:
        (n_steps + 1,) times k tau.
    energies:
        Free energy F(rho_k) for each k (the constraint part of ``crowd`` excluded).
    converged, n_iter, errors:
        ``converged`` is True iff every inner solve met ``tol``; ``n_iter`` is the total number of
        inner iterations; ``errors`` holds the final inner error of each step (relative L1
        violation of the fixed marginal, see :func:`jko`).
    """

    densities: Any = None
    times: Any = None
    energies: Any = None


def jko(rho0, *, energy: str = "heat", tau: float, n_steps: int, eps: float | None = None,
        extent=None, potential=None, diffusion: float = 1.0, exponent: float = 2.0,
        cap: float | None = None, max_iter: int = 5000, tol: float = 1e-7, callback=None,
        verbose: bool = False) -> JKOResult:
    """Run ``n_steps`` entropic JKO steps of size ``tau`` from the grid density ``rho0``.

    Parameters
    ----------
    rho0:
        Nonnegative initial density on a regular cell-centred grid over ``extent``, shape (n_1,)
        or (n_1, n_2); its mass sum(rho0) x cell volume is kept by every step.
    energy:
        ``"heat"``, ``"fokker_planck"``, ``"porous_medium"`` or ``"crowd"`` (formulas in the
        module docstring).
    tau:
        JKO time step (the flow's time; cost |x - y|^2 with the 1/(2 tau) factor).
    n_steps:
        Number of steps.
    eps:
        Entropic regularisation (units of squared length). Default ``2 h^2`` with h the largest
        grid spacing. The blur it adds acts as extra diffusion of about eps / (4 tau).
    extent:
        ((low, high), ...) per axis, default the unit interval / square.
    potential:
        V on the grid: an array of the grid's shape or a callable V(X) on the (N, d) torch tensor
        of cell centres (row-major grid order) (``fokker_planck``, ``porous_medium`` (optional) and ``crowd``).
    diffusion:
        D > 0 in the heat, Fokker-Planck and porous-medium energies.
    exponent:
        m > 1 of the porous-medium energy.
    cap:
        Density cap of ``crowd`` (the grid must be able to hold the mass below it).
    max_iter, tol:
        Inner stopping rule, per step: ||pi 1 - rho_k||_1 / mass <= tol (the only marginal not
        enforced exactly by the last update), at most ``max_iter`` generalised Sinkhorn
        iterations (warm-started from the previous step). If some step misses ``tol``, a
        ``ConvergenceWarning`` is emitted and ``converged`` is False. After each step the new
        density is rescaled to the exact mass of ``rho0``.
    callback, verbose:
        ``callback(state) -> bool | None`` once per inner iteration (a
        :class:`~measureflow.ot.loop.SinkhornState`, ``state.label = "step k"``, ``state.error``
        the absolute L1 violation in mass units); True stops the current step. ``verbose=True``
        shows a progress bar per step.

    Returns
    -------
    JKOResult
        ``densities``, ``times``, ``energies``, ``converged``, ``n_iter``, ``errors``. Torch
        input gives torch output (same device/dtype) but detached: no autograd through the steps.

    Raises
    ------
    InputError
        A negative, non-finite or massless ``rho0``, an unknown ``energy``, a missing or
        misshaped ``potential``, non-positive ``tau`` / ``eps`` / ``diffusion``, ``exponent``
        <= 1, a ``cap`` too small for the mass, bad ``n_steps`` / ``max_iter`` / ``tol`` /
        ``extent``.

    Examples
    --------
    Three heat steps from a centred bump: the mass and the mean are kept (symmetry), the
    energy D int rho log rho decreases and the variance grows (by about 2 D_eff tau per step,
    D_eff = D + eps / (4 tau) with the entropic blur):

    >>> import numpy as np
    >>> from measureflow import ot
    >>> x = (np.arange(20) + 0.5) / 20
    >>> rho0 = np.exp(-(x - 0.5) ** 2 / (2 * 0.05 ** 2))
    >>> rho0 = rho0 / (rho0.sum() / 20)
    >>> res = ot.jko(rho0, tau=0.002, n_steps=3)
    >>> bool(res.converged)
    True
    >>> print(np.round(res.densities.sum(1) / 20, 9), np.round(res.densities @ x / 20, 9))
    [1. 1. 1. 1.] [0.5 0.5 0.5 0.5]
    >>> bool(np.all(np.diff(res.energies) < 0))
    True
    >>> var = res.densities @ (x - 0.5) ** 2 / 20
    >>> bool(np.all(np.diff(var) > 0.004))
    True

    References
    ----------
    R. Jordan, D. Kinderlehrer, F. Otto, "The variational formulation of the Fokker-Planck
    equation", SIAM J. Math. Anal. 29(1), 1998. G. Peyre, "Entropic approximation of
    Wasserstein gradient flows", SIAM J. Imaging Sci. 8(4), 2015.
    """
    callback = check_callback(callback)
    ctx = ArrayContext(rho0, potential if not callable(potential) else None)
    r0 = check_nonnegative(ctx.tensor(rho0, "rho0"), "rho0").detach()
    check_ndim(r0, "rho0", (1, 2))
    if r0.numel() == 0:
        raise InputError(f"rho0: empty grid of shape {tuple(r0.shape)}")
    d = r0.ndim
    check_choice(energy, "energy", _ENERGIES)
    tau = check_positive(tau, "tau")
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol")
    diffusion = check_positive(diffusion, "diffusion")
    exponent = check_in_range(exponent, "exponent", 1.0, math.inf, low_open=True, high_open=True)
    ext = check_extent(extent, d)
    hs = [(hi - lo) / n for (lo, hi), n in zip(ext, r0.shape)]
    vol = math.prod(hs)
    eps = 2.0 * max(hs) ** 2 if eps is None else check_positive(eps, "eps")
    dtype, dev = ctx.dtype, ctx.device
    axes = [lo + h * (torch.arange(n, dtype=dtype, device=dev) + 0.5)
            for (lo, _), h, n in zip(ext, hs, r0.shape)]
    # potential
    if potential is None:
        if energy in ("fokker_planck", "crowd"):
            raise InputError(f"potential: required for energy={energy!r}")
        V = torch.zeros_like(r0)
    elif callable(potential):
        mesh = torch.meshgrid(*axes, indexing="ij")
        X = torch.stack([g.reshape(-1) for g in mesh], 1)
        V = ctx.tensor(potential(X), "potential").detach()
        if V.numel() != r0.numel():
            raise InputError(f"potential: callable returned {V.numel()} values for "
                             f"{r0.numel()} grid cells")
        V = V.reshape(r0.shape)
    else:
        V = check_shape(ctx.tensor(potential, "potential").detach(), "potential", r0.shape)
    mass = float(r0.sum()) * vol
    if not mass > 0:
        raise InputError("rho0: total mass must be positive")
    if energy == "crowd":
        if cap is None:
            raise InputError("cap: required for energy='crowd'")
        cap = check_positive(cap, "cap")
        if mass > cap * vol * r0.numel() * (1 - 1e-9):
            raise InputError(f"cap: the grid holds at most {cap * vol * r0.numel():.4g} mass "
                             f"below the cap, rho0 has {mass:.4g}")
        if float(r0.max()) > cap * (1 + 1e-9):
            raise InputError(f"rho0: exceeds the cap ({float(r0.max()):.4g} > {cap:.4g})")
    sigma = 2.0 * tau / eps
    D, m_exp = diffusion, exponent
    log_vol = math.log(vol)
    geom = Grid(axes, _validated=True)
    def prox(w: torch.Tensor, _eps: float = eps) -> torch.Tensor:
        """log of argmin_mu sigma F(mu) + KL(mu | e^w) on cell masses mu."""
        if energy in ("heat", "fokker_planck"):
            return (w - sigma * D * (1.0 - log_vol) - sigma * V) / (1.0 + sigma * D)
        if energy == "crowd":
            return torch.minimum(w - sigma * V, torch.full_like(w, math.log(cap * vol)))
        # porous medium: g(s) = A e^{k s} + s - c = 0 with k = m - 1, A = sigma D m/(m-1)
        # vol^{-k}, c = w - sigma V; s = c - W(A k e^{k c}) / k (Lambert W), started from the
        # asymptotics of W and polished by Newton (g is increasing and convex).
        fin = torch.isfinite(w)
        c = torch.where(fin, w, torch.zeros_like(w)) - sigma * V
        k = m_exp - 1.0
        logA = math.log(sigma * D * m_exp / k) - k * log_vol
        zl = logA + math.log(k) + k * c                      # log of W's argument
        big = zl > 1.0
        W0 = torch.where(big, zl - torch.log(zl.clamp_min(1.0)), torch.exp(zl.clamp(max=1.0)))
        s = c - W0 / k
        for it in range(60):
            e = torch.exp(logA + k * s)
            step = (e + s - c) / (1.0 + k * e)
            s = s - step
            if it % 4 == 3 and float(step.abs().max()) <= 1e-13 * (1.0 + float(s.abs().max())):
                break
        return torch.where(fin, s, torch.full_like(s, -math.inf))

    def free_energy(rho: torch.Tensor) -> float:
        pot = float((V * rho).sum()) * vol
        if energy in ("heat", "fokker_planck"):
            ent = torch.where(rho > 0, rho * torch.log(rho.clamp_min(1e-300)),
                              torch.zeros_like(rho))
            return D * float(ent.sum()) * vol + (pot if energy == "fokker_planck" else 0.0)
        if energy == "porous_medium":
            return D / (m_exp - 1.0) * float((rho ** m_exp).sum()) * vol + pot
        return pot

    # One step = the engine's loop on the grid geometry: rows hard (pi 1 = rho_k, the
    # measured block), columns the KL prox of the free energy (Peyre 2015, Sec. 3.2). The
    # iteration starts (and each new step restarts) with the row projection from the carried
    # column potential, as in Peyre's scheme.
    with torch.no_grad():
        p = r0 * vol
        g = torch.zeros_like(p)
        ones = torch.ones_like(p)
        col = Prox(ones, prox)
        dens = [r0.clone()]
        energies = [free_energy(r0)]
        errors: list[float] = []
        total = 0
        all_conv = True
        for k in range(n_steps):
            row = Hard(p)
            f = row.update(torch.zeros_like(p), geom.lse(torch.zeros_like(p), g / eps, eps, 1),
                           eps)
            out = sinkhorn_loop(geom, row, col, eps, tol=tol * mass,
                                max_iter=max(max_iter - 1, 1), init=(f, g), callback=callback,
                                verbose=verbose, label=f"step {k + 1}", description="ot.jko")
            total += out.n_iter + 1
            all_conv &= out.converged
            errors.append(out.error / mass)
            f = row.update(out.f, out.logr, eps)       # the row projection that closes the step
            g = out.g
            u = f / eps + row.logw
            rho_mass = torch.exp(geom.lse(u, g / eps, eps, axis=0))
            rho_mass = torch.where(torch.isfinite(rho_mass), rho_mass, torch.zeros_like(rho_mass))
            rho_mass = rho_mass * (mass / float(rho_mass.sum()))
            p = rho_mass
            dens.append(p / vol)
            energies.append(free_energy(p / vol))
            if out.stopped:
                all_conv = all_conv and out.converged
        densities = torch.stack(dens)
        times = tau * torch.arange(n_steps + 1, dtype=dtype, device=dev)
    report_convergence(all_conv, f"jko({energy})", total, max(errors), tol)
    return ctx.wrap(JKOResult(densities=densities, times=times,
                              energies=torch.tensor(energies, dtype=dtype, device=dev),
                              converged=all_conv, n_iter=total, errors=errors))
