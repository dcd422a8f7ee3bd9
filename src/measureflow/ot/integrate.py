"""One ODE stepper and one particle-flow driver for every flow of the library.

Every time integration in measureflow (Wasserstein particle flows, Schatten-normalized flows,
the particle Transformer PDE, the Gaussian moment ODEs, the modal ODE of linear networks, the
intrinsic dynamics of conservation laws) runs on the pieces of this module:

* :func:`ode_step` -- one step of explicit Euler (order 1), classical Runge-Kutta ``"rk4"``
  (order 4) or Dormand-Prince ``"dopri5"`` (order 5 with an embedded order-4 error estimate;
  Dormand & Prince, J. Comput. Appl. Math. 6, 1980; Hairer, Norsett & Wanner, *Solving
  Ordinary Differential Equations I*, Sec. II.5), for a right-hand side ``rhs(t, y)`` whose
  state ``y`` is a tensor or a tuple of tensors (NumPy arrays work too: only ``+`` and ``*`` are
  used). Tensor-only: no validation, meant for inner loops.
* :func:`odeint` -- the driver: fixed steps or an adaptive step with error control, an
  optional projection / retraction after each step (and optionally after each stage),
  additive noise (Euler-Maruyama), recording every ``record_every`` steps, blow-up detection, a
  stopping rule on the size of the right-hand side, and a callback. It returns an
  :class:`ODEResult` named like every flow result of the library: ``final``, ``trajectory``,
  ``times`` (plus ``converged``, ``n_iter``, ``errors`` from :class:`~measureflow.core.SolverResult`).
* :class:`ParticleFlow` -- a particle system (positions (n, d) and weights (n,)) moved by a
  velocity field ``velocity(x, w)``, with ``step`` / ``steps`` on top of :func:`odeint`;
  :func:`autograd_force` turns an energy F(x, w) into the Wasserstein force grad_x F / w.
* Projections: :func:`project_sphere`, :func:`project_layernorm`, :func:`symmetrize`,
  :func:`project_psd`, :func:`project_nonnegative` (the rank-loss projection of the modal ODE),
  and :func:`sphere_tangent` for velocities.

Conventions: a time step is ``step`` (h); times are t0 + k h for fixed steps; the state recorded
at index 0 is the initial state (after no projection: project it yourself if it must lie on
the constraint set). Written by hand in torch (the Butcher tableaus are textbook facts).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from ..core.arrays import check_tensor_kind
from ..core.errors import ConvergenceWarning, InputError
from ..core.progress import Monitor, check_callback
from ..core.results import SolverResult
from ..core.validation import (
    check_choice,
    check_finite,
    check_int,
    check_ndim,
    check_nonnegative_scalar,
    check_positive,
    check_weights,
)

__all__ = ["METHODS", "ORDERS", "ode_step", "odeint", "ODEResult", "FlowResult", "StepInfo",
           "ParticleFlow", "autograd_force", "project_sphere", "project_layernorm",
           "symmetrize", "project_psd", "project_nonnegative", "sphere_tangent",
           "resolve_projection", "PROJECTIONS", "result_alias"]

METHODS = ("euler", "rk4", "dopri5")
ORDERS = {"euler": 1, "rk4": 4, "dopri5": 5}


# ----------------------------------------------------------------------------------------------
# states: a tensor or a tuple of tensors
# ----------------------------------------------------------------------------------------------


def _is_tuple(y) -> bool:
    return isinstance(y, (tuple, list))


def _map(f, *ys):
    if _is_tuple(ys[0]):
        return tuple(f(*parts) for parts in zip(*ys))
    return f(*ys)


def _leaves(y):
    return tuple(y) if _is_tuple(y) else (y,)


def _axpy(y, a, k):
    """y + a k (a a scalar) over tuples."""
    return _map(lambda u, v: u + a * v, y, k)


def _all_finite(y) -> bool:
    for v in _leaves(y):
        if isinstance(v, torch.Tensor):
            if not bool(torch.isfinite(v).all()):
                return False
        elif not np.all(np.isfinite(v)):
            return False
    return True


def _max_abs(y) -> float:
    out = 0.0
    for v in _leaves(y):
        if isinstance(v, torch.Tensor):
            if v.numel():
                out = max(out, float(v.detach().abs().max()))
        elif np.size(v):
            out = max(out, float(np.max(np.abs(v))))
    return out


def _stack(items):
    first = items[0]
    if _is_tuple(first):
        return tuple(_stack([it[i] for it in items]) for i in range(len(first)))
    if isinstance(first, torch.Tensor):
        return torch.stack(list(items))
    if isinstance(first, np.ndarray):
        return np.stack(items)
    return items


def _check_state(y, name: str):
    """A state is a float tensor / NumPy array / real number, or a tuple of those; finite."""
    leaves = _leaves(y)
    if not leaves:
        raise InputError(f"{name}: empty state tuple")
    for v in leaves:
        if isinstance(v, torch.Tensor):
            check_tensor_kind(v, name)
            if not v.is_floating_point():
                raise InputError(f"{name}: expected a floating state, got dtype {v.dtype}")
            check_finite(v, name)
        elif isinstance(v, np.ndarray) or (isinstance(v, numbers.Real)
                                             and not isinstance(v, bool)):
            if np.asarray(v).dtype.kind not in "fiu":
                raise InputError(f"{name}: expected real numbers, got dtype {np.asarray(v).dtype}")
            if not np.all(np.isfinite(v)):
                raise InputError(f"{name}: contains NaN or Inf")
        else:
            raise InputError(f"{name}: expected a tensor, a NumPy array or a tuple of them, "
                             f"got {type(v).__name__}")
    return y


def _like(y):
    """(dtype, device, is_torch) of the first leaf."""
    v = _leaves(y)[0]
    if isinstance(v, torch.Tensor):
        return v.dtype, v.device, True
    return None, None, False


def _apply_projection(project, y):
    if project is None:
        return y
    if _is_tuple(project):
        return tuple(v if p is None else p(v) for p, v in zip(project, y))
    return project(y)


# ----------------------------------------------------------------------------------------------
# projections / retractions
# ----------------------------------------------------------------------------------------------


def project_sphere(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (..., d) divided by their Euclidean norm (retraction onto the unit sphere).

    Parameters
    ----------
    x : Tensor
        (..., d); zero rows stay zero (the norm is clamped at 1e-300).

    Returns
    -------
    Tensor
        Same shape, rows of unit norm.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.integrate import project_sphere
    >>> project_sphere(torch.tensor([[3.0, 4.0]], dtype=torch.float64)).tolist()
    [[0.6, 0.8]]
    """
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def sphere_tangent(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """v - ``<v, x>`` x: the projection of velocities v onto the tangent space at unit rows x.

    Parameters
    ----------
    v : Tensor
        Velocities (..., d).
    x : Tensor
        Unit rows (..., d) (points of the sphere).

    Returns
    -------
    Tensor
        Tangent velocities, ``<result_i, x_i>`` = 0.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.integrate import sphere_tangent
    >>> sphere_tangent(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 1.0]])).tolist()
    [[1.0, 0.0]]
    """
    return v - (v * x).sum(-1, keepdim=True) * x


def project_layernorm(x: torch.Tensor) -> torch.Tensor:
    """Layer norm without gain: (x - mean of its coordinates) / std of its coordinates, per row.

    The standard deviation is the population one (divisor d); constant rows map to 0.

    Parameters
    ----------
    x : Tensor
        (..., d).

    Returns
    -------
    Tensor
        Rows of zero mean and unit mean square.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.integrate import project_layernorm
    >>> project_layernorm(torch.tensor([[1.0, 3.0]], dtype=torch.float64)).tolist()
    [[-1.0, 1.0]]
    """
    xc = x - x.mean(-1, keepdim=True)
    return xc / xc.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-300)


