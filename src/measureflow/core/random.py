"""Seeding helpers: every stochastic function takes ``seed`` (int) or a ``torch.Generator``."""

from __future__ import annotations

import random as _random

import numpy as np
import torch

from .errors import InputError

__all__ = ["make_generator", "seed_everything", "numpy_rng"]


def make_generator(seed: int | torch.Generator | None = None, device=None) -> torch.Generator:
    """Return a ``torch.Generator``: ``seed`` itself if it is one, else a new one seeded with it.

    ``seed=None`` draws a fresh nondeterministic seed (documented as such by callers).
    """
    if isinstance(seed, torch.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise InputError(f"seed: expected an int, a torch.Generator or None, got {seed!r}")
    g = torch.Generator(device=device if device is not None else "cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def numpy_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise InputError(f"seed: expected an int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (used by the experiment runner)."""
    _random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
