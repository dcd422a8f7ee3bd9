"""Gaussian DSM + ULA pipeline: exact laws vs simulation, limits, conventions, errors."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from measureflow import ConvergenceWarning, InputError
from measureflow import sampling as smp
from measureflow.ot import bures_wasserstein
from measureflow.sampling.gaussian import sgd_dsm

LAM = np.array([3.0, 1.0, 0.4, 0.15])


def _exact_samples(lam):
    """d samples X with X^T X / d = diag(lam) exactly (S = Sigma: the N = infinity pipeline)."""
    return math.sqrt(len(lam)) * np.diag(np.sqrt(lam))


def test_ula_covariance_stationary_and_finite_steps():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(3, 3))
    A = M @ M.T / 3 + 0.5 * np.eye(3)
    gamma = 0.2
    C = smp.ula_covariance(A, gamma=gamma)
    np.testing.assert_allclose(C, np.linalg.inv(A - gamma / 2 * A @ A), rtol=1e-10)
    # non-symmetric A: discrete Lyapunov equation, against SciPy
    An = A + 0.2 * rng.normal(size=(3, 3))
    B = np.eye(3) - gamma * An
    ref = scipy.linalg.solve_discrete_lyapunov(B, 2 * gamma * np.eye(3))
    np.testing.assert_allclose(smp.ula_covariance(An, gamma=gamma), ref, rtol=1e-9, atol=1e-12)
    # K steps from N(0, 0.3 I): explicit recursion
    Ck = 0.3 * np.eye(3)
    for _ in range(37):
        Ck = B @ Ck @ B.T + 2 * gamma * np.eye(3)
    np.testing.assert_allclose(smp.ula_covariance(An, gamma=gamma, n_steps=37, init_var=0.3), Ck,
                               rtol=1e-10)
    with pytest.raises(InputError, match="gamma"):
        smp.ula_covariance(A, gamma=50.0)


def test_closed_form_score_and_stationary_law_vs_simulation():
    res = smp.pipeline((LAM, 500), sigma=0.5, gamma=0.1, n_steps=400, n_chains=6000, seed=1)
    S = res.empirical_covariance
    np.testing.assert_allclose(res.score_matrix, np.linalg.inv(S + 0.25 * np.eye(4)), rtol=1e-10)
    C = res.covariance
    emp = res.samples.T @ res.samples / 6000
    # entrywise Monte Carlo standard error sqrt((C_ij^2 + C_ii C_jj) / n)
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / 6000)
    assert np.all(np.abs(emp - C) < 4.5 * se)
    # after 400 steps the chain is stationary to machine precision in this example
    np.testing.assert_allclose(res.covariance, res.stationary_covariance, rtol=1e-9)
    # W2 of the law reached equals the Bures distance computed by measureflow.ot
    z = np.zeros(4)
    assert res.w2 == pytest.approx(bures_wasserstein(z, np.diag(LAM), z, C), rel=1e-12)
    assert res.w2_samples == pytest.approx(res.w2, abs=0.05)
    assert res.converged and res.stable


def test_exact_bias_matches_pipeline_at_infinite_n():
    X = _exact_samples(LAM)
    Sigma = np.diag(LAM)
    cases = [dict(score="closed_form"), dict(score="gd", score_step=0.1, score_iters=25),
             dict(score="closed_form", denoise=True), dict(score="closed_form", n_steps=30)]
    for kw in cases:
        n_steps = kw.pop("n_steps", None)
        res = smp.pipeline(X, covariance=Sigma, sigma=0.4, gamma=0.08,
                           n_steps=n_steps if n_steps is not None else 0, n_chains=0, **kw)
        th = smp.w2_error(LAM, sigma=0.4, gamma=0.08, n_samples=math.inf, n_steps=n_steps,
                          **kw)
        got = (res.w2 if n_steps is not None else res.w2_stationary) ** 2
        assert th.total == pytest.approx(got, rel=1e-9, abs=1e-14), kw
        assert th.finite_samples == 0.0
        assert th.bias == pytest.approx(th.noise + th.discretization
                                        + (th.optimization if kw.get("score") == "gd" else 0))


def test_batched_stationary_route_equals_the_pipeline():
    rng = np.random.default_rng(5)
    Xs = rng.normal(size=(3, 30, 4)) * np.sqrt(LAM)
    S = torch.tensor(np.einsum("rni,rnj->rij", Xs, Xs) / 30)
    for den in (False, True):
        C = smp.langevin_stationary_covariance(S, sigma=0.4, gamma=0.05, denoise=den)
        for r in range(3):
            p = smp.pipeline(Xs[r], sigma=0.4, gamma=0.05, n_steps=0, n_chains=0, denoise=den)
            np.testing.assert_allclose(C[r].numpy(), p.stationary_covariance, rtol=1e-9)


def test_gd_spectral_equals_literal_iterations():
    X = np.random.default_rng(3).normal(size=(50, 3)) * np.sqrt([2.0, 0.5, 0.1])
    res = smp.pipeline(X, sigma=0.3, gamma=0.05, n_steps=1, score="gd", score_step=0.1,
                       score_iters=40, n_chains=0)
    Q = X.T @ X / 50 + 0.09 * np.eye(3)
    A = np.zeros((3, 3))
    for _ in range(40):
        A = A - 0.1 * (2 * A @ Q - 2 * np.eye(3))
    np.testing.assert_allclose(res.score_matrix, A, rtol=1e-10, atol=1e-12)
    assert res.n_iter == 40 and res.errors[0] > 0
    # the loss gap is the exact tr((A - Q^-1) Q (A - Q^-1)^T)
    D = A - np.linalg.inv(Q)
    assert res.errors[0] == pytest.approx(np.trace(D @ Q @ D.T), rel=1e-8)


def test_sgd_fluctuations_match_first_order_theory():
    lam = torch.tensor([1.5, 0.3], dtype=torch.float64)
    sigma, tau = 0.5, 0.002
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50000, 2, generator=g, dtype=torch.float64) * lam.sqrt()
    Q = X.T @ X / 50000 + sigma**2 * torch.eye(2, dtype=torch.float64)
    A = sgd_dsm(X, sigma=sigma, score_step=tau, score_iters=3000, generator=g, replicates=300)
    D = A - torch.linalg.inv(Q)
    # unbiased at stationarity; Var(Delta_ij) = tau * lam_i / (sigma^2 (lam_i + sigma^2))
    assert float(D.mean(0).abs().max()) < 4 * math.sqrt(tau * 3 / 300)
    r = lam / (sigma**2 * (lam + sigma**2))
    ratio = D.var(0) / (tau * r[:, None])
    assert float((ratio - 1).abs().max()) < 0.3


def test_pipeline_sgd_runs_and_numpy_torch_io():
    res = smp.pipeline((LAM, 300), sigma=0.5, gamma=0.1, n_steps=50, score="sgd",
                       score_step=0.002, score_iters=2000, n_chains=10, seed=0)
    assert isinstance(res.covariance, np.ndarray) and isinstance(res.w2, float)
    assert res.n_iter == 2000 and res.samples.shape == (10, 4)
    # loss gap E tr(Delta Q Delta^T) ~ tau sum_i r_i sum_j q_j at stationarity (first order)
    q = LAM + 0.25
    pred = 0.002 * np.sum(LAM / (0.25 * q)) * q.sum()
    assert 0.2 * pred < res.errors[0] < 3 * pred
    lam_t = torch.tensor(LAM, requires_grad=True)
    out = smp.pipeline((lam_t, 200), sigma=0.5, gamma=0.1, n_steps=20, n_chains=0, seed=0)
    assert isinstance(out.covariance, torch.Tensor) and out.w2.requires_grad
    out.w2.backward()
    assert torch.isfinite(lam_t.grad).all()
    th = smp.w2_error(torch.tensor(LAM, dtype=torch.float32), sigma=0.5, gamma=0.1,
                      n_samples=100)
    assert isinstance(th.total, torch.Tensor) and th.total.dtype == torch.float32
    # raw samples without covariance: no target, no error
    raw = smp.pipeline(np.random.default_rng(0).normal(size=(20, 2)), sigma=0.5, gamma=0.1,
                       n_steps=5, n_chains=0)
    assert raw.w2 is None and raw.target_covariance is None


def test_unstable_langevin_is_reported():
    with pytest.warns(ConvergenceWarning, match="unstable"):
        res = smp.pipeline((LAM, 100), sigma=0.1, gamma=1.0, n_steps=10, n_chains=0, seed=0)
    assert not res.stable and not res.converged and res.w2_stationary == math.inf


def test_bad_inputs():
    with pytest.raises(InputError, match="sigma"):
        smp.pipeline((LAM, 10), sigma=0.0, gamma=0.1, n_steps=1)
    with pytest.raises(InputError, match="gamma"):
        smp.pipeline((LAM, 10), sigma=0.1, gamma=-1, n_steps=1)
    with pytest.raises(InputError, match="spectrum"):
        smp.pipeline((-LAM, 10), sigma=0.1, gamma=0.1, n_steps=1)
    with pytest.raises(InputError, match="n_samples"):
        smp.pipeline((LAM, 0), sigma=0.1, gamma=0.1, n_steps=1)
    with pytest.raises(InputError, match="score"):
        smp.pipeline((LAM, 10), sigma=0.1, gamma=0.1, n_steps=1, score="adam")
    with pytest.raises(InputError, match="data"):
        smp.pipeline(np.ones(5), sigma=0.1, gamma=0.1, n_steps=1)
    with pytest.raises(InputError, match="data"):
        smp.pipeline(np.full((5, 2), np.nan), sigma=0.1, gamma=0.1, n_steps=1)
    with pytest.raises(InputError, match="covariance"):
        smp.pipeline(np.ones((5, 2)), covariance=np.eye(3), sigma=0.1, gamma=0.1, n_steps=1)
    with pytest.raises(InputError, match="covariance"):
        smp.pipeline(np.ones((5, 2)), covariance=-np.eye(2), sigma=0.1, gamma=0.1, n_steps=1)
    with pytest.raises(InputError, match="score_step"):
        smp.pipeline((LAM, 10), sigma=0.1, gamma=0.1, n_steps=1, score="gd", score_step=10.0)
    with pytest.raises(InputError, match="n_steps"):
        smp.pipeline((LAM, 10), sigma=0.1, gamma=0.1, n_steps=-1)


def test_exported_helpers_validate_and_follow_the_io_convention():
    """issue 16: score_function / dsm_score_matrix used to return inf for sigma = 0."""
    with pytest.raises(InputError, match="^sigma"):
        smp.score_function(np.array([1.0]), sigma=0)
    with pytest.raises(InputError, match="^mu"):
        smp.score_function(np.array([-1.0]), sigma=0.1)
    with pytest.raises(InputError, match="^mu"):
        smp.score_function(np.array([np.nan]), sigma=0.1)
    with pytest.raises(InputError, match="^score_step"):
        smp.score_function(np.array([1.0]), sigma=0.1, score="gd")
    with pytest.raises(InputError, match="^score"):
        smp.score_function(np.array([1.0]), sigma=0.1, score="sgd")
    a = smp.score_function(np.array([1.0, 0.0]), sigma=0.5)
    assert isinstance(a, np.ndarray) and np.allclose(a, [1 / 1.25, 4.0])
    at = smp.score_function(torch.tensor([1.0], dtype=torch.float32), sigma=0.5)
    assert isinstance(at, torch.Tensor) and at.dtype == torch.float32
    for bad, name in [(dict(S=np.eye(2), sigma=0), "sigma"), (dict(S=-np.eye(2), sigma=0.1), "S"),
                      (dict(S=np.ones((2, 3)), sigma=0.1), "S"),
                      (dict(S=np.zeros((0, 0)), sigma=0.1), "S"),
                      (dict(S=np.full((2, 2), np.nan), sigma=0.1), "S"),
                      (dict(S=np.eye(2), sigma=0.1, score="sgd"), "samples"),
                      (dict(S=np.eye(2), sigma=0.1, score="sgd", samples=np.ones((4, 3))),
                       "samples"),
                      (dict(S=np.eye(2), sigma=0.1, score="gd", score_step=5.0), "score_step"),
                      (dict(S=np.eye(2), sigma=0.1, score="adam"), "score")]:
        with pytest.raises(InputError, match=f"^{name}"):
            smp.dsm_score_matrix(**bad)
    A, n_iter, gap = smp.dsm_score_matrix(np.diag([1.0, 0.5]), sigma=0.5)
    assert isinstance(A, np.ndarray) and n_iter == 0 and gap == 0.0
    np.testing.assert_allclose(A, np.diag([1 / 1.25, 1 / 0.75]))
    X = np.random.default_rng(0).normal(size=(50, 2))
    A, n_iter, gap = smp.dsm_score_matrix(X.T @ X / 50, sigma=0.5, score="sgd", samples=X,
                                          score_iters=200, seed=1)
    assert A.shape == (2, 2) and n_iter == 200 and 0 < gap < 1
    with pytest.raises(InputError, match="^init_var"):
        smp.ula_covariance(np.eye(2), gamma=0.1, init_var="a")
    with pytest.raises(InputError, match="^A"):
        smp.ula_covariance(np.zeros((0, 0)), gamma=0.1)
    with pytest.raises(InputError, match="^denoise"):
        smp.pipeline((LAM, 10), sigma=0.1, gamma=0.01, n_steps=1, denoise="no")
    with pytest.raises(InputError, match="^denoise"):
        smp.w2_error(LAM, sigma=0.1, gamma=0.01, n_samples=10, denoise="no")
    with pytest.raises(InputError, match="^score_step"):
        smp.pipeline((LAM, 10), sigma=0.1, gamma=0.01, n_steps=1, score="sgd", score_step=5.0)
    with pytest.raises(InputError, match="^score_step"):
        smp.w2_error(LAM, sigma=0.1, gamma=0.01, n_samples=10, score="sgd", score_step=5.0)


def test_divergent_sgd_is_reported():
    # tau below 1 / lambda_max(Q) (the mean converges) but SGD's second moment diverges
    with pytest.warns(ConvergenceWarning, match="diverged"):
        res = smp.pipeline((LAM, 50), sigma=0.3, gamma=0.01, n_steps=5, score="sgd",
                           score_step=0.3, score_iters=10000, n_chains=0, seed=0)
    assert not res.converged and math.isnan(res.w2) and res.errors == [math.inf]
