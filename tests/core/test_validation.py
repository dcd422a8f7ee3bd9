import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from measureflow import InputError
from measureflow.core import (
    check_choice,
    check_finite,
    check_in_range,
    check_int,
    check_masses_match,
    check_ndim,
    check_nonnegative,
    check_nonnegative_scalar,
    check_positive,
    check_probability,
    check_psd,
    check_same_dim,
    check_shape,
    check_symmetric,
    check_weights,
)

T = torch.tensor


def test_check_finite():
    check_finite(T([1.0, 2.0]), "x")
    with pytest.raises(InputError, match="^x: contains NaN"):
        check_finite(T([1.0, float("inf")]), "x")


def test_check_shape_and_ndim():
    check_shape(torch.zeros(3, 2), "x", (None, 2))
    with pytest.raises(InputError, match=r"^x: expected shape \(\*, 3\), got \(3, 2\)"):
        check_shape(torch.zeros(3, 2), "x", (None, 3))
    check_ndim(torch.zeros(3), "v", 1)
    with pytest.raises(InputError, match="^v: expected a 2-D array"):
        check_ndim(torch.zeros(3), "v", 2)


def test_check_same_dim():
    with pytest.raises(InputError, match="^x, y: point dimensions differ"):
        check_same_dim(torch.zeros(3, 2), torch.zeros(4, 3), ("x", "y"))


def test_check_nonnegative():
    check_nonnegative(T([0.0, 1.0]), "a")
    with pytest.raises(InputError, match="^a: has negative entries"):
        check_nonnegative(T([0.5, -1e-3]), "a")


def test_check_weights_default_uniform_and_errors():
    w = check_weights(None, 4, "a", like=torch.zeros(1, dtype=torch.float32))
    assert w.dtype == torch.float32 and torch.allclose(w, torch.full((4,), 0.25))
    with pytest.raises(InputError, match=r"^a: expected shape \(3\)"):
        check_weights(T([0.5, 0.5]), 3, "a")
    with pytest.raises(InputError, match="^a: has negative"):
        check_weights(T([1.5, -0.5]), 2, "a")
    with pytest.raises(InputError, match="^a: total mass must be positive"):
        check_weights(T([0.0, 0.0]), 2, "a")
    with pytest.raises(InputError, match="^a: contains NaN"):
        check_weights([0.5, np.nan], 2, "a")


def test_check_probability():
    check_probability(T([0.25, 0.75]), "p")
    with pytest.raises(InputError, match="^p: must sum to 1"):
        check_probability(T([0.25, 0.25]), "p")


def test_check_masses_match():
    check_masses_match(T([0.5, 0.5]), T([1.0]), ("a", "b"))
    with pytest.raises(InputError, match="^a, b: total masses differ"):
        check_masses_match(T([0.5, 0.5]), T([1.1]), ("a", "b"))


def test_check_symmetric_and_psd():
    check_psd(torch.eye(3), "S")
    check_psd(torch.diag(T([1.0, 0.0])), "S")
    with pytest.raises(InputError, match="^S: matrix is not symmetric"):
        check_symmetric(T([[1.0, 2.0], [0.0, 1.0]]), "S")
    with pytest.raises(InputError, match="^S: not positive semi-definite"):
        check_psd(T([[1.0, 2.0], [2.0, 1.0]]), "S")
    with pytest.raises(InputError, match="^S: must be positive definite"):
        check_psd(torch.diag(T([1.0, 0.0])), "S", strict=True)
    with pytest.raises(InputError, match="^S: expected a square matrix"):
        check_psd(torch.zeros(2, 3), "S")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 10_000))
def test_check_psd_accepts_gram_matrices(d, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    check_psd(A @ A.T, "S")
    ev = torch.linalg.eigvalsh(A + A.T)
    if ev.min() < -1e-6 * ev.abs().max():
        with pytest.raises(InputError):
            check_psd(A + A.T, "S")


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "1", True, torch.ones(2)])
def test_check_positive_rejects(bad):
    with pytest.raises(InputError, match="^eps:"):
        check_positive(bad, "eps")


def test_check_positive_accepts_and_inf_option():
    assert check_positive(1e-4, "eps") == 1e-4
    assert check_positive(torch.tensor(2.0), "eps") == 2.0
    assert check_positive(math.inf, "p", allow_inf=True) == math.inf


def test_scalar_validators():
    assert check_nonnegative_scalar(0, "lam") == 0.0
    with pytest.raises(InputError, match="^lam:"):
        check_nonnegative_scalar(-1, "lam")
    assert check_int(3, "max_iter", min_value=1) == 3
    with pytest.raises(InputError, match="^max_iter: must be >= 1"):
        check_int(0, "max_iter", min_value=1)
    with pytest.raises(InputError, match="^max_iter: expected an integer"):
        check_int(2.5, "max_iter")
    assert check_in_range(math.inf, "p", 1, math.inf) == math.inf
    with pytest.raises(InputError, match=r"^p: must lie in \[1, inf\]"):
        check_in_range(0.5, "p", 1, math.inf)
    with pytest.raises(InputError, match=r"^t: must lie in \(0"):
        check_in_range(0, "t", 0, 1, low_open=True)
    assert check_choice("l2", "kind", ["softmax", "l2"]) == "l2"
    with pytest.raises(InputError, match="^kind: must be one of"):
        check_choice("relu", "kind", ["softmax", "l2"])


def test_check_points():
    from measureflow.core import check_points
    assert check_points(torch.zeros(4), "x").shape == (4, 1)
    assert check_points(torch.zeros(4, 3), "x").shape == (4, 3)
    with pytest.raises(InputError, match="^x: expected a 2-D array"):
        check_points(torch.zeros(2, 2, 2), "x")
    with pytest.raises(InputError, match="^x: empty point cloud"):
        check_points(torch.zeros(0, 2), "x")
