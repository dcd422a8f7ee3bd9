"""Array handling: NumPy / list / torch in, torch compute, same kind out.

Convention (design.md): inputs may be NumPy arrays, Python scalars/lists or torch tensors.
All computation is done in torch. If *any* array argument of a call is a torch tensor the
outputs are tensors on that tensor's device and dtype, with autograd kept; otherwise the
outputs are NumPy arrays (0-d results become Python floats). NumPy / list inputs are converted
to float64 unless a torch tensor fixes the dtype.

What the boundary accepts (checked once here, for every public function, with an
:class:`~measureflow.InputError` naming the argument otherwise):

- torch tensors in float32 or float64 (the compute dtypes), on a device that holds data
  (cpu, cuda, mps, ...), dense (strided) layout. Tensors on the ``meta`` device (shapes without
  values), sparse tensors, complex tensors (the imaginary part would be dropped) and float16 /
  bfloat16 tensors are rejected: half precision has neither the range (exp overflows at 11.1)
  nor the precision (eps 1e-3 / 8e-3) the solvers' tolerances assume; cast with ``.float()``.
- integer and bool tensors / arrays are read as numbers (bool as 0/1) and converted to the
  compute dtype (float64 unless a floating tensor argument fixes it); a lone Python/NumPy bool
  (``True`` where a number or an array is expected) is rejected.
- NumPy arrays, Python scalars and (nested, rectangular) lists of real numbers; ragged lists,
  object arrays, strings, complex values and ``None`` are rejected.
- non-contiguous tensors (transposes, expanded views) are made contiguous (a copy only then);
  0-d inputs keep their shape (shape checks are the public function's job).
- NaN and Inf are rejected unless the caller opts out (``check_finite=False``). Huge finite
  values are accepted: overflow in a result is reported by the function that computes it.

Typical use inside a public function::

    ctx = ArrayContext(x, y)          # inspects the inputs once
    x = ctx.tensor(x, "x")            # torch tensor, common dtype/device, finite-checked
    ...
    return ctx.wrap(result)           # tensors -> numpy if the call was a NumPy call
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np
import torch

from .errors import InputError

__all__ = ["ArrayContext", "as_tensor", "to_numpy", "is_tensor", "DEFAULT_DTYPE", "COMPUTE_DTYPES",
           "check_tensor_kind"]

DEFAULT_DTYPE = torch.float64

#: The floating dtypes measureflow computes in (float16 / bfloat16 are rejected, see above).
COMPUTE_DTYPES = (torch.float32, torch.float64)


def check_tensor_kind(t: torch.Tensor, name: str) -> torch.Tensor:
    """Reject tensors the library cannot compute with (see the module docstring).

    Meta-device tensors (no values), non-strided layouts (sparse, ...), complex dtypes and
    floating dtypes other than float32/float64 raise :class:`InputError` naming ``name``.
    Integer and bool tensors pass (they are converted by :func:`as_tensor`).

    Parameters
    ----------
    t : Tensor
    name : str
        Argument name for the error message.

    Returns
    -------
    Tensor
        ``t`` itself.

    Raises
    ------
    InputError
        A tensor of a kind listed above.

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import InputError, check_tensor_kind
    >>> check_tensor_kind(torch.ones(2), "x").shape
    torch.Size([2])
    >>> try:
    ...     check_tensor_kind(torch.ones(2, dtype=torch.float16), "x")
    ... except InputError as exc:
    ...     print(str(exc)[:33])
    x: dtype torch.float16 is not sup
    """
    if t.device.type == "meta":
        raise InputError(f"{name}: tensors on the 'meta' device hold no values (only a shape); "
                         "measureflow needs data: pass a tensor on cpu, cuda or mps")
    if t.layout != torch.strided:
        raise InputError(f"{name}: {t.layout} tensors are not supported; pass a dense tensor "
                         "(.to_dense())")
    if t.is_complex():
        raise InputError(f"{name}: complex values are not supported (dtype {t.dtype}); the "
                         "imaginary part would be dropped: pass .real explicitly if intended")
    if t.is_floating_point() and t.dtype not in COMPUTE_DTYPES:
        raise InputError(f"{name}: dtype {t.dtype} is not supported (measureflow computes in "
                         "float32 or float64): cast with .float() or .double()")
    return t


def is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor.

    Parameters
    ----------
    x : object

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np, torch
    >>> from measureflow.core import is_tensor
    >>> is_tensor(torch.zeros(1)), is_tensor(np.zeros(1))
    (True, False)
    """
    return isinstance(x, torch.Tensor)


