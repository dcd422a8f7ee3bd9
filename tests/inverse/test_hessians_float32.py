"""Closed-form loss Hessians (vs finite differences and the lam -> inf limit), the entropic plain
iJKO loss, proximal Newton for l1, float32 behaviour and input errors of the inverse package."""

import math
import warnings

import numpy as np
import pytest
import torch

import measureflow.inverse as inv
from measureflow import ConvergenceWarning, InputError, ot

TAU, EPS = 0.5, 0.2


def _fd_hessian(grad, theta, h=1e-5):
    th = np.asarray(theta, float).ravel()
    H = np.zeros((th.size, th.size))
    for r in range(th.size):
        e = np.zeros(th.size)
        e[r] = h
        H[:, r] = (np.ravel(grad(th + e)) - np.ravel(grad(th - e))) / (2 * h)
    return 0.5 * (H + H.T)


@pytest.fixture(scope="module")
def jko1d():
    rng = np.random.default_rng(0)
    basis = inv.polynomial_potential_basis(1, 3)
    x = rng.normal(size=(25, 1)) * 0.8
    y = rng.normal(size=(30, 1)) * 0.5 + 0.1
    theta = np.array([0.2, 0.6, 0.05])
    return basis, x, y, theta


@pytest.mark.parametrize("lam", [0.0, 0.5, 20.0])
def test_jko_grid_hessian_equals_finite_differences(jko1d, lam):
    # FD error: h^2 |L'''| ~ 1e-10 plus inner tolerance / h = 1e-13 / 1e-5; relative 1e-6 is safe
    basis, x, y, theta = jko1d

    def call(th, hessian=False):
        return inv.sharpened_fy_loss(th, basis, (x, y), kind="jko", tau=TAU, lam=lam, eps=EPS,
                                     tol=1e-13, max_iter=100000, hessian=hessian)

    H = call(theta, True).hessian
    Hfd = _fd_hessian(lambda t: call(t).grad, theta)
    assert np.abs(H - Hfd).max() <= 1e-6 * np.abs(H).max()
    assert np.linalg.eigvalsh(H).min() > 0


def test_jko_moreau_hessian_equals_finite_differences(jko1d):
    basis, x, y, theta = jko1d
    theta = np.array([0.2, 0.6, 0.0])  # keep V convex enough for a unique prox

    def call(th, hessian=False):
        return inv.fy_loss(th, basis, (x, y), kind="jko", tau=TAU, hessian=hessian)

    H = call(theta, True).hessian
    Hfd = _fd_hessian(lambda t: call(t).grad, theta)
    assert np.abs(H - Hfd).max() <= 1e-6 * np.abs(H).max()


def test_jko_hessian_large_lam_tends_to_centred_feature_covariance(jko1d):
    # lam H_lam = Cov_q(phi) - Phi^T Q^1/2 (I + lam K)^-1 Q^1/2 Phi: the gap shrinks like 1 / lam
    basis, x, y, theta = jko1d
    F = np.asarray(basis.features(torch.tensor(y)))
    gaps = []
    for lam in (10.0, 1000.0):
        L = inv.sharpened_fy_loss(theta, basis, (x, y), kind="jko", tau=TAU, lam=lam, eps=EPS,
                                  tol=1e-13, hessian=True)
        q = L.plan.sum(0)
        m = q @ F
        cov = (F * q[:, None]).T @ F - np.outer(m, m) / q.sum()
        gaps.append(np.abs(lam * L.hessian - cov).max() / np.abs(cov).max())
    assert gaps[1] < 0.02 * gaps[0] and gaps[1] < 1e-2


def test_entropic_plain_jko_loss_is_the_exponential_functional(jko1d):
    basis, x, y, theta = jko1d
    n, m = len(x), len(y)
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    Cxy = (x - y.T) ** 2 / (2 * TAU)
    V = np.asarray(basis.features(torch.tensor(y))) @ theta
    ot_eps = ot.solve(a, b, Cxy, eps=EPS, tol=1e-13).value
    lse = np.log((b[None, :] * np.exp(-(Cxy + V[None, :]) / EPS)).sum(1))
    expected = ot_eps + b @ V + EPS * (a @ lse)
    L = inv.fy_loss(theta, basis, (x, y), kind="jko", tau=TAU, eps=EPS, tol=1e-13)
    assert abs(L.value - expected) < 1e-10
    assert L.value >= 0


