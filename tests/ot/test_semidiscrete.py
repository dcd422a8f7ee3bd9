"""Tests of measureflow.ot.semidiscrete (semi-discrete OT: Newton on grids, averaged SGD)."""

import warnings

import numpy as np
import pytest
import torch

import ot as pot
from measureflow import InputError
from measureflow.ot import laguerre_assign, semidiscrete


def _uniform_1d_w2(y, b):
    """W2^2(Unif[0,1], sum b_j delta_{y_j}) by the quantile formula (closed form)."""
    order = np.argsort(y)
    y, b = y[order], b[order]
    B = np.concatenate([[0.0], np.cumsum(b)])
    return float(sum(((B[j + 1] - y[j]) ** 3 - (B[j] - y[j]) ** 3) / 3 for j in range(len(y))))


def test_newton_1d_matches_quantile_closed_form():
    rng = np.random.default_rng(1)
    y = rng.random(6)
    b = rng.random(6) + 0.3
    b /= b.sum()
    res = semidiscrete(y, b, density=np.ones(2000))
    assert res.converged
    assert res.errors[-1] <= 1e-9
    np.testing.assert_allclose(res.cell_masses, b, atol=1e-9)
    ref = _uniform_1d_w2(y, b)
    assert res.value == pytest.approx(ref, abs=2e-6)
    assert res.primal_cost == pytest.approx(ref, abs=2e-6)
    # the Laguerre cells are the quantile intervals: the map is monotone
    x = np.linspace(0.001, 0.999, 500)[:, None]
    mapped = res.map(x)[:, 0]
    assert np.all(np.diff(mapped) >= -1e-12)


def test_newton_2d_brackets_exact_lp_on_grid():
    rng = np.random.default_rng(0)
    y = rng.random((8, 2))
    b = rng.random(8) + 0.5
    b /= b.sum()
    n = 50
    xs = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    rho = 1.0 + X + 0.5 * np.sin(4 * Y)
    res = semidiscrete(y, b, density=rho)
    assert res.converged and res.n_iter < 30
    P = np.stack([X.ravel(), Y.ravel()], 1)
    w = rho.ravel() / rho.sum()
    C = ((P[:, None, :] - y[None]) ** 2).sum(-1)
    exact = pot.emd2(w, b, C, numItermax=10 ** 7)
    # weak duality on the grid measure: dual <= LP optimum <= cost of the split Laguerre plan
    assert res.value <= exact + 1e-12
    assert res.primal_cost >= exact - 1e-12
    assert res.primal_cost - res.value <= 2e-3 * exact
    # weights are shift-invariant: adding a constant gives the same cells
    idx = laguerre_assign(P, y, res.weights)
    idx2 = laguerre_assign(P, y, res.weights + 3.0)
    np.testing.assert_array_equal(idx, idx2)
    # hard assignment of pixels reproduces b up to the pixels cut by facets
    hard = np.bincount(idx, weights=w, minlength=8)
    assert np.abs(hard - b).sum() < 0.05


