"""Helpers shared by the sampling experiments (langevin.py, diffusion.py): spectra, Monte
Carlo replicates through ``cfg.map``, z-test thresholds and argmin confidence intervals."""

from __future__ import annotations

import math

import numpy as np
import scipy.stats

__all__ = ["power_spectrum", "bonferroni_z", "argmin_interval", "map_replicates", "mean_se"]


def power_spectrum(d, alpha):
    """Power-law spectrum lambda_k propto k^-alpha, k = 1..d, normalised to trace d (the total
    variance of the isotropic N(0, I_d)), so that spectra of different anisotropy carry the same
    energy."""
    lam = np.arange(1, d + 1, dtype=float) ** (-alpha)
    return lam * (d / lam.sum())


def bonferroni_z(m: int, alpha: float = 1e-3) -> float:
    """|z| threshold with family-wise false-alarm probability alpha over m Gaussian tests."""
    return float(scipy.stats.norm.isf(alpha / (2 * m)))


def argmin_interval(grid, m, se, k: float = 3.0):
    """Confidence interval of the minimiser of a Monte Carlo curve on a grid: the grid points
    whose mean is within k combined standard errors of the smallest mean, widened to their
    outer neighbours (0 or inf past an end of the grid)."""
    grid, m, se = np.asarray(grid), np.asarray(m), np.asarray(se)
    i = int(np.argmin(m))
    ok = np.nonzero(m - m[i] <= k * np.sqrt(se**2 + se[i] ** 2))[0]
    lo = 0.0 if ok.min() == 0 else float(grid[ok.min() - 1])
    hi = math.inf if ok.max() == len(grid) - 1 else float(grid[ok.max() + 1])
    return lo, hi


def map_replicates(cfg, fn, items: list[dict], chunk: int = 100, cost=None) -> list[np.ndarray]:
    """Run ``fn`` (item -> array of per-replicate values) over items whose ``reps`` are split
    into independent tasks of at most ``chunk`` through ``cfg.map``; returns, per item, the
    concatenated values. ``cost(item)`` (optional): expected cost of one replicate of an item
    (a task's cost hint is that times its replicates)."""
    tasks, owner = [], []
    for i, it in enumerate(items):
        for start in range(0, it["reps"], chunk):
            tasks.append(dict(it, reps=min(chunk, it["reps"] - start)))
            owner.append(i)
    hint = None if cost is None else (lambda t: cost(t) * t["reps"])
    vals = cfg.map(fn, tasks, cost=hint)
    return [np.concatenate([v for v, o in zip(vals, owner, strict=True) if o == i])
            for i in range(len(items))]


def mean_se(values: list[np.ndarray]):
    """Monte Carlo means and standard errors of each array."""
    return (np.array([float(v.mean()) for v in values]),
            np.array([float(v.std(ddof=1) / math.sqrt(len(v))) for v in values]))
