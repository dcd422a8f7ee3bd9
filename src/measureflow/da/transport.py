"""``measureflow.da.Transport``: optimal-transport domain adaptation (exact, entropic, unbalanced,
class-regularised), as a scikit-learn transformer.

Problems (cost C_ij = |xs_i - xt_j|^p, ``metric="sqeuclidean"``: p = 2 and no 1/2; uniform
weights a = 1/n, b = 1/m, as POT's ``ot.da``):

* ``method="exact"``: min_{P in U(a, b)} ``<C, P>`` (network simplex, :func:`measureflow.ot.solve`).
* ``method="sinkhorn"``: min_{P in U(a, b)} ``<C, P>`` + eps KL(P | a x b).
* ``method="unbalanced"``: min_P ``<C, P>`` + eps KL(P | a x b) + rho KL(P1 | a) + rho KL(P^T1 | b).
* ``class_reg = eta`` (with source labels ``ys``; any method): adds the group-sparse
  Lp-L1 penalty (p = 1/2, q = 1) of Courty, Flamary, Tuia & Rakotomamonjy (2017, TPAMI 39(9),
  "class-based regularization"; Courty, Flamary & Tuia, ECML 2014)

      eta * sum_j sum_c (sum_{i : ys_i = c} P_ij + delta)^(1/2),    delta = 1e-3,

  which pushes each target point to receive mass from one source class only.

**Class-regularised algorithm (majorization-minimization).** The penalty is concave in P (a
sum of square roots of linear functions), so it lies below its tangent at any P_k:
(s + delta)^(1/2) <= (s_k + delta)^(1/2) + (s - s_k) / (2 (s_k + delta)^(1/2)). Replacing it by
the tangent gives a majorant of the objective that is the original transport problem with the
cost

    C^(k)_ij = C_ij + eta / (2 (s_{j, c(i)}(P_k) + delta)^(1/2)),
    s_{j, c}(P) = sum_{i : ys_i = c} P_ij,

solved exactly by :func:`measureflow.ot.solve` (entropic solves warm-started from the previous
potentials). Minimising the majorant decreases the objective at every step (MM). The first
solve uses C (no linearisation point yet), as POT's ``sinkhorn_lpl1_mm`` does, so with the same
number of solves the plans agree. Stopping rule: L1 change of the plan between two solves
``||P_k - P_{k-1}||_1 <= class_tol`` (mass units), at most ``class_max_iter`` solves; otherwise
``converged_ = False`` and a ``ConvergenceWarning``.

Conditioning: the linearised penalty adds up to eta / (2 delta^(1/2)) (about 16 eta) to the cost
of the classes that do not feed a target point, so for eta / eps large the Gibbs kernel of an
entropic solve becomes nearly block-diagonal by class and Sinkhorn converges slowly (the
inner solves then report ``ConvergenceWarning``). Larger ``eps`` or smaller ``class_reg`` help;
POT's ``sinkhorn_lpl1_mm`` stops its inner solves after 200 iterations without saying so.

**Maps.** ``transform(Xs)`` on the training sample is the barycentric projection
sum_j P_ij xt_j / sum_j P_ij (:class:`measureflow.ot.BarycentricMap`). Out of sample:
``"sinkhorn"`` and ``"unbalanced"`` use the entropic map of Pooladian & Niles-Weed (2021)
(:class:`measureflow.ot.EntropicMap`, equal to the barycentric projection on the training points;
POT's ``SinkhornTransport(out_of_sample_map="continuous")``); ``"exact"`` and class-regularised
plans (whose plan is not a Gibbs kernel of C) use POT's convention (Ferradans et al. 2014):
T(z) = T(xs_k) + z - xs_k with xs_k the training point nearest to z (squared Euclidean
distance). ``inverse_transform`` is the same construction with the roles of the samples
swapped (the plan transposed, potential f).

**POT correspondence** (tested to 1e-8 in float64): ``EMDTransport()`` = ``Transport("exact")``;
``SinkhornTransport(reg_e=r)`` = ``Transport("sinkhorn", eps=r)`` (POT regularises by
r sum P log P, which differs from r KL(P | a x b) by a constant on U(a, b): same plan);
``SinkhornLpl1Transport(reg_e=r, reg_cl=eta)`` = ``Transport("sinkhorn", eps=r, class_reg=eta)``
with ``ys``; ``UnbalancedSinkhornTransport(reg_e=r, reg_m=rho)`` =
``Transport("unbalanced", eps=r, rho=rho)``. POT's ``norm`` defaults to ``None`` (the cost is
used as given, as here); with ``norm="max"`` POT divides C by max C, i.e. use
``eps = reg_e * max C`` here.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.results import report_convergence
from ..core.validation import check_choice, check_in_range, check_int, check_points, check_positive
from ..ot import BarycentricMap, EntropicMap, dist, sinkhorn_points, solve
from ..ot.costs import metric_power

try:  # scikit-learn is optional (extra "da"): same behaviour, sklearn's base classes if present
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import TransformerMixin as _Mixin
    from sklearn.exceptions import NotFittedError as _NotFitted
    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised in a subprocess by tests/da
    HAVE_SKLEARN = False
    _NotFitted = AttributeError

    class _Mixin:
        pass

    class _Base:
        """The parameter protocol of scikit-learn estimators, for installs without it."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            return {k: getattr(self, k) for k in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for k, v in params.items():
                if k not in valid:
                    raise InputError(f"{k}: not a parameter of {type(self).__name__} "
                                     f"(parameters: {', '.join(valid)})")
                setattr(self, k, v)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

