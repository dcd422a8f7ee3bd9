"""Gaussian ground truths: closed forms vs independent solvers and identities."""

import math

import numpy as np
import pytest
import torch

import measureflow.inverse as inv
from measureflow import InputError, ot


def _spd(rng, d, jitter=0.3):
    X = rng.normal(size=(d, d))
    return X @ X.T + jitter * np.eye(d)


def _grid_1d(mean, var, mass, xs):
    dx = xs[1] - xs[0]
    return mass * np.exp(-(xs - mean) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var) * dx


def test_balanced_closed_form_matches_gaussian_sinkhorn_fixed_point():
    rng = np.random.default_rng(0)
    d = 3
    S0, S1 = _spd(rng, d), _spd(rng, d)
    m0, m1 = rng.normal(size=d), rng.normal(size=d)
    eps = 0.8
    r = inv.gaussian_entropic_ot(m0, S0, m1, S1, eps=eps)
    it = inv.gaussian_entropic_ot(m0, S0, m1, S1, eps=eps, method="fixed_point", max_iter=20000)
    assert it.converged and it.method == "gaussian_sinkhorn" and r.method == "closed_form"
    assert abs(float(it.plan_mass) - 1.0) < 1e-9
    np.testing.assert_allclose(it.plan_cov, r.plan_cov, atol=1e-8)
    np.testing.assert_allclose(it.plan_mean, np.concatenate([m0, m1]), atol=1e-8)


def test_bilinear_plan_with_A_2I_is_the_squared_euclidean_plan():
    rng = np.random.default_rng(1)
    d = 2
    S0, S1 = _spd(rng, d), _spd(rng, d)
    eps = 0.6
    r = inv.gaussian_entropic_ot(np.zeros(d), S0, np.zeros(d), S1, eps=eps)
    G = inv.gaussian_bilinear_plan(2 * np.eye(d), S0, S1, eps=eps)
    np.testing.assert_allclose(G, r.cross_cov, atol=1e-10)


@pytest.mark.parametrize("dx,dy", [(2, 2), (3, 2)])
def test_bilinear_inverse_roundtrip(dx, dy):
    rng = np.random.default_rng(2)
    Sa, Sb = _spd(rng, dx), _spd(rng, dy)
    A = rng.normal(size=(dx, dy))
    G = inv.gaussian_bilinear_plan(A, Sa, Sb, eps=0.5)
    np.testing.assert_allclose(inv.gaussian_bilinear_inverse(Sa, Sb, G, eps=0.5), A, atol=1e-9)


def test_bilinear_plan_first_order_condition():
    # the optimal Gamma maximises <A, Gamma> + eps/2 logdet(Sb - Gamma^T Sa^-1 Gamma): check the
    # gradient of that concave function vanishes (autograd, independent of the SVD formula)
    rng = np.random.default_rng(3)
    Sa, Sb = _spd(rng, 2), _spd(rng, 2)
    A = rng.normal(size=(2, 2))
    G = torch.tensor(inv.gaussian_bilinear_plan(A, Sa, Sb, eps=0.7), requires_grad=True)
    Sa_t, Sb_t = torch.tensor(Sa), torch.tensor(Sb)
    obj = (torch.tensor(A) * G).sum() + 0.35 * torch.logdet(
        Sb_t - G.T @ torch.linalg.solve(Sa_t, G))
    (g,) = torch.autograd.grad(obj, G)
    assert float(g.abs().max()) < 1e-9


def test_entropic_gaussian_vs_quadrature_sinkhorn_balanced_and_unbalanced():
    xs = np.linspace(-6, 7, 260)
    C = (xs[:, None] - xs[None, :]) ** 2
    m0, v0, m1, v1, eps = 0.2, 1.3, 1.0, 0.6, 0.7
    pa = _grid_1d(m0, v0, 1.0, xs)
    g = inv.gaussian_entropic_ot([m0], [[v0]], [m1], [[v1]], eps=eps)
    res = ot.solve(pa, _grid_1d(m1, v1, 1.0, xs), C, eps=eps, tol=1e-10)
    assert abs(res.value - g.value) < 1e-5 * abs(g.value)
    for rho, mass1 in [(0.5, 1.5), (3.0, 0.8)]:
        gu = inv.gaussian_entropic_ot([m0], [[v0]], [m1], [[v1]], eps=eps, rho=rho, mass1=mass1)
        pb = _grid_1d(m1, v1, mass1, xs)
        ru = ot.solve(pa, pb, C, eps=eps, rho=rho, tol=1e-10)
        P = ru.plan
        assert abs(P.sum() - gu.plan_mass) < 1e-5
        assert abs(ru.value - gu.value) < 1e-5 * abs(gu.value)
        mx = (P.sum(1) * xs).sum() / P.sum()
        assert abs(mx - gu.plan_mean[0]) < 1e-5


