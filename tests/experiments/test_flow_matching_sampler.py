"""The flow-matching sampler of ``ot.flow-matching-ot`` runs on the engine's ODE stepper
(issue 17) and reproduces the former hand-written Euler loop (kept here as the oracle)."""

import pytest
import torch

from measureflow.experiments.ot_flows import integrate_velocity


@torch.no_grad()
def _old_euler(net, x0, k):
    """The pre-port loop of experiments/ot_flows.py, verbatim."""
    x = x0.clone()
    kinetic = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(k):
        t = torch.full((x.shape[0], 1), i / k, dtype=x.dtype)
        v = net(torch.cat([x, t], 1))
        kinetic += (v ** 2).sum(1) / k
        x = x + v / k
    return x, kinetic


def _net(seed=0, width=16):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.SiLU(),
                               torch.nn.Linear(width, 2)).double()


@pytest.mark.parametrize("k", [1, 2, 7, 16])
def test_sampler_equals_former_euler_loop(k):
    net = _net()
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x1, kin = integrate_velocity(net, x0, k)
    r1, rk = _old_euler(net, x0, k)
    # differences only from t = i * (1/k) vs i / k and h * e vs e / k (a few ulps)
    torch.testing.assert_close(x1, r1, rtol=0, atol=1e-12)
    torch.testing.assert_close(kin, rk, rtol=1e-12, atol=0)


def test_sampler_is_exact_on_a_linear_field():
    # v(x, t) = A x: Euler gives (I + A / k)^k x0 exactly
    A = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    net = lambda z: z[:, :2] @ A.T  # noqa: E731
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    x1, _ = integrate_velocity(net, x0, 8)
    M = torch.linalg.matrix_power(torch.eye(2, dtype=torch.float64) + A / 8, 8)
    torch.testing.assert_close(x1[0], M @ x0[0], rtol=0, atol=1e-14)
