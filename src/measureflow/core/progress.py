"""Progress reporting and early stopping for iterative solvers (``callback=``, ``verbose=``).

Every long-running solver of measureflow takes

* ``callback``: a function ``callback(state) -> bool | None`` called once per iteration with a
  read-only state object (for the transport engine a
  :class:`measureflow.ot.loop.SinkhornState`: ``iteration``, ``error``, ``eps``, ``potentials``,
  ``label``). Returning ``True`` stops the solver after that iteration; the result then reports
  the error of the returned iterate and ``converged`` says whether it met ``tol``.
* ``verbose``: ``True`` shows a `rich <https://rich.readthedocs.io>`_ progress bar on stderr with
  the iteration, the current stopping error (the bar advances on a log scale from the first
  error to ``tol``, or by the fraction of a fixed horizon done) and eps.

Solvers outside the Sinkhorn engine pass an :class:`IterState` (``iteration``, ``error``,
``iterate``, ``label``). :class:`Monitor` implements both once; solvers create one per call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

__all__ = ["IterState", "Monitor", "check_callback"]


@dataclasses.dataclass(frozen=True)
class IterState:
    """What a ``callback`` sees once per iteration (or check) of a solver without potentials.

    Attributes
    ----------
    iteration : int
        Iterations done (1-based; for solvers that check every k iterations, the iteration of
        the check).
    error : float
        The solver's stopping error at ``iterate``: the entry appended to the result's
        ``errors`` at this iteration.
    iterate : object
        The solver's current iterate, the one returned if the callback stops now (each solver
        documents what it is; do not modify it).
    label : str
        Names the method or sub-problem (``"newton"``, ``"sgd"``, ...).

    Examples
    --------
    >>> from measureflow.core.progress import IterState
    >>> s = IterState(3, 1e-4, None, "demo")
    >>> s.iteration, s.error, s.label
    (3, 0.0001, 'demo')
    """

    iteration: int
    error: float
    iterate: Any = None
    label: str = ""


def check_callback(callback) -> Callable | None:
    """Validate a ``callback=`` argument (None or callable).

    Parameters
    ----------
    callback : callable or None
        ``callback(state) -> bool | None``.

    Returns
    -------
    callable or None
        ``callback`` itself.

    Raises
    ------
    InputError
        Anything else.

    Examples
    --------
    >>> from measureflow.core.progress import check_callback
    >>> check_callback(None) is None, check_callback(print) is print
    (True, True)
    """
    if callback is not None and not callable(callback):
        from .errors import InputError

        raise InputError(f"callback: expected a callable callback(state) -> bool | None, got "
                         f"{type(callback).__name__}")
    return callback


class Monitor:
    """Drives ``callback`` and the ``verbose`` progress bar of one solver call.

    Use as a context manager; call ``monitor(state)`` once per iteration (it returns True when
    the callback asked to stop, and sets ``stopped``). ``state`` needs ``iteration`` and
    ``error`` attributes (and optionally ``eps`` and ``label``). The bar advances on a log scale
    from the first error to ``tol``.

    Parameters
    ----------
    callback : callable or None
        ``callback(state) -> bool | None``; returning True stops.
    verbose : bool
        Show a rich progress bar on stderr.
    tol : float
        The solver's tolerance (end of the bar).
    description : str
        Text of the bar.
    fraction : callable, optional
        ``fraction(state) -> float`` in [0, 1]: the bar's position for solvers with a fixed
        horizon (time integrators); default the log-scale position of ``state.error`` between
        the first error and ``tol``.

    Attributes
    ----------
    stopped : bool
        Whether the callback asked to stop.
    active : bool
        Whether there is anything to drive (a callback or ``verbose``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from measureflow.core.progress import Monitor
    >>> seen = []
    >>> with Monitor(lambda s: seen.append(s.error) or s.iteration >= 2, False, 1e-8, "demo") as mon:
    ...     for k in range(1, 10):
    ...         if mon(SimpleNamespace(iteration=k, error=10.0 ** -k)):
    ...             break
    >>> k, mon.stopped, seen
    (2, True, [0.1, 0.01])
    """

    _STEPS = 1000

    def __init__(self, callback: Callable | None, verbose: bool, tol: float, description: str,
                 fraction: Callable | None = None):
        self.callback = callback
        self.fraction = fraction
        self.verbose = bool(verbose)
        self.tol = tol
        self.description = description
        self.stopped = False
        self._progress = None
        self._task = None
        self._e0 = None

    @property
    def active(self) -> bool:
        """Whether there is anything to drive (a callback or ``verbose``)."""
        return self.callback is not None or self.verbose

    def __enter__(self):
        if self.verbose:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("it {task.fields[it]:>6}  err {task.fields[err]:>9}  "
                           "eps {task.fields[eps]:>9}"),
                TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self._STEPS, it=0,
                                                 err="-", eps="-")
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None
        return False

    def _fraction(self, err: float) -> float:
        if not (math.isfinite(err) and err > 0):
            return 1.0 if err == 0 else 0.0
        if self._e0 is None:
            self._e0 = max(err, self.tol * 10)
        lo = math.log(self._e0 / self.tol)
        if lo <= 0:
            return 1.0
        return min(max(math.log(self._e0 / err) / lo, 0.0), 1.0)

    def __call__(self, state: Any) -> bool:
        if self._progress is not None:
            err = float(state.error)
            eps = getattr(state, "eps", None)
            label = getattr(state, "label", None)
            fields = dict(it=state.iteration, err=f"{err:.2e}" if not math.isnan(err) else "-",
                          eps="-" if eps is None else f"{eps:.2e}")
            if label:
                fields["description"] = f"{self.description} [{label}]"
            frac = self._fraction(err) if self.fraction is None else \
                min(max(float(self.fraction(state)), 0.0), 1.0)
            self._progress.update(self._task, completed=int(self._STEPS * frac), **fields)
        if self.callback is not None and self.callback(state) is True:
            self.stopped = True
            return True
        return False
