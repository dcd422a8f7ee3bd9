"""Wasserstein-1 distance on a weighted graph: exact transshipment and flow-Sinkhorn.

For an undirected connected graph with edge lengths w_e >= 0 and two node measures b1, b2 of
equal mass, the Beckmann problem

    W1(b1, b2) = min_F  sum_e w_e |F_e|   s.t.  div F = b1 - b2,

(F_e a signed flow on edge e = (u, v), positive from u to v; div = outflow - inflow) equals OT
with the shortest-path cost, and its dual is Kantorovich-Rubinstein duality on the graph:

    W1(b1, b2) = max_phi <phi, b1 - b2>   s.t.  |phi_u - phi_v| <= w_e  on every edge.

``graph_w1`` returns the flow, the potential phi (this sign convention: phi is large at the
sources), the value and a certificate. Two methods:

* ``method="exact"`` -- an exact min-cost flow. Default path (``solver="network_simplex"``):
  the transshipment is rewritten as a *sparse* transportation problem (node i on the left with
  supply b+_i + B, node j on the right with demand b-_j + B, one arc of cost w per directed
  edge and one arc of cost 0 from i to its own copy, B = 2 x mass so every copy arc is basic)
  and solved by POT's sparse network simplex (C++, LEMON-derived). Its duals give phi = u.
  ``solver="highs"``: the signed flow LP (F = F+ - F-) through SciPy's HiGHS (dual simplex),
  potentials = the equality-constraint marginals. Both take float lengths and masses.
  ``solver="ortools"`` (optional package, integer data only): OR-Tools' cost-scaling
  ``SimpleMinCostFlow`` for the flow, then the potential from shortest paths in the residual
  graph (vectorised Bellman-Ford). Every exact path returns a checked certificate (feasible
  flow, 1-Lipschitz potential, zero gap).
* ``method="flow_sinkhorn"`` -- the single-potential log-domain update of Peyre (2026),
  arXiv 2602.01372, Sec. 5, run by the transport engine (a signed
  :class:`~measureflow.ot.geometry.Graph`, its :class:`~measureflow.ot.loop.Divergence` block,
  :func:`~measureflow.ot.loop.cyclic_loop`: scatter reductions, O(E) per sweep, GPU
  unchanged), with a rounding step to a feasible flow.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse import csgraph

from ..core.arrays import ArrayContext, check_tensor_kind
from ..core.errors import InputError
from ..core.results import SolverResult, report_convergence
from ..core.validation import (
    check_choice,
    check_in_range,
    check_int,
    check_masses_match,
    check_nonnegative,
    check_positive,
    check_shape,
)
from ..ot.geometry import Graph
from ..ot.loop import Divergence, PotentialProjection, cyclic_loop

__all__ = ["GraphW1Result", "graph_w1", "flow_sinkhorn", "graph_edges", "line_graph_w1"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class GraphW1Result(SolverResult):
    """Result of :func:`graph_w1`.

    Attributes
    ----------
    value : float or 0-d tensor
        ``exact``: W1(b1, b2). ``flow_sinkhorn``: the regularised dual value D_gamma(h) (the
        paper's estimate of W1; it carries an O(gamma) bias and need not be a bound).
    flow : array, shape (E,)
        Signed flow per undirected edge, positive from ``edges[e, 0]`` to ``edges[e, 1]``.
        For ``flow_sinkhorn`` with ``round=True`` this is the rounded feasible flow.
    raw_flow : array, shape (E,), or None
        ``flow_sinkhorn`` only: the net flow of the last iterate before rounding.
    potential : array, shape (n,)
        Node potential phi, W1 = <phi, b1 - b2> for a 1-Lipschitz phi (exact: optimal).
    edges, lengths : arrays, shapes (E, 2) and (E,)
        The deduplicated undirected edge list with ``edges[:, 0] < edges[:, 1]`` and its
        lengths, in the order used by ``flow``.
    residual : float
        ||div(flow_iterate) - (b1 - b2)||_1 of the solver's flow (for ``flow_sinkhorn``, the
        unrounded iterate: the stopping criterion). ``errors`` traces it relative to ||b1-b2||_1.
    lower, upper : float
        Certified bounds lower <= W1 <= upper: <phi', b1 - b2> for phi' = phi scaled to be
        1-Lipschitz on edges, and the cost of the (rounded) feasible flow.
    gap : float
        upper - lower (0 up to round-off for ``exact``).
    lipschitz_violation : float
        max_e (|phi_u - phi_v| - w_e)_+ of ``potential``.
    certificate : bool or None
        ``exact`` only: True iff residual, Lipschitz violation and gap are all below
        ``tol`` (default 1e-8 x mass x max length).
    method, solver : str
        The method and exact solver used (``"flow_sinkhorn"`` twice for flow-Sinkhorn).
    gamma : float or None
        flow-Sinkhorn's regularisation (set from ``eps`` when not given).
    converged, n_iter, errors
        As every :class:`~measureflow.core.results.SolverResult`.
    """

    value: Any = None
    flow: Any = None
    raw_flow: Any = None
    potential: Any = None
    edges: Any = None
    lengths: Any = None
    residual: float = 0.0
    lower: float = 0.0
    upper: float = 0.0
    gap: float = 0.0
    lipschitz_violation: float = 0.0
    certificate: bool | None = None
    method: str = ""
    solver: str = ""
    gamma: float | None = None


# ----------------------------------------------------------------------------- input checks

def _check_array_arg(x, name: str) -> None:
    """Reject complex values (their imaginary part would be dropped) and tensors the core
    cannot compute with (meta device, sparse, float16: :func:`core.arrays.check_tensor_kind`)."""
    if isinstance(x, torch.Tensor):
        check_tensor_kind(x, name)
    elif isinstance(x, np.ndarray) and np.iscomplexobj(x):
        raise InputError(f"{name}: complex values are not supported")


def _numpy_input(x, name: str) -> np.ndarray:
    """``x`` (tensor, array, list) as a NumPy array; InputError naming ``name`` for complex,
    meta or ragged input."""
    if isinstance(x, torch.Tensor):
        _check_array_arg(x, name)
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot be converted to an array ({exc})") from None
    if np.iscomplexobj(arr):
        raise InputError(f"{name}: complex values are not supported")
    return arr


def _real_array(x, name: str) -> np.ndarray:
    """``x`` as a float64 NumPy array (real numbers only)."""
    arr = _numpy_input(x, name)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _edge_array(x, name: str = "graph") -> np.ndarray:
    """An (E, 2) array of integer node indices."""
    e = _numpy_input(x, name)
    if e.ndim != 2 or e.shape[1] != 2:
        raise InputError(f"{name}: edge array must have shape (E, 2), got {e.shape}")
    if e.size and not np.issubdtype(e.dtype, np.integer):
        if (e.dtype == bool or not np.issubdtype(e.dtype, np.floating)
                or not np.all(np.isfinite(e)) or not np.all(e == np.round(e))):
            raise InputError(f"{name}: edge array must hold integer node indices "
                             f"(got dtype {e.dtype})")
    return e.astype(np.int64)


# ----------------------------------------------------------------------------- graph input

def graph_edges(graph, n: int | None = None, *, lengths=None, weight: str = "weight"):
    """Parse ``graph`` into ``(n, edges (E, 2) int64 with u < v, lengths (E,) float64 NumPy)``.

    The graph is undirected: duplicate edges keep the smallest length, self-loops are dropped,
    and the returned edges are sorted by ``(u, v)``.

    Parameters
    ----------
    graph : scipy sparse matrix, array_like of int, tuple or networkx.Graph
        A SciPy sparse (n, n) matrix whose stored off-diagonal entries are edge lengths (both
        triangles may be given; they must agree; duplicate stored entries are summed, as SciPy
        does), an ``(E, 2)`` integer array of edges together with ``lengths=`` (or a tuple
        ``(edges, lengths)``), or a networkx graph (lengths from the edge attribute ``weight``,
        default 1; node order = ``list(G.nodes)``).
    n : int, optional
        Expected number of nodes (an edge array may leave the last nodes isolated).
    lengths : array_like, shape (E,), optional
        Edge lengths, only with an edge array.
    weight : str, default "weight"
        The networkx edge attribute holding the lengths.

    Returns
    -------
    n : int
        Number of nodes.
    edges : ndarray of int64, shape (E, 2)
        Unique undirected edges with ``edges[:, 0] < edges[:, 1]``, sorted.
    lengths : ndarray of float64, shape (E,)
        Their lengths.

    Raises
    ------
    InputError
        NaN/Inf, negative or complex lengths, an asymmetric sparse matrix, non-integer or
        out-of-range node indices, a node count different from ``n``, lengths given twice or
        missing.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import graph_edges
    >>> n, e, w = graph_edges((np.array([[1, 0], [1, 2], [0, 1]]), np.array([3.0, 2.0, 1.0])))
    >>> n, e.tolist(), w.tolist()                  # the duplicate edge keeps length 1
    (3, [[0, 1], [1, 2]], [1.0, 2.0])
    """
    if not isinstance(weight, str):
        raise InputError(f"weight: expected the name (str) of an edge attribute, got {weight!r}")
    if n is not None:
        n = check_int(n, "n", min_value=0)
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx is a dependency
        nx = None
    symmetric_check = False
    if nx is not None and isinstance(graph, nx.Graph):
        if lengths is not None:
            raise InputError("lengths: a networkx graph carries its lengths (edge attribute "
                             f"{weight!r}); do not pass lengths=")
        nodes = list(graph.nodes())
        index = {v: i for i, v in enumerate(nodes)}
        uv, ws = [], []
        for u, v, d in graph.edges(data=weight, default=1.0):
            uv.append((index[u], index[v]))
            ws.append(d)
        e = np.asarray(uv, dtype=np.int64).reshape(-1, 2)
        try:
            w = _real_array(np.asarray(ws) if ws else np.zeros(0), "graph")
        except InputError as exc:
            raise InputError(f"graph: edge attribute {weight!r} must hold real lengths "
                             f"({str(exc).removeprefix('graph: ')})") from None
        nn = len(nodes)
    elif sp.issparse(graph):
        if lengths is not None:
            raise InputError("lengths: a sparse matrix carries its lengths; do not pass lengths=")
        if graph.ndim != 2 or graph.shape[0] != graph.shape[1]:
            raise InputError(f"graph: sparse matrix must be square, got shape {graph.shape}")
        coo = sp.coo_array(graph)
        if not coo.has_canonical_format:
            coo = coo.copy()
            coo.sum_duplicates()
        nn = coo.shape[0]
        e = np.stack([coo.row, coo.col], 1).astype(np.int64)
        w = _real_array(coo.data, "graph")
        symmetric_check = True
    else:
        if isinstance(graph, tuple) and len(graph) == 2:
            if lengths is not None:
                raise InputError("lengths: given twice (graph is already a tuple (edges, "
                                 "lengths))")
            graph, lengths = graph
        if lengths is None:
            raise InputError("lengths: an (E, 2) edge array needs lengths=(E,) (or pass a "
                             "tuple (edges, lengths), a scipy sparse matrix or a networkx graph)")
        e = _edge_array(graph)
        w = _real_array(lengths, "lengths")
        if w.shape != (e.shape[0],):
            raise InputError(f"lengths: expected shape ({e.shape[0]},), got {w.shape}")
        nn = (int(e.max()) + 1 if e.size else 0) if n is None else n
    _check_lengths(w)
    if n is not None and nn != n:
        raise InputError(f"graph: has {nn} nodes but b1 has {n} entries")
    if e.size and (e.min() < 0 or e.max() >= nn):
        raise InputError(f"graph: node indices must lie in [0, {nn}), got range "
                         f"[{e.min()}, {e.max()}]")
    off = e[:, 0] != e[:, 1]
    if not off.all():
        e, w = e[off], w[off]
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    key = lo * nn + hi
    order = np.argsort(key, kind="stable")
    key, lo, hi, w = key[order], lo[order], hi[order], w[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    if first.all():
        return nn, np.stack([lo, hi], 1), w
    starts = np.flatnonzero(first)
    wmin = np.minimum.reduceat(w, starts)
    if symmetric_check:  # both triangles of a sparse matrix must agree
        wmax = np.maximum.reduceat(w, starts)
        if np.any(wmax - wmin > 1e-12 * np.abs(wmax)):
            raise InputError("graph: sparse matrix is not symmetric (an edge has two different "
                             "lengths); W1 on graphs needs undirected lengths")
    return nn, np.stack([lo[starts], hi[starts]], 1), wmin


def _check_lengths(w: np.ndarray) -> None:
    if w.size and not np.all(np.isfinite(w)):
        raise InputError("graph: edge lengths contain NaN or Inf")
    if w.size and w.min() < 0:
        raise InputError(f"graph: edge lengths must be >= 0 (min {w.min():.3g})")


def _check_connected(n: int, e: np.ndarray) -> None:
    if n <= 1:
        return
    A = sp.coo_array((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    k, _ = csgraph.connected_components(A, directed=False)
    if k > 1:
        raise InputError(f"graph: disconnected ({k} connected components); W1 on a graph "
                         "needs a connected graph")


def _divergence_np(n: int, e: np.ndarray, F: np.ndarray) -> np.ndarray:
    """div F = outflow - inflow at every node, for signed edge flows F (u -> v positive)."""
    return (np.bincount(e[:, 0], weights=F, minlength=n)
            - np.bincount(e[:, 1], weights=F, minlength=n))


# ----------------------------------------------------------------------------- exact solvers
#
# Each exact solver takes (n, e, w, b, max_iter) with e sorted by (u, v) (graph_edges) and
# returns (F signed flow per edge, phi potential per node, ok). ``_solve_exact`` scales the
# data by powers of two first (exact in floating point), so tiny or huge masses and lengths do
# not meet the solvers' absolute tolerances.

def _pot_has_sparse_emd() -> bool:
    """POT >= 0.9.7 solves EMD with a scipy.sparse cost on its support only."""
    try:
        from ot.lp import emd_wrap
    except ImportError:  # pragma: no cover - POT is a dependency
        return False
    return hasattr(emd_wrap, "emd_c_sparse")


def _transport_lifting(n, e, w, b):
    """Graph -> sparse transportation problem (arcs of the bipartite graph left -> right).

    Left copy i has supply b+_i + B, right copy j demand b-_j + B; one arc i -> j of cost w per
    directed edge and one arc i -> i of cost 0. B = 2 x mass exceeds any node's throughput, so
    every copy arc carries flow >= B - mass > 0, is basic, and the duals obey u_i + v_i = 0.
    """
    bp, bm = np.maximum(b, 0.0), np.maximum(-b, 0.0)
    mass = float(bp.sum())
    sm = float(bm.sum())
    if sm != mass and sm > 0:
        bm = bm * (mass / sm)
    B = 2.0 * mass
    ar = np.arange(n)
    rows = np.concatenate([e[:, 0], e[:, 1], ar])
    cols = np.concatenate([e[:, 1], e[:, 0], ar])
    cost = np.concatenate([w, w, np.zeros(n)])
    return bp + B, bm + B, rows, cols, cost


def _pot_network_simplex(n, a, bb, rows, cols, cost, max_iter):
    """POT's sparse network simplex on the lifted problem: (plan as COO, u, v, ok)."""
    import ot as pot

    M = sp.coo_array((cost, (rows, cols)), shape=(n, n))
    with warnings.catch_warnings():  # an early stop is reported by graph_w1 itself
        warnings.filterwarnings("ignore", message="numItermax reached", category=UserWarning)
        G, log = pot.emd(a, bb, M, numItermax=int(max_iter), log=True, center_dual=False,
                         check_marginals=False)
    return sp.coo_array(G), np.asarray(log["u"], float), np.asarray(log["v"], float), \
        log.get("result_code", 1) == 1


