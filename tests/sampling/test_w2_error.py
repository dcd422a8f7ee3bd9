"""Expected W2^2 error: exact terms, asymptotic terms vs Monte Carlo, limits."""

import math

import numpy as np
import pytest

from measureflow import InputError
from measureflow import sampling as smp

LAM = np.array([4.0, 1.0, 0.5, 0.2, 0.1])


def test_finite_sample_term_vs_monte_carlo():
    sigma, gamma, N = 0.3, 0.05, 200
    th = smp.w2_error(LAM, sigma=sigma, gamma=gamma, n_samples=N)
    vals = np.array([smp.pipeline((LAM, N), sigma=sigma, gamma=gamma, n_steps=0, n_chains=0,
                                  seed=s).w2_stationary ** 2 for s in range(300)])
    se = vals.std() / math.sqrt(len(vals))
    # first-order expansion: remaining error O(1/N^2) ~ 1e-4 here
    assert abs(vals.mean() - th.total) < 4 * se + 2e-4
    assert abs((vals.mean() - th.bias) / th.finite_samples - 1) < 0.15


def test_kernel_reduces_to_wishart_bures_formula_without_smoothing():
    """sigma, gamma -> 0: g = id and E W2^2(Sigma, S) ~ (1/2N) sum lam_i lam_j/(lam_i + lam_j)
    + (1/4N) sum lam_i (Bures metric + Wishart moments)."""
    N = 1000.0
    th = smp.w2_error(LAM, sigma=1e-5, gamma=1e-10, n_samples=N)
    L = LAM[:, None] * LAM[None, :] / (LAM[:, None] + LAM[None, :])
    expected = L.sum() / (2 * N) + LAM.sum() / (4 * N)
    assert th.finite_samples == pytest.approx(expected, rel=1e-6)
    assert th.finite_samples == pytest.approx(LAM @ th.kernel @ LAM, rel=1e-12)
    np.testing.assert_allclose(th.kernel, th.kernel.T)


def test_limits():
    base = dict(sigma=0.3, gamma=0.05)
    inf = smp.w2_error(LAM, n_samples=math.inf, **base)
    assert inf.finite_samples == 0 and inf.total == pytest.approx(inf.bias)
    big = smp.w2_error(LAM, n_samples=1e9, **base)
    assert big.total == pytest.approx(inf.total, rel=1e-6)
    # gamma -> 0: discretization vanishes, bias -> noise term
    g0 = smp.w2_error(LAM, sigma=0.3, gamma=1e-9, n_samples=math.inf)
    assert abs(g0.discretization) < 1e-8 and g0.bias == pytest.approx(g0.noise, rel=1e-7)
    # sigma, gamma -> 0: the pipeline is unbiased
    z = smp.w2_error(LAM, sigma=1e-6, gamma=1e-12, n_samples=math.inf)
    assert z.bias < 1e-20
    # noise term closed form sum (sqrt(l) - sqrt(l + sigma^2))^2
    assert inf.noise == pytest.approx(np.sum((np.sqrt(LAM) - np.sqrt(LAM + 0.09)) ** 2))


def test_small_parameter_bias_asymptotics():
    """bias ~ sum (sigma^2 + gamma/2)^2 / (4 lam) for small sigma^2, gamma (anisotropy)."""
    for sigma, gamma in [(0.05, 0.002), (0.02, 0.0004)]:
        th = smp.w2_error(LAM, sigma=sigma, gamma=gamma, n_samples=math.inf)
        lead = np.sum((sigma**2 + gamma / 2) ** 2 / (4 * LAM))
        assert th.bias == pytest.approx(lead, rel=10 * (sigma**2 + gamma) / LAM.min())


def test_denoising_is_unbiased_when_gamma_is_twice_sigma_squared():
    th = smp.w2_error(LAM, sigma=0.3, gamma=2 * 0.09, n_samples=math.inf, denoise=True)
    assert th.bias < 1e-25
    off = smp.w2_error(LAM, sigma=0.3, gamma=0.1, n_samples=math.inf, denoise=True)
    assert off.bias > 1e-6


def test_gd_optimization_term():
    kw = dict(sigma=0.3, gamma=0.05, n_samples=math.inf, score="gd", score_step=0.1)
    few = smp.w2_error(LAM, score_iters=5, **kw)
    many = smp.w2_error(LAM, score_iters=5000, **kw)
    assert few.optimization > 10 * abs(many.optimization)
    assert abs(many.optimization) < 1e-12
    assert few.exact == ("bias", "noise", "discretization", "optimization")


def test_sgd_term_is_linear_in_tau():
    kw = dict(sigma=0.4, gamma=0.1, n_samples=math.inf, score="sgd")
    a = smp.w2_error(LAM, score_step=1e-3, **kw)
    b = smp.w2_error(LAM, score_step=2e-3, **kw)
    assert b.optimization == pytest.approx(2 * a.optimization, rel=1e-12)
    assert a.optimization > 0 and "optimization" in a.asymptotic
    assert a.total == pytest.approx(a.bias + a.optimization)


@pytest.mark.slow
def test_sgd_term_vs_monte_carlo():
    import torch

    from measureflow.ot import bures_wasserstein2
    from measureflow.sampling.gaussian import sgd_dsm
    lam = torch.tensor([2.0, 0.5, 0.2], dtype=torch.float64)
    sigma, gamma, tau = 0.4, 0.1, 1e-3
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200000, 3, generator=g, dtype=torch.float64) * lam.sqrt()
    eye = torch.eye(3, dtype=torch.float64)
    S = X.T @ X / 200000
    z = torch.zeros(3, dtype=torch.float64)
    base = float(bures_wasserstein2(z, torch.diag(lam), z, smp.ula_covariance(
        torch.linalg.inv(S + sigma**2 * eye), gamma=gamma)))
    A = sgd_dsm(X, sigma=sigma, score_step=tau, score_iters=14000, generator=g, replicates=400)
    vals = np.array([float(bures_wasserstein2(z, torch.diag(lam), z,
                                              smp.ula_covariance(a, gamma=gamma))) - base
                     for a in A])
    th = smp.w2_error(lam.numpy(), sigma=sigma, gamma=gamma, n_samples=math.inf, score="sgd",
                      score_step=tau)
    assert abs(vals.mean() - th.optimization) < 4 * vals.std() / math.sqrt(len(vals))


def test_w2_error_bad_inputs():
    with pytest.raises(InputError, match="^init_var"):
        smp.w2_error(LAM, sigma=0.1, gamma=0.01, n_samples=10, n_steps=3, init_var=math.nan)
    with pytest.raises(InputError, match="spectrum"):
        smp.w2_error([1.0, 0.0], sigma=0.1, gamma=0.01, n_samples=10)
    with pytest.raises(InputError, match="n_samples"):
        smp.w2_error(LAM, sigma=0.1, gamma=0.01, n_samples=0)
    with pytest.raises(InputError, match="score_step"):
        smp.w2_error(LAM, sigma=0.1, gamma=0.01, n_samples=10, score="sgd")
    with pytest.raises(InputError, match="score_iters"):
        smp.w2_error(LAM, sigma=0.1, gamma=0.01, n_samples=10, score="gd", score_step=0.01)
    with pytest.raises(InputError, match="gamma"):
        smp.w2_error(LAM, sigma=0.1, gamma=1.0, n_samples=10)
    with pytest.raises(InputError, match="score"):
        smp.w2_error(LAM, sigma=0.1, gamma=0.01, n_samples=10, score="sgd", score_step=1e-3,
                     denoise=True)
