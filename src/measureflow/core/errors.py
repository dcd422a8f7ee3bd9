"""Exceptions and warnings shared by every measureflow module."""

from __future__ import annotations

__all__ = ["InputError", "ConvergenceWarning", "ExperimentSkipped"]


class InputError(ValueError):
    """Invalid input at a public boundary.

    The message always names the offending argument and the problem (wrong shape, NaN/Inf,
    negative weights, mismatched masses, non-PSD matrix, non-positive scalar, ...).
    """


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at ``max_iter`` before meeting its tolerance.

    The result it returns has ``converged=False``; the last iterate and the error trace are kept
    so the user can judge it, but nothing is silently presented as converged.
    """


class ExperimentSkipped(Exception):
    """Raised by an experiment whose optional dependency is missing (reported, not a failure)."""
