import pytest
import torch
from torch import nn

from measureflow import InputError
from measureflow.conservation import architectures as A
from measureflow.conservation.drift import one_step_change, track_laws, weight_decay_rescaling


def _minibatch_grad(a, th, X, Y):
    loss = lambda t: 0.5 * ((a.g(t, X) - Y) ** 2).mean()
    return torch.func.grad(loss)(th)


@pytest.mark.parametrize("arch", [A.relu_deep([3, 5, 4, 2], bias=True), A.attention(4, 2, 2),
                                  A.conv_relu(6, 2, 3, 2, 3, 3), A.linear_two_layer(3, 2, 2)])
def test_one_step_sgd_identity(arch):
    th = arch.sample_params(0)
    X = arch.sample_inputs(7, 1)
    Y = torch.randn_like(arch.g(th, X))
    g = _minibatch_grad(arch, th, X, Y)
    for lr in (0.3, 0.05):
        actual = arch.laws(th - lr * g) - arch.laws(th)
        pred = one_step_change(arch.laws, th, g, lr)
        assert (actual - pred).abs().max() <= 1e-10 * (1 + arch.laws(th).abs().max())
        assert pred.abs().max() > 1e-6  # the change itself is not negligible


def test_one_step_identity_with_weight_decay():
    a = A.relu_two_layer(3, 2, 4)
    th = a.sample_params(2)
    X, Y = a.sample_inputs(9, 3), torch.randn(9, 3, dtype=torch.float64)
    g = _minibatch_grad(a, th, X, Y)
    lr, wd = 0.1, 0.3
    actual = a.laws((1 - lr * wd) * th - lr * g) - a.laws(th)
    pred = one_step_change(a.laws, th, g, lr, weight_decay=wd)
    assert (actual - pred).abs().max() < 1e-12


def test_weight_decay_rescaled_law_is_conserved_by_flow():
    a = A.linear_two_layer(2, 3, 2)  # smooth model: RK4 keeps its order
    th = a.sample_params(0)
    X, Y = a.sample_inputs(10, 1), torch.randn(10, 2, dtype=torch.float64)
    lam = 0.7
    F = lambda t: -torch.func.grad(lambda x: 0.5 * ((a.g(x, X) - Y) ** 2).mean())(t) - lam * t
    h_t = weight_decay_rescaling(a.laws, lam)
    h0 = a.laws(th)
    t, dt = 0.0, 0.01
    for _ in range(100):  # RK4 on [0, 1]
        k1 = F(th)
        k2 = F(th + dt / 2 * k1)
        k3 = F(th + dt / 2 * k2)
        k4 = F(th + dt * k3)
        th = th + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t += dt
    assert (h_t(th, t) - h0).abs().max() < 1e-5  # RK4 error, dt = 0.01
    assert torch.allclose(h_t(th, t), torch.exp(torch.tensor(2 * lam * t)) * a.laws(th))
    assert (a.laws(th) - h0).abs().max() > 0.1  # the plain law is not conserved


def _setup():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    X, Y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 2, dtype=torch.float64)
    batches = [(X[i:i + 8], Y[i:i + 8]) for i in range(0, 32, 8)]
    loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
    return net, batches, loss


@pytest.mark.parametrize("opt", ["gd", "sgd", "momentum", "adam", "instance"])
def test_track_laws_all_optimizers(opt):
    net, batches, loss = _setup()
    optimizer = torch.optim.RMSprop(net.parameters(), lr=1e-3) if opt == "instance" else opt
    res = track_laws(net, A.mlp_laws_torch, loss, batches, optimizer=optimizer, lr=1e-3)
    assert res.values.shape == (5, 6) and res.losses.shape == (4,)
    assert res.abs_drift[0].abs().max() == 0
    assert torch.allclose(res.values[-1], A.mlp_laws_torch(net).detach())
    assert res.optimizer == {"instance": "RMSprop", "adam": "Adam"}.get(opt, "SGD")
    if opt in ("gd", "sgd"):
        assert res.relative_drift[-1] < 1e-3  # O(tau^2) drift


def test_sgd_drift_scales_like_tau_squared_for_small_steps():
    drifts = []
    for lr in (1e-3, 2e-3):
        net, batches, loss = _setup()
        res = track_laws(net, A.mlp_laws_torch, loss, batches * 3, optimizer="sgd", lr=lr)
        drifts.append(float(res.abs_drift[-1].max()))
    assert 3.0 < drifts[1] / drifts[0] < 5.0


def test_bad_input():
    net, batches, loss = _setup()
    with pytest.raises(InputError, match="optimizer"):
        track_laws(net, A.mlp_laws_torch, loss, batches, optimizer="lbfgs")
    with pytest.raises(InputError, match="model"):
        track_laws("net", A.mlp_laws_torch, loss, batches)
    with pytest.raises(InputError, match="lr"):
        track_laws(net, A.mlp_laws_torch, loss, batches, lr=-1.0)
    with pytest.raises(InputError, match="^momentum"):
        track_laws(net, A.mlp_laws_torch, loss, batches, optimizer="momentum", momentum=-0.5)
    with pytest.raises(InputError, match="^betas"):
        track_laws(net, A.mlp_laws_torch, loss, batches, optimizer="adam", betas=(0.9, 1.5))
    with pytest.raises(InputError, match="^grad"):
        one_step_change(A.linear_two_layer(2, 2, 1).laws, torch.zeros(4, dtype=torch.float64),
                        torch.full((4,), float("nan"), dtype=torch.float64), 0.1)
    with pytest.raises(InputError, match="n_steps"):
        track_laws(net, A.mlp_laws_torch, loss, lambda k: batches[0])
    a = A.linear_two_layer(2, 2, 1)
    with pytest.raises(InputError, match="grad"):
        one_step_change(a.laws, a.sample_params(0), torch.zeros(3, dtype=torch.float64), 0.1)


def test_lr_schedule_matches_manual_decaying_steps():
    # tau_k = tau_0 / (k + 1) (arXiv 2506.06194 Prop. 5.1): same iterates as hand-written steps
    a = A.relu_two_layer(3, 2, 4)
    th = a.sample_params(5)
    X, Y = a.sample_inputs(8, 6), torch.randn(8, 3, dtype=torch.float64)
    net = a.to_module(th)
    loss = lambda m, b: 0.5 * ((m(b[0]) - b[1]) ** 2).mean()
    res = track_laws(net, lambda m: torch.zeros(1, dtype=torch.float64), loss, [(X, Y)],
                     optimizer="sgd", lr=0.2, n_steps=5, lr_schedule=lambda k: 1.0 / (k + 1))
    t = th.clone()
    for k in range(5):
        t = t - 0.2 / (k + 1) * _minibatch_grad(a, t, X, Y)
    ref = a.to_module(t)
    for p, q in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-13)
    assert res.grad_sq_norms.shape == (5,)
    with pytest.raises(InputError, match="^lr_schedule"):
        track_laws(a.to_module(th), lambda m: torch.zeros(1), loss, [(X, Y)], lr_schedule=3)
    with pytest.raises(InputError, match="^lr_schedule"):
        track_laws(a.to_module(th), lambda m: torch.zeros(1), loss, [(X, Y)],
                   lr_schedule=lambda k: -1.0)
