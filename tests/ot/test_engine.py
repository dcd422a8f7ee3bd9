"""The transport engine: geometries x one loop x kernels (issue 17).

Invariants checked on every geometry (hypothesis): dense = on-the-fly = grid where they
overlap; OT(a, b; C) = OT(b, a; C^T); OT(C + c) = OT(C) + c mass; value and plan vs POT's
sinkhorn_log / sinkhorn_unbalanced; schedules, over-relaxation, warm starts and the
translation-invariant step change the iterations, never the solution; float32 converges with
the default tolerance at eps = 1e-2 x the cost scale; callbacks stop early.
"""

import math
import threading
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import measureflow.ot as ot
from measureflow import InputError
from measureflow.core import ConvergenceWarning
from measureflow.ot.geometry import Dense, Grid, PointCloud
from measureflow.ot.loop import (
    KL,
    Annealing,
    Direct,
    Hard,
    Scaling,
    SinkhornState,
    default_tol,
    sinkhorn_loop,
)

pot = pytest.importorskip("ot")

SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _cloud(seed, n, m, d=2):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) + 0.3
    a, b = rng.uniform(0.2, 1.0, n), rng.uniform(0.2, 1.0, m)
    return x, y, a / a.sum(), b / b.sum()


def _sq(x, y):
    return ((x[:, None] - y[None]) ** 2).sum(-1)


problems = st.tuples(st.integers(0, 10_000), st.integers(2, 9), st.integers(2, 9),
                     st.sampled_from([0.05, 0.2, 1.0]))


# ---------------------------------------------------------------------------------------------
# geometries agree where they overlap
# ---------------------------------------------------------------------------------------------