def test_zero_weights_give_voronoi():
    rng = np.random.default_rng(3)
    x, y = rng.random((200, 2)), rng.random((7, 2))
    idx = laguerre_assign(x, y, np.zeros(7))
    nn = ((x[:, None] - y[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(idx, nn)
    # 1-D inputs: the cell of 0.3 between y = 0 and y = 1 flips when psi favours y = 1 enough
    assert list(laguerre_assign(np.array([0.3]), np.array([0.0, 1.0]), np.zeros(2))) == [0]
    assert list(laguerre_assign(np.array([0.3]), np.array([0.0, 1.0]), np.array([0.0, 0.5]))) \
        == [1]


def test_sgd_sampler_agrees_with_newton():
    rng = np.random.default_rng(2)
    y = rng.random((5, 2))
    b = np.full(5, 0.2)
    newton = semidiscrete(y, b, density=np.ones((80, 80)))

    def sampler(n, gen):
        return torch.rand(n, 2, generator=gen, dtype=torch.float64)

    sgd = semidiscrete(y, b, sampler=sampler, seed=0, tol=0.02, n_eval=40000, max_iter=6000)
    assert sgd.converged
    assert sgd.method == "sgd"
    assert sgd.value == pytest.approx(newton.value, rel=0.03)
    wn = newton.weights - newton.weights.mean()
    ws = sgd.weights - sgd.weights.mean()
    assert np.abs(wn - ws).max() < 0.1 * np.ptp(wn) + 1e-3


def test_numpy_and_torch_io():
    y = np.array([[0.25], [0.75]])
    res = semidiscrete(y, density=np.ones(100))
    assert isinstance(res.weights, np.ndarray) and isinstance(res.value, float)
    yt = torch.tensor(y)
    rt = semidiscrete(yt, density=torch.ones(100, dtype=torch.float64))
    assert isinstance(rt.weights, torch.Tensor) and rt.weights.dtype == torch.float64
    assert isinstance(rt.map(torch.tensor([[0.1], [0.9]])), torch.Tensor)
    # two equal cells on a uniform density: W2^2 = 2 * int_0^{1/2} (t - 1/4)^2 dt = 1/48
    # (the grid measure of n midpoints has W2^2 = 1/48 - h^2/12, h = 1/n)
    assert res.value == pytest.approx(1 / 48 - 1e-4 / 12, abs=1e-9)


def test_nonconvergence_is_reported():
    y = np.random.default_rng(0).random((6, 2))
    with pytest.warns(Warning, match="not converged"):
        res = semidiscrete(y, density=np.ones((40, 40)), max_iter=1)
    assert not res.converged


@pytest.mark.parametrize("kwargs, name", [
    (dict(), "density"),
    (dict(density=np.ones(10), sampler=lambda n, g: np.zeros((n, 1))), "density"),
    (dict(density=-np.ones(10)), "density"),
    (dict(density=np.ones((10, 10))), "density"),
    (dict(density=np.ones(10), method="bogus"), "method"),
    (dict(density=np.ones(10), extent=[(1.0, 0.0)]), "extent"),
    (dict(density=np.ones(10), tol=-1.0), "tol"),
    (dict(density=np.ones(10), init=np.zeros(5)), "init"),
    (dict(sampler=lambda n, g: np.zeros((n, 1)), method="newton"), "method"),
    (dict(sampler=lambda n, g: np.zeros((n, 1)), b=[0.5, 0.6]), "b"),
    (dict(density=np.ones(10), b=[-0.5, 1.5]), "b"),
])
def test_input_errors(kwargs, name):
    y = np.array([[0.2], [0.7]])
    with pytest.raises(InputError, match=f"^{name}"):
        semidiscrete(y, **kwargs)


def test_nan_target_and_bad_sampler():
    with pytest.raises(InputError, match="^y"):
        semidiscrete(np.array([[np.nan], [0.5]]), density=np.ones(10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="^sampler"):
            semidiscrete(np.array([[0.2], [0.5]]), sampler=lambda n, g: np.zeros((n, 3)))


def test_envelope_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    y = torch.tensor(rng.random((5, 2)), requires_grad=True)
    b = torch.tensor(rng.random(5) + 0.5)
    b = (b / b.sum()).requires_grad_(True)
    rho = torch.ones(120, 120, dtype=torch.float64)
    val = semidiscrete(y, b, density=rho).value
    gy, gb = torch.autograd.grad(val, (y, b))
    h = 1e-5
    for j, k in [(0, 0), (3, 1)]:
        e = torch.zeros(5, 2, dtype=torch.float64)
        e[j, k] = h
        fd = (semidiscrete(y.detach() + e, b.detach(), density=rho).value
              - semidiscrete(y.detach() - e, b.detach(), density=rho).value) / (2 * h)
        assert float(gy[j, k]) == pytest.approx(float(fd), rel=1e-2, abs=1e-5)
    # (the grid value is only piecewise smooth: agreement to the pixel scale, 1 %)
    # a mass-preserving perturbation of b: derivative psi_0 - psi_1
    e = torch.zeros(5, dtype=torch.float64)
    e[0], e[1] = h, -h
    fd = (semidiscrete(y.detach(), b.detach() + e, density=rho).value
          - semidiscrete(y.detach(), b.detach() - e, density=rho).value) / (2 * h)
    assert float(gb[0] - gb[1]) == pytest.approx(float(fd), rel=1e-2, abs=1e-5)


def test_newton_jacobian_is_exact_derivative_of_masses():
    # the hand-written Jacobian of the split cell masses is the exact derivative: Newton then
    # converges quadratically, e_{k+1} <= C e_k^2 once e_k is small (an inexact Jacobian, e.g.
    # one that ignores the pixels split between cells, converges only linearly)
    rng = np.random.default_rng(0)
    y = rng.uniform(0.1, 0.9, size=(6, 2))
    b = rng.uniform(0.5, 1.5, 6)
    b /= b.sum()
    xs = (np.arange(30) + 0.5) / 30
    rho = np.outer(1 + 0.5 * np.sin(3 * xs), 1 + 0.3 * np.cos(2 * xs))
    res = semidiscrete(y, b, density=rho, tol=1e-13)
    assert res.converged
    e = res.errors
    pairs = [(e[k], e[k + 1]) for k in range(len(e) - 1) if e[k] < 1e-3]
    assert len(pairs) >= 2                        # several steps in the quadratic regime
    # C = 20 covers this problem's second-derivative constant; 1e-14: the float64 floor of
    # the L1 mass error summed over 900 pixels
    assert all(e1 <= 20 * e0 ** 2 + 1e-14 for e0, e1 in pairs), e


def test_sgd_nonconvergence_is_reported():
    y = np.array([[0.2], [0.5], [0.8]])
    with pytest.warns(Warning, match="not converged"):
        res = semidiscrete(y, density=np.ones(50), method="sgd", max_iter=5, check_every=5,
                           tol=1e-6, n_eval=2000, seed=0)
    assert not res.converged and res.n_iter == 5
