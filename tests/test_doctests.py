"""The Examples sections of the public docstrings run (doctest), module by module.

Every module of ``src/measureflow`` whose source contains a ``>>>`` prompt is collected
(experiments excepted: their docstrings describe runs, not calls). A module without examples
costs nothing here; adding an example to a docstring adds it to this test.
"""

from __future__ import annotations

import doctest
import importlib
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "measureflow"
SKIP = ("experiments",)


def _modules_with_examples():
    out = []
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC.parent).with_suffix("")
        if any(part in SKIP for part in rel.parts) or ">>>" not in f.read_text():
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


MODULES = _modules_with_examples()


def test_the_modules_written_for_issue_13_have_examples():
    for name in ("measureflow.ot.maps", "measureflow.da.transport", "measureflow.ot.costs"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    # only the docstrings of objects defined here (not names re-exported from other modules)
    tests = [t for t in tests if t.filename is None or pathlib.Path(t.filename).resolve()
             == pathlib.Path(module.__file__).resolve()]
    assert tests, f"{name} has '>>>' in its source but no docstring example was collected"
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
