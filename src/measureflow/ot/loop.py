"""The one Sinkhorn / KL-projection loop of measureflow.

Problem (cost C given by a :mod:`geometry <measureflow.ot.geometry>`, reference weights a, b
held by two *marginal blocks*, eps > 0)::

    min_{P >= 0}  <C, P> + eps KL(P | a x b) + H_row(P 1) + H_col(P^T 1)

with KL(p | q) = sum p log(p / q) - p + q. Each block is one side's constraint or penalty:
:class:`Hard` (P 1 = a), :class:`KL` (H = rho KL(. | a), unbalanced OT; Chizat, Peyre,
Schmitzer & Vialard 2018), :class:`Prox` (any H with a closed-form KL proximal map, e.g. the
free energy of an entropic JKO step, Peyre 2015) and :class:`Coupled` (a stack of K problems
whose row marginals must agree: the fixed-support barycenter, Benamou et al. 2015). The dual
potentials f, g parametrise the plan P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).

**Iteration** (alternating exact block maximisation of the dual = cyclic KL projections;
Sinkhorn is the two-block case). With logm the log of a marginal of the current plan divided
by its weights (one :meth:`Geometry.lse <measureflow.ot.geometry.Geometry.lse>` reduction)::

    g <- col.update(g, log(P^T 1 / b), eps)        e.g. Hard: g - eps log(P^T 1 / b)
    [measure the error here]
    f <- row.update(f, log(P 1 / a), eps)          KL(rho): rho/(rho+eps) (f - eps log(P 1/a))

Each reduction is stabilised by the current potentials, so its result *is* the current
marginal (one pass over C; see :mod:`measureflow.ot.kernels`).

**Symmetric problems** (OT(a, a) for a symmetric cost, the debiasing terms of the Sinkhorn
divergence): one potential, averaged update f <- (f + row.update(f, ...)) / 2 (Feydy et al.
2019, Sec. 3), whose fixed point is the symmetric optimum.

**Stopping rule** (the only one): the L1 violation of the blocks' optimality conditions at the
returned potentials, in units of mass,

    err = ||P 1 - a~||_1 + ||P^T 1 - b~||_1,    a~ = row target (a; a exp(-f / rho); ...),

measured after each g-update, so that the pair returned is the pair whose error was measured
(never a newer, unmeasured iterate); the column term is then 0 up to rounding for hard, KL
and prox blocks (it is not with ``recenter``). Symmetric problems count both (equal)
marginals: err = 2 ||P 1 - a||_1. Default tolerance :func:`default_tol`.

**eps schedules** (:class:`Scaling`, :class:`Annealing`): eps_0 = the cost range (max C - min
C), eps_{k+1} = q eps_k, down to eps. ``Scaling(q)`` runs each intermediate eps until the error
is below ``max(tol, stage_tol x mass)`` (at most ``stage_iter`` iterations; Schmitzer 2019,
Sec. 3.2); ``Annealing(q)`` runs exactly one iteration per intermediate eps and, for symmetric
problems, one non-averaged "extrapolation" step on reaching eps (GeomLoss's fast mode with
``scaling = q^(1/p)``, Feydy 2020, Sec. 3.3.3); in both cases the final eps then runs until
``tol``. ``max_iter`` bounds the total number of iterations of all stages.

**Translation-invariant step** (``recenter=True``; Sejourne, Vialard & Peyre 2022): after each
g-update, (f, g) <- (f + t, g - t) with the t maximising the dual along that direction,
t = (log A - log B) / (1/rho_a + 1/rho_b), A = <a, exp(-f / rho_a)> (the mass of a for a hard
marginal), B likewise. The plan is unchanged; for unbalanced problems with small rho the
iteration then converges much faster.

**Callback / progress** (:mod:`measureflow.core.progress`): once per iteration with a
:class:`SinkhornState` (iteration, error, eps, potentials, label); returning True stops.

**Adding a marginal block.** Subclass :class:`Marginal` and implement ``update(f, logm, eps)``
(new potential from the current one and logm = log(marginal / weights) of the current plan),
``target(f)`` (the marginal the optimality condition asks for at f; the violation is
``sum |w exp(logm) - target(f)|``) and, if a value is wanted, ``dual(f, w)`` (the term
-H^*(-f) of the dual objective, differentiable in w). ``logm`` is whatever the geometry's
``lse`` returns: a sparse-graph geometry with signed incidences (flow-Sinkhorn's divergence
block) may return a stacked pair of reductions, and its block consumes the pair. Blocks see
potentials with any leading batch shape the geometry supports. :class:`Divergence` is such a
block: the node constraint div x = b of flow-Sinkhorn on a signed
:class:`~measureflow.ot.geometry.Graph`.

**K blocks** (:func:`cyclic_loop`): the general cyclic KL projections
min <C, x> + gamma KL(x | z) + sum_k H_k(A_k x) over any number of :class:`Projection` blocks,
on an iterate stored in the log domain or as a potential (Peyre 2026, arXiv 2602.01372,
Sec. 2): :func:`measureflow.bregman.kl_projections` and flow-Sinkhorn
(:class:`PotentialProjection` of :class:`Divergence`) run on it. Same stopping rule (summed L1
violations of the blocks, mass units), same callback state and progress bar; it checks every
``check_every`` sweeps and runs in the caller's autograd mode (kl_projections differentiates
through its sweeps). :func:`sinkhorn_loop` is its two-block potential form, specialised
(the error measured between the two half-steps at no extra reduction, eps schedules,
over-relaxation, translation-invariant step).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from ..core.progress import Monitor
from ..core.threads import serial_if_small
from .geometry import Geometry

__all__ = ["Marginal", "Hard", "KL", "Prox", "Coupled", "Schedule", "Scaling", "Annealing",
           "Direct", "SinkhornState", "LoopOutput", "sinkhorn_loop", "default_tol",
           "log_weights"]
__all__ += ["Divergence", "asinh_exp", "Projection", "PotentialProjection", "CyclicOutput",
            "cyclic_loop"]


#: Problems with fewer cost entries than this run their loop on one OpenMP thread of the
#: calling thread (waking workers costs more than a pass over a few 10^5 entries).
SERIAL_NUMEL = 2**18


def log_weights(w: torch.Tensor) -> torch.Tensor:
    """log w with exact -inf on zero weights."""
    return torch.where(w > 0, w.clamp_min(torch.finfo(w.dtype).tiny).log(),
                       torch.full_like(w, -math.inf))


def default_tol(dtype: torch.dtype, mass: float) -> float:
    """Default stopping tolerance (L1 marginal violation, mass units) for data of ``dtype``.

    1e-8 x mass in float64; 1e-5 x mass in float32 (100 x its machine epsilon: the exponential
    runs in float32, so a plan entry carries a relative error ~ 6e-8 and marginals much more
    precise than 1e-6 are not resolvable); 100 x machine epsilon x mass in general.
    """
    return max(1e-8, 100.0 * torch.finfo(dtype).eps) * mass


# ------------------------------------------------------------------------------------------
# Marginal blocks
# ------------------------------------------------------------------------------------------

class Marginal:
    """One side of the problem: reference weights ``w`` and its constraint or penalty.

    Subclasses implement :meth:`update`, :meth:`target` and (for values) :meth:`dual`.
    ``rho`` is the KL strength (``None`` for a hard constraint), used by ``recenter``.
    """

    rho: float | None = None

    def __init__(self, weights: torch.Tensor):
        self.w = weights
        self.logw = log_weights(weights)
        self.mass = float(weights.sum())

    def update(self, f, logm, eps):  # pragma: no cover - abstract
        raise NotImplementedError

    def target(self, f):  # pragma: no cover - abstract
        raise NotImplementedError

    def violation(self, f, logm) -> torch.Tensor:
        """sum |w exp(logm) - target(f)| (0-d tensor)."""
        return (self.w * torch.exp(logm) - self.target(f)).abs().sum()

    def dual(self, f, w=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def log_translation_mass(self, f) -> torch.Tensor:
        """log A of the translation-invariant step (see the module docstring)."""
        return torch.log(self.w.sum()) if self.rho is None else torch.logsumexp(
            self.logw - f / self.rho, dim=tuple(range(f.ndim)))


class Hard(Marginal):
    """Hard constraint: the marginal equals the weights (balanced OT). Dual term <w, f>."""

    def update(self, f, logm, eps):
        return f - eps * logm

    def target(self, f):
        return self.w

    def dual(self, f, w=None):
        w = self.w if w is None else w
        return (w * f).sum()


class KL(Marginal):
    """Penalty rho KL(marginal | w). Update f <- rho / (rho + eps) (f - eps logm); optimality
    target w exp(-f / rho); dual term -rho <w, exp(-f / rho) - 1>."""

    def __init__(self, weights, rho: float):
        super().__init__(weights)
        self.rho = float(rho)

    def update(self, f, logm, eps):
        return (self.rho / (self.rho + eps)) * (f - eps * logm)

    def target(self, f):
        return self.w * torch.exp(-f / self.rho)

    def dual(self, f, w=None):
        w = self.w if w is None else w
        return -self.rho * (w * torch.expm1(-f / self.rho)).sum()


class Prox(Marginal):
    """Penalty H with a closed-form KL proximal map (entropic JKO steps, Peyre 2015).

    ``prox(s, eps)`` receives s = log of the marginal the plan would have with this side's
    potential set to 0 (s = log w + logm - f / eps) and returns log q, q = argmin_q
    H(q) + eps KL(q | exp(s)). The update sets the marginal to q: f <- eps (log q - s). The
    violation is measured against the q of the last update (the block is exactly satisfied
    right after it, up to rounding), so the prox is evaluated once per iteration.
    """

    def __init__(self, weights, prox: Callable):
        super().__init__(weights)
        self.prox = prox
        self._q = None

    def update(self, f, logm, eps):
        s = self.logw + logm - f / eps
        fin = torch.isfinite(s)
        logq = self.prox(s, eps)
        self._q = torch.where(fin, torch.exp(logq), torch.zeros_like(s))
        return torch.where(fin, eps * (logq - s), torch.full_like(s, -math.inf))

    def violation(self, f, logm):
        if self._q is None:
            return torch.zeros((), dtype=f.dtype, device=f.device)
        cur = torch.exp(self.logw + logm)
        return torch.where(torch.isfinite(cur), cur - self._q, torch.zeros_like(cur)).abs().sum()

    def target(self, f):  # pragma: no cover - violation is overridden
        raise NotImplementedError


class Coupled(Marginal):
    """A stack of K plans (potentials (K, n)) whose row marginals must all equal one q.

    Update: log q = sum_k lam_k log r_k (r_k the current marginals), f_k <- f_k + eps (log q -
    log r_k): the KL projection onto {r_1 = ... = r_K} (the fixed-support barycenter of
    Benamou et al. 2015, iterative Bregman projections). Violation: sum_k lam_k ||r_k - q||_1
    with q the weighted geometric mean of the current marginals.
    """

    def __init__(self, weights, lam: torch.Tensor):
        super().__init__(weights)
        self.lam = lam.reshape(-1, *([1] * weights.ndim))

    def _logq(self, logm):
        return (self.lam * (self.logw + logm)).sum(0, keepdim=True)

    def update(self, f, logm, eps):
        return f + eps * (self._logq(logm) - self.logw - logm)

    def violation(self, f, logm):
        r = torch.exp(self.logw + logm)
        return (self.lam * (r - torch.exp(self._logq(logm)))).abs().sum()

    def barycenter(self, logm):
        """The common marginal q (weighted geometric mean of the current marginals)."""
        return torch.exp(self._logq(logm))[0]

    def target(self, f):  # pragma: no cover - violation is overridden
        raise NotImplementedError


# ------------------------------------------------------------------------------------------
# eps schedules
# ------------------------------------------------------------------------------------------

def _check_schedule(sched) -> None:
    from ..core.errors import InputError
    from ..core.validation import check_in_range, check_int, check_positive

    if isinstance(sched.q, bool) or isinstance(sched.q, str):
        raise InputError(f"q: expected a factor in (0, 1), got {sched.q!r}")
    check_in_range(sched.q, "q", 0.0, 1.0, low_open=True, high_open=True)
    if hasattr(sched, "stage_tol"):
        check_positive(sched.stage_tol, "stage_tol")
        check_int(sched.stage_iter, "stage_iter", min_value=1)
        if isinstance(sched.stage_tol, torch.Tensor):
            raise InputError("stage_tol: expected a Python number")
    if isinstance(sched.q, torch.Tensor):
        raise InputError("q: expected a Python number")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Base of the eps schedules (see the module docstring). ``q`` in (0, 1)."""

    q: float = 0.5

    def __post_init__(self):
        _check_schedule(self)

    def stages(self, eps: float, scale: float) -> list[float]:
        """Decreasing eps values from ``scale`` (the cost range) down to ``eps`` (last)."""
        if scale <= eps:
            return [eps]
        out, e = [], scale
        while e > eps:
            out.append(e)
            e *= self.q
        out.append(eps)
        return out


