"""Shared pieces of the benchmark scripts (not a benchmark itself: names starting with _ are
not listed by ``measureflow bench``).

Import this module FIRST in a script: it pins the BLAS/OpenMP thread pools to one thread
(unless the caller's environment already sets them) before NumPy or torch are loaded, so that
ours and the anchor run under the same threading.
"""

from __future__ import annotations

import os
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def best_of(fn, repeat: int):
    """Run ``fn()`` ``repeat`` times; return (last output, best wall time in seconds)."""
    out, best = None, float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best
