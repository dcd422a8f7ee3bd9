"""Validators for the public boundary. Each raises :class:`InputError` naming the argument.

All validators accept torch tensors (the library's compute type) and return the validated
object (possibly normalised), so they compose inline::

    a = check_weights(a, n, "a")
    eps = check_positive(eps, "eps")
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from .arrays import check_tensor_kind
from .errors import InputError

__all__ = [
    "check_finite", "check_shape", "check_ndim", "check_nonnegative", "check_weights",
    "check_masses_match", "check_psd", "check_symmetric", "check_positive", "check_nonnegative_scalar",
    "check_int", "check_in_range", "check_choice", "check_same_dim", "check_probability",
    "check_points",
]


def _tensor(x, name: str) -> torch.Tensor:
    """The validators take tensors (public faces convert with ``ArrayContext`` first)."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch tensor, got {type(x).__name__} (convert "
                         "with core.as_tensor / ArrayContext.tensor first)")
    return check_tensor_kind(x, name)


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Reject NaN and Inf entries (and tensors without values: :func:`check_tensor_kind`)."""
    _tensor(x, name)
    if x.numel() and not bool(torch.isfinite(x.detach()).all()):
        raise InputError(f"{name}: contains NaN or Inf")
    return x


def check_ndim(x: torch.Tensor, name: str, ndim: int | Sequence[int]) -> torch.Tensor:
    _tensor(x, name)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        want = " or ".join(str(k) for k in allowed)
        raise InputError(f"{name}: expected a {want}-D array, got shape {tuple(x.shape)}")
    return x


def check_shape(x: torch.Tensor, name: str, shape: Sequence[int | None]) -> torch.Tensor:
    """Check ``x.shape`` against ``shape``; ``None`` entries are wildcards."""
    _tensor(x, name)
    if x.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    return x


def check_points(x: torch.Tensor, name: str) -> torch.Tensor:
    """A point cloud of shape (n, d) with n >= 1; a 1-D array is read as n points on the line."""
    _tensor(x, name)
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, name, 2)
    if x.shape[0] == 0:
        raise InputError(f"{name}: empty point cloud")
    return x


def check_same_dim(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str]) -> None:
    """Point clouds (n, d) and (m, d) must share the dimension d."""
    _tensor(x, names[0])
    _tensor(y, names[1])
    if x.ndim == 0 or y.ndim == 0:
        raise InputError(f"{names[0]}, {names[1]}: expected point clouds, got 0-d arrays")
    if x.shape[-1] != y.shape[-1]:
        raise InputError(f"{names[0]}, {names[1]}: point dimensions differ "
                         f"({x.shape[-1]} vs {y.shape[-1]})")


def check_nonnegative(x: torch.Tensor, name: str) -> torch.Tensor:
    """Finite entries >= 0."""
    check_finite(x, name)
    if x.numel() and bool((x.detach() < 0).any()):
        raise InputError(f"{name}: has negative entries (min {x.detach().min().item():.3g})")
    return x


def check_weights(w, n: int, name: str, *, like: torch.Tensor | None = None,
                  positive_mass: bool = True) -> torch.Tensor:
    """Validate a weight vector of length ``n``; ``None`` gives uniform weights 1/n.

    ``like`` fixes dtype/device of the uniform default. Weights must be finite and >= 0 with a
    positive total mass (they are *not* renormalised: a measure's mass is part of the input).
    """
    if w is None:
        kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
        if n <= 0:
            raise InputError(f"{name}: cannot build uniform weights for an empty support")
        return torch.full((n,), 1.0 / n, **kw)
    if not isinstance(w, torch.Tensor):
        from .arrays import as_tensor
        w = as_tensor(w, name, dtype=None if like is None else like.dtype,
                      device=None if like is None else like.device)
    _tensor(w, name)
    check_shape(w, name, (n,))
    check_nonnegative(w, name)
    if positive_mass and not float(w.detach().sum()) > 0:
        raise InputError(f"{name}: total mass must be positive")
    return w


def check_probability(w: torch.Tensor, name: str, *, rtol: float = 1e-6) -> torch.Tensor:
    """Nonnegative weights summing to one."""
    check_nonnegative(w, name)
    s = float(w.detach().sum())
    if abs(s - 1.0) > rtol:
        raise InputError(f"{name}: must sum to 1 (sums to {s:.8g})")
    return w


def check_masses_match(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], *,
                       rtol: float = 1e-6) -> None:
    """Balanced problems need equal total masses (relative tolerance ``rtol``)."""
    _tensor(a, names[0])
    _tensor(b, names[1])
    ma, mb = float(a.detach().sum()), float(b.detach().sum())
    if abs(ma - mb) > rtol * max(abs(ma), abs(mb), 1e-300):
        raise InputError(f"{names[0]}, {names[1]}: total masses differ ({ma:.10g} vs {mb:.10g}); "
                         "normalise them or use an unbalanced solver (rho=...)")


def check_symmetric(S: torch.Tensor, name: str, *, rtol: float = 1e-8) -> torch.Tensor:
    """A square (batch of) matrix equal to its transpose up to ``rtol`` x max|S|."""
    _tensor(S, name)
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise InputError(f"{name}: expected a square matrix, got shape {tuple(S.shape)}")
    check_finite(S, name)
    Sd = S.detach()
    scale = max(float(Sd.abs().max()) if Sd.numel() else 0.0, 1e-300)
    if float((Sd - Sd.transpose(-1, -2)).abs().max() if Sd.numel() else 0.0) > rtol * scale:
        raise InputError(f"{name}: matrix is not symmetric")
    return S


def check_psd(S: torch.Tensor, name: str, *, rtol: float = 1e-8, strict: bool = False) -> torch.Tensor:
    """Symmetric positive semi-definite (``strict``: definite), up to ``rtol`` x max|eigenvalue|."""
    check_symmetric(S, name, rtol=max(rtol, 1e-8))
    ev = torch.linalg.eigvalsh(0.5 * (S.detach() + S.detach().transpose(-1, -2)))
    scale = max(float(ev.abs().max()) if ev.numel() else 0.0, 1e-300)
    lo = float(ev.min()) if ev.numel() else 0.0
    if lo < -rtol * scale:
        raise InputError(f"{name}: not positive semi-definite (smallest eigenvalue {lo:.3g})")
    if strict and lo <= rtol * scale:
        raise InputError(f"{name}: must be positive definite (smallest eigenvalue {lo:.3g})")
    return S


def _as_float(x, name: str) -> float:
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise InputError(f"{name}: expected a scalar, got shape {tuple(x.shape)}")
        check_tensor_kind(x, name)
        x = x.detach().item()
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise InputError(f"{name}: expected a real number, got {type(x).__name__}")
    return float(x)


def check_positive(x, name: str, *, allow_inf: bool = False) -> float:
    """A real scalar > 0 (finite unless ``allow_inf``). Returns it as a float."""
    v = _as_float(x, name)
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        raise InputError(f"{name}: must be a positive{'' if allow_inf else ' finite'} number, got {v}")
    return v


def check_nonnegative_scalar(x, name: str) -> float:
    v = _as_float(x, name)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{name}: must be a finite number >= 0, got {v}")
    return v


def check_int(x, name: str, *, min_value: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise InputError(f"{name}: expected an integer, got {x!r}")
    x = int(x)
    if min_value is not None and x < min_value:
        raise InputError(f"{name}: must be >= {min_value}, got {x}")
    return x


def check_in_range(x, name: str, low: float, high: float, *, low_open: bool = False,
                   high_open: bool = False) -> float:
    """A real scalar in [low, high] (open ends on request; ``high`` may be ``math.inf``)."""
    v = _as_float(x, name)
    ok = not math.isnan(v)
    ok = ok and (v > low if low_open else v >= low)
    ok = ok and (v < high if high_open else v <= high)
    if not ok:
        lb = "(" if low_open else "["
        rb = ")" if high_open else "]"
        raise InputError(f"{name}: must lie in {lb}{low}, {high}{rb}, got {v}")
    return v


def check_choice(x, name: str, choices: Sequence[str]) -> str:
    """``x`` must be one of ``choices`` (InputError naming ``name`` otherwise)."""
    try:
        ok = bool(x in choices)
    except Exception:  # noqa: BLE001 - arrays and other objects whose == is not a bool
        ok = False
    if not ok:
        raise InputError(f"{name}: must be one of {', '.join(map(repr, choices))}, got {x!r}")
    return x
