"""Bures-Wasserstein: closed forms, exact OT on samples, McCann geodesic, barycenter."""

import numpy as np
import pytest
import torch

import measureflow.ot as mot
from measureflow import InputError


def _spd(d, rng, scale=1.0):
    A = rng.normal(size=(d, d))
    return scale * (A @ A.T / d + 0.3 * np.eye(d))


def test_commuting_closed_form():
    rng = np.random.default_rng(0)
    l0, l1 = rng.random(3) + 0.1, rng.random(3) + 0.1
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    S0, S1 = Q @ np.diag(l0) @ Q.T, Q @ np.diag(l1) @ Q.T
    m0, m1 = rng.normal(size=3), rng.normal(size=3)
    # Commuting covariances: B^2 = sum_k (sqrt(l0_k) - sqrt(l1_k))^2.
    expected = np.sqrt(((m0 - m1) ** 2).sum() + ((np.sqrt(l0) - np.sqrt(l1)) ** 2).sum())
    assert abs(mot.bures_wasserstein(m0, S0, m1, S1) - expected) < 1e-12
    assert abs(mot.bures_wasserstein2(m0, S0, m1, S1) - expected**2) < 1e-12
    # 1-D: W2 = sqrt((m0 - m1)^2 + (s0 - s1)^2).
    w = mot.bures_wasserstein([0.0], [[4.0]], [1.0], [[9.0]])
    assert abs(w - np.sqrt(1 + 1)) < 1e-12


def test_vs_exact_ot_on_large_samples():
    # Monotone in 1-D: exact OT between sorted samples of N(0, 1) and N(2, 9) -> W2 = sqrt(8).
    rng = np.random.default_rng(1)
    d = 2
    S0, S1 = _spd(d, rng), _spd(d, rng, 2.0)
    m0, m1 = np.zeros(d), np.array([1.0, -0.5])
    n = 500
    # Quasi-samples: a whitened point cloud mapped to each Gaussian (exact mean/covariance).
    z = rng.normal(size=(n, d))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T, bias=True))).T
    x = m0 + z @ np.linalg.cholesky(S0).T
    z2 = rng.normal(size=(n, d))
    z2 = (z2 - z2.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z2.T, bias=True))).T
    y = m1 + z2 @ np.linalg.cholesky(S1).T
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    emp = mot.solve(None, None, C).value
    bw2 = mot.bures_wasserstein2(m0, S0, m1, S1)
    # Same first two moments: Gaussian W2 is a lower bound (Gelbrich) and close for n = 500.
    assert emp >= bw2 - 1e-9
    assert emp - bw2 < 0.15 * bw2


def test_gaussian_map_pushes_forward_and_geodesic():
    rng = np.random.default_rng(2)
    d = 3
    S0, S1 = _spd(d, rng), _spd(d, rng)
    m0, m1 = rng.normal(size=d), rng.normal(size=d)
    A, shift = mot.gaussian_map(m0, S0, m1, S1)
    np.testing.assert_allclose(A @ S0 @ A.T, S1, atol=1e-10)
    np.testing.assert_allclose(A @ m0 + shift, m1, atol=1e-12)
    np.testing.assert_allclose(A, A.T, atol=1e-12)
    assert np.linalg.eigvalsh(A).min() > 0
    W = mot.bures_wasserstein(m0, S0, m1, S1)
    ts = np.array([0.0, 0.25, 0.6, 1.0])
    mt, St = mot.gaussian_geodesic(m0, S0, m1, S1, ts)
    for k, t in enumerate(ts):
        # Squared distances (the square root amplifies round-off near 0).
        assert abs(mot.bures_wasserstein2(m0, S0, mt[k], St[k]) - (t * W) ** 2) < 1e-10
        assert abs(mot.bures_wasserstein2(mt[k], St[k], m1, S1) - ((1 - t) * W) ** 2) < 1e-10


