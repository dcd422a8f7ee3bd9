import math

import numpy as np
import pytest
import torch

from measureflow import InputError
from measureflow.attention import (
    attend,
    cluster_count,
    integrate_gaussian,
    interaction_energy,
    limit_rank,
    particle_flow,
)

D64 = torch.float64


def _matched_sample(n, mean, cov, seed):
    """Gaussian sample whose empirical mean and covariance are exactly (mean, cov)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, mean.shape[0], generator=g, dtype=D64)
    z = z - z.mean(0)
    C = z.T @ z / n
    z = z @ torch.linalg.inv(torch.linalg.cholesky(C)).T
    return mean + z @ torch.linalg.cholesky(cov).T


@pytest.mark.parametrize("kind", ["softmax", pytest.param("l2", marks=pytest.mark.slow)])
def test_particles_track_the_gaussian_ode(kind):
    mean = torch.tensor([0.2, -0.1], dtype=D64)
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=D64)
    Q = torch.tensor([[1.0, 0.2], [0.0, 0.5]], dtype=D64)
    K = torch.tensor([[-0.8, 0.1], [0.3, -0.6]], dtype=D64)
    V = torch.tensor([[1.0, 0.2], [-0.1, 0.8]], dtype=D64)
    ode = integrate_gaussian(mean, cov, Q, K, V, kind=kind, T=0.5, step=0.05)
    errs = []
    for n in (80, 640):
        e = 0.0
        for seed in range(3):
            x = _matched_sample(n, mean, cov, seed=10 * n + seed)
            p = particle_flow(x, Q=Q, K=K, V=V, kind=kind, T=0.5, steps=5, method="rk4",
                              record_every=5)
            e += float((p.covs[-1] - ode.final_cov).norm() + (p.means[-1] - ode.final_mean)
                       .norm()) / 3
        errs.append(e)
    # mean-field limit: the discrepancy shrinks with n (Monte Carlo rate ~ n^{-1/2})
    assert errs[1] < 0.04
    assert errs[1] < 0.75 * errs[0]


def test_euler_step_is_residual_attention_and_types():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=g, dtype=D64)
    Q, K = torch.randn(3, 3, generator=g, dtype=D64), torch.randn(3, 3, generator=g, dtype=D64)
    V = torch.eye(3, dtype=D64)
    p = particle_flow(x, Q=Q, K=K, V=V, T=0.1, steps=1)
    assert torch.allclose(p.final, x + 0.1 * attend(None, x, Q=Q, K=K, V=V))
    pn = particle_flow(x.numpy(), Q=Q.numpy(), K=K.numpy(), V=V.numpy(), T=0.1, steps=2)
    assert isinstance(pn.final, np.ndarray) and pn.trajectory.shape == (3, 30, 3)
    ps = particle_flow(x, Q=Q, K=K, V=V, T=0.5, steps=5, normalize="sphere")
    assert torch.allclose(ps.trajectory.norm(dim=-1), torch.ones(6, 30, dtype=D64))
    pl = particle_flow(x, Q=Q, K=K, V=V, T=0.5, steps=5, normalize="layernorm",
                       kind="causal")
    assert torch.allclose(pl.final.mean(-1), torch.zeros(30, dtype=D64), atol=1e-12)


def test_sphere_clustering_into_one_cluster():
    # Q = K = I, V = I on the circle with a concentrated initial law: particles merge
    g = torch.Generator().manual_seed(1)
    th = 0.6 * torch.rand(40, generator=g, dtype=D64)
    x = torch.stack([torch.cos(th), torch.sin(th)], 1)
    eye = torch.eye(2, dtype=D64)
    p = particle_flow(x, Q=2 * eye, K=eye, V=eye, T=30.0, steps=150, normalize="sphere",
                      record_every=30)
    assert p.n_clusters == 1 and p.rank == 0
    # the interaction energy increases along this flow
    assert bool((p.energy[1:] >= p.energy[:-1] - 1e-12).all())


def test_diagnostics():
    pts = np.array([[0, 0], [1e-5, 0], [1, 1], [1, 1 + 1e-5], [5, 5.0]])
    assert cluster_count(pts) == 3
    line = np.stack([np.linspace(-1, 1, 50), 2 * np.linspace(-1, 1, 50)], 1)
    assert limit_rank(line) == 1
    assert limit_rank(np.zeros((5, 2))) == 0
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=D64)
    eye = torch.eye(2, dtype=D64)
    E = interaction_energy(x, Q=eye, K=eye)
    assert math.isclose(float(E), 0.5 * 0.25 * (math.e + 2 + math.exp(4)), rel_tol=1e-12)


def test_bad_input():
    x = torch.randn(10, 2, dtype=D64)
    eye = torch.eye(2, dtype=D64)
    with pytest.raises(InputError, match="T"):
        particle_flow(x, Q=eye, K=eye, V=eye, T=0.0)
    with pytest.raises(InputError, match="normalize"):
        particle_flow(x, Q=eye, K=eye, V=eye, normalize="ball")
    with pytest.raises(InputError, match="V"):
        particle_flow(x, Q=eye, K=eye, V=eye[:1])
    with pytest.raises(InputError, match="steps"):
        particle_flow(x, Q=eye, K=eye, V=eye, steps=0)
    with pytest.raises(InputError, match="^points"):
        cluster_count(torch.tensor([[0.0, float("nan")], [1.0, 0.0]], dtype=D64))
    with pytest.raises(InputError, match="^tokens"):
        particle_flow(x[:, :1].expand(10, 2).clone().fill_(float("inf")), Q=eye, K=eye, V=eye)
