"""Schema contracts: what a new version breaks for clients of the current one.

Compares each endpoint's request and response JSON Schemas. Breaking: a removed
endpoint or HTTP method, a request field that became required (or a new required
one), a removed response field, a field whose type changed.
"""

from __future__ import annotations

from typing import Any

from flowhost.services.definition import Payload, ServiceDefinition

__all__ = ["breaking_changes"]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return _resolve(target, root)
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> frozenset[str]:
    """The JSON types a (sub)schema admits; ``anyOf`` unions are flattened."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        out: frozenset[str] = frozenset()
        for sub in schema["anyOf"]:
            out |= _types(sub, root)
        return out
    kind = schema.get("type")
    if isinstance(kind, list):
        return frozenset(str(k) for k in kind)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(kind, str):
        return frozenset({kind})
    if "$ref" in schema or "properties" in schema:
        return frozenset({"object"})
    return frozenset({"any"})


def _fields(payload: Payload) -> tuple[dict[str, Any], set[str], dict[str, Any]]:
    root = payload.json_schema
    top = _resolve(root, root)
    return top.get("properties", {}), set(top.get("required", [])), root


def _request_changes(where: str, old: Payload, new: Payload) -> list[str]:
    old_props, old_req, _ = _fields(old)
    new_props, new_req, new_root = _fields(new)
    out: list[str] = []
    for name in sorted(new_req - old_req):
        state = "became required" if name in old_props else "is a new required field"
        out.append(f"{where} request: field {name!r} {state}")
    out += _type_changes(f"{where} request", old, new, may_widen=True)
    for name in sorted(set(old_props) - set(new_props)):
        if _resolve(new_root, new_root).get("additionalProperties") is False:
            out.append(f"{where} request: field {name!r} was removed and is now rejected")
    return out


def _response_changes(where: str, old: Payload, new: Payload) -> list[str]:
    old_props, _, _ = _fields(old)
    new_props, _, _ = _fields(new)
    out = [
        f"{where} response: field {name!r} was removed"
        for name in sorted(set(old_props) - set(new_props))
    ]
    out += _type_changes(f"{where} response", old, new, may_widen=False)
    return out


def _type_changes(where: str, old: Payload, new: Payload, *, may_widen: bool) -> list[str]:
    """Fields in both payloads whose JSON types changed incompatibly. A request field may
    widen (old clients' values still validate); a response field may narrow (old clients
    still understand it). A side that accepts anything never breaks."""
    old_props, _, old_root = _fields(old)
    new_props, _, new_root = _fields(new)
    out: list[str] = []
    for name in sorted(set(old_props) & set(new_props)):
        before, after = _types(old_props[name], old_root), _types(new_props[name], new_root)
        if may_widen:
            fits = "any" in after or before <= after
        else:
            fits = "any" in before or after <= before
        if not fits:
            out.append(
                f"{where}: field {name!r} changed type "
                f"({'|'.join(sorted(before))} -> {'|'.join(sorted(after))})"
            )
    return out


def breaking_changes(current: ServiceDefinition, candidate: ServiceDefinition) -> list[str]:
    """Human-readable differences that would break clients of ``current``; empty if none."""
    out: list[str] = []
    new_eps = {ep.name: ep for ep in candidate.endpoints}
    for ep in current.endpoints:
        where = f"endpoint {ep.name!r}"
        new = new_eps.get(ep.name)
        if new is None:
            out.append(f"{where} was removed")
            continue
        for method in ep.http_methods:
            if method not in new.http_methods:
                out.append(f"{where}: HTTP method {method} is no longer accepted")
        if ep.request.kind != "none" and new.request.kind == "none":
            out.append(f"{where} request: the body is no longer read")
        else:  # an endpoint that read no body has an empty schema: new required fields break
            out.extend(_request_changes(where, ep.request, new.request))
        out.extend(_response_changes(where, ep.response, new.response))
    return out
