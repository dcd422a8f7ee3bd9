"""Transport maps: one interface for maps estimated from optimal transport.

A :class:`TransportMap` ``T`` is called on points, ``T(x)`` (or ``T.transform(x)``), with ``x``
of shape (k, d_in) (a 1-D array is read as k points on the line) and returns the images
(k, d_out). NumPy in -> NumPy out (float64); a tensor in -> a tensor out on its device and
dtype. Each map documents its *domain* (``T.domain``: where the formula is the estimator it
claims to be) and has :meth:`TransportMap.inverse` when a reverse map exists
(``T.has_inverse``).

Implementations (cost |x - y|^2 without 1/2 unless ``cost`` says otherwise, as in
:func:`measureflow.ot.solve`):

* :class:`BarycentricMap` -- the barycentric projection of a plan P (n, m),
  x_i -> sum_j P_ij y_j / sum_j P_ij, on the training points x_i; elsewhere the
  nearest-neighbour extension of Ferradans et al. (2014) used by POT's ``ot.da``:
  T(z) = T(x_k) + z - x_k with x_k the training point nearest to z.
* :class:`EntropicMap` -- the entropic map of Pooladian & Niles-Weed (2021, arXiv 2109.12004,
  Eq. (4)) built from the potential g of an entropic solve, defined everywhere:
  T_eps(z) = sum_j b_j exp((g_j - c(z, y_j))/eps) y_j / sum_j b_j exp((g_j - c(z, y_j))/eps).
  At a training point it equals the barycentric projection of the entropic plan
  P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps) (f_i cancels in the ratio); as eps -> 0 and the
  samples grow it estimates the Brenier map.
* :class:`GaussianMap` -- the Brenier map between Gaussians, T(x) = A x + shift
  (:func:`measureflow.ot.gaussian_map`), with its exact inverse.
* :class:`LaguerreMap` -- the semi-discrete (Laguerre) map T(x) = y_{j(x)},
  j(x) = argmin_j |x - y_j|^2 - psi_j (:func:`measureflow.ot.laguerre_assign`,
  :func:`measureflow.ot.semidiscrete`); no inverse.
"""

from __future__ import annotations

import math

import torch

from ..core.arrays import ArrayContext, as_tensor
from ..core.errors import InputError
from ..core.validation import (
    check_ndim,
    check_points,
    check_positive,
    check_shape,
    check_weights,
)
from .gaussian import gaussian_map
from .geometry import PointCloud, potential_dtype
from .lazy import _cost_arg
from .result import OTResult
from .semidiscrete import SemiDiscreteResult, laguerre_assign

__all__ = ["TransportMap", "BarycentricMap", "EntropicMap", "GaussianMap", "LaguerreMap"]


def _param(x, name: str) -> torch.Tensor:
    """A fitted parameter as a tensor (NumPy/lists become float64; tensors kept as given)."""
    return as_tensor(x, name)


def _cost_power(cost) -> float:
    """'sqeuclidean' -> 2, 'euclidean' -> 1, p >= 1 -> p (callables are not supported here)."""
    if callable(cost):
        raise InputError("cost: transport maps take 'sqeuclidean', 'euclidean' or a power "
                         "p >= 1, not a callable")
    return float(_cost_arg(cost))