def _usable(t: torch.Tensor) -> bool:
    return (t.device.type != "meta" and t.layout == torch.strided and not t.is_complex()
            and (not t.is_floating_point() or t.dtype in COMPUTE_DTYPES))


def _first_tensor(arrays) -> torch.Tensor | None:
    """The tensor that fixes a call's dtype/device: the first usable floating one, else the
    first usable one, else (only unusable tensors: meta, complex, half, sparse) the first
    tensor. Unusable tensors never fix the call's dtype/device, so that the InputError is
    raised when that tensor itself is converted, naming it (not another argument)."""
    tensors = [a for a in arrays if isinstance(a, torch.Tensor)]
    for t in tensors:
        if t.is_floating_point() and _usable(t):
            return t
    for t in tensors:
        if _usable(t):
            return t
    return tensors[0] if tensors else None


def as_tensor(x: Any, name: str = "x", *, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None, check_finite: bool = True) -> torch.Tensor:
    """Convert ``x`` to a floating torch tensor without copying when possible.

    Tensors keep their dtype/device (and autograd graph) unless ``dtype``/``device`` is given;
    non-contiguous tensors are made contiguous. NumPy arrays, lists and scalars become float64
    (or ``dtype``); integers and bools are read as numbers.

    Parameters
    ----------
    x : array_like or Tensor
        The value to convert.
    name : str, default "x"
        Argument name for error messages.
    dtype : torch.dtype, optional
        float32 or float64 (the compute dtypes).
    device : torch.device or str, optional
    check_finite : bool, default True
        Reject NaN / Inf.

    Returns
    -------
    Tensor

    Raises
    ------
    InputError
        Naming ``name``: ``x`` is None, a string, a lone bool, ragged, complex, non-numeric, of a
        kind the library does not compute with (meta device, sparse, complex, float16/bfloat16:
        :func:`check_tensor_kind`) or (``check_finite``) contains NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from measureflow.core import InputError, as_tensor
    >>> as_tensor([1, 2]).dtype, as_tensor(np.float32(1.0), dtype=torch.float32).dtype
    (torch.float64, torch.float32)
    >>> t = torch.ones(2, requires_grad=True)
    >>> as_tensor(t) is t                     # no copy, autograd kept
    True
    >>> try:
    ...     as_tensor([1.0, float("nan")], "weights")
    ... except InputError as exc:
    ...     print(exc)
    weights: contains NaN or Inf
    """
    if x is None:
        raise InputError(f"{name}: expected an array, got None")
    if isinstance(x, torch.Tensor):
        check_tensor_kind(x, name)  # before the call-wide checks: name the culprit itself
    if dtype is not None and dtype not in COMPUTE_DTYPES:
        raise InputError(f"{name}: compute dtype {dtype} (fixed by another tensor argument of "
                         "this call) is not supported: use float32 or float64 tensors")
    if device is not None and torch.device(device).type == "meta":
        raise InputError(f"{name}: cannot compute on the 'meta' device (fixed by another tensor "
                         "argument of this call): pass tensors holding data")
    if isinstance(x, torch.Tensor):
        t = x
        if not t.is_floating_point():
            t = t.to(dtype or DEFAULT_DTYPE)
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        if device is not None and t.device != torch.device(device):
            t = t.to(device)
        t = t.contiguous()
    else:
        if isinstance(x, (str, bytes)):
            raise InputError(f"{name}: expected numeric values, got a string {x!r:.40}")
        if isinstance(x, (bool, np.bool_)):
            raise InputError(f"{name}: expected a number or an array, got the bool {x!r}")
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged nested lists, objects numpy cannot read
            raise InputError(f"{name}: cannot be converted to an array ({exc})") from None
        if arr.dtype == object:
            raise InputError(f"{name}: ragged or non-numeric array")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(f"{name}: expected numeric values, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise InputError(f"{name}: complex values are not supported")
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
        t = torch.as_tensor(arr, dtype=dtype or DEFAULT_DTYPE, device=device)
    if check_finite and t.numel() and not bool(torch.isfinite(t.detach()).all()):
        raise InputError(f"{name}: contains NaN or Inf")
    return t


def to_numpy(x: Any) -> Any:
    """Tensor -> NumPy (0-d -> Python float/int/bool); other objects are returned unchanged.

    The tensor is detached and moved to the CPU.

    Parameters
    ----------
    x : object

    Returns
    -------
    ndarray or float or int or bool or object

    Examples
    --------
    >>> import torch
    >>> from measureflow.core import to_numpy
    >>> to_numpy(torch.tensor([1.0, 2.0])).tolist(), to_numpy(torch.tensor(3.0)), to_numpy("a")
    ([1.0, 2.0], 3.0, 'a')
    """
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().numpy()
        if arr.ndim == 0:
            return arr.item()
        return arr
    return x


class ArrayContext:
    """Remembers how a public function was called, to return outputs of the same kind.

    NumPy in -> NumPy out (0-d results as Python floats); a torch tensor among the array
    arguments -> tensors out on that tensor's device and dtype, autograd kept
    (docs/conventions.md, "Arrays and devices").

    Parameters
    ----------
    *arrays:
        The array-like arguments of the call (``None`` entries are ignored). The first floating
        torch tensor among them fixes dtype and device; if there is none the call is a NumPy call
        and the compute dtype is float64 on CPU.
    dtype, device:
        Optional overrides of the compute dtype/device.

    Attributes
    ----------
    is_torch, is_numpy : bool
        Whether the call was a torch call or a NumPy call.
    dtype : torch.dtype
        Compute dtype of the call.
    device : torch.device
        Compute device of the call.

    Raises
    ------
    InputError
        ``dtype`` not float32/float64, or ``device`` not a device holding data.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from measureflow.core import ArrayContext
    >>> ctx = ArrayContext(np.ones(2), [1.0, 2.0])
    >>> x = ctx.tensor([1.0, 2.0], "x")
    >>> ctx.is_numpy, type(ctx.wrap(2 * x)).__name__, ctx.wrap(x.sum())
    (True, 'ndarray', 3.0)
    >>> ctx = ArrayContext(np.ones(2), torch.ones(2, dtype=torch.float32))
    >>> ctx.tensor(np.ones(2), "a").dtype, ctx.is_torch
    (torch.float32, True)
    """

    def __init__(self, *arrays: Any, dtype: torch.dtype | None = None, device=None):
        if dtype is not None and dtype not in COMPUTE_DTYPES:
            raise InputError(f"dtype: expected torch.float32 or torch.float64, got {dtype!r}")
        if device is not None:
            try:
                device = torch.device(device)
            except (RuntimeError, TypeError) as exc:
                raise InputError(f"device: not a torch device ({exc})") from None
            if device.type == "meta":
                raise InputError("device: the 'meta' device holds no data")
        ref = _first_tensor([a for a in arrays if a is not None])
        self.is_torch = ref is not None
        if ref is not None and _usable(ref):
            self.dtype = dtype or (ref.dtype if ref.is_floating_point() else DEFAULT_DTYPE)
            self.device = torch.device(device) if device is not None else ref.device
        elif ref is not None:  # only unusable tensors: converting them raises, naming them
            self.dtype = dtype or DEFAULT_DTYPE
            self.device = torch.device(device) if device is not None else torch.device("cpu")
        else:
            self.dtype = dtype or DEFAULT_DTYPE
            self.device = torch.device(device) if device is not None else torch.device("cpu")

    @property
    def is_numpy(self) -> bool:
        """True for a NumPy call (no tensor among the arguments)."""
        return not self.is_torch

    def tensor(self, x: Any, name: str, *, check_finite: bool = True) -> torch.Tensor:
        """Convert one argument to the call's dtype/device (autograd kept for tensors).

        Parameters
        ----------
        x : array_like or Tensor
        name : str
            Argument name for error messages.
        check_finite : bool, default True

        Returns
        -------
        Tensor

        Raises
        ------
        InputError
            As :func:`as_tensor`.
        """
        return as_tensor(x, name, dtype=self.dtype, device=self.device, check_finite=check_finite)

    def zeros(self, *shape: int) -> torch.Tensor:
        """A tensor of zeros of the call's dtype and device."""
        return torch.zeros(*shape, dtype=self.dtype, device=self.device)

    def ones(self, *shape: int) -> torch.Tensor:
        """A tensor of ones of the call's dtype and device."""
        return torch.ones(*shape, dtype=self.dtype, device=self.device)

    def scalar(self, value: float) -> torch.Tensor:
        """A 0-d tensor of the call's dtype and device."""
        return torch.as_tensor(value, dtype=self.dtype, device=self.device)

    def wrap(self, obj: Any) -> Any:
        """Return ``obj`` with every tensor converted to NumPy if this was a NumPy call.

        Handles tensors, tuples, named tuples, lists, dicts and dataclass instances (recursively);
        0-d tensors become Python numbers. Torch calls return ``obj`` unchanged.

        Parameters
        ----------
        obj : object

        Returns
        -------
        object
        """
        if self.is_torch:
            return obj
        return _convert(obj)


def _convert(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return to_numpy(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: _convert(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                   if f.init}
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_convert(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_convert(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _convert(v) for k, v in obj.items()}
    if isinstance(obj, numbers.Number) or obj is None:
        return obj
    return obj
