"""Benchmark: exact W1 on graphs (ours vs OR-Tools, networkx, SciPy HiGHS) and flow-Sinkhorn.

Run:  measureflow bench graph_w1 [--quick]     (or: python benchmarks/graph_w1.py --quick)

1. Exact transshipment on integer instances (so every anchor applies):
   - 100 x 100 grid graph, integer lengths in [1, 100), 1000 supply and 1000 demand nodes with
     integer masses;
   - random geometric graph, 10^4 nodes in the unit square, radius 1.5 x connectivity radius,
     lengths = round(1000 x Euclidean length), 1000 supply / 1000 demand nodes.
   Timed (best of k after a warm-up, one process): ``graph_w1`` (default path: POT sparse
   network simplex on the transportation lifting, incl. validation, potentials, certificate),
   ``graph_w1(solver="highs")``, networkx ``network_simplex``, SciPy ``linprog`` (HiGHS dual
   simplex on the sparse signed-flow LP, raw call), OR-Tools ``SimpleMinCostFlow`` (if
   installed; integer data only, no potentials). All values must agree.
2. flow-Sinkhorn: time to 1 % relative value error (best so far) on Delaunay graphs of growing
   size, vs the exact solver and vs dense Sinkhorn (the same update on the complete graph with
   the shortest-path cost), gamma chosen per method from a small grid (best time reported).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph


def best_time(fn, *args, k=3, warmup=True, **kwargs):
    if warmup:
        fn(*args, **kwargs)
    ts, out = [], None
    for _ in range(k):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def masses(n, n_support, rng):
    perm = rng.permutation(n)
    b1 = np.zeros(n)
    b2 = np.zeros(n)
    b1[perm[:n_support]] = rng.integers(1, 100, n_support)
    d = rng.integers(1, 100, n_support).astype(float)
    d = np.floor(d / d.sum() * b1.sum())
    d[0] += b1.sum() - d.sum()
    b2[perm[n_support:2 * n_support]] = d
    return b1, b2


def grid_instance(N, n_support, seed=0):
    rng = np.random.default_rng(seed)
    idx = np.arange(N * N).reshape(N, N)
    e = np.concatenate([np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1),
                        np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)])
    w = rng.integers(1, 100, len(e)).astype(float)
    return (N * N, e, w, *masses(N * N, n_support, rng))


def rgg_instance(n, n_support, seed=0):
    from scipy.spatial import cKDTree
    rng = np.random.default_rng(seed)
    r = 1.5 * math.sqrt(math.log(n) / (math.pi * n))
    while True:
        x = rng.random((n, 2))
        e = np.array(sorted(cKDTree(x).query_pairs(r)))
        A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
        if csgraph.connected_components(A, directed=False)[0] == 1:
            break
    w = np.maximum(1.0, np.round(1000 * np.linalg.norm(x[e[:, 0]] - x[e[:, 1]], axis=1)))
    return (n, e, w, *masses(n, n_support, rng))


def run_networkx(n, e, w, b1, b2):
    import networkx as nx
    G = nx.DiGraph()
    for i in range(n):
        G.add_node(i, demand=int(b2[i] - b1[i]))
    for (u, v), c in zip(e.tolist(), w.astype(int).tolist()):
        G.add_edge(u, v, weight=c)
        G.add_edge(v, u, weight=c)
    t0 = time.perf_counter()
    val = nx.network_simplex(G)[0]
    return time.perf_counter() - t0, float(val)  # graph construction not timed


def run_highs_raw(n, e, w, b1, b2):
    from scipy.optimize import linprog
    E = len(e)
    ar = np.arange(E)
    A = sp.csc_array((np.r_[np.ones(E), -np.ones(E)], (np.r_[e[:, 0], e[:, 1]], np.r_[ar, ar])),
                     shape=(n, E))
    res = linprog(np.r_[w, w], A_eq=sp.hstack([A, -A]).tocsc(), b_eq=b1 - b2, bounds=(0, None),
                  method="highs-ds")
    return float(res.fun)


def run_ortools(n, e, w, b1, b2):
    from ortools.graph.python import min_cost_flow
    m = min_cost_flow.SimpleMinCostFlow()
    tails = np.r_[e[:, 0], e[:, 1]].astype(np.int32)
    heads = np.r_[e[:, 1], e[:, 0]].astype(np.int32)
    cap = np.full(len(tails), int(b1.sum()), dtype=np.int64)
    cost = np.r_[w, w].astype(np.int64)
    m.add_arcs_with_capacity_and_unit_cost(tails, heads, cap, cost)
    m.set_nodes_supplies(np.arange(n, dtype=np.int32), (b1 - b2).astype(np.int64))
    status = m.solve()
    if status != m.OPTIMAL:
        raise RuntimeError(f"OR-Tools status {status}")
    return float(m.optimal_cost())


def exact_section(instances, k):
    from measureflow.bregman import graph_w1
    try:
        import ortools  # noqa: F401
        have_ortools = True
    except ImportError:
        have_ortools = False
    print("\n== exact graph W1 (integer instances; seconds, best of", k, ")")
    hdr = (f"{'instance':<26}{'ours(ns)':>10}{'ours(highs)':>12}{'OR-Tools':>10}{'networkx':>10}"
           f"{'HiGHS raw':>10}{'ours/ORT':>9}{'ours/nx':>8}{'ours/HiGHS':>11}  values agree, cert")
    print(hdr)
    rows = []
    for name, (n, e, w, b1, b2) in instances.items():
        t_ours, r = best_time(graph_w1, (e, w), b1, b2, k=k)
        t_oh, rh = best_time(graph_w1, (e, w), b1, b2, solver="highs", k=1, warmup=False)
        t_hr, vh = best_time(run_highs_raw, n, e, w, b1, b2, k=1, warmup=False)
        t_nx, vnx = run_networkx(n, e, w, b1, b2)
        if have_ortools:
            t_ort, vort = best_time(run_ortools, n, e, w, b1, b2, k=k)
        else:
            t_ort, vort = math.nan, float(r.value)
        vals = [float(r.value), float(rh.value), vh, vnx, vort]
        agree = max(abs(v - vals[0]) for v in vals) <= 1e-9 * abs(vals[0])
        print(f"{name:<26}{t_ours:>10.3f}{t_oh:>12.3f}{t_ort:>10.3f}{t_nx:>10.3f}{t_hr:>10.3f}"
              f"{t_ours / t_ort:>9.2f}{t_ours / t_nx:>8.3f}{t_ours / t_hr:>11.3f}  "
              f"{agree}, {r.certificate} (W1={vals[0]:.0f})")
        rows.append(dict(name=name, ours=t_ours, ortools=t_ort, networkx=t_nx, highs=t_hr))
    if not have_ortools:
        print("(OR-Tools not installed: pip install ortools for that column)")
    return rows


def flow_sinkhorn_section(sizes, level, budget_flow, budget_dense):
    from measureflow.bregman import graph_w1
    from measureflow.experiments.bregman_flow_sinkhorn import (
        compare_flow_vs_dense,
        delaunay_problem,
    )
    print(f"\n== flow-Sinkhorn: time to {level:.0%} relative value error (Delaunay graphs)")
    print(f"{'n':>6}{'exact(s)':>10}{'flow(s)':>10}{'gamma':>8}{'dense(s)':>10}{'gamma':>8}"
          f"{'flow/exact':>11}{'flow/dense':>11}")
    gam = [0.01, 0.003, 0.001]
    for n in sizes:
        m = max(3, n // 20)
        e, w, b1, b2, _ = delaunay_problem(n, m, 0)
        t_ex, _ = best_time(graph_w1, (e, w), b1, b2, k=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = compare_flow_vs_dense(e, w, b1, b2, gam, gam, budget_flow, budget_dense, 10)

        def best(which, res=res):
            out = (math.inf, None)
            for g, rec in res[which].items():
                best_err = np.minimum.accumulate(rec["value_err"])
                hit = np.flatnonzero(best_err <= level)
                if hit.size and rec["t"][hit[0]] < out[0]:
                    out = (rec["t"][hit[0]], g)
            return out
        tf, gf = best("flow")
        td, gd = best("dense")
        print(f"{n:>6}{t_ex:>10.4f}{tf:>10.3f}{str(gf):>8}{td:>10.3f}{str(gd):>8}"
              f"{tf / t_ex:>11.1f}{tf / td:>11.3f}")
    print("(inf = level not reached within the sweep budget; dense = the same update on the "
          "complete graph with the shortest-path cost)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes")
    args = ap.parse_args(argv)
    if args.quick:
        inst = {"grid 30x30, 100 supply": grid_instance(30, 100),
                "RGG n=1000, 100 supply": rgg_instance(1000, 100)}
        exact_section(inst, 2)
        flow_sinkhorn_section([60, 120], 0.01, 1500, 600)
    else:
        inst = {"grid 100x100, 1000 supply": grid_instance(100, 1000),
                "RGG n=1e4, 1000 supply": rgg_instance(10_000, 1000)}
        exact_section(inst, 3)
        flow_sinkhorn_section([100, 200, 400], 0.01, 4000, 1500)


if __name__ == "__main__":
    main()
