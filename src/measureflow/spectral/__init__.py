"""Spectral (Schatten-gauge) Wasserstein geometry and normalized (Muon) flows.

Paper: G. Peyre, "Muon dynamics as a spectral Wasserstein flow", arXiv 2604.04891.

- :func:`schatten_norm`, :func:`schatten_lmo`, :func:`polar_factor`: Schatten norms and the
  normalized step J_p (SVD reference path and matmul-only fast path);
- :func:`particle_lmo`, :func:`velocity_norm`, :func:`dual_norm`: the measure-level selector;
- :func:`spectral_wasserstein`, :func:`spectral_bures`: static distances (discrete, Gaussian);
- :mod:`measureflow.spectral.flows`: particle / Gaussian / modal flows and geodesics;
- :mod:`measureflow.spectral.sphere`: 2-homogeneous lift to the sphere (unbalanced transport).
"""

from . import flows, sphere
from .distance import (
                       SpectralBuresResult,
                       SpectralWassersteinResult,
                       displacement_moment,
                       gauge_value,
                       spectral_bures,
                       spectral_wasserstein,
)
from .schatten import (
                       LMOResult,
                       PolarResult,
                       dual_exponent,
                       dual_norm,
                       particle_lmo,
                       polar_factor,
                       schatten_lmo,
                       schatten_norm,
                       velocity_norm,
)

__all__ = ["schatten_norm", "schatten_lmo", "polar_factor", "particle_lmo", "velocity_norm",
           "dual_norm", "dual_exponent", "PolarResult", "LMOResult",
           "spectral_wasserstein", "SpectralWassersteinResult", "displacement_moment",
           "gauge_value", "spectral_bures", "SpectralBuresResult", "flows", "sphere"]
