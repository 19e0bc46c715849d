"""HTTP pieces of the API Gateway emulation: what was received, what is answered, the v2
response format of Lambda proxy answers and the HTTP integrations' parameter mapping."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["HOP_BY_HOP", "MAX_INTEGRATION_MS", "Received", "Reply", "from_lambda", "header",
           "map_parameter", "message", "timeout"]  # fmt: skip

MAX_INTEGRATION_MS = 30_000
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "content-length", "host"}  # fmt: skip


@dataclass(frozen=True)
class Received:
    method: str
    raw_path: str  # path and query as sent
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def header(headers: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name), "")


def timeout(integration: Mapping[str, Any]) -> float:
    return min(int(integration.get("timeoutMilliseconds") or MAX_INTEGRATION_MS),
               MAX_INTEGRATION_MS) / 1000  # fmt: skip


def map_parameter(
    key: str, value: str, request: Received, headers: list[tuple[str, str]], path: str,
    query: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], str, list[tuple[str, str]]]:  # fmt: skip
    """One of the integration's ``requestParameters`` (HTTP API parameter mapping):
    ``overwrite|append|remove:header.NAME``, ``...:querystring.NAME``, ``overwrite:path``;
    values static or ``$request.header.NAME`` / ``$request.querystring.NAME``."""
    if value.startswith("$request.header."):
        value = header(request.headers, value.removeprefix("$request.header.").lower())
    elif value.startswith("$request.querystring."):
        wanted = value.removeprefix("$request.querystring.")
        value = next((v for k, v in parse_qsl(request.query) if k == wanted), "")
    operation, _, target = key.partition(":")
    if target == "path" and operation == "overwrite":
        return headers, value, query
    kind, _, name = target.partition(".")
    if kind == "header":
        kept = headers if operation == "append" else [
            (k, v) for k, v in headers if k.lower() != name.lower()]  # fmt: skip
        return ([*kept, (name, value)] if operation != "remove" else kept), path, query
    if kind == "querystring":
        kept = query if operation == "append" else [(k, v) for k, v in query if k != name]
        return headers, path, ([*kept, (name, value)] if operation != "remove" else kept)
    raise ValueError(f"request parameter {key!r} not understood by the emulation")


def message(status: int, message: str) -> Reply:
    body = json.dumps({"message": message}).encode()
    return Reply(status, [("Content-Type", "application/json")], body)


def from_lambda(payload: Any) -> Reply:
    """The v2 response format: a dict with ``statusCode``, else the payload is the JSON body."""
    if not (isinstance(payload, dict) and "statusCode" in payload):
        return Reply(200, [("Content-Type", "application/json")], json.dumps(payload).encode())
    try:
        status = int(payload["statusCode"])
        body = payload.get("body") or ""
        raw = base64.b64decode(body) if payload.get("isBase64Encoded") else str(body).encode()
        headers = [(str(k), str(v)) for k, v in (payload.get("headers") or {}).items()]
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            headers += [(str(name), str(v)) for v in values]
        headers += [("Set-Cookie", str(c)) for c in payload.get("cookies") or []]
    except (TypeError, ValueError):
        return message(500, "Internal Server Error")
    headers = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
    return Reply(status, headers, raw)
