"""The control plane's Lambda entry points (the platform program names them).

- ``handler``: the deployments API, the async request API and the catalog (one FastAPI
  / ASGI gateway under Mangum), behind API Gateway.
- ``activator``: the ALB target of parked routes (see ``flowhost.lambdas.aws.activator``).
- ``scaler``: the scheduled tick (see ``flowhost.lambdas.aws.scaler``).

Each builds the control plane from its environment on first use and keeps it for the
invocations its execution environment serves. ``create_handler`` adapts any
``Deployments`` (tests, other wiring).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

from mangum import Mangum

from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments

if TYPE_CHECKING:
    from flowhost.lambdas.aws.runtime import ControlPlane

__all__ = ["activator", "create_handler", "handler", "scaler"]

_plane: ControlPlane | None = None
_api: Mangum | None = None


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


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _api
    if _api is None:
        _api = Mangum(cast(Any, control_plane().app), lifespan="off")
    return _api(event, context)


def activator(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import httpx

    from flowhost.lambdas.aws.activator import Activator

    plane = control_plane()

    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            active = Activator(plane.store, plane.fleet, http, plane.balancer_url())
            return await active.handle(event)

    return asyncio.run(run())


def scaler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from flowhost.lambdas.aws.scaler import AwsScaler

    plane = control_plane()
    tick = AwsScaler(
        plane.store, plane.fleet, plane.queues, plane.cloudwatch, plane.requests,
        listener_arn=plane.settings.listener_arn,
    )  # fmt: skip
    return asdict(asyncio.run(tick.tick()))
