"""Compiled kernels (torch.compile) give the eager kernels' numbers; backend switch; fallback.

Compilation is paid once per process and kernel variant: the fast tests use one tiny shape per
kernel in float64 (compiled = eager to 1e-12 relative); float32 and end-to-end solves are in
the slow set.
"""

import math
import warnings

import numpy as np
import pytest
import torch

import measureflow.ot as ot
from _tol import eps, tol_sum
from measureflow import InputError
from measureflow.ot import kernels
from measureflow.ot.geometry import Dense, PointCloud


@pytest.fixture
def backend():
    old = kernels.get_backend()
    yield kernels.set_backend
    kernels.set_backend(old)


def _data(dtype, n=37, m=29, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.random((n, d)), dtype=dtype)
    y = torch.tensor(rng.random((m, d)), dtype=dtype)
    u = torch.tensor(rng.normal(size=n) * 3, dtype=torch.float64)
    v = torch.tensor(rng.normal(size=m) * 3, dtype=torch.float64)
    return x, y, u, v


def _both(backend, fn):
    backend("eager")
    e = fn()
    backend("compiled")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed compile would warn
        c = fn()
    return e, c


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_compiled_equals_eager_float64(backend):
    x, y, u, v = _data(torch.float64)
    eps = 0.07
    g = PointCloud(x, y)
    d = Dense(g.cost())

    def run():  # the two one-pass kernels the solvers spend their time in
        return [d.lse(u, v, eps, 1), d.lse(u, v, eps, 0), g.lse(u, v, eps, 1), g.lse(u, v, eps, 0)]

    e, c = _both(backend, run)
    # lse_i = log sum_j exp(u_i + v_j - C_ij / eps): each exponent carries an absolute error
    # <= eps_mach * S, S = max|u| + max|v| + max C / eps, and the length-m sum adds m eps_mach;
    # the output (possibly near 0, so no relative test) differs by <= (S + m) eps_mach between
    # the two kernels. Factor 4 margin; a real bug (wrong axis, lost v) is O(1).
    S = float(u.abs().max() + v.abs().max() + g.cost().max() / eps)
    atol = 4 * tol_sum(S + max(x.shape[0], y.shape[0]))
    for a, b in zip(e, c):
        torch.testing.assert_close(b, a, rtol=0.0, atol=atol)
    assert kernels.compiled_available()


@pytest.mark.slow
@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_compiled_equals_eager_other_kernels(backend):
    x, y, u, v = _data(torch.float64)
    eps = 0.07
    g = PointCloud(x, y)
    d = Dense(g.cost())
    W = torch.tensor(np.random.default_rng(1).normal(size=(29, 3)))

    def run():
        return [d.lse(u - 800.0, v, eps, 1),          # out of the one-pass range: two passes
                g.lse(u - 800.0, v, eps, 1), g.apply(u, v, eps, W, 1),
                torch.tensor(g.cost_range())]

    e, c = _both(backend, run)
    # as above (S + m) eps_mach absolute for the lse/apply outputs; cost_range is a max/min of
    # the same cost entries (relative eps). Shifted u by -800: S grows accordingly.
    S = float(u.abs().max() + 800.0 + v.abs().max() + g.cost().max() / eps)
    atol = 4 * tol_sum(S + max(x.shape[0], y.shape[0]))
    for a, b in zip(e, c):
        torch.testing.assert_close(b, a, rtol=atol, atol=atol)


@pytest.mark.slow
@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_compiled_equals_eager_float32_and_solves(backend):
    x, y, u, v = _data(torch.float32)
    g = PointCloud(x, y)
    d = Dense(g.cost().float())

    def run():
        return [d.lse(u, v, 0.05, 1), d.lse(u, v, 0.05, 0), g.lse(u, v, 0.05, 1)]

    e, c = _both(backend, run)
    for a, b in zip(e, c):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=0.0)
    x, y, _, _ = _data(torch.float64, 60, 50)

    def solves():
        r = ot.sinkhorn_points(x, y, eps=0.01)
        return [r.value, r.potential_f, ot.sinkhorn_divergence(x, y, eps=0.01),
                ot.solve(None, None, ot.dist(x, y), eps=0.01, rho=0.5).value]

    e, c = _both(backend, solves)
    for a, b in zip(e, c):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_backend_switch_and_validation(backend):
    assert kernels.get_backend() in ("auto", "compiled", "eager")
    old = ot.set_backend("eager")
    assert ot.get_backend() == "eager" and not kernels.use_compiled(10**9)
    ot.set_backend("auto")
    assert kernels.use_compiled(kernels.AUTO_NUMEL) == kernels.compiled_available()
    assert not kernels.use_compiled(100)
    ot.set_backend(old)
    with pytest.raises(InputError, match="^backend"):
        ot.set_backend("fast")


