"""The async request API as a raw ASGI app (uvicorn locally, Mangum on Lambda).

- ``POST /{service}[@ref]/{endpoint}/async``, or the endpoint's own path with
  ``Prefer: respond-async``: ``202`` with ``{"id", "status", "status_url",
  "result_url", ...}`` and ``Location``. Headers: ``Idempotency-Key``,
  ``Flowhost-Callback-Url``, ``Flowhost-Timeout`` (seconds, up to 43200).
- ``GET /requests/{id}``: the request's status record.
- ``GET /requests/{id}/result``: the result (``409 result_not_ready`` /
  ``409 request_failed`` / ``410 request_expired`` / ``404 request_not_found``), with
  ``X-Flowhost-Version`` and ``X-Flowhost-Run`` naming the version and the pinned run
  that ran it, as a synchronous answer does.
- Held synchronous calls (``flowhost.services.edge``): ``POST /requests/hold/{service}
  [@ref]/{endpoint}`` queues the call and answers ``303`` to ``GET /requests/{id}/wait``,
  which long-polls for one budget and then answers ``303`` to itself, or the endpoint's
  own response (status and body) once the request has finished.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from flowhost.errors import FlowhostError
from flowhost.lambdas.async_requests.service import AsyncRequests, lineage_headers
from flowhost.lambdas.async_requests.validation import parse_options
from flowhost.services.edge import HOLD_PREFIX, MAX_EDGE_REPLY_BYTES, wait_path
from flowhost.services.runtime.responses import HttpError, error_body, send_json

__all__ = ["AsyncApp", "create_async_app"]

log = logging.getLogger("flowhost.async")

Scope = dict[str, Any]
Answer = tuple[int, Any, list[tuple[bytes, bytes]]]  # status, JSON document or bytes, headers
# How a held call's recorded error code answers, as the instance would have answered it.
_ERROR_STATUS = {
    "validation_error": 422,
    "invalid_json": 400,
    "bad_request": 400,
    "payload_too_large": 413,
    "timeout": 504,
}
_POLL_SECONDS = 0.25


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

    async def _submit(self, scope: Scope, receive: Any, path: str | None = None) -> Answer:
        if scope["method"] != "POST":
            raise HttpError(
                405,
                "method_not_allowed",
                "asynchronous requests are submitted with POST (the body is the endpoint's "
                "JSON request, whatever the endpoint's own method).",
                headers=[(b"allow", b"POST")],
            )
        where: str = path if path is not None else scope["path"].removesuffix("/async")
        target, _, endpoint = where.lstrip("/").partition("/")
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

    async def _hold(self, scope: Scope, receive: Any) -> Answer:
        """A synchronous call the edge could not answer in time: queue it, then 303."""
        status, doc, headers = await self._submit(
            scope, receive, scope["path"].removeprefix(HOLD_PREFIX)
        )
        del status, headers
        location = wait_path(str(doc["id"]))
        return 303, {**doc, "wait_url": location}, [(b"location", location.encode())]

    async def _wait(self, request_id: str) -> Answer:
        """Long-poll one budget; then 303 to itself, or the endpoint's response."""
        settings = self.service.settings
        deadline = time.monotonic() + settings.wait_budget
        while True:
            record = await asyncio.to_thread(self.service.get, request_id)
            if record.status not in ("queued", "running"):
                break
            if time.monotonic() >= deadline:
                location = wait_path(request_id).encode()
                doc = self.service.describe(record)
                return 303, doc, [(b"location", location), (b"retry-after", b"0")]
            await asyncio.sleep(_POLL_SECONDS)
        if record.status == "failed":
            error = json.loads(record.error or "{}")
            code = str(error.get("code", "endpoint_error"))
            body = error_body(code, str(error.get("message", "the request failed")), record.id)
            return _ERROR_STATUS.get(code, 500), body, []
        record, result = await asyncio.to_thread(self.service.answer, request_id)  # 410: expired
        if len(result) > MAX_EDGE_REPLY_BYTES and record.result_key is not None:
            url = self.service.objects.presigned_url(record.result_key, 3600)
            if url is not None:  # too large for the edge's function: fetched from S3
                return 303, self.service.describe(record), [(b"location", url.encode())]
        return 200, result, lineage_headers(record)

    async def _report(self, scope: Scope) -> Answer:
        if scope["method"] != "GET":
            raise HttpError(405, "method_not_allowed", "use GET.", headers=[(b"allow", b"GET")])
        parts = scope["path"].strip("/").split("/")
        if len(parts) == 2:
            record = await asyncio.to_thread(self.service.get, parts[1])
            return 200, self.service.describe(record, _base_url(scope)), []
        if len(parts) == 3 and parts[2] == "result":
            record, result = await asyncio.to_thread(self.service.answer, parts[1])
            return 200, result, lineage_headers(record)
        if len(parts) == 3 and parts[2] == "wait":
            return await self._wait(parts[1])
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
            if scope["path"].startswith(HOLD_PREFIX + "/"):
                status, doc, extra = await self._hold(scope, receive)
            elif scope["path"].startswith("/requests/"):
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
            extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
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