def _edge_flow_from_plan(n, e, G):
    """Signed edge flow F_e = x_uv - x_vu from the plan's off-diagonal (arc) entries."""
    r, c = G.row.astype(np.int64), G.col.astype(np.int64)
    val = np.asarray(G.data, dtype=np.float64)
    arc = r != c
    r, c, val = r[arc], c[arc], val[arc]
    ekey = e[:, 0] * n + e[:, 1]
    lo, hi = np.minimum(r, c), np.maximum(r, c)
    idx = np.searchsorted(ekey, lo * n + hi)
    return np.bincount(idx, weights=np.where(r < c, val, -val), minlength=len(e))


def _exact_network_simplex(n, e, w, b, max_iter):
    if max_iter is None:
        max_iter = max(100_000, 100 * (2 * len(e) + n))
    a, bb, rows, cols, cost = _transport_lifting(n, e, w, b)
    G, u, v, ok = _pot_network_simplex(n, a, bb, rows, cols, cost, max_iter)
    F = _edge_flow_from_plan(n, e, G)
    phi = u  # u_i = -v_i (copy arcs basic); fall back to the symmetric form otherwise
    viol = _lip_violation(e, w, phi)
    if viol > 0:
        alt = 0.5 * (u - v)
        if _lip_violation(e, w, alt) < viol:
            phi = alt
    return F, phi, ok


