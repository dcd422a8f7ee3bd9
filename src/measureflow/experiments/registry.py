"""Experiment registry: named reproductions of the papers' figures and claims.

An experiment is a function ``fn(cfg) -> Outcome`` registered with::

    @experiment("ot.gaussian-w2", paper="arXiv:2505.06589", section="Sec. 2.4 (Bures)",
                title="...", quick=dict(seed=0, ...), full=dict(seed=0, ...))
    def gaussian_w2(cfg): ...

``cfg`` is a :class:`Config` (a dict with attribute access) holding the chosen configuration
(``quick`` or ``full``) plus ``cfg.mode``. The runner seeds Python/NumPy/torch with
``cfg.seed`` (default 0) before the call, so an experiment is deterministic for a given seed.

It returns an :class:`Outcome`: ``metrics`` (JSON-serialisable numbers/lists, tensors and
arrays are converted), ``figures`` (name -> matplotlib Figure, saved as PNG) and ``claims``
(list of :class:`Claim`). A claim states what the paper says, the value expected, the value
measured, the tolerance and whether it passed. Claims are never tuned to pass: when the
paper's statement does not hold at the sizes run, the claim fails and says so in ``note``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable
from typing import Any

from ..core.errors import InputError

__all__ = ["Claim", "Outcome", "Config", "Experiment", "experiment", "registry", "get",
           "select", "task_seed", "run_task", "serial_map", "check_name", "NAME_PATTERN"]

#: Experiment names: ``pillar.short-name``, lower case ASCII letters, digits and ``-`` (the name
#: is also a folder name under ``--out``, so no path characters, no ``..``, no spaces).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*\.[a-z0-9][a-z0-9-]*")


def check_name(name: Any) -> str:
    """Return ``name`` if it is a valid experiment name, else raise ``ValueError`` naming it.

    Experiment names become folder names under the output folder: a name such as
    ``"ot/../../x"`` or ``"ot.a/b"`` would make the runner write outside it, so they are
    rejected at registration (and again by the runner, for experiments built by hand).
    """
    if not isinstance(name, str) or len(name) > 100 or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"experiment name must look like 'pillar.short-name' (lower case "
                         f"letters, digits and '-', at most 100 characters), got {name!r}")
    return name


def _num(x: Any) -> Any:
    """Tensor/NumPy scalar -> Python number (for claims)."""
    try:
        import torch
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            return x.item() if x.numel() == 1 else x.tolist()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


@dataclasses.dataclass(frozen=True)
class Claim:
    """One checked statement of a paper.

    ``comparison`` is one of ``"abs"`` (|measured - expected| <= tolerance), ``"rel"``
    (|measured - expected| <= tolerance * |expected|), ``"<="`` (measured <= expected),
    ``">="`` (measured >= expected), ``"in"`` (expected = [low, high]), ``"bool"`` (measured is
    True). ``passed`` is always computed from the other fields by the constructors below.
    """

    statement: str
    expected: Any
    measured: Any
    tolerance: Any
    passed: bool
    comparison: str = "abs"
    note: str = ""

    @staticmethod
    def close(statement: str, expected: float, measured: float, *, atol: float | None = None,
              rtol: float | None = None, note: str = "") -> Claim:
        """|measured - expected| <= atol (absolute) or <= rtol |expected| (relative)."""
        e, m = float(_num(expected)), float(_num(measured))
        if (atol is None) == (rtol is None):
            raise ValueError("Claim.close: give exactly one of atol, rtol")
        tol = atol if atol is not None else rtol
        bound = atol if atol is not None else rtol * abs(e)
        ok = math.isfinite(m) and abs(m - e) <= bound
        return Claim(statement, e, m, tol, bool(ok), "abs" if atol is not None else "rel", note)

    @staticmethod
    def at_most(statement: str, bound: float, measured: float, *, note: str = "") -> Claim:
        b, m = float(_num(bound)), float(_num(measured))
        return Claim(statement, b, m, 0.0, bool(math.isfinite(m) and m <= b), "<=", note)

    @staticmethod
    def at_least(statement: str, bound: float, measured: float, *, note: str = "") -> Claim:
        b, m = float(_num(bound)), float(_num(measured))
        return Claim(statement, b, m, 0.0, bool(math.isfinite(m) and m >= b), ">=", note)

    @staticmethod
    def within(statement: str, low: float, high: float, measured: float, *,
               note: str = "") -> Claim:
        lo, hi, m = float(_num(low)), float(_num(high)), float(_num(measured))
        return Claim(statement, [lo, hi], m, (hi - lo) / 2, bool(lo <= m <= hi), "in", note)

    @staticmethod
    def holds(statement: str, measured: bool, *, expected: Any = True, detail: Any = None,
              note: str = "") -> Claim:
        """A boolean fact (e.g. 'the certificate holds'); ``detail`` is recorded as measured."""
        ok = bool(measured)
        return Claim(statement, expected, detail if detail is not None else ok, 0.0, ok,
                     "bool", note)

    def as_dict(self) -> dict:
        return {"statement": self.statement, "expected": _num(self.expected),
                "measured": _num(self.measured), "tolerance": _num(self.tolerance),
                "passed": bool(self.passed), "comparison": self.comparison, "note": self.note}


@dataclasses.dataclass
class Outcome:
    """What an experiment returns."""

    metrics: dict = dataclasses.field(default_factory=dict)
    figures: dict = dataclasses.field(default_factory=dict)
    claims: list = dataclasses.field(default_factory=list)


def task_seed(name: str, config_hash: str, index: int) -> int:
    """The seed of task ``index`` of experiment ``name`` run with configuration ``config_hash``.

    Derived by hashing, so it depends only on (experiment, configuration, position in the sweep),
    never on where or in which order the task runs (a worker process, a cluster node, serially).
    """
    blob = f"{name}\x00{config_hash}\x00{int(index)}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") % (2**63 - 1)


def run_task(fn: Callable[[Any], Any], item: Any, seed: int) -> Any:
    """Run ``fn(item)`` with Python/NumPy/torch global generators seeded by ``seed``.

    The caller's generator states are restored afterwards, so running a task in-process leaves
    the experiment's own random stream exactly where running it elsewhere would.
    """
    import random as _random

    import numpy as np
    import torch

    from ..core.random import seed_everything

    py_state, np_state, torch_state = _random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        seed_everything(seed)
        return fn(item)
    finally:
        _random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


def serial_map(fn: Callable[[Any], Any], items: list, seeds: list[int]) -> list:
    """The in-process executor of :meth:`Config.map`: tasks one after the other, in order."""
    return [run_task(fn, item, s) for item, s in zip(items, seeds, strict=True)]


class Config(dict):
    """A configuration dict whose keys are also attributes (``cfg.n`` == ``cfg["n"]``).

    ``cfg.map(fn, items)`` runs the independent inner runs of an experiment (one per size x seed x
    setting) through the runner's executor (serial, local worker processes or a cluster) and
    returns their results in the order of ``items``. Rules for ``fn``: a module-level function
    (picklable) of one item, which returns picklable results (numbers, arrays, dicts of them; no
    figures) and reads or writes no global state other than the random generators; each call runs
    with the global generators seeded by :func:`task_seed` (experiment, config hash, task index),
    so results do not depend on where the task ran.
    """

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def bind(self, name: str, config_hash: str, executor: Callable | None = None) -> Config:
        """Attach the experiment identity (for task seeds) and the executor used by :meth:`map`.

        ``executor(fn, items, seeds)`` returns the results in item order; with cost hints it is
        called as ``executor(fn, items, seeds, order=order)`` (``order``: the task indices,
        most expensive first).
        """
        object.__setattr__(self, "_task_key", (name, config_hash))
        object.__setattr__(self, "_executor", executor)
        object.__setattr__(self, "_n_tasks", 0)
        return self

    def map(self, fn: Callable[[Any], Any], items, *, cost=None) -> list:
        """``[fn(item) for item in items]``, each call seeded as a task, run by the executor.

        ``cost`` (optional) is the expected relative cost of each task: a sequence of one
        non-negative number per item, or a callable ``cost(item) -> float`` (e.g.
        ``lambda it: it[0] ** 2`` for an O(n^2) solver). Executors with several workers then
        start the most expensive tasks first (longest processing time first), so that the run
        does not end on one long task while the other workers idle. Only the order in which
        tasks *start* changes: seeds depend on the position in ``items``, results come back in
        that order, and the in-process executor runs tasks in order whatever ``cost`` says.
        """
        items = list(items)
        order = _start_order(items, cost)
        name, h = self.__dict__.get("_task_key", ("", ""))
        start = self.__dict__.get("_n_tasks", 0)
        seeds = [task_seed(name, h, start + i) for i in range(len(items))]
        object.__setattr__(self, "_n_tasks", start + len(items))
        executor = self.__dict__.get("_executor")
        if executor is None:
            return serial_map(fn, items, seeds)
        if order is None:  # executors without cost support keep working
            return list(executor(fn, items, seeds))
        return list(executor(fn, items, seeds, order=order))


def _start_order(items: list, cost) -> list[int] | None:
    """Task indices by decreasing ``cost`` (ties in item order), or None without costs."""
    if cost is None:
        return None
    try:
        costs = [float(cost(it)) for it in items] if callable(cost) else [float(c) for c in cost]
    except (TypeError, ValueError) as exc:
        raise InputError(f"cost: expected a callable item -> float or one number per item "
                         f"({type(exc).__name__}: {exc})") from None
    if len(costs) != len(items):
        raise InputError(f"cost: {len(costs)} values for {len(items)} items")
    if not all(math.isfinite(c) and c >= 0 for c in costs):
        raise InputError("cost: expected finite non-negative numbers")
    return sorted(range(len(items)), key=lambda i: -costs[i])


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    paper: str
    section: str
    title: str
    func: Callable[[Config], Outcome]
    quick: dict
    full: dict

    @property
    def pillar(self) -> str:
        return self.name.split(".", 1)[0]

    def config(self, mode: str) -> Config:
        if mode not in ("quick", "full"):
            raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}")
        cfg = Config(self.quick if mode == "quick" else self.full)
        cfg.setdefault("seed", 0)
        cfg["mode"] = mode
        return cfg


_REGISTRY: dict[str, Experiment] = {}


def experiment(name: str, *, paper: str, section: str, title: str = "", quick: dict,
               full: dict | None = None) -> Callable:
    """Register ``fn`` as the experiment ``name`` ("pillar.short-name", see :func:`check_name`)."""
    check_name(name)

    def deco(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].func.__qualname__ != fn.__qualname__:
            raise ValueError(f"experiment {name!r} registered twice")
        _REGISTRY[name] = Experiment(name, paper, section, title or (fn.__doc__ or "").strip()
                                     .split("\n")[0], fn, dict(quick),
                                     dict(full if full is not None else quick))
        return fn

    return deco


def registry() -> dict[str, Experiment]:
    """All registered experiments (imports every experiment module on first use)."""
    from . import load_all
    load_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
    reg = registry()
    if name not in reg:
        raise KeyError(name)
    return reg[name]


def select(patterns: list[str] | None) -> list[Experiment]:
    """Experiments matching exact names or pillar prefixes (``ot`` / ``ot.*``).

    Raises ``KeyError`` with the first pattern that matches nothing.
    """
    reg = registry()
    if not patterns:
        return list(reg.values())
    out: list[Experiment] = []
    for pat in patterns:
        prefix = pat[:-2] if pat.endswith(".*") else pat
        hits = [e for n, e in reg.items() if n == pat or e.pillar == prefix]
        if not hits:
            raise KeyError(pat)
        out.extend(e for e in hits if e not in out)
    return out
