"""Static and dynamic optimal transport (course notes arXiv 2505.06589).

Conventions: the ground cost of point clouds is |x - y|^2 (no 1/2) unless a function says
otherwise; functions named ``*_wasserstein`` return distances, ``*2`` their squares.
"""

from .barycenter import BarycenterResult, barycenter
from .divergence import sinkhorn_divergence
from .gaussian import (
    GaussianBarycenterResult,
    bures_wasserstein,
    bures_wasserstein2,
    gaussian_barycenter,
    gaussian_geodesic,
    gaussian_map,
)
from .one_d import wasserstein_1d
from .result import Certificate, OTResult
from .sinkhorn import entropic_dual_value
from .solve import solve

__all__ = ["solve", "OTResult", "Certificate", "bures_wasserstein", "bures_wasserstein2",
           "gaussian_map", "gaussian_geodesic", "gaussian_barycenter", "GaussianBarycenterResult"]

__all__ += ["sinkhorn_divergence", "wasserstein_1d", "barycenter", "BarycenterResult",
            "entropic_dual_value"]

# part B (semi-discrete, dynamic, JKO, particle flows)
from .dynamic import BenamouBrenierResult, benamou_brenier  # noqa: E402
from .integrate import FlowResult, ODEResult, ParticleFlow, ode_step, odeint  # noqa: E402
from .jko import JKOResult, jko  # noqa: E402
from .particles import ParticleFlowResult, mmd2, particle_flow  # noqa: E402

__all__ += ["odeint", "ode_step", "ODEResult", "FlowResult", "ParticleFlow"]
from .semidiscrete import SemiDiscreteResult, laguerre_assign, semidiscrete  # noqa: E402

__all__ += ["semidiscrete", "SemiDiscreteResult", "laguerre_assign", "benamou_brenier",
            "BenamouBrenierResult", "jko", "JKOResult", "particle_flow", "ParticleFlowResult",
            "mmd2"]

# memory-light entropic OT on point clouds (streamed, no n x m cost)
from .lazy import lazy_plan_apply, plan_block, sinkhorn_points  # noqa: E402

__all__ += ["sinkhorn_points", "plan_block", "lazy_plan_apply"]

# transport maps (barycentric, entropic, Gaussian, Laguerre) under one interface
from .maps import BarycentricMap, EntropicMap, GaussianMap, LaguerreMap, TransportMap  # noqa: E402

__all__ += ["TransportMap", "BarycentricMap", "EntropicMap", "GaussianMap", "LaguerreMap"]

# the transport engine: geometries, the one loop, kernels; cost builder
from . import geometry, kernels, loop  # noqa: E402
from .costs import dist  # noqa: E402
from .geometry import Dense, Grid, PointCloud  # noqa: E402
from .kernels import get_backend, set_backend  # noqa: E402
from .loop import Annealing, Direct, Scaling, SinkhornState  # noqa: E402

__all__ += ["dist", "set_backend", "get_backend", "Scaling", "Annealing", "Direct",
            "SinkhornState", "Dense", "PointCloud", "Grid", "geometry", "kernels", "loop"]
