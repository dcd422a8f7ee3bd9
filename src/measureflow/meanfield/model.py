"""Mean-field single-hidden-layer network f(x) = (1/M) sum_j u_j phi(w_j, x).

Implements the model of Barboni, Peyre, Vialard, *Variable projection / two-timescale
learning of mean-field networks* (arXiv:2504.18208), Sec. 2 and Sec. 6 / App. B, with the
normalisations of the authors' reference implementation: the outer weights carry the 1/M factor,
so that u plays the role of a density (u_j ~ dmu*/dmu at the particle w_j in the teacher-student
limit).

Two feature maps are provided:

- ``activation="relu"``: phi(w, x) = max(<w, x>, 0) (no bias), usually with ``domain="sphere"``
  (features projected on the unit sphere after each step, Sec. 6.1 uses S^1 in R^2);
- ``activation="rbf"``: phi(w, x) = (2 / b^2) exp(-|wrap(w - x)| / b) with bandwidth b
  (default 0.5) and wrap the minimum-image map of the torus R^d / (P Z)^d (default period P = 4,
  so features live in [-2, 2)^d), usually with ``domain="torus"`` (App. B).

Everything is plain torch written here; no external library.
"""

from __future__ import annotations

import torch

from ..core import (
    ArrayContext,
    InputError,
    as_tensor,
    check_choice,
    check_ndim,
    check_positive,
    is_tensor,
)

__all__ = ["TwoLayer", "wrap_torus"]


def wrap_torus(z, period: float):
    """Minimum-image representative of ``z`` in [-period/2, period/2), componentwise.

    wrap(z) = ((z + P/2) mod P) - P/2: the coordinates of the torus R^d / (P Z)^d used by the RBF
    features of :class:`TwoLayer` (arXiv:2504.18208, App. B).

    Parameters
    ----------
    z : array_like or Tensor
        Any shape.
    period : float
        P > 0, finite.

    Returns
    -------
    array or Tensor
        Shape of ``z``. NumPy in, NumPy out; tensor in, tensor out (autograd kept).

    Raises
    ------
    InputError
        ``period`` <= 0 or non-finite, ``z`` not a real array.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.meanfield import wrap_torus
    >>> wrap_torus(np.array([2.5, -2.0, 1.0]), 4.0).tolist()
    [-1.5, -2.0, 1.0]
    """
    ctx = ArrayContext(z)
    zt = ctx.tensor(z, "z")
    period = check_positive(period, "period")
    return ctx.wrap(_wrap(zt, period))


def _wrap(z: torch.Tensor, period: float) -> torch.Tensor:
    return torch.remainder(z + 0.5 * period, period) - 0.5 * period


