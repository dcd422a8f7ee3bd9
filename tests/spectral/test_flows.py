import math

import numpy as np
import pytest
import torch

from measureflow import InputError
from measureflow.spectral import particle_lmo
from measureflow.spectral.flows import (
    affine_covariance_rhs,
    gaussian_kl_flow,
    gaussian_kl_rhs,
    modal_flow,
    modal_invariant,
    modal_rhs,
    particle_flow,
    rank_loss_threshold,
)
from measureflow.spectral.sphere import lift_check, lift_to_sphere, sphere_velocity


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_affine_rhs_matches_particle_lmo(p):
    # on an exact 'Gaussian-like' cloud (empirical covariance = Sigma) the particle velocity is
    # linear and its covariance derivative is the affine RHS
    rng = np.random.default_rng(0)
    d, n = 3, 400
    z = rng.normal(size=(n, d))
    z -= z.mean(0)
    C = z.T @ z / n
    z = z @ np.linalg.inv(np.linalg.cholesky(C)).T  # exact identity covariance
    A = rng.normal(size=(d, d))
    Sigma = A @ A.T + np.eye(d)
    ev, V = np.linalg.eigh(Sigma)
    R = (V * np.sqrt(ev)) @ V.T
    x = z @ R
    H = rng.normal(size=(d, d))
    w = np.full(n, 1 / n)
    v = particle_lmo(x @ H.T, w, p)
    dS = (x * w[:, None]).T @ v + (v * w[:, None]).T @ x
    assert np.allclose(dS, affine_covariance_rhs(H, Sigma, p), atol=1e-9)


def test_particle_flow_p1_is_gradient_flow_and_energy_decreases():
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(30, 2))
    w = torch.full((30,), 1 / 30, dtype=torch.float64)

    def energy(X):  # Fcal(mu) = int |x - c|^2 / 2 dmu: force x - c
        return 0.5 * (w * ((X - torch.tensor([1.0, -1.0])) ** 2).sum(1)).sum()

    r1 = particle_flow(energy, x0, p=1, step=0.1, n_steps=3)
    expect = np.array([1.0, -1.0]) + (x0 - [1.0, -1.0]) * 0.9 ** 3
    assert np.allclose(r1.positions[-1], expect)
    rinf = particle_flow(energy, x0, p=math.inf, step=0.002, n_steps=200)
    assert np.all(np.diff(rinf.energies) < 0)
    # dissipation: dE/dt ~ -N*^2 (Euler, first order)
    dE = (rinf.energies[1] - rinf.energies[0]) / 0.002
    assert dE == pytest.approx(-rinf.dual_norms[0], rel=0.05)


@pytest.mark.parametrize("p", [1, 2, 4, math.inf])
def test_modal_invariants_and_rank_loss(p):
    alpha, beta = 0.1, 1.3
    res = modal_flow(0.0, alpha, beta, p, T=3.0, dt=2e-3)
    a, b = res.s + res.r, res.s - res.r
    alive = (a > 0) & (b > 0)
    inv = modal_invariant(a, b, p)[alive[:, 0]]
    assert np.allclose(inv, inv[0], rtol=1e-3)  # RK4 degrades only at the (non-Lipschitz) end
    Rp = rank_loss_threshold(p, alpha)
    if p == 1:
        assert np.isnan(res.extinction_r).all()
    else:
        assert res.extinction_r[0] == pytest.approx(Rp, rel=0.02)
    # energy decreases at rate N^2 (checked through monotonicity) and reaches the target
    assert np.all(np.diff(res.energy) <= 1e-12)


def test_rank_loss_threshold_values():
    assert rank_loss_threshold(2, 0.1) == pytest.approx(0.4)
    assert rank_loss_threshold(4, 0.1) == pytest.approx(0.1 * 2 ** (4 / 3))
    assert rank_loss_threshold(math.inf, 0.1) == pytest.approx(0.2)
    assert math.isinf(rank_loss_threshold(1, 0.1))


