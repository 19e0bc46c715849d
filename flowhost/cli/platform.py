"""CLI commands that run or read a platform: up, ls, status, logs (deploy and friends
are in versions.py, invoke and request in requests.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import typer
from rich.table import Table

from flowhost.cli.connect import TargetOption, UrlOption
from flowhost.cli.connect import client as _client
from flowhost.cli.exits import UsageError
from flowhost.cli.output import JsonOption, err, out, print_json
from flowhost.cli.versions import version_number
from flowhost.errors import FlowhostError, NotFoundError

__all__ = ["checked_otlp_endpoint", "register"]


def checked_otlp_endpoint(value: str | None) -> str | None:
    """``--otlp-endpoint`` checked as RuntimeSettings checks it, as one CLI line."""
    from flowhost.services.runtime import RuntimeSettings

    try:
        return RuntimeSettings(otlp_endpoint=value).otlp_endpoint
    except ValueError:
        raise UsageError(
            f"--otlp-endpoint: expected an http(s) URL such as http://127.0.0.1:4318 "
            f"(got {value!r})."
        ) from None


def checked_index(value: str | None) -> str | None:
    """``--package-index``: an http(s) URL with no credentials in it (they would be kept)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--package-index: expected an http(s) URL such as https://pypi.example/simple/ "
            f"(got {value!r})."
        )
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "--package-index: the URL holds credentials, which would be recorded with every "
            "environment. Give the bare URL and the credentials in "
            '$FLOWHOST_PACKAGE_INDEX_CREDENTIALS as {"username": ..., "password": ...}.'
        )
    return value


def up(
    port: Annotated[int, typer.Option(help="Port for the API and router.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    home: Annotated[Path, typer.Option(help="Where state, packages and logs live.")] = Path(
        ".flowhost"
    ),
    store_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the state store (default: SQLite).")
    ] = None,
    cold_start_timeout: Annotated[
        float, typer.Option(help="Seconds a request waits for an instance to start.")
    ] = 60.0,
    scaler_tick: Annotated[
        float, typer.Option(help="Seconds between scaling decisions.", min=0.01, max=60)
    ] = 0.5,
    scale_down_window: Annotated[
        float,
        typer.Option(help="Seconds of peak load remembered before scaling down.", min=0, max=3600),
    ] = 30.0,
    health_interval: Annotated[
        float, typer.Option(help="Seconds between health checks of instances.", min=0.05)
    ] = 5.0,
    result_ttl: Annotated[
        float,
        typer.Option(help="Seconds async results are kept after they finish.", min=1),
    ] = 86400.0,
    async_attempts: Annotated[
        int,
        typer.Option(help="Deliveries of an async request before it is dead-lettered.", min=1),
    ] = 3,
    async_visibility: Annotated[
        float,
        typer.Option(help="Seconds a running async job stays claimed between heartbeats.", min=0.3),
    ] = 60.0,
    async_retry_backoff: Annotated[
        float, typer.Option(help="Seconds before the first retry of a failed async job.", min=0)
    ] = 5.0,
    callback_attempts: Annotated[
        int, typer.Option(help="POSTs of a callback before giving up.", min=1, max=50)
    ] = 6,
    callback_backoff: Annotated[
        float, typer.Option(help="Seconds before the first callback retry (doubles).", min=0)
    ] = 1.0,
    sweep_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between async expiry, dead-letter and callback sweeps.", min=0.05
        ),
    ] = 1.0,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="OTLP/HTTP collector (e.g. http://127.0.0.1:4318): the router and instances "
            "send traces there, W3C context from the router to the instance.",
            envvar="FLOWHOST_OTLP_ENDPOINT",
        ),
    ] = None,
    deploy_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a new version has to start its first instance, or its deploy fails.",
            envvar="FLOWHOST_DEPLOY_TIMEOUT",
            min=1,
        ),
    ] = 600.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    auth: Annotated[
        Literal["none", "token"],
        typer.Option(
            help="token: the API needs the deployer token, service routes the invoker "
            "token (both kept in HOME/tokens/). Required on any non-loopback --host.",
            envvar="FLOWHOST_AUTH",
        ),
    ] = "none",
    open_services: Annotated[
        bool, typer.Option(help="With --auth token: service routes need no token.")
    ] = False,
    package_index: Annotated[
        str | None,
        typer.Option(
            help="The index environments are built from, e.g. https://pypi.example/simple/ "
            "(default: uv's own configuration). Credentials: "
            "$FLOWHOST_PACKAGE_INDEX_CREDENTIALS as JSON {username, password}.",
            envvar="FLOWHOST_PACKAGE_INDEX",
        ),
    ] = None,
    rotate_token: Annotated[
        Literal["deployer", "invoker"] | None,
        typer.Option(help="Replace this role's token in HOME/tokens/ before starting."),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print where the platform serves as one JSON document on stdout first.",
        ),
    ] = False,
) -> None:
    """Start the local platform: API, router, activator and scaler on one port.

    Async callbacks are signed with $FLOWHOST_CALLBACK_SECRET, or else with a secret
    generated once and kept in HOME/callback-secret.
    """
    from flowhost.lambdas.async_requests import AsyncSettings
    from flowhost.lambdas.callbacks import CallbackPolicy
    from flowhost.lambdas.local.access import rotate, serve_check
    from flowhost.lambdas.local.platform import PlatformSettings, run

    try:
        serve_check(host, auth)  # before anything is printed or started
    except FlowhostError as error:
        raise UsageError(error.message) from None
    if rotate_token is not None:
        err.print(f"new {rotate_token} token in {rotate(home.resolve(), rotate_token)}")

    if json_output:
        print_json({"url": f"http://{host}:{port}", "home": str(home)})
    else:
        out.print(f"flowhost platform on http://{host}:{port}  (state in {home}/; Ctrl-C stops it)")
    run(
        PlatformSettings(
            home=home, host=host, port=port, store_url=store_url,
            cold_start_timeout=cold_start_timeout, scaler_tick=scaler_tick,
            otlp_endpoint=checked_otlp_endpoint(otlp_endpoint),
            scale_down_window=scale_down_window, health_interval=health_interval,
            deploy_timeout=deploy_timeout, auth=auth, open_services=open_services,
            package_index=checked_index(package_index),
            asynchronous=AsyncSettings(
                result_ttl=result_ttl, max_attempts=async_attempts, visibility=async_visibility,
                retry_backoff=async_retry_backoff, sweep_interval=sweep_interval,
                callback=CallbackPolicy(attempts=callback_attempts, backoff=callback_backoff),
            ),
        ),
        log_level=log_level,
    )  # fmt: skip


