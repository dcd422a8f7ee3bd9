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
    """Reject NaN and Inf entries (and tensors without values: :func:`check_tensor_kind`).

    Parameters
    ----------
    x : Tensor
    name : str
        Argument name for the message.

    Returns
    -------
    Tensor
        ``x``.

    Raises
    ------
    InputError
        ``x`` not a tensor, of an unsupported kind, or with a NaN / Inf entry.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_finite
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_finite(torch.ones(2), "x").shape
    torch.Size([2])
    >>> fails(lambda: check_finite(torch.tensor([1.0, float("inf")]), "x"))
    'x: contains NaN or Inf'
    """
    _tensor(x, name)
    if x.numel() and not bool(torch.isfinite(x.detach()).all()):
        raise InputError(f"{name}: contains NaN or Inf")
    return x


def check_ndim(x: torch.Tensor, name: str, ndim: int | Sequence[int]) -> torch.Tensor:
    """Check the number of dimensions of ``x``.

    Parameters
    ----------
    x : Tensor
    name : str
        Argument name for the message.
    ndim : int or sequence of int
        Allowed numbers of dimensions.

    Returns
    -------
    Tensor
        ``x``.

    Raises
    ------
    InputError
        ``x.ndim`` not allowed.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_ndim
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_ndim(torch.ones(2, 3), "C", 2).shape
    torch.Size([2, 3])
    >>> fails(lambda: check_ndim(torch.ones(2), "C", (2, 3)))
    'C: expected a 2 or 3-D array, got shape (2,)'
    """
    _tensor(x, name)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        want = " or ".join(str(k) for k in allowed)
        raise InputError(f"{name}: expected a {want}-D array, got shape {tuple(x.shape)}")
    return x


def check_shape(x: torch.Tensor, name: str, shape: Sequence[int | None]) -> torch.Tensor:
    """Check ``x.shape`` against ``shape``; ``None`` entries are wildcards.

    Parameters
    ----------
    x : Tensor
    name : str
        Argument name for the message.
    shape : sequence of int or None

    Returns
    -------
    Tensor
        ``x``.

    Raises
    ------
    InputError
        Another number of dimensions or a mismatching size.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_shape
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_shape(torch.ones(4, 2), "x", (None, 2)).shape
    torch.Size([4, 2])
    >>> fails(lambda: check_shape(torch.ones(4, 3), "x", (None, 2)))
    'x: expected shape (*, 2), got (4, 3)'
    """
    _tensor(x, name)
    if x.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    return x


def check_points(x: torch.Tensor, name: str) -> torch.Tensor:
    """A point cloud of shape (n, d) with n >= 1; a 1-D array is read as n points on the line.

    Parameters
    ----------
    x : Tensor
    name : str
        Argument name for the message.

    Returns
    -------
    Tensor
        (n, d) (a view with a new axis for 1-D input).

    Raises
    ------
    InputError
        Not 1-D or 2-D, or empty.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_points
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_points(torch.tensor([0.0, 1.0, 2.0]), "x").shape
    torch.Size([3, 1])
    >>> fails(lambda: check_points(torch.ones(0, 2), "x"))
    'x: empty point cloud'
    """
    _tensor(x, name)
    if x.ndim == 1:
        x = x[:, None]
    check_ndim(x, name, 2)
    if x.shape[0] == 0:
        raise InputError(f"{name}: empty point cloud")
    return x


def check_same_dim(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str]) -> None:
    """Point clouds (n, d) and (m, d) must share the dimension d.

    Parameters
    ----------
    x, y : Tensor
    names : (str, str)
        Their argument names.

    Raises
    ------
    InputError
        0-d inputs or different last dimensions.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_same_dim
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_same_dim(torch.ones(3, 2), torch.ones(5, 2), ("x", "y")) is None
    True
    >>> fails(lambda: check_same_dim(torch.ones(3, 2), torch.ones(5, 3), ("x", "y")))
    'x, y: point dimensions differ (2 vs 3)'
    """
    _tensor(x, names[0])
    _tensor(y, names[1])
    if x.ndim == 0 or y.ndim == 0:
        raise InputError(f"{names[0]}, {names[1]}: expected point clouds, got 0-d arrays")
    if x.shape[-1] != y.shape[-1]:
        raise InputError(f"{names[0]}, {names[1]}: point dimensions differ "
                         f"({x.shape[-1]} vs {y.shape[-1]})")


