"""Tests of measureflow.ot.jko (entropic JKO steps on grids)."""

import numpy as np
import pytest
import torch

from measureflow import InputError
from measureflow.ot import jko

L, N = 2.0, 120
H = 2 * L / N
X = -L + (np.arange(N) + 0.5) * H


def _gauss(m, s):
    r = np.exp(-(X - m) ** 2 / (2 * s ** 2))
    return r / (r.sum() * H)


def test_heat_flow_vs_heat_kernel():
    s0, tau, n, eps = 0.2, 0.01, 5, 2 * H ** 2
    res = jko(_gauss(0.0, s0), tau=tau, n_steps=n, eps=eps, extent=[(-L, L)], tol=1e-7)
    assert res.converged
    var = float((res.densities[-1] * X ** 2).sum() * H)
    # implicit-Euler recursion with the entropic diffusion D + eps / (4 tau) (module docstring)
    d_eff, s = 1.0 + eps / (4 * tau), s0
    for _ in range(n):
        s = 0.5 * (s + np.sqrt(s * s + 4 * tau * d_eff))
    assert var == pytest.approx(s * s, rel=2e-3)
    # and the heat kernel itself, within the O(tau) + O(eps / tau) bias
    exact = _gauss(0.0, np.sqrt(s0 ** 2 + 2 * tau * n))
    assert np.abs(res.densities[-1] - exact).sum() * H < 0.03
    # mass kept, entropy decreasing
    np.testing.assert_allclose(res.densities.sum(1) * H, 1.0, atol=1e-9)
    assert np.all(np.diff(res.energies) < 0)


def test_fokker_planck_mean_follows_ou():
    tau, n = 0.05, 3
    res = jko(_gauss(-0.5, 0.25), energy="fokker_planck", tau=tau, n_steps=n,
              potential=lambda x: 0.5 * (x[:, 0] - 0.5) ** 2, extent=[(-L, L)], tol=1e-6)
    means = (res.densities * X).sum(1) * H
    m = -0.5
    for k in range(n):  # implicit Euler of dm/dt = -(m - 1/2)
        m = (m + tau * 0.5) / (1 + tau)
        assert means[k + 1] == pytest.approx(m, abs=1e-3)


def test_crowd_motion_respects_cap():
    cap = 1.2
    r0 = np.where(np.abs(X + 1.0) < 0.5, 1.0, 0.0)
    res = jko(r0, energy="crowd", tau=0.05, n_steps=2, cap=cap,
              potential=lambda x: 2.0 * (x[:, 0] - 1.0) ** 2, extent=[(-L, L)], tol=1e-6)
    assert res.converged
    assert res.densities[1:].max() <= cap * (1 + 1e-4)
    np.testing.assert_allclose(res.densities.sum(1) * H, 1.0, atol=1e-9)
    means = (res.densities * X).sum(1) * H
    assert np.all(np.diff(means) > 0)  # moving towards the minimum of V at x = 1


def test_porous_medium_spreads_and_decreases_energy():
    r0 = torch.tensor(_gauss(0.0, 0.2))
    res = jko(r0, energy="porous_medium", exponent=2.0, tau=0.01, n_steps=2,
              extent=[(-L, L)], tol=1e-6)
    assert isinstance(res.densities, torch.Tensor)
    assert bool((res.energies[1:] < res.energies[:-1]).all())
    assert float(res.densities[-1].max()) < float(r0.max())


def test_2d_heat_is_isotropic():
    n = 24
    x = (np.arange(n) + 0.5) / n - 0.5
    Xg, Yg = np.meshgrid(x, x, indexing="ij")
    r0 = np.exp(-(Xg ** 2 + Yg ** 2) / (2 * 0.08 ** 2))
    r0 /= r0.sum() / n ** 2
    res = jko(r0, tau=2e-3, n_steps=2, extent=[(-0.5, 0.5)] * 2, tol=1e-7)
    last = res.densities[-1]
    np.testing.assert_allclose(last, last.T, atol=1e-8 * last.max())
    vx = (last * Xg ** 2).sum() / last.sum()
    assert vx > 0.08 ** 2


@pytest.mark.parametrize("kwargs, name", [
    (dict(tau=-1.0, n_steps=1), "tau"),
    (dict(tau=0.1, n_steps=0), "n_steps"),
    (dict(tau=0.1, n_steps=1, energy="nope"), "energy"),
    (dict(tau=0.1, n_steps=1, energy="fokker_planck"), "potential"),
    (dict(tau=0.1, n_steps=1, energy="crowd", potential=np.zeros(10)), "cap"),
    (dict(tau=0.1, n_steps=1, energy="crowd", potential=np.zeros(10), cap=0.5), "cap"),
    (dict(tau=0.1, n_steps=1, potential=np.zeros(3)), "potential"),
    (dict(tau=0.1, n_steps=1, eps=0.0), "eps"),
    (dict(tau=0.1, n_steps=1, energy="porous_medium", exponent=1.0), "exponent"),
])
def test_input_errors(kwargs, name):
    with pytest.raises(InputError, match=f"^{name}"):
        jko(np.ones(10), **kwargs)


def test_negative_density_rejected():
    with pytest.raises(InputError, match="^rho0"):
        jko(-np.ones(10), tau=0.1, n_steps=1)


def test_nonconvergence_is_reported():
    with pytest.warns(Warning, match="not converged"):
        res = jko(_gauss(0.0, 0.3), tau=0.01, n_steps=2, extent=[(-L, L)], max_iter=3)
    assert not res.converged and max(res.errors) > 1e-7


def test_crowd_rho0_above_cap_rejected():
    with pytest.raises(InputError, match="^rho0"):
        jko(np.r_[2.0, np.zeros(9)], energy="crowd", tau=0.1, n_steps=1, cap=1.5,
            potential=np.zeros(10), extent=[(0.0, 1.0)])
