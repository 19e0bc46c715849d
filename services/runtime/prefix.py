"""Service paths on an instance: ``/{service}/...`` and ``/{service}@{ref}/...`` as well as
the bare ``/...``.

On AWS the load balancer forwards ``/sentiment/predict`` (or ``/sentiment@v3/predict``)
unchanged to the version's tasks, while the local router strips the prefix first. This
ASGI layer, in front of the instance's app, makes both reach the same endpoint: a path
naming this instance's service is served with the prefix moved into the ASGI
``root_path`` (so ``/sentiment/docs`` and ``/sentiment/openapi.json`` work too, and the
document's ``servers`` names the prefix); bare paths (health checks, ``/predict``) pass
as they are; a path naming another service is 404 with the platform's error body.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flowhost.services.routing import split_path
from flowhost.services.runtime.responses import error_body, send_json

__all__ = ["ServicePrefix"]

Scope = dict[str, Any]


def _request_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            return bytes(value).decode("latin-1")
    return None


class ServicePrefix:
    """Serves ``app`` under ``/{service}``, ``/{service}@{ref}`` and bare.

    ``local`` are the first path segments the app itself serves bare (its endpoints,
    ``healthz``, ``docs``, ...): ``/{local}/...`` is never read as another service."""

    def __init__(self, app: Any, service: str, local: Collection[str]) -> None:
        self.app = app
        self.service = service
        self.local = frozenset(local)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root: str = scope.get("root_path", "")
        path: str = scope["path"]
        parts = split_path(path.removeprefix(root) if root else path)
        if parts is None or not parts.rest:  # "/", or "/predict": bare
            await self.app(scope, receive, send)
            return
        if parts.service == self.service:
            # The ASGI way to mount an app under a prefix: the path stays whole and the
            # prefix joins root_path (routing, Swagger's URLs and static files follow it).
            await self.app({**scope, "root_path": root + parts.prefix}, receive, send)
            return
        if parts.ref is None and parts.service in self.local:
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        body = error_body(
            "not_found",
            f"{path!r} names service {parts.service!r}; this instance serves "
            f"{self.service!r}. Call /{parts.service}/... through the platform's load "
            "balancer, or check its listener rules.",
            request_id,
        )
        await send_json(send, 404, body, request_id or "-")
