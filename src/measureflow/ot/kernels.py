"""Fused log-sum-exp and plan-application kernels of the transport engine.

Every Sinkhorn-type iteration of measureflow spends its time in one reduction,

    out_i = log sum_j exp(u_i + v_j - s C_ij),        s = 1 / eps,

(and its transpose), where u, v are potentials divided by eps plus log-weights. This module
computes it for a cost matrix held in memory (:func:`dense_lse`) and for a cost computed on the
fly from point clouds, C_ij = |x_i - y_j|^p or the bilinear C_ij = -<x_i, y_j> (``p = DOT``,
attention scores; :func:`points_lse`), plus the plan-vector products sum_j exp(u_i + v_j -
s C_ij) w_j (:func:`dense_apply`, :func:`points_apply`) and their row-normalised (softmax)
form for attention, batched over heads (:func:`points_softmax`).

**Two code paths, same numbers.** The bodies below are plain torch. They run either eagerly
(row blocks of about ``EAGER_BLOCK`` entries, so no n x m temporary is ever allocated beyond a
block) or through ``torch.compile`` (inductor: C++/OpenMP on CPU, Triton on GPU), which fuses
the whole reduction into one loop over C that never materialises the n x m matrix (memory
O(n + m) for point clouds). The compiled functions use ``dynamic=True``, so one compilation
serves every problem size; scalars are passed as 0-d tensors, so changing eps never
recompiles. Results agree with the eager path to rounding (1e-12 relative in float64; tested).

Choose the path with :func:`set_backend` (``"auto"``, ``"compiled"``, ``"eager"``) or the
environment variable ``MEASUREFLOW_OT_BACKEND``. **When compiling pays.** A compiled pass is
~5-10x faster than the eager one on CPU (fused loop, vectorised ``exp``, no temporaries), but
compiling costs a few seconds per kernel variant (dtype, dimension, p), more for the first
one of a process (inductor's start-up; its on-disk cache shortens later processes). An eager
pass over 2^22 entries takes ~50-100 ms on one CPU core, so a solve of a few hundred
iterations at that size saves more than the compile latency: ``"auto"`` compiles a reduction
with at least ``AUTO_NUMEL`` = 2^22 entries (about 2000 x 2000), and, once a variant is
compiled in the process (its latency paid), any reduction of that variant with at least
``WARM_NUMEL`` = 2^16 entries. If no compiler works (no C++ compiler, unsupported platform),
the first failure is reported once (``RuntimeWarning``) and the eager path is used from then
on. Inductor's generated code uses the number of torch threads of the first compilation.

**Stabilisation.** The one-pass reduction sums exp(u_i + v_j - s C_ij) without a max shift:
when u and v are the current potentials, the sums are the marginals of the current plan divided
by the weights (close to 1), so one pass is enough. If a sum leaves the range where it is
accurate (below ``m exp(L) / epsilon_machine`` or above the overflow threshold), the reduction
is redone with a max-shifted two-pass log-sum-exp. Exponents are clamped below at
L = log(tiny) + 1 before ``exp``: terms below exp(L) are negligible against any accepted sum
and the clamp avoids subnormal numbers, which are 10-50x slower on x86 CPUs (this was the
cause of float32 iterations being ~4x slower than float64 ones: at eps = 1e-2 x the cost
scale most entries of exp(-C/eps) are float32 subnormals).

**Mixed precision.** For float32 (and lower) data the exponent u_i + v_j - s C_ij is formed in
the potentials' dtype (float64 by default, see :mod:`measureflow.ot.loop`), rounded to the
data dtype only for ``exp``, and the sums are accumulated in the potentials' dtype. The
float32 potentials f, g of size ~ max C would otherwise carry an absolute rounding error
~ 6e-8 max C, i.e. a relative error 6e-8 max C / eps in every plan entry -- 6e-6 at
eps = 0.01 max C, which is where float32 Sinkhorn used to stall. The exponential itself runs
in float32, except in the compiled kernels on CPU, where it runs in the potentials'
dtype: inductor's float64 -> float32 -> float64 conversions cost more there than a float64
``exp`` (see :func:`_fused_exp_dtype`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import types
import warnings

import torch

__all__ = ["set_backend", "get_backend", "compiled_available", "use_compiled", "dense_lse",
           "dense_sum", "dense_apply", "points_lse", "points_sum", "points_apply", "points_softmax",
           "dense_compiled", "dense_variant", "points_variant",
           "points_cost", "points_cost_range", "AUTO_NUMEL", "EAGER_BLOCK", "DOT",
           "SOFTMAX_EAGER_BUDGET", "SOFTMAX_NUMEL", "process_independent"]

#: "auto" compiles reductions with at least this many entries ...
AUTO_NUMEL = 2**22
#: ... or at least this many once the same kernel variant is compiled in this process.
WARM_NUMEL = 2**16
#: Entries per row block on the eager path (bounds the temporaries; fits in L2/L3 caches).
EAGER_BLOCK = 2**18
#: Point clouds with at most this many cost entries keep their cost matrix on the eager path
#: (``PointCloud._eager_matrix``): 32 MiB in float64.
DENSE_NUMEL = 2**22
#: Point clouds of dimension above this use a blocked matmul for the cost instead of the
#: unrolled per-coordinate difference (which the compiled kernel inlines).
INLINE_DIM = 16
#: ``p`` of the bilinear cost C_ij = -<x_i, y_j> (attention scores) in the point-cloud kernels.
DOT = "dot"
#: "auto" for :func:`points_softmax`: a kernel variant is compiled once the scores its eager
#: passes have processed in this process reach this many (~1.5 s at ~6 ns per score, within
#: the measured compile latency of 1.5-4 s with inductor's disk cache warm or cold: pay eager
#: until eager has cost about what compiling costs, at most twice the better choice), or
#: once it is warm. Unlike a Sinkhorn solve, one attention call is one pass, so the solvers' rule
#: (compile any call of ``AUTO_NUMEL`` entries) paid ~4 s of compilation for a handful of
#: 3200-token calls (attention.hardmax, quick).
SOFTMAX_EAGER_BUDGET = 2**28
#: "auto" for :func:`points_softmax` under :func:`process_independent`: a call with at least
#: this many scores (per head x queries x keys; 1449^2 tokens) runs compiled, a smaller one
#: eager, whatever ran before in the process. A size rule cannot tell a handful of large calls
#: from a long flow of them; measured 2 Dec 2026 (serial, idle): attention.hardmax --quick
#: (eight calls each at 1600 and 3200 tokens) pays one compilation, 1.0 -> 3.9-4.5 s, while
#: the full attention.mean-field (80 calls per task at 1600 and 3200 particles) keeps its
#: compiled speed (201 s; 204 s with the history rule; with its n = 1600 calls eager it took
#: 323 s against 249 s, 2 Dec 13:52 and 14:05). 2^22 would leave the n = 1600 calls eager;
#: the budget rule is not a function of the call.
SOFTMAX_NUMEL = 2**21

_BACKENDS = ("auto", "compiled", "eager")
_state = {"backend": os.environ.get("MEASUREFLOW_OT_BACKEND", "auto").strip().lower() or "auto",
          "broken": None, "independent": 0}
if _state["backend"] not in _BACKENDS:  # pragma: no cover - environment misconfiguration
    warnings.warn(f"MEASUREFLOW_OT_BACKEND={_state['backend']!r} is not one of {_BACKENDS}; "
                  "using 'auto'", RuntimeWarning, stacklevel=1)
    _state["backend"] = "auto"
_lock = threading.Lock()
_compiled: dict[tuple, object] = {}  # one compiled copy of a body per kernel variant
_warm: set = set()   # kernel variants (name, dtypes, p, d) already compiled in this process
_eager_spent: dict = {}  # points_softmax: scores processed eagerly per variant (see above)


def set_backend(backend: str) -> str:
    """Select the kernel path: ``"auto"`` (default), ``"compiled"`` or ``"eager"``.

    ``"auto"`` compiles a reduction with at least ``AUTO_NUMEL`` = 2^22 entries, or at least
    ``WARM_NUMEL`` = 2^16 once its kernel variant is compiled in the process; ``"compiled"``
    compiles every reduction regardless of size (falling back to eager, with one warning, if
    compilation fails); ``"eager"`` never compiles. Both paths give the same numbers to rounding.
    Process-wide; also settable by the environment variable ``MEASUREFLOW_OT_BACKEND`` before
    import.

    Parameters
    ----------
    backend : {"auto", "compiled", "eager"}

    Returns
    -------
    str
        The previous setting (so it can be restored).

    Raises
    ------
    InputError
        Any other value.

    Examples
    --------
    >>> from measureflow import ot
    >>> old = ot.set_backend("eager")
    >>> ot.get_backend()
    'eager'
    >>> ot.set_backend(old)
    'eager'
    """
    from ..core.errors import InputError

    if backend not in _BACKENDS:
        raise InputError(f"backend: must be one of {', '.join(map(repr, _BACKENDS))}, "
                         f"got {backend!r}")
    old = _state["backend"]
    _state["backend"] = backend
    return old


def get_backend() -> str:
    """The current kernel path setting (see :func:`set_backend`).

    Returns
    -------
    str
        ``"auto"``, ``"compiled"`` or ``"eager"``.

    Examples
    --------
    >>> from measureflow import ot
    >>> ot.get_backend() in ("auto", "compiled", "eager")
    True
    """
    return _state["backend"]


def compiled_available() -> bool:
    """False once a compilation has failed in this process (the eager path is then used).

    Returns
    -------
    bool

    Examples
    --------
    >>> from measureflow.ot import kernels
    >>> isinstance(kernels.compiled_available(), bool)
    True
    """
    return _state["broken"] is None


@contextlib.contextmanager
def process_independent():
    """Within this block, ``"auto"`` chooses the kernel path from each call's size alone.

    Outside it, ``"auto"`` also uses what this process did before: a kernel variant already
    compiled here serves smaller calls (``WARM_NUMEL``), and :func:`points_softmax` compiles a
    variant once its eager passes have cost about a compilation (``SOFTMAX_EAGER_BUDGET``).
    That is faster, but the compiled and eager paths agree only to rounding, so the same call
    could give different last bits in a process that had compiled the variant and in a fresh
    one. Inside the block the rule is a function of the call: reductions with at least
    ``AUTO_NUMEL`` entries and softmax calls with at least ``SOFTMAX_NUMEL`` scores run
    compiled, the others eager. ``measureflow reproduce`` runs every experiment and every task
    in this block, so results are the same bits serially and on any Dask worker, whatever ran
    there before. Process-wide while any such block is open (blocks nest, also across threads).

    Examples
    --------
    >>> from measureflow.ot import kernels
    >>> with kernels.process_independent():
    ...     kernels.use_compiled(kernels.AUTO_NUMEL // 2, ("any", "variant"))   # size only
    False
    """
    with _lock:
        _state["independent"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["independent"] -= 1


def use_compiled(numel: int, variant=None) -> bool:
    """Whether a reduction over ``numel`` entries runs compiled under the current setting.

    ``"auto"``: when ``numel >= AUTO_NUMEL``, or ``numel >= WARM_NUMEL`` and the kernel
    ``variant`` was already compiled in this process (the compile latency is then paid; not
    inside :func:`process_independent`); ``"eager"`` or a failed compilation: never;
    ``"compiled"``: always.

    Parameters
    ----------
    numel : int
        Number of cost entries of the reduction.
    variant : tuple, optional
        Key naming the kernel, dtypes, p and dimension (:func:`dense_variant`,
        :func:`points_variant`).

    Returns
    -------
    bool

    Examples
    --------
    >>> from measureflow.ot import kernels
    >>> old = kernels.set_backend("eager")
    >>> kernels.use_compiled(kernels.AUTO_NUMEL)
    False
    >>> _ = kernels.set_backend(old)
    """
    b = _state["backend"]
    if b == "eager" or _state["broken"] is not None:
        return False
    if b == "compiled" or numel >= AUTO_NUMEL:
        return True
    return (variant is not None and numel >= WARM_NUMEL and variant in _warm
            and not _state["independent"])


def _low(dtype: torch.dtype) -> float:
    """Clamp for exponents: log(tiny) + 1 (keeps every exp() a normal number)."""
    return math.log(torch.finfo(dtype).tiny) + 1.0


# ----------------------------------------------------------------------------------------
# Kernel bodies (pure tensor functions; run eagerly on blocks or compiled on whole problems).
# ``ed`` is the dtype in which exp() runs (the data's); exponents are formed and sums
# accumulated in u's dtype.
# ----------------------------------------------------------------------------------------

def _k_dense_sum(C, u, v, s, ed: torch.dtype):
    """sum_j exp(clamp(u_i + v_j - s C_ij, L))."""
    z = u[..., :, None] + v[..., None, :] - C.to(u.dtype) * s
    return torch.exp(torch.clamp(z.to(ed), min=_low(ed))).to(u.dtype).sum(-1)


def _k_dense_lse(C, u, v, s, ed: torch.dtype):
    """u_i + log sum_j exp(v_j - s C_ij): two passes (max, then shifted sum)."""
    z = v[..., None, :] - C.to(u.dtype) * s
    mx = torch.amax(z, -1, keepdim=True)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    e = torch.exp(torch.clamp((z - mx).to(ed), min=_low(ed))).to(u.dtype).sum(-1)
    return u + mx.squeeze(-1) + torch.log(e)


def _cost_inline_t(xt, yt, p):
    """|x_i - y_j|^p (or -<x_i, y_j> for ``p = "dot"``) from coordinate-major clouds xt (d, n),
    yt (d, m) (d unrolled).

    The compiled point-cloud kernels take their clouds in this layout (contiguous rows of one
    coordinate): inductor then loads 16 consecutive x_i per vector instead of gathering them
    with stride d, which made the fused loop ~3x slower in float64 (measured 3.4 vs 1.2 ns per
    entry, 4000 points in 3-D, one thread).
    """
    if p == DOT:
        c = -(xt[0][:, None] * yt[0][None, :])
        for k in range(1, xt.shape[0]):
            c = c - xt[k][:, None] * yt[k][None, :]
        return c
    c = (xt[0][:, None] - yt[0][None, :]) ** 2
    for k in range(1, xt.shape[0]):
        c = c + (xt[k][:, None] - yt[k][None, :]) ** 2
    if p == 2.0:
        return c
    if p == 1.0:
        return torch.sqrt(c)
    return c ** (0.5 * p)


def _cost_inline(x, y, p):
    """|x_i - y_j|^p (or -<x_i, y_j>) for (n, d), (m, d) clouds, per coordinate (d unrolled)."""
    return _cost_inline_t(x.t(), y.t(), p)


def _pkey(p):
    """``p`` as the kernels take it: ``DOT`` or a float exponent."""
    return DOT if isinstance(p, str) and p == DOT else float(p)


def _coords(x):
    """Coordinate-major copy (d, n) of a cloud (n, d), the layout of the compiled kernels."""
    return x.t().contiguous()


# The point-cloud bodies take coordinate-major clouds xt (d, n), yt (d, m): see _coords.
def _k_points_sum(xt, yt, u, v, s, p, ed: torch.dtype):
    z = u[:, None] + v[None, :] - _cost_inline_t(xt, yt, p) * s
    return torch.exp(torch.clamp(z.to(ed), min=_low(ed))).to(u.dtype).sum(-1)


def _k_points_lse(xt, yt, u, v, s, p, ed: torch.dtype):
    z = v[None, :] - _cost_inline_t(xt, yt, p) * s
    mx = torch.amax(z, -1, keepdim=True)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    e = torch.exp(torch.clamp((z - mx).to(ed), min=_low(ed))).to(u.dtype).sum(-1)
    return u + mx.squeeze(-1) + torch.log(e)


def _k_points_apply(xt, yt, u, v, s, p, ed: torch.dtype, W):
    """sum_j exp(u_i + v_j - s |x_i - y_j|^p) W_jc for the (few) columns c of W."""
    z = u[:, None] + v[None, :] - _cost_inline_t(xt, yt, p) * s
    E = torch.exp(torch.clamp(z.to(ed), min=_low(ed))).to(u.dtype)
    return torch.stack([(E * W[None, :, c]).sum(-1) for c in range(W.shape[1])], 1)


def _k_points_range(xt, yt, p):
    c = _cost_inline_t(xt, yt, p)
    return torch.amin(c), torch.amax(c)


_BODIES = {"dense_sum": _k_dense_sum, "dense_lse": _k_dense_lse,
           "points_sum": _k_points_sum, "points_lse": _k_points_lse,
           "points_range": _k_points_range, "points_apply": _k_points_apply}


def _own_code(fn, tag: int):
    """``fn`` with a code object of its own (same body, name suffixed with ``tag``)."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_v{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__,
                              fn.__closure__)


