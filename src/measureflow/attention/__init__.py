"""Attention on measures: the Transformer PDE, its Gaussian ODEs and token-sample complexity.

* :func:`attend` -- Gamma_mu(x) for softmax, multi-head, L2, sigmoid, Sinkhorn (doubly
  stochastic, log domain) and causal attention, streamed in chunks (online softmax).
* :func:`gaussian_velocity`, :func:`gaussian_affine_map`, :func:`integrate_gaussian` -- the
  closed-form Gaussian moment equations (arXiv:2501.18322, Sec. 4).
* :func:`particle_flow` -- the particle system dx_i/dt = Gamma_{mu_n}(x_i) with diagnostics.
* :mod:`~measureflow.attention.sample_complexity` -- token-sample complexity
  (arXiv:2512.10656): references, sweeps, rate fits, horizon H and beta_th(H).

Score convention everywhere: <Q x, K y> = y^T A x, A = K^T Q, no hidden 1/sqrt(d).
"""

from . import sample_complexity
from .attend import KINDS, SinkhornAttentionResult, attend, output_moments, sinkhorn_potentials
from .gaussian import (
                       GAUSSIAN_KINDS,
                       GaussianFlowResult,
                       gaussian_affine_map,
                       gaussian_velocity,
                       integrate_gaussian,
)
from .particles import (
                       ParticleFlowResult,
                       cluster_count,
                       interaction_energy,
                       limit_rank,
                       particle_flow,
)
from .sample_complexity import (
                       TokenSweepResult,
                       bessel_ratio,
                       beta_theory,
                       fit_rate,
                       gaussian_reference,
                       horizon,
                       sphere_reference,
                       token_sample_sweep,
                       uniform_error,
)

__all__ = [
    "KINDS", "GAUSSIAN_KINDS", "attend", "output_moments", "sinkhorn_potentials",
    "SinkhornAttentionResult", "gaussian_affine_map", "gaussian_velocity",
    "integrate_gaussian", "GaussianFlowResult", "particle_flow", "ParticleFlowResult",
    "cluster_count", "limit_rank", "interaction_energy", "sample_complexity", "horizon",
    "beta_theory", "gaussian_reference", "sphere_reference", "bessel_ratio", "fit_rate",
    "token_sample_sweep", "TokenSweepResult", "uniform_error",
]
