"""Shared pytest configuration: float64 everywhere, few threads (CI has 2 cores)."""


import torch

# One intra-op thread: the suite is made of small problems, for which thread wake-ups cost
# more than they save (and CI has 2 cores).
torch.set_num_threads(1)
