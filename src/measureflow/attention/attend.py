"""Attention maps of weighted empirical measures, streamed over query and key chunks.

Implements the velocity fields Gamma_mu(x) of Castin, Ablin, Carrillo, Peyre, "A unified
perspective on the dynamics of deep transformers" (arXiv:2501.18322, Sec. 2-3, variants:
softmax, multi-head, L2, Sinkhorn, sigmoid, masked/causal) for
mu = sum_j w_j delta_{y_j}. Written by hand in torch (no attention library is used); the
Sinkhorn kind (doubly-stochastic attention, Sinkformers, arXiv:2110.11773) solves its entropic
OT problem on the transport engine (:func:`measureflow.ot.loop.sinkhorn_loop` over the per-head
bilinear geometry :class:`measureflow.ot.bilinear.Bilinear`, costs computed in blocks).

Score convention: s(x, y) = <Q x, K y> = y^T A x with A = K^T Q, **no hidden 1/sqrt(d)**.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..core import (
    ArrayContext,
    InputError,
    SolverResult,
    check_choice,
    check_int,
    check_ndim,
    check_positive,
    check_weights,
    report_convergence,
)
from ..core.validation import _as_float
from ..ot import kernels
from ..ot.bilinear import Bilinear, sinkhorn_fixed_point
from ..ot.loop import Hard, sinkhorn_loop
from ._heads import split_heads

__all__ = ["attend", "KINDS", "sinkhorn_potentials", "SinkhornAttentionResult",
           "output_moments"]

KINDS = ("softmax", "multihead", "l2", "sigmoid", "sinkhorn", "causal")

# Largest score block (heads x query chunk x key chunk entries) formed at once by default.
_BLOCK = 1 << 22


@dataclasses.dataclass(frozen=True, kw_only=True)
class SinkhornAttentionResult(SolverResult):
    """Dual potentials of doubly-stochastic (Sinkhorn) attention on ``mu = sum_j a_j delta_{x_j}``.

    The plan is ``pi_ij = a_i a_j exp((<Q x_i, K x_j> + f_i + g_j) / eps)`` per head, with both
    marginals equal to ``a`` (weights normalised to mass 1). ``potential_f``,
    ``potential_g``: shape ``(heads, n)``. ``errors``: L1 error of the row marginal,
    sum_i |sum_j pi_ij - a_i|, checked every iteration (the column marginal is exact after
    each g-update).
    """

    potential_f: torch.Tensor
    potential_g: torch.Tensor


def _chunks(chunk, m: int, n: int, h: int) -> tuple[int, int]:
    if chunk is None:
        if h * m * n <= _BLOCK:
            return max(m, 1), max(n, 1)
        nc = min(n, 1 << 15)
        mc = max(1, min(m, _BLOCK // (h * nc)))
        return mc, nc
    if isinstance(chunk, (tuple, list)):
        if len(chunk) != 2:
            raise InputError("chunk: expected an int or a pair (query_chunk, key_chunk)")
        mc = check_int(chunk[0], "chunk", min_value=1)
        nc = check_int(chunk[1], "chunk", min_value=1)
        return mc, nc
    c = check_int(chunk, "chunk", min_value=1)
    return c, c


def _stream(qp, kp, vy, key_bias, *, mc, nc, sigmoid_bias=None, wts=None, qpos=None,
            kpos=None):
    """Sigmoid sums, or the causal (masked) online softmax, in blocks of (h, mc, nc) scores.

    qp: (h, m, k) projected queries; kp: (h, n, k) projected keys; vy: (h, n, o) values;
    key_bias: (h, n) additive score terms. Returns (h, m, o) numerators and (h, m) denominators
    (both rescaled by the same per-row factor exp(-running max)), or the sigmoid sums with
    denominator None. Unmasked softmax attention is the engine's
    :func:`measureflow.ot.kernels.points_softmax`.
    """
    h, m, _ = qp.shape
    n = kp.shape[1]
    o = vy.shape[2]
    outs, dens = [], []
    for i0 in range(0, m, mc):
        q = qp[:, i0:i0 + mc]
        mi = q.shape[1]
        if sigmoid_bias is not None:
            acc = qp.new_zeros(h, mi, o)
            for j0 in range(0, n, nc):
                s = q @ kp[:, j0:j0 + nc].transpose(1, 2)
                p = torch.sigmoid(s + sigmoid_bias) * wts[..., j0:j0 + nc]
                acc = acc + p @ vy[:, j0:j0 + nc]
            outs.append(acc)
            continue
        run_max = qp.new_full((h, mi, 1), -math.inf)
        den = qp.new_zeros(h, mi, 1)
        acc = qp.new_zeros(h, mi, o)
        for j0 in range(0, n, nc):
            s = q @ kp[:, j0:j0 + nc].transpose(1, 2)
            if key_bias is not None:
                s = s + key_bias[:, None, j0:j0 + nc]
            hidden = kpos[None, j0:j0 + nc] > qpos[i0:i0 + mc, None]
            if bool(hidden.all()):
                continue
            s = s.masked_fill(hidden, -math.inf)
            new_max = torch.maximum(run_max, s.amax(-1, keepdim=True))
            safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
            p = torch.exp(s - safe)
            scale = torch.exp(run_max - safe)
            den = den * scale + p.sum(-1, keepdim=True)
            acc = acc * scale + p @ vy[:, j0:j0 + nc]
            run_max = new_max
        outs.append(acc)
        dens.append(den)
    if sigmoid_bias is not None:
        return torch.cat(outs, 1), None
    return torch.cat(outs, 1), torch.cat(dens, 1)


class _HeadsHard(Hard):
    """Hard marginal with attention's stopping error: the largest L1 violation over heads,
    max_h sum_i |sum_j pi_hij - a_i| (the engine's :class:`Hard` sums over heads)."""

    def violation(self, f, logm):
        return (self.w * torch.exp(logm) - self.w).abs().sum(-1).max()


def _sinkhorn(sp, kp, loga, *, max_iter, tol, mc, nc):
    """Sinkhorn for pi = a (x) a exp(S + u + v), S_hij = sp_hi . kp_hj (already / eps), on the
    engine: :func:`~measureflow.ot.loop.sinkhorn_loop` over a
    :class:`~measureflow.ot.bilinear.Bilinear` geometry at eps = 1 (potentials in units of eps).

    The plain alternating iteration (the cost -<Q x, K y> is not symmetric unless K^T Q is, so
    the engine's averaged symmetric update does not apply): u <- -lse_j(S_ij + v_j + log a_j),
    v <- -lse_i(S_ij + u_i + log a_i), error = max over heads of the L1 row violation after
    each v-update. The loop starts from u = the exact update from v = 0, so its iterates are
    those of the former hand-written loop. Under autograd the returned v carries the
    implicit-function gradient of the fixed point (:func:`sinkhorn_fixed_point`), u the
    gradient of its exact update from v.

    Returns (u, v, converged, n_iter, errors) with u, v of shape (h, n) in units of eps.
    """
    h, n, _ = sp.shape
    geom = Bilinear(sp.detach(), kp.detach(), rows=mc, cols=nc)
    pd, dt = geom.pdtype, sp.dtype
    la = loga.detach().to(pd).expand(h, n).contiguous()
    row, col = _HeadsHard(la.exp()), _HeadsHard(la.exp())
    row.logw = col.logw = la
    zero = torch.zeros_like(la)
    f0 = row.update(zero, geom.lse(zero, la, 1.0, axis=1), 1.0)
    out = sinkhorn_loop(geom, row, col, 1.0, tol=tol, max_iter=max_iter, init=(f0, zero),
                        relax=None, description="sinkhorn attention")
    u, v = out.f.to(dt), out.g.to(dt)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (sp, kp, loga)):
        lat = loga.expand(h, n)
        v = sinkhorn_fixed_point(v, sp, kp, lat, lat, rows=mc, cols=nc, max_iter=max_iter)
        zu = torch.zeros_like(lat)
        uv = -Bilinear(sp, kp, rows=mc, cols=nc).lse(zu, v + lat, 1.0, axis=1)
        u = u + (uv - uv.detach())
    return u, v, bool(out.converged), out.n_iter, out.errors


