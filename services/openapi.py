"""OpenAPI 3.1 documents built from ``ServiceDefinition``s alone (no classes needed).

The serving runtime serves one per instance; the control plane combines the
production definitions of all services into one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from flowhost.services.definition import EndpointDefinition, Payload, ServiceDefinition

__all__ = ["ERROR_RESPONSES", "build_openapi"]

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
    "405": "The endpoint does not take this HTTP method (code: method_not_allowed)",
    "413": "Request body too large (code: payload_too_large)",
    "422": "The body does not match the request schema (code: validation_error)",
    "424": "An artifact of the pinned run is missing (code: artifact_unavailable)",
    "500": "The endpoint raised, or returned a response off its schema",
    "503": "The instance is not ready yet (code: not_ready)",
    "504": "The endpoint exceeded its timeout (code: timeout)",
}


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
    service: ServiceDefinition, ep: EndpointDefinition, method: str, components: _Components
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
            op["parameters"] = [
                {"name": field, "in": "query", "schema": sub}
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
    for status, text in ERROR_RESPONSES.items():
        responses[status] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    op["responses"] = responses
    op["x-flowhost-timeout-seconds"] = ep.timeout
    return op


def build_openapi(
    services: Iterable[tuple[str, ServiceDefinition]],
    *,
    title: str,
    version: str,
    description: str = "",
) -> dict[str, Any]:
    """One OpenAPI document for ``(path_prefix, definition)`` pairs.

    An instance serves its endpoints at ``/{endpoint}`` (prefix ``""``); the platform
    serves them at ``/{service}/{endpoint}`` (prefix ``"/{service}"``).
    """
    components = _Components()
    paths: dict[str, Any] = {}
    tags: list[dict[str, str]] = []
    for prefix, service in services:
        tags.append({"name": service.name, "description": service.description})
        for ep in service.endpoints:
            item = paths.setdefault(f"{prefix}/{ep.name}", {})
            for method in ep.http_methods:
                item[method.lower()] = _operation(service, ep, method, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "tags": tags,
        "paths": paths,
        "components": {"schemas": components.schemas},
    }
