"""Pieces of the spectral experiments (arXiv 2604.04891) that decide their claims."""
import dataclasses
import math

import numpy as np
import pytest

from measureflow.experiments.spectral_muon import (
    ede_defect,
    lp_gauge_solver,
    spectral_certificate,
    teacher_effective_tokens,
)
from measureflow.spectral import spectral_wasserstein


def _clouds(seed, n=8, d=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * [1.5, 0.4][:d]
    y = rng.normal(size=(n, d)) + 1.0
    return x, y


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_certificate_brackets_the_optimum_and_catches_a_bad_plan(p):
    x, y = _clouds(0)
    r = spectral_wasserstein(x, y, p=p)
    lo, up, ok = spectral_certificate(x, y, r, p)
    assert ok and lo <= r.value ** 2 * (1 + 1e-9) and up >= r.value ** 2 * (1 - 1e-9)
    assert (up - lo) / up <= 1e-6
    # the independent product coupling is feasible but not optimal: the upper side moves
    bad = dataclasses.replace(r, plan=np.full((8, 8), 1 / 64))
    lo2, up2, ok2 = spectral_certificate(x, y, bad, p)
    assert ok2 and (up2 - lo2) / up2 > 0.1
    # a Q outside K_p is reported invalid
    assert not spectral_certificate(x, y, dataclasses.replace(r, Q=2 * np.asarray(r.Q)), p)[2]


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_lp_gauge_solver_agrees_with_the_cutting_plane(p):
    x, y = _clouds(1)
    L, U = lp_gauge_solver(x, y, p, 180)
    r = spectral_wasserstein(x, y, p=p)
    assert L <= r.value ** 2 * (1 + 1e-7) and r.lower <= U * (1 + 1e-9)
    assert (U - L) / U < 0.02


def test_ede_defect_of_an_exact_dissipation_record_is_zero():
    t = np.linspace(0, 1, 11)

    class Run:
        times = t
        dual_norms = np.full(11, 2.0)
        energies = 5.0 - 2.0 * t
    d, drop = ede_defect(Run)
    assert drop == pytest.approx(2.0) and abs(d) < 1e-12
    Run.energies = 5.0 - 4.0 * t                     # twice the dissipation: O(1) defect
    assert ede_defect(Run)[0] == pytest.approx(2.0)


def test_teacher_effective_tokens_dense_near_m_sparse_small():
    out = teacher_effective_tokens(dict(seed=3, N=4))
    assert 15.5 < out["dense"] <= 16.0            # q/k scale 0.08: almost uniform over m = 16
    assert 1.0 <= out["sparse"] < 5.0
