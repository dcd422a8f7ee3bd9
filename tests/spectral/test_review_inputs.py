"""Review-2 checks: bad input raises InputError naming the argument; NumPy/torch in and out."""
import math

import numpy as np
import pytest
import torch

from measureflow import InputError
from measureflow.optim import Schatten
from measureflow.spectral import (
    dual_exponent,
    gauge_value,
    particle_lmo,
    polar_factor,
    schatten_lmo,
)
from measureflow.spectral.flows import (
    displacement_interpolation,
    gaussian_kl,
    gaussian_kl_rhs,
    interpolation_action,
    modal_flow,
    modal_invariant,
    modal_rhs,
    rank_loss_threshold,
)
from measureflow.spectral.sphere import sphere_velocity

NAN = float("nan")
G = np.random.default_rng(0).normal(size=(4, 3))
X = np.random.default_rng(1).normal(size=(5, 2))
Y = np.random.default_rng(2).normal(size=(6, 2))
S0, S1 = np.diag([1.0, 2.0]), np.array([[2.0, 0.5], [0.5, 1.0]])


@pytest.mark.parametrize("name, call", [
    ("rtol", lambda: schatten_lmo(G, 2, rtol="a")),
    ("rtol", lambda: schatten_lmo(G, 2, rtol=NAN)),
    ("max_iter", lambda: schatten_lmo(G, 2, method="fast", max_iter=-1)),
    ("max_iter", lambda: polar_factor(G, max_iter=1.5)),
    ("rtol", lambda: particle_lmo(G, None, 2, rtol=NAN)),
    ("p", lambda: dual_exponent(0.2)),
    ("S", lambda: gauge_value(np.diag([1.0, -1.0]), 2)),
    ("S", lambda: gauge_value(np.ones((2, 3)), 2)),
    ("p", lambda: gauge_value(np.eye(2), 0.1)),
    ("S_bar", lambda: gaussian_kl(np.zeros(2), S0, np.zeros(2), np.diag([1.0, 0.0]))),
    ("m", lambda: gaussian_kl(np.zeros(3), S0, np.zeros(2), S1)),
    ("p", lambda: gaussian_kl_rhs(np.zeros(2), S0, np.ones(2), S1, 0.2)),
    ("alpha", lambda: rank_loss_threshold(2, NAN)),
    ("p", lambda: modal_rhs(np.ones(2), np.ones(2), np.ones(2), 0.2)),
    ("r0", lambda: modal_flow([NAN], [1.0], [1.0], 2, T=1, dt=0.1)),
    ("a", lambda: modal_invariant(NAN, 1.0, 2)),
    ("plan", lambda: interpolation_action(X, Y, np.ones((5, 5)), 2)),
    ("plan", lambda: interpolation_action(X, Y, -np.ones((5, 6)), 2)),
    ("plan", lambda: displacement_interpolation(X, Y, -np.ones((5, 6)), 0.5)),
    ("x", lambda: sphere_velocity(np.zeros((2, 2)), np.ones((2, 2)))),
])
def test_bad_input_names_argument(name, call):
    with pytest.raises(InputError, match=f"^{name}"):
        call()


def test_optimizer_bad_options():
    prm = [torch.nn.Parameter(torch.zeros(2, 2))]
    for kw, name in [(dict(momentum=NAN), "momentum"), (dict(momentum="a"), "momentum"),
                     (dict(weight_decay=NAN), "weight_decay"), (dict(eps=-1.0), "eps"),
                     (dict(nesterov="yes"), "nesterov"),
                     (dict(ns_coefficients=(NAN, 1.0, 1.0)), "ns_coefficients")]:
        with pytest.raises(InputError, match=f"^{name}"):
            Schatten(prm, lr=0.1, **kw)


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_gauge_value_numpy_and_torch(p):
    A = np.random.default_rng(3).normal(size=(3, 3))
    S = A @ A.T
    ev = np.linalg.eigvalsh(S)
    ref = ev.max() if math.isinf(p) else (ev ** p).sum() ** (1 / p)
    v = gauge_value(S, p)
    assert isinstance(v, float) and v == pytest.approx(ref)
    St = torch.tensor(S, dtype=torch.float32, requires_grad=True)
    vt = gauge_value(St, p)
    assert isinstance(vt, torch.Tensor) and vt.dtype == torch.float32
    vt.backward()
    assert St.grad is not None and torch.isfinite(St.grad).all()


def test_gaussian_kl_numpy_matches_torch_and_closed_form():
    m, mb = np.array([1.0, -1.0]), np.zeros(2)
    k = gaussian_kl(m, S0, mb, S1)
    Sbi = np.linalg.inv(S1)
    ref = 0.5 * (np.trace(Sbi @ S0) + m @ Sbi @ m - 2 + np.log(np.linalg.det(S1) / np.linalg.det(S0)))
    assert isinstance(k, float) and k == pytest.approx(ref)
    kt = gaussian_kl(torch.tensor(m), torch.tensor(S0), torch.tensor(mb), torch.tensor(S1))
    assert isinstance(kt, torch.Tensor) and float(kt) == pytest.approx(ref)
    dm, dS = gaussian_kl_rhs(m, S0, mb, S1, 2)
    assert isinstance(dm, np.ndarray) and dS.shape == (2, 2)


