"""Architectures with known conservation laws (builders for counting experiments and tests).

Each builder returns an :class:`Architecture`: a flat parameter layout, the model
``g(theta, inputs)``, a factorization ``phi(theta)`` where one is used (None otherwise: count
through ``g`` with :func:`~measureflow.conservation.number_of_laws_model`), the known laws as a
torch function ``laws(theta) -> (n_laws_listed,)``, the number of independent known laws
``n_known`` and the number of laws the theory predicts (``expected_laws``; None when open), a
parameter sampler and an input sampler. ``to_module(theta)`` builds the same network as a
``torch.nn`` module, and the ``*_laws_torch`` functions compute the same laws from PyTorch's
own parameter layout.

Sources (laws and counts): arXiv 2307.00144 Cor. 4.4 / Prop. 4.1 (linear, ReLU); arXiv
2506.06194 Thm 3.6 (conv), Thm 3.8 / Cor. 3.9-3.10 (attention), Prop. 3.2 (residual),
Prop. 3.11 (softmax + cross-entropy), Ex. 4.8 (scalar two-block ResNet).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..core import InputError, as_tensor, check_int, check_positive, make_generator
from ._paths import dag_laws, mlp_dag, path_lifting

__all__ = ["Architecture", "linear_two_layer", "linear_deep", "relu_two_layer", "relu_deep",
           "conv_relu", "attention", "residual", "relu_resnet", "scalar_resnet_example",
           "softmax_layer", "linear_laws_torch", "mlp_laws_torch", "conv_laws_torch",
           "attention_laws_torch", "known_rank"]

_F64 = torch.float64


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A model family with its flat parameter layout and known laws.

    Built by the functions of this module; ``theta`` is always one flat float vector, cut into the
    named blocks of ``shapes`` in order (row-major).

    Attributes
    ----------
    name : str
        Human-readable tag, e.g. ``"relu[2, 3, 1]"``.
    shapes : dict of str to tuple
        Parameter blocks in layout order.
    g : callable
        ``g(theta, inputs)`` -> batch of outputs, ``torch.func``-transformable.
    laws : callable
        ``laws(theta)`` -> tensor of the listed known laws (flat).
    n_known : int or None
        Number of independent known laws (None: not all independent, see :func:`known_rank`).
    expected_laws : int or None
        Number of laws the theory predicts (None when open).
    sample_params : callable
        ``sample_params(seed=0, dtype=float64)`` -> Gaussian theta.
    sample_inputs : callable
        ``sample_inputs(n=32, seed=0, dtype=float64)`` -> Gaussian batch of ``n`` inputs.
    phi : callable or None
        A factorization of ``g`` (count with :func:`~measureflow.conservation.number_of_laws`), or
        None (count through ``g`` with :func:`~measureflow.conservation.number_of_laws_model`).
    to_module : callable or None
        ``to_module(theta)`` -> the same network as a ``torch.nn`` module.
    note : str
        Caveat on the counts.
    n_params : int
        D, the length of theta (property).

    Examples
    --------
    >>> from measureflow.conservation.architectures import attention
    >>> arch = attention(4, 2, heads=2)
    >>> arch.n_params, list(arch.unflatten(arch.sample_params()))[:4]
    (64, ['Q0', 'K0', 'V0', 'O0'])
    >>> theta = arch.sample_params()
    >>> bool(arch.flatten(arch.unflatten(theta)).equal(theta))
    True
    """

    name: str
    shapes: dict
    g: Callable
    laws: Callable
    n_known: int | None
    expected_laws: int | None
    sample_params: Callable
    sample_inputs: Callable
    phi: Callable | None = None
    to_module: Callable | None = None
    note: str = ""

    @property
    def n_params(self) -> int:
        """D, the length of the flat parameter vector."""
        return sum(math.prod(s) for s in self.shapes.values())

    def unflatten(self, theta: torch.Tensor) -> dict:
        """Named views of the flat vector, in layout order (dict name -> tensor)."""
        out, k = {}, 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            out[name] = theta[k:k + n].reshape(shape)
            k += n
        return out

    def flatten(self, params: dict) -> torch.Tensor:
        """Inverse of :meth:`unflatten`: concatenate the named blocks into theta."""
        return torch.cat([torch.as_tensor(params[n]).reshape(-1) for n in self.shapes])


def _pos(x, name):
    return check_int(x, name, min_value=1)


def _sampler(shapes, scale=1.0):
    D = sum(math.prod(s) for s in shapes.values())

    def sample(seed=0, dtype=_F64):
        g = make_generator(seed)
        return (scale * torch.randn(D, generator=g, dtype=_F64)).to(dtype)

    return sample


def _input_sampler(shape_fn):
    def sample(n=32, seed=0, dtype=_F64):
        n = check_int(n, "n", min_value=1)
        g = make_generator(seed)
        return torch.randn(*shape_fn(n), generator=g, dtype=_F64).to(dtype)

    return sample


def _triu(M: torch.Tensor) -> torch.Tensor:
    i, j = torch.triu_indices(M.shape[-1], M.shape[-1])
    return M[..., i, j]


