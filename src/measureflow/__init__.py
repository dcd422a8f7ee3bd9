"""measureflow: optimal transport, Wasserstein-type gradient flows and mean-field analysis.

Pillars (subpackages, imported lazily on first attribute access)::

    measureflow.ot            static and dynamic OT toolbox
    measureflow.bregman       cyclic KL projections, W1 on graphs (flow-Sinkhorn)
    measureflow.spectral      Schatten gauges, spectral Wasserstein, normalized flows
    measureflow.optim         Schatten-p / Muon optimizers
    measureflow.conservation  conservation laws and intrinsic dynamics by autodiff
    measureflow.attention     attention on measures, Transformer PDE, token-sample complexity
    measureflow.inverse       (sharpened) Fenchel-Young losses, inverse UOT / JKO
    measureflow.meanfield     VarPro two-timescale training, ultra-fast diffusion
    measureflow.sampling      score matching + Langevin sampling of Gaussians
    measureflow.da            domain adaptation by OT (scikit-learn style ``Transport``)

Top-level names: :class:`InputError` (a ``ValueError`` whose message starts with the
offending argument's name), :class:`ConvergenceWarning` (an iterative solver stopped before
its tolerance; its result has ``converged=False``), :class:`ExperimentSkipped` and
``__version__``. Conventions shared by every pillar (costs |x - y|^2 without 1/2, distances
vs squares, NumPy in -> NumPy out, potentials, stopping rules): docs/conventions.md.

Examples
--------
>>> import measureflow
>>> measureflow.ot.dist([[0.0, 0.0]], [[3.0, 4.0]]).tolist()     # subpackages load on access
[[25.0]]
>>> issubclass(measureflow.InputError, ValueError), isinstance(measureflow.__version__, str)
(True, True)
"""

from __future__ import annotations

import importlib

from .core.errors import ConvergenceWarning, ExperimentSkipped, InputError

#: The package version: the one place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

_SUBPACKAGES = ("core", "ot", "bregman", "spectral", "optim", "conservation", "attention",
                "inverse", "meanfield", "sampling", "experiments", "datasets", "da")

__all__ = ["InputError", "ConvergenceWarning", "ExperimentSkipped", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        mod = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'measureflow' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBPACKAGES))
