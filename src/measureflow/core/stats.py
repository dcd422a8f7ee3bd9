"""Small statistics helpers (log-log rate fits)."""

from __future__ import annotations

import numpy as np

__all__ = ["loglog_fit"]


def loglog_fit(x, y, weights=None, *, known_variance: bool = False) -> dict:
    """Weighted least-squares fit log y = slope log x + intercept, with standard errors.

    ``weights`` are inverse variances of log y (None = equal weights). Returns
    ``{"slope", "intercept", "slope_se", "intercept_se"}``; the standard errors use the residual
    variance (they are 0 for an exact fit and undefined, NaN, with fewer than 3 points), or,
    with ``known_variance=True``, the given variances 1/weights themselves (the right choice
    when the weights are measured standard errors and there are few points).
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    w = np.ones_like(lx) if weights is None else np.asarray(weights, float)
    A = np.stack([lx, np.ones_like(lx)], 1)
    W = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(A * W, ly * W[:, 0], rcond=None)
    n = len(lx)
    res = ly - A @ coef
    if known_variance and weights is not None and n >= 2:
        se = np.sqrt(np.diag(np.linalg.inv(A.T @ (w[:, None] * A))))
    elif n > 2:
        s2 = float((w * res**2).sum() / (n - 2))
        cov = s2 * np.linalg.inv(A.T @ (w[:, None] * A))
        se = np.sqrt(np.diag(cov))
    else:
        se = np.array([np.nan, np.nan])
    return {"slope": float(coef[0]), "intercept": float(coef[1]), "slope_se": float(se[0]),
            "intercept_se": float(se[1])}
