"""Transport maps (measureflow.ot.maps): identities, closed forms, invariances, array kinds, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from scipy.special import logsumexp
from scipy.stats import norm

from _tol import eps as machine_eps
from measureflow import InputError, ot


def _clouds(n=40, m=30, d=2, seed=0, shift=1.5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(m, d)) + shift


def _cost(x, y):
    return ((x[:, None] - y[None]) ** 2).sum(-1)


def _naive_entropic_map(z, y, g, b, eps, p=2.0):
    """Dense reference in NumPy: softmax_j(log b_j + (g_j - |z - y_j|^p)/eps) @ y."""
    C = np.sqrt(((z[:, None] - y[None]) ** 2).sum(-1)) ** p
    logits = np.log(b)[None] + (g[None] - C) / eps
    W = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    return W @ y


# ----------------------------------------------------------------------------------- identities
@pytest.mark.parametrize("rho", [None, 2.0])
def test_entropic_map_equals_barycentric_projection_on_training_points(rho):
    x, y = _clouds()
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 1.5, 40)
    a /= a.sum()
    b = np.full(30, 1 / 30)
    res = ot.solve(a, b, _cost(x, y), eps=0.5, rho=rho)
    T = ot.EntropicMap.from_result(res, x, y, a, b)
    B = ot.BarycentricMap(x, y, res.plan)
    # the plan is a_i b_j exp((f_i + g_j - C_ij)/eps): f_i cancels in the row-normalised ratio,
    # so the identity holds to rounding whatever the solver's residual
    np.testing.assert_allclose(T(x), B.values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(T.inverse()(y), B.inverse().values, rtol=0, atol=1e-12)
    # the OTResult face of BarycentricMap (plan products) gives the same values
    np.testing.assert_allclose(ot.BarycentricMap(x, y, res).values, B.values, atol=1e-13)


def test_entropic_map_matches_a_dense_reference_out_of_sample():
    x, y = _clouds()
    b = np.full(30, 1 / 30)
    res = ot.solve(None, b, _cost(x, y), eps=0.3)
    z = np.random.default_rng(2).normal(size=(25, 2)) * 3.0      # far from the data too
    T = ot.EntropicMap.from_result(res, x, y)
    ref = _naive_entropic_map(z, y, res.potential_g, b, 0.3)
    np.testing.assert_allclose(T(z), ref, rtol=0, atol=1e-12)


def test_entropic_map_from_streamed_solve_and_row_blocks():
    # 700 x 400 > 2^18 entries: the reductions run over several row blocks
    x, y = _clouds(n=700, m=400, d=3, seed=3)
    res = ot.sinkhorn_points(x, y, eps=2.0)
    T = ot.EntropicMap.from_result(res, x, y)
    np.testing.assert_allclose(T(x), ot.BarycentricMap(x, y, res).values, atol=1e-12)
    ref = _naive_entropic_map(x[:50], y, res.potential_g, np.full(400, 1 / 400), 2.0)
    np.testing.assert_allclose(T(x[:50]), ref, atol=1e-12)


@pytest.mark.parametrize("cost, p", [("euclidean", 1.0), (1.5, 1.5)])
def test_entropic_map_other_costs(cost, p):
    x, y = _clouds(n=20, m=15)
    C = np.sqrt(_cost(x, y)) ** p
    res = ot.solve(None, None, C, eps=0.4)
    T = ot.EntropicMap.from_result(res, x, y, cost=cost)
    z = np.random.default_rng(4).normal(size=(7, 2))
    ref = _naive_entropic_map(z, y, res.potential_g, np.full(15, 1 / 15), 0.4, p)
    np.testing.assert_allclose(T(z), ref, atol=1e-12)
    np.testing.assert_allclose(T(x), ot.BarycentricMap(x, y, res.plan).values, atol=1e-12)


# ----------------------------------------------------------------------------------- Gaussians
def _quantile_grid(k, angle=0.0):
    """k^2 points approximating N(0, I_2): a product grid of normal quantiles, rotated."""
    q = norm.ppf((np.arange(k) + 0.5) / k)
    U = np.stack(np.meshgrid(q, q), -1).reshape(-1, 2)
    c, s = np.cos(angle), np.sin(angle)
    return U @ np.array([[c, -s], [s, c]]).T


M0, S0 = np.zeros(2), np.array([[1.0, 0.3], [0.3, 0.6]])
M1, S1 = np.array([2.0, -1.0]), np.array([[0.8, -0.2], [-0.2, 1.5]])


def _entropic_gaussian_map(eps):
    """Closed-form entropic map between N(M0, S0) and N(M1, S1) for the cost |x - y|^2 and the
    regulariser eps KL (Janati et al. 2020 / Mallasto et al. 2021 with sigma^2 = eps / 2): the
    plan is Gaussian with cross-covariance C_s = S0^{1/2} D S0^{-1/2} / 2 - sigma^2 I / 2,
    D = (4 S0^{1/2} S1 S0^{1/2} + sigma^4 I)^{1/2}, so E[y | x] = M1 + C_s^T S0^{-1} (x - M0)."""
    s2 = eps / 2
    R0 = np.real(sqrtm(S0))
    D = np.real(sqrtm(4 * R0 @ S1 @ R0 + s2 ** 2 * np.eye(2)))
    Cs = 0.5 * R0 @ D @ np.linalg.inv(R0) - 0.5 * s2 * np.eye(2)
    M = Cs.T @ np.linalg.inv(S0)
    return lambda z: (z - M0) @ M.T + M1


def _grid_problem(k):
    x = _quantile_grid(k) @ np.real(sqrtm(S0)).T + M0
    y = _quantile_grid(k, angle=0.7) @ np.real(sqrtm(S1)).T + M1
    return x, y


def _rms(u, v):
    return float(np.sqrt(((u - v) ** 2).sum(1).mean()))


def test_entropic_map_tends_to_the_gaussian_brenier_map():
    """The entropic map of quantile samples tracks the closed-form entropic map of the
    Gaussians (error shrinking with the sample size), which tends to the Brenier map
    ``ot.GaussianMap`` as eps -> 0 (its bias is O(eps))."""
    z = np.random.default_rng(0).normal(size=(200, 2)) @ (0.5 * np.linalg.cholesky(S0)).T + M0
    brenier = ot.GaussianMap(M0, S0, M1, S1)
    x, y = _grid_problem(20)
    to_brenier, to_closed = [], []
    for eps in (1.0, 0.3, 0.1):
        T = ot.EntropicMap.from_result(ot.solve(None, None, _cost(x, y), eps=eps), x, y)
        to_closed.append(_rms(T(z), _entropic_gaussian_map(eps)(z)))
        to_brenier.append(_rms(T(z), brenier(z)))
    # eps bias: 0.18, 0.063, 0.022 measured (about proportional to eps)
    assert to_brenier[0] > 2 * to_brenier[1] > 4 * to_brenier[2]
    assert to_brenier[2] < 0.04
    # the discretisation error (measured 0.004 - 0.007 on a 20 x 20 grid) halves from k = 10
    assert max(to_closed) < 0.02
    x10, y10 = _grid_problem(10)
    T10 = ot.EntropicMap.from_result(ot.solve(None, None, _cost(x10, y10), eps=0.3), x10, y10)
    assert to_closed[1] < 0.6 * _rms(T10(z), _entropic_gaussian_map(0.3)(z))


def test_gaussian_map_wraps_gaussian_map_and_inverts():
    A, shift = ot.gaussian_map(M0, S0, M1, S1)
    T = ot.GaussianMap(M0, S0, M1, S1)
    z = np.random.default_rng(5).normal(size=(10, 2))
    np.testing.assert_allclose(T(z), z @ A.T + shift, atol=1e-14)
    np.testing.assert_allclose(T.inverse()(T(z)), z, atol=1e-12)
    # push-forward of the covariance: A S0 A^T = S1
    np.testing.assert_allclose(A @ S0 @ A.T, S1, atol=1e-12)


def test_laguerre_map_wraps_the_semidiscrete_result():
    y = np.array([[0.2, 0.2], [0.8, 0.3], [0.5, 0.8]])
    res = ot.semidiscrete(y, density=np.ones((24, 24)), extent=[(0, 1), (0, 1)])
    T = ot.LaguerreMap.from_result(res)
    z = np.random.default_rng(6).uniform(size=(50, 2))
    np.testing.assert_array_equal(T(z), res.map(z))
    np.testing.assert_array_equal(T.assign(z), ot.laguerre_assign(z, y, res.weights))
    assert not T.has_inverse
    with pytest.raises(NotImplementedError):
        T.inverse()


# ----------------------------------------------------------------------------------- barycentric
def test_barycentric_map_of_a_permutation_is_invertible_and_extends_by_translation():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    perm = rng.permutation(6)
    P = np.zeros((6, 6))
    P[np.arange(6), perm] = 1 / 6
    B = ot.BarycentricMap(x, y, P)
    # (P y) / P 1 with one entry 1/6 per row: two roundings, <= 2 ulp; 4 eps max|y| for margin
    # (a wrong permutation or a transposed plan is O(1))
    np.testing.assert_allclose(B.values, y[perm], rtol=0, atol=4 * machine_eps() * np.abs(y).max())
    np.testing.assert_allclose(B.inverse()(B(x)), x, rtol=0, atol=8 * machine_eps() * np.abs(x).max())
    # out of sample: T(x_k) + z - x_k with x_k the nearest training point (POT's ot.da rule)
    z = x + 1e-3
    np.testing.assert_allclose(B(z), y[perm] + 1e-3, atol=1e-14)


def test_barycentric_map_exact_result_and_zero_mass_rows():
    x, y = _clouds(n=8, m=8)
    a = np.full(8, 1 / 7)
    a[3] = 0.0
    res = ot.solve(a, None, _cost(x, y))
    B = ot.BarycentricMap(x, y, res)
    assert np.isnan(B.values[3]).all() and np.isfinite(np.delete(B.values, 3, 0)).all()
    # a point at x_3 is mapped through its nearest point carrying mass, never to NaN
    assert np.isfinite(B(x[3:4])).all()


# ----------------------------------------------------------------------------------- invariances
def test_entropic_map_translation_equivariance():
    x, y = _clouds(n=30, m=25, seed=8)
    z = np.random.default_rng(9).normal(size=(12, 2))
    t = np.array([3.0, -2.0])
    tol = 1e-13  # marginal violation of both solves (mass units): the potentials agree to it

    def fit(xx, yy):
        return ot.EntropicMap.from_result(ot.solve(None, None, _cost(xx, yy), eps=0.5, tol=tol),
                                          xx, yy)

    T = fit(x, y)
    np.testing.assert_allclose(fit(x, y + t)(z), T(z) + t, atol=1e-9)       # target moved
    np.testing.assert_allclose(fit(x + t, y)(z + t), T(z), atol=1e-9)       # source moved
    np.testing.assert_allclose(fit(x + t, y + t)(z + t), T(z) + t, atol=1e-9)


# ----------------------------------------------------------------------------------- arrays
def test_numpy_and_torch_in_and_out():
    x, y = _clouds(n=20, m=15)
    res = ot.solve(None, None, _cost(x, y), eps=0.5)
    T = ot.EntropicMap.from_result(res, x, y)
    out = T(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    for dt in (torch.float64, torch.float32):
        zt = torch.as_tensor(x, dtype=dt)
        o = T(zt)
        assert isinstance(o, torch.Tensor) and o.dtype == dt
        tol = 1e-12 if dt == torch.float64 else 1e-5 * np.abs(y).max()
        np.testing.assert_allclose(o.double().numpy(), out, atol=tol)
    # a map fitted from tensors evaluates NumPy points as NumPy
    rt = ot.solve(None, None, torch.as_tensor(_cost(x, y)), eps=0.5)
    Tt = ot.EntropicMap.from_result(rt, torch.as_tensor(x), torch.as_tensor(y))
    assert isinstance(Tt(x), np.ndarray)
    np.testing.assert_allclose(Tt(x), out, atol=1e-12)
    # 1-D input: points on the line
    x1, y1 = x[:, :1], y[:, :1]
    T1 = ot.EntropicMap.from_result(ot.solve(None, None, _cost(x1, y1), eps=0.5), x1, y1)
    assert T1(x1[:, 0]).shape == (20, 1)
    g = ot.GaussianMap(torch.zeros(2), torch.eye(2), torch.ones(2), 2 * torch.eye(2))
    assert isinstance(g(np.zeros((1, 2))), np.ndarray)


@pytest.mark.parametrize("p", [2.0, 1.5])
def test_entropic_map_gradient_in_the_points(p):
    x, y = _clouds(n=12, m=10)
    C = np.sqrt(_cost(x, y)) ** p
    T = ot.EntropicMap.from_result(ot.solve(None, None, C, eps=0.7), x, y, cost=p)
    z = torch.tensor(np.random.default_rng(10).normal(size=(5, 2)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: T(t), (z,), eps=1e-6, atol=1e-7)


def test_gaussian_map_is_differentiable_in_its_parameters():
    m1 = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    T = ot.GaussianMap(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64),
                       m1, torch.eye(2, dtype=torch.float64))
    T(torch.zeros(3, 2, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(m1.grad.numpy(), [3.0, 3.0])


# ----------------------------------------------------------------------------------- bad input
def test_bad_inputs():
    x, y = _clouds(n=10, m=8)
    res = ot.solve(None, None, _cost(x, y), eps=0.5)
    T = ot.EntropicMap.from_result(res, x, y)
    with pytest.raises(InputError, match="^x: points of dimension 3"):
        T(np.zeros((2, 3)))
    with pytest.raises(InputError, match="^x: contains NaN"):
        T(np.array([[np.nan, 0.0]]))
    with pytest.raises(InputError, match="^x: expected a 2-D"):
        T(np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match="^eps"):
        ot.EntropicMap(y, res.potential_g, eps=0.0)
    with pytest.raises(InputError, match="^potential_g: expected shape"):
        ot.EntropicMap(y, res.potential_g[:-1], eps=0.5)
    with pytest.raises(InputError, match="^b: has negative"):
        ot.EntropicMap(y, res.potential_g, 0.5, -np.ones(8))
    with pytest.raises(InputError, match="^potential_f"):
        ot.EntropicMap(y, res.potential_g, 0.5, x=x)
    with pytest.raises(InputError, match="^cost"):
        ot.EntropicMap(y, res.potential_g, 0.5, cost=lambda u, v: u @ v.T)
    with pytest.raises(InputError, match="^res: expected the result of an entropic"):
        ot.EntropicMap.from_result(ot.solve(None, None, _cost(x, y)), x, y)
    with pytest.raises(InputError, match="^plan: expected shape"):
        ot.BarycentricMap(x, y, np.ones((8, 8)))
    with pytest.raises(InputError, match="^plan: has negative"):
        ot.BarycentricMap(x, y, -np.ones((10, 8)))
    with pytest.raises(InputError, match="^plan"):
        ot.BarycentricMap(x[:5], y, res)
    with pytest.raises(InputError, match="^S0"):
        ot.GaussianMap(M0, np.zeros((2, 2)), M1, S1)
    with pytest.raises(InputError, match="^res"):
        ot.LaguerreMap.from_result(res)
    with pytest.raises(NotImplementedError):
        ot.EntropicMap(y, res.potential_g, 0.5).inverse()
