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


def _python_blocks(path: pathlib.Path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page", ["getting-started.md"])
def test_guide_code_blocks_run(page):
    """The ```python blocks of a guide page run in order, in one namespace."""
    namespace: dict = {}
    for block in _python_blocks(ROOT / "docs" / page):
        exec(compile(block, f"docs/{page}", "exec"), namespace)
