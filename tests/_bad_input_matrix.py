"""Machinery of the bad-input matrix (tests/test_bad_inputs.py; specs in _bad_input_specs.py).

In the spirit of PyTorch's ``OptimizerInfo`` / ``ErrorOptimizerInput`` database: ONE spec per
public callable gives a cheap valid call whose arguments are tagged with a ROLE (:class:`Arg`);
the bad inputs are generated from the roles (:data:`MUTATIONS`), not written by hand. Each
generated case has one expected outcome:

- ``"error"`` (the default): an :class:`measureflow.InputError` whose message names the mutated
  argument before its first ``": "`` (shape mutations may name any argument of the call, since a
  shape mismatch is a property of a pair);
- ``"ok"``: a documented valid edge case: the call returns, every float in the result is finite
  (unless the spec allows otherwise), and the spec's ``check`` passes;
- ``"propagate"`` (``ok={"nan": "propagate"}``): tensor kernels that do not scan their input
  (no hidden device sync) must return a non-finite output for a NaN/Inf input.

Everything else is a failure: a raw exception from inside the library (TypeError, RuntimeError,
IndexError, ZeroDivisionError, ...), an InputError that does not name the argument, a NaN/Inf
output, or a returned value for an invalid input (silently accepted).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from measureflow import InputError

# ------------------------------------------------------------------------------------------
# spec objects


class Arg:
    """An argument of a spec's valid call, tagged with its role.

    ``role``: key of :data:`MUTATIONS` (``None``: fixed, never mutated). ``optional``: ``None`` is
    a valid value (the mutation ``none`` is then expected to succeed). ``bad``: extra bad values
    (each expected to raise naming the argument). ``ok``: mutation name -> reason: documented
    valid edge cases (the call must succeed with finite output). ``skip``: mutation -> reason:
    not generated (e.g. a shape that this argument legitimately accepts). ``alias``: the name
    the error message uses when it differs from the parameter name.
    """

    def __init__(self, value, role: str | None, *, optional: bool = False, bad: tuple = (),
                 ok: dict | None = None, skip: dict | None = None, alias: str | None = None,
                 min: int = 1):
        self.value, self.role, self.optional = value, role, optional
        self.bad, self.ok, self.skip = tuple(bad), dict(ok or {}), dict(skip or {})
        self.alias, self.min = alias, min


@dataclasses.dataclass
class Spec:
    """One public callable: a valid call (args/kwargs with :class:`Arg` markers)."""

    target: str                      # dotted path under ``measureflow`` ("ot.solve")
    args: tuple
    kwargs: dict
    check: Callable | None = None    # check(result) for the valid call and "ok" cases
    finite: bool | tuple = True      # every float in the result must be finite (a tuple:
                                     # except these documented fields, e.g. an echoed p = inf)
    slow: bool = False
    mixed: bool = True               # generate the mixed float32/float64 torch call
    call: Callable | None = None     # call(fn, *args, **kwargs): e.g. use a method afterwards

    @property
    def fn(self):
        return resolve(self.target)


def S(_target: str, /, *args, _check=None, _finite=True, _slow=False, _mixed=True, _call=None,
      **kwargs) -> Spec:
    """A spec: ``S("ot.solve", Arg(...), ..., eps=Arg(...))``; options are underscored so that
    they never collide with the target's own keyword arguments."""
    return Spec(_target, args, kwargs, check=_check, finite=_finite, slow=_slow, mixed=_mixed,
                call=_call)


def resolve(target: str):
    obj = importlib.import_module("measureflow")
    path = "measureflow"
    for part in target.split("."):
        path += "." + part
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(path)
    return obj


# ------------------------------------------------------------------------------------------
# mutations by role: name -> function(value) -> bad value (or _SKIP)

_SKIP = object()
SHAPE = {"empty", "wrong_len", "wrong_ndim", "wrong_shape", "non_square", "ragged",
         "scalar_array"}


def _np(v):
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _like(v, arr):
    """``arr`` (NumPy) in the kind of ``v`` (tensor -> tensor of v's dtype)."""
    if isinstance(v, torch.Tensor):
        return torch.as_tensor(np.ascontiguousarray(arr), dtype=v.dtype)
    return arr


