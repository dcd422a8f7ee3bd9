"""Cyclic KL (Bregman) projections for block-split linear programs, in the log domain.

Problem (Peyre 2026, arXiv 2602.01372, Sec. 2)::

    min_x  <C, x> + sum_i gamma_i KL(x_i | z_i) + sum_k H_k(A_k x),
    KL(x | z) = sum x log(x / z) - x + z,

where every block k is either an affine constraint A_k x = b_k (H_k = indicator) or a KL
penalty on a marginal (H_k = rho KL(. | b_k), or the JKO free energy). Its dual is

    F_gamma(u) = sum_k -H_k^*(-u_k) + sum_i gamma_i z_i - sum_i gamma_i x_i(u),
    x(u) = z exp((sum_k A_k^T u_k - C) / gamma),

and cyclic KL projections = exact block maximisation of F_gamma over u_k, one block after the
other (Sinkhorn is the two-block case). The iterate is stored as log x, so nothing under- or
overflows for small gamma. Every block below has a closed-form projection (or KL proximal step):

* :class:`RowMarginal`, :class:`ColMarginal` -- x 1 = a, x^T 1 = b (balanced OT / Sinkhorn);
* :class:`KLRowMarginal`, :class:`KLColMarginal` -- rho KL(x 1 | a) (unbalanced OT);
* :class:`BarycenterCoupling` -- the K plans of a stack share their row marginal (Wasserstein
  barycenters, Benamou et al. 2015), weighted geometric mean with weights gamma_k;
* :class:`JKOStep` -- tau F(x^T 1) with F(q) = <V, q> + sigma <q, log q - 1> (one entropic JKO
  step of a Fokker-Planck gradient flow, Peyre 2015);
* :class:`GraphDivergence` + :class:`Lifting` -- the lifted graph-W1 problem of flow-Sinkhorn
  (x = (f, g) on the directed arcs; -in(f) + out(g) = b and f = g; Sec. 5).

``gamma`` may be a tensor broadcastable to C (per-variable regularisation; a block requires it
to be constant along the axes it sums over). All code is ours (torch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.results import SolverResult, report_convergence
from ..core.validation import check_int, check_nonnegative, check_positive
from ..ot.geometry import log_marginal, scatter_lse
from ..ot.loop import Projection, asinh_exp, cyclic_loop, default_tol
from .graph import _check_array_arg, _check_connected, _edge_array, _real_array, graph_edges

__all__ = ["Block", "RowMarginal", "ColMarginal", "KLRowMarginal", "KLColMarginal",
           "BarycenterCoupling", "JKOStep", "GraphDivergence", "Lifting",
           "KLProjectionResult", "kl_projections", "graph_lifting_problem"]

_NEG_INF = -math.inf


def _as_tensor(x, name, like: torch.Tensor) -> torch.Tensor:
    """A block's data as a real tensor like ``like``; InputError (naming ``name``) for
    complex, non-numeric or data-less (meta) input."""
    if isinstance(x, torch.Tensor):
        _check_array_arg(x, name)
        return x.to(dtype=like.dtype, device=like.device)
    return torch.as_tensor(_real_array(x, name), dtype=like.dtype, device=like.device)


def _variation(u: torch.Tensor) -> float:
    """(max - min) / 2 over the finite entries (the variation seminorm)."""
    ud = u.detach()
    fin = ud[torch.isfinite(ud)]
    if fin.numel() == 0:
        return 0.0
    return 0.5 * float(fin.max() - fin.min())


class Block:
    """One block H_k(A_k x) of the split problem, with its closed-form KL projection.

    A block is either an affine constraint A_k x = b_k (H_k the indicator) or a penalty on
    A_k x; :func:`kl_projections` maximises the dual F_gamma over the block's dual variable u_k
    with the others fixed (arXiv 2602.01372, Sec. 2). Subclasses implement :meth:`init`,
    :meth:`project` and :meth:`residual`, and override :meth:`dual_term` / :meth:`primal_term`
    when the block is a penalty. The methods receive tensors already validated by
    :func:`kl_projections` (log-domain iterate ``logx`` of the shape of C, ``gam`` = gamma
    broadcast to that shape); users only construct blocks and pass them to it.

    Examples
    --------
    >>> from measureflow.bregman import Block, RowMarginal
    >>> isinstance(RowMarginal([0.5, 0.5]), Block)
    True
    """

    name = "block"

    def init(self, shape, gam: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Validate the block against the variable's ``shape``; return the initial dual (zeros).

        Raises :class:`~measureflow.InputError` naming the block's data (e.g. ``a``, ``b``,
        ``V``, ``gamma``) when shapes or values do not fit.
        """
        raise NotImplementedError

    def project(self, logx, u, gam):  # pragma: no cover - abstract
        """KL projection onto the block: return the updated ``(logx, u)``."""
        raise NotImplementedError

    def dual_term(self, u) -> torch.Tensor:
        """The block's term -H_k^*(-u_k) of the dual objective F_gamma (a 0-d tensor)."""
        return u.sum() * 0

    def primal_term(self, x) -> torch.Tensor:
        """H_k(A_k x) for a penalty block; 0 for a constraint (a 0-d tensor)."""
        return x.sum() * 0

    def residual(self, logx, u) -> float:  # pragma: no cover - abstract
        """L1 violation of the block's optimality condition (constraint violation, or
        stationarity of a penalty), in mass units."""
        raise NotImplementedError

    def seminorm(self, u) -> float:
        """Variation seminorm (max u - min u) / 2 of the dual over its finite entries."""
        return _variation(u)


