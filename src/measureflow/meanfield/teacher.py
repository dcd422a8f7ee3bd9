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
    """Normalised density of mu_gamma on [-pi, pi) at the angles ``omega`` (NumPy or tensor).

    The normalisation of f_gamma is exact: int_{-pi}^{pi} f_gamma = 2 pi / sqrt(1 + gamma).
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
    """n i.i.d.-by-thirds angles of mu_gamma (every third one in the second mode), as a tensor.

    Draws theta uniform, maps it as described in the module docstring, then shifts particles
    2, 5, 8, ... (0-based indices i with i % 3 == 2) by ``second_mode``. Returns angles (n,) in
    [-pi, pi).
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
    """Angles (n,) -> unit vectors (n, 2) = (cos omega, sin omega)."""
    w = omega if isinstance(omega, torch.Tensor) else as_tensor(omega, "omega")
    check_finite(w, "omega")
    if w.ndim != 1:
        raise InputError(f"omega: expected a 1-D array of angles, got shape {tuple(w.shape)}")
    return torch.stack([torch.cos(w), torch.sin(w)], dim=1)
