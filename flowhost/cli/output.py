"""How commands print: ``--json`` (one JSON document on stdout) or plain lines, and
progress on stderr (a spinner on a terminal, plain lines in CI logs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Annotated, Any

import typer
from rich.console import Console

__all__ = ["JsonOption", "err", "out", "print_json", "progress", "schema_of", "wants_json"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document on stdout (its schema ships in flowhost/cli/schemas); "
        "progress and logs go to stderr.",
    ),
]


def print_json(document: Any) -> None:
    """One JSON document on stdout, unstyled and unwrapped."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def schema_of(command: str) -> dict[str, Any]:
    """The JSON Schema of a command's ``--json`` output (``contract-check`` for
    ``contract check``; ``error`` for any command's failure)."""
    text = resources.files("flowhost.cli").joinpath("schemas", f"{command}.json").read_text()
    return json.loads(text)


def wants_json(argv: list[str]) -> bool:
    """Whether a command line asked for ``--json`` (for errors raised before it printed)."""
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


@contextmanager
def progress(first: str) -> Iterator[Callable[[str], None]]:
    """A function that reports a step: each step as a line on stderr, and, when stderr is
    a terminal, a spinner showing the latest one."""
    if not err.is_terminal:

        def line(message: str) -> None:
            err.print(f"  {message}", soft_wrap=True, markup=False)

        yield line
        return
    with err.status(first) as status:

        def update(message: str) -> None:
            err.print(f"  {message}", soft_wrap=True, markup=False)
            status.update(message)

        yield update
