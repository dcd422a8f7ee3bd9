"""Tests of graph W1: exact transshipment (network simplex / HiGHS) and flow-Sinkhorn."""

import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csgraph

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


def _grid(N, seed=0, integer=True, n_support=6):
    rng = np.random.default_rng(seed)
    idx = np.arange(N * N).reshape(N, N)
    e = np.concatenate([np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
                        np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)])
    w = rng.integers(1, 100, len(e)).astype(float) if integer else rng.random(len(e)) + 0.1
    n = N * N
    perm = rng.permutation(n)
    b1 = np.zeros(n)
    b2 = np.zeros(n)
    if integer:
        b1[perm[:n_support]] = rng.integers(1, 20, n_support)
        d = rng.integers(1, 20, n_support).astype(float)
        d = np.floor(d / d.sum() * b1.sum())
        d[0] += b1.sum() - d.sum()
        b2[perm[n_support:2 * n_support]] = d
    else:
        b1[perm[:n_support]] = rng.random(n_support)
        b2[perm[n_support:2 * n_support]] = rng.random(n_support)
        b2 *= b1.sum() / b2.sum()
    return n, e, w, b1, b2


def _networkx_w1(n, e, w, b1, b2):
    G = nx.DiGraph()
    for i in range(n):
        G.add_node(i, demand=int(round(b2[i] - b1[i])))
    for (u, v), c in zip(e, w):
        G.add_edge(int(u), int(v), weight=int(c))
        G.add_edge(int(v), int(u), weight=int(c))
    return nx.network_simplex(G)[0]


@pytest.mark.parametrize("solver", ["network_simplex", "highs"])
def test_exact_matches_networkx_integer_grid(solver):
    n, e, w, b1, b2 = _grid(6, seed=1)
    r = br.graph_w1((e, w), b1, b2, solver=solver)
    assert r.value == pytest.approx(_networkx_w1(n, e, w, b1, b2), abs=1e-6)
    assert r.certificate and r.converged


def test_exact_matches_pot_emd_on_shortest_path_cost_float_data():
    n, e, w, b1, b2 = _grid(7, seed=2, integer=False)
    A = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n))
    D = csgraph.shortest_path(A, directed=False)
    ref = pot.emd2(b1, b2, D)
    for solver in ("network_simplex", "highs"):
        r = br.graph_w1((e, w), b1, b2, solver=solver)
        assert r.value == pytest.approx(ref, rel=1e-10)


def test_certificate_and_potential():
    n, e, w, b1, b2 = _grid(8, seed=3, integer=False)
    r = br.graph_w1((e, w), b1, b2)
    F, phi = r.flow, r.potential
    e, w = r.edges, r.lengths  # the result's (deduplicated, sorted) edge order
    div = np.bincount(e[:, 0], F, n) - np.bincount(e[:, 1], F, n)
    np.testing.assert_allclose(div, b1 - b2, atol=1e-12)
    assert np.all(np.abs(phi[e[:, 0]] - phi[e[:, 1]]) <= w + 1e-9)
    assert (w * np.abs(F)).sum() == pytest.approx(phi @ (b1 - b2), rel=1e-12)
    assert r.value == pytest.approx(phi @ (b1 - b2), rel=1e-12)
    assert abs(r.gap) < 1e-9 and r.residual < 1e-9 and r.lipschitz_violation < 1e-9


def test_line_graph_closed_form():
    n = 80
    e = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    rng = np.random.default_rng(0)
    lens = rng.random(n - 1) + 0.5
    b1, b2 = rng.random(n), rng.random(n)
    b2 *= b1.sum() / b2.sum()
    r = br.graph_w1((e, lens), b1, b2)
    assert r.value == pytest.approx(br.line_graph_w1(b1, b2, lens), rel=1e-10)


def test_input_forms_agree():
    n, e, w, b1, b2 = _grid(5, seed=4, integer=False)
    A = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_weighted_edges_from((int(u), int(v), c) for (u, v), c in zip(e, w))
    vals = [br.graph_w1(g, b1, b2).value for g in ((e, w), A, A + A.T, G)]
    np.testing.assert_allclose(vals, vals[0], rtol=1e-12)
    # reversed edge orientation and duplicates (longer copy) do not matter
    e2 = np.concatenate([e[:, ::-1], e])
    w2 = np.concatenate([w, w + 1])
    assert br.graph_w1((e2, w2), b1, b2).value == pytest.approx(vals[0], rel=1e-12)


