"""Tests of measureflow.ot.particle_flow and mmd2."""

import numpy as np
import pytest
import torch

from _tol import tol_sum
from measureflow import InputError
from measureflow.ot import mmd2, particle_flow


def test_quadratic_potential_is_exact_euler():
    x0 = np.random.default_rng(0).normal(size=(30, 2))
    step, n = 0.1, 7
    res = particle_flow(x0, potential=lambda x: 0.5 * (x ** 2).sum(1), n_steps=n, step=step)
    np.testing.assert_allclose(res.positions, x0 * (1 - step) ** n, rtol=1e-12)
    assert res.trajectory.shape == (n + 1, 30, 2)
    assert np.all(np.diff(res.energies) < 0)


def test_quadratic_interaction_contracts_to_mean():
    x0 = np.random.default_rng(1).normal(size=(25, 3))
    step, n = 0.2, 5
    res = particle_flow(x0, interaction=lambda z: 0.5 * (z ** 2).sum(-1), n_steps=n, step=step)
    m = x0.mean(0)
    # dx_i/dt = -sum_j w_j (x_i - x_j) = -(x_i - mean): mean kept, spread times (1 - step)^n
    np.testing.assert_allclose(res.positions.mean(0), m, atol=1e-12)
    np.testing.assert_allclose(res.positions - m, (x0 - m) * (1 - step) ** n, rtol=1e-10)


def test_weighted_particles_velocity_is_independent_of_mass():
    x0 = np.array([[0.0], [1.0], [3.0]])
    w = np.array([0.2, 0.3, 0.5])
    res = particle_flow(x0, weights=w, potential=lambda x: (x[:, 0] - 1.0) ** 2, n_steps=1,
                        step=0.1)
    np.testing.assert_allclose(res.positions[:, 0], x0[:, 0] - 0.1 * 2 * (x0[:, 0] - 1.0))


def test_mmd_flow_decreases_mmd_and_matches_mmd2():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(60, 2, generator=g, dtype=torch.float64)
    y = torch.randn(80, 2, generator=g, dtype=torch.float64) * 0.5 + 2.0
    res = particle_flow(x0, energy="mmd", target=y, bandwidth=1.0, n_steps=60, step=2.0)
    assert isinstance(res.positions, torch.Tensor)
    assert float(res.energies[0]) == pytest.approx(0.5 * float(mmd2(x0, y)), rel=1e-12)
    assert float(res.energies[-1]) < 0.1 * float(res.energies[0])


def test_mmd2_energy_kernel_is_energy_distance(dtype):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(15, 2)) + 1
    xt, yt = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    x, y = xt.double().numpy(), yt.double().numpy()  # the reference sees the same inputs
    d = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1).mean()
    ref = 2 * d(x, y) - d(x, x) - d(y, y)
    # each distance is exact to a few eps; the three means (20^2, 20 x 15, 15^2 terms) are
    # summed in another order than NumPy's and then cancel: |err| <= c (n + m) eps S with S
    # the sum of the terms' magnitudes (random-walk growth over the n m terms), relative to
    # ref: ~3e-14 in float64, ~2e-5 in float32 (a wrong convention, e.g. a missing factor 2
    # or squared distances, is O(1))
    S = 2 * d(x, y) + d(x, x) + d(y, y)
    rel = tol_sum(20 + 15, dtype, c=8) * S / ref
    assert float(mmd2(xt, yt, kernel="energy")) == pytest.approx(ref, rel=rel)
    assert mmd2(x, y, kernel="energy") == pytest.approx(ref, rel=tol_sum(20 + 15, c=8) * S / ref)
    # MMD^2(x, x) = mean Kxx + mean Kxx - 2 mean Kxx: three means of 20^2 kernel values in [0, 1]
    # (sum of magnitudes 4) whose orders may differ: |.| <= 4 * 400 eps ~ 4e-13 (a real bug: O(0.1))
    assert mmd2(x, x) == pytest.approx(0.0, abs=4 * tol_sum(20 * 20))


def test_autograd_force_matches_finite_differences():
    x0 = torch.tensor([[0.3, -0.2], [1.0, 0.5], [-0.7, 0.1]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    step = 1e-3
    res = particle_flow(x0, energy="mmd", target=y, n_steps=1, step=step)
    vel = (res.positions - x0) / step
    h = 1e-6
    for i in range(3):
        for k in range(2):
            e = torch.zeros_like(x0)
            e[i, k] = h
            fd = (0.5 * mmd2(x0 + e, y) - 0.5 * mmd2(x0 - e, y)) / (2 * h)
            assert float(vel[i, k]) == pytest.approx(-3 * float(fd), rel=1e-6, abs=1e-9)


def test_langevin_noise_is_seeded():
    x0 = np.zeros((10, 1))
    kw = dict(potential=lambda x: 0.5 * (x ** 2).sum(1), n_steps=3, step=0.1, temperature=1.0)
    a = particle_flow(x0, seed=3, **kw).positions
    b = particle_flow(x0, seed=3, **kw).positions
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > 0


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_steps=1, step=0.1), "potential"),
    (dict(energy="mmd", n_steps=1, step=0.1), "target"),
    (dict(energy="bad", n_steps=1, step=0.1), "energy"),
    (dict(potential=lambda x: x[:, 0], n_steps=1, step=-0.1), "step"),
    (dict(potential=lambda x: x[:, 0], n_steps=0, step=0.1), "n_steps"),
    (dict(potential=lambda x: x[:, 0], n_steps=1, step=0.1, weights=[1, 0, 0]), "weights"),
    (dict(energy="mmd", target=np.zeros((4, 3)), n_steps=1, step=0.1), "target"),
    (dict(potential=lambda x: x[:, 0], n_steps=1, step=0.1, temperature=-1), "temperature"),
])
def test_input_errors(kwargs, name):
    with pytest.raises(InputError, match=f"^{name}"):
        particle_flow(np.zeros((3, 2)), **kwargs)


def test_langevin_reaches_ou_stationary_variance():
    # Euler-Maruyama of dx = -x dt + sqrt(2 T) dW: stationary variance
    # 2 step T / (1 - (1 - step)^2), started there so only sampling error remains
    step, T = 0.05, 0.7
    v = 2 * step * T / (1 - (1 - step) ** 2)
    x0 = np.random.default_rng(5).normal(size=(4000, 1)) * np.sqrt(v)
    res = particle_flow(x0, potential=lambda x: 0.5 * (x ** 2).sum(1), n_steps=60, step=step,
                        temperature=T, seed=1)
    assert res.positions.var() == pytest.approx(v, rel=0.08)
    assert abs(res.positions.mean()) < 0.1
    # without noise the same flow contracts the variance
    cold = particle_flow(x0, potential=lambda x: 0.5 * (x ** 2).sum(1), n_steps=60, step=step)
    assert cold.positions.var() < 0.1 * v
