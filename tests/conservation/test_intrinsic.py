import pytest
import torch

from measureflow import InputError
from measureflow.conservation import architectures as A
from measureflow.conservation import intrinsic as I

F64 = torch.float64


@pytest.mark.parametrize("bias", [False, True])
def test_relu_metric_formula(bias):
    a = A.relu_two_layer(3, 2, 3, bias=bias)
    th = a.sample_params(0)
    K = I.metric_relu_two_layer(a.phi(th), -a.laws(th))
    M = I.metric(a.phi, th)
    assert torch.allclose(K, M, atol=1e-12)


@pytest.mark.parametrize("n,m,r,lam", [(3, 4, 2, .7), (4, 3, 3, 1.3), (3, 3, 3, -.8),
                                       (2, 5, 2, 0.)])
def test_relaxed_balanced_linear_metric(n, m, r, lam):
    U, V = I.relaxed_balanced_linear(n, m, r, lam, seed=1)
    assert torch.allclose(U.T @ U - V.T @ V, lam * torch.eye(r, dtype=F64), atol=1e-12)
    a = A.linear_two_layer(n, m, r)
    th = torch.cat([U.reshape(-1), V.reshape(-1)])
    K = I.metric_linear_relaxed_balanced(U @ V.T, lam, r)
    assert torch.allclose(K, I.metric(a.phi, th), atol=1e-10)


def test_generic_linear_init_is_not_intrinsic():
    a = A.linear_two_layer(3, 3, 2)
    th = a.sample_params(0)
    p = a.unflatten(th)
    # the closed form with the best lam still misses M at a generic (unbalanced) point
    S = p["U"].T @ p["U"] - p["V"].T @ p["V"]
    lam = float(torch.trace(S)) / 2
    K = I.metric_linear_relaxed_balanced(a.phi(th), lam, 2)
    assert (K - I.metric(a.phi, th)).abs().max() > 1e-2


@pytest.mark.parametrize("lams", [[0.0, 0.0], [0.5, -0.3], [1.0, 0.4, -0.2]])
def test_deep_square_metric(lams):
    Us = I.relaxed_balanced_deep(3, lams, seed=2)
    for i in range(len(Us) - 1):
        assert torch.allclose(Us[i + 1].T @ Us[i + 1] - Us[i] @ Us[i].T,
                              lams[i] * torch.eye(3, dtype=F64), atol=1e-12)
    a = A.linear_deep([3] * (len(Us) + 1))
    th = torch.cat([U.reshape(-1) for U in Us])
    K = I.metric_deep_linear(a.phi(th), lams)
    assert torch.allclose(K, I.metric(a.phi, th), atol=1e-9)


def test_kernel_inclusion_table():
    relu = A.relu_two_layer(3, 3, 2)
    res = I.kernel_inclusion(relu.phi, relu.sample_params(0))
    assert res.dim_intersection == 0 and res.recoverable and res.holds
    for r in (2, 3):
        lin = A.linear_two_layer(3, 3, r)
        th = lin.sample_params(0)
        res = I.kernel_inclusion(lin.phi, th)
        res_laws = I.kernel_inclusion(lin.phi, th, laws=lin.laws)
        assert res.dim_intersection == res_laws.dim_intersection == r * (r - 1) // 2
        assert not res.recoverable and not res.holds and res.relative_dM > 1e-2
    lin = A.linear_two_layer(3, 3, 2)
    for lam in (0.5, -0.3, 0.0):
        U, V = I.relaxed_balanced_linear(3, 3, 2, lam, seed=3)
        res = I.kernel_inclusion(lin.phi, torch.cat([U.reshape(-1), V.reshape(-1)]))
        assert res.dim_intersection == 1 and res.holds and res.relative_dM < 1e-10
    assert I.recoverable(relu.phi, relu.sample_params(1))


