"""iuot / ijko estimators: exact recovery on population-level data, penalties, conventions."""

import numpy as np
import pytest
import torch

import measureflow.inverse as inv
from measureflow import InputError, ot

EPS, RHO = 0.5, 1.0
A_TRUE = np.array([[1.0, 0.5], [-0.3, 0.8]])


@pytest.fixture(scope="module")
def grid():
    rng = np.random.default_rng(0)
    n = 30
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    F = inv.bilinear_cost_basis(x, y)
    P = ot.solve(None, None, np.tensordot(A_TRUE, F, 2), eps=EPS, rho=RHO, tol=1e-13).plan
    return x, y, P


@pytest.mark.parametrize("lam", [0.0, 2.0])
def test_iuot_recovers_cost_from_its_plan(grid, lam):
    x, y, P = grid
    r = inv.iuot(x, y, eps=EPS, rho=RHO, lam=lam, plan=P, tol=1e-7)
    assert r.converged
    np.testing.assert_allclose(r.theta, A_TRUE, atol=1e-5)
    assert abs(r.loss) < 1e-8
    np.testing.assert_allclose(r.plan, P, atol=1e-8)


def _sparse_problem(A, n=20, seed=1):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    F = inv.bilinear_cost_basis(x, y)
    P = ot.solve(None, None, np.tensordot(A, F, 2), eps=EPS, rho=RHO, tol=1e-13).plan
    return x, y, P


def test_iuot_l1_support():
    A = np.zeros((3, 3))
    A[0, 0], A[1, 2] = 1.2, -0.8
    x, y, P = _sparse_problem(A)
    r = inv.iuot(x, y, eps=EPS, rho=RHO, plan=P, reg="l1", reg_weight=5e-3, tol=1e-5)
    np.testing.assert_array_equal(np.abs(r.theta) > 1e-6, A != 0)
    np.testing.assert_allclose(r.theta, A, atol=0.1)
    assert r.objective >= r.loss


@pytest.mark.slow
def test_iuot_nuclear_rank():
    L = np.outer([1.0, -0.5, 0.3], [0.8, 0.2, -1.0])  # rank one
    x, y, P = _sparse_problem(L)
    r = inv.iuot(x, y, eps=EPS, rho=RHO, plan=P, reg="nuclear", reg_weight=5e-3, tol=1e-6)
    s = np.linalg.svd(r.theta, compute_uv=False)
    assert s[1] < 1e-6 * s[0]


def test_iuot_pairs_balanced_and_io():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 2))
    y = x @ np.array([[0.8, 0.1], [0.0, 0.9]]) + 0.5 * rng.normal(size=(40, 2))
    r = inv.iuot(x, y, eps=1.0, rho=None)
    assert isinstance(r.theta, np.ndarray) and r.theta.shape == (2, 2)
    rt = inv.iuot(torch.tensor(x), torch.tensor(y), eps=1.0, rho=None)
    assert isinstance(rt.theta, torch.Tensor)
    np.testing.assert_allclose(rt.theta.numpy(), r.theta, atol=1e-6)
    # the balanced fitted plan reproduces the observed feature moments (gradient = 0)
    assert np.abs(r.grad).max() < 1e-5


def test_iuot_input_errors(grid):
    x, y, P = grid
    with pytest.raises(InputError, match="plan"):
        inv.iuot(x, y[:5], eps=EPS, rho=RHO)
    with pytest.raises(InputError, match="reg"):
        inv.iuot(x, y, eps=EPS, rho=RHO, plan=P, reg="l2")
    with pytest.raises(InputError, match="eps"):
        inv.iuot(x, y, eps=0.0, rho=RHO, plan=P)
    with pytest.raises(InputError, match="rho"):
        inv.iuot(x, y, eps=EPS, rho=-1.0, plan=P)
    with pytest.raises(InputError, match="reg"):
        inv.iuot(x, y, np.ones((4, 30, 30)), eps=EPS, rho=RHO, plan=P, reg="nuclear")
    with pytest.raises(InputError, match="x"):
        inv.iuot(np.full((30, 2), np.nan), y, eps=EPS, rho=RHO, plan=P)
    with pytest.raises(InputError, match="^plan"):
        inv.iuot(x, y, eps=EPS, rho=RHO, plan=-P)
    with pytest.raises(InputError, match="^cost_basis"):
        inv.iuot(x, y, np.ones((4, 30, 29)), eps=EPS, rho=RHO, plan=P)


