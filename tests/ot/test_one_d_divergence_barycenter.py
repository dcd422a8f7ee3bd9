"""wasserstein_1d vs the exact LP, Sinkhorn divergence properties, barycenters vs POT."""

import warnings

import numpy as np
import pytest
import torch

import measureflow.ot as mot
from measureflow import InputError
from measureflow.core import ConvergenceWarning

pot = pytest.importorskip("ot")


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
def test_wasserstein_1d_matches_exact_lp(p):
    rng = np.random.default_rng(int(p * 10))
    x, y = rng.normal(size=25), 2 * rng.normal(size=18) + 1
    a, b = rng.random(25), rng.random(18)
    a[3] = 0.0
    b *= a.sum() / b.sum()
    C = np.abs(x[:, None] - y[None]) ** p
    lp = mot.solve(a, b, C).value
    assert abs(mot.wasserstein_1d(x, y, a, b, p=p) - lp ** (1 / p)) < 1e-10


def test_wasserstein_1d_batched_and_torch():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 4)), rng.normal(size=(15, 4))
    w = mot.wasserstein_1d(X, Y, p=2)
    assert w.shape == (4,)
    for k in range(4):
        assert abs(w[k] - mot.wasserstein_1d(X[:, k], Y[:, k], p=2)) < 1e-14
    xt = torch.tensor(X[:, 0], requires_grad=True)
    v = mot.wasserstein_1d(xt, torch.tensor(Y[:, 0]), p=2) ** 2
    (g,) = torch.autograd.grad(v, xt)
    # d W2^2 / dx_i = 2 (x_i - T(x_i)) / n by the monotone map; check by finite differences.
    h, i = 1e-6, 3
    xp, xm = X[:, 0].copy(), X[:, 0].copy()
    xp[i] += h
    xm[i] -= h
    fd = (mot.wasserstein_1d(xp, Y[:, 0], p=2) ** 2 - mot.wasserstein_1d(xm, Y[:, 0], p=2) ** 2)
    assert abs(fd / (2 * h) - g[i].item()) < 1e-6


def test_wasserstein_1d_bad_input():
    with pytest.raises(InputError, match="^p"):
        mot.wasserstein_1d([0.0, 1.0], [1.0], p=0.5)
    with pytest.raises(InputError, match="^a, b"):
        mot.wasserstein_1d([0.0, 1.0], [1.0], [1.0, 1.0], [1.0])
    with pytest.raises(InputError, match="^a"):
        mot.wasserstein_1d([0.0, 1.0], [1.0], [-1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="^x"):
        mot.wasserstein_1d([0.0, np.nan], [1.0])
    with pytest.raises(InputError, match="^y"):
        mot.wasserstein_1d([0.0], [])
    with pytest.raises(InputError, match="^a"):
        mot.wasserstein_1d([0.0, 1.0, 2.0], [1.0], [0.5, 0.5], [1.0])
    with pytest.raises(InputError, match="^b"):
        mot.wasserstein_1d(np.zeros((3, 2)), np.zeros((2, 2)), None, [1.0, 1.0, 1.0])


def test_sinkhorn_divergence_properties():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(25, 2)) + 1.0
    s = mot.sinkhorn_divergence(x, y, eps=1.0)
    assert s > 0
    assert abs(mot.sinkhorn_divergence(x, x, eps=1.0)) < 1e-8
    assert abs(s - mot.sinkhorn_divergence(y, x, eps=1.0)) < 1e-7
    # Definition: OT_eps(a, b) - OT_eps(a, a)/2 - OT_eps(b, b)/2 with the cost |x - y|^2.
    Cxy = ((x[:, None] - y[None]) ** 2).sum(-1)
    Cxx = ((x[:, None] - x[None]) ** 2).sum(-1)
    Cyy = ((y[:, None] - y[None]) ** 2).sum(-1)
    ref = (mot.solve(None, None, Cxy, eps=1.0, tol=1e-10).value
           - 0.5 * mot.solve(None, None, Cxx, eps=1.0, tol=1e-10).value
           - 0.5 * mot.solve(None, None, Cyy, eps=1.0, tol=1e-10).value)
    assert abs(s - ref) < 1e-7
    # Translation: the cross terms are separable, so S_eps(mu, mu + tau) = |tau|^2 for every eps.
    assert abs(mot.sinkhorn_divergence(x, x + np.array([1.0, 0.5]), eps=0.7) - 1.25) < 1e-7