def test_failed_compile_falls_back_to_eager(backend, monkeypatch):
    x, y, u, v = _data(torch.float64, 9, 7)
    g = PointCloud(x, y)
    backend("eager")
    ref = g.lse(u, v, 0.1, 1)

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(kernels, "_get_compiled", lambda name, key: broken)
    monkeypatch.setitem(kernels._state, "broken", None)
    backend("compiled")
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        out = g.lse(u, v, 0.1, 1)
    torch.testing.assert_close(out, ref, rtol=1e-13, atol=0.0)
    assert not kernels.compiled_available()
    monkeypatch.setitem(kernels._state, "broken", None)


# ------------------------------------------------------------ softmax-weighted (attention) kernel
def _softmax_data(dtype=torch.float64, h=2, n=23, m=31, d=3, o=2, seed=3):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(h, n, d, generator=g, dtype=dtype), torch.randn(h, m, d, generator=g,
                                                                       dtype=dtype)
    return x, y, torch.randn(h, m, generator=g, dtype=dtype), torch.randn(h, m, o, generator=g,
                                                                          dtype=dtype)


def _softmax_ref(x, y, v, W, p):
    C = -(x @ y.transpose(1, 2)) if p == kernels.DOT else torch.cdist(x, y) ** p
    z = -C if v is None else v[:, None, :] - C
    return torch.softmax(z, -1) @ W


@pytest.mark.parametrize("p", [kernels.DOT, 2.0, 1.0])
@pytest.mark.parametrize("with_v", [True, False])
def test_points_softmax_eager_is_the_row_softmax(p, with_v):
    x, y, v, W = _softmax_data()
    v = v if with_v else None
    ref = _softmax_ref(x, y, v, W, p)
    # blocks that do not divide n or m: the online rescaling across key blocks is exercised.
    # Each output is a convex combination of W's rows, computed in two orders with exponents
    # of size S: (S + m) eps_mach max|W| (factor 4 margin; a lost v or block is O(1))
    S = float((x.norm(dim=-1).max() * y.norm(dim=-1).max() if p == kernels.DOT
               else torch.cdist(x, y).max() ** p) + (0 if v is None else v.abs().max()))
    atol = 4 * tol_sum(S + y.shape[1]) * float(W.abs().max())
    for rows, cols in [(None, None), (5, 7), (23, 1)]:
        out = kernels.points_softmax(x, y, v, W, p, rows=rows, cols=cols, compiled=False)
        torch.testing.assert_close(out, ref, rtol=0.0, atol=atol)


