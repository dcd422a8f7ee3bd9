"""The particle system of the Transformer PDE and its diagnostics.

dx_i/dt = Gamma_{mu_n(t)}(x_i), mu_n(t) = sum_j w_j delta_{x_j(t)}: a deep transformer with
residual attention layers x <- x + h Gamma(x) (time = depth). Castin, Ablin, Carrillo, Peyre,
arXiv:2501.18322, Sec. 2 (particle system, mean-field limit). Optional constraint to the unit
sphere (as in the clustering literature, tangential velocity + renormalisation) or a layer
norm after each step.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ..core import (
    ArrayContext,
    InputError,
    as_tensor,
    check_choice,
    check_int,
    check_ndim,
    check_nonnegative_scalar,
    check_positive,
    check_weights,
)
from ..core.validation import _as_float
from ..ot.integrate import (
    FlowResult,
    ParticleFlow,
    resolve_projection,
    sphere_tangent,
)
from ._heads import split_heads
from .attend import KINDS, _attend, _chunks, _positions

__all__ = ["particle_flow", "ParticleFlowResult", "cluster_count", "limit_rank",
           "interaction_energy"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParticleFlowResult(FlowResult):
    """Particle trajectory and diagnostics (result of :func:`particle_flow`).

    A fixed-horizon integration: ``converged`` is always True.

    Attributes
    ----------
    times : array or Tensor, shape (T_rec,)
    trajectory : array or Tensor, shape (T_rec, n, d)
        Recorded positions (detached).
    final : array or Tensor, shape (n, d)
        Final positions (autograd kept).
    means : array or Tensor, shape (T_rec, d)
    covs : array or Tensor, shape (T_rec, d, d)
        Weighted mean and covariance of the particles.
    energy : array or Tensor, shape (T_rec,)
        :func:`interaction_energy` at the recorded times.
    n_clusters : int
        :func:`cluster_count` of the final configuration.
    rank : int
        :func:`limit_rank` of the final configuration.
    n_iter : int
        Steps.
    """

    means: torch.Tensor = None
    covs: torch.Tensor = None
    energy: torch.Tensor = None
    n_clusters: int = 0
    rank: int = 0


def _wcov(x, a):
    mu = a @ x
    c = x - mu
    return mu, (a[:, None] * c).T @ c


def interaction_energy(points, weights=None, *, Q, K, heads=1):
    """Interaction energy E = 1/2 sum_h sum_ij a_i a_j exp(<Q_h x_i, K_h x_j>), a = w / sum w.

    For V = I, Q = K on the sphere the softmax particle flow is (up to a time change) the gradient
    ascent of this energy (the clustering picture, arXiv:2501.18322 and references). O(n^2)
    memory: meant for diagnostics of moderate n.

    Parameters
    ----------
    points : array_like or Tensor, shape (n, d)
    weights : array_like or Tensor, shape (n,), optional
        Nonnegative (default uniform); normalised here.
    Q, K : array_like or Tensor, shape (k, d)
        Equal shapes, k divisible by ``heads``.
    heads : int, default 1

    Returns
    -------
    float or Tensor

    Raises
    ------
    InputError
        Bad shapes or weights.

    Examples
    --------
    All particles at the origin: E = exp(0) / 2.

    >>> import numpy as np
    >>> from measureflow.attention import interaction_energy
    >>> interaction_energy(np.zeros((3, 2)), Q=np.eye(2), K=np.eye(2))
    0.5

    References
    ----------
    V. Castin, P. Ablin, J. A. Carrillo, G. Peyre, "A unified perspective on the dynamics of
    deep Transformers", arXiv:2501.18322.
    """
    ctx = ArrayContext(points, weights, Q, K)
    x = ctx.tensor(points, "points")
    check_ndim(x, "points", 2)
    a = check_weights(None if weights is None else ctx.tensor(weights, "weights"), x.shape[0],
                      "weights", like=x)
    a = a / a.sum()
    Qt, Kt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K")
    h = check_int(heads, "heads", min_value=1)
    if Qt.ndim != 2 or Qt.shape != Kt.shape or Qt.shape[1] != x.shape[1] or Qt.shape[0] % h:
        raise InputError(f"Q, K: expected equal shapes (k, {x.shape[1]}) with k divisible by "
                         f"heads, got {tuple(Qt.shape)} and {tuple(Kt.shape)}")
    return ctx.wrap(_interaction_energy(x, a, Qt, Kt, h))


def _interaction_energy(x, a, Q, K, h):
    """Tensor-only :func:`interaction_energy` (a normalised weights, Q/K (k, d), h heads)."""
    qp = (x @ Q.T).reshape(x.shape[0], h, -1).transpose(0, 1)
    kp = (x @ K.T).reshape(x.shape[0], h, -1).transpose(0, 1)
    return 0.5 * torch.einsum("i,hij,j->", a, torch.exp(qp @ kp.transpose(1, 2)), a)


def cluster_count(points, tol=None) -> int:
    """Number of clusters: connected components of the graph |x_i - x_j| <= tol (single linkage).

    Parameters
    ----------
    points : array_like or Tensor, shape (n, d)
        Finite.
    tol : float, optional
        Linkage distance (>= 0; default 1e-3 (1 + max_i |x_i|)).

    Returns
    -------
    int

    Raises
    ------
    InputError
        ``points`` not 2-D or non-finite, ``tol`` < 0.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.attention import cluster_count
    >>> cluster_count(np.array([[0.0, 0.0], [1.0, 0.0], [1.0005, 0.0]]))
    2
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    x = as_tensor(points, "points", check_finite=False).detach().cpu().numpy()
    if x.ndim != 2:
        raise InputError(f"points: expected a 2-D array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("points: contains NaN or Inf")
    if tol is None:
        tol = 1e-3 * (1.0 + float(np.linalg.norm(x, axis=1).max(initial=0.0)))
    tol = check_nonnegative_scalar(tol, "tol")
    if x.shape[0] <= 3000:
        xt = torch.as_tensor(x)
        graph = csr_matrix(torch.cdist(xt, xt).numpy() <= tol)
    else:
        from scipy.spatial import cKDTree
        tree = cKDTree(x)
        pairs = tree.query_pairs(tol, output_type="ndarray")
        graph = csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(x.shape[0], x.shape[0]))
    n, _ = connected_components(graph, directed=False)
    return int(n)


