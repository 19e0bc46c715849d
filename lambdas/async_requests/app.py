"""The async request API as a raw ASGI app (uvicorn locally, Mangum on Lambda).

- ``POST /{service}[@ref]/{endpoint}/async``, or the endpoint's own path with
  ``Prefer: respond-async``: ``202`` with ``{"id", "status", "status_url",
  "result_url", ...}`` and ``Location``. Headers: ``Idempotency-Key``,
  ``Flowhost-Callback-Url``, ``Flowhost-Timeout`` (seconds, up to 43200).
- ``GET /requests/{id}``: the request's status record.
- ``GET /requests/{id}/result``: the result (``409 result_not_ready`` /
  ``409 request_failed`` / ``410 request_expired`` / ``404 request_not_found``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from flowhost.errors import FlowhostError
from flowhost.lambdas.async_requests.service import AsyncRequests
from flowhost.lambdas.async_requests.validation import parse_options
from flowhost.services.runtime.responses import HttpError, error_body, send_json

__all__ = ["AsyncApp", "create_async_app"]

log = logging.getLogger("flowhost.async")

Scope = dict[str, Any]
Answer = tuple[int, Any, list[tuple[bytes, bytes]]]  # status, JSON document or bytes, headers


def _base_url(scope: Scope) -> str:
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


class AsyncApp:
    def __init__(self, service: AsyncRequests) -> None:
        self.service = service

    async def _body(self, receive: Any) -> bytes:
        limit = self.service.settings.max_payload_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(
                    413,
                    "payload_too_large",
                    f"the request body is over {limit} bytes, the limit for asynchronous "
                    "requests. Put large inputs in object storage and send a reference.",
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _submit(self, scope: Scope, receive: Any) -> Answer:
        if scope["method"] != "POST":
            raise HttpError(
                405,
                "method_not_allowed",
                "asynchronous requests are submitted with POST (the body is the endpoint's "
                "JSON request, whatever the endpoint's own method).",
                headers=[(b"allow", b"POST")],
            )
        path: str = scope["path"].removesuffix("/async")
        target, _, endpoint = path.lstrip("/").partition("/")
        service, at, ref = target.partition("@")
        version = self.service.target(service, ref if at else None, endpoint)
        options = parse_options(scope["headers"], self.service.settings)
        body = await self._body(receive)
        record, created = await asyncio.to_thread(
            self.service.submit, version, ref if at else "production", endpoint, body, options
        )
        doc = self.service.describe(record, _base_url(scope))
        headers = [(b"location", doc["status_url"].encode())]
        if not created:
            headers.append((b"idempotent-replayed", b"true"))
        return 202, doc, headers

    async def _report(self, scope: Scope) -> Answer:
        if scope["method"] != "GET":
            raise HttpError(405, "method_not_allowed", "use GET.", headers=[(b"allow", b"GET")])
        parts = scope["path"].strip("/").split("/")
        if len(parts) == 2:
            record = await asyncio.to_thread(self.service.get, parts[1])
            return 200, self.service.describe(record, _base_url(scope)), []
        if len(parts) == 3 and parts[2] == "result":
            return 200, await asyncio.to_thread(self.service.result, parts[1]), []
        raise HttpError(
            404,
            "not_found",
            f"no such path {scope['path']!r}. Use /requests/{{id}} or /requests/{{id}}/result.",
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        request_id = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"),
            uuid.uuid4().hex,
        )
        extra: list[tuple[bytes, bytes]] = []
        try:
            if scope["path"].startswith("/requests/"):
                status, doc, extra = await self._report(scope)
            else:
                status, doc, extra = await self._submit(scope, receive)
            payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        except HttpError as exc:
            status, extra = exc.status, exc.headers
            payload = error_body(exc.code, exc.message, request_id, exc.details)
        except FlowhostError as exc:
            status = exc.status
            payload = error_body(exc.code, exc.message, request_id)
            if exc.code == "result_not_ready":
                extra = [(b"retry-after", b"1")]
        except Exception:
            log.exception("async API error", extra={"fields": {"request_id": request_id}})
            status = 500
            payload = error_body(
                "async_api_error",
                f"the async request API failed; request id {request_id}. The traceback is in "
                "the platform log.",
                request_id,
            )
        await send_json(send, status, payload, request_id, extra)


def create_async_app(service: AsyncRequests) -> AsyncApp:
    return AsyncApp(service)
