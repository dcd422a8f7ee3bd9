"""Gaussian diffusion sampler: step maps vs literal schemes, exact laws vs simulation, the
continuous limit, and every error term vs Monte Carlo or an independent computation."""

import math

import numpy as np
import pytest
import torch

from _tol import tol_sum
from measureflow import ConvergenceWarning, InputError
from measureflow import sampling as smp
from measureflow.ot import bures_wasserstein2
from measureflow.sampling import vp_grid
from measureflow.sampling.diffusion import _propagate, _step_maps, _vp_B, _vp_time_of_B
from measureflow.sampling.diffusion_theory import _continuous_output, _spectral_output
from measureflow.sampling.gaussian import sgd_dsm

LAM = np.array([2.0, 1.0, 0.3, 0.1])
SCHEMES = [("sde", "euler"), ("sde", "exponential"), ("ode", "euler"),
           ("ode", "exponential"), ("ode", "heun")]


def test_vp_schedule_and_grid():
    for beta in [(1.0, 1.0), (0.05, 10.0), (3.0, 0.5)]:
        T = 1.3
        for t in [0.0, 0.1, 0.7, 1.3]:
            assert _vp_time_of_B(_vp_B(t, T, beta), T, beta) == pytest.approx(t, abs=1e-13)
        g = vp_grid(0.07, 12, T=T, beta=beta)
        assert g.s[0] == pytest.approx(0.07, rel=1e-12) and g.t[-1] == T
        assert np.allclose(np.array(g.alpha) ** 2 + np.array(g.s) ** 2, 1.0, atol=1e-14)
        assert np.allclose(np.diff(g.t), (T - g.t[0]) / 12, rtol=1e-12)
        # beta(t) = B'(t): the increments match the midpoint rule exactly (B is quadratic)
        mid = [0.5 * (g.beta[k] + g.beta[k - 1]) * (g.t[k] - g.t[k - 1]) for k in range(1, 13)]
        np.testing.assert_allclose(g.delta[1:], mid, rtol=1e-10)


def test_step_maps_are_the_literal_schemes():
    """Each (M, q) reproduces the scheme written out step by step, with a non-symmetric score
    matrix per level (so the check does not rely on commuting matrices)."""
    rng = np.random.default_rng(0)
    d, K = 3, 5
    g = vp_grid(0.1, K, T=2.0, beta=(0.4, 3.0))
    A = [torch.tensor(np.eye(d) + 0.3 * rng.normal(size=(d, d))) for _ in range(K + 1)]
    eye = torch.eye(d, dtype=torch.float64)
    y0 = torch.tensor(rng.normal(size=d))
    xi = [torch.tensor(rng.normal(size=d)) for _ in range(K)]
    for proc, sch in SCHEMES:
        maps = _step_maps(A, g, proc, sch, eye, denoise=True)
        y_map = y0.clone()
        for (M, q), e in zip(maps[:-1], xi, strict=True):
            y_map = M @ y_map + math.sqrt(q) * e
        y_map = maps[-1][0] @ y_map
        y = y0.clone()
        for i, k in enumerate(range(K, 0, -1)):
            h, b = g.t[k] - g.t[k - 1], g.beta[k]
            score = -A[k] @ y
            if proc == "sde" and sch == "euler":       # Euler-Maruyama
                y = y + h * (b * y + 2 * b * score) + math.sqrt(2 * b * h) * xi[i]
            elif proc == "sde":                         # exponential integrator, frozen score
                E = math.exp(g.delta[k])
                y = E * y + 2 * (E - 1) * score + math.sqrt(E * E - 1) * xi[i]
            elif sch == "euler":
                y = y + h * b * (y + score)
            elif sch == "exponential":
                E = math.exp(g.delta[k])
                y = E * y + (E - 1) * score
            else:                                       # Heun (trapezoidal predictor-corrector)
                f0 = b * (y + score)
                yp = y + h * f0
                f1 = g.beta[k - 1] * (yp - A[k - 1] @ yp)
                y = y + 0.5 * h * (f0 + f1)
        # Tweedie: E[x_0 | x_t] = (y + s^2 score(y)) / alpha
        y = (y - g.s[0] ** 2 * A[0] @ y) / g.alpha[0]
        np.testing.assert_allclose(y_map.numpy(), y.numpy(), rtol=1e-12, atol=1e-12)
        assert all(q == 0.0 for _, q in maps) == (proc == "ode")


