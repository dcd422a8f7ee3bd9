import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from measureflow import InputError
from measureflow.spectral import (
    dual_exponent,
    dual_norm,
    particle_lmo,
    polar_factor,
    schatten_lmo,
    schatten_norm,
    velocity_norm,
)

PS = [0.5, 0.75, 1, 1.5, 2, 4, math.inf]


def _rand(m, n, seed=0):
    return np.random.default_rng(seed).normal(size=(m, n))


def test_schatten_norm_special_cases():
    G = _rand(5, 3)
    s = np.linalg.svd(G, compute_uv=False)
    assert schatten_norm(G, 1) == pytest.approx(s.sum())
    assert schatten_norm(G, 2) == pytest.approx(np.linalg.norm(G))
    assert schatten_norm(G, math.inf) == pytest.approx(s.max())
    assert schatten_norm(G, 3) == pytest.approx((s ** 3).sum() ** (1 / 3))


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4)])
def test_lmo_fenchel_identities(p, shape):
    G = _rand(*shape, seed=1)
    J = schatten_lmo(G, p)
    q = dual_exponent(p)
    nq = schatten_norm(G, q)
    assert np.sum(G * J) == pytest.approx(-nq ** 2, rel=1e-10)
    assert schatten_norm(J, 2 * p) == pytest.approx(nq, rel=1e-10)


@pytest.mark.parametrize("p", [0.75, 1.5, 2, math.inf])
def test_lmo_is_the_minimizer(p):
    # J minimises <G, V> + ||V||_{S_2p}^2 / 2: random perturbations never do better
    G = _rand(4, 3, seed=2)
    J = schatten_lmo(G, p)

    def obj(V):
        return np.sum(G * V) + 0.5 * schatten_norm(V, 2 * p) ** 2

    rng = np.random.default_rng(3)
    for _ in range(50):
        D = rng.normal(size=G.shape) * 10 ** rng.uniform(-4, 0)
        assert obj(J + D) >= obj(J) - 1e-12


def test_lmo_closed_values():
    assert np.allclose(schatten_lmo(np.diag([3.0, 0, 0]), math.inf), -np.diag([3.0, 0, 0]))
    assert np.allclose(schatten_lmo(np.diag([3.0, 3.0, 1.0]), 0.5), np.diag([-1.5, -1.5, 0]))
    G = _rand(3, 3)
    assert np.array_equal(schatten_lmo(G, 1), -G)
    U, s, Wh = np.linalg.svd(G)
    assert np.allclose(schatten_lmo(G, math.inf), -s.sum() * U @ Wh)


@given(st.integers(0, 10_000), st.sampled_from([0.75, 2.0, math.inf]))
@settings(max_examples=20, deadline=None)
def test_lmo_equivariance_and_homogeneity(seed, p):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(4, 3))
    L = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    assert np.allclose(schatten_lmo(L @ G @ R, p), L @ schatten_lmo(G, p) @ R, atol=1e-10)
    c = rng.uniform(0.1, 10)
    assert np.allclose(schatten_lmo(c * G, p), c * schatten_lmo(G, p), atol=1e-9)


def test_lmo_p_to_inf_limit():
    G = _rand(5, 4, seed=4)
    Jinf = schatten_lmo(G, math.inf)
    errs = [np.abs(schatten_lmo(G, p) - Jinf).max() for p in (10, 100, 1000, 1e5)]
    assert errs == sorted(errs, reverse=True)
    assert errs[-1] < 1e-3


def test_lmo_batched_and_rank_cutoff():
    G = np.random.default_rng(0).normal(size=(6, 4, 3))
    J = schatten_lmo(G, 2)
    for k in range(6):
        assert np.allclose(J[k], schatten_lmo(G[k], 2))
    # rank deficiency: the selector is 0 on the kernel (cutoff), no blow-up
    A = np.outer([1.0, 2, 3], [1.0, -1])
    J = schatten_lmo(A, 2)
    assert np.all(np.isfinite(J)) and np.allclose(J, schatten_lmo(A, math.inf))


