import math

import numpy as np
import pytest
import torch
from scipy.special import iv

from measureflow import InputError
from measureflow.attention import (
    attend,
    bessel_ratio,
    beta_theory,
    fit_rate,
    gaussian_reference,
    horizon,
    output_moments,
    sphere_reference,
    token_sample_sweep,
    uniform_error,
)

D64 = torch.float64


def test_beta_theory_and_horizon():
    assert beta_theory(0.0) == 0.5
    assert math.isclose(beta_theory(1.0), 0.25)
    assert np.allclose(beta_theory(np.array([0.0, 2.0])), [0.5, 0.1])
    g = torch.Generator().manual_seed(0)
    L = torch.randn(4, 4, generator=g, dtype=D64)
    S = L @ L.T + 0.1 * torch.eye(4, dtype=D64)
    Q, K = torch.randn(4, 4, generator=g, dtype=D64), torch.randn(4, 4, generator=g, dtype=D64)
    H = horizon(S, Q, K)
    C = torch.linalg.cholesky(S)                       # the reference code's L^T A L
    assert math.isclose(float(H), float(torch.linalg.matrix_norm(C.T @ K.T @ Q @ C, 2)),
                        rel_tol=1e-10)
    Hh = horizon(S, Q, K, heads=2, per_head=True)
    assert Hh.shape == (2,) and float(Hh.max()) > 0
    with pytest.raises(InputError, match="heads"):
        horizon(S, Q, K, heads=3)


def test_fit_rate_recovers_known_slope():
    rng = np.random.default_rng(0)
    n = np.geomspace(100, 10000, 8)
    k = 50
    errs = 3.0 * n[:, None] ** -0.3 * np.exp(0.2 * rng.standard_normal((8, k)))
    fit = fit_rate(n, errs.mean(1), errs.std(1), k)
    assert abs(fit["slope"] + 0.3) < 3 * fit["slope_se"] + 1e-3
    assert fit["slope_se"] < 0.02
    exact = fit_rate(n, 2.0 * n ** -0.5)
    assert math.isclose(exact["slope"], -0.5, rel_tol=1e-10)
    with pytest.raises(InputError, match="err_mean"):
        fit_rate(n, -np.ones(8))


def test_gaussian_reference_matches_large_sample():
    g = torch.Generator().manual_seed(1)
    d = 2
    mean = torch.tensor([0.5, -0.3], dtype=D64)
    cov = torch.tensor([[0.5, 0.1], [0.1, 0.3]], dtype=D64)
    Q, K = 0.7 * torch.randn(d, d, generator=g, dtype=D64), 0.7 * torch.randn(d, d, generator=g,
                                                                             dtype=D64)
    V = torch.randn(d, d, generator=g, dtype=D64)
    m_ref, C_ref = gaussian_reference(mean, cov, Q, K, V)
    A = K.T @ Q
    assert torch.allclose(m_ref, V @ (mean + cov @ A @ mean))
    assert torch.allclose(C_ref, V @ cov @ A @ cov @ A.T @ cov @ V.T)
    # a large sample: queries x_i and keys from independent halves (Gamma_mu estimated)
    x = mean + torch.randn(1000, d, generator=g, dtype=D64) @ torch.linalg.cholesky(cov).T
    y = mean + torch.randn(30_000, d, generator=g, dtype=D64) @ torch.linalg.cholesky(cov).T
    out = attend(x, y, Q=Q, K=K, V=V)
    assert torch.allclose(out.mean(0), m_ref, atol=0.05)
    assert torch.allclose(torch.cov(out.T, correction=0), C_ref, atol=0.05)


def test_bessel_ratio_and_sphere_reference():
    r = np.array([1e-10, 0.5, 3.0, 40.0])
    d = 5
    assert np.allclose(bessel_ratio(d, r[1:3]), iv(d / 2, r[1:3]) / iv(d / 2 - 1, r[1:3]))
    assert math.isclose(float(bessel_ratio(d, r[0])), r[0] / d)
    assert 0.9 < float(bessel_ratio(d, 40.0)) < 1.0
    # A = a I (orthogonal up to scale): lambda_i = R^2 A_d(R^2 a)^2 / d exactly
    a, R = 1.7, 1.3
    eye = np.eye(3)
    m, C = sphere_reference(a * eye, eye, eye, radius=R, n_mc=1 << 12)
    assert np.allclose(m, 0) and np.allclose(C, R**2 * bessel_ratio(3, R * R * a) ** 2 / 3 * eye)
    # anisotropic A vs a large sample (queries on the sphere, many keys)
    g = torch.Generator().manual_seed(0)
    A = torch.diag(torch.tensor([3.0, 1.0, 0.2], dtype=D64))
    _, C = sphere_reference(A, torch.eye(3, dtype=D64), torch.eye(3, dtype=D64), n_mc=1 << 18)
    z = torch.randn(20_000, 3, generator=g, dtype=D64)
    y = z / z.norm(dim=1, keepdim=True)
    x = y[:1500]
    out = attend(x, y, Q=A, K=torch.eye(3, dtype=D64), V=torch.eye(3, dtype=D64))
    assert torch.allclose(out.T @ out / 1500, C, atol=0.03)


