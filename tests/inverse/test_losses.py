"""(Sharpened) Fenchel-Young losses: positivity, zero at the truth, Danskin gradients,
calibration, convexity, array conventions and input errors."""

import math

import numpy as np
import pytest
import torch

import measureflow.inverse as inv
from measureflow import InputError, ot

EPS, RHO = 0.5, 1.0
A_TRUE = np.array([[1.0, 0.5], [-0.3, 0.8]])


@pytest.fixture(scope="module")
def uot_problem():
    rng = np.random.default_rng(0)
    n = 25
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    F = inv.bilinear_cost_basis(x, y)
    P = ot.solve(None, None, np.tensordot(A_TRUE, F, 2), eps=EPS, rho=RHO, tol=1e-13).plan
    return x, y, F, P


def test_uot_loss_zero_at_truth_and_positive_elsewhere(uot_problem):
    _, _, F, P = uot_problem
    L = inv.fy_loss(A_TRUE, F, P, eps=EPS, rho=RHO, tol=1e-13)
    assert abs(L.value) < 1e-10
    assert np.abs(L.grad).max() < 1e-9
    rng = np.random.default_rng(1)
    for _ in range(3):
        th = A_TRUE + rng.normal(size=(2, 2))
        assert inv.fy_loss(th, F, P, eps=EPS, rho=RHO).value > 1e-4


def test_uot_loss_convex_along_a_segment(uot_problem):
    _, _, F, P = uot_problem
    t0, t1 = np.zeros((2, 2)), 2 * A_TRUE + 0.3
    v0 = inv.fy_loss(t0, F, P, eps=EPS, rho=RHO).value
    v1 = inv.fy_loss(t1, F, P, eps=EPS, rho=RHO).value
    vm = inv.fy_loss(0.5 * (t0 + t1), F, P, eps=EPS, rho=RHO).value
    assert vm <= 0.5 * (v0 + v1) + 1e-9


def test_uot_gradient_is_danskin_vs_finite_differences(uot_problem):
    _, _, F, P = uot_problem
    Ft, Pt = torch.tensor(F), torch.tensor(P)
    theta = torch.tensor(0.6 * A_TRUE + 0.1, requires_grad=True)

    def f(th):
        return inv.fy_loss(th, Ft, Pt, eps=EPS, rho=RHO, tol=1e-13).value

    assert torch.autograd.gradcheck(f, (theta,), eps=1e-6, atol=1e-6)
    res = inv.fy_loss(theta, Ft, Pt, eps=EPS, rho=RHO, tol=1e-13)
    (g,) = torch.autograd.grad(res.value, theta)
    torch.testing.assert_close(g, res.grad)
    torch.testing.assert_close(res.grad, res.observed_moments - res.model_moments)


@pytest.mark.parametrize("lam", [0.3, 3.0])
def test_sharpened_uot_bounds_calibration_and_gradient(uot_problem, lam):
    _, _, F, P = uot_problem
    Ls = inv.sharpened_fy_loss(A_TRUE, F, P, lam=lam, eps=EPS, rho=RHO, tol=1e-13)
    assert abs(Ls.value) < 1e-10 and np.abs(Ls.grad).max() < 1e-9  # calibrated
    th = np.array([[0.2, -0.4], [0.7, 0.1]])
    L0 = inv.fy_loss(th, F, P, eps=EPS, rho=RHO).value
    Ll = inv.sharpened_fy_loss(th, F, P, lam=lam, eps=EPS, rho=RHO).value
    assert 0 < Ll <= L0 + 1e-10
    # directional finite difference of the value vs the Danskin gradient
    direction = np.array([[1.0, -0.5], [0.3, 0.8]])
    h = 1e-5
    vp = inv.sharpened_fy_loss(th + h * direction, F, P, lam=lam, eps=EPS, rho=RHO, tol=1e-13)
    vm = inv.sharpened_fy_loss(th - h * direction, F, P, lam=lam, eps=EPS, rho=RHO, tol=1e-13)
    g = inv.sharpened_fy_loss(th, F, P, lam=lam, eps=EPS, rho=RHO, tol=1e-13).grad
    assert abs((vp.value - vm.value) / (2 * h) - (g * direction).sum()) < 1e-6


