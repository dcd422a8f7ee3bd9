"""Streamed point-cloud Sinkhorn (ot.sinkhorn_points) vs the dense ot.solve."""

import numpy as np
import pytest
import torch

import measureflow.ot as ot
from _tol import tol_sum
from measureflow import InputError
from measureflow.core.linalg import sqdist


def _clouds(n=23, m=17, d=2, seed=0):
    r = np.random.default_rng(seed)
    x, y = r.normal(size=(n, d)), r.normal(size=(m, d)) + 0.5
    a, b = r.uniform(0.5, 1.5, n), r.uniform(0.5, 1.5, m)
    return x, y, a / a.sum(), b / b.sum()


@pytest.mark.parametrize("rho", [None, 0.7, (float("inf"), 0.5)])
@pytest.mark.parametrize("chunk", [5, 16, None])
def test_matches_dense_solve(rho, chunk):
    x, y, a, b = _clouds()
    C = sqdist(torch.tensor(x), torch.tensor(y)).numpy()
    d = ot.solve(a, b, C, eps=0.2, rho=rho, tol=1e-10)
    lz = ot.sinkhorn_points(x, y, a, b, eps=0.2, rho=rho, tol=1e-10, chunk=chunk)
    assert lz.plan is None and lz.converged and lz.method == "sinkhorn_points"
    assert isinstance(lz.value, float) or np.ndim(lz.value) == 0
    np.testing.assert_allclose(lz.value, d.value, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(lz.linear_cost, d.linear_cost, rtol=1e-7, atol=1e-10)
    P = np.vstack([ot.plan_block(lz, x, y, a, b, i0=i, i1=min(i + 6, 23)) for i in range(0, 23, 6)])
    np.testing.assert_allclose(P, d.plan, atol=1e-9)
    # potentials: unique for unbalanced, up to (f + c, g - c) when balanced
    shift = 0.0 if rho is not None else np.mean(lz.potential_f - d.potential_f)
    np.testing.assert_allclose(lz.potential_f - shift, d.potential_f, atol=1e-6)
    np.testing.assert_allclose(lz.potential_g + shift, d.potential_g, atol=1e-6)
    v = np.random.default_rng(1).normal(size=(17, 3))
    np.testing.assert_allclose(ot.lazy_plan_apply(lz, x, y, v, a, b, chunk=4), d.plan @ v,
                               atol=1e-9)
    w = np.arange(23.0)
    np.testing.assert_allclose(ot.lazy_plan_apply(lz, x, y, w, a, b, transpose=True),
                               d.plan.T @ w, atol=1e-9)


def test_uniform_defaults_and_eps_scaling_off(dtype):
    x, y, _, _ = _clouds(n=11, m=13, d=3)
    x, y = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    C = sqdist(x, y)
    d = ot.solve(None, None, C, eps=0.3, eps_scaling=None)
    lz = ot.sinkhorn_points(x, y, eps=0.3, eps_scaling=None, chunk=4)
    assert d.converged and lz.converged
    # Same iteration count: the marginal error falls by ~2x per iteration and crosses the
    # default tol with > 25% to spare on both sides (float64 and float32), far above the
    # round-off by which the two paths' errors differ.
    assert lz.n_iter == d.n_iter
    # Same iterates up to round-off: each half-step is a length-(<= 13) log-sum-exp of
    # exponents of size S = max C / eps (absolute error (S + m) eps per potential, not amplified
    # by the contracting fixed-point iteration beyond ~1 / (1 - 0.5) = 2): relative error on
    # the value <= 8 (S + m) eps: ~2e-13 in float64, ~1e-4 in float32 (measured 0 and 8e-8;
    # a wrong chunk boundary or a dropped block is O(1e-2) or more)
    S = float(C.max()) / 0.3
    rtol = tol_sum(S + 13, dtype, c=8)
    np.testing.assert_allclose(float(lz.value), float(d.value), rtol=rtol)


def test_torch_in_out_and_gradients_match_dense():
    x, y, a, b = (torch.tensor(t, requires_grad=True) for t in _clouds(n=9, m=8))
    for rho in [None, 1.0]:
        lz = ot.sinkhorn_points(x, y, a, b, eps=0.1, rho=rho, tol=1e-12, chunk=3)
        assert isinstance(lz.value, torch.Tensor) and lz.value.dtype == torch.float64
        assert isinstance(lz.potential_f, torch.Tensor)
        gl = torch.autograd.grad(lz.value, (x, y, a, b))
        d = ot.solve(a, b, sqdist(x, y), eps=0.1, rho=rho, tol=1e-12)
        gd = torch.autograd.grad(d.value, (x, y, a, b))
        for u, w in zip(gl, gd):
            torch.testing.assert_close(u, w, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("rho", [None, 2.0])
def test_gradcheck(rho):
    x, y, _, _ = _clouds(n=5, m=4, seed=3)
    x = torch.tensor(x, requires_grad=True)
    y = torch.tensor(y, requires_grad=True)
    b = torch.full((4,), 0.25, dtype=torch.float64, requires_grad=True)
    a = torch.full((5,), 0.2, dtype=torch.float64, requires_grad=rho is not None)

    def value(x, y, a, b):
        return ot.sinkhorn_points(x, y, a, b, eps=0.5, rho=rho, tol=1e-12, chunk=3).value

    inputs = (x, y, a, b) if rho is not None else (x, y)
    fn = value if rho is not None else (lambda x, y: value(x, y, a.detach(), b.detach()))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_not_converged_warns():
    x, y, _, _ = _clouds()
    with pytest.warns(Warning):
        res = ot.sinkhorn_points(x, y, eps=0.01, max_iter=3)
    assert not res.converged and res.n_iter == 3


def test_bad_input():
    x, y, a, b = _clouds()
    with pytest.raises(InputError, match="^eps"):
        ot.sinkhorn_points(x, y, eps=0.0)
    with pytest.raises(InputError, match="^x, y"):
        ot.sinkhorn_points(x, y[:, :1], eps=0.1)
    with pytest.raises(InputError, match="^a"):
        ot.sinkhorn_points(x, y, -a, b, eps=0.1)
    with pytest.raises(InputError, match="^a, b|^a|^b"):
        ot.sinkhorn_points(x, y, a, 2 * b, eps=0.1)
    with pytest.raises(InputError, match="^chunk"):
        ot.sinkhorn_points(x, y, eps=0.1, chunk=0)
    with pytest.raises(InputError, match="^x"):
        ot.sinkhorn_points(np.full((3, 2), np.nan), y, eps=0.1)
    with pytest.raises(InputError, match="^rho"):
        ot.sinkhorn_points(x, y, eps=0.1, rho=-1.0)
    with pytest.raises(InputError, match="^eps_scaling"):
        ot.sinkhorn_points(x, y, eps=0.1, eps_scaling="fast")
    res = ot.sinkhorn_points(x, y, eps=0.5)
    with pytest.raises(InputError, match="^v"):
        ot.lazy_plan_apply(res, x, y, np.ones(5))
    with pytest.raises(InputError, match="^i1"):
        ot.plan_block(res, x, y, i0=5, i1=3)
