"""The specialised semi-unbalanced solver of inverse/ agrees with the library's ot.solve."""

import math

import numpy as np
import pytest

import measureflow.ot as mot
from measureflow.inverse import semi_unbalanced_sinkhorn


@pytest.mark.parametrize("lam", [0.5, 5.0, math.inf])
def test_semi_unbalanced_equals_ot_solve_with_rho_pair(lam):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(25, 2)), rng.normal(size=(35, 2))
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    a = np.full(25, 1 / 25)
    b = rng.uniform(0.5, 1.5, 35)
    b /= b.sum()
    eps = 0.2
    ours = semi_unbalanced_sinkhorn(a, b, C, eps=eps, lam=lam, tol=1e-12, max_iter=100_000)
    ref = mot.solve(a, b, C, eps=eps, rho=(math.inf, lam), tol=1e-12, max_iter=100_000)
    assert ours.converged and ref.converged
    np.testing.assert_allclose(ours.plan, ref.plan, atol=1e-9)
    np.testing.assert_allclose(ours.value, ref.value, atol=1e-8)