def _gamma_along(gam: torch.Tensor, axis: int, name: str) -> torch.Tensor:
    """gamma restricted to the reduced shape; it must be constant along ``axis``."""
    first = gam.narrow(axis, 0, 1)
    if not bool((gam == first).all()):
        raise InputError(f"gamma: {name} needs gamma constant along axis {axis}")
    return first.squeeze(axis)


class _Marginal(Block):
    def __init__(self, target, axis: int, name: str):
        self.target_in = target
        self.axis = axis
        self.name = name

    def init(self, shape, gam):
        if len(shape) < 2:
            raise InputError(f"{self.name}: needs a variable with >= 2 axes, got shape {shape}")
        red = list(shape)
        del red[self.axis]
        t = _as_tensor(self.target_in, self.name, gam)
        check_nonnegative(t, self.name)
        try:
            t = t.expand(red)
        except RuntimeError:
            raise InputError(f"{self.name}: shape {tuple(t.shape)} does not broadcast to the "
                             f"marginal shape {tuple(red)}") from None
        if type(self) in (RowMarginal, ColMarginal) and t.numel():
            tot = t.sum(-1) if t.ndim else t
            if bool((tot <= 0).any()):
                raise InputError(f"{self.name}: total mass is 0 (for at least one plan): the "
                                 "constraint forces x = 0 there; drop that plan or give a "
                                 "positive mass")
        self.target = t
        self.logt = torch.where(t > 0, torch.log(t.clamp_min(1e-300)),
                                torch.full_like(t, _NEG_INF))
        self.g = _gamma_along(gam, self.axis, self.name)
        return torch.zeros(red, dtype=gam.dtype, device=gam.device)

    def project(self, logx, u, gam):
        lse = log_marginal(logx, self.axis)
        fin = torch.isfinite(lse)
        d = torch.where(fin, self.logt - torch.where(fin, lse, torch.zeros_like(lse)),
                        torch.zeros_like(lse))
        return logx + d.unsqueeze(self.axis), u + self.g * d

    def dual_term(self, u):
        return torch.where(self.target > 0, self.target * u, torch.zeros_like(u)).sum()

    def residual(self, logx, u):
        return float((torch.exp(logx).sum(self.axis) - self.target).abs().sum().detach())


class RowMarginal(_Marginal):
    """Constraint x.sum(-1) = a on the rows of x (..., n, m).

    KL projection: rescale the rows, x_ij <- x_ij a_i / sum_j x_ij (the Sinkhorn half-step);
    the dual update is u <- u + gamma log(a_i / sum_j x_ij), dual term <a, u>.

    Parameters
    ----------
    a : array_like, shape broadcastable to x.shape[:-1]
        Nonnegative row masses (a batch of plans (K, n, m) takes a (K, n) or (n,) array) with
        positive total per plan. gamma must be constant along the last axis.

    Raises
    ------
    InputError
        (at :func:`kl_projections`) ``a`` negative, NaN, not broadcastable, of zero total, or of
        a total different from a :class:`ColMarginal`'s (relative 1e-6).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import RowMarginal, kl_projections
    >>> r = kl_projections(np.zeros((2, 3)), [RowMarginal([0.3, 0.6])], 1.0)
    >>> print(np.round(r.x, 4))
    [[0.1 0.1 0.1]
     [0.2 0.2 0.2]]
    """

    def __init__(self, a):
        super().__init__(a, -1, "a")


class ColMarginal(_Marginal):
    """Constraint x.sum(-2) = b on the columns of x (..., n, m).

    KL projection: rescale the columns, x_ij <- x_ij b_j / sum_i x_ij; dual term <b, u>.

    Parameters
    ----------
    b : array_like, shape broadcastable to x.shape[:-2] + x.shape[-1:]
        Nonnegative column masses, positive total per plan. gamma must be constant along
        axis -2.

    Raises
    ------
    InputError
        (at :func:`kl_projections`) as :class:`RowMarginal`, naming ``b``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import ColMarginal, RowMarginal, kl_projections
    >>> a, b = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    >>> r = kl_projections(np.eye(2), [RowMarginal(a), ColMarginal(b)], 0.1)
    >>> print(np.round(r.x.sum(0), 6), bool(r.converged))
    [0.25 0.75] True
    """

    def __init__(self, b):
        super().__init__(b, -2, "b")


