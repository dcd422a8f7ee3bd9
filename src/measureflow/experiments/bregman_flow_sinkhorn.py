"""Reproductions for Peyre (2026), arXiv 2602.01372: iterative Bregman projections and
flow-Sinkhorn for W1 on graphs (Sec. 5 benchmarks, dual O(1/k) rate of Sec. 3).

The paper's single-cell data (Waddington-OT) is not available here: the third benchmark uses
a synthetic branching trajectory (4 snapshots of cells along a Y-shaped curve, embedded in
10-D with noise) and its kNN graph, generated below.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse import csgraph

from ..bregman import graph_edges, graph_lifting_problem, graph_w1, kl_projections, line_graph_w1
from ..bregman.graph import flow_sinkhorn_iterations
from .plotting import loglog_fit, new_figure
from .registry import Claim, Outcome, experiment

PAPER = "arXiv:2602.01372"


# ----------------------------------------------------------------------------- graphs

def line_problem(n: int, m: int):
    e = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    w = np.ones(n - 1)
    b1 = np.zeros(n)
    b1[:m] = 1.0 / m
    b2 = np.zeros(n)
    b2[-m:] = 1.0 / m
    return e, w, b1, b2


def delaunay_problem(n: int, m: int, seed: int):
    from scipy.spatial import Delaunay
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2))
    tri = Delaunay(x).simplices
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]])
    e = np.unique(np.sort(e, 1), axis=0)
    w = np.linalg.norm(x[e[:, 0]] - x[e[:, 1]], axis=1)
    b1 = np.zeros(n)
    b1[np.argsort(np.linalg.norm(x - [0, 1], axis=1))[:m]] = 1.0 / m
    b2 = np.zeros(n)
    b2[np.argsort(np.linalg.norm(x - [1, 0], axis=1))[:m]] = 1.0 / m
    return e, w, b1, b2, x


def trajectory_problem(per_snapshot: int, seed: int, k: int = 4, dim: int = 10):
    """kNN graph (k, symmetrised, made connected by MST edges) of a branching point cloud."""
    rng = np.random.default_rng(seed)
    pts, day = [], []
    for d, t in enumerate((0.0, 0.5, 1.0, 1.5)):
        s = t / 1.5 + 0.08 * rng.standard_normal(per_snapshot)  # pseudotime
        s = np.clip(s, 0, 1.1)
        branch = rng.integers(0, 2, per_snapshot) * 2 - 1
        y = np.where(s < 0.4, 0.0, branch * (s - 0.4) * 1.2)
        p2 = np.stack([s * 3, y], 1) + 0.07 * rng.standard_normal((per_snapshot, 2))
        pts.append(p2)
        day.append(np.full(per_snapshot, d))
    p2 = np.concatenate(pts)
    day = np.concatenate(day)
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    X = np.concatenate([p2, np.zeros((len(p2), dim - 2))], 1) @ Q.T
    X += 0.03 * rng.standard_normal(X.shape)
    n = len(X)
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    nb = np.argsort(D, 1)[:, 1:k + 1]
    e = np.stack([np.repeat(np.arange(n), k), nb.ravel()], 1)
    A = sp.coo_matrix((D[e[:, 0], e[:, 1]], (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    A = A.maximum(A.T)
    ncomp, lab = csgraph.connected_components(A, directed=False)
    if ncomp > 1:  # join components by the shortest links of the complete graph's MST
        T = csgraph.minimum_spanning_tree(sp.csr_matrix(D)).tocoo()
        keep = lab[T.row] != lab[T.col]
        A = A + sp.coo_matrix((T.data[keep], (T.row[keep], T.col[keep])), shape=(n, n))
        A = A.maximum(A.T)
    A = sp.triu(A, 1).tocoo()
    e = np.stack([A.row, A.col], 1)
    w = A.data.astype(float)
    b1 = (day == 0).astype(float)
    b1 /= b1.sum()
    b2 = (day == 3).astype(float)
    b2 /= b2.sum()
    return e, w, b1, b2, p2, day


# ----------------------------------------------------------------------------- runs

class one_thread:
    """Run torch single-threaded (the sweeps are many tiny scatter ops; on a shared 2-core
    machine intra-op threads only add contention and noise to the wall-clock curves)."""

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def _arcs(e):
    et = torch.as_tensor(e)
    return torch.cat([et[:, 1], et[:, 0]]), torch.cat([et[:, 0], et[:, 1]])


def _dense_arcs(n, D):
    ii, jj = np.nonzero(~np.eye(n, dtype=bool))
    return (torch.as_tensor(jj), torch.as_tensor(ii), torch.as_tensor(D[ii, jj]))


def run_curve(head, tail, w_arc, b, gamma, z, max_iter, check_every, value_ref, flow_ref=None,
              flow_map=None, omega=0.5):
    """Run flow-Sinkhorn, recording (time excluding the recording, rel. value error,
    rel. flow error) at every check. ``flow_map(f_arc) -> net edge flow`` for the flow error."""
    bt = torch.as_tensor(b)
    rec = {"t": [], "it": [], "value_err": [], "flow_err": []}
    clock = {"start": time.perf_counter(), "paused": 0.0}
    p = len(w_arc)

    def cb(it, v):
        t0 = time.perf_counter()
        h = v / 2
        f = z * torch.exp((-w_arc + h[head] - h[tail]) / gamma)
        val = float(-(h * bt).sum() - gamma * f.sum() + gamma * z * p)
        rec["t"].append(t0 - clock["start"] - clock["paused"])
        rec["it"].append(it)
        rec["value_err"].append(abs(val - value_ref) / value_ref)
        if flow_ref is not None:
            F = flow_map(f.numpy())
            rec["flow_err"].append(float(np.linalg.norm(F - flow_ref) / np.linalg.norm(flow_ref)))
        clock["paused"] += time.perf_counter() - t0

    flow_sinkhorn_iterations(head, tail, w_arc, bt, gamma, z=z, max_iter=max_iter, tol=1e-300,
                             check_every=check_every, omega=omega, callback=cb)
    for key in ("value_err", "flow_err"):
        rec[key + "_best"] = np.minimum.accumulate(rec[key]).tolist() if rec[key] else []
    return rec


def time_to(rec, key, level):
    best = np.asarray(rec[key + "_best"])
    hit = np.flatnonzero(best <= level)
    return float(rec["t"][hit[0]]) if hit.size else math.inf


def line_dense_flow_map(n):
    """Net edge flow on the path 0 - 1 - ... - (n-1) of a plan on the complete graph's arcs
    (``_dense_arcs`` order), each pair routed along its unique path: the flow on edge
    (k, k + 1) is sum_{i <= k < j} P_ij - sum_{j <= k < i} P_ij (the paper's evaluation of
    vanilla Sinkhorn "through the corresponding graph-flow representation", Sec. 5)."""
    ii, jj = np.nonzero(~np.eye(n, dtype=bool))
    k = np.arange(n - 1)

    def flow_map(f):
        P = np.zeros((n, n))
        P[ii, jj] = f
        R = np.cumsum(P, 0)                                   # R[k, j] = sum_{i <= k} P_ij
        right = np.cumsum(R[:, ::-1], 1)[:, ::-1]             # sum_{i <= k, j >= c}
        fwd = right[k, k + 1]
        back = np.cumsum(R[-1])[k] - np.cumsum(R, 1)[k, k]    # sum_{i > k, j <= k}
        return fwd - back
    return flow_map


def compare_flow_vs_dense(e, w, b1, b2, gammas_flow, gammas_dense, iters_flow, iters_dense,
                          check_every, dense_flow_map=None, cost_iters=0, cost_reps=0):
    n = len(b1)
    ex = graph_w1((e, w), b1, b2)
    W1 = float(ex.value)
    ee, ww = ex.edges, ex.lengths
    head, tail = _arcs(ee)
    E = len(ee)
    w_arc = torch.as_tensor(np.concatenate([ww, ww]))
    mass = float(np.maximum(b1 - b2, 0).sum())
    # reference mass z = X0 / p (paper's choice), X0 = l1 mass of the exact flow / plan
    z_flow = float(np.abs(ex.flow).sum()) / (2 * E)
    z_dense = mass / (n * (n - 1))
    A = sp.coo_matrix((ww, (ee[:, 0], ee[:, 1])), shape=(n, n))
    D = csgraph.shortest_path(A, directed=False)
    dh, dt_, dw = _dense_arcs(n, D)

    def flow_map(f):
        return f[:E] - f[E:]

    out = {"W1": W1, "flow": {}, "dense": {}}
    if cost_iters:
        bt = torch.as_tensor(b1 - b2)
        out["cost"] = iteration_cost({"flow": (head, tail, w_arc, bt), "dense": (dh, dt_, dw, bt)},
                                     cost_iters, cost_reps)
    for g in gammas_flow:
        out["flow"][g] = run_curve(head, tail, w_arc, b1 - b2, g, z_flow, iters_flow,
                                   check_every, W1, ex.flow, flow_map)
    for g in gammas_dense:
        out["dense"][g] = run_curve(dh, dt_, dw, b1 - b2, g, z_dense, iters_dense, check_every,
                                    W1, None if dense_flow_map is None else ex.flow,
                                    dense_flow_map)
    return out


def _plot_curves(ax, res, key, title):
    cmap = __import__("matplotlib").colormaps["viridis"]
    allg = sorted(set(res["flow"]) | set(res["dense"]))
    col = {g: cmap(i / max(1, len(allg) - 1)) for i, g in enumerate(allg)}
    for g, rec in res["flow"].items():
        if rec[key + "_best"]:
            ax.loglog(np.maximum(rec["t"], 1e-4), rec[key + "_best"], "-", color=col[g],
                      label=f"flow g={g:g}")
    for g, rec in res["dense"].items():
        if rec[key + "_best"]:
            ax.loglog(np.maximum(rec["t"], 1e-4), rec[key + "_best"], "--", color=col[g],
                      label=f"dense g={g:g}")
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("best-so-far relative " + key.replace("_err", "") + " error")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)


def _best_time(res, which, level, key="value_err"):
    """Earliest time at which some gamma reaches ``level``: iterations x the measured cost per
    iteration when ``res`` has one (robust to timing noise), else the recorded wall time."""
    if "cost" in res:
        ts = [first_iteration(rec, key, level) * res["cost"][which]
              for rec in res[which].values()]
    else:
        ts = [time_to(rec, key, level) for rec in res[which].values()]
    return min(ts) if ts else math.inf


# ----------------------------------------------------------------------------- experiments

# The line benchmark follows the paper's reference benchmark (Sec. 5, Fig. bench-overview-small
# line panel, Fig. bench-line-gpu-scaling): reference mass z = 1, both methods recentred,
# flow-Sinkhorn over-relaxed (omega = 0.8), "vanilla Sinkhorn" = the same update on the
# complete graph with the shortest-path lengths D (omega = 1/2), error of the centred dual
# potential against the LP dual, best so far, against time.

LINE_LEVELS = (0.5, 0.3, 0.2, 0.1, 0.05)


def line_kr_potential(b, lengths):
    """An optimal Kantorovich-Rubinstein potential of W1 on the path 0 - 1 - ... - (n-1).

    The flow on edge (k, k+1) is F_k = sum_{j<=k} b_j (b = b1 - b2); complementary slackness
    forces phi_k - phi_{k+1} = sign(F_k) l_k on every edge with F_k != 0 (phi large at the
    sources). On edges with F_k = 0 any |phi_k - phi_{k+1}| <= l_k is optimal: this returns 0
    there. Returns (phi centred, unique) with ``unique`` True iff every edge carries flow
    (then the LP dual is unique up to the additive constant).
    """
    F = np.cumsum(b)[:-1]
    steps = np.sign(F) * np.asarray(lengths, dtype=float)
    phi = -np.concatenate([[0.0], np.cumsum(steps)])
    return phi - phi.mean(), bool(np.all(F != 0))


def line_geometry(n, m, method):
    """Arcs (head, tail, lengths) and b = b1 - b2 of the line benchmark: the path's 2(n-1)
    arcs (``flow``) or the n(n-1) arcs of the complete graph with the shortest-path lengths
    (``vanilla``; no self-loops)."""
    e, w, b1, b2 = line_problem(n, m)
    if method == "flow":
        head, tail = _arcs(e)
        W = torch.as_tensor(np.concatenate([w, w]))
    else:
        A = sp.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n))
        head, tail, W = _dense_arcs(n, csgraph.shortest_path(A, directed=False))
    return head, tail, W, torch.as_tensor(b1 - b2), e, w, b1 - b2


def line_curve(item):
    """One (size, method, gamma) run of the line benchmark: the relative L2 errors of the
    centred potential phi = -h (vs the LP dual) and of the net edge flow (vs the LP flow) at
    every ``check_every`` iterations."""
    n, m, method, gamma, omega, iters, check_every = item
    torch.set_num_threads(1)
    head, tail, W, b, e, w, bb = line_geometry(n, m, method)
    phi_star, _ = line_kr_potential(bb, w)
    F_star = np.cumsum(bb)[:-1]
    E = n - 1
    route = line_dense_flow_map(n) if method == "vanilla" else None
    rec = {"it": [], "dual": [], "flow": []}

    def cb(it, v):
        h = v / 2
        phi = (-h).numpy()
        phi = phi - phi.mean()
        rec["it"].append(int(it))
        rec["dual"].append(float(np.linalg.norm(phi - phi_star) / np.linalg.norm(phi_star)))
        f = torch.exp((-W + h[head] - h[tail]) / gamma).numpy()   # z = 1
        F = route(f) if route is not None else f[:E] - f[E:]
        rec["flow"].append(float(np.linalg.norm(F - F_star) / np.linalg.norm(F_star)))

    flow_sinkhorn_iterations(head, tail, W, b, gamma, z=1.0, max_iter=iters, tol=1e-300,
                             check_every=check_every, omega=omega, callback=cb)
    return rec


def iteration_cost(geometries, k, reps, gamma=0.1, z=1.0):
    """Seconds per iteration of each method ``{name: (head, tail, W, b)}`` (no checks):
    ``k`` iterations, the methods interleaved, best of ``reps`` (wall-clock noise only adds
    time). The cost of an iteration does not depend on gamma or z (same operations; measured
    on the Delaunay problem at gamma = 0.1, 0.01, 0.003: equal within the timing noise)."""
    best = {meth: math.inf for meth in geometries}
    for _ in range(reps):
        for meth, (head, tail, W, b) in geometries.items():
            t0 = time.perf_counter()
            flow_sinkhorn_iterations(head, tail, W, b, gamma, z=z, max_iter=k, tol=1e-300,
                                     check_every=k, omega=0.5)
            best[meth] = min(best[meth], (time.perf_counter() - t0) / k)
    return best


def _line_iteration_cost(n, m, k, reps):
    """Seconds per iteration of the line benchmark's two methods (see iteration_cost)."""
    return iteration_cost({meth: line_geometry(n, m, meth)[:4] for meth in ("flow", "vanilla")},
                          k, reps)


