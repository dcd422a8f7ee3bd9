"""Rates fitted from replicated measurements, with their sampling error (for claim tolerances).

A rate claim ("the error decays like n^-a") compares a fitted log-log slope with its
theoretical value. The tolerance must come from the sampling error of the fitted slope, not
from a guess: :func:`bootstrap_slope` resamples the replicates measured at each size and refits.
"""

from __future__ import annotations

import numpy as np

from ..core.stats import loglog_fit

__all__ = ["bootstrap_slope", "Z_CLAIM"]

#: Claims accept |slope - theory| <= Z_CLAIM x standard error (two-sided 99.7 % under normality).
Z_CLAIM = 3.0


def bootstrap_slope(sizes, samples, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Slope of log(mean of ``samples[k]``) against log(``sizes[k]``) and its standard error.

    ``samples[k]`` holds the i.i.d. replicates measured at size ``sizes[k]``, independent across
    sizes. The standard error is the standard deviation of the slope over ``n_boot`` bootstrap
    resamples (replicates drawn with replacement at each size independently), inflated by
    sqrt(R / (R - 1)) for the downward bias of the bootstrap variance with R replicates.

    Returns ``{"slope", "se", "intercept", "means", "replicates"}``.
    """
    sizes = np.asarray(sizes, dtype=float)
    samples = [np.asarray(s, dtype=float).ravel() for s in samples]
    if len(samples) != len(sizes) or len(sizes) < 2:
        raise ValueError("samples: need one array of replicates per size, at least 2 sizes")
    if min(len(s) for s in samples) < 2:
        raise ValueError("samples: need at least 2 replicates per size")
    means = np.array([s.mean() for s in samples])
    if np.any(means <= 0):
        raise ValueError("samples: the means must be positive (log-log fit)")
    fit = loglog_fit(sizes, means)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(sizes)))
    for k, s in enumerate(samples):
        boot[:, k] = s[rng.integers(0, len(s), size=(n_boot, len(s)))].mean(1)
    lx = np.log(sizes) - np.log(sizes).mean()
    ly = np.log(np.maximum(boot, np.finfo(float).tiny))
    slopes = ((ly - ly.mean(1, keepdims=True)) @ lx) / (lx @ lx)
    r = min(len(s) for s in samples)
    se = float(slopes.std(ddof=1) * np.sqrt(r / (r - 1)))
    return {"slope": fit["slope"], "se": se, "intercept": fit["intercept"],
            "means": means.tolist(), "replicates": [len(s) for s in samples]}
