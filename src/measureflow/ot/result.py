"""Result objects of the static OT solvers."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.results import SolverResult

__all__ = ["OTResult", "Certificate"]


@dataclasses.dataclass(frozen=True)
class Certificate:
    """Optimality certificate of an exact (LP) transport solution.

    For the Kantorovich LP  min <C, P>  s.t.  P >= 0, P 1 = a, P^T 1 = b  and its dual
    max <a, f> + <b, g>  s.t.  f_i + g_j <= C_ij:

    - ``primal_residual``: ||P 1 - a||_1 + ||P^T 1 - b||_1 (plus the mass of negative entries);
    - ``dual_violation``: max_ij (f_i + g_j - C_ij)_+ ;
    - ``gap``: |<C, P> - <a, f> - <b, g>|  (0 at optimality, by strong duality);
    - ``valid``: all three are below ``tol`` (relative to the cost scale x mass).
    """

    primal_residual: float
    dual_violation: float
    gap: float
    tol: float
    valid: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class OTResult(SolverResult):
    """Result of :func:`measureflow.ot.solve` (one result type for exact, entropic, unbalanced).

    Attributes
    ----------
    value:
        The objective of the problem solved (see :func:`measureflow.ot.solve` for which one).
    linear_cost:
        <C, P> = sum_ij C_ij P_ij (the transport part alone).
    plan:
        The coupling P (n, m).
    potential_f, potential_g:
        Dual potentials (n,), (m,).
    certificate:
        :class:`Certificate` for exact solves, ``None`` otherwise.
    method:
        ``"network_simplex"``, ``"sinkhorn"`` or ``"sinkhorn_unbalanced"``...
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
