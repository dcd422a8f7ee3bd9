"""Shared foundation: arrays, validation, errors, result objects, measures, seeding."""

from . import linalg, stats  # noqa: F401
from .arrays import (
    COMPUTE_DTYPES,
    DEFAULT_DTYPE,
    ArrayContext,
    as_tensor,
    check_tensor_kind,
    is_tensor,
    to_numpy,
)
from .errors import ConvergenceWarning, ExperimentSkipped, InputError
from .measures import DiscreteMeasure, discrete_measure
from .random import make_generator, numpy_rng, seed_everything
from .results import SolverResult, report_convergence
from .stats import loglog_fit
from .validation import (
                         check_choice,
                         check_finite,
                         check_in_range,
                         check_int,
                         check_masses_match,
                         check_ndim,
                         check_nonnegative,
                         check_nonnegative_scalar,
                         check_points,
                         check_positive,
                         check_probability,
                         check_psd,
                         check_same_dim,
                         check_shape,
                         check_symmetric,
                         check_weights,
)

__all__ = [
    "DEFAULT_DTYPE", "COMPUTE_DTYPES", "ArrayContext", "as_tensor", "check_tensor_kind", "is_tensor",
    "to_numpy",
    "ConvergenceWarning", "ExperimentSkipped", "InputError",
    "DiscreteMeasure", "discrete_measure", "make_generator", "numpy_rng", "seed_everything",
    "SolverResult", "report_convergence",
    "check_choice", "check_finite", "check_in_range", "check_int", "check_masses_match",
    "check_ndim", "check_nonnegative", "check_points", "check_nonnegative_scalar", "check_positive",
    "check_probability", "check_psd", "check_same_dim", "check_shape", "check_symmetric",
    "check_weights", "linalg", "stats", "loglog_fit",
]
