"""Registered reproductions of the papers (one module per paper).

Every module in this package is imported by :func:`load_all`; importing a module registers its
experiments through the :func:`~measureflow.experiments.registry.experiment` decorator.
Optional dependencies must be imported *inside* the experiment function and signalled with
:class:`measureflow.ExperimentSkipped`.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback

from .registry import Claim, Config, Experiment, Outcome, experiment, get, registry, select

__all__ = ["Claim", "Config", "Experiment", "Outcome", "experiment", "get", "registry", "select",
           "load_all", "import_errors"]

_INTERNAL = {"registry", "runner", "plotting", "executors", "timings"}
_loaded = False
_IMPORT_ERRORS: dict[str, str] = {}


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name not in _INTERNAL and not mod.name.startswith("_"):
            try:
                importlib.import_module(f"{__name__}.{mod.name}")
            except Exception:  # noqa: BLE001 - reported by `import_errors` and the CLI
                _IMPORT_ERRORS[mod.name] = traceback.format_exc()


def import_errors() -> dict[str, str]:
    """Experiment modules that failed to import: module name -> traceback.

    A broken module must not take the others down: ``measureflow list`` and ``reproduce`` still
    work, report the failure and ``reproduce`` exits with status 1.
    """
    load_all()
    return dict(_IMPORT_ERRORS)
