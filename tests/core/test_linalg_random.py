import numpy as np
import torch

from _tol import eps, tol_solve
from measureflow.core import loglog_fit, make_generator, seed_everything
from measureflow.core.linalg import cost_matrix, invsqrtm_psd, psd_power, sqdist, sqrtm_psd


def test_sqrtm_and_inverse_sqrt(dtype):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 5, generator=g, dtype=torch.float64).to(dtype)
    S = A @ A.T + 0.1 * torch.eye(5, dtype=dtype)
    # eigendecomposition of a size-5 SPD matrix: relative error <= c n cond eps (cond(S) =
    # lmax / lmin); R R and S^-1/2 S S^-1/2 are checked against S and I in that unit (a wrong
    # root, e.g. no square root of the eigenvalues, is off by O(1))
    ev = torch.linalg.eigvalsh(S.double())
    tol = tol_solve(float(ev[-1] / ev[0]), 5, dtype)
    R = sqrtm_psd(S)
    torch.testing.assert_close(R @ R, S, rtol=tol, atol=tol * float(ev[-1]))
    torch.testing.assert_close(invsqrtm_psd(S) @ S @ invsqrtm_psd(S), torch.eye(5, dtype=S.dtype),
                               rtol=tol, atol=tol)
    torch.testing.assert_close(psd_power(S, 2.0), S @ S, rtol=tol, atol=tol * float(ev[-1]) ** 2)


def test_sqdist_matches_cdist_and_has_no_half(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g, dtype=dtype)
    y = torch.randn(5, 3, generator=g, dtype=dtype)
    # sqdist expands |x|^2 + |y|^2 - 2<x, y> (cdist below 25 points sums (x - y)^2): the
    # cancellation leaves an absolute error <= c d eps (|x_i|^2 + |y_j|^2), d = 3, c = 4
    # (a missing factor 2 or a half-distance convention is off by O(|x - y|^2))
    scale = (x * x).sum(1)[:, None] + (y * y).sum(1)[None]
    atol = 4 * 3 * eps(dtype) * scale
    assert bool(((sqdist(x, y) - torch.cdist(x, y) ** 2).abs() <= atol).all())
    assert torch.all(torch.diagonal(sqdist(x, x)) == 0)
    tol = 4 * 3 * eps(dtype)  # cdist vs the same kernel: a few roundings of a length-3 sum
    torch.testing.assert_close(cost_matrix(x, y, 1), torch.cdist(x, y), rtol=tol, atol=tol)
    torch.testing.assert_close(cost_matrix(x, y, 3), torch.cdist(x, y) ** 3, rtol=3 * tol,
                               atol=3 * tol)


def test_generators_are_deterministic():
    a = torch.randn(3, generator=make_generator(5))
    b = torch.randn(3, generator=make_generator(5))
    assert torch.equal(a, b)
    g = make_generator(1)
    assert make_generator(g) is g
    seed_everything(3)
    u = (np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert u == (np.random.rand(), torch.rand(1).item())


def test_loglog_fit_recovers_known_rate():
    n = np.array([10, 20, 40, 80, 160])
    fit = loglog_fit(n, 3.0 * n**-0.5)
    assert abs(fit["slope"] + 0.5) < 1e-12 and abs(np.exp(fit["intercept"]) - 3.0) < 1e-10
    assert fit["slope_se"] < 1e-10
    noisy = 3.0 * n**-0.5 * np.exp(np.array([0.1, -0.1, 0.05, -0.05, 0.0]))
    fit = loglog_fit(n, noisy)
    assert 0 < fit["slope_se"] < 0.2 and abs(fit["slope"] + 0.5) < 3 * fit["slope_se"] + 0.05
    # known variances: slope SE = sqrt of the (0, 0) entry of (A^T W A)^{-1}, whatever the
    # residuals (exact data with a stated 10% error per point still has a 10%-scale slope SE)
    w = np.full(5, 100.0)
    fit = loglog_fit(n, 3.0 * n**-0.5, weights=w, known_variance=True)
    lx = np.log(n)
    assert abs(fit["slope_se"] / (0.1 / np.sqrt(((lx - lx.mean()) ** 2).sum())) - 1) < 1e-10


def test_bad_seed_is_input_error():
    import pytest

    from measureflow import InputError
    from measureflow.core import numpy_rng
    for bad in ("1", 1.5, True):
        with pytest.raises(InputError, match="^seed:"):
            make_generator(bad)
        with pytest.raises(InputError, match="^seed:"):
            numpy_rng(bad)


def test_serial_if_small_restores_thread_count():
    import pytest

    from measureflow.core.threads import serial_if_small
    k = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with serial_if_small(100):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with serial_if_small(10**6):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), serial_if_small(100):
            raise RuntimeError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(k)
