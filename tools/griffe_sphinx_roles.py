"""Griffe extension: render the Sphinx roles of measureflow's numpydoc docstrings on the site.

The docstrings cross-reference with Sphinx roles (``:func:`~measureflow.ot.solve```), which
``help()`` and Sphinx read but mkdocstrings would print verbatim. This extension rewrites each
role, when the API reference is built, into an *optional* mkdocs-autorefs cross-reference: a
link to the object's entry where the reference documents it, plain code otherwise (no broken
link, no warning under ``mkdocs build --strict``). The docstrings themselves are unchanged.

``~a.b.c`` shows ``c``; ``a.b.c`` shows the full path; ``title <a.b.c>`` shows the title.
Enabled in mkdocs.yml (``extensions:`` of the python handler).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

#: :role:`target`, with the roles the docstrings use.
ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):`([^`]+)`")


def _replace(match: re.Match) -> str:
    text = match.group(1).strip()
    explicit = re.fullmatch(r"(.+?)\s*<([^>]+)>", text)
    if explicit:
        title, target = explicit.group(1), explicit.group(2)
    else:
        target = text.lstrip("~").rstrip("()")
        title = target.rsplit(".", 1)[-1] if text.startswith("~") else target
        if text.endswith("()"):
            title += "()"
    ident = html.escape(target.lstrip("~"), quote=True)
    return f'<autoref identifier="{ident}" optional><code>{html.escape(title)}</code></autoref>'


def convert(text: str) -> str:
    """The docstring ``text`` with every Sphinx role replaced (see the module docstring)."""
    return ROLE.sub(_replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = convert(obj.docstring.value)
