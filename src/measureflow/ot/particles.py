"""Particle Wasserstein gradient flows (interaction energies, MMD, any autograd energy).

For an empirical measure mu = sum_i w_i delta_{x_i} and a free energy F, the Wasserstein
gradient flow d_t mu = div(mu grad dF/dmu) (course notes arXiv 2505.06589, Sec. "Wasserstein
gradient flows"; Carrillo, McCann & Villani 2003 for interaction energies; Arbel, Korba, Salim &
Gretton 2019, "Maximum Mean Discrepancy gradient flow", for MMD; Chizat & Bach 2018 /
Mei, Montanari & Nguyen 2018 for two-layer networks) moves each particle with the velocity

    dx_i/dt = -grad_x (dF/dmu)(x_i) = -(1 / w_i) dF(mu)/dx_i,

which we obtain by autograd of F(x) and integrate by explicit Euler (:mod:`.integrate`):
x_i <- x_i - step (1/w_i) dF/dx_i (+ sqrt(2 step T) N(0, I) when ``temperature`` T > 0, which
adds T int mu log mu to F: the Langevin / McKean-Vlasov particle system).

Energies:

- ``"interaction"``: F = sum_i w_i V(x_i) + 1/2 sum_ij w_i w_j W(x_i - x_j)
- ``"mmd"``: F = 1/2 MMD_k^2(mu, nu) = 1/2 (E k(x, x') - 2 E k(x, y) + E k(y, y')),
  nu = sum_j b_j delta_{y_j} the ``target``; k Gaussian exp(-|x - y|^2 / (2 bandwidth^2)) or
  ``"energy"``, k(x, y) = -|x - y| (energy distance).
- a callable ``energy(x, w) -> scalar tensor`` (torch tensors x (n, d), w (n,); differentiable
  in x).

Written by hand in torch (autograd forces; no external library).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.progress import check_callback
from ..core.random import make_generator
from ..core.validation import (
    check_choice,
    check_int,
    check_ndim,
    check_nonnegative_scalar,
    check_points,
    check_positive,
    check_weights,
)
from .integrate import FlowResult, ParticleFlow, autograd_force, result_alias

__all__ = ["particle_flow", "ParticleFlowResult", "mmd2"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParticleFlowResult(FlowResult):
    """Result of :func:`particle_flow` (a fixed-step integration: ``converged=True`` unless a
    ``callback`` stopped it early).

    Attributes
    ----------
    final:
        Final particles (n, d).
    trajectory:
        Saved particles (n_saved, n, d), including the start and the end.
    times:
        (n_saved,) times (step x iteration).
    energies:
        F at the saved times (the deterministic part, without the temperature's entropy).
    n_iter:
        Number of steps.
    positions:
        Alias of ``final`` (its name before 0.2).
    """

    energies: Any = None
    positions = result_alias("final", doc="the final particles; its name before 0.2")


def _kernel(x: torch.Tensor, y: torch.Tensor, kernel: str, bandwidth: float) -> torch.Tensor:
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    if kernel == "gaussian":
        return torch.exp(-d2 / (2.0 * bandwidth ** 2))
    return -d2.clamp_min(1e-300).sqrt()


def mmd2(x, y, a=None, b=None, *, kernel: str = "gaussian", bandwidth: float = 1.0):
    """Squared MMD between weighted point clouds (V-statistic).

    MMD_k^2(mu, nu) = E k(x, x') - 2 E k(x, y) + E k(y, y') for mu = sum_i a_i delta_{x_i},
    nu = sum_j b_j delta_{y_j} (a squared distance; the expectations are the exact weighted
    double sums, diagonal terms included).

    Parameters
    ----------
    x, y : array_like or Tensor
        Point clouds (n, d), (m, d).
    a, b : array_like or Tensor, optional
        Weights (default uniform 1/n, 1/m).
    kernel : {"gaussian", "energy"}, default "gaussian"
        ``"gaussian"``: exp(-|x - y|^2 / (2 bandwidth^2)); ``"energy"``: -|x - y| (then MMD^2 is
        the energy distance).
    bandwidth : float, default 1
        Gaussian bandwidth (> 0).

    Returns
    -------
    float or Tensor
        NumPy in -> float; tensors in -> 0-d tensor, differentiable.

    Raises
    ------
    InputError
        Bad point clouds or weights, different dimensions, unknown ``kernel``, non-positive
        ``bandwidth``.

    Examples
    --------
    Between two Diracs the energy distance is 2 |x - y|, and MMD^2(mu, mu) = 0:

    >>> import numpy as np
    >>> from measureflow import ot
    >>> print(round(ot.mmd2(np.array([[0.0]]), np.array([[3.0]]), kernel="energy"), 12))
    6.0
    >>> x = np.array([[0.0, 1.0], [2.0, 0.0]])
    >>> print(round(ot.mmd2(x, x), 12))
    0.0

    References
    ----------
    A. Gretton, K. Borgwardt, M. Rasch, B. Scholkopf, A. Smola, "A kernel two-sample test",
    JMLR 13, 2012.
    """
    ctx = ArrayContext(x, y, a, b)
    x, y = ctx.tensor(x, "x"), ctx.tensor(y, "y")
    x, y = check_points(x, "x"), check_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"y: dimension {y.shape[1]} differs from x's {x.shape[1]}")
    a = check_weights(None if a is None else ctx.tensor(a, "a"), x.shape[0], "a", like=x)
    b = check_weights(None if b is None else ctx.tensor(b, "b"), y.shape[0], "b", like=y)
    check_choice(kernel, "kernel", ("gaussian", "energy"))
    bandwidth = check_positive(bandwidth, "bandwidth")
    val = (a @ _kernel(x, x, kernel, bandwidth) @ a - 2 * a @ _kernel(x, y, kernel, bandwidth) @ b
           + b @ _kernel(y, y, kernel, bandwidth) @ b)
    return ctx.wrap(val)


def particle_flow(x0, *, energy: str | Callable = "interaction", n_steps: int, step: float,
                  weights=None, potential: Callable | None = None,
                  interaction: Callable | None = None, target=None, target_weights=None,
                  kernel: str = "gaussian", bandwidth: float = 1.0, temperature: float = 0.0,
                  save_every: int = 1, seed=None, callback=None,
                  verbose: bool = False) -> ParticleFlowResult:
    """Explicit-Euler particle discretisation of a Wasserstein gradient flow.

    Parameters
    ----------
    x0:
        Initial particles (n, d) (1-D input is read as (n, 1)).
    energy:
        ``"interaction"`` (needs ``potential`` V and/or ``interaction`` W, callables on torch
        tensors: V maps (n, d) -> (n,), W maps (..., d) differences -> (...)), ``"mmd"`` (needs
        ``target``), or a callable ``energy(x, w) -> scalar``.
    n_steps, step:
        Number of Euler steps and the time step.
    weights:
        Particle masses w (n,), default 1/n (the velocity divides by w_i, see module doc).
    target, target_weights, kernel, bandwidth:
        Target measure and kernel of the MMD energy.
    temperature:
        T >= 0; T > 0 adds the noise sqrt(2 step T) N(0, I) per step (drawn with ``seed``).
    save_every:
        Keep every k-th iterate in ``trajectory`` (the last one always).
    callback : callable, optional
        ``callback(state) -> bool | None`` after each step with a
        :class:`~measureflow.ot.integrate.StepInfo`: ``state.iteration`` the steps done,
        ``state.iterate`` the particles (n, d) (internal tensor, do not modify), ``state.error``
        NaN (a fixed-step flow records no errors). Returning True stops after that step: the
        result ends at those particles with ``converged=False`` and a ``ConvergenceWarning``
        (unless it was the last step) (docs/ot.md, "Progress and callbacks").
    verbose : bool, default False
        Show a progress bar (steps done) on stderr.

    Returns
    -------
    ParticleFlowResult
        Detached ``final`` particles, ``trajectory``, ``times`` and ``energies`` (NumPy in,
        NumPy out). ``positions`` is kept as an alias of ``final``.

    Raises
    ------
    InputError
        Bad ``x0`` or weights (non-positive masses), bad ``n_steps`` / ``step`` /
        ``temperature`` / ``save_every``, an unknown ``energy`` or a missing or non-callable
        ``potential`` / ``interaction`` / ``target``.

    Examples
    --------
    The potential V(x) = |x|^2 / 2 gives dx/dt = -x; ten Euler steps of 0.1 multiply the
    particles by 0.9^10:

    >>> import numpy as np
    >>> from measureflow import ot
    >>> res = ot.particle_flow(np.array([[1.0], [2.0]]), potential=lambda z: (z ** 2).sum(1) / 2,
    ...                        n_steps=10, step=0.1)
    >>> bool(np.allclose(res.final, np.array([[1.0], [2.0]]) * 0.9 ** 10)), res.trajectory.shape
    (True, (11, 2, 1))
    >>> print(np.round(res.energies[:2], 10))    # F = sum_i w_i |x_i|^2 / 2
    [1.25   1.0125]

    References
    ----------
    J. A. Carrillo, R. J. McCann, C. Villani, "Kinetic equilibration rates for granular
    media and related equations", Rev. Mat. Iberoam. 19(3), 2003. M. Arbel, A. Korba, A.
    Salim, A. Gretton, "Maximum mean discrepancy gradient flow", NeurIPS 2019.
    """
    ctx = ArrayContext(x0, weights, target, target_weights)
    x = ctx.tensor(x0, "x0").detach()
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, "x0", 2)
    n, d = x.shape
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"), n,
                      "weights", like=x).detach()
    if bool((w <= 0).any()):
        raise InputError("weights: particle masses must be positive")
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    step = check_positive(step, "step")
    temperature = check_nonnegative_scalar(temperature, "temperature")
    save_every = check_int(save_every, "save_every", min_value=1)
    callback = check_callback(callback)
    if callable(energy):
        F = energy
    else:
        check_choice(energy, "energy", ("interaction", "mmd"))
        if energy == "interaction":
            if potential is None and interaction is None:
                raise InputError("potential: give potential and/or interaction for "
                                 "energy='interaction'")
            if potential is not None and not callable(potential):
                raise InputError("potential: must be a callable V(x)")
            if interaction is not None and not callable(interaction):
                raise InputError("interaction: must be a callable W(x - y)")

            def F(z, wz):
                val = z.new_zeros(())
                if potential is not None:
                    val = val + (wz * potential(z)).sum()
                if interaction is not None:
                    Wm = interaction(z[:, None, :] - z[None, :, :])
                    val = val + 0.5 * wz @ Wm @ wz
                return val
        else:
            if target is None:
                raise InputError("target: required for energy='mmd'")
            y = ctx.tensor(target, "target").detach()
            if y.ndim == 1:
                y = y[:, None]
            check_ndim(y, "target", 2)
            if y.shape[1] != d:
                raise InputError(f"target: dimension {y.shape[1]} differs from x0's {d}")
            b = check_weights(None if target_weights is None else
                              ctx.tensor(target_weights, "target_weights"), y.shape[0],
                              "target_weights", like=y).detach()
            check_choice(kernel, "kernel", ("gaussian", "energy"))
            bw = check_positive(bandwidth, "bandwidth")
            kyy = b @ _kernel(y, y, kernel, bw) @ b

            def F(z, wz):
                return 0.5 * (wz @ _kernel(z, z, kernel, bw) @ wz
                              - 2 * wz @ _kernel(z, y, kernel, bw) @ b + kyy)
    noise = None
    if temperature > 0:
        gen = make_generator(seed)
        noise_scale = math.sqrt(2.0 * step * temperature)

        def noise(t, z, h):
            return noise_scale * torch.randn(z.shape, generator=gen, dtype=z.dtype).to(z.device)

    def velocity(z, wz):
        val, g = autograd_force(F, z, wz, wz)
        return -g, val

    flow = ParticleFlow(velocity, x, w, method="euler", noise=noise, has_aux=True)
    res = flow.steps(n_steps, step, record_every=save_every, callback=callback, verbose=verbose)
    kw = dict(dtype=x.dtype, device=x.device)
    return ctx.wrap(ParticleFlowResult(
        final=res.final, trajectory=res.trajectory, times=res.times,
        energies=torch.tensor([float(e) for e in res.aux], **kw), converged=res.converged,
        n_iter=res.n_iter, errors=[]))
