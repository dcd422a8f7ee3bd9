"""Small experiments for the runner, executor and fault tests.

Module-level functions, so Dask workers and subprocesses can import them (the tests put this
folder on ``sys.path``; spawned workers inherit it). Nothing is registered on import: the
registry of the test process stays the real one. Subprocesses call :func:`register`.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from measureflow.experiments.registry import Claim, Experiment, Outcome, experiment


def noisy_square(item):
    """One task: the mean of x_i^2 over n standard normals (torch) and one NumPy draw."""
    n, pause = item
    if pause:
        time.sleep(pause)
    x = torch.randn(n, dtype=torch.float64)
    return float(x @ x / n), float(np.random.standard_normal())


def sweep(cfg):
    """A sweep of ``cfg.tasks`` tasks through ``cfg.map`` plus the body's own random draws."""
    before = float(torch.rand((), dtype=torch.float64))
    res = cfg.map(noisy_square, [(cfg.n, cfg.pause)] * cfg.tasks)
    res2 = cfg.map(noisy_square, [(cfg.n // 2 + 1, 0.0)] * 2)  # a second map continues the index
    after = float(torch.rand((), dtype=torch.float64))
    values = [r[0] for r in res]
    return Outcome(metrics={"values": values, "np": [r[1] for r in res + res2],
                            "second": [r[0] for r in res2], "before": before, "after": after},
                   claims=[Claim.close("E[x^2] = 1", 1.0, float(np.mean(values)), atol=cfg.atol)])


def _kernel_rule_independent(item):
    from measureflow.ot import kernels

    return kernels._state["independent"] > 0


def costed(cfg):
    """A sweep whose tasks sleep ``cfg.pauses`` seconds, with the pauses as cost hints; also
    records whether the body and a task ran under ``kernels.process_independent``."""
    from measureflow.ot import kernels

    items = [(cfg.n, p) for p in cfg.pauses]
    res = cfg.map(noisy_square, items, cost=lambda it: it[1])
    flags = cfg.map(_kernel_rule_independent, [0, 1])
    return Outcome(metrics={"values": [r[0] for r in res], "np": [r[1] for r in res],
                            "independent": {"body": kernels._state["independent"] > 0,
                                            "tasks": flags}},
                   claims=[Claim.holds("every task ran", len(res) == len(items))])


def with_figure(cfg):
    from measureflow.experiments.plotting import new_figure

    fig, ax = new_figure()
    ax.plot(np.arange(cfg.n), np.random.standard_normal(cfg.n))
    return Outcome(metrics={"n": cfg.n, "junk": "x" * cfg.get("junk", 0)}, figures={"plot": fig},
                   claims=[Claim.holds("a figure was drawn", True)])


def slow(cfg):
    """Sleeps ``cfg.pause`` seconds; appends "name pid" to $MF_FAKE_LOG when set."""
    log = os.environ.get("MF_FAKE_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{cfg.name} {os.getpid()}\n")
    time.sleep(cfg.pause)
    return Outcome(metrics={"slept": cfg.pause}, claims=[Claim.holds("slept", True)])


def make(exp_name: str, func, **quick) -> Experiment:
    quick.setdefault("seed", 0)
    return Experiment(exp_name, "arXiv:0000.00000", "Sec. 0", exp_name, func, dict(quick),
                      dict(quick))


FAKES = {
    "zzfake.sweep-a": (sweep, dict(n=64, tasks=6, pause=0.0, atol=0.5)),
    "zzfake.sweep-b": (sweep, dict(n=32, tasks=5, pause=0.0, atol=0.5, seed=3)),
    "zzfake.figure": (with_figure, dict(n=20)),
    "zzfake.costed": (costed, dict(n=16, pauses=[0.0, 0.02, 0.0, 0.4, 0.0, 0.1, 0.0])),
    "zzfake.many": (sweep, dict(n=16, tasks=60, pause=0.0, atol=0.5, seed=5)),
}

#: Experiments that take a while (interrupt and lock tests).
SLOW = {f"zzfake.slow-{i}": (slow, dict(pause=1.0, name=f"zzfake.slow-{i}")) for i in range(1, 4)}


def register(table: dict | None = None) -> None:
    """Register the experiments of ``table`` (default: FAKES and SLOW) in this process."""
    for name, (func, cfg) in (table if table is not None else {**FAKES, **SLOW}).items():
        experiment(name, paper="arXiv:0000.00000", section="Sec. 0", title=name,
                   quick=cfg, full=cfg)(func)