def test_sweep_gaussian_small_horizon_rate_near_half():
    d = 2
    mean = torch.zeros(d, dtype=D64)
    cov = torch.eye(d, dtype=D64)
    Q = 0.2 * torch.eye(d, dtype=D64)
    K = torch.eye(d, dtype=D64)
    V = torch.eye(d, dtype=D64)
    ref = gaussian_reference(mean, cov, Q, K, V)

    def sampler(n, gen):
        return torch.randn(n, d, generator=gen, dtype=D64)

    res = token_sample_sweep(sampler, [50, 100, 200, 400, 800], 12, Q=Q, K=K, V=V,
                             reference=ref, seed=0)
    assert res.mean_err.shape == (5, 12)
    H = float(horizon(cov, Q, K))
    assert math.isclose(H, 0.2)
    # beta_th(0.2) = 0.48: measured rates close to 1/2 (MC rate of the mean and covariance)
    assert abs(res.beta_mean - 0.5) < 0.15
    assert abs(res.beta_cov - 0.5) < 0.15


def test_uniform_error_decreases_with_n():
    d = 2
    Q = 0.5 * torch.eye(d, dtype=D64)
    K = V = torch.eye(d, dtype=D64)
    g = torch.Generator().manual_seed(3)

    def ref_map(x):
        return x @ (0.5 * torch.eye(d, dtype=D64)).T       # V (alpha + Sigma A x), alpha = 0

    e = []
    for n in (200, 20000):
        y = torch.randn(n, d, generator=g, dtype=D64)
        e.append(uniform_error(y, Q=Q, K=K, V=V, reference_map=ref_map, radius=1.0,
                               n_probe=128))
    assert e[1] < 0.3 * e[0]
    # no hidden sqrt(d): output_moments of a single token is that token (V = I)
    m, C = output_moments(torch.ones(1, 2, dtype=D64), Q=Q, K=K, V=V)
    assert torch.allclose(m, torch.ones(2, dtype=D64)) and float(C.abs().max()) == 0


def test_sample_complexity_bad_input():
    d = 2
    eye = torch.eye(d, dtype=D64)
    y = torch.randn(50, d, generator=torch.Generator().manual_seed(0), dtype=D64)
    with pytest.raises(InputError, match="^H"):
        beta_theory(-1.0)
    with pytest.raises(InputError, match="^H"):
        beta_theory(torch.tensor([0.5, float("nan")]))
    with pytest.raises(InputError, match="^err_mean"):
        fit_rate([10, 100], [0.1, float("nan")])
    with pytest.raises(InputError, match="^err_std"):
        fit_rate([10, 100], [0.1, 0.05], [0.01, -0.01], 4)

    def sampler(n, gen):
        return torch.randn(n, d, generator=gen, dtype=D64)

    with pytest.raises(InputError, match="^reference"):
        token_sample_sweep(sampler, [10, 20], 2, Q=eye, K=eye, V=eye, reference=eye)
    with pytest.raises(InputError, match="^reference"):
        token_sample_sweep(sampler, [10, 20], 2, Q=eye, K=eye, V=eye,
                           reference=(torch.zeros(3, dtype=D64), eye))
    with pytest.raises(InputError, match="^reference_map"):
        uniform_error(y, Q=eye, K=eye, V=eye, reference_map=lambda x: x[:, :1], radius=1.0)


def test_horizon_and_helpers_reject_bad_input():
    eye = torch.eye(2, dtype=D64)
    with pytest.raises(InputError, match="^cov"):
        horizon(torch.tensor([[1.0, 0.0], [0.0, -0.5]], dtype=D64), eye, eye)   # not PSD
    with pytest.raises(InputError, match="^cov"):
        horizon(torch.tensor([[1.0, 0.3], [0.0, 1.0]], dtype=D64), eye, eye)    # not symmetric
    with pytest.raises(InputError, match="^Q"):
        horizon(eye, torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=D64), eye)
    # PSD up to float32 round-off is accepted
    L = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    S = (L @ L.T).float()                                  # rank 2, eigenvalue ~ -1e-7
    assert float(horizon(S, torch.eye(3), torch.eye(3))) > 0
    with pytest.raises(InputError, match="^r"):
        bessel_ratio(3, -1.0)

    def sampler(n, gen):
        return torch.randn(n, 2, generator=gen, dtype=D64)

    ref = gaussian_reference(torch.zeros(2, dtype=D64), eye, eye, eye, eye)
    with pytest.raises(InputError, match="^sampler"):
        token_sample_sweep("not callable", [10, 20], 2, Q=eye, K=eye, V=eye, reference=ref)
    with pytest.raises(InputError, match="^sampler"):
        token_sample_sweep(lambda n, g: torch.zeros(n + 1, 2, dtype=D64), [10, 20], 2, Q=eye,
                           K=eye, V=eye, reference=ref)
    with pytest.raises(InputError, match="^kind"):
        token_sample_sweep(sampler, [10, 20], 2, Q=eye, K=eye, V=eye, reference=ref,
                           kind="causal")
    with pytest.raises(InputError, match="^n_grid"):
        token_sample_sweep(sampler, [2, 20], 2, Q=eye, K=eye, V=eye, reference=ref,
                           bias_correction="split")
    with pytest.raises(InputError, match="^bias_correction"):
        token_sample_sweep(sampler, [10, 20], 2, Q=eye, K=eye, V=eye, reference=ref,
                           bias_correction="jackknife")
    with pytest.raises(InputError, match="^reference_map"):
        uniform_error(sampler(20, None), Q=eye, K=eye, V=eye, reference_map=None, radius=1.0)


