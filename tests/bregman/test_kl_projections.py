"""Tests of the generic cyclic KL projection engine (bregman.kl_projections)."""

import numpy as np
import pytest
import torch

import ot as pot
from measureflow import ConvergenceWarning, InputError
from measureflow import bregman as br


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny scatter ops: intra-op threads only add contention on the shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _ot_problem(seed=0, n=7, m=9):
    rng = np.random.default_rng(seed)
    a = rng.random(n) + 0.1
    a /= a.sum()
    b = rng.random(m) + 0.1
    b /= b.sum()
    return a, b, rng.random((n, m))


def test_sinkhorn_matches_pot_and_duality():
    a, b, C = _ot_problem()
    eps = 0.1
    r = br.kl_projections(C, [br.RowMarginal(a), br.ColMarginal(b)], eps, z=np.outer(a, b),
                          max_iter=5000, tol=1e-12)
    P = pot.sinkhorn(a, b, C, eps, stopThr=1e-14, numItermax=100000)
    assert r.converged and isinstance(r.x, np.ndarray)
    np.testing.assert_allclose(r.x, P, atol=1e-11)
    # dual ascent is monotone, strong duality at convergence
    assert np.all(np.diff(r.dual_values) >= -1e-12)
    assert abs(r.primal_value - r.dual_value) < 1e-10
    # plan formula P = a b exp((f + g - C)/eps) with f, g the block duals
    f, g = r.duals
    np.testing.assert_allclose(np.outer(a, b) * np.exp((f[:, None] + g[None] - C) / eps), r.x,
                               atol=1e-12)


def test_generic_engine_reproduces_ot_solve_sinkhorn():
    from measureflow import ot as mot
    a, b, C = _ot_problem(1)
    eps = 0.2
    try:
        ref = mot.solve(a, b, C, eps=eps, tol=1e-12, max_iter=100000)
    except InputError as exc:
        if "not available" in str(exc):
            pytest.skip("measureflow.ot.solve has no entropic path in this build")
        raise
    r = br.kl_projections(C, [br.RowMarginal(a), br.ColMarginal(b)], eps, z=np.outer(a, b),
                          max_iter=10000, tol=1e-12)
    np.testing.assert_allclose(r.x, ref.plan, atol=1e-9)
    f, g = r.duals
    shift = np.mean(ref.potential_f - f)
    np.testing.assert_allclose(ref.potential_f, f + shift, atol=1e-8)
    np.testing.assert_allclose(ref.potential_g, g - shift, atol=1e-8)


def test_unbalanced_matches_pot():
    a, b, C = _ot_problem(2)
    a = a * 2.0
    eps, rho = 0.1, 0.5
    z = np.outer(a, b)
    r = br.kl_projections(C, [br.KLRowMarginal(a, rho), br.KLColMarginal(b, rho)], eps, z=z,
                          max_iter=5000, tol=1e-12)
    P = pot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, rho, c=z, reg_type="kl",
                                           stopThr=1e-15, numItermax=100000)
    np.testing.assert_allclose(r.x, P, atol=1e-10)
    assert abs(r.primal_value - r.dual_value) < 1e-9


def test_barycenter_equal_weights_matches_pot_and_weighted_has_zero_gap():
    rng = np.random.default_rng(3)
    n, K = 8, 3
    A = rng.random((n, K)) + 0.05
    A /= A.sum(0)
    M = (np.arange(n)[:, None] - np.arange(n)[None]) ** 2 / n**2
    reg = 0.1
    q = pot.bregman.barycenter(A, M, reg, stopThr=1e-15, numItermax=100000)
    r = br.kl_projections(np.broadcast_to(M, (K, n, n)), [br.ColMarginal(A.T),
                          br.BarycenterCoupling()], reg, max_iter=20000, tol=1e-13,
                          check_every=25)
    assert r.converged
    np.testing.assert_allclose(r.x[0].sum(1), q, atol=1e-10)
    # weighted: C_k = lam_k M, gamma_k = lam_k reg; optimality = zero duality gap + KKT
    lam = np.array([0.2, 0.3, 0.5])
    r = br.kl_projections(lam[:, None, None] * M, [br.ColMarginal(A.T), br.BarycenterCoupling()],
                          (reg * lam)[:, None, None], max_iter=20000, tol=1e-13, check_every=25)
    assert r.converged
    assert abs(r.primal_value - r.dual_value) < 1e-10
    np.testing.assert_allclose(r.duals[1].sum(0), 0.0, atol=1e-12)
    rows = r.x.sum(2)
    np.testing.assert_allclose(rows, np.broadcast_to(rows[0], rows.shape), atol=1e-11)


