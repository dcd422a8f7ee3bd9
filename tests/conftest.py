"""Shared pytest configuration: float64 everywhere, few threads (CI has 2 cores).

Environment knobs (to run the suite the way another machine would):

- ``MEASUREFLOW_TEST_THREADS`` (default 1): torch intra-op threads. The suite must pass with 1
  and 2 (reductions are split differently, so sums round differently: tolerances must follow
  from the dtype and the accumulation length, not from one machine's rounding).
- ``ATEN_CPU_CAPABILITY=default`` (a torch variable, read at import): no AVX2/AVX512 kernels.
- ``MEASUREFLOW_TEST_DTYPE`` (``float64`` default, or ``float32``): the dtype of the ``dtype``
  fixture used by dtype-generic tests (their tolerances come from ``tests/_tol.py``).
- Other machines' BLAS kernels can be imitated with ``OPENBLAS_CORETYPE`` (NumPy's OpenBLAS,
  e.g. ``Haswell`` as on AMD EPYC) and ``MKL_ENABLE_INSTRUCTIONS`` (torch's MKL, e.g. ``AVX2``).

See docs/testing.md for the tolerance rule.
"""

import os
import sys
from pathlib import Path

import pytest
import torch

# tests/ on sys.path (the suite uses --import-mode=importlib): ``from _tol import tol_sum``.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# One intra-op thread by default: the suite is made of small problems, for which thread
# wake-ups cost more than they save (and CI has 2 cores).
_threads = os.environ.get("MEASUREFLOW_TEST_THREADS", "1")
try:
    _n = int(_threads)
except ValueError:
    raise RuntimeError(f"MEASUREFLOW_TEST_THREADS must be an integer >= 1, got {_threads!r}"
                       ) from None
if _n < 1:
    raise RuntimeError(f"MEASUREFLOW_TEST_THREADS must be an integer >= 1, got {_threads!r}")
torch.set_num_threads(_n)

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_dtype_name = os.environ.get("MEASUREFLOW_TEST_DTYPE", "float64")
if _dtype_name not in _DTYPES:
    raise RuntimeError(f"MEASUREFLOW_TEST_DTYPE must be float64 or float32, got {_dtype_name!r}")


@pytest.fixture
def dtype() -> torch.dtype:
    """The floating dtype of dtype-generic tests (``MEASUREFLOW_TEST_DTYPE``, default float64)."""
    return _DTYPES[_dtype_name]


def pytest_report_header(config):
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "(auto)")
    return (f"measureflow: torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
            f"ATEN_CPU_CAPABILITY={cap}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"test dtype {_dtype_name}")