class _KLMarginal(_Marginal):
    """Penalty rho KL(x.sum(axis) | target); KL proximal step (closed form)::

        u <- gamma rho / (gamma + rho) (log target - log sum x exp(-u_old / gamma))
    """

    def __init__(self, target, rho, axis, name):
        super().__init__(target, axis, name)
        self.rho = check_positive(rho, "rho")

    def init(self, shape, gam):
        u = super().init(shape, gam)
        if bool((self.target <= 0).any()):
            raise InputError(f"{self.name}: KL-penalised marginals need positive entries")
        return u

    def project(self, logx, u, gam):
        g = self.g
        lse_wo = log_marginal(logx, self.axis) - u / g
        u_new = g * self.rho / (g + self.rho) * (self.logt - lse_wo)
        return logx + ((u_new - u) / g).unsqueeze(self.axis), u_new

    def dual_term(self, u):
        return -self.rho * (self.target * (torch.exp(-u / self.rho) - 1.0)).sum()

    def primal_term(self, x):
        q = x.sum(self.axis)
        t = self.target
        return self.rho * (torch.special.xlogy(q, q / t) - q + t).sum()

    def residual(self, logx, u):
        q = torch.exp(logx).sum(self.axis)
        return float((self.target * torch.exp(-u / self.rho) - q).abs().sum().detach())


class KLRowMarginal(_KLMarginal):
    """Penalty rho KL(x.sum(-1) | a) on the rows (unbalanced OT, first marginal).

    KL(q | a) = sum q log(q / a) - q + a. Proximal step (closed form):
    u <- gamma rho / (gamma + rho) (log a - log sum_j x_ij exp(-u_old / gamma)); dual term
    -rho <a, exp(-u / rho) - 1>; residual ||a exp(-u / rho) - x 1||_1 (stationarity).

    Parameters
    ----------
    a : array_like, shape broadcastable to x.shape[:-1]
        Positive reference masses (a zero entry raises: use a constraint there).
    rho : float
        Marginal penalty strength, > 0 (rho -> inf recovers :class:`RowMarginal`).

    Raises
    ------
    InputError
        ``rho`` not positive (at construction); ``a`` with a zero, negative or NaN entry, or
        not broadcastable (at :func:`kl_projections`).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import KLColMarginal, KLRowMarginal, kl_projections
    >>> a, b = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    >>> blocks = [KLRowMarginal(a, 1.0), KLColMarginal(b, 1.0)]
    >>> r = kl_projections(1.0 - np.eye(2), blocks, 0.1, z=np.outer(a, b))
    >>> bool(r.converged), round(float(r.x.sum()), 4)     # mass is not conserved
    (True, 0.9351)
    """

    def __init__(self, a, rho):
        super().__init__(a, rho, -1, "a")


class KLColMarginal(_KLMarginal):
    """Penalty rho KL(x.sum(-2) | b) on the columns (unbalanced OT, second marginal).

    Same proximal step as :class:`KLRowMarginal` along axis -2.

    Parameters
    ----------
    b : array_like, shape broadcastable to x.shape[:-2] + x.shape[-1:]
        Positive reference masses.
    rho : float
        Marginal penalty strength, > 0.

    Raises
    ------
    InputError
        As :class:`KLRowMarginal`, naming ``b``.

    Examples
    --------
    With C = 0, z = 1 and unit row masses, the column marginal is q ~ b^(rho / (rho + gamma)):

    >>> import numpy as np
    >>> from measureflow.bregman import KLColMarginal, RowMarginal, kl_projections
    >>> b = np.array([0.25, 0.75])
    >>> r = kl_projections(np.zeros((2, 2)), [RowMarginal([0.5, 0.5]), KLColMarginal(b, 1.0)],
    ...                    1.0)
    >>> bool(np.allclose(r.x.sum(0), np.sqrt(b) / np.sqrt(b).sum()))
    True
    """

    def __init__(self, b, rho):
        super().__init__(b, rho, -2, "b")