def first_iteration(rec, key, level):
    """The first recorded iteration at which the best-so-far ``rec[key]`` is <= ``level``
    (inf if never)."""
    best = np.minimum.accumulate(rec[key])
    hit = np.flatnonzero(best <= level)
    return rec["it"][hit[0]] if hit.size else math.inf


def time_to_levels(curves, cost, key, levels):
    """{level: (time, gamma)}: the earliest modelled time (iterations x cost per iteration)
    at which some gamma of the grid has a best-so-far error <= level."""
    out = {}
    for L in levels:
        ts = {g: first_iteration(r, key, L) * cost for g, r in curves.items()}
        g = min(ts, key=ts.get)
        out[L] = (ts[g], g)
    return out


def _plot_line(ax, curves, cost, key, title):
    cmap = __import__("matplotlib").colormaps["viridis"]
    for meth, style in (("flow", "-"), ("vanilla", "--")):
        gs = sorted(curves[meth])
        for i, g in enumerate(gs):
            r = curves[meth][g]
            ax.loglog(np.asarray(r["it"]) * cost[meth], np.minimum.accumulate(r[key]), style,
                      color=cmap(i / max(1, len(gs) - 1)), label=f"{meth} g={g:g}")
    ax.set_xlabel("iterations x measured cost per iteration (s)")
    ax.set_ylabel(f"best-so-far relative {key} error")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=5)