__all__ = ["Transport", "NotFittedError"]

METHODS = ("exact", "sinkhorn", "unbalanced")
#: smoothing of the class penalty's square roots (POT's value; weights are probabilities)
CLASS_DELTA = 1e-3
#: entropic fits with more cost entries than this run streamed (``ot.sinkhorn_points``: the
#: n x m cost is never stored); below, the dense ``ot.solve`` (faster on small problems)
DENSE_MAX = 2**22


class NotFittedError(InputError, _NotFitted):
    """``transform`` / ``inverse_transform`` / ``plan_`` used before ``fit``.

    An :class:`~measureflow.InputError` (so a ``ValueError``); also scikit-learn's
    ``NotFittedError`` when scikit-learn is installed.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.da import NotFittedError, Transport
    >>> try:
    ...     Transport().transform(np.zeros((1, 2)))
    ... except NotFittedError as exc:
    ...     print(str(exc).split(";")[0])
    Xs: this Transport is not fitted yet
    """


class Transport(_Mixin, _Base):
    """Optimal-transport domain adaptation: fit a plan between two samples, map points with it.

    Parameters
    ----------
    method : {'exact', 'sinkhorn', 'unbalanced'} or None
        The transport problem (see the module docstring). ``None`` (default) infers it:
        ``'exact'`` without ``eps``, ``'sinkhorn'`` with ``eps``, ``'unbalanced'`` with ``rho``.
    eps : float, optional
        Entropic regularisation (absolute, cost units; the regulariser is eps KL(P | a x b),
        POT's ``reg_e``). Required by ``'sinkhorn'`` and ``'unbalanced'``.
    rho : float or (float, float), optional
        Marginal KL penalty of ``'unbalanced'`` (POT's ``reg_m``).
    class_reg : float, optional
        Weight eta >= 0 of the Lp-L1 class penalty (POT's ``reg_cl``); needs ``ys`` in ``fit``.
    metric : 'sqeuclidean' | 'euclidean' | float
        Ground cost |x - y|^p with p = 2 (default, no 1/2), 1, or the number given.
    max_iter, tol : optional
        Passed to each :func:`measureflow.ot.solve` (defaults: those of ``ot.solve``).
    class_max_iter : int
        Maximum number of transport solves of the class-regularised MM loop (default 100).
    class_tol : float
        Stopping tolerance of the MM loop: L1 change of the plan (mass units, default 1e-7;
        MM converges linearly, POT stops after 10 solves whatever the change).

    Attributes
    ----------
    plan_ : array (n, m)
        The fitted plan (materialised on access for streamed entropic solves).
    result_ : OTResult
        The result of the last transport solve (value, potentials, converged, n_iter, ...).
    map_, inverse_map_ : TransportMap
        The out-of-sample forward and reverse maps (:mod:`measureflow.ot.maps`).
    n_iter_ : int
        Number of transport solves (1 without ``class_reg``).
    converged_ : bool
        Every solve converged (and the MM loop met ``class_tol``).
    errors_ : list of float
        MM stopping errors ||P_k - P_{k-1}||_1 (empty without ``class_reg``).
    n_features_in_ : int
        Dimension of the samples.

    Raises
    ------
    InputError
        At ``fit``: inconsistent parameters (``eps`` with ``'exact'``, ``rho`` without
        ``'unbalanced'``, missing ``eps`` or ``rho``), bad ``metric`` / ``class_reg`` /
        ``class_max_iter`` / ``class_tol``, or bad samples.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.da import Transport
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + [4.0, 0.0]
    >>> da = Transport(eps=1.0).fit(Xs, Xt)
    >>> da.transform(Xs).shape, da.inverse_transform(Xt).shape
    ((40, 2), (30, 2))
    >>> bool(abs(da.transform(Xs).mean(0)[0] - Xt.mean(0)[0]) < 1e-8)   # means are transported
    True

    The exact method is POT's ``EMDTransport`` (same plan, same maps):

    >>> import ot as pot
    >>> ref = pot.da.EMDTransport().fit(Xs=Xs, Xt=Xt)
    >>> da = Transport("exact").fit(Xs, Xt)
    >>> bool(np.allclose(da.plan_, ref.coupling_, atol=1e-12))
    True
    >>> bool(np.allclose(da.transform(Xs), ref.transform(Xs=Xs), atol=1e-12))
    True

    References
    ----------
    N. Courty, R. Flamary, D. Tuia, A. Rakotomamonjy, "Optimal transport for domain
    adaptation", IEEE TPAMI 39(9), 2017. S. Ferradans, N. Papadakis, G. Peyre, J.-F. Aujol,
    "Regularized discrete optimal transport", SIAM J. Imaging Sci. 7(3), 2014. A.-A.
    Pooladian, J. Niles-Weed, "Entropic estimation of optimal transport maps",
    arXiv:2109.12004, 2021.
    """

    def __init__(self, method=None, eps=None, rho=None, class_reg=None, *,
                 metric="sqeuclidean", max_iter=None, tol=None, class_max_iter=100,
                 class_tol=1e-7):
        self.method = method
        self.eps = eps
        self.rho = rho
        self.class_reg = class_reg
        self.metric = metric
        self.max_iter = max_iter
        self.tol = tol
        self.class_max_iter = class_max_iter
        self.class_tol = class_tol

    # ------------------------------------------------------------------------- parameters
    def _resolved(self):
        method = self.method
        if method is None:
            method = "exact" if self.eps is None else (
                "sinkhorn" if self.rho is None else "unbalanced")
        check_choice(method, "method", METHODS)
        eps = None if self.eps is None else check_positive(self.eps, "eps")
        if method == "exact":
            if eps is not None:
                raise InputError("eps: method='exact' is unregularised; use method='sinkhorn' "
                                 "for entropic transport")
            if self.rho is not None:
                raise InputError("rho: method='exact' is balanced; use method='unbalanced' "
                                 "(with eps > 0)")
        else:
            if eps is None:
                raise InputError(f"eps: method={method!r} needs eps > 0 (absolute, in cost "
                                 "units; POT's reg_e)")
            if method == "sinkhorn" and self.rho is not None:
                raise InputError("rho: method='sinkhorn' is balanced; use method='unbalanced'")
            if method == "unbalanced" and self.rho is None:
                raise InputError("rho: method='unbalanced' needs rho > 0 (POT's reg_m)")
        eta = None
        if self.class_reg is not None:
            eta = check_in_range(self.class_reg, "class_reg", 0.0, math.inf, high_open=True)
        check_int(self.class_max_iter, "class_max_iter", min_value=1)
        check_positive(self.class_tol, "class_tol")
        return method, eps, eta, metric_power(self.metric)

    # ------------------------------------------------------------------------- fitting
    def fit(self, Xs, Xt, ys=None):
        """Fit the plan between the source sample ``Xs`` (n, d) and the target ``Xt`` (m, d).

        Uniform weights 1/n, 1/m and the cost |xs_i - xt_j|^p of ``metric`` (module docstring).

        Parameters
        ----------
        Xs : array_like or Tensor
            Source sample (n, d).
        Xt : array_like or Tensor
            Target sample (m, d), same d.
        ys : array_like, optional
            (n,) source labels (any hashable values), used by ``class_reg`` (required then).

        Returns
        -------
        Transport
            ``self``, with the fitted attributes. NumPy in -> NumPy fitted arrays; tensors in ->
            tensors (their dtype and device).

        Raises
        ------
        InputError
            Inconsistent parameters (``method`` / ``eps`` / ``rho`` / ``class_reg``), bad samples
            (NaN, ragged, empty, different numbers of features), missing or misshaped ``ys`` with
            ``class_reg``.
        """
        method, eps, eta, p = self._resolved()
        ctx = ArrayContext(Xs, Xt)
        xs = _sample(ctx, Xs, "Xs")
        xt = _sample(ctx, Xt, "Xt")
        if xs.shape[1] != xt.shape[1]:
            raise InputError(f"Xt: {xt.shape[1]} features, Xs has {xs.shape[1]}")
        n, m = xs.shape[0], xt.shape[0]
        labels = None
        if eta is not None:
            if ys is None:
                raise InputError("ys: class_reg needs the source labels ys")
            labels = _labels(ys, n, xs.device)
        a = torch.full((n,), 1.0 / n, dtype=xs.dtype, device=xs.device)
        b = torch.full((m,), 1.0 / m, dtype=xs.dtype, device=xs.device)
        kw = {}
        if self.max_iter is not None:
            kw["max_iter"] = self.max_iter
        if self.tol is not None:
            kw["tol"] = self.tol
        rho = self.rho if method == "unbalanced" else None
        errors: list[float] = []
        if eta is None and eps is not None and n * m > DENSE_MAX:
            # streamed: the n x m cost is never stored (``plan_`` materialises it on demand)
            res = sinkhorn_points(xs, xt, a, b, eps=eps, rho=rho, cost=p, **kw)
            n_solves, ok = 1, bool(res.converged)
        else:
            C = dist(xs, xt, metric=p)
            res, n_solves, ok = self._solve_class(C, a, b, eps, rho, eta, labels, errors, kw)
        if res.engine is not None:
            res.engine.numpy = ctx.is_numpy      # plan products in the kind of the fit's input
        self.result_ = ctx.wrap(res)
        self.method_, self.eps_ = method, eps
        self.n_iter_ = n_solves
        self.errors_ = errors
        self.converged_ = ok
        self.n_features_in_ = xs.shape[1]
        self._numpy = ctx.is_numpy
        self._xs, self._xt = xs, xt
        self._bary = BarycentricMap(xs, xt, res.plan if res.plan is not None else res)
        if eps is not None and eta is None:
            ent = EntropicMap.from_result(res, xs, xt, a, b, cost=p)
            self.map_, self.inverse_map_ = ent, ent.inverse()
        else:
            self.map_, self.inverse_map_ = self._bary, self._bary.inverse()
        return self

    def _solve_class(self, C, a, b, eps, rho, eta, labels, errors, kw):
        """Plain solve, then the MM loop of the class penalty (module docstring)."""
        res = solve(a, b, C, eps=eps, rho=rho, **kw)
        if eta is None:
            return res, 1, bool(res.converged)
        ok = bool(res.converged)
        onehot = torch.nn.functional.one_hot(labels).to(C.dtype)          # (n, K)
        P = res.plan
        mass = float(a.sum())
        max_solves = self.class_max_iter
        for k in range(2, max_solves + 1):
            s = onehot.T @ P                                             # (K, m): s_{c, j}
            W = 0.5 * (s + CLASS_DELTA) ** -0.5                          # tangent slope
            Ck = C + eta * (onehot @ W)                                  # row i gets its class
            init = None if eps is None else (res.potential_f, res.potential_g)
            res = solve(a, b, Ck, eps=eps, rho=rho, init=init, **kw)
            ok = ok and bool(res.converged)
            err = float((res.plan - P).abs().sum()) / mass
            errors.append(err)
            P = res.plan
            if err <= self.class_tol:
                return res, k, ok
        # class_max_iter = 1: only the unpenalised first solve ran, the MM was never checked
        report_convergence(False, "da.Transport (class_reg MM)", max_solves,
                           errors[-1] if errors else math.nan, self.class_tol, stacklevel=4)
        return res, max_solves, False

    # ------------------------------------------------------------------------- mapping
    def _check_fitted(self, what):
        if not hasattr(self, "result_"):
            raise NotFittedError(f"{what}: this Transport is not fitted yet; call "
                                 "fit(Xs, Xt) first")

    def _map(self, X, name, train, bary_values, mapping):
        self._check_fitted(name)
        ctx = ArrayContext(X)
        if isinstance(X, torch.Tensor) and X.requires_grad:
            z = check_points(ctx.tensor(X, name), name)      # keep the graph
        else:
            z = _sample(ctx, X, name)
        if z.shape[1] != self.n_features_in_:
            hint = ("; a 1-D array is read as points on the line: Reshape your data with "
                    "X.reshape(1, -1) for a single sample") if np.ndim(X) == 1 else ""
            raise InputError(f"{name}: X has {z.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {self.n_features_in_} features as input{hint}")
        if (not z.requires_grad and z.shape == train.shape
                and torch.equal(z.to(train), train)):
            # the training sample itself: the barycentric projection of the plan (POT's rule)
            return ctx.wrap(bary_values.to(dtype=z.dtype, device=z.device))
        return ctx.wrap(mapping.transform(z))

    def transform(self, Xs):
        """Map source points to the target domain, shape (k, d).

        The barycentric projection sum_j P_ij xt_j / sum_j P_ij on the training sample itself;
        elsewhere the out-of-sample map ``map_`` (entropic map for entropic methods, POT's
        nearest-neighbour rule for exact and class-regularised plans; module docstring).

        Parameters
        ----------
        Xs : array_like or Tensor
            Points (k, d) of the source domain.

        Returns
        -------
        ndarray or Tensor
            (k, d), the kind of ``Xs``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        InputError
            Bad points or another number of features.
        """
        self._check_fitted("Xs")
        return self._map(Xs, "Xs", self._xs, self._bary._values, self.map_)

    def inverse_transform(self, Xt):
        """Map target points back to the source domain (the plan transposed), shape (k, d).

        Parameters
        ----------
        Xt : array_like or Tensor
            Points (k, d) of the target domain.

        Returns
        -------
        ndarray or Tensor
            (k, d), the kind of ``Xt``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        InputError
            Bad points or another number of features.
        """
        self._check_fitted("Xt")
        inv = self._bary.inverse()
        return self._map(Xt, "Xt", self._xt, inv._values, self.inverse_map_)

    def fit_transform(self, Xs, Xt, ys=None):
        """``fit(Xs, Xt, ys).transform(Xs)``: the barycentric projection of the fitted plan.

        Parameters
        ----------
        Xs, Xt, ys :
            As in :meth:`fit`.

        Returns
        -------
        ndarray or Tensor
            (n, d).
        """
        return self.fit(Xs, Xt, ys).transform(Xs)

    @property
    def plan_(self):
        """The fitted plan P (n, m) (NumPy for a NumPy fit; materialised for streamed solves)."""
        self._check_fitted("plan_")
        P = self.result_.plan
        return P if P is not None else self.result_.dense_plan()   # kind of the fit's input

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.allow_nan = False
        return tags