def ls(
    json_output: JsonOption = False, target_name: TargetOption = None, url: UrlOption = None
) -> None:
    """List services, their aliases, versions and running instances."""
    with _client(target_name, url) as client:
        services = client.services()
    if json_output:
        print_json({"services": services})
        return
    table = Table("service", "aliases", "versions", "instances")
    for svc in services:
        aliases = ", ".join(f"{a}→v{n}" for a, n in sorted(svc["aliases"].items())) or "-"
        versions = ", ".join(f"v{v['number']} {v['status']}" for v in svc["versions"])
        inst = ", ".join(f"{k}: {v['ready']}" for k, v in svc["instances"].items()) or "-"
        table.add_row(svc["name"], aliases, versions, inst)
    out.print(table)


def status(
    service: str,
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Show one service: versions with their runs, aliases, instances, recent events, and
    what of the platform is degraded (a launcher restarting, an instance being replaced)."""
    with _client(target_name, url) as client:
        info = client.service(service)
        events = client.events(service, limit=10)
        health: dict[str, Any] = client.request("GET", "/api/healthz")
    if json_output:
        degraded: list[str] = health.get("degraded") or []
        print_json({"service": info, "events": events, "degraded": degraded})
        return
    table = Table("version", "status", "run", "created by", "instances", "error")
    for v in info["versions"]:
        inst = info["instances"].get(f"v{v['number']}", {})
        table.add_row(
            f"v{v['number']}", v["status"], v["artifact_run"] or "-", v["created_by"],
            str(inst.get("ready", 0)), (v["error"] or "")[:60],
        )  # fmt: skip
    out.print(table)
    out.print("aliases: " + (", ".join(f"{a}→v{n}" for a, n in info["aliases"].items()) or "none"))
    drift: dict[str, list[str]] = info.get("drift") or {}
    if drift.get("orphaned"):
        out.print(f"drift: compute with no live version record: {', '.join(drift['orphaned'])}")
    if drift.get("missing"):
        out.print(f"drift: live versions whose compute is gone: {', '.join(drift['missing'])}")
    for e in events:
        where = f" {e['alias']}" if e["alias"] else ""
        out.print(f"  {e['created_at'][:19]} {e['kind']}{where} v{e['version']} by {e['actor']}")
    for why in health.get("degraded") or []:
        out.print(f"platform degraded: {why}", soft_wrap=True)


def logs(
    service: str,
    version: Annotated[str | None, typer.Argument(help="v<N>; default: production")] = None,
    tail: Annotated[int, typer.Option(help="Lines to show.", min=1)] = 50,
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Print the last log lines of a version's instances."""
    with _client(target_name, url) as client:
        if version is None:
            aliases = client.service(service)["aliases"]
            if "production" not in aliases:
                raise NotFoundError(f"{service} has no production version; name one, e.g. v1.")
            number = int(aliases["production"])
        else:
            number = version_number(version)
        log = client.logs(service, number, tail)
    if json_output:
        print_json({"service": service, "version": number, "log": log})
    else:
        print(log)


def register(app: typer.Typer) -> None:
    for command in (up, ls, status, logs):
        app.command()(command)