def test_flow_sinkhorn_brackets_and_converges_to_exact():
    rng = np.random.default_rng(5)
    n = 12
    pts = rng.random((n, 2))
    G = nx.random_geometric_graph(n, 0.6, pos={i: p for i, p in enumerate(pts)}, seed=1)
    assert nx.is_connected(G)
    e = np.array(G.edges())
    w = np.linalg.norm(pts[e[:, 0]] - pts[e[:, 1]], axis=1)
    b1 = np.zeros(n)
    b1[:3] = 1 / 3
    b2 = np.zeros(n)
    b2[-3:] = 1 / 3
    exact = br.graph_w1((e, w), b1, b2).value
    errs = []
    for gamma in (0.1, 0.03, 0.01):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = br.graph_w1((e, w), b1, b2, method="flow_sinkhorn", gamma=gamma, max_iter=600,
                            tol=1e-9, check_every=50)
        assert r.lower <= exact + 1e-9 <= r.upper + 2e-9
        e, w = r.edges, r.lengths
        div = np.bincount(e[:, 0], r.flow, n) - np.bincount(e[:, 1], r.flow, n)
        np.testing.assert_allclose(div, b1 - b2, atol=1e-10)  # rounding gives a feasible flow
        errs.append(abs(r.value - exact))
    # the KL bias is O(gamma): the estimate improves as gamma decreases
    assert errs[2] < errs[1] < errs[0] and errs[-1] < 0.25 * exact
    assert r.upper - exact < 0.05 * exact


def test_flow_sinkhorn_default_gamma_from_eps():
    n = 10
    e = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    w = np.ones(n - 1)
    b1 = np.zeros(n)
    b1[0] = 1
    b2 = np.zeros(n)
    b2[-1] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = br.graph_w1((e, w), b1, b2, method="flow_sinkhorn", eps=0.5, max_iter=20000)
    X0 = 1.0 * 9  # mass x min(n - 1, 2 ecc / w_min)
    assert r.gamma == pytest.approx(0.5 / (2 * X0 * np.log(2 * 9)))
    assert abs(r.value - 9.0) <= 0.5


def test_torch_in_torch_out_and_envelope_gradient():
    n, e, w, b1, b2 = _grid(5, seed=6, integer=False)
    b1t = torch.tensor(b1, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    lo = np.minimum(e[:, 0], e[:, 1])
    hi = np.maximum(e[:, 0], e[:, 1])
    order = np.lexsort((hi, lo))
    e_s = np.stack([lo, hi], 1)[order]
    wt = torch.tensor(w[order], requires_grad=True)
    r = br.graph_w1((e_s, wt), b1t, torch.tensor(b2), lengths=None)
    assert isinstance(r.value, torch.Tensor) and isinstance(r.flow, torch.Tensor)
    r.value.backward()
    np.testing.assert_allclose(b1t.grad.numpy(), r.potential.numpy(), atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), np.abs(r.flow.numpy()), atol=1e-12)
    # finite difference in a mass-preserving direction (W1 is piecewise linear)
    d = np.zeros(n)
    i, j = np.flatnonzero(b1 > 0)[:2]
    d[i], d[j] = 1e-7, -1e-7
    v1 = br.graph_w1((e, w), b1 + d, b2 + 0 * d).value
    v0 = br.graph_w1((e, w), b1, b2).value
    # b1 + d and b2 still have equal mass
    assert (v1 - v0) == pytest.approx(r.potential.numpy() @ d, rel=1e-4)