def _sample(ctx: ArrayContext, X, name: str) -> torch.Tensor:
    """A sample (k, d) as a tensor, with the messages scikit-learn users expect."""
    if getattr(X, "layout", torch.strided) != torch.strided or (
            not isinstance(X, torch.Tensor) and hasattr(X, "toarray")):
        raise InputError(f"{name}: sparse input is not supported; pass a dense array "
                         "(X.toarray())")
    if not isinstance(X, torch.Tensor):
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:  # ragged nested lists
            raise InputError(f"{name}: cannot be converted to an array ({exc})") from None
        if np.iscomplexobj(arr):
            raise InputError(f"{name}: Complex data not supported (got {arr.dtype})")
        if arr.dtype == object:
            try:
                X = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{name}: non-numeric values ({exc})") from None
    z = check_points(ctx.tensor(X, name), name).detach()
    if z.shape[1] == 0:
        raise InputError(f"{name}: 0 feature(s) (shape={tuple(z.shape)}) while a minimum of 1 "
                         "is required.")
    return z


def _labels(ys, n: int, device) -> torch.Tensor:
    """Source labels (any values) -> class indices 0..K-1 (int64 tensor of shape (n,))."""
    if isinstance(ys, torch.Tensor):
        ys = ys.detach().cpu().numpy()
    arr = np.asarray(ys)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"ys: expected {n} labels (one per source point), got shape "
                         f"{arr.shape}")
    _, idx = np.unique(arr, return_inverse=True)
    return torch.as_tensor(idx.reshape(-1), dtype=torch.long, device=device)