def _exact_highs(n, e, w, b, max_iter):
    from scipy.optimize import linprog

    E = len(e)
    ar = np.arange(E)
    A = sp.csc_array((np.concatenate([np.ones(E), -np.ones(E)]),
                      (np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([ar, ar]))),
                     shape=(n, E))
    Aeq = sp.hstack([A, -A]).tocsc()
    opts = {"presolve": True}
    if max_iter is not None:
        opts["maxiter"] = int(max_iter)
    res = linprog(np.concatenate([w, w]), A_eq=Aeq, b_eq=b, bounds=(0, None),
                  method="highs-ds", options=opts)
    if res.x is None or res.eqlin is None:  # stopped without an iterate (e.g. iteration cap)
        return np.full(E, np.nan), np.full(n, np.nan), False
    F = res.x[:E] - res.x[E:]
    phi = np.asarray(res.eqlin.marginals, dtype=float)
    return F, phi, bool(res.status == 0)


def _import_min_cost_flow():
    """OR-Tools' min-cost-flow module (optional dependency; ImportError if absent)."""
    import importlib

    return importlib.import_module("ortools.graph.python.min_cost_flow")


def _ortools_min_cost_flow(n, e, w, b):
    """OR-Tools SimpleMinCostFlow (cost scaling) on integer data: (F, ok)."""
    min_cost_flow = _import_min_cost_flow()
    E = len(e)
    mcf = min_cost_flow.SimpleMinCostFlow()
    tails = np.concatenate([e[:, 0], e[:, 1]]).astype(np.int32)
    heads = np.concatenate([e[:, 1], e[:, 0]]).astype(np.int32)
    mass = int(np.maximum(b, 0).sum())
    cap = np.full(2 * E, max(mass, 1), dtype=np.int64)  # >= any arc's optimal flow
    cost = np.concatenate([w, w]).astype(np.int64)
    mcf.add_arcs_with_capacity_and_unit_cost(tails, heads, cap, cost)
    mcf.set_nodes_supplies(np.arange(n, dtype=np.int32), b.astype(np.int64))
    status = mcf.solve()
    if status != mcf.OPTIMAL:
        return np.full(E, np.nan), False
    f = np.asarray(mcf.flows(np.arange(2 * E, dtype=np.int32)), dtype=np.float64)
    return f[:E] - f[E:], True