def _set(v, idx, val):
    a = np.array(_np(v), dtype=float, copy=True)
    a[idx] = val
    return _like(v, a)


def _first(a):
    return (0,) * max(np.ndim(a), 1) if np.ndim(a) else ()


def _meta(v):
    return torch.empty(tuple(np.shape(_np(v))), dtype=torch.float64, device="meta")


def _complex(v):
    a = _np(v).astype(np.complex128) + 1j
    return torch.as_tensor(a) if isinstance(v, torch.Tensor) else a


def _half(v):
    return torch.as_tensor(_np(v), dtype=torch.float16)


def _nonsym(v):
    a = np.array(_np(v), dtype=float, copy=True)
    if a.ndim < 2 or a.shape[-1] < 2:
        return _SKIP
    a[..., 0, -1] += 1.0 + abs(a).max()
    return _like(v, a)


def _nonpsd(v):
    a = np.array(_np(v), dtype=float, copy=True)
    if a.ndim < 2:
        return _SKIP
    n = a.shape[-1]
    return _like(v, a - (np.abs(np.linalg.eigvalsh(a)).max() + 1.0) * 2 * np.eye(n))


ARRAY = {
    "nan": lambda v: _set(v, _first(_np(v)), np.nan),
    "inf": lambda v: _set(v, _first(_np(v)), np.inf),
    "complex": _complex,
    "meta": _meta,
    "half": _half,
    "string": lambda v: "abc",
    "none": lambda v: None,
    "ragged": lambda v: [[1.0, 2.0], [3.0]],
}
MUTATIONS: dict[str, dict[str, Callable]] = {
    "points": {**ARRAY, "wrong_ndim": lambda v: _like(v, _np(v)[None, None]),
               "empty": lambda v: _like(v, _np(v)[:0])},
    "vector": {**ARRAY, "wrong_ndim": lambda v: _like(v, _np(v)[None, None]),
               "empty": lambda v: _like(v, _np(v)[:0])},
    "weights": {**ARRAY, "wrong_ndim": lambda v: _like(v, _np(v)[None]),
                "wrong_len": lambda v: _like(v, np.concatenate([_np(v), _np(v)[:1]])),
                "negative": lambda v: _set(v, 0, -1.0),
                "zero_mass": lambda v: _like(v, 0 * _np(v))},
    "cost": {**ARRAY, "wrong_ndim": lambda v: _like(v, _np(v)[0]),
             "wrong_shape": lambda v: _like(v, np.concatenate([_np(v), _np(v)[:1]]))},
    "matrix": {**ARRAY, "wrong_ndim": lambda v: _like(v, _np(v).reshape(-1))},
    "spd": {**ARRAY, "wrong_ndim": lambda v: _like(v, _np(v).reshape(-1)),
            "non_square": lambda v: _like(v, _np(v)[..., :-1, :]),
            "nonsym": _nonsym, "nonpsd": _nonpsd},
    "pos": {"zero": lambda v: 0.0, "negative": lambda v: -1.0, "nan": lambda v: math.nan,
            "inf": lambda v: math.inf, "string": lambda v: "1", "none": lambda v: None,
            "bool": lambda v: True, "complex": lambda v: 1j, "scalar_array": lambda v: [1.0, 2.0],
            "meta": lambda v: torch.tensor(1.0, device="meta")},
    "nonneg": {"negative": lambda v: -1.0, "nan": lambda v: math.nan, "inf": lambda v: math.inf,
               "string": lambda v: "1", "bool": lambda v: True, "complex": lambda v: 1j},
    "prob": {"negative": lambda v: -0.1, "above": lambda v: 1.5, "nan": lambda v: math.nan,
             "string": lambda v: "0.5"},
    "real": {"nan": lambda v: math.nan, "string": lambda v: "1", "complex": lambda v: 1j},
    "count": {"zero": lambda v: 0, "negative": lambda v: -1, "float": lambda v: 2.5,
              "bool": lambda v: True, "string": lambda v: "3", "none": lambda v: None},
    "seed": {"negative": lambda v: -1, "float": lambda v: 2.5, "string": lambda v: "x"},
    "choice": {"unknown": lambda v: "bogus", "int": lambda v: 3},
    "callable": {"int": lambda v: 3, "string": lambda v: "f"},
    "tensor_points": {"nan": lambda v: _set(v, _first(_np(v)), np.nan),
                      "inf": lambda v: _set(v, _first(_np(v)), np.inf),
                      "complex": _complex, "meta": _meta, "half": _half,
                      "string": lambda v: "abc", "none": lambda v: None},
}


