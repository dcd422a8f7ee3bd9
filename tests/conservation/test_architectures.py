import pytest
import torch
from torch.func import jacrev

from measureflow import InputError
from measureflow.conservation import architectures as A
from measureflow.conservation import number_of_laws, number_of_laws_model

BUILDERS = {
    "linear2": lambda: A.linear_two_layer(3, 2, 2),
    "linear_deep": lambda: A.linear_deep([2, 3, 2, 3]),
    "relu2": lambda: A.relu_two_layer(3, 2, 4),
    "relu2_bias": lambda: A.relu_two_layer(2, 3, 3, bias=True),
    "relu_deep": lambda: A.relu_deep([3, 4, 3, 2]),
    "relu_deep_bias": lambda: A.relu_deep([3, 3, 4, 2], bias=True),
    "conv": lambda: A.conv_relu(6, 2, 3, 2, 3, 3),
    "attention1": lambda: A.attention(4, 2, 1),
    "attention2": lambda: A.attention(5, 2, 2, n_tokens=3),
    "residual": lambda: A.residual(A.relu_two_layer(3, 3, 4)),
    "resnet": lambda: A.relu_resnet(3, [3, 2]),
    "resnet_scalar": A.scalar_resnet_example,
    "softmax": lambda: A.softmax_layer(4, 3),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_laws_orthogonal_to_sampled_W(name):
    a = BUILDERS[name]()
    th = a.sample_params(0)
    X = a.sample_inputs(12, 1)
    J = jacrev(lambda t: a.g(t, X).reshape(-1))(th)
    H = jacrev(a.laws)(th)
    assert H.shape[-1] == a.n_params == th.numel()
    # every law gradient is orthogonal to every d_theta g(theta, x)^T w
    assert (H @ J.T).abs().max() <= 1e-10 * (1 + H.abs().max() * J.abs().max())
    # and the laws are not trivially zero-gradient
    assert H.abs().max() > 0.1


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_counts_match_theory(name):
    a = BUILDERS[name]()
    th = a.sample_params(2)
    expected = a.expected_laws if a.expected_laws is not None else A.known_rank(a, th)
    if a.phi is not None:
        c = number_of_laws(a.phi, th)
    else:
        c = number_of_laws_model(a.g, th, a.sample_inputs(48, 3))
    assert c.n_laws == expected
    if a.n_known is not None:
        assert A.known_rank(a, th) == a.n_known


def test_deep_relu_model_count_equals_path_lifting_count():
    a = A.relu_deep([3, 4, 3, 2])
    th = a.sample_params(4)
    c1 = number_of_laws(a.phi, th)
    c2 = number_of_laws_model(a.g, th, 3.0 * a.sample_inputs(200, 5), n_known=a.n_known)
    assert c1.n_laws == c2.n_laws == 7 and c1.frobenius and c2.certified


def test_module_layouts_match():
    x2 = torch.randn(5, 2, dtype=torch.float64)
    for a, X in [(A.linear_two_layer(3, 2, 2), x2), (A.relu_two_layer(3, 2, 4, bias=True), x2),
                 (A.relu_deep([3, 4, 3, 2], bias=True), torch.randn(5, 3, dtype=torch.float64)),
                 (A.conv_relu(7, 2, 3, 2, 3, 5), torch.randn(5, 2, 7, dtype=torch.float64))]:
        th = a.sample_params(1)
        mod = a.to_module(th)
        assert torch.allclose(mod(X), a.g(th, X), rtol=0, atol=1e-12)
    a = A.relu_deep([3, 4, 3, 2], bias=True)
    th = a.sample_params(1)
    assert torch.allclose(A.mlp_laws_torch(a.to_module(th)), a.laws(th), rtol=0, atol=1e-12)
    a = A.conv_relu(7, 2, 3, 2, 3, 5)
    th = a.sample_params(1)
    mod = a.to_module(th)
    assert torch.allclose(A.conv_laws_torch(mod[0], mod[2]), a.laws(th), rtol=0, atol=1e-12)
    a = A.linear_two_layer(3, 2, 2)
    th = a.sample_params(1)
    mod = a.to_module(th)
    p = a.unflatten(th)
    assert torch.allclose(A.linear_laws_torch(mod[0], mod[1]),
                          p["U"].T @ p["U"] - p["V"].T @ p["V"], rtol=0, atol=1e-12)


def test_attention_module_layout_and_laws():
    a = A.attention(6, 3, 2, n_tokens=4)
    th = a.sample_params(3)
    mha = a.to_module(th)
    X = a.sample_inputs(2, 4)
    out, _ = mha(X, X, X, need_weights=False)
    assert torch.allclose(out, a.g(th, X), rtol=0, atol=1e-12)
    qk, vo = A.attention_laws_torch(mha)
    i, j = torch.triu_indices(3, 3)
    flat = torch.cat([torch.cat([qk[h][i, j], vo[h][i, j]]) for h in range(2)])
    assert torch.allclose(flat, a.laws(th), rtol=0, atol=1e-12)


def test_attention_not_frobenius_relu_path_lifting_is():
    a = A.attention(4, 2, 1)
    c = number_of_laws(a.phi, a.sample_params(0))
    assert not c.frobenius and c.dim_lie > c.rank_dphi
    b = A.relu_deep([2, 3, 3, 2], bias=True)
    c2 = number_of_laws(b.phi, b.sample_params(0))
    assert c2.frobenius and c2.n_laws == 6


def test_bad_builder_input():
    with pytest.raises(InputError, match="n"):
        A.linear_two_layer(0, 2, 2)
    with pytest.raises(InputError, match="dims"):
        A.relu_deep([3, 2])
    with pytest.raises(InputError, match="n_u"):
        A.conv_relu(3, 1, 1, 1, 5, 1)
    with pytest.raises(InputError, match="n"):
        A.softmax_layer(1, 3)


def test_layout_helpers_reject_bad_input():
    a = A.linear_two_layer(2, 2, 2)
    with pytest.raises(InputError, match="^theta"):
        A.known_rank(a, [float("nan")] * a.n_params)
    with pytest.raises(InputError, match="^first"):
        A.linear_laws_torch(torch.nn.Linear(2, 3), torch.nn.Linear(4, 2))
    with pytest.raises(InputError, match="^mha"):
        A.attention_laws_torch(torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match="^n"):
        a.sample_inputs(0, 0)


def test_attention_to_module_needs_heads_times_d_head_equal_dim():
    from measureflow import InputError
    from measureflow.conservation import architectures as arch_mod
    arch = arch_mod.attention(6, 2, heads=2)
    with pytest.raises(InputError, match="^d_head"):
        arch.to_module(arch.sample_params(0))
