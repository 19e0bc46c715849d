"""OpenAPI 3.1 documents built from ``ServiceDefinition``s alone (no classes needed).

The serving runtime serves one per instance; the control plane combines the
production definitions of all services into one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from flowhost.services.definition import EndpointDefinition, Payload, ServiceDefinition

__all__ = [
    "ASYNC_HEADERS",
    "CALLBACK_URL_PATTERN",
    "ERROR_RESPONSES",
    "ERROR_SCHEMA",
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_ASYNC_TIMEOUT_SECONDS",
    "MAX_CALLBACK_URL",
    "MAX_IDEMPOTENCY_KEY",
    "build_openapi",
    "error_response",
]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable error code"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}

ERROR_RESPONSES: dict[str, str] = {
    "400": "Malformed JSON body (code: malformed_json)",
    "405": "The endpoint does not take this HTTP method (code: method_not_allowed); "
    "Allow lists the methods it takes",
    "413": "Request body too large (code: payload_too_large)",
    "422": "The body does not match the request schema (code: validation_error)",
    "424": "An artifact of the pinned run is missing (code: artifact_unavailable)",
    "500": "The endpoint raised, or returned a response off its schema",
    "503": "The instance is not ready yet (code: not_ready), or could not start in time "
    "(codes: instance_start_failed, cold_start_timeout); retry after Retry-After",
    "504": "The endpoint exceeded its timeout (code: timeout)",
}
# What the platform's router adds in front of an instance (paths with a service prefix).
ROUTER_ERROR_RESPONSES: dict[str, str] = {
    "404": "No such service, alias or version (code: not_found)",
    "502": "The instance dropped the request (code: instance_unavailable); retry",
}


ASYNC_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "AsyncRequest",
    "required": ["id", "status", "status_url", "result_url"],
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": ["queued", "running", "succeeded", "failed", "expired"]},
        "service": {"type": "string"},
        "endpoint": {"type": "string"},
        "target": {"type": "string", "description": "the alias or version asked for"},
        "version": {"type": ["string", "null"], "description": "the version that runs it"},
        "run": {
            "type": ["string", "null"],
            "description": "the Metaflow run the version pinned, once a job started",
        },
        "attempts": {"type": "integer"},
        "error": {
            "type": ["object", "null"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "timeout_seconds": {"type": "number"},
        "callback": {"type": ["object", "null"]},
        "status_url": {"type": "string"},
        "result_url": {"type": "string"},
    },
}
# The option headers of an asynchronous request: the async API enforces exactly these.
MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"  # visible ASCII
MAX_CALLBACK_URL = 2048
_H16 = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(  # RFC 4291 text forms, without embedded IPv4 or a zone
    [
        f"({_H16}:){{7}}{_H16}",
        f"({_H16}:){{1,7}}:",
        *(f"({_H16}:){{1,{7 - n}}}(:{_H16}){{1,{n}}}" for n in range(1, 7)),
        f":((:{_H16}){{1,7}}|:)",
    ]
)
_PORT = "([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# scheme, host (a name, an IPv4 or a bracketed IPv6 address; no user info), port 0-65535,
# then any path and query
CALLBACK_URL_PATTERN = rf"^https?://([^\s/?#@:\[\]]+|\[({_IPV6})\])(:{_PORT})?([/?#]\S*)?$"
MAX_ASYNC_TIMEOUT_SECONDS = 43200.0
ASYNC_HEADERS: list[tuple[str, dict[str, Any], str, str | float]] = [
    (
        "Idempotency-Key",
        {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
         "pattern": IDEMPOTENCY_KEY_PATTERN},
        "The same key returns the same request (nothing new is queued); 1 to 255 visible "
        "ASCII characters (a UUID per logical request).",
        "7d7c2f8e-0b7a-4f5e-9a43-2f1d5c0e8b61",
    ),
    (
        "Flowhost-Callback-Url",
        {"type": "string", "minLength": 1, "maxLength": MAX_CALLBACK_URL,
         "pattern": CALLBACK_URL_PATTERN},
        "POST the signed outcome here when the request finishes: an absolute http(s) URL. "
        "Leave the header out for no callback (an empty value is an error).",
        "https://example.com/hooks/flowhost",
    ),
    (
        "Flowhost-Timeout",
        {"type": "number", "minimum": 1, "maximum": MAX_ASYNC_TIMEOUT_SECONDS},
        "Seconds one run may take, 1 to 43200 (default 3600).",
        600,
    ),
]  # fmt: skip


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def error_response(description: str, **headers: str) -> dict[str, Any]:
    """A documented error answer: the ``Error`` model (``components.schemas.Error``), and
    the headers it carries (``Allow="..."`` becomes the ``Allow`` header)."""
    out = _json(_ERROR_REF, description)
    if headers:
        out["headers"] = {
            name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return out


_REQUEST_REF = {"$ref": "#/components/schemas/AsyncRequest"}
_STATE_UNAVAILABLE = "The platform's state store is unavailable (code: state_unavailable)"
_ALLOW = "The methods this path takes"


def _async_paths() -> dict[str, Any]:
    """``/requests/{id}`` and ``/requests/{id}/result`` of the platform's async API."""
    param = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    not_found = error_response("No such request (code: request_not_found)")
    wrong_method = error_response("Use GET (code: method_not_allowed)", Allow=_ALLOW)
    return {
        "/requests/{id}": {
            "get": {
                "operationId": "async_request_status",
                "summary": "Status of an asynchronous request",
                "tags": ["async requests"],
                "parameters": param,
                "responses": {
                    "200": _json(_REQUEST_REF, "The request's status record"),
                    "404": not_found,
                    "405": wrong_method,
                    "503": error_response(_STATE_UNAVAILABLE),
                },
            }
        },
        "/requests/{id}/result": {
            "get": {
                "operationId": "async_request_result",
                "summary": "Result of an asynchronous request",
                "tags": ["async requests"],
                "parameters": param,
                "responses": {
                    "200": {
                        **_json({}, "The endpoint's response"),
                        "headers": {
                            "X-Flowhost-Version": {
                                "description": "the version that answered, e.g. v3",
                                "schema": {"type": "string"},
                            },
                            "X-Flowhost-Run": {
                                "description": "the Metaflow run it pinned, if any",
                                "schema": {"type": "string"},
                            },
                        },
                    },
                    "404": not_found,
                    "405": wrong_method,
                    "409": _json(_ERROR_REF, "Not finished (result_not_ready) or failed"),
                    "410": error_response("The result expired (code: request_expired)"),
                    "503": error_response(_STATE_UNAVAILABLE),
                },
            }
        },
    }