def line_graph_impl(cfg):
    items, index = [], []
    for n, m in cfg.sizes:
        for meth, gammas, omega, iters in (
                ("flow", cfg.gammas_flow, cfg.omega_flow, cfg.iters_flow),
                ("vanilla", cfg.gammas_vanilla, cfg.omega_vanilla, cfg.iters_vanilla)):
            for g in gammas:
                items.append((n, m, meth, float(g), float(omega), int(iters), cfg.check_every))
                index.append((n, meth, float(g)))
    results = cfg.map(line_curve, items)
    curves = {}
    for (n, meth, g), rec in zip(index, results):
        curves.setdefault(n, {"flow": {}, "vanilla": {}})[meth][g] = rec
    rows = []
    for n, m in cfg.sizes:
        cost = _line_iteration_cost(n, m, cfg.cost_iters, cfg.cost_reps)
        e, w, b1, b2 = line_problem(n, m)
        ex = graph_w1((e, w), b1, b2)
        phi_star, unique = line_kr_potential(b1 - b2, w)
        row = dict(n=n, m=m, W1=float(ex.value), closed_form=line_graph_w1(b1, b2, w),
                   lp_dual_vs_closed_form=float(np.abs(np.asarray(ex.potential) - phi_star).max()),
                   dual_unique=unique, cost_flow=cost["flow"], cost_vanilla=cost["vanilla"])
        for key in ("dual", "flow"):
            for meth in ("flow", "vanilla"):
                tl = time_to_levels(curves[n][meth], cost[meth], key, LINE_LEVELS)
                row[f"t_{key}_{meth}"] = {L: t for L, (t, _) in tl.items()}
                row[f"gamma_{key}_{meth}"] = {L: g for L, (_, g) in tl.items()}
                row[f"best_{key}_{meth}"] = {g: float(min(r[key])) for g, r in
                                             curves[n][meth].items()}
                row[f"iters_{key}_{meth}"] = {
                    L: first_iteration(curves[n][meth][row[f"gamma_{key}_{meth}"][L]], key, L)
                    for L in LINE_LEVELS}
        rows.append(row)
    n0 = cfg.sizes[0][0]
    fig, ax = new_figure(3, size=(4.4, 3.5))
    cost0 = {"flow": rows[0]["cost_flow"], "vanilla": rows[0]["cost_vanilla"]}
    _plot_line(ax[0], curves[n0], cost0, "dual", f"line n={n0}: dual potential vs LP dual")
    _plot_line(ax[1], curves[n0], cost0, "flow", f"line n={n0}: edge flow vs LP flow")
    for key, style in (("dual", "o-"), ("flow", "s--")):
        for meth in ("flow", "vanilla"):
            tt = [r[f"t_{key}_{meth}"][LINE_LEVELS[0]] for r in rows]
            ax[2].semilogy([r["n"] for r in rows], tt, style, label=f"{meth}, {key} error")
    ax[2].set_xlabel("n (line graph)")
    ax[2].set_ylabel(f"time to {LINE_LEVELS[0]:.0%} error (s, modelled)")
    ax[2].legend(fontsize=6)

    def compare(row, key, sub=None):
        """Time-to-level comparison at each level of LINE_LEVELS: [level, t_flow, t_vanilla]
        (best gamma of ``sub[meth]`` or of the whole grid). A level is decided when both
        reach it, or when one reaches it before the other's whole budget ran out (then the
        other is slower); ``ok`` iff flow-Sinkhorn is first at every decided level and one
        level at least is decided. Undecided levels are listed with a None verdict."""
        det, ok, decided = [], True, 0
        for L in LINE_LEVELS:
            t = {}
            for meth in ("flow", "vanilla"):
                cs = {g: r for g, r in curves[row["n"]][meth].items()
                      if sub is None or g in sub[meth]}
                t[meth] = time_to_levels(cs, row[f"cost_{meth}"], key, [L])[L][0]
            tf, tv = t["flow"], t["vanilla"]
            Tf = cfg.iters_flow * row["cost_flow"]
            Tv = cfg.iters_vanilla * row["cost_vanilla"]
            if not (math.isfinite(tf) or math.isfinite(tv)):
                continue
            if math.isfinite(tf) and math.isfinite(tv):
                verdict = tf < tv
            elif math.isfinite(tf):
                verdict = True if tf < Tv else None
            else:
                verdict = False if tv < Tf else None
            det.append([L, tf, tv, verdict])
            if verdict is not None:
                decided += 1
                ok = ok and verdict
        return ok and decided > 0, det

    timing = ("A level is decided when both methods reach it, or when one reaches it "
              "before the other's whole iteration budget (in time) ran out; None = "
              "undecided. Time = iterations to the level x the measured cost of one iteration (each "
              "method timed on its own, without the error recording, interleaved, best of "
              f"{cfg.cost_reps} x {cfg.cost_iters} iterations, one torch thread, CPU): robust to "
              "load changes between runs but still a CPU figure (the lead re-times on an idle "
              "machine). Best gamma of each grid per level (the lower envelope of the paper's "
              "curves). Levels fixed at "
              f"{list(LINE_LEVELS)}, inf = not reached within the iteration budget.")
    setting = ("Paper setting (reference benchmark, benchmarks_parameters.md): path of n nodes, "
               "unit lengths, m nodes of mass 1/m at each end, reference mass z = 1, flow "
               f"gammas {list(cfg.gammas_flow)} with omega = {cfg.omega_flow} (the reference's "
               f"over-relaxation; 0.5 is the exact algorithm), vanilla gammas "
               f"{list(cfg.gammas_vanilla)} with omega = {cfg.omega_vanilla}, budgets "
               f"{cfg.iters_flow} / {cfg.iters_vanilla} iterations; vanilla = the same update "
               "on the n(n-1) arcs of the complete graph with the shortest-path lengths "
               "(O(n^2) per iteration). Potentials recentred at every check (the update is "
               "translation-equivariant, so this changes no iterate).")
    r0 = rows[0]
    ok_d, det_d = compare(r0, "dual")
    ok_f, det_f = compare(r0, "flow")
    small = {"flow": [min(cfg.gammas_flow)], "vanilla": [min(cfg.gammas_vanilla)]}
    ok_s, det_s = compare(r0, "dual", small)
    ok_sf, det_sf = compare(r0, "flow", small)
    for r in rows:
        r["budget_time_flow"] = cfg.iters_flow * r["cost_flow"]
        r["budget_time_vanilla"] = cfg.iters_vanilla * r["cost_vanilla"]
    claims = [
        Claim.close("Sanity check, not a statement of the paper (the references of the "
                    "errors): the exact graph-W1 solver equals the path closed form W1 = sum_i "
                    "|sum_{j<=i} (b1-b2)_j| and its dual equals the closed-form KR potential "
                    "(phi_k - phi_{k+1} = 1 on every edge; every edge carries flow, so the LP "
                    "dual is unique up to a constant): max over sizes of both differences",
                    0.0, max(max(abs(r["W1"] - r["closed_form"]) / r["closed_form"],
                                 r["lp_dual_vs_closed_form"] / r["n"]) for r in rows),
                    atol=1e-9,
                    note="W1 relative, dual absolute / n (the potential's range is n - 1); the "
                         "reference benchmark checks its LP the same way "
                         "(--line-check-closed-form)"),
        Claim.holds(f"Sec. 5, Fig. bench-overview-small (line panel, n = {n0}): 'at small "
                    "gamma, flow-Sinkhorn reaches a given unregularized accuracy faster than "
                    "vanilla Sinkhorn'. Metric as plotted by the reference implementation: "
                    "best-so-far relative L2 error of the centred dual potential vs the LP dual. "
                    "Checked: flow-Sinkhorn's time to each level (best gamma of its grid) < "
                    "vanilla's (best gamma), at every decided level; detail [level, t_flow, "
                    "t_vanilla, flow first?]",
                    ok_d, detail=det_d, note=setting + " " + timing + " Sign: phi = -h "
                    "(fixed convention; the reference takes the min over both signs, the same "
                    "number whenever the error is below 1). New in issue 14 (the old claims measured the "
                    "flow error, next claim, and before that the value error)."),
        Claim.holds(f"Sec. 5, Fig. bench-overview-small (line panel, n = {n0}), metric as in "
                    "the paper's text: 'the best-so-far relative Euclidean error on the "
                    "recovered graph flow' vs the LP min-cost flow. Checked as the previous "
                    "claim (flow-Sinkhorn first at every decided level, best gamma of each "
                    "grid); detail [level, t_flow, t_vanilla, flow first?]", ok_f, detail=det_f,
                    note="vanilla's flow: its complete-graph flow routed along the path (on a "
                         "tree the edge flow is fixed by the divergence, so this error is "
                         "vanilla's marginal violation). Why most levels stay undecided (measured "
                         "with line_curve, omega = 0.8, not part of this run): flow-Sinkhorn's "
                         "flow error needs ~n^2 sweeps (gamma = 0.1: 5 % after 420, 1780, 7100 "
                         "sweeps at n = 20, 40, 80; dual 5 %: 240, 1020, 4050) -- at small gamma "
                         "a node's update is the average of its value and the midpoint of its "
                         "neighbours' (a diffusion), so the linear KR potential builds up in "
                         "O(n^2) sweeps, beyond the 1500-sweep budget at n = 80, and the flow "
                         "exp((-w + dh) / gamma) is exponentially sensitive to the slope. Old "
                         "version (issue-17 port): flow-Sinkhorn with z = X0 / p, omega = 1/2, "
                         "vanilla's routed plan, quick sizes n = 40, 80: 'reaches 5 % flow error "
                         "first' FAILED (best flow error 0.43 / 0.84 after 1000 sweeps). " + timing),
    ]
    claims.append(Claim.holds(
        f"Sec. 5, Fig. bench-overview-small (line panel, n = {n0}), 'at small gamma': the same "
        f"time-to-level comparison between the smallest gamma of each grid (flow "
        f"{min(cfg.gammas_flow):g}, vanilla {min(cfg.gammas_vanilla):g}), dual metric; detail "
        "[level, t_flow, t_vanilla, flow first?]", ok_s, detail=det_s,
        note="flow metric at the same gammas (metric small_gamma_flow_metric): "
             f"{det_sf}. " + timing))
    if len(rows) >= 2:
        def ratio(r, key):
            L = LINE_LEVELS[1]
            tf, tv = r[f"t_{key}_flow"][L], r[f"t_{key}_vanilla"][L]
            return tv / tf if math.isfinite(tf) else math.nan
        ratios = [ratio(r, "dual") for r in rows]
        claims.append(Claim.holds(
            "Sec. 5, Fig. bench-line-gpu-scaling: 'increasing the line graph size makes the "
            "separation between vanilla Sinkhorn and flow-Sinkhorn more pronounced' (sizes (n, "
            "m) = (80, 6), (160, 12), (320, 24)). Checked: t_vanilla / t_flow at the "
            f"{LINE_LEVELS[1]:.0%} dual-error level increases with n (inf when vanilla misses "
            "it, nan when flow-Sinkhorn does); detail [n, ratio]",
            all(math.isfinite(a) or a == math.inf for a in ratios)
            and all(b >= a for a, b in zip(ratios, ratios[1:])),
            detail=[[r["n"], q] for r, q in zip(rows, ratios)],
            note="on CPU (the paper's figure: GPU). Old version: t_dense / t_flow at 5 % "
                 "FLOW error, sizes (40, 3), (80, 6) quick and (80, 6) ... (640, 48) full, "
                 "z = X0 / p, omega = 1/2: failed at quick sizes (nan: flow-Sinkhorn missed the "
                 "level). Why the new version fails (full run, loaded CPU): within the "
                 "paper's budgets neither method reaches 30 % dual error at n = 160, 320 (best "
                 "flow 0.41 / 0.82, vanilla 0.54 / 0.81), so the ratio is nan there. The "
                 "separation itself is measured: n = 160, flow-Sinkhorn reaches 50 % at 0.64 s, "
                 "vanilla never in its 19 s budget; n = 320, flow 0.82 after its 1.07 s budget vs "
                 "vanilla 0.81 after 84 s (per-iteration cost ratio 2.1, 9.1, 29 at n = 80, "
                 "160, 320). " + timing))
    return Outcome(metrics={"rows": rows, "levels": list(LINE_LEVELS),
                            "small_gamma_dual": det_s, "small_gamma_flow_metric": det_sf},
                   figures={"line": fig}, claims=claims)