# ----------------------------------------------------------------------------- linear
def linear_two_layer(n: int, m: int, r: int) -> Architecture:
    """Two-layer linear network g(theta, x) = U V^T x, U (n, r), V (m, r).

    phi(theta) = U V^T; the laws are the entries of U^T U - V^T V (upper triangle): r(r+1)/2
    independent laws, and no other law near theta with (U; V) of full rank (arXiv 2307.00144
    Cor. 4.4 = arXiv 2506.06194 Prop. 3.5). ``n_known`` is None when r > n + m.

    Parameters
    ----------
    n, m, r : int
        Output width, input width, inner width (each >= 1).

    Returns
    -------
    Architecture
        Layout ``U`` then ``V``; ``to_module`` gives ``nn.Sequential(Linear(m, r), Linear(r, n))``.

    Raises
    ------
    InputError
        A width that is not a positive integer.

    Examples
    --------
    >>> from measureflow.conservation import number_of_laws
    >>> from measureflow.conservation.architectures import linear_two_layer
    >>> arch = linear_two_layer(3, 2, 2)
    >>> arch.n_params, arch.n_known, number_of_laws(arch.phi, arch.sample_params()).n_laws
    (10, 3, 3)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Abide by the law and follow the flow: conservation
    laws for gradient flows", NeurIPS 2023, arXiv:2307.00144, Cor. 4.4.
    """
    n, m, r = _pos(n, "n"), _pos(m, "m"), _pos(r, "r")
    shapes = {"U": (n, r), "V": (m, r)}
    arch = None

    def parts(t):
        return arch.unflatten(t).values()

    def phi(t):
        U, V = parts(t)
        return U @ V.T

    def g(t, X):
        U, V = parts(t)
        return X @ V @ U.T

    def laws(t):
        U, V = parts(t)
        return _triu(U.T @ U - V.T @ V)

    def to_module(t):
        U, V = (p.detach() for p in parts(t))
        net = nn.Sequential(nn.Linear(m, r, bias=False, dtype=t.dtype),
                            nn.Linear(r, n, bias=False, dtype=t.dtype))
        with torch.no_grad():
            net[0].weight.copy_(V.T)
            net[1].weight.copy_(U)
        return net

    k = r * (r + 1) // 2 if r <= n + m else None
    arch = Architecture(f"linear[{n},{m},{r}]", shapes, g, laws, k, k, _sampler(shapes),
                        _input_sampler(lambda N: (N, m)), phi, to_module)
    return arch


def linear_deep(dims: Sequence[int]) -> Architecture:
    """Deep linear network g(theta, x) = W_q ... W_1 x, W_i of shape (n_i, n_(i-1)).

    phi = W_q ... W_1. Laws for each hidden width i: W_(i+1)^T W_(i+1) - W_i W_i^T (upper
    triangles; arXiv 2307.00144 Prop. 4.1). They are not independent in general: ``n_known`` and
    ``expected_laws`` are None and :func:`known_rank` gives the rank of their Jacobian, the count
    checked in the paper's reference notebooks (count = D - dim Lie).

    Parameters
    ----------
    dims : sequence of int
        ``[n_0 (input), ..., n_q (output)]``, at least two positive widths.

    Returns
    -------
    Architecture
        Layout ``W1, ..., Wq``.

    Raises
    ------
    InputError
        Fewer than two widths, a width < 1.

    Examples
    --------
    >>> from measureflow.conservation import number_of_laws
    >>> from measureflow.conservation.architectures import known_rank, linear_deep
    >>> arch = linear_deep([2, 3, 2])
    >>> theta = arch.sample_params()
    >>> number_of_laws(arch.phi, theta).n_laws, known_rank(arch, theta)
    (6, 6)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Abide by the law and follow the flow: conservation
    laws for gradient flows", NeurIPS 2023, arXiv:2307.00144, Prop. 4.1.
    """
    dims = [_pos(d, "dims") for d in dims]
    if len(dims) < 2:
        raise InputError("dims: need at least an input and an output width")
    shapes = {f"W{i}": (dims[i], dims[i - 1]) for i in range(1, len(dims))}
    arch = None

    def phi(t):
        Ws = list(arch.unflatten(t).values())
        P = Ws[0]
        for W in Ws[1:]:
            P = W @ P
        return P

    def g(t, X):
        return X @ phi(t).T

    def laws(t):
        Ws = list(arch.unflatten(t).values())
        if len(Ws) == 1:
            return t.new_zeros(0)
        return torch.cat([_triu(Ws[i + 1].T @ Ws[i + 1] - Ws[i] @ Ws[i].T)
                          for i in range(len(Ws) - 1)])

    def to_module(t):
        Ws = [W.detach() for W in arch.unflatten(t).values()]
        net = nn.Sequential(*[nn.Linear(W.shape[1], W.shape[0], bias=False, dtype=t.dtype)
                              for W in Ws])
        with torch.no_grad():
            for lin, W in zip(net, Ws):
                lin.weight.copy_(W)
        return net

    arch = Architecture(f"linear{dims}", shapes, g, laws, None, None, _sampler(shapes),
                        _input_sampler(lambda N: (N, dims[0])), phi, to_module,
                        note="n_known/expected_laws: use known_rank(arch, theta)")
    return arch


