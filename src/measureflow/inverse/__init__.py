"""Inverse problems over measures: (sharpened) Fenchel-Young losses, inverse UOT, inverse JKO.

Implements arXiv 2505.07124 (Andrade, Peyre, Poon; "Learning from samples: inverse problems over
measures"). Only the abstracts were available; the formulas are reconstructions documented and
checked in ``docs/inverse.md`` and ``tests/inverse/``.
"""

from .bases import (
                    PotentialBasis,
                    bilinear_cost_basis,
                    polynomial_potential_basis,
                    quadratic_potential_basis,
)
from .gaussian import (
                    GaussianEntropicOT,
                    gaussian_bilinear_inverse,
                    gaussian_bilinear_plan,
                    gaussian_entropic_ot,
                    gaussian_jko_step,
)
from .ijko import IJKOResult, ijko
from .iuot import IUOTResult, iuot
from .losses import FYLoss, fy_loss, sharpened_fy_loss
from .sinkhorn import SemiUnbalancedResult, semi_unbalanced_sinkhorn

__all__ = [
    "fy_loss", "sharpened_fy_loss", "FYLoss", "iuot", "IUOTResult", "ijko", "IJKOResult",
    "semi_unbalanced_sinkhorn", "SemiUnbalancedResult", "PotentialBasis", "bilinear_cost_basis",
    "polynomial_potential_basis", "quadratic_potential_basis", "gaussian_entropic_ot",
    "GaussianEntropicOT", "gaussian_bilinear_plan", "gaussian_bilinear_inverse",
    "gaussian_jko_step",
]
