"""Write the command line's reference page from its parser: docs/cli-reference.md, every command's `--help`.

    python scripts/docs_cli.py
"""

import argparse
import os
from pathlib import Path
from unittest import mock

from keras_ae import cli

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli-reference.md"
WIDTH = "100"  # argparse wraps at $COLUMNS; fixed here so the page does not depend on the terminal


def reference():
    """The page: `keras-ae --help`, then each command's `--help`, as argparse prints them."""
    with mock.patch.dict(os.environ, {"COLUMNS": WIDTH}):
        return _reference(cli.parser())


def _reference(root):
    commands = next(action for action in root._actions if isinstance(action, argparse._SubParsersAction))
    lines = ["# Command reference", "", "Generated from the parser by `python scripts/docs_cli.py`; the everyday jobs are on "
             "[the command line](cli.md) page.", "", "```text", root.format_help().rstrip(), "```", ""]
    for name, command in commands.choices.items():
        lines += [f"## keras-ae {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    PAGE.write_text(reference())
