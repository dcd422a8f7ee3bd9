"""Feature bases through which the parameter theta enters linearly.

- Cost bases (iUOT): C_theta = sum_r theta_r C^(r) on an (n, m) grid. :func:`bilinear_cost_basis`
  gives C^(k,l)_ij = -x_ik y_jl, i.e. the cost c_A(x, y) = -x^T A y with theta = A (dx, dy).
- Potential bases (iJKO): V_theta(y) = sum_r theta_r phi_r(y). :class:`PotentialBasis` wraps a
  torch function y (m, d) -> (m, R) and provides gradients, Hessians and the prox of tau V_theta.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from ..core import ArrayContext, InputError, check_int, check_points, check_positive

__all__ = ["PotentialBasis", "polynomial_potential_basis", "quadratic_potential_basis",
           "bilinear_cost_basis"]


def bilinear_cost_basis(x, y):
    """Cost features C^(k,l)_ij = -x_ik y_jl of the bilinear cost c_A(x, y) = -x^T A y.

    With theta = A (dx, dy), C_theta = sum_(k,l) A_kl C^(k,l) is the cost matrix -x A y^T of the
    iUOT forward problem (arXiv 2505.07124, :func:`iuot`).

    Parameters
    ----------
    x : array_like or Tensor, shape (n, dx)
    y : array_like or Tensor, shape (m, dy)
        1-D arrays are read as points on the line.

    Returns
    -------
    array or Tensor, shape (dx, dy, n, m)
        NumPy in, NumPy out.

    Raises
    ------
    InputError
        Bad shapes, non-finite points, a dtype other than float32/float64.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.inverse import bilinear_cost_basis
    >>> F = bilinear_cost_basis(np.array([[1.0], [2.0]]), np.array([[3.0]]))
    >>> F.shape, F[0, 0].ravel().tolist()                   # -x_i y_j
    ((1, 1, 2, 1), [-3.0, -6.0])

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md).
    """
    from .fenchel_young import check_compute_dtype
    ctx = ArrayContext(x, y)
    check_compute_dtype(ctx, "x")
    x = check_points(ctx.tensor(x, "x"), "x")
    y = check_points(ctx.tensor(y, "y"), "y")
    return ctx.wrap(-torch.einsum("ik,jl->klij", x, y))


class PotentialBasis:
    """Linear family of potentials V_theta(y) = sum_r theta_r phi_r(y) (the iJKO parametrisation).

    Wraps a torch feature map ``phi: (m, d) -> (m, R)`` and provides the per-point gradients,
    Hessians and the prox of tau V_theta used by :func:`~measureflow.inverse.ijko` and
    :func:`~measureflow.inverse.fy_loss` (``kind="jko"``).

    Parameters
    ----------
    phi : callable
        Torch function (m, d) -> (m, R), acting row by row (point i's features depend on y_i only)
        and twice differentiable by autograd. Constant features are not identifiable in iJKO (the
        first marginal fixes the mass) and should be left out.
    dim : int
        d (>= 1).
    size : int
        R (>= 1).
    names : list of str, optional
        Feature names (default ``phi0, phi1, ...``).

    Raises
    ------
    InputError
        ``phi`` not callable, bad ``dim`` / ``size``; ``features`` raises when ``phi`` returns a
        shape other than (m, R).

    Examples
    --------
    >>> import torch
    >>> from measureflow.inverse import PotentialBasis
    >>> basis = PotentialBasis(lambda y: y ** 2, 1, 1, ["y^2"])
    >>> y = torch.tensor([[3.0]], dtype=torch.float64)
    >>> basis.potential(torch.tensor([0.5], dtype=torch.float64), y).tolist()    # 0.5 x 9
    [4.5]
    >>> basis.jacobian(y).tolist()                                              # d(y^2)/dy
    [[[6.0]]]

    References
    ----------
    G. Andrade, G. Peyre, C. Poon, "Learning from samples: inverse problems over measures",
    arXiv:2505.07124 (reconstruction, docs/inverse.md).
    """

    def __init__(self, phi: Callable[[torch.Tensor], torch.Tensor], dim: int, size: int,
                 names: list[str] | None = None):
        if not callable(phi):
            raise InputError(f"phi: expected a callable (m, d) -> (m, R), got {type(phi).__name__}")
        self.phi = phi
        self.dim = check_int(dim, "dim", min_value=1)
        self.size = check_int(size, "size", min_value=1)
        self.names = list(names) if names is not None else [f"phi{r}" for r in range(size)]

    def __repr__(self) -> str:
        return f"PotentialBasis(dim={self.dim}, size={self.size}, names={self.names})"

    def features(self, y: torch.Tensor) -> torch.Tensor:
        """phi(y), shape (m, R)."""
        F = self.phi(y)
        if F.shape != (y.shape[0], self.size):
            raise InputError(f"potential_basis: phi returned shape {tuple(F.shape)}, expected "
                             f"({y.shape[0]}, {self.size})")
        return F

    def potential(self, theta: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """V_theta(y) = phi(y) @ theta, shape (m,)."""
        return self.features(y) @ theta

    def jacobian(self, y: torch.Tensor) -> torch.Tensor:
        """Per-point feature Jacobian d phi_r / d y_k, shape (m, R, d) (autograd, row by row)."""
        with torch.enable_grad():
            yy = y.detach().requires_grad_(True)
            F = self.features(yy)
            rows = []
            for r in range(self.size):
                gr = torch.autograd.grad(F[:, r].sum(), yy, retain_graph=r + 1 < self.size,
                                         allow_unused=True)[0]
                rows.append(torch.zeros_like(yy) if gr is None else gr)
        return torch.stack(rows, 1).detach()

    def grad_hess(self, theta: torch.Tensor, y: torch.Tensor):
        """Per-point gradient (m, d) and Hessian (m, d, d) of V_theta (autograd)."""
        with torch.enable_grad():
            yy = y.detach().requires_grad_(True)
            v = self.potential(theta.detach(), yy).sum()
            g = torch.autograd.grad(v, yy, create_graph=True)[0]
            rows = []
            for k in range(self.dim):
                hk = torch.autograd.grad(g[:, k].sum(), yy, retain_graph=True,
                                         allow_unused=True)[0]
                rows.append(torch.zeros_like(yy) if hk is None else hk)
        return g.detach(), torch.stack(rows, 1).detach()

    def prox(self, theta: torch.Tensor, x: torch.Tensor, tau: float, *, max_iter: int = 100,
             tol: float = 1e-12, y0: torch.Tensor | None = None):
        """prox_(tau V)(x_i) = argmin_y |y - x_i|^2 / (2 tau) + V_theta(y), point by point (Newton).

        Damped Newton from y = x (or the warm start ``y0``), halving the step until the objective
        decreases; a point whose Hessian I/tau + D^2 V is not positive definite takes a gradient
        step instead.

        Parameters
        ----------
        theta : Tensor, shape (R,)
        x : Tensor, shape (n, d)
        tau : float
            Step (> 0).
        max_iter : int, default 100
        tol : float, default 1e-12
            Stop when max_i |grad_i| tau <= tol (1 + max |x|).
        y0 : Tensor, shape (n, d), optional

        Returns
        -------
        (Tensor, bool)
            ``(y, converged)``; False when the iteration cap is reached or the iterates diverge (the
            prox objective is unbounded below).

        Examples
        --------
        For a quadratic V(y) = y^T Q y / 2 + b^T y the prox is -(I + tau Q)^(-1) tau b at x = 0:

        >>> import torch
        >>> from measureflow.inverse import quadratic_potential_basis
        >>> basis = quadratic_potential_basis(2)
        >>> theta = basis.from_quadratic([[2.0, 0.5], [0.5, 1.0]], [1.0, -1.0])
        >>> y, ok = basis.prox(theta, torch.zeros(1, 2, dtype=torch.float64), 0.5)
        >>> [round(v, 6) for v in y[0].tolist()], ok
        ([-0.297872, 0.382979], True)
        """
        x = torch.as_tensor(x)
        theta = torch.as_tensor(theta).detach().to(dtype=x.dtype, device=x.device)
        y = x.detach().clone() if y0 is None else y0.detach().clone()
        d = x.shape[1]
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        scale = tol * (1.0 + float(x.abs().max()) if x.numel() else 1.0)

        def obj(z):
            return ((z - x) ** 2).sum(1) / (2 * tau) + self.potential(theta, z)

        ok = False
        for _ in range(max_iter):
            gV, hV = self.grad_hess(theta, y)
            grad = (y - x) / tau + gV
            if float(grad.abs().max()) * tau <= scale:
                ok = True
                break
            H = eye / tau + hV
            ev_min = torch.linalg.eigvalsh(H).amin(-1)
            good = ev_min > 0
            Hs = torch.where(good[:, None, None], H, eye.expand_as(H) / tau)
            step = torch.linalg.solve(Hs, grad.unsqueeze(-1)).squeeze(-1)
            f0 = obj(y)
            t = torch.ones(y.shape[0], dtype=y.dtype, device=y.device)
            for _ in range(40):
                cand = y - t[:, None] * step
                worse = obj(cand) > f0 + 1e-15 * f0.abs()
                if not bool(worse.any()):
                    break
                t = torch.where(worse, t * 0.5, t)
            y = y - t[:, None] * step
            if not bool(torch.isfinite(y).all()) or float(y.abs().max()) > 1e8 * (1.0 + scale / tol):
                break  # diverging: the prox objective is (numerically) unbounded below
        return y, ok


_MAX_MONOMIALS = 10_000


def polynomial_potential_basis(dim: int, degree: int) -> PotentialBasis:
    """Potential basis of the monomials y^alpha, 1 <= |alpha| <= degree (no constant), in ``dim``
    variables.

    Features are ordered by total degree (then lexicographically, the first variable's power
    first); ``names`` spell them (``"y0*y1"``, ``"y1^2"``, ...).

    Parameters
    ----------
    dim : int
        Number of variables (>= 1).
    degree : int
        Largest total degree (>= 1).

    Returns
    -------
    PotentialBasis
        With comb(dim + degree, degree) - 1 features.

    Raises
    ------
    InputError
        Bad ``dim`` / ``degree``, more than 10000 monomials.

    Examples
    --------
    >>> import torch
    >>> from measureflow.inverse import polynomial_potential_basis
    >>> basis = polynomial_potential_basis(2, 2)
    >>> basis.names
    ['y0', 'y1', 'y0^2', 'y0*y1', 'y1^2']
    >>> basis.features(torch.tensor([[2.0, 3.0]], dtype=torch.float64)).tolist()
    [[2.0, 3.0, 4.0, 6.0, 9.0]]
    """
    dim = check_int(dim, "dim", min_value=1)
    degree = check_int(degree, "degree", min_value=1)
    count = math.comb(dim + degree, degree) - 1
    if count > _MAX_MONOMIALS:
        raise InputError(f"degree: {count} monomials in {dim} variables up to degree {degree} "
                         f"(more than {_MAX_MONOMIALS}); lower the degree or the dimension")
    exps = []
    for k in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(dim), k):
            e = [0] * dim
            for v in combo:
                e[v] += 1
            exps.append(tuple(e))
    exps.sort(key=lambda e: (sum(e), [-v for v in e]))
    E = torch.tensor(exps, dtype=torch.float64)
    names = ["*".join(f"y{k}^{p}" if p > 1 else f"y{k}" for k, p in enumerate(e) if p) for e in exps]

    def phi(y: torch.Tensor) -> torch.Tensor:
        Et = E.to(dtype=y.dtype, device=y.device)
        return torch.prod(y[:, None, :] ** Et[None, :, :], dim=-1)

    return PotentialBasis(phi, dim, len(exps), names)


def quadratic_potential_basis(dim: int) -> PotentialBasis:
    """Potential basis of V(y) = b^T y + y^T Q y / 2: features y_k, y_k^2 / 2, y_k y_l (k < l).

    The returned basis carries two converters: ``basis.to_quadratic(theta) -> (Q, b)`` and
    ``basis.from_quadratic(Q, b) -> theta``.

    Parameters
    ----------
    dim : int
        d (>= 1).

    Returns
    -------
    PotentialBasis
        With 2 d + d (d - 1) / 2 features.

    Raises
    ------
    InputError
        Bad ``dim``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.inverse import quadratic_potential_basis
    >>> basis = quadratic_potential_basis(2)
    >>> basis.names
    ['y0', 'y1', 'y0^2/2', 'y1^2/2', 'y0*y1']
    >>> theta = basis.from_quadratic([[2.0, 0.5], [0.5, 1.0]], [1.0, -1.0])
    >>> y = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    >>> basis.potential(theta, y).tolist()          # (2 + 2 + 4) / 2 + 1 - 2
    [3.0]
    """
    dim = check_int(dim, "dim", min_value=1)
    pairs = [(k, l) for k in range(dim) for l in range(k + 1, dim)]
    names = [f"y{k}" for k in range(dim)] + [f"y{k}^2/2" for k in range(dim)] + \
        [f"y{k}*y{l}" for k, l in pairs]

    def phi(y: torch.Tensor) -> torch.Tensor:
        cols = [y, 0.5 * y * y]
        if pairs:
            ki = torch.tensor([p[0] for p in pairs], device=y.device)
            li = torch.tensor([p[1] for p in pairs], device=y.device)
            cols.append(y[:, ki] * y[:, li])
        return torch.cat(cols, 1)

    basis = PotentialBasis(phi, dim, 2 * dim + len(pairs), names)

    def to_quadratic(theta):
        t = torch.as_tensor(theta)
        b = t[:dim]
        Q = torch.diag(t[dim:2 * dim])
        for r, (k, l) in enumerate(pairs):
            Q[k, l] = Q[l, k] = t[2 * dim + r]
        return Q, b

    def from_quadratic(Q, b):
        Q, b = torch.as_tensor(Q, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        off = [Q[k, l] for k, l in pairs]
        return torch.cat([b, torch.diagonal(Q), torch.stack(off) if off else Q.new_zeros(0)])

    basis.to_quadratic = to_quadratic
    basis.from_quadratic = from_quadratic
    return basis


def _check_tau(tau) -> float:
    tau = check_positive(tau, "tau")
    if not math.isfinite(tau):  # pragma: no cover - check_positive already rejects inf
        raise InputError("tau: must be finite")
    return tau