@pytest.mark.parametrize("rho,lam", [(1.0, 0.0), (1.0, 2.0), (None, 0.0)])
def test_uot_hessian_equals_finite_differences(rho, lam):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(15, 2)), rng.normal(size=(12, 2))
    F = inv.bilinear_cost_basis(x, y)
    A = np.array([[0.8, 0.3], [-0.2, 0.5]])
    P = ot.solve(None, None, np.tensordot(A, F, 2), eps=0.5, rho=rho, tol=1e-13).plan
    if rho is None:
        P = P / P.sum()

    def call(th, hessian=False):
        return inv.sharpened_fy_loss(np.reshape(th, (2, 2)), F, P, lam=lam, eps=0.5, rho=rho,
                                     tol=1e-13, max_iter=100000, hessian=hessian)

    th = A + 0.2
    H = np.asarray(call(th, True).hessian).reshape(4, 4)
    Hfd = _fd_hessian(lambda t: call(t).grad, th)
    assert np.abs(H - Hfd).max() <= 1e-6 * np.abs(H).max()


def test_ijko_l1_prox_newton_satisfies_the_optimality_conditions():
    rng = np.random.default_rng(2)
    basis = inv.polynomial_potential_basis(1, 4)
    x = rng.normal(size=(40, 1)) * 0.6
    y, _ = basis.prox(torch.tensor([0.0, 0.5, 0.0, 0.2]), torch.tensor(x[::-1] * 1.05), 0.5)
    w = 2e-3
    for lam, eps in ((0.0, None), (1.0, 0.1)):
        r = inv.ijko(x, y.numpy(), 0.5, basis, lam=lam, eps=eps, reg="l1", reg_weight=w,
                     tol=1e-10)
        assert r.converged
        g, th = np.asarray(r.grad), np.asarray(r.theta)
        on = th != 0
        # KKT of min L + w |theta|_1: grad = -w sign(theta) on the support, |grad| <= w off it
        np.testing.assert_allclose(g[on], -w * np.sign(th[on]), atol=1e-9)
        assert np.all(np.abs(g[~on]) <= w + 1e-9)


# ----------------------------------------------------------------------------- float32

