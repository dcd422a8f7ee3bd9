"""Teacher feature laws of the teacher-student experiments of arXiv:2504.18208 (Sec. 6.1).

The bimodal law on the circle (angles omega in [-pi, pi)) used in the paper's Sec. 6.1::

    mu_gamma(omega)  propto  f_gamma(omega) + 0.5 f_gamma(omega - 0.4 pi),
    f_gamma(omega) = 1 / (1 + gamma sin^2(omega / 2)),

two modes at 0 and 0.4 pi with masses 2/3 and 1/3; gamma sets the sharpness.

Exact sampling (the reference's construction, derived here): for theta uniform, the angle phi of
(sqrt(1 + gamma) cos theta, sin theta) has density propto 1/(1 + gamma sin^2 phi) (from
tan(theta) = sqrt(1 + gamma) tan(phi)), so omega = 2 phi (mod 2 pi) has density propto f_gamma;
every third particle is shifted by 0.4 pi.
"""

from __future__ import annotations

import math

import torch

from ..core import (
    COMPUTE_DTYPES,
    InputError,
    as_tensor,
    check_finite,
    check_in_range,
    check_int,
    check_nonnegative_scalar,
    make_generator,
)

__all__ = ["circle_teacher_density", "sample_circle_teacher", "angles_to_circle"]


def _wrap_angle(w):
    return torch.remainder(w + math.pi, 2 * math.pi) - math.pi


def _finite_real(x, name: str) -> float:
    v = check_in_range(x, name, -math.inf, math.inf)
    if not math.isfinite(v):
        raise InputError(f"{name}: must be finite, got {v}")
    return v


def circle_teacher_density(omega, gamma: float, *, second_mode: float = 0.4 * math.pi,
                           second_weight: float = 0.5):
    """Normalised density of the teacher law mu_gamma on [-pi, pi) at the angles ``omega``.

    mu_gamma(omega) propto f_gamma(omega) + w f_gamma(omega - s), f_gamma(omega) =
    1 / (1 + gamma sin^2(omega / 2)), with w = ``second_weight`` and s = ``second_mode`` (the
    bimodal law of arXiv:2504.18208 Sec. 6.1: w = 0.5, s = 0.4 pi). The normalisation is exact:
    int_(-pi)^(pi) f_gamma = 2 pi / sqrt(1 + gamma).

    Parameters
    ----------
    omega : array_like or Tensor
        Finite angles, any shape.
    gamma : float
        Sharpness (>= 0; 0 gives the uniform law).
    second_mode : float, default 0.4 pi
    second_weight : float, default 0.5
        (>= 0).

    Returns
    -------
    array or Tensor
        Shape of ``omega``; NumPy in, NumPy out.

    Raises
    ------
    InputError
        Negative ``gamma`` / ``second_weight``, non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.meanfield import circle_teacher_density
    >>> round(float(circle_teacher_density(np.array([0.0]), 0.0)[0]), 6)    # 1 / (2 pi)
    0.159155
    >>> w = np.linspace(-np.pi, np.pi, 2001)[:-1]
    >>> round(float(circle_teacher_density(w, 10.0).mean() * 2 * np.pi), 6)   # total mass
    1.0

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 6.1.
    """
    gamma = check_nonnegative_scalar(gamma, "gamma")
    second_mode = _finite_real(second_mode, "second_mode")
    second_weight = check_nonnegative_scalar(second_weight, "second_weight")
    is_t = isinstance(omega, torch.Tensor)
    w = omega if is_t else as_tensor(omega, "omega")
    check_finite(w, "omega")
    f = lambda t: 1.0 / (1.0 + gamma * torch.sin(0.5 * t) ** 2)
    z = (1.0 + second_weight) * 2 * math.pi / math.sqrt(1.0 + gamma)
    out = (f(w) + second_weight * f(w - second_mode)) / z
    return out if is_t else out.numpy()


def sample_circle_teacher(n: int, gamma: float, *, seed=0, second_mode: float = 0.4 * math.pi,
                          dtype=torch.float64) -> torch.Tensor:
    """n angles of the teacher law mu_gamma, every third one in the second mode (a tensor).

    Exact sampling: for theta uniform, the angle phi of (sqrt(1 + gamma) cos theta, sin theta) has
    density propto 1 / (1 + gamma sin^2 phi), so omega = 2 phi (mod 2 pi) has density propto
    f_gamma (see :func:`circle_teacher_density`); particles 2, 5, 8, ... (0-based i with
    i % 3 == 2) are then shifted by ``second_mode``, giving the masses 2/3 and 1/3 of the law with
    ``second_weight`` 0.5 (arXiv:2504.18208 Sec. 6.1).

    Parameters
    ----------
    n : int
        Number of angles (>= 1).
    gamma : float
        Sharpness (>= 0).
    seed : int or torch.Generator, default 0
    second_mode : float, default 0.4 pi
    dtype : torch.dtype, default torch.float64
        float32 or float64.

    Returns
    -------
    torch.Tensor, shape (n,)
        Angles in [-pi, pi).

    Raises
    ------
    InputError
        Bad ``n`` / ``gamma`` / ``second_mode`` / ``dtype``.

    Examples
    --------
    >>> import math
    >>> from measureflow.meanfield import sample_circle_teacher
    >>> w = sample_circle_teacher(6, 10.0)
    >>> tuple(w.shape), bool((w.abs() <= math.pi).all())
    ((6,), True)

    References
    ----------
    R. Barboni, G. Peyre, F.-X. Vialard, "Ultra-fast feature learning for the training of
    two-layer neural networks in the two-timescale regime", arXiv:2504.18208, Sec. 6.1.
    """
    n = check_int(n, "n", min_value=1)
    gamma = check_nonnegative_scalar(gamma, "gamma")
    second_mode = _finite_real(second_mode, "second_mode")
    if dtype not in COMPUTE_DTYPES:
        raise InputError(f"dtype: expected torch.float32 or torch.float64, got {dtype!r}")
    g = make_generator(seed)
    theta = (torch.rand(n, generator=g, dtype=dtype) * 2 - 1) * math.pi
    phi = torch.atan2(torch.sin(theta), math.sqrt(1.0 + gamma) * torch.cos(theta))
    omega = 2.0 * phi
    shift = (torch.arange(n) % 3 == 2).to(dtype) * second_mode
    return _wrap_angle(omega + shift)


def angles_to_circle(omega) -> torch.Tensor:
    """Unit vectors (cos omega, sin omega) of the angles ``omega``.

    Parameters
    ----------
    omega : array_like or Tensor, shape (n,)
        Finite angles.

    Returns
    -------
    torch.Tensor, shape (n, 2)
        Always a tensor (float64 for NumPy input).

    Raises
    ------
    InputError
        ``omega`` not 1-D or non-finite.

    Examples
    --------
    >>> import math
    >>> from measureflow.meanfield import angles_to_circle
    >>> angles_to_circle([0.0, math.pi / 2]).round(decimals=6).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    w = omega if isinstance(omega, torch.Tensor) else as_tensor(omega, "omega")
    check_finite(w, "omega")
    if w.ndim != 1:
        raise InputError(f"omega: expected a 1-D array of angles, got shape {tuple(w.shape)}")
    return torch.stack([torch.cos(w), torch.sin(w)], dim=1)