def test_jko_step_zero_gap_and_stationarity():
    rng = np.random.default_rng(4)
    n = 10
    x = np.linspace(0, 1, n)
    C = (x[:, None] - x[None]) ** 2 / 2
    rho0 = np.exp(-((x - 0.3) ** 2) / 0.02)
    rho0 /= rho0.sum()
    V = 3 * (x - 0.7) ** 2 + 0.1 * rng.random(n)
    tau, sigma = 0.1, 0.05
    r = br.kl_projections(C, [br.RowMarginal(rho0), br.JKOStep(V, tau, sigma)], 0.01,
                          max_iter=20000, tol=1e-12)
    assert r.converged
    assert abs(r.primal_value - r.dual_value) < 1e-9
    q = r.x.sum(0)
    # first-order condition of the column prox: q = exp(-V/sigma) exp(-u/(tau sigma))
    np.testing.assert_allclose(q, np.exp(-V / sigma) * np.exp(-r.duals[1] / (tau * sigma)),
                               atol=1e-11)
    # a JKO step moves mass towards low potential
    assert (q * V).sum() < (rho0 * V).sum()


def test_graph_lifting_reproduces_flow_sinkhorn_iterates():
    rng = np.random.default_rng(5)
    n = 12
    e = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    w = rng.random(n - 1) + 0.5
    b1 = np.zeros(n)
    b1[:2] = 0.5
    b2 = np.zeros(n)
    b2[-3:] = 1 / 3
    C, blocks, arcs = br.graph_lifting_problem((e, w), b1, b2)
    for k in (1, 7):
        with pytest.warns(ConvergenceWarning):
            r = br.kl_projections(C, blocks, 0.3, max_iter=k, tol=1e-14)
        with pytest.warns(ConvergenceWarning):
            s = br.graph_w1((e, w), b1, b2, method="flow_sinkhorn", gamma=0.3, z=1.0, max_iter=k,
                            check_every=k, round=False)
        E = len(w)
        np.testing.assert_allclose(r.x[0][:E] - r.x[0][E:], s.raw_flow, atol=1e-14)
        np.testing.assert_allclose(r.x[0], r.x[1], atol=1e-14)
        assert abs(r.dual_value / 2 - s.value) < 1e-10


def test_torch_in_torch_out_and_gradcheck():
    a, b, C = _ot_problem(6, 3, 4)
    Ct = torch.tensor(C, requires_grad=True)
    at, bt = torch.tensor(a), torch.tensor(b)

    def f(Cm):
        return br.kl_projections(Cm, [br.RowMarginal(at), br.ColMarginal(bt)], 0.5,
                                 max_iter=3, tol=1e-300, check_every=3).x

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = f(Ct)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
        assert torch.autograd.gradcheck(f, (Ct,), fast_mode=True)


def test_bad_input():
    a, b, C = _ot_problem()
    with pytest.raises(InputError, match="^gamma"):
        br.kl_projections(C, [br.RowMarginal(a)], -1.0)
    with pytest.raises(InputError, match="^blocks"):
        br.kl_projections(C, [], 1.0)
    with pytest.raises(InputError, match="^blocks"):
        br.kl_projections(C, ["row"], 1.0)
    with pytest.raises(InputError, match="^a"):
        br.kl_projections(C, [br.RowMarginal(a[:-1])], 1.0)
    with pytest.raises(InputError, match="^C"):
        br.kl_projections(C * np.nan, [br.RowMarginal(a)], 1.0)
    with pytest.raises(InputError, match="^gamma"):
        br.kl_projections(C, [br.RowMarginal(a)], np.linspace(0.1, 1, C.shape[1])[None])
    with pytest.raises(InputError, match="^rho"):
        br.KLRowMarginal(a, 0.0)
    with pytest.raises(InputError, match="^a"):
        br.kl_projections(C, [br.KLRowMarginal(np.r_[0.0, a[1:]], 1.0)], 1.0)
    # balanced constraints with different masses are infeasible: rejected, not iterated
    with pytest.raises(InputError, match="^a, b: total masses differ"):
        br.kl_projections(C, [br.RowMarginal(a), br.ColMarginal(2 * b)], 1.0)
    e = np.array([[0, 1], [1, 2]])
    with pytest.raises(InputError, match="^b1, b2"):
        br.graph_lifting_problem((e, [1.0, 1.0]), [1.0, 0, 0], [0, 0, 2.0])
    with pytest.raises(InputError, match="^b1"):
        br.graph_lifting_problem((e, [1.0, 1.0]), [np.nan, 0, 0], [0, 0, 1.0])
    with pytest.raises(InputError, match="^graph: disconnected"):
        br.graph_lifting_problem((e, [1.0, 1.0]), [1.0, 0, 0, 0], [0, 0, 0, 1.0])
    with pytest.raises(InputError, match="^b: the divergence target must sum to 0"):
        br.kl_projections(np.ones((2, 4)), [br.GraphDivergence(np.r_[e, e[:, ::-1]],
                                                               [1.0, 0, 0]), br.Lifting()], 1.0)