def _jko_pushforward(n=60, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    Q, B = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([0.5, -1.0])
    y = np.linalg.solve(np.eye(2) + 0.5 * Q, (x - 0.5 * B).T).T[::-1].copy()
    basis = inv.quadratic_potential_basis(2)
    return x, y, basis, basis.from_quadratic(torch.tensor(Q), torch.tensor(B))


def test_float32_jko_losses_are_finite_and_match_float64():
    x, y, basis, theta = _jko_pushforward()
    f32 = dict(dtype=torch.float32)
    th = theta * 0.8
    for kw in (dict(), dict(eps=0.3), dict(eps=0.3, lam=1.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            L64 = inv.sharpened_fy_loss(th, basis, (torch.tensor(x), torch.tensor(y)),
                                        kind="jko", tau=0.5, lam=kw.pop("lam", 0.0), **kw)
            L32 = inv.sharpened_fy_loss(th.to(**f32), basis, (torch.tensor(x, **f32),
                                                              torch.tensor(y, **f32)),
                                        kind="jko", tau=0.5, lam=L64.lam, **kw)
        assert L32.value.dtype == torch.float32 and math.isfinite(float(L32.value))
        # float32: feature sums of 60 terms of size ~10 and a 1.2e-5 solver floor
        assert abs(float(L32.value) - float(L64.value)) <= 1e-4 * (1 + abs(float(L64.value)))
        torch.testing.assert_close(L32.grad.double(), L64.grad, atol=1e-3, rtol=0)


def test_float32_ijko_recovers_the_potential():
    x, y, basis, theta = _jko_pushforward()
    r = inv.ijko(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), 0.5)
    assert r.converged and r.theta.dtype == torch.float32
    # curvature O(1) and a gradient floor 1.2e-5 x feature scale: 1e-3 leaves a margin
    torch.testing.assert_close(r.theta.double(), theta, atol=1e-3, rtol=0)


def test_float32_iuot_converges_without_exhausting_the_inner_solver():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(25, 2)), rng.normal(size=(25, 2))
    A = np.array([[1.0, 0.5], [-0.3, 0.8]])
    F = inv.bilinear_cost_basis(x, y)
    P = ot.solve(None, None, np.tensordot(A, F, 2), eps=0.5, rho=1.0, tol=1e-13).plan
    t = dict(dtype=torch.float32)
    r = inv.iuot(torch.tensor(x, **t), torch.tensor(y, **t), eps=0.5, rho=1.0,
                 plan=torch.tensor(P, **t), tol=1e-7, inner_max_iter=2000)
    assert r.converged and r.theta.dtype == torch.float32
    np.testing.assert_allclose(r.theta.double().numpy(), A, atol=1e-3)


def test_float32_semi_unbalanced_sinkhorn_converges_with_a_float64_tolerance():
    rng = np.random.default_rng(4)
    C = torch.tensor(rng.random((20, 15)), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = inv.semi_unbalanced_sinkhorn(None, None, C, eps=0.1, lam=0.7, tol=1e-12)
    assert r.converged and r.plan.dtype == torch.float32


# ----------------------------------------------------------------------------- input errors

def test_inverse_input_errors():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    F = inv.bilinear_cost_basis(x, y)
    P = np.eye(8) / 8
    basis = inv.polynomial_potential_basis(2, 2)
    half = torch.tensor(x, dtype=torch.float16)
    with pytest.raises(InputError, match="^x_k: dtype"):
        inv.ijko(half, half, 0.5)
    with pytest.raises(InputError, match="^theta: dtype"):
        inv.fy_loss(torch.zeros(2, 2, dtype=torch.float16), F, P, eps=0.5)
    with pytest.raises(InputError, match="^m: dtype"):
        inv.gaussian_jko_step(torch.zeros(2, dtype=torch.bfloat16), np.eye(2), np.eye(2),
                              np.zeros(2), 0.5)
    with pytest.raises(InputError, match="^degree"):
        inv.polynomial_potential_basis(10, 60)
    with pytest.raises(InputError, match="^reg"):
        inv.ijko(x, y, 0.5, reg=np.ones(2))
    with pytest.raises(InputError, match="^reg"):
        inv.iuot(x, y, eps=0.5, rho=1.0, reg=["l1"])
    with pytest.raises(InputError, match="^hessian"):
        inv.fy_loss(np.eye(2), F, P, eps=0.5, hessian="yes")
    with pytest.raises(InputError, match="^plan"):
        inv.iuot(x, y, eps=0.5, rho=1.0, plan=P[:3])
    with pytest.raises(InputError, match="^potential_basis"):
        inv.fy_loss(np.zeros(2), lambda z: 1 / 0, (x, y), kind="jko", tau=0.5)
    with pytest.raises(InputError, match="^observed"):
        inv.fy_loss(np.eye(2), F, (x, y), eps=0.5)
    with pytest.raises(InputError, match="^tau"):
        inv.fy_loss(np.eye(2), F, P, eps=0.5, tau=1.0)
    with pytest.raises(InputError, match="^warn"):
        inv.semi_unbalanced_sinkhorn(None, None, F[0, 0], eps=0.1, lam=1.0, warn="no")
    with pytest.raises(InputError, match="^eps"):
        inv.gaussian_entropic_ot(np.zeros(2), np.eye(2), np.ones(2), np.eye(2), eps=1e-300,
                                 rho=1.0)
    with pytest.raises(InputError, match="^eps"):
        inv.gaussian_entropic_ot(np.zeros(2), np.eye(2), np.ones(2), np.eye(2), eps=1e300,
                                 rho=1.0)
    with pytest.raises(InputError, match="^m1"):
        inv.gaussian_entropic_ot(np.zeros(2), np.eye(2), np.full(2, 1e200), np.eye(2), eps=0.5)
    with pytest.raises(InputError, match="^theta0"):
        inv.ijko(x, y, 0.5, basis, theta0=np.zeros(3))
    assert inv.bilinear_cost_basis(x[:, 0], y[:, 0]).shape == (1, 1, 8, 8)