@dataclasses.dataclass(frozen=True)
class Direct(Schedule):
    """No schedule: iterate at eps from the start."""

    def stages(self, eps, scale):
        return [eps]


@dataclasses.dataclass(frozen=True)
class Scaling(Schedule):
    """eps-scaling by tolerance: each intermediate eps until err <= max(tol, stage_tol x mass)
    or ``stage_iter`` iterations."""

    q: float = 0.5
    stage_tol: float = 1e-3
    stage_iter: int = 100


@dataclasses.dataclass(frozen=True)
class Annealing(Schedule):
    """Fixed annealing: one iteration per intermediate eps (ratio q), extrapolation at eps.

    GeomLoss's ``scaling`` s with cost exponent p corresponds to q = s^p (``scaling=0.9``,
    p = 2: q = 0.81).
    """

    q: float = 0.81


# ------------------------------------------------------------------------------------------
# State, output, loop
# ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SinkhornState:
    """What a ``callback`` sees once per iteration (do not modify the tensors).

    ``iteration`` counts iterations of all stages (1-based); ``error`` is the stopping error
    of the potentials (f, g) (the pair the solver would return if it stopped now); ``eps`` the
    current eps of the schedule; ``stage`` its index; ``label`` names the sub-problem
    (``"xy"``, ``"xx"``, ``"yy"`` in the Sinkhorn divergence, ``"step 3"`` in JKO, ...).
    """

    iteration: int
    error: float
    eps: float
    f: Any
    g: Any
    stage: int = 0
    label: str = ""

    @property
    def potentials(self):
        return self.f, self.g