def check_nonnegative(x: torch.Tensor, name: str) -> torch.Tensor:
    """Finite entries >= 0.

    Parameters
    ----------
    x : Tensor
    name : str
        Argument name for the message.

    Returns
    -------
    Tensor
        ``x``.

    Raises
    ------
    InputError
        A NaN / Inf or a negative entry.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_nonnegative
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> fails(lambda: check_nonnegative(torch.tensor([0.5, -0.25]), "a"))
    'a: has negative entries (min -0.25)'
    """
    check_finite(x, name)
    if x.numel() and bool((x.detach() < 0).any()):
        raise InputError(f"{name}: has negative entries (min {x.detach().min().item():.3g})")
    return x


def check_weights(w, n: int, name: str, *, like: torch.Tensor | None = None,
                  positive_mass: bool = True) -> torch.Tensor:
    """Validate a weight vector of length ``n``; ``None`` gives uniform weights 1/n.

    Weights must be finite and >= 0 with a positive total mass; they are *not* renormalised (a
    measure's mass is part of the input).

    Parameters
    ----------
    w : Tensor or array_like or None
        Weights (n,) (non-tensors are converted with :func:`~measureflow.core.as_tensor`).
    n : int
        Expected length.
    name : str
        Argument name for the message.
    like : Tensor, optional
        Fixes dtype/device of the uniform default and of converted input.
    positive_mass : bool, default True
        Require sum(w) > 0.

    Returns
    -------
    Tensor
        (n,).

    Raises
    ------
    InputError
        Wrong shape, negative or non-finite entries, zero total mass, or n <= 0 with ``None``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_weights
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_weights(None, 4, "a").tolist()
    [0.25, 0.25, 0.25, 0.25]
    >>> check_weights(torch.tensor([2.0, 1.0]), 2, "a").tolist()     # not renormalised
    [2.0, 1.0]
    >>> fails(lambda: check_weights(torch.zeros(2), 2, "a"))
    'a: total mass must be positive'
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
    """Nonnegative weights summing to one (absolute tolerance ``rtol`` on the sum).

    Parameters
    ----------
    w : Tensor
    name : str
        Argument name for the message.
    rtol : float, default 1e-6

    Returns
    -------
    Tensor
        ``w``.

    Raises
    ------
    InputError
        Negative or non-finite entries, or |sum - 1| > rtol.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_probability
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> fails(lambda: check_probability(torch.tensor([0.5, 0.25]), "p"))
    'p: must sum to 1 (sums to 0.75)'
    """
    check_nonnegative(w, name)
    s = float(w.detach().sum())
    if abs(s - 1.0) > rtol:
        raise InputError(f"{name}: must sum to 1 (sums to {s:.8g})")
    return w


def check_masses_match(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], *,
                       rtol: float = 1e-6) -> None:
    """Balanced problems need equal total masses (relative tolerance ``rtol``).

    Parameters
    ----------
    a, b : Tensor
        Weights.
    names : (str, str)
        Their argument names.
    rtol : float, default 1e-6
        |sum a - sum b| <= rtol x max(|sum a|, |sum b|).

    Raises
    ------
    InputError
        Masses that differ (the message points to the unbalanced solvers).

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_masses_match
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_masses_match(torch.ones(2) / 2, torch.ones(4) / 4, ("a", "b")) is None
    True
    >>> fails(lambda: check_masses_match(torch.ones(2), torch.ones(3), ("a", "b")))[:39]
    'a, b: total masses differ (2 vs 3); nor'
    """
    _tensor(a, names[0])
    _tensor(b, names[1])
    ma, mb = float(a.detach().sum()), float(b.detach().sum())
    if abs(ma - mb) > rtol * max(abs(ma), abs(mb), 1e-300):
        raise InputError(f"{names[0]}, {names[1]}: total masses differ ({ma:.10g} vs {mb:.10g}); "
                         "normalise them or use an unbalanced solver (rho=...)")


def check_symmetric(S: torch.Tensor, name: str, *, rtol: float = 1e-8) -> torch.Tensor:
    """A square (batch of) matrix equal to its transpose up to ``rtol`` x max|S|.

    Parameters
    ----------
    S : Tensor
        (..., d, d), finite.
    name : str
        Argument name for the message.
    rtol : float, default 1e-8

    Returns
    -------
    Tensor
        ``S``.

    Raises
    ------
    InputError
        Not square, not finite or not symmetric.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_symmetric
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> fails(lambda: check_symmetric(torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "S"))
    'S: matrix is not symmetric'
    """
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
    """Symmetric positive semi-definite (``strict``: definite), up to ``rtol`` x max|eigenvalue|.

    Parameters
    ----------
    S : Tensor
        (..., d, d).
    name : str
        Argument name for the message.
    rtol : float, default 1e-8
        Relative tolerance of the smallest eigenvalue (and of the symmetry check, at least 1e-8).
    strict : bool, default False
        Require the smallest eigenvalue > rtol x max|eigenvalue|.

    Returns
    -------
    Tensor
        ``S``.

    Raises
    ------
    InputError
        Not symmetric, or an eigenvalue below the tolerance.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_psd
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> S = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    >>> check_psd(S, "S") is S
    True
    >>> fails(lambda: check_psd(S, "S", strict=True))[:28]
    'S: must be positive definite'
    """
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
    """A real scalar > 0 (finite unless ``allow_inf``). Returns it as a float.

    Parameters
    ----------
    x : float or int or 0-d / 1-element Tensor
    name : str
        Argument name for the message.
    allow_inf : bool, default False

    Returns
    -------
    float

    Raises
    ------
    InputError
        Not a real number (bools included), NaN, <= 0, or infinite without ``allow_inf``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_positive
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_positive(torch.tensor(0.5), "eps"), check_positive(float("inf"), "rho", allow_inf=True)
    (0.5, inf)
    >>> fails(lambda: check_positive(0, "eps"))
    'eps: must be a positive finite number, got 0.0'
    """
    v = _as_float(x, name)
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        raise InputError(f"{name}: must be a positive{'' if allow_inf else ' finite'} number, got {v}")
    return v


def check_nonnegative_scalar(x, name: str) -> float:
    """A finite real scalar >= 0. Returns it as a float.

    Parameters
    ----------
    x : float or int or 1-element Tensor
    name : str
        Argument name for the message.

    Returns
    -------
    float

    Raises
    ------
    InputError
        Not a real number, not finite, or negative.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_nonnegative_scalar
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_nonnegative_scalar(0, "temperature")
    0.0
    >>> fails(lambda: check_nonnegative_scalar(-1.0, "temperature"))
    'temperature: must be a finite number >= 0, got -1.0'
    """
    v = _as_float(x, name)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{name}: must be a finite number >= 0, got {v}")
    return v


def check_int(x, name: str, *, min_value: int | None = None) -> int:
    """An integer (not a bool), optionally >= ``min_value``. Returns it as an int.

    Parameters
    ----------
    x : int
    name : str
        Argument name for the message.
    min_value : int, optional

    Returns
    -------
    int

    Raises
    ------
    InputError
        Not an integer (floats such as 10.0 included), or below ``min_value``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_int
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> import numpy as np
    >>> check_int(np.int64(5), "max_iter", min_value=1)
    5
    >>> fails(lambda: check_int(10.0, "max_iter"))
    'max_iter: expected an integer, got 10.0'
    """
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise InputError(f"{name}: expected an integer, got {x!r}")
    x = int(x)
    if min_value is not None and x < min_value:
        raise InputError(f"{name}: must be >= {min_value}, got {x}")
    return x


def check_in_range(x, name: str, low: float, high: float, *, low_open: bool = False,
                   high_open: bool = False) -> float:
    """A real scalar in [low, high] (open ends on request; ``high`` may be ``math.inf``).

    Parameters
    ----------
    x : float or int or 1-element Tensor
    name : str
        Argument name for the message.
    low, high : float
        Bounds.
    low_open, high_open : bool, default False
        Exclude the bound.

    Returns
    -------
    float

    Raises
    ------
    InputError
        Not a real number, NaN, or outside the interval.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_in_range
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_in_range(1.5, "relax", 1.0, 2.0, high_open=True)
    1.5
    >>> fails(lambda: check_in_range(2.0, "relax", 1.0, 2.0, high_open=True))
    'relax: must lie in [1.0, 2.0), got 2.0'
    """
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
    """``x`` must be one of ``choices`` (InputError naming ``name`` otherwise).

    Never raises anything but InputError, also for arrays and other objects whose ``==`` is
    not a bool.

    Parameters
    ----------
    x : object
    name : str
        Argument name for the message.
    choices : sequence of str

    Returns
    -------
    object
        ``x``.

    Raises
    ------
    InputError
        ``x`` not among ``choices``.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_choice
    >>> def fails(call):
    ...     try:
    ...         call()
    ...     except InputError as exc:
    ...         return str(exc)
    >>> check_choice("rk4", "method", ("euler", "rk4"))
    'rk4'
    >>> fails(lambda: check_choice("rk5", "method", ("euler", "rk4")))
    "method: must be one of 'euler', 'rk4', got 'rk5'"
    """
    try:
        ok = bool(x in choices)
    except Exception:  # noqa: BLE001 - arrays and other objects whose == is not a bool
        ok = False
    if not ok:
        raise InputError(f"{name}: must be one of {', '.join(map(repr, choices))}, got {x!r}")
    return x
