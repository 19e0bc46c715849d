"""``flowhost``: serve one instance, inspect a definition, run and drive the platform."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape

import flowhost
from flowhost.cli.connect import register as register_connect_commands
from flowhost.cli.platform import checked_otlp_endpoint
from flowhost.cli.platform import register as register_platform_commands
from flowhost.errors import FlowhostError

__all__ = ["app", "main"]

app = typer.Typer(
    name="flowhost",
    help="Host Python model services: one class becomes a versioned, autoscaling web service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, highlight=False)

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
        raise FlowhostError(f"--max-body-size: {exc}.") from None
    if not 1024 <= max_body_bytes <= 1024**3:
        raise FlowhostError(
            f"--max-body-size: must be between 1Ki and 1Gi (got {max_body_size!r})."
        )
    cls = load_service(target)
    binding = definition_of(cls).artifacts
    if run is not None and binding is not None:  # check the pin now, not at the first read
        run = resolve_run(ArtifactBinding(flow=binding.flow_name, run=run))
    settings = RuntimeSettings(
        max_body_bytes=max_body_bytes, run=run, version=version, threads=threads,
        otlp_endpoint=checked_otlp_endpoint(otlp_endpoint),
    )  # fmt: skip
    raise typer.Exit(serve_app(cls, host=host, port=port, settings=settings, log_level=log_level))


@app.command()
def definition(target: Annotated[str, typer.Argument(help=TARGET_HELP)]) -> None:
    """Print the ServiceDefinition of a service class as JSON."""
    from flowhost.services.loader import load_service
    from flowhost.services.spec import definition_of

    print(json.dumps(definition_of(load_service(target)).model_dump(mode="json"), indent=2))


@app.command("version")
def show_version() -> None:
    """Print the flowhost version."""
    print(flowhost.__version__)


register_platform_commands(app)
register_connect_commands(app)


def main() -> None:
    """Console entry point: flowhost errors become one readable line and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except FlowhostError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        err.print("aborted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
