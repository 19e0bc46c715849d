"""CLI commands that run or talk to a platform: up, deploy, promote, rollback, undeploy,
ls, status, invoke, request, logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flowhost.cli.connect import TargetOption, UrlOption
from flowhost.cli.connect import client as _client
from flowhost.errors import FlowhostError, NotFoundError

__all__ = ["register"]

out = Console(highlight=False)


def _version_number(ref: str) -> int:
    from flowhost.lambdas.store.records import version_number

    number = version_number(ref)
    if number is None:
        raise FlowhostError(f"version: expected v<N> or <N> (got {ref!r}). For example v3.")
    return number


def checked_otlp_endpoint(value: str | None) -> str | None:
    """``--otlp-endpoint`` checked as RuntimeSettings checks it, as one CLI line."""
    from flowhost.services.runtime import RuntimeSettings

    try:
        return RuntimeSettings(otlp_endpoint=value).otlp_endpoint
    except ValueError:
        raise FlowhostError(
            f"--otlp-endpoint: expected an http(s) URL such as http://127.0.0.1:4318 "
            f"(got {value!r})."
        ) from None


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
) -> None:
    """Start the local platform: API, router, activator and scaler on one port.

    Async callbacks are signed with $FLOWHOST_CALLBACK_SECRET, or else with a secret
    generated once and kept in HOME/callback-secret.
    """
    from flowhost.lambdas.async_requests import AsyncSettings
    from flowhost.lambdas.callbacks import CallbackPolicy
    from flowhost.lambdas.local.platform import PlatformSettings, run

    out.print(f"flowhost platform on http://{host}:{port}  (state in {home}/; Ctrl-C stops it)")
    run(
        PlatformSettings(
            home=home, host=host, port=port, store_url=store_url,
            cold_start_timeout=cold_start_timeout, scaler_tick=scaler_tick,
            otlp_endpoint=checked_otlp_endpoint(otlp_endpoint),
            scale_down_window=scale_down_window, health_interval=health_interval,
            deploy_timeout=deploy_timeout,
            asynchronous=AsyncSettings(
                result_ttl=result_ttl, max_attempts=async_attempts, visibility=async_visibility,
                retry_backoff=async_retry_backoff, sweep_interval=sweep_interval,
                callback=CallbackPolicy(attempts=callback_attempts, backoff=callback_backoff),
            ),
        ),
        log_level=log_level,
    )  # fmt: skip


def deploy(
    target: Annotated[str, typer.Argument(help="Service file: path/to/file.py[:ClassName].")],
    run: Annotated[str | None, typer.Option(help="Pin the artifact run, e.g. Flow/12.")] = None,
    promote: Annotated[bool, typer.Option(help="Promote once ready and audited.")] = False,
    alias: Annotated[str, typer.Option(help="Alias to promote to.")] = "production",
    allow_breaking: Annotated[
        bool, typer.Option(help="Promote even if the schema contract breaks.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 600.0,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Deploy a new version of a service (and optionally promote it)."""
    with _client(target_name, url) as client, out.status("deploying...") as status:

        def progress(message: str) -> None:
            out.print(f"  {message}")
            status.update(message)

        version = client.deploy(
            target, run=run, promote=promote, alias=alias, allow_breaking=allow_breaking,
            timeout=timeout, on_progress=progress,
        )  # fmt: skip
    out.print(f"[green]deployed[/] {version['service']} v{version['number']}")