def test_unbalanced_tends_to_balanced_as_rho_grows():
    rng = np.random.default_rng(4)
    S0, S1 = _spd(rng, 2), _spd(rng, 2)
    m0, m1 = np.zeros(2), np.ones(2)
    b = inv.gaussian_entropic_ot(m0, S0, m1, S1, eps=0.5)
    vals = [inv.gaussian_entropic_ot(m0, S0, m1, S1, eps=0.5, rho=r, tol=1e-10).value
            for r in (3.0, 30.0, 300.0)]
    gaps = [abs(v - b.value) for v in vals]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[1] / gaps[2] > 5  # the gap decays like 1/rho


def test_gaussian_jko_step_closed_form_and_entropy_fixed_point():
    m, S = np.array([1.0, -0.5]), np.array([[1.0, 0.2], [0.2, 0.5]])
    Q, b, tau = np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([0.4, 0.1]), 0.3
    mn, Sn = inv.gaussian_jko_step(m, S, Q, b, tau)
    H = np.eye(2) + tau * Q
    np.testing.assert_allclose(mn, np.linalg.solve(H, m - tau * b))
    np.testing.assert_allclose(Sn, np.linalg.inv(H) @ S @ np.linalg.inv(H), atol=1e-12)
    # OU stationary law N(0, beta Q^-1) is invariant under the entropic JKO step
    beta = 0.7
    Sst = beta * np.linalg.inv(Q)
    mn, Sn = inv.gaussian_jko_step(np.zeros(2), Sst, Q, np.zeros(2), tau, beta=beta)
    np.testing.assert_allclose(Sn, Sst, atol=1e-10)
    # a generic start satisfies the optimality condition M^-1 = I + tau Q - tau beta S'^-1
    mn, Sn = inv.gaussian_jko_step(m, S, Q, b, tau, beta=beta)
    Minv = np.eye(2) + tau * Q - tau * beta * np.linalg.inv(Sn)
    M = np.linalg.inv(Minv)
    np.testing.assert_allclose(M @ S @ M, Sn, atol=1e-10)
    assert np.all(np.linalg.eigvalsh(M) > 0)


def test_torch_in_torch_out_and_input_errors():
    S = torch.eye(2, dtype=torch.float64)
    r = inv.gaussian_entropic_ot(torch.zeros(2, dtype=torch.float64), S, torch.ones(2,
                                 dtype=torch.float64), S, eps=1.0)
    assert isinstance(r.value, torch.Tensor)
    r2 = inv.gaussian_entropic_ot(np.zeros(2), np.eye(2), np.ones(2), np.eye(2), eps=1.0)
    assert isinstance(r2.value, float)
    with pytest.raises(InputError, match="eps"):
        inv.gaussian_entropic_ot(np.zeros(2), np.eye(2), np.ones(2), np.eye(2), eps=0.0)
    with pytest.raises(InputError, match="S0"):
        inv.gaussian_entropic_ot(np.zeros(2), -np.eye(2), np.ones(2), np.eye(2), eps=1.0)
    with pytest.raises(InputError, match="mass0"):
        inv.gaussian_entropic_ot(np.zeros(2), np.eye(2), np.ones(2), np.eye(2), eps=1.0,
                                 mass0=2.0)
    with pytest.raises(InputError, match="A"):
        inv.gaussian_bilinear_plan(np.ones((3, 2)), np.eye(2), np.eye(2), eps=1.0)
    with pytest.raises(InputError, match="tau"):
        inv.gaussian_jko_step(np.zeros(1), [[1.0]], [[-2.0]], [0.0], 1.0)