def test_bad_input():
    n, e, w, b1, b2 = _grid(4, seed=7, integer=False)
    with pytest.raises(InputError, match="^graph: disconnected"):
        br.graph_w1((np.array([[0, 1]]), np.array([1.0])), np.r_[1.0, 0, 0], np.r_[0, 0, 1.0])
    with pytest.raises(InputError, match="^b1, b2"):
        br.graph_w1((e, w), b1, 2 * b2)
    with pytest.raises(InputError, match="^graph"):
        br.graph_w1((e, np.r_[-1.0, w[1:]]), b1, b2)
    with pytest.raises(InputError, match="^graph"):
        br.graph_w1((e, np.r_[np.nan, w[1:]]), b1, b2)
    with pytest.raises(InputError, match="^b2"):
        br.graph_w1((e, w), b1, b2[:-1])
    with pytest.raises(InputError, match="^lengths"):
        br.graph_w1((e, w[:-1]), b1, b2)
    with pytest.raises(InputError, match="^graph"):
        br.graph_w1((e[:, :1], w), b1, b2)
    with pytest.raises(InputError, match="^b1"):
        br.graph_w1((e, w), -b1, b2)
    A = sp.coo_matrix(([1.0, 2.0], ([0, 1], [1, 0])), shape=(2, 2))
    with pytest.raises(InputError, match="^graph: sparse matrix is not symmetric"):
        br.graph_w1(A, [1.0, 0], [0, 1.0])
    with pytest.raises(InputError, match="^gamma, eps"):
        br.graph_w1((e, w), b1, b2, method="flow_sinkhorn")
    with pytest.raises(InputError, match="^method"):
        br.graph_w1((e, w), b1, b2, method="simplex")
    # the closed form validates too
    with pytest.raises(InputError, match="^b1, b2"):
        br.line_graph_w1([1.0, 0, 0], [0, 0, 2.0])
    with pytest.raises(InputError, match="^b1"):
        br.line_graph_w1([np.nan, 0, 0], [0, 0, 1.0])
    with pytest.raises(InputError, match="^b2"):
        br.line_graph_w1([1.0, 0, 0], [0, 1.0])
    with pytest.raises(InputError, match="^lengths"):
        br.line_graph_w1([1.0, 0, 0], [0, 0, 1.0], [-1.0, 1.0])
    with pytest.raises(InputError, match="^lengths"):
        br.line_graph_w1([1.0, 0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 14), extra=st.integers(0, 20))
def test_exact_equals_emd_on_shortest_paths_random_graphs(seed, n, extra):
    rng = np.random.default_rng(seed)
    # random spanning tree + extra edges: connected by construction; float lengths, some 0
    parent = np.array([rng.integers(0, i) for i in range(1, n)])
    e = np.stack([np.arange(1, n), parent], 1)
    if extra:
        e = np.concatenate([e, rng.integers(0, n, (extra, 2))])
    w = rng.random(len(e)) * (rng.random(len(e)) > 0.1)
    b1, b2 = rng.random(n), rng.random(n)
    b2 *= b1.sum() / b2.sum()
    r = br.graph_w1((e, w), b1, b2)
    keep = e[:, 0] != e[:, 1]
    G = nx.Graph()
    G.add_nodes_from(range(n))
    for (u, v), c in zip(e[keep], w[keep]):
        if not G.has_edge(u, v) or G[u][v]["weight"] > c:
            G.add_edge(int(u), int(v), weight=float(c))
    D = np.array([[nx.dijkstra_path_length(G, i, j) for j in range(n)] for i in range(n)])
    assert r.value == pytest.approx(pot.emd2(b1, b2, D), rel=1e-9, abs=1e-12)
    assert r.certificate
    assert br.graph_w1((e, w), b2, b1).value == pytest.approx(r.value, rel=1e-9, abs=1e-12)


def test_exact_float_data_vs_networkx_scaled_to_integers():
    n, e, w, b1, b2 = _grid(6, seed=8, integer=False, n_support=5)
    w = np.round(w, 3)  # lengths with 3 decimals, masses with 4: exact integer scalings
    b1 = np.round(b1, 4)
    b2 = np.round(b2, 4)
    b2[np.flatnonzero(b2)[0]] += b1.sum() - b2.sum()
    b2 = np.round(b2, 4)
    ref = _networkx_w1(n, e, np.round(w * 1e3), np.round(b1 * 1e4), np.round(b2 * 1e4))
    assert br.graph_w1((e, w), b1, b2).value == pytest.approx(ref / 1e7, rel=1e-9)


@pytest.mark.slow
def test_exact_large_grid_vs_networkx():
    n, e, w, b1, b2 = _grid(50, seed=9, n_support=200)
    r = br.graph_w1((e, w), b1, b2)
    assert r.certificate
    assert r.value == pytest.approx(_networkx_w1(n, e, w, b1, b2), rel=1e-12)


# ----------------------------------------------------------------------------- issue 16/17