@dataclasses.dataclass
class LoopOutput:
    """Raw output of :func:`sinkhorn_loop` (potentials in the geometry's ``pdtype``)."""

    f: torch.Tensor
    g: torch.Tensor
    n_iter: int
    errors: list
    error: float
    converged: bool
    eps: float
    stopped: bool = False
    logr: torch.Tensor | None = None    # log(P 1 / a) at (f, g)


def _translate(row: Marginal, col: Marginal, f, g):
    ra, rb = row.rho, col.rho
    if ra is None and rb is None:
        return f, g
    inv = (0.0 if ra is None else 1.0 / ra) + (0.0 if rb is None else 1.0 / rb)
    t = (row.log_translation_mass(f) - col.log_translation_mass(g)) / inv
    return f + t, g - t


class _Relax:
    """Over-relaxation factor omega of the final stage (``relax``; see the module docstring)."""

    WARMUP = 10      # plain iterations before the rate is estimated
    SPAN = 5         # rate estimated over this many iterations
    REFINE = 12      # relaxed iterations before omega is refined, then every ...
    REFINE_SPAN = 10  # ... this many iterations, from the rate over the last ones
    CAP = 1.95
    PATIENCE = 300   # relaxed iterations allowed without getting below the switching error

    def __init__(self, relax):
        self.auto = relax == "auto"
        self.omega = 1.0 if (relax is None or self.auto) else float(relax)
        self.fixed = not self.auto
        self.hist: list[float] = []
        self.best = self.switch = math.inf
        self.count = 0

    def observe(self, err: float) -> None:
        if not math.isfinite(err):
            self.omega, self.fixed = 1.0, True
            return
        if self.omega > 1.0:
            # Safeguard. The measured error jumps when omega is switched on (the relaxed
            # column potential is no longer an exact projection), so only a large growth, or
            # no progress below the switching error for a long time, means omega is too large.
            self.count += 1
            self.best = min(self.best, err)
            self.hist.append(err)
            if err > 20.0 * self.switch or (self.count >= self.PATIENCE and self.best >= self.switch):
                self.omega, self.fixed = 1.0, True
                return
            if self.count >= self.REFINE + self.REFINE_SPAN and \
                    (self.count - self.REFINE) % self.REFINE_SPAN == 0:
                # Refinement from the relaxed rate lam: SOR theory for a consistently ordered
                # two-block iteration, (lam + w - 1)^2 = lam w^2 theta, gives the plain rate
                # theta of the slowest mode still present, hence the optimal
                # w* = 2 / (1 + sqrt(1 - theta)); w only moves up (an under-estimated w is
                # safe, an over-estimated one merely oscillates at rate w - 1).
                e0, e1 = self.hist[-1 - self.REFINE_SPAN], self.hist[-1]
                w = self.omega
                if 0 < e1 < e0:
                    lam = (e1 / e0) ** (1.0 / self.REFINE_SPAN)
                    if lam > w - 1.0 + 0.02:
                        theta = min((lam + w - 1.0) ** 2 / (lam * w * w), 0.99999)
                        self.omega = min(max(2.0 / (1.0 + math.sqrt(1.0 - theta)), w), self.CAP)
            return
        if self.fixed:
            return
        self.hist.append(err)
        k = len(self.hist)
        if k >= self.WARMUP and k % self.SPAN == 0:
            e0, e1 = self.hist[-1 - self.SPAN], self.hist[-1]
            if e0 > 0 and e1 < e0:
                theta = (e1 / e0) ** (1.0 / self.SPAN)
                if theta > 0.5:   # slow enough for relaxation to pay
                    self.omega = min(2.0 / (1.0 + math.sqrt(1.0 - theta)), self.CAP)
                    self.fixed = True
                    self.switch = self.best = err
                    self.count = 0
                    self.hist = [err]


