import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

import measureflow.ot as mot
import ot as pot
from measureflow import InputError
from measureflow.datasets import point_clouds, random_spd
from measureflow.spectral import displacement_moment, spectral_bures, spectral_wasserstein
from measureflow.spectral.flows import displacement_interpolation, interpolation_action


def _clouds(n, m, d, seed):
    return point_clouds(n, m, d, seed, shift=1.0, scale=np.linspace(0.5, 2, d))


def test_p1_is_w2():
    x, y = _clouds(15, 12, 3, 0)
    a = np.full(15, 1 / 15)
    b = np.full(12, 1 / 12)
    r = spectral_wasserstein(x, y, p=1)
    ref = pot.emd2(a, b, pot.dist(x, y))
    assert r.value ** 2 == pytest.approx(ref, rel=1e-10)
    assert np.allclose(r.Q, np.eye(3)) and r.gap < 1e-10


def _w_inf_lp_2d(x, y, n_angles=720):
    # independent solver for d = 2, p = inf: lambda_max(S) = max_theta u^T S u on a fine grid
    n, m = len(x), len(y)
    th = np.linspace(0, np.pi, n_angles, endpoint=False)
    U = np.stack([np.cos(th), np.sin(th)], 1)
    D = y[None, :, :] - x[:, None, :]
    proj = np.einsum("ijd,kd->kij", D, U) ** 2  # (K, n, m)
    A_ub = np.hstack([proj.reshape(n_angles, -1), -np.ones((n_angles, 1))])
    A_eq = np.zeros((n + m, n * m + 1))
    for i in range(n):
        A_eq[i, i * m:(i + 1) * m] = 1
    for j in range(m):
        A_eq[n + j, j:n * m:m] = 1
    b_eq = np.r_[np.full(n, 1 / n), np.full(m, 1 / m)]
    c = np.zeros(n * m + 1)
    c[-1] = 1
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n_angles), A_eq=A_eq, b_eq=b_eq,
                  bounds=[(0, None)] * (n * m) + [(None, None)], method="highs")
    return res.fun


def test_p_inf_matches_independent_lp_2d():
    x, y = _clouds(8, 7, 2, 1)
    r = spectral_wasserstein(x, y, p=math.inf, tol=1e-8)
    assert r.converged and r.gap <= 1e-8 * r.value ** 2
    ref = _w_inf_lp_2d(x, y)  # lower approximation of lambda_max (grid), relative error ~1e-5
    assert r.value ** 2 == pytest.approx(ref, rel=5e-5)
    assert r.value ** 2 >= ref - 1e-12


def test_p2_matches_direct_minimisation():
    from scipy.optimize import minimize

    x, y = _clouds(4, 4, 2, 2)
    n = 4
    D = y[None] - x[:, None]

    def f(z):
        P = z.reshape(n, n)
        S = np.einsum("ij,ijd,ije->de", P, D, D)
        return np.linalg.norm(S)

    cons = [{"type": "eq", "fun": lambda z: z.reshape(n, n).sum(1) - 1 / n},
            {"type": "eq", "fun": lambda z: z.reshape(n, n).sum(0)[:-1] - 1 / n}]
    best = min(minimize(f, np.random.default_rng(s).dirichlet(np.ones(n * n)) / n * 1.0,
                        bounds=[(0, 1)] * n * n, constraints=cons, method="SLSQP",
                        options={"ftol": 1e-14, "maxiter": 500}).fun for s in range(4))
    r = spectral_wasserstein(x, y, p=2, tol=1e-8)
    assert r.value ** 2 == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("p", [1.5, 2, 4, math.inf])
def test_certificate_plan_and_Q(p):
    x, y = _clouds(20, 25, 3, 3)
    r = spectral_wasserstein(x, y, p=p)
    assert r.converged and 0 <= r.gap <= 1e-6 * r.value ** 2 + 1e-14
    # plan is a coupling and the value is gamma(Sigma_plan)
    assert np.allclose(r.plan.sum(1), 1 / 20) and np.allclose(r.plan.sum(0), 1 / 25)
    S = displacement_moment(x, y, r.plan)
    ev = np.linalg.eigvalsh(S)
    val = ev.max() if math.isinf(p) else (ev ** p).sum() ** (1 / p)
    assert r.value ** 2 == pytest.approx(val, rel=1e-10)
    # Q in K_p and the lower bound is W2^2 between the Q^{1/2}-pushed clouds (POT, independent)
    evq, Vq = np.linalg.eigh(r.Q)
    assert evq.min() >= -1e-12
    pp = 1.0 if math.isinf(p) else p / (p - 1)
    assert (np.clip(evq, 0, None) ** pp).sum() ** (1 / pp) <= 1 + 1e-9
    R = (Vq * np.sqrt(np.clip(evq, 0, None))) @ Vq.T
    lb = pot.emd2(np.full(20, 1 / 20), np.full(25, 1 / 25), pot.dist(x @ R, y @ R))
    assert lb == pytest.approx(r.lower, rel=1e-8)