def test_points_softmax_eager_gradient():
    x, y, v, W = (t.requires_grad_() for t in _softmax_data(n=9, m=11))
    out = kernels.points_softmax(x, y, v, W, rows=4, cols=5, compiled=False)
    g = torch.autograd.grad(out.square().sum(), (x, y, v, W))
    ref = _softmax_ref(x, y, v, W, kernels.DOT)
    gr = torch.autograd.grad(ref.square().sum(), (x, y, v, W))
    for a, b in zip(g, gr):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_points_softmax_compiled_equals_eager(backend):
    x, y, v, W = _softmax_data()

    def run():  # one fused pass; shifted by -800 the sums underflow: the two-pass fallback
        return [kernels.points_softmax(x, y, v, W), kernels.points_softmax(x, y, v - 800.0, W),
                kernels.points_softmax(x, y, None, W, 2.0)]

    e, c = _both(backend, run)
    S = float(x.norm(dim=-1).max() * y.norm(dim=-1).max() + v.abs().max() + 800.0)
    atol = 4 * tol_sum(S + y.shape[1]) * float(W.abs().max())
    for a, b in zip(e, c):
        torch.testing.assert_close(b, a, rtol=0.0, atol=atol)
    # under autograd the compiled backend keeps the differentiable eager path
    xg = x.clone().requires_grad_()
    backend("compiled")
    gc = torch.autograd.grad(kernels.points_softmax(xg, y, v, W).sum(), xg)[0]
    backend("eager")
    ge = torch.autograd.grad(kernels.points_softmax(xg, y, v, W).sum(), xg)[0]
    torch.testing.assert_close(gc, ge, rtol=0.0, atol=0.0)  # same eager code path both times


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_points_softmax_auto_compiles_once_its_kernel_is_warm(backend, monkeypatch):
    """"auto": below AUTO_NUMEL the fused pass is used only once its variant has been compiled
    in the process (the warm rule of use_compiled, keyed on the kernel that actually runs)."""
    x, y, v, W = _softmax_data(h=1, n=300, m=300)
    assert kernels.WARM_NUMEL <= 300 * 300 < kernels.AUTO_NUMEL
    calls, real = [], kernels._run
    monkeypatch.setattr(kernels, "_run", lambda name, variant, *a, **k: calls.append(name)
                        or real(name, variant, *a, **k))
    monkeypatch.setattr(kernels, "_warm", set())
    monkeypatch.setattr(kernels, "_eager_spent", {})
    backend("auto")
    kernels.points_softmax(x, y, v, W)
    assert calls == []                                   # cold: eager
    backend("compiled")
    kernels.points_softmax(x, y, v, W)
    backend("auto")
    calls.clear()
    kernels.points_softmax(x, y, v, W)
    assert calls == ["points_apply"]                     # warm: the one fused pass