class TransportMap:
    """Interface of a transport map T: R^d_in -> R^d_out estimated from OT.

    Subclasses set ``dim_in``, ``dim_out`` (ints), ``domain`` (one sentence: where the map is
    the estimator it claims to be) and ``has_inverse``, and implement ``_transform(z)`` on a
    validated tensor z (k, dim_in) in the map's compute dtype. :meth:`transform` (and
    ``__call__``) validate the points once and return the kind of array they were given.

    Attributes
    ----------
    dim_in, dim_out : int
        Dimensions of the source and target spaces.
    domain : str
        Where the formula is the estimator it claims to be.
    has_inverse : bool
        Whether :meth:`inverse` returns a reverse map.

    Examples
    --------
    >>> from measureflow import ot
    >>> T = ot.LaguerreMap([[0.0], [1.0]], [0.0, 0.0])
    >>> isinstance(T, ot.TransportMap), T.dim_in, T.has_inverse
    (True, 1, False)
    """

    dim_in: int
    dim_out: int
    domain: str = ""
    has_inverse: bool = False

    def __call__(self, x):
        return self.transform(x)

    def transform(self, x):
        """Images T(x) of the points ``x`` (k, d_in) (1-D: k points on the line), shape (k, d_out).

        Parameters
        ----------
        x : array_like or Tensor
            Points (k, d_in).

        Returns
        -------
        ndarray or Tensor
            (k, d_out). NumPy in -> NumPy out (float64); tensor in -> tensor out (same device and
            dtype).

        Raises
        ------
        InputError
            ``x`` not a finite point cloud, or of a dimension other than ``dim_in``.
        """
        ctx = ArrayContext(x)
        z = check_points(ctx.tensor(x, "x"), "x")
        if z.shape[1] != self.dim_in:
            raise InputError(f"x: points of dimension {z.shape[1]}, the map is defined on "
                             f"dimension {self.dim_in}")
        return ctx.wrap(self._transform(z).to(z.dtype))

    def inverse(self) -> TransportMap:
        """The reverse map (target -> source), when the estimator has one (``has_inverse``).

        Returns
        -------
        TransportMap

        Raises
        ------
        NotImplementedError
            For maps without an inverse (the message gives the map's domain).
        """
        raise NotImplementedError(f"{type(self).__name__} has no inverse: {self.domain}")

    def _transform(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim_in={self.dim_in}, dim_out={self.dim_out})"