class JKOStep(_KLMarginal):
    """Penalty tau F(q), q = x.sum(axis) (default: columns), F(q) = <V, q> + sigma <q, log q - 1>.

    tau F = rho KL(q | exp(-V / sigma)) - rho sum exp(-V / sigma) with rho = tau sigma, so the
    KL proximal step is that of :class:`KLColMarginal`; the dual term is -rho <e^{-V/sigma},
    e^{-u/rho}>. With blocks ``[RowMarginal(q_k), JKOStep(V, tau, sigma)]`` and cost C this is
    one entropic JKO step  min_P <C, P> + gamma KL(P | z) + tau F(P^T 1)  s.t.  P 1 = q_k
    (Peyre 2015, "Entropic approximation of Wasserstein gradient flows"); q_{k+1} = P^T 1.
    With C = |x - y|^2 / 2 this is the usual JKO scaling (1/(2 tau) W2^2 + F after dividing by
    tau).

    Parameters
    ----------
    V : array_like, the marginal's shape
        Finite potential on the grid of the new marginal.
    tau : float
        Time step, > 0.
    sigma : float, default 1.0
        Diffusion (entropy) weight, > 0.
    axis : int, default -2
        Axis summed to get q (-2: the columns, i.e. q = x^T 1 for x (n, m)).

    Raises
    ------
    InputError
        ``tau`` or ``sigma`` not positive (at construction); ``V`` with NaN/Inf or of a shape
        that does not broadcast to the marginal (at :func:`kl_projections`).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import JKOStep, RowMarginal, kl_projections
    >>> x = np.linspace(0.0, 1.0, 5)
    >>> C = (x[:, None] - x[None]) ** 2 / 2
    >>> q0 = np.full(5, 0.2)
    >>> r = kl_projections(C, [RowMarginal(q0), JKOStep(V=4 * x, tau=0.1, sigma=0.1)], 0.01)
    >>> q1 = r.x.sum(0)                                   # mass moves down the potential
    >>> bool(r.converged), round(float(q1.sum()), 6), bool(q1[0] > q0[0] > q1[-1])
    (True, 1.0, True)

    References
    ----------
    G. Peyre, "Entropic approximation of Wasserstein gradient flows", SIAM J. Imaging Sci.
    8(4), 2015.
    """

    def __init__(self, V, tau, sigma=1.0, axis: int = -2):
        self.V_in = V
        self.tau = check_positive(tau, "tau")
        self.sigma = check_positive(sigma, "sigma")
        super().__init__(None, self.tau * self.sigma, axis, "V")

    def init(self, shape, gam):
        V = _as_tensor(self.V_in, "V", gam)
        if not bool(torch.isfinite(V).all()):
            raise InputError("V: contains NaN or Inf")
        self.V = V
        self.target_in = torch.exp(-V / self.sigma)
        return super().init(shape, gam)

    def dual_term(self, u):
        return -self.rho * (self.target * torch.exp(-u / self.rho)).sum()

    def primal_term(self, x):
        q = x.sum(self.axis)
        return self.tau * ((self.V * q).sum() + self.sigma * (torch.special.xlogy(q, q) - q).sum())


class BarycenterCoupling(Block):
    """Constraint: the K plans x[k] (x of shape (K, n, m)) share their marginal along ``axis``.

    KL projection: log q = sum_k gamma_k log r_k / sum_k gamma_k (weighted geometric mean of the
    marginals r_k), x[k] <- x[k] q / r_k. With cost C[k] = lambda_k M and gamma_k = lambda_k eps
    this solves the entropic barycenter  min sum_k lambda_k (<M, P_k> + eps KL(P_k | z_k)) of
    Benamou et al. (2015). Dual term 0 (the duals sum to 0 over k).

    Parameters
    ----------
    axis : int, default -1
        Axis of the shared marginal: -1 shares x[k].sum(-1) (the rows), -2 shares
        x[k].sum(-2) (the columns). gamma must be constant within each plan x[k].

    Raises
    ------
    InputError
        (at :func:`kl_projections`) the variable is not 3-D (K, n, m), or gamma varies within
        a plan.

    Examples
    --------
    Barycenter of two measures on a line (cost |x - y|^2, equal weights): its mean is the
    mean of the means.

    >>> import numpy as np
    >>> from measureflow.bregman import BarycenterCoupling, RowMarginal, kl_projections
    >>> x = np.arange(5.0)
    >>> M = (x[:, None] - x[None]) ** 2
    >>> q = np.array([[1.0, 1, 0, 0, 0], [0, 0, 0, 1, 1]]) / 2
    >>> r = kl_projections(np.stack([M, M]), [RowMarginal(q), BarycenterCoupling(axis=-2)], 0.5)
    >>> bary = r.x[0].sum(0)
    >>> bool(r.converged), round(float(bary @ x), 6), bool(np.allclose(bary, r.x[1].sum(0)))
    (True, 2.0, True)

    References
    ----------
    J.-D. Benamou, G. Carlier, M. Cuturi, L. Nenna, G. Peyre, "Iterative Bregman projections
    for regularized transportation problems", SIAM J. Sci. Comput. 37(2), 2015.
    """

    name = "barycenter"

    def __init__(self, axis: int = -1):
        self.axis = axis

    def init(self, shape, gam):
        if len(shape) != 3:
            raise InputError(f"barycenter: needs a variable of shape (K, n, m), got {shape}")
        gk = gam.reshape(shape[0], -1)
        if not bool((gk == gk[:, :1]).all()):
            raise InputError("gamma: barycenter coupling needs one gamma per plan")
        self.gk = gk[:, 0]
        red = list(shape)
        del red[self.axis]
        return torch.zeros(red, dtype=gam.dtype, device=gam.device)

    def project(self, logx, u, gam):
        lr = log_marginal(logx, self.axis)
        wk = (self.gk / self.gk.sum()).reshape(-1, *([1] * (lr.ndim - 1)))
        logq = (wk * lr).sum(0, keepdim=True)
        d = logq - lr
        return logx + d.unsqueeze(self.axis), u + self.gk.reshape(-1, 1) * d

    def residual(self, logx, u):
        r = torch.exp(logx).sum(self.axis)
        return float((r - r.mean(0, keepdim=True)).abs().sum().detach())