def test_sharpened_uot_inner_plan_satisfies_first_order_conditions(uot_problem):
    # FOC of min <C,pi> + eps KL(pi|ab) + rho KL(pi1|a) + rho KL(pi2|b) + lam KL(pi1|a^) +
    # lam KL(pi2|b^): C + eps log(pi/ab) + (rho log(pi1/a) + lam log(pi1/a^)) (+) (same for b) = 0
    _, _, F, _ = uot_problem
    rng = np.random.default_rng(5)
    n = F.shape[-1]
    P_obs = rng.random((n, n)) * (rng.random((n, n)) < 0.2)
    P_obs /= P_obs.sum()
    a = np.full(n, 1 / n)
    lam = 2.0
    th = np.array([[0.5, 0.1], [0.0, -0.4]])
    res = inv.sharpened_fy_loss(th, F, P_obs, lam=lam, eps=EPS, rho=RHO, a=a, b=a, tol=1e-13)
    pi = res.plan
    C = np.tensordot(th, F, 2)
    ah, bh = P_obs.sum(1), P_obs.sum(0)
    r1, r2 = pi.sum(1), pi.sum(0)
    rows, cols = ah > 0, bh > 0
    assert np.all(pi[~rows] == 0) and np.all(pi[:, ~cols] == 0)
    sub = np.ix_(rows, cols)
    foc = (C[sub] + EPS * np.log(pi[sub] / np.outer(a[rows], a[cols]))
           + (RHO * np.log(r1[rows] / a[rows]) + lam * np.log(r1[rows] / ah[rows]))[:, None]
           + (RHO * np.log(r2[cols] / a[cols]) + lam * np.log(r2[cols] / bh[cols]))[None, :])
    assert np.abs(foc).max() < 1e-6


def test_uot_balanced_rho_none(uot_problem):
    x, y, F, _ = uot_problem
    P = ot.solve(None, None, np.tensordot(A_TRUE, F, 2), eps=EPS, tol=1e-13).plan
    L = inv.fy_loss(A_TRUE, F, P, eps=EPS, rho=None, tol=1e-13)
    assert abs(L.value) < 1e-9
    assert inv.fy_loss(np.zeros((2, 2)), F, P, eps=EPS, rho=None).value > 1e-3


def test_uot_numpy_and_torch_io(uot_problem):
    _, _, F, P = uot_problem
    r = inv.fy_loss(A_TRUE, F, P, eps=EPS, rho=RHO)
    assert isinstance(r.value, float) and isinstance(r.grad, np.ndarray)
    assert r.grad.shape == (2, 2) and r.plan.shape == P.shape
    rt = inv.fy_loss(torch.tensor(A_TRUE), F, P, eps=EPS, rho=RHO)
    assert isinstance(rt.value, torch.Tensor) and rt.grad.dtype == torch.float64
    assert isinstance(rt.plan, torch.Tensor)


def test_uot_input_errors(uot_problem):
    _, _, F, P = uot_problem
    with pytest.raises(InputError, match="theta"):
        inv.fy_loss(np.zeros(3), F, P, eps=EPS, rho=RHO)
    with pytest.raises(InputError, match="eps"):
        inv.fy_loss(A_TRUE, F, P, eps=None, rho=RHO)
    with pytest.raises(InputError, match="eps"):
        inv.fy_loss(A_TRUE, F, P, eps=-1.0, rho=RHO)
    with pytest.raises(InputError, match="observed"):
        inv.fy_loss(A_TRUE, F, -P, eps=EPS, rho=RHO)
    with pytest.raises(InputError, match="basis"):
        inv.fy_loss(A_TRUE, F[..., :3], P, eps=EPS, rho=RHO)
    with pytest.raises(InputError, match="lam"):
        inv.sharpened_fy_loss(A_TRUE, F, P, lam=-1.0, eps=EPS, rho=RHO)
    with pytest.raises(InputError, match="kind"):
        inv.fy_loss(A_TRUE, F, P, kind="xyz", eps=EPS, rho=RHO)
    P_bad = P.copy()
    P_bad[0, 0] = np.nan
    with pytest.raises(InputError, match="observed"):
        inv.fy_loss(A_TRUE, F, P_bad, eps=EPS, rho=RHO)