def _prepare(tokens, weights, ctx, name="tokens"):
    y = ctx.tensor(tokens, name)
    if y.ndim == 1:
        y = y[:, None]
    check_ndim(y, name, 2)
    if y.shape[0] == 0:
        raise InputError(f"{name}: needs at least one token")
    w = check_weights(None if weights is None else ctx.tensor(weights, "weights"),
                      y.shape[0], "weights", like=y)
    return y, w


def _sinkhorn_tol(tol, dtype) -> float:
    """``tol`` (default 1e-9) floored at 100 x machine epsilon of ``dtype`` (float32: 1.2e-5,
    the level its plan entries resolve; a float64 tolerance would never be met)."""
    tol = 1e-9 if tol is None else check_positive(tol, "tol")
    return max(tol, 100.0 * torch.finfo(dtype).eps)


def sinkhorn_potentials(tokens, weights=None, *, Q, K, heads=1, eps=1.0, max_iter=1000,
                        tol=None, chunk=None) -> SinkhornAttentionResult:
    r"""Dual potentials (f, g) of doubly-stochastic attention on mu = sum_j w_j delta_{y_j}.

    Solves, per head h, the entropic OT problem between mu and itself (a = w / sum w) for the
    cost C_ij = -<Q_h y_i, K_h y_j> (minus the attention score, no 1/sqrt(d)),

        min_{pi 1 = a, pi^T 1 = a}  <C, pi> + eps KL(pi | a (x) a),

    whose plan is pi_ij = a_i a_j exp((<Q y_i, K y_j> + f_i + g_j) / eps), by the alternating
    log-domain Sinkhorn iteration of the transport engine
    (:func:`measureflow.ot.loop.sinkhorn_loop` over the per-head bilinear geometry
    :class:`measureflow.ot.bilinear.Bilinear`, costs computed in chunks: never an n x n matrix
    beyond one block). The cost is not symmetric unless K^T Q is, so the two potentials
    differ. Under autograd the potentials carry implicit-function gradients of the fixed
    point (see :func:`measureflow.ot.bilinear.sinkhorn_fixed_point`).

    Parameters
    ----------
    tokens : (n, d) array or tensor
        The support points y_j (1-D: n points on the line).
    weights : (n,) array or tensor, optional
        Nonnegative weights (default uniform); normalised to mass 1.
    Q, K : (k, d) array or tensor
        Query and key maps; ``heads`` splits their rows into equal blocks.
    heads : int, default 1
        Number of heads (one OT problem each).
    eps : float, default 1.0
        Entropic regularisation (> 0), in score units.
    max_iter : int, default 1000
        Iteration cap (one f- and one g-update each).
    tol : float, optional
        Stopping tolerance on the L1 row-marginal violation max_h sum_i |sum_j pi_hij - a_i|
        after each g-update (default 1e-9; floored at 100 x machine epsilon of the data dtype,
        1.2e-5 in float32). On ``max_iter`` a :class:`ConvergenceWarning` is emitted and
        ``converged=False``.
    chunk : int or (int, int), optional
        Query and key block sizes (default: blocks of at most 2^22 scores).

    Returns
    -------
    SinkhornAttentionResult
        ``potential_f``, ``potential_g`` of shape (heads, n) (cost units), ``converged``,
        ``n_iter``, ``errors``. NumPy in, NumPy out.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).normal(size=(6, 2))
    >>> r = sinkhorn_potentials(y, Q=np.eye(2), K=np.eye(2))
    >>> r.converged, r.potential_f.shape
    (True, (1, 6))

    References
    ----------
    Sander, Ablin, Blondel & Peyre (2022), "Sinkformers: transformers with doubly stochastic
    attention", AISTATS (arXiv:2110.11773). Castin, Ablin, Carrillo & Peyre (2025),
    arXiv:2501.18322, Sec. 2-3 (Sinkhorn variant of the Transformer PDE).
    """
    ctx = ArrayContext(tokens, weights, Q, K)
    y, w = _prepare(tokens, weights, ctx)
    Qt, Kt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K")
    eps = check_positive(eps, "eps")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = _sinkhorn_tol(tol, y.dtype)
    dummy_v = Qt.new_zeros(check_int(heads, "heads", min_value=1), y.shape[1])
    Qh, Kh, _ = split_heads(Qt, Kt, dummy_v, heads, y.shape[1])
    h = Qh.shape[0]
    mc, nc = _chunks(chunk, y.shape[0], y.shape[0], h)
    qp = torch.einsum("nd,hkd->hnk", y, Qh) / eps
    kp = torch.einsum("nd,hkd->hnk", y, Kh)
    loga = torch.log(w / w.sum())
    u, v, conv, it, errs = _sinkhorn(qp, kp, loga, max_iter=max_iter, tol=tol, mc=mc, nc=nc)
    report_convergence(conv, "sinkhorn attention", it, errs[-1] if errs else math.nan, tol)
    return ctx.wrap(SinkhornAttentionResult(potential_f=eps * u, potential_g=eps * v,
                                            converged=conv, n_iter=it, errors=errs))


