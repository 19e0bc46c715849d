"""CLI commands that change which versions run and serve: deploy, promote, rollback,
undeploy, and ``contract check`` (what a new class would break at an alias)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flowhost.cli.connect import TargetOption, UrlOption
from flowhost.cli.connect import client as _client
from flowhost.cli.exits import REFUSED, UsageError
from flowhost.cli.output import JsonOption, out, print_json, progress
from flowhost.errors import NotFoundError

__all__ = ["register", "version_number"]

SERVICE_FILE_HELP = "Service file: path/to/file.py[:ClassName]."


def version_number(ref: str) -> int:
    """``v3`` or ``3`` as 3; a usage error otherwise."""
    from flowhost.lambdas.store.records import version_number as parse

    number = parse(ref)
    if number is None:
        raise UsageError(f"version: expected v<N> or <N> (got {ref!r}). For example v3.")
    return number


def deploy(
    target: Annotated[str, typer.Argument(help=SERVICE_FILE_HELP)],
    run: Annotated[str | None, typer.Option(help="Pin the artifact run, e.g. Flow/12.")] = None,
    promote: Annotated[bool, typer.Option(help="Promote once ready and audited.")] = False,
    alias: Annotated[str, typer.Option(help="Alias to promote to.")] = "production",
    allow_breaking: Annotated[
        bool, typer.Option(help="Promote even if the schema contract breaks.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            help="Wait until the version is ready and audited (--no-wait: print the version "
            "record once the deploy is accepted)."
        ),
    ] = True,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for readiness (exit 5 past it).", min=0)
    ] = 600.0,
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Deploy a new version of a service (and optionally promote it)."""
    if promote and not wait:
        raise UsageError(
            "--promote needs the version ready: drop --no-wait, or promote later with "
            "'flowhost promote SERVICE vN'."
        )
    with _client(target_name, url) as client, progress("deploying...") as say:
        version = client.deploy(
            target, run=run, promote=promote, alias=alias, allow_breaking=allow_breaking,
            timeout=timeout, on_progress=say, wait=wait,
        )  # fmt: skip
    if json_output:
        print_json(version)
        return
    done = "deployed" if wait else f"accepted ({version['status']})"
    out.print(f"[green]{done}[/] {version['service']} v{version['number']}")


def promote(
    service: str,
    version: Annotated[str, typer.Argument(help="v<N>")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "production",
    allow_breaking: Annotated[bool, typer.Option(help="Accept a breaking schema change.")] = False,
    force: Annotated[bool, typer.Option(help="Promote despite failed audits.")] = False,
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Point an alias (production by default) at a version."""
    number = version_number(version)
    with _client(target_name, url) as client:
        result = client.promote(
            service, number, alias=alias, allow_breaking=allow_breaking, force=force
        )
    if json_output:
        print_json(result)
        return
    previous = f" (was v{result['previous']})" if result["previous"] else ""
    out.print(f"{service}@{alias} -> v{result['version']}{previous}")


def rollback(
    service: str,
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "production",
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Move an alias back to the version it pointed at before."""
    with _client(target_name, url) as client:
        result = client.rollback(service, alias=alias)
    if json_output:
        print_json(result)
        return
    out.print(f"{service}@{alias} -> v{result['version']}")


def undeploy(
    service: str,
    version: Annotated[str, typer.Argument(help="v<N>")],
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Stop a version and retire it (refused while an alias points at it)."""
    number = version_number(version)
    with _client(target_name, url) as client:
        record = client.undeploy(service, number)
    if json_output:
        print_json(record)
        return
    out.print(f"undeployed {service} {version}")


contract_app = typer.Typer(
    name="contract", help="Schema contracts between a service file and a deployed version."
)


@contract_app.command("check")
def contract_check(
    service_file: Annotated[str, typer.Argument(help=SERVICE_FILE_HELP)],
    alias: Annotated[str, typer.Option(help="The alias whose clients must keep working.")] = (
        "production"
    ),
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """List what the class in SERVICE_FILE would break for clients of the version at the
    alias; exit 4 if anything. Nothing at the alias yet (a first deploy) breaks nothing."""
    from flowhost.lambdas.contracts import breaking_changes
    from flowhost.services.definition import ServiceDefinition
    from flowhost.services.loader import load_service
    from flowhost.services.spec import definition_of

    candidate = definition_of(load_service(service_file))
    name = candidate.name
    with _client(target_name, url) as client:
        current: dict[str, Any] | None = None
        try:
            number = client.service(name)["aliases"].get(alias)
        except NotFoundError:
            number = None
        if number is not None:
            current = client.version(name, int(number))
    changes: list[str] = []
    if current is not None:
        deployed = ServiceDefinition.model_validate(current["definition"])
        changes = breaking_changes(deployed, candidate)
    report = {
        "service": name,
        "alias": alias,
        "version": None if current is None else current["number"],
        "compatible": not changes,
        "breaking_changes": changes,
    }
    if json_output:
        print_json(report)
    elif current is None:
        out.print(f"{name}@{alias}: no version yet; nothing to keep compatible with.")
    elif not changes:
        out.print(f"{name}: compatible with {name}@{alias} (v{current['number']}).")
    else:
        out.print(
            f"{name}: {len(changes)} breaking change(s) for clients of {name}@{alias} "
            f"(v{current['number']}):",
            soft_wrap=True,
        )
        for change in changes:
            out.print(f"  {change}", soft_wrap=True, markup=False)
    if changes:
        raise typer.Exit(REFUSED)


def register(app: typer.Typer) -> None:
    for command in (deploy, promote, rollback, undeploy):
        app.command()(command)
    app.add_typer(contract_app)
