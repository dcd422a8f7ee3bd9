"""Every conversion written in docs/coming-from-{pot,ott,geomloss}.md, run on the same data in
both libraries (float64) and compared."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tol import tol_sum
from measureflow import ot

TIGHT = 1e-13   # marginal tolerance given to both sides, so their iterates agree to ~1e-12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(10, 2)) + 1.0
    a = rng.uniform(0.5, 1.5, 12)
    a /= a.sum()
    b = rng.uniform(0.5, 1.5, 10)
    b /= b.sum()
    return x, y, a, b, ot.dist(x, y)


# --------------------------------------------------------------------------------------- POT
pot = pytest.importorskip("ot")


def test_pot_dist_emd_emd2(data):
    x, y, a, b, C = data
    # POT expands |x|^2 + |y|^2 - 2<x, y> (a BLAS product: its rounding is the machine's), ours
    # sums (x - y)^2: they differ by the expansion's cancellation error <= c d eps (|x|^2 + |y|^2)
    # (d = 2, c = 4; a wrong convention such as |x - y| or a factor 1/2 is O(1))
    scale = (x * x).sum(1)[:, None] + (y * y).sum(1)[None]
    assert np.all(np.abs(ot.dist(x, y) - pot.dist(x, y)) <= 4 * 2 * tol_sum(1) * scale)
    res = ot.solve(a, b, C)
    np.testing.assert_allclose(res.plan, pot.emd(a, b, C), atol=1e-15)
    assert res.value == pytest.approx(pot.emd2(a, b, C), rel=1e-13)


def test_pot_sinkhorn_sinkhorn2_and_solve(data):
    x, y, a, b, C = data
    reg = 0.5
    res = ot.solve(a, b, C, eps=reg, tol=TIGHT)
    kw = {"method": "sinkhorn_log", "stopThr": TIGHT, "numItermax": 100_000}
    np.testing.assert_allclose(res.plan, pot.sinkhorn(a, b, C, reg, **kw), atol=1e-13)
    # sinkhorn2 is the transport part <C, P>, our linear_cost (value adds eps KL)
    assert res.linear_cost == pytest.approx(float(pot.sinkhorn2(a, b, C, reg, **kw)), rel=1e-11)
    R = pot.solve(C, a, b, reg=reg, max_iter=100_000, tol=1e-14)
    assert res.value == pytest.approx(R.value, rel=1e-11)
    assert res.linear_cost == pytest.approx(R.value_linear, rel=1e-11)
    # POT's potentials are the log-scalings f / eps + log a (up to one additive constant)
    for theirs, ours, w in ((R.potentials[0], res.potential_f, a),
                            (R.potentials[1], res.potential_g, b)):
        assert np.ptp(theirs - (ours / reg + np.log(w))) < 1e-10


def test_pot_unbalanced(data):
    x, y, a, b, C = data
    res = ot.solve(a, b, C, eps=0.5, rho=1.0, tol=TIGHT)
    P = pot.sinkhorn_unbalanced(a, b, C, 0.5, 1.0, stopThr=1e-15, numItermax=100_000)
    np.testing.assert_allclose(res.plan, P, atol=1e-13)
    R = pot.solve(C, a, b, reg=0.5, unbalanced=1.0, max_iter=100_000, tol=1e-15)
    np.testing.assert_allclose(res.plan, R.plan, atol=1e-13)
    assert res.linear_cost == pytest.approx(R.value_linear, rel=1e-11)


def test_pot_barycenter_wasserstein_1d_and_gaussians(data):
    x, y, a, b, C = data
    t = np.linspace(0, 1, 30)
    A = np.stack([np.exp(-((t - 0.3) / 0.1) ** 2), np.exp(-((t - 0.7) / 0.08) ** 2)], 1)
    A /= A.sum(0)
    M = pot.dist(t[:, None], t[:, None])
    w = np.array([0.3, 0.7])
    theirs = pot.bregman.barycenter(A, M, 0.01, w, method="sinkhorn_log", stopThr=1e-13,
                                    numItermax=100_000)
    ours = ot.barycenter(A.T, w, cost=M, eps=0.01, tol=1e-13).weights
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    # wasserstein_1d: POT returns W_p^p, ours W_p
    for p in (1, 2):
        assert ot.wasserstein_1d(x[:, 0], y[:, 0], a, b, p=p) ** p == pytest.approx(
            pot.wasserstein_1d(x[:, 0], y[:, 0], a, b, p=p), rel=1e-12)
    m0, S0 = np.zeros(2), np.array([[1.0, 0.3], [0.3, 0.6]])
    m1, S1 = np.array([2.0, -1.0]), np.array([[0.8, -0.2], [-0.2, 1.5]])
    assert ot.bures_wasserstein(m0, S0, m1, S1) == pytest.approx(
        pot.gaussian.bures_wasserstein_distance(m0, m1, S0, S1), rel=1e-12)
    A_pot, b_pot = pot.gaussian.bures_wasserstein_mapping(m0, m1, S0, S1)
    A_ours, b_ours = ot.gaussian_map(m0, S0, m1, S1)
    np.testing.assert_allclose(A_ours, A_pot, atol=1e-12)
    np.testing.assert_allclose(b_ours, b_pot, atol=1e-12)


# --------------------------------------------------------------------------------------- OTT-JAX
# slow: importing JAX and compiling OTT's solvers costs ~15 s of CPU, more than the rest of
# this file; run with ``pytest -m slow tests/test_conventions_peers.py``.
def _ott():
    jax = pytest.importorskip("jax")
    pytest.importorskip("ott")
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn
    from ott.tools import sinkhorn_divergence
    return jax, pointcloud, linear_problem, sinkhorn, sinkhorn_divergence


@pytest.mark.slow
def test_ott_pointcloud_sinkhorn_potentials_and_defaults(data):
    jax, pointcloud, linear_problem, sinkhorn, sd = _ott()
    x, y, a, b, C = data
    eps = 0.5
    res = ot.solve(a, b, C, eps=eps, tol=TIGHT)
    with jax.enable_x64(True):
        import jax.numpy as jnp
        geom = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=eps)
        np.testing.assert_allclose(np.asarray(geom.cost_matrix), C, atol=1e-13)
        prob = linear_problem.LinearProblem(geom, jnp.asarray(a), jnp.asarray(b))
        out = sinkhorn.Sinkhorn(threshold=1e-13, max_iterations=100_000)(prob)
        np.testing.assert_allclose(np.asarray(out.matrix), res.plan, atol=1e-13)
        assert float(out.reg_ot_cost) == pytest.approx(res.value, rel=1e-11)
        assert float(out.primal_cost) == pytest.approx(res.linear_cost, rel=1e-11)
        # OTT's potentials carry the log-weights: f_ott = f + eps log a (up to a constant)
        assert np.ptp(np.asarray(out.f) - (res.potential_f + eps * np.log(a))) < 1e-10
        assert np.ptp(np.asarray(out.g) - (res.potential_g + eps * np.log(b))) < 1e-10
        # default epsilon: 5 % of the standard deviation of the cost
        default = float(pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y)).epsilon)
        assert default == pytest.approx(0.05 * C.std(), rel=1e-12)
        # defaults of the solver: threshold 1e-3
        assert sinkhorn.Sinkhorn().threshold == 1e-3
        div = sd.sinkhorn_divergence(pointcloud.PointCloud, jnp.asarray(x), jnp.asarray(y),
                                     epsilon=eps,
                                     solve_kwargs={"threshold": 1e-13, "max_iterations": 100_000})
        assert float(div[0]) == pytest.approx(
            ot.sinkhorn_divergence(x, y, eps=eps, tol=TIGHT), rel=1e-10)


@pytest.mark.slow
def test_ott_unbalanced_is_ours_with_the_entropy_reference(data):
    jax, pointcloud, linear_problem, sinkhorn, _ = _ott()
    x, y, a, b, C = data
    eps, rho = 0.5, 1.0
    tau = rho / (rho + eps)
    shifted = C + eps * (np.log(a)[:, None] + np.log(b)[None, :])
    res = ot.solve(a, b, shifted, eps=eps, rho=eps * tau / (1 - tau), tol=TIGHT)
    with jax.enable_x64(True):
        import jax.numpy as jnp
        geom = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=eps)
        prob = linear_problem.LinearProblem(geom, jnp.asarray(a), jnp.asarray(b), tau_a=tau,
                                            tau_b=tau)
        out = sinkhorn.Sinkhorn(threshold=1e-14, max_iterations=100_000)(prob)
        np.testing.assert_allclose(np.asarray(out.matrix), res.plan, atol=1e-12)
    # and it is not the KL(P | a x b) problem once the weights are not uniform
    plain = ot.solve(a, b, C, eps=eps, rho=rho, tol=TIGHT)
    assert np.abs(plain.plan - res.plan).max() > 1e-3


# --------------------------------------------------------------------------------------- GeomLoss
# GeomLoss stops after its annealing (no tolerance test): its error is about proportional to
# 1 - scaling (unbalanced, measured: 3.7e-3, 2.3e-4, 2.3e-5 for scaling 0.9, 0.99, 0.999)
GEOMLOSS_RTOL = 1e-4


def _samples_loss(**kw):
    geomloss = pytest.importorskip("geomloss")
    return geomloss.SamplesLoss("sinkhorn", scaling=0.999, backend="tensorized", **kw)


@pytest.fixture(scope="module")
def clouds():
    rng = np.random.default_rng(1)
    return rng.normal(size=(30, 2)), rng.normal(size=(25, 2)) + 1.0


def test_geomloss_divergence_p2_and_p1(clouds):
    x, y = clouds
    xt, yt = torch.tensor(x), torch.tensor(y)
    blur = 0.5
    theirs = float(_samples_loss(p=2, blur=blur)(xt, yt))
    ours = ot.sinkhorn_divergence(x, y, eps=2 * blur ** 2, tol=TIGHT)
    assert theirs == pytest.approx(ours / 2, rel=GEOMLOSS_RTOL)
    theirs = float(_samples_loss(p=1, blur=blur)(xt, yt))
    assert theirs == pytest.approx(ot.sinkhorn_divergence(x, y, eps=blur, p=1, tol=TIGHT),
                                   rel=GEOMLOSS_RTOL)


def test_geomloss_ot_eps_and_reach(clouds):
    x, y = clouds
    xt, yt = torch.tensor(x), torch.tensor(y)
    blur, reach = 0.5, 1.0
    C = ot.dist(x, y)
    theirs = float(_samples_loss(p=2, blur=blur, debias=False)(xt, yt))
    ours = ot.solve(None, None, C, eps=2 * blur ** 2, tol=TIGHT).value
    assert theirs == pytest.approx(ours / 2, rel=GEOMLOSS_RTOL)
    theirs = float(_samples_loss(p=2, blur=blur, reach=reach, debias=False)(xt, yt))
    ours = ot.solve(None, None, C, eps=2 * blur ** 2, rho=2 * reach ** 2, tol=TIGHT).value
    assert theirs == pytest.approx(ours / 2, rel=GEOMLOSS_RTOL)
