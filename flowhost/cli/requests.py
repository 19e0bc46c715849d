"""CLI commands that call services: invoke (synchronous or ``--async``) and request (an
asynchronous request's status, result or failure detail)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from flowhost.cli.connect import TargetOption, UrlOption
from flowhost.cli.connect import client as _client
from flowhost.cli.exits import UsageError
from flowhost.cli.output import JsonOption, err, out, print_json
from flowhost.errors import NotFoundError

__all__ = ["register"]


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
    wait_timeout: Annotated[
        float,
        typer.Option(
            help="With --async: seconds to wait for the result; past them exit 5 (the request "
            "goes on: see 'flowhost request ID').",
            min=0,
        ),
    ] = 12 * 3600.0,
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Call an endpoint through the router and print the JSON answer."""
    try:
        body = json.loads(data)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--data: not valid JSON ({exc.msg} at column {exc.colno}).") from None
    name, _, ref = service.partition("@")
    with _client(target_name, url) as client:
        if not run_async:
            answer = client.invoke(name, endpoint, body, ref=ref or None)
            if json_output:
                print_json({"result": answer})
            else:
                out.print_json(data=answer)
            return
        submitted = client.submit(
            name, endpoint, body, ref=ref or None, idempotency_key=idempotency_key,
            callback_url=callback_url, timeout=timeout,
        )  # fmt: skip
        request_id = submitted["id"]
        queued = f"queued {request_id}  ({submitted['status_url']})"
        if not wait:
            if json_output:
                print_json({"request": submitted})
            else:
                out.print(queued, soft_wrap=True)
            return
        err.print(queued, soft_wrap=True, markup=False)
        seen: list[str] = []

        def show(status: dict[str, Any]) -> None:
            line = (
                f"{request_id}: {status['status']} (attempt {status['attempts']}, "
                f"{status['version'] or 'version pending'})"
            )
            if not seen or seen[-1] != line:  # one line per change, not per poll
                seen.append(line)
                err.print(f"  {line}", soft_wrap=True, markup=False)

        result = client.wait(request_id, timeout=wait_timeout, on_status=show)
    if json_output:
        print_json({"request": submitted, "result": result})
    else:
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
    json_output: JsonOption = False,
    target_name: TargetOption = None,
    url: UrlOption = None,
) -> None:
    """Show an asynchronous request's status (or, with --result, its result; with
    --detail, the exception behind its failure)."""
    if result and detail:
        raise UsageError("request: give --result or --detail, not both.")
    with _client(target_name, url) as client:
        if detail:
            try:
                found = client.request_detail(request_id)
            except NotFoundError as exc:
                raise NotFoundError(
                    f"{exc.message} A synchronous call's exception is in its instance's log, "
                    f"under its request id: flowhost logs <service> | grep {request_id}"
                ) from None
            if json_output:
                print_json({"id": request_id, "detail": found})
                return
            out.print_json(data={k: v for k, v in found.items() if k != "detail"})
            why = found.get("detail")
            if why is None:
                out.print("no exception recorded for this request.")
            else:
                out.print(f"{why.get('type')}: {why.get('message')}", soft_wrap=True, markup=False)
                print(why.get("traceback", ""), end="")
            return
        if result:
            answer = client.result(request_id)
            document: dict[str, Any] = {"id": request_id, "result": answer}
            if not json_output:  # what produced it, apart from the result itself (stdout)
                err.print(lineage(client.status_of(request_id)), soft_wrap=True, markup=False)
        else:
            answer = client.status_of(request_id)
            document = {"id": request_id, "status": answer}
    if json_output:
        print_json(document)
    elif result:
        out.print_json(data=answer)
    else:
        out.print(lineage(answer), soft_wrap=True, markup=False)
        out.print_json(data=answer)


def lineage(status: dict[str, Any]) -> str:
    """One line: the request, its status, and the version and pinned run that ran it (a
    run is pending until a delivery starts; none for a service without artifacts)."""
    state = status.get("status")
    version = status.get("version") or "pending"
    run = status.get("run") or ("pending" if state == "queued" else "none")
    return f"{status.get('id')}: {state}, version {version}, run {run}"


def register(app: typer.Typer) -> None:
    for command in (invoke, request):
        app.command()(command)