class GraphDivergence(Block):
    """Lifted divergence constraint of flow-Sinkhorn on x = (f, g), shape (2, p).

    ``arcs`` (p, 2) lists directed arcs (tail, head): f_k, g_k carry mass tail -> head.
    Constraint per node i: -sum_{head=i} f + sum_{tail=i} g = b_i. KL projection (Prop. in Sec.
    5): f_k <- s_head f_k, g_k <- g_k / s_tail with s_i^2 R_i + s_i b_i - C_i = 0 (R = inflow
    of f, C = outflow of g), in the stable form log s = (log C - log R)/2 - arsinh(b / (2
    sqrt(R C))). Dual term <b, u>. Used with :class:`Lifting`; :func:`graph_lifting_problem`
    builds both from a graph.

    Parameters
    ----------
    arcs : array_like of int, shape (p, 2)
        Directed arcs (tail, head), node indices in [0, n).
    b : array_like, shape (n,)
        Finite divergence target (b1 - b2), summing to 0 on every connected component.

    Raises
    ------
    InputError
        (at :func:`kl_projections`) non-integer or out-of-range arcs, a variable not of shape
        (2, p), ``b`` not 1-D, with NaN/Inf, or not summing to 0 on a component, a non-scalar
        gamma.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import GraphDivergence, Lifting, kl_projections
    >>> arcs = np.array([[0, 1], [1, 2], [1, 0], [2, 1]])      # path 0 - 1 - 2, both ways
    >>> r = kl_projections(np.ones((2, 4)), [GraphDivergence(arcs, [1.0, 0.0, -1.0]),
    ...                                      Lifting()], 0.05)
    >>> print(np.round(r.x[0], 3))                            # one unit along 0 -> 1 -> 2
    [1. 1. 0. 0.]
    """

    name = "divergence"

    def __init__(self, arcs, b):
        self.arcs_in = arcs
        self.b_in = b

    def init(self, shape, gam):
        a = _edge_array(self.arcs_in, "arcs")
        arcs = torch.as_tensor(a, device=gam.device)
        if len(shape) != 2 or shape[0] != 2 or shape[1] != arcs.shape[0]:
            raise InputError(f"divergence: the variable must have shape (2, {arcs.shape[0]}), "
                             f"got {tuple(shape)}")
        self.b = _as_tensor(self.b_in, "b", gam)
        if self.b.ndim != 1:
            raise InputError(f"b: expected a 1-D array, got shape {tuple(self.b.shape)}")
        if not bool(torch.isfinite(self.b).all()):
            raise InputError("b: contains NaN or Inf")
        btot, bnorm = float(self.b.sum()), float(self.b.abs().sum())
        if abs(btot) > 1e-6 * max(bnorm, 1e-300):
            raise InputError(f"b: the divergence target must sum to 0 (sums to {btot:.6g}); "
                             "b = b1 - b2 needs b1 and b2 of equal mass")
        self.n = self.b.shape[0]
        if arcs.numel() and (int(arcs.min()) < 0 or int(arcs.max()) >= self.n):
            raise InputError(f"arcs: node indices must lie in [0, {self.n})")
        _check_components_balanced(self.n, a, self.b.detach().cpu().numpy())
        self.tail, self.head = arcs[:, 0], arcs[:, 1]
        g0 = gam.reshape(-1)[0]
        if not bool((gam == g0).all()):
            raise InputError("gamma: the graph blocks need a scalar gamma")
        self.g = g0
        self.logb = torch.log(torch.where(self.b != 0, self.b.abs() / 2, torch.ones_like(self.b)))
        self.sgn = torch.sign(self.b)
        return torch.zeros(self.n, dtype=gam.dtype, device=gam.device)

    def project(self, logx, u, gam):
        LR = scatter_lse(logx[0], self.head, self.n)
        LC = scatter_lse(logx[1], self.tail, self.n)
        L = self.logb - 0.5 * (LR + LC)
        ash = torch.where(self.sgn != 0, self.sgn * asinh_exp(L), torch.zeros_like(L))
        logs = 0.5 * (LC - LR) - ash
        logx = torch.stack([logx[0] + logs[self.head], logx[1] - logs[self.tail]])
        return logx, u - self.g * logs

    def dual_term(self, u):
        return (self.b * u).sum()

    def residual(self, logx, u):
        x = torch.exp(logx)
        z = torch.zeros(self.n, dtype=x.dtype, device=x.device)
        div = -z.index_add(0, self.head, x[0]) + z.index_add(0, self.tail, x[1])
        return float((div - self.b).abs().sum().detach())


def _check_components_balanced(n: int, arcs: np.ndarray, b: np.ndarray) -> None:
    """div f = b is feasible iff b sums to 0 on every (weakly) connected component."""
    import scipy.sparse as sp
    from scipy.sparse import csgraph

    A = sp.coo_array((np.ones(len(arcs)), (arcs[:, 0], arcs[:, 1])), shape=(n, n))
    k, lab = csgraph.connected_components(A, directed=False)
    if k <= 1:
        return
    tot = np.bincount(lab, weights=b, minlength=k)
    scale = max(float(np.abs(b).sum()), 1e-300)
    bad = np.flatnonzero(np.abs(tot) > 1e-6 * scale)
    if bad.size:
        node = int(np.flatnonzero(lab == bad[0])[0])
        raise InputError(f"b: the divergence target does not sum to 0 on the connected "
                         f"component of node {node} (sum {tot[bad[0]]:.6g}): div f = b is "
                         "infeasible on these arcs")


