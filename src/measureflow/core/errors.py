"""Exceptions and warnings shared by every measureflow module."""

from __future__ import annotations

__all__ = ["InputError", "ConvergenceWarning", "ExperimentSkipped"]


class InputError(ValueError):
    """Invalid input at a public boundary.

    The message always starts with the offending argument's name, then the problem (wrong
    shape, NaN/Inf, negative weights, mismatched masses, non-PSD matrix, non-positive scalar,
    ...). A subclass of ``ValueError``, so ``except ValueError`` catches it.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import InputError, ot
    >>> try:
    ...     ot.solve(None, None, np.ones((2, 2)), eps=-1.0)
    ... except InputError as exc:
    ...     print(str(exc).split(":")[0], isinstance(exc, ValueError))
    eps True
    """


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` before meeting its tolerance.

    The result it returns has ``converged=False``; the last iterate and the error trace are kept
    so the user can judge it, but nothing is silently presented as converged.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from measureflow import ConvergenceWarning, ot
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     res = ot.solve([0.2, 0.8], [0.5, 0.5], C, eps=0.1, max_iter=1, relax=None,
    ...                    eps_scaling=None)
    >>> bool(res.converged), res.n_iter, any(x.category is ConvergenceWarning for x in w)
    (False, 1, True)
    """


class ExperimentSkipped(Exception):
    """Raised by an experiment whose optional dependency is missing (reported, not a failure).

    Examples
    --------
    >>> from measureflow import ExperimentSkipped
    >>> issubclass(ExperimentSkipped, Exception)
    True
    """
