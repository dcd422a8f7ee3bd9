"""Plotting helpers for experiments (matplotlib, Agg backend, no screen needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..core.stats import loglog_fit  # noqa: E402,F401

__all__ = ["plt", "new_figure", "loglog_fit"]


def new_figure(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float] = (4.6, 3.6)):
    """A figure with ``nrows x ncols`` axes (returns fig, axes; axes squeezed)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             squeeze=True, constrained_layout=True)
    return fig, axes
