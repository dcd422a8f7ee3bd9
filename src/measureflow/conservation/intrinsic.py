"""Intrinsic training dynamics (Marcotte, Gribonval, Peyre, arXiv 2508.07370).

Setting: loss f(phi(theta)). Along gradient flow z = phi(theta) obeys z' = -M(theta) grad f(z) with
M(theta) = dphi(theta) dphi(theta)^T. The flow is *intrinsic* when M(theta) = K(phi(theta)) on the
level set of the conservation laws h through theta_0.

This module (written by hand; numbering of the paper's statements unverified, see
docs/conservation.md) provides

* :func:`kernel_inclusion`: the necessary condition ker dphi ∩ ker dh ⊆ ker dM at theta, and
  recoverability ker dphi ∩ ker dh = {0} (:func:`recoverable`). When the laws are not given, ker dh
  is taken as the Lie-algebra trace Lie(W_phi)(theta) (it equals ker dh when h is complete);
* :func:`frobenius_test`: dim Lie(W_phi)(theta) == rank dphi(theta);
* path-lifting of DAG ReLU networks (:func:`path_lifting`, :func:`mlp_dag`, :func:`dag_laws`);
* relaxed-balanced initialisations of linear networks (U^T U - V^T V = lam I, and the deep square
  version U_{i+1}^T U_{i+1} - U_i U_i^T = lam_i I);
* closed-form intrinsic metrics: 2-layer ReLU (:func:`metric_relu_two_layer`), relaxed-balanced
  2-layer linear (:func:`metric_linear_relaxed_balanced`), deep square relaxed-balanced linear
  (:func:`metric_deep_linear`), and the linear neural ODE (:func:`metric_neural_ode`, with
  :func:`neural_ode_flow` integrating the parameter flow and the intrinsic flow side by side).

Matrices are flattened row-major: vec(P G Q) = (P ⊗ Q^T) vec(G).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
from torch.func import jacrev, jvp

from ..core import (
    ArrayContext,
    InputError,
    as_tensor,
    check_in_range,
    check_int,
    check_nonnegative_scalar,
    check_positive,
    make_generator,
)
from ..core.linalg import sqrtm_psd
from ..ot.integrate import FlowResult, odeint, result_alias
from ._paths import DAG, dag_laws, mlp_dag, path_lifting
from .lie import GradientFields, flat_jacobian, lie_closure, number_of_laws

__all__ = ["KernelInclusion", "kernel_inclusion", "recoverable", "frobenius_test", "DAG",
           "path_lifting", "mlp_dag", "dag_laws", "relaxed_balanced_linear",
           "relaxed_balanced_deep", "metric", "metric_relu_two_layer",
           "metric_linear_relaxed_balanced", "metric_deep_linear", "relaxed_balanced_neural_ode",
           "neural_ode_product", "neural_ode_law", "metric_neural_ode", "neural_ode_flow",
           "NeuralODEFlow"]

_F64 = torch.float64


def _theta(theta, name="theta") -> torch.Tensor:
    t = as_tensor(theta, name).detach()  # kinds checked once by the core (meta, complex, ...)
    if t.ndim != 1 or t.numel() == 0:
        raise InputError(f"{name}: expected a flat parameter vector, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name}: contains NaN or Inf")
    return t


def _finite_scalar(x, name: str) -> float:
    """A finite real scalar (any sign), else InputError naming ``name``."""
    v = check_in_range(x, name, -math.inf, math.inf)  # real (no str/bool/complex), not NaN
    if not torch.isfinite(torch.tensor(v)):
        raise InputError(f"{name}: must be finite, got {v}")
    return v


def _layers(A, name: str) -> torch.Tensor:
    """A stack of layer matrices: a float tensor (kinds checked by the core), finite."""
    if not isinstance(A, torch.Tensor):
        raise InputError(f"{name}: expected a torch tensor (L, n, n), got {type(A).__name__}")
    return as_tensor(A, name)


def _null(A: torch.Tensor, rtol: float) -> torch.Tensor:
    """Orthonormal basis (columns) of the null space of A (n_rows, D)."""
    D = A.shape[1]
    if A.numel() == 0:
        return torch.eye(D, dtype=A.dtype)
    _, s, Vh = torch.linalg.svd(A, full_matrices=True)
    r = int((s > rtol * s[0]).sum()) if float(s[0]) > 0 else 0
    return Vh[r:].T


def metric(phi: Callable, theta) -> torch.Tensor:
    """Metric M(theta) = dphi(theta) dphi(theta)^T (d x d) of the flow z' = -M(theta) grad f(z).

    Along the gradient flow of theta -> f(phi(theta)), z = phi(theta) moves with this metric
    (arXiv 2508.07370 Sec. 2; Def. 2.6 / 2.10 in the notes' numbering, unverified). The Jacobian
    is formed by forward or reverse mode (whichever is cheaper) on the flattened output.

    Parameters
    ----------
    phi : callable
        Flat torch vector -> tensor (flattened to d values), ``torch.func``-transformable.
    theta : array_like or Tensor, shape (D,)
        Finite, non-empty point.

    Returns
    -------
    array or Tensor, shape (d, d)
        NumPy in -> NumPy out.

    Raises
    ------
    InputError
        ``phi`` not callable, ``theta`` not a finite flat vector.

    Examples
    --------
    For phi = U V^T, M = U U^T (x) I + I (x) V V^T, of trace 2 |U|^2 + 2 |V|^2:

        >>> import torch
        >>> phi = lambda t: (t[:2, None] * t[None, 2:]).reshape(-1)    # U V^T, U, V of shape (2, 1)
        >>> theta = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64)
        >>> from measureflow.conservation.intrinsic import metric
        >>> round(float(metric(phi, theta).trace()), 6)     # 2 x 5 + 2 x 1.25
        12.5

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 2.
    """
    if not callable(phi):
        raise InputError("phi: expected a callable on a flat parameter vector")
    ctx = ArrayContext(theta)
    t = _theta(ctx.tensor(theta, "theta"))
    J = flat_jacobian(phi, t)
    return ctx.wrap(J @ J.T)


@dataclasses.dataclass(frozen=True)
class KernelInclusion:
    """Result of :func:`kernel_inclusion`.

    Attributes
    ----------
    dim_ker_dphi : int
        dim ker dphi(theta).
    dim_ker_dh : int
        Dimension used for ker dh(theta) (the Lie trace when no laws were given).
    dim_intersection : int
        dim (ker dphi ∩ ker dh).
    max_dM : float
        Max over an orthonormal basis w of the intersection of max_ij |dM(theta)[w]_ij|.
    relative_dM : float
        max_dM / max_ij |M_ij|.
    holds : bool
        relative_dM <= tol (vacuously True when the intersection is {0}).
    recoverable : bool
        The intersection is {0}.
    """

    dim_ker_dphi: int
    dim_ker_dh: int
    dim_intersection: int
    max_dM: float
    relative_dM: float
    holds: bool
    recoverable: bool


def kernel_inclusion(phi: Callable, theta, *, laws: Callable | None = None, rtol: float = 1e-9,
                     tol: float = 1e-7) -> KernelInclusion:
    """Check ker dphi(theta) ∩ ker dh(theta) ⊆ ker dM(theta) (kernel criterion, intrinsic dynamics).

    The flow of z = phi(theta) is intrinsic when M(theta) = dphi dphi^T only depends on phi(theta)
    on the level set of the laws h; the inclusion is its necessary condition at theta (arXiv
    2508.07370, kernel criterion). dM(theta)[w] = d/de M(theta + e w) is evaluated by
    ``torch.func.jvp`` on an orthonormal basis w of the intersection.

    Parameters
    ----------
    phi : callable
        Flat torch vector -> tensor, ``torch.func``-transformable.
    theta : array_like or Tensor, shape (D,)
        Finite point.
    laws : callable, optional
        theta -> vector of the (complete) laws. If None, ker dh is replaced by the Lie trace
        Lie(W_phi)(theta) computed by :func:`~measureflow.conservation.lie_closure` (equal to
        ker dh for a complete set of laws).
    rtol : float, default 1e-9
        Relative rank threshold of the null spaces (> 0).
    tol : float, default 1e-7
        Threshold on ``relative_dM`` (>= 0).

    Returns
    -------
    KernelInclusion

    Raises
    ------
    InputError
        ``phi`` / ``laws`` not callable, ``theta`` not a finite flat vector, bad ``rtol`` / ``tol``.

    Examples
    --------
        >>> import torch
        >>> phi = lambda t: (t[:2, None] * t[None, 2:]).reshape(-1)    # U V^T, U, V of shape (2, 1)
        >>> theta = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64)
        >>> from measureflow.conservation.intrinsic import kernel_inclusion
        >>> laws = lambda t: (t[:2] ** 2).sum(0, keepdim=True) - (t[2:] ** 2).sum(0, keepdim=True)
        >>> k = kernel_inclusion(phi, theta, laws=laws)
        >>> k.dim_ker_dphi, k.dim_ker_dh, k.dim_intersection, k.holds, k.recoverable
        (1, 3, 0, True, True)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 2.
    """
    if not callable(phi):
        raise InputError("phi: expected a callable")
    rtol = check_positive(rtol, "rtol")
    tol = check_nonnegative_scalar(tol, "tol")
    t = _theta(theta)
    D = t.numel()
    f = lambda x: phi(x).reshape(-1)
    J = flat_jacobian(f, t)
    Kb = _null(J, rtol)  # (D, k)
    if laws is None:
        Q = lie_closure(GradientFields(f), t, rtol=rtol).basis  # rows span Lie trace
        Lb = Q.T
    else:
        if not callable(laws):
            raise InputError("laws: expected a callable")
        Jh = jacrev(lambda x: laws(x).reshape(-1))(t).reshape(-1, D)
        Lb = _null(Jh, rtol)
    if Kb.shape[1] == 0 or Lb.shape[1] == 0:
        W = torch.zeros(D, 0, dtype=t.dtype)
    else:
        # w = Kb a in span(Lb)  <=>  (I - Lb Lb^T) Kb a = 0
        N = Kb - Lb @ (Lb.T @ Kb)
        _, s, Vh = torch.linalg.svd(N, full_matrices=True)
        r = int((s > 1e-7).sum())
        W = Kb @ Vh[r:].T
    M = J @ J.T
    Mfun = lambda x: (lambda Jx: Jx @ Jx.T)(jacrev(f)(x))
    max_dM = 0.0
    for i in range(W.shape[1]):
        dM = jvp(Mfun, (t,), (W[:, i],))[1]
        max_dM = max(max_dM, float(dM.abs().max()))
    scale = float(M.abs().max()) or 1.0
    rel = max_dM / scale
    return KernelInclusion(dim_ker_dphi=int(Kb.shape[1]), dim_ker_dh=int(Lb.shape[1]),
                           dim_intersection=int(W.shape[1]), max_dM=max_dM, relative_dM=rel,
                           holds=bool(rel <= tol), recoverable=bool(W.shape[1] == 0))


def recoverable(phi: Callable, theta, *, laws: Callable | None = None,
                rtol: float = 1e-9) -> bool:
    """Intrinsic recoverability at theta: ker dphi(theta) ∩ ker dh(theta) = {0}.

    Then theta is locally determined by (phi(theta), h(theta)) (arXiv 2508.07370 Def. 2.15 /
    Thm 2.17, notes' numbering, unverified). Computed by :func:`kernel_inclusion`.

    Parameters
    ----------
    phi, theta, laws, rtol :
        As in :func:`kernel_inclusion`.

    Returns
    -------
    bool

    Raises
    ------
    InputError
        As :func:`kernel_inclusion`.

    Examples
    --------
        >>> import torch
        >>> phi = lambda t: (t[:2, None] * t[None, 2:]).reshape(-1)    # U V^T, U, V of shape (2, 1)
        >>> theta = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64)
        >>> from measureflow.conservation.intrinsic import recoverable
        >>> recoverable(phi, theta)
        True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 2.
    """
    return kernel_inclusion(phi, theta, laws=laws, rtol=rtol).recoverable


def frobenius_test(phi: Callable, theta, *, rtol: float | None = None) -> bool:
    """Frobenius property at theta: dim Lie(W_phi)(theta) == rank dphi(theta).

    W_phi = range dphi(theta)^T is then closed under brackets at theta (arXiv 2508.07370 Sec. 3,
    Thm 3.1 in the notes' numbering, unverified: it holds for the path-lifting of DAG ReLU
    networks). The ranks come from :func:`~measureflow.conservation.number_of_laws`.

    Parameters
    ----------
    phi : callable
        Flat torch vector -> tensor, ``torch.func``-transformable.
    theta : array_like or Tensor, shape (D,)
    rtol : float, optional
        As in :func:`~measureflow.conservation.lie_rank`.

    Returns
    -------
    bool

    Raises
    ------
    InputError
        As :func:`~measureflow.conservation.number_of_laws`.

    Examples
    --------
        >>> import torch
        >>> phi = lambda t: (t[:2, None] * t[None, 2:]).reshape(-1)    # U V^T, U, V of shape (2, 1)
        >>> theta = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64)
        >>> from measureflow.conservation.intrinsic import frobenius_test
        >>> frobenius_test(phi, theta)
        True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 3.
    """
    return number_of_laws(phi, theta, rtol=rtol).frobenius


# ----------------------------------------------------------------------- initialisations
def _orthonormal(n: int, r: int, gen) -> torch.Tensor:
    Q, R = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=_F64))
    return Q * torch.sign(torch.diagonal(R))


def relaxed_balanced_linear(n: int, m: int, r: int, lam: float, *, seed=0,
                            scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample (U, V), U (n, r), V (m, r), on the relaxed-balanced level set U^T U - V^T V = lam I_r.

    lam >= 0: V is Gaussian with std ``scale`` and U = O (V^T V + lam I)^(1/2), O with orthonormal
    columns (needs r <= n); lam < 0: the mirror construction (needs r <= m). Relaxed-balanced
    initialisations give closed-form intrinsic metrics (arXiv 2508.07370 Sec. 3; see
    :func:`metric_linear_relaxed_balanced`).

    Parameters
    ----------
    n, m, r : int
        Shapes (each >= 1).
    lam : float
        Level (finite, any sign).
    seed : int or torch.Generator, default 0
    scale : float, default 1.0
        Std of the free factor (> 0).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        U and V in float64.

    Raises
    ------
    InputError
        A bad size, r > n (lam >= 0) or r > m (lam < 0), non-finite ``lam``, ``scale`` <= 0.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import relaxed_balanced_linear
    >>> U, V = relaxed_balanced_linear(3, 2, 2, 0.5)
    >>> bool(torch.allclose(U.T @ U - V.T @ V, 0.5 * torch.eye(2, dtype=torch.float64)))
    True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 3.
    """
    n, m, r = (check_int(x, nm, min_value=1) for x, nm in ((n, "n"), (m, "m"), (r, "r")))
    lam = _finite_scalar(lam, "lam")
    scale = check_positive(scale, "scale")
    gen = make_generator(seed)
    if lam >= 0:
        if r > n:
            raise InputError(f"r: relaxed balanced with lam >= 0 needs r <= n ({r} > {n})")
        V = scale * torch.randn(m, r, generator=gen, dtype=_F64)
        ev, E = torch.linalg.eigh(V.T @ V + lam * torch.eye(r, dtype=_F64))
        U = _orthonormal(n, r, gen) @ (E * ev.clamp_min(0).sqrt()) @ E.T
    else:
        if r > m:
            raise InputError(f"r: relaxed balanced with lam < 0 needs r <= m ({r} > {m})")
        U = scale * torch.randn(n, r, generator=gen, dtype=_F64)
        ev, E = torch.linalg.eigh(U.T @ U - lam * torch.eye(r, dtype=_F64))
        V = _orthonormal(m, r, gen) @ (E * ev.clamp_min(0).sqrt()) @ E.T
    return U, V


