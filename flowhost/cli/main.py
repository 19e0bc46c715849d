"""``flowhost``: serve one instance, inspect a definition, run and drive the platform.

Every command takes ``--json`` (one JSON document on stdout, whose schema ships in
``flowhost/cli/schemas``); exit codes are in ``flowhost/cli/exits.py``; docs/cli.md
documents both."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

import flowhost
from flowhost.cli.connect import register as register_connect_commands
from flowhost.cli.environments import register as register_environment_commands
from flowhost.cli.exits import USAGE, UsageError, exit_code_of
from flowhost.cli.output import JsonOption, err, print_json, wants_json
from flowhost.cli.platform import checked_otlp_endpoint
from flowhost.cli.platform import register as register_platform_commands
from flowhost.cli.requests import register as register_request_commands
from flowhost.cli.versions import register as register_version_commands
from flowhost.errors import FlowhostError

__all__ = ["app", "main"]

app = typer.Typer(
    name="flowhost",
    help="Host Python model services: one class becomes a versioned, autoscaling web service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

TARGET_HELP = "Service file, optionally with the class: path/to/file.py[:ClassName]."


@app.command()
def serve(
    target: Annotated[str, typer.Argument(help=TARGET_HELP)],
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    run: Annotated[
        str | None,
        typer.Option(help="Pin the artifact run, e.g. TrainFlow/12 (default: latest successful)."),
    ] = None,
    version: Annotated[str, typer.Option(help="Version label shown in /info and headers.")] = "dev",
    max_body_size: Annotated[
        str, typer.Option(help="Largest request body accepted, e.g. 4Mi or 512Ki.")
    ] = "4Mi",
    threads: Annotated[
        int, typer.Option(help="Worker threads for def endpoints.", min=1, max=1024)
    ] = 32,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="OTLP/HTTP collector for traces, e.g. http://127.0.0.1:4318 (default: off).",
            envvar="FLOWHOST_OTLP_ENDPOINT",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Print where the instance serves as one JSON document on stdout first."
        ),
    ] = False,
) -> None:
    """Run one instance of a service: its endpoints, /docs, /healthz, /readyz, /info, /metrics."""
    from flowhost.services.artifacts import resolve_run
    from flowhost.services.config import ArtifactBinding
    from flowhost.services.loader import load_service
    from flowhost.services.runtime import RuntimeSettings
    from flowhost.services.runtime import serve as serve_app
    from flowhost.services.spec import definition_of
    from flowhost.services.units import parse_bytes

    try:
        max_body_bytes = parse_bytes(max_body_size)
    except ValueError as exc:
        raise UsageError(f"--max-body-size: {exc}.") from None
    if not 1024 <= max_body_bytes <= 1024**3:
        raise UsageError(f"--max-body-size: must be between 1Ki and 1Gi (got {max_body_size!r}).")
    cls = load_service(target)
    binding = definition_of(cls).artifacts
    if run is not None and binding is not None:  # check the pin now, not at the first read
        run = resolve_run(ArtifactBinding(flow=binding.flow_name, run=run))
    settings = RuntimeSettings(
        max_body_bytes=max_body_bytes, run=run, version=version, threads=threads,
        otlp_endpoint=checked_otlp_endpoint(otlp_endpoint),
    )  # fmt: skip
    if json_output:
        print_json({"url": f"http://{host}:{port}", "service": definition_of(cls).name})
    raise typer.Exit(serve_app(cls, host=host, port=port, settings=settings, log_level=log_level))


@app.command()
def definition(
    target: Annotated[str, typer.Argument(help=TARGET_HELP)], json_output: JsonOption = False
) -> None:
    """Print the ServiceDefinition of a service class as JSON (with or without --json)."""
    from flowhost.services.loader import load_service
    from flowhost.services.spec import definition_of

    del json_output  # the definition is JSON either way
    print_json(definition_of(load_service(target)).model_dump(mode="json"))


@app.command("version")
def show_version(json_output: JsonOption = False) -> None:
    """Print the flowhost version."""
    if json_output:
        print_json({"version": flowhost.__version__})
    else:
        print(flowhost.__version__)


def _print_version(value: bool) -> None:
    if value:
        print(flowhost.__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Host Python model services: one class becomes a versioned, autoscaling web service.

    Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 audit or contract refused,
    5 timed out. See docs/cli.md.
    """


register_version_commands(app)
register_platform_commands(app)
register_request_commands(app)
register_connect_commands(app)
register_environment_commands(app)


def _fail(code: str, message: str, exit_code: int, as_json: bool) -> None:
    """One readable line on stderr (and, for --json, the error document on stdout)."""
    if as_json:
        print_json({"error": {"code": code, "message": message, "exit_code": exit_code}})
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(exit_code)


def main() -> None:
    """Console entry point: errors become one readable line and the exit code of their
    class (flowhost/cli/exits.py)."""
    as_json = wants_json(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except FlowhostError as exc:
        _fail(exc.code, exc.message, exit_code_of(exc), as_json)
        return
    except typer.TyperException as exc:  # typer's own parsing errors (usage: exit 2)
        exit_code = int(getattr(exc, "exit_code", USAGE))
        if as_json:
            said = exc.format_message()
            print_json({"error": {"code": "usage", "message": said, "exit_code": exit_code}})
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {exc.format_message()}", soft_wrap=True, markup=False)
        sys.exit(exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
