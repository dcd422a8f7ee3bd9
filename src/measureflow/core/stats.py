"""Small statistics helpers (log-log rate fits)."""

from __future__ import annotations

import numpy as np

from .errors import InputError

__all__ = ["loglog_fit"]


def _positive_vector(v, name: str, n: int | None = None) -> np.ndarray:
    from .arrays import as_tensor  # the core boundary: strings, complex, meta, NaN -> InputError

    a = as_tensor(v, name).detach().cpu().numpy().astype(float)
    if a.ndim != 1 or (n is not None and a.shape != (n,)):
        want = "a 1-D array" if n is None else f"shape ({n},)"
        raise InputError(f"{name}: expected {want}, got shape {a.shape}")
    if np.any(a <= 0):
        raise InputError(f"{name}: must be > 0 for a log-log fit (min {a.min():.3g})")
    return a


def loglog_fit(x, y, weights=None, *, known_variance: bool = False) -> dict:
    """Weighted least-squares fit log y = slope log x + intercept, with standard errors.

    Minimises sum_i w_i (log y_i - slope log x_i - intercept)^2 (natural logarithms): the rate
    fit of the reproductions (errors ~ C x^slope).

    Parameters
    ----------
    x, y : array_like
        Positive finite 1-D arrays of the same length; at least two distinct x values.
    weights : array_like, optional
        Positive inverse variances of log y (``None``: equal weights).
    known_variance : bool, default False
        Standard errors from the given variances 1/weights themselves (the right choice when
        the weights are measured standard errors and there are few points) instead of the
        residual variance.

    Returns
    -------
    dict
        ``{"slope", "intercept", "slope_se", "intercept_se"}`` (floats). The residual-variance
        standard errors are 0 for an exact fit and undefined (NaN) with fewer than 3 points.

    Raises
    ------
    InputError
        Non-positive, non-finite or misshaped ``x``, ``y`` or ``weights``, or fewer than two
        distinct x values.

    Examples
    --------
    An exact power law y = 3 x^-1/2:

    >>> import numpy as np
    >>> from measureflow.core import loglog_fit
    >>> x = np.array([1.0, 4.0, 16.0, 64.0])
    >>> fit = loglog_fit(x, 3.0 * x ** -0.5)
    >>> print(round(fit["slope"], 10), round(np.exp(fit["intercept"]), 10), fit["slope_se"] < 1e-12)
    -0.5 3.0 True
    """
    x = _positive_vector(x, "x")
    lx, ly = np.log(x), np.log(_positive_vector(y, "y", x.shape[0]))
    if x.shape[0] < 2 or np.ptp(lx) <= 1e-12 * max(1.0, float(np.abs(lx).max())):
        raise InputError("x: a slope needs at least two distinct x values")
    w = np.ones_like(lx) if weights is None else _positive_vector(weights, "weights",
                                                                   x.shape[0])
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