def test_sinkhorn_divergence_gradient_in_x():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(5, 2))
    xt = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(mot.sinkhorn_divergence(xt, torch.tensor(y), eps=0.5, tol=1e-12),
                               xt)
    h = 1e-5
    for i, k in [(0, 0), (3, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[i, k] += h
        xm[i, k] -= h
        fd = (mot.sinkhorn_divergence(xp, y, eps=0.5, tol=1e-12)
              - mot.sinkhorn_divergence(xm, y, eps=0.5, tol=1e-12)) / (2 * h)
        assert abs(fd - g[i, k].item()) < 1e-7


def test_sinkhorn_divergence_bad_input():
    x = np.zeros((3, 2))
    with pytest.raises(InputError, match="^eps"):
        mot.sinkhorn_divergence(x, x, eps=0)
    with pytest.raises(InputError, match="^x, y"):
        mot.sinkhorn_divergence(x, np.zeros((3, 3)), eps=1)
    with pytest.raises(InputError, match="^p"):
        mot.sinkhorn_divergence(x, x, eps=1, p=0)
    with pytest.raises(InputError, match="^a, b"):
        mot.sinkhorn_divergence(x, x, [1, 1, 1], [1, 1, 2], eps=1)
    with pytest.raises(InputError, match="^max_iter"):
        mot.sinkhorn_divergence(x, x, eps=1, max_iter=0)
    with pytest.raises(InputError, match="^tol"):
        mot.sinkhorn_divergence(x, x, eps=1, tol=-1.0)


def test_fixed_support_barycenter_matches_pot_log():
    t = np.linspace(0, 1, 50)
    A = np.stack([np.exp(-(t - 0.25) ** 2 / 0.005), np.exp(-(t - 0.7) ** 2 / 0.01)])
    A /= A.sum(1, keepdims=True)
    M = (t[:, None] - t[None]) ** 2
    eps = 1e-2
    r = mot.barycenter(A, [0.3, 0.7], support=t, eps=eps, tol=1e-12)
    q = pot.bregman.barycenter(A.T, M, eps, weights=np.array([0.3, 0.7]), method="sinkhorn_log",
                               stopThr=1e-13, numItermax=5_000)
    assert r.converged
    np.testing.assert_allclose(r.weights, q, atol=1e-9)
    r2 = mot.barycenter(A, [0.3, 0.7], cost=M, eps=eps, tol=1e-12)
    np.testing.assert_allclose(r2.weights, r.weights, atol=1e-13)
    # 1-D: the barycenter's mean is the weighted mean of the inputs' means.
    assert abs((r.weights * t).sum() - (0.3 * (A[0] * t).sum() + 0.7 * (A[1] * t).sum())) < 1e-3


def test_free_support_two_clouds_is_mccann_interpolation():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(25, 2)), rng.normal(size=(25, 2)) * 0.5 + 3
    r = mot.barycenter([X, Y], [0.6, 0.4], init=X.copy())
    assert r.converged
    # Exact OT between uniform clouds of equal size is a permutation sigma; the barycenter of
    # two measures is the McCann point 0.6 X + 0.4 Y[sigma] with value 0.6*0.4*W2^2.
    C = ((X[:, None] - Y[None]) ** 2).sum(-1)
    w2 = mot.solve(None, None, C).value
    assert abs(r.value - (0.6 * 0.4 ** 2 + 0.4 * 0.6 ** 2) * w2) < 1e-9
    sigma = mot.solve(None, None, C).plan.argmax(1)
    np.testing.assert_allclose(r.support, 0.6 * X + 0.4 * Y[sigma], atol=1e-10)


def test_free_support_inner_nonconvergence_is_not_converged(monkeypatch):
    import sys

    bary_mod = sys.modules["measureflow.ot.barycenter"]
    real = bary_mod.entropic_solve

    def starved(*args, **kwargs):  # inner entropic solves capped at 2 iterations
        return real(*args, **{**kwargs, "max_iter": 2, "tol": 1e-14})

    monkeypatch.setattr(bary_mod, "entropic_solve", starved)
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(8, 2)), rng.normal(size=(8, 2)) + 2
    with pytest.warns(ConvergenceWarning, match="free support"):
        r = mot.barycenter([X, Y], init=X.copy(), eps=0.5, max_iter=50, tol=1.0)
    assert not r.converged


def test_barycenter_bad_input():
    A = np.ones((2, 4)) / 4
    with pytest.raises(InputError, match="^eps"):
        mot.barycenter(A, support=np.arange(4.0))
    with pytest.raises(InputError, match="^cost"):
        mot.barycenter(A, eps=0.1)
    with pytest.raises(InputError, match="^measures"):
        mot.barycenter(np.array([[1.0, 0.0], [0.0, 2.0]]), cost=np.eye(2), eps=0.1)
    with pytest.raises(InputError, match="^weights"):
        mot.barycenter(A, [1.0, -1.0], cost=np.ones((4, 4)), eps=0.1)
    with pytest.raises(InputError, match=r"^measures\[1\]"):
        mot.barycenter([np.zeros((3, 2)), np.zeros((3, 3))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        mot.barycenter(A, cost=np.ones((4, 4)), eps=0.1)
