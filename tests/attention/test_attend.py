import math

import numpy as np
import pytest
import torch

import ot as pot
from measureflow import InputError
from measureflow.attention import attend, output_moments, sinkhorn_potentials
from measureflow.ot import kernels

D64 = torch.float64


def _problem(n=120, m=30, d=4, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, d, generator=g, dtype=D64)
    x = torch.randn(m, d, generator=g, dtype=D64)
    Q = 0.6 * torch.randn(k, d, generator=g, dtype=D64)
    K = 0.6 * torch.randn(k, d, generator=g, dtype=D64)
    V = torch.randn(d, d, generator=g, dtype=D64)
    w = torch.rand(n, generator=g, dtype=D64) + 0.1
    return x, y, w, Q, K, V


def _dense(x, y, w, Q, K, V, kind, heads=1, bias=0.0, qpos=None, kpos=None):
    """Independent dense formulas, one head at a time (concatenated outputs)."""
    outs = []
    kh = Q.shape[0] // heads
    rh = V.shape[0] // heads
    for j in range(heads):
        Qj, Kj = Q[j * kh:(j + 1) * kh], K[j * kh:(j + 1) * kh]
        Vj = V[j * rh:(j + 1) * rh] if heads > 1 else V
        if kind == "l2":
            S = -torch.cdist(x @ Qj.T, y @ Kj.T) ** 2
        else:
            S = (x @ Qj.T) @ (y @ Kj.T).T
        if kind == "sigmoid":
            outs.append((torch.sigmoid(S + bias) * w) @ (y @ Vj.T))
            continue
        S = S + torch.log(w)
        if qpos is not None:
            S = S.masked_fill(kpos[None, :] > qpos[:, None], -np.inf)
        outs.append(torch.softmax(S, 1) @ (y @ Vj.T))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("chunk", [None, 7, (5, 33)])
