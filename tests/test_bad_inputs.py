"""The bad-input matrix (issue 16): every public callable against inputs generated from roles.

One spec per public callable (``tests/_bad_input_specs.py``: a cheap valid call whose arguments
carry roles such as points, weights, cost, spd, pos, count, seed, choice, callable); the
mutations (NaN, Inf, complex, meta device, float16, strings, None, ragged lists, wrong ndim or
shape, empty, negative / zero-mass weights, non-symmetric / non-PSD matrices, zero / negative /
NaN / infinite / boolean / complex scalars, non-integer counts, unknown choices, ...) come from
the roles (``tests/_bad_input_matrix.py``). Each generated case must either raise an
``InputError`` whose message names the argument, or be a documented valid edge case that
returns a finite result. A raw exception from inside the library, an unnamed InputError, a
NaN/Inf output or a value returned for an invalid input fails the test, with the list of
failing cases in the message.

How it can fail: add a public function without validation (the coverage test fails until it
has a spec), or remove a check (its spec's cases report "accepted silently" or a raw error).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

from measureflow.core.results import SolverResult

sys.path.insert(0, str(Path(__file__).parent))
import _bad_input_matrix as M  # noqa: E402
import _bad_input_specs as SP  # noqa: E402

PACKAGES = ("ot", "bregman", "spectral", "optim", "conservation", "attention", "inverse",
            "meanfield", "sampling", "da", "datasets", "core")


def _category_exempt(obj) -> bool:
    """Exception classes and SolverResult dataclasses: built by the library, not computing."""
    return inspect.isclass(obj) and (issubclass(obj, BaseException)
                                     or issubclass(obj, SolverResult))


def test_every_exported_callable_has_a_spec_or_an_exemption():
    exported = M.exported_callables(PACKAGES)
    covered = {id(s.fn) for s in SP.SPECS}
    exempt = {id(M.resolve(name)) for name in SP.EXEMPT}
    missing = sorted(name for key, (name, obj) in exported.items()
                     if key not in covered and key not in exempt and not _category_exempt(obj))
    assert not missing, ("public callables without a bad-input spec (add one to "
                         f"tests/_bad_input_specs.py, or an exemption with its reason): {missing}")
    # every exemption has a reason and still names an exported callable
    names = {name for name, _ in exported.values()}
    assert all(isinstance(r, str) and len(r) > 10 for r in SP.EXEMPT.values())
    stale = sorted(n for n in SP.EXEMPT if id(M.resolve(n)) not in exported
                   and n not in names)
    assert not stale, f"exemptions of names that are no longer exported: {stale}"


def test_the_matrix_is_not_empty_and_checks_what_it_claims():
    # guard against a vacuous matrix: many cases, all roles used, each expectation present
    cases = [c for s in SP.SPECS for c in M.cases(s)]
    assert len(cases) > 5000
    assert {c.expect for c in cases} == {"error", "ok", "propagate"}
    roles = {a.role for s in SP.SPECS for _, _, a in M._tagged(s)}
    assert set(M.MUTATIONS) <= roles
    # the runner detects each kind of failure (self-test on deliberately bad callables)
    def silent(x):
        return 1.0

    def raw(x):
        raise TypeError("boom")

    import numpy as np
    for fn, words in ((silent, "accepted silently"), (raw, "raw TypeError")):
        spec = M.S("core.to_numpy", M.Arg(np.ones(3), "vector"))
        spec.call = lambda _f, *a, fn=fn, **k: fn(*a, **k)
        fails = M.run_spec(spec)
        assert fails and all(words in f or "valid" in f for f in fails), fails


def _spec_id(spec: M.Spec) -> str:
    same = [s for s in SP.SPECS if s.target == spec.target]
    return spec.target if len(same) == 1 else f"{spec.target}#{same.index(spec)}"


def _params():
    for spec in SP.SPECS:
        marks = []
        if spec.slow:
            marks.append(pytest.mark.slow)
        if spec.target in SP.KNOWN:
            marks.append(pytest.mark.xfail(reason=SP.KNOWN[spec.target], strict=False))
        yield pytest.param(spec, id=_spec_id(spec), marks=marks)


@pytest.mark.parametrize("spec", list(_params()))
def test_bad_inputs(spec):
    failures = M.run_spec(spec)
    assert not failures, f"{len(failures)} failing case(s):\n" + "\n".join(failures)
