"""Registered reproductions of the papers (one module per paper).

Every module in this package is imported by :func:`load_all`; importing a module registers its
experiments through the :func:`~measureflow.experiments.registry.experiment` decorator.
Optional dependencies must be imported *inside* the experiment function and signalled with
:class:`measureflow.ExperimentSkipped`.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import Claim, Config, Experiment, Outcome, experiment, get, registry, select

__all__ = ["Claim", "Config", "Experiment", "Outcome", "experiment", "get", "registry", "select",
           "load_all"]

_INTERNAL = {"registry", "runner", "plotting"}
_loaded = False


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name not in _INTERNAL and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