# ----------------------------------------------------------------------------- ReLU
def relu_two_layer(n: int, m: int, r: int, *, bias: bool = False) -> Architecture:
    """Two-layer ReLU network g(theta, x) = U relu(V^T x + b), U (n, r), V (m, r), b (r,).

    phi = (u_k [v_k; b_k]^T)_k (the path-lifting). Laws h_k = |v_k|^2 + b_k^2 - |u_k|^2 (the sign
    is immaterial), exactly r of them (arXiv 2307.00144 Cor. 4.4; arXiv 2506.06194 Prop. 3.5).

    Parameters
    ----------
    n, m, r : int
        Output width, input width, number of hidden neurons (each >= 1).
    bias : bool, default False
        Hidden biases b (appended to the layout after ``V``).

    Returns
    -------
    Architecture

    Raises
    ------
    InputError
        A width that is not a positive integer.

    Examples
    --------
    >>> from measureflow.conservation import number_of_laws
    >>> from measureflow.conservation.architectures import relu_two_layer
    >>> arch = relu_two_layer(1, 2, 3)
    >>> number_of_laws(arch.phi, arch.sample_params()).n_laws, arch.n_known
    (3, 3)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Abide by the law and follow the flow: conservation
    laws for gradient flows", NeurIPS 2023, arXiv:2307.00144, Cor. 4.4.
    """
    n, m, r = _pos(n, "n"), _pos(m, "m"), _pos(r, "r")
    shapes = {"U": (n, r), "V": (m, r)}
    if bias:
        shapes["b"] = (r,)
    arch = None

    def parts(t):
        p = arch.unflatten(t)
        return p["U"], p["V"], p.get("b")

    def phi(t):
        U, V, b = parts(t)
        Vb = V if b is None else torch.cat([V, b[None]], 0)
        return torch.einsum("ik,jk->kij", U, Vb)

    def g(t, X):
        U, V, b = parts(t)
        H = X @ V
        if b is not None:
            H = H + b
        return torch.relu(H) @ U.T

    def laws(t):
        U, V, b = parts(t)
        h = (V * V).sum(0) - (U * U).sum(0)
        return h if b is None else h + b * b

    def to_module(t):
        U, V, b = (None if p is None else p.detach() for p in parts(t))
        net = nn.Sequential(nn.Linear(m, r, bias=bias, dtype=t.dtype), nn.ReLU(),
                            nn.Linear(r, n, bias=False, dtype=t.dtype))
        with torch.no_grad():
            net[0].weight.copy_(V.T)
            if bias:
                net[0].bias.copy_(b)
            net[2].weight.copy_(U)
        return net

    return (arch := Architecture(f"relu[{n},{m},{r}{',bias' if bias else ''}]", shapes, g, laws,
                                 r, r, _sampler(shapes), _input_sampler(lambda N: (N, m)), phi,
                                 to_module))


def relu_deep(dims: Sequence[int], *, bias: bool = False,
              path_phi: bool = True) -> Architecture:
    """MLP x -> W_q relu(... relu(W_1 x + b_1) ...) + b_q with widths ``dims``.

    Layout: W_i (n_i, n_(i-1)) row-major then b_i, layer by layer (PyTorch ``nn.Linear`` layout).
    Laws: per hidden neuron, |incoming weights incl. bias|^2 - |outgoing weights|^2; their number
    sum(dims[1:-1]) is the count (arXiv 2307.00144 Sec. 4 numerics; arXiv 2508.07370 Cor. 3.4,
    number unverified).

    Parameters
    ----------
    dims : sequence of int
        ``[n_0, ..., n_q]`` with at least one hidden layer.
    bias : bool, default False
        Biases on every layer.
    path_phi : bool, default True
        Set ``phi`` to the path-lifting (its size is the number of paths, about prod(dims): keep
        the widths small), else None.

    Returns
    -------
    Architecture
        ``to_module`` gives the ``nn.Sequential`` of Linear/ReLU layers.

    Raises
    ------
    InputError
        Fewer than three widths, a width < 1.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.architectures import mlp_laws_torch, relu_deep
    >>> arch = relu_deep([2, 3, 1], bias=True)
    >>> theta = arch.sample_params()
    >>> arch.n_params, arch.n_known
    (13, 3)
    >>> bool(torch.allclose(mlp_laws_torch(arch.to_module(theta)), arch.laws(theta)))
    True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Abide by the law and follow the flow: conservation
    laws for gradient flows", NeurIPS 2023, arXiv:2307.00144, Sec. 4.
    """
    dims = [_pos(d, "dims") for d in dims]
    if len(dims) < 3:
        raise InputError("dims: a deep ReLU network needs at least one hidden layer")
    shapes = {}
    for i in range(1, len(dims)):
        shapes[f"W{i}"] = (dims[i], dims[i - 1])
        if bias:
            shapes[f"b{i}"] = (dims[i],)
    dag = mlp_dag(dims, bias)
    phi = path_lifting(dag)[0] if path_phi else None
    q = len(dims) - 1
    arch = None

    def g(t, X):
        p = arch.unflatten(t)
        H = X
        for i in range(1, q + 1):
            H = H @ p[f"W{i}"].T
            if bias:
                H = H + p[f"b{i}"]
            if i < q:
                H = torch.relu(H)
        return H

    def to_module(t):
        p = {k: v.detach() for k, v in arch.unflatten(t).items()}
        layers = []
        for i in range(1, q + 1):
            lin = nn.Linear(dims[i - 1], dims[i], bias=bias, dtype=t.dtype)
            with torch.no_grad():
                lin.weight.copy_(p[f"W{i}"])
                if bias:
                    lin.bias.copy_(p[f"b{i}"])
            layers.append(lin)
            if i < q:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    k = sum(dims[1:-1])
    return (arch := Architecture(f"relu{dims}{'+bias' if bias else ''}", shapes, g,
                                 dag_laws(dag), k, k, _sampler(shapes),
                                 _input_sampler(lambda N: (N, dims[0])), phi, to_module))


