"""Score matching + Langevin sampling of Gaussians: exact W2 error and simulation.

Hurault, Terris, Moreau, Peyre, arXiv:2503.11615 (reconstructed from the abstract; see
docs/sampling.md for which formulas are exact and which asymptotic). Public API:

- :func:`pipeline` -- empirical covariance -> linear DSM (closed form / gd / sgd) -> ULA ->
  exact Gaussian law reached, simulated chains, Bures W2 error to the target;
- :func:`w2_error` -- expected W2^2 error as a kernel-type norm of the spectrum, split into
  named sources (noise, discretization, optimization, finite_samples);
- :func:`ula_covariance` -- exact K-step / stationary covariance of linear ULA;
- :func:`diffusion_pipeline` -- linear DSM at every noise level -> variance-preserving backward
  SDE / probability-flow ODE (Euler-type, exponential, Heun) stopped at the minimal noise level
  -> exact Gaussian output law, simulated chains, W2 error (arXiv:2503.11615 v3);
- :func:`diffusion_w2_error` -- its expected W2^2 error split into generalization,
  optimization, discretization and minimal-noise terms, as a kernel norm of the spectrum.
"""

from .diffusion import DiffusionResult, VPGrid, diffusion_covariance, diffusion_pipeline, vp_grid
from .diffusion_theory import DiffusionErrorTerms, diffusion_w2_error
from .gaussian import (
    PipelineResult,
    dsm_score_matrix,
    empirical_second_moments,
    langevin_stationary_covariance,
    pipeline,
    score_function,
    ula_covariance,
)
from .theory import W2ErrorTerms, chain_w2_stats, w2_error

__all__ = ["pipeline", "w2_error", "ula_covariance", "PipelineResult", "W2ErrorTerms",
           "score_function", "dsm_score_matrix", "diffusion_pipeline", "diffusion_w2_error",
           "DiffusionResult", "DiffusionErrorTerms", "diffusion_covariance", "vp_grid", "VPGrid",
           "empirical_second_moments", "langevin_stationary_covariance", "chain_w2_stats"]