@pytest.mark.parametrize("proc,sch", SCHEMES)
def test_exact_law_vs_simulated_chains(proc, sch):
    n = 20000
    # S = Sigma exactly (4 orthogonal samples), so the output law commutes with the target and
    # the chains' W2 bias has the closed first-order form used below
    X = 2.0 * np.diag(np.sqrt(LAM))
    r = smp.diffusion_pipeline(X, covariance=np.diag(LAM), sigma_min=0.1, n_steps=25,
                               process=proc, scheme=sch, n_chains=n, seed=3)
    C = r.covariance
    emp = r.samples.T @ r.samples / n
    # entrywise standard error of a Gaussian second moment: sqrt((C_ij^2 + C_ii C_jj) / n);
    # 10 entries x 5 schemes: P(max |z| > 4.5) ~ 50 x 7e-6
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / n)
    assert np.max(np.abs(emp - C) / se) < 4.5
    # W2 of the chains' empirical covariance (ot.bures_wasserstein): exact W2^2 plus the
    # chains' own sampling bias, within 4 standard deviations (second-order Bures expansion
    # in the chains' Wishart error, derived in docs/sampling.md)
    c = np.diag(C)
    assert np.allclose(C, np.diag(c), atol=1e-12)
    bias_n, sd = smp.chain_w2_stats(LAM, c, n)
    assert abs(r.w2_samples**2 - (r.w2**2 + bias_n)) < 4 * sd


@pytest.mark.parametrize("proc,sch", SCHEMES)
def test_continuous_limit_and_order(proc, sch):
    """The derived closed form of the continuous process (exact score, from N(0, I)) is the
    h -> 0 limit of every scheme, with the scheme's order (1, or 2 for Heun)."""
    lam = torch.tensor(LAM)
    x = lam.reshape(-1, 1, 1)
    one = torch.ones(1, 1, dtype=torch.float64)
    order = 2 if sch == "heun" else 1
    for v_T in (1.0, 3.0):   # from N(0, I) and from another law (the SDE's initial factor)
        errs = []
        for K in (400, 800, 1600):
            g = vp_grid(0.1, K, T=4.0, beta=(1.0, 1.0))
            A = [1.0 / (g.alpha[k] ** 2 * x + g.s[k] ** 2) for k in range(K + 1)]
            v_h = _propagate(_step_maps(A, g, proc, sch, one, False), v_T * torch.ones_like(x),
                             one).reshape(-1)
            errs.append(float((v_h - _continuous_output(lam, g, proc, False, v_T)).abs().max()))
        for a, b in zip(errs, errs[1:]):
            assert a / b == pytest.approx(2**order, rel=0.05)
    # the spectral route of the theory is the same computation from N(0, I)
    v_s = _spectral_output(lam, g, proc, sch, False, "closed_form", None, None)
    A = [1.0 / (g.alpha[k] ** 2 * x + g.s[k] ** 2) for k in range(1601)]
    v_h = _propagate(_step_maps(A, g, proc, sch, one, False), torch.ones_like(x), one)
    # 1600 step factors multiplied in a different grouping (and exp evaluated by different
    # kernels): relative round-off <= 2 K eps ~ 7e-13 (a wrong scheme is off by O(1/K) ~ 6e-4)
    np.testing.assert_allclose(v_s.numpy(), v_h.reshape(-1).numpy(), rtol=tol_sum(1600, c=2),
                               atol=0)


