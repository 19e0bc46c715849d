"""The hot path: one raw ASGI handler per endpoint.

It reads the body, validates it with pydantic-core directly, calls the method (on
the event loop, or in a worker thread for ``def``), enforces the response type and
the timeout, and records metrics and one access-log line. No per-request
dependency resolution, no middleware stack.

JSON bodies are validated in pydantic's strict mode, so validation says what the
published JSON Schema says: ``"0"`` is not a number, ``false`` is not a number; an integer
is still a valid number, ``1.0`` is the integer 1 as JSON Schema says, and ISO 8601
strings are still valid datetimes, dates and UUIDs (JSON has no such types). Query
parameters of GET endpoints are strings on the wire, so they are converted as in
pydantic's lax mode.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import time
from concurrent.futures import Executor
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from flowhost.errors import FlowhostError
from flowhost.services.compile import EndpointBinding
from flowhost.services.edge import EDGE_BUDGET_SECONDS, EDGE_HEADER, HOLD_ABOVE_SECONDS, hold_path
from flowhost.services.routing import split_path
from flowhost.services.runtime.failures import ENDPOINT_ERROR, endpoint_error_message
from flowhost.services.runtime.instance import InstanceState
from flowhost.services.runtime.logs import AccessLog
from flowhost.services.runtime.metrics import EndpointMetrics
from flowhost.services.runtime.responses import (
    HttpError,
    error_body,
    malformed_json,
    validation_failed,
)

if TYPE_CHECKING:
    from flowhost.services.runtime.tracing import Tracing

__all__ = ["EndpointHandler", "validation_details"]

log = logging.getLogger("flowhost.endpoint")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_JSON = (b"content-type", b"application/json")
_EDGE = EDGE_HEADER.encode()

Scope = dict[str, Any]


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Field-level problems: ``[{"field": "a.b", "message": ..., "type": ...}]``."""
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "(body)",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _integral_float(exc: ValidationError) -> bool:
    """Whether strict mode refused a float with no fraction (``1.0``) where an int goes."""
    return any(
        e["type"] == "int_type" and isinstance(e["input"], float) and e["input"].is_integer()
        for e in exc.errors(include_url=False, include_context=False)
    )


def _whole(text: str) -> float | int:
    number = float(text)
    return int(number) if number.is_integer() and abs(number) <= 2**53 else number


def _integral_floats_as_ints(body: bytes) -> bytes | None:
    """The body with every whole-number float written as an integer (``1.0`` -> ``1``):
    JSON Schema counts it as an integer. Only on the error path; None if it does not parse."""
    try:
        return json.dumps(json.loads(body, parse_float=_whole)).encode()
    except (ValueError, RecursionError):
        return None


