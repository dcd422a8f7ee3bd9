"""Problem generators shared by the benchmarks, experiments and tests (seeded, documented).

Every generator takes ``seed``: an int, ``None`` (fresh entropy) or a generator to draw from
(``numpy.random.Generator`` for the NumPy generators, ``torch.Generator`` for
:func:`attention_tokens`); passing a generator lets several calls share one stream. The draws
are listed in each docstring in the order they are made, so a problem can be rebuilt exactly
elsewhere. NumPy generators return float64 arrays (``torch.as_tensor`` them for tensors).

Layer: uses only :mod:`measureflow.core` (see ``docs/architecture.md``); any pillar, experiment,
benchmark or test may import it.
"""

from __future__ import annotations

import numpy as np
import torch

from .core.arrays import as_tensor
from .core.errors import InputError
from .core.random import make_generator, numpy_rng
from .core.validation import check_int, check_nonnegative_scalar, check_positive

__all__ = ["random_spd", "point_clouds", "random_weights", "gaussian_sample",
           "attention_tokens"]


def random_spd(d: int, seed=None, *, jitter: float = 0.2, normalize: bool = False) -> np.ndarray:
    """A random symmetric positive-definite (d, d) matrix S = A A^T (/ d) + jitter I.

    Draws: A (d, d) i.i.d. N(0, 1). ``normalize=True`` divides A A^T by d (eigenvalues O(1)
    whatever d). The smallest eigenvalue is >= ``jitter``.

    Parameters
    ----------
    d : int
        Dimension (>= 1).
    seed : int, None or numpy.random.Generator, optional
        ``None``: fresh entropy; a generator is drawn from (several calls can share one stream).
    jitter : float, default 0.2
        Added multiple of the identity (> 0).
    normalize : bool, default False
        Divide A A^T by d.

    Returns
    -------
    numpy.ndarray, shape (d, d)
        float64.

    Raises
    ------
    InputError
        Bad ``d``, ``jitter`` <= 0.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.datasets import random_spd
    >>> S = random_spd(3, seed=0)
    >>> bool(np.allclose(S, S.T)), bool(np.linalg.eigvalsh(S).min() >= 0.2)
    (True, True)
    """
    d = check_int(d, "d", min_value=1)
    jitter = check_positive(jitter, "jitter")
    rng = numpy_rng(seed)
    A = rng.normal(size=(d, d))
    S = A @ A.T
    if normalize:
        S = S / d
    return S + jitter * np.eye(d)


def _real_array(x, name: str) -> np.ndarray:
    """``x`` as a float64 NumPy array through the core boundary (strings, bools, complex,
    meta / half tensors raise InputError naming ``name``); NaN/Inf left to the caller."""
    return as_tensor(x, name, dtype=torch.float64, check_finite=False).detach().cpu().numpy()