@pytest.mark.parametrize("score", ["closed_form", "gd"])
@pytest.mark.parametrize("denoise", [False, True])
def test_theory_bias_is_the_pipeline_at_infinite_n(score, denoise):
    X = 2.0 * np.diag(np.sqrt(LAM))      # X^T X / 4 = diag(LAM): S = Sigma exactly
    kw = dict(sigma_min=0.1, n_steps=30, denoise=denoise, score=score)
    if score == "gd":
        kw.update(score_step=0.2, score_iters=6)
    for proc, sch in SCHEMES:
        r = smp.diffusion_pipeline(X, covariance=np.diag(LAM), process=proc, scheme=sch,
                                   n_chains=0, **kw)
        t = smp.diffusion_w2_error(LAM, n_samples=math.inf, process=proc, scheme=sch, **kw)
        assert t.total == pytest.approx(r.w2**2, rel=1e-9)
        assert t.generalization == 0.0
        parts = t.min_noise + t.initialization + t.discretization + t.optimization
        assert t.bias == pytest.approx(parts, rel=1e-12)
        assert float(LAM @ t.kernel @ LAM) == pytest.approx(t.total, rel=1e-12)
        exact = smp.diffusion_pipeline(X, covariance=np.diag(LAM), process=proc, scheme=sch,
                                       n_chains=0, **dict(kw, score="exact"))
        assert t.bias - t.optimization == pytest.approx(exact.w2**2, rel=1e-9)


def test_min_noise_and_initialization_closed_forms():
    s2 = 0.2**2
    for den in (False, True):
        t = smp.diffusion_w2_error(LAM, sigma_min=0.2, n_steps=10, n_samples=math.inf,
                                   denoise=den)
        a2 = 1 - s2
        v = a2 * LAM + s2
        out = a2 * LAM**2 / v if den else v
        assert t.min_noise == pytest.approx(np.sum((np.sqrt(LAM) - np.sqrt(out)) ** 2),
                                            rel=1e-12)
    # min-noise term ~ sigma^4 sum (1 - lam)^2 / (4 lam) for small sigma (no denoising)
    for s in (0.02, 0.01):
        t = smp.diffusion_w2_error(LAM, sigma_min=s, n_steps=10, n_samples=math.inf)
        lead = s**4 * np.sum((1 - LAM) ** 2 / (4 * LAM))
        assert t.min_noise == pytest.approx(lead, rel=5 * s**2 / LAM.min())
    # initialization: the output-variance error of starting at N(0, I) instead of p_T is
    # ~ alpha_T^4 (SDE) and ~ alpha_T^2 (ODE); the term is a difference of W2^2 with the
    # min-noise bias already present, hence linear in that variance error (alpha_T = e^-T)
    i = [smp.diffusion_w2_error(LAM, sigma_min=0.1, n_steps=10, n_samples=math.inf, T=T,
                                process=p).initialization for p in ("sde", "ode")
         for T in (4.0, 5.0)]
    assert i[0] / i[1] == pytest.approx(math.exp(4), rel=0.05)
    assert i[2] / i[3] == pytest.approx(math.exp(2), rel=0.05)


def test_gd_levels_equal_literal_gradient_descent():
    X = np.random.default_rng(1).normal(size=(40, 3)) * np.sqrt([1.5, 0.5, 0.1])
    r = smp.diffusion_pipeline(X, sigma_min=0.2, n_steps=4, score="gd", score_step=0.1,
                               score_iters=15, n_chains=0)
    S = X.T @ X / 40
    for k, (a, s) in enumerate(zip(np.sqrt(1 - r.noise_levels**2), r.noise_levels,
                                   strict=True)):
        Q = a**2 * S + s**2 * np.eye(3)
        A = np.zeros((3, 3))
        for _ in range(15):
            A = A - 0.1 * (2 * A @ Q - 2 * np.eye(3))
        np.testing.assert_allclose(r.score_matrices[k], A, rtol=1e-10, atol=1e-12)
        D = A - np.linalg.inv(Q)
        assert r.errors[k] == pytest.approx(np.trace(D @ Q @ D.T), rel=1e-8)


