"""Recorded run times of the experiments, for the duration estimate printed before a run.

``timings.json`` (next to this module, shipped in the package) holds the last measured wall
time of each experiment, in seconds, per mode (``quick``, ``full``), with the conditions of the
measurement. An output folder of an earlier run on *this* machine is a better source: its
``status.json`` files record the time of each finished experiment, and they take precedence.

Refresh the table after a run (``reproduce --full --out OUT`` on an idle machine)::

    python -m measureflow.experiments.timings OUT [--note "idle 2-core EPYC, 1 thread"]
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from .registry import Experiment

__all__ = ["recorded", "estimate_run", "format_duration", "update_table", "TABLE"]

TABLE = Path(__file__).with_name("timings.json")


def _load_table(path: Path = TABLE) -> dict:
    try:
        data = json.loads(path.read_text())
        return data.get("experiments", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _from_out(out: Path | None, name: str, mode: str) -> float | None:
    if out is None:
        return None
    try:
        st = json.loads((Path(out) / name / "status.json").read_text())
    except (OSError, ValueError):
        return None
    if st.get("mode") == mode and st.get("status") not in ("error", "skipped"):
        s = st.get("seconds")
        if isinstance(s, (int, float)) and math.isfinite(s) and s >= 0:
            return float(s)
    return None


def recorded(name: str, mode: str, out: Path | None = None) -> tuple[float | None, str]:
    """Best recorded time of ``name`` in ``mode``: ``(seconds, source)``.

    ``source`` is ``"out"`` (an earlier run into ``out``), ``"table"`` (the package table), or
    ``"quick"`` (only the quick time is known: a lower bound for a full run), ``""`` if none.
    """
    s = _from_out(out, name, mode)
    if s is not None:
        return s, "out"
    row = _load_table().get(name, {})
    s = row.get(mode)
    if isinstance(s, (int, float)):
        return float(s), "table"
    if mode == "full":
        q = _from_out(out, name, "quick")
        q = q if q is not None else row.get("quick")
        if isinstance(q, (int, float)):
            return float(q), "quick"
    return None, ""


def estimate_run(experiments: Iterable[Experiment], mode: str, out: Path | None = None,
                 workers: int = 1, skip: Iterable[str] = ()) -> dict:
    """Estimated wall time of running ``experiments`` (those in ``skip`` are already done).

    Longest-processing-time bound on ``workers`` workers: max(longest experiment, total /
    workers), which ignores the speed-up of experiments whose own tasks spread over the
    workers. Returns ``{"seconds", "known", "lower_bound", "unknown", "n"}``: ``lower_bound``
    counts experiments timed only in quick mode (their full time is larger), ``unknown`` those
    never timed.
    """
    skip = set(skip)
    times, known, lower, unknown, n = [], 0, 0, 0, 0
    for exp in experiments:
        if exp.name in skip:
            continue
        n += 1
        s, src = recorded(exp.name, mode, out)
        if s is None:
            unknown += 1
            continue
        times.append(s)
        if src == "quick":
            lower += 1
        else:
            known += 1
    total = sum(times)
    seconds = max(max(times, default=0.0), total / max(int(workers), 1))
    return {"seconds": seconds, "known": known, "lower_bound": lower, "unknown": unknown, "n": n}


def format_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def update_table(out: Path, note: str = "", path: Path = TABLE) -> dict:
    """Merge the times of the finished experiments in ``out`` into the table at ``path``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    rows = data.setdefault("experiments", {})
    for st_path in sorted(Path(out).glob("*/status.json")):
        try:
            st = json.loads(st_path.read_text())
        except (OSError, ValueError):
            continue
        # an error or a skip (optional dependency missing) says nothing about the run time
        if st.get("status") in ("error", "skipped", None) or st.get("mode") not in ("quick",
                                                                                     "full"):
            continue
        rows.setdefault(st["name"], {})[st["mode"]] = round(float(st["seconds"]), 1)
    data["experiments"] = dict(sorted(rows.items()))
    data["updated"] = time.strftime("%Y-%m-%d")
    if note:
        data["conditions"] = note
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - maintenance tool
    import argparse

    p = argparse.ArgumentParser(prog="python -m measureflow.experiments.timings",
                                description="Record the experiment times of an output folder.")
    p.add_argument("out", type=Path)
    p.add_argument("--note", default="", help="conditions (machine, load, threads)")
    args = p.parse_args(argv)
    data = update_table(args.out, args.note)
    print(f"{len(data['experiments'])} experiments in {TABLE}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
