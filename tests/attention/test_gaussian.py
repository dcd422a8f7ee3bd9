import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from measureflow import ConvergenceWarning, InputError
from measureflow.attention import attend, gaussian_affine_map, gaussian_velocity, integrate_gaussian
from measureflow.core.linalg import psd_power, sqrtm_psd

D64 = torch.float64


def _setup(seed=1, d=2, k=2, scale=0.7):
    g = torch.Generator().manual_seed(seed)
    al = torch.tensor([0.3, -0.2][:d] + [0.1] * max(0, d - 2), dtype=D64)
    L = 0.5 * torch.randn(d, d, generator=g, dtype=D64)
    S = L @ L.T + 0.2 * torch.eye(d, dtype=D64)
    Q = scale * torch.randn(k, d, generator=g, dtype=D64)
    K = scale * torch.randn(k, d, generator=g, dtype=D64)
    V = torch.randn(d, d, generator=g, dtype=D64)
    return g, al, S, Q, K, V


def _sample(g, al, S, n):
    return al + torch.randn(n, al.shape[0], generator=g, dtype=D64) @ torch.linalg.cholesky(S).T


@pytest.mark.parametrize("kind,heads", [("softmax", 1), ("multihead", 2), ("l2", 1),
                                        ("l2", 2)])
def test_affine_map_matches_monte_carlo(kind, heads):
    g, al, S, Q, K, V = _setup()
    x = _sample(g, al, S, 200_000)
    probe = torch.randn(6, 2, generator=g, dtype=D64)
    b, J = gaussian_affine_map(al, S, Q, K, V, kind=kind, heads=heads)
    exact = b + (probe - al) @ J.T
    mc = attend(probe, x, Q=Q, K=K, V=V, kind=kind, heads=heads)
    assert (mc - exact).abs().max() < 0.01


@pytest.mark.parametrize("heads", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_sinkhorn_affine_map_matches_sinkhorn_on_samples(heads):
    g, al, S, Q, K, V = _setup()
    n = 1200
    x = _sample(g, al, S, n)
    out = attend(None, x, Q=Q, K=K, V=V, kind="sinkhorn", heads=heads, tol=1e-7)
    X = torch.cat([torch.ones(n, 1, dtype=D64), x - al], 1)
    coef = torch.linalg.lstsq(X, out).solution
    b, J = gaussian_affine_map(al, S, Q, K, V, kind="sinkhorn", heads=heads)
    assert torch.allclose(b, V @ al)
    # least-squares affine fit of the sample's Sinkhorn attention: J to a few % (MC)
    assert (coef[1:].T - J).abs().max() < 0.05 * J.abs().max() + 0.01


def test_sinkhorn_formula_equals_alternative_form_and_softmax_limit():
    _, al, S, Q, K, V = _setup(d=3, k=3)
    A = K.T @ Q
    # independent form (requires invertible A, Sigma):
    # J = 1/2 V A^{-T} S^{-1/2} (D - I) S^{-1/2},  D = (I + 4 S^{1/2} A^T S A S^{1/2})^{1/2}
    Sh = sqrtm_psd(S)
    Sih = psd_power(S, -0.5)
    D = sqrtm_psd(torch.eye(3, dtype=D64) + 4 * Sh @ A.T @ S @ A @ Sh)
    J_alt = 0.5 * V @ torch.linalg.inv(A.T) @ Sih @ (D - torch.eye(3, dtype=D64)) @ Sih
    _, J = gaussian_affine_map(al, S, Q, K, V, kind="sinkhorn")
    assert torch.allclose(J, J_alt, atol=1e-10)
    # eps rescales A
    _, J2 = gaussian_affine_map(al, S, 2 * Q, K, V, kind="sinkhorn", eps=2.0)
    assert torch.allclose(J, J2, atol=1e-12)
    # small A: Sinkhorn J -> softmax J, with an O(|A|^2) relative gap
    gaps = []
    for s in (1e-1, 1e-2):
        _, Js = gaussian_affine_map(al, S, s * Q, K, V, kind="sinkhorn")
        _, Jm = gaussian_affine_map(al, S, s * Q, K, V, kind="softmax")
        gaps.append(float((Js - Jm).norm() / Jm.norm()))
    assert gaps[1] < 2e-3 and gaps[1] < 0.02 * gaps[0]


def test_velocity_definition_types_and_gradcheck():
    _, al, S, Q, K, V = _setup()
    md, Sd = gaussian_velocity(al.numpy(), S.numpy(), Q.numpy(), K.numpy(), V.numpy())
    assert isinstance(md, np.ndarray) and np.allclose(Sd, Sd.T)
    A = (K.T @ Q).numpy()
    J = V.numpy() @ S.numpy() @ A
    assert np.allclose(Sd, J @ S.numpy() + S.numpy() @ J.T)
    assert np.allclose(md, V.numpy() @ (al.numpy() + S.numpy() @ A @ al.numpy()))
    for kind in ("softmax", "l2", "sinkhorn"):
        Sg = S.clone().requires_grad_(True)
        Qg = Q.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda s, q, kind=kind: gaussian_velocity(al, 0.5 * (s + s.T), q, K, V, kind=kind)[1],
            (Sg, Qg))