def _get_compiled(name: str, key: tuple):
    """The compiled body for one kernel variant ``key``.

    Dynamo keeps compiled graphs per code object and allows 8 recompilations per code object
    (``torch._dynamo.config.recompile_limit``); with ``fullgraph=True`` the ninth is a hard
    error. One body serves many variants (dtypes, dimension d and the columns of W are
    unrolled, p is a constant), so a process using a dozen of them (the test suite; a session
    mixing attention and transport) used to hit the limit and lose the compiled path for good.
    Each variant therefore compiles its own copy of the body (a distinct code object); the
    on-disk inductor cache still recognises identical graphs across processes.
    """
    fn = _compiled.get(key)
    if fn is None:
        with _lock:
            fn = _compiled.get(key)
            if fn is None:
                fn = torch.compile(_own_code(_BODIES[name], len(_compiled)), dynamic=True,
                                   fullgraph=True)
                _compiled[key] = fn
    return fn


def dense_variant(C, u, ed=None) -> tuple:
    """Key of the compiled dense kernels for these argument types (see :func:`use_compiled`).

    Parameters
    ----------
    C : Tensor
        Cost.
    u : Tensor
        Row terms.
    ed : torch.dtype, optional
        dtype of exp().

    Returns
    -------
    tuple
        Hashable key (kernel family, dtypes, rank of u, device type).
    """
    return ("dense", C.dtype, u.dtype, u.ndim, C.dtype if ed is None else ed, C.device.type)