def relaxed_balanced_deep(n: int, lams: Sequence[float], *, seed=0,
                          low: float = 0.5, high: float = 1.5) -> list[torch.Tensor]:
    """Square U_1..U_L (n x n), L = len(lams) + 1, with U_(i+1)^T U_(i+1) - U_i U_i^T = lam_i I.

    Construction U_i = O_i diag(sqrt(d + Lambda_i)) O_(i-1)^T with random orthogonal O_i,
    Lambda_i = sum_(j<i) lam_j and d uniform in [low, high] shifted so that d + min Lambda > 0
    (arXiv 2508.07370 Sec. 3; see :func:`metric_deep_linear`).

    Parameters
    ----------
    n : int
        Width (>= 1).
    lams : sequence of float
        The levels lam_1..lam_(L-1) (finite).
    seed : int or torch.Generator, default 0
    low, high : float, default 0.5, 1.5
        Range of the base singular values squared (0 < low <= high).

    Returns
    -------
    list of torch.Tensor
        [U_1, ..., U_L] in float64 (phi = U_L ... U_1).

    Raises
    ------
    InputError
        Bad ``n``, non-finite levels, ``high`` < ``low``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import relaxed_balanced_deep
    >>> Us = relaxed_balanced_deep(2, [0.3, -0.2])
    >>> S = Us[2].T @ Us[2] - Us[1] @ Us[1].T
    >>> len(Us), bool(torch.allclose(S, -0.2 * torch.eye(2, dtype=torch.float64)))
    (3, True)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 3.
    """
    n = check_int(n, "n", min_value=1)
    lams = [_finite_scalar(x, "lams") for x in lams]
    low, high = check_positive(low, "low"), check_positive(high, "high")
    if high < low:
        raise InputError(f"high: must be >= low ({high} < {low})")
    gen = make_generator(seed)
    Lam = [0.0]
    for x in lams:
        Lam.append(Lam[-1] + x)
    d = low + (high - low) * torch.rand(n, generator=gen, dtype=_F64) - min(Lam)
    O = [_orthonormal(n, n, gen) for _ in range(len(Lam) + 1)]
    return [O[i + 1] @ torch.diag((d + Lam[i]).sqrt()) @ O[i].T for i in range(len(Lam))]


