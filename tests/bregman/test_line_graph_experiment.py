"""The line benchmark of arXiv 2602.01372, Sec. 5 (experiment ``bregman.line-graph``): its
closed-form references and the two methods it compares, checked against independent results."""

import math

import numpy as np
import pytest

from measureflow.bregman import graph_w1
from measureflow.experiments.bregman_flow_sinkhorn import (
    first_iteration,
    line_curve,
    line_geometry,
    line_kr_potential,
    line_problem,
    time_to_levels,
)


def regularised_line_potential(b, gamma):
    """Closed-form optimum of flow-Sinkhorn (z = 1, unit lengths) on a path: the arcs of edge k
    carry exp((-1 +- d_k) / gamma) with d_k = phi_k - phi_{k+1}, and the net flow must be the
    tree flow F_k = cumsum(b)_k, so d_k = gamma arsinh(F_k e^{1/gamma} / 2)."""
    F = np.cumsum(b)[:-1]
    d = gamma * np.arcsinh(F * math.exp(1.0 / gamma) / 2)
    phi = -np.concatenate([[0.0], np.cumsum(d)])
    return phi - phi.mean()


@pytest.mark.parametrize("n,m", [(12, 2), (30, 3)])
def test_kr_potential_is_the_lp_dual(n, m):
    e, w, b1, b2 = line_problem(n, m)
    phi, unique = line_kr_potential(b1 - b2, w)
    assert unique
    ex = graph_w1((e, w), b1, b2, solver="highs")
    np.testing.assert_allclose(np.asarray(ex.potential), phi, atol=1e-9 * n)
    assert abs(phi @ (b1 - b2) - float(ex.value)) < 1e-9 * n


def test_kr_potential_optimal_when_not_unique():
    # edges (1, 2) and (3, 4) carry no flow: the dual is not unique there, the returned one is
    # still 1-Lipschitz and optimal
    b = np.array([1.0, -1.0, 0.5, -0.5, 0.0])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    phi, unique = line_kr_potential(b, w)
    assert not unique
    assert np.all(np.abs(np.diff(phi)) <= w + 1e-12)
    e = np.stack([np.arange(4), np.arange(1, 5)], 1)
    ex = graph_w1((e, w), np.maximum(b, 0), np.maximum(-b, 0))
    assert abs(phi @ b - float(ex.value)) < 1e-12


def test_vanilla_geometry_is_the_complete_graph_with_path_distances():
    head, tail, W, b, e, w, bb = line_geometry(7, 2, "vanilla")
    assert len(W) == 7 * 6
    assert not bool((head == tail).any())
    np.testing.assert_array_equal(W.numpy(), np.abs(head.numpy() - tail.numpy()))
    head, tail, W, *_ = line_geometry(7, 2, "flow")
    assert len(W) == 2 * 6


@pytest.mark.parametrize("omega", [0.5, 0.8])
def test_flow_sinkhorn_reaches_the_closed_form_regularised_optimum(omega):
    """Converged flow-Sinkhorn (exact omega = 1/2 and the reference's over-relaxed 0.8) is the
    closed-form regularised potential, and its net flow is the LP flow (a tree)."""
    n, m, gamma = 10, 2, 0.3
    rec = line_curve((n, m, "flow", gamma, omega, 4000, 4000))
    _, _, _, _, _, w, b = line_geometry(n, m, "flow")
    phi_star, _ = line_kr_potential(b, w)
    target = regularised_line_potential(b, gamma)
    expected = np.linalg.norm(target - phi_star) / np.linalg.norm(phi_star)
    assert rec["dual"][-1] == pytest.approx(expected, abs=1e-8)
    assert rec["flow"][-1] < 1e-8


def test_vanilla_converges_to_a_feasible_routed_flow():
    """On a tree the routed complete-graph flow is the LP flow once its divergence is exact."""
    rec = line_curve((8, 2, "vanilla", 0.5, 0.5, 3000, 3000))
    assert rec["flow"][-1] < 1e-8


def test_time_to_levels_takes_the_best_so_far_and_the_best_gamma():
    curves = {0.1: {"it": [10, 20, 30], "dual": [0.9, 0.2, 0.4], "flow": [1, 1, 1]},
              1.0: {"it": [10, 20, 30], "dual": [0.6, 0.5, 0.05], "flow": [1, 1, 1]}}
    assert first_iteration(curves[0.1], "dual", 0.3) == 20
    assert first_iteration(curves[0.1], "dual", 0.1) == math.inf
    out = time_to_levels(curves, 2.0, "dual", [0.5, 0.1])
    assert out[0.5] == (40.0, 0.1)
    assert out[0.1] == (60.0, 1.0)
