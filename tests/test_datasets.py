"""measureflow.datasets: seeded, documented generators (draw order, shapes, properties)."""

import numpy as np
import pytest
import torch

import measureflow
from _tol import tol_sum
from measureflow import InputError
from measureflow.datasets import (
    attention_tokens,
    gaussian_sample,
    point_clouds,
    random_spd,
    random_weights,
)


def test_generators_are_seeded_and_follow_their_documented_draws():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 4))
    assert np.array_equal(random_spd(4, 3, jitter=0.5, normalize=True), A @ A.T / 4 + 0.5 * np.eye(4))
    assert np.linalg.eigvalsh(random_spd(6, 1, jitter=0.1)).min() >= 0.1 * (1 - 1e-12)
    x1, y1 = point_clouds(7, 5, 3, 11, shift=[0.0, 1.0, 2.0])
    x2, y2 = point_clouds(7, 5, 3, np.random.default_rng(11), shift=[0.0, 1.0, 2.0])
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and y1.shape == (5, 3)
    w = random_weights(9, 2)
    # w = v / sum(v): the division and the re-summation of 9 terms each round; <= 2 * 9 eps
    # (a wrong normalisation is off by O(1e-1))
    assert w.shape == (9,) and w.min() > 0 and w.sum() == pytest.approx(1.0, abs=tol_sum(9, c=2))
    a, b = attention_tokens(20, 4, 5), attention_tokens(20, 4, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and a[0].dtype == torch.float32
    assert measureflow.datasets.random_spd is random_spd


def test_gaussian_sample_exact_moments():
    mean = np.array([1.0, -2.0, 0.5])
    cov = random_spd(3, 0)
    z = gaussian_sample(50, mean, cov, 4, exact_moments=True)
    assert np.allclose(z.mean(0), mean, atol=1e-12)
    zc = z - z.mean(0)
    assert np.allclose(zc.T @ zc / 50, cov, atol=1e-12)
    # without the correction: the sample moments carry the O(n^{-1/2}) sampling error
    z = gaussian_sample(50, mean, cov, 4)
    assert not np.allclose(z.mean(0), mean, atol=1e-3)


def test_bad_input():
    with pytest.raises(InputError, match="^d"):
        random_spd(0)
    with pytest.raises(InputError, match="^jitter"):
        random_spd(2, jitter=0.0)
    with pytest.raises(InputError, match="^shift"):
        point_clouds(3, 3, 2, shift=[1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="^high"):
        random_weights(3, low=2.0, high=1.0)
    with pytest.raises(InputError, match="^cov"):
        gaussian_sample(5, [0.0, 0.0], -np.eye(2))
    with pytest.raises(InputError, match="^n"):
        gaussian_sample(2, [0.0, 0.0], np.eye(2), exact_moments=True)
    with pytest.raises(InputError, match="^seed"):
        point_clouds(3, 3, 2, seed="zero")
