"""Result objects shared by the iterative solvers.

Every iterative solver family returns a frozen dataclass deriving from :class:`SolverResult`,
so all of them expose ``converged``, ``n_iter`` and ``errors`` (the trace of the family's
documented stopping error, one entry per check). Use :func:`report_convergence` to emit the
:class:`ConvergenceWarning` in one consistent way.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from .errors import ConvergenceWarning

__all__ = ["SolverResult", "report_convergence"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SolverResult:
    """Base of all solver results.

    Attributes
    ----------
    converged:
        True iff the solver's stopping error fell below ``tol`` before ``max_iter``.
    n_iter:
        Number of iterations performed.
    errors:
        Trace of the stopping error (list of floats), one entry per convergence check.
    """

    converged: bool = True
    n_iter: int = 0
    errors: list = dataclasses.field(default_factory=list)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def report_convergence(converged: bool, solver: str, n_iter: int, error: float, tol: float,
                       stacklevel: int = 3) -> None:
    """Warn (``ConvergenceWarning``) when a solver stopped before reaching ``tol``."""
    if not converged:
        warnings.warn(
            f"{solver}: not converged after {n_iter} iterations (error {error:.3e} > tol {tol:.1e}); "
            "the result has converged=False",
            ConvergenceWarning, stacklevel=stacklevel)