def symmetrize(S: torch.Tensor) -> torch.Tensor:
    """(S + S^T) / 2 over the last two dimensions.

    Parameters
    ----------
    S : Tensor
        (..., d, d).

    Returns
    -------
    Tensor
        The symmetric part of S.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.integrate import symmetrize
    >>> symmetrize(torch.tensor([[1.0, 2.0], [0.0, 1.0]])).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    return 0.5 * (S + S.transpose(-1, -2))


def project_psd(S: torch.Tensor, floor: float = 1e-14) -> torch.Tensor:
    """Projection onto {S symmetric, eigenvalues >= floor}: eigenvalues of (S + S^T)/2 clamped.

    For floor = 0 this is the nearest PSD matrix in Frobenius norm; the result is exactly
    symmetric.

    Parameters
    ----------
    S : Tensor
        (..., d, d).
    floor : float, default 1e-14
        Lower bound of the eigenvalues.

    Returns
    -------
    Tensor
        (..., d, d) symmetric with eigenvalues >= floor.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.integrate import project_psd
    >>> S = project_psd(torch.tensor([[1.0, 0.0], [0.0, -2.0]], dtype=torch.float64), floor=0.0)
    >>> (S + 0.0).tolist()
    [[1.0, 0.0], [0.0, 0.0]]
    """
    ev, U = torch.linalg.eigh(symmetrize(S))
    return symmetrize((U * ev.clamp_min(floor).unsqueeze(-2)) @ U.transpose(-1, -2))


def project_nonnegative(a):
    """max(a, 0) entrywise (tensor or NumPy array): extinct modes / masses stay at 0.

    Parameters
    ----------
    a : Tensor or ndarray

    Returns
    -------
    Tensor or ndarray
        The same kind as ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> from measureflow.ot.integrate import project_nonnegative
    >>> project_nonnegative(np.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    if isinstance(a, torch.Tensor):
        return a.clamp_min(0.0)
    return np.clip(a, 0, None)


PROJECTIONS = {"sphere": project_sphere, "layernorm": project_layernorm, "sym": symmetrize,
               "psd": project_psd, "nonnegative": project_nonnegative}


def resolve_projection(project, name: str = "project"):
    """None, a name among :data:`PROJECTIONS`, a callable, or a tuple of those (per component).

    Parameters
    ----------
    project : None or str or callable or tuple
        ``"sphere"``, ``"layernorm"``, ``"sym"``, ``"psd"``, ``"nonnegative"``, a callable
        ``project(y) -> y``, or a tuple of those for a tuple state.
    name : str, default "project"
        Argument name used in error messages.

    Returns
    -------
    None or callable or tuple
        The projection function(s).

    Raises
    ------
    InputError
        An unknown name or an object of another type.

    Examples
    --------
    >>> from measureflow.ot.integrate import project_sphere, resolve_projection
    >>> resolve_projection("sphere") is project_sphere, resolve_projection(None)
    (True, None)
    """
    if project is None or callable(project):
        return project
    if isinstance(project, str):
        return PROJECTIONS[check_choice(project, name, tuple(PROJECTIONS))]
    if _is_tuple(project):
        return tuple(resolve_projection(p, name) for p in project)
    raise InputError(f"{name}: expected None, a name in {sorted(PROJECTIONS)}, a callable or a "
                     f"tuple of those, got {type(project).__name__}")


# ----------------------------------------------------------------------------------------------
# one step
# ----------------------------------------------------------------------------------------------

# Dormand-Prince 5(4) tableau (FSAL: the 7th stage is the next step's first).
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
# b5 - b4: weights of the error estimate y5 - y4
_DP_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


def _combine(y, h, coeffs, ks):
    acc = None
    for c, k in zip(coeffs, ks):
        if c == 0.0:
            continue
        acc = _map(lambda u, c=c: c * u, k) if acc is None else _axpy(acc, c, k)
    return y if acc is None else _axpy(y, h, acc)


def _dopri5(rhs, t, y, h, k1, stage):
    ks = [k1]
    for i in range(1, 7):
        yi = stage(_combine(y, h, _DP_A[i], ks))
        ks.append(rhs(t + _DP_C[i] * h, yi))
    y5 = stage(_combine(y, h, _DP_A[6], ks[:6]))  # == the 7th stage's argument
    err = _combine(_map(lambda u: 0 * u, y), h, _DP_E, ks)
    return y5, err, ks[6]


def ode_step(rhs: Callable, t: float, y, h: float, method: str = "rk4", *, k1=None,
             stage_project: Callable | None = None):
    """One explicit step y(t) -> y(t + h) of dy/dt = rhs(t, y) (tensor-only, no validation).

    ``"euler"``: y + h k1; ``"rk4"``: the classical Runge-Kutta step y + h/6 (k1 + 2 k2 + 2 k3 +
    k4) with k2 = rhs(t + h/2, y + h/2 k1), k3 = rhs(t + h/2, y + h/2 k2), k4 = rhs(t + h, y +
    h k3); ``"dopri5"``: the order-5 Dormand-Prince solution (its error estimate is used by
    :func:`odeint`; Hairer, Norsett & Wanner, Sec. II.5).

    Parameters
    ----------
    rhs : callable
        ``rhs(t, y)`` returning the structure of ``y``.
    t : float
        Current time.
    y : Tensor or tuple of Tensors or ndarray
        Current state (only ``+`` and ``*`` are used).
    h : float
        Step size.
    method : {"euler", "rk4", "dopri5"}, default "rk4"
    k1 : optional
        ``rhs(t, y)`` if already known (saves one evaluation).
    stage_project : callable, optional
        Applied to every intermediate stage state (projected Runge-Kutta, e.g. to keep
        particles on a sphere); the returned state is NOT projected.

    Returns
    -------
    Tensor or tuple or ndarray
        y(t + h), same structure as ``y``.

    Raises
    ------
    InputError
        Unknown ``method``.

    Examples
    --------
    One RK4 step of y' = y is the degree-4 Taylor polynomial of exp(h):

    >>> from measureflow.ot.integrate import ode_step
    >>> h = 0.1
    >>> y1 = ode_step(lambda t, y: y, 0.0, 1.0, h)
    >>> abs(y1 - (1 + h + h**2 / 2 + h**3 / 6 + h**4 / 24)) < 1e-15
    True

    References
    ----------
    E. Hairer, S. P. Norsett, G. Wanner, *Solving Ordinary Differential Equations I*, Springer,
    1993, Sec. II.1 and II.5. J. R. Dormand, P. J. Prince, "A family of embedded Runge-Kutta
    formulae", J. Comput. Appl. Math. 6(1), 1980.
    """
    if k1 is None:
        k1 = rhs(t, y)
    if method == "euler":
        return _axpy(y, h, k1)
    stage = (lambda z: z) if stage_project is None else stage_project
    if method == "rk4":
        k2 = rhs(t + 0.5 * h, stage(_axpy(y, 0.5 * h, k1)))
        k3 = rhs(t + 0.5 * h, stage(_axpy(y, 0.5 * h, k2)))
        k4 = rhs(t + h, stage(_axpy(y, h, k3)))
        s = _map(lambda a, b, c, d: a + 2 * b + 2 * c + d, k1, k2, k3, k4)
        return _axpy(y, h / 6, s)
    if method == "dopri5":
        return _dopri5(rhs, t, y, h, k1, stage)[0]
    raise InputError(f"method: must be one of {METHODS}, got {method!r}")


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------


def result_alias(field: str, index: int | None = None, doc: str = "") -> property:
    """A read-only property ``getattr(self, field)[index]``: old names of result fields.

    Used to keep the names results had before they were unified on ``final`` / ``trajectory``
    / ``times`` (e.g. ``means = result_alias("trajectory", 0)``).

    Parameters
    ----------
    field : str
        Name of the attribute aliased.
    index : int, optional
        Item of that attribute (``None``: the attribute itself).
    doc : str, default ""
        Extra text of the property's docstring.

    Returns
    -------
    property

    Examples
    --------
    >>> from measureflow.ot.integrate import result_alias
    >>> class R:
    ...     trajectory = ([1, 2], [3, 4])
    ...     means = result_alias("trajectory", 0)
    >>> R().means
    [1, 2]
    """
    def get(self):
        value = getattr(self, field)
        return value if index is None else value[index]

    where = field if index is None else f"{field}[{index}]"
    get.__doc__ = f"Alias of ``{where}``" + (f" ({doc})." if doc else ".")
    return property(get)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlowResult(SolverResult):
    """Base of every flow result: ``final`` state, recorded ``trajectory`` and ``times``.

    Attributes
    ----------
    final : Tensor or ndarray or tuple
        The last state (recorded too).
    trajectory : Tensor or ndarray or tuple
        The recorded states stacked along a new first axis (a tuple of stacked components for
        tuple states).
    times : Tensor or ndarray
        (n_rec,) times of the recorded states.
    converged, n_iter, errors :
        As in :class:`~measureflow.core.results.SolverResult`: for a fixed horizon
        ``converged=True`` unless the integration stopped early (blow-up, ``max_iter``, a
        callback stop before the horizon).
    """

    final: Any = None
    trajectory: Any = None
    times: Any = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ODEResult(FlowResult):
    """Result of :func:`odeint`.

    Attributes
    ----------
    final, trajectory, times, converged, n_iter, errors :
        As in :class:`FlowResult`; ``n_iter`` is the number of steps taken. ``errors``: the
        stopping residual per step when ``tol`` is given; for ``"dopri5"`` the scaled local
        error estimate of each accepted step.
    status : str
        ``"final_time"`` (horizon reached), ``"converged"`` (the stopping rule |rhs| <= tol
        held), ``"stopped"`` (the callback asked to stop), ``"blow-up"`` (non-finite state, or
        max |y| > blowup, with ``on_blowup="stop"``: ``final`` is the last finite state),
        ``"max_iter"``.
    observations : dict
        The ``observe`` outputs at the recorded states, stacked.
    aux : list
        The right-hand side's auxiliary outputs at the recorded states (``has_aux=True``).
    n_eval : int
        Number of right-hand side evaluations.
    steps : list of float
        Accepted step sizes (adaptive method only, else empty).

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.integrate import odeint
    >>> res = odeint(lambda t, y: -y, torch.ones(1, dtype=torch.float64), step=0.5, n_steps=2,
    ...              method="euler")
    >>> res.status, res.n_iter, res.n_eval, res.times.tolist(), res.trajectory.ravel().tolist()
    ('final_time', 2, 2, [0.0, 0.5, 1.0], [1.0, 0.5, 0.25])
    """

    status: str = "final_time"
    observations: dict = dataclasses.field(default_factory=dict)
    aux: list = dataclasses.field(default_factory=list)
    n_eval: int = 0
    steps: list = dataclasses.field(default_factory=list)


class StepInfo(NamedTuple):
    """What a ``callback`` of :func:`odeint` receives after each accepted step.

    The fields common to every solver's callback state are there too: ``iteration`` (= ``k``),
    ``error``, ``iterate`` (= ``y``) and ``label``.

    Attributes
    ----------
    k : int
        Steps done.
    t : float
        Current time.
    y : Tensor or tuple or ndarray
        Current state (after projection).
    h : float
        Size of the step just taken.
    error : float
        The entry of the result's ``errors`` measured at this state: the stopping residual
        with ``tol``, the scaled local error estimate of the step for ``"dopri5"``, NaN for a
        fixed-step integration without ``tol`` (which records no errors).
    label : str
        Empty (the integration's ``name`` titles the progress bar).

    Examples
    --------
    Stop after three steps (before the horizon: not converged, with a ConvergenceWarning):

    >>> import warnings
    >>> import torch
    >>> from measureflow.ot.integrate import odeint
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     res = odeint(lambda t, y: -y, torch.ones(1), step=0.1, n_steps=10,
    ...                  callback=lambda info: info.k >= 3)
    >>> res.status, res.n_iter, res.converged
    ('stopped', 3, False)
    """

    k: int          # steps done
    t: float        # current time
    y: Any          # current state (after projection)
    h: float        # size of the step just taken
    error: float = math.nan
    label: str = ""

    @property
    def iteration(self) -> int:
        """Steps done (alias of ``k``)."""
        return self.k

    @property
    def iterate(self):
        """The current state (alias of ``y``)."""
        return self.y


# ----------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------


def _default_residual(t, y, dy) -> float:
    return _max_abs(dy)


def _error_norm(err, y0, y1, rtol, atol) -> float:
    tot, cnt = 0.0, 0
    for e, a, b in zip(_leaves(err), _leaves(y0), _leaves(y1)):
        if isinstance(e, torch.Tensor):
            sc = atol + rtol * torch.maximum(a.detach().abs(), b.detach().abs())
            tot += float(((e.detach() / sc) ** 2).sum())
            cnt += e.numel()
        else:
            sc = atol + rtol * np.maximum(np.abs(a), np.abs(b))
            tot += float(np.sum((np.asarray(e) / sc) ** 2))
            cnt += np.size(e)
    return math.sqrt(tot / max(cnt, 1))


def odeint(rhs: Callable, y0, *, step: float | None = None, n_steps: int | None = None,
              T: float | None = None, t0: float = 0.0, method: str = "rk4",
              project=None, project_stages: bool = False, noise: Callable | None = None,
              record_every: int = 1, observe: Callable | None = None, has_aux: bool = False,
              callback: Callable | None = None, verbose: bool = False,
              tol: float | None = None,
              residual: Callable | None = None, max_iter: int | None = None,
              rtol: float = 1e-6, atol: float = 1e-9, blowup: float | None = None,
              on_blowup: str = "raise", name: str = "odeint") -> ODEResult:
    """Integrate dy/dt = rhs(t, y) from y(t0) = y0 with one of :data:`METHODS`.

    Fixed step (``"euler"``, ``"rk4"``): ``step`` h with ``n_steps`` steps, or ``T`` with ``step``
    (then n = ceil(T / step) steps of size T / n), or ``n_steps`` and ``T`` (h = T / n), or
    ``tol`` with ``max_iter`` (run until the stopping rule holds). Adaptive (``"dopri5"``): ``T``
    required, ``step`` the first trial step (default T / 100), local error control
    ||err / (atol + rtol max(|y_k|, |y_k+1|))||_RMS <= 1 with the usual controller
    h <- h min(5, max(0.2, 0.9 err^{-1/5})); ``max_iter`` caps the number of steps.

    After each step: ``noise(t, y, h)`` is added if given (Euler-Maruyama for additive noise:
    return sqrt(2 h T) xi for temperature T), then ``project`` (None, a name of
    :data:`PROJECTIONS`, a callable, or a tuple of those for a tuple state) is applied; with
    ``project_stages`` it is applied to the Runge-Kutta stage states too. The state is then
    checked: non-finite, or max |y| > ``blowup``, is a blow-up: FloatingPointError
    (``on_blowup="raise"``) or a result with ``status="blow-up"``, ``converged=False`` and a
    ConvergenceWarning (``"stop"``).

    Recording: the initial state, every ``record_every``-th state and the last one.
    ``observe(t, y) -> dict`` is evaluated at each recorded state; with ``has_aux=True``
    ``rhs`` returns ``(dy, aux)`` and the ``aux`` of the recorded states is kept (no extra
    evaluation except at the last state). Stopping rule: with ``tol``, the integration stops
    (``status="converged"``) at the first state where ``residual(t, y, dy)`` (default
    max |dy|) <= tol, checked at the start and after each step on the first stage of the
    next step (so ``errors[i]`` is the residual of the i-th state, the returned one
    included). ``callback(StepInfo)`` returning True stops (``status="stopped"``). Reaching ``max_iter`` without a horizon
    (``T``/``n_steps``) gives ``converged=False`` and a ConvergenceWarning; so does a
    callback stop before the horizon is reached or the stopping rule holds.

    Parameters
    ----------
    rhs : callable
        ``rhs(t, y)`` returning dy/dt with the structure of ``y`` (or ``(dy, aux)`` with
        ``has_aux``).
    y0 : Tensor or tuple of Tensors or ndarray
        Initial state (finite).
    step, n_steps, T : optional
        Step size, number of steps and horizon; see the combinations above.
    t0 : float, default 0
        Initial time.
    method : {"euler", "rk4", "dopri5"}, default "rk4"
    project : None or str or callable or tuple
        Projection after each step (:func:`resolve_projection`).
    project_stages : bool, default False
        Also project the Runge-Kutta stage states.
    noise : callable, optional
        ``noise(t, y, h)``, additive increment per step.
    record_every : int, default 1
        Record every k-th state (plus the first and the last).
    observe : callable, optional
        ``observe(t, y) -> dict`` at the recorded states.
    has_aux : bool, default False
        ``rhs`` returns ``(dy, aux)``.
    callback : callable, optional
        ``callback(StepInfo) -> bool | None`` after each step (``StepInfo.error`` the entry
        just appended to ``errors``, NaN when none is recorded); True stops after that step,
        with ``converged`` True only if the horizon was reached or the stopping rule held
        (docs/ot.md, "Progress and callbacks").
    verbose : bool, default False
        Show a progress bar on stderr (advancing with the time of a fixed horizon, else on a
        log scale of the residual towards ``tol``).
    tol : float, optional
        Stopping rule residual(t, y, dy) <= tol.
    residual : callable, optional
        ``residual(t, y, dy) -> float`` (default max |dy|).
    max_iter : int, optional
        Cap on the number of steps.
    rtol, atol : float, default 1e-6, 1e-9
        Error control of ``"dopri5"``.
    blowup : float, optional
        Threshold on max |y| treated as a blow-up.
    on_blowup : {"raise", "stop"}, default "raise"
    name : str, default "odeint"
        Name used in warnings and errors.

    Returns
    -------
    ODEResult
        ``final``, ``trajectory``, ``times`` (a tensor, NumPy for NumPy states), ``status``,
        ``observations``, ``aux``, ``n_iter`` (steps taken), ``n_eval``, ``converged``,
        ``errors``.

    Raises
    ------
    InputError
        ``rhs`` not callable, a non-finite ``y0``, an inconsistent or non-positive
        ``step`` / ``n_steps`` / ``T``, a bad ``method``, ``project``, ``tol``, ``rtol``,
        ``atol``, ``blowup``, ``max_iter`` or ``on_blowup``.
    FloatingPointError
        A blow-up with ``on_blowup="raise"``.

    Examples
    --------
    RK4 on y' = -y over [0, 1] (global error O(h^4)):

    >>> import math
    >>> import torch
    >>> from measureflow.ot.integrate import odeint
    >>> res = odeint(lambda t, y: -y, torch.ones(1, dtype=torch.float64), step=0.1,
    ...              n_steps=10)
    >>> abs(float(res.final[0]) - math.exp(-1.0)) < 1e-6
    True

    Adaptive Dormand-Prince on the harmonic oscillator (x, v)' = (v, -x), one period:

    >>> y0 = (torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    >>> res = odeint(lambda t, y: (y[1], -y[0]), y0, T=2 * math.pi, method="dopri5",
    ...              rtol=1e-6, atol=1e-12)
    >>> abs(float(res.final[0][0]) - 1.0) < 1e-5, res.status
    (True, 'final_time')

    References
    ----------
    E. Hairer, S. P. Norsett, G. Wanner, *Solving Ordinary Differential Equations I*, Springer,
    1993, Sec. II.4 (step-size control) and II.5.
    """
    method = check_choice(method, "method", METHODS)
    if not callable(rhs):
        raise InputError(f"rhs: expected a callable rhs(t, y), got {type(rhs).__name__}")
    _check_state(y0, "y0")
    record_every = check_int(record_every, "record_every", min_value=1)
    on_blowup = check_choice(on_blowup, "on_blowup", ("raise", "stop"))
    project = resolve_projection(project)
    stage_project = None
    if project_stages and project is not None:
        stage_project = lambda z: _apply_projection(project, z)  # noqa: E731
    if tol is not None:
        tol = check_nonnegative_scalar(tol, "tol")
    if blowup is not None:
        blowup = check_positive(blowup, "blowup", allow_inf=True)
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter", min_value=0)
    callback = check_callback(callback)
    residual = _default_residual if residual is None else residual
    t0 = float(t0)
    adaptive = method == "dopri5"
    if adaptive:
        if T is None:
            raise InputError("T: required by the adaptive method 'dopri5'")
        T = check_positive(T, "T")
        rtol = check_positive(rtol, "rtol")
        atol = check_nonnegative_scalar(atol, "atol")
        h = T / 100 if step is None else min(check_positive(step, "step"), T)
        horizon = None
        cap = 100_000 if max_iter is None else max_iter
    else:
        if T is not None:
            T = check_positive(T, "T")
            if n_steps is None:
                if step is None:
                    raise InputError("step: required with T (or give n_steps)")
                n_steps = max(1, math.ceil(T / check_positive(step, "step") - 1e-12))
            n_steps = check_int(n_steps, "n_steps", min_value=1)
            h = T / n_steps
        else:
            if step is None:
                raise InputError("step: required for a fixed-step method")
            h = check_positive(step, "step")
            if n_steps is not None:
                n_steps = check_int(n_steps, "n_steps", min_value=0)
            elif tol is None or max_iter is None:
                raise InputError("n_steps: give n_steps, T, or tol with max_iter")
        horizon = n_steps
        cap = max_iter if horizon is None else (
            horizon if max_iter is None else min(horizon, max_iter))

    dtype, device, is_torch = _like(y0)
    y, t = y0, t0
    t_end = None if T is None else t0 + T
    traj, times, aux_list, errors, steps_taken = [], [], [], [], []
    obs: dict = {}
    n_eval = 0
    pending = None            # recorded state whose rhs auxiliary output is still missing
    evaluated = (None, None)  # (state, aux) of the latest first-stage evaluation

    def record(tt, yy):
        nonlocal pending
        traj.append(yy)
        times.append(tt)
        if observe is not None:
            for key, val in observe(tt, yy).items():
                obs.setdefault(key, []).append(val)
        if has_aux:
            if evaluated[0] is yy:
                aux_list.append(evaluated[1])
            else:
                pending = yy

    def first_stage(tt, yy):
        nonlocal n_eval, pending, evaluated
        n_eval += 1
        out = rhs(tt, yy)
        dy, aux = out if has_aux else (out, None)
        evaluated = (yy, aux)
        if pending is yy:
            aux_list.append(aux)
            pending = None
        return dy

    def rhs_plain(tt, yy):
        nonlocal n_eval
        n_eval += 1
        out = rhs(tt, yy)
        return out[0] if has_aux else out

    def at_end(tt):
        return t_end is not None and tt >= t_end - 1e-12 * max(1.0, abs(t_end))

    def measure(tt, yy) -> float:
        """Stopping residual at (tt, yy), appended to ``errors`` (sets the first stage k1)."""
        nonlocal k1
        if k1 is None:
            k1 = first_stage(tt, yy)
        res = float(residual(tt, yy, k1))
        errors.append(res)
        return res

    if adaptive:
        fraction = lambda s: (s.t - t0) / T  # noqa: E731
    elif horizon is not None:
        fraction = lambda s: s.k / max(horizon, 1)  # noqa: E731
    elif tol is not None and tol > 0:
        fraction = None           # log scale of the residual towards tol
    else:
        fraction = lambda s: s.k / max(cap, 1)  # noqa: E731
    mon = Monitor(callback, verbose, tol if tol else 0.0, name, fraction)
    active = mon.active
    with mon:
        record(t, y)
        status = "final_time"
        k = 0
        k1 = None
        if tol is not None and measure(t, y) <= tol:
            status = "converged"
        while status != "converged":
            if k >= cap if not adaptive else (at_end(t) or k >= cap):
                break
            if k1 is None:
                k1 = first_stage(t, y)
            k_last = None
            en = math.nan
            if adaptive:
                h = min(h, t_end - t)
                while True:
                    y_new, err, k_last = _dopri5(rhs_plain, t, y, h, k1,
                                                 stage_project or (lambda z: z))
                    en = _error_norm(err, y, y_new, rtol, atol)
                    if en <= 1.0 or h <= 1e-14 * max(1.0, abs(t)):
                        break
                    h = h * max(0.2, 0.9 * en ** -0.2)
                h_taken = h
                h = h * min(5.0, max(0.2, 0.9 * max(en, 1e-10) ** -0.2))
                if tol is None:
                    errors.append(en)
                steps_taken.append(h_taken)
            else:
                y_new = ode_step(rhs_plain, t, y, h, method, k1=k1, stage_project=stage_project)
                h_taken = h
            if noise is not None:
                y_new = _map(lambda u, v: u + v, y_new, noise(t, y, h_taken))
            y_new = _apply_projection(project, y_new)
            t_new = t0 + (k + 1) * h_taken if not adaptive else t + h_taken
            if not _all_finite(y_new):
                if on_blowup == "raise":
                    raise FloatingPointError(f"{name}: non-finite state at step {k + 1} "
                                             f"(t = {t_new:.6g}); the flow blows up: reduce the step "
                                             "or the horizon")
                status = "blow-up"        # keep the last finite state
                break
            k += 1
            y, t = y_new, t_new
            # FSAL: the last Dormand-Prince stage is rhs(t, y) unless y was modified after it
            k1 = k_last if (k_last is not None and project is None and noise is None
                            and not has_aux) else None
            if blowup is not None and _max_abs(y) > blowup:
                if on_blowup == "raise":
                    raise FloatingPointError(f"{name}: the state exceeds blowup={blowup:g} at step "
                                             f"{k} (t = {t:.6g})")
                status = "blow-up"
                break
            err_k = en
            if tol is not None:
                err_k = measure(t, y)
                if err_k <= tol:
                    status = "converged"
            last = (horizon is not None and k == horizon) or (adaptive and at_end(t))
            if k % record_every == 0 or last:
                record(t, y)
            if active and mon(StepInfo(k, t, y, h_taken, err_k)):
                if status != "converged":
                    status = "stopped"
                break
    if traj[-1] is not y:     # stopped on a state not recorded yet
        record(t, y)
    if pending is not None:
        if evaluated[0] is pending:
            aux_list.append(evaluated[1])
        else:
            out = rhs(t, pending)
            n_eval += 1
            aux_list.append(out[1])
    reached = at_end(t) if adaptive else (horizon is not None and k >= horizon)
    if status == "final_time" and not reached:
        status = "max_iter"
    converged = status == "converged" or (status in ("final_time", "stopped") and reached)
    if not converged:
        last_err = errors[-1] if errors else math.nan
        warnings.warn(f"{name}: stopped with status {status!r} after {k} steps at t = {t:.6g} "
                      f"(last error {last_err:.3e}); the result has converged=False",
                      ConvergenceWarning, stacklevel=2)
    if is_torch:
        times_out = torch.tensor(times, dtype=dtype, device=device)
    else:
        times_out = np.asarray(times, dtype=float)
    observations = {key: _stack_values(vals, dtype, device, is_torch) for key, vals in obs.items()}
    return ODEResult(final=y, trajectory=_stack(traj), times=times_out, status=status,
                     observations=observations, aux=aux_list, n_eval=n_eval, steps=steps_taken,
                     converged=converged, n_iter=k, errors=errors)


def _stack_values(vals, dtype, device, is_torch):
    if isinstance(vals[0], (torch.Tensor, np.ndarray, tuple, list)):
        return _stack(vals)
    if is_torch:
        return torch.tensor(vals, dtype=dtype, device=device)
    return np.asarray(vals, dtype=float)


# ----------------------------------------------------------------------------------------------
# particles
# ----------------------------------------------------------------------------------------------


def autograd_force(energy: Callable, x: torch.Tensor, weights: torch.Tensor | None = None,
                   *args) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, g) with F = energy(x, *args) (detached scalar) and g_i = (dF/dx_i) / w_i.

    For an empirical measure mu = sum_i w_i delta_{x_i} and F(x) = Fcal(mu_x), g(x_i) is the
    Wasserstein force grad_x (dFcal/dmu)(x_i) (course notes arXiv 2505.06589, Sec. "Wasserstein
    gradient flows"); ``weights=None`` returns the plain gradient.

    Parameters
    ----------
    energy : callable
        ``energy(x, *args)`` returning a scalar torch tensor.
    x : Tensor
        Positions (n, d).
    weights : Tensor, optional
        Weights (n,) of the particles.
    *args :
        Extra arguments of ``energy``.

    Returns
    -------
    (Tensor, Tensor)
        F (0-d, detached) and the force g (n, d).

    Raises
    ------
    InputError
        ``energy`` does not return a scalar tensor.

    Examples
    --------
    For the potential energy F = sum_i w_i V(x_i), V(x) = |x|^2 / 2, the force is grad V(x_i) =
    x_i whatever the weights:

    >>> import torch
    >>> from measureflow.ot.integrate import autograd_force
    >>> x = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    >>> w = torch.tensor([0.25, 0.75], dtype=torch.float64)
    >>> F, g = autograd_force(lambda z: (w * (z ** 2).sum(1) / 2).sum(), x, w)
    >>> float(F), bool(torch.allclose(g, x))
    (4.375, True)
    """
    with torch.enable_grad():
        z = x.detach().requires_grad_(True)
        val = energy(z, *args)
        if not isinstance(val, torch.Tensor) or val.numel() != 1:
            raise InputError("energy: must return a scalar torch tensor")
        (g,) = torch.autograd.grad(val, z)
    if weights is not None:
        g = g / weights[:, None]
    return val.detach().reshape(()), g


class ParticleFlow:
    """A weighted particle system moved by a velocity field, on top of :func:`odeint`.

    Integrates dx_i/dt = velocity(x, w)_i for the empirical measure sum_i w_i delta_{x_i};
    for a Wasserstein gradient flow of Fcal the velocity is minus the force of
    :func:`autograd_force`.

    Parameters
    ----------
    velocity : callable
        ``velocity(x, w) -> (n, d)`` (or ``(v, aux)`` with ``has_aux=True``), evaluated on the
        current positions x (n, d) and weights w (n,) (tensors, no validation: this is the inner
        loop).
    positions : Tensor
        Initial positions (n, d).
    weights : Tensor, optional
        (n,) nonnegative weights (default uniform 1/n).
    method : {"euler", "rk4", "dopri5"}, default "euler"
        ``"dopri5"`` through :meth:`steps` with ``T``.
    project : None or str or callable
        ``"sphere"``, ``"layernorm"``, ... (see :func:`resolve_projection`), applied after each
        step (and to the RK4 stages with ``project_stages``).
    project_stages : bool, default False
    noise : callable, optional
        ``noise(t, x, h)``: additive noise increment per step.
    has_aux : bool, default False
    name : str, default "particle_flow"
        Name used in warnings.

    Attributes
    ----------
    positions, weights : Tensor
        Current state.
    t : float
        Current time.
    n_steps : int
        Steps taken so far.

    Raises
    ------
    InputError
        ``velocity`` not callable, ``positions`` not a finite (n, d) tensor, bad weights,
        ``method`` or ``project``.

    Examples
    --------
    Ten Euler steps of size 0.1 of dx/dt = -x multiply the positions by 0.9^10:

    >>> import torch
    >>> from measureflow.ot.integrate import ParticleFlow
    >>> flow = ParticleFlow(lambda x, w: -x, torch.ones(3, 2, dtype=torch.float64))
    >>> res = flow.steps(10, 0.1)
    >>> res.final.shape, float(flow.t), abs(float(res.final[0, 0]) - 0.9 ** 10) < 1e-14
    (torch.Size([3, 2]), 1.0, True)
    """

    def __init__(self, velocity: Callable, positions: torch.Tensor,
                 weights: torch.Tensor | None = None, *, method: str = "euler", project=None,
                 project_stages: bool = False, noise: Callable | None = None,
                 has_aux: bool = False, name: str = "particle_flow"):
        if not callable(velocity):
            raise InputError("velocity: must be a callable velocity(x, w)")
        if not isinstance(positions, torch.Tensor):
            raise InputError("positions: must be a torch tensor (n, d)")
        check_ndim(_check_state(positions, "positions"), "positions", 2)
        if weights is None:
            weights = positions.new_full((positions.shape[0],), 1.0 / positions.shape[0])
        else:
            weights = check_weights(weights, positions.shape[0], "weights", like=positions)
        self.velocity = velocity
        self.positions = positions
        self.weights = weights
        self.method = check_choice(method, "method", METHODS)
        self.project = resolve_projection(project)
        self.project_stages = bool(project_stages)
        self.noise = noise
        self.has_aux = bool(has_aux)
        self.name = name
        self.t = 0.0
        self.n_steps = 0

    def _rhs(self, t, x):
        return self.velocity(x, self.weights)

    def step(self, h: float) -> torch.Tensor:
        """Advance by one step of size h (Euler or RK4); returns the new positions.

        Parameters
        ----------
        h : float

        Returns
        -------
        Tensor
            Positions (n, d) after the step.
        """
        return self.steps(1, h).final

    def steps(self, n: int, h: float | None = None, *, T: float | None = None,
              record_every: int = 1, observe: Callable | None = None, **kw) -> ODEResult:
        """Advance by ``n`` steps of size ``h`` (or over ``T``); returns the :class:`ODEResult`.

        The flow's time and positions are updated to the result's final state.

        Parameters
        ----------
        n : int
            Number of steps (with ``T``: h = T / n).
        h : float, optional
            Step size.
        T : float, optional
            Horizon (required for ``method="dopri5"``).
        record_every : int, default 1
        observe : callable, optional
            As in :func:`odeint`.
        **kw
            Further keywords of :func:`odeint` (``blowup``, ``on_blowup``, ``method``, ...),
            among them ``callback`` (``callback(StepInfo) -> bool | None`` after each step,
            ``StepInfo.y`` the positions; True stops) and ``verbose`` (a progress bar on
            stderr).

        Returns
        -------
        ODEResult
        """
        method = kw.pop("method", self.method)
        res = odeint(self._rhs, self.positions, step=h, n_steps=n, T=T, t0=self.t,
                        method=method, project=self.project, project_stages=self.project_stages,
                        noise=self.noise, record_every=record_every, observe=observe,
                        has_aux=self.has_aux, name=self.name, **kw)
        self.positions = res.final
        self.t = float(res.times[-1])
        self.n_steps += res.n_iter
        return res