def _positions(positions, m, n, ctx, same):
    if positions is None:
        if not same and m != n:
            raise InputError("positions: required for kind='causal' when queries differ from "
                             "tokens")
        p = torch.arange(n, dtype=ctx.dtype, device=ctx.device)
        return p[:m], p
    if isinstance(positions, tuple):
        if len(positions) != 2:
            raise InputError("positions: a tuple must be (query_positions, token_positions)")
        qpos = ctx.tensor(positions[0], "positions").reshape(-1)
        kpos = ctx.tensor(positions[1], "positions").reshape(-1)
    else:
        kpos = ctx.tensor(positions, "positions").reshape(-1)
        if not same and m != n:
            raise InputError("positions: give (query_positions, token_positions) when the "
                             "queries are not the tokens")
        qpos = kpos
    if qpos.numel() != m or kpos.numel() != n:
        raise InputError(f"positions: expected {m} query and {n} token positions, got "
                         f"{qpos.numel()} and {kpos.numel()}")
    return qpos, kpos


def attend(queries, tokens, weights=None, *, Q, K, V, kind="softmax", heads=1, eps=1.0,
           positions=None, chunk=None, bias=0.0, max_iter=1000, tol=None):
    r"""Attention map Gamma_mu(x) of mu = sum_j w_j delta_{y_j}, evaluated at the queries.

    Score s(x, y) = <Q x, K y> = y^T A x with A = K^T Q (**no hidden 1/sqrt(d)**; scale Q).
    Per head (``heads`` splits the rows of Q, K; see below) with value map C:

    * ``"softmax"`` / ``"multihead"``:
      Gamma(x) = sum_j w_j e^{s(x,y_j)} C y_j / sum_j w_j e^{s(x,y_j)}.
      (``"multihead"`` is the same formula; use it with ``heads > 1``.)
    * ``"l2"``: the score is -|Q x - K y|^2 (unit scale).
    * ``"sigmoid"``: Gamma(x) = sum_j w_j sigmoid(s(x,y_j) + bias) C y_j -- *not* normalised
      (bias = -log n with uniform weights gives the unnormalised mean-field limit).
    * ``"sinkhorn"``: doubly-stochastic attention, Gamma(x) = C E_pi[y | x] where pi is the
      entropic OT plan of mu with itself for cost -s(x,y), regularisation ``eps``
      (pi = a (x) a exp((s + f + g)/eps), a = w / sum w). Computed by log-domain Sinkhorn
      (:func:`sinkhorn_potentials`, ``max_iter``, ``tol``); at a query outside the support
      the conditional is extended by the key potential: softmax of (s(x, y_j) + g_j)/eps.
    * ``"causal"``: masked softmax, token j is seen by a query at position s iff
      position_j <= s. ``positions``: ``(n,)`` for self-attention (queries = tokens or
      ``queries=None``; default ``0..n-1``) or a tuple ``(query_positions, token_positions)``.
      A query that sees no token raises :class:`InputError`.

    Heads: ``heads = h`` splits the rows of Q and K into h blocks. ``V`` is ``(d_out, d)``
    (rows split into h blocks and the head outputs concatenated) or per head ``(h, d_out, d)``
    (head outputs summed). The result is the sum over heads of the head's C_h-image.

    Streaming: queries and keys are processed in blocks (online softmax: running max,
    rescaled numerator and denominator), so memory is O(h (m_c n_c + (m + n) d)) rather than
    O(h m n). ``chunk`` = int or ``(query_chunk, key_chunk)``; default ``None`` chooses
    blocks of at most 2^22 scores. The result equals the dense computation up to round-off.
    Autograd works through the loops (it then stores every block). All kinds but ``causal``
    and ``sigmoid`` are the engine's :func:`measureflow.ot.kernels.points_softmax` (bilinear
    cost): without autograd, when the engine compiles, one fused pass per head and no block.

    Parameters
    ----------
    queries : (m, d) array or tensor, or None
        Evaluation points (None: self-attention, queries = tokens).
    tokens : (n, d) array or tensor
        Support points y_j of mu.
    weights : (n,) array or tensor, optional
        Nonnegative weights (default uniform 1/n).
    Q, K, V : arrays or tensors
        Query and key maps (k, d); value map (d_out, d) or per head (h, d_out, d).
    kind : str, default "softmax"
        One of :data:`KINDS` (see above).
    heads : int, default 1
        Number of heads.
    eps : float, default 1.0
        ``"sinkhorn"`` only: entropic regularisation (score units).
    positions : array or tuple, optional
        ``"causal"`` only: token (and query) positions.
    chunk : int or (int, int), optional
        Query and key block sizes (default: blocks of at most 2^22 scores).
    bias : float, default 0.0
        ``"sigmoid"`` only: additive score bias.
    max_iter : int, default 1000
        ``"sinkhorn"`` only: Sinkhorn iteration cap.
    tol : float, optional
        ``"sinkhorn"`` only: stopping tolerance of :func:`sinkhorn_potentials` (default 1e-9,
        floored at 100 x machine epsilon of the dtype: float32 converges by default).

    Returns
    -------
    (m, d_out) array or tensor
        Gamma_mu at the queries (NumPy in, NumPy out; tensor in, tensor out, differentiable;
        ``"sinkhorn"``: implicit-function gradients through the Sinkhorn fixed point).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).normal(size=(5, 2))
    >>> out = attend(None, y, Q=np.eye(2), K=np.eye(2), V=np.eye(2), kind="sinkhorn")
    >>> out.shape
    (5, 2)

    References
    ----------
    Castin, Ablin, Carrillo & Peyre (2025), "A unified perspective on the dynamics of deep
    transformers", arXiv:2501.18322, Sec. 2-3 (all variants); arXiv:2512.10656 (online-softmax
    estimator); Sander et al. (2022), "Sinkformers", AISTATS (doubly-stochastic attention).
    """
    ctx = ArrayContext(queries, tokens, weights, Q, K, V)
    kind = check_choice(kind, "kind", KINDS)
    y, w = _prepare(tokens, weights, ctx)
    same = queries is None or queries is tokens
    x = y if same else ctx.tensor(queries, "queries")
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, "queries", 2)
    if x.shape[1] != y.shape[1]:
        raise InputError(f"queries: dimension {x.shape[1]} differs from the tokens' "
                         f"{y.shape[1]}")
    Qt, Kt, Vt = ctx.tensor(Q, "Q"), ctx.tensor(K, "K"), ctx.tensor(V, "V")
    Qh, Kh, Ch = split_heads(Qt, Kt, Vt, heads, y.shape[1])
    h = Qh.shape[0]
    eps = check_positive(eps, "eps")
    bias = _as_float(bias, "bias")
    if not math.isfinite(bias):
        raise InputError(f"bias: must be finite, got {bias}")
    m, n = x.shape[0], y.shape[0]
    mc, nc = _chunks(chunk, m, n, h)
    qpos = kpos = None
    if kind == "causal":
        qpos, kpos = _positions(positions, m, n, ctx, same)
    elif positions is not None:
        raise InputError("positions: only used with kind='causal'")
    if kind == "sinkhorn":
        max_iter = check_int(max_iter, "max_iter", min_value=1)
        tol = _sinkhorn_tol(tol, y.dtype)
    return ctx.wrap(_attend(x, y, w, Qh, Kh, Ch, Vt, kind=kind, eps=eps, bias=bias, mc=mc,
                            nc=nc, qpos=qpos, kpos=kpos, max_iter=max_iter, tol=tol))