# ------------------------------------------------------------------------------------------
# running a case


@dataclasses.dataclass
class Case:
    spec: Spec
    arg: str           # parameter name mutated ("" for the valid call)
    mutation: str
    expect: str        # "error" | "ok" | "propagate" (NaN in -> NaN out, tensor kernels)
    args: tuple
    kwargs: dict
    alias: str | None = None
    reason: str = ""
    check: Callable | None = None      # check(result) for an "ok" case (its correct value)

    @property
    def id(self) -> str:
        return f"{self.spec.target}[{self.arg}:{self.mutation}]" if self.arg else \
            f"{self.spec.target}[valid]"


def _param_names(fn) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _positional_names(fn, n: int) -> list[str]:
    names = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names.extend(f"{p.name}[{k}]" for k in range(n - len(names)))
    return names[:n]


def _plain(x):
    return x.value if isinstance(x, Arg) else x


def _swap(spec: Spec, where, new):
    args = tuple(new if i == where else _plain(a) for i, a in enumerate(spec.args))
    kwargs = {k: (new if k == where else _plain(v)) for k, v in spec.kwargs.items()}
    return args, kwargs


def _tagged(spec: Spec):
    """(key, parameter name, Arg) for every tagged argument of the spec."""
    names = _positional_names(spec.fn, len(spec.args))
    out = [(i, names[i], a) for i, a in enumerate(spec.args) if isinstance(a, Arg)]
    out += [(k, k, a) for k, a in spec.kwargs.items() if isinstance(a, Arg)]
    return out


def _is_array(v) -> bool:
    return isinstance(v, torch.Tensor) or (isinstance(v, np.ndarray) and v.dtype.kind == "f")


def cases(spec: Spec) -> list[Case]:
    valid = _swap(spec, None, None)
    out = [Case(spec, "", "valid", "ok", *valid)]
    for key, name, a in _tagged(spec):
        if a.role is None:
            continue
        muts = dict(MUTATIONS[a.role])
        for k, b in enumerate(a.bad):
            muts[f"bad{k}"] = (lambda v, b=b: b)
        for m, make in muts.items():
            if m in a.skip or (a.role == "count" and m == "zero" and a.min <= 0) or \
                    (a.role == "count" and m == "negative" and a.min < 0):
                continue
            new = make(a.value)
            if new is _SKIP:
                continue
            expect, reason, check = "error", "", None
            if m in a.ok:
                reason = a.ok[m]
                if isinstance(reason, tuple):          # (reason, check(result))
                    reason, check = reason
                expect = "propagate" if reason == "propagate" else "ok"
            elif m == "none" and a.optional:
                expect, reason = "ok", "optional argument"
            out.append(Case(spec, name, m, expect, *_swap(spec, key, new), alias=a.alias,
                            reason=reason, check=check))
    # mixed float32/float64: every float array as a float64 tensor, the LAST one float32 (the
    # documented rule: the first floating tensor fixes the compute dtype, others are converted)
    arrays = [(key, name, a) for key, name, a in _tagged(spec)
              if a.role in ("points", "vector", "weights", "cost", "matrix", "spd") and
              _is_array(a.value)]
    if spec.mixed and len(arrays) >= 2:
        args, kwargs = list(spec.args), dict(spec.kwargs)
        for j, (key, _name, a) in enumerate(arrays):
            t = torch.as_tensor(_np(a.value), dtype=torch.float32 if j == len(arrays) - 1
                                else torch.float64)
            if isinstance(key, int):
                args[key] = t
            else:
                kwargs[key] = t
        spec2 = dataclasses.replace(spec, args=tuple(args), kwargs=kwargs)
        a2, k2 = _swap(spec2, None, None)
        out.append(Case(spec, arrays[-1][1], "mixed_f32_f64", "ok", a2, k2,
                        reason="first floating tensor fixes the dtype", check=_no_float32))
    return out