def sinkhorn_loop(geom: Geometry, row: Marginal, col: Marginal | None, eps: float, *,
                  tol: float, max_iter: int, schedule: Schedule | None = None, init=None,
                  symmetric: bool = False, recenter: bool = False, relax=None,
                  callback: Callable | None = None, verbose: bool = False,
                  label: str = "", description: str = "sinkhorn") -> LoopOutput:
    """Run the loop (tensor-only: inputs are validated by the public faces).

    Parameters
    ----------
    geom: the :class:`~measureflow.ot.geometry.Geometry`.
    row, col: marginal blocks (weights in ``geom.pdtype``); ``col`` is ignored when
        ``symmetric`` (one potential, the row block's).
    eps: the target eps. tol: stopping tolerance (L1 violation, mass units).
    max_iter: bound on the total number of iterations (all stages).
    schedule: :class:`Direct` (default), :class:`Scaling` or :class:`Annealing`.
    init: (f, g) warm start (``geom.pdtype``), or None for zeros (symmetric: f).
    recenter: translation-invariant step (unbalanced problems).
    relax: over-relaxation of the final stage (two-sided problems): None (off), a factor
        omega in [1, 2), or ``"auto"`` (omega from the observed rate, see the module docstring).
    callback, verbose: see :mod:`measureflow.core.progress`; ``label`` and ``description``
        name the problem in the state / progress bar.
    """
    pd = geom.pdtype
    schedule = Direct() if schedule is None else schedule
    row_shape = row.w.shape
    if init is None:
        f = torch.zeros(row_shape, dtype=pd, device=geom.device)
        g = None if symmetric else torch.zeros(col.w.shape, dtype=pd, device=geom.device)
    else:
        f = init[0].detach().to(pd).clone()
        g = None if symmetric else init[1].detach().to(pd).clone()
    needs_scale = not isinstance(schedule, Direct)
    scale = (lambda r: r[1] - r[0])(geom.cost_range()) if needs_scale else eps
    stages = schedule.stages(eps, scale)
    annealing = isinstance(schedule, Annealing)
    la = row.logw
    lb = None if symmetric else col.logw
    errors: list[float] = []
    err = math.inf
    it = 0
    logr = None
    mon = Monitor(callback, verbose, tol, description)
    stop = False
    rx = _Relax(None if symmetric else relax)
    e = eps
    with torch.no_grad(), mon, serial_if_small(geom.numel, SERIAL_NUMEL):
        for si, e in enumerate(stages):
            last = si == len(stages) - 1
            if last:
                cap, stol = max_iter, tol
            elif annealing:
                cap, stol = it + 1, -math.inf
            else:
                cap = min(it + schedule.stage_iter, max_iter - 1)
                stol = max(tol, schedule.stage_tol * row.mass)
            if not last and it >= max_iter - 1:
                continue
            if last and annealing and symmetric and len(stages) > 1 and logr is not None:
                # extrapolation: one full (non-averaged) step on reaching the final eps
                f = row.update(f, geom.lse(f / e, f / e + la, e, axis=1), e)
            w = 1.0
            while it < cap:
                it += 1
                if symmetric:
                    logr = geom.lse(f / e, f / e + la, e, axis=1)
                    err_t = 2.0 * row.violation(f, logr)
                else:
                    logc = geom.lse(f / e + la, g / e, e, axis=0)
                    g_new = col.update(g, logc, e)
                    if w != 1.0:
                        g_new = g + w * (g_new - g)
                    logc = logc + (g_new - g) / e
                    g = g_new
                    if recenter:
                        f, g = _translate(row, col, f, g)
                    logr = geom.lse(f / e, g / e + lb, e, axis=1)
                    err_t = row.violation(f, logr) + col.violation(g, logc)
                err = float(err_t)
                errors.append(err)
                if mon.active and mon(SinkhornState(it, err, e, f, f if symmetric else g, si,
                                                    label)):
                    stop = True
                    break
                if last and (err <= tol or math.isnan(err) or it >= max_iter):
                    break  # keep the measured pair (f, g)
                if not last and (err <= stol or math.isnan(err) or it >= cap):
                    f = _row_step(row, f, logr, e, symmetric, 1.0)
                    break
                if last:
                    rx.observe(err)
                    w = rx.omega
                f = _row_step(row, f, logr, e, symmetric, w)
            if stop:
                break
    return LoopOutput(f=f, g=f if symmetric else g, n_iter=it, errors=errors, error=err,
                      converged=bool(err <= tol) and not (stop and e != eps), eps=eps,
                      stopped=stop, logr=logr)


