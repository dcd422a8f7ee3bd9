"""Cyclic KL (Bregman) projections and W1 on graphs (Peyre 2026, arXiv 2602.01372).

- :func:`kl_projections` with blocks :class:`RowMarginal`, :class:`ColMarginal`,
  :class:`KLRowMarginal`, :class:`KLColMarginal`, :class:`BarycenterCoupling`,
  :class:`JKOStep`, :class:`GraphDivergence`, :class:`Lifting`;
- :func:`graph_w1` (exact min-cost flow or flow-Sinkhorn) -> :class:`GraphW1Result`.
"""

from .graph import GraphW1Result, flow_sinkhorn, graph_edges, graph_w1, line_graph_w1
from .projections import (
                          BarycenterCoupling,
                          Block,
                          ColMarginal,
                          GraphDivergence,
                          JKOStep,
                          KLColMarginal,
                          KLProjectionResult,
                          KLRowMarginal,
                          Lifting,
                          RowMarginal,
                          graph_lifting_problem,
                          kl_projections,
)

__all__ = ["kl_projections", "KLProjectionResult", "Block", "RowMarginal", "ColMarginal",
           "KLRowMarginal", "KLColMarginal", "BarycenterCoupling", "JKOStep",
           "GraphDivergence", "Lifting", "graph_lifting_problem",
           "graph_w1", "flow_sinkhorn", "GraphW1Result", "graph_edges", "line_graph_w1"]
