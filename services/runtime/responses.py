"""Error bodies of the serving runtime: one JSON shape, a stable ``code`` per kind."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "HttpError",
    "error_body",
    "malformed_json",
    "send_json",
    "validation_failed",
]


class HttpError(Exception):
    """An error answered to the client as ``{"error": {"code", "message", ...}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or []


def error_body(
    code: str, message: str, request_id: str | None, details: list[dict[str, Any]] | None = None
) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if request_id is not None:
        error["request_id"] = request_id
    if details:
        error["details"] = details
    return json.dumps({"error": error}, default=str).encode()


def malformed_json(endpoint: str, hint: str) -> HttpError:
    return HttpError(
        400,
        "malformed_json",
        f"endpoint {endpoint!r}: the request body is not valid JSON ({hint}). "
        "Send a JSON object matching the endpoint's schema (see /docs).",
    )


def validation_failed(endpoint: str, details: list[dict[str, Any]]) -> HttpError:
    """422 for field-level problems, ``details`` as ``[{"field", "message", "type"}]``."""
    fields = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return HttpError(
        422,
        "validation_error",
        f"endpoint {endpoint!r}: the request does not match its schema ({fields}). "
        "Fix the listed fields (see /docs for the schema).",
        details,
    )


async def send_json(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    status: int,
    body: bytes,
    request_id: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer an ASGI request with a JSON body (the platform's own answers)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