def _residual_potential(n, e, w, F):
    """A potential certifying the flow F: phi = -d, d the shortest-path distances in the
    residual graph from a virtual root joined to every node by a 0-cost arc.

    Residual arcs: u -> v and v -> u of cost w for every edge, and cost -w against the flow
    (v -> u when F_uv > 0). For an optimal F there is no negative cycle, d_v <= d_u + c_uv on
    every residual arc, i.e. |phi_u - phi_v| <= w, with equality phi_u - phi_v = w along the
    flow (complementary slackness): <phi, div F> = <w, |F|>. Bellman-Ford, vectorised (one
    NumPy pass per round, stops when nothing changes). Returns (phi, ok); ok=False if the
    rounds do not settle (F not optimal).
    """
    tails = np.concatenate([e[:, 0], e[:, 1]])
    heads = np.concatenate([e[:, 1], e[:, 0]])
    cost = np.concatenate([np.where(F < 0, -w, w), np.where(F > 0, -w, w)])
    order = np.argsort(heads, kind="stable")
    tails, heads, cost = tails[order], heads[order], cost[order]
    d = np.zeros(n)
    if len(heads) == 0:
        return d, True
    starts = np.flatnonzero(np.r_[True, heads[1:] != heads[:-1]])
    hn = heads[starts]
    for _ in range(n + 1):
        m = np.minimum.reduceat(d[tails] + cost, starts)
        upd = m < d[hn]
        if not upd.any():
            return -d, True
        d[hn[upd]] = m[upd]
    return -d, False


def _is_integral(x: np.ndarray, bound: float) -> bool:
    return bool(np.all(x == np.round(x)) and (x.size == 0 or np.abs(x).max() <= bound))


def _exact_ortools(n, e, w, b, max_iter):
    F, ok = _ortools_min_cost_flow(n, e, w, b)
    if not ok:
        return F, np.full(n, np.nan), False
    phi, ok = _residual_potential(n, e, w, F)
    return F, phi, ok


_EXACT_SOLVERS = {"network_simplex": _exact_network_simplex, "highs": _exact_highs,
                  "ortools": _exact_ortools}


def _solve_exact(n, e, w, b, solver, max_iter):
    """Run one exact solver on power-of-two rescaled data; returns (F, phi, ok)."""
    if solver == "ortools":  # integer arithmetic: no rescaling
        return _exact_ortools(n, e, w, b, max_iter)
    mass = float(np.maximum(b, 0).sum())
    wmax = float(w.max()) if len(w) else 0.0
    kb = -math.frexp(mass)[1] if mass > 0 else 0
    kw = -math.frexp(wmax)[1] if wmax > 0 else 0
    F, phi, ok = _EXACT_SOLVERS[solver](n, e, np.ldexp(w, kw), np.ldexp(b, kb), max_iter)
    return np.ldexp(F, -kb), np.ldexp(phi, -kw), ok


def _lip_violation(e, w, phi) -> float:
    if len(e) == 0:
        return 0.0
    return float(np.maximum(np.abs(phi[e[:, 0]] - phi[e[:, 1]]) - w, 0.0).max())


def _lipschitz_lower_bound(e, w, phi, b) -> tuple[float, np.ndarray]:
    """A valid lower bound <phi', b> with phi' = phi / L 1-Lipschitz on edges (L >= 1)."""
    if len(e) == 0 or not np.all(np.isfinite(phi)):
        return 0.0, np.zeros_like(phi)
    d = np.abs(phi[e[:, 0]] - phi[e[:, 1]])
    pos = w > 0
    if np.any(~pos & (d > 0)):
        return 0.0, np.zeros_like(phi)  # a zero-length edge separates values: no scaling helps
    L = max(1.0, float((d[pos] / w[pos]).max()) if pos.any() else 1.0)
    phi2 = phi / L
    return max(0.0, float(phi2 @ b)), phi2


def _certify(n, e, w, b, F, phi, tol):
    """Certificate of an exact solve: (resid, primal, dual, viol, lower, upper, cert).

    Feasible flow (||div F - b||_1), 1-Lipschitz potential (max violation) and zero gap
    |<w, |F|> - <phi, b>|, each within ``tol`` (absolute, in units of mass x length).
    ``lower`` and ``upper`` are valid bounds on W1 even when the certificate fails.
    """
    mass = float(np.maximum(b, 0).sum())
    lscale = float(w.max()) if len(w) else 1.0
    finite = bool(np.all(np.isfinite(F)) and np.all(np.isfinite(phi)))
    resid = float(np.abs(_divergence_np(n, e, F) - b).sum()) if finite else math.inf
    primal = float(w @ np.abs(F)) if finite else math.nan
    dual = float(phi @ b) if finite else math.nan
    viol = _lip_violation(e, w, phi) if finite else math.inf
    m = max(mass, 1e-300)
    lower = dual if viol <= tol / m else _lipschitz_lower_bound(e, w, phi, b)[0]
    upper = primal if resid * lscale <= tol else math.inf
    cert = bool(finite and resid * lscale <= tol and viol * mass <= tol
                and abs(primal - dual) <= tol)
    return resid, primal, dual, viol, lower, upper, cert


# ----------------------------------------------------------------------------- flow-Sinkhorn

def flow_sinkhorn_iterations(head: torch.Tensor, tail: torch.Tensor, w: torch.Tensor,
                             b: torch.Tensor, gamma: float, *, z: float = 1.0,
                             max_iter: int = 10_000, tol: float = 1e-6, check_every: int = 10,
                             omega: float = 0.5, v0: torch.Tensor | None = None,
                             callback=None):
    """Core flow-Sinkhorn loop on directed arcs, run by the transport engine.

    Arc k carries f_k = z exp((-w_k + (v_head - v_tail) / 2) / gamma) from ``tail[k]`` to
    ``head[k]``: the signed :class:`~measureflow.ot.geometry.Graph` with potential
    phi = -v / 2, whose :class:`~measureflow.ot.loop.Divergence` block is projected by
    :func:`~measureflow.ot.loop.cyclic_loop` (arXiv 2602.01372, Sec. 5, stable arsinh form).
    One sweep updates every node at once from the current flows::

        v_i <- v_i + 2 omega (v_exact_i - v_i),   v_exact = (v + v_full) / 2,

    v_full_i the exact root of div f = b at node i with the neighbours fixed; ``omega = 1/2``
    is the exact alternating KL projection of the lifted problem. Every ``check_every`` sweeps:
    v is recentred (gauge), the relative residual ||div f - b||_1 / ||b||_1 is recorded (stop
    when <= tol) and ``callback(it, v)`` runs. Returns (v, n_iter, errors, converged).
    """
    n = b.shape[0]
    geom = Graph(tail, head, w, n, log_z=math.log(z), signed=True, _validated=True)
    proj = PotentialProjection(geom, Divergence(b), gamma, omega=omega, gauge=True)
    bnorm = max(float(b.abs().sum()), 1e-300)
    phi = torch.zeros(n, dtype=w.dtype, device=w.device) if v0 is None else -0.5 * v0
    hook = None if callback is None else (lambda it, x, duals: callback(it, -2.0 * x))
    out = cyclic_loop(phi, [proj], tol=tol * bnorm, max_iter=max_iter,
                      check_every=check_every, eps=gamma, on_check=hook,
                      description="flow-Sinkhorn")
    return -2.0 * out.x, out.n_iter, [e / bnorm for e in out.errors], out.converged


