"""The activator on AWS: the Lambda the ALB sends a parked version's requests to.

A route whose version is at zero forwards to the activator's target group. The activator
wakes the version (scale to one, wait for a running task, route back to it: see
``EcsFleet.wake``), then replays the request through the load balancer, which now sends
it to the version, and answers with its response. The caller waits through the start;
nothing is refused. A replay that comes back to the activator (the version was parked
again meanwhile) is answered 503 with ``Retry-After`` instead of looping.

A caller behind the edge (the request carries ``EDGE_HEADER``, which the API Gateway
integration adds) cannot wait through a start of minutes: API Gateway cuts at 30 s.
For them the activator waits one budget (``EDGE_BUDGET_SECONDS``); if the version is
not up by then, it holds the call (``flowhost.services.edge``): the call is queued as
a request of the version, kept like an asynchronous one, and answered ``303`` to its
wait URL; the wake goes on in a second invocation of this function (``wake_later``),
and the version's worker runs the call once it is up.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from flowhost.errors import DeployError, FlowhostError
from flowhost.lambdas.async_requests import AsyncRequests
from flowhost.lambdas.async_requests.validation import parse_options
from flowhost.lambdas.aws.fleet import EcsFleet
from flowhost.lambdas.store import PRODUCTION, StateStore, VersionRecord
from flowhost.services.edge import EDGE_BUDGET_SECONDS, EDGE_HEADER, wait_path
from flowhost.services.routing import split_path
from flowhost.services.runtime.responses import HttpError, error_body

__all__ = ["MAX_RESPONSE_BYTES", "WAKE_EVENT", "Activator"]

log = logging.getLogger("flowhost.activator")

ACTIVATED = "x-flowhost-activated"
WAKE_EVENT = "wake"  # {"flowhost": "wake", "service": ..., "version": N}: wake, then return
MAX_RESPONSE_BYTES = 1_000_000  # a Lambda answering an ALB may return at most 1 MB
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailers", "transfer-encoding", "upgrade", "host",
     "content-length"}
)  # fmt: skip


def _answer(status: int, body: bytes, headers: Mapping[str, list[str]]) -> dict[str, Any]:
    """An ALB Lambda-target response (multi-value headers are on for the target group)."""
    text = body.decode("utf-8", errors="strict") if _is_text(body) else None
    return {
        "statusCode": status,
        "statusDescription": f"{status} {httpx.codes.get_reason_phrase(status)}".strip(),
        "multiValueHeaders": dict(headers),
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _error(
    status: int, code: str, message: str, request_id: str, retry: bool = False
) -> dict[str, Any]:
    headers = {"content-type": ["application/json"], "x-request-id": [request_id]}
    if retry:
        headers["retry-after"] = ["5"]
    return _answer(status, error_body(code, message, request_id), headers)


class Activator:
    def __init__(
        self,
        store: StateStore,
        fleet: EcsFleet,
        http: httpx.AsyncClient,
        balancer_url: str,
        *,
        requests: AsyncRequests | None = None,
        wake_later: Callable[[str, int], Awaitable[None]] | None = None,
        budget: float = EDGE_BUDGET_SECONDS,
    ) -> None:
        """``requests`` and ``wake_later`` (start a second invocation that wakes the
        version) let edge callers be held instead of cut; without them every caller
        waits through the start."""
        self.store = store
        self.fleet = fleet
        self.http = http
        self.balancer_url = balancer_url.rstrip("/")
        self.requests = requests
        self.wake_later = wake_later
        self.budget = budget

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        if event.get("flowhost") == WAKE_EVENT:
            service, number = str(event["service"]), int(event["version"])
            routes = await self.fleet.wake(service, number)
            return {"woke": f"{service}@v{number}", "routes": len(routes)}
        given: Mapping[str, list[str]] = event.get("multiValueHeaders") or {}
        headers = {str(k).lower(): [str(v) for v in vs] for k, vs in given.items()}
        request_id = (headers.get("x-request-id") or ["-"])[0]
        path = str(event.get("path", "/"))
        target, _, _endpoint = path.lstrip("/").partition("/")
        service, _, ref = target.partition("@")
        if ACTIVATED in headers:
            return _error(
                503, "cold_start_retry",
                f"{target}: the version went back to zero while this request was being "
                "replayed to it. Retry.", request_id, retry=True,
            )  # fmt: skip
        try:
            version = self.store.resolve(service, ref or PRODUCTION)
            if self._may_hold(event, headers):
                woke = await self._wake_within_budget(version)
                if not woke:
                    return await self._hold(event, headers, version, ref, _endpoint, request_id)
            else:
                await self.fleet.wake(service, version.number)
        except DeployError as exc:
            log.error("wake failed", extra={"fields": {"target": target, "error": exc.message}})
            return _error(503, "instance_start_failed", exc.message, request_id, retry=True)
        except FlowhostError as exc:
            return _error(exc.status, exc.code, exc.message, request_id)
        return await self._replay(event, path, headers, request_id)

    def _may_hold(self, event: Mapping[str, Any], headers: dict[str, list[str]]) -> bool:
        """An edge caller's POST, and the means to hold it."""
        return (
            EDGE_HEADER in headers
            and str(event.get("httpMethod", "GET")) == "POST"
            and self.requests is not None
            and self.wake_later is not None
        )

    async def _wake_within_budget(self, version: VersionRecord) -> bool:
        """Wake the version if it comes up within the budget; else leave the wake to a
        second invocation and say so."""
        try:
            await asyncio.wait_for(self.fleet.wake(version.service, version.number), self.budget)
        except TimeoutError:
            assert self.wake_later is not None
            await self.wake_later(version.service, version.number)
            return False
        return True

    async def _hold(
        self,
        event: Mapping[str, Any],
        headers: dict[str, list[str]],
        version: VersionRecord,
        ref: str,
        endpoint: str,
        request_id: str,
    ) -> dict[str, Any]:
        """Queue the call as a request of the version; 303 to its wait URL."""
        assert self.requests is not None
        raw = str(event.get("body") or "")
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        pairs = [(k.encode(), v.encode()) for k, vs in headers.items() for v in vs]
        try:
            limit = version.definition.endpoint(endpoint).timeout  # 404 lists the endpoints
            options = parse_options(pairs, self.requests.settings)
            if not any(k == b"flowhost-timeout" for k, _ in pairs):  # the endpoint's own limit
                options = dataclasses.replace(options, timeout=limit)
            record, _ = await asyncio.to_thread(
                self.requests.submit, version, ref or PRODUCTION, endpoint, body, options
            )
        except HttpError as exc:
            return _error(exc.status, exc.code, exc.message, request_id)
        location = wait_path(record.id)
        doc = {**self.requests.describe(record), "wait_url": location}
        log.info("held", extra={"fields": {"request_id": record.id, "version": version.label}})
        return _answer(
            303,
            json.dumps(doc).encode(),
            {
                "content-type": ["application/json"],
                "location": [location],
                "x-request-id": [request_id],
            },
        )

    async def _replay(
        self, event: Mapping[str, Any], path: str, headers: dict[str, list[str]], request_id: str
    ) -> dict[str, Any]:
        raw = str(event.get("body") or "")
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        params: Mapping[str, list[str]] = event.get("multiValueQueryStringParameters") or {}
        query = urlencode([(str(k), str(v)) for k, vs in params.items() for v in vs])
        forward = [(k, v) for k, vs in headers.items() if k not in _HOP_BY_HOP for v in vs]
        forward.append((ACTIVATED, "1"))
        url = f"{self.balancer_url}{path}" + (f"?{query}" if query else "")
        try:
            response = await self.http.request(
                str(event.get("httpMethod", "GET")), url, content=body, headers=forward,
                timeout=httpx.Timeout(1200.0, connect=10.0),
            )  # fmt: skip
        except httpx.HTTPError as exc:
            return _error(
                502, "instance_unavailable",
                f"the version started, but replaying the request to it failed "
                f"({type(exc).__name__}). Retry.", request_id, retry=True,
            )  # fmt: skip
        out: dict[str, list[str]] = {}
        for key, value in response.headers.multi_items():
            if key.lower() not in _HOP_BY_HOP:
                out.setdefault(key.lower(), []).append(value)
        answer = _answer(response.status_code, response.content, out)
        size = len(json.dumps(answer).encode())  # ALB's limit is on the whole answer
        if size <= MAX_RESPONSE_BYTES:
            return answer
        url = self._stash(path, response) if response.status_code == 200 else None
        if url is not None:  # too large to carry: the caller fetches it from S3
            headers = {"location": [url], "x-request-id": [request_id]}
            return _answer(303, b"", headers)
        return _error(
            502, "response_too_large_for_activator",
            f"the version answered {len(response.content)} bytes, more than the "
            f"{MAX_RESPONSE_BYTES} a cold-start reply can carry. The version is awake now: "
            "call again (or use the async API for large results).", request_id,
        )  # fmt: skip

    def _stash(self, path: str, response: httpx.Response) -> str | None:
        """Keep a reply too large for ALB's Lambda limit under the service's async prefix
        (the bucket's lifecycle expires it) and return a presigned URL to it."""
        if self.requests is None:
            return None
        route = split_path(path)
        if route is None:
            return None
        objects = self.requests.objects
        key = f"async/{route.service}/replies/{uuid.uuid4().hex}"
        objects.put(key, response.content)
        return objects.presigned_url(key, 3600)
