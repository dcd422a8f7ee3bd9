"""Path-lifting of DAG ReLU networks (Gonon et al. 2024; used in arXiv 2508.07370 Sec. 3).

A DAG ReLU network has nodes, weighted edges (src -> dst) and optional biases on non-input
nodes. The path-lifting phi(theta) has one coordinate per path p ending at an output node and
starting either at an input node (coordinate = product of the edge weights along p) or at a
node carrying a bias (coordinate = bias times the product of the edge weights along p; the path
of length 0 at an output bias is the bias itself). On each activation region the network output
is f(phi(theta), x), so phi is a factorization in the sense of arXiv 2307.00144 Def. 2.10.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from ..core import InputError

__all__ = ["DAG", "path_lifting", "mlp_dag", "dag_laws"]


@dataclasses.dataclass(frozen=True)
class DAG:
    """A DAG ReLU network layout on a flat parameter vector.

    Attributes
    ----------
    n_nodes : int
    edges : tuple of (int, int, int)
        (src, dst, param_index) for each weighted edge.
    inputs, outputs : tuple of int
        Input and output nodes.
    biases : dict of int to int
        node -> param_index of its bias.
    n_params : int
        Length of the flat vector.
    hidden : tuple of int
        Nodes that are neither inputs nor outputs (property).

    Examples
    --------
    >>> from measureflow.conservation.intrinsic import mlp_dag
    >>> dag = mlp_dag([2, 3, 1])
    >>> dag.n_nodes, dag.n_params, dag.hidden
    (6, 9, (2, 3, 4))
    """

    n_nodes: int
    edges: tuple
    inputs: tuple
    outputs: tuple
    biases: dict
    n_params: int

    @property
    def hidden(self) -> tuple:
        """Nodes that are neither inputs nor outputs."""
        io = set(self.inputs) | set(self.outputs)
        return tuple(v for v in range(self.n_nodes) if v not in io)


def _check_dag(dag: DAG) -> None:
    if not isinstance(dag, DAG):
        raise InputError("dag: expected a DAG (see mlp_dag)")
    out_edges: dict[int, list] = {}
    for (s, t, k) in dag.edges:
        if not (0 <= s < dag.n_nodes and 0 <= t < dag.n_nodes):
            raise InputError(f"dag: edge ({s}, {t}) has a node outside 0..{dag.n_nodes - 1}")
        if not 0 <= k < dag.n_params:
            raise InputError(f"dag: edge parameter index {k} outside 0..{dag.n_params - 1}")
        out_edges.setdefault(s, []).append(t)
    # acyclicity by DFS colouring
    state = [0] * dag.n_nodes

    def visit(v):
        state[v] = 1
        for w in out_edges.get(v, []):
            if state[w] == 1:
                raise InputError("dag: the graph has a cycle")
            if state[w] == 0:
                visit(w)
        state[v] = 2

    for v in range(dag.n_nodes):
        if state[v] == 0:
            visit(v)


def _enumerate_paths(dag: DAG) -> list[list[int]]:
    """Parameter-index lists of all paths (inputs/bias nodes -> outputs)."""
    out = {}
    for (s, t, k) in dag.edges:
        out.setdefault(s, []).append((t, k))
    outputs = set(dag.outputs)
    memo: dict[int, list[list[int]]] = {}

    def tails(v):  # parameter lists of paths from v to any output
        if v in memo:
            return memo[v]
        res = [[]] if v in outputs else []
        for (t, k) in out.get(v, []):
            res.extend([[k] + p for p in tails(t)])
        memo[v] = res
        return res

    paths = []
    for v in dag.inputs:
        paths.extend(tails(v))
    for v, kb in sorted(dag.biases.items()):
        paths.extend([[kb] + p for p in tails(v)])
    return paths


def path_lifting(dag: DAG) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """Path-lifting phi of a DAG ReLU network, as a callable on the flat theta.

    phi(theta)_p = prod_(e in p) theta_e (times the bias at the start of p), one coordinate per
    path from an input or a bias node to an output (Gonon et al. 2024; arXiv 2508.07370 Sec. 3).
    Paths are enumerated once; phi is a gather + product, so it is ``torch.func``-transformable.
    Sizes grow like the number of paths (the product of the widths for an MLP): meant for the
    small networks of the theory.

    Parameters
    ----------
    dag : DAG

    Returns
    -------
    (callable, int)
        ``(phi, n_paths)``.

    Raises
    ------
    InputError
        ``dag`` not a DAG, a cycle, an index out of range, no path to an output.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import mlp_dag, path_lifting
    >>> phi, n_paths = path_lifting(mlp_dag([2, 3, 1]))
    >>> n_paths, phi(torch.arange(9.0)).tolist()[:2]    # W1[0,0] W2[0,0], W1[1,0] W2[0,1]
    (6, [0.0, 14.0])

    References
    ----------
    A. Gonon, N. Brisebarre, E. Riccietti, R. Gribonval, "A path-norm toolkit for modern networks",
    ICLR 2024. S. Marcotte, R. Gribonval, G. Peyre, arXiv:2508.07370, Sec. 3.
    """
    _check_dag(dag)
    paths = _enumerate_paths(dag)
    if not paths:
        raise InputError("dag: no path from an input or a bias to an output")
    L = max(len(p) for p in paths)
    pad = dag.n_params  # index of an appended constant 1
    idx = torch.tensor([p + [pad] * (L - len(p)) for p in paths], dtype=torch.long)

    def phi(theta: torch.Tensor) -> torch.Tensor:
        ext = torch.cat([theta, theta.new_ones(1)])
        return ext[idx].prod(dim=1)

    return phi, len(paths)


def mlp_dag(dims: Sequence[int], bias: bool = False) -> DAG:
    """The DAG of a layered MLP with widths ``dims = [n_0, ..., n_q]``.

    Flat layout (the one of :func:`measureflow.conservation.architectures.relu_deep`): for each
    layer i = 1..q, the weight W_i of shape (n_i, n_(i-1)) row-major, then its bias b_i (if
    ``bias``). Nodes are numbered layer by layer.

    Parameters
    ----------
    dims : sequence of int
        At least two positive widths.
    bias : bool, default False

    Returns
    -------
    DAG

    Raises
    ------
    InputError
        Fewer than two widths, a width < 1.

    Examples
    --------
    >>> from measureflow.conservation.intrinsic import mlp_dag
    >>> dag = mlp_dag([2, 3, 1], bias=True)
    >>> len(dag.edges), dag.n_params, dag.outputs
    (9, 13, (5,))
    """
    dims = [int(d) for d in dims]
    if len(dims) < 2 or min(dims) < 1:
        raise InputError(f"dims: expected at least two positive widths, got {dims}")
    offs = [0]
    for d in dims:
        offs.append(offs[-1] + d)
    edges, biases = [], {}
    k = 0
    for i in range(1, len(dims)):
        for o in range(dims[i]):
            for j in range(dims[i - 1]):
                edges.append((offs[i - 1] + j, offs[i] + o, k))
                k += 1
        if bias:
            for o in range(dims[i]):
                biases[offs[i] + o] = k
                k += 1
    return DAG(n_nodes=offs[-1], edges=tuple(edges), inputs=tuple(range(dims[0])),
               outputs=tuple(range(offs[-2], offs[-1])), biases=biases, n_params=k)


def dag_laws(dag: DAG) -> Callable[[torch.Tensor], torch.Tensor]:
    """Laws of a DAG ReLU network: per hidden neuron v, |incoming|^2 + bias_v^2 - |outgoing|^2.

    They are conserved by gradient flow for any loss (ReLU rescaling invariance); for a DAG they are
    all the laws of the path-lifting (arXiv 2508.07370 Cor. 3.4, number unverified).

    Parameters
    ----------
    dag : DAG

    Returns
    -------
    callable
        ``laws(theta)`` -> tensor of shape (number of hidden nodes,), torch-differentiable.

    Raises
    ------
    InputError
        ``dag`` not a valid DAG.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.intrinsic import dag_laws, mlp_dag
    >>> laws = dag_laws(mlp_dag([2, 3, 1]))
    >>> laws(torch.arange(9.0)).tolist()                 # neuron 0: 0^2 + 1^2 - 6^2
    [-35.0, -36.0, -23.0]

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Intrinsic training dynamics of deep neural networks",
    arXiv:2508.07370, Sec. 3.
    """
    _check_dag(dag)
    hidden = dag.hidden
    rows = []
    for v in hidden:
        ins = [k for (s, t, k) in dag.edges if t == v]
        outs = [k for (s, t, k) in dag.edges if s == v]
        if v in dag.biases:
            ins.append(dag.biases[v])
        rows.append((ins, outs))
    sign = torch.zeros(len(hidden), dag.n_params, dtype=torch.float64)
    for i, (ins, outs) in enumerate(rows):
        sign[i, ins] = 1.0
        sign[i, outs] = -1.0

    def laws(theta: torch.Tensor) -> torch.Tensor:
        return sign.to(theta) @ (theta * theta)

    return laws