# ----------------------------------------------------------------------------- barycentric
def _nearest(z: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Index of the point of x nearest to each z (Euclidean), among the ``mask`` rows: the
    Laguerre assignment with weights psi = 0 (Voronoi cells), excluded rows pushed away."""
    xs = x.detach().to(z.dtype)
    psi = torch.zeros(xs.shape[0], dtype=z.dtype, device=z.device)
    if mask is not None:
        psi = torch.where(mask.to(z.device), psi, -torch.finfo(z.dtype).max / 4)
    return laguerre_assign(z.detach(), xs, psi)


class BarycentricMap(TransportMap):
    """Barycentric projection of a transport plan, x_i -> sum_j P_ij y_j / sum_j P_ij.

    Parameters
    ----------
    x : array (n, d_in)
        Source support (training points).
    y : array (m, d_out)
        Target support.
    plan : array (n, m) or OTResult
        The plan P. An :class:`~measureflow.ot.OTResult` is used through its plan products
        (``res.apply``), so streamed results (``ot.sinkhorn_points``, ``plan=None``) work.

    Attributes
    ----------
    values : ndarray or Tensor
        (n, d_out): the projection at the training points; rows of P with zero mass have no
        image (NaN).

    Raises
    ------
    InputError
        Bad point clouds, a plan of the wrong shape, with negative entries or without mass.

    Notes
    -----
    ``transform(z)`` extends the projection to any z by the nearest-neighbour rule of Ferradans,
    Papadakis, Peyre & Aujol (2014) that POT's ``ot.da`` uses out of sample: T(z) = T(x_k) +
    (z - x_k), x_k the training point (with positive row mass) nearest to z in Euclidean
    distance. At a training point this is its barycentric image (with duplicated training
    points, the first one's). ``inverse()`` is the barycentric projection of P^T (target ->
    source), the reverse *estimator*, not the functional inverse (they agree when P is a scaled
    permutation). Gradients flow from ``plan`` (a tensor) and from z.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> x = np.array([[0.0], [1.0]]); y = np.array([[0.0], [2.0], [4.0]])
    >>> P = np.array([[0.25, 0.25, 0.0], [0.0, 0.0, 0.5]])
    >>> T = ot.BarycentricMap(x, y, P)
    >>> T.values.ravel().tolist()
    [1.0, 4.0]
    >>> T([[1.5]]).ravel().tolist()      # nearest training point 1.0, shifted by 0.5
    [4.5]
    >>> T.inverse().values.ravel().tolist()   # y_j -> sum_i P_ij x_i / sum_i P_ij
    [0.0, 0.0, 1.0]

    References
    ----------
    S. Ferradans, N. Papadakis, G. Peyre, J.-F. Aujol, "Regularized discrete optimal
    transport", SIAM J. Imaging Sci. 7(3), 2014. N. Courty, R. Flamary, D. Tuia, A.
    Rakotomamonjy, "Optimal transport for domain adaptation", IEEE TPAMI 39(9), 2017.
    """

    has_inverse = True

    def __init__(self, x, y, plan):
        ctx = ArrayContext(x, y, None if isinstance(plan, OTResult) else plan)
        x = check_points(ctx.tensor(x, "x"), "x")
        y = check_points(ctx.tensor(y, "y"), "y")
        n, m = x.shape[0], y.shape[0]
        if not isinstance(plan, OTResult):
            plan = check_shape(ctx.tensor(plan, "plan"), "plan", (n, m))
            if bool((plan.detach() < 0).any()):
                raise InputError("plan: has negative entries")
        self._setup(x, y, plan, 1, ctx.is_numpy)

    @staticmethod
    def _product(plan, w, axis):
        """P w (axis 1) or P^T w (axis 0), for a plan tensor or an OTResult's plan products."""
        if isinstance(plan, OTResult):
            return as_tensor(plan.apply(w.detach(), axis=axis), "plan", dtype=w.dtype,
                             device=w.device, check_finite=False)
        return plan @ w if axis == 1 else plan.t() @ w

    def _setup(self, x, y, plan, axis, numpy):
        self.x, self.y, self._plan, self._axis, self._numpy = x, y, plan, axis, numpy
        yw = torch.cat([y, torch.ones_like(y[:, :1])], 1)
        try:
            out = self._product(plan, yw, axis)
        except InputError as exc:
            raise InputError(f"plan: does not act on y of {y.shape[0]} points ({exc})") from None
        if tuple(out.shape) != (x.shape[0], yw.shape[1]):
            raise InputError(f"plan: maps {y.shape[0]} target points to {out.shape[0]} rows, "
                             f"x has {x.shape[0]} points")
        mass, num = out[:, -1], out[:, :-1]
        pos = mass > 0
        if not bool(pos.any()):
            raise InputError("plan: has no mass")
        self.dim_in, self.dim_out = x.shape[1], y.shape[1]
        self._mask = None if bool(pos.all()) else pos
        nan = torch.full_like(num, math.nan)
        self._values = torch.where(pos[:, None], num / torch.where(pos, mass, 1)[:, None], nan)
        self.domain = ("the training points x_i (barycentric projection); elsewhere "
                       "T(x_k) + z - x_k with x_k the nearest training point (Ferradans et al. "
                       "2014, POT's out-of-sample rule)")

    @property
    def values(self):
        """T(x_i) = sum_j P_ij y_j / sum_j P_ij at the training points, (n, d_out)."""
        return self._values.detach().cpu().numpy() if self._numpy else self._values

    def _transform(self, z):
        idx = _nearest(z, self.x, self._mask)
        vals = self._values.to(z.dtype)
        return vals[idx] + (z - self.x.to(z.dtype)[idx])

    def inverse(self) -> BarycentricMap:
        """Barycentric projection of P^T: y_j -> sum_i P_ij x_i / sum_i P_ij (reverse estimator).

        Returns
        -------
        BarycentricMap
        """
        inv = object.__new__(BarycentricMap)
        inv._setup(self.y, self.x, self._plan, 1 - self._axis, self._numpy)
        return inv


# ----------------------------------------------------------------------------- entropic
class _EntropicMapFn(torch.autograd.Function):
    """T_eps(z) by the engine's streamed reductions; backward in z by the covariance formula.

    dT_i/dz_i = -(1/eps) sum_j w_ij (y_j - T_i) grad_z c(z_i, y_j)^T, w_ij the normalised
    weights; for c = |z - y|^p, grad_z c = p |z - y|^(p-2) (z - y) (for p = 2: 2 (z - y), so
    dT/dz = (2/eps) Cov_w(y), the conditional covariance).
    """

    @staticmethod
    def forward(ctx, z, y, v, eps, p):
        geom = PointCloud(z, y, cost=p)
        zero = torch.zeros(z.shape[0], dtype=geom.pdtype, device=z.device)
        log_den = geom.lse(zero, v, eps, axis=1)
        yw = torch.cat([geom.y, torch.ones_like(geom.y[:, :1])], 1)
        nd = geom.apply(-log_den, v, eps, yw, axis=1)
        T = nd[:, :-1] / nd[:, -1:]
        ctx.save_for_backward(z, T, log_den)
        ctx.geom, ctx.v, ctx.eps, ctx.p = geom, v, eps, p
        return T.to(z.dtype)

    @staticmethod
    def backward(ctx, gout):
        z, T, log_den = ctx.saved_tensors
        geom, v, eps, p = ctx.geom, ctx.v, ctx.eps, ctx.p
        y, g = geom.y, gout.to(geom.pdtype)
        zz = z.detach().to(geom.pdtype)
        grad = torch.empty_like(zz)
        step = max(1, 2**18 // max(y.shape[0], 1))
        for i0 in range(0, zz.shape[0], step):
            sl = slice(i0, min(i0 + step, zz.shape[0]))
            W = geom.block(-log_den, v, eps, rows=sl)                  # normalised weights
            S = W * (g[sl] @ y.T - (T[sl] * g[sl]).sum(1, keepdim=True))
            if p != 2.0:
                r = geom.cost(sl, None).to(geom.pdtype).clamp_min(0) ** (1.0 / p)
                S = S * torch.where(r > 0, r.clamp_min(1e-300) ** (p - 2.0),
                                    torch.zeros_like(r))
            grad[sl] = -(p / eps) * (S.sum(1, keepdim=True) * zz[sl] - S @ y)
        return grad.to(z.dtype), None, None, None, None


class EntropicMap(TransportMap):
    """Entropic transport map of Pooladian & Niles-Weed (2021), evaluated anywhere.

    T_eps(z) = sum_j b_j exp((g_j - c(z, y_j))/eps) y_j / sum_j b_j exp((g_j - c(z, y_j))/eps)

    with the potential g of the entropic problem solved by :func:`measureflow.ot.solve`
    (plan P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps), cost C_ij = c(x_i, y_j) = |x_i - y_j|^2,
    no 1/2, by default). This is the conditional mean of y under the plan extended to z: at a
    training point x_i it equals the barycentric projection sum_j P_ij y_j / sum_j P_ij
    (balanced or unbalanced: f_i cancels). Pooladian & Niles-Weed (arXiv 2109.12004, Thm. 3)
    show it converges to the Brenier map as eps -> 0 and n -> infinity.

    Parameters
    ----------
    y : array (m, d)
        Target support.
    potential_g : array (m,)
        Dual potential g of the solve (same cost convention).
    eps : float
        The entropic regularisation of the solve (absolute, cost units).
    b : array (m,), optional
        Target weights of the solve (default uniform 1/m).
    x, potential_f, a : optional
        Source support, potential f and weights: enable :meth:`inverse`, the map
        z -> sum_i a_i exp((f_i - c(x_i, z))/eps) x_i / (same without x_i).
    cost : 'sqeuclidean' | 'euclidean' | float
        c(x, y) = |x - y|^p with p = 2, 1 or the number given (p >= 1); must be the cost of the
        solve.

    Raises
    ------
    InputError
        Non-positive ``eps``, a callable or bad ``cost``, shapes that do not match ``y``, bad
        weights, or only one of ``x`` / ``potential_f``.

    Notes
    -----
    Computed by the engine's streamed point-cloud reductions (log-sum-exp then one
    plan-vector product, :class:`measureflow.ot.geometry.PointCloud`): memory
    O((k + m) d + block), never k x m. Differentiable in z for tensor input (gradient by the
    covariance formula dT/dz = (2/eps) Cov(y | z) for p = 2); ``y`` and the potentials are
    held fixed (not differentiated).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2)) + 3.0
    >>> res = ot.solve(None, None, ot.dist(x, y), eps=1.0)
    >>> T = ot.EntropicMap.from_result(res, x, y)
    >>> B = ot.BarycentricMap(x, y, res)
    >>> bool(np.allclose(T(x), B.values, atol=1e-12))     # equal on the training points
    True
    >>> T(np.zeros((1, 2))).shape                          # and defined anywhere
    (1, 2)

    References
    ----------
    A.-A. Pooladian, J. Niles-Weed, "Entropic estimation of optimal transport maps",
    arXiv:2109.12004, 2021.
    """

    def __init__(self, y, potential_g, eps, b=None, *, x=None, potential_f=None, a=None,
                 cost="sqeuclidean"):
        ctx = ArrayContext(y, potential_g, b, x, potential_f, a)
        self.eps = check_positive(eps, "eps")
        self.p = _cost_power(cost)
        self.y = check_points(ctx.tensor(y, "y"), "y").detach()
        m = self.y.shape[0]
        g = check_shape(ctx.tensor(potential_g, "potential_g"), "potential_g", (m,)).detach()
        b = check_weights(None if b is None else ctx.tensor(b, "b"), m, "b", like=self.y)
        pd = potential_dtype(self.y.dtype, self.y.device)
        self._g, self._b = g, b.detach()
        self._v = g.to(pd) / self.eps + torch.log(self._b.to(pd))
        self.dim_in = self.dim_out = self.y.shape[1]
        self._numpy = ctx.is_numpy
        if (x is None) != (potential_f is None):
            raise InputError("potential_f: give x and potential_f together (for the inverse "
                             "map), or neither")
        self.has_inverse = x is not None
        self._inv = None
        if x is not None:
            xs = check_points(ctx.tensor(x, "x"), "x").detach()
            if xs.shape[1] != self.dim_in:
                raise InputError(f"x: dimension {xs.shape[1]} differs from y's {self.dim_in}")
            n = xs.shape[0]
            f = check_shape(ctx.tensor(potential_f, "potential_f"), "potential_f", (n,))
            a = check_weights(None if a is None else ctx.tensor(a, "a"), n, "a", like=xs)
            self._inv = (xs, f.detach(), a.detach())
        self.domain = (f"all of R^{self.dim_in} (entropic map, eps = {self.eps:g}); equal to "
                       "the barycentric projection of the entropic plan at the training points")

    @classmethod
    def from_result(cls, res: OTResult, x, y, a=None, b=None, *, cost="sqeuclidean"):
        """Entropic map (with its inverse) from an entropic result of ``ot.solve`` / ``ot.sinkhorn_points``.

        Parameters
        ----------
        res : OTResult
            Result of an entropic solve (``eps > 0``).
        x, y : array_like or Tensor
            The source and target supports of that solve.
        a, b : array_like or Tensor, optional
            Their weights (default uniform).
        cost : 'sqeuclidean' | 'euclidean' | float
            The cost used by that solve.

        Returns
        -------
        EntropicMap
            With ``has_inverse = True``.

        Raises
        ------
        InputError
            ``res`` not an entropic result (the exact LP has no entropic map: use
            :class:`BarycentricMap`).
        """
        if not isinstance(res, OTResult) or res.eps is None:
            raise InputError("res: expected the result of an entropic solve (eps > 0); the "
                             "exact LP has no entropic map (use BarycentricMap)")
        return cls(y, res.potential_g, res.eps, b, x=x, potential_f=res.potential_f, a=a,
                   cost=cost)

    def _transform(self, z):
        y = self.y.to(device=z.device)
        v = self._v.to(device=z.device)
        if z.requires_grad:
            return _EntropicMapFn.apply(z, y, v, self.eps, self.p)
        with torch.no_grad():
            return _EntropicMapFn.forward(_NoCtx(), z, y, v, self.eps, self.p)

    def inverse(self) -> EntropicMap:
        """The entropic map of the reverse problem, z -> E[x | z], from (x, f, a).

        Returns
        -------
        EntropicMap

        Raises
        ------
        NotImplementedError
            Built without ``x`` and ``potential_f`` (use :meth:`from_result`).
        """
        if self._inv is None:
            raise NotImplementedError("EntropicMap: built without x and potential_f, so it has "
                                      "no inverse (use EntropicMap.from_result)")
        xs, f, a = self._inv
        conv = (lambda t: t.cpu().numpy()) if self._numpy else (lambda t: t)
        return EntropicMap(conv(xs), conv(f), self.eps, conv(a), x=conv(self.y),
                           potential_f=conv(self._g), a=conv(self._b), cost=self.p)


class _NoCtx:
    """Stand-in for the autograd context when the forward runs without gradients."""

    def save_for_backward(self, *args):
        pass


# ----------------------------------------------------------------------------- Gaussian
class GaussianMap(TransportMap):
    """Brenier map between N(m0, S0) and N(m1, S1): T(x) = A (x - m0) + m1 (cost |x-y|^2).

    A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2} (:func:`measureflow.ot.gaussian_map`);
    T pushes N(m0, S0) forward to N(m1, S1) and is the optimal map for the squared cost (and
    for any measure with covariance S0 it is the map of the Gelbrich bound). Differentiable in
    x and in tensor parameters.

    Parameters
    ----------
    m0, m1 : array_like or Tensor
        Means (d,).
    S0, S1 : array_like or Tensor
        Covariances (d, d); S0 positive definite. :meth:`inverse` (the map from N(m1, S1) back,
        A^{-1}) needs S1 positive definite.

    Attributes
    ----------
    A, shift : Tensor
        T(x) = A x + shift, shift = m1 - A m0.

    Raises
    ------
    InputError
        Bad shapes, non-symmetric or non-PSD covariances.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> T = ot.GaussianMap([0.0, 0.0], np.eye(2), [1.0, 0.0], np.diag([4.0, 1.0]))
    >>> T([[1.0, 1.0]]).tolist()
    [[3.0, 1.0]]
    >>> T.inverse()(T([[1.0, 1.0]])).tolist()
    [[1.0, 1.0]]

    References
    ----------
    OT course notes, arXiv 2505.06589, Sec. "Gaussian case / Bures". C. R. Givens, R. M.
    Shortt, "A class of Wasserstein metrics for probability distributions", Michigan Math. J.
    31(2), 1984.
    """

    has_inverse = True

    def __init__(self, m0, S0, m1, S1):
        ctx = ArrayContext(m0, S0, m1, S1)
        args = [ctx.tensor(t, nm) for t, nm in ((m0, "m0"), (S0, "S0"), (m1, "m1"), (S1, "S1"))]
        check_ndim(args[0], "m0", 1)
        check_ndim(args[2], "m1", 1)
        check_ndim(args[1], "S0", 2)
        check_ndim(args[3], "S1", 2)
        self._args = args
        self.A, self.shift = gaussian_map(*args)
        self.dim_in = self.dim_out = self.A.shape[-1]
        self._numpy = ctx.is_numpy
        self.domain = f"all of R^{self.dim_in} (affine Brenier map between the two Gaussians)"

    def _transform(self, z):
        A = self.A.to(dtype=z.dtype, device=z.device)
        return z @ A.T + self.shift.to(dtype=z.dtype, device=z.device)

    def inverse(self) -> GaussianMap:
        """The Brenier map from N(m1, S1) back to N(m0, S0) (A^{-1}; needs S1 positive definite).

        Returns
        -------
        GaussianMap
        """
        m0, S0, m1, S1 = self._args
        if self._numpy:
            m0, S0, m1, S1 = (t.cpu().numpy() for t in (m0, S0, m1, S1))
        return GaussianMap(m1, S1, m0, S0)


# ----------------------------------------------------------------------------- Laguerre
class LaguerreMap(TransportMap):
    """Semi-discrete (Laguerre) map T(x) = y_{j(x)}, j(x) = argmin_j |x - y_j|^2 - psi_j.

    With the weights psi of :func:`measureflow.ot.semidiscrete` (cost |x - y|^2, no 1/2) it is
    the optimal map from the source density to sum_j b_j delta_{y_j}
    (Kitagawa, Merigot & Thibert 2019). Piecewise constant in x (gradient 0); no inverse
    (many points map to one). :meth:`assign` gives j(x).

    Parameters
    ----------
    y : array_like or Tensor
        Target points (m, d).
    psi : array_like or Tensor
        Laguerre weights (m,) (``psi = 0``: Voronoi cells).

    Raises
    ------
    InputError
        Bad points, or ``psi`` not of shape (m,).

    Examples
    --------
    >>> from measureflow import ot
    >>> T = ot.LaguerreMap([[0.0], [1.0]], [0.0, 0.0])      # psi = 0: Voronoi cells
    >>> T([[0.2], [0.7]]).ravel().tolist()
    [0.0, 1.0]
    >>> T = ot.LaguerreMap([[0.0], [1.0]], [0.0, 0.5])      # cell boundary moves to 0.25
    >>> T.assign([[0.2], [0.3]]).tolist()
    [0, 1]

    References
    ----------
    J. Kitagawa, Q. Merigot, B. Thibert, "Convergence of a Newton algorithm for semi-discrete
    optimal transport", J. Eur. Math. Soc. 21(9), 2019.
    """

    def __init__(self, y, psi):
        ctx = ArrayContext(y, psi)
        self.y = check_points(ctx.tensor(y, "y"), "y")
        self.psi = check_shape(ctx.tensor(psi, "psi"), "psi", (self.y.shape[0],))
        self.dim_in = self.dim_out = self.y.shape[1]
        self.domain = (f"all of R^{self.dim_in}; the optimal map only for the source measure "
                       "the weights were solved for")

    @classmethod
    def from_result(cls, res: SemiDiscreteResult) -> LaguerreMap:
        """The Laguerre map of a :func:`measureflow.ot.semidiscrete` result.

        Parameters
        ----------
        res : SemiDiscreteResult

        Returns
        -------
        LaguerreMap

        Raises
        ------
        InputError
            ``res`` not a :class:`~measureflow.ot.SemiDiscreteResult`.
        """
        if not isinstance(res, SemiDiscreteResult):
            raise InputError("res: expected a SemiDiscreteResult (from ot.semidiscrete)")
        return cls(res.points, res.weights)

    def assign(self, x):
        """Index j(x) of the Laguerre cell of each point.

        Parameters
        ----------
        x : array_like or Tensor
            Points (k, d).

        Returns
        -------
        ndarray or Tensor
            int64, shape (k,).
        """
        return laguerre_assign(x, self.y, self.psi)

    def _transform(self, z):
        idx = laguerre_assign(z, self.y.to(z), self.psi.to(z))
        return self.y.to(device=z.device)[idx].to(z.dtype)
