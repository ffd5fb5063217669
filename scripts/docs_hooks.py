"""MkDocs hooks of the manual (``mkdocs.yml``: ``hooks:``).

``<!-- forensight:cli-reference -->`` in a page is replaced, at build time, by the reference of every
``forensight`` subcommand generated from the argument parser itself (``forensight.cli.build_parser``),
so the manual's CLI reference cannot drift from the code. ``tests/test_docs.py`` checks that every
subcommand and option appears in it.
"""

from __future__ import annotations

import argparse
import html

MARKER = "<!-- forensight:cli-reference -->"

__all__ = ["MARKER", "cli_reference", "on_page_markdown"]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Subcommand name -> (its one-line help, its parser), in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def _cell(text: str) -> str:
    """Text for a Markdown table cell: escaped, no pipes or newlines."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "&#124;")


def _default(value: object) -> str:
    """A default value as a user would type it: lists comma-separated, paths as text."""
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return f"`{value}`"


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{s}`" for s in a.option_strings) if a.option_strings else f"`{a.dest.upper()}`"
        if a.option_strings and a.nargs != 0:
            name += f" `{a.metavar or a.dest.upper()}`"
        if a.required and a.option_strings:
            name += " (required)"
        help_text = "" if a.help is None else a.help.replace("%%", "%")
        if a.choices:
            if help_text and not help_text.rstrip().endswith("."):
                help_text = help_text.rstrip() + "."
            help_text += f" Choices: {', '.join(str(c) for c in a.choices)}."
        default = a.default
        show_default = (a.option_strings and a.nargs != 0 and default not in (None, argparse.SUPPRESS)
                        and not isinstance(a, argparse._StoreConstAction))
        rows.append(f"| {name} | {_cell(help_text)} | {_default(default).replace('|', '&#124;') if show_default else ''} |")
    return rows


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """Markdown reference of every subcommand of ``parser`` (default: the ``forensight`` parser)."""
    if parser is None:
        from forensight.cli import build_parser

        parser = build_parser()
    out = [f"```text\n{parser.format_usage().strip()}\n```", "", "| argument | meaning | default |",
           "|---|---|---|", *_argument_rows(parser), ""]
    for name, (help_text, sub) in _subcommands(parser).items():
        out += [f"## forensight {name}", "", _cell(help_text) + ".", "",
                f"```text\n{sub.format_usage().strip()}\n```", ""]
        rows = _argument_rows(sub)
        if rows:
            out += ["| argument | meaning | default |", "|---|---|---|", *rows]
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: object, config: object, files: object) -> str:
    """Replace the marker with the generated CLI reference."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown
