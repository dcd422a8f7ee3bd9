"""The ODE stepper and particle driver of ``measureflow.ot.integrate``.

Orders measured on a linear ODE with a closed form; adaptive step against its tolerance;
projections; tuples; float32; blow-up; and every ported flow against the outputs of the
hand-written integrators it replaced (``integrator_refs.npz``, see ``integrator_cases.py``).
"""

import importlib.util
import math
import pathlib
import warnings

import numpy as np
import pytest
import torch

from _tol import tol_sum
from measureflow import InputError
from measureflow.core import ConvergenceWarning
from measureflow.ot import ODEResult, ParticleFlow, ode_step, odeint
from measureflow.ot.integrate import (
    autograd_force,
    project_nonnegative,
    project_psd,
    project_sphere,
    sphere_tangent,
)

D64 = torch.float64
HERE = pathlib.Path(__file__).parent

# y' = A y: a damped rotation, y(t) = expm(t A) y0
A = torch.tensor([[-0.3, 1.2], [-1.0, -0.5]], dtype=D64)
Y0 = torch.tensor([1.0, -0.4], dtype=D64)


def _exact(t, dtype=D64):
    return (torch.linalg.matrix_exp(t * A) @ Y0).to(dtype)


def _slope(ns, errs):
    return float(np.polyfit(np.log(ns), np.log(errs), 1)[0])


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_order_of_convergence_on_linear_ode(method, order):
    ns = np.array([8, 16, 32, 64])
    errs = []
    for n in ns:
        res = odeint(lambda t, y: A @ y, Y0, T=2.0, n_steps=int(n), method=method)
        errs.append(float((res.final - _exact(2.0)).norm()))
    # global error C h^order: the fitted log-log slope is -order (pre-asymptotic bias < 0.2)
    assert _slope(ns, errs) == pytest.approx(-order, abs=0.2)


def test_tuple_state_equals_tensor_state_and_time_dependent_rhs():
    def rhs_vec(t, y):
        return A @ y + math.sin(t)

    def rhs_tuple(t, y):
        v = rhs_vec(t, torch.stack([y[0], y[1]]))
        return v[0], v[1]

    for method in ("euler", "rk4"):
        r1 = odeint(rhs_vec, Y0, step=0.1, n_steps=12, method=method)
        r2 = odeint(rhs_tuple, (Y0[0], Y0[1]), step=0.1, n_steps=12, method=method)
        assert isinstance(r2.final, tuple) and isinstance(r2.trajectory, tuple)
        # same stages, per component instead of vectorised: a kernel may fuse y + h k into an
        # FMA on one path only, so allow a few roundings per stage: 12 steps x 4 stages x eps x 4
        # on O(1) states (~4e-14; a wrong stage weight is O(h) = 0.1)
        atol = 4 * tol_sum(12 * 4)
        assert torch.allclose(r1.trajectory[:, 0], r2.trajectory[0], rtol=0, atol=atol)
        assert torch.allclose(r1.trajectory[:, 1], r2.trajectory[1], rtol=0, atol=atol)
    # explicit Euler by hand, with the time argument
    y, t = Y0.clone(), 0.0
    for _ in range(12):
        y = y + 0.1 * rhs_vec(t, y)
        t += 0.1
    assert torch.allclose(odeint(rhs_vec, Y0, step=0.1, n_steps=12, method="euler").final, y,
                          rtol=1e-14, atol=0)


@pytest.mark.parametrize("rtol", [1e-4, 1e-6, 1e-9])
def test_adaptive_step_meets_its_tolerance(rtol):
    res = odeint(lambda t, y: A @ y, Y0, T=5.0, method="dopri5", rtol=rtol, atol=rtol * 1e-3)
    assert res.status == "final_time" and res.converged
    assert float(res.times[-1]) == pytest.approx(5.0, rel=1e-14)
    # every accepted local error estimate is within tolerance; the global error of a
    # contractive problem is a small multiple of the local tolerance
    assert max(res.errors) <= 1.0
    err = float((res.final - _exact(5.0)).norm() / _exact(5.0).norm())
    assert err < 20 * rtol
    assert len(res.steps) == res.n_iter and sum(res.steps) == pytest.approx(5.0, rel=1e-12)


def test_adaptive_uses_fewer_steps_for_looser_tolerance_and_stops_at_max_iter():
    loose = odeint(lambda t, y: A @ y, Y0, T=5.0, method="dopri5", rtol=1e-3)
    tight = odeint(lambda t, y: A @ y, Y0, T=5.0, method="dopri5", rtol=1e-9)
    assert loose.n_iter < tight.n_iter
    with pytest.warns(ConvergenceWarning):
        r = odeint(lambda t, y: A @ y, Y0, T=5.0, method="dopri5", rtol=1e-9, max_iter=3)
    assert r.status == "max_iter" and not r.converged and r.n_iter == 3


def test_projection_keeps_the_constraint():
    g = torch.Generator().manual_seed(0)
    x0 = project_sphere(torch.randn(20, 3, generator=g, dtype=D64))
    B = torch.randn(3, 3, generator=g, dtype=D64)

    def vel(t, x):
        return sphere_tangent(x @ B.T, x)

    for method in ("euler", "rk4"):
        r = odeint(vel, x0, step=0.2, n_steps=15, method=method, project="sphere",
                   project_stages=True)
        assert torch.allclose(r.trajectory.norm(dim=-1), torch.ones(16, 20, dtype=D64),
                              rtol=0, atol=1e-14)
    # PSD projection: an explicit step far too long for S' = -4 S + ... leaves the cone;
    # the projection keeps every eigenvalue >= its floor
    S0 = torch.tensor([[1.0, 0.3], [0.3, 0.2]], dtype=D64)
    r = odeint(lambda t, S: -4.0 * S + 0.1 * torch.eye(2, dtype=D64), S0, step=0.6, n_steps=8,
               method="euler", project="psd")
    assert float(torch.linalg.eigvalsh(r.trajectory[1:]).min()) >= 1e-14 * (1 - 1e-12)
    assert torch.equal(r.trajectory[1:], r.trajectory[1:].transpose(-1, -2))
    # rank-loss projection of a tuple state, per component (None = no projection)
    r = odeint(lambda t, y: (-torch.ones_like(y[0]), -torch.ones_like(y[1])),
               (torch.tensor([0.25], dtype=D64), torch.tensor([0.25], dtype=D64)), step=0.1,
               n_steps=5, method="euler", project=(project_nonnegative, None))
    assert float(r.final[0]) == 0.0 and float(r.final[1]) == pytest.approx(-0.25)


def test_psd_projection_is_the_nearest_psd_matrix():
    S = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=D64)  # eigenvalues 3, -1
    P = project_psd(S, floor=0.0)
    assert torch.allclose(P, torch.tensor([[1.5, 1.5], [1.5, 1.5]], dtype=D64), atol=1e-14)


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_float32_keeps_dtype_and_reaches_its_accuracy(method, order):
    A32, y32 = A.float(), Y0.float()
    n = 64
    res = odeint(lambda t, y: A32 @ y, y32, T=2.0, n_steps=n, method=method)
    assert res.final.dtype == torch.float32 and res.times.dtype == torch.float32
    err = float((res.final.double() - _exact(2.0)).norm())
    ref = float((odeint(lambda t, y: A @ y, Y0, T=2.0, n_steps=n, method=method).final
                 - _exact(2.0)).norm())
    # float32 error = discretisation error + rounding (~ n steps x a few eps_32)
    eps32 = torch.finfo(torch.float32).eps
    assert err <= ref + 10 * n * eps32


def test_record_every_times_and_aux_without_extra_evaluations():
    calls = []

    def rhs(t, y):
        calls.append(t)
        return -y, float(y.sum())

    r = odeint(rhs, torch.ones(2, dtype=D64), step=0.1, n_steps=10, method="euler",
               record_every=3, has_aux=True,
               observe=lambda t, y: {"s": y.sum(), "t": t})
    assert r.times.tolist() == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0], abs=1e-15)
    assert r.trajectory.shape == (5, 2) and torch.equal(r.trajectory[-1], r.final)
    # aux = the rhs output at each recorded state (one extra evaluation, at the end)
    assert r.aux == pytest.approx(r.observations["s"].tolist(), rel=1e-15)
    assert r.n_eval == 11 == len(calls)
    assert r.converged and r.n_iter == 10 and r.status == "final_time"


def test_stopping_rule_callback_and_blow_up():
    r = odeint(lambda t, y: -y, torch.ones(1, dtype=D64), step=0.1, tol=1e-3, max_iter=1000,
               method="rk4", record_every=50)
    assert r.status == "converged" and r.converged
    assert r.errors[-1] <= 1e-3 < r.errors[-2]
    assert torch.equal(r.trajectory[-1], r.final)       # the stopping state is recorded
    with pytest.warns(ConvergenceWarning):
        r = odeint(lambda t, y: -y, torch.ones(1, dtype=D64), step=0.1, tol=1e-3, max_iter=5)
    assert r.status == "max_iter" and not r.converged
    with pytest.warns(ConvergenceWarning, match="stopped"):  # a stop is not convergence
        r = odeint(lambda t, y: -y, torch.ones(1, dtype=D64), step=0.1, n_steps=100,
                   callback=lambda info: info.t >= 0.5 - 1e-12)
    assert r.status == "stopped" and r.n_iter == 5 and float(r.times[-1]) == pytest.approx(0.5)
    # y' = y^2, y(0) = 1 blows up at t = 1
    with pytest.raises(FloatingPointError, match="non-finite|blowup"):
        odeint(lambda t, y: y * y, torch.ones(1, dtype=D64), step=0.01, T=2.0,
               method="rk4", blowup=1e6)
    with pytest.warns(ConvergenceWarning):
        r = odeint(lambda t, y: y * y, torch.ones(1, dtype=D64), step=0.01, T=2.0,
                   method="rk4", blowup=1e6, on_blowup="stop")
    assert r.status == "blow-up" and not r.converged
    assert 0.95 < float(r.times[-1]) < 1.05    # RK4 with h = 0.01 lags the blow-up slightly
    with pytest.warns(ConvergenceWarning):
        r = odeint(lambda t, y: y * y, torch.ones(1, dtype=D64), step=0.5, n_steps=20,
                   method="euler", on_blowup="stop")
    assert r.status == "blow-up" and bool(torch.isfinite(r.final).all())


def test_particle_flow_driver_steps_compose_and_match_odeint():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(10, 2, generator=g, dtype=D64)
    w = torch.rand(10, generator=g, dtype=D64) + 0.5

    def energy(x, wz):  # interaction energy: attraction to the weighted mean
        m = (wz[:, None] * x).sum(0) / wz.sum()
        return 0.5 * (wz * ((x - m) ** 2).sum(1)).sum()

    def vel(x, wz):
        return -autograd_force(energy, x, wz, wz)[1]

    one = ParticleFlow(vel, x0, w, method="rk4")
    res1 = one.steps(10, 0.05)
    two = ParticleFlow(vel, x0, w, method="rk4")
    two.steps(4, 0.05)
    for _ in range(6):
        two.step(0.05)
    # same step function in the same order (steps(4) + 6 x step vs steps(10)): identical
    # arithmetic, so the round-off bound is only a safety margin
    assert torch.allclose(one.positions, two.positions, rtol=0, atol=1e-14)
    assert two.t == pytest.approx(0.5) and two.n_steps == 10
    ref = odeint(lambda t, x: vel(x, w), x0, step=0.05, n_steps=10, method="rk4")
    assert torch.equal(res1.final, ref.final) and isinstance(res1, ODEResult)
    # the force of this energy is x - mean: particles contract exponentially toward the mean
    m0 = (w[:, None] * x0).sum(0) / w.sum()
    exact = m0 + (x0 - m0) * math.exp(-0.5)
    assert torch.allclose(res1.final, exact, atol=1e-7)


def test_ode_step_single_steps():
    y = torch.tensor([2.0], dtype=D64)
    assert float(ode_step(lambda t, z: -z, 0.0, y, 0.1, "euler")) == pytest.approx(1.8)
    # RK4 reproduces the degree-4 Taylor polynomial of exp(-h) on y' = -y
    h = 0.1
    taylor = 2.0 * (1 - h + h ** 2 / 2 - h ** 3 / 6 + h ** 4 / 24)
    # (RK4's four stages and the Horner-free Taylor sum round differently: ~8 roundings)
    assert float(ode_step(lambda t, z: -z, 0.0, y, h, "rk4")) == pytest.approx(taylor,
                                                                                rel=tol_sum(8))
    # Dormand-Prince (order 5): one step error O(h^6)
    assert float(ode_step(lambda t, z: -z, 0.0, y, h, "dopri5")) == pytest.approx(
        2.0 * math.exp(-h), rel=1e-8)


def test_bad_input():
    with pytest.raises(InputError, match="^method"):
        odeint(lambda t, y: y, Y0, step=0.1, n_steps=2, method="heun")
    with pytest.raises(InputError, match="^step"):
        odeint(lambda t, y: y, Y0, n_steps=2)
    with pytest.raises(InputError, match="^n_steps"):
        odeint(lambda t, y: y, Y0, step=0.1)
    with pytest.raises(InputError, match="^T"):
        odeint(lambda t, y: y, Y0, method="dopri5")
    with pytest.raises(InputError, match="^project"):
        odeint(lambda t, y: y, Y0, step=0.1, n_steps=2, project="ball")
    with pytest.raises(InputError, match="^velocity"):
        ParticleFlow(None, torch.zeros(2, 2))
    with pytest.raises(InputError, match="^energy"):
        autograd_force(lambda x: x, torch.zeros(2, 2))


def _cases():
    spec = importlib.util.spec_from_file_location("integrator_cases",
                                                  HERE / "integrator_cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CASES = _cases()


@pytest.mark.parametrize("case", CASES.CASES, ids=lambda c: c.__name__)
def test_ported_flows_reproduce_the_hand_written_integrators(case):
    """Every former caller gives the outputs of the code before the port (1e-10, float64)."""
    ref = np.load(HERE / "integrator_refs.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = {f"{case.__name__}/{k}": CASES._np(v) for k, v in case().items()}
    keys = [k for k in ref.files if k.startswith(case.__name__ + "/")]
    assert keys and sorted(keys) == sorted(out)
    for k in keys:
        a, b = ref[k], out[k]
        assert a.shape == b.shape, k
        fin = np.abs(a[np.isfinite(a)])
        scale = max(1.0, float(fin.max())) if fin.size else 1.0
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10 * scale, equal_nan=True,
                                   err_msg=k)
