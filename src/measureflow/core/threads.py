"""Intra-op thread control for small CPU problems."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["serial_if_small", "SMALL_NUMEL"]

#: Problems with fewer entries than this run on one intra-op thread.
SMALL_NUMEL = 2**16


@contextlib.contextmanager
def serial_if_small(numel: int, threshold: int = SMALL_NUMEL):
    """Run a block on one torch intra-op thread when the problem has < ``threshold`` entries.

    Iterative solvers on small CPU problems (a few hundred to a few thousand entries per
    element-wise pass) spend more time waking threads than computing; on a loaded machine this
    costs milliseconds per call. Large problems keep the caller's setting. The caller's thread
    count is restored on exit (also on error). Note: ``torch.set_num_threads`` is process-wide.
    """
    k = torch.get_num_threads()
    if k == 1 or numel >= threshold:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(k)