@pytest.mark.parametrize("kind", ["softmax", "l2", "sigmoid"])
def test_streamed_equals_dense(kind, chunk):
    x, y, w, Q, K, V = _problem()
    out = attend(x, y, w, Q=Q, K=K, V=V, kind=kind, chunk=chunk, bias=-1.5)
    ref = _dense(x, y, w, Q, K, V, kind, bias=-1.5)
    assert torch.allclose(out, ref, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("kind", ["multihead", "l2", "sigmoid"])
def test_multihead_is_concatenation_of_heads(kind):
    x, y, w, Q, K, V = _problem(k=6, d=4)
    out = attend(x, y, w, Q=Q, K=K, V=V[:4], kind=kind, heads=2, chunk=(8, 13))
    ref = _dense(x, y, w, Q, K, V[:4], kind, heads=2)
    assert torch.allclose(out, ref, atol=1e-12)
    # per-head output maps are summed
    C = torch.stack([V, 2 * V])
    out2 = attend(x, y, w, Q=Q, K=K, V=C, kind=kind, heads=2, chunk=9)
    h0 = _dense(x, y, w, Q[:3], K[:3], V, kind)
    h1 = _dense(x, y, w, Q[3:], K[3:], 2 * V, kind)
    assert torch.allclose(out2, h0 + h1, atol=1e-12)


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
@pytest.mark.parametrize("kind,heads", [("softmax", 1), ("l2", 1), ("multihead", 2)])
@pytest.mark.parametrize("uniform", [False, True])
def test_compiled_engine_kernel_equals_dense(kind, heads, uniform):
    """The fused engine reduction (kernels.points_softmax, one pass per head) against the
    independent dense formula; same tolerance as the streamed eager path above."""
    x, y, w, Q, K, V = _problem(k=6 if heads > 1 else 4)
    w = torch.ones_like(w) if uniform else w
    old = kernels.set_backend("compiled")
    try:
        out = attend(x, y, w, Q=Q, K=K, V=V, kind=kind, heads=heads)
    finally:
        kernels.set_backend(old)
    ref = _dense(x, y, w, Q, K, V, kind, heads=heads)
    assert torch.allclose(out, ref, atol=1e-12, rtol=1e-10)


def test_causal_matches_masked_dense():
    _, y, w, Q, K, V = _problem(n=90)
    pos = torch.arange(90, dtype=D64)
    out = attend(None, y, w, Q=Q, K=K, V=V, kind="causal", chunk=(16, 20))
    ref = _dense(y, y, w, Q, K, V, "softmax", qpos=pos, kpos=pos)
    assert torch.allclose(out, ref, atol=1e-12)
    # explicit (query, token) positions with repeated positions
    qp = torch.tensor([0.5, 0.2, 0.9], dtype=D64)
    kp = torch.rand(90, generator=torch.Generator().manual_seed(3), dtype=D64)
    kp[0] = 0.1
    x = torch.randn(3, 4, dtype=D64)
    out = attend(x, y, w, Q=Q, K=K, V=V, kind="causal", positions=(qp, kp), chunk=11)
    assert torch.allclose(out, _dense(x, y, w, Q, K, V, "softmax", qpos=qp, kpos=kp),
                          atol=1e-12)
    with pytest.raises(InputError, match="positions"):
        attend(x, y, w, Q=Q, K=K, V=V, kind="causal",
               positions=(torch.tensor([0.0, 0.5, 0.5], dtype=D64), kp))


def test_weights_equal_duplicated_tokens():
    x, y, _, Q, K, V = _problem(n=20)
    w = torch.ones(20, dtype=D64)
    w[3] = 3.0
    yy = torch.cat([y, y[3:4], y[3:4]])
    for kind in ("softmax", "l2", "sinkhorn"):
        a = attend(x, y, w, Q=Q, K=K, V=V, kind=kind)
        b = attend(x, yy, None, Q=Q, K=K, V=V, kind=kind)
        assert torch.allclose(a, b, atol=1e-8), kind
    # zero weights are ignored
    w0 = torch.cat([torch.ones(20, dtype=D64), torch.zeros(1, dtype=D64)])
    y0 = torch.cat([y, 100 * torch.ones(1, 4, dtype=D64)])
    assert torch.allclose(attend(x, y0, w0, Q=Q, K=K, V=V), attend(x, y, None, Q=Q, K=K, V=V),
                          atol=1e-12)


def test_sinkhorn_plan_matches_pot_and_is_doubly_stochastic():
    _, y, w, Q, K, V = _problem(n=80)
    eps = 1.2
    res = sinkhorn_potentials(y, w, Q=Q, K=K, eps=eps, chunk=(40, 80), tol=1e-11)
    assert res.converged
    a = w / w.sum()
    S = (y @ Q.T) @ (y @ K.T).T
    P = a[:, None] * a[None] * torch.exp((S + res.potential_f[0][:, None]
                                          + res.potential_g[0][None]) / eps)
    assert torch.allclose(P.sum(0), a, atol=1e-12)
    assert torch.allclose(P.sum(1), a, atol=1e-10)
    Pp = pot.sinkhorn(a.numpy(), a.numpy(), (-S).numpy(), eps, method="sinkhorn_log",
                      stopThr=1e-11, numItermax=5000)
    assert np.abs(Pp - P.numpy()).max() < 1e-9
    out = attend(None, y, w, Q=Q, K=K, V=V, kind="sinkhorn", eps=eps, tol=1e-11)
    ref = torch.as_tensor(Pp / Pp.sum(1, keepdims=True)) @ (y @ V.T)
    assert torch.allclose(out, ref, atol=1e-8)


def test_sinkhorn_tends_to_softmax_for_small_scores():
    x, y, w, Q, K, V = _problem(n=100)
    y = y - (w / w.sum()) @ y    # centred measure: at first order in A, g_j = -<Q mean, K y_j>
    diffs = []
    for s in (0.2, 0.1, 0.05):
        a = attend(None, y, w, Q=s * Q, K=K, V=V, kind="sinkhorn")
        b = attend(None, y, w, Q=s * Q, K=K, V=V, kind="softmax")
        c = attend(None, y, w, Q=0 * Q, K=K, V=V)      # value at A = 0 (weighted mean)
        diffs.append(float((a - b).norm() / (b - c).norm()))
    # relative difference of the A-dependent parts is O(|A|)
    assert diffs[2] < diffs[1] < diffs[0]
    assert diffs[2] < 0.6 * diffs[1]


def test_sinkhorn_not_converged_warns():
    _, y, w, Q, K, V = _problem(n=50)
    from measureflow import ConvergenceWarning
    with pytest.warns(ConvergenceWarning):
        r = sinkhorn_potentials(y, w, Q=5 * Q, K=K, eps=0.05, max_iter=2)
    assert not r.converged and r.n_iter == 2


def test_numpy_and_torch_types_and_autograd():
    x, y, w, Q, K, V = _problem(n=15, m=4, d=3, k=2)
    out = attend(x.numpy(), y.numpy(), w.numpy(), Q=Q.numpy(), K=K.numpy(), V=V.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (4, 3)
    out32 = attend(x.float(), y.float(), None, Q=Q.float(), K=K.float(), V=V.float())
    assert isinstance(out32, torch.Tensor) and out32.dtype == torch.float32
    for kind in ("softmax", "l2", "causal"):
        yy = y[:6].clone().requires_grad_(True)
        Qq = Q.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda a, b, kind=kind: attend(None, a, w[:6], Q=b, K=K, V=V, kind=kind, chunk=4),
            (yy, Qq))
    m, C = output_moments(y.numpy(), Q=Q.numpy(), K=K.numpy(), V=V.numpy())
    assert m.shape == (3,) and C.shape == (3, 3) and np.allclose(C, C.T)


def test_large_n_streams_and_equals_dense():
    g = torch.Generator().manual_seed(0)
    n, d = 100_000, 8
    y = torch.randn(n, d, generator=g, dtype=torch.float32)
    x = torch.randn(64, d, generator=g, dtype=torch.float32)
    Q = torch.randn(d, d, generator=g) / 3
    K = torch.randn(d, d, generator=g) / 3
    V = torch.eye(d)
    out = attend(x, y, Q=Q, K=K, V=V, chunk=(64, 8192))
    # reference: the dense formula in float64 on the same float32 inputs
    xd, yd, Qd, Kd = x.double(), y.double(), Q.double(), K.double()
    qp, kp = xd @ Qd.T, yd @ Kd.T
    P = torch.softmax(qp @ kp.T, 1)
    ref = P @ yd
    # float32 error model (u = unit roundoff): each score <Qx, Ky> carries an error up to
    # d u sum_k |(Qx)_k (Ky)_k| (a length-d dot product; the projections add as much again),
    # which moves the output by at most 2 max_j |ds_j| sum_j p_j |y_j|; summing n terms in
    # blocks adds about sqrt(n) u sum_j p_j |y_j| (random-walk growth, not one CPU's rounding).
    u = torch.finfo(torch.float32).eps / 2
    ds = 2 * d * u * (qp.abs() @ kp.abs().T).amax(1)
    mag = P @ yd.abs().amax(1)
    tol = 4 * (2 * ds + math.sqrt(n) * u) * mag
    err = (out.double() - ref).abs().amax(1)
    assert bool((err <= tol).all()), float((err / tol).max())
    # float64: streamed == dense to round-off, the same error model with u = 2^-53 (4e-13 to
    # 2e-12 per row here, measured error 7e-15; a dropped or doubled block is O(1e-1))
    u64 = torch.finfo(torch.float64).eps / 2
    tol64 = 4 * (2 * (ds / u) * u64 + math.sqrt(n) * u64) * mag
    out64 = attend(xd, yd, Q=Qd, K=Kd, V=V.double(), chunk=(64, 8192))
    assert bool(((out64 - ref).abs().amax(1) <= tol64).all())


def test_no_queries_gives_an_empty_answer():
    x, y, w, Q, K, V = _problem(n=10, m=3)
    for kind in ("softmax", "l2", "sigmoid", "causal"):
        kw = dict(positions=(np.zeros(0), np.arange(10))) if kind == "causal" else {}
        out = attend(x[:0], y, Q=Q, K=K, V=V, kind=kind, **kw)
        assert out.shape == (0, V.shape[0])
    out = attend(x.numpy()[:0], y.numpy(), Q=Q.numpy(), K=K.numpy(), V=V.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (0, V.shape[0])


def test_bad_input():
    x, y, w, Q, K, V = _problem(n=10, m=3)
    with pytest.raises(InputError, match="kind"):
        attend(x, y, Q=Q, K=K, V=V, kind="relu")
    with pytest.raises(InputError, match="queries"):
        attend(x[:, :2], y, Q=Q, K=K, V=V)
    with pytest.raises(InputError, match="Q"):
        attend(x, y, Q=Q[:, :2], K=K, V=V)
    with pytest.raises(InputError, match="weights"):
        attend(x, y, -w, Q=Q, K=K, V=V)
    with pytest.raises(InputError, match="tokens"):
        attend(x, y * np.nan, Q=Q, K=K, V=V)
    with pytest.raises(InputError, match="heads"):
        attend(x, y, Q=Q, K=K, V=V, heads=3)
    with pytest.raises(InputError, match="eps"):
        attend(x, y, Q=Q, K=K, V=V, kind="sinkhorn", eps=0.0)
    with pytest.raises(InputError, match="positions"):
        attend(x, y, Q=Q, K=K, V=V, positions=np.arange(10))
    with pytest.raises(InputError, match="chunk"):
        attend(x, y, Q=Q, K=K, V=V, chunk=0)
