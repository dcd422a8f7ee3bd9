"""Entropic OT (ot.solve with eps > 0): vs POT, eps -> 0, unbalanced, gradients, bad input."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import xlogy

import measureflow.ot as mot
from measureflow import InputError
from measureflow.core import ConvergenceWarning
from measureflow.core.linalg import sqdist

pot = pytest.importorskip("ot")


def _problem(n=40, m=30, d=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.5
    a = rng.random(n) + 0.1
    b = rng.random(m) + 0.1
    a /= a.sum()
    b /= b.sum()
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    return a, b, C, x, y


def _entropy(w):
    w = w[w > 0]
    return float(-(w * np.log(w)).sum())


@pytest.mark.parametrize("eps", [1.0, 0.15])
def test_plan_matches_pot_sinkhorn_log(eps):
    a, b, C, *_ = _problem(20, 15)
    r = mot.solve(a, b, C, eps=eps, tol=1e-12, max_iter=50_000)
    P = pot.sinkhorn(a, b, C, eps, method="sinkhorn_log", stopThr=1e-13, numItermax=50_000)
    assert r.converged
    np.testing.assert_allclose(r.plan, P, atol=1e-11)
    # value = OT_eps = <C,P> + eps KL(P | a x b) (primal of POT's plan).
    kl = xlogy(P, P / np.outer(a, b)).sum() - P.sum() + 1.0
    assert abs(r.value - ((C * P).sum() + eps * kl)) < 1e-9
    assert abs(r.linear_cost - (C * P).sum()) < 1e-9
    # Plan formula and marginals.
    P2 = np.outer(a, b) * np.exp((r.potential_f[:, None] + r.potential_g[None] - C) / eps)
    np.testing.assert_allclose(r.plan, P2, atol=1e-15)
    assert np.abs(r.plan.sum(1) - a).sum() + np.abs(r.plan.sum(0) - b).sum() <= 1e-12
    assert r.errors[-1] <= 1e-12 and r.method == "sinkhorn"


def test_eps_to_zero_with_gap_bound():
    a, b, C, *_ = _problem(15, 12, seed=1)
    exact = mot.solve(a, b, C).value
    bound_h = min(_entropy(a), _entropy(b))
    scale = C.max() - C.min()
    gaps = []
    for rel in [1e-1, 1e-2, 3e-3]:
        eps = rel * scale
        r = mot.solve(a, b, C, eps=eps, max_iter=100_000, tol=1e-9)
        assert r.converged
        # Documented bound: 0 <= value - OT_0 <= eps min(H(a), H(b)), same for <C, P>.
        assert -1e-9 <= r.value - exact <= eps * bound_h + 1e-9
        assert -1e-9 <= r.linear_cost - exact <= eps * bound_h + 1e-9
        gaps.append(r.value - exact)
    assert gaps[0] > gaps[1] > gaps[2]


@pytest.mark.parametrize("rho", [0.3, 3.0])
def test_unbalanced_matches_pot(rho):
    a, b, C, *_ = _problem(20, 15, seed=2)
    b = 2.0 * b  # unequal masses are allowed when rho is given
    eps = 0.2
    r = mot.solve(a, b, C, eps=eps, rho=rho, tol=1e-13, max_iter=50_000)
    P = pot.sinkhorn_unbalanced(a, b, C, eps, rho, stopThr=1e-16, numItermax=100_000,
                                method="sinkhorn", reg_type="kl")
    assert r.converged and r.method == "sinkhorn_unbalanced"
    np.testing.assert_allclose(r.plan, P, atol=1e-11)
    ab = np.outer(a, b)

    def kl(p, q):
        return (p * np.log(p / q)).sum() - p.sum() + q.sum()

    primal = (C * P).sum() + eps * kl(P, ab) + rho * kl(P.sum(1), a) + rho * kl(P.sum(0), b)
    assert abs(r.value - primal) < 1e-9


def test_unbalanced_large_rho_tends_to_balanced():
    a, b, C, *_ = _problem(20, 15, seed=3)
    bal = mot.solve(a, b, C, eps=1.0, tol=1e-12)
    d10 = np.abs(mot.solve(a, b, C, eps=1.0, rho=10.0, tol=1e-10).plan - bal.plan).sum()
    d100 = np.abs(mot.solve(a, b, C, eps=1.0, rho=100.0, tol=1e-10).plan - bal.plan).sum()
    assert d100 < 0.2 * d10
    inf = mot.solve(a, b, C, eps=1.0, rho=np.inf, tol=1e-12)
    np.testing.assert_allclose(inf.plan, bal.plan, atol=1e-14)


def test_small_eps_is_finite():
    a, b, C, *_ = _problem(15, 12, seed=4)
    scale = C.max() - C.min()
    exact = mot.solve(a, b, C).value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = mot.solve(a, b, C, eps=1e-4 * scale, max_iter=400, tol=1e-6)
    for v in (r.value, r.linear_cost):
        assert np.isfinite(v)
    assert np.all(np.isfinite(r.plan)) and np.all(np.isfinite(r.potential_f))
    assert np.all(np.isfinite(r.potential_g))
    assert abs(r.linear_cost - exact) <= 5e-2 * scale
    # Unbalanced, same eps.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ru = mot.solve(a, b, C, eps=1e-4 * scale, rho=1.0, max_iter=200)
    assert np.isfinite(ru.value) and np.all(np.isfinite(ru.plan))


def test_warm_start_and_eps_scaling_agree():
    a, b, C, *_ = _problem(20, 15, seed=5)
    r0 = mot.solve(a, b, C, eps=0.3, eps_scaling=None, tol=1e-11, max_iter=50_000)
    r1 = mot.solve(a, b, C, eps=0.3, eps_scaling=0.5, tol=1e-11, max_iter=50_000)
    np.testing.assert_allclose(r0.plan, r1.plan, atol=1e-10)
    warm = mot.solve(a, b, C, eps=0.3, init=(r0.potential_f, r0.potential_g), tol=1e-11)
    assert warm.n_iter <= 2
    np.testing.assert_allclose(warm.plan, r0.plan, atol=1e-10)


def test_nonconvergence_is_reported():
    a, b, C, *_ = _problem(10, 8, seed=6)
    with pytest.warns(ConvergenceWarning):
        r = mot.solve(a, b, C, eps=0.01, max_iter=3, tol=1e-14, eps_scaling=None)
    assert not r.converged and r.n_iter == 3 and len(r.errors) == 3
    # The reported error is that of the returned plan (no newer, unmeasured iterate).
    P = r.plan
    viol = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    assert abs(viol - r.errors[-1]) < 1e-12 * max(1.0, viol)
    # Same with eps-scaling stages and for the unbalanced solver.
    with pytest.warns(ConvergenceWarning):
        r = mot.solve(a, b, C, eps=0.001, max_iter=7, tol=1e-14, rho=0.5)
    assert not r.converged and r.n_iter == 7
    P = r.plan
    at = a * np.exp(-r.potential_f / 0.5)
    bt = b * np.exp(-r.potential_g / 0.5)
    viol = np.abs(P.sum(1) - at).sum() + np.abs(P.sum(0) - bt).sum()
    assert abs(viol - r.errors[-1]) < 1e-10 * max(1.0, viol)


def test_float32_default_tol_converges():
    a, b, C, *_ = _problem(12, 9, seed=5)
    t = [torch.tensor(v, dtype=torch.float32) for v in (a, b, C)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = mot.solve(*t, eps=0.1)
    assert r.converged and r.plan.dtype == torch.float32
    assert r.errors[-1] <= 100 * torch.finfo(torch.float32).eps


def test_zero_weights():
    a, b, C, *_ = _problem(20, 15, seed=7)
    a = a.copy()
    a[:5] = 0
    a /= a.sum()
    r = mot.solve(a, b, C, eps=0.3, tol=1e-12)
    P = pot.sinkhorn(a, b, C, 0.3, method="sinkhorn_log", stopThr=1e-13, numItermax=50_000)
    assert r.converged and np.all(np.isfinite(r.potential_f))
    np.testing.assert_allclose(r.plan, P, atol=1e-11)
    assert np.all(r.plan[:5] == 0)


def test_numpy_and_torch_io():
    a, b, C, *_ = _problem(10, 8, seed=8)
    rn = mot.solve(a, b, C, eps=1.0)
    assert isinstance(rn.value, float) and isinstance(rn.plan, np.ndarray)
    Ct = torch.tensor(C, dtype=torch.float32)
    rt = mot.solve(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32), Ct,
                   eps=1.0, tol=1e-5)
    assert isinstance(rt.plan, torch.Tensor) and rt.plan.dtype == torch.float32
    assert abs(float(rt.value) - rn.value) < 1e-4


def test_gradients_vs_finite_differences():
    a, b, C, x, y = _problem(6, 5, seed=9)
    eps = 0.3
    kw = dict(eps=eps, tol=1e-13, max_iter=50_000)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y)
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b)
    r0 = mot.solve(at, bt, sqdist(xt, yt), **kw)
    gx, ga = torch.autograd.grad(r0.value, (xt, at))
    kw["init"] = (r0.potential_f.detach().numpy(), r0.potential_g.detach().numpy())
    # x: central differences on every coordinate.
    h = 1e-5
    fd = np.zeros_like(x)
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += h
            xm[i, k] -= h
            cp = ((xp[:, None] - y[None]) ** 2).sum(-1)
            cm = ((xm[:, None] - y[None]) ** 2).sum(-1)
            fd[i, k] = (mot.solve(a, b, cp, **kw).value - mot.solve(a, b, cm, **kw).value) / (2 * h)
    np.testing.assert_allclose(gx.numpy(), fd, atol=1e-7)
    # a: mass-preserving directions (the gradient in a is defined up to a constant).
    rng = np.random.default_rng(0)
    for _ in range(3):
        d = rng.normal(size=a.shape)
        d -= d.mean()
        b2 = b * 1.0
        vp = mot.solve(a + h * d, b2 * (1 + h * d.sum()), C, **kw).value
        vm = mot.solve(a - h * d, b2 * (1 - h * d.sum()), C, **kw).value
        assert abs((vp - vm) / (2 * h) - float(ga.numpy() @ d)) < 1e-7
    # C: gradient is the plan.
    Ct = torch.tensor(C, requires_grad=True)
    kwt = dict(kw, init=tuple(torch.tensor(t) for t in kw["init"]))
    (gC,) = torch.autograd.grad(mot.solve(torch.tensor(a), torch.tensor(b), Ct, **kwt).value, Ct)
    E = np.zeros_like(C)
    E[2, 3] = 1.0
    fdC = (mot.solve(a, b, C + h * E, **kw).value - mot.solve(a, b, C - h * E, **kw).value) / (2 * h)
    assert abs(gC[2, 3].item() - fdC) < 1e-8


def test_unbalanced_gradients_vs_finite_differences():
    a, b, C, *_ = _problem(10, 8, seed=10)
    kw = dict(eps=0.3, rho=0.7, tol=1e-13, max_iter=50_000)
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    Ct = torch.tensor(C, requires_grad=True)
    r0 = mot.solve(at, bt, Ct, **kw)
    ga, gb, gC = torch.autograd.grad(r0.value, (at, bt, Ct))
    kw["init"] = (r0.potential_f.detach().numpy(), r0.potential_g.detach().numpy())
    h = 1e-6
    for i in (0, 3):
        e = np.zeros_like(a)
        e[i] = h
        fd = (mot.solve(a + e, b, C, **kw).value - mot.solve(a - e, b, C, **kw).value) / (2 * h)
        assert abs(fd - ga[i].item()) < 1e-7
    e = np.zeros_like(b)
    e[1] = h
    fd = (mot.solve(a, b + e, C, **kw).value - mot.solve(a, b - e, C, **kw).value) / (2 * h)
    assert abs(fd - gb[1].item()) < 1e-7
    E = np.zeros_like(C)
    E[4, 5] = h
    fd = (mot.solve(a, b, C + E, **kw).value - mot.solve(a, b, C - E, **kw).value) / (2 * h)
    assert abs(fd - gC[4, 5].item()) < 1e-8


@pytest.mark.parametrize("kwargs, name", [
    (dict(eps=0.0), "eps"), (dict(eps=-1.0), "eps"), (dict(eps=np.nan), "eps"),
    (dict(eps=0.1, rho=0.0), "rho"), (dict(eps=0.1, rho=-2.0), "rho"),
    (dict(eps=0.1, max_iter=0), "max_iter"), (dict(eps=0.1, tol=-1.0), "tol"),
    (dict(eps=0.1, eps_scaling=1.5), "eps_scaling"), (dict(eps=0.1, eps_scaling="fast"),
                                                       "eps_scaling"),
    (dict(eps=0.1, init=(np.zeros(3), np.zeros(3))), "init"), (dict(eps=0.1, init=3), "init"),
    (dict(rho=1.0), "rho"), (dict(eps="a"), "eps"),
])
def test_bad_parameters_raise(kwargs, name):
    a, b, C, *_ = _problem(6, 5)
    with pytest.raises(InputError, match=f"^{name}"):
        mot.solve(a, b, C, **kwargs)


def test_bad_arrays_raise():
    a, b, C, *_ = _problem(6, 5)
    Cn = C.copy()
    Cn[0, 0] = np.nan
    cases = [
        ((a, b, Cn), "C"), ((a, b, C[0]), "C"), ((a[:-1], b, C), "a"), ((a, b[:-1], C), "b"),
        ((-a, b, C), "a"), ((a, np.r_[b[:-1], np.inf], C), "b"), ((a, 2 * b, C), "a, b"),
        ((np.zeros(6), b, C), "a"), ((a, b, np.zeros((0, 5))), "C"),
    ]
    for (aa, bb, CC), name in cases:
        with pytest.raises(InputError, match=f"^{name}"):
            mot.solve(aa, bb, CC, eps=0.1)


@pytest.mark.parametrize("rho", [(math.inf, 0.7), (0.7, math.inf), (0.3, 2.0)])
def test_marginal_specific_rho_matches_pot(rho):
    import ot as pot

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(40, 2)) + 0.5
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    a = rng.uniform(0.5, 1.5, 30)
    a /= a.sum()
    b = rng.uniform(0.5, 1.5, 40)
    b *= 1.3 / b.sum()  # unequal masses: allowed because a marginal is penalised
    eps = 0.1
    res = mot.solve(a, b, C, eps=eps, rho=rho, tol=1e-11, max_iter=50_000)
    assert res.converged
    P_pot = pot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, reg_m=rho, method="sinkhorn", reg_type="kl",
                                               numItermax=100_000, stopThr=1e-14)
    np.testing.assert_allclose(res.plan, P_pot, atol=1e-9)
    # hard marginals are met exactly; value equals the primal objective of the plan
    if math.isinf(rho[0]):
        np.testing.assert_allclose(res.plan.sum(1), a, atol=1e-9)
    if math.isinf(rho[1]):
        np.testing.assert_allclose(res.plan.sum(0), b, atol=1e-9)

    def kl(p, q):
        return float((p * np.log(p / q) - p + q).sum())

    P = res.plan
    primal = (C * P).sum() + eps * kl(P, a[:, None] * b[None, :])
    for r, m, w in ((rho[0], P.sum(1), a), (rho[1], P.sum(0), b)):
        if not math.isinf(r):
            primal += r * kl(m, w)
    assert abs(res.value - primal) < 1e-8


def test_rho_pair_validation_and_balanced_pair():
    C = np.random.default_rng(0).random((3, 4))
    with pytest.raises(InputError, match="^rho:"):
        mot.solve(None, None, C, eps=0.1, rho=(1.0, 2.0, 3.0))
    with pytest.raises(InputError, match="^rho:"):
        mot.solve(None, None, C, eps=0.1, rho=(1.0, -2.0))
    with pytest.raises(InputError, match="^a, b: total masses differ"):
        mot.solve(np.ones(3), np.ones(4), C, eps=0.1, rho=(math.inf, math.inf))
    r1 = mot.solve(None, None, C, eps=0.1, rho=(math.inf, None))
    r2 = mot.solve(None, None, C, eps=0.1)
    np.testing.assert_allclose(r1.plan, r2.plan)
