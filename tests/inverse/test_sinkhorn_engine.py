"""``semi_unbalanced_sinkhorn`` and the iJKO grid losses on the transport engine (issue 17).

The former private log-domain loop of ``inverse/sinkhorn.py`` is kept below, verbatim, as the
oracle (``_old_suot``); ``jko_refs.npz`` holds outputs of the iJKO losses written by the
pre-port code. Both solvers converge to the same optimum, so at a tight tolerance every output
agrees to 1e-10 (float64); at the default tolerance 1e-9 they agree to the tolerance (the
stopping points differ: the old loop measured ||P^T 1 - b~||_1 every 10 iterations after an
f-update, the engine measures ||P 1 - a||_1 + ||P^T 1 - b~||_1 every iteration after a
g-update).
"""

import math
import pathlib
import warnings

import numpy as np
import pytest
import torch

import measureflow.inverse as inv
from measureflow import ConvergenceWarning, ot

REFS = np.load(pathlib.Path(__file__).with_name("jko_refs.npz"))


# ------------------------------------------------------------------- the former loop (oracle)
def _old_translate(g, logb, mass_a, lam):
    if math.isinf(lam):
        return g
    c = lam * (torch.logsumexp(logb - g / lam, dim=0) - math.log(mass_a))
    return g + c


def _old_suot(a, b, C, eps, lam, max_iter, tol, g0=None):
    loga = torch.log(a)
    logb = torch.log(b)
    mass_a = float(a.sum())
    g = torch.zeros_like(b) if g0 is None else g0.clone()
    errors = []
    ok = False
    it = 0
    used = 0
    if g0 is None:
        scale = float(C.max() - C.min())
        e = scale / 2.0
        while e > 2 * eps and used + 30 < max_iter:
            ka = 1.0 if math.isinf(lam) else lam / (lam + e)
            for _ in range(30):
                f = -e * torch.logsumexp(logb[None, :] + (g[None, :] - C) / e, dim=1)
                g = -ka * e * torch.logsumexp(loga[:, None] + (f[:, None] - C) / e, dim=0)
                g = _old_translate(g, logb, mass_a, lam)
            used += 30
            e /= 2.0
    kappa = 1.0 if math.isinf(lam) else lam / (lam + eps)
    f = torch.zeros_like(a)
    for it in range(used + 1, max_iter + 1):  # noqa: B007
        f = -eps * torch.logsumexp(logb[None, :] + (g[None, :] - C) / eps, dim=1)
        g = -kappa * eps * torch.logsumexp(loga[:, None] + (f[:, None] - C) / eps, dim=0)
        g = _old_translate(g, logb, mass_a, lam)
        if it % 10 == 0 or it == max_iter:
            f = -eps * torch.logsumexp(logb[None, :] + (g[None, :] - C) / eps, dim=1)
            logP = loga[:, None] + logb[None, :] + (f[:, None] + g[None, :] - C) / eps
            col = torch.exp(torch.logsumexp(logP, dim=0))
            target = b if math.isinf(lam) else b * torch.exp(-g / lam)
            err = float((col - target).abs().sum())
            errors.append(err)
            if err <= tol * float(a.sum()):
                ok = True
                break
    f = -eps * torch.logsumexp(logb[None, :] + (g[None, :] - C) / eps, dim=1)
    plan = torch.exp(loga[:, None] + logb[None, :] + (f[:, None] + g[None, :] - C) / eps)
    return f, g, plan, it, errors, ok


def _problem(seed, n=20, m=15, scale=1.0):
    rng = np.random.default_rng(seed)
    C = torch.tensor(rng.random((n, m)) * scale)
    a = torch.tensor(rng.random(n) + 0.5)
    b = torch.tensor(rng.random(m) + 0.5)
    return a / a.sum(), b / b.sum() * 1.3, C


CASES = [(0.1, 0.7, 1.0), (0.05, 2.0, 3.0), (0.2, 50.0, 1.0), (0.02, 0.5, 1.0),
         (0.1, math.inf, 1.0)]


@pytest.mark.parametrize("eps,lam,scale", CASES)
def test_semi_unbalanced_equals_the_former_loop(eps, lam, scale):
    a, b, C = _problem(3, scale=scale)
    if math.isinf(lam):
        b = b / b.sum()
    f0, g0, P0, _, _, ok0 = _old_suot(a, b, C, eps, lam, 200_000, 1e-14)
    r = inv.semi_unbalanced_sinkhorn(a, b, C, eps=eps, lam=lam, tol=1e-14, max_iter=200_000)
    assert ok0 and r.converged
    torch.testing.assert_close(r.plan, P0, rtol=0, atol=1e-10)
    if math.isinf(lam):   # balanced: potentials are unique up to (f + c, g - c)
        c = float((r.potential_g - g0).mean())
        g0, f0 = g0 + c, f0 - c
    torch.testing.assert_close(r.potential_g, g0, rtol=0, atol=1e-10)
    torch.testing.assert_close(r.potential_f, f0, rtol=0, atol=1e-10)
    ab = a[:, None] * b[None, :]
    kl = lambda p, q: (torch.xlogy(p, p / q) - p + q).sum()  # noqa: E731
    primal0 = (C * P0).sum() + eps * kl(P0, ab)
    if not math.isinf(lam):
        primal0 = primal0 + lam * kl(P0.sum(0), b)
    assert abs(float(r.value) - float(primal0)) < 1e-10