try:
    from ortools.graph.python import min_cost_flow  # noqa: F401
    HAVE_ORTOOLS = True
except ImportError:  # pragma: no cover - optional (bench extra)
    HAVE_ORTOOLS = False

EXACT_SOLVERS = ["network_simplex", "highs"] + (["ortools"] if HAVE_ORTOOLS else [])


def _assert_certificate(r, n, b1, b2, rtol=1e-9):
    """Re-check the certificate from the returned arrays only: feasible flow, 1-Lipschitz
    potential, <w, |F|> = <phi, b1 - b2> = value."""
    e, w, F, phi = r.edges, r.lengths, r.flow, r.potential
    scale = max(float(np.sum(b1)) * (float(w.max()) if len(w) else 1.0), 1e-300)
    div = np.bincount(e[:, 0], F, n) - np.bincount(e[:, 1], F, n)
    assert np.abs(div - (b1 - b2)).sum() <= rtol * scale / max(float(w.max()), 1e-300)
    assert np.all(np.abs(phi[e[:, 0]] - phi[e[:, 1]]) <= w + rtol * scale / max(np.sum(b1), 1))
    assert abs((w * np.abs(F)).sum() - phi @ (b1 - b2)) <= rtol * scale
    assert abs(r.value - phi @ (b1 - b2)) <= rtol * scale
    assert r.certificate and r.converged and r.lower <= r.value + rtol * scale <= r.upper + \
        2 * rtol * scale


def _random_connected(rng, n, extra, integer):
    parent = np.array([rng.integers(0, i) for i in range(1, n)], dtype=np.int64)
    e = np.stack([np.arange(1, n), parent], 1)
    if extra:
        e = np.concatenate([e, rng.integers(0, n, (extra, 2))])
    if integer:
        w = rng.integers(0, 20, len(e)).astype(float)
        b1 = rng.integers(0, 6, n).astype(float)
        b2 = rng.integers(0, 6, n).astype(float)
        b1[0] += max(0.0, b2.sum() - b1.sum())
        b2[-1] += max(0.0, b1.sum() - b2.sum())
    else:
        w = rng.random(len(e)) * (rng.random(len(e)) > 0.1)
        b1, b2 = rng.random(n), rng.random(n)
        b2 *= b1.sum() / b2.sum()
    return e, w, b1, b2


def _networkx_undirected_w1(n, e, w, b1, b2):
    G = nx.DiGraph()
    for i in range(n):
        G.add_node(i, demand=int(round(b2[i] - b1[i])))
    best = {}
    for (u, v), c in zip(e.tolist(), w.tolist()):
        if u != v:
            k = (min(u, v), max(u, v))
            best[k] = min(best.get(k, np.inf), c)
    for (u, v), c in best.items():
        G.add_edge(u, v, weight=int(c))
        G.add_edge(v, u, weight=int(c))
    return nx.network_simplex(G)[0]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 16), extra=st.integers(0, 25))
def test_exact_integer_random_graphs_all_solvers_equal_networkx(seed, n, extra):
    rng = np.random.default_rng(seed)
    e, w, b1, b2 = _random_connected(rng, n, extra, integer=True)
    ref = _networkx_undirected_w1(n, e, w, b1, b2)
    for solver in EXACT_SOLVERS:
        r = br.graph_w1((e, w), b1, b2, solver=solver)
        assert r.value == pytest.approx(ref, abs=1e-9), solver
        _assert_certificate(r, n, b1, b2)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 14), extra=st.integers(0, 20))
def test_exact_float_random_graphs_certificate_and_highs(seed, n, extra):
    rng = np.random.default_rng(seed)
    e, w, b1, b2 = _random_connected(rng, n, extra, integer=False)
    r = br.graph_w1((e, w), b1, b2)
    _assert_certificate(r, n, b1, b2)
    rh = br.graph_w1((e, w), b1, b2, solver="highs")
    _assert_certificate(rh, n, b1, b2, rtol=1e-8)
    assert rh.value == pytest.approx(r.value, rel=1e-8, abs=1e-12)


