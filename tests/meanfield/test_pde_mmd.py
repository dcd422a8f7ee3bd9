"""Ultra-fast diffusion solver, energy MMD and the teacher law."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from measureflow import ConvergenceWarning, InputError
from measureflow import meanfield as mf


def _circle(n=128, gamma=30.0):
    g = mf.periodic_grid(n)
    mus = mf.circle_teacher_density(g, gamma)
    return g, 2 * math.pi / n, mus / (mus.sum() * 2 * math.pi / n)


def test_mass_conserved_and_chi2_decreasing():
    g, h, mus = _circle()
    mu0 = np.full(g.size, 1 / (2 * math.pi))
    times = np.linspace(0, 1.0, 21)
    r = mf.ultrafast_diffusion(mu0, mus, 1.0, times=times)
    assert r.converged and isinstance(r.densities, np.ndarray)
    np.testing.assert_allclose(r.mass, 1.0, rtol=1e-10)
    assert np.all(np.diff(r.chi2) < 0)
    assert r.chi2[-1] < 0.5 * r.chi2[0]
    assert np.all(r.densities > 0)
    np.testing.assert_allclose(r.times, times)
    np.testing.assert_allclose(r.densities[0], mu0)


def test_energy_decreases_even_for_huge_steps():
    g, h, mus = _circle(gamma=300.0)
    mu0 = np.full(g.size, 1 / (2 * math.pi))
    r = mf.ultrafast_diffusion(mu0, mus, 5.0, times=np.linspace(0.5, 5, 10), dt0=0.5, max_dt=0.5)
    assert np.all(np.diff(r.chi2) < 0)
    np.testing.assert_allclose(r.mass, 1.0, rtol=1e-10)


def test_linearised_heat_decay():
    """mu = mu*(1 + eps), mu* uniform: eps_t = eps_xx, so cos(k x) decays like exp(-k^2 t)."""
    n, k, delta, T = 64, 2, 1e-4, 0.1
    g = mf.periodic_grid(n)
    mus = np.full(n, 1 / (2 * math.pi))
    mu0 = mus * (1 + delta * np.cos(k * g))
    r = mf.ultrafast_diffusion(mu0, mus, T, max_dt=1e-4)
    amp = 2 * np.mean((r.densities[-1] / mus - 1) * np.cos(k * g))
    # discrete Laplacian symbol: (2 - 2 cos(k h)) / h^2, first-order time error O(dt k^4)
    h = 2 * math.pi / n
    sym = (2 - 2 * math.cos(k * h)) / h**2
    assert amp == pytest.approx(delta * math.exp(-sym * T), rel=2e-3)
    assert amp == pytest.approx(delta * math.exp(-k**2 * T), rel=1e-2)


def test_equilibrium_and_convergence_to_teacher():
    g, h, mus = _circle(n=64, gamma=10.0)
    r = mf.ultrafast_diffusion(mus, mus, 1.0)
    np.testing.assert_allclose(r.densities[-1], mus, rtol=1e-9)
    mu0 = np.full(g.size, 1 / (2 * math.pi))
    r = mf.ultrafast_diffusion(mu0, mus, 10.0, times=[10.0])
    assert r.chi2[-1] < 1e-4


def test_torus_2d_and_torch_io():
    n = 16
    g = mf.periodic_grid(n, 4.0)
    X, Y = np.meshgrid(g, g, indexing="ij")
    mus = np.exp(-((X - 0.5) ** 2 + Y**2) / 0.5) + 0.1
    mus = mus / (mus.sum() * (4.0 / n) ** 2)
    mu0 = torch.full((n, n), 1 / 16.0, dtype=torch.float64)
    r = mf.ultrafast_diffusion(mu0, torch.as_tensor(mus), 0.5, times=[0.1, 0.25, 0.5], length=4.0)
    assert isinstance(r.densities, torch.Tensor) and r.densities.shape == (3, n, n)
    torch.testing.assert_close(r.mass, torch.ones(3, dtype=torch.float64))
    assert bool((r.chi2.diff() < 0).all())
    # symmetric in y -> y -> -y (mu* even in y, grid symmetric)
    torch.testing.assert_close(r.densities[-1], r.densities[-1].flip(1), rtol=1e-8, atol=1e-10)


def test_pde_bad_inputs():
    g, h, mus = _circle(n=32)
    mu0 = np.full(32, 1 / (2 * math.pi))
    with pytest.raises(InputError, match="mu0"):
        mf.ultrafast_diffusion(mu0 * 0, mus, 1.0)
    with pytest.raises(InputError, match="mu0, mu_star"):
        mf.ultrafast_diffusion(mu0, 2 * mus, 1.0)
    with pytest.raises(InputError, match="mu_star"):
        mf.ultrafast_diffusion(mu0, mus[:-1], 1.0)
    with pytest.raises(InputError, match="T"):
        mf.ultrafast_diffusion(mu0, mus, 0.0)
    with pytest.raises(InputError, match="times"):
        mf.ultrafast_diffusion(mu0, mus, 1.0, times=[2.0])
    with pytest.raises(InputError, match="^max_newton"):
        mf.ultrafast_diffusion(mu0, mus, 1.0, max_newton=0)
    with pytest.raises(InputError, match="^omega"):
        mf.circle_teacher_density(np.array([np.nan]), 1.0)
    with pytest.raises(InputError, match="^omega"):
        mf.angles_to_circle(np.array([0.0, np.nan]))


def test_mmd_matches_scipy_energy_distance():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(0.5, 2, size=20)
    a, b = rng.random(30), rng.random(20)
    a, b = a / a.sum(), b / b.sum()
    ours = mf.mmd(x[:, None], y[:, None], a, b)
    ref = scipy.stats.energy_distance(x, y, a, b)
    assert isinstance(ours, float)
    assert ours == pytest.approx(ref, rel=1e-10)
    assert mf.mmd(np.array([[0.0]]), np.array([[1.0]])) == pytest.approx(math.sqrt(2))


def _mmd_rel_tol(x, y, c=8.0):
    """Relative round-off bound for MMD: MMD^2 sums (n + m)^2 exact-to-ulp distances, so its
    absolute error is <= c (n + m) eps S, S = sum of the three terms' magnitudes; the relative
    error of MMD = sqrt(MMD^2) is half that of MMD^2."""
    eps = torch.finfo(x.dtype).eps
    dxy = torch.linalg.vector_norm(x[:, None] - y[None], dim=-1).mean()
    dxx = torch.linalg.vector_norm(x[:, None] - x[None], dim=-1).mean()
    dyy = torch.linalg.vector_norm(y[:, None] - y[None], dim=-1).mean()
    sq = float(2 * dxy - dxx - dyy)
    S = float(2 * dxy + dxx + dyy)
    return 0.5 * c * (x.shape[0] + y.shape[0]) * eps * S / sq


def test_mmd_properties():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 2, dtype=torch.float64, generator=g)
    y = torch.randn(30, 2, dtype=torch.float64, generator=g) + 1
    z = torch.randn(25, 2, dtype=torch.float64, generator=g) - 1
    tol = _mmd_rel_tol(x, y)
    assert tol < 1e-11  # the bound is meaningful here (well-separated measures)
    # MMD(x, x)^2 = 0 up to round-off: |sq| <= 8 (2n) eps S with S ~ 4 mean|x_i - x_j|
    assert float(mf.mmd(x, x)) ** 2 <= 8 * 80 * 2.2e-16 * 4 * 2.0
    assert float(mf.mmd(x, y)) == pytest.approx(float(mf.mmd(y, x)), rel=tol)
    assert float(mf.mmd(x, z)) <= float(mf.mmd(x, y)) + float(mf.mmd(y, z)) + 1e-12
    # translation invariance; chunking (summation order only) does not change the value
    assert float(mf.mmd(x + 3, y + 3)) == pytest.approx(float(mf.mmd(x, y)), rel=1e-9)
    for chunk in (1, 7, 40):
        assert float(mf.mmd(x, y, chunk=chunk)) == pytest.approx(float(mf.mmd(x, y)), rel=tol)
    # periodic: invariant under shifting one cloud by a period
    v = float(mf.mmd(x, y, period=4.0))
    assert float(mf.mmd(x + 4.0, y, period=4.0)) == pytest.approx(v, rel=1e-9)
    xr = x.clone().requires_grad_(True)
    mf.mmd(xr, y).backward()
    assert xr.grad is not None and torch.isfinite(xr.grad).all()
    xs = x.clone().requires_grad_(True)
    mf.mmd(xs, x).backward()  # MMD = 0: gradient must be finite (0), not NaN
    assert torch.isfinite(xs.grad).all()
    with pytest.raises(InputError, match="a, b"):
        mf.mmd(x, y, torch.full((40,), 0.5, dtype=torch.float64))
    with pytest.raises(InputError, match="x, y"):
        mf.mmd(x, torch.randn(3, 3))
    with pytest.raises(InputError, match="^a"):
        mf.mmd(x, y, -torch.ones(40) / 40)


def test_teacher_sampler_matches_density():
    om = mf.sample_circle_teacher(20000, 30.0, seed=2).numpy()
    grid = np.linspace(-math.pi, math.pi, 4001)
    dens = mf.circle_teacher_density(grid, 30.0)
    cdf = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    assert cdf[-1] == pytest.approx(1.0, abs=1e-6)
    ks = scipy.stats.kstest(om, lambda t: np.interp(t, grid, cdf))
    assert ks.pvalue > 1e-3


def test_mmd_exact_on_nearby_far_measures():
    """Nearby measures far from the origin: |u|^2 + |v|^2 - 2<u, v> (torch.cdist's fast path
    above 25 points) loses ~eps |u|^2 / |u - v|^2; the exact differences do not. Reference: SciPy's
    1-D energy distance (sorted CDFs, an independent algorithm)."""
    rng = np.random.default_rng(3)
    x = 1e3 + rng.normal(size=60)
    y = x + 1e-3 + 1e-4 * rng.normal(size=60)
    ref = scipy.stats.energy_distance(x, y)
    ours = mf.mmd(x[:, None], y[:, None])
    # SciPy's CDF integral: relative error ~ n eps |x| / |x - y|
    assert ours == pytest.approx(ref, rel=1e-6)
    xt, yt = torch.as_tensor(x)[:, None], torch.as_tensor(y)[:, None]
    assert float(mf.mmd(xt, yt, chunk=5)) == pytest.approx(ours, rel=1e-6)


def test_mmd_mixed_dtypes_promote():
    g = torch.Generator().manual_seed(0)
    x32 = torch.randn(12, 2, generator=g)
    y64 = torch.randn(9, 2, generator=g, dtype=torch.float64)
    w64 = torch.full((9,), 1 / 9, dtype=torch.float64)
    ref = float(mf.mmd(x32.double(), y64))
    for args in [(x32, y64), (y64, x32, w64, None), (x32, y64, None, w64),
                 (x32, y64.float(), None, w64)]:
        out = mf.mmd(*args)
        assert out.dtype == torch.float64
        assert float(out) == pytest.approx(ref, rel=1e-6)  # float32 inputs: eps32 ~ 1e-7
    out = mf.mmd(x32, y64.float())
    assert out.dtype == torch.float32 and float(out) == pytest.approx(ref, rel=1e-5)
    with pytest.raises(InputError, match="^chunk"):
        mf.mmd(x32, y64, chunk=0)


def test_periodic_helpers_validate_and_keep_array_kind():
    g = mf.periodic_grid(4, 2.0)
    np.testing.assert_allclose(g, [-0.75, -0.25, 0.25, 0.75])
    for n in (0, -1, 2.5, "3", True):
        with pytest.raises(InputError, match="^n"):
            mf.periodic_grid(n)
    for L in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="^length"):
            mf.periodic_grid(4, L)
    z = np.array([[2.5, -2.0, 1.999]])
    w = mf.wrap_torus(z, 4.0)
    assert isinstance(w, np.ndarray)
    np.testing.assert_allclose(w, [[-1.5, -2.0, 1.999]])
    zt = torch.tensor([[2.5, -7.0]], requires_grad=True)
    wt = mf.wrap_torus(zt, 4.0)
    assert isinstance(wt, torch.Tensor) and wt.dtype == torch.float32 and wt.requires_grad
    e = mf.torus_embedding(np.array([[0.0, 1.0]]), 4.0)
    np.testing.assert_allclose(e, np.array([[4, 0, 0, 4]]) / (2 * math.pi), atol=1e-15)
    for f in (mf.wrap_torus, mf.torus_embedding):
        for P in (0.0, -4.0, float("nan"), float("inf"), "x"):
            with pytest.raises(InputError, match="^period"):
                f(z, P)
        with pytest.raises(InputError, match="^z"):
            f(np.array([np.nan]), 4.0)
        with pytest.raises(InputError, match="^z"):
            f(None, 4.0)


def test_ultrafast_diffusion_stops_honestly_when_newton_cannot_converge():
    # max_newton=1: a step is only accepted when the residual is already below tol, i.e. for
    # dt ~ tol / |L rho|; t would crawl forever without the max_steps cap (issue 16)
    g, h, mus = _circle(n=32)
    mu0 = np.full(32, 1 / (2 * math.pi))
    # max_dt = T/10: the default cap is 20 * 10 + 200 = 400 attempted steps
    with pytest.warns(ConvergenceWarning, match="max_steps=400"):
        r = mf.ultrafast_diffusion(mu0, mus, 1.0, max_newton=1, times=[0.5, 1.0], max_dt=0.1)
    assert not r.converged
    np.testing.assert_allclose(r.mass, 1.0, rtol=1e-10)
    with pytest.warns(ConvergenceWarning, match="max_steps"):
        r = mf.ultrafast_diffusion(mu0, mus, 1.0, max_steps=3)
    assert not r.converged and r.n_iter <= 3
    with pytest.raises(InputError, match="^max_steps"):
        mf.ultrafast_diffusion(mu0, mus, 1.0, max_steps=0)
    assert mf.ultrafast_diffusion(mu0, mus, 1.0, max_dt=0.1).converged


def test_mmd_chunked_equals_unchunked_in_the_test_dtype(dtype):
    """Chunking changes the summation order only: equal within the round-off bound of
    _mmd_rel_tol (dtype-generic: run with MEASUREFLOW_TEST_DTYPE=float32 too)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 2, dtype=torch.float64, generator=g).to(dtype)
    y = (torch.randn(30, 2, dtype=torch.float64, generator=g) + 1).to(dtype)
    full = float(mf.mmd(x, y))
    assert full > 0.1  # well-separated: the bound below is a meaningful relative tolerance
    # ~1e-12 in float64, ~5e-4 in float32 (measured errors: 4e-16, 3e-7); a chunk counted
    # twice or dropped moves MMD by ~S / sq / (2 * 40) ~ 10%: 200x above the float32 bound
    tol = _mmd_rel_tol(x, y)
    for chunk in (1, 7, 40):
        assert float(mf.mmd(x, y, chunk=chunk)) == pytest.approx(full, rel=tol)
    # and the float32 value agrees with float64 on the same (rounded) inputs, same bound
    assert float(mf.mmd(x.double(), y.double())) == pytest.approx(full, rel=tol)