def test_frobenius_path_lifting_vs_linear_and_attention():
    dag = I.mlp_dag([2, 3, 2, 2], bias=True)
    phi, n_paths = I.path_lifting(dag)
    th = torch.randn(dag.n_params, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert n_paths == 2 * 3 * 2 * 2 + 3 * 2 * 2 + 2 * 2 + 2
    assert I.frobenius_test(phi, th)
    assert not I.frobenius_test(A.linear_two_layer(2, 2, 2).phi, torch.randn(8, dtype=F64))
    att = A.attention(3, 2)
    assert not I.frobenius_test(att.phi, att.sample_params(0))


def test_path_lifting_general_dag_with_skip_edge():
    # inputs 0,1 ; hidden 2 ; output 3 ; edges 0->2, 1->2, 2->3 and a skip 0->3
    dag = I.DAG(n_nodes=4, edges=((0, 2, 0), (1, 2, 1), (2, 3, 2), (0, 3, 3)), inputs=(0, 1),
                outputs=(3,), biases={2: 4}, n_params=5)
    phi, n = I.path_lifting(dag)
    t = torch.tensor([2.0, 3.0, 5.0, 7.0, 11.0], dtype=F64)
    assert sorted(phi(t).tolist()) == sorted([10.0, 15.0, 7.0, 55.0])
    h = I.dag_laws(dag)(t)
    assert torch.allclose(h, torch.tensor([4.0 + 9.0 + 121.0 - 25.0], dtype=F64))
    with pytest.raises(InputError, match="cycle"):
        I.path_lifting(I.DAG(3, ((0, 1, 0), (1, 2, 1), (2, 1, 2)), (0,), (2,), {}, 3))


def test_linear_neural_ode_relaxed_balanced_and_intrinsic_flow():
    mu = 0.6
    A0 = I.relaxed_balanced_neural_ode(3, 12, mu, seed=0)
    S = I.neural_ode_law(A0)
    assert (S - mu * torch.eye(3, dtype=F64)).abs().max() < 1e-2
    Y = torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    res = I.neural_ode_flow(A0, Y, mu, t_max=0.3, n_t=8)
    moved = float((res.Z_param[-1] - res.Z_param[0]).norm() / res.Z_param[0].norm())
    assert moved > 0.05
    assert res.max_rel_error < 2e-3 * moved / 0.05
    # a generic (non relaxed balanced) path breaks the intrinsic formula
    A1 = A0 + 0.3 * torch.randn(A0.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    res1 = I.neural_ode_flow(A1, Y, mu, t_max=0.3, n_t=8)
    assert res1.max_rel_error > 10 * res.max_rel_error


def test_neural_ode_metric_balanced_closed_form():
    # mu = 0 and symmetric constant A: K[G] = int (Z^2)^{1-s} G (Z^2)^s ds, check against the
    # metric of the path computed by quadrature of Phi(1,s)Phi(1,s)^T G Phi(s,0)^T Phi(s,0)
    S0 = torch.tensor([[0.3, 0.1, 0.0], [0.1, -0.2, 0.05], [0.0, 0.05, 0.4]], dtype=F64)
    Z = torch.linalg.matrix_exp(S0)
    K = I.metric_neural_ode(Z, 0.0)
    import numpy as np
    x, w = np.polynomial.legendre.leggauss(40)
    ref = 0
    for s, ws in zip((x + 1) / 2, w / 2):
        Ls = torch.linalg.matrix_exp(2 * (1 - s) * S0)
        Rs = torch.linalg.matrix_exp(2 * s * S0)
        ref = ref + float(ws) * torch.kron(Ls, Rs.T.contiguous())
    assert torch.allclose(K, ref, atol=1e-12)


def test_bad_input():
    with pytest.raises(InputError, match="r"):
        I.relaxed_balanced_linear(2, 3, 3, 0.5)
    with pytest.raises(InputError, match="r"):
        I.metric_linear_relaxed_balanced(torch.ones(2, 3, dtype=F64), 0.1, 3)
    with pytest.raises(InputError, match="Z"):
        I.metric_deep_linear(torch.ones(2, 3, dtype=F64), [0.1])
    with pytest.raises(InputError, match="A"):
        I.neural_ode_product(torch.ones(3, 3, dtype=F64))
    with pytest.raises(InputError, match="theta"):
        I.kernel_inclusion(lambda t: t, torch.ones(2, 2, dtype=F64))


def test_numpy_in_numpy_out_and_torch_autograd():
    import numpy as np
    Z = np.random.default_rng(0).standard_normal((3, 3))
    K = I.metric_deep_linear(Z, [0.2])
    assert isinstance(K, np.ndarray) and K.shape == (9, 9)
    Kt = I.metric_deep_linear(torch.as_tensor(Z), [0.2])
    assert isinstance(Kt, torch.Tensor) and np.allclose(Kt.numpy(), K)
    Zr = np.random.default_rng(1).standard_normal((2, 3, 2))
    assert isinstance(I.metric_relu_two_layer(Zr, np.array([0.3, -0.2])), np.ndarray)
    assert isinstance(I.metric_linear_relaxed_balanced(Z, 0.5, 3), np.ndarray)
    assert isinstance(I.metric_neural_ode(np.eye(3) + 0.1 * Z, 0.3), np.ndarray)
    a = A.linear_two_layer(2, 2, 1)
    assert isinstance(I.metric(a.phi, np.ones(4)), np.ndarray)
    # gradients flow through the closed form (tensor in, autograd kept)
    Zt = torch.as_tensor(Z).clone().requires_grad_(True)
    I.metric_linear_relaxed_balanced(Zt, 0.5, 3).sum().backward()
    assert Zt.grad is not None and torch.isfinite(Zt.grad).all()


def test_deep_metric_gradcheck_in_z():
    Us = I.relaxed_balanced_deep(2, [0.3, -0.2], seed=4)
    Z0 = (Us[2] @ Us[1] @ Us[0]).clone().requires_grad_(True)
    fn = lambda Z: I.metric_deep_linear(Z, [0.3, -0.2])
    assert torch.autograd.gradcheck(fn, (Z0,), atol=1e-6, rtol=1e-5)


def test_level0_sketch_path_agrees_with_exact():
    from measureflow.conservation import gradient_fields, lie_closure
    a = A.attention(4, 2, 1)
    th = a.sample_params(0)
    exact = lie_closure(gradient_fields(a.phi), th)
    sketch = lie_closure(gradient_fields(a.phi), th, exact_level0_max=0, batch_size=7)
    assert exact.ranks_by_depth == sketch.ranks_by_depth == (24, 26, 26)


def test_bad_scalar_options():
    a = A.linear_two_layer(2, 2, 2)
    th = a.sample_params(0)
    with pytest.raises(InputError, match="^phi"):
        I.metric(3, th)
    with pytest.raises(InputError, match="^tol"):
        I.kernel_inclusion(a.phi, th, tol=-1.0)
    with pytest.raises(InputError, match="^rtol"):
        I.kernel_inclusion(a.phi, th, rtol=0.0)
    with pytest.raises(InputError, match="^lam"):
        I.relaxed_balanced_linear(2, 2, 1, float("nan"))
    with pytest.raises(InputError, match="^lams"):
        I.relaxed_balanced_deep(2, [1.0, float("inf")])