@pytest.mark.parametrize("p", [math.inf, 2, 0.75])
@pytest.mark.parametrize("shape", [(8, 5), (5, 8), (30, 30)])
def test_fast_path_matches_svd(p, shape):
    G = _rand(*shape, seed=5)
    res = schatten_lmo(G, p, method="fast", return_info=True)
    assert res.converged and res.orth_error < 1e-10
    assert np.allclose(res.direction, schatten_lmo(G, p), atol=1e-9 * np.abs(G).max())


def test_polar_factor_reports_error():
    G = _rand(20, 10, seed=6)
    pr = polar_factor(G)
    U, s, Wh = np.linalg.svd(G, full_matrices=False)
    assert pr.converged and np.allclose(pr.polar, U @ Wh, atol=1e-10)
    assert pr.nuclear_norm == pytest.approx(s.sum())
    assert pr.errors[-1] == pytest.approx(pr.orth_error)
    # rank-deficient input: the error stays large and is reported (not hidden)
    with pytest.warns(Warning):
        bad = polar_factor(np.outer(np.ones(4), np.ones(3)), max_iter=20)
    assert not bad.converged and bad.orth_error > 0.5


def test_torch_in_torch_out_and_autograd():
    G = torch.tensor(_rand(4, 3), requires_grad=True)
    J = schatten_lmo(G, 2)
    assert isinstance(J, torch.Tensor) and J.dtype == torch.float64
    (J ** 2).sum().backward()
    assert G.grad is not None and torch.isfinite(G.grad).all()
    G32 = torch.randn(4, 3, dtype=torch.float32)
    assert schatten_lmo(G32, math.inf, method="fast").dtype == torch.float32
    assert isinstance(schatten_lmo(_rand(3, 3), 2), np.ndarray)


def test_bad_input():
    with pytest.raises(InputError, match="^p"):
        schatten_lmo(_rand(3, 3), 0.3)
    with pytest.raises(InputError, match="^G"):
        schatten_lmo(np.ones(3), 2)
    with pytest.raises(InputError, match="^G"):
        schatten_lmo(np.array([[np.nan, 1.0]]), 2)
    with pytest.raises(InputError, match="^method"):
        schatten_lmo(_rand(3, 3), 2, method="qr")
    with pytest.raises(InputError, match="^weights"):
        particle_lmo(_rand(3, 2), [1.0, -1.0, 1.0], 2)


@pytest.mark.parametrize("p", [1, 1.5, 2, math.inf])
def test_particle_lmo(p):
    rng = np.random.default_rng(7)
    n, d = 12, 3
    g = rng.normal(size=(n, d))
    w = rng.uniform(0.5, 2, size=n)
    w /= w.sum()
    v = particle_lmo(g, w, p)
    # row-wise identity v = J(diag(sqrt w) g) / sqrt w
    ref = schatten_lmo(np.sqrt(w)[:, None] * g, p) / np.sqrt(w)[:, None]
    assert np.allclose(v, ref, atol=1e-10)
    # <g, v>_mu = -N*^2 and N(v) = N*
    ns = dual_norm(g, w, p)
    assert np.sum(w[:, None] * g * v) == pytest.approx(-ns ** 2, rel=1e-10)
    assert velocity_norm(v, w, p) == pytest.approx(ns, rel=1e-10)
    # clock convention: autograd-style gradients (rows w_i g_i)
    assert np.allclose(particle_lmo(w[:, None] * g, w, p, from_gradient=True), v)


def test_particle_lmo_muon_whitens():
    rng = np.random.default_rng(8)
    g = rng.normal(size=(50, 3)) @ np.diag([5.0, 1.0, 0.1])
    w = np.full(50, 1 / 50)
    v = particle_lmo(g, w, math.inf)
    S = (g * w[:, None]).T @ g
    ev = np.linalg.eigvalsh(S)
    cov = (v * w[:, None]).T @ v
    assert np.allclose(cov, np.sqrt(ev).sum() ** 2 * np.eye(3), rtol=1e-8)


def test_zero_input():
    for method in ("svd", "fast"):
        assert np.array_equal(schatten_lmo(np.zeros((3, 2)), math.inf, method=method),
                              np.zeros((3, 2)))
    assert np.array_equal(particle_lmo(np.zeros((4, 2)), None, 2), np.zeros((4, 2)))
