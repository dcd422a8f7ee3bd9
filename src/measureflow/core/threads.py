"""Intra-op thread control for small CPU problems, local to the calling thread.

Iterative solvers on small CPU problems (a few hundred to a few thousand entries per
element-wise pass) spend more time waking OpenMP worker threads than computing; on a loaded
machine one ``exp`` over 3000 entries was measured at ~1 ms with two threads against 5 us with
one. :func:`serial_if_small` runs such a block on one thread.

It changes only the *calling thread's* OpenMP setting (the ``nthreads-var`` ICV, through the
OpenMP runtime that torch loaded: ``omp_set_num_threads`` is per thread), not the process-wide
torch or MKL settings: other Python threads running torch concurrently keep their thread
counts, and nothing leaks if the caller's thread count changes meanwhile. Where torch is not
built with OpenMP, or the runtime cannot be located (non-Linux platforms), it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os

import torch

__all__ = ["serial_if_small", "SMALL_NUMEL", "local_thread_control"]

#: Problems with fewer entries than this run on one intra-op thread.
SMALL_NUMEL = 2**16


@functools.lru_cache(maxsize=1)
def _omp_runtime():
    """The OpenMP runtime torch uses (ctypes handle), or None."""
    try:
        if "OpenMP" not in torch.__config__.parallel_info():
            return None
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if line.rstrip().endswith(".so")
                     or ".so." in line}
    except (OSError, RuntimeError, AttributeError):
        return None
    # torch's own runtime first: other wheels (POT, scikit-learn) bundle their own libgomp
    # copies, whose thread setting torch never reads
    torch_dir = os.path.dirname(torch.__file__)
    for key in ("libgomp", "libiomp", "libomp"):
        for path in sorted(paths, key=lambda p: (not p.startswith(torch_dir), p)):
            if key in path.rsplit("/", 1)[-1]:
                try:
                    lib = ctypes.CDLL(path)
                    lib.omp_set_num_threads.argtypes = [ctypes.c_int]
                    lib.omp_get_max_threads.restype = ctypes.c_int
                    return lib
                except (OSError, AttributeError):
                    continue
    return None


def local_thread_control() -> bool:
    """Whether :func:`serial_if_small` can act here (OpenMP runtime of torch reachable).

    Returns
    -------
    bool
        False where torch is not built with OpenMP or its runtime cannot be located (then
        :func:`serial_if_small` is a no-op).

    Examples
    --------
    >>> from measureflow.core.threads import local_thread_control
    >>> isinstance(local_thread_control(), bool)
    True
    """
    return _omp_runtime() is not None


@contextlib.contextmanager
def serial_if_small(numel: int, threshold: int = SMALL_NUMEL):
    """Run a block on one intra-op thread (of the calling thread) when ``numel < threshold``.

    Large problems keep the caller's setting. The calling thread's OpenMP thread count is
    restored on exit (also on error). Other threads are not affected (see the module
    docstring); on platforms where the OpenMP runtime is not reachable this is a no-op.

    Parameters
    ----------
    numel : int
        Size of the work (entries per element-wise pass).
    threshold : int, default ``SMALL_NUMEL`` = 2^16
        Below it, run on one thread.

    Examples
    --------
    The results are the same; only the thread count of the block changes:

    >>> import torch
    >>> from measureflow.core.threads import serial_if_small
    >>> x = torch.linspace(0, 1, 1000, dtype=torch.float64)
    >>> with serial_if_small(x.numel()):
    ...     y = torch.exp(x)
    >>> bool(torch.allclose(y, torch.exp(x), rtol=1e-15, atol=0.0))
    True
    """
    lib = _omp_runtime() if numel < threshold else None
    if lib is None:
        yield
        return
    torch.get_num_threads()  # make torch initialise this thread's OpenMP setting first
    k = lib.omp_get_max_threads()
    if k <= 1:
        yield
        return
    lib.omp_set_num_threads(1)
    try:
        yield
    finally:
        lib.omp_set_num_threads(k)