def limit_rank(points, weights=None, tol=1e-3) -> int:
    """Rank of a particle configuration: eigenvalues of its weighted covariance above ``tol``.

    Collapse to a point gives 0, to a line 1, ... (the limit shapes of arXiv:2501.18322).

    Parameters
    ----------
    points : array_like or Tensor, shape (n, d)
    weights : array_like or Tensor, shape (n,), optional
        Nonnegative (default uniform); normalised here.
    tol : float, default 1e-3
        Absolute eigenvalue threshold (>= 0).

    Returns
    -------
    int

    Raises
    ------
    InputError
        Bad shapes or weights, ``tol`` < 0.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.attention import limit_rank
    >>> limit_rank(np.zeros((3, 2))), limit_rank(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]))
    (0, 1)
    """
    ctx = ArrayContext(points, weights)
    x = ctx.tensor(points, "points")
    check_ndim(x, "points", 2)
    a = check_weights(None if weights is None else ctx.tensor(weights, "weights"), x.shape[0],
                      "weights", like=x)
    tol = check_nonnegative_scalar(tol, "tol")
    _, C = _wcov(x.detach(), (a / a.sum()).detach())
    return int((torch.linalg.eigvalsh(0.5 * (C + C.T)) > tol).sum())


def particle_flow(tokens, weights=None, *, Q, K, V, kind="softmax", T=1.0, steps=100,
                  heads=1, eps=1.0, positions=None, method="euler", normalize=None,
                  record_every=1, chunk=None, bias=0.0, rank_tol=1e-3, cluster_tol=None):
    """Integrate the Transformer-PDE particle system dx_i/dt = Gamma_(mu_n(t))(x_i) on [0, T].

    mu_n(t) = sum_j w_j delta_(x_j(t)): a deep Transformer with residual attention layers
    x <- x + h Gamma(x) (time = depth). ``Gamma`` is :func:`attend` of the current empirical
    measure (any ``kind``; ``positions`` of the causal kind stay attached to their particles),
    validated once and then evaluated by its tensor-only core; the steps are those of
    :class:`measureflow.ot.integrate.ParticleFlow` (with ``normalize`` the projection is also
    applied to the Runge-Kutta stages). arXiv:2501.18322, Sec. 2 (particle system) and Sec. 3
    (mean-field limit).

    Parameters
    ----------
    tokens : array_like or Tensor, shape (n, d)
        Initial particles (1-D: points on the line); n >= 1.
    weights : array_like or Tensor, shape (n,), optional
        Nonnegative (default uniform).
    Q, K : array_like or Tensor, shape (k, d)
        Score <Q x, K y> = y^T A x, A = K^T Q (no hidden 1/sqrt(d)); ``heads`` splits the rows.
    V : array_like or Tensor, shape (d_out, d)
        Output map (rows split per head with ``heads`` > 1).
        V must map R^d to R^d.
    kind : str, default "softmax"
        Any kind of :func:`attend`.
    T : float, default 1.0
        Horizon (> 0).
    steps : int, default 100
        Number of steps (h = T / steps).
    heads : int, default 1
    eps : float, default 1.0
        Sinkhorn regularisation.
    positions : array_like, optional
        Token positions (causal kind only).
    method : {"euler", "rk4"}, default "euler"
        ``"euler"`` is the residual network x <- x + h Gamma(x).
    normalize : {None, "sphere", "layernorm"}, default None
        ``"sphere"``: velocity projected on the tangent space, then x <- x / |x|; ``"layernorm"``:
        x <- (x - mean of its coordinates) / std of its coordinates after each step.
    record_every : int, default 1
    chunk : int, optional
        Chunk size of :func:`attend`.
    bias : float, default 0.0
        Score bias of the sigmoid kind (finite).
    rank_tol : float, default 1e-3
        ``tol`` of :func:`limit_rank` on the final state.
    cluster_tol : float, optional
        ``tol`` of :func:`cluster_count` on the final state.

    Returns
    -------
    ParticleFlowResult

    Raises
    ------
    InputError
        Bad shapes, kind, method, normalize or scalars; ``positions`` with a non-causal kind.

    Examples
    --------
    On the sphere with V = I and A = 3 I the flow increases the interaction energy and collapses
    the particles onto few clusters:

    >>> import numpy as np
    >>> from measureflow.attention import particle_flow
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(20, 2))
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> res = particle_flow(x, Q=3 * np.eye(2), K=np.eye(2), V=np.eye(2), T=5.0, steps=50,
    ...                    normalize="sphere")
    >>> res.trajectory.shape, bool(np.all(np.diff(res.energy) >= -1e-9)), res.rank
    ((51, 20, 2), True, 1)

    References
    ----------
    V. Castin, P. Ablin, J. A. Carrillo, G. Peyre, "A unified perspective on the dynamics of
    deep Transformers", arXiv:2501.18322, Sec. 2-3.
    """
    ctx = ArrayContext(tokens, weights, Q, K, V)
    x = ctx.tensor(tokens, "tokens")
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, "tokens", 2)
    if x.shape[0] == 0:
        raise InputError("tokens: needs at least one token")
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"), x.shape[0],
                      "weights", like=x)
    kind = check_choice(kind, "kind", KINDS)
    T = check_positive(T, "T")
    steps = check_int(steps, "steps", min_value=1)
    record_every = check_int(record_every, "record_every", min_value=1)
    method = check_choice(method, "method", ("euler", "rk4"))
    normalize = check_choice(normalize, "normalize", (None, "sphere", "layernorm"))
    Qt, Kt, Vt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K"), ctx.tensor(V, "V")
    n, d = x.shape
    Qh, Kh, Ch = split_heads(Qt, Kt, Vt, heads, d)
    if Ch.shape[-2] != d:
        raise InputError(f"V: the flow needs d_out = d = {d} output rows")
    eps = check_positive(eps, "eps")
    bias = _as_float(bias, "bias")
    if not math.isfinite(bias):
        raise InputError(f"bias: must be finite, got {bias}")
    rank_tol = check_nonnegative_scalar(rank_tol, "rank_tol")
    if cluster_tol is not None:
        cluster_tol = check_nonnegative_scalar(cluster_tol, "cluster_tol")
    mc, nc = _chunks(chunk, n, n, Qh.shape[0])
    qpos = kpos = None
    if kind == "causal":
        qpos, kpos = _positions(None if positions is None else ctx.tensor(
            positions, "positions").reshape(-1), n, n, ctx, True)
    elif positions is not None:
        raise InputError("positions: only used with kind='causal'")
    a = w / w.sum()

    def vel(z, wz):  # tensor-only: validated once above
        g = _attend(z, z, wz, Qh, Kh, Ch, Vt, kind=kind, eps=eps, bias=bias, mc=mc, nc=nc,
                    qpos=qpos, kpos=kpos)
        return sphere_tangent(g, z) if normalize == "sphere" else g

    post = resolve_projection(normalize)
    if post is not None:
        x = post(x)
    res = ParticleFlow(vel, x, w, method=method, project=normalize, project_stages=True).steps(
        steps, T=T, record_every=record_every)
    x = res.final
    Qe, Ke = Qh.reshape(-1, d).detach(), Kh.reshape(-1, d).detach()
    trajectory = res.trajectory.detach()
    ad = a.detach()
    stats = [_wcov(z, ad) for z in trajectory]
    energy = torch.stack([_interaction_energy(z, ad, Qe, Ke, Qh.shape[0]) for z in trajectory])
    out = ParticleFlowResult(
        times=res.times, trajectory=trajectory, final=x,
        means=torch.stack([s[0] for s in stats]), covs=torch.stack([s[1] for s in stats]),
        energy=energy, n_clusters=cluster_count(x.detach(), cluster_tol),
        rank=limit_rank(x.detach(), a.detach(), rank_tol), converged=True, n_iter=res.n_iter,
        errors=[])
    return ctx.wrap(out)
