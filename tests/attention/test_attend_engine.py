"""Sinkhorn attention on the transport engine (issue 17): same potentials, outputs and
gradients as the former hand-written streamed loop, kept below verbatim as the oracle
(``_old_lse_rows``, ``_old_sinkhorn``; it backpropagated through every iteration).

The engine runs the same alternating iteration from the same start (the attention cost
-<Q x, K y> is not symmetric, so the engine's averaged symmetric update is not used), hence
the same iterates, iteration counts and stopping decisions up to rounding of the reductions.
Gradients now come from the implicit function theorem at the fixed point (the limit of the
unrolled backpropagation): they agree with the old unrolled ones to the convergence error.
"""

import math
import warnings

import pytest
import torch

from measureflow import ConvergenceWarning
from measureflow.attention import attend, sinkhorn_potentials
from measureflow.ot import kernels

D64 = torch.float64


# ------------------------------------------------------------------- the former loop (oracle)
def _old_lse_rows(left, right, bias, nc):
    h, m, _ = left.shape
    n = right.shape[1]
    run_max = left.new_full((h, m), -math.inf)
    tot = left.new_zeros(h, m)
    for j0 in range(0, n, nc):
        s = left @ right[:, j0:j0 + nc].transpose(1, 2) + bias[:, None, j0:j0 + nc]
        new_max = torch.maximum(run_max, s.amax(-1))
        safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
        tot = tot * torch.exp(run_max - safe) + torch.exp(s - safe[..., None]).sum(-1)
        run_max = new_max
    return torch.log(tot) + run_max


def _old_sinkhorn(qp, kp, loga, *, max_iter, tol, mc, nc):
    h, n, _ = qp.shape
    u = qp.new_zeros(h, n)
    v = qp.new_zeros(h, n)
    errors = []
    converged = False
    it = 0

    def rows(bias):
        return torch.cat([_old_lse_rows(qp[:, i0:i0 + mc], kp, bias, nc)
                          for i0 in range(0, n, mc)], 1)

    def cols(bias):
        return torch.cat([_old_lse_rows(kp[:, j0:j0 + mc], qp, bias, nc)
                          for j0 in range(0, n, mc)], 1)

    a = loga.exp()
    r = rows(v + loga)
    for it in range(1, max_iter + 1):  # noqa: B007
        u = -r
        v = -cols(u + loga)
        r = rows(v + loga)
        err = float((a * (torch.exp(u + r) - 1.0).abs()).sum(-1).max().detach())
        errors.append(err)
        if err <= tol:
            converged = True
            break
    return u, v, converged, it, errors


def _heads(y, Q, K, heads, eps):
    d = y.shape[1]
    Qh = Q.reshape(heads, -1, d)
    Kh = K.reshape(heads, -1, d)
    return torch.einsum("nd,hkd->hnk", y, Qh) / eps, torch.einsum("nd,hkd->hnk", y, Kh)


def _old_attend(x, y, w, Q, K, V, heads, eps, tol, max_iter=1000, chunk=(1 << 20, 1 << 20)):
    """Former sinkhorn-kind attention (dense output formula; row-split V)."""
    sp, kp = _heads(y, Q, K, heads, eps)
    loga = torch.log(w / w.sum())
    _, v, conv, it, errs = _old_sinkhorn(sp, kp, loga, max_iter=max_iter, tol=tol,
                                         mc=min(chunk[0], y.shape[0]), nc=chunk[1])
    qx, _ = _heads(x, Q, K, heads, eps)
    logits = qx @ kp.transpose(1, 2) + (loga + v)[:, None, :]
    P = torch.softmax(logits, -1)                                   # (h, m, n)
    vy = (y @ V.T).reshape(y.shape[0], heads, -1).transpose(0, 1)   # (h, n, o)
    out = (P @ vy).transpose(0, 1).reshape(x.shape[0], -1)
    return out, v, conv, it, errs


def _problem(n=40, d=4, k=4, seed=0, scale=0.6):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, d, generator=g, dtype=D64)
    x = torch.randn(7, d, generator=g, dtype=D64)
    Q = scale * torch.randn(k, d, generator=g, dtype=D64)
    K = scale * torch.randn(k, d, generator=g, dtype=D64)
    V = torch.randn(d, d, generator=g, dtype=D64)
    w = torch.rand(n, generator=g, dtype=D64) + 0.1
    return x, y, w, Q, K, V


CASES = [dict(heads=1, eps=1.0, chunk=None, tol=1e-9),
         dict(heads=2, eps=0.5, chunk=(7, 9), tol=1e-11),
         dict(heads=4, eps=2.0, chunk=(40, 13), tol=1e-9),
         dict(heads=1, eps=0.2, chunk=(5, 5), tol=1e-10)]