@pytest.mark.parametrize("p", [2, math.inf])
def test_w2_bounds_and_triangle(p):
    d = 3
    xs = [_clouds(15, 15, d, s)[k] for s in range(2) for k in range(2)][:3]
    W = {}
    for i in range(3):
        for j in range(i + 1, 3):
            r = spectral_wasserstein(xs[i], xs[j], p=p)
            w2 = spectral_wasserstein(xs[i], xs[j], p=1).value
            lo = d ** (1 / p - 1) * w2 ** 2
            assert lo - 1e-9 <= r.value ** 2 <= w2 ** 2 + 1e-9
            W[i, j] = r.value
    assert W[0, 2] <= W[0, 1] + W[1, 2] + 1e-6
    assert W[0, 1] <= W[0, 2] + W[1, 2] + 1e-6


def test_lower_bound_attained_isotropic():
    # N(0, alpha I) vs N(0, beta I) in the Gaussian case: W^2 = d^{1/p} (sqrt a - sqrt b)^2
    d, al, be = 3, 4.0, 1.0
    for p in (1, 2, math.inf):
        v = spectral_bures(al * np.eye(d), be * np.eye(d), p)
        e = (d ** (0 if math.isinf(p) else 1 / p)) * (np.sqrt(al) - np.sqrt(be)) ** 2
        assert v ** 2 == pytest.approx(e)


def test_torch_in_out_and_gradient():
    x, y = _clouds(10, 10, 2, 4)
    xt = torch.tensor(x, requires_grad=True)
    r = spectral_wasserstein(xt, torch.tensor(y), p=math.inf)
    assert isinstance(r.value, torch.Tensor) and isinstance(r.plan, torch.Tensor)
    r.value.backward()
    # envelope theorem: gradient of gamma(Sigma_plan)^{1/2} with the plan fixed
    P = r.plan.detach()
    xx = torch.tensor(x, requires_grad=True)
    D = torch.tensor(y)[None] - xx[:, None]
    S = torch.einsum("ij,ijd,ije->de", P, D, D)
    Q = r.Q.detach()
    ((Q * S).sum() / (2 * r.value.detach())).backward()  # Danskin: d sqrt(<Q*, S>) at the saddle
    assert torch.allclose(xt.grad, xx.grad)
    rn = spectral_wasserstein(x, y, p=2)
    assert isinstance(rn.value, float) and isinstance(rn.plan, np.ndarray)


def test_bad_input():
    x, y = _clouds(5, 5, 2, 0)
    with pytest.raises(InputError, match="^p"):
        spectral_wasserstein(x, y, p=0.5)
    with pytest.raises(InputError, match="x, y"):
        spectral_wasserstein(x, y[:, :1], p=2)
    with pytest.raises(InputError, match="^a"):
        spectral_wasserstein(x, y, a=-np.ones(5), p=2)
    with pytest.raises(InputError, match="^S0"):
        spectral_bures(-np.eye(2), np.eye(2), 2)
    with pytest.raises(InputError, match="^S1"):
        spectral_bures(np.eye(2), np.eye(3), 2)
    with pytest.raises(InputError, match="^method"):
        spectral_bures(np.eye(2), np.diag([1.0, 2]), 2, m1=np.ones(2), method="closed_form")


def _spd(rng, d):
    return random_spd(d, rng, jitter=0.2)


def test_bures_p1_equals_bures_w2():
    rng = np.random.default_rng(0)
    S0, S1, m0, m1 = _spd(rng, 3), _spd(rng, 3), rng.normal(size=3), rng.normal(size=3)
    ref = mot.bures_wasserstein(m0, S0, m1, S1)
    assert spectral_bures(S0, S1, 1, m0, m1) == pytest.approx(ref, rel=1e-10)
    assert spectral_bures(S0, S1, 1, m0, m1, method="maxmin", tol=1e-10) == pytest.approx(
        ref, rel=1e-8)


@pytest.mark.parametrize("p", [2, 4, math.inf])
def test_bures_commuting_closed_form_vs_general(p):
    rng = np.random.default_rng(1)
    V = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    a, b = np.array([4.0, 1.0, 2.0]), np.array([1.0, 4.0, 0.5])
    S0, S1 = V @ np.diag(a) @ V.T, V @ np.diag(b) @ V.T
    e = np.abs(np.sqrt(a) - np.sqrt(b)) ** 2
    exact = e.max() if math.isinf(p) else (e ** p).sum() ** (1 / p)
    assert spectral_bures(S0, S1, p) ** 2 == pytest.approx(exact, rel=1e-12)
    r = spectral_bures(S0, S1, p, method="maxmin", full_output=True)
    assert r.value ** 2 == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("p", [2, math.inf])
