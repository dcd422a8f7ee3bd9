"""Round-off tolerances derived from the dtype and the computation, not from one CPU's rounding.

The rule (docs/testing.md): when two *different* computation paths are compared (chunked vs
unchunked, streamed vs dense, compiled vs eager, 1 vs N threads, two algorithms), the tolerance
is the dtype's unit round-off times a bound on the accumulation length (and the condition number
when a solve or a cancellation sits in between), times a small constant. A sum of n terms
computed in two different orders differs by at most 2 (n - 1) u sum |x_i| (u = eps / 2, the
worst case; blocked/pairwise sums as done by BLAS and torch are far below it), so

    |s1 - s2| <= n * eps * sum |x_i|          (tol_sum)

Exact equality is kept only where the same code path runs twice (same reduction order), and the
test says so.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def eps(dtype=torch.float64) -> float:
    """Machine epsilon of a torch or NumPy floating dtype (2^-52 for float64, 2^-23 for float32)."""
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps)
    return float(np.finfo(dtype).eps)


def tol_sum(n: int, dtype=torch.float64, c: float = 1.0) -> float:
    """Relative bound (to sum |x_i|) between two summation orders of n terms: c n eps."""
    return c * max(int(n), 1) * eps(dtype)


def tol_sqrt(n: int, dtype=torch.float64, c: float = 8.0) -> float:
    """Statistical bound c sqrt(n) eps of a length-n accumulation (errors add as a random walk).

    Use only where n is large and the worst case n eps would be vacuous; c = 8 is far in the
    tail of the random-walk distribution.
    """
    return c * math.sqrt(max(int(n), 1)) * eps(dtype)


def tol_solve(cond: float, n: int, dtype=torch.float64, c: float = 4.0) -> float:
    """Relative bound c n cond eps for the solution of a linear system / eigenproblem of size n."""
    return c * max(int(n), 1) * float(cond) * eps(dtype)
