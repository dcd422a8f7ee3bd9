"""Result objects of the static OT solvers."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..core.arrays import as_tensor, to_numpy
from ..core.errors import InputError
from ..core.results import SolverResult

__all__ = ["OTResult", "Certificate", "EngineState"]


@dataclasses.dataclass(frozen=True)
class Certificate:
    """Optimality certificate of an exact (LP) transport solution.

    For the Kantorovich LP  min ``<C, P>``  s.t.  P >= 0, P 1 = a, P^T 1 = b  and its dual
    max ``<a, f>`` + ``<b, g>``  s.t.  f_i + g_j <= C_ij (course notes arXiv 2505.06589, Sec.
    "Duality"), a triple (P, f, g) is optimal iff it is primal feasible, dual feasible and has
    zero duality gap; the certificate measures the three.

    Attributes
    ----------
    primal_residual : float
        ||P 1 - a||_1 + ||P^T 1 - b||_1 (plus the mass of negative entries).
    dual_violation : float
        max_ij (f_i + g_j - C_ij)_+ .
    gap : float
        ``|<C, P> - <a, f> - <b, g>|`` (0 at optimality, by strong duality).
    tol : float
        The absolute tolerance the three were compared with (``rtol`` x max(max|C| x mass, 1)).
    valid : bool
        All three are below ``tol``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> res = ot.solve(None, None, np.array([[0.0, 1.0], [1.0, 0.0]]))
    >>> cert = res.certificate
    >>> cert.valid, cert.gap < cert.tol
    (True, True)
    """

    primal_residual: float
    dual_violation: float
    gap: float
    tol: float
    valid: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class OTResult(SolverResult):
    """Result of :func:`measureflow.ot.solve` (one result type for exact, entropic, unbalanced).

    Also returned by :func:`measureflow.ot.sinkhorn_points`. The plan and potentials follow the
    convention P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) for entropic solves; the cost is the
    one given to the solver (no 1/2).

    Attributes
    ----------
    value:
        The objective of the problem solved (see :func:`measureflow.ot.solve` for which one).
    linear_cost:
        ``<C, P>`` = sum_ij C_ij P_ij (the transport part alone).
    plan:
        The coupling P (n, m) (``None`` for on-the-fly geometries: use :meth:`dense_plan`).
    potential_f, potential_g:
        Dual potentials (n,), (m,).
    certificate:
        :class:`Certificate` for exact solves, ``None`` otherwise.
    method:
        ``"network_simplex"``, ``"sinkhorn"``, ``"sinkhorn_unbalanced"``, ``"sinkhorn_points"``.
    eps, rho:
        The regularisation solved (``None`` for the exact LP / balanced).
    converged, n_iter, errors:
        See :class:`measureflow.core.results.SolverResult`.

    Methods
    -------
    The result keeps its geometry and weights (entropic solves) or its plan (exact solves), so
    the plan can be used without re-passing the inputs: :meth:`apply` (P v, P^T w),
    :meth:`marginals`, :meth:`plan_block` (rows/columns of P) and :meth:`dense_plan` (all of P,
    for on-the-fly geometries such as ``sinkhorn_points`` whose ``plan`` field is ``None``).
    They return NumPy arrays for NumPy calls and tensors otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> a, b = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    >>> res = ot.solve(a, b, np.array([[0.0, 1.0], [1.0, 0.0]]), eps=0.5)
    >>> bool(np.allclose(res.apply(np.ones(2)), a)), bool(np.allclose(res.marginals()[1], b))
    (True, True)
    >>> bool(np.allclose(res.plan_block(0, 1), res.plan[:1]))
    True
    """

    value: Any = None
    linear_cost: Any = None
    plan: Any = None
    potential_f: Any = None
    potential_g: Any = None
    certificate: Certificate | None = None
    method: str = ""
    eps: float | None = None
    rho: float | None = None
    engine: Any = dataclasses.field(default=None, repr=False, compare=False)

    # -- plan access ---------------------------------------------------------------------
    def _state(self) -> EngineState:
        if self.engine is None:
            raise InputError("res: this result carries no plan data (built by hand?)")
        return self.engine

    def apply(self, v, axis: int = 1):
        """P v (``axis=1``) or P^T w (``axis=0``) with the result's plan, without materialising it.

        Parameters
        ----------
        v : array_like or Tensor
            Shape (m,) or (m, k) for ``axis=1``; (n,) or (n, k) for ``axis=0``.
        axis : {1, 0}, default 1
            1: P v; 0: P^T v.

        Returns
        -------
        ndarray or Tensor
            (n,) / (n, k) or (m,) / (m, k); NumPy for NumPy solves, detached tensors otherwise.

        Raises
        ------
        InputError
            Bad ``axis`` or a shape of ``v`` that does not match.
        """
        return self._state().apply(v, axis)

    def marginals(self):
        """(P 1, P^T 1): the row and column marginals of the plan.

        Returns
        -------
        tuple
            ``(P 1, P^T 1)`` of shapes (n,), (m,).
        """
        st = self._state()
        return st.marginal(1), st.marginal(0)

    def plan_block(self, i0: int = 0, i1: int | None = None, j0: int = 0,
                   j1: int | None = None):
        """The block P[i0:i1, j0:j1] of the plan (materialised).

        Parameters
        ----------
        i0, i1, j0, j1 : int
            Row and column ranges (``None`` end: to the last); 0 <= i0 < i1 <= n, likewise for j.

        Returns
        -------
        ndarray or Tensor
            (i1 - i0, j1 - j0) block.

        Raises
        ------
        InputError
            A range outside the plan or empty.
        """
        return self._state().block(i0, i1, j0, j1)

    def dense_plan(self):
        """The whole plan P (n, m), materialised (for on-the-fly geometries: n m memory).

        Returns
        -------
        ndarray or Tensor
        """
        return self._state().block(0, None, 0, None)


class EngineState:
    """What an entropic (or exact) result keeps to act with its plan (internal to :class:`OTResult`).

    Parameters
    ----------
    geom : Geometry, optional
        The geometry of an entropic solve.
    u, v : Tensor, optional
        Log-scaled potentials f / eps + log a, g / eps + log b.
    eps : float, optional
        The final regularisation.
    plan : Tensor, optional
        An explicit plan (exact solves) instead of ``geom, u, v``.
    numpy : bool, default False
        Convert outputs to NumPy.
    dtype : torch.dtype, optional
        The data dtype outputs are cast to (default: that of ``u`` or ``plan``).
    la, lb : Tensor, optional
        Log-weights of the solve (kept for checks).
    """

    def __init__(self, *, geom=None, u=None, v=None, eps=None, plan=None, numpy=False,
                 dtype=None, la=None, lb=None):
        self.geom, self.u, self.v, self.eps, self.plan = geom, u, v, eps, plan
        self.la, self.lb = la, lb   # log-weights of the solve (inputs kept for checks)
        self.numpy = numpy
        ref = u if u is not None else plan
        self.dtype = dtype or ref.dtype
        self.pdtype = ref.dtype
        self.device = ref.device

    def _out(self, t):
        t = t.to(self.dtype)
        return to_numpy(t) if self.numpy else t

    def _shape(self):
        if self.plan is not None:
            return tuple(self.plan.shape)
        return self.geom.shape[0][0], self.geom.shape[1][0]

    def apply(self, v, axis):
        if axis not in (0, 1):
            raise InputError(f"axis: must be 0 or 1, got {axis!r}")
        n, m = self._shape()
        k = m if axis == 1 else n
        t = as_tensor(v, "v", dtype=self.pdtype, device=self.device).detach()
        if t.ndim not in (1, 2) or t.shape[0] != k:
            raise InputError(f"v: expected shape ({k},) or ({k}, k), got {tuple(t.shape)}")
        with torch.no_grad():
            if self.plan is not None:
                P = self.plan.to(self.pdtype)
                out = P @ t if axis == 1 else P.t() @ t
            else:
                out = self.geom.apply(self.u, self.v, self.eps, t, axis)
        return self._out(out)

    def marginal(self, axis):
        n, m = self._shape()
        ones = torch.ones(m if axis == 1 else n, dtype=self.pdtype, device=self.device)
        return self.apply(ones, axis)

    def block(self, i0, i1, j0, j1):
        n, m = self._shape()
        i1 = n if i1 is None else i1
        j1 = m if j1 is None else j1
        for name, lo, hi, size in (("i", i0, i1, n), ("j", j0, j1, m)):
            if isinstance(lo, bool) or isinstance(hi, bool) or not (
                    isinstance(lo, int) and isinstance(hi, int)) or not 0 <= lo < hi <= size:
                raise InputError(f"{name}1: need 0 <= {name}0 < {name}1 <= {size}, got "
                                 f"{name}0={lo!r}, {name}1={hi!r}")
        with torch.no_grad():
            if self.plan is not None:
                return self._out(self.plan[i0:i1, j0:j1])
            return self._out(self.geom.block(self.u, self.v, self.eps, slice(i0, i1),
                                             slice(j0, j1)))