@pytest.mark.skipif(not HAVE_ORTOOLS, reason="ortools not installed (optional bench extra)")
@pytest.mark.parametrize("seed", [0, 1])
def test_ortools_path_equals_pot_path(seed):
    n, e, w, b1, b2 = _grid(12, seed=seed, n_support=15)
    r_pot = br.graph_w1((e, w), b1, b2)
    r_ort = br.graph_w1((e, w), b1, b2, solver="ortools")
    assert r_ort.solver == "ortools" and r_pot.solver == "network_simplex"
    assert r_ort.value == r_pot.value  # integer data: both exact
    _assert_certificate(r_pot, n, b1, b2)
    _assert_certificate(r_ort, n, b1, b2)
    assert r_ort.value == pytest.approx(_networkx_w1(n, e, w, b1, b2), abs=1e-9)


def test_ortools_needs_integer_data_and_the_package(monkeypatch):
    n, e, w, b1, b2 = _grid(4, seed=3, integer=False)
    if HAVE_ORTOOLS:
        with pytest.raises(InputError, match="^solver: 'ortools' needs integer lengths"):
            br.graph_w1((e, w), b1, b2, solver="ortools")
        ni, ei, wi, b1i, b2i = _grid(4, seed=3)
        with pytest.raises(InputError, match="^solver: 'ortools' needs integer masses"):
            br.graph_w1((ei, wi), b1i + 0.5, b2i + 0.5, solver="ortools")
    import sys
    monkeypatch.setitem(sys.modules, "ortools.graph.python.min_cost_flow", None)
    ni, ei, wi, b1i, b2i = _grid(4, seed=3)
    with pytest.raises(InputError, match="^solver: 'ortools' needs the optional package"):
        br.graph_w1((ei, wi), b1i, b2i, solver="ortools")
    assert br.graph_w1((ei, wi), b1i, b2i).certificate  # the default path does not need it


@pytest.mark.parametrize("solver", ["network_simplex", "highs"])
@pytest.mark.parametrize("max_iter", [1, 2])
def test_exact_honest_at_small_max_iter(solver, max_iter):
    n, e, w, b1, b2 = _grid(8, seed=0, n_support=6)
    exact = br.graph_w1((e, w), b1, b2).value
    with pytest.warns(ConvergenceWarning):
        r = br.graph_w1((e, w), b1, b2, solver=solver, max_iter=max_iter)
    assert not r.converged and not r.certificate and np.isnan(r.value)
    assert r.lower <= exact + 1e-9 and r.upper >= exact - 1e-9  # still valid bounds


@pytest.mark.parametrize("max_iter", [1, 2])
def test_flow_sinkhorn_honest_at_small_max_iter(max_iter):
    n, e, w, b1, b2 = _grid(5, seed=0, integer=False)
    with pytest.warns(ConvergenceWarning):
        r = br.graph_w1((e, w), b1, b2, method="flow_sinkhorn", gamma=0.05, max_iter=max_iter,
                        check_every=1)
    assert not r.converged and r.n_iter == max_iter
    exact = br.graph_w1((e, w), b1, b2).value
    assert r.lower <= exact + 1e-9 <= r.upper + 2e-9


def test_exact_scale_invariant_tiny_masses_huge_lengths():
    n, e, w, b1, b2 = _grid(6, seed=4, integer=False)
    ref = br.graph_w1((e, w), b1, b2).value
    for sb, sw in ((1e-300, 1.0), (1.0, 1e290), (1e-200, 1e-100), (3e200, 7e-250)):
        r = br.graph_w1((e, w * sw), b1 * sb, b2 * sb)
        assert r.value == pytest.approx(ref * sb * sw, rel=1e-12)
        assert r.certificate and r.converged


def test_flow_sinkhorn_float32_converges_with_default_tol():
    rng = np.random.default_rng(0)
    n = 25
    pts = rng.random((n, 2))
    from scipy.spatial import Delaunay
    tri = Delaunay(pts).simplices
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]])
    w = np.linalg.norm(pts[e[:, 0]] - pts[e[:, 1]], axis=1)
    b1 = np.zeros(n)
    b1[:4] = 0.25
    b2 = np.zeros(n)
    b2[-4:] = 0.25
    r64 = br.graph_w1((e, w), b1, b2, method="flow_sinkhorn", gamma=0.05)
    r32 = br.graph_w1((e, torch.tensor(w, dtype=torch.float32)), torch.tensor(b1).float(),
                      torch.tensor(b2).float(), method="flow_sinkhorn", gamma=0.05)
    assert r64.converged and r32.converged and r32.value.dtype == torch.float32
    # float32 stops at its round-off floor (~10 eps diam / gamma): the value agrees to ~1e-4
    assert float(r32.value) == pytest.approx(float(r64.value), rel=1e-3)