@pytest.mark.parametrize("p", [2, math.inf])
def test_spectral_bures_general_gradient_matches_finite_differences(p):
    from measureflow.spectral import spectral_bures

    g = torch.Generator().manual_seed(0)
    A, B, E = (torch.randn(3, 3, generator=g, dtype=torch.float64) for _ in range(3))
    S0 = A @ A.T + 0.5 * torch.eye(3, dtype=torch.float64)
    S1 = B @ B.T + 0.5 * torch.eye(3, dtype=torch.float64)
    E = E + E.T
    m1 = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    S0r, m1r = S0.clone().requires_grad_(True), m1.clone().requires_grad_(True)
    spectral_bures(S0r, S1, p, m1=m1r, method="maxmin", tol=1e-9).backward()

    def f(S, m):
        return float(spectral_bures(S, S1, p, m1=m, method="maxmin", tol=1e-9))

    h = 1e-3
    fd_S = (f(S0 + h * E, m1) - f(S0 - h * E, m1)) / (2 * h)
    e = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    fd_m = (f(S0, m1 + h * e) - f(S0, m1 - h * e)) / (2 * h)
    assert float((S0r.grad * E).sum()) == pytest.approx(fd_S, rel=1e-3)
    assert float(m1r.grad[0]) == pytest.approx(fd_m, rel=1e-3)


# ---- issue 16: hardening of the spectral flows and distances ---------------------------------


def test_gaussian_kl_rhs_at_p_one_half_is_the_finite_limit():
    m, S = np.array([0.5, -0.2]), np.array([[1.5, 0.3], [0.3, 0.6]])
    mb, Sb = np.zeros(2), np.array([[1.0, -0.2], [-0.2, 0.8]])
    dm, dS = gaussian_kl_rhs(m, S, mb, Sb, 0.5)
    assert np.all(np.isfinite(dm)) and np.all(np.isfinite(dS))
    # continuity in p: the p -> 1/2 limit (projector on the top force eigenspace)
    dm2, dS2 = gaussian_kl_rhs(m, S, mb, Sb, 0.5 + 1e-9)
    assert np.allclose(dm, dm2, atol=1e-6) and np.allclose(dS, dS2, atol=1e-6)
    # KL decreases along the p = 1/2 flow
    from measureflow.spectral.flows import gaussian_kl_flow
    r = gaussian_kl_flow(m, S, mb, Sb, 0.5, T=0.5, dt=0.05)
    assert np.all(np.diff(r.kl) < 0)


def test_huge_p_is_the_p_inf_limit():
    assert dual_exponent(1e308) == 1.0
    J = schatten_lmo(G, 1e308)
    assert np.all(np.isfinite(J)) and np.allclose(J, schatten_lmo(G, math.inf), atol=1e-12)
    assert modal_invariant(0.3, 0.7, 1e308) == pytest.approx(modal_invariant(0.3, 0.7, math.inf))


def test_displacement_moment_rejects_a_negative_plan():
    from measureflow.spectral import displacement_moment
    x, y = np.zeros((2, 2)), np.ones((3, 2))
    P = np.full((2, 3), 1 / 6)
    assert np.allclose(displacement_moment(x, y, P), np.ones((2, 2)))
    P[0, 0] = -0.1
    with pytest.raises(InputError, match="^plan"):
        displacement_moment(x, y, P)


def test_spectral_bures_primal_honours_max_iter():
    from measureflow.core import ConvergenceWarning
    from measureflow.spectral import spectral_bures
    S0 = np.array([[2.0, 0.3], [0.3, 1.0]])
    S1 = np.array([[1.0, -0.4], [-0.4, 0.7]])
    with pytest.warns(ConvergenceWarning):
        r = spectral_bures(S0, S1, math.inf, np.zeros(2), np.ones(2), method="primal",
                           max_iter=2, full_output=True)
    assert not r.converged and r.n_iter == 2 and len(r.errors) == 2


def test_modal_functions_validate():
    with pytest.raises(InputError, match="^a"):
        modal_rhs(np.ones(3), np.ones(2), np.ones(3), 2.0)
    with pytest.raises(InputError, match="^b"):
        modal_rhs(np.ones(3), -np.ones(3), np.ones(3), 2.0)
    with pytest.raises(InputError, match="^beta"):
        modal_rhs(np.ones(3), np.ones(3), [NAN, 0, 0], 2.0)
    with pytest.raises(InputError, match="^a"):
        modal_rhs(np.ones((2, 0)), np.ones((2, 0)), np.ones((2, 0)), 2.0)
    with pytest.raises(InputError, match="^record_every"):
        modal_flow(0.0, 1.0, 1.0, 2.0, T=1.0, dt=0.1, record_every=0)
    with pytest.raises(InputError, match="^r0"):
        modal_flow(np.zeros(2), np.ones(3), 1.0, 2.0, T=1.0, dt=0.1)
    with pytest.raises(InputError, match="^b"):
        modal_invariant(np.ones(2), np.ones(3), 2.0)
    with pytest.raises(InputError, match="^a"):
        modal_rhs("abc", 1.0, 1.0, 2.0)