def flow_vs_dense_impl(cfg):
    e, w, b1, b2, x = delaunay_problem(cfg.n_delaunay, cfg.m_delaunay, cfg.seed)
    rd = compare_flow_vs_dense(e, w, b1, b2, cfg.gammas_flow, cfg.gammas_dense, cfg.iters_flow,
                               cfg.iters_dense, cfg.check_every, cost_iters=cfg.cost_iters,
                               cost_reps=cfg.cost_reps)
    et, wt, c1, c2, p2, day = trajectory_problem(cfg.per_snapshot, cfg.seed)
    # the trajectory's lengths are ~10x larger: scale gamma with the mean edge length
    sc = float(wt.mean() / w.mean())
    rt = compare_flow_vs_dense(et, wt, c1, c2, [g * sc for g in cfg.gammas_flow],
                               [g * sc for g in cfg.gammas_dense], cfg.iters_flow,
                               cfg.iters_dense, cfg.check_every, cost_iters=cfg.cost_iters,
                               cost_reps=cfg.cost_reps)
    fig, ax = new_figure(3, 2, size=(4.2, 3.4))
    _plot_curves(ax[0, 0], rd, "value_err", f"Delaunay n={cfg.n_delaunay}: value")
    _plot_curves(ax[0, 1], rd, "flow_err", "Delaunay: flow")
    ax[0, 2].triplot(x[:, 0], x[:, 1], lw=0.3, color="0.6")
    ax[0, 2].scatter(x[b1 > 0, 0], x[b1 > 0, 1], c="C0", s=12)
    ax[0, 2].scatter(x[b2 > 0, 0], x[b2 > 0, 1], c="C3", s=12)
    ax[0, 2].set_title("Delaunay graph, sources/sinks", fontsize=9)
    _plot_curves(ax[1, 0], rt, "value_err", "trajectory kNN: value")
    _plot_curves(ax[1, 1], rt, "flow_err", "trajectory kNN: flow")
    ax[1, 2].scatter(p2[:, 0], p2[:, 1], c=day, s=6, cmap="viridis")
    ax[1, 2].set_title("synthetic branching trajectory (2-D latent)", fontsize=9)
    rows = {}
    for name, res in (("delaunay", rd), ("trajectory", rt)):
        rows[name] = dict(W1=res["W1"], t_flow=_best_time(res, "flow", cfg.level),
                          t_dense=_best_time(res, "dense", cfg.level),
                          best_flow_err=min(min(r["flow_err_best"]) for r in
                                            res["flow"].values()),
                          best_value_err_flow=min(min(r["value_err_best"]) for r in
                                                  res["flow"].values()),
                          best_value_err_dense=min(min(r["value_err_best"]) for r in
                                                   res["dense"].values()))
    claims = [
        Claim.holds(f"Paper (Sec. 5): on the {k} graph flow-Sinkhorn reaches {cfg.level:.0%} "
                    "value error faster than dense Sinkhorn on the shortest-path matrix",
                    r["t_flow"] < r["t_dense"], detail=[r["t_flow"], r["t_dense"]],
                    note=("inf = not reached within the budget; time = iterations to the "
                          "level x seconds per iteration (best of "
                          f"{cfg.cost_reps} x {cfg.cost_iters} iterations without checks, the two "
                          "methods interleaved, one torch thread), as in bregman.line-graph: "
                          "robust to timing noise. Before 2 Dec 2026 the recorded wall time of "
                          "one run, which flipped the quick claims in 1-2 of 3 runs (e.g. "
                          "trajectory: flow 0.053 s vs dense 0.045 s). flow-Sinkhorn's "
                          "reference mass z = X0/p uses the l1 mass X0 of the exact optimal "
                          "flow (an oracle value; the library default uses a conservative "
                          "bound), dense Sinkhorn's uses the known plan mass; gamma is scaled by the mean edge length."
                          + (" Synthetic stand-in for the single-cell data."
                             if k == "trajectory" else "")))
        for k, r in rows.items()]
    return Outcome(metrics=rows, figures={"curves": fig}, claims=claims)


