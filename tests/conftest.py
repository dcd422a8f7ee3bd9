"""Shared pytest configuration: float64 everywhere, few threads (CI has 2 cores).

Environment knobs (to run the suite the way another machine would):

- ``MEASUREFLOW_TEST_THREADS`` (default 1): torch intra-op threads. The suite must pass with 1
  and 2 (reductions are split differently, so sums round differently: tolerances must follow
  from the dtype and the accumulation length, not from one machine's rounding).
- ``ATEN_CPU_CAPABILITY=default`` (a torch variable, read at import): no AVX2/AVX512 kernels.
"""

import os

import torch

# One intra-op thread by default: the suite is made of small problems, for which thread
# wake-ups cost more than they save (and CI has 2 cores).
_threads = os.environ.get("MEASUREFLOW_TEST_THREADS", "1")
try:
    _n = int(_threads)
except ValueError:
    raise RuntimeError(f"MEASUREFLOW_TEST_THREADS must be an integer >= 1, got {_threads!r}")
if _n < 1:
    raise RuntimeError(f"MEASUREFLOW_TEST_THREADS must be an integer >= 1, got {_threads!r}")
torch.set_num_threads(_n)


def pytest_report_header(config):
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "(auto)")
    return (f"measureflow: torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
            f"ATEN_CPU_CAPABILITY={cap}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