def test_barycenter_fixed_point_and_two_point_case():
    rng = np.random.default_rng(3)
    d, K = 3, 4
    covs = np.stack([_spd(d, rng) for _ in range(K)])
    means = rng.normal(size=(K, d))
    w = rng.random(K)
    w /= w.sum()
    r = mot.gaussian_barycenter(means, covs, w)
    assert r.converged
    S = r.cov
    from scipy.linalg import sqrtm
    rS = np.real(sqrtm(S))
    T = sum(w[k] * np.real(sqrtm(rS @ covs[k] @ rS)) for k in range(K))
    np.testing.assert_allclose(T, S, atol=1e-9)
    np.testing.assert_allclose(r.mean, w @ means, atol=1e-12)
    # Two Gaussians: the barycenter with weights (1 - t, t) is the McCann point at t.
    mt, St = mot.gaussian_geodesic(means[0], covs[0], means[1], covs[1], 0.3)
    r2 = mot.gaussian_barycenter(means[:2], covs[:2], [0.7, 0.3])
    np.testing.assert_allclose(r2.cov, St, atol=1e-9)
    np.testing.assert_allclose(r2.mean, mt, atol=1e-12)


def test_free_support_barycenter_of_gaussian_samples_matches_bures():
    rng = np.random.default_rng(4)
    d, n = 2, 150
    covs = [_spd(d, rng), _spd(d, rng)]
    means = [np.zeros(d), np.array([2.0, 1.0])]
    clouds = [rng.multivariate_normal(means[k], covs[k], size=n) for k in range(2)]
    emp_means = np.stack([c.mean(0) for c in clouds])
    emp_covs = np.stack([np.cov(c.T, bias=True) for c in clouds])
    bary = mot.barycenter(clouds, [0.5, 0.5], init=clouds[0].copy())
    gb = mot.gaussian_barycenter(emp_means, emp_covs, [0.5, 0.5])
    assert bary.converged
    np.testing.assert_allclose(bary.support.mean(0), gb.mean, atol=1e-10)
    cov = np.cov(bary.support.T, bias=True)
    assert np.abs(cov - gb.cov).max() < 0.15 * np.abs(gb.cov).max()


def test_torch_gradient_and_batched():
    rng = np.random.default_rng(5)
    S0 = torch.tensor(np.stack([_spd(2, rng) for _ in range(3)]), requires_grad=True)
    S1 = torch.tensor(np.stack([_spd(2, rng) for _ in range(3)]))
    m = torch.zeros(3, 2)
    w = mot.bures_wasserstein(m.double(), S0, m.double() + 1, S1)
    assert w.shape == (3,)
    assert torch.autograd.gradcheck(
        lambda S: mot.bures_wasserstein2(torch.zeros(2, dtype=torch.float64),
                                         S @ S.transpose(-1, -2) + 0.1 * torch.eye(2, dtype=S.dtype),
                                         torch.ones(2, dtype=torch.float64), S1[0]),
        (torch.tensor(_spd(2, rng), requires_grad=True),))
    del S0


def test_bad_input():
    I2 = np.eye(2)
    with pytest.raises(InputError, match="^S0"):
        mot.bures_wasserstein(np.zeros(2), -I2, np.zeros(2), I2)
    with pytest.raises(InputError, match="^S1"):
        mot.bures_wasserstein(np.zeros(2), I2, np.zeros(2), np.eye(3))
    with pytest.raises(InputError, match="^m1"):
        mot.bures_wasserstein(np.zeros(2), I2, np.zeros(3), I2)
    with pytest.raises(InputError, match="^S0"):
        mot.bures_wasserstein(np.zeros(2), np.array([[1.0, 2.0], [0.0, 1.0]]), np.zeros(2), I2)
    with pytest.raises(InputError, match="^t"):
        mot.gaussian_geodesic(np.zeros(2), I2, np.zeros(2), I2, 1.5)
    with pytest.raises(InputError, match="^weights"):
        mot.gaussian_barycenter(np.zeros((2, 2)), np.stack([I2, I2]), [-1.0, 2.0])
    with pytest.raises(InputError, match="^init"):
        mot.gaussian_barycenter(np.zeros((2, 2)), np.stack([I2, I2]), init=np.eye(3))
    with pytest.raises(InputError, match="^covs"):
        mot.gaussian_barycenter(np.zeros((2, 2)), np.stack([I2, -I2]))
    with pytest.raises(InputError, match="^S0"):
        mot.gaussian_map(np.zeros(2), np.diag([1.0, 0.0]), np.zeros(2), I2)  # singular S0