# ----------------------------------------------------------------------- metrics
def _eye(ctx: ArrayContext, n: int) -> torch.Tensor:
    return torch.eye(n, dtype=ctx.dtype, device=ctx.device)


def _kron_op(P: torch.Tensor, Qm: torch.Tensor) -> torch.Tensor:
    """Matrix of G -> P G Q on row-major vec(G)."""
    return torch.kron(P.contiguous(), Qm.T.contiguous())


def metric_relu_two_layer(Z: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Intrinsic metric of the 2-layer ReLU path-lifting phi = (u_k v_k^T)_k.

    With |u_k|^2 = (delta_k + sqrt(delta_k^2 + 4 |Z_k|^2)) / 2 and |v_k|^2 = |u_k|^2 - delta_k,
    K[G]_k = Z_k Z_k^T G_k / |v_k|^2 + G_k Z_k^T Z_k / |u_k|^2 (block diagonal), i.e. M(theta)
    written as a function of (phi(theta), h(theta)) (arXiv 2508.07370 Sec. 3, ReLU networks;
    Cor. 3.3 in the notes' numbering, unverified). Blocks are flattened row-major.

    Parameters
    ----------
    Z : array_like or Tensor, shape (r, n, p)
        The blocks Z_k = u_k v_k^T (v_k including the bias when there is one).
    delta : array_like or Tensor, shape (r,)
        The laws delta_k = |u_k|^2 - |v_k|^2.

    Returns
    -------
    array or Tensor, shape (r n p, r n p)

    Raises
    ------
    InputError
        Bad shapes, a neuron with u_k = 0 or v_k = 0.

    Examples
    --------
    It equals dphi dphi^T computed by autograd:

        >>> import torch
        >>> phi = lambda t: (t[:2, None] * t[None, 2:]).reshape(-1)    # U V^T, U, V of shape (2, 1)
        >>> theta = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64)
        >>> from measureflow.conservation.intrinsic import metric, metric_relu_two_layer
        >>> Z = (theta[:2, None] * theta[None, 2:])[None]            # one neuron, u = (1, 2)
        >>> delta = torch.tensor([5.0 - 1.25], dtype=torch.float64)   # |u|^2 - |v|^2
        >>> bool(torch.allclose(metric_relu_two_layer(Z, delta), metric(phi, theta)))
        True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 3.
    """
    ctx = ArrayContext(Z, delta)
    Z, delta = ctx.tensor(Z, "Z"), ctx.tensor(delta, "delta")
    if Z.ndim != 3 or delta.shape != (Z.shape[0],):
        raise InputError("Z, delta: expected Z of shape (r, n, p) and delta of shape (r,)")
    blocks = []
    for Zk, dk in zip(Z, delta):
        nz2 = (Zk ** 2).sum()
        u2 = (dk + torch.sqrt(dk * dk + 4 * nz2)) / 2
        v2 = u2 - dk
        if not (u2 > 0 and v2 > 0):
            raise InputError("Z: a neuron with u_k = 0 or v_k = 0 has no intrinsic metric here")
        n, p = Zk.shape
        blocks.append(_kron_op(Zk @ Zk.T / v2, _eye(ctx, p))
                      + _kron_op(_eye(ctx, n), Zk.T @ Zk / u2))
    return ctx.wrap(torch.block_diag(*blocks))


def _range_proj(Z: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    A, s, Bh = torch.linalg.svd(Z)
    Ar, Br = A[:, :r], Bh[:r].T
    return Ar @ Ar.T, Br @ Br.T


def metric_linear_relaxed_balanced(Z: torch.Tensor, lam: float, r: int) -> torch.Tensor:
    """Intrinsic metric of phi = U V^T on the relaxed-balanced level set U^T U - V^T V = lam I_r.

    U U^T = (sqrt(Z Z^T + lam^2/4 I) + lam/2 I) P_Z and V V^T = (sqrt(Z^T Z + lam^2/4 I) - lam/2 I)
    P_(Z^T) (P: projections on the ranges, rank r) [derived from (U U^T)^2 - lam U U^T = Z Z^T and
    (V V^T)^2 + lam V V^T = Z^T Z], and K[G] = U U^T G + G V V^T (arXiv 2508.07370 Sec. 3,
    relaxed balanced linear networks; Thm 3.8 in the notes' numbering, unverified). Row-major vec.

    Parameters
    ----------
    Z : array_like or Tensor, shape (n, m)
        phi(theta), of rank r.
    lam : float
        The level (finite).
    r : int
        Inner width, 1 <= r <= min(n, m).

    Returns
    -------
    array or Tensor, shape (n m, n m)

    Raises
    ------
    InputError
        ``Z`` not a matrix, bad ``r`` or ``lam``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import (metric, metric_linear_relaxed_balanced,
    ...                                                 relaxed_balanced_linear)
    >>> U, V = relaxed_balanced_linear(3, 2, 2, 0.5)
    >>> theta = torch.cat([U.reshape(-1), V.reshape(-1)])
    >>> phi = lambda t: t[:6].reshape(3, 2) @ t[6:].reshape(2, 2).T
    >>> K = metric_linear_relaxed_balanced(U @ V.T, 0.5, 2)
    >>> tuple(K.shape), bool(torch.allclose(K, metric(phi, theta)))
    ((6, 6), True)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 3.
    """
    ctx = ArrayContext(Z)
    Z = ctx.tensor(Z, "Z")
    if Z.ndim != 2:
        raise InputError("Z: expected a matrix")
    n, m = Z.shape
    r = check_int(r, "r", min_value=1)
    if r > min(n, m):
        raise InputError(f"r: the closed form needs r <= min(n, m) = {min(n, m)}")
    lam = _finite_scalar(lam, "lam")
    Pu, Pv = _range_proj(Z, r)
    In, Im = _eye(ctx, n), _eye(ctx, m)
    UU = (sqrtm_psd(Z @ Z.T + lam * lam / 4 * In) + lam / 2 * In) @ Pu
    VV = (sqrtm_psd(Z.T @ Z + lam * lam / 4 * Im) - lam / 2 * Im) @ Pv
    UU, VV = 0.5 * (UU + UU.T), 0.5 * (VV + VV.T)
    return ctx.wrap(_kron_op(UU, Im) + _kron_op(In, VV))


def _roots(z2: torch.Tensor, Lam: torch.Tensor) -> torch.Tensor:
    """s with prod_i (s + Lam_i) = z2 and s + min Lam >= 0.

    Bisection (the product is increasing there) on detached values, then one Newton step on the
    live graph, so that ds/dz2 = 1 / P'(s) is exact under autograd (implicit function theorem).
    """
    P = lambda s: torch.prod(s[:, None] + Lam[None, :], dim=1)
    zd, Ld = z2.detach(), Lam.detach()
    lo = torch.full_like(zd, -float(Ld.min()))
    hi = lo + 1.0
    f = lambda s: torch.prod(s[:, None] + Ld[None, :], dim=1) - zd
    while bool((f(hi) < 0).any()):
        hi = torch.where(f(hi) < 0, lo + 2 * (hi - lo), hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        neg = f(mid) < 0
        lo, hi = torch.where(neg, mid, lo), torch.where(neg, hi, mid)
    s0 = 0.5 * (lo + hi)
    dP = torch.func.vmap(torch.func.grad(lambda x: torch.prod(x + Ld)))(s0)
    return s0 - (P(s0) - z2) / dP


def metric_deep_linear(Z: torch.Tensor, lams: Sequence[float]) -> torch.Tensor:
    """Intrinsic metric of phi = U_L ... U_1 (n x n) on U_(i+1)^T U_(i+1) - U_i U_i^T = lam_i I.

    With Lambda_i = sum_(j<i) lam_j (Lambda_1 = 0), Z = A diag(z) B^T (SVD) and s_k the root of
    prod_i (s + Lambda_i) = z_k^2 with s + min Lambda >= 0:
    K[G] = sum_j A diag(prod_(i>j) (s + Lambda_i)) A^T G B diag(prod_(i<j) (s + Lambda_i)) B^T.
    For lam = 0 this is Arora et al.'s sum_j (Z Z^T)^((L-j)/L) G (Z^T Z)^((j-1)/L).
    [Reconstruction, checked against M = dphi dphi^T in the tests.] arXiv 2508.07370 Sec. 3 (deep
    square linear; Thm 3.11 in the notes' numbering, unverified). The roots are found by
    bisection then one Newton step on the live graph, so autograd through ``Z`` is exact.

    Parameters
    ----------
    Z : array_like or Tensor, shape (n, n)
        phi(theta).
    lams : sequence of float
        lam_1..lam_(L-1).

    Returns
    -------
    array or Tensor, shape (n^2, n^2)

    Raises
    ------
    InputError
        ``Z`` not square.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import (metric, metric_deep_linear,
    ...                                                 relaxed_balanced_deep)
    >>> U1, U2 = relaxed_balanced_deep(2, [0.3])
    >>> theta = torch.cat([U1.reshape(-1), U2.reshape(-1)])
    >>> phi = lambda t: t[4:].reshape(2, 2) @ t[:4].reshape(2, 2)
    >>> bool(torch.allclose(metric_deep_linear(U2 @ U1, [0.3]), metric(phi, theta)))
    True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 3.
    """
    ctx = ArrayContext(Z)
    Z = ctx.tensor(Z, "Z")
    if Z.ndim != 2 or Z.shape[0] != Z.shape[1]:
        raise InputError("Z: expected a square matrix")
    lams = [float(x) for x in lams]
    L = len(lams) + 1
    Lam = torch.tensor([0.0] + [float(x) for x in torch.cumsum(torch.tensor(lams, dtype=_F64), 0)]
                       if lams else [0.0], dtype=Z.dtype, device=Z.device)
    A, z, Bh = torch.linalg.svd(Z)
    s = _roots(z * z, Lam)
    F = s[:, None] + Lam[None, :]  # (n, L): eigenvalue of U_i U_i^T-type factors
    K = 0
    for j in range(L):
        left = torch.prod(F[:, j + 1:], dim=1) if j + 1 < L else torch.ones_like(s)
        right = torch.prod(F[:, :j], dim=1) if j > 0 else torch.ones_like(s)
        K = K + _kron_op((A * left) @ A.T, (Bh.T * right) @ Bh)
    return ctx.wrap(K)


# ----------------------------------------------------------------------- linear neural ODE
def relaxed_balanced_neural_ode(n: int, n_layers: int, mu: float, *, seed=0,
                                scale: float = 0.5, skew: float = 0.5) -> torch.Tensor:
    """Relaxed-balanced initialisation of the linear neural ODE, sampled at s_i = (i + 1/2)/L.

    The linear neural ODE x'(s) = A(s) x(s), s in [0, 1], is the infinite-depth limit of the deep
    linear network prod_i (I + A_i / L); its product is the resolvent Z = Phi(1, 0). Gradient
    flow (L^2 metric on A) conserves, pointwise in s, [derived by us]
    S(s) = d/ds (A + A^T)(s) + A(s)^T A(s) - A(s) A(s)^T,
    the continuum limit of L^2 (U_(i+1)^T U_(i+1) - U_i U_i^T) for U_i = I + A_i/L. Relaxed
    balanced means S(s) = mu I; here mu is constant and the path
    A(s) = e^(sK) S_0 e^(-sK) + (mu s / 2) I + K (K skew, S_0 symmetric, both random) satisfies it
    exactly (arXiv 2508.07370, neural ODE section).

    Parameters
    ----------
    n : int
        Width (>= 1).
    n_layers : int
        Number L of grid points (>= 1).
    mu : float
        The level (finite).
    seed : int or torch.Generator, default 0
    scale : float, default 0.5
        Std of S_0 before symmetrisation (> 0).
    skew : float, default 0.5
        Std of K before antisymmetrisation (>= 0).

    Returns
    -------
    torch.Tensor, shape (n_layers, n, n)
        float64.

    Raises
    ------
    InputError
        Bad sizes, non-finite ``mu``, bad ``scale`` / ``skew``.

    Examples
    --------
    The discretised law (:func:`neural_ode_law`) is mu I up to O(1/L^2):

    >>> import torch
    >>> from measureflow.conservation.intrinsic import neural_ode_law, relaxed_balanced_neural_ode
    >>> A = relaxed_balanced_neural_ode(2, 8, 0.1)
    >>> S = neural_ode_law(A)
    >>> tuple(A.shape), bool((S - 0.1 * torch.eye(2, dtype=torch.float64)).abs().max() < 1e-2)
    ((8, 2, 2), True)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370.
    """
    n = check_int(n, "n", min_value=1)
    L = check_int(n_layers, "n_layers", min_value=1)
    mu = _finite_scalar(mu, "mu")
    scale = check_positive(scale, "scale")
    skew = check_nonnegative_scalar(skew, "skew")
    gen = make_generator(seed)
    S0 = scale * torch.randn(n, n, generator=gen, dtype=_F64)
    S0 = 0.5 * (S0 + S0.T)
    K = skew * torch.randn(n, n, generator=gen, dtype=_F64)
    K = 0.5 * (K - K.T)
    s = (torch.arange(L, dtype=_F64) + 0.5) / L
    out = []
    for si in s:
        E = torch.linalg.matrix_exp(si * K)
        out.append(E @ S0 @ E.T + float(mu) * si / 2 * torch.eye(n, dtype=_F64) + K)
    return torch.stack(out)


def neural_ode_product(A: torch.Tensor) -> torch.Tensor:
    """Resolvent Z = expm(A_L / L) ... expm(A_1 / L) of a piecewise-constant A.

    Parameters
    ----------
    A : torch.Tensor, shape (L, n, n)
        Layer matrices (autograd kept).

    Returns
    -------
    torch.Tensor, shape (n, n)

    Raises
    ------
    InputError
        ``A`` not a tensor of shape (L, n, n).

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import neural_ode_product
    >>> Z = neural_ode_product(torch.full((4, 1, 1), 0.5, dtype=torch.float64))
    >>> round(float(Z), 6)                                # exp(0.5)
    1.648721
    """
    A = _layers(A, "A")
    if A.ndim != 3 or A.shape[1] != A.shape[2]:
        raise InputError(f"A: expected shape (L, n, n), got {tuple(A.shape)}")
    L = A.shape[0]
    Z = torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
    for i in range(L):
        Z = torch.linalg.matrix_exp(A[i] / L) @ Z
    return Z


def neural_ode_law(A: torch.Tensor) -> torch.Tensor:
    """Discretised law S(s) = d/ds (A + A^T) + A^T A - A A^T at the midpoints of the grid.

    Finite differences on the grid s_i = (i + 1/2)/L (second-order accurate in 1/L); A^T A - A A^T
    uses the average of neighbouring layers. See :func:`relaxed_balanced_neural_ode`.

    Parameters
    ----------
    A : torch.Tensor, shape (L, n, n)
        L >= 2.

    Returns
    -------
    torch.Tensor, shape (L - 1, n, n)

    Raises
    ------
    InputError
        ``A`` not a tensor of shape (L, n, n) with L >= 2.

    Examples
    --------
    A constant symmetric path has S = 0:

    >>> import torch
    >>> from measureflow.conservation.intrinsic import neural_ode_law
    >>> A = torch.eye(2, dtype=torch.float64).repeat(3, 1, 1)
    >>> tuple(neural_ode_law(A).shape), float(neural_ode_law(A).abs().max())
    ((2, 2, 2), 0.0)
    """
    A = _layers(A, "A")
    if A.ndim != 3 or A.shape[0] < 2:
        raise InputError("A: expected shape (L, n, n) with L >= 2")
    L = A.shape[0]
    sym = A + A.transpose(1, 2)
    Am = 0.5 * (A[1:] + A[:-1])
    return (sym[1:] - sym[:-1]) * L + Am.transpose(1, 2) @ Am - Am @ Am.transpose(1, 2)


def metric_neural_ode(Z: torch.Tensor, mu: float, *, n_quad: int = 48) -> torch.Tensor:
    """Intrinsic metric of the linear neural ODE on the level set S(s) = mu I (constant mu).

    With m(s) = mu s, Z = A diag(z) B^T and sigma_k = 2 log z_k - int_0^1 m:
    K(Z)[G] = int_0^1 A diag(e^(a_k(s))) A^T G B diag(e^(b_k(s))) B^T ds,
    a_k(s) = (1 - s) sigma_k + int_s^1 m, b_k(s) = s sigma_k + int_0^s m.
    [Derived by us as the continuum limit of :func:`metric_deep_linear` with U_i = I + A_i/L,
    lam_i = mu / L^2, for the L^2 gradient flow A_t(s) = -Phi(1,s)^T grad f Phi(s,0)^T; the
    paper's own statement (Thm 3.13 in the camera-ready numbering) was not available. For mu = 0
    it is int_0^1 (Z Z^T)^(1-s) G (Z^T Z)^s ds.] Gauss-Legendre quadrature with ``n_quad``
    nodes. Row-major vec.

    Parameters
    ----------
    Z : array_like or Tensor, shape (n, n)
        An invertible resolvent.
    mu : float
        The level (finite).
    n_quad : int, default 48
        Quadrature nodes (>= 2).

    Returns
    -------
    array or Tensor, shape (n^2, n^2)

    Raises
    ------
    InputError
        ``Z`` not square or singular, bad ``mu`` / ``n_quad``.

    Examples
    --------
    For Z = c I and mu = 0, K = c^2 I:

    >>> import math
    >>> import torch
    >>> from measureflow.conservation.intrinsic import metric_neural_ode
    >>> K = metric_neural_ode(math.e * torch.eye(2, dtype=torch.float64), 0.0)
    >>> [round(float(x), 4) for x in K.diagonal()], round(float(K.sum() - K.trace()), 8)
    ([7.3891, 7.3891, 7.3891, 7.3891], 0.0)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370.
    """
    ctx = ArrayContext(Z)
    Z = ctx.tensor(Z, "Z")
    if Z.ndim != 2 or Z.shape[0] != Z.shape[1]:
        raise InputError("Z: expected a square matrix")
    mu = _finite_scalar(mu, "mu")
    n_quad = check_int(n_quad, "n_quad", min_value=2)
    Au, z, Bh = torch.linalg.svd(Z)
    if float(z.min()) <= 0:
        raise InputError("Z: must be invertible (a resolvent)")
    import numpy as np
    x, w = np.polynomial.legendre.leggauss(n_quad)
    s_nodes = torch.tensor((x + 1) / 2, dtype=Z.dtype, device=Z.device)
    w = torch.tensor(w / 2, dtype=Z.dtype, device=Z.device)
    sigma = 2 * torch.log(z) - mu / 2
    K = 0
    for s, ws in zip(s_nodes, w):
        a = (1 - s) * sigma + mu * (1 - s * s) / 2
        b = s * sigma + mu * s * s / 2
        K = K + ws * _kron_op((Au * torch.exp(a)) @ Au.T, (Bh.T * torch.exp(b)) @ Bh)
    return ctx.wrap(K)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeuralODEFlow(FlowResult):
    """Output of :func:`neural_ode_flow` (a :class:`~measureflow.ot.integrate.FlowResult`).

    Attributes
    ----------
    times : torch.Tensor, shape (n_t + 1,)
    trajectory : (torch.Tensor, torch.Tensor)
        Z(t) from the parameter flow and z(t) from the intrinsic flow, each (n_t + 1, n, n).
    final : (torch.Tensor, torch.Tensor)
        Their last values.
    max_rel_error : float
        max_t |Z - z|_F / |Z|_F.
    law_drift : float
        max_t max |S_t - S_0| of the discretised law (:func:`neural_ode_law`).
    Z_param, Z_intrinsic : torch.Tensor
        Aliases of the two trajectory components.
    converged, n_iter, errors :
        Always True, ``n_t``, empty (a fixed-step integration).
    """

    max_rel_error: float = math.nan
    law_drift: float = math.nan
    Z_param = result_alias("trajectory", 0, "resolvent of the parameter flow")
    Z_intrinsic = result_alias("trajectory", 1, "solution of the intrinsic flow")


def neural_ode_flow(A0: torch.Tensor, target: torch.Tensor, mu: float, *, t_max: float = 0.5,
                    n_t: int = 50) -> NeuralODEFlow:
    """Integrate the parameter flow of the linear neural ODE and the intrinsic flow of Z together.

    Loss f(Z) = 1/2 |Z - target|_F^2. Parameter flow: A_i' = -L grad_(A_i) f(neural_ode_product(A))
    (the L^2 gradient of the piecewise-constant path; autograd through ``matrix_exp``). Intrinsic
    flow: z' = -K(z)[grad f(z)] with K = :func:`metric_neural_ode` (mu constant). Both by classical
    RK4 with ``n_t`` steps on [0, t_max] (:func:`measureflow.ot.integrate.odeint`). Their
    difference is the discretisation error of the L-layer approximation (O(1/L)) plus the RK4 error.

    Parameters
    ----------
    A0 : torch.Tensor, shape (L, n, n)
        Initial path, e.g. :func:`relaxed_balanced_neural_ode` with the same ``mu``.
    target : array_like or Tensor, shape (n, n)
    mu : float
        The level of A0 (finite).
    t_max : float, default 0.5
        Horizon (> 0).
    n_t : int, default 50
        RK4 steps (>= 1).

    Returns
    -------
    NeuralODEFlow

    Raises
    ------
    InputError
        Bad shapes, non-finite ``mu``, bad ``t_max`` / ``n_t``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import neural_ode_flow, relaxed_balanced_neural_ode
    >>> A0 = relaxed_balanced_neural_ode(2, 4, 0.0)
    >>> res = neural_ode_flow(A0, torch.eye(2, dtype=torch.float64), 0.0, t_max=0.1, n_t=2)
    >>> tuple(res.Z_param.shape), res.max_rel_error < 0.05, res.law_drift < 0.05
    ((3, 2, 2), True, True)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370.
    """
    A0 = _layers(A0, "A0")
    if A0.ndim != 3 or A0.shape[1] != A0.shape[2]:
        raise InputError(f"A0: expected shape (L, n, n), got {tuple(A0.shape)}")
    mu = _finite_scalar(mu, "mu")
    t_max = check_positive(t_max, "t_max")
    n_t = check_int(n_t, "n_t", min_value=1)
    target = as_tensor(target, "target", dtype=A0.dtype, device=A0.device)
    L, n = A0.shape[0], A0.shape[1]
    if target.shape != (n, n):
        raise InputError(f"target: expected shape ({n}, {n})")

    def fA(A):
        A = A.detach().requires_grad_(True)
        Z = neural_ode_product(A)
        loss = 0.5 * ((Z - target) ** 2).sum()
        (g,) = torch.autograd.grad(loss, A)
        return -L * g

    def fz(z):
        Kz = metric_neural_ode(z, mu)
        return -(Kz @ (z - target).reshape(-1)).reshape(n, n)

    A = A0.detach().clone()
    z = neural_ode_product(A).detach()
    S0 = neural_ode_law(A) if L >= 2 else None

    def observe(t, state):
        Ak = state[0]
        drift = 0.0 if S0 is None else float((neural_ode_law(Ak) - S0).abs().max())
        return {"Z": neural_ode_product(Ak).detach(), "drift": drift}

    res = odeint(lambda t, state: (fA(state[0]), fz(state[1])), (A, z), T=t_max,
                    n_steps=n_t, method="rk4", observe=observe, name="neural_ode_flow")
    Zp, Zi = res.observations["Z"], res.trajectory[1]
    drift = float(res.observations["drift"].max())
    err = float(((Zp - Zi).flatten(1).norm(dim=1) / Zp.flatten(1).norm(dim=1)).max())
    return NeuralODEFlow(times=res.times, trajectory=(Zp, Zi), final=(Zp[-1], Zi[-1]),
                         max_rel_error=err, law_drift=drift, converged=True, n_iter=n_t,
                         errors=[])