def _async_operation(
    service: ServiceDefinition, ep: EndpointDefinition, components: _Components
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{service.name}_{ep.name}_async".replace("-", "_"),
        "summary": f"{ep.name}, asynchronously (up to 12 hours)",
        "description": "Queues the call and answers 202 at once; poll the status URL or "
        "pass Flowhost-Callback-Url. The same as the endpoint's own path with "
        "`Prefer: respond-async`.",
        "tags": [service.name],
        "parameters": [
            {
                "name": name,
                "in": "header",
                "schema": dict(schema),
                "description": text,
                "example": example,
            }
            for name, schema, text, example in ASYNC_HEADERS
        ],
        "responses": {
            "202": {
                **_json(_REQUEST_REF, "Queued"),
                "headers": {
                    "Location": {"description": "The status URL", "schema": {"type": "string"}}
                },
            },
            "400": error_response(
                "Malformed JSON (malformed_json), or a bad header (invalid_idempotency_key, "
                "invalid_callback_url, invalid_timeout)"
            ),
            "404": error_response("No such service, alias, version or endpoint (not_found)"),
            "405": error_response(
                "Asynchronous requests are submitted with POST (method_not_allowed)",
                Allow=_ALLOW,
            ),
            "413": error_response("Request body too large (code: payload_too_large)"),
            "422": error_response("The body does not match the request schema"),
            "503": error_response(_STATE_UNAVAILABLE),
        },
    }
    if ep.request.kind != "none":
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": components.register(ep.request, f"{ep.name}_request")
                }
            },
        }
    return op


