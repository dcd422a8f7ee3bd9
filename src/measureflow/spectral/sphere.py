"""Lift of positively 2-homogeneous mean-field models to spectral unbalanced transport on the
sphere (arXiv 2604.04891, App. J).

If each particle's contribution is positively 2-homogeneous (two-layer ReLU: x = (u, v),
Phi(x; z) = u relu(v . z)), then int Phi dmu = int Phi(omega) dnu(omega) with
nu = Pi_2(mu) = sum_i w_i |x_i|^2 delta_{x_i/|x_i|}, the force is 1-homogeneous and the
normalized velocity v = J^mu_p(g) depends on mu only through nu. Writing
v(r omega) = r (b(omega) omega + tau(omega)) with tau tangent, the measure nu on the sphere moves
by  d_t nu + div_S(nu tau) = 2 b nu : tangent transport plus mass change. For the trace gauge
(p = 1) this is the Wasserstein-Fisher-Rao flow; for p > 1 a spectral unbalanced transport.

The functions here compute the sphere dynamics *intrinsically* (forces evaluated at unit points
with masses nu, no radii) and :func:`lift_check` compares them with the particle dynamics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.validation import check_int, check_ndim, check_positive, check_weights
from ..ot.integrate import FlowResult, autograd_force, odeint, result_alias
from .schatten import _particle_lmo, check_p

__all__ = ["lift_to_sphere", "sphere_velocity", "sphere_flow", "SphereFlowResult", "lift_check"]


def lift_to_sphere(x, weights=None):
    """Lift mu = sum_i w_i delta_{x_i} to nu = Pi_2(mu) = sum_i w_i |x_i|^2 delta_{omega_i}.

    omega_i = x_i / |x_i|, mass_i = w_i |x_i|^2 (the 2-homogeneous projection of App. J).

    Parameters
    ----------
    x : array_like or Tensor, shape (n, d)
        Particles, none at the origin (no direction there).
    weights : array_like, shape (n,), optional
        Nonnegative weights (default uniform 1/n).

    Returns
    -------
    (omega, mass) : arrays, shapes (n, d) and (n,)

    Raises
    ------
    InputError
        ``x`` not 2-D, a particle at the origin, bad weights.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral.sphere import lift_to_sphere
    >>> omega, mass = lift_to_sphere(np.array([[3.0, 4.0], [0.0, 2.0]]), [1.0, 1.0])
    >>> omega.tolist(), mass.tolist()
    ([[0.6, 0.8], [0.0, 1.0]], [25.0, 4.0])

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. J.
    """
    ctx = ArrayContext(x, weights)
    x = ctx.tensor(x, "x")
    check_ndim(x, "x", 2)
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"), x.shape[0],
                      "weights", like=x)
    r = x.norm(dim=1)
    if bool((r == 0).any()):
        raise InputError("x: a particle sits at the origin (no direction on the sphere)")
    return ctx.wrap((x / r[:, None], w * r ** 2))


def sphere_velocity(x, v):
    """Split a velocity into radial and tangent parts: v(x) = |x| (b omega + tau), omega = x/|x|.

    b = <v, omega> / |x| (the mass growth rate is 2 b) and tau = v / |x| - b omega, tangent
    (tau . omega = 0), row by row (App. J).

    Parameters
    ----------
    x : array_like or Tensor, shape (n, d)
        Particles, none at the origin.
    v : array_like or Tensor, shape (n, d)
        Velocities at x.

    Returns
    -------
    (b, tau) : arrays, shapes (n,) and (n, d)

    Raises
    ------
    InputError
        ``x`` not 2-D, ``v`` of another shape, a particle at the origin.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.spectral.sphere import sphere_velocity
    >>> b, tau = sphere_velocity(np.array([[3.0, 4.0], [0.0, 2.0]]),
    ...                          np.array([[3.0, 4.0], [1.0, 0.0]]))
    >>> b.tolist(), tau.tolist()                         # radial, then tangent
    ([1.0, 0.0], [[0.0, 0.0], [0.5, 0.0]])

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. J.
    """
    ctx = ArrayContext(x, v)
    x, v = ctx.tensor(x, "x"), ctx.tensor(v, "v")
    check_ndim(x, "x", 2)
    if v.shape != x.shape:
        raise InputError(f"v: expected shape {tuple(x.shape)}, got {tuple(v.shape)}")
    r = x.norm(dim=1, keepdim=True)
    if bool((r == 0).any()):
        raise InputError("x: a particle sits at the origin (no direction on the sphere)")
    om, V = x / r, v / r
    b = (om * V).sum(1)
    return ctx.wrap((b, V - b[:, None] * om))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SphereFlowResult(FlowResult):
    """Result of :func:`sphere_flow`.

    Attributes
    ----------
    trajectory : (array (T+1, n, d), array (T+1, n))
        Recorded unit directions and masses (also as the aliases ``omegas`` and ``masses``).
    final : (array (n, d), array (n,))
        (omega, mass) at the end.
    energies : array, shape (T+1,)
    times : array, shape (T+1,)
    converged, n_iter, errors
        ``True``, the number of steps, ``[]``.
    """

    energies: Any = None
    omegas = result_alias("trajectory", 0, "recorded unit directions")
    masses = result_alias("trajectory", 1, "recorded masses")


def _sphere_retraction(state):
    """(omega, mass) -> (omega / |omega|, mass |omega|^2): the lift of a particle step."""
    Om, m = state
    rho2 = (Om * Om).sum(1)
    return Om / rho2.sqrt()[:, None], m * rho2


def sphere_flow(energy: Callable, omega0, mass0, *, p=math.inf, step: float, n_steps: int):
    """Intrinsic sphere dynamics (omega, mass) of a 2-homogeneous energy, explicit step.

    ``energy(X, w)`` is Fcal(sum_i w_i delta_{X_i}), positively 2-homogeneous in each row of X;
    it is evaluated at unit points ``omega`` with masses. With tau, b from the normalized
    velocity v = b omega + tau (:func:`particle_lmo` with weights = masses), one step is the
    exact image of the particle Euler step x <- x + h v(x) written on the sphere:
    omega <- (omega (1 + h b) + h tau) / rho, mass <- mass rho^2, rho^2 = (1 + h b)^2 + h^2 |tau|^2
    (to first order: d omega/dt = tau, d mass/dt = 2 b mass), i.e. an Euler step of
    (omega, mass) with velocity (v, 0) followed by the retraction
    (omega, mass) -> (omega / |omega|, mass |omega|^2) (:func:`measureflow.ot.integrate.odeint`).
    For p = 1 this is the Wasserstein-Fisher-Rao flow; for p > 1 a spectral unbalanced
    transport (App. J).

    Parameters
    ----------
    energy : callable
        ``energy(X, w) -> scalar tensor``, Fcal(sum_i w_i delta_{X_i}), positively
        2-homogeneous in each row of X.
    omega0 : array_like or Tensor, shape (n, d)
        Unit directions (rows of norm 1 within 1e-8).
    mass0 : array_like, shape (n,)
        Positive masses.
    p : float or "inf", default inf
        Schatten index in [1/2, inf].
    step : float
        Time step h (> 0).
    n_steps : int
        Number of steps (>= 0).

    Returns
    -------
    SphereFlowResult

    Raises
    ------
    InputError
        Rows of ``omega0`` not unit, non-positive masses, ``energy`` not callable, bad ``p`` /
        ``step`` / ``n_steps``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.5], [-0.3, 1.0], [0.2, -1.0]], dtype=torch.float64)
    >>> target = torch.tensor([0.5, 0.2, -0.4], dtype=torch.float64)
    >>> def energy(X, w):                  # two-layer ReLU: Phi(x; z) = u relu(v . z), x = (u, v)
    ...     pred = (w * X[:, 0] * torch.relu(X[:, 1:] @ z.T).T).sum(1)
    ...     return 0.5 * ((pred - target) ** 2).mean()
    >>> x0 = np.array([[1.0, 0.5, 0.5], [0.5, -1.0, 0.3], [-0.7, 0.2, -0.9]])
    >>> from measureflow.spectral.sphere import lift_to_sphere, sphere_flow
    >>> omega, mass = lift_to_sphere(x0)
    >>> r = sphere_flow(energy, omega, mass, step=0.05, n_steps=20)
    >>> r.omegas.shape, bool(r.energies[-1] < r.energies[0])
    ((21, 3, 3), True)

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. J.
    """
    ctx = ArrayContext(omega0, mass0)
    Om = ctx.tensor(omega0, "omega0").detach().clone()
    check_ndim(Om, "omega0", 2)
    m = check_weights(ctx.tensor(mass0, "mass0"), Om.shape[0], "mass0", like=Om).clone()
    if bool((m <= 0).any()):
        raise InputError("mass0: masses must be > 0")
    if not callable(energy):
        raise InputError("energy: must be a callable energy(X, w) -> scalar tensor")
    nrm = Om.norm(dim=1)
    if float((nrm - 1).abs().max()) > 1e-8:
        raise InputError("omega0: rows must have unit norm")
    p = check_p(p)
    h = check_positive(step, "step")
    n_steps = check_int(n_steps, "n_steps", min_value=0)

    def rhs(t, state):
        O, mm = state
        E, g = autograd_force(energy, O, mm, mm)  # 1-homogeneous force on the unit sphere
        return (_particle_lmo(g, mm, p), torch.zeros_like(mm)), E

    res = odeint(rhs, (Om, m), step=h, n_steps=n_steps, method="euler",
                    project=_sphere_retraction, has_aux=True, name="sphere_flow")
    return ctx.wrap(SphereFlowResult(final=res.final, trajectory=res.trajectory,
                                     energies=torch.stack(res.aux), times=res.times,
                                     converged=True, n_iter=n_steps, errors=[]))


def lift_check(energy: Callable, x0, weights=None, *, p=math.inf, step: float, n_steps: int):
    """Compare the particle flow of ``energy`` with the sphere flow of its lift (App. J check).

    Runs :func:`~measureflow.spectral.flows.particle_flow` from x0 and :func:`sphere_flow`
    from :func:`lift_to_sphere` (x0) and returns the max deviations between the lifted particle
    trajectory and the sphere trajectory. They agree to round-off when the model is
    2-homogeneous; a non-homogeneous energy gives O(1) deviations.

    Parameters
    ----------
    energy : callable
        ``energy(X, w) -> scalar tensor``.
    x0 : array_like or Tensor, shape (n, d)
        Initial particles, none at the origin.
    weights : array_like, shape (n,), optional
        Positive weights (default uniform 1/n).
    p, step, n_steps :
        As in :func:`sphere_flow`.

    Returns
    -------
    dict
        ``{"direction": max |x/|x| - omega|, "mass": max relative mass error,
        "energy": max relative energy error}`` (floats).

    Raises
    ------
    InputError
        As :func:`~measureflow.spectral.flows.particle_flow` and :func:`sphere_flow`.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.5], [-0.3, 1.0], [0.2, -1.0]], dtype=torch.float64)
    >>> target = torch.tensor([0.5, 0.2, -0.4], dtype=torch.float64)
    >>> def energy(X, w):                  # two-layer ReLU: Phi(x; z) = u relu(v . z), x = (u, v)
    ...     pred = (w * X[:, 0] * torch.relu(X[:, 1:] @ z.T).T).sum(1)
    ...     return 0.5 * ((pred - target) ** 2).mean()
    >>> x0 = np.array([[1.0, 0.5, 0.5], [0.5, -1.0, 0.3], [-0.7, 0.2, -0.9]])
    >>> from measureflow.spectral.sphere import lift_check
    >>> dev = lift_check(energy, x0, step=0.05, n_steps=20)
    >>> all(v < 1e-10 for v in dev.values())              # 2-homogeneous: exact lift
    True

    References
    ----------
    G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv:2604.04891, 2026, App. J.
    """
    from .flows import particle_flow

    if not callable(energy):
        raise InputError("energy: must be a callable energy(X, w) -> scalar tensor")
    ctx = ArrayContext(x0, weights)
    x0 = ctx.tensor(x0, "x0")
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"), x0.shape[0],
                      "weights", like=x0)
    part = particle_flow(lambda X: energy(X, w), x0, p=p, weights=w, step=step, n_steps=n_steps)
    om0, m0 = lift_to_sphere(x0, w)
    sph = sphere_flow(energy, om0, m0, p=p, step=step, n_steps=n_steps)
    X = part.trajectory
    r = X.norm(dim=2)
    dir_err = float((X / r[..., None] - sph.omegas).abs().max())
    mass_err = float(((w * r ** 2 - sph.masses).abs() / sph.masses).max())
    en_err = float(((part.energies - sph.energies).abs()
                    / part.energies.abs().clamp_min(1e-300)).max())
    return {"direction": dir_err, "mass": mass_err, "energy": en_err}
