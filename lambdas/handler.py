"""The control plane's Lambda entry points (the platform program names them).

- ``handler``: the deployments API, the async request API and the catalog (one FastAPI
  / ASGI gateway under Mangum), behind API Gateway; and the deploy loop, for the
  ``{"flowhost": "advance-deploys"}`` events the function sends itself.
- ``activator``: the ALB target of parked routes (see ``flowhost.lambdas.aws.activator``).
- ``scaler``: the scheduled tick (see ``flowhost.lambdas.aws.scaler``); it advances
  deploys too, so a lost self-invocation only delays a deploy.

Each builds the control plane from its environment on first use and keeps it for the
invocations its execution environment serves; nothing kept in memory carries meaning
from one invocation to the next. ``create_handler`` adapts any ``Deployments`` (tests,
other wiring).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mangum import Mangum

from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments

if TYPE_CHECKING:
    from flowhost.lambdas.aws.runtime import ControlPlane

__all__ = [
    "ADVANCE_DEPLOYS",
    "ApiFunction",
    "activator",
    "create_handler",
    "handler",
    "invoke_event",
    "scaler",
]

log = logging.getLogger("flowhost.handler")

ADVANCE_DEPLOYS: dict[str, str] = {"flowhost": "advance-deploys"}
Invoke = Callable[[str, dict[str, Any]], None]  # (function name or ARN, event)

T = TypeVar("T")

_plane: ControlPlane | None = None


def create_handler(deployments: Deployments) -> Mangum:
    """A Lambda handler (``handler(event, context)``) serving the deployments API."""
    return Mangum(create_api(deployments), lifespan="off")


def control_plane() -> ControlPlane:
    global _plane
    if _plane is None:
        from flowhost.lambdas.aws.runtime import ControlPlane
        from flowhost.lambdas.aws.settings import AwsSettings

        _plane = ControlPlane(AwsSettings.from_env())
    return _plane


def invoke_event(function: str, event: dict[str, Any], client: Any = None) -> None:
    """Invoke ``function`` asynchronously (``InvocationType="Event"``) with ``event``.
    The default client honours ``AWS_ENDPOINT_URL_LAMBDA`` / ``AWS_ENDPOINT_URL``."""
    if client is None:
        import boto3

        make: Any = boto3.client  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        client = make("lambda")
    client.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the thread's event loop, the one Mangum uses (``asyncio.run``
    would leave none behind for the next API request)."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:  # no loop on this thread (an asyncio.run cleared it)
        loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop.run_until_complete(coro)


class ApiFunction:
    """The API function's handler. API Gateway events go to the gateway; once one of
    them recorded a deploy, the function invokes itself with ``ADVANCE_DEPLOYS``. Such an
    event runs ``advance()`` until no deploy is unfinished or fewer than ``margin_ms``
    of the invocation remain, then invokes itself again if deploys are still open."""

    def __init__(
        self,
        plane: Callable[[], ControlPlane],
        *,
        invoke: Invoke = invoke_event,
        margin_ms: int = 20_000,
        interval: float = 5.0,
    ) -> None:
        """``interval``: seconds between two rounds of ``advance`` (ECS reports every few)."""
        self.plane = plane
        self.invoke = invoke
        self.margin_ms = margin_ms
        self.interval = interval
        self._api: Mangum | None = None
        self._recorded = False  # set by the invocation that is running, reset by it

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("flowhost") == ADVANCE_DEPLOYS["flowhost"]:
            return self.advance(context)
        plane = self.plane()
        if self._api is None:
            plane.deployments.on_recorded = self._on_recorded
            self._api = Mangum(cast(Any, plane.app), lifespan="off")
        self._recorded = False
        try:
            return self._api(event, context)
        finally:
            if self._recorded:
                self._recorded = False
                self._continue(context)

    def _on_recorded(self, _version: object) -> None:
        self._recorded = True

    def _continue(self, context: Any) -> None:
        """Invoke this function again to advance deploys; if that fails, the scheduled
        tick still advances them (later)."""
        function = getattr(context, "invoked_function_arn", None) or os.environ.get(
            "AWS_LAMBDA_FUNCTION_NAME", ""
        )
        try:
            self.invoke(function, dict(ADVANCE_DEPLOYS))
        except Exception:
            log.exception(
                "could not invoke the control-plane function to advance deploys; the "
                "scheduled tick will",
                extra={"fields": {"function": function}},
            )

    def advance(self, context: Any) -> dict[str, Any]:
        deployments = self.plane().deployments
        rounds = 0
        while True:
            unfinished = _run(deployments.advance())
            rounds += 1
            if not unfinished:
                return {"unfinished": 0, "rounds": rounds, "continued": False}
            left_ms = int(context.get_remaining_time_in_millis())
            if left_ms - self.interval * 1000 < self.margin_ms:
                self._continue(context)
                return {"unfinished": unfinished, "rounds": rounds, "continued": True}
            time.sleep(self.interval)


handler = ApiFunction(control_plane)


def activator(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The ALB's target for parked routes. An edge caller whose version is not up within
    the edge's budget is held (303 to its wait URL) while this function, invoked again
    with the wake event, finishes the wake."""
    import httpx

    from flowhost.lambdas.aws.activator import WAKE_EVENT, Activator
    from flowhost.services.edge import EDGE_BUDGET_SECONDS

    plane = control_plane()
    me = str(getattr(context, "invoked_function_arn", "") or os.environ["AWS_LAMBDA_FUNCTION_NAME"])
    budget = float(os.environ.get("FLOWHOST_EDGE_BUDGET_SECONDS") or EDGE_BUDGET_SECONDS)

    async def wake_later(service: str, number: int) -> None:
        wake = {"flowhost": WAKE_EVENT, "service": service, "version": number}
        await asyncio.to_thread(invoke_event, me, wake)

    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            active = Activator(
                plane.store, plane.fleet, http, plane.balancer_url(),
                requests=plane.requests, wake_later=wake_later, budget=budget,
            )  # fmt: skip
            return await active.handle(event)

    return asyncio.run(run())


def scaler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from flowhost.lambdas.aws.scaler import AwsScaler

    plane = control_plane()
    tick = AwsScaler(
        plane.store, plane.fleet, plane.queues, plane.cloudwatch, plane.requests,
        listener_arn=plane.settings.listener_arn, deployments=plane.deployments,
    )  # fmt: skip
    return asdict(asyncio.run(tick.tick()))
