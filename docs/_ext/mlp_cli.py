"""``mlp-options``: the options of an ``mlp`` command, generated from the parser the command
runs, so the page never disagrees with ``mlp COMMAND --help``.

Usage in a MyST page::

    ```{mlp-options} train
    ```

The argument is a sub-command of ``mlp`` (``train``, ``evaluate``, ``predict``, ``info``,
``bench``) or ``mlp`` for the top-level options. The output: the usage line, the command's
description, and a definition list of its options with their choices, defaults and help. ``mlp
bench`` hands its arguments to the benchmark suite's own parser, which is the one shown.
"""

from __future__ import annotations

import argparse

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``mlp NAME`` (``mlp`` itself for ``"mlp"``)."""
    from mlp.cli.app import COMMANDS, build_parser

    if name == "bench":
        from benchmarks.run import build_parser as bench_parser

        return bench_parser()
    parser = build_parser()
    if name == "mlp":
        return parser
    if name not in COMMANDS:
        raise ValueError(f"mlp has no command {name!r}: one of {', '.join(COMMANDS)}")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """``(invocation, help)`` per option and positional argument, as ``--help`` prints them
    (``--backend {numpy,cupy,...}``, help with its default), help options left out."""
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        invocation = formatter._format_action_invocation(action)
        text = formatter._expand_help(action) if action.help else ""
        rows.append((invocation, " ".join(text.split())))
    return rows


class MLPOptions(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        try:
            parser = command_parser(name)
        except (ValueError, ImportError) as exc:
            raise self.error(f"mlp-options {name}: {exc}") from exc
        usage = " ".join(parser.format_usage().split())
        out: list[nodes.Node] = [nodes.literal_block(usage, usage, language="text")]
        if parser.description:
            out.append(nodes.paragraph(text=" ".join(parser.description.split())))
        items = nodes.definition_list()
        for invocation, text in option_rows(parser):
            term = nodes.term()
            term += nodes.literal(invocation, invocation)
            definition = nodes.definition()
            definition += nodes.paragraph(text=text)
            items += nodes.definition_list_item("", term, definition)
        if len(items):
            out.append(items)
        return out


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("mlp-options", MLPOptions)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