def test_bad_input_issue16():
    n, e, w, b1, b2 = _grid(4, seed=7, integer=False)
    A = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n))
    for method, kw in (("exact", {}), ("flow_sinkhorn", {"gamma": 0.1})):
        def run(*a, method=method, kw=kw, **k):
            return br.graph_w1(*a, method=method, **kw, **k)

        with pytest.raises(InputError, match="^lengths: complex"):
            run((e, w + 1j), b1, b2)
        with pytest.raises(InputError, match="^lengths: complex"):
            run((e, torch.tensor(w + 0j)), b1, b2)
        with pytest.raises(InputError, match="^graph: complex"):
            run(A.astype(complex), b1, b2)
        G = nx.path_graph(3)
        G[0][1]["weight"] = 1 + 1j
        with pytest.raises(InputError, match="^graph: edge attribute 'weight'"):
            run(G, [1.0, 0, 0], [0, 0, 1.0])
        G[0][1]["weight"] = "far"
        with pytest.raises(InputError, match="^graph: edge attribute 'weight'"):
            run(G, [1.0, 0, 0], [0, 0, 1.0])
        with pytest.raises(InputError, match="^b1: complex"):
            run((e, w), torch.tensor(b1 + 0j), torch.tensor(b2 + 0j))
        with pytest.raises(InputError, match="^b1: tensors on the 'meta' device"):
            run((e, w), torch.empty(n, device="meta"), torch.tensor(b2))
        with pytest.raises(InputError, match="^lengths: tensors on the 'meta' device"):
            run((e, torch.empty(len(w), device="meta")), b1, b2)
        with pytest.raises(InputError, match="^lengths: given twice"):
            run((e, w), b1, b2, lengths=w)
        with pytest.raises(InputError, match="^lengths: a sparse matrix carries"):
            run(A, b1, b2, lengths=w)
        with pytest.raises(InputError, match="^weight"):
            run(nx.path_graph(3), [1.0, 0, 0], [0, 0, 1.0], weight=3)
        with pytest.raises(InputError, match="^graph: edge array must hold integer"):
            run((e.astype(bool), w), b1, b2)
        with pytest.raises(InputError, match="^graph: edge array must hold integer"):
            run((e + 0.5, w), b1, b2)
        with pytest.raises(InputError, match="^b1: expected a 1-D"):
            run((e, w), b1[None], b2)
        with pytest.raises(InputError, match="^graph: disconnected"):
            run((np.array([[0, 1], [2, 3]]), np.ones(2)), [1.0, 0, 1, 0], [0, 1.0, 0, 1])
    run = lambda **k: br.graph_w1((e, w), b1, b2, method="flow_sinkhorn", **k)  # noqa: E731
    with pytest.raises(InputError, match="^omega"):
        run(gamma=0.1, omega="fast")
    with pytest.raises(InputError, match="^round"):
        run(gamma=0.1, round="no")
    with pytest.raises(InputError, match="^gamma: .* too small"):
        run(gamma=1e-300)
    with pytest.raises(InputError, match="^solver"):
        br.graph_w1((e, w), b1, b2, solver="lemon")
    with pytest.raises(InputError, match="^b1: tensors on the 'meta' device"):
        br.line_graph_w1(torch.empty(3, device="meta"), [0, 0, 1.0])
    with pytest.raises(InputError, match="^lengths: complex"):
        br.graph_edges((e, w + 1j))


def test_sparse_duplicates_are_summed_like_scipy():
    # stored duplicates (0, 1) = 1 + 2 mean length 3 (SciPy's COO semantics)
    A = sp.coo_matrix(([1.0, 2.0, 3.0, 1.0, 1.0], ([0, 0, 1, 1, 2], [1, 1, 0, 2, 1])),
                      shape=(3, 3))
    r = br.graph_w1(A, [1.0, 0, 0], [0, 0, 1.0])
    assert r.value == pytest.approx(4.0)
    np.testing.assert_array_equal(r.lengths, [3.0, 1.0])