def _attend(x, y, w, Qh, Kh, Ch, Vt, *, kind, eps, bias, mc, nc, qpos=None, kpos=None,
            max_iter=1000, tol=1e-9):
    """Tensor-only core of :func:`attend` (arguments already validated and split per head).

    x (m, d) queries, y (n, d) tokens, w (n,) weights >= 0; Qh, Kh, Ch from ``split_heads``
    and the raw V (``Vt``, for the row-split fast path); qpos/kpos the causal positions.
    Returns (m, d_out). Hot loops (particle flows) call this directly.
    """
    h = Qh.shape[0]
    m = x.shape[0]
    row_split = Vt.ndim == 2 and h > 1
    if m == 0:                                # no queries: an empty (0, d_out) answer
        d_out = Vt.shape[0] if row_split else Ch.shape[-2]
        return x.new_zeros(0, d_out)
    keep = w > 0
    if not bool(keep.all()):
        y, w = y[keep], w[keep]
        if kpos is not None:
            kpos = kpos[keep]
    n = y.shape[0]
    qp = torch.einsum("md,hkd->hmk", x, Qh)
    kp = torch.einsum("nd,hkd->hnk", y, Kh)
    # row-split V (2-D, heads > 1): head j only fills its own block of output rows, so the
    # values are projected once and the head outputs concatenated (same result as summing
    # the zero-padded C_j images, h times fewer flops)
    if row_split:
        vy = (y @ Vt.T).reshape(n, h, -1).transpose(0, 1)
    else:
        vy = torch.einsum("nd,hod->hno", y, Ch)

    def combine(out):                         # (h, m, o) head outputs -> (m, d_out)
        if row_split:
            return out.transpose(0, 1).reshape(out.shape[1], -1)
        return out.sum(0)
    logw = torch.log(w).expand(h, n)

    if kind == "sigmoid":
        num, _ = _stream(qp, kp, vy, None, mc=mc, nc=nc, sigmoid_bias=bias, wts=w[None, None])
        return combine(num)
    if kind == "l2":
        qp = 2.0 * qp
        key_bias = logw - (kp * kp).sum(-1)      # -|Qx - Ky|^2 up to the query-only term
    elif kind == "sinkhorn":
        loga = torch.log(w / w.sum())
        sp = torch.einsum("nd,hkd->hnk", y, Qh) / eps
        _, v, conv, it, errs = _sinkhorn(sp, kp, loga, max_iter=max_iter, tol=tol,
                                         mc=min(mc, n), nc=nc)
        report_convergence(conv, "sinkhorn attention", it, errs[-1] if errs else math.nan,
                           tol)
        qp = qp / eps
        key_bias = loga + v
    else:
        key_bias = logw
    if kind in ("softmax", "multihead", "causal") and not w.requires_grad and bool(
            (w == w[0]).all()):
        key_bias = None                       # uniform weights: log w is a constant shift
    if qpos is None:                          # the engine's softmax-weighted reduction
        return combine(kernels.points_softmax(qp, kp, key_bias, vy, kernels.DOT, rows=mc,
                                              cols=nc))
    num, den = _stream(qp, kp, vy, key_bias, mc=mc, nc=nc, qpos=qpos, kpos=kpos)
    if kind == "causal" and bool((den <= 0).any()):
        i = int(torch.nonzero((den <= 0).any(0).reshape(-1))[0])
        raise InputError(f"positions: query {i} sees no token (every token position is "
                         "larger than its own)")
    return combine(num / den)


def output_moments(tokens, weights=None, *, Q, K, V, kind="softmax", heads=1, eps=1.0,
                   positions=None, chunk=None, bias=0.0):
    """Mean and covariance of the transformed tokens (Gamma_mu)_# mu for mu = sum w_j delta_{y_j}.

    m = sum_i a_i Gamma(y_i), C = sum_i a_i (Gamma(y_i) - m)(Gamma(y_i) - m)^T (population
    covariance, a = w / sum w) where Gamma = :func:`attend` of mu at its own tokens.
    This is the finite-n estimator of arXiv:2512.10656 (Sec. on moment convergence).
    Returns ``(mean (d_out,), cov (d_out, d_out))``.
    """
    ctx = ArrayContext(tokens, weights, Q, K, V)
    y, w = _prepare(tokens, weights, ctx)
    out = attend(None, y, w, Q=ctx.tensor(Q, "Q"), K=ctx.tensor(K, "K"), V=ctx.tensor(V, "V"),
                 kind=kind, heads=heads, eps=eps, positions=positions, chunk=chunk, bias=bias)
    a = w / w.sum()
    mean = a @ out
    c = out - mean
    cov = (a[:, None] * c).T @ c
    return ctx.wrap((mean, 0.5 * (cov + cov.T)))
