"""Mean-field two-layer networks: VarPro / two-timescale training and the ultra-fast diffusion.

Barboni, Peyre, Vialard, arXiv:2504.18208. Public API:

- :class:`TwoLayer` -- f(x) = (1/M) sum_j u_j phi(w_j, x), ReLU on the sphere or RBF on the torus;
- :func:`varpro_train` -- exact ridge solve for u, envelope-gradient step on the features;
- :func:`two_timescale_train` -- the baseline training both layers (outer lr lam * M);
- :func:`ultrafast_diffusion` -- the lam -> 0 limit PDE d_t mu = -1/2 div(mu grad (mu*/mu)^2);
- :func:`mmd` -- energy-kernel MMD between weighted particle measures;
- helpers :func:`ridge_outer`, :func:`ridge_readout` (multi-output readout of any feature
  matrix), :func:`reduced_objective`, :func:`periodic_grid` and the
  Sec. 6.1 teacher law (:func:`circle_teacher_density`, :func:`sample_circle_teacher`).
"""

from .mmd import mmd, torus_embedding
from .model import TwoLayer, wrap_torus
from .pde import DiffusionResult, periodic_grid, ultrafast_diffusion
from .teacher import angles_to_circle, circle_teacher_density, sample_circle_teacher
from .train import (
    TrainResult,
    reduced_objective,
    ridge_outer,
    ridge_readout,
    two_timescale_train,
    varpro_train,
)

__all__ = ["TwoLayer", "varpro_train", "two_timescale_train", "ultrafast_diffusion", "mmd",
           "TrainResult", "DiffusionResult", "ridge_outer", "reduced_objective",
           "periodic_grid", "circle_teacher_density", "sample_circle_teacher",
           "angles_to_circle", "torus_embedding", "wrap_torus", "ridge_readout"]
