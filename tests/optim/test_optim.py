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


def test_group_options_are_validated_at_construction():
    w = torch.nn.Parameter(torch.zeros(3, 3))
    b = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(InputError, match="^polar"):
        Schatten([{"params": [w]}, {"params": [b], "polar": "bad"}], lr=0.1)
    with pytest.raises(InputError, match="^polar"):  # p = 2 with the p = inf polar solver
        Schatten([{"params": [w], "p": 2, "polar": "newton_schulz"}], lr=0.1)
    with pytest.raises(InputError, match="^p"):
        Schatten([{"params": [w], "p": 0.1}], lr=0.1)
    with pytest.raises(InputError, match="^lr"):
        Muon([{"params": [w], "lr": float("nan")}])
    with pytest.raises(InputError, match="^momentum"):
        Muon([{"params": [w], "momentum": 1.0}])
    with pytest.raises(InputError, match="^ns_steps"):
        Muon([{"params": [w], "ns_steps": -1}])
    with pytest.raises(InputError, match="^ns_coefficients"):
        Muon([{"params": [w], "ns_coefficients": (1.0, 2.0)}])
    with pytest.raises(InputError, match="^eps"):
        Muon([w], eps=float("inf"))
    with pytest.raises(InputError, match="^scale"):
        Schatten([{"params": [w], "scale": "big"}], lr=0.1)
    with pytest.raises(InputError, match="^polr"):
        Schatten([{"params": [w], "polr": "svd"}], lr=0.1)
    opt = Schatten([w], lr=0.1)
    with pytest.raises(InputError, match="^adjust_lr_fn"):
        opt.add_param_group({"params": [b], "adjust_lr_fn": "sqrt"})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [b], "p": "inf", "momentum": 0.5})
    assert opt.param_groups[1]["p"] == math.inf and opt.param_groups[1]["momentum"] == 0.5


@pytest.mark.parametrize("polar", ["newton_schulz", "fast", "svd"])
@pytest.mark.parametrize("shape", [(7,), (1, 9), (9, 1), (5, 1, 1)])
def test_rank_one_shaped_parameters_step_by_exactly_g_over_norm(polar, shape):
    g = torch.Generator().manual_seed(3)
    prm = torch.nn.Parameter(torch.randn(*shape, generator=g))
    x0 = prm.detach().clone()
    G = torch.randn(*shape, generator=g)
    opt = Muon([prm], lr=0.1, weight_decay=0.0, momentum=0.0, polar=polar,
               adjust_lr_fn="none")
    prm.grad = G.clone()
    opt.step()
    # the unit-ball LMO of a matrix with one singular value is g / |g| (not ~0.69 g / |g|)
    assert torch.allclose(prm.detach(), x0 - 0.1 * G / G.norm(), rtol=0, atol=1e-6)
    q = torch.nn.Parameter(x0.clone())
    opt = Schatten([q], lr=0.1, p=3.0, momentum=0.0, scale="schatten",
                   polar="svd" if polar == "newton_schulz" else polar)
    q.grad = G.clone()
    opt.step()
    assert torch.allclose(q.detach(), x0 - 0.1 * G, rtol=0, atol=1e-6)   # -J_p(g) = g


def test_muon_reproduces_torch_with_groups_and_several_matrices():
    g = torch.Generator().manual_seed(4)
    shapes = [(16, 8), (8, 24), (12, 12)]
    W = [torch.randn(*s, generator=g) for s in shapes]
    pa = [torch.nn.Parameter(w.clone()) for w in W]
    pb = [torch.nn.Parameter(w.clone()) for w in W]
    groups = lambda ps: [{"params": ps[:2], "lr": 0.03}, {"params": ps[2:], "momentum": 0.8}]
    ta, ob = torch.optim.Muon(groups(pa), lr=0.02), Muon(groups(pb), lr=0.02)
    for _ in range(3):
        G = [torch.randn(*s, generator=g) for s in shapes]
        for a, b, gg in zip(pa, pb, G):
            a.grad, b.grad = gg.clone(), gg.clone()
        ta.step()
        ob.step()
        assert all(torch.equal(a, b) for a, b in zip(pa, pb))


def test_newton_schulz_quintic_validates():
    from measureflow.optim import newton_schulz_quintic
    G = torch.randn(4, 3)
    X = newton_schulz_quintic(G)
    assert X.dtype == torch.bfloat16 and X.shape == (4, 3)
    for kw, name in ((dict(eps=math.inf), "eps"), (dict(eps=0.0), "eps"),
                     (dict(steps=-1), "steps"), (dict(steps=2.5), "steps"),
                     (dict(coefficients=(1, 2, math.nan)), "coefficients")):
        with pytest.raises(InputError, match=f"^{name}"):
            newton_schulz_quintic(G, **kw)
    with pytest.raises(InputError, match="^G"):
        newton_schulz_quintic(torch.randn(3))
    with pytest.raises(InputError, match="^G"):
        newton_schulz_quintic(G.numpy())
    with pytest.raises(InputError, match="^G"):
        newton_schulz_quintic(torch.full((2, 2), math.nan))