# ----------------------------------------------------------------------------- conv
def _circ(X: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Circular cross-correlation, PyTorch layout: X (N, c_in, n), w (c_out, c_in, k).

    out[b, o, i] = sum_{c,t} w[o, c, t] X[b, c, (i + t - (k-1)//2) mod n] (the output of
    ``nn.Conv1d(..., padding=(k-1)//2, padding_mode='circular')`` for odd k).
    """
    n, k = X.shape[-1], w.shape[-1]
    idx = (torch.arange(n)[:, None] + torch.arange(k)[None, :] - (k - 1) // 2) % n
    return torch.einsum("bcit,oct->boi", X[:, :, idx], w)


def conv_relu(n: int, c0: int, c1: int, c2: int, n_u: int, n_v: int) -> Architecture:
    """Two-layer circular-convolution ReLU network on signals of length ``n``.

    g(theta, X) = conv(relu(conv(X, u)), v), u (c1, c0, n_u), v (c2, c1, n_v) in PyTorch ``Conv1d``
    layout (cross-correlation, circular padding, no bias). Laws, one per hidden channel j:
    h_j = sum_k |u[j, k]|^2 - sum_i |v[i, j]|^2, exactly c1 of them near a generic theta
    (arXiv 2506.06194 Thm 3.6). No ``phi``: count through ``g``.

    Parameters
    ----------
    n : int
        Signal length.
    c0, c1, c2 : int
        Input, hidden and output channels.
    n_u, n_v : int
        Filter lengths (<= n; odd for ``to_module``).

    Returns
    -------
    Architecture
        Inputs of shape (N, c0, n).

    Raises
    ------
    InputError
        A size < 1, a filter longer than the signal; ``to_module`` with an even filter length.

    Examples
    --------
    >>> from measureflow.conservation import number_of_laws_model
    >>> from measureflow.conservation.architectures import conv_relu
    >>> arch = conv_relu(4, 1, 2, 1, 3, 3)
    >>> theta, X = arch.sample_params(), arch.sample_inputs(16)
    >>> number_of_laws_model(arch.g, theta, X).n_laws, arch.n_known
    (2, 2)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Thm 3.6.
    """
    n, c0, c1, c2 = (_pos(x, nm) for x, nm in ((n, "n"), (c0, "c0"), (c1, "c1"), (c2, "c2")))
    n_u, n_v = _pos(n_u, "n_u"), _pos(n_v, "n_v")
    if n_u > n or n_v > n:
        raise InputError("n_u, n_v: filters cannot be longer than the signal")
    shapes = {"u": (c1, c0, n_u), "v": (c2, c1, n_v)}
    arch = None

    def g(t, X):
        p = arch.unflatten(t)
        return _circ(torch.relu(_circ(X, p["u"])), p["v"])

    def laws(t):
        p = arch.unflatten(t)
        return (p["u"] ** 2).sum((1, 2)) - (p["v"] ** 2).sum((0, 2))

    def to_module(t):
        if n_u % 2 == 0 or n_v % 2 == 0:
            raise InputError("n_u, n_v: the nn.Conv1d mapping needs odd filter sizes")
        p = {k: v.detach() for k, v in arch.unflatten(t).items()}
        c_a = nn.Conv1d(c0, c1, n_u, padding=(n_u - 1) // 2, padding_mode="circular", bias=False,
                        dtype=t.dtype)
        c_b = nn.Conv1d(c1, c2, n_v, padding=(n_v - 1) // 2, padding_mode="circular", bias=False,
                        dtype=t.dtype)
        with torch.no_grad():
            c_a.weight.copy_(p["u"])
            c_b.weight.copy_(p["v"])
        return nn.Sequential(c_a, nn.ReLU(), c_b)

    return (arch := Architecture(f"conv[n={n},c={c0},{c1},{c2},k={n_u},{n_v}]", shapes, g, laws,
                                 c1, c1, _sampler(shapes),
                                 _input_sampler(lambda N: (N, c0, n)), None, to_module))


# ----------------------------------------------------------------------------- attention
def attention(dim: int, d_head: int, heads: int = 1, *, n_tokens: int = 4,
              scale: float | None = None) -> Architecture:
    """Multi-head self-attention g(theta, X) = sum_h softmax(c X Q_h^T K_h X^T) X V_h^T O_h.

    Q_h, K_h, V_h, O_h have shape (d_head, dim); X is (batch, n_tokens, dim); c = ``scale``
    (default 1/sqrt(d_head), as in ``nn.MultiheadAttention``). phi = (Q_h^T K_h, V_h^T O_h)_h.
    Laws per head: Q_h Q_h^T - K_h K_h^T and V_h V_h^T - O_h O_h^T (upper triangles), i.e.
    heads x d_head (d_head + 1) laws; complete for one head (arXiv 2506.06194 Thm 3.8, Cor. 3.9).
    For several heads they are conserved (Cor. 3.10) and completeness is open in that paper
    (``expected_laws`` is then the per-head count, checked numerically). PyTorch layout:
    :func:`attention_laws_torch`.

    Parameters
    ----------
    dim : int
        Token dimension.
    d_head : int
        Head dimension.
    heads : int, default 1
    n_tokens : int, default 4
        Tokens per sampled input.
    scale : float, optional
        Softmax temperature c (> 0); ``to_module`` needs the default and heads x d_head = dim
    (the layout of ``nn.MultiheadAttention``).

    Returns
    -------
    Architecture
        Layout ``Q0, K0, V0, O0, Q1, ...``.

    Raises
    ------
    InputError
        A size < 1, ``scale`` <= 0.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation import number_of_laws
    >>> from measureflow.conservation.architectures import attention
    >>> arch = attention(2, 1)
    >>> theta = arch.sample_params()
    >>> number_of_laws(arch.phi, theta).n_laws, arch.n_known
    (2, 2)
    >>> arch = attention(4, 2, heads=2)                   # heads x d_head = dim
    >>> theta, X = arch.sample_params(), arch.sample_inputs(3)
    >>> mha = arch.to_module(theta)
    >>> bool(torch.allclose(mha(X, X, X, need_weights=False)[0], arch.g(theta, X)))
    True

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Thm 3.8, Cor. 3.9-3.10.
    """
    dim, d, H = _pos(dim, "dim"), _pos(d_head, "d_head"), _pos(heads, "heads")
    n_tokens = _pos(n_tokens, "n_tokens")
    c = 1.0 / math.sqrt(d) if scale is None else check_positive(scale, "scale")
    shapes = {}
    for h in range(H):
        for nm in "QKVO":
            shapes[f"{nm}{h}"] = (d, dim)
    arch = None

    def heads_of(t):
        p = arch.unflatten(t)
        return [(p[f"Q{h}"], p[f"K{h}"], p[f"V{h}"], p[f"O{h}"]) for h in range(H)]

    def phi(t):
        return torch.cat([torch.cat([(Q.T @ K).reshape(-1), (V.T @ O).reshape(-1)])
                          for Q, K, V, O in heads_of(t)])

    def g(t, X):
        out = 0
        for Q, K, V, O in heads_of(t):
            A = torch.softmax(c * (X @ Q.T) @ (X @ K.T).transpose(-1, -2), dim=-1)
            out = out + A @ X @ V.T @ O
        return out

    def laws(t):
        return torch.cat([torch.cat([_triu(Q @ Q.T - K @ K.T), _triu(V @ V.T - O @ O.T)])
                          for Q, K, V, O in heads_of(t)])

    def to_module(t):
        if scale is not None and abs(c - 1.0 / math.sqrt(d)) > 1e-15:
            raise InputError("scale: nn.MultiheadAttention uses 1/sqrt(d_head)")
        if H * d != dim:
            raise InputError(f"d_head: nn.MultiheadAttention needs heads x d_head = dim, got "
                             f"{H} x {d} != {dim}")
        hs = [tuple(x.detach() for x in hh) for hh in heads_of(t)]
        mha = nn.MultiheadAttention(dim, H, bias=False, batch_first=True, dtype=t.dtype)
        with torch.no_grad():
            Wq = torch.cat([hh[0] for hh in hs], 0)
            Wk = torch.cat([hh[1] for hh in hs], 0)
            Wv = torch.cat([hh[2] for hh in hs], 0)
            mha.in_proj_weight.copy_(torch.cat([Wq, Wk, Wv], 0))
            mha.out_proj.weight.copy_(torch.cat([hh[3] for hh in hs], 0).T)
        return mha

    k = H * d * (d + 1)
    return (arch := Architecture(f"attention[dim={dim},d={d},H={H}]", shapes, g, laws, k, k,
                                 _sampler(shapes),
                                 _input_sampler(lambda N: (N, n_tokens, dim)), phi, to_module,
                                 note="" if H == 1 else "multi-head completeness: open in "
                                 "arXiv 2506.06194 (Cor. 3.10)"))


# ----------------------------------------------------------------------------- residual
def residual(arch: Architecture) -> Architecture:
    """Residual block x + g(theta, x): same laws and same count as ``arch``.

    d_theta (x + g) = d_theta g, so the block's factorization phi also factors the residual map
    (arXiv 2506.06194 Prop. 3.2).

    Parameters
    ----------
    arch : Architecture
        A block whose output shape equals its input shape.

    Returns
    -------
    Architecture
        ``to_module`` is None; ``g`` raises InputError on a shape mismatch.

    Raises
    ------
    InputError
        ``arch`` not an Architecture.

    Examples
    --------
    >>> from measureflow.conservation import number_of_laws_model
    >>> from measureflow.conservation.architectures import relu_two_layer, residual
    >>> arch = residual(relu_two_layer(2, 2, 3))
    >>> theta, X = arch.sample_params(), arch.sample_inputs(16)
    >>> arch.name, number_of_laws_model(arch.g, theta, X).n_laws
    ('residual(relu[2,2,3])', 3)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Prop. 3.2.
    """
    if not isinstance(arch, Architecture):
        raise InputError("arch: expected an Architecture")

    def g(t, X):
        out = arch.g(t, X)
        if out.shape != X.shape:
            raise InputError("arch: a residual block needs output shape == input shape")
        return X + out

    # d_theta (x + g) = d_theta g: the block's factorization phi also factors the residual map
    return dataclasses.replace(arch, name=f"residual({arch.name})", g=g, to_module=None)


def relu_resnet(m: int, hidden: Sequence[int], *, bias: bool = False) -> Architecture:
    """ReLU ResNet x -> x_q with x_l = x_(l-1) + U_l relu(V_l^T x_(l-1) + b_l), x in R^m.

    U_l (m, r_l), V_l (m, r_l). Block laws |v_k|^2 (+ b_k^2) - |u_k|^2 per hidden neuron of every
    block (arXiv 2506.06194 Thm 4.6 / Prop. 3.2); with m > 1 there is no other law (arXiv
    2506.06194 Sec. 4.4 numerics), so ``expected_laws = sum(hidden)``; for m = 1 it is None, see
    :func:`scalar_resnet_example`. No ``phi`` and no ``to_module``.

    Parameters
    ----------
    m : int
        Width of the residual stream.
    hidden : sequence of int
        Hidden widths r_l of the blocks.
    bias : bool, default False

    Returns
    -------
    Architecture
        Layout ``U0, V0, (b0,) U1, ...``.

    Raises
    ------
    InputError
        A width < 1.

    Examples
    --------
    >>> from measureflow.conservation.architectures import relu_resnet
    >>> arch = relu_resnet(2, [2, 3])
    >>> arch.n_params, arch.n_known, arch.expected_laws, arch.laws(arch.sample_params()).numel()
    (20, 5, 5, 5)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Thm 4.6, Sec. 4.4.
    """
    m = _pos(m, "m")
    hidden = [_pos(r, "hidden") for r in hidden]
    shapes = {}
    for l_, r in enumerate(hidden):
        shapes[f"U{l_}"] = (m, r)
        shapes[f"V{l_}"] = (m, r)
        if bias:
            shapes[f"b{l_}"] = (r,)
    arch = None

    def g(t, X):
        p = arch.unflatten(t)
        for l_ in range(len(hidden)):
            H = X @ p[f"V{l_}"]
            if bias:
                H = H + p[f"b{l_}"]
            X = X + torch.relu(H) @ p[f"U{l_}"].T
        return X

    def laws(t):
        p = arch.unflatten(t)
        out = []
        for l_ in range(len(hidden)):
            h = (p[f"V{l_}"] ** 2).sum(0) - (p[f"U{l_}"] ** 2).sum(0)
            if bias:
                h = h + p[f"b{l_}"] ** 2
            out.append(h)
        return torch.cat(out)

    k = sum(hidden)
    return (arch := Architecture(f"resnet[m={m},{hidden}]", shapes, g, laws, k,
                                 k if m > 1 else None, _sampler(shapes),
                                 _input_sampler(lambda N: (N, m)), None, None))


def scalar_resnet_example() -> Architecture:
    """The scalar two-block ResNet of arXiv 2506.06194 Ex. 4.8, with one law more than its blocks.

    g = x + u relu(v x) + s relu(t (x + u relu(v x))), theta = (u, v, s, t). On the region
    sgn t = sgn v = sgn u (the sampler draws positive parameters; inputs are positive) W_theta is
    spanned by one x-independent field, so there are 4 - 1 = 3 laws, while the block laws
    u^2 - v^2, s^2 - t^2 give only 2. There, for x > 0, g = x (1 + uv)(1 + st) [derived], so
    ``phi(theta) = (1 + uv)(1 + st)`` is a factorization valid on that region (it lets
    :func:`~measureflow.conservation.number_of_laws_model` prove its count).

    Returns
    -------
    Architecture
        ``n_known = 2``, ``expected_laws = 3``.

    Examples
    --------
    >>> from measureflow.conservation import number_of_laws_model
    >>> from measureflow.conservation.architectures import scalar_resnet_example
    >>> arch = scalar_resnet_example()
    >>> theta, X = arch.sample_params(), arch.sample_inputs(8)
    >>> c = number_of_laws_model(arch.g, theta, X, phi=arch.phi)
    >>> c.n_laws, c.status, arch.n_known
    (3, 'exact', 2)

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Ex. 4.8.
    """
    shapes = {"u": (1,), "v": (1,), "s": (1,), "t": (1,)}

    def g(th, X):
        u, v, s, t = th[0], th[1], th[2], th[3]
        y = X + u * torch.relu(v * X)
        return y + s * torch.relu(t * y)

    def laws(th):
        return torch.stack([th[1] ** 2 - th[0] ** 2, th[3] ** 2 - th[2] ** 2])

    def phi(th):
        return ((1 + th[0] * th[1]) * (1 + th[2] * th[3])).reshape(1)

    def sample(seed=0, dtype=_F64):
        gen = make_generator(seed)
        return (0.5 + torch.rand(4, generator=gen, dtype=_F64)).to(dtype)

    def inputs(n=32, seed=0, dtype=_F64):
        gen = make_generator(seed)
        return (0.1 + torch.rand(n, 1, generator=gen, dtype=_F64)).to(dtype)

    return Architecture("resnet-scalar-ex4.8", shapes, g, laws, 2, 3, sample, inputs, phi,
                        note="3 laws (D - 1) although only 2 block laws; phi valid on the "
                             "positive region only")


# ----------------------------------------------------------------------------- softmax
def softmax_layer(n: int, m: int) -> Architecture:
    """Softmax + cross-entropy layer softmax(theta x), theta (n, m).

    For cross-entropy the loss gradients w.r.t. the logits span V_l = {w : sum w = 0}, so the
    model used for counting (``g`` and ``phi``) returns the *centred* logits P_l theta x
    (P_l = I - 11^T/n). Laws: the m column sums sum_i theta_ij, exactly m of them
    (arXiv 2506.06194 Prop. 3.11).

    Parameters
    ----------
    n : int
        Number of classes (>= 2).
    m : int
        Input dimension (>= 1).

    Returns
    -------
    Architecture

    Raises
    ------
    InputError
        ``n`` < 2, ``m`` < 1.

    Examples
    --------
    >>> from measureflow.conservation import number_of_laws
    >>> from measureflow.conservation.architectures import softmax_layer
    >>> arch = softmax_layer(3, 2)
    >>> number_of_laws(arch.phi, arch.sample_params()).n_laws
    2

    References
    ----------
    S. Marcotte, R. Gribonval, G. Peyre, "Transformative or conservative? Conservation laws
    for ResNets and Transformers", ICML 2025, arXiv:2506.06194, Prop. 3.11.
    """
    n, m = _pos(n, "n"), _pos(m, "m")
    if n < 2:
        raise InputError("n: softmax needs at least two classes")
    shapes = {"theta": (n, m)}

    def g(t, X):
        Z = X @ t.reshape(n, m).T
        return Z - Z.mean(-1, keepdim=True)

    def phi(t):
        T = t.reshape(n, m)
        return T - T.mean(0, keepdim=True)

    def laws(t):
        return t.reshape(n, m).sum(0)

    return Architecture(f"softmax[{n},{m}]", shapes, g, laws, m, m, _sampler(shapes),
                        _input_sampler(lambda N: (N, m)), phi, None)


# ----------------------------------------------------------------------------- helpers
def known_rank(arch: Architecture, theta, *, rtol: float = 1e-9) -> int:
    """Numerical rank of the Jacobian of ``arch.laws`` at ``theta`` (independent known laws).

    Singular values of the Jacobian (``torch.func.jacrev``) above ``rtol`` x the largest are
    counted.

    Parameters
    ----------
    arch : Architecture
    theta : array_like or Tensor, shape (D,)
        Finite flat parameter vector, D = ``arch.n_params``.
    rtol : float, default 1e-9
        Relative rank threshold (> 0).

    Returns
    -------
    int

    Raises
    ------
    InputError
        ``arch`` not an Architecture, ``theta`` of the wrong shape or non-finite, ``rtol`` <= 0.

    Examples
    --------
    >>> from measureflow.conservation.architectures import known_rank, linear_two_layer
    >>> arch = linear_two_layer(3, 2, 2)                 # 3 laws: upper triangle of a 2x2
    >>> known_rank(arch, arch.sample_params())
    3
    """
    if not isinstance(arch, Architecture):
        raise InputError("arch: expected an Architecture from conservation.architectures")
    t = as_tensor(theta, "theta").detach()  # kinds and NaN checked by the core
    rtol = check_positive(rtol, "rtol")
    if t.ndim != 1 or t.numel() != arch.n_params:
        raise InputError(f"theta: expected a finite flat vector of length {arch.n_params}")
    J = torch.func.jacrev(arch.laws)(t).reshape(-1, t.numel())
    if J.numel() == 0:
        return 0
    sv = torch.linalg.svdvals(J)
    return int((sv > rtol * sv[0]).sum()) if float(sv[0]) > 0 else 0


def _mat(x):
    return x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def linear_laws_torch(first: nn.Linear, second: nn.Linear) -> torch.Tensor:
    """Laws W2^T W2 - W1 W1^T of two bias-free ``nn.Linear`` layers x -> second(first(x)).

    U = W2, V = W1^T in the notation of :func:`linear_two_layer`; the full matrix is returned
    (autograd kept).

    Parameters
    ----------
    first, second : torch.nn.Linear
        ``first.out_features == second.in_features``.

    Returns
    -------
    torch.Tensor, shape (r, r)
        r = ``first.out_features``.

    Raises
    ------
    InputError
        Not two Linear layers, or mismatched widths.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.architectures import linear_laws_torch, linear_two_layer
    >>> arch = linear_two_layer(3, 2, 2)
    >>> theta = arch.sample_params()
    >>> net = arch.to_module(theta)
    >>> H = linear_laws_torch(net[0], net[1])
    >>> tuple(H.shape), bool(torch.allclose(H[0, 0], arch.laws(theta)[0]))
    ((2, 2), True)
    """
    if not (isinstance(first, nn.Linear) and isinstance(second, nn.Linear)):
        raise InputError("first, second: expected two nn.Linear layers")
    W1, W2 = first.weight, second.weight
    if W1.shape[0] != W2.shape[1]:
        raise InputError("first, second: first.out_features must equal second.in_features")
    return W2.T @ W2 - W1 @ W1.T


def mlp_laws_torch(model: nn.Sequential) -> torch.Tensor:
    """Laws of a Linear/ReLU ``nn.Sequential``, one per hidden neuron (order of :func:`relu_deep`).

    h = |row of W_i|^2 + b_i^2 - |column of W_(i+1)|^2 for every hidden neuron (autograd kept).

    Parameters
    ----------
    model : torch.nn.Sequential
        At least two ``nn.Linear`` layers (other modules are skipped).

    Returns
    -------
    torch.Tensor, shape (n_hidden,)

    Raises
    ------
    InputError
        Fewer than two Linear layers.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.architectures import mlp_laws_torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3, bias=False), torch.nn.ReLU(),
    ...                           torch.nn.Linear(3, 1, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.fill_(1.0), net[2].weight.fill_(2.0)
    >>> mlp_laws_torch(net).tolist()                     # 2 x 1 - 1 x 4
    [-2.0, -2.0, -2.0]
    """
    lins = [mod for mod in model if isinstance(mod, nn.Linear)]
    if len(lins) < 2:
        raise InputError("model: needs at least two nn.Linear layers")
    out = []
    for a, b in zip(lins[:-1], lins[1:]):
        h = (a.weight ** 2).sum(1) - (b.weight ** 2).sum(0)
        if a.bias is not None:
            h = h + a.bias ** 2
        out.append(h)
    return torch.cat(out)


def conv_laws_torch(conv1: nn.Conv1d | nn.Conv2d, conv2: nn.Conv1d | nn.Conv2d) -> torch.Tensor:
    """Laws of two stacked convolutions, one per hidden channel j.

    h_j = |conv1.weight[j]|^2 (+ conv1.bias[j]^2) - |conv2.weight[:, j]|^2 (arXiv 2506.06194
    Thm 3.6, the layout of :func:`conv_relu`; autograd kept).

    Parameters
    ----------
    conv1, conv2 : torch.nn.Conv1d or torch.nn.Conv2d
        conv1's output channels = conv2's input channels.

    Returns
    -------
    torch.Tensor, shape (c1,)

    Raises
    ------
    InputError
        Mismatched channels.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.architectures import conv_laws_torch
    >>> c1, c2 = torch.nn.Conv1d(1, 3, 3, bias=False), torch.nn.Conv1d(3, 2, 3, bias=False)
    >>> with torch.no_grad():
    ...     _ = c1.weight.fill_(1.0), c2.weight.fill_(1.0)
    >>> conv_laws_torch(c1, c2).tolist()                 # 3 - 2 x 3
    [-3.0, -3.0, -3.0]
    """
    w1, w2 = conv1.weight, conv2.weight
    if w1.shape[0] != w2.shape[1]:
        raise InputError("conv1, conv2: conv1 output channels must equal conv2 input channels")
    h = (w1 ** 2).flatten(1).sum(1) - (w2 ** 2).transpose(0, 1).flatten(1).sum(1)
    if conv1.bias is not None:
        h = h + conv1.bias ** 2
    return h


def attention_laws_torch(mha: nn.MultiheadAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """Laws of ``nn.MultiheadAttention`` (packed in_proj, no bias), per head h.

    W_q[h] W_q[h]^T - W_k[h] W_k[h]^T and W_v[h] W_v[h]^T - W_o[:, h]^T W_o[:, h], where W_q[h] is
    the block of rows of head h (shape (d_head, dim)) and W_o[:, h] the block of columns of
    ``out_proj.weight`` (arXiv 2506.06194 Thm 3.8; the layout of :func:`attention`).

    Parameters
    ----------
    mha : torch.nn.MultiheadAttention
        With a packed ``in_proj_weight``.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The query/key and value/output laws, each of shape (heads, d_head, d_head).

    Raises
    ------
    InputError
        Not a MultiheadAttention, or separate q/k/v projection weights.

    Examples
    --------
    >>> import torch
    >>> from measureflow.conservation.architectures import attention, attention_laws_torch
    >>> arch = attention(4, 2, heads=2)
    >>> theta = arch.sample_params()
    >>> qk, vo = attention_laws_torch(arch.to_module(theta))
    >>> tuple(qk.shape), bool(torch.allclose(qk[0][0, 0], arch.laws(theta)[0]))
    ((2, 2, 2), True)
    """
    if not isinstance(mha, nn.MultiheadAttention):
        raise InputError("mha: expected a torch.nn.MultiheadAttention")
    if mha.in_proj_weight is None:
        raise InputError("mha: separate q/k/v projection weights are not supported")
    E, H = mha.embed_dim, mha.num_heads
    d = E // H
    Wq, Wk, Wv = mha.in_proj_weight.split(E, 0)
    Wo = mha.out_proj.weight
    qk, vo = [], []
    for h in range(H):
        sl = slice(h * d, (h + 1) * d)
        qk.append(Wq[sl] @ Wq[sl].T - Wk[sl] @ Wk[sl].T)
        vo.append(Wv[sl] @ Wv[sl].T - Wo[:, sl].T @ Wo[:, sl])
    return torch.stack(qk), torch.stack(vo)