class _Components:
    """Collects named schemas, renaming on a clash so every ``$ref`` stays right."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def _add(self, name: str, schema: dict[str, Any]) -> str:
        candidate, n = name, 1
        while candidate in self.schemas and self.schemas[candidate] != schema:
            n += 1
            candidate = f"{name}{n}"
        self.schemas[candidate] = schema
        return candidate

    def register(self, payload: Payload, fallback: str) -> dict[str, Any]:
        schema = copy.deepcopy(payload.json_schema)
        defs: dict[str, Any] = schema.pop("$defs", {})
        same = {old: _rewrite_refs(body, {}) for old, body in defs.items()}
        if all(self.schemas.get(old, body) == body for old, body in same.items()):
            defs = same  # all new or already registered as-is: reuse them, no copies
        renames = {old: self._add(old, body) for old, body in defs.items()}
        rewritten = _rewrite_refs(schema, renames)
        for new in renames.values():
            self.schemas[new] = _rewrite_refs(self.schemas[new], renames)
        if payload.kind != "model":
            return rewritten
        name = self._add(payload.type_name or fallback, rewritten)
        return {"$ref": f"#/components/schemas/{name}"}


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():  # pyright: ignore[reportUnknownVariableType]
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                target = value.removeprefix("#/$defs/")
                out[key] = f"#/components/schemas/{renames.get(target, target)}"
            else:
                out[str(key)] = _rewrite_refs(value, renames)  # pyright: ignore[reportUnknownArgumentType]
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]  # pyright: ignore[reportUnknownVariableType]
    return node


def _operation(
    service: ServiceDefinition,
    ep: EndpointDefinition,
    method: str,
    components: _Components,
    routed: bool,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{service.name}_{ep.name}_{method.lower()}".replace("-", "_"),
        "summary": ep.description.splitlines()[0] if ep.description else ep.name,
        "description": ep.description,
        "tags": [service.name],
    }
    if ep.request.kind != "none":
        schema = components.register(ep.request, f"{ep.name}_request")
        if method == "GET":
            ref = str(schema.get("$ref", ""))
            fields = components.schemas[ref.rsplit("/", 1)[1]] if ref else schema
            required = set(fields.get("required", []))
            op["parameters"] = [
                {"name": field, "in": "query", "required": field in required, "schema": sub}
                for field, sub in fields.get("properties", {}).items()
            ]
        else:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
    responses: dict[str, Any] = {
        "200": {
            "description": "Success",
            "content": {
                "application/json": {
                    "schema": components.register(ep.response, f"{ep.name}_response")
                }
            },
        }
    }
    errors = {**ERROR_RESPONSES, **ROUTER_ERROR_RESPONSES} if routed else ERROR_RESPONSES
    for status in sorted(errors):
        text = errors[status]
        responses[status] = (
            error_response(text, Allow=_ALLOW) if status == "405" else error_response(text)
        )
    op["responses"] = responses
    op["x-flowhost-timeout-seconds"] = ep.timeout
    return op


def build_openapi(
    services: Iterable[tuple[str, ServiceDefinition]],
    *,
    title: str,
    version: str,
    description: str = "",
    asynchronous: bool = False,
) -> dict[str, Any]:
    """One OpenAPI document for ``(path_prefix, definition)`` pairs.

    An instance serves its endpoints at ``/{endpoint}`` (prefix ``""``); the platform
    serves them at ``/{service}/{endpoint}`` (prefix ``"/{service}"``) and, with
    ``asynchronous``, their ``.../async`` variants and ``/requests/{id}`` too.
    """
    components = _Components()
    paths: dict[str, Any] = {}
    tags: list[dict[str, str]] = []
    for prefix, service in services:
        tags.append({"name": service.name, "description": service.description})
        for ep in service.endpoints:
            item = paths.setdefault(f"{prefix}/{ep.name}", {})
            for method in ep.http_methods:
                item[method.lower()] = _operation(service, ep, method, components, bool(prefix))
            if asynchronous:
                paths[f"{prefix}/{ep.name}/async"] = {
                    "post": _async_operation(service, ep, components)
                }
    if asynchronous:
        components.schemas["AsyncRequest"] = ASYNC_REQUEST_SCHEMA
        paths.update(_async_paths())
        tags.append({"name": "async requests", "description": "Status and results"})
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "tags": tags,
        "paths": paths,
        "components": {"schemas": components.schemas},
    }