class Lifting(Block):
    """Constraint f = g on x = (f, g) of shape (2, ...) (the lifting of flow-Sinkhorn, Sec. 5).

    KL projection: both halves become the weighted geometric mean sqrt(f g); dual term 0.
    Takes no argument; gamma must be equal on f and g (else :class:`~measureflow.InputError`
    at :func:`kl_projections`). See :class:`GraphDivergence` for an example.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import Lifting, kl_projections
    >>> r = kl_projections(np.array([[0.0, 2.0], [2.0, 0.0]]), [Lifting()], 1.0)
    >>> print(np.round(np.log(r.x), 6))                       # log sqrt(e^0 e^-2) = -1
    [[-1. -1.]
     [-1. -1.]]
    """

    name = "lifting"

    def init(self, shape, gam):
        if len(shape) < 1 or shape[0] != 2:
            raise InputError(f"lifting: the variable must have shape (2, ...), got {shape}")
        self.g = gam[0]
        if not bool((gam[0] == gam[1]).all()):
            raise InputError("gamma: the lifting block needs equal gamma on f and g")
        return torch.zeros(shape[1:], dtype=gam.dtype, device=gam.device)

    def project(self, logx, u, gam):
        d = 0.5 * (logx[1] - logx[0])
        return torch.stack([logx[0] + d, logx[1] - d]), u + self.g * d

    def residual(self, logx, u):
        x = torch.exp(logx)
        return float((x[0] - x[1]).abs().sum().detach())