def promote(
    service: str,
    version: Annotated[str, typer.Argument(help="v<N>")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "production",
    allow_breaking: Annotated[bool, typer.Option(help="Accept a breaking schema change.")] = False,
    force: Annotated[bool, typer.Option(help="Promote despite failed audits.")] = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Point an alias (production by default) at a version."""
    with _client(target_name, url) as client:
        result = client.promote(
            service, _version_number(version), alias=alias, allow_breaking=allow_breaking,
            force=force,
        )  # fmt: skip
    previous = f" (was v{result['previous']})" if result["previous"] else ""
    out.print(f"{service}@{alias} -> v{result['version']}{previous}")


def rollback(
    service: str,
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "production",
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Move an alias back to the version it pointed at before."""
    with _client(target_name, url) as client:
        result = client.rollback(service, alias=alias)
    out.print(f"{service}@{alias} -> v{result['version']}")


def undeploy(
    service: str,
    version: Annotated[str, typer.Argument(help="v<N>")],
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Stop a version and retire it (refused while an alias points at it)."""
    with _client(target_name, url) as client:
        client.undeploy(service, _version_number(version))
    out.print(f"undeployed {service} {version}")


def ls(target_name: TargetOption = None, url: UrlOption = None) -> None:
    """List services, their aliases, versions and running instances."""
    with _client(target_name, url) as client:
        services = client.services()
    table = Table("service", "aliases", "versions", "instances")
    for svc in services:
        aliases = ", ".join(f"{a}→v{n}" for a, n in sorted(svc["aliases"].items())) or "-"
        versions = ", ".join(f"v{v['number']} {v['status']}" for v in svc["versions"])
        inst = ", ".join(f"{k}: {v['ready']}" for k, v in svc["instances"].items()) or "-"
        table.add_row(svc["name"], aliases, versions, inst)
    out.print(table)


def status(service: str, target_name: TargetOption = None, url: UrlOption = None) -> None:
    """Show one service: versions with their runs, aliases, instances, recent events, and
    what of the platform is degraded (a launcher restarting, an instance being replaced)."""
    with _client(target_name, url) as client:
        info = client.service(service)
        events = client.events(service, limit=10)
        health: dict[str, Any] = client.request("GET", "/api/healthz")
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


def invoke(
    service: Annotated[str, typer.Argument(help="service or service@alias-or-version")],
    endpoint: str,
    data: Annotated[str, typer.Option(help="JSON request body.")] = "{}",
    run_async: Annotated[
        bool, typer.Option("--async", help="Queue it (up to 12 hours) and wait for the result.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="With --async: wait for the result.")] = True,
    idempotency_key: Annotated[
        str | None, typer.Option(help="With --async: the same key returns the same request.")
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="With --async: URL to POST the signed outcome to.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="With --async: seconds the run may take (max 43200).")
    ] = None,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Call an endpoint through the router and print the JSON answer."""
    try:
        body = json.loads(data)
    except json.JSONDecodeError as exc:
        raise FlowhostError(f"--data: not valid JSON ({exc.msg} at column {exc.colno}).") from None
    name, _, ref = service.partition("@")
    with _client(target_name, url) as client:
        if not run_async:
            out.print_json(data=client.invoke(name, endpoint, body, ref=ref or None))
            return
        submitted = client.submit(
            name, endpoint, body, ref=ref or None, idempotency_key=idempotency_key,
            callback_url=callback_url, timeout=timeout,
        )  # fmt: skip
        request_id = submitted["id"]
        out.print(f"queued {request_id}  ({submitted['status_url']})", soft_wrap=True)
        if not wait:
            return
        with out.status(f"{request_id}: queued") as spinner:

            def show(status: dict[str, Any]) -> None:
                spinner.update(
                    f"{request_id}: {status['status']} (attempt {status['attempts']}, "
                    f"{status['version'] or 'version pending'})"
                )

            result = client.wait(request_id, on_status=show)
    out.print_json(data=result)


def request(
    request_id: Annotated[str, typer.Argument(help="The id an --async invoke printed.")],
    result: Annotated[bool, typer.Option(help="Print the result instead of the status.")] = False,
    detail: Annotated[
        bool,
        typer.Option(
            help="Print why it failed: the exception's type, message and traceback "
            "(a control-plane read, for deployers; invokers see only the safe message)."
        ),
    ] = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Show an asynchronous request's status (or, with --result, its result; with
    --detail, the exception behind its failure)."""
    if result and detail:
        raise FlowhostError("request: give --result or --detail, not both.")
    with _client(target_name, url) as client:
        if detail:
            try:
                found = client.request_detail(request_id)
            except NotFoundError as exc:
                raise NotFoundError(
                    f"{exc.message} A synchronous call's exception is in its instance's log, "
                    f"under its request id: flowhost logs <service> | grep {request_id}"
                ) from None
            out.print_json(data={k: v for k, v in found.items() if k != "detail"})
            why = found.get("detail")
            if why is None:
                out.print("no exception recorded for this request.")
            else:
                out.print(f"{why.get('type')}: {why.get('message')}", soft_wrap=True, markup=False)
                print(why.get("traceback", ""), end="")
            return
        out.print_json(data=client.result(request_id) if result else client.status_of(request_id))


def logs(
    service: str,
    version: Annotated[str | None, typer.Argument(help="v<N>; default: production")] = None,
    tail: Annotated[int, typer.Option(help="Lines to show.")] = 50,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Print the last log lines of a version's instances."""
    with _client(target_name, url) as client:
        if version is None:
            aliases = client.service(service)["aliases"]
            if "production" not in aliases:
                raise FlowhostError(f"{service} has no production version; name one, e.g. v1.")
            number = int(aliases["production"])
        else:
            number = _version_number(version)
        print(client.logs(service, number, tail))


def register(app: typer.Typer) -> None:
    for command in (up, deploy, promote, rollback, undeploy, ls, status, invoke, request, logs):
        app.command()(command)
