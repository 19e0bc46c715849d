"""Error bodies of the serving runtime: one JSON shape, a stable ``code`` per kind."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["HttpError", "error_body"]


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