@pytest.mark.slow
@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_more_variants_than_dynamos_recompile_limit(backend):
    """Each kernel variant compiles its own copy of the body: more variants of one body than
    dynamo's 8 recompilations per code object (here points_sum in d = 1 ... 10) keep the
    compiled path (it used to fail hard with fullgraph=True and fall back to eager for good)."""
    import torch._dynamo.config as dc

    backend("compiled")
    n_variants = dc.recompile_limit + 2
    for d in range(1, n_variants + 1):
        x, y, u, v = _data(torch.float64, 9, 7, d, seed=d)
        s = torch.tensor(2.0, dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a failed compile would warn
            out = kernels.points_sum(x, y, u, v, s, 2.0, ed=torch.float64)
        ref = kernels.points_sum(x, y, u, v, s, 2.0, ed=torch.float64, compiled=False)
        torch.testing.assert_close(out, ref, rtol=4 * tol_sum(7 + d), atol=0.0)
    assert kernels.compiled_available()


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_points_softmax_auto_compiles_after_its_eager_budget(backend, monkeypatch):
    """"auto", cold variant: eager until the scores processed eagerly reach
    SOFTMAX_EAGER_BUDGET, then the fused pass (here a budget of 2.5 calls: eager, eager,
    compiled); a single call of the budget's size compiles at once."""
    x, y, v, W = _softmax_data(h=1, n=300, m=300)
    calls, real = [], kernels._run
    monkeypatch.setattr(kernels, "_run", lambda name, variant, *a, **k: calls.append(name)
                        or real(name, variant, *a, **k))
    monkeypatch.setattr(kernels, "_warm", set())
    monkeypatch.setattr(kernels, "_eager_spent", {})
    monkeypatch.setattr(kernels, "SOFTMAX_EAGER_BUDGET", int(2.5 * 300 * 300))
    backend("auto")
    outs = [kernels.points_softmax(x, y, v, W) for _ in range(3)]
    assert calls == ["points_apply"]
    S = float(x.norm(dim=-1).max() * y.norm(dim=-1).max() + v.abs().max())  # exponent size
    torch.testing.assert_close(outs[2], outs[0], rtol=0.0,
                               atol=4 * tol_sum(S + 300) * float(W.abs().max()))
    monkeypatch.setattr(kernels, "_warm", set())
    monkeypatch.setattr(kernels, "_eager_spent", {})
    monkeypatch.setattr(kernels, "SOFTMAX_EAGER_BUDGET", 300 * 300)
    calls.clear()
    kernels.points_softmax(x, y, v, W)
    assert calls == ["points_apply"]


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_process_independent_auto_ignores_the_process_history(backend, monkeypatch):
    """Inside process_independent, "auto" decides from the call's size alone: a warm variant
    or a spent eager budget no longer send a small call to the compiled kernel, a softmax call
    of SOFTMAX_NUMEL scores compiles in a cold process; the setting nests and is restored."""
    x, y, v, W = _softmax_data(h=1, n=300, m=300)
    key = ("apply",) + kernels.points_variant(x, kernels.DOT, x.dtype)
    calls, real = [], kernels._run
    monkeypatch.setattr(kernels, "_run", lambda name, variant, *a, **k: calls.append(name)
                        or real(name, variant, *a, **k))
    monkeypatch.setattr(kernels, "_warm", {key, ("a", "variant")})
    monkeypatch.setattr(kernels, "_eager_spent", {key: kernels.SOFTMAX_EAGER_BUDGET})
    backend("auto")
    n_warm = kernels.WARM_NUMEL * 2
    assert kernels.use_compiled(n_warm, ("a", "variant"))            # history: warm
    with kernels.process_independent(), kernels.process_independent():
        assert not kernels.use_compiled(n_warm, ("a", "variant"))
        assert kernels.use_compiled(kernels.AUTO_NUMEL, ("a", "variant"))
        kernels.points_softmax(x, y, v, W)
        assert calls == []                                         # 9e4 scores: eager
        monkeypatch.setattr(kernels, "SOFTMAX_NUMEL", 300 * 300)
        monkeypatch.setattr(kernels, "_warm", set())
        monkeypatch.setattr(kernels, "_eager_spent", {})
        kernels.points_softmax(x, y, v, W)
        assert calls == ["points_apply"]                           # at the size: compiled
    assert kernels._state["independent"] == 0
    kernels._warm.add(("a", "variant"))
    assert kernels.use_compiled(n_warm, ("a", "variant"))            # history rule is back


@pytest.mark.skipif(not kernels.compiled_available(), reason="no working compiler")
def test_points_softmax_compiled_float32_large_scores(backend):
    """float32, scores far beyond exp's range (the one pass overflows: the two-pass
    fallback) and values of size 1e4 (the numerators overflow first): the fallback
    renormalises, so W = 1 gives 1 to float32 rounding of one division, and a large W matches
    the float64 softmax to the float32 rounding of the exponents (size S)."""
    x, y, v, W = _softmax_data(torch.float32, h=2, n=20, m=30)
    x = 12.0 * x                               # scores up to ~ several hundred
    backend("compiled")
    ones = torch.ones_like(W)
    out1 = kernels.points_softmax(x, y, v, ones)
    torch.testing.assert_close(out1, ones[:, :20], rtol=0.0, atol=4 * eps(torch.float32))
    big = 1e4 * W
    out = kernels.points_softmax(x / 8.0, y, v, big)            # scores ~ 80: one pass
    ref = _softmax_ref(x.double() / 8.0, y.double(), v.double(), big.double(), kernels.DOT)
    S = float((x / 8.0).norm(dim=-1).max() * y.norm(dim=-1).max() + v.abs().max())
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.double(), ref, rtol=0.0,
                               atol=4 * tol_sum(S + 30, torch.float32) * float(big.abs().max()))


def test_points_softmax_eager_zero_weight_blocks_and_empty_inputs():
    x, y, v, W = _softmax_data(n=6, m=10)
    v = v.clone()
    v[:, :5] = -math.inf                      # a whole first key block with zero weight
    out = kernels.points_softmax(x, y, v, W, rows=4, cols=5, compiled=False)
    ref = _softmax_ref(x, y[:, 5:], v[:, 5:], W[:, 5:], kernels.DOT)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert kernels.points_softmax(x[:, :0], y, v, W).shape == (2, 0, 2)
    with pytest.raises(ValueError, match="m = 0"):
        kernels.points_softmax(x, y[:, :0], v[:, :0], W[:, :0])