def _row_step(row: Marginal, f, logr, e, symmetric, w=1.0):
    if symmetric:
        return 0.5 * (f + row.update(f, logr, e))
    new = row.update(f, logr, e)
    return new if w == 1.0 else f + w * (new - f)


# ------------------------------------------------------------------------------------------
# Flow-Sinkhorn's divergence block (signed graph geometry)
# ------------------------------------------------------------------------------------------

def asinh_exp(L: torch.Tensor) -> torch.Tensor:
    """arsinh(exp(L)) without overflow: L + log(1 + sqrt(1 + exp(-2 L))) for L > 0."""
    Lp, Ln = L.clamp_min(0.0), L.clamp_max(0.0)
    return torch.where(L > 0, Lp + torch.log1p(torch.sqrt(1.0 + torch.exp(-2.0 * Lp))),
                       torch.asinh(torch.exp(Ln)))


class Divergence(Marginal):
    """Node constraint div x = b on the flows of a signed :class:`~measureflow.ot.geometry.Graph`.

    With the potential phi (one per node) and x_k = z_k exp((phi_tail - phi_head - w_k) / eps),
    the block consumes the geometry's stacked pair logm = (log O, log I) (outflow, inflow of
    every node) and returns the exact per-node KL projection (Peyre 2026, arXiv 2602.01372,
    Sec. 5, stable arsinh form): phi_i is the root of O_i e^{s} - I_i e^{-s} = b_i,
    s = (phi'_i - phi_i) / eps, i.e.::

        phi' = phi + eps ((log I - log O) / 2 + sign(b) arsinh(|b| / (2 sqrt(O I)))).

    All nodes are updated at once from the same flows (a Jacobi sweep); the symmetric loop's
    average (phi + phi') / 2 is the exact alternating projection of the lifted problem (f = g),
    i.e. flow-Sinkhorn. Violation ||O - I - b||_1 (absolute). Dual term <b, phi>.
    ``weights`` is b (signed, summing to 0); the log-weights are 0 (the arcs carry z) and
    ``mass`` is the transported mass ||b||_1 / 2.

    Examples
    --------
    On the path 0 - 1 (both orientations), the averaged update solves div x = b at once:

    >>> import torch
    >>> from measureflow.ot.geometry import Graph
    >>> one = torch.ones(2, dtype=torch.float64)
    >>> G = Graph(torch.tensor([0, 1]), torch.tensor([1, 0]), one, 2, signed=True)
    >>> blk = Divergence(torch.tensor([1.0, -1.0], dtype=torch.float64))
    >>> phi = torch.zeros(2, dtype=torch.float64)
    >>> new = 0.5 * (phi + blk.update(phi, G.lse(phi, phi, 1.0, 1), 1.0))
    >>> float(blk.violation(new, G.lse(new, new, 1.0, 1))) < 1e-12
    True
    """

    def __init__(self, weights: torch.Tensor):
        self.w = weights
        self.logw = torch.zeros_like(weights)
        self.mass = 0.5 * float(weights.detach().abs().sum())
        self._logb = torch.log(torch.where(weights != 0, weights.abs() / 2,
                                           torch.ones_like(weights)))
        self._sgn = torch.sign(weights)

    def update(self, f, logm, eps):
        lo, li = logm[0], logm[1]
        L = self._logb - 0.5 * (lo + li)
        ash = torch.where(self._sgn != 0, self._sgn * asinh_exp(L), torch.zeros_like(L))
        return f + eps * (0.5 * (li - lo) + ash)

    def violation(self, f, logm):
        return (torch.exp(logm[0]) - torch.exp(logm[1]) - self.w).abs().sum()

    def target(self, f):  # pragma: no cover - violation is overridden
        raise NotImplementedError

    def dual(self, f, w=None):
        w = self.w if w is None else w
        return (w * f).sum()


