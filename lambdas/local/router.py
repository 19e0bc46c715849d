"""The router and activator of the local platform.

``/{service}/{endpoint}`` goes to the ``production`` alias and
``/{service}@{alias-or-version}/{endpoint}`` where it says (read with
:func:`flowhost.services.routing.split_path`, as instances on AWS read it); the instance
is sent ``/{endpoint}``. Requests go to the live
instance with the fewest in flight over keep-alive connections; a request that finds
its version at zero instances is held while one starts (the activator), up to the
cold-start deadline.

A body above the instances' limit (``max_body_bytes``, the runtime's default) is answered
413 by the router itself, before it is buffered whole; the platform's server then drains
the rest of it (``flowhost.services.runtime.lingering``), so the client sees that answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from flowhost.errors import FlowhostError
from flowhost.lambdas.local.pool import Instance, Pool
from flowhost.lambdas.local.routes import RouteTable
from flowhost.lambdas.local.scaler import Scaler
from flowhost.lambdas.local.upstream import UpstreamError
from flowhost.services.routing import split_path
from flowhost.services.runtime.responses import HttpError, error_body, send_json
from flowhost.services.runtime.settings import DEFAULT_MAX_BODY_BYTES

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from flowhost.services.runtime.tracing import Tracing

__all__ = ["Router"]

log = logging.getLogger("flowhost.router")

_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
     b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length"}
)  # fmt: skip
# uvicorn writes its own Date and Server on every response; an instance's would repeat them.
_NOT_FORWARDED = _HOP_BY_HOP | {b"date", b"server"}
_REFUSED_RETRIES = 3  # instances that refused a connection before the request fails


class Router:
    """ASGI app that proxies endpoint calls to instances."""

    def __init__(
        self,
        routes: RouteTable,
        scaler: Scaler,
        *,
        cold_start_timeout: float = 60.0,
        tracing: Tracing | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ):
        self.routes = routes
        self.max_body_bytes = max_body_bytes  # the instances' own limit: larger never fits
        self.scaler = scaler
        self.cold_start_timeout = cold_start_timeout
        self.tracing = tracing  # when set: a span per request, its context sent to the instance

    def _target(self, path: str) -> tuple[Pool, str]:
        parts = split_path(path)
        if parts is None:
            known = ", ".join(sorted(self.routes.pools)) or "none"
            raise HttpError(
                404,
                "not_found",
                f"no service in the path {path!r}. Call /<service>/<endpoint> or "
                f"/<service>@<alias-or-version>/<endpoint>; services: {known}.",
            )
        pool = self.routes.lookup(parts.service, parts.ref)
        endpoint = parts.rest.removeprefix("/")
        if endpoint not in pool.endpoints:
            known = ", ".join(sorted(pool.endpoints)) or "none"
            raise HttpError(
                404,
                "not_found",
                f"{pool.key} has no endpoint {endpoint!r}. Endpoints: {known}.",
            )
        return pool, endpoint

    async def _instance(self, pool: Pool, avoid: Collection[Instance] = ()) -> Instance:
        """A ready instance of ``pool`` (not one of ``avoid``), waiting for one to start."""
        inst = pool.pick(avoid)
        if inst is not None:
            return inst
        pool.waiting += 1
        self.scaler.wake()
        deadline = time.monotonic() + self.cold_start_timeout
        try:
            while (inst := pool.pick(avoid)) is None:
                remaining = deadline - time.monotonic()
                error = self.scaler.last_error.get(pool)
                if error is not None and pool.starting == 0:
                    # ``error`` may quote initialize's exception and the instance's log:
                    # for deployers (the platform log, 'flowhost logs'), not for callers.
                    log.warning(
                        "no instance could start",
                        extra={"fields": {"version": pool.key, "error": error}},
                    )
                    raise HttpError(
                        503,
                        "instance_start_failed",
                        f"{pool.key}: no instance could start; the service's deployers "
                        "see why with 'flowhost logs'. Retry later.",
                        headers=[(b"retry-after", b"5")],
                    )
                if remaining <= 0:
                    raise HttpError(
                        503,
                        "cold_start_timeout",
                        f"{pool.key}: no instance became ready within "
                        f"{self.cold_start_timeout:g}s. Retry, or raise min_instances.",
                        headers=[(b"retry-after", b"5")],
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pool.changed(), timeout=min(remaining, 1.0))
            return inst
        finally:
            pool.waiting -= 1

    def _too_large(self, size: int, pool: Pool) -> HttpError:
        return HttpError(
            413,
            "payload_too_large",
            f"request body is {size} bytes, above the limit of {self.max_body_bytes} bytes "
            f"for {pool.key}. Send a smaller body, or put large inputs in object storage and "
            "send a reference.",
        )

    async def _body(self, scope: dict[str, Any], receive: Any, pool: Pool) -> bytes:
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise self._too_large(int(value), pool)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(499, "client_disconnected", "the client went away")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(size, pool)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        tracing = self.tracing
        if tracing is None:
            await self._proxy(scope, receive, send, None)
            return
        span = tracing.start(
            f"{scope['method']} router",
            scope["headers"],
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        status = 500
        try:
            status = await self._proxy(scope, receive, send, span)
        finally:
            tracing.finish(span, status, None)

    async def _proxy(
        self, scope: dict[str, Any], receive: Any, send: Any, span: Span | None
    ) -> int:
        """Answer one request; returns the status sent."""
        request_id: str | None = None
        headers: list[tuple[bytes, bytes]] = []
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
            if key not in _HOP_BY_HOP:
                headers.append((key, value))
        if request_id is None:
            request_id = uuid.uuid4().hex
            headers.append((b"x-request-id", request_id.encode()))
        if span is not None:
            span.set_attribute("flowhost.request_id", request_id)
        pool: Pool | None = None
        inst: Instance | None = None
        try:
            pool, endpoint = self._target(scope["path"])
            pool.last_request = time.monotonic()
            pool.in_flight += 1
            try:
                body = await self._body(scope, receive, pool)
                if span is not None:
                    span.update_name(f"{scope['method']} /{pool.service}/{endpoint}")
                    span.set_attributes({"flowhost.service": pool.service,
                                         "flowhost.version": f"v{pool.number}",
                                         "flowhost.endpoint": endpoint,
                                         "flowhost.cold_start": not pool.live})  # fmt: skip
                if span is not None:
                    assert self.tracing is not None
                    self.tracing.inject(span, headers)  # the instance's span is its child
                query: bytes = scope.get("query_string", b"")
                target = f"/{endpoint}?{query.decode('latin-1')}" if query else f"/{endpoint}"
                refused: list[Instance] = []
                while True:
                    inst = await self._instance(pool, refused)
                    inst.in_flight += 1
                    try:
                        response = await inst.upstream.request(
                            scope["method"], target, headers, body,
                            pool.endpoints[endpoint].timeout + 5,
                        )  # fmt: skip
                        break
                    except ConnectionRefusedError:
                        # Nothing was sent: the instance died and is not yet replaced.
                        # Another (or its replacement) takes the request, a few times.
                        if len(refused) >= _REFUSED_RETRIES:
                            raise
                        refused.append(inst)
                        inst.in_flight -= 1
                        inst = None
                        self.scaler.wake()
            finally:
                pool.in_flight -= 1
                pool.last_request = time.monotonic()
                if inst is not None:
                    inst.in_flight -= 1
            out = [(k, v) for k, v in response.headers if k not in _NOT_FORWARDED]
            out.append((b"content-length", str(len(response.body)).encode()))
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            await send({"type": "http.response.body", "body": response.body})
            return response.status
        except HttpError as exc:
            status, payload, extra = (
                exc.status,
                error_body(exc.code, exc.message, request_id),
                exc.headers,
            )
        except FlowhostError as exc:
            status, payload, extra = exc.status, error_body(exc.code, exc.message, request_id), []
        except (UpstreamError, OSError, TimeoutError) as exc:
            where = pool.key if pool is not None else "the instance"
            log.warning(
                "proxy error", extra={"fields": {"request_id": request_id, "error": repr(exc)}}
            )
            status, extra = 502, []
            payload = error_body(
                "instance_unavailable",
                f"{where}: the instance dropped the request ({type(exc).__name__}); request id "
                f"{request_id}. Retry; the platform replaces instances that die.",
                request_id,
            )
        except Exception:  # a router bug must still answer in the error shape, and be logged
            log.exception("router error", extra={"fields": {"request_id": request_id}})
            status, extra = 500, []
            payload = error_body(
                "router_error",
                f"the platform's router failed on this request; request id {request_id}. "
                "The traceback is in the platform log.",
                request_id,
            )
        await send_json(send, status, payload, request_id, extra)
        return status