def points_variant(x, p, ed) -> tuple:
    """Key of the compiled point-cloud kernels for these argument types.

    Parameters
    ----------
    x : Tensor
        Point cloud (n, d).
    p : float or "dot"
        Cost exponent (or the bilinear cost).
    ed : torch.dtype or None
        dtype of exp().

    Returns
    -------
    tuple
        Hashable key (dtypes, p, dimension, device type).
    """
    return ("points", x.dtype, x.shape[-1], _pkey(p), ed, x.device.type)


def dense_compiled(C, u, ed=None) -> bool:
    """Whether the dense reductions of C run compiled under the current setting.

    Parameters
    ----------
    C : Tensor
        Cost (n, m).
    u : Tensor
        Row terms.
    ed : torch.dtype, optional
        dtype of exp().

    Returns
    -------
    bool
    """
    return use_compiled(C.numel(), dense_variant(C, u, ed))


def _fused_exp_dtype(ed: torch.dtype, u) -> torch.dtype:
    """dtype of exp() inside a compiled kernel: on CPU, the potentials' dtype.

    With float32 data the exponents are formed in the potentials' float64 (see "Mixed
    precision" above); inductor's CPU code converts float64 -> float32 -> float64 around exp()
    slowly, so rounding to float32 for exp() cost more than it saved (measured 2.2 ns per entry
    against 1.2 ns with exp() in float64, 4000 points in 3-D, one thread; dense float32 cost:
    3.7 against 2.6 ns; the float64 exp is also the more accurate). On GPUs a float32 exp() is
    much faster: ``ed`` is kept there.
    """
    return u.dtype if u.device.type == "cpu" and u.dtype.itemsize > ed.itemsize else ed