def dual_rate_impl(cfg):
    import warnings
    e, w, b1, b2 = line_problem(cfg.n, cfg.m)
    C, blocks, _ = graph_lifting_problem((e, w), b1, b2)
    consts, fig_data = [], []
    bounded = []
    for g in cfg.gammas:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = kl_projections(C, blocks, g, max_iter=cfg.ref_sweeps, tol=1e-13,
                                 check_every=cfg.ref_sweeps)
            C2, blocks2, _ = graph_lifting_problem((e, w), b1, b2)
            r = kl_projections(C2, blocks2, g, max_iter=cfg.sweeps, tol=1e-300)
        Fstar = max(float(ref.dual_value), max(r.dual_values))
        gaps = np.maximum(Fstar - np.asarray(r.dual_values), 0.0)
        k = np.arange(1, len(gaps) + 1)
        kg = k * gaps
        consts.append(float(kg.max()))
        half = len(kg) // 2
        bounded.append(float(kg[half:].max() / max(kg[:half].max(), 1e-300)))
        fig_data.append((g, k, kg))
    fig, ax = new_figure(2)
    for g, k, kg in fig_data:
        ax[0].loglog(k, np.maximum(kg, 1e-16), label=f"gamma={g:g}")
    ax[0].set_xlabel("sweep k")
    ax[0].set_ylabel("k x (F* - F(u_k))")
    ax[0].legend(fontsize=7)
    inv = 1.0 / np.asarray(cfg.gammas)
    ax[1].loglog(inv, consts, "o-")
    ax[1].set_xlabel("1 / gamma")
    ax[1].set_ylabel("sup_k k x dual gap")
    fit = loglog_fit(inv, consts)
    claims = [
        Claim.at_most("Thm. (Sec. 3): k x dual gap stays bounded (sup over the 2nd half of the "
                      "sweeps / sup over the 1st half, worst gamma)", 1.0, max(bounded)),
        Claim.at_most("Abstract + Sec. 3, Thm. (dual rate): the dual objective decreases at "
                      "O(1/k) with a constant that scales only linearly in 1/gamma: log-log "
                      "slope of sup_k k x gap against 1/gamma <= 1 + 2 SE",
                      1.0 + 2 * (fit["slope_se"] if math.isfinite(fit["slope_se"]) else 0.0),
                      fit["slope"], note="the theorem's constant 8 X U^2 ||A||^2 / gamma also "
                      "contains gamma-dependent X and U, and is an upper bound: a slope below 1 "
                      "is consistent with it; only the scaling is checked"),
    ]
    return Outcome(metrics={"gammas": cfg.gammas, "sup_k_gap": consts, "slope": fit,
                            "second_over_first_half": bounded},
                   figures={"dual_rate": fig}, claims=claims)


