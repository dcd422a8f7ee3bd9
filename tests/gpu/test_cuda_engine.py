"""CUDA checks of the transport engine and its callers (``-m gpu``; skipped without CUDA).

Each check solves the same problem on the CPU and on the GPU and compares, in float64, to
tolerances set by the stopping rule (the iterations are the same; only the rounding of the
reductions differs, and the compiled path runs Triton kernels on the GPU). Run by
``benchmarks/device.sh`` on a machine with a GPU.
"""

import math

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

D64 = torch.float64


def _clouds(n=300, m=250, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g, dtype=D64), torch.rand(m, d, generator=g, dtype=D64))


def test_dense_solve_cuda_equals_cpu():
    from measureflow import ot

    x, y = _clouds()
    C = torch.cdist(x, y) ** 2
    r0 = ot.solve(None, None, C, eps=0.02, tol=1e-11)
    r1 = ot.solve(None, None, C.cuda(), eps=0.02, tol=1e-11)
    assert r1.plan.is_cuda and r0.converged and r1.converged
    torch.testing.assert_close(r1.plan.cpu(), r0.plan, rtol=0, atol=1e-12)
    assert abs(float(r1.value) - float(r0.value)) < 1e-10


@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_point_cloud_sinkhorn_cuda_equals_cpu(backend):
    from measureflow import ot
    from measureflow.ot import kernels

    x, y = _clouds(2000, 1500)
    old = kernels.set_backend(backend)
    try:
        r1 = ot.sinkhorn_points(x.cuda(), y.cuda(), eps=0.01, tol=1e-10)
    finally:
        kernels.set_backend(old)
    r0 = ot.sinkhorn_points(x, y, eps=0.01, tol=1e-10)
    assert r0.converged and r1.converged
    assert abs(float(r1.value) - float(r0.value)) < 1e-9 * abs(float(r0.value)) + 1e-12


def test_float32_divergence_gradient_cuda():
    from measureflow import ot

    x, y = _clouds(1000, 1000, d=2)
    xs = x.float().cuda().requires_grad_(True)
    S = ot.sinkhorn_divergence(xs, y.float().cuda(), eps=2 * 0.05 ** 2)
    (g,) = torch.autograd.grad(S, [xs])
    x64 = x.clone().requires_grad_(True)
    S64 = ot.sinkhorn_divergence(x64, y, eps=2 * 0.05 ** 2, tol=1e-10)
    (g64,) = torch.autograd.grad(S64, [x64])
    assert abs(float(S) - float(S64)) <= 1e-3 * abs(float(S64))
    assert float((g.double().cpu() - g64).norm()) <= 1e-2 * float(g64.norm())


def test_sinkhorn_attention_cuda_equals_cpu_with_gradients():
    from measureflow.attention import attend, sinkhorn_potentials

    g = torch.Generator().manual_seed(1)
    y = torch.randn(200, 8, generator=g, dtype=D64)
    Q = 0.3 * torch.randn(8, 8, generator=g, dtype=D64)
    K = 0.3 * torch.randn(8, 8, generator=g, dtype=D64)
    V = torch.randn(8, 8, generator=g, dtype=D64)
    r0 = sinkhorn_potentials(y, Q=Q, K=K, heads=2, tol=1e-12)
    r1 = sinkhorn_potentials(y.cuda(), Q=Q.cuda(), K=K.cuda(), heads=2, tol=1e-12)
    assert r1.potential_g.is_cuda and r0.n_iter == r1.n_iter
    torch.testing.assert_close(r1.potential_g.cpu(), r0.potential_g, rtol=0, atol=1e-10)
    grads = []
    for dev in ("cpu", "cuda"):
        Qd = Q.to(dev).requires_grad_(True)
        out = attend(None, y.to(dev), Q=Qd, K=K.to(dev), V=V.to(dev), kind="sinkhorn",
                     heads=2, tol=1e-12)
        (gq,) = torch.autograd.grad(out.square().sum(), [Qd])
        grads.append(gq.cpu())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-7, atol=1e-9)


def test_semi_unbalanced_cuda_equals_cpu():
    import measureflow.inverse as inv

    x, y = _clouds(120, 90)
    C = torch.cdist(x, y) ** 2
    r0 = inv.semi_unbalanced_sinkhorn(None, None, C, eps=0.05, lam=0.7, tol=1e-12)
    r1 = inv.semi_unbalanced_sinkhorn(None, None, C.cuda(), eps=0.05, lam=0.7, tol=1e-12)
    assert r1.plan.is_cuda and r0.converged and r1.converged
    torch.testing.assert_close(r1.plan.cpu(), r0.plan, rtol=0, atol=1e-12)
    assert math.isfinite(float(r1.value))
