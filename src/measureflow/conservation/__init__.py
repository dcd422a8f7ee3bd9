"""Conservation laws and intrinsic dynamics of gradient flows, by automatic differentiation.

Papers: arXiv 2307.00144 (framework, algorithms), arXiv 2506.06194 (ResNets, Transformers),
arXiv 2508.07370 (intrinsic dynamics). See docs/conservation.md.
"""

from . import architectures, drift, intrinsic  # noqa: F401
from .lie import (
                  GradientFields,
                  LawCount,
                  LieClosure,
                  LieRankReport,
                  gradient_fields,
                  lie_closure,
                  lie_rank,
                  lie_rank_report,
                  number_of_laws,
                  number_of_laws_model,
)
from .polynomial import PolynomialLaws, polynomial_laws

__all__ = ["lie_rank", "lie_rank_report", "LieRankReport", "lie_closure", "LieClosure",
           "number_of_laws", "number_of_laws_model", "LawCount", "gradient_fields",
           "GradientFields", "polynomial_laws", "PolynomialLaws", "architectures", "intrinsic",
           "drift"]
