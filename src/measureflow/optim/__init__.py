"""Schatten-p normalized optimizers (``torch.optim``): ``Schatten`` (any p) and ``Muon`` (p = inf).

Paper: arXiv 2604.04891 (Muon dynamics as a spectral Wasserstein flow), Sec. 2 and App. B.
Conventions (momentum, scale, lr adjustment, non-matrix parameters): see
:mod:`measureflow.optim.schatten` and docs/spectral.md.
"""

from .schatten import Muon, Schatten, newton_schulz_quintic

__all__ = ["Schatten", "Muon", "newton_schulz_quintic"]