@experiment("bregman.line-graph", paper=PAPER, section="Sec. 5, Figs. bench-overview-small (line) + bench-line-gpu-scaling",
            title="Line graph: flow-Sinkhorn vs vanilla Sinkhorn on the dense path metric "
                  "(paper's benchmark setting)",
            quick=dict(seed=0, sizes=[(80, 6)], gammas_flow=[0.001, 0.1, 5.0],
                       gammas_vanilla=[0.005, 0.3], omega_flow=0.8,
                       omega_vanilla=0.5, iters_flow=1500, iters_vanilla=4000,
                       check_every=20, cost_iters=100, cost_reps=3),
            full=dict(seed=0, sizes=[(80, 6), (160, 12), (320, 24)],
                      gammas_flow=[0.001, 0.01, 0.1, 1.0, 5.0],
                      gammas_vanilla=[0.005, 0.02, 0.08, 0.3], omega_flow=0.8,
                      omega_vanilla=0.5, iters_flow=1500, iters_vanilla=4000, check_every=5,
                      cost_iters=200, cost_reps=5))
def line_graph(cfg):
    with one_thread():
        return line_graph_impl(cfg)

@experiment("bregman.flow-vs-dense", paper=PAPER,
            section="Sec. 5, Fig. bench-overview-small (Delaunay, single-cell kNN)",
            title="Delaunay and branching-trajectory kNN graphs: flow- vs dense Sinkhorn",
            quick=dict(seed=0, n_delaunay=140, m_delaunay=7, per_snapshot=30,
                       gammas_flow=[0.01, 0.003], gammas_dense=[0.01, 0.003],
                       iters_flow=800, iters_dense=250, check_every=25, level=0.05,
                       cost_iters=400, cost_reps=7),
            full=dict(seed=0, n_delaunay=140, m_delaunay=7, per_snapshot=60,
                      gammas_flow=[0.009, 0.003, 0.0009], gammas_dense=[0.009, 0.003, 0.0009],
                      iters_flow=2400, iters_dense=6000, check_every=20, level=0.01,
                      cost_iters=200, cost_reps=5))
def flow_vs_dense(cfg):
    with one_thread():
        return flow_vs_dense_impl(cfg)

@experiment("bregman.dual-rate", paper=PAPER, section="Sec. 3, Thm. (dual rate O(1/k))",
            title="Dual gap of cyclic KL projections on the lifted graph-W1 problem: k x gap",
            quick=dict(seed=0, n=24, m=3, gammas=[0.5, 0.25, 0.125], sweeps=800,
                       ref_sweeps=4000),
            full=dict(seed=0, n=80, m=6, gammas=[1.0, 0.5, 0.25, 0.125, 0.0625], sweeps=20000,
                      ref_sweeps=80000))
def dual_rate(cfg):
    with one_thread():
        return dual_rate_impl(cfg)


__all__ = ["line_problem", "delaunay_problem", "trajectory_problem", "graph_edges",
           "line_kr_potential", "line_geometry", "line_curve", "first_iteration",
           "time_to_levels"]
