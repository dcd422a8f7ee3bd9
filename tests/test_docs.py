"""The documentation: the site builds with warnings as errors, and the code of the guide runs."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_mkdocs_site_builds_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec(
            "mkdocstrings") is None:
        pytest.skip("mkdocs / mkdocstrings not installed (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                        str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    site = tmp_path / "site"
    # the API reference was generated from the docstrings (not an empty page)
    api = (site / "api" / "maps" / "index.html").read_text()
    assert "EntropicMap" in api and "Pooladian" in api
    assert "fit_transform" in (site / "api" / "da" / "index.html").read_text()
    assert (site / "examples" / "index.html").is_file()
    # Sphinx roles of the docstrings render as links or code, never verbatim
    # (tools/griffe_sphinx_roles.py)
    for page in sorted((site / "api").glob("*/index.html")):
        text = page.read_text()
        assert not re.search(r":(func|class|mod|meth|attr|data|obj|exc):`", text), page
    assert 'class="autorefs autorefs-internal"' in (site / "api" / "ot" / "index.html").read_text()


def test_sphinx_role_conversion():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from griffe_sphinx_roles import convert
    finally:
        sys.path.pop(0)
    out = convert("See :func:`~measureflow.ot.solve`, :class:`measureflow.ot.OTResult` and "
                  ":meth:`the plan <measureflow.ot.OTResult.apply>`; :func:`f()` too.")
    assert out.count("<autoref ") == 4 and ":func:" not in out
    assert '<autoref identifier="measureflow.ot.solve" optional><code>solve</code></autoref>' in out
    assert "<code>measureflow.ot.OTResult</code>" in out and "<code>the plan</code>" in out
    assert 'identifier="f" optional><code>f()</code>' in out


def _python_blocks(path: pathlib.Path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page", ["getting-started.md"])
def test_guide_code_blocks_run(page):
    """The ```python blocks of a guide page run in order, in one namespace."""
    namespace: dict = {}
    for block in _python_blocks(ROOT / "docs" / page):
        exec(compile(block, f"docs/{page}", "exec"), namespace)
