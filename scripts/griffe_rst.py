"""A Griffe extension for the manual's API reference: the docstrings use a little reStructuredText
(``:func:`x``` roles, ``Usage::`` literal blocks); rendered as Markdown by mkdocstrings, the roles
would show as text. This rewrites them on the fly (the source stays as it is):

* ``:func:`forensight.x.y``` (and ``:class:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``,
  ``:exc:``) -> ``forensight.x.y`` in code;
* a paragraph ending in ``::`` followed by an indented block -> that paragraph ending in ``:`` and
  a fenced code block.
"""

from __future__ import annotations

import re
import textwrap

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")


def rst_to_markdown(text: str) -> str:
    """``text`` with reStructuredText roles and ``::`` literal blocks made Markdown."""
    text = ROLE.sub(r"``\1``", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            out.append(line.rstrip()[:-1] if line.strip() != "::" else "")
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            indent = len(line) - len(line.lstrip())
            block = []
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                out += ["", " " * indent + "```python" if "import" in "".join(block) or "(" in "".join(block)
                        else " " * indent + "```text"]
                out += [" " * indent + b for b in textwrap.dedent("\n".join(block)).split("\n")]
                out += [" " * indent + "```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded docstring with :func:`rst_to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
