"""Which part of the control plane answers a request, by path (the same locally and on
AWS): ``/api/...`` the deployments API; ``/requests/...``, ``.../async`` and calls with
``Prefer: respond-async`` the async request API; ``/docs``, ``/openapi.json``, ``/`` and
``/healthz`` the catalog; everything else the fallback (the router locally; on AWS, sync
calls reach instances through the load balancer, so the fallback answers 404)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ASGIApp", "Gateway", "wants_async"]

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_CATALOG_PREFIXES = ("/docs", "/openapi.json", "/static-offline-docs")


def wants_async(scope: dict[str, Any]) -> bool:
    """A call to ``.../async``, or to an endpoint with ``Prefer: respond-async``."""
    path: str = scope["path"]
    if path.endswith("/async") or path.startswith("/requests/"):
        return True
    for key, value in scope["headers"]:
        if key == b"prefer":
            return b"respond-async" in value.lower()
    return False


class Gateway:
    def __init__(
        self, *, api: ASGIApp, catalog: ASGIApp, asynchronous: ASGIApp, fallback: ASGIApp
    ) -> None:
        self.api = api
        self.catalog = catalog
        self.asynchronous = asynchronous
        self.fallback = fallback

    def app_for(self, scope: dict[str, Any]) -> ASGIApp:
        path: str = scope.get("path", "")
        if path.startswith("/api/") or path == "/api":
            return self.api
        if path.startswith(_CATALOG_PREFIXES) or path in ("/", "/healthz"):
            return self.catalog
        if wants_async(scope):
            return self.asynchronous
        return self.fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app_for(scope)(scope, receive, send)