def test_bures_general_certificate(p):
    rng = np.random.default_rng(2)
    S0, S1, m0, m1 = _spd(rng, 3), _spd(rng, 3), rng.normal(size=3), rng.normal(size=3)
    r = spectral_bures(S0, S1, p, m0, m1, full_output=True)
    assert r.converged and r.gap <= 1e-6 * r.value ** 2
    # K feasible: block matrix PSD
    B = np.block([[S0, r.K], [r.K.T, S1]])
    assert np.linalg.eigvalsh(B).min() >= -1e-9
    # the lower bound is the Bures formula at Q (independent: ot.bures_wasserstein2)
    ev, V = np.linalg.eigh(r.Q)
    R = (V * np.sqrt(np.clip(ev, 0, None))) @ V.T
    dm = m1 - m0
    lb = mot.bures_wasserstein2(np.zeros(3), R @ S0 @ R, np.zeros(3), R @ S1 @ R) + dm @ r.Q @ dm
    # (Q is rank-deficient at p = inf: square roots of ~0 eigenvalues limit the agreement)
    assert lb == pytest.approx(r.lower, rel=1e-6)
    # comparison bounds with W2
    w2 = mot.bures_wasserstein(m0, S0, m1, S1) ** 2
    assert 3 ** (1 / p - 1) * w2 - 1e-9 <= r.value ** 2 <= w2 + 1e-9


@pytest.mark.parametrize("p", [2, math.inf])
def test_geodesic_static_equals_dynamic(p):
    x, y = _clouds(10, 10, 2, 5)
    r = spectral_wasserstein(x, y, p=p, tol=1e-8)
    act = interpolation_action(x, y, r.plan, p, n_times=8)
    assert act == pytest.approx(r.value ** 2, rel=1e-10)
    # constant speed: W(mu_0, mu_t) = t W(mu_0, mu_1)
    z, wz = displacement_interpolation(x, y, r.plan, 0.5)
    rh = spectral_wasserstein(x, z, b=wz, p=p, tol=1e-8)
    assert rh.value == pytest.approx(0.5 * r.value, rel=1e-6)


@pytest.mark.parametrize("p", [2, 4, math.inf])
def test_bures_primal_solver_agrees_with_maxmin(p):
    rng = np.random.default_rng(3)
    S0, S1, m0, m1 = _spd(rng, 3), _spd(rng, 3), rng.normal(size=3), rng.normal(size=3)
    mm = spectral_bures(S0, S1, p, m0, m1, method="maxmin", full_output=True)
    pr = spectral_bures(S0, S1, p, m0, m1, method="primal", full_output=True)
    # primal K is feasible (an upper bound) and within the certified gap of the max-min value
    assert np.linalg.eigvalsh(np.block([[S0, pr.K], [pr.K.T, S1]])).min() >= -1e-9
    assert pr.value ** 2 >= mm.lower - 1e-12
    assert pr.value == pytest.approx(mm.value, rel=1e-6)


def test_bures_torch_in_out():
    S0 = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    S1 = torch.eye(2, dtype=torch.float64)
    v = spectral_bures(S0, S1, math.inf)
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float64
    assert isinstance(spectral_bures(S0.numpy(), S1.numpy(), 2), float)


@pytest.mark.parametrize("p", [2, math.inf])
def test_invariances(p):
    # rotation, common translation and scaling: W(c R x + t, c R y + t) = |c| W(x, y)
    x, y = _clouds(9, 11, 3, 6)
    R = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    t, c = np.array([1.0, -2.0, 0.5]), -1.7
    w = spectral_wasserstein(x, y, p=p).value
    w2 = spectral_wasserstein(c * x @ R.T + t, c * y @ R.T + t, p=p).value
    assert w2 == pytest.approx(abs(c) * w, rel=1e-5)
    # symmetry
    assert spectral_wasserstein(y, x, p=p).value == pytest.approx(w, rel=1e-5)


def test_p_inf_plan_splits_mass():
    # equal uniform weights, yet the optimal p = inf coupling is not a permutation: it beats every
    # permutation (here by ~40 %) by splitting mass (arXiv 2604.04891, Sec. 3)
    import itertools

    rng = np.random.default_rng(73)
    x, y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    r = spectral_wasserstein(x, y, p=math.inf)
    perm_best = min(
        np.linalg.eigvalsh(sum(np.outer(y[j] - x[i], y[j] - x[i]) for i, j in enumerate(pm))
                           / 3).max() for pm in itertools.permutations(range(3)))
    assert r.value ** 2 < 0.9 * perm_best
    assert (r.plan > 1e-12).sum() > 3
