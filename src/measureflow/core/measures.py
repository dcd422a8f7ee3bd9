"""Measure types: weighted point clouds (discrete measures)."""

from __future__ import annotations

import dataclasses

import torch

from .arrays import ArrayContext
from .errors import InputError
from .validation import check_finite, check_ndim, check_points, check_weights

__all__ = ["DiscreteMeasure", "discrete_measure"]


@dataclasses.dataclass(frozen=True)
class DiscreteMeasure:
    """mu = sum_i weights[i] delta_{points[i]}, points of shape (n, d), weights of shape (n,).

    Weights are nonnegative with positive total mass; they are not renormalised. Direct
    construction validates tensors; :func:`discrete_measure` also converts arrays.

    Parameters
    ----------
    points : Tensor
        (n, d), finite.
    weights : Tensor
        (n,), nonnegative, positive total mass.

    Raises
    ------
    InputError
        Bad points or weights (``weights=None`` included: use :func:`discrete_measure` for
        uniform weights).

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import DiscreteMeasure
    >>> mu = DiscreteMeasure(torch.tensor([[0.0], [2.0]], dtype=torch.float64),
    ...                      torch.tensor([1.0, 3.0], dtype=torch.float64))
    >>> mu.n, mu.dim, float(mu.mass), mu.mean().tolist(), mu.covariance().tolist()
    (2, 1, 4.0, [1.5], [[0.75]])
    """

    points: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self):
        # direct construction gets the checks of discrete_measure (which converts first)
        if self.weights is None:
            raise InputError("weights: required (discrete_measure gives uniform weights)")
        check_finite(check_points(check_ndim(self.points, "points", 2), "points"), "points")
        check_weights(self.weights, self.points.shape[0], "weights", like=self.points)

    @property
    def n(self) -> int:
        """Number of points n."""
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.points.shape[1]

    @property
    def mass(self) -> torch.Tensor:
        """Total mass sum_i w_i (0-d tensor)."""
        return self.weights.sum()

    def mean(self) -> torch.Tensor:
        """Barycenter sum_i w_i x_i / mass, shape (d,).

        Returns
        -------
        Tensor
        """
        return (self.weights[:, None] * self.points).sum(0) / self.mass

    def covariance(self) -> torch.Tensor:
        """Covariance sum_i w_i (x_i - m)(x_i - m)^T / mass (population, normalised by the mass), (d, d).

        Returns
        -------
        Tensor
        """
        xc = self.points - self.mean()
        return (self.weights[:, None] * xc).T @ xc / self.mass


def discrete_measure(points, weights=None, *, name: str = "points",
                     weights_name: str = "weights") -> DiscreteMeasure:
    """Validate and build a :class:`DiscreteMeasure` (1-D points are treated as (n, 1)).

    Parameters
    ----------
    points : array_like or Tensor
        (n, d) or (n,).
    weights : array_like or Tensor, optional
        (n,) nonnegative (default uniform 1/n); not renormalised.
    name, weights_name : str
        Argument names used in error messages.

    Returns
    -------
    DiscreteMeasure
        Tensors (float64 for NumPy input).

    Raises
    ------
    InputError
        Bad points or weights, named by ``name`` / ``weights_name``.

    Examples
    --------
    >>> from measureflow.core import discrete_measure
    >>> mu = discrete_measure([0.0, 1.0, 2.0, 3.0])
    >>> tuple(mu.points.shape), mu.weights.tolist(), mu.mean().tolist()
    ((4, 1), [0.25, 0.25, 0.25, 0.25], [1.5])
    """
    ctx = ArrayContext(points, weights)
    x = ctx.tensor(points, name)
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, name, 2)
    w = check_weights(None if weights is None else ctx.tensor(weights, weights_name),
                      x.shape[0], weights_name, like=x)
    return DiscreteMeasure(x, w)
