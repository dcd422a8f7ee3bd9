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

    Parameters
    ----------
    seed : int or torch.Generator or None
        An int in [0, 2**63), a generator (returned as is, its state shared), or ``None``: a
        fresh nondeterministic seed (documented as such by callers).
    device : torch.device or str, optional
        Device of a new generator (default CPU).

    Returns
    -------
    torch.Generator

    Raises
    ------
    InputError
        ``seed`` of another type or out of range.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import make_generator
    >>> a = torch.rand(3, generator=make_generator(0))
    >>> b = torch.rand(3, generator=make_generator(0))
    >>> bool(torch.equal(a, b))
    True
    >>> g = torch.Generator()
    >>> make_generator(g) is g
    True
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
    """Return a ``numpy.random.Generator``: ``seed`` itself if it is one, else ``default_rng(seed)``.

    Parameters
    ----------
    seed : int or numpy.random.Generator or None
        An int in [0, 2**63), a generator (returned as is), or ``None`` (fresh entropy).

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    InputError
        ``seed`` of another type or out of range.

    Examples
    --------
    >>> from measureflow.core import numpy_rng
    >>> float(numpy_rng(1).random()) == float(numpy_rng(1).random())
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    _check_seed(seed, ", a numpy Generator or None")
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (used by the experiment runner).

    Parameters
    ----------
    seed : int
        In [0, 2**63) (NumPy's legacy global generator receives ``seed % 2**32``).

    Raises
    ------
    InputError
        ``seed`` None, of another type or out of range.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from measureflow.core import seed_everything
    >>> saved = np.random.get_state(), torch.get_rng_state()
    >>> seed_everything(3); a = (np.random.rand(), torch.rand(1).item())
    >>> seed_everything(3); b = (np.random.rand(), torch.rand(1).item())
    >>> a == b
    True
    >>> np.random.set_state(saved[0]); torch.set_rng_state(saved[1])   # leave no trace
    """
    if seed is None:
        raise InputError("seed: expected an int, got None")
    _check_seed(seed, "")
    _random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