class EndpointHandler:
    """Serves one endpoint of one instance."""

    def __init__(
        self,
        binding: EndpointBinding,
        state: InstanceState,
        metrics: EndpointMetrics,
        executor: Executor,
        max_body_bytes: int,
        base_headers: list[tuple[bytes, bytes]],
        access: AccessLog,
        tracing: Tracing | None = None,
    ) -> None:
        d = binding.definition
        self.definition = d
        self.name = d.name
        self.methods = frozenset(d.http_methods)
        self.allow = ", ".join(d.http_methods).encode()
        self.timeout = d.timeout
        self.state = state
        self.metrics = metrics
        self.executor = executor
        self.max_body_bytes = max_body_bytes
        self.base_headers = base_headers
        self.access = access
        self.tracing = tracing
        self.request_adapter: TypeAdapter[Any] | None = (
            TypeAdapter(binding.request_type) if binding.request_type is not None else None
        )
        self.response_adapter: TypeAdapter[Any] = TypeAdapter(binding.response_type)
        self._call: Any = None  # the bound method, set once the instance is ready

    # -- request ----------------------------------------------------------------------

    async def _read_body(self, receive: Any, declared: int | None) -> bytes:
        if declared is not None and declared > self.max_body_bytes:
            raise self._too_large(declared)
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_body_bytes:
                raise self._too_large(len(body))
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(499, "client_disconnected", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _hold_at_edge(self, scope: Scope) -> None:
        """A caller behind the edge (30 s) of an endpoint that may run longer is sent to
        repeat the POST to the control plane, which queues it and answers 303 to its wait
        URL (``flowhost.services.edge``); callers inside the VPC are served here."""
        if not any(key == _EDGE for key, _ in scope["headers"]):
            return
        root = str(scope.get("root_path", ""))
        route = split_path(root + "/" + self.name) if root else None
        if route is None:  # a bare path: no route to name, so serve it here
            return
        location = hold_path(route.service, route.ref, self.name)
        raise HttpError(
            307,
            "held_at_edge",
            f"endpoint {self.name!r} may run up to {self.timeout:g}s, longer than the edge's "
            f"{EDGE_BUDGET_SECONDS:g}s: repeat this POST at {location}; it is queued and "
            "answered 303 to a URL that ends in the endpoint's response.",
            headers=[(b"location", location.encode())],
        )

    def _too_large(self, size: int) -> HttpError:
        return HttpError(
            413,
            "payload_too_large",
            f"request body is {size} bytes, above this instance's limit of "
            f"{self.max_body_bytes} bytes. Send a smaller body, or put large inputs in "
            "object storage and send a reference.",
        )

    def _parse(self, method: str, scope: Scope, body: bytes) -> Any:
        adapter = self.request_adapter
        if adapter is None:
            return None
        try:
            if method == "GET":
                query = scope.get("query_string", b"").decode("latin-1")
                return adapter.validate_python(dict(parse_qsl(query, keep_blank_values=True)))
            try:
                return adapter.validate_json(body, strict=True)
            except ValidationError as exc:
                again = _integral_floats_as_ints(body) if _integral_float(exc) else None
                if again is None:
                    raise
                return adapter.validate_json(again, strict=True)
        except ValidationError as exc:
            details = validation_details(exc)
            if details and details[0]["type"] == "json_invalid":
                hint = "the body is empty" if not body.strip() else details[0]["message"]
                raise malformed_json(self.name, hint) from None
            raise validation_failed(self.name, details) from None

    # -- call -------------------------------------------------------------------------

    def bind(self, instance: object) -> None:
        self._call = getattr(instance, self.definition.method)

    def parse_payload(self, payload: bytes) -> Any:
        """The request of an asynchronous job: its JSON payload, validated like a body."""
        return self._parse("POST", {}, payload)

    async def invoke(self, request: Any, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Call the endpoint (``timeout`` defaults to the endpoint's own)."""
        call = self._call
        args = () if self.request_adapter is None else (request,)
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                if self.definition.is_coroutine:
                    return await call(*args)
                ctx = contextvars.copy_context()
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self.executor, partial(ctx.run, call, *args))
        except TimeoutError:
            raise HttpError(
                504,
                "timeout",
                f"endpoint {self.name!r} did not finish within its timeout of "
                f"{limit:g}s. Raise @endpoint(timeout=...) (up to 20 minutes) or call "
                "it asynchronously (up to 12 hours).",
            ) from None

    def render(self, result: Any, request_id: str) -> bytes:
        adapter = self.response_adapter
        try:
            return adapter.dump_json(adapter.validate_python(result))
        except (ValidationError, PydanticSerializationError) as exc:
            log.error(
                "response does not match the declared return type",
                extra={
                    "fields": {"request_id": request_id, "endpoint": self.name, "error": str(exc)}
                },
            )
            raise HttpError(
                500,
                "invalid_response",
                f"endpoint {self.name!r} returned a value that does not match its declared "
                f"return type ({type(exc).__name__}); request id {request_id}. The service "
                "owner should fix the return value; details are in the instance log.",
            ) from None

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        tracing = self.tracing
        if tracing is None:
            await self._handle(scope, receive, send, None)
            return
        span = tracing.start(
            f"{scope['method']} /{self.name}",
            scope["headers"],
            attributes={"http.request.method": scope["method"], "url.path": scope["path"],
                        "http.route": f"/{self.name}", "flowhost.endpoint": self.name},
        )  # fmt: skip
        token = tracing.attach(span)  # the endpoint's own spans nest under this one
        try:
            request_id, status, error_code = await self._handle(
                scope, receive, send, tracing.trace_id(span)
            )
        except BaseException:  # the client went away mid-response: the span still ends
            tracing.finish(span, 499, "client_disconnected")
            raise
        finally:
            tracing.detach(token)
        span.set_attribute("flowhost.request_id", request_id)
        tracing.finish(span, status, error_code)

    async def _handle(
        self, scope: Scope, receive: Any, send: Any, trace_id: str | None
    ) -> tuple[str, int, str | None]:
        """Answer one request; ``(request id, status, error code)``."""
        started = time.perf_counter()
        request_id: str | None = None
        declared: int | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                if _REQUEST_ID.match(value):
                    request_id = value.decode()
            elif key == b"content-length" and value.isdigit():
                declared = int(value)
        if request_id is None:
            request_id = os.urandom(16).hex()
        method: str = scope["method"]
        metrics = self.metrics
        extra_headers: list[tuple[bytes, bytes]] = []
        error_code: str | None = None
        metrics.in_flight.inc()
        try:
            if method not in self.methods:
                raise HttpError(
                    405,
                    "method_not_allowed",
                    f"endpoint {self.name!r} accepts {self.allow.decode()}, not {method}.",
                    headers=[(b"allow", self.allow)],
                )
            if self._call is None:
                raise HttpError(
                    503,
                    "not_ready",
                    f"the instance is {self.state.status}"
                    + (  # initialize's exception is in the instance log, not for callers
                        "; its initialize failed (the version's deployers find why in "
                        "its deploy progress and instance log)."
                        if self.state.error
                        else "; retry shortly."
                    ),
                    headers=[(b"retry-after", b"1")],
                )
            if self.timeout > HOLD_ABOVE_SECONDS and method == "POST":
                self._hold_at_edge(scope)
            body = await self._read_body(receive, declared)
            request = self._parse(method, scope, body)
            result = await self.invoke(request)
            payload = self.render(result, request_id)
            status = 200
        except HttpError as exc:
            status, error_code = exc.status, exc.code
            payload = error_body(exc.code, exc.message, request_id, exc.details)
            extra_headers = exc.headers
        except FlowhostError as exc:
            status, error_code = exc.status, exc.code
            payload = error_body(exc.code, exc.message, request_id)
        except Exception as exc:
            log.exception(
                "endpoint raised",
                extra={"fields": {"request_id": request_id, "endpoint": self.name}},
            )
            status, error_code = 500, ENDPOINT_ERROR
            message = endpoint_error_message(self.name, exc, request_id)
            payload = error_body(error_code, message, request_id)
        finally:
            metrics.in_flight.dec()
        headers = [
            *self.base_headers,
            _JSON,
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode()),
            *extra_headers,
        ]
        if self.state.run is not None:
            headers.append((b"x-flowhost-run", self.state.run.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        elapsed = time.perf_counter() - started
        metrics.record(status, elapsed, error_code)
        if self.access.enabled:
            line: dict[str, Any] = {
                "request_id": request_id,
                "method": method,
                "path": scope["path"],
                "endpoint": self.name,
                "status": status,
                "error_code": error_code,
                "duration_ms": round(elapsed * 1000, 3),
                "response_bytes": len(payload),
                "run": self.state.run,
            }
            if trace_id is not None:
                line["trace_id"] = trace_id
            self.access.write(line)
        return request_id, status, error_code