def test_modal_energy_rate():
    a, b, beta = np.array([1.2, 0.4]), np.array([0.8, 0.3]), np.array([1.0, -0.5])
    for p in (1, 2, math.inf):
        da, db = modal_rhs(a, b, beta, p)
        r = 0.5 * (a - b)
        dE = ((r - beta) * 0.5 * (da - db)).sum()
        q = 1.0 if math.isinf(p) else 2 * p / (2 * p - 1)
        e = r - beta
        N = ((np.abs(e) ** q) * (a ** (q / 2) + b ** (q / 2))).sum() ** (1 / q)
        assert dE == pytest.approx(-N ** 2)


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_gaussian_kl_flow(p):
    m0, S0 = np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    mb, Sb = np.zeros(2), np.diag([1.0, 0.5])
    res = gaussian_kl_flow(m0, S0, mb, Sb, p, T=2.0, dt=0.01)
    assert np.all(np.diff(res.kl) < 0) and res.kl[-1] < 0.2 * res.kl[0]
    # dKL/dt = -N*^2 = -(tr F^{q/2})^{2/q} at t = 0 (finite difference of the RK4 path)
    m, S = torch.tensor(m0), torch.tensor(S0)
    dm, dS = gaussian_kl_rhs(m, S, torch.tensor(mb), torch.tensor(Sb), p)
    h = 1e-6
    from measureflow.spectral.flows import gaussian_kl
    k0 = gaussian_kl(m, S, torch.tensor(mb), torch.tensor(Sb))
    k1 = gaussian_kl(m + h * dm, S + h * dS, torch.tensor(mb), torch.tensor(Sb))
    Sbi = torch.linalg.inv(torch.tensor(Sb))
    H = Sbi - torch.linalg.inv(S)
    bb = Sbi @ (m - torch.tensor(mb))
    F = H @ S @ H + torch.outer(bb, bb)
    q = 1.0 if math.isinf(p) else 2 * p / (2 * p - 1)
    N2 = float((torch.linalg.eigvalsh(F).clamp_min(0) ** (q / 2)).sum() ** (2 / q))
    assert float((k1 - k0) / h) == pytest.approx(-N2, rel=1e-4)


def _relu_energy(Z, yz):
    def energy(X, w):
        u, v = X[:, :1], X[:, 1:]
        h = (w[:, None] * u * torch.relu(v @ Z.T)).sum(0)
        return 0.5 * ((h - yz) ** 2).mean()
    return energy


@pytest.mark.parametrize("p", [1, math.inf])
def test_sphere_lift_agrees_with_particles(p):
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(200, 2, generator=g, dtype=torch.float64)
    yz = torch.relu(Z @ torch.tensor([1.0, 0.3], dtype=torch.float64))
    x0 = torch.randn(12, 3, generator=g, dtype=torch.float64)
    dev = lift_check(_relu_energy(Z, yz), x0, p=p, step=0.05, n_steps=20)
    assert max(dev.values()) < 1e-10


def test_sphere_lift_detects_non_homogeneous():
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(100, 2, generator=g, dtype=torch.float64)
    yz = torch.tanh(Z[:, 0])

    def energy(X, w):  # tanh is not 2-homogeneous
        h = (w[:, None] * X[:, :1] * torch.tanh(X[:, 1:] @ Z.T)).sum(0)
        return 0.5 * ((h - yz) ** 2).mean()

    x0 = 3 * torch.randn(8, 3, generator=g, dtype=torch.float64)
    dev = lift_check(energy, x0, p=math.inf, step=0.1, n_steps=10)
    assert max(dev.values()) > 1e-3


def test_sphere_helpers():
    x = np.array([[3.0, 4.0], [0.0, 2.0]])
    om, m = lift_to_sphere(x, [0.5, 0.5])
    assert np.allclose(om, [[0.6, 0.8], [0, 1]]) and np.allclose(m, [12.5, 2.0])
    b, tau = sphere_velocity(x, np.array([[3.0, 4.0], [1.0, 0.0]]))
    assert np.allclose(b, [1.0, 0.0]) and np.allclose(tau, [[0, 0], [0.5, 0]])
    with pytest.raises(InputError, match="^x"):
        lift_to_sphere(np.zeros((1, 2)))
    with pytest.raises(InputError, match="^s0"):
        modal_flow(1.0, 0.5, 1.0, 2, T=1.0, dt=0.1)


@pytest.mark.parametrize("p", [1, 2, 4, math.inf])
def test_modal_ode_is_the_covariance_flow_of_the_linear_network(p):
    # linear two-layer network x = (u, v), M = int u v^T = Sigma_UV, loss 1/2 |M - diag(beta)|^2:
    # the force is g = L x with L = [[0, E], [E^T, 0]], E = Sigma_UV - diag(beta); on balanced
    # diagonal covariances the affine covariance RHS must reduce to the modal ODE
    r, s, beta = np.array([0.3, -0.2, 0.1]), np.array([1.0, 0.7, 0.4]), np.array([1.0, -0.5, 2])
    m = 3
    Sig = np.block([[np.diag(s), np.diag(r)], [np.diag(r), np.diag(s)]])
    E = np.diag(r - beta)
    L = np.block([[np.zeros((m, m)), E], [E.T, np.zeros((m, m))]])
    dS = affine_covariance_rhs(L, Sig, p)
    da, db = modal_rhs(s + r, s - r, beta, p)
    assert np.allclose(np.diag(dS)[:m], (da + db) / 2, atol=1e-10)
    assert np.allclose(np.diag(dS)[m:], (da + db) / 2, atol=1e-10)
    assert np.allclose(np.diag(dS[:m, m:]), (da - db) / 2, atol=1e-10)
    off = dS - np.diag(np.diag(dS)) - np.diag(np.diag(dS, m), m) - np.diag(np.diag(dS, -m), -m)
    assert np.abs(off).max() < 1e-10