class TwoLayer(torch.nn.Module):
    """Mean-field two-layer network f(x) = (1/M) sum_j u_j phi(w_j, x) (a ``torch.nn.Module``).

    The outer weights carry the 1/M factor, so u plays the role of a density (u_j ~ dmu*/dmu at
    the particle w_j in the teacher-student limit; arXiv:2504.18208 Sec. 2, normalisations of the
    reference implementation). ``activation="relu"``: phi(w, x) = max(<w, x>, 0) (no bias);
    ``activation="rbf"``: phi(w, x) = (2 / b^2) exp(-|wrap(w - x)| / b).

    Parameters
    ----------
    features : array_like or Tensor, shape (M, d)
        Initial features w_j. With ``domain="sphere"`` they are normalised to unit norm (no zero
        row), with ``domain="torus"`` wrapped into [-period/2, period/2)^d.
    activation : {"relu", "rbf"}, default "relu"
    domain : {"sphere", "torus"}, default "sphere"
        Unit sphere S^(d-1) or R^d / (period Z)^d: the projection applied after every feature
        update (:meth:`project_`).
    outer : array_like or Tensor, shape (M,), optional
        Initial outer weights u, default all ones (the teacher convention).
    period : float, default 4.0
        Torus period P (App. B).
    bandwidth : float, default 0.5
        RBF bandwidth b (App. B).

    Attributes
    ----------
    features : torch.nn.Parameter, shape (M, d)
    outer : torch.nn.Parameter, shape (M,)
        Of the dtype/device of ``features`` (float64 for NumPy input).
    width, dim : int
        M and d.

    Raises
    ------
    InputError
        Bad ``activation`` / ``domain``, ``features`` not a non-empty (M, d) array, a zero feature
        on the sphere, ``outer`` of the wrong shape, ``period`` / ``bandwidth`` <= 0.

    Notes
    -----
    ``forward`` follows the library convention: NumPy in, NumPy out; tensor in, tensor out with
    autograd.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.meanfield import TwoLayer
    >>> net = TwoLayer(np.array([[3.0, 4.0], [0.0, -2.0]]))      # projected on the sphere
    >>> net.features.detach().numpy().tolist()
    [[0.6, 0.8], [0.0, -1.0]]
    >>> net(np.eye(2)).tolist()                                    # (relu(0.6) + 0) / 2, ...
    [0.3, 0.4]
    >>> rbf = TwoLayer(np.zeros((3, 2)), "rbf", "torus")
    >>> rbf(np.zeros((1, 2))).tolist()                             # 2 / b^2 at distance 0
    [8.0]

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 2, App. B.
    """

    def __init__(self, features, activation: str = "relu", domain: str = "sphere", *,
                 outer=None, period: float = 4.0, bandwidth: float = 0.5):
        super().__init__()
        check_choice(activation, "activation", ("relu", "rbf"))
        check_choice(domain, "domain", ("sphere", "torus"))
        W = as_tensor(features, "features").detach().clone()
        check_ndim(W, "features", 2)
        if W.shape[0] < 1 or W.shape[1] < 1:
            raise InputError(f"features: expected a non-empty (M, d) array, got {tuple(W.shape)}")
        self.activation = activation
        self.domain = domain
        self.period = check_positive(period, "period")
        self.bandwidth = check_positive(bandwidth, "bandwidth")
        if domain == "sphere" and bool((W.norm(dim=1) == 0).any()):
            raise InputError("features: a zero feature cannot be projected on the sphere")
        if outer is None:
            u = torch.ones(W.shape[0], dtype=W.dtype, device=W.device)
        else:
            u = as_tensor(outer, "outer", dtype=W.dtype, device=W.device).detach().clone()
            if u.shape != (W.shape[0],):
                raise InputError(f"outer: expected shape ({W.shape[0]},), got {tuple(u.shape)}")
        self.features = torch.nn.Parameter(W)
        self.outer = torch.nn.Parameter(u)
        self.project_()

    # ------------------------------------------------------------------ properties
    @property
    def width(self) -> int:
        """Number of hidden units M."""
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        """Input dimension d."""
        return self.features.shape[1]

    # ------------------------------------------------------------------ maths
    def project_(self) -> TwoLayer:
        """Project the features on the domain in place (sphere: normalise; torus: wrap)."""
        with torch.no_grad():
            self.features.copy_(self.project(self.features))
        return self

    def project(self, W: torch.Tensor) -> torch.Tensor:
        """Projection of a feature array on the domain, out of place (sphere: normalise; torus:
        wrap)."""
        if self.domain == "sphere":
            return W / W.norm(dim=-1, keepdim=True)
        return _wrap(W, self.period)

    def feature_matrix(self, x: torch.Tensor, W: torch.Tensor | None = None) -> torch.Tensor:
        """Feature matrix Phi_nj = phi(w_j, x_n) for x (N, d) (a tensor); ``W`` defaults to the
        features."""
        W = self.features if W is None else W
        if self.activation == "relu":
            return torch.relu(x @ W.T)
        diff = _wrap(x[:, None, :] - W[None, :, :], self.period)
        r = torch.linalg.vector_norm(diff, dim=-1)
        b = self.bandwidth
        return (2.0 / b**2) * torch.exp(-r / b)

    def _input(self, x, name: str = "x") -> torch.Tensor:
        x = as_tensor(x, name, dtype=self.features.dtype, device=self.features.device)
        check_ndim(x, name, 2)
        if x.shape[1] != self.dim:
            raise InputError(f"{name}: expected {self.dim} columns, got {x.shape[1]}")
        return x

    def forward(self, x):
        """f(x_n) = (1/M) sum_j u_j phi(w_j, x_n) for x (N, d); returns (N,)."""
        numpy_call = not is_tensor(x)
        xt = self._input(x)
        out = self.feature_matrix(xt) @ self.outer / self.width
        return out.detach().cpu().numpy() if numpy_call else out

    def extra_repr(self) -> str:
        extra = f", period={self.period}" if self.domain == "torus" else ""
        extra += f", bandwidth={self.bandwidth}" if self.activation == "rbf" else ""
        return (f"width={self.width}, dim={self.dim}, activation={self.activation!r}, "
                f"domain={self.domain!r}{extra}")