def test_batched_velocity_equals_loop():
    _, al, S, Q, K, V = _setup()
    covs = torch.stack([S, 2 * S, S + torch.eye(2, dtype=D64)])
    _, Sd = gaussian_velocity(al, covs, Q, K, V, kind="l2")
    for i in range(3):
        assert torch.allclose(Sd[i], gaussian_velocity(al, covs[i], Q, K, V, kind="l2")[1])


def test_rk4_matches_scipy_and_1d_blowup_closed_form():
    _, al, S, Q, K, V = _setup(scale=0.4)
    res = integrate_gaussian(al, S, Q, K, V, kind="l2", T=1.0, step=0.01)
    assert res.status == "final_time" and res.converged

    def f(t, z):
        m, C = torch.tensor(z[:2]), torch.tensor(z[2:]).reshape(2, 2)
        md, Cd = gaussian_velocity(m, C, Q, K, V, kind="l2")
        return np.concatenate([md.numpy(), Cd.numpy().ravel()])

    sol = solve_ivp(f, (0, 1), np.concatenate([al.numpy(), S.numpy().ravel()]), rtol=1e-10,
                    atol=1e-12)
    assert np.allclose(res.final_cov.numpy().ravel(), sol.y[2:, -1], atol=1e-7)
    assert np.allclose(res.final_mean.numpy(), sol.y[:2, -1], atol=1e-7)
    # d = 1 softmax, V = v, A = a: Sigma' = 2 v a Sigma^2 -> Sigma(t) = S0 / (1 - 2 v a S0 t)
    one = torch.ones(1, 1, dtype=D64)
    r = integrate_gaussian(torch.zeros(1, dtype=D64), 0.5 * one, one, one, one, T=0.5,
                           step=1e-3)
    assert abs(float(r.final_cov) - 0.5 / (1 - 0.5)) < 1e-8
    r = integrate_gaussian(torch.zeros(1, dtype=D64), 0.5 * one, one, one, one, step=2e-3,
                           max_iter=5000, blowup=1e3)
    assert r.status == "blow-up" and not r.converged
    # blow-up time 1/(2 v a S0) = 1
    assert 0.99 < float(r.times[-1]) < 1.0 + 2e-3


def test_collapse_converges_and_projected_euler_stays_psd():
    q = torch.tensor([[1.0, 0.5]], dtype=D64)
    S0 = torch.tensor([[1.0, 0.2], [0.2, 0.6]], dtype=D64)
    r = integrate_gaussian(torch.zeros(2, dtype=D64), S0, q, -q, torch.eye(2, dtype=D64),
                           step=0.3, tol=1e-5, max_iter=20000, method="projected_euler")
    assert r.status == "converged" and r.converged
    ev = torch.linalg.eigvalsh(r.covs)
    assert float(ev.min()) > 0
    # limit is rank one along q-perp: the component along q has (almost) vanished
    u = q[0] / q[0].norm()
    assert float(u @ r.final_cov @ u) < 1e-2 * float(torch.trace(r.final_cov))
    with pytest.warns(ConvergenceWarning):
        r2 = integrate_gaussian(torch.zeros(2, dtype=D64), S0, q, -q, torch.eye(2, dtype=D64),
                                step=0.3, tol=1e-12, max_iter=10)
    assert r2.status == "max_iter" and not r2.converged


def test_batch_statuses():
    one = torch.eye(1, dtype=D64)
    covs = torch.tensor([[[0.5]], [[2.0]]], dtype=D64)
    r = integrate_gaussian(torch.zeros(2, 1, dtype=D64), covs, one, -one, one, step=0.05,
                           tol=1e-3, max_iter=100000)
    assert r.status == ["converged", "converged"]
    # the final state is recorded even when record_every skips the stopping step
    r1 = integrate_gaussian(torch.zeros(1, dtype=D64), covs[1], one, -one, one, step=0.05,
                            tol=1e-3, max_iter=100000, record_every=7)
    assert r1.status == "converged"
    assert torch.equal(r1.covs[-1], r1.final_cov)
    assert math.isclose(float(r1.times[-1]), 0.05 * r1.stop_iter, rel_tol=1e-12)
    r = integrate_gaussian(torch.zeros(2, 1, dtype=D64), covs, one, one, one, step=5e-3,
                           max_iter=100000)
    assert r.status == ["blow-up", "blow-up"]
    assert int(r.stop_iter[1]) < int(r.stop_iter[0])


def test_bad_input():
    _, al, S, Q, K, V = _setup()
    with pytest.raises(InputError, match="cov"):
        gaussian_velocity(al, -S, Q, K, V)
    with pytest.raises(InputError, match="cov"):
        gaussian_velocity(al, S[:, :1], Q, K, V)
    with pytest.raises(InputError, match="mean"):
        gaussian_velocity(al[:1], S, Q, K, V)
    with pytest.raises(InputError, match="kind"):
        gaussian_velocity(al, S, Q, K, V, kind="sigmoid")
    with pytest.raises(InputError, match="V"):
        gaussian_velocity(al, S, Q, K, V[:1])
    with pytest.raises(InputError, match="method"):
        integrate_gaussian(al, S, Q, K, V, method="euler")
    with pytest.raises(InputError, match="step"):
        integrate_gaussian(al, S, Q, K, V, step=-1)
