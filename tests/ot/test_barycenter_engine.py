"""Free-support barycenter on the engine's tensor internals (issue 17): the same iterates as
before the port, when every inner problem went through the public ``ot.solve``.

References in ``barycenter_refs.npz`` were written by the pre-port code (inner ``ot.solve``
per cloud and per fixed-point step); the oracle below re-runs that algorithm through the
public ``ot.solve`` too, so the comparison does not depend on the stored file alone.
"""

import pathlib
import warnings

import numpy as np
import pytest
import torch

from measureflow import ot

REFS = np.load(pathlib.Path(__file__).with_name("barycenter_refs.npz"))


def _clouds(draw=0):
    """The reference problem; the weights of the second cloud were the ``draw``-th draw."""
    rng = np.random.default_rng(5)
    Y1 = rng.normal(size=(12, 2))
    Y2 = rng.normal(size=(10, 2)) + 2.0
    b2 = [rng.random(10) + 0.5 for _ in range(draw + 1)][-1]
    return Y1, Y2, b2


def _oracle(X, clouds, lam, w, eps, n_iter):
    """The Cuturi-Doucet fixed point with the public ot.solve as inner solver (old code)."""
    for _ in range(n_iter):
        Xn = np.zeros_like(X)
        for (Y, b), lk in zip(clouds, lam):
            C = ((X[:, None, :] - Y[None]) ** 2).sum(-1)
            P = ot.solve(w, b / b.sum(), C, eps=eps).plan
            Xn = Xn + lk * (P @ Y) / w[:, None]
        X = Xn
    return X


@pytest.mark.parametrize("eps", [None, 0.5])
def test_free_support_unchanged_by_the_port(eps):
    Y1, Y2, b2 = _clouds(0 if eps is None else 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = ot.barycenter([Y1, (Y2, b2)], [0.3, 0.7], eps=eps, n_points=8, seed=3, max_iter=30)
    k = f"bary_eps{eps}"
    np.testing.assert_allclose(r.support, REFS[k + "_support"], rtol=0, atol=1e-10)
    assert abs(r.value - float(REFS[k + "_value"])) < 1e-10
    assert r.n_iter == int(REFS[k + "_n_iter"])
    assert r.converged == bool(REFS[k + "_converged"])
    np.testing.assert_allclose(r.errors, REFS[k + "_errors"], rtol=1e-8, atol=1e-13)


def test_free_support_equals_public_solve_oracle():
    Y1, Y2, b2 = _clouds()
    X0 = Y1[:6] + 0.1
    w = np.full(6, 1 / 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = ot.barycenter([Y1, (Y2, b2)], [0.3, 0.7], eps=0.5, init=X0, max_iter=7, tol=1e-300)
        ref = _oracle(X0, [(Y1, np.full(12, 1 / 12)), (Y2, b2)], [0.3, 0.7], w, 0.5, 7)
    np.testing.assert_allclose(r.support, ref, rtol=0, atol=1e-10)


def test_free_support_float32_converges():
    Y1, Y2, b2 = _clouds()
    r = ot.barycenter([torch.tensor(Y1, dtype=torch.float32),
                       (torch.tensor(Y2, dtype=torch.float32), torch.tensor(b2).float())],
                      eps=1.0, n_points=5, seed=0, tol=1e-4)
    assert r.support.dtype == torch.float32 and r.converged
