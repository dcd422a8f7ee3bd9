"""Exact OT (ot.solve with eps=None): vs POT emd2, assignment, certificate, gradients, input."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import measureflow.ot as mot
from measureflow import InputError

pot = pytest.importorskip("ot")


def _problem(n, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(m, 2))
    a = rng.random(n) + 0.05
    b = rng.random(m) + 0.05
    return a / a.sum(), b / b.sum(), ((x[:, None] - y[None]) ** 2).sum(-1)


@pytest.mark.parametrize("seed", range(3))
def test_matches_pot_emd2_and_certificate(seed):
    a, b, C = _problem(30 + seed, 25, seed)
    r = mot.solve(a, b, C)
    assert r.converged and r.method == "network_simplex"
    assert abs(r.value - pot.emd2(a, b, C)) < 1e-12
    assert abs(r.value - (C * r.plan).sum()) < 1e-12
    cert = r.certificate
    assert cert.valid and cert.gap <= 1e-10 and cert.dual_violation <= 1e-10
    # The certificate is checkable by hand: feasibility, dual feasibility, strong duality.
    assert np.abs(r.plan.sum(1) - a).sum() + np.abs(r.plan.sum(0) - b).sum() < 1e-12
    assert (r.plan >= 0).all()
    assert (r.potential_f[:, None] + r.potential_g[None] - C).max() <= 1e-10
    assert abs(a @ r.potential_f + b @ r.potential_g - r.value) < 1e-10


@pytest.mark.parametrize("seed", range(3))
def test_permutation_matches_linear_sum_assignment(seed):
    n = 40
    rng = np.random.default_rng(10 + seed)
    C = rng.random((n, n))
    r = mot.solve(None, None, C)
    rows, cols = linear_sum_assignment(C)
    assert abs(r.value - C[rows, cols].sum() / n) < 1e-12
    # Uniform weights: the optimal plan is a permutation matrix / n (a vertex of the polytope).
    P = np.zeros((n, n))
    P[rows, cols] = 1.0 / n
    assert abs((C * r.plan).sum() - (C * P).sum()) < 1e-12
    assert r.certificate.valid


def test_zero_weights_keep_certificate():
    a, b, C = _problem(12, 10, 3)
    a[[0, 5]] = 0
    a /= a.sum()
    r = mot.solve(a, b, C)
    assert r.certificate.valid
    assert abs(r.value - pot.emd2(a, b, C)) < 1e-12


def test_torch_gradients_are_plan_and_potentials():
    a, b, C = _problem(8, 7, 4)
    Ct = torch.tensor(C, requires_grad=True)
    at = torch.tensor(a, requires_grad=True)
    r = mot.solve(at, torch.tensor(b), Ct)
    gC, ga = torch.autograd.grad(r.value, (Ct, at))
    np.testing.assert_allclose(gC.numpy(), r.plan.numpy(), atol=1e-15)
    # Finite differences in C (the LP value is piecewise linear; small steps keep the basis).
    h = 1e-7
    E = np.zeros_like(C)
    E[1, 2] = h
    fd = (pot.emd2(a, b, C + E) - pot.emd2(a, b, C - E)) / (2 * h)
    assert abs(fd - gC[1, 2].item()) < 1e-6
    d = np.random.default_rng(0).normal(size=a.shape)
    d -= d.mean()
    fd = (pot.emd2(a + h * d, b * (1 + h * d.sum()), C) - pot.emd2(a - h * d, b, C)) / (2 * h)
    assert abs(fd - float(ga.numpy() @ d)) < 1e-6


def test_bad_input():
    a, b, C = _problem(5, 4, 5)
    with pytest.raises(InputError, match="^a, b"):
        mot.solve(a, 2 * b, C)
    with pytest.raises(InputError, match="^rho"):
        mot.solve(a, b, C, rho=1.0)
    with pytest.raises(InputError, match="^max_iter"):
        mot.solve(a, b, C, max_iter=0)
    with pytest.raises(InputError, match="^tol"):
        mot.solve(a, b, C, tol=0.0)
    with pytest.raises(InputError, match="^init"):
        mot.solve(a, b, C, init=(np.zeros(5), np.zeros(4)))
    with pytest.raises(InputError, match="^C"):
        mot.solve(a, b, np.full((5, 4), np.inf))
