"""Fenchel-Young (suboptimality-gap) losses and their sharpened versions (arXiv 2505.07124, Sec. 3).

Generic form [R]: a parameter theta enters a convex forward problem linearly,

    P(theta) = min_pi G_theta(pi),   G_theta(pi) = <Phi theta, pi> + F(pi),

and given observed data pi_hat the FY / gap loss and its sharpened version are

    L(theta)     = G_theta(pi_hat) - min_pi G_theta(pi)                         >= 0
    L_lam(theta) = G_theta(pi_hat) - min_pi [G_theta(pi) + lam D(pi, pi_hat)]    in [0, L]

with D >= 0, D(pi_hat, pi_hat) = 0 (calibration: a minimiser of G_theta minimises the sharpened
problem too). Both are convex in theta (affine minus concave); by Danskin's theorem the gradient
is the observed minus the model feature moments, <phi_r, pi_hat> - <phi_r, pi_theta>, and the
Hessian is the linear response of the model moments to theta (``hessian=True``, closed forms in
:mod:`measureflow.inverse.uot` and :mod:`measureflow.inverse.jko`).

This module holds the generic faces (:func:`fy_loss`, :func:`sharpened_fy_loss`, the result
:class:`FYLoss`); the two instances live in their own modules:

- ``kind="uot"`` (iUOT, :mod:`measureflow.inverse.uot`): entropic unbalanced OT on an (n, m) grid,
  cost C_theta = sum_r theta_r C^(r); D = KL of the observed marginals.
- ``kind="jko"`` (iJKO, :mod:`measureflow.inverse.jko`): one JKO step of the potential
  V_theta = sum_r theta_r phi_r from two independent snapshots; D = KL(rho | rho_hat_{k+1}), which
  turns the inner problem into a semi-unbalanced transport on the samples.

Values are exact up to the inner solver tolerance: the inner minimum is the primal objective
evaluated at the computed plan.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..core import (
    ArrayContext,
    InputError,
    SolverResult,
    check_choice,
    check_int,
    check_nonnegative_scalar,
    check_positive,
    check_weights,
)

__all__ = ["FYLoss", "fy_loss", "sharpened_fy_loss"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FYLoss(SolverResult):
    """Value, gradient (and optionally Hessian) of a (sharpened) Fenchel-Young loss at theta.

    Result of :func:`fy_loss` and :func:`sharpened_fy_loss`.

    Attributes
    ----------
    value : float or Tensor
        The loss (>= 0 up to the inner tolerance). For tensor input it carries autograd: its
        gradient with respect to theta is ``grad`` (Danskin).
    grad : array or Tensor
        Observed minus model feature moments, shape of theta.
    observed_moments, model_moments : array or Tensor
        <phi_r, pi_hat> and <phi_r, pi_theta> (shape of theta).
    hessian : array or Tensor or None
        With ``hessian=True``: the Hessian of the loss in theta, shape ``theta.shape * 2``
        (closed-form linear response of the model moments, no differentiation through the
        solver).
    plan : array or Tensor or None
        The model optimum on the grid (``"uot"``, ``"jko"`` with ``eps``); None for the plain
        unregularised jko loss.
    prox : array or Tensor or None
        Unregularised ``"jko"`` loss: the points prox_(tau V_theta)(x_i) (n, d).
    potential_f, potential_g : array or Tensor or None
        Dual potentials of the inner problem (grid losses).
    kind : str
        ``"uot"`` or ``"jko"``.
    lam : float
        The sharpening weight.
    converged, n_iter, errors :
        Of the inner solver (``errors``: its stopping-error trace).
    """

    value: Any = None
    grad: Any = None
    observed_moments: Any = None
    model_moments: Any = None
    hessian: Any = None
    plan: Any = None
    prox: Any = None
    potential_f: Any = None
    potential_g: Any = None
    kind: str = ""
    lam: float = 0.0


def dtype_tol(tol: float, dtype: torch.dtype, *, scale: float = 1.0) -> float:
    """``tol`` floored at what ``dtype`` resolves: 100 x machine epsilon x ``scale``.

    float64: 2.2e-14 x scale (every default of this package is above it); float32: 1.2e-5 x
    scale. A float64 tolerance such as 1e-10 can never be met by a float32 iterate; the solvers
    of this package raise it to the floor instead of iterating to ``max_iter``.
    """
    return max(float(tol), 100.0 * torch.finfo(dtype).eps * float(scale))


def check_compute_dtype(ctx: ArrayContext, name: str) -> None:
    """The inverse solvers compute in float32 or float64 (half precision has no eigh/solve on CPU
    and cannot resolve their tolerances): anything else is an :class:`InputError` on ``name``."""
    if ctx.dtype not in (torch.float32, torch.float64):
        raise InputError(f"{name}: dtype {ctx.dtype} is not supported (use float32 or float64)")


def positive_weights(ctx: ArrayContext, w, n: int, name: str, like: torch.Tensor,
                     what: str) -> torch.Tensor:
    """Weights of length n (``None``: uniform 1/n), all > 0 (they are log-domain references)."""
    w = check_weights(None if w is None else ctx.tensor(w, name), n, name, like=like)
    if bool((w <= 0).any()):
        raise InputError(f"{name}: {what} weights must be positive")
    return w


def wide(*ts):
    """The tensors in float64 (values of losses are differences of nearly equal objectives: in
    float32 they are accumulated in float64, which keeps the gap's relative precision)."""
    out = tuple(t.detach().to(torch.float64) if t.dtype in (torch.float16, torch.bfloat16,
                                                            torch.float32) else t.detach()
                for t in ts)
    return out if len(out) > 1 else out[0]


def _loss(theta, basis, observed, kind, lam, a, b, eps, rho, tau, max_iter, tol, hessian):
    kind = check_choice(kind, "kind", ("uot", "jko"))
    if not isinstance(hessian, bool):
        raise InputError(f"hessian: expected True or False, got {hessian!r}")
    ctx = ArrayContext(theta, a, b, *(observed if isinstance(observed, (tuple, list)) else
                                      (observed,)),
                       basis if isinstance(basis, torch.Tensor) else None)
    check_compute_dtype(ctx, "theta")
    theta = ctx.tensor(theta, "theta")
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter", min_value=1)
    if tol is not None:
        tol = check_positive(tol, "tol")
    if kind == "uot":
        from .uot import _uot_face
        return ctx.wrap(_uot_face(ctx, theta, basis, observed, lam, a, b, eps, rho, tau, max_iter,
                                  tol, hessian))
    from .jko import _jko_face
    return ctx.wrap(_jko_face(ctx, theta, basis, observed, lam, a, b, eps, rho, tau, max_iter,
                              tol, hessian))


def fy_loss(theta, basis, observed, *, kind: str = "uot", a=None, b=None, eps=None, rho=None,
            tau=None, max_iter: int | None = None, tol: float | None = None,
            hessian: bool = False) -> FYLoss:
    """Fenchel-Young / suboptimality-gap loss L(theta) = G_theta(pi_hat) - min_pi G_theta(pi).

    G_theta(pi) = <Phi theta, pi> + F(pi) is the forward problem's objective, linear in theta; L is
    convex, >= 0, and its gradient is the observed minus the model feature moments (Danskin). See
    the module docstring and arXiv 2505.07124 Sec. 3 [R].

    Parameters
    ----------
    theta : array_like or Tensor
        ``kind="uot"``: any shape S (e.g. a matrix A for bilinear costs); ``kind="jko"``: shape
        (R,).
    basis : array_like, Tensor, PotentialBasis or callable
        ``"uot"``: cost features of shape (*S, n, m) (e.g. :func:`bilinear_cost_basis`), so that
        C_theta = sum_r theta_r C^(r). ``"jko"``: a :class:`PotentialBasis` or a torch callable
        y (m, d) -> (m, R).
    observed : array_like or Tensor, or (x_k, x_next)
        ``"uot"``: the observed plan pi_hat (n, m) (e.g. eye(n) / n for n observed pairs on the
        grid x_i, y_j). ``"jko"``: the snapshots ``(x_k, x_next)`` of shapes (n, d), (m, d).
    kind : {"uot", "jko"}, default "uot"
    a, b : array_like or Tensor, optional
        Reference weights (``None``: uniform 1/n, 1/m). ``"uot"``: the marginal references of the
        forward problem; ``"jko"``: the sample weights of the two snapshots.
    eps : float, optional
        ``"uot"``: entropic weight (required). ``"jko"``: ``None`` gives the unregularised loss
        (Moreau envelope, continuous y); ``eps > 0`` the entropic loss on the sample grid,
        L(theta) = OT_eps(a, b; Cxy) + <V_theta, b> + eps sum_i a_i log sum_j b_j exp(-C_ij / eps)
        for probability weights, with Cxy_ij = |x_i-y_j|^2/(2 tau), C_ij = Cxy_ij + V_theta(y_j)
        and OT_eps the balanced entropic cost <Cxy, P> + eps KL(P | a (x) b).
    rho : float, optional
        ``"uot"``: marginal KL weight (``None``: balanced).
    tau : float, optional
        ``"jko"``: the JKO time step (required).
    max_iter, tol : int, float, optional
        Inner solver controls (``None``: its defaults). Tolerances below what the dtype resolves
        are raised to 100 x its machine epsilon (float32: 1.2e-5).
    hessian : bool, default False
        Also return the Hessian in theta (closed-form linear response, ``docs/inverse.md``).

    Returns
    -------
    FYLoss
        value (>= 0), grad = observed - model moments, the model plan (grid losses) or the prox
        points (unregularised jko). For the unregularised ``"jko"`` loss, if
        y -> |x-y|^2/(2 tau) + V_theta(y) has no minimiser the value is +inf (theta is outside the
        loss's domain; grad is NaN, converged=False, a ConvergenceWarning is emitted).

    Raises
    ------
    InputError
        Unknown ``kind``, bad shapes, missing ``eps`` (uot) or ``tau`` (jko), bad weights or
        scalars, a dtype other than float32/float64.

    Notes
    -----
    Convention: cost |x-y|^2/(2 tau) in the JKO step (the usual JKO scaling), KL generalised (with
    mass terms). Reconstruction of arXiv 2505.07124, Sec. 3 [R] (``docs/inverse.md``).

    Examples
    --------
    >>> import numpy as np
    >>> import measureflow.inverse as inv
    >>> x = np.linspace(-1, 1, 5)[:, None]
    >>> F = inv.bilinear_cost_basis(x, x)
    >>> L = inv.fy_loss(np.ones((1, 1)), F, np.eye(5) / 5, eps=1.0)
    >>> bool(L.value >= 0), bool(np.allclose(L.grad, L.observed_moments - L.model_moments))
    (True, True)

    The loss vanishes when the observed plan is the model's own optimum:

    >>> P = L.plan
    >>> round(float(inv.fy_loss(np.ones((1, 1)), F, P, eps=1.0).value), 8)
    0.0

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md), Sec. 3.
    """
    return _loss(theta, basis, observed, kind, 0.0, a, b, eps, rho, tau, max_iter, tol, hessian)


def sharpened_fy_loss(theta, basis, observed, *, lam: float, kind: str = "uot", a=None, b=None,
                      eps=None, rho=None, tau=None, max_iter: int | None = None,
                      tol: float | None = None, hessian: bool = False) -> FYLoss:
    """Sharpened FY loss L_lam(theta) = G_theta(pi_hat) - min_pi [G_theta(pi) + lam D(pi, pi_hat)].

    D >= 0 with D(pi_hat, pi_hat) = 0, so 0 <= L_lam <= L and the minimisers agree (calibration).
    The discrepancies D:

    - ``"uot"``: D = KL(pi 1 | pi_hat 1) + KL(pi^T 1 | pi_hat^T 1) (observed marginals), solved by
      :func:`measureflow.ot.solve` with marginal weight rho + lam after an exact change of
      reference. With ``rho=None`` (balanced) D is constant and L_lam = L.
    - ``"jko"``: D = KL(rho | rho_hat_(k+1)) on the sample grid, with entropic smoothing ``eps``
      (required) and reference a (x) b: the inner problem is the semi-unbalanced OT solved by
      :func:`semi_unbalanced_sinkhorn`; the first term G_theta(pi_hat) is the balanced entropic
      cost OT_eps(a, b; |x-y|^2 / (2 tau)) + <V_theta, b>. ``lam`` must be finite (lam -> inf
      sends L_lam to 0 like Var_b(g + V_theta) / (2 lam)).

    Parameters
    ----------
    theta, basis, observed, kind, a, b, eps, rho, tau, max_iter, tol, hessian :
        As in :func:`fy_loss`.
    lam : float
        Sharpening weight (>= 0; ``lam=0`` gives :func:`fy_loss`).

    Returns
    -------
    FYLoss

    Raises
    ------
    InputError
        As :func:`fy_loss`, a negative or infinite ``lam``.

    Examples
    --------
    >>> import numpy as np
    >>> import measureflow.inverse as inv
    >>> x = np.linspace(-1, 1, 5)[:, None]
    >>> F, obs = inv.bilinear_cost_basis(x, x), np.eye(5) / 5
    >>> L = inv.fy_loss(np.ones((1, 1)), F, obs, eps=1.0, rho=1.0).value
    >>> Ls = inv.sharpened_fy_loss(np.ones((1, 1)), F, obs, eps=1.0, rho=1.0, lam=2.0).value
    >>> bool(0 <= Ls <= L)
    True

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md), Sec. 3.
    """
    lam = check_nonnegative_scalar(lam, "lam")
    return _loss(theta, basis, observed, kind, lam, a, b, eps, rho, tau, max_iter, tol, hessian)