def test_batched_dataset_route_equals_the_pipeline():
    rng = np.random.default_rng(5)
    Xs = rng.normal(size=(3, 30, 4)) * np.sqrt(LAM)
    S = torch.tensor(np.einsum("rni,rnj->rij", Xs, Xs) / 30)
    for proc, sch in SCHEMES:
        C = smp.diffusion_covariance(S, sigma_min=0.1, n_steps=12, process=proc, scheme=sch,
                                     denoise=True)
        for r in range(3):
            p = smp.diffusion_pipeline(Xs[r], sigma_min=0.1, n_steps=12, process=proc,
                                       scheme=sch, denoise=True, n_chains=0)
            np.testing.assert_allclose(C[r].numpy(), p.covariance, rtol=1e-10, atol=1e-13)


def test_generalization_term_vs_monte_carlo():
    """E over datasets of W2^2 = bias + lambda^T K_N lambda + O(1/N^2) (datasets through the
    batched route, equal to the pipeline by the test above)."""
    N, reps = 200, 400
    lam = torch.tensor(LAM)
    z, Sig = torch.zeros(4, dtype=torch.float64), torch.diag(lam)
    for proc, sch, den in [("sde", "euler", False), ("ode", "heun", True)]:
        kw = dict(sigma_min=0.1, n_steps=20, process=proc, scheme=sch, denoise=den)
        t = smp.diffusion_w2_error(LAM, n_samples=N, **kw)
        S = smp.empirical_second_moments(lam, N, reps, seed=7)
        C = smp.diffusion_covariance(S, **kw)
        v = bures_wasserstein2(z, Sig, z, C).numpy()
        se = v.std(ddof=1) / math.sqrt(reps)
        # the neglected O(1/N^2) remainder: ~ (generalization)^2 / bias scale, < 2e-4 here
        assert abs(v.mean() - t.total) < 4 * se + 2e-4
        assert abs((v.mean() - t.bias) / t.generalization - 1) < 0.2


def test_kernel_reduces_to_the_wishart_bures_formula_without_smoothing():
    """sigma_min -> 0, h -> 0, T large: the sampler is nearly the identity on N(0, S), and
    generalization -> (1/2N) sum lam_i lam_j / (lam_i + lam_j) + (1/4N) sum lam_i, up to
    O(max |g(lam) / lam - 1|) (the residual smoothing of the sampler)."""
    N, lam = 1000.0, np.array([2.0, 1.0, 0.5, 0.3])
    t = smp.diffusion_w2_error(lam, sigma_min=1e-3, n_steps=300, n_samples=N, T=8.0,
                               process="ode", scheme="heun")
    eps = np.max(np.abs(t.output_variance / lam - 1))
    assert eps < 3e-3
    L = lam[:, None] * lam[None, :] / (lam[:, None] + lam[None, :])
    ref = L.sum() / (2 * N) + lam.sum() / (4 * N)
    assert t.generalization == pytest.approx(ref, rel=3 * eps)
    np.testing.assert_allclose(t.kernel, t.kernel.T, rtol=1e-12)


