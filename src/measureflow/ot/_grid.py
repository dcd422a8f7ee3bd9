"""Validation shared by the grid solvers (Benamou-Brenier, JKO)."""

from __future__ import annotations

import math

from ..core.errors import InputError


def check_extent(extent, d: int) -> list[tuple[float, float]]:
    """Physical box of a d-dimensional grid: ``None`` -> [0, 1]^d, else d pairs (low, high)."""
    if extent is None:
        return [(0.0, 1.0)] * d
    try:
        ext = [(float(lo), float(hi)) for lo, hi in extent]
    except (TypeError, ValueError):
        raise InputError("extent: expected a sequence of (low, high) pairs, one per axis") from None
    if len(ext) != d or any(not (math.isfinite(lo) and math.isfinite(hi) and hi > lo)
                            for lo, hi in ext):
        raise InputError(f"extent: expected {d} finite (low, high) pairs with low < high")
    return ext