def _fixed_sampler(samples_by_n):
    """A token_sample_sweep sampler that returns chosen samples, in order, for each n: the
    sweep's errors against a chosen reference then give its finite-n moments of them."""
    queues = {n: list(xs) for n, xs in samples_by_n.items()}

    def sample(n, gen):
        return queues[n].pop(0)
    return sample


def test_sweep_moments_are_output_moments():
    # multi-head sweep: the error of each sample is |m_n - u| and |C_n - S|_F with (m_n, C_n)
    # the output_moments of that sample, for a random reference (u, S)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(31, 4, generator=g, dtype=D64)
    Q, K, V = (torch.randn(4, 4, generator=g, dtype=D64) for _ in range(3))
    for _ in range(2):
        u = torch.randn(4, generator=g, dtype=D64)
        S = torch.randn(4, 4, generator=g, dtype=D64)
        res = token_sample_sweep(_fixed_sampler({30: [x[:30]], 31: [x]}), [30, 31], 1, Q=Q,
                                 K=K, V=V, reference=(u, S), heads=2)
        for i, n in enumerate((30, 31)):
            m, C = output_moments(x[:n], Q=Q, K=K, V=V, heads=2)
            assert res.mean_err[i, 0] == pytest.approx(float((m - u).norm()), rel=1e-12)
            assert res.cov_err[i, 0] == pytest.approx(float((C - S).norm()), rel=1e-12)


def test_split_bias_correction_removes_the_1_over_n_bias_exactly():
    """Exact expectations over i.i.d. samples from a two-atom measure (enumerated by the
    number of atoms of each kind in each half): the plain covariance is biased by ~B/n, the
    split-corrected one by O(1/n^2). The sweep's covariance of each sample is read from its
    error against the reference C = -L (1 x 1, so the error is C_n + L > 0)."""
    y0, y1, p = -1.0, 2.0, 0.3
    Q = torch.tensor([[0.7]], dtype=D64)
    one = torch.eye(1, dtype=D64)
    _, C_ref = output_moments(torch.tensor([[y0], [y1]], dtype=D64),
                              torch.tensor([p, 1 - p], dtype=D64), Q=Q, K=one, V=one)
    L = 10.0
    samples, probs = {}, {}
    for n in (8, 16):
        n1, n2 = n // 2, n - n // 2
        samples[n], probs[n] = [], []
        for j in range(n1 + 1):
            for k in range(n2 + 1):
                probs[n].append(math.comb(n1, j) * math.comb(n2, k) * p ** (j + k)
                                * (1 - p) ** (n - j - k))
                samples[n].append(torch.tensor(
                    [y0] * j + [y1] * (n1 - j) + [y0] * k + [y1] * (n2 - k), dtype=D64)[:, None])
    reps = max(len(v) for v in samples.values())
    for n in samples:                                 # pad to the same count, probability 0
        probs[n] += [0.0] * (reps - len(probs[n]))
        samples[n] += [samples[n][0]] * (reps - len(samples[n]))
    expected = {}
    for bc in (None, "split"):
        res = token_sample_sweep(_fixed_sampler(samples), [8, 16], reps, Q=Q, K=one, V=one,
                                 reference=(torch.zeros(1, dtype=D64), -L * one),
                                 bias_correction=bc)
        for i, n in enumerate((8, 16)):
            expected[bc, n] = float(np.dot(probs[n], res.cov_err[i] - L))
    bias = {n: (expected[None, n] - float(C_ref), expected["split", n] - float(C_ref))
            for n in (8, 16)}
    # plain: ~B/n (halves when n doubles); corrected: much smaller and shrinking faster
    assert 1.6 < bias[8][0] / bias[16][0] < 2.4
    assert abs(bias[16][1]) < 0.25 * abs(bias[16][0])
    assert abs(bias[16][1]) < 0.5 * abs(bias[8][1])
