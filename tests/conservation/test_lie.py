import numpy as np
import pytest
import torch

from measureflow import InputError
from measureflow.conservation import architectures as A
from measureflow.conservation import (
    gradient_fields,
    lie_rank,
    lie_rank_report,
    number_of_laws,
    number_of_laws_model,
)


def _lin_phi(n, m, r):
    def phi(t):
        return t[:n * r].reshape(n, r) @ t[n * r:].reshape(m, r).T
    return phi, (n + m) * r


@pytest.mark.parametrize("nmr, dim_lie, laws", [((1, 1, 1), 1, 1), ((2, 2, 2), 5, 3),
                                                ((3, 2, 2), 7, 3)])
def test_linear_counts_table(nmr, dim_lie, laws):
    phi, D = _lin_phi(*nmr)
    th = torch.randn(D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    c = number_of_laws(phi, th)
    assert (c.n_params, c.dim_lie, c.n_laws) == (D, dim_lie, laws)
    assert c.exact
    assert c.frobenius == (dim_lie == c.rank_dphi)


def test_relu_two_layer_two_laws_and_frobenius():
    a = A.relu_two_layer(2, 2, 2)
    c = number_of_laws(a.phi, a.sample_params(3))
    assert c.n_laws == 2 and c.frobenius and c.dim_lie == c.rank_dphi == 6


def test_deep_linear_six_laws_equals_rank_of_known():
    a = A.linear_deep([2, 2, 2, 2])
    th = a.sample_params(0)
    c = number_of_laws(a.phi, th)
    assert c.n_laws == 6 == A.known_rank(a, th)


def test_field_formats_agree_and_numpy_input():
    phi, D = _lin_phi(2, 2, 2)
    th = np.random.default_rng(0).standard_normal(D)
    J = lambda t: torch.func.jacrev(lambda x: phi(x).reshape(-1))(t)
    fields = [lambda t, i=i: J(t)[i] for i in range(4)]
    r1 = lie_rank(gradient_fields(phi), th)
    r2 = lie_rank(fields, th)
    r3 = lie_rank(J, torch.as_tensor(th))
    assert r1 == r2 == r3 == 5
    assert lie_rank(fields, th, max_depth=0) == 4


def test_single_field_brackets_vanish():
    # one field: Lie algebra is the field itself
    X = [lambda t: torch.stack([t[1] ** 3, torch.sin(t[0]), t[0] * t[2]])]
    assert lie_rank(X, [0.3, 0.7, -1.1]) == 1


def test_commuting_vs_non_commuting_fields():
    # X1 = d/dx, X2 = x d/dy: [X1, X2] = d/dy, so at x = 0 the bracket raises the rank 1 -> 2
    X1 = lambda t: torch.stack([torch.ones_like(t[0]), torch.zeros_like(t[0]), 0 * t[2]])
    X2 = lambda t: torch.stack([torch.zeros_like(t[0]), t[0], 0 * t[2]])
    X3 = lambda t: torch.stack([0 * t[0], 0 * t[0], torch.ones_like(t[0])])
    assert lie_rank([X1, X2], [0.0, 0.2, 0.1], max_depth=0) == 1
    assert lie_rank([X1, X2], [0.0, 0.2, 0.1]) == 2
    assert lie_rank([X1, X2, X3], [0.0, 0.2, 0.1]) == 3
    assert lie_rank([X1, X3], [0.0, 0.2, 0.1]) == 2


def test_lie_rank_report_points_and_sampler():
    a = A.linear_two_layer(2, 2, 2)
    rep = lie_rank_report(gradient_fields(a.phi), lambda g: torch.randn(8, generator=g,
                                                                        dtype=torch.float64),
                          n_points=3, seed=1)
    assert rep.min == rep.max == 5 and rep.stable and rep.n_params == 8
    P = np.random.default_rng(2).standard_normal((2, 8))
    P[1] = 0.0  # degenerate point: all fields vanish there
    rep2 = lie_rank_report(gradient_fields(a.phi), P)
    assert rep2.max == 5 and rep2.min == 0


def test_n_known_certifies_and_early_exit():
    a = A.attention(4, 2, 1)
    c = number_of_laws(a.phi, a.sample_params(0), n_known=a.n_known)
    assert c.certified and c.n_laws == a.n_known


def test_model_count_certified_and_uncertified():
    a = A.conv_relu(6, 2, 3, 2, 3, 3)
    th = a.sample_params(0)
    X = a.sample_inputs(40, 1)
    c = number_of_laws_model(a.g, th, X, n_known=a.n_known)
    assert c.certified and c.n_laws == 3
    ex = A.scalar_resnet_example()
    c2 = number_of_laws_model(ex.g, ex.sample_params(0), ex.sample_inputs(20, 0), n_known=2)
    # 3 laws found, but nothing proves that 20 inputs span W_theta: only an upper bound
    assert not c2.certified and c2.n_laws == 3 and not c2.exact
    assert c2.status == "upper bound"
    c2p = number_of_laws_model(ex.g, ex.sample_params(0), ex.sample_inputs(20, 0), n_known=2,
                               phi=ex.phi)
    assert not c2p.certified and c2p.n_laws == 3 and c2p.exact and c2p.status == "exact"
    c3 = number_of_laws_model(ex.g, ex.sample_params(0), ex.sample_inputs(20, 0),
                              brackets=False)
    assert c3.n_laws == 3 and not c3.exact


def test_bad_input():
    phi, D = _lin_phi(2, 2, 2)
    with pytest.raises(InputError, match="theta"):
        number_of_laws(phi, [float("nan")] * D)
    with pytest.raises(InputError, match="theta"):
        lie_rank(gradient_fields(phi), np.zeros((2, 4)))
    with pytest.raises(InputError, match="fields"):
        lie_rank(3, np.zeros(D))
    with pytest.raises(InputError, match="phi"):
        number_of_laws("x", np.zeros(D))
    with pytest.raises(InputError, match="n_known"):
        number_of_laws(phi, np.ones(D), n_known=D + 1)
    with pytest.raises(InputError, match="max_depth"):
        lie_rank(gradient_fields(phi), np.ones(D), max_depth=-1)
    with pytest.raises(InputError, match="rtol"):
        lie_rank(gradient_fields(phi), np.ones(D), rtol=0.0)


def test_model_bad_inputs():
    a = A.relu_two_layer(2, 2, 2)
    X = a.sample_inputs(5, 0)
    X[0, 0] = float("nan")
    with pytest.raises(InputError, match="inputs"):
        number_of_laws_model(a.g, a.sample_params(0), X)
    with pytest.raises(InputError, match="^g:"):
        number_of_laws_model(None, a.sample_params(0), X)


def test_frobenius_flag_when_certified_at_level0():
    # ReLU path-lifting: rank dphi = D - n_known already at level 0, so the count is certified
    # without brackets and dim Lie = rank dphi; attention is certified only after brackets.
    a = A.relu_two_layer(3, 2, 4)
    c = number_of_laws(a.phi, a.sample_params(0), n_known=a.n_known)
    assert c.certified and c.exact and c.ranks_by_depth == (c.rank_dphi,)
    assert c.frobenius
    b = A.attention(4, 2, 1)
    cb = number_of_laws(b.phi, b.sample_params(0), n_known=b.n_known)
    assert cb.certified and not cb.frobenius and cb.dim_lie > cb.rank_dphi


@pytest.mark.parametrize("rtol", [-1.0, 0.0, float("nan"), float("inf"), 1.5, "x"])
def test_rtol_rejected_everywhere(rtol):
    a = A.linear_two_layer(2, 2, 2)
    th = a.sample_params(0)
    with pytest.raises(InputError, match="^rtol"):
        lie_rank(gradient_fields(a.phi), th, rtol=rtol)
    with pytest.raises(InputError, match="^rtol"):
        number_of_laws_model(a.g, th, a.sample_inputs(6, 0), rtol=rtol, n_known=a.n_known)


def test_model_rejects_bad_options():
    a = A.linear_two_layer(2, 2, 2)
    th, X = a.sample_params(0), a.sample_inputs(6, 0)
    with pytest.raises(InputError, match="^n_known"):
        number_of_laws_model(a.g, th, X, n_known=th.numel() + 1)
    with pytest.raises(InputError, match="^max_depth"):
        number_of_laws_model(a.g, th, X, max_depth=-1)
    with pytest.raises(InputError, match="^chunk_size"):
        number_of_laws_model(a.g, th, X, chunk_size=0, per_input=False)


def test_too_large_n_known_is_not_certified():
    # U V^T with n = m = r = 2 has exactly 3 laws (D = 8, rank dphi = 4, dim Lie = 5).
    # Claiming 5 "known" laws contradicts rank dphi = 4 > D - 5: never certified, and the full
    # closure is still computed.
    a = A.linear_two_layer(2, 2, 2)
    th = a.sample_params(0)
    c = number_of_laws(a.phi, th, n_known=5)
    assert not c.certified and c.exact and c.n_laws == 3
    cm = number_of_laws_model(a.g, th, a.sample_inputs(12, 0), n_known=5, phi=a.phi)
    assert not cm.certified and cm.exact and cm.n_laws == 3
    cm = number_of_laws_model(a.g, th, a.sample_inputs(12, 0), n_known=5)
    assert not cm.certified and not cm.exact and cm.n_laws == 3
    assert number_of_laws(a.phi, th, n_known=3).certified


def test_rtol_is_a_relative_singular_value_threshold():
    # constant fields e_1 and 1e-6 e_2: singular values 1 and 1e-6 at level 0
    X1 = lambda t: torch.stack([torch.ones_like(t[0]), 0 * t[1]])
    X2 = lambda t: torch.stack([0 * t[0], 1e-6 * torch.ones_like(t[1])])
    assert lie_rank([X1, X2], [0.3, 0.4]) == 2
    assert lie_rank([X1, X2], [0.3, 0.4], rtol=1e-3) == 1
    rep = lie_rank_report([X1, X2], np.array([[0.3, 0.4], [1.0, 2.0]]), rtol=1e-3)
    assert rep.ranks == (1, 1)


def test_model_count_is_an_upper_bound_unless_proven():
    # issue 16: too few inputs made the sampled family smaller than W_theta and the closure
    # over-counted while claiming exact=True. relu_deep([9, 7, 2]) has 7 laws (hidden neurons).
    a = A.relu_deep([9, 7, 2])
    th = a.sample_params(0)
    for n in (4, 8, 16):
        c = number_of_laws_model(a.g, th, a.sample_inputs(n, 1))
        assert c.n_laws >= 7 and not c.exact and c.status == "upper bound"
        cp = number_of_laws_model(a.g, th, a.sample_inputs(n, 1), phi=a.phi)
        assert cp.n_laws > 7 and not cp.exact  # rank R < rank dphi: inputs proven too few
    c = number_of_laws_model(a.g, th, a.sample_inputs(200, 1), phi=a.phi)
    assert c.exact and c.n_laws == 7 and c.rank_dphi == number_of_laws(a.phi, th).rank_dphi
    # enough inputs but no proof (no phi, no n_known): still only a bound, even if it is right
    c = number_of_laws_model(a.g, th, a.sample_inputs(200, 1))
    assert c.n_laws == 7 and not c.exact
    assert number_of_laws_model(a.g, th, a.sample_inputs(200, 1), n_known=7).certified


def test_model_count_dead_neuron_is_detected_by_phi():
    # a hidden neuron inactive on every input: its weights look conserved on the data (more
    # "laws"), and rank R < rank dphi exposes it
    a = A.relu_deep([3, 4, 2], bias=True)
    th = a.sample_params(0).clone()
    p = a.unflatten(th)  # views into th
    p["W1"][0] = 0.0
    p["b1"][0] = -1.0  # neuron 0 of layer 1 is dead for every input
    c = number_of_laws_model(a.g, th, a.sample_inputs(300, 1), phi=a.phi)
    assert c.n_laws > 4 and not c.exact
    with pytest.raises(InputError, match="^phi"):
        number_of_laws_model(a.g, th, a.sample_inputs(30, 1), phi=lambda t: t[:1] * 0)


class _NoForward(torch.autograd.Function):
    """x -> x^2 with a backward formula and no forward-mode one (jacfwd cannot run it)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


@pytest.mark.parametrize("d_out", [2, 3, 40])
def test_flat_jacobian_matches_the_closed_form_in_both_modes(d_out):
    # f(t) = A (t * t) (+ t-products): Jacobian A diag(2 t), with d_out rows, for d_out below,
    # at and above D = 3 (reverse, reverse, forward mode)
    from measureflow.conservation.lie import flat_jacobian

    g = torch.Generator().manual_seed(d_out)
    A_ = torch.randn(d_out, 3, generator=g, dtype=torch.float64)
    t = torch.randn(3, generator=g, dtype=torch.float64)
    J = flat_jacobian(lambda x: (A_ @ (x * x)).reshape(d_out, 1), t)
    assert J.shape == (d_out, 3)
    torch.testing.assert_close(J, A_ * (2 * t), rtol=0, atol=8 * torch.finfo(t.dtype).eps)
    # an op without a forward-mode formula (jacfwd raises NotImplementedError on it): the
    # reverse-mode fallback gives the same matrix
    Jn = flat_jacobian(lambda x: A_ @ _NoForward.apply(x), t)
    torch.testing.assert_close(Jn, A_ * (2 * t), rtol=0, atol=8 * torch.finfo(t.dtype).eps)


def test_path_lifting_jacobian_forward_equals_reverse(monkeypatch):
    # many paths, few parameters: forward mode is the one used, and gives jacrev's matrix
    from torch.func import jacfwd, jacrev

    import measureflow.conservation.lie as lie
    from measureflow.conservation.lie import flat_jacobian

    used = []
    monkeypatch.setattr(lie, "jacfwd", lambda f: used.append("fwd") or jacfwd(f))
    monkeypatch.setattr(lie, "jacrev", lambda f: used.append("rev") or jacrev(f))
    arch = A.relu_deep([3, 4, 5, 2], bias=True)
    th = arch.sample_params(0)
    J = flat_jacobian(arch.phi, th)
    assert used == ["fwd"]
    used.clear()
    flat_jacobian(lambda t: (t * t).sum(), th)   # one output: reverse mode
    assert used == ["rev"]
    Jr = jacrev(lambda x: arch.phi(x).reshape(-1))(th)
    assert J.shape[0] > th.numel()
    scale = float(Jr.abs().max())
    torch.testing.assert_close(J, Jr, rtol=0, atol=16 * torch.finfo(th.dtype).eps * scale)