def _floats(obj, depth=0, skip=()):
    """Every float tensor / array / number inside ``obj`` (dataclasses, tuples, dicts)."""
    if depth > 6:
        return
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.device.type != "meta":
            yield obj.detach().to(torch.float64).cpu().numpy()
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f":
            yield obj
    elif isinstance(obj, float):
        yield np.asarray(obj)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if f.name in ("errors",) or f.name in skip:   # traces may start at inf
                continue
            yield from _floats(getattr(obj, f.name), depth + 1, skip)
    elif isinstance(obj, (tuple, list)) and not isinstance(obj, str):
        for v in obj[:64]:
            yield from _floats(v, depth + 1, skip)
    elif isinstance(obj, dict):
        for k, v in list(obj.items())[:64]:
            if k not in skip:
                yield from _floats(v, depth + 1, skip)


def names_argument(msg: str, names: set[str]) -> bool:
    head = msg.split(": ", 1)[0] if ": " in msg else msg
    tokens = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", head))
    return bool(tokens & names)


def run_case(case: Case) -> str | None:
    """None if the case behaves as expected, else a one-line description of the failure."""
    spec = case.spec
    fn = spec.fn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if spec.call is not None:
                res = spec.call(fn, *case.args, **case.kwargs)
            else:
                res = fn(*case.args, **case.kwargs)
        except InputError as exc:
            if case.expect == "ok":
                return f"{case.id}: InputError on a valid edge case ({case.reason}): {exc}"
            want = {case.alias or case.arg.split("[")[0]}
            if case.mutation in SHAPE or case.mutation.startswith("bad"):
                want |= set(_param_names(fn))
            if not names_argument(str(exc), want):
                return f"{case.id}: InputError does not name {sorted(want)[:4]}: {exc}"
            return None
        except Exception as exc:  # noqa: BLE001 - the point of the matrix
            return f"{case.id}: raw {type(exc).__name__}: {str(exc)[:160]}"
    if case.expect == "error":
        return f"{case.id}: accepted silently (returned {type(res).__name__})"
    if case.expect == "propagate":
        if all(np.all(np.isfinite(arr)) for arr in _floats(res)):
            return f"{case.id}: a NaN/Inf input gave a finite output"
        return None
    if spec.finite:
        skip = spec.finite if isinstance(spec.finite, tuple) else ()
        for arr in _floats(res, skip=skip):
            if not np.all(np.isfinite(arr)):
                return f"{case.id}: non-finite output ({case.reason or 'valid call'})"
    for check in (spec.check, case.check):
        if check is not None:
            try:
                check(res)
            except AssertionError as exc:
                return f"{case.id}: check failed ({case.reason or 'valid call'}): {exc}"
    return None


def _no_float32(res):
    """Mixed float32/float64 tensors: the float64 tensor came first, so nothing is float32."""
    def tensors(obj, depth=0):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif depth < 4 and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                yield from tensors(getattr(obj, f.name), depth + 1)
        elif depth < 4 and isinstance(obj, (tuple, list)):
            for v in obj[:16]:
                yield from tensors(v, depth + 1)
    bad = [tuple(t.shape) for t in tensors(res) if t.dtype == torch.float32]
    assert not bad, f"float32 outputs {bad} although the first tensor was float64"


def run_spec(spec: Spec) -> list[str]:
    return [f for f in map(run_case, cases(spec)) if f is not None]


# ------------------------------------------------------------------------------------------
# what must be covered


def exported_callables(packages) -> dict[int, tuple[str, Any]]:
    """id(obj) -> (first dotted name, obj) for every callable in the ``__all__`` of the
    packages and of the submodules they export."""
    out: dict[int, tuple[str, Any]] = {}
    seen: set[str] = set()

    def walk(modname: str):
        if modname in seen:
            return
        seen.add(modname)
        mod = importlib.import_module("measureflow." + modname)
        for n in getattr(mod, "__all__", []):
            obj = getattr(mod, n)
            if inspect.ismodule(obj):
                if obj.__name__.startswith("measureflow."):
                    walk(obj.__name__[len("measureflow."):])
                continue
            if callable(obj) and id(obj) not in out:
                out[id(obj)] = (f"{modname}.{n}", obj)

    for p in packages:
        walk(p)
    return out
