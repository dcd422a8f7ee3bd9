"""Polynomial conservation laws from a linear system on monomial coefficients.

arXiv 2307.00144 Sec. 2.4 (second algorithm): a polynomial P(theta) = sum_alpha a_alpha
theta^alpha is a law of the fields X_1..X_d iff <grad P(theta), X_j(theta)> = 0 for all theta and
j, which is linear in the coefficients a. The reference implementation collects the monomial
coefficients of these identities symbolically (SageMath). Here (written by hand) the identities
are imposed at random points theta_1..theta_N: each point and field gives the row
(grad theta^alpha(theta_p) . X_j(theta_p))_alpha. With enough generic
points the sampled system has the same kernel as the symbolic one when the fields are
polynomial (the identities are polynomials of bounded degree, and generic points separate
them). Points are added (3 at a time) until the kernel stops shrinking; for non-polynomial
fields the sampled kernel is an upper bound that shrinks as points are added. The kernel is the set of right singular vectors with singular value below
``rtol`` x the largest one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import torch
from torch.func import jacrev

from ..core import InputError, check_int, check_positive, make_generator
from .lie import _as_family

__all__ = ["PolynomialLaws", "polynomial_laws", "monomials"]


def monomials(n_params: int, degree: int, *, homogeneous: bool = True) -> list[tuple]:
    """Index tuples (i_1 <= ... <= i_k) of the monomials theta_{i_1} ... theta_{i_k}.

    ``homogeneous``: only total degree ``degree``; else every degree 1..``degree``.
    """
    degs = [degree] if homogeneous else range(1, degree + 1)
    return [c for k in degs for c in itertools.combinations_with_replacement(range(n_params), k)]


def _monomial_map(mons: list[tuple], D: int) -> Callable:
    L = max(len(m) for m in mons)
    idx = torch.tensor([list(m) + [D] * (L - len(m)) for m in mons], dtype=torch.long)

    def M(theta):
        ext = torch.cat([theta, theta.new_ones(1)])
        return ext[idx].prod(1)

    return M


def _law(c: torch.Tensor, M: Callable) -> Callable:
    def law(theta: torch.Tensor) -> torch.Tensor:
        return c.to(theta) @ M(theta)

    return law


@dataclasses.dataclass(frozen=True)
class PolynomialLaws:
    """Polynomial laws found by :func:`polynomial_laws`.

    Attributes
    ----------
    n_laws : int
        Number of functionally independent laws among them (rank of their gradients at a
        random point, as in the reference implementation).
    coefficients : torch.Tensor, shape (K, n_monomials)
        Orthonormal basis of the kernel (each row defined up to sign).
    monomials : list of tuple
        The index tuples (i_1 <= ... <= i_k) of theta_{i_1} ... theta_{i_k}.
    laws : list of callable
        theta -> value, one per kernel vector.
    singular_values : torch.Tensor
        Of the sampled linear system.
    degree : int
    """

    n_laws: int
    coefficients: torch.Tensor
    monomials: list
    laws: list
    singular_values: torch.Tensor
    degree: int

    @property
    def n_kernel(self) -> int:
        """Dimension K of the kernel (laws found, not necessarily independent)."""
        return int(self.coefficients.shape[0])

    def evaluate(self, theta: torch.Tensor) -> torch.Tensor:
        """All laws at ``theta`` (a flat torch vector): a vector of length ``n_kernel``."""
        return self.coefficients.to(theta) @ _monomial_map(self.monomials, theta.numel())(theta)


def polynomial_laws(fields, degree: int, *, n_params: int | None = None,
                    homogeneous: bool = True, rtol: float = 1e-9, n_points: int | None = None,
                    seed=0, scale: float = 1.0) -> PolynomialLaws:
    """Polynomial laws of degree ``degree`` of the vector fields ``fields`` on R^``n_params``.

    P(theta) = sum_alpha a_alpha theta^alpha is a law iff <grad P(theta), X_j(theta)> = 0 for
    all theta and j, a linear system in the coefficients a, imposed here at random points
    (arXiv 2307.00144, Sec. 2.4, second algorithm); the laws span its kernel.

    Parameters
    ----------
    fields :
        As in :func:`~measureflow.conservation.lie_rank` (list of callables, a callable
        returning the (d, D) field matrix, or ``gradient_fields(phi)``).
    degree : int
        Polynomial degree (>= 1).
    n_params : int
        D (>= 1); required because callables do not reveal it.
    homogeneous : bool, default True
        Only monomials of total degree ``degree`` (else every degree 1..``degree``).
    rtol : float, default 1e-9
        Singular values below rtol x the largest define the kernel (> 0).
    n_points : int, optional
        Initial number of sample points (default: enough for the number of monomials, + 3);
        points are then added 3 at a time until the kernel stops shrinking.
    seed : int, default 0
    scale : float, default 1.0
        Sample points are N(0, scale^2 I) (float64).

    Returns
    -------
    PolynomialLaws
        ``n_laws`` counts the independent ones.

    Raises
    ------
    InputError
        ``n_params`` missing or different from the fields' dimension, more than 20000
        monomials, bad ``degree`` / ``rtol`` / ``scale`` / ``n_points``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation import gradient_fields, polynomial_laws
    >>> phi = lambda t: (t[:2, None] * t[None, 2:]).reshape(-1)    # U V^T, U, V of shape (2, 1)
    >>> laws = polynomial_laws(gradient_fields(phi), 2, n_params=4)
    >>> laws.n_laws, laws.n_kernel                    # |U|^2 - |V|^2, up to a factor
    (1, 1)
    >>> theta = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64)
    >>> round(abs(float(laws.evaluate(theta)[0])), 6)       # (1 + 4 - 0.25 - 1) / 2
    1.875

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Abide by the law and follow the flow: conservation
    laws for gradient flows", NeurIPS 2023, arXiv:2307.00144, Sec. 2.4.
    """
    family = _as_family(fields)
    degree = check_int(degree, "degree", min_value=1)
    if n_params is None:
        raise InputError("n_params: required (the dimension D of the parameter space)")
    D = check_int(n_params, "n_params", min_value=1)
    rtol = check_positive(rtol, "rtol")
    scale = check_positive(scale, "scale")
    mons = monomials(D, degree, homogeneous=homogeneous)
    nm = len(mons)
    if nm > 20000:
        raise InputError(f"degree: {nm} monomials is too many for the dense linear system")
    M = _monomial_map(mons, D)
    gen = make_generator(seed)
    th0 = scale * torch.randn(D, generator=gen, dtype=torch.float64)

    def rows_at(th):
        F = family.matrix(th).detach()
        if F.ndim == 0 or F.shape[-1] != D:
            raise InputError(f"n_params: fields have dimension "
                             f"{F.shape[-1] if F.ndim else 0}, not {D}")
        F = F.reshape(-1, D)  # (d, D)
        R = F @ jacrev(M)(th).T  # (d, nm): row j = (grad theta^alpha . X_j)_alpha
        nr = R.norm(dim=1, keepdim=True)
        ok = nr[:, 0] > 0
        R = R[ok] / nr[ok]
        if R.shape[0] > 1:  # compress to the row space of this point (same span, fewer rows)
            _, s, Vh = torch.linalg.svd(R, full_matrices=False)
            keep = s > 1e-3 * rtol * s[0]
            R = s[keep, None] * Vh[keep]
        return R

    def kernel(A):
        if A.shape[0] == 0:
            return torch.eye(nm, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        _, sv, Vh = torch.linalg.svd(A, full_matrices=True)
        r = int((sv > rtol * sv[0]).sum()) if float(sv[0]) > 0 else 0
        return Vh[r:].clone(), sv

    first = rows_at(th0)
    # one point contributes at most rank(fields at theta) independent equations
    per_point = max(1, int(torch.linalg.matrix_rank(first)) if first.numel() else 1)
    if n_points is None:
        n_points = math.ceil(nm / per_point) + 3
    n_points = check_int(n_points, "n_points", min_value=1)
    blocks = [first] + [rows_at(scale * torch.randn(D, generator=gen, dtype=torch.float64))
                        for _ in range(n_points - 1)]
    coeffs, sv = kernel(torch.cat(blocks, 0))
    # add points until the kernel stops shrinking (generic points: then it is the exact kernel)
    for _ in range(50):
        more = [rows_at(scale * torch.randn(D, generator=gen, dtype=torch.float64))
                for _ in range(3)]
        blocks.extend(more)
        c2, sv = kernel(torch.cat(blocks, 0))
        if c2.shape[0] == coeffs.shape[0]:
            coeffs = c2
            break
        coeffs = c2
    laws = [_law(c, M) for c in coeffs]
    n_ind = 0
    if coeffs.shape[0]:
        thr = scale * torch.randn(D, generator=gen, dtype=torch.float64)
        G = coeffs @ jacrev(M)(thr)  # gradients of the laws
        s = torch.linalg.svdvals(G)
        n_ind = int((s > 1e-8 * s[0]).sum()) if float(s[0]) > 0 else 0
    return PolynomialLaws(n_laws=n_ind, coefficients=coeffs, monomials=mons, laws=laws,
                          singular_values=sv, degree=degree)
