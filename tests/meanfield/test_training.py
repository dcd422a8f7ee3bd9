"""VarPro / two-timescale training: inner solve, envelope gradient, conventions, errors."""

import math

import numpy as np
import pytest
import torch

from measureflow import ConvergenceWarning, InputError
from measureflow import meanfield as mf


def _data(N=60, M=20, d=2, seed=0, activation="relu", domain="sphere"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, d, generator=g, dtype=torch.float64)
    if domain == "torus":
        W = (torch.rand(M, d, generator=g, dtype=torch.float64) - 0.5) * 4
        Wt = (torch.rand(50, d, generator=g, dtype=torch.float64) - 0.5) * 4
    else:
        W = torch.randn(M, d, generator=g, dtype=torch.float64)
        Wt = torch.randn(50, d, generator=g, dtype=torch.float64)
    teacher = mf.TwoLayer(Wt, activation, domain)
    y = teacher(x).detach()
    return x, y, mf.TwoLayer(W, activation, domain)


def _lstsq_reference(Phi, y, lam, c):
    """argmin_u 1/(2 lam N) |Phi u / M - y|^2 + 1/(2M) |u - c|^2 as one stacked lstsq."""
    N, M = Phi.shape
    A = np.vstack([Phi / (M * math.sqrt(lam * N)), np.eye(M) / math.sqrt(M)])
    b = np.concatenate([y / math.sqrt(lam * N), np.full(M, c) / math.sqrt(M)])
    return np.linalg.lstsq(A, b, rcond=None)[0]