def test_default_tolerance_agrees_to_the_tolerance():
    a, b, C = _problem(7)
    _, _, P0, _, _, _ = _old_suot(a, b, C, 0.1, 0.7, 10_000, 1e-9)
    r = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.1, lam=0.7)
    assert r.converged and r.errors[-1] <= 1e-9
    assert float((r.plan - P0).abs().sum()) < 1e-8


def test_warm_start_and_value_gradient():
    a, b, C = _problem(5)
    r1 = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.05, lam=2.0, tol=1e-13)
    r2 = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.05, lam=2.0, tol=1e-13,
                                      init=r1.potential_g)
    assert r2.n_iter <= 2 and r2.converged
    torch.testing.assert_close(r2.plan, r1.plan, rtol=0, atol=1e-12)
    # envelope theorem: d value / d C = plan, d value / d a = f, d value / d b (KL side)
    Cg = C.clone().requires_grad_(True)
    r = inv.semi_unbalanced_sinkhorn(a, b, Cg, eps=0.05, lam=2.0, tol=1e-13)
    (gC,) = torch.autograd.grad(r.value, Cg)
    torch.testing.assert_close(gC, r.plan, rtol=0, atol=1e-12)
    h = 1e-6
    D = torch.randn(C.shape, generator=torch.Generator().manual_seed(0), dtype=C.dtype)
    vp = inv.semi_unbalanced_sinkhorn(a, b, C + h * D, eps=0.05, lam=2.0, tol=1e-14).value
    vm = inv.semi_unbalanced_sinkhorn(a, b, C - h * D, eps=0.05, lam=2.0, tol=1e-14).value
    assert abs(float((vp - vm) / (2 * h)) - float((gC * D).sum())) < 1e-7


def test_float32_converges_with_the_default_tolerance():
    a, b, C = _problem(9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = inv.semi_unbalanced_sinkhorn(a.float(), b.float(), C.float(), eps=0.05, lam=1.0)
    r64 = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.05, lam=1.0)
    assert r.plan.dtype == torch.float32
    assert float((r.plan.double() - r64.plan).abs().sum()) < 1e-4


def test_semi_unbalanced_equals_ot_solve_rho_pair():
    a, b, C = _problem(2, n=25, m=30)
    r = inv.semi_unbalanced_sinkhorn(a, b, C, eps=0.1, lam=0.8, tol=1e-13)
    s = ot.solve(a, b, C, eps=0.1, rho=(math.inf, 0.8), tol=1e-13)
    torch.testing.assert_close(r.plan, s.plan, rtol=0, atol=1e-11)
    assert abs(float(r.value) - float(s.value)) < 1e-10


# ------------------------------------------------------------------- iJKO losses (stored refs)
@pytest.mark.parametrize("lam,eps", [(0.0, 0.3), (0.5, 0.3), (5.0, 0.1)])
def test_jko_grid_losses_unchanged(lam, eps):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(18, 2))
    y = 0.8 * rng.normal(size=(16, 2)) + 0.1
    basis = inv.quadratic_potential_basis(2)
    th = torch.tensor([0.3, -0.2, 1.1, 0.2, 0.9], dtype=torch.float64)
    r = inv.sharpened_fy_loss(th, basis, (torch.tensor(x), torch.tensor(y)), kind="jko",
                              tau=0.4, lam=lam, eps=eps, hessian=True, tol=1e-13)
    k = f"jko_lam{lam}_eps{eps}"
    # references at the default inner tolerance 1e-9: agreement to ~ that tolerance (the value
    # always contains the balanced term SUOT_inf; lam = 0 plans are closed-form: 1e-12)
    tol = 1e-12 if lam == 0.0 else 2e-8
    assert abs(float(r.value) - float(REFS[k + "_value"])) < 2e-8
    np.testing.assert_allclose(r.grad.numpy(), REFS[k + "_grad"], rtol=0, atol=tol)
    np.testing.assert_allclose(r.plan.numpy(), REFS[k + "_plan"], rtol=0, atol=tol)
    np.testing.assert_allclose(r.hessian.numpy(), REFS[k + "_hessian"], rtol=0, atol=10 * tol)
