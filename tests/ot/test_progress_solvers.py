"""callback= / verbose= of the solvers outside the Sinkhorn engine (issue 13).

Same contract as ``ot.solve`` / ``ot.jko`` (tests/ot/test_engine.py): the callback sees
increasing iteration numbers, its error trace is the result's ``errors`` (entry for entry, after
the start's entry where a solver records one), returning True stops with the iterate the state
carried and ``converged`` True only if the stopping rule held (else a ConvergenceWarning naming
the stop), ``verbose=True`` writes a progress bar to (non-terminal) stderr.

How it can fail: a solver that calls the callback with a stale error or iterate, ignores its
return value, reports ``converged=True`` after an early stop, or crashes drawing the bar.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from measureflow import ConvergenceWarning, InputError, ot

GRID = np.ones((16, 16))
Y3 = np.array([[0.2, 0.3], [0.7, 0.4], [0.5, 0.8]])
B3 = np.array([0.2, 0.3, 0.5])


def _bumps():
    x = (np.arange(12) + 0.5) / 12
    bump = lambda c: np.exp(-(x - c) ** 2 / (2 * 0.08 ** 2))  # noqa: E731
    r0, r1 = bump(0.3), bump(0.55)
    return r0 / (r0.sum() / 12), r1 / (r1.sum() / 12)


def _uniform_sampler(n, gen):
    return torch.rand(n, 2, generator=gen, dtype=torch.float64)


MEANS = np.array([[0.0, 0.0], [1.0, -0.5], [2.0, 1.0]])
COVS = np.array([[[2.0, 0.6], [0.6, 1.0]], [[1.0, -0.4], [-0.4, 0.7]], [[0.5, 0.1], [0.1, 3.0]]])


def _recorder(stop_at=None):
    seen = []

    def cb(state):
        it = state.iterate
        seen.append((state.iteration, state.error, it.clone() if isinstance(it, torch.Tensor)
                     else tuple(x.clone() for x in it) if isinstance(it, tuple) else it))
        return None if stop_at is None else state.iteration >= stop_at

    return cb, seen


# Each case: run(callback, verbose) -> result; offset = number of start entries in ``errors``
# before the first callback; iterate(res) = the result field the state's iterate must equal.
CASES = {
    "semidiscrete(newton)": dict(
        run=lambda cb, v=False: ot.semidiscrete(Y3, B3, density=GRID, callback=cb, verbose=v),
        offset=1, iterate=lambda r: r.weights),
    "semidiscrete(sgd)": dict(
        run=lambda cb, v=False: ot.semidiscrete(
            Y3, np.array([0.6, 0.3, 0.1]), sampler=_uniform_sampler, lr=0.1, max_iter=3000,
            check_every=25, n_eval=20000, tol=0.04, seed=0, callback=cb, verbose=v),
        offset=0, iterate=lambda r: r.weights),
    "benamou_brenier": dict(
        run=lambda cb, v=False: ot.benamou_brenier(*_bumps(), n_time=4, tol=1e-3,
                                                   callback=cb, verbose=v),
        offset=0, iterate=lambda r: (r.densities, r.momentum)),
    "gaussian_barycenter": dict(
        run=lambda cb, v=False: ot.gaussian_barycenter(MEANS, COVS, callback=cb, verbose=v),
        offset=0, iterate=lambda r: r.cov),
    "odeint(tol)": dict(
        run=lambda cb, v=False: ot.odeint(lambda t, y: -y, np.ones(2), step=0.1, tol=1e-6,
                                          max_iter=1000, callback=cb, verbose=v),
        offset=1, iterate=lambda r: r.final),
    "odeint(dopri5)": dict(
        run=lambda cb, v=False: ot.odeint(lambda t, y: -y, np.ones(2), T=3.0,
                                          method="dopri5", callback=cb, verbose=v),
        offset=0, iterate=lambda r: r.final),
}


def _eq(a, b):
    if isinstance(a, tuple):
        return all(_eq(x, y) for x, y in zip(a, b, strict=True))
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", list(CASES))
def test_callback_trace_is_the_error_trace(name):
    case = CASES[name]
    cb, seen = _recorder()
    res = case["run"](cb)
    its = [s[0] for s in seen]
    assert len(its) >= 3, "the problem must take a few iterations"
    assert all(a < b for a, b in zip(its, its[1:])) and its[0] >= 1
    assert [s[1] for s in seen] == list(res.errors)[case["offset"]:]
    assert its[-1] == res.n_iter and res.converged
    assert _eq(seen[-1][2], case["iterate"](res))     # the last state is the returned iterate


@pytest.mark.parametrize("name", list(CASES))
def test_callback_stops_early_with_the_state_iterate(name):
    case = CASES[name]
    cb, seen = _recorder()
    full = case["run"](cb)
    stop = [s[0] for s in seen][1]                    # the second callback's iteration
    cb, seen = _recorder(stop_at=stop)
    with pytest.warns(ConvergenceWarning, match="stopped"):
        res = case["run"](cb)
    assert res.n_iter == stop < full.n_iter and res.converged is False
    assert len(seen) == 2 and seen[-1][0] == stop
    assert _eq(seen[-1][2], case["iterate"](res))
    assert list(res.errors) == list(full.errors)[:case["offset"] + 2]


@pytest.mark.parametrize("name", list(CASES))
def test_verbose_writes_a_bar_without_a_terminal(name, capsys):
    res = CASES[name]["run"](None, True)
    err = capsys.readouterr().err
    assert res.converged and err.strip() and "it" in err


def test_early_stop_meeting_the_rule_is_converged():
    # stopping at the iteration where the rule holds is a converged result, no warning
    cb, seen = _recorder()
    full = ot.gaussian_barycenter(MEANS, COVS, callback=cb)
    cb, _ = _recorder(stop_at=seen[-1][0])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = ot.gaussian_barycenter(MEANS, COVS, callback=cb)
    assert res.converged and np.array_equal(res.cov, full.cov)


def test_particle_flows_callback_and_stop():
    x0 = np.array([[1.0], [2.0]])
    V = lambda z: (z ** 2).sum(1) / 2  # noqa: E731
    seen = []
    res = ot.particle_flow(x0, potential=V, n_steps=10, step=0.1,
                           callback=lambda s: seen.append((s.iteration, s.iterate.clone(),
                                                           s.error)))
    assert [s[0] for s in seen] == list(range(1, 11)) and res.converged
    assert all(math.isnan(s[2]) for s in seen) and res.errors == []   # no errors recorded
    with pytest.warns(ConvergenceWarning, match="stopped"):
        res = ot.particle_flow(x0, potential=V, n_steps=10, step=0.1,
                               callback=lambda s: s.iteration >= 4)
    assert res.n_iter == 4 and not res.converged
    np.testing.assert_allclose(res.final, x0 * 0.9 ** 4, rtol=1e-14)
    np.testing.assert_allclose(res.final, seen[3][1].numpy(), rtol=0, atol=0)
    # ParticleFlow.steps forwards callback / verbose to odeint
    flow = ot.ParticleFlow(lambda x, w: -x, torch.ones(3, 2, dtype=torch.float64))
    states = []
    with pytest.warns(ConvergenceWarning, match="stopped"):
        r = flow.steps(10, 0.1, callback=lambda s: states.append(s) or s.k >= 2)
    assert r.n_iter == 2 and flow.n_steps == 2 and torch.equal(flow.positions, states[-1].y)
    assert math.isnan(states[-1].error) and states[-1].iteration == 2


def test_particle_flow_verbose(capsys):
    ot.particle_flow(np.array([[1.0], [2.0]]), potential=lambda z: (z ** 2).sum(1) / 2,
                     n_steps=5, step=0.1, verbose=True)
    assert "particle_flow" in capsys.readouterr().err


@pytest.mark.parametrize("call", [
    lambda: ot.semidiscrete(Y3, B3, density=GRID, callback=3),
    lambda: ot.benamou_brenier(*_bumps(), n_time=4, callback="f"),
    lambda: ot.gaussian_barycenter(MEANS, COVS, callback=1.0),
    lambda: ot.particle_flow(np.ones((2, 1)), potential=lambda z: z.sum(1), n_steps=2,
                             step=0.1, callback=3),
    lambda: ot.odeint(lambda t, y: -y, np.ones(2), step=0.1, n_steps=2, callback=3),
])
def test_bad_callback(call):
    with pytest.raises(InputError, match="^callback"):
        call()
