import math

import pytest
import torch

from measureflow import InputError
from measureflow.optim import Muon, Schatten
from measureflow.spectral import schatten_lmo


def _pair(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    W0 = torch.randn(*shape, generator=g, dtype=dtype)
    return torch.nn.Parameter(W0.clone()), torch.nn.Parameter(W0.clone()), g


@pytest.mark.parametrize("shape", [(32, 16), (16, 32), (24, 24)])
@pytest.mark.parametrize("kw", [{}, dict(lr=0.05, weight_decay=0.01, momentum=0.9),
                                dict(nesterov=False, adjust_lr_fn="match_rms_adamw")])
def test_muon_reproduces_torch(shape, kw):
    a, b, g = _pair(shape)
    ta, ob = torch.optim.Muon([a], **kw), Muon([b], **kw)
    for _ in range(3):
        G = torch.randn(*shape, generator=g)
        a.grad, b.grad = G.clone(), G.clone()
        ta.step()
        ob.step()
        assert torch.equal(a, b)


def test_first_step_is_polar_direction():
    # with the exact polar path, momentum 0, lr 1, no decay, unit scale: step = -U W^T
    p_, _, g = _pair((6, 4), dtype=torch.float64)
    G = torch.randn(6, 4, generator=g, dtype=torch.float64)
    W0 = p_.detach().clone()
    opt = Schatten([p_], lr=1.0, p=math.inf, momentum=0.0, polar="svd")
    p_.grad = G.clone()
    opt.step()
    U, s, Vh = torch.linalg.svd(G, full_matrices=False)
    assert torch.allclose(p_.detach(), W0 - U @ Vh, atol=1e-12)
    # schatten scale: the paper's trace-scaled step X + J_inf(G)
    q_ = torch.nn.Parameter(W0.clone())
    opt = Schatten([q_], lr=1.0, p=math.inf, momentum=0.0, scale="schatten", polar="fast")
    q_.grad = G.clone()
    opt.step()
    assert torch.allclose(q_.detach(), W0 + schatten_lmo(G, math.inf), atol=1e-10)


def test_p1_schatten_scale_is_momentum_sgd():
    a, _, g = _pair((5, 3), dtype=torch.float64)
    sa = Schatten([a], lr=0.1, p=1, momentum=0.9, nesterov=False, scale="schatten")
    # EMA momentum B = 0.9 B + 0.1 g, step X <- X - lr B (explicit recursion)
    buf = torch.zeros(5, 3, dtype=torch.float64)
    x = a.detach().clone()
    for _ in range(4):
        G = torch.randn(5, 3, generator=g, dtype=torch.float64)
        a.grad = G.clone()
        sa.step()
        buf = 0.9 * buf + 0.1 * G
        x = x - 0.1 * buf
        assert torch.allclose(a.detach(), x)


@pytest.mark.parametrize("p", [1.5, 2, math.inf])
def test_unit_scale_has_unit_norm(p):
    from measureflow.spectral import schatten_norm
    prm = torch.nn.Parameter(torch.zeros(7, 5, dtype=torch.float64))
    opt = Schatten([prm], lr=1.0, p=p, momentum=0.0)
    prm.grad = torch.randn(7, 5, dtype=torch.float64)
    opt.step()
    assert float(schatten_norm(prm.detach(), 2 * p)) == pytest.approx(1.0)


def test_conv_and_vector_parameters():
    conv = torch.nn.Conv2d(3, 4, 3)
    opt = Schatten(conv.parameters(), lr=0.1, p=math.inf, momentum=0.0)
    w0, b0 = conv.weight.detach().clone(), conv.bias.detach().clone()
    conv(torch.randn(2, 3, 8, 8)).square().sum().backward()
    gw, gb = conv.weight.grad.clone(), conv.bias.grad.clone()
    opt.step()
    U, s, Vh = torch.linalg.svd(gw.reshape(4, -1), full_matrices=False)
    assert torch.allclose(conv.weight.detach(), w0 - 0.1 * (U @ Vh).reshape(w0.shape), atol=1e-5)
    assert torch.allclose(conv.bias.detach(), b0 - 0.1 * gb / gb.norm(), atol=1e-6)


def test_training_decreases_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16, bias=False), torch.nn.Tanh(),
                                torch.nn.Linear(16, 1, bias=False))
    X = torch.randn(64, 4)
    y = torch.sin(X[:, :1]) + 0.5 * X[:, 1:2]
    opt = Muon(model.parameters(), lr=0.05, weight_decay=0.0)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_bad_input():
    prm = [torch.nn.Parameter(torch.zeros(2, 2))]
    with pytest.raises(InputError, match="^p"):
        Schatten(prm, lr=0.1, p=0.2)
    with pytest.raises(InputError, match="^lr"):
        Schatten(prm, lr=-1.0)
    with pytest.raises(InputError, match="^polar"):
        Schatten(prm, lr=0.1, p=2, polar="newton_schulz")
    with pytest.raises(InputError, match="^momentum"):
        Schatten(prm, lr=0.1, momentum=1.5)
    with pytest.raises(InputError, match="^scale"):
        Muon(prm, scale="bad")