def point_clouds(n: int, m: int, d: int = 2, seed=None, *, shift=0.5,
                 scale=1.0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian point clouds x (n, d) ~ N(0, I) and y (m, d) ~ N(shift, diag(scale)^2).

    Draws: x = N(0, 1)^(n, d), then y = N(0, 1)^(m, d) * scale + shift. The standard test problem
    of transport between two clouds (cost |x - y|^2, no 1/2).

    Parameters
    ----------
    n, m : int
        Sizes (>= 0).
    d : int, default 2
        Dimension (>= 1).
    seed : int, None or numpy.random.Generator, optional
        ``None``: fresh entropy; a generator is drawn from (several calls can share one stream).
    shift : float or array_like of shape (d,), default 0.5
        Mean of y (finite).
    scale : float or array_like of shape (d,), default 1.0
        Standard deviations of y (finite, >= 0).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        x (n, d) and y (m, d), float64.

    Raises
    ------
    InputError
        Bad sizes, ``shift`` / ``scale`` not finite scalars or (d,) arrays, a negative scale.

    Examples
    --------
    >>> from measureflow.datasets import point_clouds
    >>> x, y = point_clouds(5, 4, 3, seed=0)
    >>> x.shape, y.shape
    ((5, 3), (4, 3))
    >>> _, y = point_clouds(5, 4, 3, seed=0, shift=2.0, scale=0.0)
    >>> y.tolist()[0]
    [2.0, 2.0, 2.0]
    """
    n = check_int(n, "n", min_value=0)
    m = check_int(m, "m", min_value=0)
    d = check_int(d, "d", min_value=1)
    shift, scale = _real_array(shift, "shift"), _real_array(scale, "scale")
    for name, v in (("shift", shift), ("scale", scale)):
        if v.ndim > 1 or (v.ndim == 1 and v.shape != (d,)) or not np.all(np.isfinite(v)):
            raise InputError(f"{name}: expected a finite scalar or a ({d},) array")
    if np.any(scale < 0):
        raise InputError("scale: the standard deviations must be >= 0")
    rng = numpy_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) * scale + shift
    return x, y


def random_weights(n: int, seed=None, *, low: float = 0.5, high: float = 1.5) -> np.ndarray:
    """Positive weights (n,) summing to 1: U(low, high) draws divided by their sum.

    Draws: n i.i.d. uniform values on [low, high). The ratio of two weights is at most high / low.

    Parameters
    ----------
    n : int
        Number of weights (>= 1).
    seed : int, None or numpy.random.Generator, optional
        ``None``: fresh entropy; a generator is drawn from (several calls can share one stream).
    low : float, default 0.5
        (>= 0).
    high : float, default 1.5
        (> low).

    Returns
    -------
    numpy.ndarray, shape (n,)
        float64, summing to 1 up to rounding.

    Raises
    ------
    InputError
        Bad ``n``, ``low`` < 0, ``high`` <= ``low``.

    Examples
    --------
    >>> from measureflow.datasets import random_weights
    >>> w = random_weights(4, seed=0)
    >>> w.shape, round(float(w.sum()), 12), bool(w.max() / w.min() <= 3.0)
    ((4,), 1.0, True)
    """
    n = check_int(n, "n", min_value=1)
    low = check_nonnegative_scalar(low, "low")
    high = check_positive(high, "high")
    if not high > low:
        raise InputError(f"high: must exceed low = {low}, got {high}")
    w = numpy_rng(seed).uniform(low, high, n)
    return w / w.sum()


def gaussian_sample(n: int, mean, cov, seed=None, *, exact_moments: bool = False) -> np.ndarray:
    """n points of N(mean, cov) in dimension d: mean + z L^T with L = cholesky(cov).

    Draws: z = N(0, 1)^(n, d). With ``exact_moments=True`` z is first centred and whitened
    (z <- (z - mean(z)) C^(-T/2), C = z^T z / n, Cholesky factor), so the sample's empirical mean
    and (population, 1/n) covariance are exactly ``mean`` and ``cov``: the sampling error of the
    first two moments is removed from a comparison.

    Parameters
    ----------
    n : int
        Number of points (>= 1; > d with ``exact_moments``).
    mean : array_like, shape (d,)
    cov : array_like, shape (d, d)
        Symmetric positive definite.
    seed : int, None or numpy.random.Generator, optional
        ``None``: fresh entropy; a generator is drawn from (several calls can share one stream).
    exact_moments : bool, default False

    Returns
    -------
    numpy.ndarray, shape (n, d)
        float64.

    Raises
    ------
    InputError
        Non-finite or mismatched ``mean`` / ``cov``, ``cov`` not symmetric positive definite,
        n <= d with ``exact_moments``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.datasets import gaussian_sample
    >>> cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> z = gaussian_sample(50, [1.0, -1.0], cov, seed=0, exact_moments=True)
    >>> np.round(z.mean(0), 12).tolist(), bool(np.allclose(np.cov(z.T, bias=True), cov))
    ([1.0, -1.0], True)
    """
    n = check_int(n, "n", min_value=1)
    mean = _real_array(mean, "mean")
    cov = _real_array(cov, "cov")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise InputError(f"{'mean' if not np.all(np.isfinite(mean)) else 'cov'}: contains NaN "
                         "or Inf")
    d = mean.shape[0] if mean.ndim == 1 else -1
    if mean.ndim != 1 or cov.shape != (d, d):
        raise InputError(f"cov: expected shape ({d}, {d}) for a mean of shape {mean.shape}, "
                         f"got {cov.shape}")
    if not np.allclose(cov, cov.T, rtol=1e-8, atol=0.0):
        raise InputError("cov: matrix is not symmetric")
    try:
        L = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise InputError("cov: not positive definite") from None
    z = numpy_rng(seed).normal(size=(n, d))
    if exact_moments:
        if n <= d:
            raise InputError(f"n: exact_moments needs n > d = {d}, got {n}")
        z = z - z.mean(0)
        Lz = np.linalg.cholesky(z.T @ z / n)
        z = np.linalg.solve(Lz, z.T).T
    return mean + z @ L.T


def attention_tokens(n: int, d: int, seed=0, *, dtype=torch.float32):
    """Tokens and projections of a self-attention benchmark: (X, Wq, Wk, Wv) as torch tensors.

    Draws (torch, in this order): X (n, d) ~ N(0, 1), Wq and Wk (d, d) ~ N(0, 1) / d^(3/4) (so the
    scores <Wq x, Wk y> are O(1)), Wv (d, d) ~ N(0, 1) / d^(1/2).

    Parameters
    ----------
    n : int
        Number of tokens (>= 1).
    d : int
        Dimension (>= 1).
    seed : int or torch.Generator, default 0
    dtype : torch.dtype, default torch.float32

    Returns
    -------
    (torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor)
        X (n, d) and Wq, Wk, Wv (d, d).

    Raises
    ------
    InputError
        Bad ``n`` / ``d`` / ``seed``.

    Examples
    --------
    >>> from measureflow.datasets import attention_tokens
    >>> X, Wq, Wk, Wv = attention_tokens(8, 4)
    >>> tuple(X.shape), tuple(Wq.shape), X.dtype
    ((8, 4), (4, 4), torch.float32)
    """
    n = check_int(n, "n", min_value=1)
    d = check_int(d, "d", min_value=1)
    g = make_generator(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    Wq = torch.randn(d, d, generator=g, dtype=dtype) / d ** 0.75
    Wk = torch.randn(d, d, generator=g, dtype=dtype) / d ** 0.75
    Wv = torch.randn(d, d, generator=g, dtype=dtype) / d ** 0.5
    return X, Wq, Wk, Wv