def test_sgd_fluctuations_per_level():
    """Stationary SGD on the level-k DSM loss: mean A*_k, Var(Delta_ij) = tau W_i with
    W = 1/s^2 - 1/(alpha^2 lam + s^2) (first order in tau)."""
    lam = torch.tensor([1.5, 0.4], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(100000, 2, generator=g, dtype=torch.float64) * lam.sqrt()
    S = X.T @ X / 100000
    alpha = torch.tensor([0.95, 0.6], dtype=torch.float64)
    s = (1 - alpha**2).sqrt()
    tau, R = 2e-3, 300
    A = sgd_dsm(X, sigma=s.repeat(R), alpha=alpha.repeat(R), score_step=tau,
                score_iters=3000, generator=g, replicates=2 * R).reshape(R, 2, 2, 2)
    for k in range(2):
        Q = alpha[k] ** 2 * S + s[k] ** 2 * torch.eye(2, dtype=torch.float64)
        D = A[:, k] - torch.linalg.inv(Q)
        W = 1 / s[k] ** 2 - 1 / (alpha[k] ** 2 * lam + s[k] ** 2)
        assert float(D.mean(0).abs().max()) < 4.5 * math.sqrt(tau * float(W.max()) / R)
        # variance ratio: chi^2 with R - 1 dof has relative SE sqrt(2/R) ~ 0.08; the O(tau q)
        # correction is < 0.02 here
        ratio = D.var(0) / (tau * W[:, None])
        assert float((ratio - 1).abs().max()) < 4 * math.sqrt(2 / R) + 0.02


def test_sgd_term_vs_monte_carlo():
    lam = torch.tensor([1.5, 0.5], dtype=torch.float64)
    d, K, smin, R, tau = 2, 4, 0.3, 400, 4e-3
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200000, d, generator=g, dtype=torch.float64) * lam.sqrt()
    S = X.T @ X / 200000
    grid = vp_grid(smin, K, T=4.0, beta=(1.0, 1.0))
    alpha = torch.tensor(grid.alpha, dtype=torch.float64).repeat(R)
    s = torch.tensor(grid.s, dtype=torch.float64).repeat(R)
    # burn-in: the mean error decays like (1 - 2 tau q_min)^iters, q_min >= 0.5: e^-10
    A = sgd_dsm(X, sigma=s, alpha=alpha, score_step=tau, score_iters=2500, generator=g,
                replicates=R * (K + 1)).reshape(R, K + 1, d, d)
    z, Sig = torch.zeros(d, dtype=torch.float64), torch.diag(lam)
    for proc, sch, den in [("sde", "euler", False), ("ode", "exponential", True)]:
        kw = dict(sigma_min=smin, n_steps=K, T=4.0, process=proc, scheme=sch, denoise=den)
        C = smp.diffusion_covariance(score_matrices=A, **kw)
        C0 = smp.diffusion_covariance(S, **kw)
        vals = (bures_wasserstein2(z, Sig, z, C) - bures_wasserstein2(z, Sig, z, C0)).numpy()
        th = smp.diffusion_w2_error(lam.numpy(), sigma_min=smin, n_steps=K, T=4.0,
                                    n_samples=math.inf, process=proc, scheme=sch, denoise=den,
                                    score="sgd", score_step=tau)
        se = vals.std(ddof=1) / math.sqrt(R)
        # first order in tau: the O(tau^2) remainder is ~ tau q_max ~ 1% of the term
        assert abs(vals.mean() - th.optimization) < 4 * se + 0.02 * th.optimization


def test_linear_optimization_term_and_kernel_parts():
    kw = dict(sigma_min=0.1, n_steps=20, n_samples=500, score="sgd")
    a = smp.diffusion_w2_error(LAM, score_step=1e-3, **kw)
    b = smp.diffusion_w2_error(LAM, score_step=2e-3, **kw)
    assert b.optimization == pytest.approx(2 * a.optimization, rel=1e-12)
    assert a.optimization > 0 and a.asymptotic == ("generalization", "optimization")
    assert a.total == pytest.approx(a.bias + a.generalization + a.optimization, rel=1e-12)
    assert float(LAM @ a.kernel @ LAM) == pytest.approx(a.total, rel=1e-12)
    assert a.generalization == pytest.approx(float(LAM @ a.generalization_kernel @ LAM))
    gd = smp.diffusion_w2_error(LAM, sigma_min=0.1, n_steps=20, n_samples=500, score="gd",
                                score_step=0.2, score_iters=3)
    many = smp.diffusion_w2_error(LAM, sigma_min=0.1, n_steps=20, n_samples=500, score="gd",
                                  score_step=0.2, score_iters=3000)
    assert gd.optimization > 1e3 * abs(many.optimization)


