"""Run experiments into an output folder, atomically and resumably.

Layout written for each experiment ``NAME`` (design.md)::

    OUT/NAME/config.json    the configuration run (and its hash)
    OUT/NAME/metrics.json   metrics returned by the experiment
    OUT/NAME/claims.json    JSON list of {statement, expected, measured, tolerance, passed, ...}
    OUT/NAME/*.png          figures
    OUT/NAME/status.json    written LAST: status, timing, seed, hash, figure list, error

Every file is written to a temporary name in the same folder and renamed (atomic on POSIX), so
an interrupted run never leaves a half-written file under its final name. ``status.json`` marks
completion: an experiment whose ``status.json`` says ``complete`` with the same config hash is
skipped on the next run unless ``force=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..core.errors import ExperimentSkipped
from ..core.io import atomic_write_bytes, atomic_write_text, to_jsonable
from ..core.random import seed_everything
from .registry import Claim, Experiment, Outcome

__all__ = ["RunRecord", "run_experiments", "config_hash", "atomic_write_text", "atomic_write_bytes",
           "to_jsonable"]


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def config_hash(exp: Experiment, mode: str) -> str:
    cfg = exp.config(mode)
    blob = json.dumps({"name": exp.name, "config": to_jsonable(dict(cfg))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass
class RunRecord:
    """Summary of one experiment in a run: ``status`` is one of ``passed``, ``failed`` (a claim
    failed), ``error`` (the experiment raised), ``skipped`` (optional dependency missing)."""

    name: str
    status: str
    claims: list
    seconds: float
    cached: bool = False
    error: str = ""

    @property
    def n_claims(self) -> int:
        return len(self.claims)

    @property
    def n_passed(self) -> int:
        return sum(bool(c.get("passed")) for c in self.claims)


def _load_cached(folder: Path, h: str) -> RunRecord | None:
    try:
        st = json.loads((folder / "status.json").read_text())
        if st.get("complete") and st.get("config_hash") == h:
            claims = json.loads((folder / "claims.json").read_text())
            return RunRecord(st["name"], st["status"], claims, st.get("seconds", 0.0), cached=True,
                             error=st.get("error", ""))
    except (OSError, ValueError, KeyError):
        return None
    return None


def _save_figure(fig: Any, path: Path) -> None:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    try:
        import matplotlib.pyplot as plt
        plt.close(fig)
    except Exception:  # pragma: no cover
        pass


def run_one(exp: Experiment, mode: str, out: Path, *, force: bool = False) -> RunRecord:
    folder = Path(out) / exp.name
    folder.mkdir(parents=True, exist_ok=True)
    h = config_hash(exp, mode)
    if not force:
        cached = _load_cached(folder, h)
        if cached is not None:
            return cached
    # A previous completion marker for another config must not survive a failed rerun.
    try:
        (folder / "status.json").unlink()
    except FileNotFoundError:
        pass
    cfg = exp.config(mode).bind(exp.name, h)
    _write_json(folder / "config.json", {"name": exp.name, "mode": mode, "config_hash": h,
                                         "config": dict(cfg)})
    seed_everything(int(cfg.get("seed", 0)))
    t0 = time.perf_counter()
    error = ""
    figures: list[str] = []
    claims: list[dict] = []
    try:
        outcome = exp.func(cfg)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"experiment {exp.name} returned {type(outcome).__name__}, "
                            "expected Outcome")
        for c in outcome.claims:
            if not isinstance(c, Claim):
                raise TypeError(f"experiment {exp.name}: claims must be Claim objects")
        claims = [c.as_dict() for c in outcome.claims]
        for fname, fig in outcome.figures.items():
            fn = f"{fname}.png"
            _save_figure(fig, folder / fn)
            figures.append(fn)
        _write_json(folder / "metrics.json", outcome.metrics)
        status = "passed" if all(c["passed"] for c in claims) else "failed"
    except ExperimentSkipped as exc:
        status, error = "skipped", str(exc)
        _write_json(folder / "metrics.json", {})
    except Exception:  # noqa: BLE001 - reported, the other experiments still run
        status, error = "error", traceback.format_exc()
        _write_json(folder / "metrics.json", {})
    seconds = time.perf_counter() - t0
    _write_json(folder / "claims.json", claims)
    _write_json(folder / "status.json", {
        "name": exp.name, "title": exp.title, "paper": exp.paper, "section": exp.section,
        "mode": mode, "seed": cfg.get("seed", 0), "config_hash": h, "status": status,
        "seconds": seconds, "figures": figures, "error": error,
        # errors are not cached as complete: they are retried on the next run
        "complete": status != "error", "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return RunRecord(exp.name, status, claims, seconds, error=error)


def run_experiments(experiments: Iterable[Experiment], mode: str, out: Path, *,
                    force: bool = False,
                    on_start: Callable[[Experiment], None] | None = None,
                    on_done: Callable[[Experiment, RunRecord], None] | None = None) -> list[RunRecord]:
    """Run (or resume) ``experiments`` into ``out`` and rebuild ``out/index.html`` after each."""
    from ..report import build_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for exp in experiments:
        if on_start:
            on_start(exp)
        rec = run_one(exp, mode, out, force=force)
        records.append(rec)
        build_report(out)
        if on_done:
            on_done(exp, rec)
    return records