def test_bad_input_issue16():
    """Complex, data-less (meta), empty and degenerate inputs raise InputError naming the
    argument instead of dropping imaginary parts, crashing or returning NaN."""
    a, b, C = _ot_problem()
    blocks = lambda: [br.RowMarginal(a), br.ColMarginal(b)]  # noqa: E731
    # a zero-mass hard marginal forces x = 0: rejected (it produced NaN duals/values before)
    with pytest.raises(InputError, match="^a: total mass is 0"):
        br.kl_projections(C, [br.RowMarginal(0 * a), br.ColMarginal(0 * b)], 0.1)
    with pytest.raises(InputError, match="^a: total mass is 0"):
        br.kl_projections(C, [br.RowMarginal(0 * a), br.JKOStep(np.zeros(len(b)), 1.0)], 0.1)
    Cs = np.stack([C, C])
    B = np.stack([b, 0 * b])
    with pytest.raises(InputError, match="^b: total mass is 0"):
        br.kl_projections(Cs, [br.ColMarginal(B), br.BarycenterCoupling()], 0.1)
    # complex data anywhere
    with pytest.raises(InputError, match="^a: complex"):
        br.kl_projections(C, [br.RowMarginal(a + 1j), br.ColMarginal(b)], 0.1)
    with pytest.raises(InputError, match="^a: complex"):
        br.kl_projections(C, [br.RowMarginal(torch.tensor(a + 0j)), br.ColMarginal(b)], 0.1)
    with pytest.raises(InputError, match="^C: complex"):
        br.kl_projections(torch.tensor(C + 1j), blocks(), 0.1)
    with pytest.raises(InputError, match="^V: complex"):
        br.kl_projections(C, [br.RowMarginal(a), br.JKOStep(np.zeros(len(b)) + 1j, 1.0)], 0.1)
    with pytest.raises(InputError, match="^b: complex"):
        br.kl_projections(np.ones((2, 2)), [br.GraphDivergence([[0, 1], [1, 0]],
                                                               np.r_[1.0, -1] + 1j)], 0.1)
    # meta tensors hold no data
    with pytest.raises(InputError, match="^C: tensors on the 'meta' device"):
        br.kl_projections(torch.empty(C.shape, device="meta"), blocks(), 0.1)
    with pytest.raises(InputError, match="^a: tensors on the 'meta' device"):
        br.kl_projections(torch.tensor(C), [br.RowMarginal(torch.empty(len(a), device="meta"))],
                          0.1)
    with pytest.raises(InputError, match="^b1: tensors on the 'meta' device"):
        br.graph_lifting_problem(([[0, 1]], [1.0]), torch.empty(2, device="meta"), [0, 1.0])
    with pytest.raises(InputError, match="^C: empty"):
        br.kl_projections(np.zeros((0, 3)), [br.ColMarginal(np.ones(3))], 0.1)
    # arcs must be integers; every connected component must balance
    with pytest.raises(InputError, match="^arcs: edge array must hold integer"):
        br.kl_projections(np.ones((2, 2)), [br.GraphDivergence([[0, 1.5], [1, 0]], [1.0, -1])],
                          0.1)
    with pytest.raises(InputError, match="^b: the divergence target does not sum to 0 on"):
        br.kl_projections(np.ones((2, 2)), [br.GraphDivergence([[0, 1], [1, 0]], [1.0, 0, -1]),
                                            br.Lifting()], 0.1)


@pytest.mark.parametrize("max_iter", [1, 2])
def test_honest_at_small_max_iter(max_iter):
    a, b, C = _ot_problem()
    with pytest.warns(ConvergenceWarning):
        r = br.kl_projections(C, [br.RowMarginal(a), br.ColMarginal(b)], 0.01,
                              max_iter=max_iter, tol=1e-9)
    assert not r.converged and r.n_iter == max_iter and r.errors[-1] > 1e-9