def test_io_autograd_and_dtypes():
    lam_t = torch.tensor(LAM, requires_grad=True)
    r = smp.diffusion_pipeline((lam_t, 100), sigma_min=0.1, n_steps=10, n_chains=5, seed=0)
    assert isinstance(r.covariance, torch.Tensor) and r.w2.requires_grad
    r.w2.backward()
    assert torch.isfinite(lam_t.grad).all()
    X = np.random.default_rng(0).normal(size=(100, 4)) * np.sqrt(LAM)
    r32 = smp.diffusion_pipeline(torch.tensor(X, dtype=torch.float32), sigma_min=0.1,
                                 covariance=torch.tensor(np.diag(LAM), dtype=torch.float32),
                                 n_steps=10, n_chains=5, seed=0)
    r64 = smp.diffusion_pipeline(X, covariance=np.diag(LAM), sigma_min=0.1, n_steps=10,
                                 n_chains=5, seed=0)
    assert r32.covariance.dtype == torch.float32
    # float32: ~10 steps of products of O(1) matrices, relative rounding ~ 10 * 1e-7
    np.testing.assert_allclose(r32.covariance.numpy(), r64.covariance, rtol=1e-4, atol=1e-5)
    assert isinstance(r64.w2, float) and r64.samples.shape == (5, 4)
    t32 = smp.diffusion_w2_error(torch.tensor(LAM, dtype=torch.float32), sigma_min=0.1,
                                 n_steps=10, n_samples=100)
    assert t32.total.dtype == torch.float32
    raw = smp.diffusion_pipeline(np.random.default_rng(0).normal(size=(20, 2)), sigma_min=0.1,
                                 n_steps=5, n_chains=0)
    assert raw.w2 is None and raw.target_covariance is None and raw.converged


def test_divergent_sgd_is_reported():
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        r = smp.diffusion_pipeline((LAM, 50), sigma_min=0.1, n_steps=3, score="sgd",
                                   score_step=0.4, score_iters=3000, n_chains=0, seed=0)
    assert not r.converged and math.isnan(r.w2)


def test_bad_inputs():
    ok = dict(sigma_min=0.1, n_steps=5)
    for bad, name in [(dict(sigma_min=0.0), "sigma_min"), (dict(sigma_min=1.0), "sigma_min"),
                      (dict(sigma_min=math.nan), "sigma_min"), (dict(n_steps=0), "n_steps"),
                      (dict(n_steps=2.5), "n_steps"), (dict(process="vp"), "process"),
                      (dict(scheme="rk4"), "scheme"), (dict(scheme="heun"), "scheme"),
                      (dict(T=-1.0), "T"), (dict(beta=(1.0,)), "beta"),
                      (dict(beta=(1.0, -2.0)), "beta"), (dict(score="adam"), "score"),
                      (dict(denoise="yes"), "denoise"), (dict(sigma_min=0.9999, T=0.5),
                                                        "sigma_min"),
                      (dict(score="gd", score_step=10.0), "score_step"),
                      (dict(score="sgd", score_step=-1.0), "score_step")]:
        with pytest.raises(InputError, match=f"^{name}"):
            smp.diffusion_pipeline((LAM, 10), **{**ok, **bad})
    with pytest.raises(InputError, match="^score"):
        smp.diffusion_pipeline(np.ones((5, 2)), score="exact", **ok)
    with pytest.raises(InputError, match="^spectrum"):
        smp.diffusion_pipeline((np.array([1.0, -1.0]), 10), **ok)
    with pytest.raises(InputError, match="^data"):
        smp.diffusion_pipeline(np.full((3, 2), np.nan), **ok)
    with pytest.raises(InputError, match="^covariance"):
        smp.diffusion_pipeline(np.ones((5, 2)), covariance=-np.eye(2), **ok)
    with pytest.raises(InputError, match="^covariance"):
        smp.diffusion_pipeline((LAM, 10), covariance=np.eye(4), **ok)
    with pytest.raises(InputError, match="^n_samples"):
        smp.diffusion_w2_error(LAM, n_samples=0, **ok)
    with pytest.raises(InputError, match="^spectrum"):
        smp.diffusion_w2_error(np.eye(2), n_samples=10, **ok)
    with pytest.raises(InputError, match="^score_iters"):
        smp.diffusion_w2_error(LAM, n_samples=10, score="gd", score_step=0.1, **ok)
    with pytest.raises(InputError, match="^score_step"):
        smp.diffusion_w2_error(LAM, n_samples=10, score="sgd", **ok)
    with pytest.raises(InputError, match="^scheme"):
        smp.diffusion_w2_error(LAM, n_samples=10, score="sgd", score_step=1e-3,
                               process="ode", scheme="heun", **ok)