@pytest.mark.parametrize("N,M", [(60, 20), (15, 40)])
@pytest.mark.parametrize("regularization,c", [("biased", 0.0), ("unbiased", 1.0)])
def test_ridge_matches_lstsq(N, M, regularization, c):
    x, y, model = _data(N, M)
    lam = 0.03
    u = mf.ridge_outer(model, x.numpy(), y.numpy(), lam=lam, regularization=regularization)
    assert isinstance(u, np.ndarray)
    Phi = model.feature_matrix(x).detach().numpy()
    np.testing.assert_allclose(u, _lstsq_reference(Phi, y.numpy(), lam, c), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("activation,domain", [("relu", "sphere"), ("rbf", "torus")])
def test_envelope_gradient_equals_full_gradient(activation, domain):
    x, y, model = _data(activation=activation, domain=domain)
    lam = 0.05
    F = mf.reduced_objective(model, x, y, lam=lam, regularization="unbiased")
    (g_full,) = torch.autograd.grad(F, model.features)
    u = mf.ridge_outer(model, x, y, lam=lam, regularization="unbiased").detach()
    Phi = model.feature_matrix(x)
    J = 0.5 / lam * ((Phi @ u / model.width - y) ** 2).mean() + 0.5 * ((u - 1) ** 2).mean()
    (g_env,) = torch.autograd.grad(J, model.features)
    torch.testing.assert_close(g_env, g_full, rtol=1e-7, atol=1e-10)
    # and the full gradient is not trivially zero
    assert g_full.abs().max() > 1e-3


def test_reduced_objective_gradcheck():
    x, y, model = _data(N=12, M=5, activation="rbf", domain="torus")
    W0 = model.features.detach().clone()

    def F(W):
        with torch.no_grad():
            model.features.copy_(W.detach())
        Phi = model.feature_matrix(x, W)
        N, M = Phi.shape
        K = Phi.T @ Phi / (N * M) + 0.1 * torch.eye(M, dtype=W.dtype)
        u = torch.linalg.solve(K, Phi.T @ y / N)
        return 0.5 / 0.1 * ((Phi @ u / M - y) ** 2).mean() + 0.5 * (u**2).mean()

    W = W0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(F, (W,), eps=1e-6, atol=1e-5)
    # our reduced objective equals the plain formula
    with torch.no_grad():
        model.features.copy_(W0)
        val = mf.reduced_objective(model, x, y, lam=0.1)
    assert abs(float(val) - float(F(W0))) < 1e-10


def test_varpro_first_step_is_projected_envelope_step():
    x, y, model = _data()
    lam, ts = 0.05, 2.0**-6
    W0 = model.features.detach().clone()
    F = mf.reduced_objective(model, x, y, lam=lam)
    (g,) = torch.autograd.grad(F, model.features)
    expected = W0 - model.width * ts * g
    expected = expected / expected.norm(dim=1, keepdim=True)
    res = mf.varpro_train(model, x, y, lam=lam, steps=1, time_scale=ts)
    torch.testing.assert_close(res.features, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(model.features.detach(), expected)
    assert abs(float(res.risk[0]) - F.detach().item()) < 1e-12
    # outer weights written to the model are the ridge solution at the final features
    u = mf.ridge_outer(model, x, y, lam=lam)
    torch.testing.assert_close(model.outer.detach(), u.detach())


def test_varpro_decreases_reduced_risk_and_stays_on_sphere():
    x, y, model = _data(N=100, M=30)
    res = mf.varpro_train(model, x, y, lam=1e-2, steps=60, time_scale=2.0**-8,
                          regularization="unbiased", snapshot_steps=[0, 30, 60])
    r = res.risk.numpy()
    assert r.shape == (61,) and res.n_iter == 60 and res.converged
    assert r[-1] < 0.8 * r[0]
    assert np.all(np.diff(r) <= 1e-9 * r[0])        # small steps: monotone descent
    torch.testing.assert_close(res.features.norm(dim=1), torch.ones(30, dtype=torch.float64))
    assert res.snapshot_steps == [0, 30, 60] and res.snapshots.shape == (3, 30, 2)
    np.testing.assert_allclose(res.times.numpy(), np.arange(61) * 2.0**-8)


def test_momentum_averages_ridge_solutions():
    x, y, model = _data()
    W0 = model.features.detach().clone()
    r0 = mf.varpro_train(mf.TwoLayer(W0), x, y, lam=0.05, steps=1, momentum=0.5)
    r_plain = mf.varpro_train(mf.TwoLayer(W0), x, y, lam=0.05, steps=1)
    # first step: no previous solution, identical to plain VarPro
    torch.testing.assert_close(r0.features, r_plain.features)
    # final u = 0.5 u*(W0) + 0.5 u*(W1)
    u0 = mf.ridge_outer(mf.TwoLayer(W0), x, y, lam=0.05)
    u1 = mf.ridge_outer(mf.TwoLayer(r0.features), x, y, lam=0.05)
    torch.testing.assert_close(r0.outer, 0.5 * u0 + 0.5 * u1)
    with pytest.raises(InputError, match="momentum"):
        mf.varpro_train(model, x, y, lam=0.05, steps=1, momentum=1.0)


def test_torus_features_stay_wrapped():
    x, y, model = _data(activation="rbf", domain="torus")
    res = mf.varpro_train(model, x, y, lam=1e-2, steps=20, time_scale=2.0**-4)
    assert bool((res.features >= -2).all() and (res.features < 2).all())


def test_numpy_in_numpy_out_and_torch_autograd_free():
    x, y, model = _data()
    res = mf.varpro_train(model, x.numpy(), y.numpy(), lam=0.1, steps=3)
    assert isinstance(res.features, np.ndarray) and isinstance(res.risk, np.ndarray)
    assert isinstance(res.snapshots, np.ndarray)
    res_t = mf.two_timescale_train(model, x, y, lam=0.1, steps=3)
    assert isinstance(res_t.features, torch.Tensor) and res_t.risk.shape == (4,)
    out = model(x.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (x.shape[0],)
    out_f32 = mf.TwoLayer(model.features.detach().float())(x.float())
    assert out_f32.dtype == torch.float32


def test_two_timescale_approaches_varpro_for_large_ratio():
    x, y, _ = _data(N=150, M=16)
    W0 = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ts = 2.0**-10
    gaps = []
    for lam in [1e-1, 1e-2]:
        a = mf.varpro_train(mf.TwoLayer(W0), x, y, lam=lam, steps=100, time_scale=ts)
        b = mf.two_timescale_train(mf.TwoLayer(W0), x, y, lam=lam, steps=100, time_scale=ts)
        gaps.append(float((a.features - b.features).norm()))
        assert b.risk[-1] < b.risk[0]
    # lam / time_scale = 102 vs 10: the faster the outer layer, the closer to VarPro
    assert gaps[0] < 0.5 * gaps[1]


def test_nan_divergence_reports_non_convergence():
    x, y, model = _data()
    # outer step lam * M on a term lam (u - c)^2 / 2M: u <- u - lam (u - c) - ..., unstable
    with pytest.warns(ConvergenceWarning):
        res = mf.two_timescale_train(model, x, y, lam=10.0, steps=2000)
    assert not res.converged


def test_bad_inputs():
    x, y, model = _data()
    with pytest.raises(InputError, match="lam"):
        mf.varpro_train(model, x, y, lam=0.0, steps=2)
    with pytest.raises(InputError, match="^y"):
        mf.varpro_train(model, x, y[:-1], lam=0.1, steps=2)
    with pytest.raises(InputError, match="^x"):
        mf.varpro_train(model, x[:, :1], y, lam=0.1, steps=2)
    with pytest.raises(InputError, match="regularization"):
        mf.varpro_train(model, x, y, lam=0.1, steps=2, regularization="ridge")
    with pytest.raises(InputError, match="steps"):
        mf.varpro_train(model, x, y, lam=0.1, steps=-1)
    with pytest.raises(InputError, match="time_scale"):
        mf.two_timescale_train(model, x, y, lam=0.1, steps=1, time_scale=-1)
    with pytest.raises(InputError, match="snapshot_steps"):
        mf.varpro_train(model, x, y, lam=0.1, steps=2, snapshot_steps=[5])
    with pytest.raises(InputError, match="x"):
        mf.varpro_train(model, x * float("nan"), y, lam=0.1, steps=2)
    with pytest.raises(InputError, match="model"):
        mf.varpro_train(torch.nn.Linear(2, 1), x, y, lam=0.1, steps=2)
    with pytest.raises(InputError, match="activation"):
        mf.TwoLayer(np.ones((3, 2)), activation="tanh")
    with pytest.raises(InputError, match="domain"):
        mf.TwoLayer(np.ones((3, 2)), domain="ball")
    with pytest.raises(InputError, match="features"):
        mf.TwoLayer(np.zeros((3, 2)))
    with pytest.raises(InputError, match="outer"):
        mf.TwoLayer(np.ones((3, 2)), outer=np.ones(2))


@pytest.mark.parametrize("N,M", [(60, 20), (15, 40)])
@pytest.mark.parametrize("c", [0.0, 1.0])
def test_ridge_readout_multi_output_equals_columnwise(N, M, c):
    # the digits experiment (Sec. 6.2) solves the readout for 10 outputs at once
    g = torch.Generator().manual_seed(3)
    Phi = torch.rand(N, M, generator=g, dtype=torch.float64)
    Y = torch.randn(N, 4, generator=g, dtype=torch.float64)
    U = mf.ridge_readout(Phi.numpy(), Y.numpy(), lam=0.02, center=c)
    assert isinstance(U, np.ndarray) and U.shape == (M, 4)
    for j in range(4):
        ref = _lstsq_reference(Phi.numpy(), Y[:, j].numpy(), 0.02, c)
        np.testing.assert_allclose(U[:, j], ref, rtol=1e-8, atol=1e-9)
    u1 = mf.ridge_readout(Phi, Y[:, 0], lam=0.02, center=c)
    assert isinstance(u1, torch.Tensor) and u1.shape == (M,)
    np.testing.assert_allclose(u1.numpy(), U[:, 0], rtol=1e-12, atol=1e-14)


def test_ridge_readout_bad_inputs():
    Phi, Y = np.ones((5, 3)), np.zeros((5, 2))
    with pytest.raises(InputError, match="^features"):
        mf.ridge_readout(np.ones(5), Y, lam=0.1)
    with pytest.raises(InputError, match="^targets"):
        mf.ridge_readout(Phi, np.zeros((4, 2)), lam=0.1)
    with pytest.raises(InputError, match="^targets"):
        mf.ridge_readout(Phi, np.zeros((5, 2, 1)), lam=0.1)
    with pytest.raises(InputError, match="^lam"):
        mf.ridge_readout(Phi, Y, lam=0.0)
    with pytest.raises(InputError, match="^features"):
        mf.ridge_readout(np.full((5, 3), np.nan), Y, lam=0.1)
    with pytest.raises(InputError, match="^center"):
        mf.ridge_readout(Phi, Y, lam=0.1, center=float("nan"))
