"""Seeding helpers: every stochastic function takes ``seed`` (int) or a ``torch.Generator``."""

from __future__ import annotations

import random as _random

import numpy as np
import torch

from .errors import InputError

__all__ = ["make_generator", "seed_everything", "numpy_rng"]


def _check_seed(seed, others: str) -> None:
    """Seeds are ints in [0, 2**63) (NumPy rejects negative seeds, torch wraps them: one rule
    for both), a generator of the right kind, or None."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed: expected an int{others}, got {seed!r}")
    if not 0 <= int(seed) < 2**63:
        raise InputError(f"seed: must be an int in [0, 2**63), got {seed}")


def make_generator(seed: int | torch.Generator | None = None, device=None) -> torch.Generator:
    """Return a ``torch.Generator``: ``seed`` itself if it is one, else a new one seeded with it.

    ``seed=None`` draws a fresh nondeterministic seed (documented as such by callers).
    """
    if isinstance(seed, torch.Generator):
        return seed
    _check_seed(seed, ", a torch.Generator or None")
    g = torch.Generator(device=device if device is not None else "cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def numpy_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    _check_seed(seed, ", a numpy Generator or None")
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (used by the experiment runner)."""
    if seed is None:
        raise InputError("seed: expected an int, got None")
    _check_seed(seed, "")
    _random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
