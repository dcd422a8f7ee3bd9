"""Result objects shared by the iterative solvers.

Every iterative solver family returns a frozen dataclass deriving from :class:`SolverResult`,
so all of them expose ``converged``, ``n_iter`` and ``errors`` (the trace of the family's
documented stopping error, one entry per check). Use :func:`report_convergence` to emit the
:class:`ConvergenceWarning` in one consistent way.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any

from .errors import ConvergenceWarning

__all__ = ["SolverResult", "report_convergence"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SolverResult:
    """Base of all solver results.

    A frozen dataclass (keyword-only fields); every iterative solver family derives its result
    from it, so all of them expose the same three fields. Subclasses get the short ``repr`` below
    (scalars by value, arrays by shape and dtype, traces by length).

    Attributes
    ----------
    converged:
        True iff the solver's stopping error fell below ``tol`` before ``max_iter``.
    n_iter:
        Number of iterations performed.
    errors:
        Trace of the stopping error (list of floats), one entry per convergence check.

    Examples
    --------
    >>> import dataclasses
    >>> import numpy as np
    >>> from measureflow.core.results import SolverResult
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class MyResult(SolverResult):
    ...     x: object = None
    >>> r = MyResult(x=np.zeros((100, 3)), converged=True, n_iter=7, errors=[1.0, 1e-3, 1e-9])
    >>> r
    MyResult(x=<array (100, 3) float64>, converged=True, n_iter=7, errors=[3 values, last 1e-09])
    >>> r.replace(n_iter=8).n_iter, sorted(r.as_dict())
    (8, ['converged', 'errors', 'n_iter', 'x'])
    """

    converged: bool = True
    n_iter: int = 0
    errors: list = dataclasses.field(default_factory=list)

    def __init_subclass__(cls, **kwargs):
        # Every subclass gets the short repr below: a ``@dataclass`` decorator only writes
        # ``__repr__`` when the class does not define one itself.
        super().__init_subclass__(**kwargs)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = SolverResult.__repr__

    def __repr__(self) -> str:
        """Short summary: scalars by value, arrays by shape and dtype, traces by length."""
        base = ("converged", "n_iter", "errors")
        fields = [f for f in dataclasses.fields(self) if f.repr]
        fields = [f for f in fields if f.name not in base] + [f for f in fields if f.name in base]
        parts = [f"{f.name}={_short(getattr(self, f.name))}" for f in fields]
        return f"{type(self).__name__}({', '.join(parts)})"

    def replace(self, **changes: Any):
        """A copy with some fields changed (:func:`dataclasses.replace`).

        Parameters
        ----------
        **changes
            Field values.

        Returns
        -------
        SolverResult
            Of the same type.
        """
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The fields as a dict ``{name: value}`` (values not copied).

        Returns
        -------
        dict
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _short(v: Any) -> str:
    """A one-line description of a result field (never the contents of a large array)."""
    shape = getattr(v, "shape", None)
    if shape is not None and hasattr(v, "dtype"):
        if len(shape) == 0:
            try:
                return _short(float(v))
            except (TypeError, ValueError):  # pragma: no cover - exotic 0-d objects
                return type(v).__name__
        kind = "tensor" if type(v).__module__.startswith("torch") else "array"
        dt = str(v.dtype).replace("torch.", "")
        return f"<{kind} {tuple(shape)} {dt}>"
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        x = float(v)
        return f"{x:.6g}" if math.isfinite(x) else repr(x)
    if isinstance(v, str):
        return repr(v) if len(v) <= 60 else repr(v[:57] + "...")
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]" if isinstance(v, list) else "()"
        if all(isinstance(e, numbers.Real) and not isinstance(e, bool) for e in v):
            return f"[{len(v)} values, last {float(v[-1]):.3g}]"
        return f"<{type(v).__name__} of {len(v)}>"
    if isinstance(v, dict):
        return f"<dict of {len(v)}>"
    if isinstance(v, SolverResult) or dataclasses.is_dataclass(v):
        text = repr(v)
        return text if len(text) <= 200 else f"<{type(v).__name__}>"
    text = repr(v)
    return text if len(text) <= 80 else f"<{type(v).__name__}>"


def report_convergence(converged: bool, solver: str, n_iter: int, error: float, tol: float,
                       stacklevel: int = 3) -> None:
    """Warn (``ConvergenceWarning``) when a solver stopped before reaching ``tol``.

    One message format for every solver: "``<solver>``: not converged after ``<n_iter>`` iterations
    (error ``<error>`` > tol ``<tol>``); the result has converged=False". Nothing happens when
    ``converged`` is True.

    Parameters
    ----------
    converged : bool
        Whether the stopping rule held.
    solver : str
        Name of the solver (and its settings) in the message.
    n_iter : int
        Iterations performed.
    error : float
        Last stopping error.
    tol : float
        Tolerance of the stopping rule.
    stacklevel : int, default 3
        Passed to :func:`warnings.warn` (3: the caller of the public function).

    Examples
    --------
    >>> import warnings
    >>> from measureflow.core import ConvergenceWarning, report_convergence
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     report_convergence(False, "my solver", 10, 0.5, 1e-8)
    ...     report_convergence(True, "my solver", 3, 1e-9, 1e-8)
    >>> len(w), w[0].category is ConvergenceWarning
    (1, True)
    >>> str(w[0].message)
    'my solver: not converged after 10 iterations (error 5.000e-01 > tol 1.0e-08); the result has converged=False'
    """
    if not converged:
        warnings.warn(
            f"{solver}: not converged after {n_iter} iterations (error {error:.3e} > tol {tol:.1e}); "
            "the result has converged=False",
            ConvergenceWarning, stacklevel=stacklevel)
