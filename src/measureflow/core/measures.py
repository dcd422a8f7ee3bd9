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

    Weights are nonnegative with positive total mass; they are not renormalised.
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
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def mass(self) -> torch.Tensor:
        return self.weights.sum()

    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.points).sum(0) / self.mass

    def covariance(self) -> torch.Tensor:
        xc = self.points - self.mean()
        return (self.weights[:, None] * xc).T @ xc / self.mass


def discrete_measure(points, weights=None, *, name: str = "points",
                     weights_name: str = "weights") -> DiscreteMeasure:
    """Validate and build a :class:`DiscreteMeasure` (1-D points are treated as (n, 1))."""
    ctx = ArrayContext(points, weights)
    x = ctx.tensor(points, name)
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, name, 2)
    w = check_weights(None if weights is None else ctx.tensor(weights, weights_name),
                      x.shape[0], weights_name, like=x)
    return DiscreteMeasure(x, w)