# ----------------------------------------------------------------------------- JKO

TAU = 0.5
Q_TRUE, B_TRUE = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([0.5, -1.0])


@pytest.fixture(scope="module")
def jko_data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 2))
    H = np.eye(2) + TAU * Q_TRUE
    y = np.linalg.solve(H, (x - TAU * B_TRUE).T).T[::-1].copy()  # exact pushforward, shuffled
    basis = inv.quadratic_potential_basis(2)
    theta = basis.from_quadratic(torch.tensor(Q_TRUE), torch.tensor(B_TRUE)).numpy()
    return x, y, basis, theta


def test_jko_plain_loss_zero_at_truth_positive_elsewhere(jko_data):
    x, y, basis, theta = jko_data
    L = inv.fy_loss(theta, basis, (x, y), kind="jko", tau=TAU)
    assert abs(L.value) < 1e-9 and np.abs(L.grad).max() < 1e-9
    L1 = inv.fy_loss(theta + 0.3, basis, (x, y), kind="jko", tau=TAU)
    assert L1.value > 1e-4
    # prox of the quadratic potential is the closed form (I + tau Q)^{-1}(x - tau b)
    H = np.eye(2) + TAU * Q_TRUE
    np.testing.assert_allclose(L.prox, np.linalg.solve(H, (x - TAU * B_TRUE).T).T, atol=1e-10)


def test_jko_plain_gradient_vs_finite_differences_nonquadratic():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 1))
    y = rng.normal(size=(30, 1)) * 0.8
    basis = inv.polynomial_potential_basis(1, 4)
    theta = torch.tensor([0.1, 1.0, 0.0, 0.3], dtype=torch.float64, requires_grad=True)
    xt, yt = torch.tensor(x), torch.tensor(y)
    assert torch.autograd.gradcheck(
        lambda t: inv.fy_loss(t, basis, (xt, yt), kind="jko", tau=0.2).value, (theta,),
        eps=1e-6, atol=1e-6)


def _check_jko_sharpened_gradient_and_surrogate(jko_data, n, eps, tol):
    """Danskin gradient (autograd == grad == central FD) and 2 lam L_lam -> Var_b(g_c + V)."""
    x, y, basis, theta = jko_data
    x, y = x[:n], y[:n]
    th = torch.tensor(theta * 0.7, requires_grad=True)
    xt, yt = torch.tensor(x), torch.tensor(y)
    lam = 0.5
    v = inv.sharpened_fy_loss(th, basis, (xt, yt), kind="jko", tau=TAU, lam=lam, eps=eps,
                              tol=tol)
    assert float(v.value.detach()) > 0
    (g,) = torch.autograd.grad(v.value, th)
    torch.testing.assert_close(g, v.grad)
    direction = torch.tensor([1.0, -0.5, 0.3, 0.8, -0.2], dtype=torch.float64)
    h = 1e-5

    def val(t):
        return float(inv.sharpened_fy_loss(t, basis, (xt, yt), kind="jko", tau=TAU, lam=lam,
                                           eps=eps, tol=tol).value)

    fd = (val(th.detach() + h * direction) - val(th.detach() - h * direction)) / (2 * h)
    assert abs(fd - float(v.grad @ direction)) < 1e-6
    # lam -> inf: 2 lam L_lam -> Var_b(g_c + V_theta), g_c the balanced potential of |x-y|^2/2tau
    a = torch.full((n,), 1 / n, dtype=torch.float64)
    Cxy = torch.cdist(xt, yt) ** 2 / (2 * TAU)
    g_c = torch.as_tensor(inv.semi_unbalanced_sinkhorn(a, a, Cxy, eps=eps, lam=math.inf,
                                                       max_iter=50000, tol=1e-13).potential_g)
    V = basis.features(yt) @ th.detach()
    h = g_c + V
    surrogate = float((a * (h - (a * h).sum()) ** 2).sum())
    vals = [2 * lam * float(inv.sharpened_fy_loss(th.detach(), basis, (xt, yt), kind="jko",
                                                  tau=TAU, lam=lam, eps=eps, tol=tol).value)
            for lam in (100.0, 1000.0)]
    assert abs(vals[1] - surrogate) < abs(vals[0] - surrogate)
    assert abs(vals[1] - surrogate) < 0.02 * surrogate