def test_chain_sampling_stats_vs_monte_carlo():
    """The (bias, sd) model of W2^2(Sigma, empirical covariance of n chains) used by the
    chain checks, against direct resampling, at the target itself and at a biased law."""
    lam = torch.tensor(LAM)
    z, Sig = torch.zeros(4, dtype=torch.float64), torch.diag(lam)
    for c in (lam, lam * torch.tensor([1.3, 0.8, 1.1, 1.5], dtype=torch.float64)):
        n, reps = 2000, 1000
        S = smp.empirical_second_moments(c, n, reps, seed=11)
        v = (bures_wasserstein2(z, Sig, z, S) - bures_wasserstein2(z, Sig, z, torch.diag(c)))
        bias, sd = smp.chain_w2_stats(lam, c, n)
        assert abs(float(v.mean()) - bias) < 4 * float(v.std()) / math.sqrt(reps)
        # the sd model is first order: allow the chi-square estimate's own 4 SE (~ 4 / sqrt(2
        # reps)) plus 10 % for the neglected correlations between entries
        assert abs(float(v.std()) / sd - 1) < 4 / math.sqrt(2 * reps) + 0.1


def test_public_helpers_validate():
    ok = dict(sigma_min=0.1, n_steps=4)
    with pytest.raises(InputError, match="^second_moment"):
        smp.diffusion_covariance(**ok)
    with pytest.raises(InputError, match="^second_moment"):
        smp.diffusion_covariance(np.eye(2), score_matrices=np.zeros((5, 2, 2)), **ok)
    with pytest.raises(InputError, match="^second_moment"):
        smp.diffusion_covariance(-np.eye(2), **ok)
    with pytest.raises(InputError, match="^score_matrices"):
        smp.diffusion_covariance(score_matrices=np.zeros((4, 2, 2)), **ok)   # needs K + 1 = 5
    with pytest.raises(InputError, match="^scheme"):
        smp.diffusion_covariance(np.eye(2), scheme="heun", **ok)
    with pytest.raises(InputError, match="^sigma_min"):
        smp.vp_grid(1.5, 3)
    with pytest.raises(InputError, match="^n_steps"):
        smp.vp_grid(0.1, 0)
    with pytest.raises(InputError, match="^reps"):
        smp.empirical_second_moments([1.0], 5, reps=0)
    with pytest.raises(InputError, match="^spectrum"):
        smp.empirical_second_moments([1.0, -1.0], 5)
    with pytest.raises(InputError, match="^gamma"):
        smp.langevin_stationary_covariance(np.eye(2), sigma=0.1, gamma=3.0)
    with pytest.raises(InputError, match="^second_moment"):
        smp.langevin_stationary_covariance(np.ones((2, 3)), sigma=0.1, gamma=0.1)
    with pytest.raises(InputError, match="^variances"):
        smp.chain_w2_stats([1.0, 0.5], [1.0], 10)
    with pytest.raises(InputError, match="^n_chains"):
        smp.chain_w2_stats([1.0], [1.0], 0)
    # kinds and shapes
    S = smp.empirical_second_moments([1.0, 0.5], 7, seed=0)
    assert isinstance(S, np.ndarray) and S.shape == (2, 2)
    C = smp.diffusion_covariance(torch.eye(2, dtype=torch.float32), **ok)
    assert isinstance(C, torch.Tensor) and C.dtype == torch.float32
    # score matrices of the closed form reproduce the second-moment route
    g = smp.vp_grid(0.1, 4)
    A = np.stack([np.linalg.inv(g.alpha[k] ** 2 * S + g.s[k] ** 2 * np.eye(2)) for k in range(5)])
    np.testing.assert_allclose(smp.diffusion_covariance(score_matrices=A, **ok),
                               smp.diffusion_covariance(S, **ok), rtol=1e-12)