@SETTINGS
@given(problems)
def test_dense_equals_pointcloud_lse_apply_and_cost(prob):
    seed, n, m, eps = prob
    x, y, a, b = _cloud(seed, n, m)
    xt, yt = torch.tensor(x), torch.tensor(y)
    gd, gp = Dense(torch.tensor(_sq(x, y))), PointCloud(xt, yt)
    rng = np.random.default_rng(seed + 1)
    u, v = torch.tensor(rng.normal(size=n)), torch.tensor(rng.normal(size=m))
    for axis in (0, 1):
        torch.testing.assert_close(gp.lse(u, v, eps, axis), gd.lse(u, v, eps, axis),
                                   rtol=1e-12, atol=1e-12)
        w = torch.tensor(rng.normal(size=(m if axis == 1 else n, 3)))
        torch.testing.assert_close(gp.apply(u, v, eps, w, axis), gd.apply(u, v, eps, w, axis),
                                   rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gp.cost(), gd.cost(), rtol=1e-13, atol=1e-13)
    assert gp.cost_range() == pytest.approx(gd.cost_range(), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_dense_float32_reduces_through_a_float64_copy(backend):
    """A float32 cost on CPU is reduced through one float64 copy (Dense.WIDE_NUMEL): the
    reductions equal float64 log-sum-exps of the float32 entries (1e-12), along both axes, also
    for the transposed geometry, which takes over the copies instead of making new ones; a
    cost above WIDE_NUMEL keeps converting in the loop and agrees to float32 exp() rounding."""
    from measureflow.ot import kernels

    rng = np.random.default_rng(7)
    C32 = torch.tensor(rng.random((40, 30)), dtype=torch.float32)
    u, v = torch.tensor(rng.normal(size=40)), torch.tensor(rng.normal(size=30))
    C64 = C32.double()
    old = kernels.set_backend(backend)
    try:
        g = Dense(C32)
        for eps in (0.05, 1.0):
            ref1 = torch.logsumexp(u[:, None] + v[None, :] - C64 / eps, 1)
            ref0 = torch.logsumexp(u[:, None] + v[None, :] - C64 / eps, 0)
            torch.testing.assert_close(g.lse(u, v, eps, 1), ref1, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(g.lse(u, v, eps, 0), ref0, rtol=1e-12, atol=1e-12)
        assert g._Cw is not None and g._Cw.dtype == torch.float64 and g._Cw.is_contiguous()
        t = g.transpose()
        assert t._CT is g._Cw  # handed over, not copied
        torch.testing.assert_close(t.lse(v, u, 0.05, 1), g.lse(u, v, 0.05, 0), rtol=1e-12,
                                   atol=1e-12)
        assert t._Cw is not None and t._Cw.dtype == torch.float64
        narrow = Dense(C32)
        narrow.WIDE_NUMEL = 10  # instance override: this cost is "too large" to copy
        out = narrow.lse(u, v, 0.05, 1)
        assert narrow._Cw is None
        # exp() in float32 here: relative error of each term ~ 6e-8, of the log-sum ~ 1e-7
        torch.testing.assert_close(out, torch.logsumexp(u[:, None] + v[None, :] - C64 / 0.05,
                                                        1), rtol=1e-6, atol=1e-6)
    finally:
        kernels.set_backend(old)


@pytest.mark.parametrize("path", ["stored", "streamed", "compiled"])
def test_pointcloud_paths_agree(path):
    """A PointCloud's three evaluation paths give the same reductions (1e-12, float64): the
    stored cost matrix (eager, <= DENSE_NUMEL entries), the streamed cost blocks (eager,
    ``block_rows`` set, or above DENSE_NUMEL) and the compiled kernel (cost inside the
    reduction), against the Dense geometry of the same cost."""
    from measureflow.ot import kernels

    x, y, a, b = _cloud(3, 40, 30)
    xt, yt = torch.tensor(x), torch.tensor(y)
    gd, gp = Dense(torch.tensor(_sq(x, y))), PointCloud(xt, yt)
    if path == "streamed":
        gp.block_rows = 7
    old = kernels.set_backend("compiled" if path == "compiled" else "eager")
    try:
        rng = np.random.default_rng(4)
        u, v = torch.tensor(rng.normal(size=40)), torch.tensor(rng.normal(size=30))
        for eps in (0.05, 1.0):
            for axis in (0, 1):
                torch.testing.assert_close(gp.lse(u, v, eps, axis), gd.lse(u, v, eps, axis),
                                           rtol=1e-12, atol=1e-12)
                w = torch.tensor(rng.normal(size=(30 if axis == 1 else 40, 2)))
                torch.testing.assert_close(gp.apply(u, v, eps, w, axis),
                                           gd.apply(u, v, eps, w, axis), rtol=1e-12,
                                           atol=1e-12)
        assert (gp._C is not None) == (path == "stored")  # which path ran
        r = ot.sinkhorn_points(xt, yt, torch.tensor(a), torch.tensor(b), eps=0.1)
        ref = pot.sinkhorn(a, b, _sq(x, y), 0.1, method="sinkhorn_log", numItermax=10_000,
                           stopThr=1e-12)
        np.testing.assert_allclose(r.dense_plan().numpy(), ref, atol=1e-8)
    finally:
        kernels.set_backend(old)


@pytest.mark.parametrize("shape", [(7,), (4, 5)])
def test_grid_equals_dense_on_its_points(shape):
    axes = [torch.linspace(0.0, 1.0, k, dtype=torch.float64) ** 1.3 for k in shape]
    grid = Grid(axes)
    pts = grid.points()
    dense = Dense(torch.tensor(_sq(pts.numpy(), pts.numpy())))
    rng = np.random.default_rng(0)
    u = torch.tensor(rng.normal(size=shape))
    v = torch.tensor(rng.normal(size=shape))
    for eps in (0.05, 0.5):
        for axis in (0, 1):
            out = grid.lse(u, v, eps, axis).reshape(-1)
            ref = dense.lse(u.reshape(-1), v.reshape(-1), eps, axis)
            torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        w = torch.tensor(rng.random(shape))
        torch.testing.assert_close(grid.apply(u, v, eps, w).reshape(-1),
                                   dense.apply(u.reshape(-1), v.reshape(-1), eps, w.reshape(-1)),
                                   rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grid.linear_cost(u, v, eps),
                                   dense.linear_cost(u.reshape(-1), v.reshape(-1), eps),
                                   rtol=1e-12, atol=1e-14)


def test_pointcloud_callable_cost_equals_power_cost():
    x, y, a, b = _cloud(3, 11, 9, d=3)
    ref = ot.sinkhorn_points(x, y, a, b, eps=0.3, cost=1.5, tol=1e-11)
    fn = ot.sinkhorn_points(x, y, a, b, eps=0.3, tol=1e-11,
                            cost=lambda xb, yb: torch.cdist(xb, yb) ** 1.5)
    assert fn.value == pytest.approx(ref.value, rel=1e-10)
    dense = ot.solve(a, b, ot.dist(x, y, 1.5), eps=0.3, tol=1e-11)
    assert dense.value == pytest.approx(ref.value, rel=1e-10)
    np.testing.assert_allclose(ref.dense_plan(), dense.plan, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# invariances of the solution
# ---------------------------------------------------------------------------------------------

@SETTINGS
@given(problems, st.sampled_from([None, 0.5, (math.inf, 0.7)]))
def test_transpose_and_constant_shift(prob, rho):
    seed, n, m, eps = prob
    x, y, a, b = _cloud(seed, n, m)
    C = _sq(x, y)
    r = ot.solve(a, b, C, eps=eps, rho=rho, tol=1e-11, max_iter=100_000)
    rho_t = rho[::-1] if isinstance(rho, tuple) else rho
    rt = ot.solve(b, a, C.T, eps=eps, rho=rho_t, tol=1e-11, max_iter=100_000)
    assert rt.value == pytest.approx(r.value, rel=1e-9, abs=1e-11)
    np.testing.assert_allclose(rt.plan, r.plan.T, atol=1e-10)
    if rho is None:  # balanced: OT(C + c) = OT(C) + c (probability weights), same plan
        rs = ot.solve(a, b, C + 2.5, eps=eps, tol=1e-11, max_iter=100_000)
        assert rs.value == pytest.approx(r.value + 2.5, rel=1e-10)
        np.testing.assert_allclose(rs.plan, r.plan, atol=1e-10)


@SETTINGS
@given(problems)
def test_matches_pot_sinkhorn_log_and_unbalanced(prob):
    seed, n, m, eps = prob
    x, y, a, b = _cloud(seed, n, m)
    C = _sq(x, y)
    r = ot.solve(a, b, C, eps=eps, tol=1e-12, max_iter=100_000)
    P = pot.sinkhorn(a, b, C, eps, method="sinkhorn_log", stopThr=1e-14, numItermax=200_000)
    np.testing.assert_allclose(r.plan, P, atol=1e-10)
    ru = ot.solve(a, 1.5 * b, C, eps=eps, rho=0.7, tol=1e-12, max_iter=100_000)
    Pu = pot.sinkhorn_unbalanced(a, 1.5 * b, C, eps, 0.7, stopThr=1e-15, numItermax=200_000,
                                 method="sinkhorn", reg_type="kl")
    np.testing.assert_allclose(ru.plan, Pu, atol=1e-10)


@pytest.mark.parametrize("schedule, relax", [
    (Direct(), "auto"), (Scaling(0.5), None), (Scaling(0.3, stage_iter=5), "auto"),
    (Annealing(0.81), "auto"), (Annealing(0.5), 1.5), (Direct(), 1.8)])
def test_schedules_and_relaxation_reach_the_same_plan(schedule, relax):
    x, y, a, b = _cloud(11, 30, 25)
    C = _sq(x, y)
    ref = ot.solve(a, b, C, eps=0.05, tol=1e-12, eps_scaling=None, relax=None, max_iter=100_000)
    r = ot.solve(a, b, C, eps=0.05, tol=1e-12, eps_scaling=schedule, relax=relax,
                 max_iter=100_000)
    assert r.converged
    np.testing.assert_allclose(r.plan, ref.plan, atol=1e-11)
    assert r.value == pytest.approx(ref.value, rel=1e-11)
    # the reported error is that of the returned pair (re-measured here)
    P = r.plan
    viol = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    assert viol <= 1e-12 * 1.01 + 1e-15 and abs(viol - r.errors[-1]) < 1e-13


def test_relaxation_cuts_iterations():
    x, y, a, b = _cloud(1, 40, 40, d=3)
    C = _sq(x, y)
    eps = 0.01 * C.mean()
    plain = ot.solve(a, b, C, eps=eps, tol=1e-8, relax=None, eps_scaling=None)
    fast = ot.solve(a, b, C, eps=eps, tol=1e-8, relax="auto", eps_scaling=None)
    assert plain.converged and fast.converged
    assert fast.n_iter < 0.6 * plain.n_iter


def test_translation_invariant_step_same_solution():
    x, y, a, b = _cloud(2, 20, 15)
    C = _sq(x, y)
    for rho in (0.05, 1.0, (math.inf, 0.2)):
        r0 = ot.solve(a, 2 * b if not isinstance(rho, tuple) else 1.3 * b, C, eps=0.1, rho=rho,
                      tol=1e-12, max_iter=100_000)
        r1 = ot.solve(a, 2 * b if not isinstance(rho, tuple) else 1.3 * b, C, eps=0.1, rho=rho,
                      tol=1e-12, max_iter=100_000, recenter=True)
        assert r1.converged
        np.testing.assert_allclose(r1.plan, r0.plan, atol=1e-11)
        np.testing.assert_allclose(r1.potential_f, r0.potential_f, atol=1e-9)
        assert r1.value == pytest.approx(r0.value, rel=1e-10)


def test_warm_start_converges_at_once():
    x, y, a, b = _cloud(4, 25, 20)
    C = _sq(x, y)
    r = ot.solve(a, b, C, eps=0.05, tol=1e-11)
    w = ot.solve(a, b, C, eps=0.05, tol=1e-11, init=(r.potential_f, r.potential_g))
    assert w.n_iter <= 2 and w.converged
    lz = ot.sinkhorn_points(x, y, a, b, eps=0.05, tol=1e-11,
                            init=(r.potential_f, r.potential_g))
    assert lz.n_iter <= 2


# ---------------------------------------------------------------------------------------------
# float32, default tolerance, mixed precision
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("geometry", ["dense", "points"])
def test_float32_converges_by_default_at_small_eps(geometry):
    rng = np.random.default_rng(0)
    x, y = rng.random((300, 3)), rng.random((280, 3))
    C = _sq(x, y)
    eps = 1e-2 * float(C.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        if geometry == "dense":
            r = ot.solve(None, None, torch.tensor(C, dtype=torch.float32), eps=eps)
        else:
            r = ot.sinkhorn_points(torch.tensor(x, dtype=torch.float32),
                                   torch.tensor(y, dtype=torch.float32), eps=eps)
    assert r.converged and r.potential_f.dtype == torch.float32
    assert r.errors[-1] <= default_tol(torch.float32, 1.0)
    ref = ot.solve(None, None, C, eps=eps, tol=1e-10)
    assert float(r.value) == pytest.approx(ref.value, rel=1e-5)
    # the marginals re-measured in float64 from the returned float32 potentials
    f, g = r.potential_f.double().numpy(), r.potential_g.double().numpy()
    P = np.exp((f[:, None] + g[None] - C) / eps) / (300 * 280)
    viol = np.abs(P.sum(1) - 1 / 300).sum() + np.abs(P.sum(0) - 1 / 280).sum()
    assert viol <= 3 * default_tol(torch.float32, 1.0)


def test_float32_divergence_default_is_accurate():
    rng = np.random.default_rng(3)
    x, y = rng.random((200, 2)), rng.random((150, 2)) * 0.5 + 0.2
    s32 = ot.sinkhorn_divergence(torch.tensor(x, dtype=torch.float32),
                                 torch.tensor(y, dtype=torch.float32), eps=2 * 0.05 ** 2)
    s64 = ot.sinkhorn_divergence(x, y, eps=2 * 0.05 ** 2, tol=1e-11)
    assert s32.dtype == torch.float32
    assert float(s32) == pytest.approx(s64, rel=1e-4)


# ---------------------------------------------------------------------------------------------
# callback, verbose, results
# ---------------------------------------------------------------------------------------------

def test_callback_sees_states_and_stops_early():
    x, y, a, b = _cloud(5, 20, 15)
    C = _sq(x, y)
    seen = []

    def cb(state):
        assert isinstance(state, SinkhornState)
        seen.append((state.iteration, state.error, state.eps))
        f, g = state.potentials
        assert f.shape == (20,) and g.shape == (15,)
        return state.iteration >= 5

    with pytest.warns(ConvergenceWarning, match="stopped by callback"):
        r = ot.solve(a, b, C, eps=0.01, tol=1e-14, callback=cb, eps_scaling=None)
    assert r.n_iter == 5 and not r.converged and len(seen) == 5
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5] and r.errors[-1] == seen[-1][1]
    # a callback returning None never stops; labels of the divergence's three solves
    labels = set()
    ot.sinkhorn_divergence(x, y, eps=0.5, callback=lambda s: labels.add(s.label))
    assert labels == {"xy", "xx", "yy"}
    steps = []
    ot.jko(np.ones(12), tau=0.05, n_steps=2, callback=lambda s: steps.append(s.label))
    assert {"step 1", "step 2"} <= set(steps)
    its = []
    ot.barycenter(np.stack([a[:15] / a[:15].sum(), b]), cost=_sq(x[:15], y), eps=0.5,
                  callback=lambda s: its.append(s.iteration))
    assert its[:3] == [1, 2, 3]
    with pytest.raises(InputError, match="^callback"):
        ot.solve(a, b, C, eps=0.1, callback=3)


def test_verbose_progress_bar(capsys):
    x, y, a, b = _cloud(6, 10, 8)
    ot.sinkhorn_points(x, y, a, b, eps=0.2, verbose=True)
    err = capsys.readouterr().err
    assert "sinkhorn_points" in err and "err" in err


def test_result_methods_and_inputs_kept():
    x, y, a, b = _cloud(7, 13, 9)
    C = _sq(x, y)
    r = ot.solve(a, b, C, eps=0.1, tol=1e-12)
    lz = ot.sinkhorn_points(x, y, a, b, eps=0.1, tol=1e-12, chunk=4)
    v = np.arange(9.0)
    for res in (r, lz):
        np.testing.assert_allclose(res.apply(v), r.plan @ v, atol=1e-12)
        np.testing.assert_allclose(res.apply(np.ones((13, 2)), axis=0), r.plan.T @ np.ones((13, 2)),
                                   atol=1e-12)
        rows, cols = res.marginals()
        np.testing.assert_allclose(rows, r.plan.sum(1), atol=1e-12)
        np.testing.assert_allclose(cols, b, atol=1e-10)
        np.testing.assert_allclose(res.plan_block(2, 5, 1, 4), r.plan[2:5, 1:4], atol=1e-14)
        assert isinstance(res.apply(v), np.ndarray)
    np.testing.assert_allclose(lz.dense_plan(), r.plan, atol=1e-12)
    ex = ot.solve(a, b, C)
    np.testing.assert_allclose(ex.apply(v), ex.plan @ v)
    assert ex.n_iter == 1
    # torch in -> torch out
    rt = ot.solve(torch.tensor(a), torch.tensor(b), torch.tensor(C), eps=0.1)
    assert isinstance(rt.apply(torch.tensor(v)), torch.Tensor)
    # plan blocks for other weights than the solve's are refused (the result keeps its inputs)
    with pytest.raises(InputError, match="^a"):
        ot.plan_block(lz, x, y, np.full(13, 1 / 13), b)
    with pytest.raises(InputError, match="^x"):
        ot.lazy_plan_apply(lz, x + 1, y, v, a, b)
    np.testing.assert_allclose(ot.plan_block(lz, i0=0, i1=3), r.plan[:3], atol=1e-12)
    with pytest.raises(InputError, match="^axis"):
        r.apply(v, axis=2)
    with pytest.raises(InputError, match="^i1"):
        r.plan_block(5, 3)


def test_short_reprs():
    C = np.random.default_rng(0).random((6, 6))
    for res in (ot.solve(None, None, C), ot.solve(None, None, C, eps=0.1),
                ot.barycenter(np.full((2, 6), 1 / 6), cost=C, eps=0.5),
                ot.jko(np.ones(6), tau=0.1, n_steps=1)):
        text = repr(res)
        assert len(text) < 600 and "converged=" in text and "n_iter=" in text
        assert "array(" not in text and "tensor(" not in text


# ---------------------------------------------------------------------------------------------
# public faces: POT habits, ot.dist, validated helpers
# ---------------------------------------------------------------------------------------------

def test_pot_habits_get_pointed_to_measureflow_spelling():
    x, y, a, b = _cloud(8, 5, 4)
    C = _sq(x, y)
    with pytest.raises(InputError, match="^reg: .*eps="):
        ot.solve(a, b, C, reg=0.1)
    with pytest.raises(InputError, match="^method: .*eps"):
        ot.solve(a, b, C, method="sinkhorn")
    with pytest.raises(InputError, match="^a: empty weights"):
        ot.solve([], [], C)
    with pytest.raises(InputError, match=r"^a: got a 2-D first argument.*solve\(a, b, C\)"):
        ot.solve(C, a, b)
    with pytest.raises(InputError, match="^numItermax: .*max_iter"):
        ot.sinkhorn_points(x, y, eps=0.1, numItermax=10)
    with pytest.raises(InputError, match="^blur: .*eps"):
        ot.sinkhorn_divergence(x, y, blur=0.1)


def test_dist_matches_scipy_and_keeps_array_kind():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)) + 1e3, rng.normal(size=(5, 3)) + 1e3
    np.testing.assert_allclose(ot.dist(x, y), cdist(x, y, "sqeuclidean"), rtol=1e-12)
    np.testing.assert_allclose(ot.dist(x, y, "euclidean"), cdist(x, y), rtol=1e-12)
    np.testing.assert_allclose(ot.dist(x, y, 3), cdist(x, y) ** 3, rtol=1e-12)
    assert np.all(np.diag(ot.dist(x)) == 0)
    xt = torch.tensor(x[:, :2], dtype=torch.float32, requires_grad=True)
    D = ot.dist(xt, torch.zeros(1, 2))
    assert isinstance(D, torch.Tensor) and D.dtype == torch.float32
    (g,) = torch.autograd.grad(D.sum(), xt)
    torch.testing.assert_close(g, 2 * xt.detach())
    with pytest.raises(InputError, match="^metric"):
        ot.dist(x, y, "cosine")
    with pytest.raises(InputError, match="^x, y"):
        ot.dist(x, y[:, :2])
    from measureflow.core.linalg import sqdist

    np.testing.assert_allclose(sqdist(x - 1e3, y - 1e3), cdist(x - 1e3, y - 1e3, "sqeuclidean"),
                               atol=1e-12)


def test_entropic_dual_value_and_jko_edge_inputs():
    x, y, a, b = _cloud(9, 6, 5)
    C = _sq(x, y)
    r = ot.solve(a, b, C, eps=0.2, tol=1e-12)
    v = ot.entropic_dual_value(a, b, C, r.potential_f, r.potential_g, 0.2)
    assert isinstance(v, float) and v == pytest.approx(r.value, rel=1e-12)
    with pytest.raises(InputError, match="^eps"):
        ot.entropic_dual_value(a, b, C, r.potential_f, r.potential_g, -1.0)
    with pytest.raises(InputError, match="^f"):
        ot.entropic_dual_value(a, b, C, r.potential_f[:3], r.potential_g, 0.2)
    with pytest.raises(InputError, match="^rho0"):
        ot.jko(np.zeros((0,)), tau=0.1, n_steps=1)
    with pytest.raises(InputError, match="^rho0"):
        ot.jko(np.zeros((3, 0)), tau=0.1, n_steps=1)


def test_serial_if_small_is_local_to_the_thread():
    from measureflow.core.threads import local_thread_control, serial_if_small

    if not local_thread_control():
        pytest.skip("no reachable OpenMP runtime on this platform")
    k = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        other = []
        with serial_if_small(10):
            assert torch.get_num_threads() == 1
            t = threading.Thread(target=lambda: other.append(torch.get_num_threads()))
            t.start()
            t.join()
        assert other == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(k)


# ---------------------------------------------------------------------------------------------
# marginal blocks used directly through the loop
# ---------------------------------------------------------------------------------------------

def test_loop_with_blocks_directly():
    x, y, a, b = _cloud(10, 12, 10)
    g = Dense(torch.tensor(_sq(x, y)))
    at, bt = torch.tensor(a), torch.tensor(b)
    out = sinkhorn_loop(g, Hard(at), KL(bt * 2, 0.5), 0.1, tol=1e-12, max_iter=10_000)
    P = pot.sinkhorn_unbalanced(a, 2 * b, _sq(x, y), 0.1, (math.inf, 0.5), stopThr=1e-15,
                                numItermax=100_000, method="sinkhorn", reg_type="kl")
    plan = g.block(out.f / 0.1 + torch.log(at), out.g / 0.1 + torch.log(2 * bt), 0.1)
    assert out.converged
    np.testing.assert_allclose(plan.numpy(), P, atol=1e-11)


# ---------------------------------------------------------------------------------------------
# sparse graphs (Graph geometry), the divergence block and the K-block cyclic loop
# ---------------------------------------------------------------------------------------------

def _complete_graph(C):
    from measureflow.ot.geometry import Graph

    n = C.shape[0]
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return Graph(i.reshape(-1), j.reshape(-1), C.reshape(-1).clone(), n)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(2, 7), st.sampled_from([0.2, 1.0]))
def test_graph_equals_dense_on_a_complete_graph(seed, n, eps):
    x, _, a, b = _cloud(seed, n, n)
    y = np.random.default_rng(seed + 1).normal(size=(n, 2))
    C = _sq(x, y)
    C = torch.tensor(C / C.max(), requires_grad=True)
    D, G = Dense(C), _complete_graph(C.detach())
    rng = np.random.default_rng(seed)
    u, v = torch.tensor(rng.normal(size=n)), torch.tensor(rng.normal(size=n))
    W = torch.tensor(rng.normal(size=(n, 3)))
    for axis in (0, 1):
        torch.testing.assert_close(G.lse(u, v, eps, axis), D.lse(u, v, eps, axis),
                                   rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(G.apply(u, v, eps, W, axis), D.apply(u, v, eps, W, axis),
                                   rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(G.block(u, v, eps), D.block(u, v, eps), rtol=1e-12, atol=0)
    torch.testing.assert_close(G.linear_cost(u, v, eps), D.linear_cost(u, v, eps), rtol=1e-12,
                               atol=0)
    assert G.cost_range() == pytest.approx(D.cost_range(), rel=1e-15)
    at, bt = torch.tensor(a), torch.tensor(b)
    o1 = sinkhorn_loop(G, Hard(at), Hard(bt), eps, tol=1e-10, max_iter=5000)
    o2 = sinkhorn_loop(D, Hard(at), Hard(bt), eps, tol=1e-10, max_iter=5000)
    assert o1.converged and o2.converged
    shift = float((o1.f - o2.f).mean())     # potentials are unique up to f + c, g - c
    torch.testing.assert_close(o1.f - shift, o2.f, rtol=0, atol=1e-8 * eps)
    torch.testing.assert_close(o1.g + shift, o2.g, rtol=0, atol=1e-8 * eps)


def test_graph_sparse_support_is_ot_restricted_to_the_arcs():
    """Sinkhorn on a graph = POT's sinkhorn_log on the dense cost that forbids the non-arcs
    (a cost of 1e3 / eps = 1e4: exp(-1e4) is 0 in float64), and the envelope gradient of the
    value with respect to the lengths is the plan on the arcs."""
    from measureflow.ot.geometry import Graph

    rng = np.random.default_rng(3)
    n = 6
    C = rng.uniform(0.1, 1.0, (n, n))
    keep = (rng.random((n, n)) < 0.6) | np.eye(n, dtype=bool)
    ii, jj = np.nonzero(keep)
    P0 = keep * rng.uniform(0.5, 1.0, (n, n))       # b = a column marginal of a plan on the
    a = np.full(n, 1 / n)                           # arcs: the restricted problem is feasible
    b = (P0 * (a / P0.sum(1))[:, None]).sum(0)
    eps = 0.1
    w = torch.tensor(C[ii, jj], requires_grad=True)
    G = Graph(torch.tensor(ii), torch.tensor(jj), w, n)
    at, bt = torch.tensor(a), torch.tensor(b)
    out = sinkhorn_loop(G, Hard(at), Hard(bt), eps, tol=1e-12, max_iter=50_000)
    assert out.converged
    M = np.where(keep, C, 1e3)
    P = pot.bregman.sinkhorn_log(a, b, M, eps, stopThr=1e-14, numItermax=200_000)
    plan = G.block(out.f / eps + torch.log(at), out.g / eps + torch.log(bt), eps)
    np.testing.assert_allclose(plan.numpy(), P, atol=1e-10)
    # d/dw of eps * mass(f, g fixed) at the optimum is -P on the arcs
    (grad,) = torch.autograd.grad(eps * G.mass(at, bt, out.f, out.g, eps), [w])
    np.testing.assert_allclose(-grad.numpy(), P[ii, jj], atol=1e-10)
    assert G.transpose().transpose().lse(out.f, out.g, eps, 1).shape == (n,)


def _path_flow_problem(n=9, dtype=torch.float64):
    from measureflow.ot.geometry import Graph

    e = torch.stack([torch.arange(n - 1), torch.arange(1, n)], 1)
    tail, head = torch.cat([e[:, 0], e[:, 1]]), torch.cat([e[:, 1], e[:, 0]])
    w = torch.linspace(0.5, 1.5, n - 1, dtype=dtype).repeat(2)
    b = torch.zeros(n, dtype=dtype)
    b[:2], b[-3:] = 0.5, -1 / 3
    return Graph(tail, head, w, n, signed=True), b, e


def test_divergence_block_symmetric_loop_equals_cyclic_loop_and_lifted_projections():
    """Flow-Sinkhorn three ways: the symmetric two-block loop (averaged update), the K-block
    loop with omega = 1/2, and bregman's stored-iterate lifted projections (GraphDivergence +
    Lifting, a different algorithm with the same optimum): same flows, div x = b."""
    import measureflow.bregman as br
    from measureflow.ot.loop import Divergence, PotentialProjection, cyclic_loop

    G, b, e = _path_flow_problem(7)
    gam = 0.3
    sym = sinkhorn_loop(G, Divergence(b), None, gam, tol=1e-12, max_iter=100_000,
                        symmetric=True)
    cyc = cyclic_loop(torch.zeros(len(b), dtype=b.dtype),
                      [PotentialProjection(G, Divergence(b), gam, omega=0.5, gauge=True)],
                      tol=1e-12, max_iter=100_000)
    assert sym.converged and cyc.converged
    x_sym = torch.exp(G.log_flow(sym.f / gam, sym.f / gam, gam))
    x_cyc = torch.exp(G.log_flow(cyc.x / gam, cyc.x / gam, gam))
    torch.testing.assert_close(x_sym, x_cyc, rtol=0, atol=1e-10)
    div = G.apply(cyc.x / gam, cyc.x / gam, gam, torch.ones_like(G.w))
    torch.testing.assert_close(div, b, rtol=0, atol=1e-11)
    Cl, blocks, arcs = br.graph_lifting_problem((e.numpy(), G.w[: len(e)].numpy()),
                                                np.maximum(b.numpy(), 0),
                                                np.maximum(-b.numpy(), 0))
    ref = br.kl_projections(Cl, blocks, gam, tol=1e-12, max_iter=100_000)
    # graph_lifting_problem's arcs are the edges then their reverses, as in _path_flow_problem
    np.testing.assert_allclose(x_cyc.numpy(), ref.x[0], atol=1e-9)


def test_cyclic_loop_checks_stops_and_differentiates():
    from measureflow.ot.loop import Divergence, PotentialProjection, cyclic_loop

    G, b, _ = _path_flow_problem(5)
    P = PotentialProjection(G, Divergence(b), 0.3, omega=0.5, gauge=True)
    phi0 = torch.zeros(len(b), dtype=b.dtype)
    out = cyclic_loop(phi0, [P], tol=1e-300, max_iter=23, check_every=5)
    assert out.n_iter == 23 and len(out.errors) == 5 and not out.converged    # 5,...,20, 23
    seen = []

    def cb(state):
        seen.append(state.iteration)
        assert isinstance(state, SinkhornState) and state.eps == 0.3
        return state.iteration >= 6

    out = cyclic_loop(phi0, [P], tol=1e-300, max_iter=100, check_every=3, eps=0.3, callback=cb)
    assert out.stopped and out.n_iter == 6 and seen == [3, 6] and not out.converged
    nan = PotentialProjection(G, Divergence(b * math.nan), 0.3)
    out = cyclic_loop(phi0, [nan], tol=1e-9, max_iter=50)
    assert out.n_iter == 1 and not out.converged and math.isnan(out.error)
    # autograd runs through the sweeps (the caller's grad mode): the unrolled derivative of
    # phi_0 - phi_last along a zero-sum change of b equals central finite differences

    def gap(bv):
        P = PotentialProjection(G, Divergence(bv), 0.3, omega=0.5, gauge=True)
        out = cyclic_loop(phi0, [P], tol=1e-13, max_iter=50_000)
        assert out.converged
        return out.x[0] - out.x[-1]

    d = torch.zeros_like(b)
    d[0], d[-1] = 1.0, -1.0
    bb = b.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gap(bb), [bb])
    h = 1e-5
    fd = (gap(b + h * d) - gap(b - h * d)) / (2 * h)
    assert float(grad @ d) == pytest.approx(float(fd), rel=1e-6)


def test_float32_flow_sinkhorn_and_kl_projections_converge_by_default():
    import measureflow.bregman as br

    rng = np.random.default_rng(0)
    x = torch.tensor(rng.random((40, 2)), dtype=torch.float32)
    C = ((x[:, None] - x[None]) ** 2).sum(-1)
    a = torch.full((40,), 1 / 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = br.kl_projections(C, [br.RowMarginal(a), br.ColMarginal(a)], 0.01,
                              z=a[:, None] * a[None], max_iter=5000)
        e = np.stack([np.arange(11), np.arange(1, 12)], 1)
        b1 = torch.zeros(12)
        b1[:3] = 1 / 3
        s = br.graph_w1((e, torch.ones(11)), b1, b1.flip(0), method="flow_sinkhorn",
                        gamma=0.5)
    assert r.converged and r.x.dtype == torch.float32
    assert s.converged and s.value.dtype == torch.float32
    assert float(s.lower) <= 9.0 + 1e-4 and float(s.upper) >= 9.0 - 1e-4   # W1 = 3 x 3


def test_float32_divergence_default_tol_on_a_slow_mode():
    """Mid-way through the ring -> two blobs gradient flow (benchmarks/divergence_flow.py),
    Sinkhorn has a slow mode (nearly constant potential offsets between groups): the default
    float32 tolerance (1e-4 x mass) stops before 1e-5 would (here 1045 vs 1876 iterations),
    and the value still agrees with a float64 solve at tol 1e-9 to 1e-4 relative."""
    rng = np.random.default_rng(0)
    n, eps = 200, 0.005
    t = rng.uniform(0, 2 * np.pi, n)
    r = 0.25 + 0.03 * rng.normal(size=n)
    x = np.stack([0.5 + r * np.cos(t), 0.5 + r * np.sin(t)], 1)
    k = rng.random(n) < 0.5
    y = np.where(k[:, None], [0.3, 0.7], [0.7, 0.3]) + 0.06 * rng.normal(size=(n, 2))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(11):  # flow with a coarse tolerance to a mid-flow state
            xg = xt.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(ot.sinkhorn_divergence(xg, yt, eps=eps, tol=1e-3), [xg])
            xt = xt - 0.025 * n * g
    counts = {}

    def count(state):
        counts[state.label] = counts.get(state.label, 0) + 1

    s32 = ot.sinkhorn_divergence(xt, yt, eps=eps, callback=count)
    s64 = ot.sinkhorn_divergence(xt.double(), yt.double(), eps=eps, tol=1e-9,
                                 max_iter=200_000)
    assert float(s32) == pytest.approx(float(s64), rel=1e-4)
    slow = {}

    def count_slow(state):
        slow[state.label] = slow.get(state.label, 0) + 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ot.sinkhorn_divergence(xt, yt, eps=eps, tol=1e-5, callback=count_slow)
    assert counts["xy"] < slow["xy"]  # the slow mode is there; the default stops earlier
