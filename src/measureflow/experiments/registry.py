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
import math
from collections.abc import Callable
from typing import Any

__all__ = ["Claim", "Outcome", "Config", "Experiment", "experiment", "registry", "get",
           "select"]


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


class Config(dict):
    """A configuration dict whose keys are also attributes (``cfg.n`` == ``cfg["n"]``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


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
    """Register ``fn`` as the experiment ``name`` ("pillar.short-name")."""
    if "." not in name or name != name.strip() or " " in name:
        raise ValueError(f"experiment name must look like 'pillar.short-name', got {name!r}")

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