def _check_balanced_masses(blocks) -> None:
    """Hard row and column constraints together need equal masses (per leading batch index)."""
    rows = [b for b in blocks if isinstance(b, RowMarginal)]
    cols = [b for b in blocks if isinstance(b, ColMarginal)]
    if not rows or not cols:
        return
    ma, mb = rows[0].target.sum(-1), cols[0].target.sum(-1)
    scale = torch.maximum(ma.abs(), mb.abs()).clamp_min(1e-300)
    if bool(((ma - mb).abs() > 1e-6 * scale).any()):
        raise InputError(f"a, b: total masses differ ({float(ma.reshape(-1)[0]):.10g} vs "
                         f"{float(mb.reshape(-1)[0]):.10g} for the first plan); the constraints "
                         "x 1 = a, x^T 1 = b are infeasible (use KLRowMarginal / KLColMarginal)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KLProjectionResult(SolverResult):
    """Result of :func:`kl_projections` (a :class:`~measureflow.core.results.SolverResult`).

    Attributes
    ----------
    x : array, shape of C
        The primal iterate x(u) after the last projection (satisfies the last block exactly).
    duals : tuple of arrays
        The block duals u_k, in block order.
    dual_value : float or 0-d tensor
        F_gamma(u) at the end.
    dual_values : list of float
        F_gamma(u^(k)) after each checked sweep (non-decreasing, up to round-off).
    primal_value : float or 0-d tensor
        <C, x> + gamma KL(x | z) + sum of penalty blocks at x (constraint blocks count 0, so
        this is a true primal value only once the residuals vanish).
    residuals : list of float
        Per-block L1 residual at the end.
    seminorm, seminorms : float, list of float
        Max over blocks of the variation seminorm (max - min)/2 of u_k, at the end / per checked
        sweep (the block-quotient norm ||u||_V of the paper for OT and graph W1).
    converged, n_iter, errors
        Stopping error <= ``tol``; sweeps done; sum of the residuals per checked sweep.
    """

    x: Any = None
    duals: tuple = ()
    dual_value: Any = None
    dual_values: list = dataclasses.field(default_factory=list)
    primal_value: Any = None
    residuals: list = dataclasses.field(default_factory=list)
    seminorm: float = 0.0
    seminorms: list = dataclasses.field(default_factory=list)


class _Bound(Projection):
    """A :class:`Block` (whose methods also take gamma) as an engine projection."""

    def __init__(self, blk: Block, gam: torch.Tensor):
        self.blk, self.gam = blk, gam

    def project(self, x, u):
        return self.blk.project(x, u, self.gam)

    def residual(self, x, u):
        return self.blk.residual(*_detached(x, u))


def _detached(x, u):
    """(x, u) without autograd history: residuals are measurements."""
    return x.detach(), (u.detach() if isinstance(u, torch.Tensor) else u)


def _mass_scale(blocks) -> float:
    """The largest total target mass of the blocks (marginals, divergence), at least 1."""
    m = 1.0
    for blk in blocks:
        t = getattr(blk, "target", None)
        if t is None:
            t = getattr(blk, "b", None)
        if isinstance(t, torch.Tensor) and t.numel():
            m = max(m, float(t.detach().abs().sum()))
    return m


def _dual_value(blocks, duals, Zg, gam, logx):
    """F_gamma(u) = sum_k -H_k^*(-u_k) + <gamma, z> - <gamma, x(u)>."""
    return sum(blk.dual_term(u) for blk, u in zip(blocks, duals)) + Zg \
        - (gam * torch.exp(logx)).sum()


def kl_projections(C, blocks: Sequence[Block], gamma, z=None, *, max_iter: int = 1000,
                   tol: float | None = None, check_every: int = 1) -> KLProjectionResult:
    """Cyclic KL projections for min <C, x> + gamma KL(x | z) + sum_k H_k(A_k x).

    KL(x | z) = sum x log(x / z) - x + z. Starts at x0 = z exp(-C / gamma) (u = 0) and applies
    the blocks' closed-form KL projections in order, ``max_iter`` sweeps at most: exact block
    maximisation of the dual F_gamma (Peyre 2026, arXiv 2602.01372, Sec. 2; its O(1/k) dual
    rate is Sec. 3). Every ``check_every`` sweeps it records the dual value F_gamma(u), the
    sum of the block residuals (stopping error, L1, absolute) and the variation seminorm.
    Balanced OT: ``kl_projections(C, [RowMarginal(a), ColMarginal(b)], eps, z=a[:, None] *
    b[None])`` gives P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) with f, g = ``duals`` (the
    cost is used as given: |x - y|^2 or |x - y|^2 / 2 is the caller's choice).

    Parameters
    ----------
    C : array_like or Tensor
        Cost, any non-empty shape the blocks accept ((n, m) for OT, (K, n, m) for barycenters,
        (2, p) for the graph lifting).
    blocks : sequence of Block
        Non-empty; their order is the projection order.
    gamma : float or array_like, positive
        Entropic regularisation, a scalar or an array broadcastable to C (a block may require
        it constant along the axes it sums over).
    z : array_like, optional
        Nonnegative reference measure broadcastable to C (default ones). Zero entries switch
        variables off.
    max_iter : int, default 1000
        Maximum number of sweeps (>= 1).
    tol : float, optional
        Stop when the sum of the block residuals is <= tol (absolute, mass units). Default
        1e-9 in float64; for lower precision the engine's dtype-aware
        :func:`~measureflow.ot.loop.default_tol` (1e-5 x mass in float32, the resolution of a
        float32 marginal), mass = the largest total target of the blocks (at least 1).
    check_every : int, default 1
        Sweeps between two checks (>= 1).

    Returns
    -------
    KLProjectionResult
        NumPy in -> NumPy out; tensors in -> tensors out with autograd through the iterations.
        Not converged after ``max_iter`` sweeps: ``converged=False`` and a
        ``ConvergenceWarning``.

    Raises
    ------
    InputError
        Empty ``blocks`` or a non-Block entry, empty ``C``, ``gamma`` not positive or not
        broadcastable, negative ``z``, bad ``max_iter`` / ``tol`` / ``check_every``, or a
        block's data that does not fit (named by the block: ``a``, ``b``, ``V``, ...).

    Examples
    --------
    Balanced entropic OT between two 2-point measures (P = a_i b_j exp((f_i + g_j - C_ij) /
    eps)):

    >>> import numpy as np
    >>> from measureflow.bregman import ColMarginal, RowMarginal, kl_projections
    >>> a, b = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> r = kl_projections(C, [RowMarginal(a), ColMarginal(b)], 0.1, z=np.outer(a, b))
    >>> print(np.round(r.x, 4))
    [[0.25 0.25]
     [0.   0.5 ]]
    >>> f, g = r.duals
    >>> bool(np.allclose(np.outer(a, b) * np.exp((f[:, None] + g[None] - C) / 0.1), r.x))
    True
    >>> bool(r.converged), bool(abs(r.primal_value - r.dual_value) < 1e-8)   # zero gap
    (True, True)

    References
    ----------
    G. Peyre, "Robust sublinear rates for iterative Bregman projections", arXiv:2602.01372,
    2026, Sec. 2-3.
    """
    if not blocks:
        raise InputError("blocks: give at least one block")
    for k, blk in enumerate(blocks):
        if not isinstance(blk, Block):
            raise InputError(f"blocks: entry {k} is not a Block ({type(blk).__name__})")
    for arg, name in ((C, "C"), (z, "z"), (gamma, "gamma")):
        _check_array_arg(arg, name)
    ctx = ArrayContext(C, z, gamma if isinstance(gamma, torch.Tensor) else None)
    C = ctx.tensor(C, "C")
    if C.numel() == 0:
        raise InputError(f"C: empty cost (shape {tuple(C.shape)})")
    if isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
        check_positive(gamma, "gamma")
        gam = torch.full_like(C, float(gamma))
    else:
        gt = ctx.tensor(gamma, "gamma")
        if gt.numel() and not bool((gt > 0).all()):
            raise InputError("gamma: must be positive")
        try:
            gam = torch.broadcast_to(gt, C.shape)
        except RuntimeError:
            raise InputError(f"gamma: shape {tuple(gt.shape)} does not broadcast to C's shape "
                             f"{tuple(C.shape)}") from None
    if z is None:
        zt = torch.ones_like(C)
    else:
        zt = check_nonnegative(ctx.tensor(z, "z"), "z")
        try:
            zt = torch.broadcast_to(zt, C.shape)
        except RuntimeError:
            raise InputError(f"z: shape {tuple(zt.shape)} does not broadcast to C's shape "
                             f"{tuple(C.shape)}") from None
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    if tol is not None:
        tol = check_positive(tol, "tol")
    check_every = check_int(check_every, "check_every", min_value=1)
    gd = gam.detach()
    duals = [blk.init(tuple(C.shape), gd) for blk in blocks]
    _check_balanced_masses(blocks)
    if tol is None:
        tol = 1e-9 if C.dtype == torch.float64 else default_tol(C.dtype, _mass_scale(blocks))
    logz = torch.where(zt > 0, torch.log(zt.clamp_min(1e-300)), torch.full_like(zt, _NEG_INF))
    logx = logz - C / gam
    Zg = (gam * zt).sum()

    dvals, semis = [], []

    def record(it, lx, us):
        dvals.append(float(_dual_value(blocks, us, Zg, gam, lx).detach()))
        semis.append(max(blk.seminorm(u) for blk, u in zip(blocks, us)))

    out = cyclic_loop(logx, [_Bound(blk, gam) for blk in blocks], duals, tol=tol,
                      max_iter=max_iter, check_every=check_every, on_check=record,
                      description="kl_projections")
    logx, duals, it, errors, converged = out.x, out.duals, out.n_iter, out.errors, out.converged
    report_convergence(converged, "kl_projections", it, errors[-1] if errors else math.nan, tol)
    x = torch.exp(logx)
    kl = (torch.special.xlogy(x, x) - torch.special.xlogy(x, zt) - x + zt)
    primal = (C * x).sum() + (gam * kl).sum() + sum(blk.primal_term(x) for blk in blocks)
    res = KLProjectionResult(
        x=x, duals=tuple(duals), dual_value=_dual_value(blocks, duals, Zg, gam, logx),
        dual_values=dvals,
        primal_value=primal,
        residuals=[blk.residual(*_detached(logx, u)) for blk, u in zip(blocks, duals)],
        seminorm=semis[-1] if semis else 0.0, seminorms=semis, converged=converged, n_iter=it,
        errors=errors)
    return ctx.wrap(res)


def graph_lifting_problem(graph, b1, b2, *, lengths=None):
    """(C, blocks, arcs) of the lifted flow-Sinkhorn problem for :func:`kl_projections`.

    C = (w, w) of shape (2, p) on the p = 2E directed arcs ``arcs`` (tail, head) (both
    orientations of every undirected edge), blocks = [GraphDivergence(arcs, b1 - b2),
    Lifting()]. Its optimum has f = g = the minimiser of <w, f> + gamma KL(f | z) under
    div f = b1 - b2 (arXiv 2602.01372, Sec. 5); the lifted dual value is twice the
    flow-Sinkhorn dual value. :func:`graph_w1` with ``method="flow_sinkhorn"`` solves the same
    problem with its single-potential update.

    Parameters
    ----------
    graph : sparse matrix, (E, 2) edge array, (edges, lengths) tuple or networkx graph
        The connected undirected graph (see :func:`graph_edges`).
    b1, b2 : array_like, shape (n,)
        Nonnegative node masses with equal totals (relative 1e-6).
    lengths : array_like, shape (E,), optional
        Edge lengths when ``graph`` is an edge array.

    Returns
    -------
    C : ndarray, shape (2, 2E)
        Arc lengths, twice (for f and g).
    blocks : list of Block
        ``[GraphDivergence(arcs, b1 - b2), Lifting()]``.
    arcs : ndarray of int64, shape (2E, 2)
        The edges (u < v) followed by their reverses.

    Raises
    ------
    InputError
        Bad masses (negative, NaN, shapes, unequal totals), bad graph (see :func:`graph_edges`)
        or a disconnected graph.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import graph_lifting_problem, kl_projections
    >>> graph = (np.array([[0, 1], [1, 2]]), np.array([1.0, 2.0]))
    >>> C, blocks, arcs = graph_lifting_problem(graph, [1.0, 0, 0], [0, 0, 1.0])
    >>> C.shape, arcs.tolist()
    ((2, 4), [[0, 1], [1, 2], [1, 0], [2, 1]])
    >>> r = kl_projections(C, blocks, 0.05)
    >>> round(float(C[0] @ r.x[0]), 6)                   # transport cost of f: W1 = 1 + 2
    3.0
    """
    from ..core.validation import check_masses_match, check_ndim, check_shape
    for arg, name in ((b1, "b1"), (b2, "b2"), (lengths, "lengths")):
        _check_array_arg(arg, name)
    b1t = check_nonnegative(ArrayContext().tensor(b1, "b1"), "b1")
    check_ndim(b1t, "b1", 1)
    b2t = check_nonnegative(check_shape(ArrayContext().tensor(b2, "b2"), "b2", (b1t.shape[0],)),
                            "b2")
    check_masses_match(b1t, b2t, ("b1", "b2"))
    b = (b1t - b2t).detach().cpu().numpy()
    n, e, w = graph_edges(graph, len(b), lengths=lengths)
    _check_connected(n, e)
    arcs = np.concatenate([e, e[:, ::-1]])
    ww = np.concatenate([w, w])
    return np.stack([ww, ww]), [GraphDivergence(arcs, b), Lifting()], arcs