def _pushforward(rng, basis, theta, n, tau, scale=0.7):
    x = rng.normal(size=(n, 1)) * scale
    y, ok = basis.prox(torch.tensor(theta), torch.tensor(x), tau)
    assert ok
    return x, y.numpy()[rng.permutation(n)]


def test_ijko_plain_recovers_potential_without_pairing():
    rng = np.random.default_rng(3)
    basis = inv.quadratic_potential_basis(2)
    Q, b = np.array([[1.5, 0.4], [0.4, 0.8]]), np.array([0.3, -0.6])
    theta = basis.from_quadratic(torch.tensor(Q), torch.tensor(b)).numpy()
    x = rng.normal(size=(80, 2))
    y = np.linalg.solve(np.eye(2) + 0.5 * Q, (x - 0.5 * b).T).T[rng.permutation(80)]
    r = inv.ijko(x, y, 0.5, "quadratic")
    assert r.converged
    np.testing.assert_allclose(r.theta, theta, atol=1e-5)
    Qh, bh = basis.to_quadratic(torch.tensor(r.theta))
    np.testing.assert_allclose(Qh.numpy(), Q, atol=1e-5)


def test_ijko_polynomial_l1_support():
    rng = np.random.default_rng(4)
    basis = inv.polynomial_potential_basis(1, 4)
    theta = np.array([0.0, 0.5, 0.0, 0.2])
    x, y = _pushforward(rng, basis, theta, 80, 0.5)
    r = inv.ijko(x, y, 0.5, basis, reg="l1", reg_weight=1e-4, tol=1e-8, max_iter=2000)
    np.testing.assert_array_equal(np.abs(r.theta) > 1e-3, theta != 0)


def _check_ijko_sharpened_minimiser_lam_free(n):
    # calibration: the sharpening weight changes the loss, not its minimiser (up to the
    # solver tolerance); the minimiser carries the O(eps) entropic bias of the grid model
    rng = np.random.default_rng(5)
    basis = inv.polynomial_potential_basis(1, 2)
    theta = np.array([0.2, 0.6])
    x, y = _pushforward(rng, basis, theta, n, 0.5)
    ests = [inv.ijko(x, y, 0.5, basis, lam=lam, eps=0.1, tol=1e-7).theta
            for lam in (0.0, 0.3, 3.0)]
    np.testing.assert_allclose(ests[0], ests[2], atol=0.05)
    np.testing.assert_allclose(ests[1], ests[2], atol=0.05)
    assert np.abs(ests[0] - theta).max() < 0.3


def test_ijko_sharpened_minimiser_does_not_depend_on_lam():
    _check_ijko_sharpened_minimiser_lam_free(25)


def test_ijko_torch_io_and_errors():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(25, 2))
    r = inv.ijko(torch.tensor(x), torch.tensor(y), 0.5)
    assert isinstance(r.theta, torch.Tensor) and r.theta.shape == (5,)
    with pytest.raises(InputError, match="eps"):
        inv.ijko(x, y, 0.5, lam=1.0)
    with pytest.raises(InputError, match="tau"):
        inv.ijko(x, y, -0.5)
    with pytest.raises(InputError, match="reg"):
        inv.ijko(x, y, 0.5, reg="nuclear")
    with pytest.raises(InputError, match="potential_basis"):
        inv.ijko(x, y, 0.5, inv.polynomial_potential_basis(1, 2))
