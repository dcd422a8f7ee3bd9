"""``ot.dist``: the one public cost-matrix builder.

    dist(x, y, metric="sqeuclidean")[i, j] = |x_i - y_j|^2      (squared Euclidean, no 1/2)
    dist(x, y, metric="euclidean")[i, j]   = |x_i - y_j|
    dist(x, y, metric=p)[i, j]             = |x_i - y_j|^p      (p >= 1, Euclidean norm)

The squared distance is computed from per-coordinate differences (dimension <= 16), not from
|x|^2 + |y|^2 - 2 ``<x, y>``, so nearby points far from the origin keep full relative accuracy
(the expansion, used by POT's ``ot.dist`` and by ``torch.cdist``'s matmul path, loses it), and
it is exactly 0 on the diagonal of ``dist(x, x)``. The Euclidean distance uses
``torch.cdist`` without its matmul shortcut (same accuracy, and a zero gradient at coincident
points).
"""

from __future__ import annotations

import math

import torch

from ..core.arrays import ArrayContext
from ..core.errors import InputError
from ..core.validation import check_in_range, check_points, check_same_dim
from . import kernels

__all__ = ["dist"]

_METRICS = {"sqeuclidean": 2.0, "euclidean": 1.0}


def metric_power(metric) -> float:
    """The exponent p of ``metric`` ("sqeuclidean" -> 2, "euclidean" -> 1, p -> p)."""
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise InputError(f"metric: must be 'sqeuclidean', 'euclidean' or a power p >= 1, "
                             f"got {metric!r}")
        return _METRICS[metric]
    return check_in_range(metric, "metric", 1.0, math.inf, high_open=True)


def cost_tensor(x: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
    """|x_i - y_j|^p for validated (n, d), (m, d) tensors (differentiable)."""
    if p == 2.0 and x.shape[1] <= kernels.INLINE_DIM:
        return kernels.points_cost(x, y, 2.0)
    D = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    if p == 1.0:
        return D
    return D * D if p == 2.0 else D ** p


def dist(x, y=None, metric="sqeuclidean"):
    """Cost matrix C_ij = c(x_i, y_j) between point clouds x (n, d) and y (m, d).

    c(x, y) = |x - y|^p for the Euclidean norm: p = 2 (``"sqeuclidean"``, the W_2 cost, no
    1/2), p = 1 (``"euclidean"``) or any p >= 1. The one public cost builder of measureflow
    (docs/conventions.md, "Costs and distances").

    Parameters
    ----------
    x, y : array_like or Tensor
        Point clouds (n, d) and (m, d) (1-D arrays are points on the line); ``y=None`` means
        ``y = x``.
    metric : {"sqeuclidean", "euclidean"} or float, default "sqeuclidean"
        ``"sqeuclidean"``: |x_i - y_j|^2, the cost of W_2 (no 1/2 -- GeomLoss's p = 2 cost is
        half of it, OTT-JAX's ``SqEuclidean`` and POT's default are the same);
        ``"euclidean"``: |x_i - y_j|; a number p >= 1: |x_i - y_j|^p.

    Returns
    -------
    ndarray or Tensor
        (n, m) cost: NumPy for NumPy/list input, a tensor (same dtype/device, differentiable)
        for tensor input. ``dist(x)`` has an exact zero diagonal.

    Raises
    ------
    InputError
        ``x`` / ``y`` not a non-empty finite point cloud, different dimensions, or ``metric``
        not one of the names nor a number >= 1.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow import ot
    >>> ot.dist(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 1.0]]))
    array([[1.],
           [1.]])
    >>> x = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> ot.dist(x, metric="euclidean")        # |x_i - x_j|, 3-4-5 triangle
    array([[0., 5.],
           [5., 0.]])
    >>> bool(np.allclose(ot.dist(x, metric=3), ot.dist(x, metric="euclidean") ** 3))
    True

    Same matrix as POT's ``ot.dist`` (squared Euclidean by default):

    >>> import ot as pot
    >>> y = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    >>> bool(np.allclose(ot.dist(x, y), pot.dist(x, y)))
    True

    References
    ----------
    G. Peyre, M. Cuturi, "Computational Optimal Transport", 2019, Sec. 2.4 (W_p costs).
    """
    ctx = ArrayContext(x, y)
    p = metric_power(metric)
    xt = check_points(ctx.tensor(x, "x"), "x")
    yt = xt if y is None else check_points(ctx.tensor(y, "y"), "y")
    check_same_dim(xt, yt, ("x", "y"))
    return ctx.wrap(cost_tensor(xt, yt, p))