@pytest.mark.parametrize("case", CASES)
def test_potentials_iterations_and_outputs_unchanged(case):
    x, y, w, Q, K, V = _problem(scale=0.6 if case["eps"] >= 0.5 else 0.4)
    heads, eps, tol, chunk = case["heads"], case["eps"], case["tol"], case["chunk"]
    r = sinkhorn_potentials(y, w, Q=Q, K=K, heads=heads, eps=eps, tol=tol, chunk=chunk)
    sp, kp = _heads(y, Q, K, heads, eps)
    loga = torch.log(w / w.sum())
    mc, nc = (40, 40) if chunk is None else chunk
    u0, v0, c0, it0, e0 = _old_sinkhorn(sp, kp, loga, max_iter=1000, tol=tol, mc=mc, nc=nc)
    assert r.converged and c0 and r.n_iter == it0
    torch.testing.assert_close(r.potential_f, eps * u0, rtol=0, atol=1e-10)
    torch.testing.assert_close(r.potential_g, eps * v0, rtol=0, atol=1e-10)
    torch.testing.assert_close(torch.tensor(r.errors), torch.tensor(e0), rtol=1e-6, atol=1e-14)
    out = attend(x, y, w, Q=Q, K=K, V=V, kind="sinkhorn", heads=heads, eps=eps, tol=tol,
                 chunk=chunk)
    ref, *_ = _old_attend(x, y, w, Q, K, V, heads, eps, tol)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_not_converged_matches_the_old_iterate():
    _, y, w, Q, K, _ = _problem()
    with pytest.warns(ConvergenceWarning):
        r = sinkhorn_potentials(y, w, Q=5 * Q, K=K, eps=0.05, max_iter=3)
    sp, kp = _heads(y, 5 * Q, K, 1, 0.05)
    u0, v0, c0, it0, e0 = _old_sinkhorn(sp, kp, torch.log(w / w.sum()), max_iter=3, tol=1e-9,
                                        mc=40, nc=40)
    assert not r.converged and r.n_iter == 3 and not c0
    torch.testing.assert_close(r.potential_g, 0.05 * v0, rtol=1e-12, atol=1e-10)
    assert abs(r.errors[-1] - e0[-1]) <= 1e-10 * e0[-1]


def test_gradients_match_the_former_unrolled_backprop():
    x, y, w, Q, K, V = _problem(n=25)
    heads, eps = 2, 0.7
    args = [t.clone().requires_grad_(True) for t in (y, w, Q, K)]
    out = attend(x, args[0], args[1], Q=args[2], K=args[3], V=V, kind="sinkhorn",
                 heads=heads, eps=eps, tol=1e-13, chunk=(6, 10))
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=D64)
    g_new = torch.autograd.grad((out * probe).sum(), args)
    old_args = [t.clone().requires_grad_(True) for t in (y, w, Q, K)]
    ref, *_ = _old_attend(x, old_args[0], old_args[1], old_args[2], old_args[3], V, heads, eps,
                          tol=1e-13)
    g_old = torch.autograd.grad((ref * probe).sum(), old_args)
    for gn, go in zip(g_new, g_old):
        torch.testing.assert_close(gn, go, rtol=1e-7, atol=1e-9)


def test_gradcheck_through_the_fixed_point():
    x, y, w, Q, K, V = _problem(n=8, d=3, k=2)
    yy = y.clone().requires_grad_(True)
    Qq = Q.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: attend(x, a, w, Q=b, K=K, V=V, kind="sinkhorn", tol=1e-13), (yy, Qq),
        atol=1e-6)


def test_float32_converges_with_the_default_tolerance():
    x, y, w, Q, K, V = _problem()
    f32 = [t.float() for t in (x, y, w, Q, K, V)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = sinkhorn_potentials(f32[1], f32[2], Q=f32[3], K=f32[4], eps=0.5)
        out = attend(*f32[:3], Q=f32[3], K=f32[4], V=f32[5], kind="sinkhorn", eps=0.5)
    r64 = sinkhorn_potentials(y, w, Q=Q, K=K, eps=0.5)
    assert r.converged and r.potential_g.dtype == torch.float32
    # stopped at an L1 marginal error <= 1.2e-5: potentials are off by ~ eps |da_i| / a_i,
    # at most eps x 1.2e-5 / min a = 0.5 x 1.2e-5 x 40 / 0.4 ~ 6e-4 (a_i >= 0.1 / sum w)
    torch.testing.assert_close(r.potential_g.double(), r64.potential_g, rtol=0, atol=1e-3)
    ref = attend(x, y, w, Q=Q, K=K, V=V, kind="sinkhorn", eps=0.5)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-4)


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
@pytest.mark.parametrize("case", [CASES[1], CASES[3]])
def test_compiled_bilinear_kernel_keeps_iterations_and_outputs(case):
    """The fused bilinear kernel (Bilinear.lse and points_softmax under the compiled backend):
    same iteration count and, to the same tolerances, the same potentials and outputs as the
    former loop."""
    old = kernels.set_backend("compiled")
    try:
        test_potentials_iterations_and_outputs_unchanged(case)
    finally:
        kernels.set_backend(old)
