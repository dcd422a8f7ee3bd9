"""Tests of measureflow.ot.benamou_brenier (dynamic OT by proximal splitting)."""

import numpy as np
import pytest
import torch

from measureflow import InputError
from measureflow.ot import benamou_brenier
from measureflow.ot.dynamic import prox_kinetic


def _bumps(n):
    x = (np.arange(n) + 0.5) / n
    g = lambda m, s: np.exp(-(x - m) ** 2 / (2 * s ** 2))
    r0 = g(0.3, 0.06)
    r1 = g(0.68, 0.08) + 0.5 * g(0.45, 0.05)
    return x, r0 / (r0.sum() / n), r1 / (r1.sum() / n)


def _w2_1d(r0, r1, n):
    """W2^2 of two piecewise-constant densities on [0, 1] by the quantile formula."""
    edges = np.linspace(0, 1, n + 1)
    q = (np.arange(100000) + 0.5) / 100000
    F0 = np.concatenate([[0], np.cumsum(r0) / r0.sum()])
    F1 = np.concatenate([[0], np.cumsum(r1) / r1.sum()])
    return float(np.mean((np.interp(q, F0, edges) - np.interp(q, F1, edges)) ** 2))


def test_w2_matches_1d_closed_form():
    n = 32
    _, r0, r1 = _bumps(n)
    res = benamou_brenier(r0, r1, n_time=8, max_iter=1500)
    assert res.converged
    ref = _w2_1d(r0, r1, n)
    assert res.value == pytest.approx(ref, rel=0.01)
    # endpoints and exact mass conservation along the path
    np.testing.assert_allclose(res.densities[0], r0)
    np.testing.assert_allclose(res.densities[-1], r1)
    masses = res.densities.sum(1) / n
    np.testing.assert_allclose(masses, 1.0, atol=1e-10)
    assert res.momentum.shape == (8, n, 1)
    assert res.times.shape == (9,)


def test_identity_has_zero_cost():
    _, r0, _ = _bumps(32)
    res = benamou_brenier(r0, r0, n_time=6, max_iter=300)
    assert res.converged
    assert abs(res.value) < 1e-8
    np.testing.assert_allclose(res.densities[3], r0, atol=1e-6 * r0.max())


def test_2d_translation_cost():
    n = 16
    x = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    g = lambda a, b: np.exp(-((X - a) ** 2 + (Y - b) ** 2) / (2 * 0.1 ** 2))
    r0, r1 = g(0.35, 0.4), g(0.6, 0.55)
    r0, r1 = r0 / r0.mean(), r1 / r1.mean()
    res = benamou_brenier(torch.tensor(r0), torch.tensor(r1), n_time=6, max_iter=800, tol=3e-4)
    assert isinstance(res.value, torch.Tensor) and res.converged
    assert float(res.value) == pytest.approx(0.25 ** 2 + 0.15 ** 2, rel=0.01)
    # the midpoint density is centred at the midpoint of the translation
    mid = res.densities[3].numpy()
    cx = (mid * X).sum() / mid.sum()
    cy = (mid * Y).sum() / mid.sum()
    assert cx == pytest.approx(0.475, abs=0.01) and cy == pytest.approx(0.475, abs=0.01)


def test_prox_kinetic_is_the_prox():
    torch.manual_seed(0)
    f0 = torch.randn(400, dtype=torch.float64) * 2
    m0 = torch.randn(400, 2, dtype=torch.float64)
    gamma = 0.7
    f, m = prox_kinetic(f0, m0, gamma)

    def obj(fv, mv):
        kin = torch.where(fv > 0, (mv ** 2).sum(-1) / (2 * fv.clamp_min(1e-300)),
                          torch.where((mv ** 2).sum(-1) == 0, 0.0, float("inf")))
        return gamma * kin + 0.5 * (fv - f0) ** 2 + 0.5 * ((mv - m0) ** 2).sum(-1)

    base = obj(f, m)
    for _ in range(20):  # random perturbations never decrease the prox objective
        df = 1e-3 * torch.randn_like(f)
        dm = 1e-3 * torch.randn_like(m)
        assert bool((obj((f + df).clamp_min(0), m + dm) >= base - 1e-12).all())


@pytest.mark.parametrize("r1, kwargs, name", [
    (np.ones(10) * 2, {}, "rho0, rho1"),
    (np.ones(11), {}, "rho1"),
    (-np.ones(10), {}, "rho1"),
    (np.ones(10), {"n_time": 1}, "n_time"),
    (np.ones(10), {"relaxation": 2.5}, "relaxation"),
    (np.ones(10), {"extent": [(0, 1), (0, 1)]}, "extent"),
])
def test_input_errors(r1, kwargs, name):
    with pytest.raises(InputError, match=f"^{name}"):
        benamou_brenier(np.ones(10), r1, **kwargs)


def test_nan_rejected():
    r = np.ones(10)
    r[3] = np.nan
    with pytest.raises(InputError, match="^rho0"):
        benamou_brenier(r, np.ones(10))


@pytest.mark.filterwarnings("ignore")  # the identity holds at every iterate
def test_momentum_integrates_to_mean_displacement():
    # d/dt int x rho = int m (continuity equation, no-flux walls): the total momentum over
    # space-time equals the displacement of the mean; exact for the staggered projection
    n = 24
    x, r0, r1 = _bumps(n)
    res = benamou_brenier(r0, r1, n_time=4, max_iter=40)
    disp = ((r1 - r0) * x).sum() / n
    total = res.momentum.sum() / n / 4
    assert total == pytest.approx(disp, rel=1e-8)
    assert disp > 0.1  # the test is not vacuous


def test_nonconvergence_is_reported():
    _, r0, r1 = _bumps(24)
    with pytest.warns(Warning, match="not converged"):
        res = benamou_brenier(r0, r1, n_time=6, max_iter=20)
    assert not res.converged and res.n_iter == 20 and res.errors[-1] > 1e-4