def _tree_round(n, e, w, r):
    """A flow T on a minimum spanning tree with div T = r (sum r = 0); returns T per edge."""
    T = np.zeros(len(e))
    if n <= 1 or not np.any(r):
        return T
    wpos = w + (w.max() * 1e-12 + 1e-300)
    A = sp.coo_matrix((wpos, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    tree = csgraph.minimum_spanning_tree(A)
    order, pred = csgraph.breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    exc = r.astype(float).copy()
    child = order[::-1][:-1]
    par = pred[child]
    amount = np.empty(len(child))
    for k, (x, p) in enumerate(zip(child.tolist(), par.tolist())):
        amount[k] = exc[x]
        exc[p] += exc[x]
    key = e[:, 0] * n + e[:, 1]
    lo, hi = np.minimum(child, par), np.maximum(child, par)
    pos = np.searchsorted(key, lo * n + hi)
    sign = np.where(child == lo, 1.0, -1.0)  # flow child -> parent, + if child is edges[., 0]
    np.add.at(T, pos, sign * amount)
    return T


def _weighted_eccentricity_bound(n, e, w) -> float:
    A = sp.coo_matrix((w + 1e-300, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    d = csgraph.dijkstra(A, directed=False, indices=0)
    return 2.0 * float(d.max())


# ----------------------------------------------------------------------------- public API

def graph_w1(graph, b1, b2, *, method: str = "exact", gamma=None, eps=None, lengths=None,
             weight: str = "weight", solver: str = "network_simplex", z=None,
             max_iter: int | None = None, tol: float | None = None, check_every: int = 10,
             omega: float = 0.5, round: bool = True) -> GraphW1Result:
    """Wasserstein-1 distance between node measures ``b1``, ``b2`` on a weighted graph.

    Computes W1(b1, b2) = min { sum_e w_e |F_e| : div F = b1 - b2 } (Beckmann form; equal to
    OT with the shortest-path cost, i.e. a distance, not a square) and the dual potential phi
    with W1 = <phi, b1 - b2>, |phi_u - phi_v| <= w_uv (Peyre 2026, arXiv 2602.01372, Sec. 5).

    Parameters
    ----------
    graph : scipy sparse matrix, array_like of int, tuple or networkx.Graph
        SciPy sparse (n, n) matrix of lengths, an (E, 2) edge array (with ``lengths=``, or a
        tuple ``(edges, lengths)``), or a networkx graph (attribute ``weight``, default 1); see
        :func:`graph_edges`. Must be connected; lengths real, finite and >= 0 (floats allowed).
    b1, b2 : array_like or Tensor, shape (n,)
        Nonnegative masses on the n nodes with equal totals (relative 1e-6).
    method : {"exact", "flow_sinkhorn"}, default "exact"
        Min-cost flow, or flow-Sinkhorn (arXiv 2602.01372, Sec. 5).
    lengths : array_like or Tensor, shape (E,), optional
        Edge lengths when ``graph`` is an edge array.
    weight : str, default "weight"
        networkx edge attribute holding the lengths.
    solver : {"network_simplex", "highs", "ortools"}, default "network_simplex"
        ``exact`` only. ``"network_simplex"`` (default; POT's sparse network simplex on a
        transportation lifting, float data), ``"highs"`` (SciPy HiGHS dual simplex on the
        signed-flow LP, float data) or ``"ortools"`` (OR-Tools cost scaling, integer lengths
        and masses only, optional package; potentials by Bellman-Ford on the residual graph).
    gamma, eps : float, optional
        flow-Sinkhorn only (one of them is required). ``gamma``: regularisation (units of
        length). If ``gamma`` is None, ``eps`` (an absolute accuracy on W1) sets it as in the
        paper's accuracy theorem,
        gamma = eps / (2 X0 log p), where p = 2E arcs and X0 = mass x min(n - 1, ecc / w_min)
        bounds the optimal flow's l1 mass (ecc = twice the weighted eccentricity of node 0).
    z : float, optional
        Reference mass per arc of the KL term gamma KL(f | z) (> 0). Default X0 / p (the
        paper's choice, KL bias <= gamma X0 log p); the reference code uses z = 1, whose bias grows
        like gamma x p.
    max_iter, tol, check_every : int, float, int
        flow-Sinkhorn stops when ||div f - (b1-b2)||_1 <= tol ||b1-b2||_1 (default
        max(1e-6, 10 eps_dtype D / gamma), D >= the weighted diameter: the round-off floor of
        the flows, so float32 converges by default), checked every ``check_every`` sweeps;
        ``max_iter`` default 10000. For ``exact``,
        ``max_iter`` caps the simplex iterations (``network_simplex``, ``highs``; OR-Tools has
        no cap) and ``tol`` (default 1e-8 x mass x max length, absolute) is the certificate's
        tolerance.
    omega : float, default 0.5
        Relaxation of the potential update, in (0, 1) (0.5 = the exact alternating
        projections; the reference code's 0.8 is over-relaxation outside the theory).
    round : bool, default True
        flow-Sinkhorn: repair the iterate's divergence error on a minimum spanning tree so
        ``flow`` is feasible and ``upper`` a true upper bound.

    Returns
    -------
    GraphW1Result
        NumPy call -> NumPy arrays; a torch tensor among ``b1, b2, lengths`` -> tensors on its
        device/dtype. ``value`` is differentiable (envelope theorem: d/db1 = phi,
        d/dw = |flow| for ``exact``; the regularised dual's gradients for flow-Sinkhorn).
        Gradients reach a ``lengths`` tensor only when its edge array is already deduplicated
        with ``u < v`` in sorted order (else the lengths are re-indexed and detached).
        If an exact solver stops early (``max_iter``) the result has ``converged=False``
        (with a ConvergenceWarning), ``value`` NaN, and ``lower``/``upper`` still valid bounds
        (``upper`` is inf unless the returned flow is feasible).

    Raises
    ------
    InputError
        Bad masses (not 1-D, negative, NaN, unequal totals), a bad or disconnected graph, an
        unknown ``method`` / ``solver``, non-integer data for ``"ortools"``, flow-Sinkhorn
        without ``gamma`` or ``eps``, or a ``gamma`` too small for the dtype (the flows
        would overflow or carry a relative round-off above 1e-2).

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import graph_w1
    >>> edges = np.array([[0, 1], [1, 2]])
    >>> r = graph_w1((edges, np.array([1.0, 2.0])), [1.0, 0, 0], [0, 0, 1.0])
    >>> float(r.value), bool(r.certificate), r.flow.tolist()
    (3.0, True, [1.0, 1.0])
    >>> s = graph_w1((edges, np.array([1.0, 2.0])), [1.0, 0, 0], [0, 0, 1.0],
    ...              method="flow_sinkhorn", eps=0.01)
    >>> bool(s.converged), bool(s.lower <= 3.0 <= s.upper), bool(abs(s.value - 3.0) < 0.01)
    (True, True, True)

    References
    ----------
    G. Peyre, "Robust sublinear rates for iterative Bregman projections", arXiv:2602.01372,
    2026, Sec. 5 (flow-Sinkhorn).
    """
    method = check_choice(method, "method", ("exact", "flow_sinkhorn"))
    if isinstance(graph, tuple) and len(graph) == 2:
        if lengths is not None:
            raise InputError("lengths: given twice (graph is already a tuple (edges, lengths))")
        graph, lengths = graph
    for arg, name in ((b1, "b1"), (b2, "b2"), (lengths, "lengths"), (graph, "graph")):
        _check_array_arg(arg, name)
    ctx = ArrayContext(b1, b2, lengths)
    b1t = ctx.tensor(b1, "b1")
    b2t = ctx.tensor(b2, "b2")
    if b1t.ndim != 1:
        raise InputError(f"b1: expected a 1-D array, got shape {tuple(b1t.shape)}")
    n = b1t.shape[0]
    check_shape(b2t, "b2", (n,))
    check_nonnegative(b1t, "b1")
    check_nonnegative(b2t, "b2")
    check_masses_match(b1t, b2t, ("b1", "b2"))
    nn, e, w = graph_edges(graph, n, lengths=lengths, weight=weight)
    _check_connected(n, e)
    wt = _lengths_tensor(ctx, graph, lengths, e, w, n)
    b = (b1t - b2t).detach().cpu().numpy().astype(np.float64)
    bt = b1t - b2t
    E = len(e)
    mass = float(np.maximum(b, 0).sum())
    lscale = float(w.max()) if E else 1.0
    if method == "exact":
        solver = check_choice(solver, "solver", ("network_simplex", "highs", "ortools"))
        if max_iter is not None:
            max_iter = check_int(max_iter, "max_iter", min_value=1)
        tolc = (1e-8 * max(mass * lscale, 1e-300) if tol is None
                else check_positive(tol, "tol"))
        if solver == "ortools":
            _check_ortools_data(n, w, b1t, b2t)
        elif solver == "network_simplex" and not _pot_has_sparse_emd():  # pragma: no cover
            solver = "highs"  # POT < 0.9.7 has no sparse EMD: the LP path is exact too
        if E == 0 or mass == 0:
            F, phi, ok = np.zeros(E), np.zeros(n), True
        else:
            F, phi, ok = _solve_exact(n, e, w, b, solver, max_iter)
        if n and np.all(np.isfinite(phi)):
            phi = phi - phi.mean()
        resid, primal, dual, viol, lower, upper, cert = _certify(n, e, w, b, F, phi, tolc)
        converged = bool(ok and cert)
        n_it = 1 if ok or max_iter is None else max_iter
        report_convergence(converged, f"graph_w1(exact, {solver})", n_it, resid, tolc)
        phit = torch.as_tensor(phi, dtype=ctx.dtype, device=ctx.device)
        Ft = torch.as_tensor(F, dtype=ctx.dtype, device=ctx.device)
        if ok:  # the flow's cost (exact for integer data), gradients phi (b1) and |F| (w)
            value = (wt @ Ft.abs()) + (phit @ bt) - (phit @ bt).detach()
        else:  # the solver stopped early: no value, only the bounds
            value = (bt * 0).sum() + math.nan
        res = GraphW1Result(
            value=value, flow=Ft, raw_flow=None, potential=phit,
            edges=torch.as_tensor(e, device=ctx.device), lengths=wt.detach(), residual=resid,
            lower=lower, upper=upper, gap=upper - lower, lipschitz_violation=viol,
            certificate=cert, method="exact", solver=solver, gamma=None, converged=converged,
            n_iter=n_it, errors=[resid / max(2 * mass, 1e-300)])
        return ctx.wrap(res)

    # ---------------- flow-Sinkhorn
    max_iter = 10_000 if max_iter is None else check_int(max_iter, "max_iter", min_value=1)
    if tol is not None:
        tol = check_positive(tol, "tol")
    check_every = check_int(check_every, "check_every", min_value=1)
    omega = check_in_range(omega, "omega", 0.0, 1.0, low_open=True, high_open=True)
    if not isinstance(round, (bool, np.bool_)):
        raise InputError(f"round: expected True or False, got {round!r}")
    if gamma is not None:
        gamma = check_positive(gamma, "gamma")
    if E == 0 or mass == 0:
        zero = torch.zeros(E, dtype=ctx.dtype, device=ctx.device)
        res = GraphW1Result(value=(bt * 0).sum(), flow=zero, raw_flow=zero,
                            potential=torch.zeros(n, dtype=ctx.dtype, device=ctx.device),
                            edges=torch.as_tensor(e, device=ctx.device), lengths=wt.detach(),
                            method="flow_sinkhorn", solver="flow_sinkhorn", gamma=gamma)
        return ctx.wrap(res)
    p = 2 * E
    wmin = float(w[w > 0].min()) if np.any(w > 0) else 1.0
    ecc2 = _weighted_eccentricity_bound(n, e, w)  # >= the weighted diameter
    X0 = mass * min(n - 1.0, max(1.0, ecc2 / wmin))
    if gamma is None:
        if eps is None:
            raise InputError("gamma, eps: flow_sinkhorn needs gamma or a target accuracy eps")
        eps = check_positive(eps, "eps")
        gamma = eps / (2.0 * X0 * math.log(max(p, 2)))
    zval = X0 / p if z is None else check_positive(z, "z")
    # the flows exp((-w + h_u - h_v) / gamma) carry a relative round-off ~ eps x diam / gamma
    floor = 10.0 * torch.finfo(ctx.dtype).eps * ecc2 / gamma
    if floor > 1e-2:
        raise InputError(f"gamma: {gamma:.3g} is too small for {ctx.dtype} and these lengths "
                         f"(diameter <= {ecc2:.3g}): the flows would carry a relative round-off "
                         f"of {floor:.1e}; increase gamma (or use float64)")
    if tol is None:
        tol = max(1e-6, floor)
    dev, dt = ctx.device, ctx.dtype
    et = torch.as_tensor(e, device=dev)
    head = torch.cat([et[:, 1], et[:, 0]])  # arc k: tail -> head
    tail = torch.cat([et[:, 0], et[:, 1]])
    w_arc = torch.cat([wt.detach(), wt.detach()])
    b_det = bt.detach()
    v, it, errors, converged = flow_sinkhorn_iterations(
        head, tail, w_arc, b_det, gamma, z=zval, max_iter=max_iter, tol=tol,
        check_every=check_every, omega=omega)
    # dual value D(h), h = v/2, with lengths/b kept in the autograd graph (envelope theorem)
    h = (v / 2.0).detach()
    w2 = torch.cat([wt, wt])
    f_arc = zval * torch.exp((-w2 + h[head] - h[tail]) / gamma)
    value = -(h * bt).sum() - gamma * f_arc.sum() + gamma * zval * p
    if not (bool(torch.isfinite(v).all()) and bool(torch.isfinite(value.detach()))):
        raise InputError(f"gamma: {gamma:.3g} is too small for these lengths (max "
                         f"{lscale:.3g}): the potential or the flow overflowed; increase gamma")
    report_convergence(converged, "graph_w1(flow_sinkhorn)", it,
                       errors[-1] if errors else math.nan, tol)
    fa = f_arc.detach()
    raw = fa[:E] - fa[E:]  # arc e goes u -> v (tail = edges[e, 0]); arc E + e goes v -> u
    raw_np = raw.cpu().numpy().astype(np.float64)
    resid = float(np.abs(_divergence_np(n, e, raw_np) - b).sum())
    phi = (-h).cpu().numpy().astype(np.float64)
    lower, _ = _lipschitz_lower_bound(e, w, phi - phi.mean(), b)
    if round:
        F = raw_np + _tree_round(n, e, w, b - _divergence_np(n, e, raw_np))
    else:
        F = raw_np
    upper = float(w @ np.abs(F)) if round else math.inf
    viol = _lip_violation(e, w, phi)
    res = GraphW1Result(
        value=value, flow=torch.as_tensor(F, dtype=dt, device=dev), raw_flow=raw,
        potential=torch.as_tensor(phi - phi.mean(), dtype=dt, device=dev),
        edges=et, lengths=wt.detach(), residual=resid, lower=lower, upper=upper,
        gap=upper - lower, lipschitz_violation=viol, certificate=None,
        method="flow_sinkhorn", solver="flow_sinkhorn", gamma=gamma, converged=converged,
        n_iter=it, errors=errors)
    return ctx.wrap(res)


def _check_ortools_data(n, w, b1t, b2t) -> None:
    """solver='ortools' needs the package and integer data within its int64 arithmetic."""
    try:
        _import_min_cost_flow()
    except ImportError:
        raise InputError("solver: 'ortools' needs the optional package ortools (pip install "
                         "ortools, or the measureflow[bench] extra); the default "
                         "'network_simplex' needs only POT") from None
    b1 = b1t.detach().cpu().numpy()
    b2 = b2t.detach().cpu().numpy()
    if n >= 2**31 - 1:
        raise InputError(f"graph: {n} nodes exceed OR-Tools' int32 node indices")
    # OR-Tools' cost scaling multiplies costs by (n + 1); keep every product within 2^62
    cbound = 2.0**62 / (n + 2)
    mbound = 2.0**53
    if not _is_integral(w, cbound):
        raise InputError("solver: 'ortools' needs integer lengths (at most 2^62 / (n + 2)); "
                         "use solver='network_simplex' for float data")
    if not (_is_integral(b1, mbound) and _is_integral(b2, mbound)):
        raise InputError("solver: 'ortools' needs integer masses b1, b2 (at most 2^53); use "
                         "solver='network_simplex' for float data")
    if float(b1.sum()) * float(w.max() if len(w) else 0.0) * 2 >= 2.0**62:
        raise InputError("solver: 'ortools' would overflow int64 (mass x max length too "
                         "large); use solver='network_simplex'")


def _lengths_tensor(ctx, graph, lengths, e, w, n):
    """Edge lengths as a tensor in the deduplicated edge order; keeps autograd when the user
    passed a length tensor whose edges are already unique with u < v (no reordering needed)."""
    if isinstance(lengths, torch.Tensor) and lengths.ndim == 1 and lengths.shape[0] == len(e):
        eg = graph
        eg = eg.detach().cpu().numpy() if isinstance(eg, torch.Tensor) else np.asarray(eg)
        if eg.shape == e.shape and np.array_equal(eg.astype(np.int64), e):
            return lengths.to(dtype=ctx.dtype, device=ctx.device)
    return torch.as_tensor(w, dtype=ctx.dtype, device=ctx.device)


def flow_sinkhorn(graph, b1, b2, *, gamma=None, eps=None, **kwargs) -> GraphW1Result:
    """W1 on a graph by flow-Sinkhorn: ``graph_w1(graph, b1, b2, method="flow_sinkhorn", ...)``.

    Computes the entropic estimate D_gamma of W1(b1, b2) = min { sum_e w_e |F_e| : div F = b1 -
    b2 } (a distance, not a square) with the single-potential update of arXiv 2602.01372,
    Sec. 5. See :func:`graph_w1` for every argument, the result and the errors.

    Parameters
    ----------
    graph, b1, b2 :
        As in :func:`graph_w1`.
    gamma : float, optional
        Regularisation in length units (> 0).
    eps : float, optional
        Target absolute accuracy on W1; sets gamma when ``gamma`` is None (one is required).
    **kwargs :
        Other keyword arguments of :func:`graph_w1` (``lengths``, ``z``, ``max_iter``, ``tol``,
        ``check_every``, ``omega``, ``round``, ``weight``).

    Returns
    -------
    GraphW1Result

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.bregman import flow_sinkhorn
    >>> r = flow_sinkhorn((np.array([[0, 1], [1, 2]]), np.array([1.0, 2.0])),
    ...                   [1.0, 0, 0], [0, 0, 1.0], eps=0.01)
    >>> r.method, bool(r.converged), round(float(r.upper), 6)
    ('flow_sinkhorn', True, 3.0)

    References
    ----------
    G. Peyre, "Robust sublinear rates for iterative Bregman projections", arXiv:2602.01372,
    2026, Sec. 5.
    """
    return graph_w1(graph, b1, b2, method="flow_sinkhorn", gamma=gamma, eps=eps, **kwargs)


def line_graph_w1(b1, b2, lengths=None) -> float:
    """W1 on the path graph 0-1-...-(n-1) in closed form: sum_i l_i |sum_{j<=i} (b1 - b2)_j|.

    A distance, not its square (the flow on edge (i, i+1) is the cumulated mass difference).

    Parameters
    ----------
    b1, b2 : array_like, shape (n,), n >= 1
        Nonnegative node masses with equal totals (relative 1e-6).
    lengths : array_like, shape (n - 1,), optional
        Nonnegative lengths of the edges (i, i+1) (default 1).

    Returns
    -------
    float

    Raises
    ------
    InputError
        NaN, wrong shapes, negative entries or unequal masses.

    Examples
    --------
    >>> from measureflow.bregman import line_graph_w1
    >>> line_graph_w1([1.0, 0, 0], [0, 0, 1.0], [1.0, 2.0])
    3.0
    """
    for arg, name in ((b1, "b1"), (b2, "b2"), (lengths, "lengths")):
        _check_array_arg(arg, name)
    ctx = ArrayContext()
    b1t = check_nonnegative(ctx.tensor(b1, "b1"), "b1")
    if b1t.ndim != 1 or b1t.shape[0] < 1:
        raise InputError(f"b1: expected a non-empty 1-D array, got shape {tuple(b1t.shape)}")
    n = b1t.shape[0]
    b2t = check_nonnegative(check_shape(ctx.tensor(b2, "b2"), "b2", (n,)), "b2")
    check_masses_match(b1t, b2t, ("b1", "b2"))
    d = np.cumsum((b1t - b2t).detach().cpu().numpy())[:-1]
    if lengths is None:
        ln = np.ones_like(d)
    else:
        ln = check_nonnegative(check_shape(ctx.tensor(lengths, "lengths"), "lengths", (n - 1,)),
                               "lengths").detach().cpu().numpy()
    return float(np.abs(d) @ ln)