def test_jko_sharpened_positive_gradient_and_surrogate_limit(jko_data):
    _check_jko_sharpened_gradient_and_surrogate(jko_data, n=20, eps=0.2, tol=1e-12)


def test_semi_unbalanced_sinkhorn_against_pot_and_duality():
    rng = np.random.default_rng(4)
    n, m = 20, 15
    C = rng.random((n, m))
    a = rng.random(n) + 0.5
    b = rng.random(m) + 0.5
    a, b = a / a.sum(), b / b.sum() * 1.3
    res = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.1, lam=0.7, tol=1e-13)
    assert res.converged
    np.testing.assert_allclose(res.plan.sum(1), a, atol=1e-12)
    assert abs(res.value - res.dual_value) < 1e-9
    # first-order condition of the second marginal: (P^T 1) = b exp(-g / lam)
    np.testing.assert_allclose(res.plan.sum(0), b * np.exp(-res.potential_g / 0.7), atol=1e-10)
    # balanced limit equals measureflow.ot.solve
    bb = b / b.sum()
    rb = inv.semi_unbalanced_sinkhorn(a, bb, C, eps=0.1, lam=math.inf, tol=1e-13)
    ro = ot.solve(a, bb, C, eps=0.1, tol=1e-13)
    assert abs(rb.value - ro.value) < 1e-9
    with pytest.raises(InputError, match="lam"):
        inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.1, lam=0.0)
    # small problems run single-threaded internally; the caller's thread count is restored
    k = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.1, lam=0.7, tol=1e-8)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(k)


def test_jko_input_errors(jko_data):
    x, y, basis, theta = jko_data
    with pytest.raises(InputError, match="tau"):
        inv.fy_loss(theta, basis, (x, y), kind="jko")
    with pytest.raises(InputError, match="observed"):
        inv.fy_loss(theta, basis, x, kind="jko", tau=TAU)
    with pytest.raises(InputError, match="x_k, x_next"):
        inv.fy_loss(theta, basis, (x, y[:, :1]), kind="jko", tau=TAU)
    with pytest.raises(InputError, match="eps"):
        inv.sharpened_fy_loss(theta, basis, (x, y), kind="jko", tau=TAU, lam=1.0)
    with pytest.raises(InputError, match="theta"):
        inv.fy_loss(theta[:3], basis, (x, y), kind="jko", tau=TAU)
    with pytest.raises(InputError, match="rho"):
        inv.fy_loss(theta, basis, (x, y), kind="jko", tau=TAU, rho=1.0)


def test_suot_core_warm_start_gives_same_plan():
    rng = np.random.default_rng(6)
    C = torch.tensor(rng.random((12, 10)) * 3)
    a = torch.full((12,), 1 / 12, dtype=torch.float64)
    b = torch.full((10,), 1 / 10, dtype=torch.float64)
    r1 = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.05, lam=2.0, max_iter=20000, tol=1e-13)
    r2 = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.05, lam=2.0, max_iter=20000, tol=1e-13,
                                      init=r1.potential_g + 0.1)
    assert r1.converged and r2.converged and r2.n_iter < r1.n_iter
    torch.testing.assert_close(r1.plan, r2.plan, atol=1e-10, rtol=0)