def _run(name: str, variant, *args, spec: tuple = ()):
    """Run a compiled kernel; on the first failure, warn once and fall back to eager.

    ``variant`` is the warm-up key (:func:`use_compiled`); the compiled copy is chosen by
    ``variant``, the tensors' dtypes and ``spec`` (sizes the body unrolls, e.g. W's columns).
    """
    if _state["broken"] is None:
        try:
            key = (name, variant, spec,
                   tuple(a.dtype for a in args if isinstance(a, torch.Tensor)))
            out = _get_compiled(name, key)(*args)
            _warm.add(variant)
            return out
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: use eager
            _state["broken"] = f"{type(exc).__name__}: {exc}"[:300]
            warnings.warn("measureflow.ot.kernels: torch.compile failed, using the eager "
                          f"kernels from now on ({_state['broken']})", RuntimeWarning,
                          stacklevel=3)
    return _BODIES[name](*args)


# ----------------------------------------------------------------------------------------
# Eager drivers (row blocks)
# ----------------------------------------------------------------------------------------

def _row_blocks(n: int, m: int, block: int = EAGER_BLOCK, rows: int | None = None):
    step = rows if rows is not None else max(1, block // max(m, 1))
    for i0 in range(0, n, step):
        yield slice(i0, min(i0 + step, n))


def _eager_dense(body, C, u, v, s, ed):
    n, m = C.shape[-2], C.shape[-1]
    if n * m <= EAGER_BLOCK:
        return body(C, u, v, s, ed)
    out = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    for sl in _row_blocks(n, m):
        out[..., sl] = body(C[sl], u[..., sl], v, s, ed)
    return out


def _cost_block(x, y, p):
    """|x_i - y_j|^p (or -<x_i, y_j>) for a block, in x's dtype (inline differences, or
    matmul for large d)."""
    if p == DOT:
        return -(x @ y.t())
    if x.shape[-1] <= INLINE_DIM:
        return _cost_inline(x, y, p)
    c = ((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.t())).clamp_min(0)
    if p == 2.0:
        return c
    return torch.sqrt(c) if p == 1.0 else c ** (0.5 * p)


# ----------------------------------------------------------------------------------------
# Public kernel entry points (tensor-only; called by the geometries)
# ----------------------------------------------------------------------------------------

def _accept(sums: torch.Tensor, m: int, ed: torch.dtype) -> bool:
    """Whether one-pass sums are all in the accurate range (see the module docstring)."""
    if sums.numel() == 0:
        return True
    lo = max(m, 1) * math.exp(_low(ed)) / torch.finfo(ed).eps
    hi = torch.finfo(ed).max * 1e-3
    smin, smax = torch.aminmax(sums)
    return bool(float(smin) >= lo and float(smax) <= hi)


def dense_sum(C, u, v, s, *, ed=None, compiled: bool | None = None):
    """sum_j exp(u_i + v_j - s C_ij) (one pass, exponents clamped below at log(tiny) + 1).

    Parameters
    ----------
    C : Tensor
        Cost (n, m).
    u : Tensor
        (n,) (or (..., n)) row terms: potential / eps + log-weight.
    v : Tensor
        (m,) (or (..., m)) column terms.
    s : Tensor
        0-d tensor, 1 / eps.
    ed : torch.dtype, optional
        dtype of exp() (default C's; the sums accumulate in u's dtype).
    compiled : bool, optional
        Force the compiled (True) or eager (False) path; ``None``: :func:`use_compiled`.

    Returns
    -------
    Tensor
        (n,) sums, in u's dtype.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> z, s = torch.zeros(2, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    >>> out = kernels.dense_sum(C, z, z, s, compiled=False)
    >>> bool(torch.allclose(out, (1 + torch.exp(-torch.tensor(1.0, dtype=torch.float64))).expand(2)))
    True
    """
    ed = C.dtype if ed is None else ed
    if compiled is None:
        compiled = dense_compiled(C, u, ed)
    if compiled:
        return _run("dense_sum", dense_variant(C, u, ed), C, u, v, s, _fused_exp_dtype(ed, u))
    return _eager_dense(_k_dense_sum, C, u, v, s, ed)


def dense_lse(C, u, v, s, *, ed=None, compiled: bool | None = None, stabilized: bool = True):
    """log sum_j exp(u_i + v_j - s C_ij) for C (n, m), u (..., n), v (..., m), s a 0-d tensor.

    ``stabilized=True`` tries the one-pass sum first (exact when u, v are near-optimal
    potentials) and falls back to the two-pass max-shifted form when a sum is out of range;
    ``False`` goes straight to the two-pass form.

    Parameters
    ----------
    C : Tensor
        Cost (n, m).
    u : Tensor
        (n,) (or (..., n)) row terms: potential / eps + log-weight.
    v : Tensor
        (m,) (or (..., m)) column terms.
    s : Tensor
        0-d tensor, 1 / eps.
    ed : torch.dtype, optional
        dtype of exp() (default C's).
    compiled : bool, optional
        Force the compiled (True) or eager (False) path; ``None``: :func:`use_compiled`.
    stabilized : bool, default True

    Returns
    -------
    Tensor
        (..., n), in u's dtype.

    Examples
    --------
    Agrees with ``torch.logsumexp``, also where the one-pass sum would underflow:

    >>> import torch
    >>> from measureflow.ot import kernels
    >>> C = torch.tensor([[0.0, 1.0, 4.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    >>> u, v = torch.zeros(2, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    >>> for eps in (1.0, 1e-3):
    ...     s = torch.tensor(1 / eps, dtype=torch.float64)
    ...     ref = torch.logsumexp(u[:, None] + v[None] - s * C, dim=1)
    ...     print(bool(torch.allclose(kernels.dense_lse(C, u, v, s, compiled=False), ref)))
    True
    True
    """
    ed = C.dtype if ed is None else ed
    if compiled is None:
        compiled = dense_compiled(C, u, ed)
    if stabilized:
        sums = dense_sum(C, u, v, s, ed=ed, compiled=compiled)
        if _accept(sums, C.shape[-1], ed):
            return torch.log(sums)
    if compiled:
        return _run("dense_lse", dense_variant(C, u, ed), C, u, v, s, _fused_exp_dtype(ed, u))
    return _eager_dense(_k_dense_lse, C, u, v, s, ed)


def dense_apply(C, u, v, s, W):
    """sum_j exp(u_i + v_j - s C_ij) W_j. for W (m,) or (m, k) (row blocks, BLAS matmul).

    The plan-vector product P W of the plan P_ij = exp(u_i + v_j - s C_ij).

    Parameters
    ----------
    C : Tensor
        Cost (n, m).
    u : Tensor
        (n,) (or (..., n)) row terms: potential / eps + log-weight.
    v : Tensor
        (m,) (or (..., m)) column terms.
    s : Tensor
        0-d tensor, 1 / eps.
    W : Tensor
        (m,) or (m, k).

    Returns
    -------
    Tensor
        (n,) or (n, k), in u's dtype.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> C = torch.tensor([[0.0, 1.0], [2.0, 0.5]], dtype=torch.float64)
    >>> u, v = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    >>> s, W = torch.tensor(2.0, dtype=torch.float64), torch.tensor([1.0, -1.0], dtype=torch.float64)
    >>> bool(torch.allclose(kernels.dense_apply(C, u, v, s, W), torch.exp(-s * C) @ W))
    True
    """
    vec = W.ndim == 1
    Wm = (W[:, None] if vec else W).to(u.dtype)
    n, m = C.shape
    out = torch.empty((n, Wm.shape[1]), dtype=u.dtype, device=u.device)
    for sl in _row_blocks(n, m):
        z = u[sl, None] + v[None, :] - C[sl].to(u.dtype) * s
        out[sl] = torch.exp(z) @ Wm
    return out[:, 0] if vec else out


_PC_BLOCK = 2**22  # cost block (entries) when a compiled dense kernel runs on cost blocks


def points_sum(x, y, u, v, s, p, *, ed, compiled: bool | None = None,
               rows: int | None = None):
    """sum_j exp(u_i + v_j - s |x_i - y_j|^p) without storing the cost (x, y in u's dtype).

    Parameters
    ----------
    x, y : Tensor
        Point clouds (n, d), (m, d), in u's dtype.
    u, v : Tensor
        (n,), (m,) row and column terms.
    s : Tensor
        0-d tensor, 1 / eps.
    p : float or "dot"
        Exponent of the cost |x_i - y_j|^p, or ``"dot"`` for C_ij = -<x_i, y_j>.
    ed : torch.dtype
        dtype of exp().
    compiled : bool, optional
        Force the compiled or eager path; ``None``: :func:`use_compiled`.
    rows : int, optional
        Rows per eager block.

    Returns
    -------
    Tensor
        (n,).

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64); y = x.clone()
    >>> z, s = torch.zeros(2, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    >>> out = kernels.points_sum(x, y, z, z, s, 2.0, ed=torch.float64, compiled=False)
    >>> bool(torch.allclose(out, torch.exp(-kernels.points_cost(x, y, 2.0)).sum(1)))
    True
    """
    n, m = x.shape[0], y.shape[0]
    if compiled is None:
        compiled = use_compiled(n * m, points_variant(x, p, ed))
    if compiled and x.shape[1] <= INLINE_DIM:
        return _run("points_sum", points_variant(x, p, ed), _coords(x), _coords(y), u, v, s,
                    _pkey(p), _fused_exp_dtype(ed, u))
    out = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    for sl in _row_blocks(n, m, _PC_BLOCK if compiled else EAGER_BLOCK, rows):
        out[sl] = dense_sum(_cost_block(x[sl], y, p), u[sl], v, s, ed=ed, compiled=compiled)
    return out


def points_lse(x, y, u, v, s, p, *, ed, compiled: bool | None = None,
               stabilized: bool = True, rows: int | None = None):
    """log sum_j exp(u_i + v_j - s |x_i - y_j|^p), streamed (see :func:`dense_lse`).

    Parameters
    ----------
    x, y : Tensor
        Point clouds (n, d), (m, d), in u's dtype.
    u, v : Tensor
        (n,), (m,) row and column terms.
    s : Tensor
        0-d tensor, 1 / eps.
    p : float or "dot"
        Exponent of the cost |x_i - y_j|^p, or ``"dot"`` for C_ij = -<x_i, y_j>.
    ed : torch.dtype
        dtype of exp().
    compiled : bool, optional
        Force the compiled or eager path; ``None``: :func:`use_compiled`.
    stabilized : bool, default True
        One-pass sums first, two-pass fallback (see :func:`dense_lse`).
    rows : int, optional
        Rows per eager block.

    Returns
    -------
    Tensor
        (n,).

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    >>> z, s = torch.zeros(3, dtype=torch.float64), torch.tensor(100.0, dtype=torch.float64)
    >>> out = kernels.points_lse(x, x, z, z, s, 2.0, ed=torch.float64, compiled=False)
    >>> ref = torch.logsumexp(-s * kernels.points_cost(x, x, 2.0), dim=1)
    >>> bool(torch.allclose(out, ref))
    True
    """
    n, m = x.shape[0], y.shape[0]
    if compiled is None:
        compiled = use_compiled(n * m, points_variant(x, p, ed))
    if stabilized:
        sums = points_sum(x, y, u, v, s, p, ed=ed, compiled=compiled, rows=rows)
        if _accept(sums, m, ed):
            return torch.log(sums)
    if compiled and x.shape[1] <= INLINE_DIM:
        return _run("points_lse", points_variant(x, p, ed), _coords(x), _coords(y), u, v, s,
                    _pkey(p), _fused_exp_dtype(ed, u))
    out = torch.empty(u.shape, dtype=u.dtype, device=u.device)
    for sl in _row_blocks(n, m, _PC_BLOCK if compiled else EAGER_BLOCK, rows):
        out[sl] = dense_lse(_cost_block(x[sl], y, p), u[sl], v, s, ed=ed, compiled=compiled,
                            stabilized=False)
    return out


def points_apply(x, y, u, v, s, p, W, *, rows: int | None = None, ed=None,
                 compiled: bool | None = None):
    """sum_j exp(u_i + v_j - s |x_i - y_j|^p) W_j. (W (m,) or (m, k)).

    Compiled (fused, nothing stored) for k <= 8 columns and d <= ``INLINE_DIM`` when the
    kernel variant is warm or the problem large; otherwise row blocks and a BLAS product.

    Parameters
    ----------
    x, y : Tensor
        Point clouds (n, d), (m, d), in u's dtype.
    u, v : Tensor
        (n,), (m,) row and column terms.
    s : Tensor
        0-d tensor, 1 / eps.
    p : float or "dot"
        Exponent of the cost |x_i - y_j|^p, or ``"dot"`` for C_ij = -<x_i, y_j>.
    W : Tensor
        (m,) or (m, k).
    rows : int, optional
        Rows per eager block.
    ed : torch.dtype, optional
        dtype of exp() (default x's).
    compiled : bool, optional
        Force the compiled or eager path; ``None``: :func:`use_compiled`.

    Returns
    -------
    Tensor
        (n,) or (n, k).

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    >>> y = torch.tensor([[0.5], [2.0], [3.0]], dtype=torch.float64)
    >>> u, v = torch.zeros(2, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    >>> s, W = torch.tensor(1.0, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    >>> out = kernels.points_apply(x, y, u, v, s, 2.0, W, compiled=False)
    >>> bool(torch.allclose(out, torch.exp(-kernels.points_cost(x, y, 2.0)) @ W))
    True
    """
    vec = W.ndim == 1
    Wm = (W[:, None] if vec else W).to(u.dtype)
    n, m = x.shape[0], y.shape[0]
    ed = x.dtype if ed is None else ed
    key = ("apply",) + points_variant(x, p, ed)
    if compiled is None:
        compiled = use_compiled(n * m, key)
    if compiled and x.shape[1] <= INLINE_DIM and Wm.shape[1] <= 8:
        out = _run("points_apply", key, _coords(x), _coords(y), u, v, s, _pkey(p),
                   _fused_exp_dtype(ed, u), Wm.contiguous(), spec=(Wm.shape[1],))
        return out[:, 0] if vec else out
    out = torch.empty((n, Wm.shape[1]), dtype=u.dtype, device=u.device)
    for sl in _row_blocks(n, m, rows=rows):
        out[sl] = torch.exp(u[sl, None] + v[None, :] - _cost_block(x[sl], y, p) * s) @ Wm
    return out[:, 0] if vec else out


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


def points_softmax(x, y, v, W, p=DOT, *, rows: int | None = None, cols: int | None = None,
                   compiled: bool | None = None):
    """Row-normalised plan-vector product, batched: out_hi = sum_j P_hij W_hj with

        P_hij = exp(v_hj - C_hij) / sum_l exp(v_hl - C_hil),

    C_hij = |x_hi - y_hj|^p, or C_hij = -<x_hi, y_hj> for ``p = "dot"`` (attention: P is the
    softmax of the scores <Q x_i, K y_j> plus the key terms v: log-weights, Sinkhorn
    potentials, -|K y_j|^2), for every batch index h (the heads).

    Compiled (no input requiring grad under autograd, d <= ``INLINE_DIM``, at most 8 columns
    of W), per batch index, no n x m array stored: one fused pass (:func:`points_apply`)
    gives the denominators and the numerators sum_j exp(v_hj - C_hij) [1, W_hj] unshifted,
    accepted when every denominator is in the accurate range of the one-pass sums (see
    "Stabilisation" above; at most 7 columns); otherwise two passes, lse_hi = log sum_j
    exp(v_hj - C_hij) (max-shifted) and sum_j exp(v_hj - C_hij - lse_hi) W_hj. Eager (and
    under autograd): blocks of ``rows`` x ``cols`` scores and an online softmax over the key
    blocks (running max, partial sums rescaled when it grows); the max is taken without
    gradient (the softmax is invariant to the shift, so the result and its gradient are
    exact).

    Parameters
    ----------
    x : Tensor
        (h, n, d) row points (attention: projected queries).
    y : Tensor
        (h, m, d) column points (projected keys).
    v : Tensor or None
        (h, m) column terms; ``None``: zero (uniform weights).
    W : Tensor
        (h, m, o) values.
    p : float or "dot", default "dot"
        Cost exponent, or the bilinear cost.
    rows, cols : int, optional
        Eager block sizes (default: all columns, and rows so that a block holds about
        ``EAGER_BLOCK`` scores per batch index).
    compiled : bool, optional
        Force the compiled or eager path; ``None`` under ``"auto"``: compiled once this
        kernel variant is warm or its eager passes in this process reach
        ``SOFTMAX_EAGER_BUDGET`` scores; inside :func:`process_independent`, compiled when
        the call has at least ``SOFTMAX_NUMEL`` scores; other settings: :func:`use_compiled`.

    Returns
    -------
    Tensor
        (h, n, o), in x's dtype.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y, W = (torch.randn(*s, generator=g, dtype=torch.float64)
    ...            for s in [(2, 4, 3), (2, 5, 3), (2, 5, 2)])
    >>> out = kernels.points_softmax(x, y, None, W, compiled=False)
    >>> bool(torch.allclose(out, torch.softmax(x @ y.transpose(1, 2), -1) @ W))
    True
    """
    h, n, d = x.shape
    m = y.shape[1]
    o = W.shape[-1]
    if m == 0:
        raise ValueError("points_softmax: no columns (m = 0): a softmax over an empty set is "
                         "undefined")
    if n == 0:
        return x.new_zeros(h, 0, o)
    W = W.to(x.dtype)
    v = None if v is None else v.to(x.dtype)
    # warm: this variant's fused pass has been compiled in the process (another number of
    # columns, or the two-pass fallback, compiles a copy of its own: a few seconds once)
    key = ("apply",) + points_variant(x, p, x.dtype)
    fusable = d <= INLINE_DIM and o <= 8 and not _needs_grad(x, y, v, W)
    if compiled is None:
        numel = h * n * m
        if _state["backend"] == "auto" and compiled_available():
            compiled = (numel >= SOFTMAX_NUMEL if _state["independent"] else
                        (numel >= WARM_NUMEL and key in _warm)
                        or _eager_spent.get(key, 0) + numel >= SOFTMAX_EAGER_BUDGET)
        else:
            compiled = use_compiled(numel, key)
    if fusable and not compiled:
        _eager_spent[key] = _eager_spent.get(key, 0) + h * n * m
    if compiled and fusable:
        one = torch.ones((), dtype=x.dtype, device=x.device)
        zero_n, zero_m = x.new_zeros(n), x.new_zeros(m)
        out = x.new_empty(h, n, o)
        ones = x.new_ones(m, 1)
        for k in range(h):
            vk = zero_m if v is None else v[k]
            Wk = torch.cat([ones, W[k]], 1) if o < 8 else W[k]   # [denominator | numerators]
            if o < 8:                         # one pass, unshifted
                sums = points_apply(x[k], y[k], zero_n, vk, one, p, Wk, ed=x.dtype,
                                    compiled=True)
                if _accept(sums[:, 0], m, x.dtype) and bool(torch.isfinite(sums).all()):
                    out[k] = sums[:, 1:] / sums[:, :1]
                    continue
            # two passes: shifted by the row's log-sum-exp, then renormalised by the shifted
            # denominator (which cancels the rounding error of lse itself)
            lse = points_lse(x[k], y[k], zero_n, vk, one, p, ed=x.dtype, compiled=True,
                             stabilized=False)
            sums = points_apply(x[k], y[k], -lse, vk, one, p, Wk, ed=x.dtype, compiled=True)
            out[k] = sums[:, 1:] / sums[:, :1] if o < 8 else sums
        return out
    cols = m if cols is None else max(1, min(cols, m))
    rows = (max(1, EAGER_BLOCK // max(cols, 1)) if rows is None else max(1, rows))
    rows = min(rows, max(n, 1))
    outs = []
    for i0 in range(0, n, rows):
        q = x[:, i0:i0 + rows]
        run_max = den = acc = None
        for j0 in range(0, m, cols):
            yb = y[:, j0:j0 + cols]
            if _pkey(p) == DOT:
                S = (torch.bmm(q, yb.transpose(1, 2)) if v is None
                     else torch.baddbmm(v[:, None, j0:j0 + cols], q, yb.transpose(1, 2)))
            else:
                S = -torch.stack([_cost_block(q[k], yb[k], p) for k in range(h)])
                if v is not None:
                    S = S + v[:, None, j0:j0 + cols]
            with torch.no_grad():
                bmax = S.detach().amax(-1, keepdim=True)
                new_max = bmax if run_max is None else torch.maximum(run_max, bmax)
                # rows whose terms so far are all -inf (zero weights) are shifted by 0; their
                # partial sums are 0 and are dropped, not rescaled, when a finite max appears
                shift = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
                if run_max is not None:
                    scale = torch.where(torch.isfinite(run_max), torch.exp(run_max - shift),
                                        torch.zeros_like(run_max))
            P = S.sub_(shift).exp_()
            pw = torch.bmm(P, W[:, j0:j0 + cols])
            ps = P.sum(-1, keepdim=True)
            if run_max is None:
                den, acc = ps, pw
            else:
                den = den * scale + ps
                acc = acc * scale + pw
            run_max = new_max
        outs.append(acc / den)
    return outs[0] if len(outs) == 1 else torch.cat(outs, 1)


def points_cost(x, y, p):
    """The cost block |x_i - y_j|^p (materialised), in x's dtype.

    Parameters
    ----------
    x, y : Tensor
        (n, d), (m, d).
    p : float or "dot"
        Exponent (``"dot"``: C_ij = -<x_i, y_j>).

    Returns
    -------
    Tensor
        (n, m).

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> x = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    >>> y = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    >>> kernels.points_cost(x, y, 2.0).tolist(), kernels.points_cost(x, y, 1.0).tolist()
    ([[25.0]], [[5.0]])
    """
    return _cost_block(x, y, p)


def points_cost_range(x, y, p, *, compiled: bool | None = None) -> tuple[float, float]:
    """(min, max) of |x_i - y_j|^p over all pairs, streamed.

    Parameters
    ----------
    x, y : Tensor
        (n, d), (m, d).
    p : float or "dot"
        Exponent (``"dot"``: C_ij = -<x_i, y_j>).
    compiled : bool, optional
        Force the compiled or eager path; ``None``: :func:`use_compiled`.

    Returns
    -------
    (float, float)

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot import kernels
    >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    >>> y = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    >>> kernels.points_cost_range(x, y, 2.0, compiled=False)
    (0.0, 9.0)
    """
    n, m = x.shape[0], y.shape[0]
    if compiled is None:
        compiled = use_compiled(n * m, ("range",) + points_variant(x, p, None))
    if compiled and x.shape[1] <= INLINE_DIM:
        lo, hi = _run("points_range", ("range",) + points_variant(x, p, None), _coords(x),
                      _coords(y), _pkey(p))
        return float(lo), float(hi)
    lo, hi = math.inf, -math.inf
    for sl in _row_blocks(n, m):
        cmin, cmax = torch.aminmax(_cost_block(x[sl], y, p))
        lo, hi = min(lo, float(cmin)), max(hi, float(cmax))
    return lo, hi