# ------------------------------------------------------------------------------------------
# K-block cyclic projections
# ------------------------------------------------------------------------------------------

class Projection:
    """One block of :func:`cyclic_loop`: a KL projection of the iterate ``x`` with dual ``u``.

    Implement ``project(x, u) -> (x, u)`` (the exact block maximisation of the dual, or its
    relaxation) and ``residual(x, u)`` (the L1 violation of the block's optimality condition
    in mass units, a float or 0-d tensor); ``normalize(x, u)`` (default: identity) is applied at
    every check before the residuals (a gauge, e.g. the mean of a potential defined up to a
    constant).
    """

    def project(self, x, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def residual(self, x, u):  # pragma: no cover - abstract
        raise NotImplementedError

    def normalize(self, x, u):
        return x, u


class PotentialProjection(Projection):
    """A :class:`Marginal` block as a :class:`Projection` of its potential on a geometry.

    The iterate is the block's potential f (the dual ``u`` is unused); one projection is
    f <- f + omega (row.update(f, logm, eps) - f) with logm = geom.lse(f / eps, f / eps +
    log w, eps, axis=1): the single-potential (symmetric) problems of the geometry, e.g.
    flow-Sinkhorn on a signed :class:`~measureflow.ot.geometry.Graph` with :class:`Divergence`
    (omega = 1/2: the exact alternating projection of the lifted problem, Peyre 2026, Sec. 5;
    omega in (1/2, 1): over-relaxation). ``gauge=True`` removes the mean of f at every check.

    Examples
    --------
    >>> import torch
    >>> from measureflow.ot.geometry import Graph
    >>> e = torch.tensor([0, 1, 2, 1])                     # path 0 - 1 - 2, both ways
    >>> G = Graph(e, torch.tensor([1, 2, 1, 0]), torch.ones(4, dtype=torch.float64), 3,
    ...           signed=True)
    >>> b = torch.tensor([0.5, 0.0, -0.5], dtype=torch.float64)
    >>> P = PotentialProjection(G, Divergence(b), 0.1, omega=0.5, gauge=True)
    >>> out = cyclic_loop(torch.zeros(3, dtype=torch.float64), [P], tol=1e-9, max_iter=500)
    >>> bool(out.converged), out.n_iter < 500
    (True, True)
    """

    def __init__(self, geom: Geometry, row: Marginal, eps: float, *, omega: float = 1.0,
                 gauge: bool = False):
        self.geom, self.row, self.eps = geom, row, eps
        self.omega, self.gauge = omega, gauge

    def logm(self, f):
        e = self.eps
        return self.geom.lse(f / e, f / e + self.row.logw, e, axis=1)

    def project(self, f, u):
        new = self.row.update(f, self.logm(f), self.eps)
        return (new if self.omega == 1.0 else f + self.omega * (new - f)), u

    def residual(self, f, u):
        return self.row.violation(f, self.logm(f))

    def normalize(self, f, u):
        return (f - f.mean(), u) if self.gauge else (f, u)


@dataclasses.dataclass
class CyclicOutput:
    """Raw output of :func:`cyclic_loop`."""

    x: Any
    duals: list
    n_iter: int
    errors: list
    error: float
    converged: bool
    stopped: bool = False


def _as_float(r) -> float:
    return float(r.detach()) if isinstance(r, torch.Tensor) else float(r)


def cyclic_loop(x, blocks, duals=None, *, tol: float, max_iter: int, check_every: int = 1,
                eps: float = math.nan, on_check: Callable | None = None,
                callback: Callable | None = None, verbose: bool = False, label: str = "",
                description: str = "kl projections") -> CyclicOutput:
    """Cyclic KL projections over K blocks: the engine's general Bregman loop.

    For min <C, x> + gamma KL(x | z) + sum_k H_k(A_k x), one sweep applies the blocks'
    projections in order, (x, u_k) <- block_k.project(x, u_k), k = 1..K: exact block
    maximisation of the dual (Peyre 2026, arXiv 2602.01372, Sec. 2; :func:`sinkhorn_loop` is
    the specialised two-block potential form with schedules and relaxation). Every
    ``check_every`` sweeps (and after the last one) the blocks normalise their state, the
    stopping error err = sum_k block_k.residual(x, u_k) (L1, mass units: the same rule as
    :func:`sinkhorn_loop`) is recorded, ``on_check(it, x, duals)`` runs (recording), the
    ``callback`` / progress bar sees a :class:`SinkhornState` (``f`` = x, ``g`` = the duals),
    and the loop stops when err <= tol, err is not finite, or the callback returns True.
    Runs in the caller's autograd mode (tensor-only; the faces validate).

    Parameters
    ----------
    x : Tensor
        Initial iterate (a log-domain primal variable, or a potential).
    blocks : sequence of :class:`Projection`
    duals : list, optional
        Initial duals, one per block (default None each).
    tol : float
        Stopping tolerance on the summed residuals (absolute).
    max_iter : int
        Maximum number of sweeps. check_every: sweeps between checks.
    eps : float, optional
        Reported in the callback state (the regularisation).
    on_check, callback, verbose, label, description
        Recording hook; see :mod:`measureflow.core.progress`.

    Returns
    -------
    CyclicOutput
        ``x``, ``duals``, ``n_iter`` (sweeps done), ``errors`` (one per check), ``error``,
        ``converged``, ``stopped`` (by the callback).

    Examples
    --------
    See :class:`PotentialProjection`; :func:`measureflow.bregman.kl_projections` runs its
    blocks on this loop.

    References
    ----------
    G. Peyre, "Robust sublinear rates for iterative Bregman projections", arXiv:2602.01372,
    2026, Sec. 2-3 and 5.
    """
    duals = [None] * len(blocks) if duals is None else list(duals)
    errors: list[float] = []
    err = math.nan
    converged = stop = False
    it = 0
    mon = Monitor(callback, verbose, tol, description)
    with mon:
        while it < max_iter:
            for k, blk in enumerate(blocks):
                x, duals[k] = blk.project(x, duals[k])
            it += 1
            if it % check_every and it != max_iter:
                continue
            for k, blk in enumerate(blocks):
                x, duals[k] = blk.normalize(x, duals[k])
            err = float(sum(_as_float(blk.residual(x, u)) for blk, u in zip(blocks, duals)))
            errors.append(err)
            if on_check is not None:
                on_check(it, x, duals)
            if mon.active and mon(SinkhornState(it, err, eps, x, tuple(duals), 0, label)):
                stop = True
                converged = err <= tol
                break
            if not math.isfinite(err):
                break
            if err <= tol:
                converged = True
                break
    return CyclicOutput(x=x, duals=duals, n_iter=it, errors=errors, error=err,
                        converged=converged, stopped=stop)
